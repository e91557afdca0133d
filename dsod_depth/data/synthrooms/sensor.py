"""A Kinect-v1-like structured-light depth sensor applied to exact z-depth.

The Kinect measures disparity between a projected IR dot pattern and a reference image, so its
errors live in disparity space (Khoshelham & Elberink 2012, "Accuracy and resolution of Kinect
depth data"): depth z = b·f / d with baseline b ≈ 7.5 cm and IR focal length f ≈ 580 px at 640 px
width. The model here:

- noise: Gaussian in disparity (σ_d px), i.e. a depth error σ_z = z² σ_d / (b f) that grows with z²;
- quantisation: disparity rounded to 1/8 px (the sensor's sub-pixel step), so depth comes in
  steps that also grow with z², then rounded to whole millimetres like the sensor's output;
- holes (0 = missing), the causes seen in NYU Depth v2 raw frames:
  projector shadows beside foreground edges (the IR pattern cannot reach background the foreground
  hides from the projector, which sits beside the camera), drop-outs at depth discontinuities,
  dark surfaces (weak IR return), grazing incidence, too near (< 0.5 m) and far range, sparse speckle.

Noise, quantisation and holes depend on physical depth, not on the output resolution; only the
shadow width in pixels scales with the image width.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["KinectModel", "simulate_raw_depth", "fill_nearest"]


@dataclass(frozen=True)
class KinectModel:
    """Sensor parameters (defaults: Kinect v1)."""

    baseline: float = 0.075  # metres between IR projector and IR camera
    focal_640: float = 580.0  # IR focal length in pixels at 640 px width
    disparity_step: float = 1.0 / 8.0  # disparity quantisation in pixels at 640 px width
    disparity_noise: float = 0.07  # disparity noise std in pixels at 640 px width (≈ 1.5 mm at 1 m)
    min_range: float = 0.5  # metres; nearer is a hole
    far_start: float = 5.0  # metres where far-range holes begin
    far_end: float = 10.0  # metres beyond which everything is a hole (NYU toolbox maximum)
    edge_threshold: float = 0.04  # a jump to a 4-neighbour above this fraction of z is a discontinuity
    edge_dropout: float = 0.6  # probability that a discontinuity pixel is a hole
    dark_level: float = 0.1  # albedo luminance below which the IR return weakens
    grazing_cos: float = 0.12  # |cos(incidence)| below which returns weaken
    speckle: float = 0.0015  # probability of an isolated drop-out anywhere
    projector_shadows: bool = True


def simulate_raw_depth(
    z: np.ndarray,
    luminance: np.ndarray,
    cos_incidence: np.ndarray,
    rng: np.random.Generator,
    model: KinectModel = KinectModel(),
) -> np.ndarray:
    """Sensor depth from exact depth.

    Args:
        z: float [H, W] exact z-depth in metres (> 0 everywhere: a closed room).
        luminance: float [H, W] albedo luminance in [0, 1] (IR reflectance proxy).
        cos_incidence: float [H, W] cosine between surface normal and viewing ray.
        rng: the frame's generator.
        model: sensor parameters.

    Returns:
        float32 [H, W] metres in whole millimetres, 0 = hole.
    """
    height, width = z.shape
    bf = model.baseline * model.focal_640  # metre·pixels at the sensor's own 640 px resolution
    z = z.astype(np.float32, copy=False)
    disparity = bf / z + np.float32(model.disparity_noise) * rng.standard_normal(z.shape, dtype=np.float32)
    steps = np.maximum(np.rint(disparity / np.float32(model.disparity_step)), 1.0)
    # Whole millimetres like the sensor's output; float64 so that the rounding is exact.
    measured_mm = np.rint(bf * 1000.0 / (steps.astype(np.float64) * model.disparity_step))

    p = np.clip((z - model.far_start) / (model.far_end - model.far_start), 0.0, 1.0)
    p = np.maximum(p, 0.9 * np.clip((model.dark_level - luminance) / model.dark_level, 0.0, 1.0))
    p = np.maximum(p, np.clip((model.grazing_cos - np.abs(cos_incidence)) / model.grazing_cos, 0.0, 1.0))
    p = np.where(depth_jump(z) > model.edge_threshold * z, np.maximum(p, model.edge_dropout), p)
    p = np.maximum(p, model.speckle)
    holes = rng.random(z.shape, dtype=np.float32) < p
    holes |= z < model.min_range
    if model.projector_shadows:
        holes |= projector_shadow(bf * width / 640.0 / z)
    # mm → metres exactly as the store decodes it, so a store round trip is bit-exact.
    return np.where(holes, 0.0, measured_mm).astype(np.float32) / np.float32(1000.0)


def depth_jump(z: np.ndarray) -> np.ndarray:
    """float [H, W]: largest absolute depth difference to the 4-connected neighbours (metres)."""
    jump = np.zeros_like(z)
    dx = np.abs(np.diff(z, axis=1))  # [H, W-1] between horizontal neighbours
    dy = np.abs(np.diff(z, axis=0))  # [H-1, W] between vertical neighbours
    np.maximum(jump[:, 1:], dx, out=jump[:, 1:])
    np.maximum(jump[:, :-1], dx, out=jump[:, :-1])
    np.maximum(jump[1:], dy, out=jump[1:])
    np.maximum(jump[:-1], dy, out=jump[:-1])
    return jump


def projector_shadow(disparity: np.ndarray, max_shift: int | None = None) -> np.ndarray:
    """bool [H, W]: pixels the IR projector cannot light.

    ``disparity`` float [H, W] is b·f/z in output pixels. With the projector to the left of the
    camera, a background pixel u is shadowed when a nearer surface at u - k (same row) is nearer
    by at least k pixels of disparity: the projector ray to u passes through that surface.
    Hand-written shift loop: k runs only up to the largest disparity difference in the image.
    """
    span = float(disparity.max() - disparity.min())
    width = disparity.shape[1]
    limit = int(np.ceil(span)) if max_shift is None else max_shift
    shadow = np.zeros(disparity.shape, dtype=bool)
    for k in range(1, min(limit, width - 1) + 1):
        shadow[:, k:] |= disparity[:, :-k] - disparity[:, k:] >= k
    return shadow


def fill_nearest(raw: np.ndarray) -> np.ndarray:
    """float32 [H, W]: every hole (0) takes the value of its nearest measured pixel (Euclidean).

    The NYU toolbox in-paints with colourisation; nearest filling keeps every filled value a
    real measurement of a nearby surface and costs one distance transform (scipy.ndimage).
    Returns zeros when nothing was measured.
    """
    holes = raw == 0
    if not holes.any():
        return raw.copy()
    if holes.all():
        return np.zeros_like(raw)
    rows, cols = ndimage.distance_transform_edt(holes, return_distances=False, return_indices=True)
    return raw[rows, cols]
