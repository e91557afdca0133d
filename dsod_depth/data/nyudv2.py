"""NYU Depth v2 labeled set → prepared store, without MATLAB (REFERENCE §3).

Reads ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3, i.e. HDF5 behind a 512-byte MATLAB header) with
h5py one frame at a time — the file is ~2.8 GB and is never loaded whole — and the official
``splits.mat`` (MATLAB 5, scipy.io). Every (label, instance) pair of a frame is one object; objects
whose label is one of the 19 detection classes of Gupta et al. (2014) become boxes: the tight
extent of the object's pixels inside the crop. Depth is the in-painted ``depths`` (filled) and
``rawDepths`` (0 = sensor hole), in metres. The writer adds HHA and the channel statistics.

h5py's view of the MATLAB variables has every axis reversed: ``images`` is (N, 3, W, H), the depth
and label maps (N, W, H), and cell arrays of strings (``names``, ``scenes``) are arrays of HDF5
object references to uint16 character arrays.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dsod_depth.data.sample import RGBDSample
from dsod_depth.data.summary import PrepareReport
from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics

__all__ = [
    "DETECTION_CLASSES", "CROPS", "LABELED_FILE", "SPLITS_FILE", "NyuFrames", "class_ids_from_names",
    "object_boxes", "read_labeled_header", "read_splits", "prepare_nyudv2",
]  # fmt: skip

LABELED_FILE = "nyu_depth_v2_labeled.mat"
SPLITS_FILE = "splits.mat"
HEIGHT, WIDTH = 480, 640  # the labeled frames are registered to the 640×480 colour camera

# Gupta et al. (ECCV 2014) detection classes, spelled as in the 894-name list (REFERENCE §3). The
# order is the 0-based label order of the store; SUN RGB-D uses the same order.
DETECTION_CLASSES = (
    "bathtub", "bed", "bookshelf", "box", "chair", "counter", "desk", "door", "dresser", "garbage bin",
    "lamp", "monitor", "night stand", "pillow", "sink", "sofa", "table", "television", "toilet",
)  # fmt: skip

# Crops as 0-based half-open (row0, row1, col0, col1) on the 480×640 frame. ``gupta``: rows 46..470,
# cols 41..600 (1-based inclusive) = 425×560, the detection crop of Gupta et al.; ``nyu``: the NYU
# toolbox's valid region, rows 45..471, cols 41..601 = 427×561; ``none``: the whole frame.
CROPS: dict[str, tuple[int, int, int, int]] = {
    "gupta": (45, 470, 40, 600),
    "nyu": (44, 471, 40, 601),
    "none": (0, HEIGHT, 0, WIDTH),
}

# Variables read per frame and the h5py shape of one frame (MATLAB axes reversed).
_FRAME_VARIABLES = {
    "images": (3, WIDTH, HEIGHT),
    "depths": (WIDTH, HEIGHT),
    "rawDepths": (WIDTH, HEIGHT),
    "labels": (WIDTH, HEIGHT),
    "instances": (WIDTH, HEIGHT),
}
# Element types each variable must have (numpy dtype kind, largest item size in bytes): colour
# uint8, depth in floating metres, label and instance ids unsigned of at most 16 bits (the real
# file's uint16 / uint8; larger ids would make the label lookup table of object_boxes huge).
_FRAME_DTYPES = {"images": ("u", 1), "depths": ("f", 8), "rawDepths": ("f", 8), "labels": ("u", 2),
                 "instances": ("u", 2)}  # fmt: skip
_KEY_SHIFT = 1 << 16  # key = label * 65536 + instance is unique per object (instances are uint8 in the file)


def _h5py():
    import h5py  # heavy: imported when a file is opened, not when the CLI builds its parser

    return h5py


def _decode_matlab_string(dataset) -> str:
    """A MATLAB char array stored by v7.3 (uint16 code units, any shape) → str; empty arrays → ''."""
    if dataset.attrs.get("MATLAB_empty", 0):
        return ""  # MATLAB stores '' as a uint64 shape vector flagged MATLAB_empty
    codes = np.asarray(dataset[()]).ravel()  # (L, 1) → (L,): one string is one column of code units
    return codes.astype("<u2").tobytes().decode("utf-16-le")


def read_cell_strings(f, name: str) -> list[str]:
    """Decode a MATLAB cell array of strings (``names``, ``scenes``) into a Python list.

    Args:
        f: open h5py File of a v7.3 MAT-file.
        name: variable name; its dataset holds HDF5 object references, shape (1, K) or (K, 1).
    """
    refs = f[name][()].ravel()  # (1, K) → (K,) references, MATLAB column order
    return [_decode_matlab_string(f[ref]) for ref in refs]


def read_labeled_header(path: str | os.PathLike) -> tuple[int, list[str]]:
    """Check ``nyu_depth_v2_labeled.mat`` and return (number of frames, the 894 class names).

    Verifies that the file is MATLAB v7.3/HDF5, readable to its end (a truncated download fails
    here), and has the per-frame variables in the real layout. Raises :class:`KitError` naming
    the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise KitError(
            f"{path} not found; download nyu_depth_v2_labeled.mat from the NYU Depth v2 page "
            "(see datasets/nyudv2/README.md) into --source"
        )
    h5py = _h5py()
    if not h5py.is_hdf5(path):
        raise KitError(f"{path} is not a MATLAB v7.3 (HDF5) file{_matlab_version_hint(path)}; "
                       "use the official nyu_depth_v2_labeled.mat")  # fmt: skip
    try:
        with h5py.File(path, "r") as f:
            missing = [v for v in (*_FRAME_VARIABLES, "names") if v not in f]
            if missing:
                raise KitError(f"{path} lacks the variables {', '.join(missing)}; it is not the NYU Depth v2 "
                               "labeled set (nyu_depth_v2_labeled.mat)")  # fmt: skip
            if not f["images"].shape:
                raise KitError(f"{path}: variable 'images' is a scalar, expected [N, 3, 640, 480] frames")
            num_frames = int(f["images"].shape[0])
            for var, frame_shape in _FRAME_VARIABLES.items():
                shape = tuple(f[var].shape)
                if shape != (num_frames, *frame_shape):
                    raise KitError(
                        f"{path}: variable {var!r} has shape {list(shape)}, expected "
                        f"{[num_frames, *frame_shape]} (h5py order of the 640×480 labeled frames)"
                    )
                kind, max_size = _FRAME_DTYPES[var]
                dtype = f[var].dtype
                if dtype.kind != kind or dtype.itemsize > max_size:
                    raise KitError(f"{path}: variable {var!r} has element type {dtype}, expected "
                                   f"{'uint8' if var == 'images' else 'single' if kind == 'f' else 'uint16'} "
                                   "as in the official file")  # fmt: skip
            names = read_cell_strings(f, "names")
            # Touch the last frame: HDF5 only notices data missing past a truncation when reading it.
            f["labels"][num_frames - 1, :1, :1]
    except KitError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:  # h5py: RuntimeError
        raise KitError(f"{path} is truncated or damaged ({err}); download it again") from None
    return num_frames, names


