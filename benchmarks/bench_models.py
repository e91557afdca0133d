"""Model costs: parameters, multiply-adds, CPU latency, training memory of the DSOD family.

* Parameters and multiply-adds (``torch.utils.flop_counter.FlopCounterMode``; one multiply-add = 2 flops)
  of every registered detector and of torchvision's ``ssd300_vgg16``.
* Headline: CPU latency of the networks alone (backbone and heads, no decoding or NMS), batch 1,
  300×300, 2 threads, both channels-last, median of 21 interleaved runs: ``dsod300`` after
  :func:`~dsod_depth.models.inference.prepare_for_inference` vs torchvision's ``ssd300_vgg16``
  (21 classes) — the fair pairing. Target: ≤ 0.5.
* CPU latency, batch 1, 300×300, 2 threads, decode + NMS included, in one run and interleaved:
  ``dsod300`` as trained (NCHW), ``dsod300`` after :func:`dsod_depth.models.inference.prepare_for_inference`
  with each of its steps, and torchvision's ``ssd300_vgg16(weights=None, weights_backbone=None,
  num_classes=21)`` as shipped (its own transform and post-processing), in channels-last, and with
  the constructor's default 91-class head.
  Target: dsod300 ≤ 0.5 × ssd300_vgg16.
* Peak training memory (forward + backward, batch 8, 300×300) of ``dsod300`` with and without
  ``memory_efficient``, each setting in its own subprocess (peak resident set of the process, VmHWM,
  the per-process value of ``ru_maxrss``; glibc told to return freed tensors, see ``MEMORY_ENV``),
  and the step time from one more subprocess (default allocator) that alternates steps of the two.
  "activation peak" = peak − resident set before the first step (weights, batch, libraries).
  Target: ≤ 50 % of the naive peak at ≤ 30 % extra time.
* onnxruntime: CPU latency of ``dsod300`` (21 classes) exported with
  :func:`~dsod_depth.inference.export.export_onnx` (network only: loc and conf), batch 1, 300×300,
  2 intra-op threads, interleaved with the PyTorch ``prepare_for_inference`` model (channels-last) and
  the plain eval model; skipped when onnx or onnxruntime is not installed.
* ``dsod-depth detect`` throughput: frames per second of an RGB+HHA ``dsod300`` on 640×480 frames read
  from files, HHA included.
* On CUDA, also batch-1 and batch-32 inference throughput with AMP and channels-last.

Usage::

    python benchmarks/bench_models.py           # full run (a few minutes on two cores)
    python benchmarks/bench_models.py --quick   # fewer repetitions, batch 2 for the memory part

Prints tables and writes ``benchmarks/results/bench_models.json``. Timings on a shared machine are
noisy: medians of interleaved repetitions are reported.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode

from dsod_depth.inference.export import export_onnx, onnx_session
from dsod_depth.models import DETECTORS, build_detector, count_parameters
from dsod_depth.models.inference import pack_convolutions, prepare_for_inference

RESULTS = Path(__file__).resolve().parent / "results" / "bench_models.json"
THREADS = 2
SIZE = 300


def _postprocess():
    """The kit's decode + per-class NMS (falls back to a torchvision-only equivalent if absent)."""
    try:
        from dsod_depth.detection.postprocess import postprocess

        return postprocess
    except ImportError:  # pragma: no cover - only before the detection core has it
        from torchvision.ops import batched_nms

        from dsod_depth.detection.coder import decode

        def fallback(loc, conf, priors, score_threshold=0.01, nms_threshold=0.45, keep_top_k=200):
            out = []
            for boxes, probs in zip(decode(loc, priors), conf.softmax(-1)[..., 1:]):
                scores, labels = probs.max(-1)
                keep = scores >= score_threshold
                kept = batched_nms(boxes[keep], scores[keep], labels[keep], nms_threshold)[:keep_top_k]
                out.append({"boxes": boxes[keep][kept], "scores": scores[keep][kept]})
            return out

        return fallback


def torchvision_ssd(num_classes: int = 21) -> torch.nn.Module:
    """torchvision's SSD300-VGG16, untrained; 21 classes (VOC, like dsod300 here) unless told otherwise."""
    detection = torchvision.models.detection
    return detection.ssd300_vgg16(weights=None, weights_backbone=None, num_classes=num_classes)


