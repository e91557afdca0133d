"""ONNX export of a detector, with or without the kit's post-processing inside the graph.

:func:`export_onnx` writes one ``.onnx`` file whose single input is ``images``: float32
[N, C, H, W], normalised exactly as the model is fed in Python (the caller's metadata says how).
The batch axis N is dynamic unless ``batch`` fixes it; C, H and W are the model's.

Outputs of the network alone (``postprocess=None``):

* ``loc`` float32 [N, P, 4]: box regression offsets, not decoded;
* ``conf`` float32 [N, P, num_classes + 1]: class logits, column 0 = background;
* ``priors`` float32 [P, 4]: the default boxes (cx, cy, w, h) in [0, 1], a constant, so that a
  runtime user can decode (:func:`dsod_depth.detection.coder.decode` with the stored variances).

Outputs with ``postprocess`` (the keyword arguments of
:func:`dsod_depth.detection.postprocess.postprocess`, whose steps the graph repeats: decode, softmax,
per-class top_k, score threshold, per-class NMS, keep_top_k per image):

* ``boxes`` float32 [M, 4]: xyxy normalised to [0, 1], not clipped;
* ``scores`` float32 [M]: softmax probabilities;
* ``labels`` int64 [M]: 0-based object classes (background excluded);
* ``batch_index`` int64 [M]: the image each detection belongs to;
* ``num_detections`` int64 [N]: detections per image.

The M detections of all images form one flat list, ordered by image and then by descending score.
Flat, because images keep different numbers of detections and an ONNX tensor cannot be ragged;
padding to keep_top_k per image would make every consumer filter the padding.

Each top-level key of the caller's metadata is an ONNX ``metadata_props`` entry whose value is
``json.dumps(value)``; ``exporter``, ``opset`` and ``postprocess`` (the settings inside the graph,
or null) are added. :func:`load_onnx_metadata` decodes them.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``. The default exporter of
recent PyTorch (``dynamo=True``) needs ``onnxscript``, which the kit does not depend on, while the
TorchScript one needs ``onnx`` only, takes ``dynamic_axes`` for the batch and lets a function name
its ONNX operator. PyTorch ≥ 2.9 flags it as deprecated; that warning is silenced around the call.
The NMS is one ONNX ``NonMaxSuppression`` over every (image, class) pair rather than the exported form
of torchvision's ``batched_nms`` (why: :class:`_MultiClassNMS`).

Running an exported file with onnxruntime (``pip install 'dsod-depth[export]'``)::

    import numpy as np
    from dsod_depth.inference.export import load_onnx_metadata, run_onnx

    meta = load_onnx_metadata("dsod300.onnx")        # classes, normalisation, input size, ...
    images = np.zeros((1, 3, 300, 300), np.float32)  # normalised like the training inputs
    out = run_onnx("dsod300.onnx", images)           # {"boxes": [M, 4], "scores": [M], ...}
    first = out["batch_index"] == 0
    boxes, labels = out["boxes"][first], out["labels"][first]
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from torch import nn
from torchvision.ops import nms

from dsod_depth.detection.coder import decode
from dsod_depth.detection.postprocess import postprocess as run_postprocess
from dsod_depth.errors import KitError
from dsod_depth.fileio import atomic_output
from dsod_depth.models.detector import SingleShotDetector

INSTALL_HINT = "pip install 'dsod-depth[export]'"
# NonMaxSuppression exists from opset 10, and ceil-mode MaxPool (the DSOD pooling) too; 11 is the
# first opset with both in the form the exporter writes.
MIN_OPSET = 11
try:  # the highest opset of the TorchScript exporter; PyTorch keeps the number in a private module
    from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as MAX_OPSET
except ImportError:  # pragma: no cover - older or newer layouts of torch.onnx
    MAX_OPSET = 17

NETWORK_OUTPUTS = ("loc", "conf", "priors")
DETECTION_OUTPUTS = ("boxes", "scores", "labels", "batch_index", "num_detections")
# The settings a postprocess dict may hold, with postprocess()'s defaults (one source for both).
POSTPROCESS_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(run_postprocess).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
}


def _require(module: str) -> ModuleType:
    """Import an optional dependency of the export extra, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise KitError(f"ONNX export and inference need the {module} package; {INSTALL_HINT}") from None


