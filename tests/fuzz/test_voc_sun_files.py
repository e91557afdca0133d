"""VOC annotation XML (``parse_annotation``) and SUN RGB-D ``index.json`` / ``intrinsics.txt``
(``parse_frame``), read by ``prepare voc`` / ``prepare sunrgbd``: a damaged file is KitError (VOC) or a
skipped frame (SUN, MalformedFrame), never another exception; one CLI example per file type."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import strategies as st

from dsod_depth.data.sunrgbd import parse_frame
from dsod_depth.data.sunrgbd_annotations import MalformedFrame
from dsod_depth.data.voc import parse_annotation
from dsod_depth.errors import KitError
from tests.data.fixtures_sun import build_sun_source
from tests.data.fixtures_voc import SPECS, _xml, build_devkit
from tests.fuzz.mutations import (
    WEIRD_VALUES,
    assert_clean_outcome,
    check_examples,
    example_counts,
    mutated_bytes,
    mutated_tree,
    run_cli,
)  # fmt: skip

VOC_XML = _xml(SPECS[0]).encode()
VOC_TAGS = [
    "size",
    "width",
    "height",
    "object",
    "name",
    "bndbox",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "difficult",
]


@st.composite
def damaged_voc_xml(draw: st.DrawFn) -> bytes:
    """A tag's text replaced (NaN, inf, huge, negative, words), an element removed, or damaged bytes."""
    if draw(st.booleans()):
        return draw(mutated_bytes(VOC_XML))
    text, tag = VOC_XML.decode(), draw(st.sampled_from(VOC_TAGS))
    if draw(st.booleans()):  # drop the element (and its children)
        start, end = text.find(f"<{tag}>"), text.find(f"</{tag}>") + len(tag) + 3
        return (text[:start] + text[end:]).encode()
    value = draw(st.one_of(st.sampled_from(["nan", "inf", "-inf", "1e400", "-5", "0", "", "x", "1e308"]),
                           WEIRD_VALUES.map(str)))  # fmt: skip
    start = text.find(f"<{tag}>") + len(tag) + 2
    return (text[:start] + value.replace("<", "").replace("&", "") + text[text.find("</", start) :]).encode()


VOC_REGRESSIONS = [VOC_XML.replace(b"<width>50</width>", b"<width>nan</width>"),
                   VOC_XML.replace(b"<height>40</height>", b"<height>1e400</height>")]  # fmt: skip


def _check_voc(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "000005.xml"
        path.write_bytes(data)
        try:
            parse_annotation(path, Path(tmp) / "000005.jpg", "VOC2007/000005")
        except KitError:
            pass


@pytest.mark.parametrize("max_examples", example_counts(150))
def test_voc_annotation_parse_returns_or_raises_kit_error(max_examples):
    check_examples(damaged_voc_xml(), _check_voc, max_examples=max_examples)


# Non-finite <width>/<height> escaped int(float(...)) as ValueError / OverflowError (fixed in voc.py).
@pytest.mark.parametrize("data", VOC_REGRESSIONS, ids=["width-nan", "height-1e400"])
def test_voc_size_that_is_not_finite(data):
    _check_voc(data)


@pytest.mark.parametrize("data", [VOC_XML[: len(VOC_XML) // 2], VOC_REGRESSIONS[0]], ids=["truncated", "nan"])
def test_prepare_voc_command_on_damaged_annotation(data, tmp_path):
    devkit, out = build_devkit(tmp_path), tmp_path / "store"
    (devkit / "VOC2007/Annotations/000005.xml").write_bytes(data)
    code, stderr = run_cli(["prepare", "voc", "--source", devkit, "--out", out, "--sets", "2007-trainval",
                            "--test", "2007-test", "--no-progress"])  # fmt: skip
    if not assert_clean_outcome(code, stderr, [out / "train.h5", out / "test.h5"]):
        assert not list(out.rglob("*.tmp"))


# --------------------------------------------------------------------------- SUN RGB-D


@pytest.fixture(scope="module")
def sun_source(tmp_path_factory) -> Path:
    root, _ = build_sun_source(tmp_path_factory.mktemp("sun"))
    return root


SUN_KEY = "kv1/NYUdata/NYU0001"
INTRINSICS = b"529.5 0 365\n0 529.5 265\n0 0 1\n"


def damaged_intrinsics() -> st.SearchStrategy[bytes]:
    numbers = st.lists(st.sampled_from(["529.5", "0", "1", "nan", "inf", "-1", "1e400", "x", "-0"]),
                       min_size=0, max_size=12)  # fmt: skip
    return st.one_of(mutated_bytes(INTRINSICS), numbers.map(lambda v: " ".join(v).encode()))


def _check_sun(case, folder: Path) -> None:
    which, data = case
    with tempfile.TemporaryDirectory() as tmp:
        frame = Path(tmp) / "frame"
        shutil.copytree(folder, frame)
        target = frame / ("intrinsics.txt" if which == "intrinsics" else "annotation2Dfinal/index.json")
        target.write_bytes(data)
        try:
            parse_frame(frame, SUN_KEY)
        except MalformedFrame:  # the scan skips the frame with a warning naming the file
            pass


@pytest.mark.parametrize("max_examples", example_counts(100))
def test_sun_frame_parse_returns_or_skips(max_examples, sun_source):
    folder = sun_source / SUN_KEY
    index = json.loads((folder / "annotation2Dfinal/index.json").read_text())
    cases = st.one_of(
        st.tuples(st.just("index"), st.one_of(mutated_tree(index).map(lambda t: json.dumps(t).encode()),
                                              mutated_bytes(json.dumps(index).encode()))),
        st.tuples(st.just("intrinsics"), damaged_intrinsics()),
    )  # fmt: skip
    check_examples(cases, lambda case: _check_sun(case, folder), max_examples=max_examples)


@pytest.mark.parametrize("which", ["index", "intrinsics"])
def test_prepare_sunrgbd_command_on_damaged_frame(which, sun_source, tmp_path):
    source, out = tmp_path / "SUNRGBD", tmp_path / "store"
    shutil.copytree(sun_source, source)
    folder = source / SUN_KEY
    target = folder / ("intrinsics.txt" if which == "intrinsics" else "annotation2Dfinal/index.json")
    target.write_bytes(b"\xff\xfe" + target.read_bytes()[3:])
    code, stderr = run_cli(["prepare", "sunrgbd", "--source", source, "--out", out, "--no-progress"])
    if not assert_clean_outcome(code, stderr, [out / "train.h5", out / "test.h5"]):
        assert not list(out.rglob("*.tmp"))
