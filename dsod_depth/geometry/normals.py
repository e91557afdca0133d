"""Surface normals by windowed least squares (Gupta et al. 2014; REFERENCE §2 step 2).

Follows rgbdutils ``computeNormalsSquareSupport`` operation by operation, because
HHA must reproduce the MATLAB images exactly: at every pixel, fit the plane
``n . p = 1`` to the back-projected points of a (2r + 1) x (2r + 1) window. With
``a = [X/Z, Y/Z, 1]`` per point the normal equations are ``(sum a a^T) n = sum a / Z``;
the six distinct entries of ``A^T A`` and the three of ``A^T b`` are box sums of
per-pixel terms (:mod:`dsod_depth.geometry.boxsum`, zero padded like ``filter2``).
The solution is taken as ``adj(A^T A) . A^T b`` -- the inverse without the 1/det
factor, which normalisation removes -- and normalised; a window without a usable
plane (no valid point, or a rank-deficient system) gives 0 / 0 = NaN.

Orientation (the MATLAB code's two sign passes): first make ``n_z >= 0``
(``sign(0)`` counts as +1), then flip so that ``n . p > 0`` for the pixel's own
point ``p`` from the *unmasked* depth, i.e. normals point away from the camera
(``n . p`` NaN or 0 counts as +1).

Units: points in centimetres inside (the original works in cm), normals unitless.
Arrays are numpy or torch; images [B, H, W], normals [B, 3, H, W] (x, y, z
components in the camera frame: x right, y down, z forward).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsod_depth.geometry import _arrays
from dsod_depth.geometry.boxsum import FlatLayout, flat_box_sums
from dsod_depth.geometry.camera import Intrinsics

# Order of the nine per-pixel terms in the flat buffer (as in the MATLAB code):
# A^T A entries (X/Z)^2, (X/Z)(Y/Z), X/Z, (Y/Z)^2, Y/Z, 1 and A^T b entries X/Z^2, Y/Z^2, 1/Z.
NUM_TERMS = 9
# Rows per band for single frames on the CPU: keeps the working arrays of a band
# (a few float64 arrays of (rows + 20) x (W + 10) values) within a core's L2 cache.
DEFAULT_BAND_ROWS = 48


def point_cloud_cm(z_cm: Any, fx: Any, fy: Any, cx: Any, cy: Any, first_row: int = 0) -> tuple[Any, Any]:
    """Camera-frame X, Y (cm) of every pixel from its depth Z (cm), on a 0-based grid.

    Computed as ``((u - cx) * Z) / fx`` in this order, as rgbdutils
    ``getPointCloudFromZ`` does on its 1-based grid: with ``cx`` 0-based, ``u - cx``
    for u = 0..W-1 is the same number as the MATLAB ``u - (cx + 1)`` for u = 1..W.

    Args:
        z_cm: float [B, H, W] depth in cm (H, W: any grid of pixel rows and columns).
        fx, fy, cx, cy: floats or per-frame arrays [B, 1, 1] (pixels, 0-based).
        first_row: image row v of ``z_cm[:, 0]`` (negative for margin rows).

    Returns:
        X, Y: float [B, H, W] in cm.
    """
    height, width = z_cm.shape[-2:]
    u = _arrays.arange(z_cm, width)  # [W]
    v = (_arrays.arange(z_cm, height) + first_row).reshape(height, 1)  # [H] -> [H, 1]
    x = ((u - cx) * z_cm) / fx
    y = ((v - cy) * z_cm) / fy
    return x, y


def least_squares_terms(z_cm: Any, valid: Any, x_cm: Any, y_cm: Any, out: Any = None) -> Any:
    """The nine per-pixel terms of the plane fit.

    Missing pixels contribute 0 to every term (MATLAB sets them to NaN and then
    ``f(isnan(f)) = 0`` before filtering).

    Args:
        z_cm, x_cm, y_cm: float [B, ...] point coordinates in cm (any pixel layout).
        valid: bool [B, ...], False where the raw depth is missing.
        out: optional float [B, 9, ...] to write into.

    Returns:
        float [B, 9, ...] in the order of :data:`NUM_TERMS`.
    """
    xp = _arrays.namespace(z_cm)
    terms = _arrays.empty(z_cm, (z_cm.shape[0], NUM_TERMS, *z_cm.shape[1:])) if out is None else out
    mask = terms[:, 5]
    mask[...] = valid
    # Masked copies: Z = 1 and X = Y = 0 at missing pixels make every ratio 0 there
    # (and 1/Z is multiplied by the mask), without 0/0. Where valid, each term is
    # the same IEEE operation sequence as in the MATLAB code.
    z = xp.where(valid, z_cm, 1.0)
    x = x_cm * mask
    y = y_cm * mask
    x_z, y_z = terms[:, 2], terms[:, 4]
    xp.divide(x, z, out=x_z)
    xp.divide(y, z, out=y_z)
    xp.multiply(x_z, x_z, out=terms[:, 0])
    xp.multiply(x_z, y_z, out=terms[:, 1])
    xp.multiply(y_z, y_z, out=terms[:, 3])
    zz = z * z
    xp.divide(x, zz, out=terms[:, 6])
    xp.divide(y, zz, out=terms[:, 7])
    xp.divide(mask, z, out=terms[:, 8])
    return terms


def normals_from_sums(
    sums: Sequence[Any], out: Any, *, undefined_as_zero: bool = False, scratch: Sequence[Any] | None = None
) -> Any:
    """Unit plane normals from the box-summed terms (unoriented).

    Args:
        sums: the nine box sums of :func:`least_squares_terms`, each float [B, ...].
        out: float [B, 3, ...] to write into.
        undefined_as_zero: give windows without a plane the zero vector instead of
            NaN (what the gravity estimate wants: it then adds nothing to its sums).
            This also covers a normal whose squared length underflows to 0, which
            would otherwise come out with infinite components (as in MATLAB).
        scratch: optional 8 float arrays shaped like ``sums[0]`` to work in (every
            operation then writes into memory that is already in the cache).

    Returns:
        ``out``: ``adj(A^T A) A^T b`` normalised; NaN (or 0) where it is zero.
    """
    a1, a2, a3, a4, a5, a6, b1, b2, b3 = sums
    xp = _arrays.namespace(a1)
    if scratch is None:
        scratch = [_arrays.empty(a1, tuple(a1.shape)) for _ in range(8)]
    c11, c12, c13, c22, c23, c33, t, norm = scratch
    mul, sub, add = xp.multiply, xp.subtract, xp.add
    # Cofactors of the symmetric 3x3 A^T A = [[a1 a2 a3] [a2 a4 a5] [a3 a5 a6]]
    # (MATLAB invertIt), each p * q - r * s. -(p - q) is written q - p: the same
    # number in IEEE arithmetic.
    for c, (p, q, r, s) in (
        (c11, (a4, a6, a5, a5)),
        (c12, (a3, a5, a2, a6)),
        (c13, (a2, a5, a3, a4)),
        (c22, (a1, a6, a3, a3)),
        (c23, (a2, a3, a1, a5)),
        (c33, (a1, a4, a2, a2)),
    ):
        mul(p, q, out=c)
        mul(r, s, out=t)
        sub(c, t, out=c)
    # n = (c_1 b1 + c_2 b2) + c_3 b3, component by component.
    for k, (p, q, r) in enumerate(((c11, c12, c13), (c12, c22, c23), (c13, c23, c33))):
        n = out[:, k]
        mul(p, b1, out=n)
        add(n, mul(q, b2, out=t), out=n)
        add(n, mul(r, b3, out=t), out=n)
    n0, n1, n2 = out[:, 0], out[:, 1], out[:, 2]
    mul(n0, n0, out=norm)
    add(norm, mul(n1, n1, out=t), out=norm)
    add(norm, mul(n2, n2, out=t), out=norm)
    _arrays.sqrt(norm, out=norm)
    if undefined_as_zero:
        norm = xp.where(norm > 0, norm, float("inf"))  # 0 / inf = 0
    out /= norm[:, None]
    return out


def orient_normals(n: Any, x_cm: Any, y_cm: Any, z_cm: Any) -> Any:
    """Flip normals in place to point away from the camera (MATLAB's two sign passes).

    Args:
        n: float [B, 3, ...] unit normals (NaN where undefined); modified in place.
        x_cm, y_cm, z_cm: float [B, ...] the unmasked point of each pixel.

    Returns:
        ``n``.
    """
    xp = _arrays.namespace(n)
    with _arrays.quiet():  # NaN normals are expected
        # sign(n_z) with sign(0) = +1 (a NaN normal stays NaN whatever the factor).
        first = xp.where(n[:, 2] < 0, -1.0, 1.0)
        # sign((first * n) . p) with NaN and 0 counted as +1; (first * n) . p equals
        # first * (n . p) exactly, so the dot product is taken once.
        dot = n[:, 0] * x_cm + n[:, 1] * y_cm + n[:, 2] * z_cm
        factor = xp.where(first * dot < 0, -first, first)
        n *= factor[:, None]
    return n


class BandedNormals:
    """Gupta normals of one image batch, computed band by band in the flat layout.

    Everything per pixel is formed for one band at a time, in the flat layout
    (:class:`FlatLayout`, margin = the largest radius): the points and the nine
    terms of the grid rows a band's windows cover (kept in a rolling buffer, so
    the halo rows shared with the previous band are moved, not recomputed), then
    the box sums and the solves of the band's rows. Results do not depend on the
    band height, but bands whose arrays stay in the CPU cache are several times
    faster on one core, and no whole-image buffer of terms is ever allocated
    (fresh memory pages cost more than the terms themselves).

    Args:
        depth_m: float [B, H, W] depth in metres, 0 = missing.
        valid: bool [B, H, W] pixels that may enter the fits (besides depth > 0), or None.
        fx, fy, cx, cy: floats or per-frame arrays [B, 1, 1] (pixels, 0-based).
        layout: the flat layout of [H, W]; ``layout.pad`` >= every radius used.
        cm_round_trip: take z as ``((100 d) / 100) * 100`` instead of ``100 d``
            (rgbdutils ``computeNormalsSquareSupport`` receives z / 100 and multiplies
            by 100 again; the round trip can move z by an ulp).
        memory: optional flat float array to lay the work buffers in (see
            :meth:`memory_size`); they are allocated when it is missing or too small.
    """

    # Rows of the rolling buffer: the nine terms, then the unmasked points x, y, z (cm).
    _POINTS = slice(NUM_TERMS, NUM_TERMS + 3)

    def __init__(
        self,
        depth_m: Any,
        valid: Any,
        fx: Any,
        fy: Any,
        cx: Any,
        cy: Any,
        layout: FlatLayout,
        *,
        cm_round_trip: bool = False,
        memory: Any = None,
    ) -> None:
        self.layout = layout
        self._memory, self._memory_used = memory, 0
        self._depth, self._valid = depth_m, valid
        self._camera = (fx, fy, cx, cy)
        self._round_trip = cm_round_trip
        self._buffer = None  # float [B, 12, capacity * row]: grid rows [_start, _stop) of the layout
        self._scratch = None  # float [8, B, band size]: work space of the solves
        self._start = self._stop = 0

    @staticmethod
    def memory_size(layout: FlatLayout, batch: int, band_rows: int, reach: int) -> int:
        """Values of ``memory`` that bands of ``band_rows`` rows and windows of radius <= ``reach`` use."""
        span_rows = band_rows + 2 * reach + 2
        return batch * ((NUM_TERMS + 3) * span_rows + 8 * band_rows) * layout.row

    def _allocate(self, shape: tuple[int, ...]) -> Any:
        """A float array of ``shape``: the next unused part of ``memory`` when it has room."""
        count = 1
        for n in shape:
            count *= n
        memory, used = self._memory, self._memory_used
        if memory is not None and memory.shape[0] >= used + count:
            self._memory_used += count
            return memory[used : used + count].reshape(shape)  # [count] -> shape
        return _arrays.empty(self._depth, shape)

    def _grid_rows(self, first: int, stop: int, out: Any) -> None:
        """Terms and points of layout grid rows [first, stop) into ``out`` [B, 12, (stop - first) * row]."""
        layout = self.layout
        batch, row = self._depth.shape[0], layout.row
        z = _arrays.zeros(self._depth, (batch, stop - first, row))  # [B, n, row]; zero in the margins
        ok = _arrays.zeros(z, (batch, stop - first, row)) > 0  # all False
        top = layout.pad + 1  # grid row of image row 0
        v0, v1 = max(first - top, 0), min(stop - top, layout.height)  # image rows inside
        if v0 < v1:
            rows = slice(v0 + top - first, v1 + top - first)
            z_cm = self._depth[:, v0:v1] * 100.0
            z[:, rows, : layout.width] = (z_cm / 100.0) * 100.0 if self._round_trip else z_cm
            ok[:, rows, : layout.width] = True if self._valid is None else self._valid[:, v0:v1]
            ok &= z > 0
        x, y = point_cloud_cm(z, *self._camera, first_row=first - top)
        flat = [a.reshape(batch, -1) for a in (z, ok, x, y)]  # [B, n, row] -> [B, n * row]
        least_squares_terms(flat[0], flat[1], flat[2], flat[3], out=out[:, :NUM_TERMS])
        for k, a in enumerate((flat[2], flat[3], flat[0])):
            out[:, NUM_TERMS + k] = a

    def _span(self, first: int, stop: int) -> Any:
        """Terms and points of grid rows [first, stop), float [B, 12, (stop - first) * row].

        Bands move down the image: the rows shared with the previous span are
        moved to the front of the buffer instead of computed again.
        """
        row = self.layout.row
        keep = max(0, min(self._stop, stop) - first) if first >= self._start else 0
        old, shift = self._buffer, (first - self._start) * row
        size, kept = (stop - first) * row, keep * row
        if old is None or old.shape[-1] < size:
            self._buffer = self._allocate((self._depth.shape[0], NUM_TERMS + 3, size))
            if kept:
                self._buffer[..., :kept] = old[..., shift : shift + kept]
        elif kept and shift:
            moved = old[..., shift : shift + kept]
            old[..., :kept] = _arrays.copy(moved) if shift < kept else moved  # overlapping ranges: copy first
        if first + keep < stop:
            self._grid_rows(first + keep, stop, self._buffer[..., kept:size])
        self._start, self._stop = first, stop
        return self._buffer[..., :size]

    def band(
        self,
        rows: tuple[int, int],
        radii: Sequence[int],
        undefined_as_zero: Sequence[bool],
        outs: Sequence[Any] | None = None,
    ) -> tuple[list[Any], Any]:
        """Unoriented unit normals of image rows ``rows = (top, bottom)``, and their points.

        Args:
            outs: optional arrays to write the normals into, one per radius (e.g. the band's
                slice of a whole-image buffer, which saves a copy).

        Returns:
            (normals, points): one float [B, 3, (bottom - top) * layout.row] per
            radius, the band's rows in the flat layout (margin columns
            unspecified), and the unmasked points x, y, z (cm) of those positions,
            float [B, 3, (bottom - top) * layout.row] (a view, valid until the next band).
        """
        layout = self.layout
        reach = max(radii)  # the windows reach this many rows (and columns) beyond the band
        # Grid rows covering flat positions [offset(top - reach) - reach, offset(bottom + reach) + reach).
        first, stop = rows[0] - reach + layout.pad, rows[1] + reach + layout.pad + 2
        span = self._span(first, stop)
        start = first * layout.row  # flat position of span[..., 0]
        # One term at a time keeps the working set of the box sums small.
        per_term = [flat_box_sums(span[:, k], layout, radii, rows, start=start) for k in range(NUM_TERMS)]
        size = (rows[1] - rows[0]) * layout.row
        if self._scratch is None or self._scratch.shape[-1] < size:
            self._scratch = self._allocate((8, span.shape[0], size))
        scratch = list(self._scratch[..., :size])
        normals = []
        with _arrays.quiet():  # 0/0 for empty windows (and in margin columns) is expected
            for i, as_zero in enumerate(undefined_as_zero):
                sums = [per_term[k][i] for k in range(NUM_TERMS)]
                if outs is None:
                    out = _arrays.empty(sums[0], (sums[0].shape[0], 3, sums[0].shape[-1]))
                else:
                    out = outs[i]
                normals.append(normals_from_sums(sums, out, undefined_as_zero=as_zero, scratch=scratch))
        points = span[:, self._POINTS, layout.offset(rows[0]) - start : layout.offset(rows[1]) - start]
        return normals, points


def surface_normals(
    depth: Any,
    intrinsics: Intrinsics,
    *,
    radius: int = 3,
    valid: Any = None,
    band_rows: int | None = DEFAULT_BAND_ROWS,
) -> Any:
    """Oriented unit surface normals of a depth image (Gupta's square-window fit).

    Args:
        depth: float [H, W] or [B, H, W] metres (numpy or torch); 0 = missing.
        intrinsics: camera of the image (0-based pixel grid).
        radius: window half-width; the window is (2r + 1) x (2r + 1) pixels.
        valid: optional bool mask like ``depth``; pixels outside it are left out of
            every fit (default: depth > 0). Their own normal is still estimated
            from their valid neighbours, as in the original.
        band_rows: rows per band (CPU cache blocking); None = whole images.

    Returns:
        float64 [3, H, W] (or [B, 3, H, W]) unit normals (x right, y down, z
        forward), pointing away from the camera; NaN (all three components)
        where the window holds no usable plane.
    """
    single = depth.ndim == 2
    d = depth[None] if single else depth  # [H, W] -> [1, H, W]
    d = d.double() if _arrays.is_torch(d) else d.astype("float64")
    ok = None if valid is None else (valid[None] if single else valid)
    batch, height, width = d.shape
    layout = FlatLayout(height, width, max(radius, 1))
    solver = BandedNormals(d, ok, intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy, layout)
    out = _arrays.empty(d, (batch, 3, height, width))
    step = height if band_rows is None else max(1, band_rows)
    for top in range(0, height, step):
        rows = (top, min(height, top + step))
        (n,), points = solver.band(rows, (radius,), (False,))
        orient_normals(n, points[:, 0], points[:, 1], points[:, 2])
        out[:, :, rows[0] : rows[1]] = layout.unpack_rows(n)
    # A rank-deficient window can leave a normal whose squared length underflows
    # to 0, i.e. infinite components after the division: report it as undefined.
    xp = _arrays.namespace(out)
    finite = xp.isfinite(out).all(1)  # [B, 3, H, W] -> [B, H, W]
    out = xp.where(finite[:, None], out, float("nan"))
    return out[0] if single else out