class _MultiClassNMS(torch.autograd.Function):
    """Per-(batch entry, class) NMS that exports as one ONNX ``NonMaxSuppression``.

    boxes [B, S, 4] xyxy, scores [B, C, S] → selected indices int64 [M, 3], rows
    (batch entry, class, box), each entry's and class's boxes in descending score. A box is kept when
    its score is > ``score_threshold`` and no kept box of the same entry and class overlaps it with
    IoU > ``iou_threshold``; at most ``max_per_class`` per entry and class (the ONNX semantics).

    Why a function of its own: torchvision's ``batched_nms`` exports as one single-class NMS over
    coordinates shifted by class (its "coordinate trick"), whose float32 offsets blur IoUs near the
    threshold and let classes meet when unclipped boxes reach beyond -1; the ONNX operator does
    each class of each image apart, as :func:`postprocess` does. The eager forward (what tracing
    runs) uses torchvision's ``nms`` per group.
    """

    @staticmethod
    def forward(ctx, boxes, scores, max_per_class: int, iou_threshold: float, score_threshold: float):
        rows = []
        for b in range(scores.shape[0]):
            for c in range(scores.shape[1]):
                idx = (scores[b, c] > score_threshold).nonzero()[:, 0]  # [S'] candidate boxes
                kept = idx[nms(boxes[b, idx], scores[b, c, idx], iou_threshold)[:max_per_class]]
                rows.append(torch.stack([torch.full_like(kept, b), torch.full_like(kept, c), kept], dim=1))
        return torch.cat(rows) if rows else torch.zeros(0, 3, dtype=torch.int64)

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class, iou_threshold, score_threshold):
        def constant(value, dtype):
            return g.op("Constant", value_t=torch.tensor([value], dtype=dtype))

        return g.op(
            "NonMaxSuppression",
            boxes,
            scores,
            constant(max_per_class, torch.int64),
            constant(iou_threshold, torch.float32),
            constant(score_threshold, torch.float32),
        )


class _NetworkGraph(nn.Module):
    """images [N, C, H, W] → (loc [N, P, 4], conf [N, P, C + 1], priors [P, 4])."""

    def __init__(self, detector: SingleShotDetector) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loc, conf = self.detector(images)
        # A copy, so that the constant is computed by a node: a graph output must not be an initializer.
        return loc, conf, self.detector.priors.clone()


class _DetectionGraph(nn.Module):
    """images [N, C, H, W] → the flat detections of the module docstring, step by step as
    :func:`postprocess` (which loops over images in Python; here the batch is one tensor)."""

    def __init__(self, detector: SingleShotDetector, settings: dict) -> None:
        super().__init__()
        self.detector = detector
        self.settings = settings
        # Python ints, fixed by the architecture (sizes read while tracing would be tensors).
        self.k = min(settings["top_k"], int(detector.priors.shape[0]))  # candidates per class
        self.num_candidates = detector.num_classes * self.k  # per image
        self.keep = min(settings["keep_top_k"], self.num_candidates)  # per image

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        s, k, num_candidates, keep = self.settings, self.k, self.num_candidates, self.keep
        loc, conf = self.detector(images)
        boxes = decode(loc, self.detector.priors, s["variances"])  # [N, P, 4]
        probs = conf.softmax(dim=-1)[..., 1:]  # [N, P, C] without background
        # The k best default boxes of each class (Caffe's per-class top_k before NMS).
        scores, prior_idx = probs.transpose(1, 2).topk(k, dim=2)  # [N, C, k], [N, C, k]
        # [N, C, k] → [N, C·k, 1] → [N, C·k, 4]: the box of each candidate, class-major
        gather_idx = prior_idx.reshape(-1, num_candidates, 1).expand(-1, -1, 4)
        cand_boxes = boxes.gather(1, gather_idx)  # [N, C·k, 4]
        # Below the threshold → -1, which NMS drops (its own threshold is "> -0.5"); this keeps
        # postprocess's "score ≥ threshold" exactly, whatever the runtime's comparison.
        scores = torch.where(scores >= s["score_threshold"], scores, torch.full_like(scores, -1.0))
        # One NMS group per (image, class): boxes [N·C, k, 4], scores [N·C, 1, k].
        selected = _MultiClassNMS.apply(
            cand_boxes.reshape(-1, k, 4), scores.reshape(-1, 1, k), k, s["nms_threshold"], -0.5
        )  # [M', 3] (group, 0, candidate)
        flat_scores = scores.reshape(-1)  # [N·C·k]
        kept_idx = selected[:, 0] * k + selected[:, 2]  # [M'] into flat_scores
        kept_scores = torch.full_like(flat_scores, -1.0).scatter(0, kept_idx, flat_scores[kept_idx])
        # keep_top_k per image: the best kept candidates of each image, descending; -1 = none.
        top_scores, top_idx = kept_scores.reshape(-1, num_candidates).topk(keep, dim=1)  # [N, keep] each
        valid = top_scores >= 0  # [N, keep]
        nonzero = valid.nonzero()  # [M, 2] (image, rank), row-major: by image, then by score
        batch_index, rank = nonzero[:, 0], nonzero[:, 1]
        flat_rank = batch_index * keep + rank  # [M] into [N·keep]
        candidate = top_idx.reshape(-1)[flat_rank]  # [M] in 0..C·k-1, class-major
        det_boxes = cand_boxes.reshape(-1, 4)[batch_index * num_candidates + candidate]  # [M, 4]
        labels = torch.div(candidate, k, rounding_mode="floor")
        return det_boxes, top_scores.reshape(-1)[flat_rank], labels, batch_index, valid.sum(dim=1)


