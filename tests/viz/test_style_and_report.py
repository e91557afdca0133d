import os
import stat

import numpy as np
import pytest
from PIL import Image

from dsod_depth.errors import KitError
from dsod_depth.viz.report import ReportFigures, metrics_table, write_run_report
from dsod_depth.viz.style import atomic_output, class_colors, new_figure, readable_text_color, save_figure


@pytest.mark.parametrize("size", [(321, 123), (1000, 800), (17, 901)])
def test_saved_png_has_exactly_the_requested_pixels(tmp_path, size):
    fig = new_figure(*size)
    ax = fig.add_subplot()
    ax.plot([0, 1], [1, 0])
    ax.set_title("a title that could push the layout around")
    path = save_figure(fig, tmp_path / "sub" / "fig.png")
    with Image.open(path) as image:
        assert image.size == size and image.format == "PNG"
    assert sorted(p.name for p in path.parent.iterdir()) == ["fig.png"]  # no temporary file left


def test_atomic_output_keeps_the_old_file_on_failure_and_uses_normal_permissions(tmp_path):
    target = tmp_path / "report.md"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.md"]
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".md"  # same extension: writers choosing a format by it still work
        tmp.write_text("new")
    umask = os.umask(0)
    os.umask(umask)
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_atomic_output_names_an_unwritable_place(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(KitError, match="cannot write"), atomic_output(tmp_path / "file" / "a.png"):
        pass


@pytest.mark.parametrize("num_classes", [1, 12, 19, 20, 80])
def test_class_colors_are_distinct_rgb_in_unit_range(num_classes):
    colors = class_colors(num_classes)
    assert colors.shape == (num_classes, 3) and colors.dtype == np.float64
    assert (colors >= 0).all() and (colors <= 1).all()
    assert len({tuple(np.round(c, 6)) for c in colors}) == num_classes
    assert np.array_equal(class_colors(num_classes), colors)  # the same in every figure


def test_readable_text_color():
    assert readable_text_color(np.array([1.0, 1.0, 0.0])) == "black"  # yellow
    assert readable_text_color(np.array([0.0, 0.0, 0.5])) == "white"  # navy


METRICS = {
    "metric": "voc07", "map": 0.625, "iou_threshold": 0.5, "num_images": 3, "num_detections": 9,
    "ap_per_class": {"chair": 0.5, "table|top": 0.75, "lamp": None},
    "num_gt_per_class": {"chair": 2, "table|top": 4, "lamp": 0},
    "num_det_per_class": {"chair": 5, "table|top": 4, "lamp": 0},
}  # fmt: skip


def test_metrics_table_golden():
    assert metrics_table(METRICS) == "\n".join([
        "| class | AP [%] | GT | detections |",
        "|---|---:|---:|---:|",
        "| chair | 50.00 | 2 | 5 |",
        "| table\\|top | 75.00 | 4 | 4 |",
        "| lamp | – | 0 | 0 |",
        "| **mAP** | **62.50** | | |",
    ])  # fmt: skip


def test_report_links_every_figure_relative_to_its_folder(tmp_path):
    out = tmp_path / "figures"
    figures = ReportFigures(
        training=out / "training_curves.png", pr=out / "pr_curves.png",
        detections=[("img/1", out / "detections" / "img_1.png")],
        clouds=[("img/1", out / "cloud" / "img_1.png", out / "cloud" / "img_1.ply")],
    )  # fmt: skip
    report = write_run_report(
        out / "report.md", title="Run x · test split", settings=[("model", "dsod_tiny")], metrics=METRICS,
        figures=figures, score_threshold=0.3,
    )  # fmt: skip
    text = report.read_text()
    assert text.startswith("# Run x · test split\n")
    for link in ("(training_curves.png)", "(pr_curves.png)", "(detections/img_1.png)", "(cloud/img_1.png)",
                 "(cloud/img_1.ply)"):  # fmt: skip
        assert link in text
    assert "| model | dsod_tiny |" in text and metrics_table(METRICS) in text
    assert "PASCAL VOC2007 11-point AP at IoU ≥ 0.5" in text and "score ≥ 0.3" in text
