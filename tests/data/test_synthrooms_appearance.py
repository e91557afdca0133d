"""SynthRooms appearance: the materials model, the legacy hue-blend model, and how much class
information colour carries (the colour k-NN probe)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from dsod_depth.data.synthrooms import CLASS_NAMES, SynthRooms, SynthRoomsConfig
from dsod_depth.data.synthrooms.appearance import (
    CLASS_FAMILIES,
    CLASS_TINTS,
    FAMILIES,
    RANDOM_POOL,
    TINT_SPREAD,
    object_materials,
    to_uint8,
)
from dsod_depth.data.synthrooms.calibration import colour_probe, colour_statistics, knn_accuracy
from dsod_depth.data.synthrooms_defaults import DEFAULT_APPEARANCE_MODEL, DEFAULT_RANDOMNESS
from dsod_depth.errors import KitError

# sha256 (first 16 hex digits) of rgb, depth, raw depth, boxes and labels of frames generated before
# the materials model existed (numpy 2.4.6, scipy 1.17.1, open3d 0.20.0), keyed by randomness,
# size, split and index. `hue-blend` must reproduce them byte for byte.
HUE_BLEND_HASHES = {
    (0.0, (96, 72), "train", 0): "f792c09968282a95",
    (0.0, (96, 72), "test", 3): "b8daad58fede8df3",
    (0.3, (96, 72), "train", 7): "b6edf8ffdb22729c",
    (0.75, (96, 72), "train", 0): "5e05e912972e55bf",
    (0.75, (96, 72), "test", 3): "136b27306c5687dc",
    (0.75, (320, 240), "train", 7): "6614eae87c115b7d",
    (1.0, (96, 72), "train", 0): "39b88a77e6098509",
}


def _digest(sample) -> str:
    h = hashlib.sha256()
    for array in (sample.rgb, sample.depth, sample.raw_depth, sample.boxes, sample.labels):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize(("key", "expected"), list(HUE_BLEND_HASHES.items()))
def test_hue_blend_reproduces_frames_made_before_the_materials_model(key, expected):
    randomness, (width, height), split, index = key
    config = SynthRoomsConfig(
        width=width, height=height, appearance_randomness=randomness, appearance_model="hue-blend"
    )
    assert _digest(SynthRooms(config, seed=0, split=split)[index]) == expected


def test_materials_model_is_the_default_and_deterministic():
    config = SynthRoomsConfig(width=96, height=72)
    assert (config.appearance_model, config.appearance_randomness) == (
        DEFAULT_APPEARANCE_MODEL,
        DEFAULT_RANDOMNESS,
    )
    assert DEFAULT_APPEARANCE_MODEL == "materials"
    a, b = SynthRooms(config, seed=5), SynthRooms(config, seed=5)
    for index in (0, 3):
        assert _digest(a[index]) == _digest(b[index])
    legacy = SynthRooms(SynthRoomsConfig(width=96, height=72, appearance_model="hue-blend"), seed=5)
    assert _digest(legacy[0]) != _digest(a[0])  # the models differ
    # Geometry is drawn before appearance: same rooms, cameras and objects in both models.
    np.testing.assert_array_equal(legacy.frame(0).exact_depth, a.frame(0).exact_depth)


def test_unknown_appearance_model_is_refused():
    with pytest.raises(KitError, match="appearance model 'pastel'.*materials, hue-blend"):
        SynthRoomsConfig(appearance_model="pastel")


def test_every_class_part_draws_from_known_families():
    assert set(CLASS_FAMILIES) == set(CLASS_NAMES)
    for parts in CLASS_FAMILIES.values():
        assert len(parts) == 3 and "same" not in parts[0]  # the main part is drawn, never repeated
        for weights in parts:
            assert set(weights) <= set(FAMILIES) | {"same"} and abs(sum(weights.values()) - 1) < 1e-9
    assert not any(FAMILIES[name].glows for name in RANDOM_POOL)
    assert "screen" not in RANDOM_POOL and "wood" not in RANDOM_POOL  # glowing / unknown names


def test_instances_of_a_class_vary_and_classes_share_families():
    # No class is a single colour: the main part's colour varies between instances at randomness 0.
    for name in CLASS_NAMES:
        main = np.stack([object_materials(np.random.default_rng(s), name, 0.0).colour[0] for s in range(30)])
        assert main.std(axis=0).max() > 0.02, name
    users = {f: [c for c, parts in CLASS_FAMILIES.items() if any(f in w for w in parts)] for f in FAMILIES}
    assert len(users["dark wood"]) >= 4 and len(users["metal"]) >= 5  # shared, as in real rooms


def test_dyed_materials_lean_to_the_class_tint():
    import colorsys

    def hue(family: str, seed: int, tint: float | None) -> float:
        return colorsys.rgb_to_hsv(*FAMILIES[family].draw(np.random.default_rng(seed), tint)[0])[0]

    tint = CLASS_TINTS["sofa"]
    for family in ("plastic", "upholstery", "painted wood"):  # dyed: within the band around the tint
        offsets = np.array([(hue(family, s, tint) - tint + 0.5) % 1.0 - 0.5 for s in range(100)])
        assert np.abs(offsets).max() <= TINT_SPREAD + 1e-6 and offsets.std() > TINT_SPREAD / 3, family
    wood = [hue("dark wood", s, tint) for s in range(50)]  # not dyed: its own hues, tint or not
    assert max(wood) <= 0.08 + 1e-6 and min(wood) >= 0.03 - 1e-6
    free = [hue("plastic", s, None) for s in range(200)]  # untinted (the random pool): the whole wheel
    assert np.histogram(free, bins=4, range=(0, 1))[0].min() > 15
    assert len(set(CLASS_TINTS.values())) == len(CLASS_NAMES)


def test_randomness_is_the_probability_of_leaving_the_class_families():
    def emissive_share(randomness: float) -> float:
        tables = [object_materials(np.random.default_rng(s), "lamp", randomness) for s in range(400)]
        return float(np.mean([t.emission[0].any() for t in tables]))  # the shade glows in its own family

    assert emissive_share(0.0) == pytest.approx(0.85, abs=0.06)
    assert emissive_share(0.5) == pytest.approx(0.85 * 0.5, abs=0.07)
    assert emissive_share(1.0) == 0.0  # every part from the pool: nothing glows


def test_exposure_ignores_light_sources():
    rng = np.random.default_rng(0)
    scene = np.full((20, 20, 3), 0.4, dtype=np.float32)
    lit = scene.copy()
    lit[:6, :6] = 50.0  # a glowing patch far brighter than the room
    mask = np.zeros((20, 20), dtype=bool)
    mask[:6, :6] = True
    plain = to_uint8(scene, np.random.default_rng(1), noise_std=0.0)
    with_lamp = to_uint8(lit, np.random.default_rng(1), noise_std=0.0, light_sources=mask)
    np.testing.assert_array_equal(with_lamp[~mask], plain[~mask])  # the room is exposed as before
    assert (with_lamp[mask] == 255).all()  # the light saturates
    darkened = to_uint8(lit, rng, noise_std=0.0)  # without the mask the room would go dark
    assert darkened[~mask].mean() < plain[~mask].mean() / 2


def test_glowing_screens_render_bright():
    config = SynthRoomsConfig(width=160, height=120, appearance_randomness=0.0)
    rooms = SynthRooms(config, seed=0)
    monitor = CLASS_NAMES.index("monitor")
    brightest = []  # per visible monitor, its brightest pixel
    for index in range(40):
        frame = rooms.frame(index)
        for obj_index, obj in enumerate(frame.objects):
            pixels = frame.sample.rgb[frame.instance_map == obj_index]
            if obj.label == monitor and len(pixels) > 30:
                brightest.append(int(pixels.max()))
    # 80 % of screens are lit (some monitors show only their back): most monitors hold pixels near white
    assert len(brightest) >= 5 and np.mean(np.array(brightest) >= 240) >= 0.4, brightest


def test_colour_statistics_and_knn_accuracy_by_hand():
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    rgb[:5, :5] = (255, 0, 0)
    features = colour_statistics(rgb, np.array([[0, 0, 5, 5], [5, 5, 10, 10]], dtype=np.float32))
    assert features.shape == (2, 21)
    np.testing.assert_allclose(features[0, :3], [1, 0, 0])  # mean per channel
    np.testing.assert_allclose(features[1], 0)
    # Two tight clusters: 1-NN is always right; the guess is the common reference label.
    x = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [0.05], [10.05], [0.15]])
    y = np.array([0, 0, 0, 1, 1, 0, 1, 0])
    reference = np.array([True] * 5 + [False] * 3)
    accuracy, guess = knn_accuracy(x, y, reference, k=1)
    assert accuracy == 1.0 and guess == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="at least 5 reference"):
        knn_accuracy(x, y, np.array([True] * 2 + [False] * 6), k=5)


# The probe's protocol: 200 frames of SynthRooms seed 3, split "train", 320×240 (the demo's size);
# features = per-channel mean, std and 10/25/50/75/90th percentiles of each ground-truth box crop;
# objects of the first two thirds of the frames are the reference set, the rest the queries; k = 5.
PROBE = {"frames": 200, "seed": 3, "split": "train", "size": (320, 240), "k": 5}


def _probe(randomness: float) -> dict:
    width, height = PROBE["size"]
    rooms = SynthRooms(
        SynthRoomsConfig(width=width, height=height, appearance_randomness=randomness),
        seed=PROBE["seed"],
        split=PROBE["split"],
    )
    return colour_probe((rooms[i] for i in range(PROBE["frames"])), k=PROBE["k"])


def test_colour_informs_the_class_without_encoding_it():
    default = _probe(DEFAULT_RANDOMNESS)
    free = _probe(1.0)
    print(f"probe: default {default}, randomness 1 {free}")
    assert default["accuracy"] >= 2 * default["guess"]  # colour informs ...
    assert default["accuracy"] <= 0.60  # ... it does not encode the label
    assert free["accuracy"] <= 1.3 * free["guess"]  # class-independent appearance: close to guessing