def _check_out(out: str | os.PathLike) -> Path:
    out = Path(out)
    if out.is_dir():
        raise KitError(f"{out} is a directory; give the path of the .onnx file to write")
    if not out.parent.is_dir():
        raise KitError(f"folder {out.parent} does not exist; create it or choose another output path")
    return out


def _check_opset(opset: int) -> None:
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise KitError(
            f"opset {opset!r} is not supported; choose an integer from {MIN_OPSET} to {MAX_OPSET} "
            f"(torch {torch.__version__})"
        )


def _resolve_postprocess(settings: Mapping) -> dict:
    """``settings`` completed with postprocess()'s defaults and checked; JSON-able."""
    unknown = sorted(set(settings) - set(POSTPROCESS_DEFAULTS))
    if unknown:
        raise KitError(
            f"unknown postprocess setting {unknown[0]!r}; accepted: {', '.join(POSTPROCESS_DEFAULTS)}"
        )
    s = {**POSTPROCESS_DEFAULTS, **settings}
    for name in ("top_k", "keep_top_k"):
        if isinstance(s[name], bool) or not isinstance(s[name], int) or s[name] < 1:
            raise KitError(f"postprocess {name} must be a positive integer, got {s[name]!r}")
    for name in ("score_threshold", "nms_threshold"):
        if isinstance(s[name], bool) or not isinstance(s[name], int | float):
            raise KitError(f"postprocess {name} must be a number, got {s[name]!r}")
        s[name] = float(s[name])
    variances = s["variances"]
    if not isinstance(variances, Sequence) or isinstance(variances, str) or len(variances) != 4:
        raise KitError(f"postprocess variances must be 4 numbers, got {variances!r}")
    s["variances"] = [float(v) for v in variances]
    return s


def _metadata_props(metadata: Mapping, extra: dict) -> dict[str, str]:
    """{key: json.dumps(value)} of ``metadata`` with ``extra`` (the exporter's own keys) on top."""
    if not isinstance(metadata, Mapping):
        raise KitError(f"metadata must be a dict of JSON values, got {type(metadata).__name__}")
    props = {}
    for key, value in {**metadata, **extra}.items():
        if not isinstance(key, str):
            raise KitError(f"metadata keys must be strings, got {key!r}")
        try:
            props[key] = json.dumps(value)
        except (TypeError, ValueError) as err:
            raise KitError(f"metadata {key!r} is not JSON-serialisable ({err}); pass plain values") from None
    return props


def _declare_output_shapes(proto, shapes: dict[str, tuple[int | str, ...]]) -> None:
    """Write the output shapes into the graph (size or axis name per dimension): the exporter
    leaves the sizes of reshaped outputs, known here, as unnamed symbols."""
    for output in proto.graph.output:
        for dim, size in zip(output.type.tensor_type.shape.dim, shapes[output.name]):
            if isinstance(size, int):
                dim.dim_value = size
            else:
                dim.dim_param = size


