"""compare with real evaluation files: bootstrap intervals (known margin, identical runs, pairing,
refusals), the wide table with three inits, transfer groups, and folders that train no detector."""

import json

import numpy as np
import pytest

from dsod_depth.cli import main
from dsod_depth.engine.run_dir import RunDir, write_run_kind
from dsod_depth.errors import KitError
from dsod_depth.evaluation import coco_ground_truth, coco_results, evaluate_files, write_json_atomic
from dsod_depth.experiments.compare import compare_runs
from dsod_depth.experiments.naming import init_sort_key, metric_phrase
from dsod_depth.experiments.tables import write_tables
from dsod_depth.viz.comparison import bar_chart_figure
from tests.experiments.conftest import make_run

CLASSES = ("chair", "table")
PRETRAINED = "pretrained:/x/rgb_pre/checkpoints/last.pt"


def scene(num_images: int, seed: int = 0) -> list[tuple]:
    """Per image 1-3 objects of the two classes: ``(boxes [n, 4] xyxy, labels [n], difficult [n])``."""
    rng = np.random.default_rng(seed)
    gt = []
    for _ in range(num_images):
        n = int(rng.integers(1, 4))
        xy = rng.uniform(0, 60, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(15, 40, (n, 2))], 1)  # [n, 4] xyxy
        gt.append((boxes, rng.integers(0, 2, n), np.zeros(n, bool)))
    return gt


def detector(gt, *, miss: float, seed: int, tp_scores=(0.6, 1.0), fp_scores=(0.0, 0.5), fp_per_image=2):
    """Per image ``(boxes, scores, labels)``: each object found with probability 1 − ``miss`` (a slightly
    shifted box, score uniform in ``tp_scores``) plus random false positives (scores in ``fp_scores``).
    With the default ranges every FP scores below every TP, so VOC area AP = recall exactly."""
    rng = np.random.default_rng(seed)
    det = []
    for boxes, labels, _ in gt:
        found = rng.random(len(labels)) >= miss
        xy = rng.uniform(0, 80, (fp_per_image, 2))
        fp = np.concatenate([xy, xy + rng.uniform(5, 15, (fp_per_image, 2))], 1)
        det.append((
            np.concatenate([boxes[found] + 1.0, fp]),
            np.concatenate([rng.uniform(*tp_scores, found.sum()), rng.uniform(*fp_scores, fp_per_image)]),
            np.concatenate([labels[found], rng.integers(0, 2, fp_per_image)]),
        ))  # fmt: skip
    return det


def detection_run(root, name, *, gt, det, metric="voc12", image_ids=None, **config):
    """A finished run folder with ``eval/test`` as ``eval`` writes it: gt.json, detections.json and
    metrics.json scored from them (config as :func:`make_run`; ``image_ids`` default 1..N)."""
    run = make_run(root, name, ap={c: 0.0 for c in CLASSES}, metric=metric, **config)
    folder = RunDir(run).eval_dir("test")
    ids = image_ids or list(range(1, len(gt) + 1))
    gt_path, det_path = folder / "gt.json", folder / "detections.json"
    write_json_atomic(gt_path, coco_ground_truth([(i, 100, 100, *g) for i, g in zip(ids, gt)], CLASSES))
    write_json_atomic(det_path, [r for i, d in zip(ids, det) for r in coco_results(i, *d)])
    write_json_atomic(folder / "metrics.json", evaluate_files(gt_path, det_path, metric=metric))
    return run


def margin_runs(root, num_images: int, miss: float):
    """rgb: scratch misses a fraction ``miss`` of the objects, imagenet finds all; two seeds each."""
    gt = scene(num_images)
    for seed in (0, 1):
        detection_run(root, f"s{seed}", gt=gt, det=detector(gt, miss=miss, seed=seed), modality="rgb",
                      init="scratch", seed=seed)  # fmt: skip
        detection_run(root, f"i{seed}", gt=gt, det=detector(gt, miss=0.0, seed=10 + seed), modality="rgb",
                      init="imagenet", seed=seed)  # fmt: skip
    return root


