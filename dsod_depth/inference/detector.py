"""A trained detector as a Python object: raw RGB-D frames in, boxes in the frames' own pixels out.

>>> from dsod_depth import Detector
>>> det = Detector.from_checkpoint("runs/demo/runs/synthrooms/hha_scratch_s0")
>>> result = det.predict(rgb="frame.png", depth="depth.png", intrinsics="nyu")
>>> result.boxes, result.scores, result.class_names  # float32 [K, 4] xyxy pixels, [K], K names

:meth:`Detector.predict` encodes each frame exactly as ``prepare`` and the data loader did for
training: depth is rounded to whole millimetres (what the store keeps), every channel group is made
by :func:`~dsod_depth.data.loader.group_tensors` (HHA and the other encoders from that depth and the
camera), resized by :class:`~dsod_depth.data.transforms.Resize` and normalised by
:func:`~dsod_depth.data.loader.network_input` with the training statistics the checkpoint records.
Boxes are decoded and clipped by the functions ``eval`` uses (:func:`~dsod_depth.detection.postprocess.
postprocess`, :func:`~dsod_depth.detection.postprocess.to_frame_pixels`), so ``predict`` on frames of
a store's test split gives the detections ``eval`` writes. Dataset-specific crops (NYU's border crop)
are not applied: a user's frame is used whole.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from dsod_depth.errors import KitError
from dsod_depth.geometry.camera import Intrinsics, read_sunrgbd_intrinsics

if TYPE_CHECKING:
    from dsod_depth.data.transforms import TensorSample

__all__ = ["Detector", "Prediction"]

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Prediction:
    """Detections of one frame, best first.

    boxes: float32 [K, 4] x1, y1, x2, y2 in the frame's pixels (continuous: pixel i spans [i, i + 1]),
        clipped to the frame; scores: float32 [K] class probabilities; labels: int64 [K] 0-based class
        indices; class_names: the K names; size: (height, width) of the frame.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.scores)


def _camera(value: Any) -> Intrinsics | None:
    if value is None or isinstance(value, Intrinsics):
        return value
    if isinstance(value, os.PathLike) or (isinstance(value, str) and value.endswith(".txt")):
        return read_sunrgbd_intrinsics(value)  # an intrinsics.txt (SUN RGB-D layout)
    if isinstance(value, str):
        return Intrinsics.parse(value)
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4:
        raise KitError(
            f"intrinsics must be an Intrinsics, 'nyu', (fx, fy, cx, cy) or an intrinsics.txt; got {value!r}"
        )
    return Intrinsics(*values)


def _is_camera(value: Any) -> bool:
    """One camera given as (fx, fy, cx, cy) numbers, rather than a list with one camera per frame."""
    return (
        isinstance(value, (list, tuple))
        and len(value) == 4
        and all(isinstance(v, (int, float)) for v in value)
    )


def _per_frame(value: Any, count: int, what: str) -> list[Any]:
    """One value per frame: a list/tuple of per-frame values (its length checked), else the same value
    for every frame."""
    if isinstance(value, (list, tuple)) and not _is_camera(value):
        if len(value) != count:
            raise KitError(f"{len(value)} {what} values for {count} frames; give one per frame")
        return list(value)
    return [value] * count