def multiply_adds(run) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        run()
    return counter.get_total_flops() // 2


def complexity() -> list[dict]:
    rows = []
    for name in DETECTORS.list():
        model = build_detector(name, num_classes=20, in_channels=3).eval()
        h, w = model.input_size
        x = torch.randn(1, 3, h, w)
        rows.append(
            {
                "model": name,
                "input": f"{h}x{w}",
                "parameters": count_parameters(model),
                "gmacs": round(multiply_adds(lambda m=model, x=x: m(x)) / 1e9, 2),
                "priors": int(model.priors.shape[0]),
            }
        )
    tv = torchvision_ssd().eval()
    image = torch.rand(3, SIZE, SIZE)
    gmacs = round(multiply_adds(lambda: tv([image])) / 1e9, 2)
    rows.append(
        {
            "model": "torchvision ssd300_vgg16 (21 classes)",
            "input": "300x300",
            "parameters": count_parameters(tv),
            "gmacs": gmacs,
            "priors": 8732,
        }
    )
    return rows


def latency(repeats: int) -> dict:
    torch.set_num_threads(THREADS)
    postprocess = _postprocess()
    dsod = build_detector("dsod300", num_classes=20, in_channels=3).eval()
    variants = {
        "dsod300 as trained (NCHW)": dsod,
        "dsod300 + fold BN (NCHW)": prepare_for_inference(dsod, channels_last=False, concat=None),
        "dsod300 + fold BN + buffer (NCHW)": prepare_for_inference(dsod, channels_last=False),
        "dsod300 + fold BN + channels-last": prepare_for_inference(dsod, concat=None),
        "dsod300 prepare_for_inference (+ buffer)": prepare_for_inference(dsod),
    }
    tv = torchvision_ssd().eval()
    tv_nhwc = torchvision_ssd().eval().to(memory_format=torch.channels_last)
    tv_nhwc.load_state_dict(tv.state_dict())
    tv_coco = torchvision_ssd(91).eval()  # the constructor's default head (COCO), for reference
    image = torch.rand(1, 3, SIZE, SIZE)

    def ours(model):
        return lambda: postprocess(*model(image), model.priors)

    runs = {k: ours(m) for k, m in variants.items()}
    runs["torchvision ssd300_vgg16 (as shipped, NCHW)"] = lambda: tv([image[0]])
    # Its transform builds a fresh NCHW batch; channels-last weights make the convolutions run in NHWC.
    runs["torchvision ssd300_vgg16 (channels-last)"] = lambda: tv_nhwc([image[0]])
    runs["torchvision ssd300_vgg16 (91 classes, NCHW)"] = lambda: tv_coco([image[0]])
    ms, fastest = _interleaved(runs, repeats)
    fast, naive = ms["dsod300 prepare_for_inference (+ buffer)"], ms["dsod300 as trained (NCHW)"]
    tv_ms = ms["torchvision ssd300_vgg16 (as shipped, NCHW)"]
    tv_cl = ms["torchvision ssd300_vgg16 (channels-last)"]
    return {
        "median_ms": ms,
        "min_ms": fastest,
        "repeats": repeats,
        "ratio_dsod300_vs_ssd300": round(fast / tv_ms, 3),
        # The least disturbed repetition of each, robust when other processes load the machine.
        "ratio_dsod300_vs_ssd300_min": round(
            fastest["dsod300 prepare_for_inference (+ buffer)"]
            / fastest["torchvision ssd300_vgg16 (as shipped, NCHW)"],
            3,
        ),
        "ratio_naive_dsod300_vs_ssd300": round(naive / tv_ms, 3),
        "ratio_both_channels_last": round(fast / tv_cl, 3),
        "ratio_vs_91_class_ssd300": round(fast / ms["torchvision ssd300_vgg16 (91 classes, NCHW)"], 3),
        "target_ratio": 0.5,
    }


