"""Materials, procedural textures and shading for SynthRooms.

Colour is meant to be a weak cue and shape a strong one, so the detector has to learn geometry
(the point of comparing RGB with depth). ``randomness`` in [0, 1] sets how far appearance is
decoupled from the class:

- 0: every instance of a class has the class's canonical colours and no texture;
- 1: colours are drawn uniformly in HSV and textures (stripes, checker, value noise, wood grain)
  with random frequency, direction and contrast, independent of the class;
- in between: colours are blended linearly between the canonical and the random colour, and the
  texture contrast is scaled by ``randomness``.

Textures are evaluated in each object's own frame, so they stick to the object. Shading is
Lambertian under one point light near the ceiling plus ambient light, with cast shadows
(computed by the renderer).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["MaterialTable", "room_materials", "object_materials", "albedo", "shade", "to_uint8"]

Rng = np.random.Generator
NONE, STRIPES, CHECKER, NOISE, GRAIN = range(5)


@dataclass
class MaterialTable:
    """Per-material parameters, one row per material (M rows).

    colour: float32 [M, 3] linear RGB albedo in [0, 1]; kind: int64 [M] texture kind;
    freq: float32 [M] cycles per metre; contrast: float32 [M] in [0, 1); direction: float32 [M, 3]
    unit vector the stripes/grain run across; phase: float32 [M] offset (also shifts the noise).
    """

    colour: np.ndarray
    kind: np.ndarray
    freq: np.ndarray
    contrast: np.ndarray
    direction: np.ndarray
    phase: np.ndarray

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


def _table(rows: list[tuple[np.ndarray, int, float, float, np.ndarray, float]]) -> MaterialTable:
    colour, kind, freq, contrast, direction, phase = zip(*rows)
    f32 = np.float32  # per-pixel work runs in float32
    return MaterialTable(
        np.array(colour, f32),
        np.array(kind, np.int64),
        np.array(freq, f32),
        np.array(contrast, f32),
        np.array(direction, f32),
        np.array(phase, f32),
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


def _canonical_colour(label: int, num_classes: int, material: int) -> np.ndarray:
    """The class's fixed colour for ``randomness`` = 0: hues spread evenly over the classes."""
    hue = label / num_classes
    s, v = ((0.55, 0.7), (0.45, 0.35), (0.25, 0.9))[material]
    return _hsv(hue + 0.03 * material, s, v)


def object_materials(rng: Rng, label: int, num_classes: int, randomness: float) -> MaterialTable:
    """Three materials (main, secondary, accent) of one object instance of class ``label``."""
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


# A fixed periodic lattice of random values; value noise is its trilinear interpolation
# (scipy.ndimage.map_coordinates, wrapping). Materials decorrelate by shifting their coordinates.
_LATTICE = np.random.default_rng(20170101).random((32, 32, 32))


def _value_noise(p: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Value noise in [0, 1] at float [P, 3] lattice coordinates, shifted per point by float [P]."""
    coords = (p + shift[:, None] * np.array([1.0, 1.618, 2.414], dtype=np.float32)).T  # [3, P]
    return ndimage.map_coordinates(_LATTICE, coords, order=1, mode="grid-wrap")


def albedo(table: MaterialTable, material: np.ndarray, local: np.ndarray) -> np.ndarray:
    """Textured albedo float32 [P, 3] in [0, 1] for pixels with material ids int [P] and
    object-frame hit points float [P, 3] (metres)."""
    kind = table.kind[material]
    pattern = np.full(len(material), 0.5, dtype=np.float32)  # 0.5 = no modulation
    for k in (STRIPES, CHECKER, NOISE, GRAIN):
        sel = np.flatnonzero(kind == k)
        if sel.size == 0:
            continue
        m = material[sel]
        p = local[sel] * table.freq[m][:, None]  # [S, 3] in texture cycles
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
    factor = 1.0 + table.contrast[material] * (2.0 * pattern - 1.0)
    colour = np.take(table.colour, material, axis=0)  # [P, 3]
    return np.clip(colour * factor[:, None], 0.0, 1.0)


def shade(
    colour: np.ndarray, cos: np.ndarray, dist: np.ndarray, lit: np.ndarray, ambient: float
) -> np.ndarray:
    """Linear radiance float32 [P, 3]: Lambertian point light with 1/(1 + (d / 3 m)²) falloff plus ambient.

    colour [P, 3] albedo; cos [P] cosine between the normal and the direction to the light (≤ 0 =
    facing away); dist [P] metres to the light; lit bool [P] (False in a cast shadow).
    """
    direct = np.clip(cos, 0.0, 1.0) * lit / (1.0 + (dist / 3.0) ** 2)
    return colour * (ambient + (1.0 - ambient) * 1.6 * direct).astype(np.float32)[:, None]


def to_uint8(radiance: np.ndarray, rng: Rng, noise_std: float = 2.0) -> np.ndarray:
    """Auto-exposure (98th percentile → 0.95), sRGB-like gamma 1/2.2, Gaussian sensor noise
    (``noise_std`` in 8-bit units, one draw per pixel shared by the channels), rounded and
    saturated to uint8. float [H, W, 3] → uint8 [H, W, 3]."""
    flat = radiance.reshape(-1)[::7]  # [H·W·3 / 7]: the percentile of a regular subsample is plenty
    k = int(0.98 * (flat.size - 1))
    white = max(float(np.partition(flat, k)[k]), 1e-6)
    image = np.clip(radiance.astype(np.float32) * np.float32(0.95 / white), 0.0, 1.0) ** np.float32(1.0 / 2.2)
    image *= np.float32(255.0)
    image += np.float32(noise_std) * rng.standard_normal(size=radiance.shape[:2], dtype=np.float32)[..., None]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
