"""Joint augmentation of every channel group and the boxes (SSD recipe, REFERENCE §1).

A :class:`TensorSample` holds all channel groups of one frame (``rgb`` and depth-like groups such
as ``depth``, ``hha``, ``normals``), its boxes and its camera. Geometric parameters are sampled
once per sample and applied to every group and to the boxes with torchvision.transforms.v2
kernels on ``tv_tensors``: RGB is a ``tv_tensors.Image`` (bilinear resampling, expanded with the
dataset mean), every depth-like group a ``tv_tensors.Mask`` (nearest resampling, filled with 0 =
invalid), boxes ``tv_tensors.BoundingBoxes``. So depth values are only ever moved, never mixed
or rescaled. Photometric distortion touches RGB only. Intrinsics follow every crop, resize and flip.

Training recipe (Caffe SSD ``DistortImage`` / ``ExpandImage`` / ``batch_sampler``, used by DSOD):

1. expand, p = 0.5: place the image at a random spot of a canvas up to 4× its size;
2. crop: one candidate per sampler — the whole image, then, with up to 50 trials each, a window
   of linear scale s ~ U(0.3, 1) and aspect a ~ U(max(0.5, s²), min(2, 1/s²)) (so it fits) whose
   IoU with some ground-truth box is ≥ 0.1, 0.3, 0.5, 0.7, 0.9, or unconstrained — picked at
   random; boxes whose centre lies outside the window are dropped. Unlike Caffe, a window must
   keep at least one box (as in ssd.pytorch and torchvision), so no training sample loses all
   its objects;
3. resize to the network input (bilinear without antialiasing, like Caffe's cv::resize);
4. photometric, each p = 0.5: brightness +U(-32, 32); then either contrast ×U(0.5, 1.5) first
   or last around saturation ×U(0.5, 1.5) (HSV S) and hue +U(-18°, 18°) — Caffe distorts
   first; colour ops are per pixel and commute with the geometry, so they run on the smaller
   network-sized image here;
5. horizontal flip, p = 0.5;
6. drop boxes narrower or lower than ``min_box_size`` pixels (never degenerate boxes).

Evaluation: resize only. Randomness comes only from the ``torch.Generator`` passed in, so a
sample's augmentation is reproducible from its seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

from dsod_depth.geometry.camera import Intrinsics

__all__ = ["TensorSample", "SSDAugment", "Resize", "photometric_distort", "PHOTOMETRIC_GROUPS"]

PHOTOMETRIC_GROUPS = ("rgb",)  # the only group colour distortion and mean filling apply to
_MIN_IOUS = (0.1, 0.3, 0.5, 0.7, 0.9, None)  # None = the unconstrained sampler (max IoU 1)
_BILINEAR, _NEAREST = InterpolationMode.BILINEAR, InterpolationMode.NEAREST_EXACT


@dataclass
class TensorSample:
    """One frame as tensors.

    images: group → tensor [C, H, W]; ``rgb`` uint8, depth-like groups any dtype (e.g. float32
        metres, uint8 HHA). All groups share H × W.
    boxes: float32 [N, 4] x1, y1, x2, y2 in pixels (continuous: pixel i spans [i, i + 1]).
    labels: int64 [N]; difficult: bool [N]; intrinsics: camera of the current pixel grid.
    """

    images: dict[str, torch.Tensor]
    boxes: torch.Tensor
    labels: torch.Tensor
    difficult: torch.Tensor
    intrinsics: Intrinsics
    image_id: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        first = next(iter(self.images.values()))
        return int(first.shape[-2]), int(first.shape[-1])


def _wrap(sample: TensorSample) -> tuple[dict[str, torch.Tensor], tv_tensors.BoundingBoxes]:
    """Tag each group with its tv_tensor type so the v2 kernels pick the right resampling."""
    images = {
        name: tv_tensors.Image(x) if name in PHOTOMETRIC_GROUPS else tv_tensors.Mask(x)
        for name, x in sample.images.items()
    }
    boxes = tv_tensors.BoundingBoxes(sample.boxes, format="XYXY", canvas_size=sample.size)
    return images, boxes


def _unwrap(
    sample: TensorSample, images, boxes, keep: torch.Tensor | None, intrinsics: Intrinsics
) -> TensorSample:
    labels, difficult = sample.labels, sample.difficult
    if keep is not None:
        boxes, labels, difficult = boxes[keep], labels[keep], difficult[keep]
    return replace(
        sample,
        images={k: v.as_subclass(torch.Tensor) for k, v in images.items()},
        boxes=boxes.as_subclass(torch.Tensor).to(torch.float32),
        labels=labels,
        difficult=difficult,
        intrinsics=intrinsics,
    )


def _uniform(generator: torch.Generator, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def photometric_distort(rgb: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Caffe SSD ``DistortImage`` on uint8 [3, H, W] → uint8 [3, H, W] (each op p = 0.5).

    Brightness adds U(-32, 32) and contrast multiplies by U(0.5, 1.5) as in Caffe (``convertTo``);
    saturation scales HSV saturation, hue rotates by U(-18, 18) degrees (:func:`rotate_hue`). Values
    saturate to [0, 255] after every step, like the 8-bit original.
    """
    x = rgb.to(torch.float32)
    if _uniform(generator) < 0.5:
        x = (x + _uniform(generator, -32.0, 32.0)).clamp_(0.0, 255.0)
    contrast_first = _uniform(generator) < 0.5
    if contrast_first and _uniform(generator) < 0.5:
        x = (x * _uniform(generator, 0.5, 1.5)).clamp_(0.0, 255.0)
    if _uniform(generator) < 0.5:
        x = _scale_saturation(x, _uniform(generator, 0.5, 1.5))
    if _uniform(generator) < 0.5:
        x = rotate_hue(x, _uniform(generator, -18.0, 18.0))
    if not contrast_first and _uniform(generator) < 0.5:
        x = (x * _uniform(generator, 0.5, 1.5)).clamp_(0.0, 255.0)
    return x.round_().clamp_(0.0, 255.0).to(torch.uint8)


