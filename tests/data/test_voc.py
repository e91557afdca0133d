"""PASCAL VOC: set names, XML → continuous boxes with difficult flags, 07+12, the prepare command."""

from __future__ import annotations

import numpy as np
import pytest

from dsod_depth.cli import main
from dsod_depth.data import voc
from dsod_depth.data.store import load_prepared
from dsod_depth.errors import KitError

from .fixtures_voc import SETS, SPECS, build_devkit, expected


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
    # The devkit's inclusive width xmax - xmin + 1 is the continuous width x2 - x1.
    for (_, (x1, _, x2, _), _), box in zip(spec.objects, image.boxes):
        assert box[2] - box[0] == pytest.approx(x2 - x1 + 1)


def test_07_plus_12_collects_every_image_once(devkit):
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
    printed = capsys.readouterr().out
    assert "chair" in printed and "(n) = of which difficult" in printed
    train, names = load_prepared(out, "train")
    test, _ = load_prepared(out, "test")
    assert names == list(voc.CLASSES)
    assert [s.image_id for s in test] == ["VOC2007/000001", "VOC2007/000004"]
    assert len(train) == 4 and "hha" not in train.fields and set(train.stats) == {"rgb"}
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
