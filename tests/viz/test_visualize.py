import json
import shutil

import numpy as np
import pytest
from PIL import Image

from dsod_depth.cli import main
from dsod_depth.errors import KitError
from dsod_depth.viz import visualize_run
from dsod_depth.viz.cloud import CLOUD_SIZE
from dsod_depth.viz.curves import TRAINING_SIZE, pr_figure_size
from dsod_depth.viz.detections import detection_figure_size


def _png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def _expected_legend_entries(gt, dets, image_id, score):
    """Classes drawn in a frame's detection figure (+1 for the difficult marker), from the JSON files."""
    anns = [a for a in gt["annotations"] if a["image_id"] == image_id]
    mine = sorted((d for d in dets if d["image_id"] == image_id and d["score"] >= score),
                  key=lambda d: -d["score"])[:25]  # fmt: skip
    classes = {a["category_id"] for a in anns} | {d["category_id"] for d in mine}
    return len(classes) + any(a.get("difficult") for a in anns)


@pytest.fixture(scope="module")
def figures(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    return visualize_run(tiny_run, split="test", num_frames=2, score_threshold=0.3, out_dir=out,
                         progress=False)  # fmt: skip


def test_every_figure_exists_with_its_size(figures, tiny_run, viz_store):
    out = figures.report.parent
    gt = json.loads((tiny_run / "eval" / "test" / "gt.json").read_text())
    dets = json.loads((tiny_run / "eval" / "test" / "detections.json").read_text())
    metrics = json.loads((tiny_run / "eval" / "test" / "metrics.json").read_text())
    for path in figures.figures:
        assert path.is_file() and path.stat().st_size > 0, path

    assert _png_size(out / "training_curves.png") == TRAINING_SIZE
    scored = sum(ap is not None for ap in metrics["ap_per_class"].values())
    assert _png_size(out / "pr_curves.png") == pr_figure_size(scored)

    # Two frames spread over the 3 test images: the first and the last; 3 image kinds of 128 × 96.
    ids = [img["id"] for img in gt["images"]]
    detection_pngs = sorted((out / "detections").iterdir())
    assert [p.stem for p in detection_pngs] == [ids[0], ids[-1]]
    for path in detection_pngs:
        entries = _expected_legend_entries(gt, dets, path.stem, 0.3)
        assert _png_size(path) == detection_figure_size(3, 96, 128, entries)

    (cloud_png,) = (out / "cloud").glob("*.png")
    assert _png_size(cloud_png) == CLOUD_SIZE


def test_ply_has_one_point_per_valid_depth_pixel(figures, viz_store):
    import open3d as o3d

    from dsod_depth.data.store import load_prepared

    (ply,) = (figures.report.parent / "cloud").glob("*.ply")
    samples, _ = load_prepared(viz_store, "test")
    depth = samples.read(samples.image_ids.index(ply.stem), ["depth"])["depth"]
    cloud = o3d.io.read_point_cloud(str(ply))
    assert len(cloud.points) == int((depth > 0).sum()) > 0
    z = np.asarray(cloud.points)[:, 2]
    np.testing.assert_allclose(np.sort(z), np.sort(depth[depth > 0]), atol=1e-6)  # metres, camera frame


def test_report_links_every_written_figure(figures, tiny_run):
    text = figures.report.read_text()
    out = figures.report.parent
    for path in figures.figures:
        assert f"({path.relative_to(out).as_posix()})" in text
    metrics = json.loads((tiny_run / "eval" / "test" / "metrics.json").read_text())
    assert f"| **mAP** | **{100 * metrics['map']:.2f}** | | |" in text
    assert "| model | dsod_tiny |" in text and "| modality | rgb |" in text


def test_cli_writes_into_run_figures_by_default(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert main(["visualize", str(run), "--n", "1", "--score", "0.5", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"5 figures; report: {run / 'figures' / 'report.md'}"
    assert (run / "figures" / "report.md").is_file()
    assert len(list((run / "figures" / "detections").iterdir())) == 1


def test_cli_errors_are_one_line(tiny_run, tmp_path, capsys):
    assert main(["visualize", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err and "dsod-depth train" in err

    unevaluated = tmp_path / "unevaluated"
    unevaluated.mkdir()
    shutil.copy(tiny_run / "config.yaml", unevaluated / "config.yaml")
    assert main(["visualize", str(unevaluated)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"run `dsod-depth eval {unevaluated} --split test` first" in err

    assert main(["visualize", str(tiny_run), "--split", "val"]) == 2
    assert "no evaluation on split 'val'" in capsys.readouterr().err
    assert main(["visualize", str(tiny_run), "--n", "0"]) == 2
    assert "(--n) must be at least 1" in capsys.readouterr().err


def test_a_store_with_other_images_is_refused(tiny_run, tmp_path):
    from dsod_depth.data.prepare import prepare_synthrooms

    other = tmp_path / "other"
    prepare_synthrooms(other, num_train=1, num_test=1, size=(64, 48), seed=9, progress=False)
    with pytest.raises(KitError, match="is not in"):
        visualize_run(tiny_run, store=other, out_dir=tmp_path / "fig", progress=False)
    assert not (tmp_path / "fig").exists()  # nothing half-written


def test_a_coco_scored_run_gets_voc_curves_with_a_clear_title(tiny_run, tmp_path):
    from dsod_depth.evaluation import evaluate_files, write_json_atomic

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("figures"))
    eval_dir = run / "eval" / "test"
    coco = evaluate_files(eval_dir / "gt.json", eval_dir / "detections.json", metric="coco")
    write_json_atomic(eval_dir / "metrics.json", coco)
    result = visualize_run(run, num_frames=1, progress=False)
    text = result.report.read_text()
    assert "## Metrics: COCO AP averaged over IoU 0.50:0.95" in text and "| **AP@[.50:.95]** |" in text
    assert (run / "figures" / "pr_curves.png").stat().st_size > 0


def test_file_names_are_safe_and_distinct():
    from dsod_depth.viz.run import file_stems

    ids = ["kv1/NYU0001", "kv1_NYU0001", "scene.001", "../x", "  "]
    names = file_stems(ids)
    assert names == {"kv1/NYU0001": "kv1_NYU0001", "kv1_NYU0001": "kv1_NYU0001_1", "scene.001": "scene.001",
                     "../x": "x", "  ": "frame"}  # fmt: skip