def test_the_gain_interval_covers_a_known_margin_and_narrows_with_more_images(tmp_path):
    miss = 0.3  # imagenet finds every object (AP 1), scratch 70 % of them (AP = recall): margin 0.3
    widths = []
    for num_images in (50, 200, 800):
        result = compare_runs([margin_runs(tmp_path / str(num_images), num_images, miss)], bootstrap=500)
        (gain,) = result["gains"]
        assert gain["delta_lo"] <= miss <= gain["delta_hi"]
        assert gain["delta_lo"] <= gain["delta"] <= gain["delta_hi"]
        widths.append(gain["delta_hi"] - gain["delta_lo"])
    assert widths[2] < 0.7 * widths[1] < 0.7**2 * widths[0]  # about 1/√N: half as wide for 4× the images


def test_identical_detections_give_exactly_zero_intervals(tmp_path):
    gt = scene(40)
    for modality in ("rgb", "depth"):
        for seed in (0, 1):
            det = detector(gt, miss=0.2, seed=seed, tp_scores=(0.2, 1.0), fp_scores=(0.0, 0.9))
            for init in ("scratch", "imagenet"):
                name = f"{modality}_{init}_{seed}"
                detection_run(tmp_path, name, gt=gt, det=det, modality=modality, init=init, seed=seed)
    result = compare_runs([tmp_path], bootstrap=300)
    assert [(d["delta"], d["delta_lo"], d["delta_hi"]) for d in result["gains"]] == [(0.0, 0.0, 0.0)] * 2
    (figure,) = result["mismatch"]
    assert (figure["mismatch"], figure["mismatch_lo"], figure["mismatch_hi"]) == (0.0, 0.0, 0.0)
    low, high = result["groups"][0]["map_lo"], result["groups"][0]["map_hi"]
    assert 0.0 < low < result["groups"][0]["map_mean"] < high < 1.0


@pytest.fixture
def three_inits(tmp_path):
    """rgb and depth × scratch / imagenet / pretrained:rgb_pre on 30 images, VOC07; two seeds for
    scratch, one for the others. Each run's detector misses its own fraction of the objects."""
    root = tmp_path / "runs"
    gt = scene(30, seed=5)
    miss = {"scratch": 0.4, "imagenet": 0.15, PRETRAINED: 0.25}
    for m, modality in enumerate(("rgb", "depth")):
        for init in miss:
            for seed in (0, 1) if init == "scratch" else (0,):
                det = detector(gt, miss=miss[init] + 0.1 * m, seed=100 * m + 10 * len(init) + seed,
                               tp_scores=(0.3, 1.0), fp_scores=(0.0, 0.7))  # fmt: skip
                detection_run(root, f"{modality}_{init[:8]}_{seed}", gt=gt, det=det, metric="voc07",
                              modality=modality, init=init, seed=seed)  # fmt: skip
    return root


