"""Room, camera and object placement for one SynthRooms frame.

World frame: the floor is z = 0, the room spans [0, size_x] × [0, size_y] × [0, height], z up.
Objects stand on the floor or on the flat top of a table, desk or night stand. Placement is by
rejection sampling of oriented footprint rectangles: two objects never overlap because their
footprints (each the full horizontal extent of the object, plus a margin) are disjoint, and an
object on a top lies inside that top, which lies inside its support's footprint. So no two objects
interpenetrate, by construction; the tests check it independently on the meshes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dsod_depth.data.synthrooms.assemblies import CLASS_NAMES, CLASS_SPECS, Assembly, build
from dsod_depth.data.synthrooms.primitives import Part, box, transform_parts

__all__ = ["Room", "Camera", "PlacedObject", "sample_room", "sample_camera", "place_objects"]

Rng = np.random.Generator
_FOOTPRINT_MARGIN = 0.03  # metres kept free around every footprint
_WALL_GAP = 0.03  # metres between a wall and the back of an object standing against it


@dataclass
class Room:
    """Room box plus flat decorations (doors, pictures) that belong to the background.

    ``surfaces``: parts of the room; material 0 floor, 1 walls, 2 ceiling, 3 door, 4 picture.
    """

    size_x: float
    size_y: float
    height: float
    surfaces: list[Part] = field(default_factory=list)


@dataclass
class Camera:
    """Camera pose: ``rotation`` float64 [3, 3] camera → world (columns = camera x right, y down,
    z forward in world coordinates), ``position`` float64 [3] metres."""

    rotation: np.ndarray
    position: np.ndarray

    @property
    def camera_to_world(self) -> np.ndarray:
        """float64 [4, 4] homogeneous camera → world transform."""
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = self.rotation, self.position
        return m

    @property
    def gravity(self) -> np.ndarray:
        """float64 [3] unit gravity direction (world -z) in camera coordinates; points down."""
        return self.rotation.T @ np.array([0.0, 0.0, -1.0])


@dataclass
class PlacedObject:
    """One annotated object: its class index, world-space parts and footprint corners [4, 2]."""

    label: int
    parts: list[Part]
    footprint: np.ndarray
    yaw: float
    position: np.ndarray  # float64 [3] origin of the object frame in the world (floor or top centre)


def sample_room(rng: Rng) -> Room:
    """Random room size and its six surfaces, plus a door and up to two pictures on the walls."""
    sx, sy, h = rng.uniform(3.0, 6.5), rng.uniform(3.0, 6.5), rng.uniform(2.4, 3.0)
    t = 0.1  # walls are slabs outside the room volume, so the inside faces lie exactly on the bounds
    surfaces = [
        box(-t, -t, -t, sx + t, sy + t, 0.0, 0),
        box(-t, -t, h, sx + t, sy + t, h + t, 2),
        box(-t, -t, 0.0, 0.0, sy + t, h, 1),
        box(sx, -t, 0.0, sx + t, sy + t, h, 1),
        box(0.0, -t, 0.0, sx, 0.0, h, 1),
        box(0.0, sy, 0.0, sx, sy + t, h, 1),
    ]
    # Flat decorations 1-2 cm in front of a wall; objects keep _WALL_GAP from walls, so they never touch.
    decorations = [(3, 0.85, 2.05, 0.0)] + [(4, rng.uniform(0.4, 1.0), rng.uniform(0.3, 0.7), 1.2)] * int(
        rng.integers(0, 3)
    )
    for material, width, height, z0 in decorations:
        wall = int(rng.integers(4))
        length = sx if wall < 2 else sy
        if length < width + 0.4:
            continue
        s = rng.uniform(0.2, length - width - 0.2)
        z0 = z0 + (rng.uniform(0.0, 0.5) if material == 4 else 0.0)
        th = 0.015
        if wall == 0:
            surfaces.append(box(s, 0.0, z0, s + width, th, z0 + height, material))
        elif wall == 1:
            surfaces.append(box(s, sy - th, z0, s + width, sy, z0 + height, material))
        elif wall == 2:
            surfaces.append(box(0.0, s, z0, th, s + width, z0 + height, material))
        else:
            surfaces.append(box(sx - th, s, z0, sx, s + width, z0 + height, material))
    return Room(sx, sy, h, surfaces)


def sample_camera(rng: Rng, room: Room) -> Camera:
    """A camera 0.3-1.2 m in front of a wall looking into the room.

    Height 1.0-1.7 m, looking down 5-30 degrees, rolled by up to ±5 degrees, yaw ±35 degrees
    around the direction away from the wall: how hand-held Kinect frames of NYU Depth v2 look.
    """
    wall = int(rng.integers(4))
    off = rng.uniform(0.3, 1.2)
    if wall < 2:  # walls y = 0 and y = size_y
        x = rng.uniform(0.5, room.size_x - 0.5)
        y, yaw = (off, np.pi / 2) if wall == 0 else (room.size_y - off, -np.pi / 2)
    else:  # walls x = 0 and x = size_x
        y = rng.uniform(0.5, room.size_y - 0.5)
        x, yaw = (off, 0.0) if wall == 2 else (room.size_x - off, np.pi)
    yaw += np.radians(rng.uniform(-35.0, 35.0))
    pitch, roll = np.radians(rng.uniform(5.0, 30.0)), np.radians(rng.uniform(-5.0, 5.0))
    forward = np.array([np.cos(yaw) * np.cos(pitch), np.sin(yaw) * np.cos(pitch), -np.sin(pitch)])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    down = np.cross(forward, right)  # camera y = z × x for a right-handed camera frame
    # Roll about the optical axis: rotate the right/down pair in their plane.
    cr, sr = np.cos(roll), np.sin(roll)
    right, down = cr * right + sr * down, -sr * right + cr * down
    rotation = np.column_stack([right, down, forward])
    return Camera(rotation, np.array([x, y, rng.uniform(1.0, 1.7)]))


def _corners(half_x: float, half_y: float, yaw: float, cx: float, cy: float) -> np.ndarray:
    """float64 [4, 2] corners of a rectangle with half sizes (half_x, half_y), rotated by yaw, at (cx, cy)."""
    c, s = np.cos(yaw), np.sin(yaw)
    ax, ay, bx, by = c * half_x, s * half_x, -s * half_y, c * half_y  # rotated half-axes
    return np.array(
        [
            [cx - ax - bx, cy - ay - by],
            [cx + ax - bx, cy + ay - by],
            [cx + ax + bx, cy + ay + by],
            [cx - ax + bx, cy - ay + by],
        ]
    )


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Separating-axis test for two convex quadrilaterals given as [4, 2] corners (counter-clockwise).

    Plain Python floats: the polygons have 4 corners, where numpy's per-call overhead dominates.
    """
    pa, pb = a.tolist(), b.tolist()
    for poly in (pa, pb):
        for i in range(4):
            (x0, y0), (x1, y1) = poly[i], poly[(i + 1) % 4]
            nx, ny = y0 - y1, x1 - x0  # edge normal
            proj_a = [nx * x + ny * y for x, y in pa]
            proj_b = [nx * x + ny * y for x, y in pb]
            if max(proj_a) < min(proj_b) or max(proj_b) < min(proj_a):
                return False
    return True