def rotate_hue(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Add ``degrees`` to the HSV hue of float [3, H, W] RGB, keeping saturation and value.

    Same result as ``F.adjust_hue`` (tested against it) in closed form: with V = max, C = max - min
    and hue h in sextants, channel n of the rotated colour is V - C·clamp(min(k, 4 - k), 0, 1),
    k = (n + h') mod 6 for n = 5, 3, 1 (r, g, b). Hand-written because the full RGB→HSV→RGB
    round trip of torchvision makes several times more temporaries on this per-sample path.
    Branch-free (masks as 0/1 factors, mod 6 by floor): on the CPU ``torch.where`` and ``%`` cost
    several times more than arithmetic.
    """
    r, g, b = x[0], x[1], x[2]
    v = x.amax(dim=0)
    c = v - x.amin(dim=0)
    # Which channel is the maximum decides the formula (r wins ties, then g).
    is_r = (v == r).to(x.dtype)
    is_g = (v == g).to(x.dtype).mul_(1.0 - is_r)
    is_b = 1.0 - is_r - is_g
    # Hue in sextants, in [-1, 5) (grey pixels, C = 0, get 0), then rotated and wrapped to [0, 6).
    h = (is_r * (g - b)).add_(is_g * (b - r)).add_(is_b * (r - g)).div_(c.clamp_min(1e-6))
    h.add_(is_g * 2.0 + is_b * 4.0)
    _mod6_(h.add_((degrees / 60.0) % 6.0))
    out = torch.empty_like(x)
    for channel, n in enumerate((5.0, 3.0, 1.0)):
        k = _mod6_(h + n)
        weight = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
        torch.sub(v, weight.mul_(c), out=out[channel])
    return out


def _mod6_(t: torch.Tensor) -> torch.Tensor:
    """``t mod 6`` in place (t - 6·floor(t / 6))."""
    return t.sub_(torch.floor(t * (1.0 / 6.0)).mul_(6.0))


def _scale_saturation(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Multiply HSV saturation by ``factor`` keeping hue and value: c' = V - k (V - c).

    In HSV every channel is V (1 - S f_c(H)), so V - c is proportional to S; saturation is capped
    at 1 (the smallest channel reaches 0), hence k = min(factor, V / (V - min)).
    """
    v = x.amax(dim=0, keepdim=True)  # [1, H, W]
    spread = v - x.amin(dim=0, keepdim=True)
    # Grey pixels (spread 0) have V - c = 0 and keep their value whatever k is: no branch needed.
    k = torch.div(v, spread.clamp_min_(1e-6)).clamp_(max=factor)
    return v.sub((v - x).mul_(k)).clamp_(0.0, 255.0)


class Resize:
    """Evaluation transform: resize every group to ``size`` = (height, width); boxes and
    intrinsics follow (RGB bilinear, depth-like groups nearest-exact)."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, sample: TensorSample, generator: torch.Generator | None = None) -> TensorSample:
        images, boxes = _wrap(sample)
        h, w = sample.size
        # NEAREST_EXACT samples the source pixel whose centre is nearest to the output pixel centre,
        # the convention boxes and intrinsics follow (legacy NEAREST is off by half a pixel).
        # Bilinear without antialiasing, like Caffe SSD's cv::resize (INTER_LINEAR).
        images = {
            k: F.resize(
                v,
                list(self.size),
                interpolation=_BILINEAR if k in PHOTOMETRIC_GROUPS else _NEAREST,
                antialias=False,
            )
            for k, v in images.items()
        }
        boxes = F.resize(boxes, list(self.size))
        k = sample.intrinsics.resize(self.size[1] / w, self.size[0] / h)
        out = _unwrap(sample, images, boxes, None, k)
        # Scaling by out/in can overshoot the border by an ulp: clamp to the canvas exactly.
        out.boxes[:, 0::2].clamp_(0.0, float(self.size[1]))
        out.boxes[:, 1::2].clamp_(0.0, float(self.size[0]))
        return out


class SSDAugment:
    """The SSD/DSOD training augmentation (module docstring), output ``size`` = (height, width).

    Args:
        size: network input (height, width).
        rgb_mean: fill for RGB on expansion (3 values in 0..255, the dataset mean); depth-like
            groups are always filled with 0 (invalid).
        expand_prob, max_expand: probability and largest canvas-to-image ratio of the expansion.
        flip_prob: horizontal flip probability.
        photometric: apply the colour distortion to RGB.
        min_box_size: boxes smaller than this many output pixels in width or height are dropped.
    """

    def __init__(
        self,
        size: tuple[int, int],
        rgb_mean: Sequence[float] = (0.0, 0.0, 0.0),
        *,
        expand_prob: float = 0.5,
        max_expand: float = 4.0,
        flip_prob: float = 0.5,
        photometric: bool = True,
        min_box_size: float = 1.0,
    ) -> None:
        self.resize = Resize(size)
        self.rgb_fill = [float(round(v)) for v in rgb_mean]
        self.expand_prob, self.max_expand = expand_prob, max_expand
        self.flip_prob, self.photometric, self.min_box_size = flip_prob, photometric, min_box_size

    def __call__(self, sample: TensorSample, generator: torch.Generator) -> TensorSample:
        sample = self._expand_and_crop(sample, generator)
        sample = self.resize(sample)
        if self.photometric and "rgb" in sample.images:
            # Colour ops are per pixel, so they commute with crop, resize and flip; running them on
            # the network-sized image instead of first (as Caffe does) costs less. One difference:
            # an expansion's mean-coloured border is distorted along with the image.
            sample = replace(
                sample, images={**sample.images, "rgb": photometric_distort(sample.images["rgb"], generator)}
            )
        if _uniform(generator) < self.flip_prob:
            images, boxes = _wrap(sample)
            images = {k: F.horizontal_flip(v) for k, v in images.items()}
            flipped = sample.intrinsics.flip_horizontal(sample.size[1])
            sample = _unwrap(sample, images, F.horizontal_flip(boxes), None, flipped)
        wh = sample.boxes[:, 2:] - sample.boxes[:, :2]
        keep = (wh >= self.min_box_size).all(dim=1)
        if not bool(keep.all()):
            sample = replace(
                sample, boxes=sample.boxes[keep], labels=sample.labels[keep], difficult=sample.difficult[keep]
            )
        return sample

    def _expand_and_crop(self, sample: TensorSample, generator: torch.Generator) -> TensorSample:
        """Expansion then crop window, applied in one step.

        The expansion is only a change of frame (image at (left, top) of a larger canvas); the
        window is sampled on the canvas, then every group is cropped straight from the image with
        the window moved back by (left, top). Parts of the window outside the image are the
        canvas fill: ``F.crop`` pads with 0 (depth-like groups), RGB is pasted onto the mean. This
        gives exactly expand-then-crop without building the up-to-16× larger canvas.
        """
        h, w = sample.size
        left = top = 0
        canvas_h, canvas_w = h, w
        if _uniform(generator) < self.expand_prob:
            ratio = _uniform(generator, 1.0, self.max_expand)
            canvas_h, canvas_w = int(h * ratio), int(w * ratio)
            left = int(_uniform(generator, 0.0, canvas_w - w))
            top = int(_uniform(generator, 0.0, canvas_h - h))
        shift = torch.tensor([left, top, left, top], dtype=sample.boxes.dtype)
        window = self._sample_window(sample.boxes + shift, (canvas_h, canvas_w), generator)
        if window is None:
            if (canvas_h, canvas_w) == (h, w):
                return sample  # no expansion, whole image: nothing moves
            window = (0, 0, canvas_w, canvas_h)
            keep = None
        else:
            rect = torch.tensor([window[0], window[1], window[0] + window[2], window[1] + window[3]])
            keep = _centres_inside(sample.boxes + shift, rect.to(sample.boxes.dtype))
        x0, y0, width, height = window[0] - left, window[1] - top, window[2], window[3]  # in image pixels
        images, boxes = _wrap(sample)
        out = {}
        for k, v in images.items():
            if k in PHOTOMETRIC_GROUPS:
                out[k] = _crop_with_fill(v, x0, y0, width, height, self.rgb_fill)
            else:
                out[k] = F.crop(v, y0, x0, height, width)  # pads with 0 outside the image
        # F.crop shifts the boxes and clamps them to the window.
        cropped = F.crop(boxes, y0, x0, height, width)
        return _unwrap(sample, out, cropped, keep, sample.intrinsics.crop(x0, y0))

    def _sample_window(
        self, boxes: torch.Tensor, size: tuple[int, int], generator: torch.Generator
    ) -> tuple[int, int, int, int] | None:
        """(left, top, width, height) of a crop window of an image of ``size`` = (h, w) holding
        ``boxes`` [N, 4], or None for the whole image.

        Vectorised Caffe batch sampling: each sampler draws its 50 trials at once and keeps the
        first acceptable one — the same distribution as trying them one after another.
        """
        if boxes.shape[0] == 0:
            return None  # no box to satisfy an IoU constraint: Caffe keeps the whole image
        h, w = size
        num_samplers, trials = len(_MIN_IOUS), 50
        # The 300 candidate windows are checked with numpy: a few dozen small-array operations,
        # where torch's per-call overhead would cost more than the arithmetic.
        u = torch.rand((4, num_samplers, trials), generator=generator, dtype=torch.float64).numpy()
        scale = 0.3 + 0.7 * u[0]  # linear scale s ~ U(0.3, 1)
        lo, hi = np.maximum(scale**2, 0.5), np.minimum(1.0 / scale**2, 2.0)
        aspect = np.sqrt(lo + (hi - lo) * u[1])  # a ~ U(max(0.5, s²), min(2, 1/s²)) keeps it inside
        fw, fh = scale * aspect, scale / aspect  # fractions of W and H, ≤ 1
        left = (u[2] * (1.0 - fw) * w).astype(np.int64)
        top = (u[3] * (1.0 - fh) * h).astype(np.int64)
        width = np.minimum(np.maximum((fw * w).astype(np.int64), 1), w - left)
        height = np.minimum(np.maximum((fh * h).astype(np.int64), 1), h - top)
        b = boxes.numpy().astype(np.float64)[:, :, None, None]  # [N, 4, 1, 1] against [S, T] windows
        x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
        # IoU of every box with every window, and whether the box centre lies inside (borders count).
        inter_w = np.clip(np.minimum(x2, left + width) - np.maximum(x1, left), 0.0, None)
        inter_h = np.clip(np.minimum(y2, top + height) - np.maximum(y1, top), 0.0, None)
        inter = inter_w * inter_h  # [N, S, T]
        iou = inter / ((x2 - x1) * (y2 - y1) + width * height - inter)  # union >= window area >= 1
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        centre_in = (cx >= left) & (cx <= left + width) & (cy >= top) & (cy <= top + height)
        min_iou = np.array([m if m is not None else -1.0 for m in _MIN_IOUS])[:, None]  # [S, 1]
        # Acceptable: some box meets the sampler's IoU bound, and some box keeps its centre inside.
        ok = (iou >= min_iou).any(0) & centre_in.any(0)  # [S, T]
        candidates: list[tuple[int, int, int, int] | None] = [None]
        for k in range(num_samplers):
            hits = np.flatnonzero(ok[k])
            if hits.size:
                t = int(hits[0])
                candidates.append((int(left[k, t]), int(top[k, t]), int(width[k, t]), int(height[k, t])))
        return candidates[int(torch.randint(len(candidates), (), generator=generator))]


def _crop_with_fill(
    image: torch.Tensor, x0: int, y0: int, width: int, height: int, fill: Sequence[float]
) -> torch.Tensor:
    """Window (x0, y0, width, height) of a [C, H, W] image, ``fill`` [C] where it leaves the image.

    Hand-written: ``F.crop`` pads with a single value (0) for all channels, and the RGB fill of
    the SSD expansion is the per-channel dataset mean.
    """
    c, h, w = image.shape
    out = torch.empty((c, height, width), dtype=image.dtype)
    out[:] = torch.tensor(fill, dtype=torch.float32).round().to(image.dtype)[:, None, None]
    ix0, iy0 = max(x0, 0), max(y0, 0)  # the part of the window inside the image, image pixels
    ix1, iy1 = min(x0 + width, w), min(y0 + height, h)
    if ix1 > ix0 and iy1 > iy0:
        out[:, iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = image[:, iy0:iy1, ix0:ix1]
    return tv_tensors.Image(out)


def _centres_inside(boxes: torch.Tensor, rect: torch.Tensor) -> torch.Tensor:
    """bool [N]: box centres inside rect [4] (x1, y1, x2, y2), borders included (Caffe's emit rule)."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    return (cx >= rect[0]) & (cx <= rect[2]) & (cy >= rect[1]) & (cy <= rect[3])