EXPECTED_THREE_INITS = """\
# Scratch vs pretrained initialisation

8 runs in 6 groups (dataset × modality × init). Exact values: `three.json`.

![mAP per modality and init](three.png)

## synthrooms

Table 1. synthrooms: summary per modality. mAP [%] of each init on the test split (VOC07 11-point AP at \
IoU 0.5), mean ± sample standard deviation over seeds (— when n = 1), then Δ = mAP(init) − mAP(scratch) \
of each pretrained init, in points from the unrounded means; — = no such runs. [low, high] = 95 % \
interval of a paired bootstrap over the 30 test images (200 resamples, seed 0, the same for every run; \
on each resample a cell is the mean of its seeds' mAPs, Δ and mismatch are differences of these; \
2.5th–97.5th percentile, not necessarily centred on the mean). It covers the sampling of test images, \
not seed variance (± std shows that).

| modality | scratch | imagenet | pretrained:rgb_pre | Δ imagenet | Δ pretrained:rgb_pre |
| --- | ---: | ---: | ---: | ---: | ---: |
| rgb | 47.9 ± 4.7 [40.3, 55.7] | 73.3 ± — [61.4, 82.2] | 62.0 ± — [51.5, 72.3] | +25.4 [+13.5, +34.6] \
| +14.1 [+0.7, +24.6] |
| depth | 40.8 ± 14.7 [33.8, 49.6] | 66.3 ± — [55.6, 77.6] | 52.2 ± — [42.9, 63.3] | +25.5 [+13.9, \
+35.8] | +11.3 [-0.2, +22.2] |

Table 2. synthrooms: mAP [%] on the test split (VOC07 11-point AP at IoU 0.5), mean ± sample standard \
deviation over seeds (n seeds; — when n = 1). Δ = mAP(init) − mAP(scratch) of the same modality, in \
points, from the unrounded means. Pretrained = every init other than scratch: imagenet = torchvision \
ImageNet-1k weights; pretrained:rgb_pre = kit checkpoint /x/rgb_pre/checkpoints/last.pt. Seeds per \
cell: 1 to 2 (column n). Training budget: 100 iterations × effective batch 16 (batch_size 8 × \
accumulate 2 per process) = 1,600 images per run. [low, high]: 95 % bootstrap interval, as in Table 1.

| modality | init | model | n | mAP [%] | Δ vs scratch |
| --- | --- | --- | ---: | ---: | ---: |
| rgb | scratch | dsod_tiny | 2 | 47.9 ± 4.7 [40.3, 55.7] | ref. |
| rgb | imagenet | dsod_tiny | 1 | 73.3 ± — [61.4, 82.2] | +25.4 [+13.5, +34.6] |
| rgb | pretrained:rgb_pre | dsod_tiny | 1 | 62.0 ± — [51.5, 72.3] | +14.1 [+0.7, +24.6] |
| depth | scratch | dsod_tiny | 2 | 40.8 ± 14.7 [33.8, 49.6] | ref. |
| depth | imagenet | dsod_tiny | 1 | 66.3 ± — [55.6, 77.6] | +25.5 [+13.9, +35.8] |
| depth | pretrained:rgb_pre | dsod_tiny | 1 | 52.2 ± — [42.9, 63.3] | +11.3 [-0.2, +22.2] |

Table 3. synthrooms: domain mismatch = Δ(rgb) − Δ(modality), in points from the unrounded means, for \
each depth-based modality and pretrained init: how much more the pretraining helps RGB than that \
modality (positive: the pretrained features transfer worse to it). [low, high]: 95 % bootstrap \
interval, as in Table 1.

| modality | init | Δ rgb | Δ modality | Δ(rgb) − Δ(modality) |
| --- | --- | ---: | ---: | ---: |
| depth | imagenet | +25.4 | +25.5 | -0.1 [-17.9, +14.9] |
| depth | pretrained:rgb_pre | +14.1 | +11.3 | +2.8 [-16.1, +18.6] |

Table 4. synthrooms: AP per class [%] (VOC07 11-point AP at IoU 0.5), mean over seeds; — = class absent \
from the test split.

| class | rgb / scratch | rgb / imagenet | rgb / pretrained:rgb_pre | depth / scratch | depth / \
imagenet | depth / pretrained:rgb_pre |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
| chair | 44.3 | 72.4 | 63.9 | 37.2 | 55.7 | 60.8 |
| table | 51.5 | 74.2 | 60.2 | 44.4 | 77.0 | 43.5 |
| mAP | 47.9 | 73.3 | 62.0 | 40.8 | 66.3 | 52.2 |
"""


def test_three_inits_give_the_exact_wide_and_long_tables_and_three_bars_per_modality(three_inits, tmp_path):
    result = compare_runs([three_inits], bootstrap=200, bootstrap_seed=0)
    paths = write_tables(result, tmp_path / "out" / "three.md")
    assert paths["md"].read_text(encoding="utf-8") == EXPECTED_THREE_INITS
    assert result["bootstrap"] == {"resamples": 200, "seed": 0, "confidence": 0.95}
    assert result["datasets"][0]["intervals"] == {"resamples": 200, "seed": 0, "num_images": 30}
    figure = bar_chart_figure(result, metric_phrases={"synthrooms": metric_phrase(result["datasets"][0])})
    (ax,) = figure.axes
    centres = sorted(round(p.get_x() + p.get_width() / 2) for p in ax.patches)  # bar centres → modality
    assert centres == [0, 0, 0, 1, 1, 1]
    assert sorted(p.get_height() for p in ax.patches) == sorted(100 * g["map_mean"] for g in result["groups"])