def export_onnx(
    model: SingleShotDetector,
    metadata: dict,
    out: str | os.PathLike,
    *,
    opset: int = 17,
    batch: int | None = None,
    postprocess: dict | None = None,
) -> Path:
    """Write ``model`` as an ONNX file at ``out`` (atomically); returns ``out`` as a Path.

    Args:
        model: the detector; an eval-mode float32 CPU copy is exported, ``model`` is left untouched.
        metadata: JSON-able values (classes, modality, channel order, normalisation, ...); each
            top-level key becomes a ``metadata_props`` entry (module docstring). ``exporter``,
            ``opset`` and ``postprocess`` are set by this function and replace keys of those names.
        out: the .onnx file; its folder must exist.
        opset: ONNX opset, ``MIN_OPSET``..``MAX_OPSET``.
        batch: ``None`` for a dynamic batch axis, or the fixed batch size.
        postprocess: ``None`` for the network outputs (loc, conf, priors), or settings of
            :func:`dsod_depth.detection.postprocess.postprocess` (missing ones take its defaults)
            for the detection outputs (boxes, scores, labels, batch_index, num_detections).

    Input ``images`` float32 [N, C, H, W]; outputs and shapes in the module docstring.
    """
    onnx = _require("onnx")
    out = _check_out(out)
    _check_opset(opset)
    if not isinstance(model, SingleShotDetector):
        raise KitError(f"export_onnx takes a detector from build_detector, got {type(model).__name__}")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise KitError(f"batch must be None (dynamic) or a positive integer, got {batch!r}")
    settings = None if postprocess is None else _resolve_postprocess(postprocess)
    exporter = f"torch {torch.__version__} torch.onnx.export (TorchScript-based, dynamo=False)"
    props = _metadata_props(metadata, {"exporter": exporter, "opset": opset, "postprocess": settings})

    detector = copy.deepcopy(model).to("cpu", torch.float32).eval()
    n, p, c = batch or "batch", int(detector.priors.shape[0]), detector.num_classes + 1
    if settings is None:
        graph = _NetworkGraph(detector)
        shapes = dict(zip(NETWORK_OUTPUTS, [(n, p, 4), (n, p, c), (p, 4)]))
    else:
        graph = _DetectionGraph(detector, settings)
        m = "detections"
        shapes = dict(zip(DETECTION_OUTPUTS, [(m, 4), (m,), (m,), (m,), (n,)]))
    # Batch 2 while tracing: a batch of 1 could let size-1 dimensions be specialised away.
    example = torch.zeros(batch or 2, detector.in_channels, *detector.input_size)

    with atomic_output(out) as tmp, warnings.catch_warnings(), torch.no_grad():
        # PyTorch ≥ 2.9 deprecates this exporter and its logging helper; the choice is deliberate
        # (module docstring), so users should not see it.
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based", DeprecationWarning)
        warnings.filterwarnings("ignore", "The feature will be removed", DeprecationWarning, r"torch\.onnx")
        # The detector's input-shape checks become constants of the graph: the input size is fixed.
        warnings.filterwarnings(
            "ignore", category=torch.jit.TracerWarning, module=r"dsod_depth\.models\.detector"
        )
        torch.onnx.export(
            graph,
            (example,),
            str(tmp),
            dynamo=False,
            input_names=["images"],
            output_names=list(shapes),
            opset_version=opset,
            dynamic_axes={"images": {0: "batch"}} if batch is None else None,
        )
        proto = onnx.load(str(tmp))
        _declare_output_shapes(proto, shapes)
        for key, value in props.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
    return out


def _onnx_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise KitError(f"no ONNX file at {path}; export one with export_onnx")
    return path


def load_onnx_metadata(path: str | os.PathLike) -> dict:
    """The ``metadata_props`` of an ONNX file, each value JSON-decoded (kept as text where it is not JSON)."""
    onnx = _require("onnx")
    path = _onnx_file(path)
    from google.protobuf.message import DecodeError  # protobuf comes with onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except DecodeError as err:
        raise KitError(f"{path} is not a readable ONNX model ({err}); export it again") from None
    metadata = {}
    for entry in proto.metadata_props:
        try:
            metadata[entry.key] = json.loads(entry.value)
        except json.JSONDecodeError:
            metadata[entry.key] = entry.value
    return metadata