def _matlab_version_hint(path: Path) -> str:
    from scipy.io.matlab import matfile_version

    try:
        major, minor = matfile_version(str(path))
    except Exception:  # not a MAT-file at all: no hint to give
        return ""
    return f" (it is a MATLAB {'v4' if major == 0 else 'v5/v7'} file)" if major < 2 else ""


def read_splits(path: str | os.PathLike, num_frames: int) -> dict[str, np.ndarray]:
    """Official split → {"train": int64 [795], "test": int64 [654]} 0-based frame indices.

    ``splits.mat`` holds ``trainNdxs`` and ``testNdxs`` as 1-based column vectors (REFERENCE §3).
    Raises :class:`KitError` when the file is missing, unreadable, out of range or overlapping.
    """
    path = Path(path)
    if not path.is_file():
        raise KitError(f"{path} not found; put the official splits.mat (trainNdxs/testNdxs) in --source "
                       "or pass --split-file")  # fmt: skip
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
        train = np.asarray(mat["trainNdxs"], dtype=np.int64).ravel() - 1  # 1-based → 0-based
        test = np.asarray(mat["testNdxs"], dtype=np.int64).ravel() - 1
    except KeyError as err:
        raise KitError(f"{path} lacks {err}; expected NYU's splits.mat (trainNdxs, testNdxs)") from None
    except Exception as err:  # scipy raises ValueError/TypeError/NotImplementedError on bad files
        raise KitError(f"{path} is not a readable MATLAB file ({err}); use the official splits.mat") from None
    for name, idx in (("trainNdxs", train), ("testNdxs", test)):
        if idx.size == 0 or idx.min() < 0 or idx.max() >= num_frames:
            raise KitError(f"{path}: {name} must be 1-based indices in 1..{num_frames}")
    if np.intersect1d(train, test).size:
        raise KitError(f"{path}: trainNdxs and testNdxs overlap; use the official splits.mat")
    return {"train": train, "test": test}


