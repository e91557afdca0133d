import numpy as np
import pytest
from PIL import Image

from dsod_depth.errors import KitError
from dsod_depth.geometry import Intrinsics, backproject
from dsod_depth.viz.cloud import CLOUD_SIZE, box_label_image, frame_cloud, render_cloud, save_ply
from dsod_depth.viz.style import class_colors, save_figure

NAMES = ["chair", "table", "lamp"]
CAMERA = Intrinsics(60.0, 62.0, 19.5, 14.0)


def _reference_label_image(shape, boxes, labels, scores):
    """Per pixel: the label of the best-scoring box containing the pixel's centre, -1 if none."""
    height, width = shape
    out = np.full(shape, -1)
    for v in range(height):
        for u in range(width):
            best = -np.inf
            for (x1, y1, x2, y2), label, score in zip(boxes, labels, scores):
                if x1 <= u + 0.5 <= x2 and y1 <= v + 0.5 <= y2 and score > best:
                    best, out[v, u] = score, label
    return out


@pytest.mark.parametrize("seed", range(4))
def test_box_label_image_matches_the_pixel_centre_rule(seed):
    rng = np.random.default_rng(seed)
    shape = (23, 31)
    xy = rng.uniform(-5, 30, (8, 2))
    boxes = np.hstack([xy, xy + rng.uniform(0, 12, (8, 2))])  # some empty, some outside the frame
    boxes[0] = [2.5, 3.5, 7.5, 9.5]  # edges exactly on pixel centres count as inside
    labels, scores = rng.integers(0, 3, 8), rng.permutation(8) / 8.0
    got = box_label_image(shape, boxes, labels, scores)
    assert got.dtype == np.int64 and got.shape == shape
    assert np.array_equal(got, _reference_label_image(shape, boxes, labels, scores))


def _frame():
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.5, 4.0, (30, 40)).astype(np.float32)
    depth[rng.random((30, 40)) < 0.1] = 0.0  # holes give no point
    rgb = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    boxes = np.array([[5.0, 5.0, 15.0, 20.0], [10.0, 0.0, 30.0, 10.0]])
    return depth, rgb, boxes, np.array([0, 2]), np.array([0.9, 0.5])


def test_frame_cloud_points_colours_and_highlight():
    depth, rgb, boxes, labels, scores = _frame()
    colors = class_colors(3)
    cloud = frame_cloud(depth, CAMERA, base_colors=rgb, det_boxes=boxes, det_labels=labels, det_scores=scores,
                        class_colors=colors)  # fmt: skip
    valid = depth > 0
    assert len(cloud.points) == valid.sum() == len(cloud.colors) == len(cloud.labels)
    np.testing.assert_allclose(cloud.points, backproject(depth.astype(np.float64), CAMERA)[valid])
    label_image = box_label_image(depth.shape, boxes, labels, scores)[valid]
    assert np.array_equal(cloud.labels, label_image)
    inside = label_image >= 0
    assert inside.any() and (~inside).any()
    np.testing.assert_array_equal(cloud.colors[~inside], rgb[valid][~inside] / 255.0)
    np.testing.assert_array_equal(cloud.colors[inside], colors[label_image[inside]])
    assert np.array_equal(cloud.pixel_index, np.flatnonzero(valid))


def test_frame_cloud_refuses_mismatched_colours():
    depth, rgb, boxes, labels, scores = _frame()
    with pytest.raises(KitError, match="must match"):
        frame_cloud(depth, CAMERA, base_colors=rgb[:-1], det_boxes=boxes, det_labels=labels,
                    det_scores=scores, class_colors=class_colors(3))  # fmt: skip


def test_ply_reads_back_in_open3d_with_every_point(tmp_path):
    import open3d as o3d

    depth, rgb, boxes, labels, scores = _frame()
    cloud = frame_cloud(depth, CAMERA, base_colors=rgb, det_boxes=boxes, det_labels=labels, det_scores=scores,
                        class_colors=class_colors(3))  # fmt: skip
    path = save_ply(cloud, tmp_path / "frame.ply")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.ply"]
    back = o3d.io.read_point_cloud(str(path))
    assert len(back.points) == int((depth > 0).sum())
    np.testing.assert_allclose(np.asarray(back.points), cloud.points, rtol=0, atol=1e-6)
    assert back.has_colors()
    np.testing.assert_allclose(np.asarray(back.colors), cloud.colors, atol=0.5 / 255 + 1e-9)  # 8-bit in PLY
    with pytest.raises(KitError, match=r"\.ply"):
        save_ply(cloud, tmp_path / "frame.pcd")


def test_render_cloud_size_legend_and_subsampling(tmp_path):
    depth, rgb, boxes, labels, scores = _frame()
    cloud = frame_cloud(depth, CAMERA, base_colors=rgb, det_boxes=boxes, det_labels=labels, det_scores=scores,
                        class_colors=class_colors(3))  # fmt: skip
    fig = render_cloud(cloud, title="frame-1", class_names=NAMES, class_colors=class_colors(3),
                       max_points=300)  # fmt: skip
    drawn = sum(len(c.get_offsets()) for ax in fig.axes for c in ax.collections)
    assert drawn == 2 * (300 + 1)  # two views, each the subset plus the camera marker
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["chair", "lamp"]
    assert fig._suptitle.get_text() == "frame-1"
    with Image.open(save_figure(fig, tmp_path / "cloud.png")) as image:
        assert image.size == CLOUD_SIZE