def onnx_session(path: str | os.PathLike, *, threads: int | None = None):
    """An onnxruntime CPU ``InferenceSession`` of ``path``; ``threads`` sets its intra-op threads."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    path = _onnx_file(path)
    errors = ort.capi.onnxruntime_pybind11_state
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except (errors.InvalidProtobuf, errors.InvalidGraph, errors.Fail) as err:
        raise KitError(f"onnxruntime cannot load {path} ({err}); export it again") from None


def run_onnx(path: str | os.PathLike, images: np.ndarray) -> dict[str, np.ndarray]:
    """Run the ONNX file at ``path`` on ``images`` float32 [N, C, H, W] with onnxruntime (CPU).

    Returns {output name: array} (names and shapes in the module docstring). A new session per
    call; for repeated calls keep one from :func:`onnx_session`.
    """
    session = onnx_session(path)
    expected = session.get_inputs()[0].shape  # e.g. ["batch", 3, 300, 300]
    images = np.ascontiguousarray(images, dtype=np.float32)
    if images.ndim != len(expected) or any(
        isinstance(e, int) and e != n for e, n in zip(expected, images.shape)
    ):
        shape = ", ".join(str(e) if isinstance(e, int) else "N" for e in expected)
        raise KitError(f"{path} takes images [{shape}] but got shape {list(images.shape)}")
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {session.get_inputs()[0].name: images})))


# --------------------------------------------------------------------------- a trained detector


def export_metadata(record: Mapping) -> dict:
    """The ONNX metadata of a checkpoint's inference record (:mod:`dsod_depth.engine.checkpoint`): what
    a runtime needs to feed the graph (channel groups in input order with their encoders and
    normalisation, input size, depth units) and to read its outputs (classes, box variances)."""
    return {
        "classes": list(record["class_names"]),
        "modality": record["modality"],
        "groups": record["groups"],  # [{name, channels, encoder, needs_camera, resize, mean, std}]
        "input_size": list(record["input_size"]),
        "depth": record.get("depth"),
        "variances": list(record["postprocess"]["variances"]),
        "detector": record["build"],
        "kit_version": record.get("kit_version"),
    }


def export_detector(
    detector,
    out: str | os.PathLike,
    *,
    opset: int | None = None,
    batch: int | None = None,
    postprocess: bool = False,
    check_batch: int = 2,
) -> dict:
    """Export a :class:`~dsod_depth.inference.detector.Detector` with :func:`export_metadata`, then run
    the file in onnxruntime against PyTorch on ``check_batch`` random images (or ``batch``); ``out``
    appears only when they agree. ``postprocess`` puts the checkpoint's post-processing defaults into
    the graph. Returns {"path", "input", "outputs", "max_difference"}.

    Agreement: loc and conf within 1e-4 + 1e-4·|value|; with post-processing, every detection of
    either side found on the other with the same label, box within 1e-3 and score within 1e-4, except
    those within 1e-3 of the score threshold (where float rounding may decide either way).
    """
    out = _check_out(out)
    settings = dict(detector.postprocess_options) if postprocess else None
    staging = out.with_name(f".{out.name}.checking")
    export_onnx(detector.model, export_metadata(detector.record), staging, opset=opset or 17, batch=batch,
                postprocess=settings)  # fmt: skip
    try:
        images = torch.randn(batch or check_batch, detector.model.in_channels, *detector.input_size,
                             generator=torch.Generator().manual_seed(0))  # fmt: skip
        got = run_onnx(staging, images.numpy())
        model = copy.deepcopy(detector.model).to("cpu", torch.float32).eval()
        with torch.no_grad():
            loc, conf = model(images)
        if settings is None:
            difference = max(_relative_excess(got["loc"], loc), _relative_excess(got["conf"], conf))
            ok = difference <= 1e-4
        else:
            difference, ok = _compare_detections(got, run_postprocess(loc, conf, model.priors, **settings),
                                                 settings["score_threshold"])  # fmt: skip
        if not ok:
            raise KitError(
                f"the ONNX graph does not reproduce PyTorch (difference {difference:.2e}); nothing written. "
                "Try another --opset, or report the detector and torch/onnxruntime versions"
            )
        os.replace(staging, out)
    finally:
        staging.unlink(missing_ok=True)
    names = list(NETWORK_OUTPUTS if settings is None else DETECTION_OUTPUTS)
    shape = (
        f"[{batch or 'N'}, {detector.model.in_channels}, {detector.input_size[0]}, {detector.input_size[1]}]"
    )
    return {"path": out, "input": f"images {shape}", "outputs": names, "max_difference": float(difference)}


def _relative_excess(got: np.ndarray, want: torch.Tensor) -> float:
    """max |got − want| / (1 + |want|): absolute for small values, relative for large ones."""
    want = want.numpy()
    return float(np.max(np.abs(got - want) / (1.0 + np.abs(want)))) if want.size else 0.0


def _compare_detections(got: dict, want: list[dict], threshold: float) -> tuple[float, bool]:
    """(largest box/score difference of matched detections, all matched) — module docstring rules."""
    worst = 0.0
    for image, expected in enumerate(want):
        mine = got["batch_index"] == image
        sides = [
            (got["boxes"][mine], got["scores"][mine], got["labels"][mine]),
            (expected["boxes"].numpy(), expected["scores"].numpy(), expected["labels"].numpy()),
        ]
        for (boxes, scores, labels), (other_boxes, other_scores, other_labels) in (sides, sides[::-1]):
            for box, score, label in zip(boxes, scores, labels):
                if abs(score - threshold) < 1e-3:
                    continue
                same = (other_labels == label) & (np.abs(other_scores - score) <= 1e-4)
                same &= np.all(np.abs(other_boxes - box) <= 1e-3, axis=1)
                if not same.any():
                    return float("inf"), False
                worst = max(worst, float(np.min(np.abs(other_scores[same] - score))))
    return worst, True
