"""ONNX export: the exported graph answers like the PyTorch model (network outputs within float32
rounding, detections equal to postprocess()), metadata round-trips, failures leave nothing behind."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import torch
from torch import nn

from dsod_depth.detection.postprocess import postprocess
from dsod_depth.errors import KitError
from dsod_depth.fileio import temporaries
from dsod_depth.inference.export import (
    DETECTION_OUTPUTS,
    MAX_OPSET,
    NETWORK_OUTPUTS,
    export_onnx,
    load_onnx_metadata,
    onnx_session,
    run_onnx,
)
from dsod_depth.models import build_detector
from tests.models.randomised import with_random_statistics

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")),
    reason="needs the export extra: pip install 'dsod-depth[export]'",
)

NUM_CLASSES = 4
TOL = 1e-4
METADATA = {
    "classes": ["chair", "table", "sofa", "bed"],
    "modality": "rgb+depth",
    "channel_order": ["r", "g", "b", "depth"],
    "normalisation": {"mean": [0.485, 0.456, 0.406, 2.5], "std": [0.229, 0.224, 0.225, 1.2]},
    "depth_units": "metres",
    "note": "depth ≤ 10 m; 0 = no reading",
}


def _detector(name: str, in_channels: int, fusion: str = "early", split=(3, 3)) -> nn.Module:
    """A random eval-mode detector with non-trivial BatchNorm statistics and classification logits
    spread wide (std 1.5): a random head gives near-uniform scores, which would leave nothing for
    the threshold, NMS and keep_top_k to decide."""
    torch.manual_seed(0)
    options = {"fusion": fusion, "late_split": split} if fusion == "late" else {}
    model = build_detector(name, num_classes=NUM_CLASSES, in_channels=in_channels, **options).eval()
    with_random_statistics(model, seed=None)  # the stream seeded above, before the build
    with torch.no_grad():
        _, conf = model(_images(model, 2))
        factor = 1.5 / conf.std()
        for predictor in model.head.conf:  # conv (SSD) or conv → BatchNorm (DSOD): scale the last
            last = predictor[-1] if isinstance(predictor, nn.Sequential) else predictor
            last.weight.mul_(factor)
            if last.bias is not None:
                last.bias.mul_(factor)
    return model


def _images(model: nn.Module, n: int, seed: int = 1) -> torch.Tensor:
    """[n, C, H, W] float32 random normalised images."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, model.in_channels, *model.input_size, generator=generator)


def _widest_gap(values: torch.Tensor, lo: int, hi: int, relevant: torch.Tensor | None = None) -> int:
    """The rank i in [lo, hi) with the widest gap values[..., i - 1] - values[..., i], the gap being
    the smallest over the leading dimensions (over those where ``relevant[..., i]`` holds, if given).
    values [..., L] sorted descending."""
    gaps = values[..., lo - 1 : hi - 1] - values[..., lo:hi]  # [..., hi - lo]
    if relevant is not None:
        gaps = gaps.masked_fill(~relevant[..., lo:hi], float("inf"))
    gaps = gaps.reshape(-1, hi - lo).min(dim=0).values  # [hi - lo]
    i = int(gaps.argmax())
    assert gaps[i] > 1e-5, f"no clear gap between scores of rank {lo} to {hi} ({float(gaps[i])})"
    return lo + i