def test_intervals_repeat_with_their_seed_and_reach_csv_and_json(three_inits, tmp_path):
    first = compare_runs([three_inits], bootstrap=100, bootstrap_seed=4)
    again = compare_runs([three_inits], bootstrap=100, bootstrap_seed=4)
    other = compare_runs([three_inits], bootstrap=100, bootstrap_seed=5)
    assert first["groups"] == again["groups"] and first["gains"] == again["gains"]
    assert [g["map_lo"] for g in first["groups"]] != [g["map_lo"] for g in other["groups"]]
    paths = write_tables(first, tmp_path / "t.md", chart=False)
    rows = [line.split(",") for line in paths["csv"].read_text().splitlines()]
    header, rgb_imagenet = rows[0], rows[2]
    cell = dict(zip(header, rgb_imagenet))
    group = first["groups"][1]
    assert (group["modality"], group["init"]) == ("rgb", "imagenet")
    assert cell["map_lo_pct"] == f"{100 * group['map_lo']:.1f}"
    assert cell["map_hi_pct"] == f"{100 * group['map_hi']:.1f}"
    assert cell["delta_lo_pts"] == f"{100 * first['gains'][0]['delta_lo']:.1f}"
    data = json.loads(paths["json"].read_text())
    assert data["mismatch"][0]["mismatch_lo"] == first["mismatch"][0]["mismatch_lo"]
    assert "[" in paths["tex"].read_text() and "2.5th--97.5th" in paths["tex"].read_text()


def test_runs_of_one_dataset_must_share_their_test_images(tmp_path):
    gt = scene(12)
    rgb = {"modality": "rgb", "init": "scratch"}
    detection_run(tmp_path, "a", gt=gt, det=detector(gt, miss=0.2, seed=0), seed=0, **rgb)
    detection_run(
        tmp_path, "b", gt=gt, det=detector(gt, miss=0.2, seed=1), seed=1, image_ids=[*range(2, 14)], **rgb
    )
    with pytest.raises(KitError, match="evaluated on different test images") as info:
        compare_runs([tmp_path])
    assert "\n" not in str(info.value) and "--bootstrap 0" in str(info.value)
    assert compare_runs([tmp_path], bootstrap=0)["groups"][0]["n"] == 2


def test_the_same_images_in_another_order_are_paired_by_id(tmp_path):
    gt = scene(12)
    det = detector(gt, miss=0.2, seed=0)
    order = list(range(12))[::-1]
    detection_run(tmp_path, "a", gt=gt, det=det, modality="rgb", init="scratch", seed=0)
    detection_run(tmp_path, "b", gt=[gt[i] for i in order], det=[det[i] for i in order], modality="rgb",
                  init="imagenet", seed=0, image_ids=[i + 1 for i in order])  # fmt: skip
    (gain,) = compare_runs([tmp_path], bootstrap=50)["gains"]
    assert (gain["delta_lo"], gain["delta_hi"]) == (0.0, 0.0)


def test_detections_that_do_not_give_the_runs_map_are_refused(tmp_path):
    gt = scene(12)
    det = detector(gt, miss=0.2, seed=0)
    run = detection_run(tmp_path, "a", gt=gt, det=det, modality="rgb", init="scratch", seed=0)
    metrics_path = RunDir(run).eval_metrics("test")
    metrics = json.loads(metrics_path.read_text())
    metrics["map"] -= 0.01
    metrics_path.write_text(json.dumps(metrics))
    with pytest.raises(KitError, match=r"detections\.json gives mAP .* re-score the run"):
        compare_runs([run])