class Detector:
    """A trained detector with everything needed to run it on new frames (module docstring).

    Build with :meth:`from_checkpoint`. Attributes: ``model`` (the ``torch.nn.Module``, eval mode, on
    ``device``), ``classes`` (names, label i ↔ ``classes[i]``), ``modality`` (``"rgb+hha"``),
    ``groups`` (channel groups in input order), ``input_size`` ((height, width) of the network
    input), ``record`` (the checkpoint's inference record), ``needs_camera``.
    """

    def __init__(self, model: torch.nn.Module, record: dict[str, Any], device: torch.device) -> None:
        self.model = model.eval().to(device)
        self.record = record
        self.device = device
        self.classes: list[str] = list(record["class_names"])
        self.groups: list[str] = [g["name"] for g in record["groups"]]
        self.modality: str = "+".join(self.groups)
        self.input_size: tuple[int, int] = (int(record["input_size"][0]), int(record["input_size"][1]))
        self.needs_camera = any(g.get("needs_camera", False) for g in record["groups"])
        self.uses_depth = self.groups != ["rgb"]
        self.postprocess_options = dict(record["postprocess"])
        self._mean = torch.tensor([v for g in record["groups"] for v in g["mean"]])[
            :, None, None
        ]  # [C, 1, 1]
        self._std = torch.tensor([v for g in record["groups"] for v in g["std"]])[:, None, None]  # [C, 1, 1]

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_checkpoint(
        cls, path: PathLike, device: str = "auto", *, store: PathLike | None = None
    ) -> Detector:
        """The detector of a run folder (its ``checkpoints/last.pt``) or of a checkpoint file.

        ``store`` is needed only for checkpoints written before they recorded their inference
        settings: the architecture then comes from the stored config and the normalisation from the
        store's training statistics. ``device``: ``auto`` (CUDA when visible), ``cpu`` or ``cuda``.
        """
        from dsod_depth.engine.checkpoint import load_checkpoint, read_inference_record
        from dsod_depth.engine.device import select_device
        from dsod_depth.engine.run_dir import resolve_checkpoint
        from dsod_depth.models import rebuild_detector

        ckpt_path, _ = resolve_checkpoint(path)
        checkpoint = load_checkpoint(ckpt_path)
        if checkpoint.get("kind") == "backbone":
            raise KitError(
                f"{ckpt_path} is a pretraining checkpoint (a backbone without detection heads); pass a "
                "detector run written by `dsod-depth train`"
            )
        if "inference" not in checkpoint and store is not None:
            record = _record_from_config(checkpoint, ckpt_path, store)
        else:
            record = read_inference_record(checkpoint, ckpt_path)
        model = rebuild_detector(record["build"])
        try:
            model.load_state_dict(checkpoint["model"])
        except RuntimeError as err:
            raise KitError(
                f"{ckpt_path}: weights do not fit the model ({str(err).splitlines()[0]})"
            ) from None
        return cls(model, record, select_device(device, option="--device"))

    # ------------------------------------------------------------------ encoding

    def encode(
        self,
        rgb: np.ndarray | None,
        depth: np.ndarray | None,
        raw_depth: np.ndarray | None,
        intrinsics: Any,
    ) -> torch.Tensor:
        """One frame → the network input, float32 [C, H_in, W_in] normalised (module docstring).

        ``rgb`` uint8 [H, W, 3]; ``depth`` filled and ``raw_depth`` raw depth, float32 metres [H, W]
        (0 = hole; raw None = the filled depth); ``intrinsics`` the frame's camera, in any form
        :meth:`predict` takes.
        """
        return self.network_input(self.frame_groups(rgb, depth, raw_depth, intrinsics))

    def network_input(self, sample: TensorSample) -> torch.Tensor:
        """A frame's groups (:meth:`frame_groups`) resized and normalised: float32 [C, H_in, W_in]."""
        from dsod_depth.data.loader import network_input
        from dsod_depth.data.transforms import Resize

        sample = Resize(self.input_size)(sample)
        return network_input(sample.images, self.groups, self._mean, self._std)

    def frame_groups(
        self,
        rgb: np.ndarray | None,
        depth: np.ndarray | None,
        raw_depth: np.ndarray | None,
        intrinsics: Any,
    ) -> TensorSample:
        """The modality's channel groups of one frame at the frame's own size, before resizing
        (:func:`~dsod_depth.data.loader.group_tensors`: HHA and the other encoders computed from the
        depth in whole millimetres); arguments as :meth:`encode`."""
        from dsod_depth.data.loader import group_tensors
        from dsod_depth.data.preprocess import to_millimetres
        from dsod_depth.data.store import decode_depth
        from dsod_depth.data.transforms import TensorSample

        arrays: dict[str, np.ndarray] = {}
        if "rgb" in self.groups:
            if rgb is None:
                raise KitError(f"the {self.modality} detector needs the colour image (rgb)")
            arrays["rgb"] = rgb
        if self.uses_depth:
            if depth is None:
                raise KitError(f"the {self.modality} detector needs a depth image")
            raw_depth = depth if raw_depth is None else raw_depth
            if raw_depth.shape != depth.shape:
                raise KitError(f"depth {depth.shape} and raw depth {raw_depth.shape} differ in size")
            # Whole millimetres, as the prepared store keeps depth (encoders saw exactly these values).
            arrays["depth"] = decode_depth(to_millimetres(depth, "depth"))
            arrays["raw_depth"] = decode_depth(to_millimetres(raw_depth, "raw depth"))
        shapes = {k: v.shape[:2] for k, v in arrays.items()}
        if len(set(shapes.values())) > 1:
            sizes = ", ".join(f"{k} {h}×{w}" for k, (h, w) in shapes.items())
            raise KitError(
                f"the images of a frame must have one size; got {sizes} (register depth to colour)"
            )
        height, width = next(iter(shapes.values()))
        intrinsics = _camera(intrinsics)
        if self.needs_camera and intrinsics is None:
            raise KitError(
                f"the {self.modality} detector needs the camera intrinsics (HHA and normals are computed "
                "from them): pass intrinsics ('nyu' or fx, fy, cx, cy)"
            )
        # Encoders that ignore the camera still take one: a nominal pinhole for the frame's grid.
        camera = intrinsics or Intrinsics(float(width), float(width), (width - 1) / 2, (height - 1) / 2)
        images = group_tensors(self.groups, arrays, camera)
        no_boxes = torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.bool)
        return TensorSample(images, *no_boxes, camera)

    # ------------------------------------------------------------------ prediction

    @torch.no_grad()
    def predict_batch(
        self, images: torch.Tensor, sizes: Sequence[tuple[int, int]], *, score_threshold: float | None = None
    ) -> list[Prediction]:
        """Detections for encoded frames ``images`` float32 [N, C, H_in, W_in] whose original sizes are
        ``sizes`` ((height, width) each)."""
        from dsod_depth.detection.postprocess import postprocess, to_frame_pixels

        options = dict(self.postprocess_options)
        if score_threshold is not None:
            options["score_threshold"] = float(score_threshold)
        loc, conf = self.model(images.to(self.device))
        results = []
        for det, (height, width) in zip(postprocess(loc, conf, self.model.priors, **options), sizes):
            boxes, keep = to_frame_pixels(det["boxes"], height, width)
            labels = det["labels"][keep].cpu().numpy()
            results.append(Prediction(
                boxes=boxes[keep].cpu().numpy(), scores=det["scores"][keep].float().cpu().numpy(),
                labels=labels, class_names=[self.classes[i] for i in labels], size=(height, width),
            ))  # fmt: skip
        return results

    def predict(
        self,
        rgb: Any = None,
        depth: Any = None,
        raw_depth: Any = None,
        intrinsics: Any = None,
        *,
        score_threshold: float | None = None,
        depth_scale: float = 1000.0,
        depth_format: str = "plain",
        fill: bool = True,
        batch_size: int = 8,
    ) -> Prediction | list[Prediction]:
        """Detect objects in one frame or a list of frames.

        Args:
            rgb: uint8 [H, W, 3] array or image path (PNG, JPG, PPM); a list for several frames.
            depth: depth array (float metres, or 16-bit integers in units of ``depth_scale``) or file
                (read as ``depth_format``: ``plain`` 16-bit PNG / NPY, ``sun``, ``nyu-kinect``).
            raw_depth: the unfilled depth, same forms. Without it, a ``depth`` with holes is taken as
                the raw depth and filled (:func:`~dsod_depth.inference.frames.fill_depth`) unless
                ``fill`` is false.
            intrinsics: :class:`Intrinsics`, ``"nyu"``, (fx, fy, cx, cy) with a 0-based principal
                point, or the path of an ``intrinsics.txt`` (SUN RGB-D layout); one for all frames or
                a list. Needed when the modality uses it (HHA, normals).
            score_threshold: detections below it are dropped (default: the checkpoint's, 0.01).
            batch_size: frames per forward pass.

        Returns:
            A :class:`Prediction` for one frame, a list of them for a list of frames.
        """
        primary = depth if self.uses_depth else rgb
        single = not isinstance(primary, (list, tuple))
        count = 1 if single else len(primary)
        if single:
            rgbs, depths, raws, cameras = [rgb], [depth], [raw_depth], [intrinsics]
        else:
            rgbs, depths, raws = (_per_frame(v, count, w) for v, w in ((rgb, "rgb"), (depth, "depth"),
                                                                      (raw_depth, "raw_depth")))  # fmt: skip
            cameras = _per_frame(intrinsics, count, "intrinsics")
        results: list[Prediction] = []
        for start in range(0, count, batch_size):
            batch, sizes = [], []
            for i in range(start, min(start + batch_size, count)):
                frame = self.read_frame(rgbs[i], depths[i], raws[i], depth_scale=depth_scale,
                                        depth_format=depth_format, fill=fill)  # fmt: skip
                batch.append(self.encode(*frame, cameras[i]))
                sizes.append((frame[1] if frame[0] is None else frame[0]).shape[:2])
            results += self.predict_batch(torch.stack(batch), sizes, score_threshold=score_threshold)
        return results[0] if single else results

    def read_frame(
        self, rgb: Any, depth: Any, raw_depth: Any, *, depth_scale: float = 1000.0,
        depth_format: str = "plain", fill: bool = True,
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:  # fmt: skip
        """(rgb uint8 [H, W, 3] or None, filled depth, raw depth float32 metres or None) of one frame
        given as arrays or paths (:func:`~dsod_depth.inference.frames.read_frame`); depth is not read
        for an RGB-only detector."""
        from dsod_depth.inference.frames import read_frame, rgb_image

        if not self.uses_depth:
            return (None if rgb is None else rgb_image(rgb)), None, None
        return read_frame(
            rgb, depth, raw_depth, depth_format=depth_format, depth_scale=depth_scale, fill=fill
        )


def _record_from_config(checkpoint: dict[str, Any], path: Path, store: PathLike) -> dict[str, Any]:
    """The inference record of a checkpoint written before records existed: the architecture from its
    stored config, the groups and statistics from ``store`` (the store it was trained on)."""
    import dataclasses
    from dataclasses import asdict

    from dsod_depth.config import from_dict
    from dsod_depth.data.loader import DetectionDataset
    from dsod_depth.engine.checkpoint import dataset_inference_record
    from dsod_depth.engine.model_setup import build_model_for

    if "config" not in checkpoint:
        raise KitError(f"{path} has neither an inference record nor a config; it was not written by training")
    config = from_dict(checkpoint["config"], source=f"{path} (stored config)")
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, init="scratch"))
    dataset = DetectionDataset(store, config.data.train_split, config.data.modality, config.data.input_size)
    if list(dataset.class_names) != list(checkpoint.get("class_names", dataset.class_names)):
        raise KitError(f"the classes of {store} differ from those {path} was trained on; pass its own store")
    model = build_model_for(config, dataset)
    return dataset_inference_record(model.info["build"], dataset, postprocess=asdict(config.postprocess))
