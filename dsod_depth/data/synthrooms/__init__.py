"""SynthRooms: a procedural RGB-D indoor-scene detection dataset that needs no download.

``SynthRooms(seed=0, split="train")[i]`` → :class:`~dsod_depth.data.RGBDSample`;
``SynthRooms(...).frame(i)`` → :class:`SynthFrame` with instance masks, exact depth and scene.
Modules: :mod:`.primitives` (convex meshes), :mod:`.assemblies` (the object classes),
:mod:`.layout` (room, camera, placement), :mod:`.appearance` (materials, textures, shading),
:mod:`.sensor` (Kinect-like depth), :mod:`.generator` (ray casting and ground truth).
"""

from dsod_depth.data.synthrooms.assemblies import CLASS_NAMES
from dsod_depth.data.synthrooms.generator import SPLIT_STREAMS, SynthFrame, SynthRooms, SynthRoomsConfig
from dsod_depth.data.synthrooms.sensor import KinectModel

__all__ = ["CLASS_NAMES", "KinectModel", "SPLIT_STREAMS", "SynthFrame", "SynthRooms", "SynthRoomsConfig"]
