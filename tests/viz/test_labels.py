"""One initialisation label for figure titles and experiment tables; viz never imports experiments."""

import sys

import pytest

from dsod_depth.engine.init import init_label
from tests.test_import_graph import import_graph


@pytest.mark.parametrize(("init", "label"), [
    ("scratch", "scratch"), ("imagenet", "imagenet"),
    ("pretrained:runs/rgb_pre/checkpoints/last.pt", "pretrained:rgb_pre"),  # the run folder
    ("pretrained:runs/rgb_pre/checkpoints/best.pt", "pretrained:rgb_pre"),
    ("pretrained:weights/backbone.pt", "pretrained:backbone"),  # any other file: its stem
    ("pretrained:backbone.pt", "pretrained:backbone"),
    ("pretrained:runs/pre_run", "pretrained:pre_run"),  # a run folder
    ("pretrained:checkpoints/last.pt", "pretrained:last"),  # no run folder above checkpoints/
])  # fmt: skip
def test_init_label(init, label):
    assert init_label(init) == label


def test_the_tables_use_the_same_rule():
    from dsod_depth.experiments import naming

    assert naming.init_label is init_label


def test_viz_imports_nothing_of_experiments():
    edges = sorted(
        f"{module} → {target}"
        for module, targets in import_graph().items()
        if module.startswith("dsod_depth.viz")
        for target in targets
        if target.startswith("dsod_depth.experiments")
    )
    assert not edges, ", ".join(edges)


def test_labels_load_without_matplotlib_or_torch():
    import subprocess

    code = (
        "import sys, dsod_depth.experiments.naming; "
        "print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