class _SSDNetwork(torch.nn.Module):
    """torchvision SSD's backbone and head alone: images [N, 3, H, W] → {"bbox_regression", "cls_logits"}."""

    def __init__(self, ssd: torch.nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = ssd.backbone, ssd.head

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        features = self.backbone(images)  # OrderedDict of the six feature maps
        return self.head(list(features.values()))


def _interleaved(runs: dict, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """(median ms, min ms) of each run: two warm-up calls (oneDNN primitives, allocator), then
    ``repeats`` rounds calling every run once, so that load from other processes hits all alike."""
    times = {k: [] for k in runs}
    with torch.no_grad():
        for run in runs.values():
            run()
            run()
        for _ in range(repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    ms = {k: round(1000 * statistics.median(v), 1) for k, v in times.items()}
    return ms, {k: round(1000 * min(v), 1) for k, v in times.items()}


CONVOLUTION_OPS = (
    "aten::mkldnn_convolution",
    "aten::_slow_conv2d_forward",
    "aten::_convolution_pointwise",
    "mkldnn::_convolution_pointwise",
)


def convolution_share(run, repeats: int = 5) -> tuple[float, float]:
    """(ms per call spent in convolution kernels, ms per call in all operators) of ``run``, from
    ``torch.profiler``'s self times: how much of a network's latency is left once every
    non-convolution operation is gone."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        run()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(repeats):
                run()
    events = prof.key_averages()
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONVOLUTION_OPS)
    total = sum(e.self_cpu_time_total for e in events)
    return conv / 1000 / repeats, total / 1000 / repeats


def forward_latency(repeats: int) -> dict:
    """The headline pairing: the network alone (backbone and heads; no decoding, no NMS, no
    torchvision transform) of ``dsod300`` after ``prepare_for_inference`` against torchvision's
    ``ssd300_vgg16`` (21 classes), both channels-last, batch 1, 300×300, ``THREADS`` threads,
    interleaved repetitions in one run; medians and minima. Also times, in the same interleaving,
    ``prepare_for_inference(..., prepack=True)`` (oneDNN-prepacked weights with fused ReLUs, undocumented
    PyTorch entry points) against the SSD unpacked and against the SSD given the same
    :func:`~dsod_depth.models.inference.pack_convolutions` (the fair pairing for that option), and checks
    that both prepared DSOD300s answer like ``model.eval()`` (float32 rounding)."""
    torch.set_num_threads(THREADS)
    dsod = build_detector("dsod300", num_classes=20, in_channels=3).eval()
    fast = prepare_for_inference(dsod)
    packed = prepare_for_inference(dsod, prepack=True)
    ssd = _SSDNetwork(torchvision_ssd().eval().to(memory_format=torch.channels_last)).eval()
    image = torch.rand(1, 3, SIZE, SIZE)
    image_cl = image.contiguous(memory_format=torch.channels_last)
    ssd_packed = copy.deepcopy(ssd)
    if packed.info["inference"]["prepack"]:
        pack_convolutions(ssd_packed, image_cl)

    runs = {"dsod300 prepare_for_inference (channels-last)": lambda: fast(image_cl),
            "torchvision ssd300_vgg16 backbone + head (channels-last)": lambda: ssd(image_cl),
            "dsod300 prepare_for_inference(prepack) (channels-last)": lambda: packed(image_cl),
            "torchvision ssd300_vgg16 backbone + head (pack_convolutions)": lambda: ssd_packed(image_cl),
            }  # fmt: skip
    with torch.no_grad():
        reference = dsod(image)
        max_diff = max(
            float((a - b).abs().max()) for m in (fast, packed) for a, b in zip(reference, m(image))
        )
    ms, fastest = _interleaved(runs, repeats)
    ours, theirs, ours_packed, theirs_packed = runs
    # Why the ratio sits where it does: the share of each network's time spent in convolutions, and
    # the ratio that would remain if DSOD300 did nothing but its convolutions.
    gmacs = {"dsod": multiply_adds(lambda: dsod(image)) / 1e9, "ssd": multiply_adds(lambda: ssd(image)) / 1e9}
    conv = {"dsod": convolution_share(runs[ours]), "ssd": convolution_share(runs[theirs])}
    bound = {
        "gmacs": {k: round(v, 2) for k, v in gmacs.items()},
        "multiply_add_ratio": round(gmacs["dsod"] / gmacs["ssd"], 3),
        "convolution_ms": {k: round(c, 1) for k, (c, _) in conv.items()},
        "convolution_share": {k: round(c / t, 3) for k, (c, t) in conv.items()},
        "convolution_gmacs_per_s": {k: round(gmacs[k] / (c / 1000), 1) for k, (c, _) in conv.items()},
        "ratio_with_convolutions_only": round(conv["dsod"][0] / ms[theirs], 3),
    }
    return {
        "bound": bound,
        "median_ms": ms, "min_ms": fastest, "repeats": repeats,
        "ratio": round(ms[ours] / ms[theirs], 3),
        "ratio_of_minima": round(fastest[ours] / fastest[theirs], 3),
        "ratio_prepack": round(ms[ours_packed] / ms[theirs], 3),
        "ratio_of_minima_prepack": round(fastest[ours_packed] / fastest[theirs], 3),
        "ratio_both_prepacked": round(ms[ours_packed] / ms[theirs_packed], 3),
        "ratio_of_minima_both_prepacked": round(fastest[ours_packed] / fastest[theirs_packed], 3),
        "prepack": packed.info["inference"]["prepack"],
        "max_abs_output_difference_vs_eval": max_diff, "target_ratio": 0.5,
        "load_average": os.getloadavg()[0],
    }  # fmt: skip


def onnxruntime_latency(repeats: int) -> dict | None:
    """``dsod300`` (21 classes) in onnxruntime on CPU (``THREADS`` intra-op threads), the network only
    (loc and conf of :func:`~dsod_depth.inference.export.export_onnx` without post-processing), against
    the same weights in PyTorch after ``prepare_for_inference`` (channels-last) and as ``model.eval()``:
    batch 1, 300×300, interleaved repetitions in one run; medians and minima. None without onnx or
    onnxruntime."""
    if not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")):
        return None
    import onnxruntime

    torch.set_num_threads(THREADS)
    dsod = build_detector("dsod300", num_classes=20, in_channels=3).eval()
    fast = prepare_for_inference(dsod)
    image = torch.rand(1, 3, SIZE, SIZE)
    image_cl = image.contiguous(memory_format=torch.channels_last)
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(dsod, {}, Path(folder) / "dsod300.onnx")
        session = onnx_session(path, threads=THREADS)  # the file is read; the session keeps no handle
    feed = {"images": image.numpy()}

    def network():
        return session.run(["loc", "conf"], feed)  # not the constant priors

    runs = {"dsod300 eval (NCHW)": lambda: dsod(image),
            "dsod300 prepare_for_inference (channels-last)": lambda: fast(image_cl),
            f"dsod300 onnxruntime (CPU, {THREADS} threads)": network}  # fmt: skip
    with torch.no_grad():
        max_diff = max(float(abs(a - b.numpy()).max()) for a, b in zip(network(), dsod(image)))
    ms, fastest = _interleaved(runs, repeats)
    plain, prepared, ort = runs
    return {
        "median_ms": ms, "min_ms": fastest, "repeats": repeats, "onnxruntime": onnxruntime.__version__,
        "ratio_vs_prepared": round(ms[ort] / ms[prepared], 3),
        "ratio_of_minima_vs_prepared": round(fastest[ort] / fastest[prepared], 3),
        "ratio_vs_eval": round(ms[ort] / ms[plain], 3),
        "max_abs_output_difference_vs_eval": max_diff, "load_average": os.getloadavg()[0],
    }  # fmt: skip


def detect_throughput(num_frames: int = 8, batch_size: int = 4) -> dict:
    """Frames per second of ``dsod-depth detect`` (:func:`~dsod_depth.inference.detect.detect_files`, no
    figures) with an RGB+HHA ``dsod300`` on 640×480 SynthRooms frames given as files (RGB, depth and
    raw depth PNGs): reading, HHA from depth and camera, resizing, the network, decoding and NMS,
    writing the COCO files; ``THREADS`` threads. Also the HHA encoding alone per frame, the part of
    the time a depth run adds to an RGB one."""
    from dsod_depth.data.frame_files import write_frame_files
    from dsod_depth.data.loader import DetectionDataset
    from dsod_depth.data.prepare import prepare_synthrooms
    from dsod_depth.encoders import hha_image
    from dsod_depth.engine.checkpoint import dataset_inference_record
    from dsod_depth.geometry.camera import read_sunrgbd_intrinsics
    from dsod_depth.inference.detect import detect_files
    from dsod_depth.inference.detector import Detector
    from dsod_depth.inference.frames import frames_from_folder, load_frame

    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        prepare_synthrooms(root / "store", num_train=2, num_test=num_frames, size=(640, 480), seed=0,
                           progress=False)  # fmt: skip
        write_frame_files(root / "store", "test", root / "frames")
        dataset = DetectionDataset(root / "store", "train", "rgb+hha", SIZE)
        model = build_detector("dsod300", num_classes=dataset.num_classes, in_channels=6).eval()
        record = dataset_inference_record(model.info["build"], dataset)
        detector = Detector(model, record, torch.device("cpu"))
        frames, camera = frames_from_folder(root / "frames")
        options = {"camera": camera, "figures": False, "progress": False}
        detect_files(detector, frames[:batch_size], root / "warm", **options)  # warm-up (oneDNN, allocator)
        start = time.perf_counter()
        summary = detect_files(detector, frames, root / "out", batch_size=batch_size, **options)
        seconds = time.perf_counter() - start
        arrays = [load_frame(f) for f in frames]
        k = read_sunrgbd_intrinsics(root / "frames" / "intrinsics.txt")
        hha_ms = []
        for _, depth, raw in arrays:
            t0 = time.perf_counter()
            hha_image(depth, raw, k)
            hha_ms.append(1000 * (time.perf_counter() - t0))
    return {
        "frames": summary.frames, "batch_size": batch_size, "seconds": round(seconds, 2),
        "frames_per_s": round(summary.frames / seconds, 2),
        "hha_ms_per_frame": round(statistics.median(hha_ms), 1),
        "model": "dsod300 rgb+hha (6 channels), 300x300", "frame_size": "640x480",
    }  # fmt: skip


def _rss_mb(field: str) -> float:
    """VmRSS (current) or VmHWM (peak) of this process in MiB, from /proc; falls back to ru_maxrss.

    ``ru_maxrss`` alone would do, except that Linux carries the parent's peak into a child across
    fork + exec, which would hide this process's own peak behind the parent's.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB → MiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); harmless elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _train_model(memory_efficient: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_detector("dsod300", num_classes=20, in_channels=3, memory_efficient=memory_efficient).train()


def _train_step(model: torch.nn.Module, images: torch.Tensor) -> float:
    """Seconds for one forward + backward (a loss touching every output)."""
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    loc, conf = model(images)
    (loc.square().mean() + torch.logsumexp(conf, -1).mean()).backward()
    return time.perf_counter() - start


def memory_worker(memory_efficient: bool, batch: int) -> dict:
    """Runs in a subprocess: peak resident set of dsod300 over two training steps."""
    torch.set_num_threads(THREADS)
    model = _train_model(memory_efficient)
    images = torch.randn(batch, 3, SIZE, SIZE)
    _reset_peak_rss()
    baseline = _rss_mb("VmRSS")  # interpreter, libraries, weights and the batch
    for _ in range(2):
        _train_step(model, images)
    peak = _rss_mb("VmHWM")
    return {
        "memory_efficient": memory_efficient,
        "batch": batch,
        "peak_rss_mb": round(peak),
        "baseline_rss_mb": round(baseline),
        "activation_peak_mb": round(peak - baseline),
    }


def time_worker(batch: int, steps: int) -> dict:
    """Runs in a subprocess: step times of both settings, alternating step by step so that load from
    other processes falls on both alike."""
    torch.set_num_threads(THREADS)
    models = {setting: _train_model(setting) for setting in (False, True)}
    images = torch.randn(batch, 3, SIZE, SIZE)
    seconds = {False: [], True: []}
    for step in range(steps + 1):
        for setting, model in models.items():
            elapsed = _train_step(model, images)
            if step:  # the first step of each warms up
                seconds[setting].append(elapsed)
    return {str(k): [round(t, 3) for t in v] for k, v in seconds.items()}


# For the memory runs only: glibc serves every allocation above 64 KiB with its own mmap and returns it
# on free, so the resident set follows the live tensors. With its default heap, freed blocks stay
# resident and the peak depends on fragmentation (±15 % between identical runs here).
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def _worker(args: list[str], env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--worker", *args]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def training_memory(batch: int, steps: int) -> dict:
    memory = {s: _worker(["memory", str(int(s)), str(batch)], MEMORY_ENV) for s in (False, True)}
    timed = _worker(["time", str(batch), str(steps)])
    step_s = {s: statistics.median(timed[str(s)]) for s in (False, True)}
    peak = {s: memory[s]["peak_rss_mb"] for s in memory}
    act = {s: memory[s]["activation_peak_mb"] for s in memory}
    return {
        "batch": batch,
        "input": f"{SIZE}x{SIZE}",
        "memory_runs": list(memory.values()),
        "step_times_s": {"naive": timed["False"], "memory_efficient": timed["True"]},
        "peak_rss_mb": {"naive": peak[False], "memory_efficient": peak[True]},
        "activation_peak_mb": {"naive": act[False], "memory_efficient": act[True]},
        "step_s": {"naive": round(step_s[False], 3), "memory_efficient": round(step_s[True], 3)},
        "peak_ratio": round(peak[True] / peak[False], 3),
        "activation_peak_ratio": round(act[True] / act[False], 3),
        "time_overhead": round(step_s[True] / step_s[False] - 1, 3),
        "targets": {"peak_ratio": 0.5, "time_overhead": 0.3},
    }


def gpu_throughput(repeats: int) -> dict | None:
    if not torch.cuda.is_available():
        return None
    dev = torch.device("cuda")
    out = {"gpu": torch.cuda.get_device_name(0), "images_per_s": {}}
    models = {
        "dsod300": build_detector("dsod300", num_classes=20, in_channels=3).eval(),
        "torchvision ssd300_vgg16 (backbone + head)": torchvision_ssd().eval(),
    }
    for name, model in models.items():
        model = model.to(dev).to(memory_format=torch.channels_last)
        run = model if name == "dsod300" else (lambda x, m=model: m.head(m.backbone(x)))
        for batch in (1, 32):
            x = torch.randn(batch, 3, SIZE, SIZE, device=dev).contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16):
                for _ in range(5):
                    run(x)
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(repeats):
                    run(x)
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            out["images_per_s"][f"{name} batch {batch}"] = round(batch * repeats / seconds, 1)
    return out


def _table(rows: list[dict]) -> str:
    keys = list(rows[0])
    widths = [max(len(str(k)), *(len(str(r[k])) for r in rows)) for k in keys]
    lines = [" | ".join(str(k).ljust(w) for k, w in zip(keys, widths)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(str(r[k]).ljust(w) for k, w in zip(keys, widths)) for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions; batch 2 for the memory part")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *numbers = args.worker
        if kind == "memory":
            print(json.dumps(memory_worker(bool(int(numbers[0])), int(numbers[1]))))
        else:
            print(json.dumps(time_worker(int(numbers[0]), int(numbers[1]))))
        return
    torch.set_num_threads(THREADS)
    report = {
        "cpu": platform.processor() or platform.machine(),
        "threads": THREADS,
        "torch": torch.__version__,
        "quick": args.quick,
        "load_average_start": os.getloadavg()[0],
    }
    report["complexity"] = complexity()
    print(_table(report["complexity"]), end="\n\n")
    report["latency"] = lat = latency(repeats=5 if args.quick else 15)
    print(
        _table(
            [
                {"model (batch 1, 300x300, decode + NMS)": k, "median ms": v, "min ms": lat["min_ms"][k]}
                for k, v in lat["median_ms"].items()
            ]
        )
    )
    print(
        f"dsod300 / ssd300_vgg16: {lat['ratio_dsod300_vs_ssd300']} (of the minima "
        f"{lat['ratio_dsod300_vs_ssd300_min']}; target ≤ 0.5; naive port "
        f"{lat['ratio_naive_dsod300_vs_ssd300']}; both channels-last {lat['ratio_both_channels_last']})\n"
    )
    report["forward_latency"] = fwd = forward_latency(repeats=9 if args.quick else 21)
    print(_table([{"network only (batch 1, 300x300, channels-last)": k, "median ms": v,
                   "min ms": fwd["min_ms"][k]} for k, v in fwd["median_ms"].items()]))  # fmt: skip
    print(
        f"headline: dsod300 / ssd300_vgg16, both channels-last, network only: {fwd['ratio']} (of the "
        f"minima {fwd['ratio_of_minima']}; target ≤ 0.5; with prepack {fwd['ratio_prepack']}, "
        f"of the minima {fwd['ratio_of_minima_prepack']}; both prepacked {fwd['ratio_both_prepacked']}, "
        f"of the minima {fwd['ratio_of_minima_both_prepacked']}); prepared vs eval outputs differ by at "
        f"most {fwd['max_abs_output_difference_vs_eval']:.1e}"
    )
    b = fwd["bound"]
    print(
        f"bound: multiply-adds dsod300 {b['gmacs']['dsod']} G vs ssd300 {b['gmacs']['ssd']} G "
        f"(ratio {b['multiply_add_ratio']}); convolutions {b['convolution_share']['dsod']:.0%} vs "
        f"{b['convolution_share']['ssd']:.0%} of the time at {b['convolution_gmacs_per_s']['dsod']} vs "
        f"{b['convolution_gmacs_per_s']['ssd']} GMAC/s; dsod300's convolutions alone would give "
        f"{b['ratio_with_convolutions_only']}\n"
    )
    report["onnxruntime_latency"] = ort = onnxruntime_latency(repeats=9 if args.quick else 21)
    if ort is None:
        print("onnxruntime latency skipped: onnx or onnxruntime not installed "
              "(pip install 'dsod-depth[export]')\n")  # fmt: skip
    else:
        print(_table([{"network only (batch 1, 300x300)": k, "median ms": v, "min ms": ort["min_ms"][k]}
                      for k, v in ort["median_ms"].items()]))  # fmt: skip
        print(f"onnxruntime / prepare_for_inference: {ort['ratio_vs_prepared']} (of the minima "
              f"{ort['ratio_of_minima_vs_prepared']}); / eval: {ort['ratio_vs_eval']}; outputs differ from "
              f"eval by at most {ort['max_abs_output_difference_vs_eval']:.1e}\n")  # fmt: skip
    report["detect_throughput"] = thr = detect_throughput(num_frames=4 if args.quick else 8)
    print(f"detect, dsod300 rgb+hha on 640x480 frames from files (batch {thr['batch_size']}, no figures): "
          f"{thr['frames_per_s']} frames/s ({thr['frames']} frames in {thr['seconds']} s; HHA alone "
          f"{thr['hha_ms_per_frame']} ms per frame)\n")  # fmt: skip
    batch, steps = (2, 2) if args.quick else (8, 6)
    report["training_memory"] = mem = training_memory(batch, steps)
    print(
        _table(
            [
                {
                    f"dsod300 train step (batch {batch})": k,
                    "peak RSS MB": mem["peak_rss_mb"][k],
                    "activation peak MB": mem["activation_peak_mb"][k],
                    "step s": mem["step_s"][k],
                }
                for k in ("naive", "memory_efficient")
            ]
        )
    )
    print(
        f"memory option: peak {mem['peak_ratio']:.0%} of naive (activations "
        f"{mem['activation_peak_ratio']:.0%}), time {mem['time_overhead']:+.0%} "
        "(targets ≤ 50 %, ≤ +30 %)\n"
    )
    report["gpu"] = gpu = gpu_throughput(repeats=10 if args.quick else 50)
    if gpu:
        print(gpu)
    # Other processes on the machine make two-thread timings unreliable; keep the load with the numbers.
    report["load_average_end"] = os.getloadavg()[0]
    print(f"load average {report['load_average_start']:.1f} → {report['load_average_end']:.1f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