def test_coco_and_runs_without_detections_get_no_intervals_and_say_why(tmp_path, capsys):
    make_run(tmp_path / "coco", "c", modality="rgb", init="scratch", seed=0, ap={"chair": 0.3}, metric="coco")
    result = compare_runs([tmp_path / "coco"])
    assert result["datasets"][0]["intervals"] is None and result["groups"][0]["map_lo"] is None
    md = write_tables(result, tmp_path / "c.md", chart=False)["md"].read_text()
    assert "No intervals: VOC metrics only, and these runs are scored with coco." in md

    make_run(tmp_path / "bare", "b", modality="rgb", init="scratch", seed=0, ap={"chair": 0.3})
    out = tmp_path / "b.md"
    assert main(["compare", str(tmp_path / "bare"), "--out", str(out), "--no-chart"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("note: No intervals for synthrooms: 1 of 1 runs have no eval/test/gt.json")
    assert "No intervals: 1 of 1 runs have no eval/test/gt.json and detections.json" in out.read_text()
    assert "| rgb | 30.0 ± — |" in out.read_text()  # plain cells


def test_a_negative_bootstrap_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["compare", str(tmp_path), "--bootstrap", "-1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--bootstrap" in err and "-1" in err
    with pytest.raises(KitError, match="resamples >= 0"):
        compare_runs([tmp_path], bootstrap=-5)


# --------------------------------------------------------------------------- transfer and skipped folders


def test_transfer_gets_its_gain_per_modality_and_no_mismatch_figure(tmp_path):
    ap = {"chair": 0.4, "table": 0.6}
    make_run(tmp_path, "r0", modality="rgb", init="scratch", seed=0, ap=ap)
    make_run(tmp_path, "r1", modality="rgb", init="imagenet", seed=0, ap={"chair": 0.5, "table": 0.7})
    for modality, gain in (("depth", 0.02), ("hha", 0.05)):
        make_run(tmp_path, f"{modality}0", modality=modality, init="scratch", seed=0, ap=ap)
        make_run(tmp_path, f"{modality}1", modality=modality, init="imagenet", seed=0, ap=ap)
        make_run(tmp_path, f"{modality}2", modality=modality, init=f"transfer:/x/transfer_{modality}", seed=0,
                 ap={k: v + gain for k, v in ap.items()})  # fmt: skip
    result = compare_runs([tmp_path], bootstrap=0)
    assert result["datasets"][0]["inits"] == ["scratch", "imagenet", "transfer"]
    assert [(d["modality"], d["init"]) for d in result["mismatch"]] == [
        ("depth", "imagenet"),
        ("hha", "imagenet"),
    ]
    md = write_tables(result, tmp_path / "t.md", chart=False)["md"].read_text()
    assert "| modality | scratch | imagenet | transfer | Δ imagenet | Δ transfer |" in md
    assert "| hha | 50.0 ± — | 50.0 ± — | 55.0 ± — | 0.0 | +5.0 |" in md
    assert "| rgb | 50.0 ± — | 60.0 ± — | — | +10.0 | — |" in md
    assert "The transfer init has no figure: no RGB student exists for it (the RGB network is its" in md
    assert "transfer = the student of a supervision-transfer run" in md


def test_init_order_puts_transfer_last():
    order = ["scratch", "imagenet", "pretrained:a", "pretrained:b", "transfer"]
    assert (
        sorted(order[::-1], key=init_sort_key) == sorted(order[1::2] + order[::2], key=init_sort_key) == order
    )


def _not_a_detector(folder, kind):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("kind: not a detector config\n")
    write_run_kind(RunDir(folder), kind)
    return folder


def test_folders_that_train_no_detector_are_skipped_with_a_note(tmp_path, capsys):
    ap = {"chair": 0.4, "table": 0.6}
    make_run(tmp_path / "sweep", "a", modality="rgb", init="scratch", seed=0, ap=ap)
    pre = _not_a_detector(tmp_path / "sweep" / "pretrain_rgb", "pretrain")
    tr = _not_a_detector(tmp_path / "sweep" / "transfer_hha", "transfer")
    result = compare_runs([tmp_path / "sweep"], bootstrap=0)
    assert result["skipped"] == [
        {"run_dir": str(p), "kind": k} for p, k in ((pre, "pretrain"), (tr, "transfer"))
    ]
    note = f"Skipped 2 folders that train no detector: {pre} (pretrain), {tr} (transfer)."
    md = write_tables(result, tmp_path / "t.md", chart=False)["md"].read_text()
    assert f"Exact values: `t.json`.\n\n{note}\n\n## synthrooms" in md

    args = [str(tmp_path / "sweep" / "a"), str(pre), "--out", str(tmp_path / "cli.md"), "--bootstrap", "0"]
    assert main(["compare", *args]) == 0  # a folder passed directly is skipped too
    assert capsys.readouterr().err == f"note: Skipped 1 folder that trains no detector: {pre} (pretrain).\n"
    with pytest.raises(KitError, match=r"^no run directories given \(Skipped 1 folder .* \(transfer\)\)$"):
        compare_runs([tr])