def _decisive_settings(loc: torch.Tensor, conf: torch.Tensor, priors: torch.Tensor, cut: str) -> dict:
    """Post-processing settings for ``loc``/``conf`` [N, P, ·] under which each stage changes the
    detections (see :func:`_assert_decisive`).

    A random head scores a few thousand boxes per image alike, and keep_top_k hides what the
    threshold and top_k decide (they only remove boxes scored lower than those it keeps), so two
    kinds: ``cut="keep_top_k"`` (NMS and keep_top_k decide) and ``cut="threshold"`` (the threshold,
    top_k and NMS decide; keep_top_k is never reached). Every cut sits in the widest gap between the
    scores near it, so float32 differences between runtimes (~1e-6) cannot move a box across it.
    """
    probs = conf.softmax(dim=-1)[..., 1:].transpose(1, 2).sort(dim=2, descending=True).values  # [N, C, P]
    pooled = probs.flatten().sort(descending=True).values
    i = _widest_gap(pooled, int(0.05 * len(pooled)), int(0.15 * len(pooled)))  # keep 5-15 % of the scores
    threshold = float(pooled[i - 1] + pooled[i]) / 2
    # In every image top_k must remove boxes above the threshold in one class (top_k decides) and
    # exceed the number above it in another (the threshold decides); only ranks whose box is above
    # the threshold need a clear cut.
    above = (probs >= threshold).sum(dim=2)  # [N, C]
    lo, hi = int(above.min(dim=1).values.max()) + 1, int(above.max(dim=1).values.min())
    assert lo < hi, f"no top_k decides in every image: classes keep {above.tolist()} boxes"
    top_k = _widest_gap(probs, lo, hi, relevant=probs >= threshold)
    settings = {"score_threshold": threshold, "nms_threshold": 0.45, "top_k": top_k}
    if cut == "threshold":
        return {**settings, "keep_top_k": probs.shape[1] * top_k}
    kept = postprocess(loc, conf, priors, **settings, keep_top_k=10**6)
    num_kept = min(len(r["scores"]) for r in kept)
    scores = torch.stack([r["scores"][:num_kept] for r in kept])  # [N, num_kept] descending
    return {**settings, "keep_top_k": _widest_gap(scores, int(0.6 * num_kept), int(0.9 * num_kept))}


# Each stage switched off: the setting that makes it remove nothing.
STAGE_OFF = {"score_threshold": 0.0, "top_k": 10**6, "nms_threshold": 1.0, "keep_top_k": 10**6}


def _assert_decisive(loc, conf, priors, settings: dict, stages: list[str]) -> None:
    """Switching off any of ``stages`` changes postprocess()'s detections of some image: a graph
    that got one of them wrong would not pass :func:`_assert_same_detections`."""
    reference = postprocess(loc, conf, priors, **settings)
    for stage in stages:
        changed = postprocess(loc, conf, priors, **{**settings, stage: STAGE_OFF[stage]})
        assert any(
            len(ref["scores"]) != len(alt["scores"]) or not torch.equal(ref["scores"], alt["scores"])
            for ref, alt in zip(reference, changed)
        ), f"{stage} decides nothing here"


CUT_STAGES = {"keep_top_k": ["nms_threshold", "keep_top_k"],
              "threshold": ["score_threshold", "top_k", "nms_threshold"]}  # fmt: skip


def _assert_same_detections(out: dict[str, np.ndarray], reference: list[dict[str, torch.Tensor]]) -> None:
    """The flat ONNX detections equal postprocess()'s per-image ones: counts, labels, boxes and
    scores within TOL, order by image then descending score (equal scores in any order)."""
    counts = [len(r["scores"]) for r in reference]
    assert out["num_detections"].tolist() == counts
    assert out["batch_index"].tolist() == [i for i, n in enumerate(counts) for _ in range(n)]
    assert out["labels"].dtype == np.int64 and out["batch_index"].dtype == np.int64
    for i, ref in enumerate(reference):
        mine = out["batch_index"] == i
        scores, boxes, labels = out["scores"][mine], out["boxes"][mine], out["labels"][mine]
        assert (np.diff(scores) <= TOL).all(), "not in descending score order"
        rows = np.concatenate([boxes, scores[:, None]], axis=1)  # [M, 5]
        ref_rows = torch.cat([ref["boxes"], ref["scores"][:, None]], dim=1).numpy()  # [M, 5]
        for label in np.union1d(labels, ref["labels"].numpy()):
            # Pair each detection with the reference one of its class nearest in box and score.
            mine, theirs = rows[labels == label], ref_rows[ref["labels"].numpy() == label]
            assert len(mine) == len(theirs), f"class {label}: {len(mine)} detections, not {len(theirs)}"
            distance = np.abs(mine[:, None] - theirs[None]).max(axis=2)  # [M_c, M_c]
            nearest = distance.argmin(axis=1)
            assert sorted(nearest.tolist()) == list(range(len(mine))), f"class {label}: detections differ"
            assert distance[np.arange(len(mine)), nearest].max(initial=0.0) <= TOL