def class_ids_from_names(names: Sequence[str], classes: Sequence[str] = DETECTION_CLASSES) -> np.ndarray:
    """1-based ids of ``classes`` in the label name list (``names[id - 1] == class``) → int64 [len(classes)].

    The real file gives 136, 157, 88, 26, 5, 7, 36, 28, 169, 12, 144, 49, 158, 119, 24, 83, 19, 172,
    124 for the 19 detection classes (REFERENCE §3); looking them up by name keeps the mapping right.
    """
    position = {name: i + 1 for i, name in reversed(list(enumerate(names)))}  # first occurrence wins
    missing = [c for c in classes if c not in position]
    if missing:
        raise KitError(f"the label names of the file lack the detection classes {missing}; "
                       "is this the official nyu_depth_v2_labeled.mat?")  # fmt: skip
    return np.array([position[c] for c in classes], dtype=np.int64)


def object_boxes(
    labels: np.ndarray, instances: np.ndarray, class_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Tight boxes of the objects of the detection classes in one (cropped) frame.

    Args:
        labels: integer [H, W] 1-based class ids into the 894 names, 0 = unlabeled.
        instances: integer [H, W] instance ids < 65536; they restart per class, so an object is a
            (label, instance) pair (REFERENCE §3).
        class_ids: int64 [K] 1-based ids of the detection classes; class_ids[k] gets label k.

    Returns:
        boxes float32 [N, 4] x1, y1, x2, y2 continuous pixels (pixel i spans [i, i + 1], so a mask
        over columns a..b gives x1 = a, x2 = b + 1), and labels int64 [N] 0-based into class_ids,
        ordered by (class id, instance id).
    """
    from scipy import ndimage

    lut = np.full(int(max(labels.max(initial=0), class_ids.max())) + 1, -1, dtype=np.int64)
    lut[class_ids] = np.arange(len(class_ids))
    cls = lut[labels]  # [H, W] 0-based detection class, -1 elsewhere (label 0 included)
    keep = cls >= 0
    keys = labels[keep].astype(np.int64) * _KEY_SHIFT + instances[keep].astype(np.int64)
    uniq, inverse = np.unique(keys, return_inverse=True)
    compact = np.zeros(labels.shape, dtype=np.int32)
    compact[keep] = inverse.ravel() + 1  # object k (in key order) → region k + 1
    slices = ndimage.find_objects(compact)  # slices[k] = (rows, cols) bounding object k
    boxes = np.array([[sx.start, sy.start, sx.stop, sy.stop] for sy, sx in slices], dtype=np.float32)
    return boxes.reshape(-1, 4), lut[uniq // _KEY_SHIFT]  # [N, 4] even when N = 0


class NyuFrames:
    """Frame reader for one split: picklable callable index → :class:`RGBDSample`.

    Opens the labeled file lazily, once per process (h5py handles survive neither fork nor
    pickling), and reads only the slices of the requested frame.
    """

    def __init__(
        self, path: str | os.PathLike, frames: np.ndarray, class_ids: np.ndarray, crop: str = "gupta"
    ) -> None:
        if crop not in CROPS:
            raise KitError(f"unknown NYU crop {crop!r}; choose one of: {', '.join(CROPS)}")
        self.path, self.crop = str(path), crop
        self.frames = np.asarray(frames, dtype=np.int64)  # 0-based frame numbers of the split
        self.class_ids = np.asarray(class_ids, dtype=np.int64)
        self._h5 = None
        self._pid = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_h5"], state["_pid"] = None, None  # every process opens its own handle
        return state

    def _file(self):
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = _h5py().File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the cropped frames."""
        r0, r1, c0, c1 = CROPS[self.crop]
        return r1 - r0, c1 - c0

    def __len__(self) -> int:
        return len(self.frames)

    def __call__(self, index: int) -> RGBDSample:
        n = int(self.frames[index])
        f = self._file()
        r0, r1, c0, c1 = CROPS[self.crop]
        try:
            # One frame per read; h5py gives (C, W, H) / (W, H): transpose to (H, W, C) / (H, W).
            rgb = f["images"][n].transpose(2, 1, 0)[r0:r1, c0:c1]  # [3, W, H] → [H, W, 3]
            depth = f["depths"][n].T[r0:r1, c0:c1]  # [W, H] → [H, W]
            raw = f["rawDepths"][n].T[r0:r1, c0:c1]
            labels = f["labels"][n].T[r0:r1, c0:c1]
            instances = f["instances"][n].T[r0:r1, c0:c1]
        except (OSError, ValueError, RuntimeError) as err:
            raise KitError(f"{self.path}: frame {n + 1} is unreadable ({err}); the file is damaged") from None
        boxes, box_labels = object_boxes(labels, instances, self.class_ids)
        return RGBDSample(
            rgb=np.ascontiguousarray(rgb, dtype=np.uint8),
            depth=np.ascontiguousarray(depth, dtype=np.float32),
            raw_depth=np.ascontiguousarray(raw, dtype=np.float32),
            # Intrinsics.nyu() is 0-based already; cropping shifts the principal point by the offset.
            intrinsics=Intrinsics.nyu().crop(c0, r0),
            boxes=boxes,
            labels=box_labels,
            difficult=np.zeros(len(boxes), dtype=bool),  # NYU has no difficult flags (REFERENCE §3)
            image_id=f"nyu{n + 1:04d}",  # the official 1-based frame number, as SUN RGB-D's NYU0001
        )


def prepare_nyudv2(
    source: str | os.PathLike,
    out: str | os.PathLike,
    *,
    crop: str = "gupta",
    split_file: str | os.PathLike | None = None,
    with_hha: bool = True,
    workers: int = 1,
    progress: bool = True,
    compression: str = "lz4",
) -> PrepareReport:
    """Convert the NYU Depth v2 labeled set in ``source`` into a prepared store in ``out``.

    ``source`` holds ``nyu_depth_v2_labeled.mat`` and ``splits.mat`` (or give ``split_file``);
    ``crop`` is one of :data:`CROPS`. Everything is checked before ``out`` is touched, so a wrong or
    truncated file leaves no store. Returns the report (``files``: split → file; every frame of the
    official split is kept); rerunning resumes an interrupted preparation.
    """
    from dsod_depth.data.store_writer import SplitSource, write_store

    source = Path(source)
    if not source.is_dir():
        raise KitError(f"--source {source} is not a folder; give the folder holding {LABELED_FILE}")
    if crop not in CROPS:
        raise KitError(f"unknown NYU crop {crop!r}; choose one of: {', '.join(CROPS)}")
    labeled = source / LABELED_FILE
    num_frames, names = read_labeled_header(labeled)
    splits = read_splits(Path(split_file) if split_file else source / SPLITS_FILE, num_frames)
    class_ids = class_ids_from_names(names)
    sources = []
    for name in ("train", "test"):
        frames = NyuFrames(labeled, splits[name], class_ids, crop)
        sources.append(SplitSource(name, len(frames), frames, *frames.size))
    files = write_store(
        out,
        dataset="nyudv2",
        class_names=DETECTION_CLASSES,
        splits=sources,
        prep_args={
            "crop": crop,
            "classes": "gupta2014-19",
            "num_frames": num_frames,
            "num_train": len(splits["train"]),
            "num_test": len(splits["test"]),
        },
        with_hha=with_hha,
        raw_separate=True,  # the colourisation in-painting also changes measured pixels slightly
        workers=workers,
        progress=progress,
        compression=compression,
    )
    return PrepareReport(files=files)
