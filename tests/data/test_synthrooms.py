"""SynthRooms: determinism, ground truth = mask extents, geometry, no interpenetration, classes."""

from __future__ import annotations

import numpy as np
import pytest

from dsod_depth.data.synthrooms import CLASS_NAMES, SynthRooms, SynthRoomsConfig, primitives
from dsod_depth.data.synthrooms.assemblies import CLASS_SPECS, build
from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics

NYUD2_DETECTION_CLASSES = {
    "bathtub", "bed", "bookshelf", "box", "chair", "counter", "desk", "door", "dresser", "garbage bin",
    "lamp", "monitor", "night stand", "pillow", "sink", "sofa", "table", "television", "toilet",
}  # fmt: skip


def _assert_same_sample(a, b):
    for name in ("rgb", "depth", "raw_depth", "boxes", "labels", "difficult"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.image_id == b.image_id and a.intrinsics == b.intrinsics
    for key in a.meta:
        np.testing.assert_array_equal(a.meta[key], b.meta[key])


def test_same_seed_same_frame_and_frames_are_independent(small_frames):
    rooms = SynthRooms(SynthRoomsConfig(width=96, height=72), seed=7)
    # Frame 5 generated on its own, in a fresh generator, equals frame 5 generated after 0..4.
    _assert_same_sample(rooms.frame(5).sample, small_frames[5].sample)
    _assert_same_sample(rooms[3], small_frames[3].sample)
    assert not np.array_equal(small_frames[0].sample.rgb, small_frames[1].sample.rgb)


def test_seed_and_split_change_the_frames(small_frames):
    other_seed = SynthRooms(SynthRoomsConfig(width=96, height=72), seed=8).frame(0).sample
    test_split = SynthRooms(SynthRoomsConfig(width=96, height=72), seed=7, split="test").frame(0).sample
    assert not np.array_equal(other_seed.depth, small_frames[0].sample.depth)
    assert not np.array_equal(test_split.depth, small_frames[0].sample.depth)
    assert test_split.image_id == "test-000000"


def test_sample_contract_types_and_intrinsics(small_frames):
    sample = small_frames[0].sample
    assert sample.rgb.dtype == np.uint8 and sample.rgb.shape == (72, 96, 3)
    assert sample.depth.dtype == np.float32 and sample.raw_depth.dtype == np.float32
    assert sample.intrinsics == Intrinsics.nyu().resize(96 / 640, 72 / 480)
    assert set(sample.meta) == {"gravity", "camera_to_world"}


def test_boxes_are_the_extents_of_the_instance_masks(small_frames):
    checked = 0
    for frame in small_frames:
        sample, imap = frame.sample, frame.instance_map
        area = imap.shape[0] * imap.shape[1]
        for box, k, label in zip(sample.boxes, frame.box_objects, sample.labels):
            rows, cols = np.nonzero(imap == k)
            # Pixel i spans [i, i + 1]: the tight continuous box of the mask.
            assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
            assert label == frame.objects[k].label
            checked += 1
        # Every object seen by enough pixels has a box; the others were dropped as too small.
        counts = np.bincount(imap.ravel() + 1, minlength=len(frame.objects) + 1)[1:]
        visible = np.flatnonzero(counts >= max(SynthRoomsConfig().min_visible_fraction * area, 4.0))
        assert sorted(frame.box_objects.tolist()) == visible.tolist()
    assert checked > 20


def test_difficult_flags_heavy_truncation(small_frames):
    for frame in small_frames:
        assert np.array_equal(
            frame.sample.difficult, frame.truncation > SynthRoomsConfig().difficult_truncation
        )
        # A box touching no image border belongs to an object fully inside the image.
        w, h = frame.sample.width, frame.sample.height
        for box, trunc in zip(frame.sample.boxes, frame.truncation):
            if box[0] > 0 and box[1] > 0 and box[2] < w and box[3] < h:
                assert trunc == pytest.approx(0.0, abs=1e-9)


def test_exact_depth_back_projects_inside_the_room(small_frames):
    for frame in small_frames:
        k = frame.sample.intrinsics
        z = frame.exact_depth.astype(np.float64)
        v, u = np.mgrid[: z.shape[0], : z.shape[1]]
        cam = np.stack([(u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z], -1).reshape(-1, 3)
        world = cam @ frame.camera.rotation.T + frame.camera.position
        room = frame.room
        # Every ray ends on a surface of the closed room or inside it.
        assert np.all(world.min(0) >= -2e-3)
        assert np.all(world.max(0) <= [room.size_x + 2e-3, room.size_y + 2e-3, room.height + 2e-3])


def test_stored_gravity_matches_the_floor_plane(small_frames):
    """Independent check of the pose: floor pixels back-projected with the stored camera_to_world
    are at height 0, and their plane normal in the camera frame is the stored gravity."""
    for frame in small_frames[:6]:
        k, sample = frame.sample.intrinsics, frame.sample
        z = frame.exact_depth.astype(np.float64)
        v, u = np.mgrid[: z.shape[0], : z.shape[1]]
        cam = np.stack([(u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z], -1).reshape(-1, 3)
        pose = sample.meta["camera_to_world"]
        height = cam @ pose[:3, :3].T[:, 2] + pose[2, 3]
        floor = cam[np.abs(height) < 1e-3]
        if len(floor) < 50:
            continue
        centred = floor - floor.mean(0)
        normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
        cosine = abs(normal @ sample.meta["gravity"])
        assert np.degrees(np.arccos(min(cosine, 1.0))) < 0.5
        assert np.linalg.norm(sample.meta["gravity"]) == pytest.approx(1.0)


def test_gravity_matches_the_hha_geometry_estimate():
    """Gupta's gravity estimate (HHA geometry) on the generated filled depth, raw holes left out,
    agrees with the stored gravity within 2 degrees."""
    from dsod_depth.geometry.gravity import estimate_gravity
    from dsod_depth.geometry.normals import surface_normals

    rooms = SynthRooms(seed=3)  # the default 320×240: Gupta's 21×21 window is meant for full-size frames
    angles = []
    for i in range(8):
        sample = rooms[i]
        normals = surface_normals(sample.depth, sample.intrinsics, radius=10, valid=sample.raw_depth > 0)
        estimate = estimate_gravity(normals[None])[0]
        cosine = float(np.clip(estimate @ sample.meta["gravity"], -1.0, 1.0))
        angles.append(np.degrees(np.arccos(cosine)))
    assert max(angles) < 2.0, angles


def _half_spaces(part):
    """(normals [T, 3], offsets [T]) with n·x ≤ d inside; outward by the triangle winding."""
    v = part.vertices[part.triangles]  # [T, 3 corners, 3]
    n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    return n, np.einsum("ij,ij->i", n, v[:, 0])


def _interior_samples(part, rng, num=60):
    """Points strictly inside a convex part: random convex combinations of its vertices, pulled
    3 mm towards the centroid so that touching faces do not count as overlap."""
    w = rng.dirichlet(np.ones(len(part.vertices)), size=num)
    points = np.concatenate([w @ part.vertices, part.vertices])
    centre = part.vertices.mean(0)
    direction = centre - points
    dist = np.linalg.norm(direction, axis=1, keepdims=True)
    return points + direction / np.maximum(dist, 1e-9) * np.minimum(dist, 0.003)


def test_objects_never_interpenetrate(small_frames):
    rng = np.random.default_rng(0)
    for frame in small_frames:
        objects = frame.objects
        for a in range(len(objects)):
            points = np.concatenate([_interior_samples(p, rng) for p in objects[a].parts])
            for b in range(len(objects)):
                if a == b:
                    continue
                for part in objects[b].parts:
                    n, d = _half_spaces(part)
                    inside = np.all(points @ n.T <= d + 1e-9, axis=1)
                    assert not inside.any(), (CLASS_NAMES[objects[a].label], CLASS_NAMES[objects[b].label])


def test_primitives_are_closed_with_outward_normals():
    for part in (
        primitives.box(0, 0, 0, 1, 2, 3),
        primitives.frustum(0.5, 0.5, 0.1, 1.0, 0.3, 0.2, taper=0.6),
    ):
        edges = np.sort(part.triangles[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        _, counts = np.unique(edges, axis=0, return_counts=True)
        assert np.all(counts == 2)  # closed: every edge shared by exactly two triangles
        n, d = _half_spaces(part)
        assert np.all(n @ part.vertices.mean(0) < d)  # the centroid is inside every face


def test_classes_are_nyud2_detection_classes_and_all_occur():
    assert len(CLASS_NAMES) >= 8 and set(CLASS_NAMES) <= NYUD2_DETECTION_CLASSES
    rooms = SynthRooms(SynthRoomsConfig(width=32, height=24), seed=1)
    seen = set()
    for i in range(40):
        seen |= {o.label for o in rooms.frame(i).objects}
    assert seen == set(range(len(CLASS_NAMES)))


@pytest.mark.parametrize("name", CLASS_NAMES)
def test_assemblies_vary_in_size_and_stand_on_the_floor(name):
    rng = np.random.default_rng(0)
    spec = CLASS_SPECS[name]
    sizes = []
    for _ in range(8):
        obj = build(name, rng, on_surface=spec.on_surface and not spec.on_floor)
        points = np.concatenate([p.vertices for p in obj.parts])
        assert points[:, 2].min() == pytest.approx(0.0, abs=1e-9)
        assert np.abs(points[:, 0]).max() == pytest.approx(obj.half_x)
        assert np.abs(points[:, 1]).max() == pytest.approx(obj.half_y)
        sizes.append((obj.half_x, obj.half_y, obj.height))
    assert np.ptp(np.array(sizes), axis=0).max() > 0.02


def test_config_is_validated():
    with pytest.raises(KitError, match="appearance_randomness"):
        SynthRoomsConfig(appearance_randomness=1.5)
    with pytest.raises(KitError, match="split"):
        SynthRooms(split="validation")
