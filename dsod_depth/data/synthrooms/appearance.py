"""Materials, procedural textures and shading for SynthRooms.

Two appearance models, chosen by ``SynthRoomsConfig.appearance_model``:

- ``materials`` (default): what an object is made of depends, loosely, on what it is. Every part of
  an object (main, secondary, accent: the ``material`` index of its primitives) draws a material
  *family* from a short list that fits its class (:data:`CLASS_FAMILIES`: beds in linen, sofas in
  upholstery or leather, chairs and bins in plastic, desks, shelves and night stands in painted or
  natural wood, boxes in cardboard, toilets in ceramic, monitors in dark plastic with a lit screen,
  lamps with a glowing shade...), and most objects are one material throughout. A family
  (:class:`Family`) fixes a distribution of colours and a texture kind and scale (grain for wood,
  weave for fabric, speckle for laminate, none for ceramic and plastic), so instances vary in hue,
  value and texture scale, and families are shared between classes as in real rooms. Dyed
  materials (plastics, fabrics, paints) lean to a band of hues per class, ±``TINT_SPREAD`` around
  the class's tint, neighbouring classes' bands touching (a catalogue's palette: no class is a single
  colour, but a chair is more often one hue than another). ``randomness`` in [0, 1] is the
  probability that a part draws its family uniformly from all non-glowing families
  (:data:`RANDOM_POOL`), untinted, instead of its class's own: 1 makes appearance independent of
  the class (the ablation). The constants were chosen on development frames (CALIBRATION.md).
- ``hue-blend`` (legacy: the only model of stores written before the materials model, which record
  no ``appearance_model``): one canonical colour per class and part,
  blended linearly with a uniformly random HSV colour by ``randomness``, and a class-independent
  texture with contrast scaled by ``randomness``. Kept so that earlier stores can be regenerated
  exactly (same seed and randomness → the same bytes).

Rooms draw their own materials (floor, walls, ceiling, door, pictures) independently of the objects,
the same way in both models. Textures are evaluated in each object's own frame, so they stick to
the object. Shading is Lambertian under one point light near the ceiling plus ambient light, with
cast shadows (computed by the renderer). Glowing materials (lit screens, lamp shades) add emitted
radiance on top; auto-exposure ignores them, so they saturate as light sources do in photographs
instead of darkening the room.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "CLASS_FAMILIES", "CLASS_TINTS", "FAMILIES", "Family", "MaterialTable", "RANDOM_POOL", "TINT_SPREAD",
    "hue_blend_materials", "object_materials", "room_materials", "shade", "surface", "to_uint8",
]  # fmt: skip

Rng = np.random.Generator
ANY = (0.0, 1.0)  # the whole hue wheel
NONE, STRIPES, CHECKER, NOISE, GRAIN, WEAVE = range(6)


@dataclass
class MaterialTable:
    """Per-material parameters, one row per material (M rows).

    colour: float32 [M, 3] linear RGB albedo in [0, 1]; kind: int64 [M] texture kind;
    freq: float32 [M] cycles per metre; contrast: float32 [M] in [0, 1); direction: float32 [M, 3]
    unit vector the stripes/grain run across; phase: float32 [M] offset (also shifts the noise);
    emission: float32 [M, 3] emitted linear radiance (0 for all but glowing materials), textured
    like the albedo.
    """

    colour: np.ndarray
    kind: np.ndarray
    freq: np.ndarray
    contrast: np.ndarray
    direction: np.ndarray
    phase: np.ndarray
    emission: np.ndarray

    @classmethod
    def concat(cls, tables: list[MaterialTable]) -> MaterialTable:
        return cls(*(np.concatenate([getattr(t, f) for t in tables]) for f in cls.__dataclass_fields__))

    def __len__(self) -> int:
        return len(self.kind)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


def _unit(rng: Rng) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


Row = tuple  # (colour [3], kind, freq, contrast, direction [3], phase[, emission [3]])


def _table(rows: list[Row]) -> MaterialTable:
    """Rows of 6 fields (no emission) or 7 → a table (float32: per-pixel work runs in float32)."""
    rows = [row if len(row) == 7 else (*row, np.zeros(3)) for row in rows]
    colour, kind, freq, contrast, direction, phase, emission = zip(*rows)
    f32 = np.float32
    return MaterialTable(
        np.array(colour, f32),
        np.array(kind, np.int64),
        np.array(freq, f32),
        np.array(contrast, f32),
        np.array(direction, f32),
        np.array(phase, f32),
        np.array(emission, f32),
    )


def room_materials(rng: Rng) -> MaterialTable:
    """Five materials: floor (wood grain or tiles), walls, ceiling, door, picture."""
    wood = rng.random() < 0.6
    floor = (
        _hsv(rng.uniform(0.05, 0.12), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.7))
        if wood
        else _hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.3, 0.9))
    )
    axis = np.array([1.0, 0.0, 0.0]) if rng.random() < 0.5 else np.array([0.0, 1.0, 0.0])
    rows = [
        (floor, GRAIN if wood else CHECKER, rng.uniform(4, 12) if wood else rng.uniform(1.5, 4),
         rng.uniform(0.15, 0.4), axis, rng.uniform(0, 100)),
        (_hsv(rng.random(), rng.uniform(0.0, 0.3), rng.uniform(0.55, 0.95)), NOISE, rng.uniform(2, 8),
         rng.uniform(0.02, 0.1), axis, rng.uniform(0, 100)),
        (_hsv(rng.random(), rng.uniform(0.0, 0.08), rng.uniform(0.8, 0.97)), NONE, 1.0, 0.0, axis, 0.0),
        (_hsv(rng.uniform(0.05, 0.12), rng.uniform(0.2, 0.7), rng.uniform(0.2, 0.9)), GRAIN,
         rng.uniform(6, 15), rng.uniform(0.1, 0.3), np.array([1.0, 0.0, 0.0]), rng.uniform(0, 100)),
        (_hsv(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.95)), int(rng.integers(1, 5)),
         rng.uniform(5, 25), rng.uniform(0.3, 0.6), _unit(rng), rng.uniform(0, 100)),
    ]  # fmt: skip
    return _table(rows)


# --------------------------------------------------------------------------- materials model


@dataclass(frozen=True)
class Family:
    """A material family: the distribution one draw of it comes from.

    hue, saturation, value: ranges of the HSV colour (hue in turns; a range may pass 1 and wraps);
    texture: texture kind; freq: range of texture frequency (cycles per metre); contrast: range of
    texture contrast; reflect: albedo = colour × reflect (a screen's dark glass); glow: range of the
    emitted radiance, as a multiple of the colour (0 = does not glow).
    """

    hue: tuple[float, float]
    saturation: tuple[float, float]
    value: tuple[float, float]
    texture: int = NONE
    freq: tuple[float, float] = (1.0, 2.0)
    contrast: tuple[float, float] = (0.0, 0.0)
    reflect: float = 1.0
    glow: tuple[float, float] = (0.0, 0.0)

    @property
    def glows(self) -> bool:
        """Emits light (lit screens, lamp shades)."""
        return self.glow[1] > 0

    @property
    def dyed(self) -> bool:
        """Any hue (plastics, fabrics, paints): a class's own draw takes its tint (:data:`CLASS_TINTS`)."""
        return self.hue == ANY

    def draw(self, rng: Rng, tint: float | None = None) -> Row:
        """One material: an instance's colour, texture scale, direction and phase. A dyed family's hue
        is drawn within ``TINT_SPREAD`` of ``tint`` when one is given, else from the whole wheel."""
        hue = (
            rng.uniform(tint - TINT_SPREAD, tint + TINT_SPREAD)
            if tint is not None and self.dyed
            else rng.uniform(*self.hue)
        )
        colour = _hsv(hue, rng.uniform(*self.saturation), rng.uniform(*self.value))
        freq, contrast = rng.uniform(*self.freq), rng.uniform(*self.contrast)
        direction, phase = _unit(rng), rng.uniform(0, 100)
        emission = colour * rng.uniform(*self.glow) if self.glows else np.zeros(3)
        return colour * self.reflect, self.texture, freq, contrast, direction, phase, emission


FAMILIES: dict[str, Family] = {
    # Woods, grain a few centimetres apart: pale (pine, birch, oak) and dark (walnut, stained).
    "light wood": Family((0.07, 0.11), (0.3, 0.55), (0.55, 0.8), GRAIN, (6, 20), (0.08, 0.2)),
    "dark wood": Family((0.03, 0.08), (0.4, 0.75), (0.15, 0.4), GRAIN, (6, 20), (0.08, 0.22)),
    # Laminates and painted boards: whites, greys and beiges with a fine speckle.
    "laminate": Family(ANY, (0.0, 0.15), (0.6, 0.95), NOISE, (40, 90), (0.05, 0.15)),
    "painted wood": Family(ANY, (0.35, 0.7), (0.45, 0.9), GRAIN, (6, 20), (0.05, 0.12)),
    # Upholstery: muted colours, a coarse knit; bedding: pale linen; patterned: checks.
    "upholstery": Family(ANY, (0.35, 0.75), (0.25, 0.7), WEAVE, (12, 30), (0.04, 0.12)),
    "linen": Family(ANY, (0.2, 0.5), (0.65, 0.95), WEAVE, (12, 30), (0.04, 0.12)),
    "patterned fabric": Family(ANY, (0.3, 0.8), (0.3, 0.8), CHECKER, (3, 10), (0.12, 0.3)),
    "leather": Family((0.02, 0.09), (0.3, 0.8), (0.08, 0.4), NOISE, (8, 20), (0.05, 0.15)),
    "plastic": Family(ANY, (0.5, 0.9), (0.45, 0.9)),
    "dark plastic": Family(ANY, (0.0, 0.15), (0.03, 0.12)),
    # Brushed or painted metal: cool greys with faint fine stripes.
    "metal": Family((0.55, 0.65), (0.0, 0.1), (0.35, 0.8), STRIPES, (40, 80), (0.03, 0.1)),
    "ceramic": Family(ANY, (0.0, 0.06), (0.82, 0.97)),
    "cardboard": Family((0.07, 0.11), (0.35, 0.6), (0.4, 0.7), NOISE, (10, 30), (0.05, 0.15)),
    "book spines": Family(ANY, (0.3, 0.8), (0.2, 0.8), STRIPES, (15, 40), (0.4, 0.8)),
    # Glowing: a lit screen (content as large blobs behind dark glass) and a lit lamp shade.
    "screen": Family(ANY, (0.1, 0.5), (0.6, 1.0), NOISE, (3, 8), (0.3, 0.6), reflect=0.1, glow=(0.8, 1.5)),
    "lamp shade": Family(
        (0.07, 0.14), (0.05, 0.4), (0.75, 0.97), WEAVE, (12, 30), (0.03, 0.1), glow=(0.3, 0.9)
    ),
}  # fmt: skip
SAME = "same"  # a part made of the same material as the object's main part

# Per class, per part (main, secondary, accent: the `material` index its builder gives a primitive),
# the families that part draws from with their weights; ``same`` repeats the main part's material
# (furniture is often one material throughout). Parts a builder never uses still draw (every
# object has three materials).
CLASS_FAMILIES: dict[str, tuple[dict[str, float], dict[str, float], dict[str, float]]] = {
    "bed": (  # bedding, frame and headboard, pillows and blanket
        {"linen": 0.85, "patterned fabric": 0.15},
        {SAME: 0.7, "light wood": 0.3},
        {SAME: 0.8, "linen": 0.2},
    ),
    "bookshelf": (  # carcass, back panel, books
        {"painted wood": 0.8, "light wood": 0.2},
        {SAME: 0.9, "laminate": 0.1},
        {"book spines": 1.0},
    ),
    "box": ({"cardboard": 0.8, "plastic": 0.2}, {SAME: 0.9, "plastic": 0.1}, {SAME: 1.0}),
    "chair": (  # seat and back, legs and frame
        {"plastic": 0.8, "upholstery": 0.1, "dark wood": 0.1},
        {SAME: 0.8, "metal": 0.2},
        {SAME: 1.0},
    ),
    "desk": (  # top, legs and pedestal, handles
        {"painted wood": 0.8, "laminate": 0.1, "dark wood": 0.1},
        {SAME: 0.9, "metal": 0.1},
        {"metal": 1.0},
    ),
    "garbage bin": ({"plastic": 0.8, "metal": 0.2}, {SAME: 0.9, "dark plastic": 0.1}, {SAME: 1.0}),
    "lamp": (  # shade, base and pole
        {"lamp shade": 0.85, "linen": 0.15},
        {"metal": 0.6, "ceramic": 0.2, "dark wood": 0.2},
        {"metal": 1.0},
    ),
    "monitor": (  # (unused), housing, screen
        {"dark plastic": 1.0},
        {"dark plastic": 0.85, "metal": 0.15},
        {"screen": 0.8, "dark plastic": 0.2},
    ),
    "night stand": (  # body, legs and drawer fronts, knob
        {"painted wood": 0.8, "light wood": 0.2},
        {SAME: 0.9, "light wood": 0.1},
        {"metal": 0.6, "dark wood": 0.4},
    ),
    "sofa": (  # body, (unused), cushions
        {"upholstery": 0.85, "leather": 0.15},
        {"dark wood": 0.5, "metal": 0.5},
        {SAME: 0.9, "patterned fabric": 0.1},
    ),
    "table": (  # top, legs and pedestal
        {"painted wood": 0.6, "dark wood": 0.25, "light wood": 0.15},
        {SAME: 0.8, "metal": 0.2},
        {"metal": 1.0},
    ),
    "toilet": ({"ceramic": 1.0}, {SAME: 0.7, "plastic": 0.3}, {"metal": 1.0}),
}  # fmt: skip

# Dyed materials (plastics, fabrics, paints, glazes) of a class lean to one part of the hue wheel:
# its tint ± TINT_SPREAD, evenly spaced over the classes, so neighbouring classes share hues.
TINT_SPREAD = 0.06
CLASS_TINTS: dict[str, float] = {name: k / len(CLASS_FAMILIES) for k, name in enumerate(CLASS_FAMILIES)}

# What a part draws from with probability `randomness`: every family that does not glow, uniformly
# (a glowing sofa would be a class-independent oddity no real room shows).
RANDOM_POOL: tuple[str, ...] = tuple(name for name, f in FAMILIES.items() if not f.glows)


def object_materials(rng: Rng, class_name: str, randomness: float) -> MaterialTable:
    """Three materials (main, secondary, accent) of one instance of ``class_name`` (materials model)."""
    rows: list[Row] = []
    for weights in CLASS_FAMILIES[class_name]:
        if rng.random() < randomness:  # appearance free of the class, part by part
            rows.append(FAMILIES[RANDOM_POOL[int(rng.integers(len(RANDOM_POOL)))]].draw(rng))
            continue
        names, p = list(weights), np.array(list(weights.values()))
        family = names[int(rng.choice(len(names), p=p / p.sum()))]
        rows.append(rows[0] if family == SAME else FAMILIES[family].draw(rng, CLASS_TINTS[class_name]))
    return _table(rows)


# --------------------------------------------------------------------------- hue-blend model (legacy)


def _canonical_colour(label: int, num_classes: int, material: int) -> np.ndarray:
    """The class's fixed colour for ``randomness`` = 0: hues spread evenly over the classes."""
    hue = label / num_classes
    s, v = ((0.55, 0.7), (0.45, 0.35), (0.25, 0.9))[material]
    return _hsv(hue + 0.03 * material, s, v)


def hue_blend_materials(rng: Rng, label: int, num_classes: int, randomness: float) -> MaterialTable:
    """Three materials (main, secondary, accent) of one object instance of class ``label`` (hue-blend
    model: draws exactly what stores made before the materials model hold)."""
    rows = []
    for material in range(3):
        random_colour = _hsv(rng.random(), rng.uniform(0.0, 0.85), rng.uniform(0.08, 0.95))
        colour = (1.0 - randomness) * _canonical_colour(
            label, num_classes, material
        ) + randomness * random_colour
        kind = int(rng.integers(0, 5))
        freq = rng.uniform(
            *{NONE: (1, 2), STRIPES: (2, 12), CHECKER: (3, 10), NOISE: (4, 20), GRAIN: (6, 20)}[kind]
        )
        contrast = randomness * rng.uniform(0.1, 0.45) if kind != NONE else 0.0
        rows.append((colour, kind, freq, contrast, _unit(rng), rng.uniform(0, 100)))
    return _table(rows)


# --------------------------------------------------------------------------- textures and shading


# A fixed periodic lattice of random values; value noise is its trilinear interpolation
# (scipy.ndimage.map_coordinates, wrapping). Materials decorrelate by shifting their coordinates.
_LATTICE = np.random.default_rng(20170101).random((32, 32, 32))


def _value_noise(p: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Value noise in [0, 1] at float [P, 3] lattice coordinates, shifted per point by float [P]."""
    coords = (p + shift[:, None] * np.array([1.0, 1.618, 2.414], dtype=np.float32)).T  # [3, P]
    return ndimage.map_coordinates(_LATTICE, coords, order=1, mode="grid-wrap")


def _pattern(table: MaterialTable, material: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Texture value float32 [P] in [0, 1] (0.5 = no modulation) at object-frame points [P, 3]."""
    kind = table.kind[material]
    pattern = np.full(len(material), 0.5, dtype=np.float32)
    for k in (STRIPES, CHECKER, NOISE, GRAIN, WEAVE):
        sel = np.flatnonzero(kind == k)
        if sel.size == 0:
            continue
        m = material[sel]
        p = local[sel] * table.freq[m][:, None]  # [S, 3] in texture cycles
        if k == WEAVE:  # threads along the three object axes: a fine grid on every face
            pattern[sel] = 0.5 + np.sin(2.0 * np.pi * p + table.phase[m][:, None]).sum(axis=1) / 6.0
            continue
        along = np.einsum("ij,ij->i", p, np.take(table.direction, m, axis=0))  # [S] across the stripes
        if k == STRIPES:
            pattern[sel] = 0.5 + 0.5 * np.sin(2.0 * np.pi * along + table.phase[m])
        elif k == CHECKER:
            pattern[sel] = np.floor(p + table.phase[m][:, None]).sum(axis=1) % 2
        elif k == NOISE:
            pattern[sel] = _value_noise(p, table.phase[m])
        else:  # wood grain: stripes bent by slow sinusoids of the other coordinates
            warp = np.sin(0.41 * p[:, 0] + 0.73 * p[:, 1] + table.phase[m]) + 0.5 * np.sin(
                0.29 * p[:, 2] - p[:, 1]
            )
            pattern[sel] = 0.5 + 0.5 * np.sin(2.0 * np.pi * along + 2.0 * warp)
    return pattern


def surface(
    table: MaterialTable, material: np.ndarray, local: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """(textured albedo float32 [P, 3] in [0, 1], textured emitted radiance float32 [P, 3] or None when
    no pixel glows) for pixels with material ids int [P] and object-frame hit points float [P, 3]."""
    factor = 1.0 + table.contrast[material] * (2.0 * _pattern(table, material, local) - 1.0)
    colour = np.clip(np.take(table.colour, material, axis=0) * factor[:, None], 0.0, 1.0)  # [P, 3]
    glowing = np.flatnonzero(table.emission.any(axis=1))
    if glowing.size == 0 or not np.isin(material, glowing).any():
        return colour, None
    return colour, np.take(table.emission, material, axis=0) * factor[:, None]


def shade(
    colour: np.ndarray, cos: np.ndarray, dist: np.ndarray, lit: np.ndarray, ambient: float
) -> np.ndarray:
    """Linear radiance float32 [P, 3]: Lambertian point light with 1/(1 + (d / 3 m)²) falloff plus ambient.

    colour [P, 3] albedo; cos [P] cosine between the normal and the direction to the light (≤ 0 =
    facing away); dist [P] metres to the light; lit bool [P] (False in a cast shadow).
    """
    direct = np.clip(cos, 0.0, 1.0) * lit / (1.0 + (dist / 3.0) ** 2)
    return colour * (ambient + (1.0 - ambient) * 1.6 * direct).astype(np.float32)[:, None]


def to_uint8(
    radiance: np.ndarray, rng: Rng, noise_std: float = 2.0, light_sources: np.ndarray | None = None
) -> np.ndarray:
    """Auto-exposure (98th percentile → 0.95), sRGB-like gamma 1/2.2, Gaussian sensor noise
    (``noise_std`` in 8-bit units, one draw per pixel shared by the channels), rounded and
    saturated to uint8. float [H, W, 3] → uint8 [H, W, 3].

    ``light_sources``: bool [H, W], pixels that glow; the exposure is set on the others (a lit screen
    does not darken the room, it saturates)."""
    flat = radiance.reshape(-1)  # the percentile of a regular subsample (every 7th value) is plenty
    if light_sources is not None and light_sources.any():
        flat = radiance[~light_sources].reshape(-1)
    flat = flat[::7]
    k = int(0.98 * (flat.size - 1))
    white = max(float(np.partition(flat, k)[k]), 1e-6)
    image = np.clip(radiance.astype(np.float32) * np.float32(0.95 / white), 0.0, 1.0) ** np.float32(1.0 / 2.2)
    image *= np.float32(255.0)
    image += np.float32(noise_std) * rng.standard_normal(size=radiance.shape[:2], dtype=np.float32)[..., None]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
