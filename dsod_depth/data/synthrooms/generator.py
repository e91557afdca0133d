"""SynthRooms: procedural RGB-D indoor frames rendered by ray casting (Open3D ``RaycastingScene``).

Every frame is a function of (seed, split, index) alone: its generator is
``numpy.random.default_rng([seed, split stream, index])``, so any frame can be regenerated on its
own, in any order, in any process, and train and test never share a frame.

Per frame: a room (floor, walls, ceiling, a door, pictures), a camera 1.0-1.7 m high with pitch
and roll, 3-9 floor objects placed without overlap plus small objects on tables, desks and night
stands. One ray per pixel through the pixel centre (0-based grid, NYU intrinsics scaled to the
output size) gives exact z-depth, the hit triangle (→ instance and material) and its normal.
RGB = textured albedo × Lambertian shading with cast shadows; depth = Kinect-like sensor model
(:mod:`.sensor`) → ``raw_depth``, nearest-filled → ``depth``. Boxes are the tight extents of each
instance's visible pixels; objects with fewer than ``min_visible_fraction`` of the image's pixels
are dropped; objects whose projection is cut by the image border by more than
``difficult_truncation`` (or that reach behind the camera) are flagged ``difficult``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import open3d as o3d
from scipy import ndimage

from dsod_depth.data.sample import RGBDSample
from dsod_depth.data.synthrooms.appearance import (
    MaterialTable,
    hue_blend_materials,
    object_materials,
    room_materials,
    shade,
    surface,
    to_uint8,
)
from dsod_depth.data.synthrooms.assemblies import CLASS_NAMES
from dsod_depth.data.synthrooms.layout import (
    Camera,
    PlacedObject,
    Room,
    place_objects,
    sample_camera,
    sample_room,
)
from dsod_depth.data.synthrooms.sensor import KinectModel, fill_nearest, simulate_raw_depth
from dsod_depth.data.synthrooms_defaults import (
    APPEARANCE_MODELS,
    DEFAULT_APPEARANCE_MODEL,
    DEFAULT_RANDOMNESS,
)
from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import NYU_SIZE, Intrinsics

__all__ = ["SynthRooms", "SynthRoomsConfig", "SynthFrame", "SPLIT_STREAMS"]

SPLIT_STREAMS = {"train": 0, "test": 1, "val": 2}  # independent random streams per split
_LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709 luminance weights


@dataclass(frozen=True)
class SynthRoomsConfig:
    """What a SynthRooms frame looks like.

    width, height: output size in pixels (intrinsics = NYU colour camera scaled to it).
    appearance_model: ``materials`` (class-correlated material families, the default) or
        ``hue-blend`` (the legacy model of stores made before it; see :mod:`.appearance`).
    appearance_randomness: in [0, 1]; materials: the probability that a part's material family is
        drawn from all families instead of its class's own (1 = appearance independent of the
        class); hue-blend: the weight of the random colour against the class's canonical one.
    min_objects, max_objects: number of floor objects attempted per room (small objects on tops
        come in addition).
    min_visible_fraction: objects with fewer visible pixels than this fraction of the image are
        dropped from the ground truth (they stay in the image).
    difficult_truncation: fraction of the projected extent outside the image above which an object
        is flagged difficult.
    sensor: the depth sensor model.
    """

    width: int = 320
    height: int = 240
    appearance_randomness: float = DEFAULT_RANDOMNESS
    appearance_model: str = DEFAULT_APPEARANCE_MODEL
    min_objects: int = 3
    max_objects: int = 9
    min_visible_fraction: float = 0.0015
    difficult_truncation: float = 0.6
    sensor: KinectModel = field(default_factory=KinectModel)

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16:
            raise KitError(f"SynthRooms size must be at least 16×16 pixels, got {self.width}×{self.height}")
        if not 0.0 <= self.appearance_randomness <= 1.0:
            raise KitError(f"appearance_randomness must be in [0, 1], got {self.appearance_randomness}")
        if self.appearance_model not in APPEARANCE_MODELS:
            raise KitError(
                f"unknown SynthRooms appearance model {self.appearance_model!r}; choose one of "
                f"{', '.join(APPEARANCE_MODELS)}"
            )
        if not 1 <= self.min_objects <= self.max_objects:
            raise KitError(f"need 1 ≤ min_objects ≤ max_objects, got {self.min_objects}, {self.max_objects}")


@dataclass
class SynthFrame:
    """A generated frame with its full ground truth.

    sample: the :class:`RGBDSample` (meta holds ``gravity`` [3] and ``camera_to_world`` [4, 4]).
    exact_depth: float32 [H, W] noise-free z-depth in metres.
    instance_map: int32 [H, W] index into ``objects`` of the object seen at each pixel, -1 = room.
    objects: every placed object, annotated or not.
    box_objects: int64 [N] index into ``objects`` of each box of the sample.
    truncation: float64 [N] fraction of each box's object projected outside the image.
    """

    sample: RGBDSample
    exact_depth: np.ndarray
    instance_map: np.ndarray
    objects: list[PlacedObject]
    box_objects: np.ndarray
    truncation: np.ndarray
    camera: Camera
    room: Room


class SynthRooms:
    """Frame generator. ``SynthRooms(seed=0, split="train")[i]`` is the i-th training sample.

    ``num_threads`` is the number of threads Open3D may use for ray casting (1 = one core).
    """

    class_names: tuple[str, ...] = CLASS_NAMES

    def __init__(
        self,
        config: SynthRoomsConfig | None = None,
        *,
        seed: int = 0,
        split: str = "train",
        num_threads: int = 1,
    ) -> None:
        if split not in SPLIT_STREAMS:
            raise KitError(f"unknown SynthRooms split {split!r}; choose one of {sorted(SPLIT_STREAMS)}")
        self.config = config or SynthRoomsConfig()
        self.seed, self.split, self.num_threads = int(seed), split, int(num_threads)
        w, h = self.config.width, self.config.height
        self.intrinsics = Intrinsics.nyu().resize(w / NYU_SIZE[0], h / NYU_SIZE[1])
        k = self.intrinsics
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        # Camera-frame ray per pixel centre with unit z, so the ray parameter of a hit is its z-depth.
        rays = np.stack([(u - k.cx) / k.fx, (v - k.cy) / k.fy, np.ones_like(u)], -1)  # [H, W, 3]
        self._rays_camera = rays.reshape(-1, 3).astype(np.float32)  # [H·W, 3]

    def __getitem__(self, index: int) -> RGBDSample:
        return self.frame(index).sample

    def sample(self, index: int) -> RGBDSample:
        """Frame ``index`` as an :class:`RGBDSample` (a picklable bound method for worker pools)."""
        return self.frame(index).sample

    def rng(self, index: int) -> np.random.Generator:
        """The generator of frame ``index`` (independent of every other frame)."""
        if index < 0:
            raise KitError(f"SynthRooms frame index must be ≥ 0, got {index}")
        return np.random.default_rng([self.seed, SPLIT_STREAMS[self.split], int(index)])

    def frame(self, index: int) -> SynthFrame:
        """Generate frame ``index`` with its full ground truth."""
        cfg = self.config
        rng = self.rng(index)
        room = sample_room(rng)
        camera = sample_camera(rng, room)
        num_floor = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
        objects = place_objects(rng, room, camera, num_floor)
        materials = MaterialTable.concat([room_materials(rng)] + self._object_materials(rng, objects))
        hit = self._cast(room, objects, camera)
        height, width = cfg.height, cfg.width

        owner, points, normals, dirs = hit["owner"], hit["points"], hit["normals"], hit["dirs"]
        local = points.copy()
        obj_px = np.flatnonzero(owner >= 0)
        if obj_px.size:  # world → object frame (undo the translation, then the yaw about z)
            yaw = np.array([o.yaw for o in objects], dtype=np.float32)[owner[obj_px]]
            offset = points[obj_px] - np.array([o.position for o in objects], dtype=np.float32)[owner[obj_px]]
            c, s = np.cos(yaw), np.sin(yaw)
            local[obj_px] = np.column_stack(
                [c * offset[:, 0] + s * offset[:, 1], -s * offset[:, 0] + c * offset[:, 1], offset[:, 2]]
            )
        colour, glow = surface(materials, hit["material"], local)
        light = np.array(
            [rng.uniform(0.2, 0.8) * room.size_x, rng.uniform(0.2, 0.8) * room.size_y, room.height - 0.15],
            dtype=np.float32,
        )
        to_light = light - points  # [P, 3]
        dist = np.sqrt(np.einsum("ij,ij->i", to_light, to_light))
        cos = np.einsum("ij,ij->i", normals, to_light) / np.maximum(dist, 1e-6)
        # Shadow rays from every pixel (nearly all face the light: it hangs inside the room).
        lit = self._unblocked(hit["occluders"], points + 1e-3 * normals, light)
        radiance = shade(colour, cos, dist, lit, ambient=rng.uniform(0.25, 0.45))
        light_sources = None
        if glow is not None:  # lit screens and lamp shades
            radiance += glow
            light_sources = glow.any(axis=1).reshape(height, width)
        rgb = to_uint8(radiance.reshape(height, width, 3), rng, light_sources=light_sources)  # → [H, W, 3]

        exact = hit["z"].reshape(height, width)  # [P] → [H, W]
        cos_inc = -np.einsum("ij,ij->i", normals, dirs) / np.sqrt(np.einsum("ij,ij->i", dirs, dirs))
        raw = simulate_raw_depth(
            exact,
            (colour @ _LUMA).reshape(height, width),
            cos_inc.reshape(height, width),
            rng,
            cfg.sensor,
        )
        depth = fill_nearest(raw)

        instance_map = owner.reshape(height, width).astype(np.int32)  # [P] → [H, W]
        boxes, keep, truncation = self._boxes(instance_map, objects, camera)
        sample = RGBDSample(
            rgb=rgb,
            depth=depth,
            raw_depth=raw,
            intrinsics=self.intrinsics,
            boxes=boxes,
            labels=np.array([objects[k].label for k in keep], dtype=np.int64),
            difficult=truncation > cfg.difficult_truncation,
            image_id=f"{self.split}-{index:06d}",
            meta={"gravity": camera.gravity, "camera_to_world": camera.camera_to_world},
        )
        return SynthFrame(sample, exact, instance_map, objects, keep, truncation, camera, room)

    def _object_materials(self, rng: np.random.Generator, objects: list[PlacedObject]) -> list[MaterialTable]:
        """Three materials per object, drawn by the configured appearance model."""
        randomness = self.config.appearance_randomness
        if self.config.appearance_model == "hue-blend":
            return [hue_blend_materials(rng, o.label, len(CLASS_NAMES), randomness) for o in objects]
        return [object_materials(rng, CLASS_NAMES[o.label], randomness) for o in objects]

    def _cast(self, room: Room, objects: list[PlacedObject], camera: Camera) -> dict[str, np.ndarray]:
        """One ray per pixel into one triangle soup of the room and all objects."""
        parts = [(p, -1, p.material) for p in room.surfaces]
        for k, obj in enumerate(objects):
            # Object k's materials follow the room's 5 in the material table: 5 + 3k + part material.
            parts += [(p, k, 5 + 3 * k + p.material) for p in obj.parts]
        offsets = np.cumsum([0] + [len(p.vertices) for p, _, _ in parts[:-1]])
        vertices = np.concatenate([p.vertices for p, _, _ in parts]).astype(np.float32)
        triangles = np.concatenate([p.triangles + off for (p, _, _), off in zip(parts, offsets)]).astype(
            np.uint32
        )
        tri_owner = np.concatenate([np.full(len(p.triangles), k) for p, k, _ in parts])
        tri_material = np.concatenate([np.full(len(p.triangles), m) for p, _, m in parts])

        scene = o3d.t.geometry.RaycastingScene(nthreads=self.num_threads)
        scene.add_triangles(o3d.core.Tensor(vertices), o3d.core.Tensor(triangles))
        # Shadow casters: the objects only. The room is a convex box with the light inside and its
        # decorations lie flat on the walls, so it never shadows anything; a scene without it
        # lets most shadow rays leave the acceleration structure at once.
        occluders = None
        room_v, room_t = (
            sum(len(p.vertices) for p in room.surfaces),
            sum(len(p.triangles) for p in room.surfaces),
        )
        if len(triangles) > room_t:
            occluders = o3d.t.geometry.RaycastingScene(nthreads=self.num_threads)
            occluders.add_triangles(
                o3d.core.Tensor(np.ascontiguousarray(vertices[room_v:])),
                o3d.core.Tensor(np.ascontiguousarray(triangles[room_t:] - np.uint32(room_v))),
            )
        r = camera.rotation.astype(np.float32)
        # World directions [H·W, 3] = R · (x, y, 1): two broadcast multiply-adds beat a K=3 matmul.
        dirs = self._rays_camera[:, :1] * r[:, 0] + self._rays_camera[:, 1:2] * r[:, 1] + r[:, 2]
        rays = np.empty((len(dirs), 6), dtype=np.float32)  # [H·W, 6] origin, direction
        rays[:, :3], rays[:, 3:] = camera.position, dirs
        result = scene.cast_rays(o3d.core.Tensor(rays), nthreads=self.num_threads)
        z = result["t_hit"].numpy()
        if not np.all(np.isfinite(z)):  # every ray must hit: the room is closed
            raise RuntimeError("a SynthRooms ray left the room: the room mesh is not closed")
        prim = result["primitive_ids"].numpy()
        normals = result["primitive_normals"].numpy()
        # Triangles are two-sided for the ray caster; make every normal face the camera.
        normals[np.einsum("ij,ij->i", normals, dirs) > 0] *= -1.0
        return {
            "occluders": occluders,
            "z": z,
            "dirs": dirs,
            "points": camera.position.astype(np.float32) + z[:, None] * dirs,
            "normals": normals,
            "owner": tri_owner[prim],
            "material": tri_material[prim],
        }

    def _unblocked(
        self, scene: o3d.t.geometry.RaycastingScene | None, points: np.ndarray, light: np.ndarray
    ) -> np.ndarray:
        """bool [P]: True where nothing in ``scene`` blocks the segment from each float32 [P, 3] point
        to the light [3]."""
        if scene is None:
            return np.ones(len(points), dtype=bool)
        rays = np.empty((len(points), 6), dtype=np.float32)  # [P, 6] origin, direction (unnormalised)
        rays[:, :3], rays[:, 3:] = points, light - points
        blocked = scene.test_occlusions(
            o3d.core.Tensor(rays), tnear=1e-4, tfar=0.999, nthreads=self.num_threads
        )
        return ~blocked.numpy().astype(bool)

    def _boxes(
        self, instance_map: np.ndarray, objects: list[PlacedObject], camera: Camera
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tight boxes of the visible pixels of each object.

        Returns (float32 [N, 4] boxes, int64 [N] object index, float64 [N] truncation).
        """
        cfg = self.config
        height, width = instance_map.shape
        counts = np.bincount(instance_map.ravel() + 1, minlength=len(objects) + 1)[1:]  # pixels per object
        min_pixels = max(cfg.min_visible_fraction * height * width, 4.0)
        slices = ndimage.find_objects(instance_map + 1, max_label=len(objects))  # label k + 1 = object k
        boxes, keep, truncation = [], [], []
        for k, sl in enumerate(slices):
            if sl is None or counts[k] < min_pixels:
                continue
            rows, cols = sl
            # Pixel i spans [i, i + 1]: the extent of columns a..b is [a, b + 1] = [start, stop].
            boxes.append([cols.start, rows.start, cols.stop, rows.stop])
            keep.append(k)
            truncation.append(self._truncation(objects[k], camera))
        return (
            np.array(boxes, dtype=np.float32).reshape(-1, 4),
            np.array(keep, dtype=np.int64),
            np.array(truncation, dtype=np.float64),
        )

    def _truncation(self, obj: PlacedObject, camera: Camera) -> float:
        """Fraction of the object's projected bounding box outside the image (1 if it reaches behind)."""
        k = self.intrinsics
        points = np.concatenate([p.vertices for p in obj.parts])  # [V, 3] world
        cam = (points - camera.position) @ camera.rotation  # [V, 3] camera frame (R^T p)
        if np.any(cam[:, 2] < 0.05):
            return 1.0
        # Continuous coordinates: pixel centre u sits at u + 0.5.
        u = k.fx * cam[:, 0] / cam[:, 2] + k.cx + 0.5
        v = k.fy * cam[:, 1] / cam[:, 2] + k.cy + 0.5
        area = (u.max() - u.min()) * (v.max() - v.min())
        inside_w = max(0.0, min(u.max(), self.config.width) - max(u.min(), 0.0))
        inside_h = max(0.0, min(v.max(), self.config.height) - max(v.min(), 0.0))
        return float(1.0 - inside_w * inside_h / max(area, 1e-9))