def _visible_floor_point(rng: Rng, camera: Camera, room: Room) -> tuple[float, float]:
    """A floor point 1-5 m ahead of the camera within about its horizontal field of view."""
    heading = np.arctan2(camera.rotation[1, 2], camera.rotation[0, 2])
    angle, dist = heading + np.radians(rng.uniform(-35.0, 35.0)), rng.uniform(1.0, 5.0)
    x = camera.position[0] + dist * np.cos(angle)
    y = camera.position[1] + dist * np.sin(angle)
    return float(np.clip(x, 0.2, room.size_x - 0.2)), float(np.clip(y, 0.2, room.size_y - 0.2))


def _floor_pose(
    rng: Rng, spec_wall: bool, obj: Assembly, camera: Camera, room: Room
) -> tuple[float, float, float]:
    """(x, y, yaw) proposal: back to a wall for wall objects, else near the view with random yaw.

    Walls are drawn with weight cos²(angle between the view heading and the wall's centre), floored
    at 0.05: mostly the wall the camera faces, sometimes a side wall, rarely the one behind.
    """
    if spec_wall:
        centres = np.array([[room.size_x / 2, 0.0], [room.size_x / 2, room.size_y],
                            [0.0, room.size_y / 2], [room.size_x, room.size_y / 2]])  # fmt: skip
        to_wall = centres - camera.position[:2]
        heading = camera.rotation[:2, 2] / np.linalg.norm(camera.rotation[:2, 2])
        cosine = to_wall @ heading / np.linalg.norm(to_wall, axis=1)
        weights = np.maximum(np.clip(cosine, 0.0, 1.0) ** 2, 0.05)
        wall = int(rng.choice(4, p=weights / weights.sum()))
        depth_off = obj.half_y + _WALL_GAP + _FOOTPRINT_MARGIN
        # The object's back (+y in its frame, world direction (-sin yaw, cos yaw)) faces the wall.
        if wall == 0:  # y = 0
            return rng.uniform(0.0, room.size_x), depth_off, np.pi
        if wall == 1:  # y = size_y
            return rng.uniform(0.0, room.size_x), room.size_y - depth_off, 0.0
        if wall == 2:  # x = 0
            return depth_off, rng.uniform(0.0, room.size_y), np.pi / 2
        return room.size_x - depth_off, rng.uniform(0.0, room.size_y), -np.pi / 2
    if rng.random() < 0.75:
        x, y = _visible_floor_point(rng, camera, room)
    else:
        x, y = rng.uniform(0.0, room.size_x), rng.uniform(0.0, room.size_y)
    return x, y, rng.uniform(-np.pi, np.pi)