def _assert_same_network_outputs(out: dict[str, np.ndarray], model: nn.Module, loc, conf) -> None:
    """ONNX loc, conf and priors equal PyTorch's ``loc`` [n, P, 4], ``conf`` [n, P, C + 1], priors."""
    np.testing.assert_allclose(out["loc"], loc.numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(out["conf"], conf.numpy(), rtol=TOL, atol=TOL)
    np.testing.assert_array_equal(out["priors"], model.priors.numpy())


@pytest.fixture(scope="module")
def late_tiny():
    """dsod_tiny, late fusion of RGB (3) and depth (1)."""
    return _detector("dsod_tiny", 4, "late", (3, 1))


@pytest.fixture(scope="module")
def network_file(late_tiny, tmp_path_factory):
    return export_onnx(late_tiny, METADATA, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def test_network_outputs_match_pytorch_at_batch_1_and_3(late_tiny, network_file):
    images = _images(late_tiny, 3)
    with torch.no_grad():
        loc, conf = late_tiny(images)
    for n in (1, 3):
        out = run_onnx(network_file, images[:n].numpy())
        assert list(out) == list(NETWORK_OUTPUTS)
        _assert_same_network_outputs(out, late_tiny, loc[:n], conf[:n])
    session = onnx_session(network_file)
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert session.get_inputs()[0].shape == ["batch", 4, 160, 160]
    num_priors = late_tiny.priors.shape[0]
    assert [o.shape for o in session.get_outputs()] == [
        ["batch", num_priors, 4], ["batch", num_priors, NUM_CLASSES + 1], [num_priors, 4]
    ]  # fmt: skip


def test_metadata_round_trips(network_file):
    metadata = load_onnx_metadata(network_file)
    assert metadata.pop("opset") == 17 and metadata.pop("postprocess") is None
    assert metadata.pop("exporter").startswith(f"torch {torch.__version__} ")
    assert metadata == METADATA


@pytest.mark.parametrize("cut", ["keep_top_k", "threshold"])
def test_postprocess_graph_gives_the_detections_of_postprocess(late_tiny, tmp_path, cut):
    images = _images(late_tiny, 3)
    with torch.no_grad():
        loc, conf = late_tiny(images)
    settings = _decisive_settings(loc, conf, late_tiny.priors, cut)
    _assert_decisive(loc, conf, late_tiny.priors, settings, CUT_STAGES[cut])
    path = export_onnx(late_tiny, METADATA, tmp_path / "tiny.onnx", postprocess=settings)
    assert load_onnx_metadata(path)["postprocess"] == {**settings, "variances": [0.1, 0.1, 0.2, 0.2]}
    reference = postprocess(loc, conf, late_tiny.priors, **settings)
    for n in (1, 3):
        out = run_onnx(path, images[:n].numpy())
        assert list(out) == list(DETECTION_OUTPUTS)
        _assert_same_detections(out, reference[:n])


def test_no_detections_give_empty_outputs(late_tiny, tmp_path):
    path = export_onnx(late_tiny, {}, tmp_path / "none.onnx", postprocess={"score_threshold": 1.5})
    out = run_onnx(path, _images(late_tiny, 2).numpy())
    assert out["boxes"].shape == (0, 4) and out["scores"].shape == out["labels"].shape == (0,)
    assert out["num_detections"].tolist() == [0, 0]


def test_fixed_batch_and_the_callers_module_untouched(tmp_path):
    model = build_detector("dsod_tiny", num_classes=2, in_channels=1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    path = export_onnx(model, {}, tmp_path / "fixed.onnx", batch=2, opset=MAX_OPSET)
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert onnx_session(path).get_inputs()[0].shape == [2, 1, 160, 160]
    assert run_onnx(path, np.zeros((2, 1, 160, 160), np.float32))["loc"].shape[0] == 2
    with pytest.raises(KitError, match=r"takes images \[2, 1, 160, 160\] but got shape \[3, 1, 160, 160\]"):
        run_onnx(path, np.zeros((3, 1, 160, 160), np.float32))


@pytest.fixture(scope="module")
def tiny():
    return build_detector("dsod_tiny", num_classes=2, in_channels=1).eval()


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_refuses_a_directory_a_missing_folder_and_a_bad_opset(tiny, tmp_path):
    with pytest.raises(KitError, match="is a directory") as err:
        export_onnx(tiny, {}, tmp_path)
    _one_line(err)
    with pytest.raises(KitError, match="does not exist") as err:
        export_onnx(tiny, {}, tmp_path / "missing" / "model.onnx")
    _one_line(err)
    assert not (tmp_path / "missing").exists()
    for opset in (10, MAX_OPSET + 1, "17"):
        with pytest.raises(KitError, match="opset") as err:
            export_onnx(tiny, {}, tmp_path / "model.onnx", opset=opset)
        _one_line(err)
    with pytest.raises(KitError, match="unknown postprocess setting 'iou'"):
        export_onnx(tiny, {}, tmp_path / "model.onnx", postprocess={"iou": 0.5})
    with pytest.raises(KitError, match="'when' is not JSON-serialisable"):
        export_onnx(tiny, {"when": object()}, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module", ["onnx", "onnxruntime"])
def test_missing_packages_say_how_to_install(tiny, tmp_path, monkeypatch, module):
    path = export_onnx(tiny, {}, tmp_path / "model.onnx")
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    calls = [lambda: export_onnx(tiny, {}, tmp_path / "other.onnx"), lambda: load_onnx_metadata(path)]
    if module == "onnxruntime":
        calls = [lambda: run_onnx(path, np.zeros((1, 1, 160, 160), np.float32))]
    for call in calls:
        with pytest.raises(KitError) as err:
            call()
        assert _one_line(err) == (
            f"ONNX export and inference need the {module} package; pip install 'dsod-depth[export]'"
        )
    assert not (tmp_path / "other.onnx").exists()


def test_a_failed_export_leaves_nothing_and_keeps_an_existing_file(tiny, tmp_path, monkeypatch):
    import onnx

    def broken(*args, **kwargs):
        raise RuntimeError("checker failed")

    monkeypatch.setattr(onnx.checker, "check_model", broken)
    out = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError, match="checker failed"):
        export_onnx(tiny, {}, out)
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="checker failed"):
        export_onnx(tiny, {}, out)
    assert out.read_bytes() == b"previous" and temporaries(tmp_path) == []


def test_reading_a_file_that_is_not_onnx(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not a model")
    for call in (load_onnx_metadata, onnx_session):
        with pytest.raises(KitError, match="bad.onnx"):
            call(bad)
    with pytest.raises(KitError, match="no ONNX file"):
        load_onnx_metadata(tmp_path / "absent.onnx")


# Full matrix: every detector family at early fusion of 1, 3, 4 and 6 channels and late fusion of
# RGB + depth (3, 1) and RGB + HHA (3, 3); depth + HHA (1, 3) for the DSOD300 family's two sizes. Each
# case checks the network graph and one detection graph (the two cuts alternate, so each family meets
# both), at batch 1 and 3 on a dynamic batch. About 3½ minutes on two loaded cores.
FAMILIES = ["dsod300", "dsod_tiny", "dsod300_small", "ssd300_vgg16", "densenet121_dsod"]
INPUTS = [(1, "early", None, "threshold"), (3, "early", None, "keep_top_k"),
          (4, "early", None, "threshold"), (6, "early", None, "keep_top_k"),
          (4, "late", (3, 1), "keep_top_k"), (6, "late", (3, 3), "threshold")]  # fmt: skip
CASES = [(name, *case) for name in FAMILIES for case in INPUTS]
CASES += [(name, 4, "late", (1, 3), "threshold") for name in ("dsod300", "dsod_tiny")]
CASES = [pytest.param(name, channels, fusion, split, cut,  # id e.g. "dsod300-4ch-late3+1-keep_top_k"
                      id=f"{name}-{channels}ch-{fusion}{'+'.join(map(str, split or ()))}-{cut}")
         for name, channels, fusion, split, cut in CASES]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("name", "in_channels", "fusion", "split", "cut"), CASES)
def test_every_detector_exports(name, in_channels, fusion, split, cut, tmp_path):
    model = _detector(name, in_channels, fusion, split)
    images = _images(model, 3)
    with torch.no_grad():
        loc, conf = model(images)
    network = export_onnx(model, METADATA, tmp_path / "network.onnx")
    settings = _decisive_settings(loc, conf, model.priors, cut)
    _assert_decisive(loc, conf, model.priors, settings, CUT_STAGES[cut])
    reference = postprocess(loc, conf, model.priors, **settings)
    detections = export_onnx(model, METADATA, tmp_path / "detections.onnx", postprocess=settings)
    for n in (1, 3):
        _assert_same_network_outputs(run_onnx(network, images[:n].numpy()), model, loc[:n], conf[:n])
        _assert_same_detections(run_onnx(detections, images[:n].numpy()), reference[:n])
