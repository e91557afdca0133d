"""PASCAL VOC: set names, XML → continuous boxes with difficult flags, dropped objects, 07+12, the
prepare command."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from dsod_depth.cli import main
from dsod_depth.data import voc
from dsod_depth.data.store import load_prepared
from dsod_depth.errors import KitError

from .fixtures_voc import SETS, SPECS, build_devkit, expected, inverted


@pytest.fixture(scope="module")
def devkit(tmp_path_factory):
    return build_devkit(tmp_path_factory.mktemp("voc"))


def _named(boxes, labels, difficult):
    return sorted((b.tolist(), voc.CLASSES[k], bool(d)) for b, k, d in zip(boxes, labels, difficult))


def test_parse_sets():
    got = voc.parse_sets("2007-trainval, 2012-trainval,2007-trainval")
    assert got == [("2007", "trainval"), ("2012", "trainval")]
    for bad in ("07-trainval", "2007-train_val", "2007", ""):
        with pytest.raises(KitError, match="2007-trainval"):
            voc.parse_sets(bad)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.year}-{s.stem}")
def test_annotations_become_continuous_boxes(devkit, spec):
    base = devkit / f"VOC{spec.year}"
    xml, jpg = base / "Annotations" / f"{spec.stem}.xml", base / "JPEGImages" / f"{spec.stem}.jpg"
    image = voc.parse_annotation(xml, jpg, f"VOC{spec.year}/{spec.stem}")
    assert (image.width, image.height) == (spec.width, spec.height)
    assert _named(image.boxes, image.labels, image.difficult) == sorted(expected(spec))
    assert [d.index for d in image.dropped] == inverted(spec)
    # The devkit's inclusive width xmax - xmin + 1 is the continuous width x2 - x1.
    kept = [obj for i, obj in enumerate(spec.objects) if i not in inverted(spec)]
    for (_, (x1, _, x2, _), _), box in zip(kept, image.boxes):
        assert box[2] - box[0] == pytest.approx(x2 - x1 + 1)


def test_inverted_boxes_drop_the_object_not_the_image(devkit):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = voc.collect(devkit, [("2012", "trainval")])
    image = next(i for i in images if i.image_id == "VOC2012/2008_000004")
    assert _named(image.boxes, image.labels, image.difficult) == [
        ([1.0, 2.0, 12.0, 20.0], "dog", False), ([6.0, 7.0, 7.0, 8.0], "bird", False),
    ]  # fmt: skip
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    for index, name in ((0, "cat"), (3, "person")):
        assert any("2008_000004.xml" in m and f"object {index}: inverted box" in m and name in m
                   for m in messages), messages  # fmt: skip
    report = voc.VocScan({"train": images}).report()
    assert report.dropped == {"objects": {voc.DROP_REASONS[0]: 2}}


def test_one_pixel_box_is_kept_with_width_1(devkit):
    base = devkit / "VOC2012"
    image = voc.parse_annotation(base / "Annotations" / "2008_000004.xml", base / "JPEGImages" / "x.jpg", "x")
    bird = image.boxes[image.labels == voc.CLASSES.index("bird")]
    assert bird.tolist() == [[6.0, 7.0, 7.0, 8.0]]  # xmin = xmax = 7 → [6, 7]: pixel 7 of the devkit
    assert (bird[:, 2] - bird[:, 0]).tolist() == [1.0] and (bird[:, 3] - bird[:, 1]).tolist() == [1.0]


def test_box_outside_the_image_is_dropped(tmp_path):
    xml = tmp_path / "a.xml"
    xml.write_text(
        "<annotation><size><width>20</width><height>10</height></size>"
        "<object><name>cat</name><bndbox><xmin>25</xmin><ymin>2</ymin><xmax>30</xmax><ymax>5</ymax></bndbox></object>"
        "<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>10</ymax></bndbox></object>"
        "</annotation>"
    )
    image = voc.parse_annotation(xml, tmp_path / "a.jpg", "a")
    assert image.boxes.tolist() == [[0.0, 0.0, 20.0, 10.0]]
    assert [(d.index, d.reason) for d in image.dropped] == [(0, voc.DROP_REASONS[1])]


def test_07_plus_12_collects_every_image_once(devkit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dropped objects of 2008_000004
        images = voc.collect(devkit, voc.parse_sets("2007-trainval,2012-trainval,2007-trainval"))
    assert [i.image_id for i in images] == [f"VOC{y}/{s}" for (y, n), stems in SETS.items() if n == "trainval"
                                            for s in stems]  # fmt: skip


def test_frames_are_colour_with_an_invalid_depth(devkit):
    images = voc.collect(devkit, [("2007", "test")])
    sample = voc.VocFrames(images)(0)
    assert sample.rgb.shape == (50, 40, 3) and sample.rgb.dtype == np.uint8
    assert not sample.depth.any() and not sample.raw_depth.any()
    assert sample.intrinsics == voc.nominal_camera(40, 50)


def test_prepare_command_writes_a_colour_store(devkit, tmp_path, capsys):
    out = tmp_path / "store"
    argv = ["prepare", "voc", "--source", str(devkit), "--out", str(out),
            "--sets", "2007-trainval,2012-trainval", "--test", "2007-test", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    captured = capsys.readouterr()
    printed = captured.out
    assert "chair" in printed and "(n) = of which difficult" in printed
    assert "dropped objects: 2 (2 inverted box (xmin > xmax or ymin > ymax))" in printed
    warned = [line for line in captured.err.splitlines() if line.startswith("warning: dropping a VOC object")]
    assert len(warned) == 2 and all("2008_000004.xml: object" in line for line in warned)
    train, names = load_prepared(out, "train")
    test, _ = load_prepared(out, "test")
    assert names == list(voc.CLASSES)
    assert [s.image_id for s in test] == ["VOC2007/000001", "VOC2007/000004"]
    assert len(train) == 5 and "hha" not in train.fields and set(train.stats) == {"rgb"}
    by_id = {f"VOC{s.year}/{s.stem}": s for s in SPECS}
    for sample in [*train, *test]:
        spec = by_id[sample.image_id]
        assert sample.rgb.shape == (spec.height, spec.width, 3)
        assert _named(sample.boxes, sample.labels, sample.difficult) == sorted(expected(spec))
        assert not sample.depth.any()
    assert main(argv) == 0  # rerun: the finished files are kept


@pytest.mark.parametrize("damage", ["bad_xml", "missing_set", "voc2012_test", "overlap"])
def test_bad_devkit_exits_2_with_one_line_and_no_store(devkit, tmp_path, capsys, damage):
    import shutil

    kit = tmp_path / "VOCdevkit"
    shutil.copytree(devkit, kit)
    sets, test = "2007-trainval,2012-trainval", "2007-test"
    if damage == "bad_xml":
        (kit / "VOC2007" / "Annotations" / "000007.xml").write_text("<annotation><size><width>4")
    elif damage == "missing_set":
        (kit / "VOC2012" / "ImageSets" / "Main" / "trainval.txt").unlink()
    elif damage == "voc2012_test":
        test = "2012-test"
    else:
        sets = "2007-trainval,2007-test"
    out = tmp_path / "store"
    argv = ["prepare", "voc", "--source", str(kit), "--out", str(out), "--sets", sets, "--test", test]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert {"bad_xml": "000007.xml", "missing_set": "trainval.txt", "voc2012_test": "not public",
            "overlap": "share"}[damage] in err  # fmt: skip
    assert not out.exists()