def place_objects(rng: Rng, room: Room, camera: Camera, num_floor: int) -> list[PlacedObject]:
    """Place up to ``num_floor`` floor objects (rejection sampling), then items on their tops."""
    floor_names = [n for n in CLASS_NAMES if CLASS_SPECS[n].on_floor]
    weights = np.array([CLASS_SPECS[n].weight for n in floor_names])
    # The camera stands there: keep a 0.6 m square around its foot free.
    taken = [_corners(0.6, 0.6, 0.0, camera.position[0], camera.position[1])]
    placed: list[PlacedObject] = []
    supports: list[tuple[PlacedObject, Assembly]] = []
    for name in rng.choice(floor_names, size=num_floor, p=weights / weights.sum()):
        spec = CLASS_SPECS[str(name)]
        obj = build(str(name), rng)
        for _ in range(25):
            x, y, yaw = _floor_pose(rng, spec.against_wall, obj, camera, room)
            fp = _corners(obj.half_x + _FOOTPRINT_MARGIN, obj.half_y + _FOOTPRINT_MARGIN, yaw, x, y)
            inside = np.all((fp >= _WALL_GAP) & (fp <= [room.size_x - _WALL_GAP, room.size_y - _WALL_GAP]))
            if inside and not any(_overlap(fp, other) for other in taken):
                position = np.array([x, y, 0.0])
                item = PlacedObject(
                    CLASS_NAMES.index(str(name)), transform_parts(obj.parts, yaw, position), fp, yaw, position
                )
                placed.append(item)
                taken.append(fp)
                if obj.support is not None:
                    supports.append((item, obj))
                break
    for support, obj in supports:
        placed += _place_on_top(rng, support, obj)
    return placed


def _place_on_top(rng: Rng, support: PlacedObject, obj: Assembly) -> list[PlacedObject]:
    """0-3 small objects (monitor, lamp, box) on the top of a table, desk or night stand."""
    top_z, half_x, half_y = obj.support  # type: ignore[misc]
    is_desk = CLASS_NAMES[support.label] == "desk"
    names = ["monitor", "lamp", "box"]
    p = np.array([0.55, 0.2, 0.25]) if is_desk else np.array([0.2, 0.4, 0.4])
    on_top: list[PlacedObject] = []
    taken: list[np.ndarray] = []
    for _ in range(int(rng.integers(0, 4))):
        name = str(rng.choice(names, p=p))
        item = build(name, rng, on_surface=True)
        for _ in range(15):
            # Pose in the support's frame: monitors face the front of the desk, the rest any way.
            yaw_local = rng.uniform(-0.3, 0.3) if name == "monitor" else rng.uniform(-np.pi, np.pi)
            lx, ly = rng.uniform(-half_x, half_x), rng.uniform(-half_y, half_y)
            fp_local = _corners(item.half_x, item.half_y, yaw_local, lx, ly)
            if np.any(np.abs(fp_local) > [half_x, half_y]):
                continue
            fp = _corners(item.half_x + 0.01, item.half_y + 0.01, yaw_local + support.yaw, 0.0, 0.0)
            c, s = np.cos(support.yaw), np.sin(support.yaw)
            centre = support.position[:2] + np.array([c * lx - s * ly, s * lx + c * ly])
            fp = fp + centre
            if any(_overlap(fp, other) for other in taken):
                continue
            position = np.array([centre[0], centre[1], top_z])
            yaw = yaw_local + support.yaw
            on_top.append(
                PlacedObject(
                    CLASS_NAMES.index(name), transform_parts(item.parts, yaw, position), fp, yaw, position
                )
            )
            taken.append(fp)
            break
    return on_top
