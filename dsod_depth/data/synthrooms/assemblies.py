"""The SynthRooms object classes: each a recognisable assembly of boxes and frusta.

Class names follow the NYU Depth v2 detection classes (REFERENCE §3, Gupta et al. 2014) so that
detectors trained here speak the same vocabulary as the real datasets. Every builder draws its
dimensions (metres) and its structural variant (legs or plinth, round or rectangular top, with or
without arms, ...) from the generator it is given, so instances of one class vary in size and
shape while keeping the silhouette that identifies the class.

Object frame: x = width, y = depth with the front towards -y and the back towards +y (objects
stand against walls with their back), z = up with the floor at z = 0. Builders return an
:class:`Assembly` whose footprint is centred on the origin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dsod_depth.data.synthrooms.primitives import Part, box, frustum

__all__ = ["CLASS_NAMES", "Assembly", "ClassSpec", "CLASS_SPECS", "build"]

Rng = np.random.Generator


@dataclass
class Assembly:
    """An object in its own frame.

    Attributes:
        parts: convex primitives; their union is the object.
        half_x, half_y: half extents (metres) of the footprint rectangle, centred on the origin.
        height: top of the highest part (metres).
        support: (top z, half x, half y) of a flat top other objects may stand on, or None.
    """

    parts: list[Part]
    half_x: float
    half_y: float
    height: float
    support: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class ClassSpec:
    """How a class is built and where it goes.

    ``on_floor`` / ``on_surface``: may stand on the floor / on a table, desk or night stand.
    ``against_wall``: placed with its back to a wall (beds, shelves...) rather than free-standing.
    ``weight``: relative frequency among floor objects.
    """

    builder: Callable[[Rng, bool], Assembly]
    on_floor: bool
    on_surface: bool
    against_wall: bool
    weight: float


def _finish(parts: list[Part], support: tuple[float, float, float] | None = None) -> Assembly:
    """Centre the footprint on the origin and measure the assembly."""
    points = np.concatenate([p.vertices for p in parts])  # [V, 3]
    lo, hi = points.min(axis=0), points.max(axis=0)
    shift = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, 0.0])
    moved = [Part(p.vertices - shift, p.triangles, p.material) for p in parts]
    if support is not None:
        support = (support[0], support[1], support[2])
    return Assembly(moved, (hi[0] - lo[0]) / 2, (hi[1] - lo[1]) / 2, float(hi[2]), support)


def _legs(rng: Rng, w: float, d: float, h: float, inset: float, material: int) -> list[Part]:
    """Four legs under a w × d top (corners inset), square or round, up to height h."""
    t = rng.uniform(0.03, 0.05)
    xs, ys = (-w / 2 + inset, w / 2 - inset - t), (-d / 2 + inset, d / 2 - inset - t)
    if rng.random() < 0.5:
        return [box(x, y, 0.0, x + t, y + t, h, material) for x in xs for y in ys]
    return [
        frustum(x + t / 2, y + t / 2, 0.0, h, t / 2, segments=8, material=material) for x in xs for y in ys
    ]


def bed(rng: Rng, _: bool) -> Assembly:
    w, length = rng.uniform(0.9, 1.9), rng.uniform(1.9, 2.2)
    base_h = rng.uniform(0.2, 0.35)
    parts = []
    if rng.random() < 0.5:  # platform base to the floor
        parts.append(box(-w / 2, -length / 2, 0.0, w / 2, length / 2, base_h, 1))
    else:  # frame on short legs
        leg_h = rng.uniform(0.08, 0.18)
        parts += _legs(rng, w, length, leg_h, 0.02, 1)
        parts.append(box(-w / 2, -length / 2, leg_h, w / 2, length / 2, base_h, 1))
    top = base_h + rng.uniform(0.15, 0.28)
    parts.append(box(-w / 2 + 0.02, -length / 2 + 0.02, base_h, w / 2 - 0.02, length / 2 - 0.05, top, 0))
    head_t = rng.uniform(0.04, 0.08)
    parts.append(
        box(-w / 2, length / 2 - 0.05, 0.0, w / 2, length / 2 - 0.05 + head_t, rng.uniform(0.85, 1.3), 1)
    )
    if rng.random() < 0.4:  # footboard
        parts.append(
            box(-w / 2, -length / 2 - head_t, 0.0, w / 2, -length / 2, top + rng.uniform(0.0, 0.25), 1)
        )
    pillows = 1 if w < 1.3 else 2
    pw = (w - 0.2) / pillows
    for i in range(pillows):
        x0 = -w / 2 + 0.1 + i * pw
        parts.append(box(x0 + 0.03, length / 2 - 0.45, top, x0 + pw - 0.03, length / 2 - 0.1, top + 0.12, 2))
    if rng.random() < 0.6:  # blanket over the lower part
        parts.append(
            box(-w / 2 + 0.01, -length / 2 + 0.01, top, w / 2 - 0.01, length / 2 * 0.3, top + 0.03, 2)
        )
    return _finish(parts)


def bookshelf(rng: Rng, _: bool) -> Assembly:
    w, d, h = rng.uniform(0.6, 1.4), rng.uniform(0.25, 0.4), rng.uniform(0.9, 2.1)
    t = rng.uniform(0.018, 0.03)
    parts = [
        box(-w / 2, -d / 2, 0.0, -w / 2 + t, d / 2, h, 0),
        box(w / 2 - t, -d / 2, 0.0, w / 2, d / 2, h, 0),
        box(-w / 2 + t, -d / 2, h - t, w / 2 - t, d / 2, h, 0),
        box(-w / 2 + t, -d / 2, 0.0, w / 2 - t, d / 2, rng.uniform(0.05, 0.1), 0),
        box(-w / 2 + t, d / 2 - 0.01, 0.0, w / 2 - t, d / 2, h - t, 1),
    ]
    num_shelves = max(2, int(round(h / rng.uniform(0.3, 0.4))))
    levels = np.linspace(parts[3].vertices[:, 2].max(), h - t, num_shelves + 1)
    for z in levels[1:-1]:
        parts.append(box(-w / 2 + t, -d / 2, z - t, w / 2 - t, d / 2 - 0.01, z, 0))
    for z_lo, z_hi in zip(levels[:-1], levels[1:]):
        x = -w / 2 + t + rng.uniform(0.0, 0.1)
        while rng.random() < 0.85:  # a run of books, each its own thickness and height
            bw = rng.uniform(0.02, 0.05)
            if x + bw > w / 2 - t - 0.005:
                break
            bh = min(rng.uniform(0.15, 0.28), z_hi - z_lo - t - 0.01)
            if bh > 0.05:
                parts.append(box(x, -d / 2 + 0.02, z_lo, x + bw, d / 2 - 0.02, z_lo + bh, 2))
            x += bw + 0.002
    return _finish(parts)


def storage_box(rng: Rng, on_surface: bool) -> Assembly:
    scale = 0.55 if on_surface else 1.0
    w, d = rng.uniform(0.2, 0.6, size=2) * scale
    h = rng.uniform(0.15, 0.5) * scale
    parts = [box(-w / 2, -d / 2, 0.0, w / 2, d / 2, h, 0)]
    if rng.random() < 0.5:  # a lid overhanging the body
        parts.append(box(-w / 2 - 0.01, -d / 2 - 0.01, h, w / 2 + 0.01, d / 2 + 0.01, h + 0.03, 1))
    return _finish(parts)


def chair(rng: Rng, _: bool) -> Assembly:
    w, d = rng.uniform(0.4, 0.52), rng.uniform(0.4, 0.5)
    seat_h, seat_t = rng.uniform(0.42, 0.5), rng.uniform(0.03, 0.08)
    parts = _legs(rng, w, d, seat_h - seat_t, 0.02, 1)
    parts.append(box(-w / 2, -d / 2, seat_h - seat_t, w / 2, d / 2, seat_h, 0))
    back_h = seat_h + rng.uniform(0.35, 0.5)
    if rng.random() < 0.6:  # solid back panel
        parts.append(box(-w / 2, d / 2 - 0.04, seat_h, w / 2, d / 2, back_h, 0))
    else:  # two posts and a top rail
        parts += [box(x, d / 2 - 0.035, seat_h, x + 0.035, d / 2, back_h, 1) for x in (-w / 2, w / 2 - 0.035)]
        parts.append(box(-w / 2, d / 2 - 0.035, back_h - 0.1, w / 2, d / 2, back_h, 0))
    if rng.random() < 0.3:  # armrests
        arm_h = seat_h + rng.uniform(0.18, 0.25)
        for x in (-w / 2 - 0.05, w / 2):
            parts.append(box(x, -d / 2 + 0.05, arm_h - 0.04, x + 0.05, d / 2 - 0.04, arm_h, 1))
            parts.append(box(x + 0.01, -d / 2 + 0.08, seat_h, x + 0.04, -d / 2 + 0.11, arm_h - 0.04, 1))
    return _finish(parts)


def desk(rng: Rng, _: bool) -> Assembly:
    w, d, h = rng.uniform(1.0, 1.6), rng.uniform(0.55, 0.8), rng.uniform(0.71, 0.77)
    t = rng.uniform(0.025, 0.04)
    parts = [box(-w / 2, -d / 2, h - t, w / 2, d / 2, h, 0)]
    if rng.random() < 0.6:  # drawer pedestal on one side, two legs on the other
        pw = rng.uniform(0.35, 0.45)
        side = rng.choice([-1.0, 1.0])
        x0 = w / 2 - pw if side > 0 else -w / 2
        parts.append(box(x0, -d / 2 + 0.01, 0.0, x0 + pw, d / 2 - 0.01, h - t, 1))
        for k in range(3):  # drawer fronts
            z0 = 0.05 + k * (h - t - 0.05) / 3
            parts.append(box(x0 + 0.02, -d / 2, z0 + 0.01, x0 + pw - 0.02, -d / 2 + 0.01, z0 + 0.2, 2))
        leg_x = -w / 2 + 0.02 if side > 0 else w / 2 - 0.06
        parts += [box(leg_x, y, 0.0, leg_x + 0.04, y + 0.04, h - t, 1) for y in (-d / 2 + 0.02, d / 2 - 0.06)]
    else:  # two side panels
        parts += [
            box(x, -d / 2 + 0.02, 0.0, x + 0.03, d / 2 - 0.02, h - t, 1) for x in (-w / 2, w / 2 - 0.03)
        ]
    if rng.random() < 0.6:  # modesty panel at the back
        parts.append(box(-w / 2 + 0.05, d / 2 - 0.04, h * 0.35, w / 2 - 0.05, d / 2 - 0.02, h - t, 1))
    return _finish(parts, support=(h, w / 2 - 0.03, d / 2 - 0.03))


def garbage_bin(rng: Rng, on_surface: bool) -> Assembly:
    r, h = rng.uniform(0.1, 0.17), rng.uniform(0.3, 0.6)
    if rng.random() < 0.6:  # round, slightly widening towards the top
        taper = rng.uniform(1.0, 1.25)
        parts = [frustum(0.0, 0.0, 0.0, h, r, taper=taper, material=0)]
        if rng.random() < 0.5:  # rim or lid
            parts.append(frustum(0.0, 0.0, h, 0.025, r * taper + 0.01, material=1))
    else:  # rectangular
        d = rng.uniform(0.7, 1.0) * r * 2
        parts = [box(-r, -d / 2, 0.0, r, d / 2, h, 0)]
        if rng.random() < 0.5:
            parts.append(box(-r - 0.01, -d / 2 - 0.01, h, r + 0.01, d / 2 + 0.01, h + 0.03, 1))
    return _finish(parts)


def lamp(rng: Rng, on_surface: bool) -> Assembly:
    if on_surface:  # table lamp
        base_r, pole_h = rng.uniform(0.06, 0.1), rng.uniform(0.2, 0.35)
        shade_r, shade_h = rng.uniform(0.12, 0.18), rng.uniform(0.15, 0.22)
        body_r = rng.uniform(0.02, 0.06)
    else:  # floor lamp
        base_r, pole_h = rng.uniform(0.12, 0.18), rng.uniform(1.2, 1.6)
        shade_r, shade_h = rng.uniform(0.18, 0.26), rng.uniform(0.2, 0.3)
        body_r = rng.uniform(0.012, 0.02)
    base_t = rng.uniform(0.02, 0.04)
    parts = [
        frustum(0.0, 0.0, 0.0, base_t, base_r, taper=rng.uniform(0.7, 1.0), material=1),
        frustum(0.0, 0.0, base_t, pole_h, body_r, segments=10, material=1),
        frustum(0.0, 0.0, base_t + pole_h - shade_h * 0.6, shade_h, shade_r, taper=rng.uniform(0.55, 0.8)),
    ]
    return _finish(parts)


def monitor(rng: Rng, _: bool) -> Assembly:
    sw = rng.uniform(0.45, 0.7)
    sh, st = sw * rng.uniform(0.55, 0.65), rng.uniform(0.02, 0.05)
    neck_h = rng.uniform(0.08, 0.18)
    parts = [
        box(-0.11, -0.08, 0.0, 0.11, 0.1, 0.015, 1),  # base plate
        box(-0.025, 0.02, 0.015, 0.025, 0.05, neck_h + 0.05, 1),  # neck
        box(-sw / 2, -st / 2, neck_h, sw / 2, st / 2, neck_h + sh, 1),  # housing
        box(
            -sw / 2 + 0.015, -st / 2 - 0.003, neck_h + 0.015, sw / 2 - 0.015, -st / 2, neck_h + sh - 0.015, 2
        ),
    ]
    return _finish(parts)


def night_stand(rng: Rng, _: bool) -> Assembly:
    w, d, h = rng.uniform(0.4, 0.6), rng.uniform(0.35, 0.5), rng.uniform(0.45, 0.65)
    z0 = rng.uniform(0.08, 0.15) if rng.random() < 0.5 else 0.0
    parts = _legs(rng, w, d, z0, 0.01, 1) if z0 > 0 else []
    parts.append(box(-w / 2, -d / 2, z0, w / 2, d / 2, h, 0))
    drawers = int(rng.integers(1, 4))
    step = (h - z0 - 0.04) / drawers
    for k in range(drawers):
        zk = z0 + 0.02 + k * step
        parts.append(box(-w / 2 + 0.02, -d / 2 - 0.012, zk + 0.01, w / 2 - 0.02, -d / 2, zk + step - 0.01, 1))
        zc = zk + step / 2
        parts.append(box(-0.03, -d / 2 - 0.03, zc - 0.01, 0.03, -d / 2 - 0.012, zc + 0.01, 2))  # knob
    return _finish(parts, support=(h, w / 2 - 0.02, d / 2 - 0.02))


def sofa(rng: Rng, _: bool) -> Assembly:
    w, d = rng.uniform(1.5, 2.4), rng.uniform(0.8, 1.0)
    seat_h, arm_w = rng.uniform(0.38, 0.48), rng.uniform(0.12, 0.25)
    base_z = rng.uniform(0.05, 0.12) if rng.random() < 0.5 else 0.0
    parts = _legs(rng, w, d, base_z, 0.03, 1) if base_z > 0 else []
    back_t = rng.uniform(0.15, 0.25)
    base_top = base_z + rng.uniform(0.15, 0.22)
    parts.append(box(-w / 2, -d / 2, base_z, w / 2, d / 2, base_top, 0))
    parts.append(box(-w / 2, d / 2 - back_t, base_top, w / 2, d / 2, rng.uniform(0.75, 0.95), 0))
    arm_h = rng.uniform(0.55, 0.7)
    parts += [box(x, -d / 2, base_top, x + arm_w, d / 2 - back_t, arm_h, 0) for x in (-w / 2, w / 2 - arm_w)]
    cushions = int(rng.integers(2, 4))
    cw = (w - 2 * arm_w) / cushions
    for k in range(cushions):
        x0 = -w / 2 + arm_w + k * cw
        parts.append(box(x0 + 0.005, -d / 2 + 0.02, base_top, x0 + cw - 0.005, d / 2 - back_t, seat_h, 2))
    return _finish(parts)


def table(rng: Rng, _: bool) -> Assembly:
    h, t = rng.uniform(0.7, 0.78), rng.uniform(0.025, 0.05)
    if rng.random() < 0.25:  # round top on a pedestal
        r = rng.uniform(0.4, 0.6)
        parts = [
            frustum(0.0, 0.0, h - t, t, r, segments=20, material=0),
            frustum(0.0, 0.0, 0.02, h - t - 0.02, rng.uniform(0.03, 0.06), segments=10, material=1),
            frustum(0.0, 0.0, 0.0, 0.02, rng.uniform(0.22, 0.3), segments=12, material=1),
        ]
        return _finish(parts, support=(h, r * 0.65, r * 0.65))
    if rng.random() < 0.25:  # low coffee table
        h = rng.uniform(0.4, 0.5)
    w, d = rng.uniform(0.8, 1.8), rng.uniform(0.6, 1.0)
    parts = _legs(rng, w, d, h - t, 0.04, 1)
    parts.append(box(-w / 2, -d / 2, h - t, w / 2, d / 2, h, 0))
    if rng.random() < 0.5:  # apron under the top
        parts.append(box(-w / 2 + 0.04, -d / 2 + 0.04, h - t - 0.08, w / 2 - 0.04, d / 2 - 0.04, h - t, 1))
    return _finish(parts, support=(h, w / 2 - 0.03, d / 2 - 0.03))


def toilet(rng: Rng, _: bool) -> Assembly:
    rx, ry = rng.uniform(0.17, 0.2), rng.uniform(0.24, 0.28)
    bowl_h = rng.uniform(0.36, 0.4)
    tank_w, tank_d = rng.uniform(0.36, 0.45), rng.uniform(0.15, 0.2)
    tank_top = rng.uniform(0.72, 0.8)
    back = ry + tank_d * 0.5  # tank sits behind the bowl
    parts = [
        frustum(0.0, 0.0, 0.0, bowl_h - 0.05, rx * 0.7, ry * 0.75, taper=1.3, material=0),
        frustum(0.0, 0.0, bowl_h - 0.05, 0.05, rx, ry, material=0),
        frustum(0.0, -0.01, bowl_h, 0.025, rx * 0.98, ry * 0.98, material=1),  # seat
        box(-tank_w / 2, back - tank_d, bowl_h - 0.1, tank_w / 2, back, tank_top, 0),
        box(
            -tank_w / 2 - 0.01,
            back - tank_d - 0.01,
            tank_top,
            tank_w / 2 + 0.01,
            back + 0.01,
            tank_top + 0.03,
            1,
        ),
    ]
    return _finish(parts)


# Label order = index into CLASS_NAMES (alphabetical, like the NYU detection list).
CLASS_SPECS: dict[str, ClassSpec] = {
    "bed": ClassSpec(bed, on_floor=True, on_surface=False, against_wall=True, weight=0.6),
    "bookshelf": ClassSpec(bookshelf, on_floor=True, on_surface=False, against_wall=True, weight=0.8),
    "box": ClassSpec(storage_box, on_floor=True, on_surface=True, against_wall=False, weight=1.0),
    "chair": ClassSpec(chair, on_floor=True, on_surface=False, against_wall=False, weight=1.6),
    "desk": ClassSpec(desk, on_floor=True, on_surface=False, against_wall=True, weight=0.8),
    "garbage bin": ClassSpec(garbage_bin, on_floor=True, on_surface=False, against_wall=False, weight=0.9),
    "lamp": ClassSpec(lamp, on_floor=True, on_surface=True, against_wall=False, weight=0.6),
    "monitor": ClassSpec(monitor, on_floor=False, on_surface=True, against_wall=False, weight=0.0),
    "night stand": ClassSpec(night_stand, on_floor=True, on_surface=False, against_wall=True, weight=0.8),
    "sofa": ClassSpec(sofa, on_floor=True, on_surface=False, against_wall=True, weight=0.7),
    "table": ClassSpec(table, on_floor=True, on_surface=False, against_wall=False, weight=1.0),
    "toilet": ClassSpec(toilet, on_floor=True, on_surface=False, against_wall=True, weight=0.4),
}
CLASS_NAMES: tuple[str, ...] = tuple(CLASS_SPECS)


def build(name: str, rng: Rng, *, on_surface: bool = False) -> Assembly:
    """Build one instance of class ``name`` (its size and variant drawn from ``rng``)."""
    return CLASS_SPECS[name].builder(rng, on_surface)
