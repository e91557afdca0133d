import numpy as np
import pytest
from matplotlib.patches import Rectangle
from PIL import Image

from dsod_depth.viz.detections import (
    FrameBoxes,
    detection_figure,
    detection_figure_size,
    frame_panels,
    select_frames,
)
from dsod_depth.viz.style import class_colors, save_figure

NAMES = ["chair", "table", "lamp"]


@pytest.mark.parametrize(("num_frames", "n"), [(10, 4), (3, 16), (1, 1), (100, 16), (5, 5), (0, 3), (7, 0)])
def test_select_frames_spreads_over_the_split(num_frames, n):
    frames = select_frames(num_frames, n)
    assert frames.dtype == np.int64
    assert len(frames) == (min(n, num_frames) if n > 0 else 0)
    assert np.all(np.diff(frames) > 0) and np.all((frames >= 0) & (frames < max(num_frames, 1)))
    if len(frames) > 1:
        assert frames[0] == 0 and frames[-1] == num_frames - 1


def test_detection_figure_size_golden():
    # 3 rows of 128 × 96 frames: panels 400 × 300; 7 legend entries → 2 legend rows.
    assert detection_figure_size(3, 96, 128, 7) == (34 + 400 + 10 + 400 + 10,
                                                    34 + 26 + 3 * 300 + 2 * 10 + 16 + 2 * 20)  # fmt: skip
    assert detection_figure_size(1, 480, 640, 0) == (854, 34 + 26 + 300 + 16 + 20)


def _boxes():
    return FrameBoxes(
        gt_boxes=np.array([[10.0, 20.0, 50.0, 60.0], [100.0, 5.0, 127.0, 40.0]]),
        gt_labels=np.array([0, 2]), gt_difficult=np.array([False, True]),
        det_boxes=np.array([[11.0, 19.5, 52.0, 61.0], [0.0, 0.0, 30.0, 30.0], [60.0, 50.0, 90.0, 95.0]]),
        det_scores=np.array([0.91, 0.1, 0.45]), det_labels=np.array([0, 1, 1]),
    )  # fmt: skip


def _panels(height=96, width=128, rows=2):
    rng = np.random.default_rng(0)
    labels = ["RGB", "HHA", "depth"][:rows]
    return [(label, rng.integers(0, 256, (height, width, 3), dtype=np.uint8)) for label in labels]


def test_detection_figure_draws_names_scores_legend_and_title(tmp_path):
    boxes = _boxes()
    fig = detection_figure(_panels(), boxes, class_names=NAMES, colors=class_colors(3),
                           title="test-000007 · run x", score_threshold=0.3)  # fmt: skip
    assert fig._suptitle.get_text() == "test-000007 · run x"
    axes = fig.axes
    assert len(axes) == 4  # 2 rows × (ground truth, detections)
    gt_ax, det_ax = axes[0], axes[1]
    assert [t.get_text() for t in gt_ax.texts] == ["chair", "lamp (difficult)"]
    assert [t.get_text() for t in det_ax.texts] == ["chair 0.91", "table 0.45"]  # 0.1 is below 0.3
    assert gt_ax.get_ylabel() == "RGB" and axes[2].get_ylabel() == "HHA"
    assert gt_ax.get_title().startswith("ground truth: 2 objects (1 difficult)")
    assert det_ax.get_title() == "detections, score ≥ 0.30: 2 drawn of 3"
    # Boxes in the continuous pixel convention, on an image spanning [0, W] × [0, H].
    rects = [p for p in gt_ax.patches if isinstance(p, Rectangle)]
    assert [(r.get_x(), r.get_y(), r.get_width(), r.get_height()) for r in rects] == [
        (10.0, 20.0, 40.0, 40.0), (100.0, 5.0, 27.0, 35.0)]  # fmt: skip
    assert [r.get_linestyle() for r in rects] == ["-", "--"]  # difficult is dashed
    assert gt_ax.images[0].get_extent() == [0, 128, 96, 0]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["chair", "table", "lamp", "difficult (ignored by VOC AP)"]
    path = save_figure(fig, tmp_path / "frame.png")
    with Image.open(path) as image:
        assert image.size == detection_figure_size(2, 96, 128, len(legend))


def test_detection_figure_caps_the_number_of_drawn_detections():
    rng = np.random.default_rng(1)
    n = 40
    xy = rng.uniform(0, 80, (n, 2))
    boxes = FrameBoxes(
        gt_boxes=np.zeros((0, 4)), gt_labels=np.zeros(0, np.int64), gt_difficult=np.zeros(0, bool),
        det_boxes=np.hstack([xy, xy + 10]), det_scores=rng.uniform(0.5, 1.0, n),
        det_labels=np.zeros(n, np.int64),
    )  # fmt: skip
    fig = detection_figure(_panels(rows=1), boxes, class_names=NAMES, colors=class_colors(3), title="t",
                           max_detections=5)  # fmt: skip
    drawn = [float(t.get_text().split()[-1]) for t in fig.axes[1].texts]
    assert drawn == sorted(np.round(boxes.det_scores, 2), reverse=True)[:5]  # the best five, best first


def test_detection_figure_without_any_box_still_explains_itself(tmp_path):
    empty = FrameBoxes(
        gt_boxes=np.zeros((0, 4)), gt_labels=np.zeros(0, np.int64), gt_difficult=np.zeros(0, bool),
        det_boxes=np.zeros((0, 4)), det_scores=np.zeros(0), det_labels=np.zeros(0, np.int64),
    )  # fmt: skip
    fig = detection_figure(_panels(rows=1), empty, class_names=NAMES, colors=class_colors(3), title="t")
    assert not fig.legends and any("no objects" in t.get_text() for t in fig.texts)
    with Image.open(save_figure(fig, tmp_path / "empty.png")) as image:
        assert image.size == detection_figure_size(1, 96, 128, 0)


def test_frame_panels_show_every_image_kind_of_the_store(viz_store):
    from dsod_depth.data.store import load_prepared
    from dsod_depth.encoders import encode

    samples, _ = load_prepared(viz_store, "test")
    panels = frame_panels(samples, 1)
    assert [label for label, _ in panels] == ["RGB", "depth (jet, 0–10 m)", "HHA"]
    arrays = samples.read(1, ["rgb", "depth", "raw_depth", "hha"])
    assert all(image.dtype == np.uint8 and image.shape == (96, 128, 3) for _, image in panels)
    assert np.array_equal(panels[0][1], arrays["rgb"]) and np.array_equal(panels[2][1], arrays["hha"])
    jet = encode("jet", arrays["depth"], arrays["raw_depth"], samples.camera(1))  # [3, H, W] 0..255
    assert np.array_equal(panels[1][1], np.rint(jet).astype(np.uint8).transpose(1, 2, 0))


class _ColourOnlySplit:
    """Duck-typed stand-in for a colour-only store (VOC): depth exists but is all 0, no HHA."""

    fields = ("rgb", "depth", "raw_depth")
    attrs = {"has_depth": False}

    def read(self, index, fields):
        assert set(fields) == {"rgb"}  # depth is not even read
        return {"rgb": np.full((4, 6, 3), 7, np.uint8)}


def test_frame_panels_skip_depth_of_colour_only_datasets():
    panels = frame_panels(_ColourOnlySplit(), 0)
    assert [label for label, _ in panels] == ["RGB"]
