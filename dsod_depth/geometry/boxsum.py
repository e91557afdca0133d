"""Zero-padded ``same``-size box sums, exact where MATLAB's ``filter2`` is exact.

Gupta's normal estimation (REFERENCE §2, rgbdutils ``computeNormalsSquareSupport``)
sums nine per-pixel terms over square windows with ``filter2(ones(2r+1), f)``:
a correlation with zero padding whose output has the input's size. Two
properties of that direct summation matter for reproducing its normals:

* a window whose terms are all zero sums to exactly 0 (a window inside a depth
  hole gives a zero system and a NaN normal, which HHA maps to 180°), and
* a window with one or two non-zero terms sums them exactly (such windows make
  a rank-deficient system whose "normal" is decided by rounding alone, and the
  HHA of real frames with holes depends on reproducing it).

Integral images (cumulative sums) break both: their window sums are differences
of large running totals and carry their rounding. This module therefore forms
window sums by log-step doubling -- ``T2 = a + shift(a)``, ``T4 = T2 + shift(T2, 2)``,
... then adds the power-of-two blocks of the window width -- which is a pairwise
summation (at least as accurate as direct summation, exact for <= 2 non-zero terms)
costing ``log2(w) + popcount(w) - 1`` vectorised adds per axis instead of ``w``.

Speed: a horizontal shift of a row-major image is a strided slice, which numpy
runs one row at a time. Images are therefore laid out *flat* with zero margins
(:class:`FlatLayout`): a shift by ``k`` columns is a shift by ``k`` of one long
contiguous vector (it runs into the zero columns after each row, never into the
next row) and a shift by ``k`` rows is a shift by ``k * row_length``. A larger
window whose width is an odd multiple of a smaller one (21 = 3 x 7 in HHA) is
built from the smaller box sums (a 3 x 3 grid of 7 x 7 boxes) instead of from
scratch. Sums can be formed for a band of rows at a time, so that a CPU works
on arrays that stay in its cache.

Everything here runs unchanged on numpy arrays and on torch tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dsod_depth.geometry import _arrays


def _window_sum(src: Any, src_start: int, radius: int, step: int, lo: int, hi: int) -> Any:
    """Centred window sums along the last axis of (a span of) a flat buffer.

    Args:
        src: float array [..., n] holding flat positions ``src_start .. src_start + n - 1``.
        src_start: flat position of ``src[..., 0]``.
        radius: window half-width r >= 0 (the window has 2r + 1 taps).
        step: distance between taps (1 = columns, row length = rows).
        lo, hi: flat positions wanted; ``src`` must cover ``[lo - r*step, hi + r*step)``.

    Returns:
        float array [..., hi - lo]: ``out[..., k] = sum_{j=-r..r} x[lo + k + j*step]``.
    """
    reach = radius * step
    first, last = lo - reach - src_start, hi + reach - src_start
    if first < 0 or last > src.shape[-1]:
        raise ValueError(f"window sums at [{lo}, {hi}) need positions outside the given span")
    width = 2 * radius + 1
    num = hi - lo
    # Forward block sums T_k[i] = sum_{j<k} a[i + j*step] for k = 1, 2, 4, ...
    blocks = {1: src[..., first:last]}
    k = 1
    while 2 * k <= width:
        t = blocks[k]
        n = t.shape[-1] - k * step
        blocks[2 * k] = t[..., :n] + t[..., k * step : k * step + n]
        k *= 2
    # A window of `width` taps = the power-of-two blocks of its binary expansion,
    # laid end to end (largest first).
    pieces = []
    offset = 0
    for k in sorted(blocks, reverse=True):
        if width & k:
            pieces.append(blocks[k][..., offset * step : offset * step + num])
            offset += k
    if len(pieces) == 1:  # width 1: the window is the element itself
        return _arrays.copy(pieces[0])
    # The largest block is a temporary of this call (width >= 2): add into it.
    out = pieces[0]
    for piece in pieces[1:]:
        out += piece
    return out


@dataclass(frozen=True)
class FlatLayout:
    """Where an [H, W] image lives inside a flat zero-margined buffer.

    The buffer is a grid of ``H + 2 * pad + 2`` rows of ``row = W + pad`` values,
    flattened: ``pad + 1`` zero rows above the image, ``pad + 1`` below, and ``pad``
    zero columns after each row (which also serve as the left margin of the next
    row). Pixel (v, u) is at flat index ``(v + pad + 1) * row + u``.
    """

    height: int
    width: int
    pad: int

    @property
    def row(self) -> int:
        return self.width + self.pad

    @property
    def rows(self) -> int:
        return self.height + 2 * self.pad + 2

    @property
    def length(self) -> int:
        return self.rows * self.row

    def offset(self, v: int) -> int:
        """Flat index of pixel (v, 0); v may lie in the margin."""
        return (v + self.pad + 1) * self.row

    def grid(self, flat: Any) -> Any:
        """The [..., rows, row] grid view of a flat buffer [..., length] (no copy)."""
        return flat.reshape(*flat.shape[:-1], self.rows, self.row)  # [..., L] -> [..., rows, row]

    def pack(self, x: Any) -> Any:
        """The flat buffer [..., length] of an image [..., H, W]: the image, zero margins."""
        flat = _arrays.empty(x, (*x.shape[:-2], self.length))
        grid = self.grid(flat)
        start = self.pad + 1
        grid[..., :start, :] = 0
        grid[..., start + self.height :, :] = 0
        grid[..., :, self.width :] = 0
        grid[..., start : start + self.height, : self.width] = x
        return flat

    def unpack_rows(self, flat_rows: Any) -> Any:
        """Image columns [..., n, W] of a span of n whole rows [..., n * row] (a view)."""
        count = flat_rows.shape[-1] // self.row
        grid = flat_rows.reshape(*flat_rows.shape[:-1], count, self.row)  # [..., n*row] -> [..., n, row]
        return grid[..., : self.width]


def flat_box_sums(
    flat: Any,
    layout: FlatLayout,
    radii: Sequence[int],
    rows: tuple[int, int] | None = None,
    *,
    start: int = 0,
) -> list[Any]:
    """Box sums of the image in a flat zero-margined buffer, for several radii.

    Args:
        flat: float array [..., n]: flat positions ``start .. start + n - 1`` of a
            buffer in ``layout`` (see :class:`FlatLayout`; the whole buffer by default).
            It must cover the wanted rows and ``max(radii)`` rows and columns around
            them; ``layout.pad`` must be >= max(radii).
        layout: the buffer's layout.
        radii: window half-widths; window (2r + 1) x (2r + 1).
        rows: image rows ``(first, stop)`` wanted (default: all).
        start: flat position of ``flat[..., 0]`` (a band of the buffer).

    Returns:
        one float array [..., (stop - first) * layout.row] per radius, in the order
        given: the box sums of the wanted rows, flat (``unpack_rows`` views them as
        [..., rows, W]; the values in the margin columns are unspecified).
    """
    if not radii:
        return []
    if min(radii) < 0:
        raise ValueError(f"box radii must be >= 0, got {list(radii)}")
    if max(radii) > layout.pad:
        raise ValueError(f"radius {max(radii)} needs a margin of at least that many pixels, got {layout.pad}")
    first_row, stop_row = (0, layout.height) if rows is None else rows
    row = layout.row
    lo, hi = layout.offset(first_row), layout.offset(stop_row)
    small = min(radii)
    small_width = 2 * small + 1
    # Where the small boxes are needed: the wanted rows, plus (for the larger
    # windows built from them) `spread` rows and columns around them; the columns
    # left of a row are the tail of the previous row in the flat buffer.
    spread = max(radii) - small
    base_lo, base_hi = layout.offset(first_row - spread) - spread, layout.offset(stop_row + spread) + spread
    across = _window_sum(flat, start, small, 1, base_lo - small * row, base_hi + small * row)
    base = _window_sum(across, base_lo - small * row, small, row, base_lo, base_hi)
    sums = []
    for radius in radii:
        width = 2 * radius + 1
        if radius == small:
            sums.append(base[..., lo - base_lo : hi - base_lo])
        elif width % small_width == 0:
            # (k * w)-wide window = k x k grid of w-wide windows spaced w apart.
            half_k = (width // small_width) // 2
            reach = half_k * small_width * row
            grid_across = _window_sum(base, base_lo, half_k, small_width, lo - reach, hi + reach)
            sums.append(_window_sum(grid_across, lo - reach, half_k, small_width * row, lo, hi))
        else:
            reach = radius * row
            wide = _window_sum(flat, start, radius, 1, lo - reach, hi + reach)
            sums.append(_window_sum(wide, lo - reach, radius, row, lo, hi))
    return sums


def box_sum(x: Any, radius: int) -> Any:
    """Sum of ``x`` over the (2r + 1) x (2r + 1) window around each pixel, zero padded.

    Equals MATLAB ``filter2(ones(2*r+1), x)`` (and ``conv2(x, ones(2*r+1), 'same')``).

    Args:
        x: float array [..., H, W] (numpy or torch; float64 recommended).
        radius: window half-width r >= 0.

    Returns:
        float array [..., H, W] of the same kind and dtype.
    """
    *lead, height, width = x.shape
    layout = FlatLayout(height, width, radius)
    (sums,) = flat_box_sums(layout.pack(x), layout, [radius])
    return _arrays.copy(layout.unpack_rows(sums))
