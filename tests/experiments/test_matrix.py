"""Sweep matrices: strict validation, expansion into runs, run states read from the folders."""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from dsod_depth.cli import main
from dsod_depth.config import dump_config
from dsod_depth.engine.checkpoint import save_checkpoint
from dsod_depth.engine.run_dir import RunDir
from dsod_depth.errors import KitError
from dsod_depth.experiments.matrix import load_matrix, matrix_from_dict
from dsod_depth.experiments.naming import canonical_modality, init_label, modality_sort_key
from dsod_depth.experiments.sweep import run_state, run_sweep

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = str(REPO / "experiments" / "configs" / "{dataset}" / "{modality}_{init}.yaml")


def matrix(tmp_path, **changes):
    data = {
        "output": str(tmp_path / "sweep"),
        "config": TEMPLATE,
        "datasets": {"synthrooms": "/stores/rooms"},
        "modalities": ["rgb", "rgb_hha"],
        "inits": ["scratch", "imagenet"],
        "seeds": [0, 1],
    }
    data.update(changes)
    return data


def test_init_labels_and_modality_names():
    assert init_label("scratch") == "scratch" and init_label("imagenet") == "imagenet"
    assert init_label("pretrained:runs/rgb_pre/checkpoints/last.pt") == "pretrained:rgb_pre"
    assert init_label("pretrained:weights/backbone.pt") == "pretrained:backbone"
    assert init_label("pretrained:runs/pre_run") == "pretrained:pre_run"
    assert canonical_modality("RGB_HHA") == canonical_modality("rgb+hha") == "rgb+hha"
    assert canonical_modality("raw") == "depth"
    names = ["rgb+hha", "hha", "depth", "rgb", "rgb+depth"]
    assert sorted(names, key=modality_sort_key) == ["rgb", "depth", "hha", "rgb+depth", "rgb+hha"]


def test_expansion_order_names_and_configs(tmp_path):
    m = matrix_from_dict(matrix(tmp_path, set={"train.iters": 7, "optim.lr": 0.01}))
    specs = m.expand()
    assert [s.name for s in specs] == [
        "synthrooms/rgb_scratch_s0", "synthrooms/rgb_imagenet_s0",
        "synthrooms/rgb_hha_scratch_s0", "synthrooms/rgb_hha_imagenet_s0",
        "synthrooms/rgb_scratch_s1", "synthrooms/rgb_imagenet_s1",
        "synthrooms/rgb_hha_scratch_s1", "synthrooms/rgb_hha_imagenet_s1",
    ]  # fmt: skip
    last = specs[-1]
    assert last.run_dir == tmp_path / "sweep" / "synthrooms" / "rgb_hha_imagenet_s1"
    assert last.config_path.name == "rgb_hha_imagenet.yaml"
    cfg = last.config
    cell = (cfg.data.store, cfg.data.modality, cfg.model.init, cfg.train.seed)
    assert cell == ("/stores/rooms", "rgb+hha", "imagenet", 1)
    assert cfg.train.iters == 7 and cfg.optim.lr == 0.01 and cfg.model.name == "densenet121_dsod"
    assert cfg.name == "synthrooms_rgb_hha_imagenet_s1"


def test_one_base_config_with_per_axis_overrides_and_a_pretrained_init(tmp_path):
    base = REPO / "experiments" / "configs" / "synthrooms" / "rgb_scratch.yaml"
    data = matrix(
        tmp_path, config=str(base),
        datasets={"rooms": {"store": "/s", "set": ["train.batch_size=4"]}},
        modalities=["depth", {"modality": "hha", "set": {"optim.lr": 0.02}}],
        inits=["scratch", {"init": "pretrained:/w/rgb_pre/checkpoints/last.pt", "set": ["train.iters=9"]}],
        seeds=[3],
    )  # fmt: skip
    specs = {s.name: s for s in matrix_from_dict(data).expand()}
    assert list(specs) == [
        "rooms/depth_scratch_s3", "rooms/depth_pretrained-rgb_pre_s3",
        "rooms/hha_scratch_s3", "rooms/hha_pretrained-rgb_pre_s3",
    ]  # fmt: skip
    hha_pre = specs["rooms/hha_pretrained-rgb_pre_s3"].config
    assert hha_pre.data.modality == "hha"
    assert hha_pre.model.init == "pretrained:/w/rgb_pre/checkpoints/last.pt"
    assert (hha_pre.train.batch_size, hha_pre.optim.lr, hha_pre.train.iters) == (4, 0.02, 9)
    assert hha_pre.model.name == "dsod_tiny"  # the scratch config's architecture
    assert specs["rooms/depth_scratch_s3"].config.optim.lr == 0.05  # the base config's value


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"seed": [0]}, "unknown key 'seed'"),
        ({"output": None}, "output must be a non-empty string"),
        ({"datasets": {"rooms": {"store": "/s", "path": "/p"}}}, "unknown key 'datasets.rooms.path'"),
        ({"datasets": {"my rooms": "/s"}}, "cannot name a folder"),
        ({"inits": ["scratch", {"init": "imagenet", "name": "x"}]}, r"unknown key 'inits\[1\].name'"),
        ({"inits": ["imagenet21k"]}, "must be scratch, imagenet, pretrained:PATH or transfer:RUN_DIR"),
        ({"inits": ["pretrained:"]}, "must be scratch, imagenet, pretrained:PATH or transfer:RUN_DIR"),
        ({"inits": ["pretrained:/a/x.pt", "pretrained:/b/x.pt"]}, "would share the folder"),
        ({"modalities": ["rgb_hha", "rgb+hha"]}, "lists 'rgb\\+hha' twice"),
        ({"seeds": [0, 0]}, "repeat a value"),
        ({"seeds": [0.5]}, "non-negative integers"),
        ({"seeds": []}, "non-empty list"),
        ({"config": "x/{dataset}/{variant}.yaml"}, "unknown placeholder"),
        ({"config": "/nowhere/{dataset}.yaml"}, r"config /nowhere/synthrooms.yaml .* not found"),
        ({"set": {"train.seed": 3}}, "may not set 'train.seed'"),
        ({"set": ["train.iters"]}, "must be key=value"),
        ({"set": {"train.iterz": 3}}, "unknown key 'train.iterz'"),
    ],
)
def test_matrix_mistakes_name_the_key(tmp_path, change, match):
    data = matrix(tmp_path, **change)
    if change.get("output", 1) is None:
        del data["output"]
        match = "missing key 'output'"
    with pytest.raises(KitError, match=match):
        matrix_from_dict(data, source="m.yaml").expand()


def test_shipped_matrices_expand(monkeypatch):
    monkeypatch.chdir(REPO)  # their paths are relative to the repository root, like the configs'
    counts = {}
    for path in sorted((REPO / "experiments" / "matrices").glob("*.yaml")):
        m = load_matrix(path)
        specs = m.expand()
        counts[path.stem] = len(specs)
        table = path.stem.removesuffix("_transfer")  # the transfer cells join their dataset's table
        for spec in specs:
            assert spec.config.data.store == f"runs/data/{spec.dataset}"
            assert spec.run_dir.parent == Path("runs/sweeps") / table / spec.dataset
    assert counts == {
        "nyudv2": 24, "nyudv2_transfer": 9, "sunrgbd": 24, "sunrgbd_transfer": 9, "synthrooms": 24, "voc": 2,
    }  # fmt: skip
    cells = load_matrix(REPO / "experiments" / "matrices" / "nyudv2_transfer.yaml").expand()
    assert {(s.modality, s.init, s.config.model.name) for s in cells} == {
        (m, "transfer", "dsod300") for m in ("depth", "hha", "rgb+hha")
    }
    assert cells[0].config.model.init == "transfer:runs/transfer/nyudv2/depth_s0"
    assert cells[0].run_dir == Path("runs/sweeps/nyudv2/nyudv2/depth_transfer_s0")


def test_transfer_commands_print_one_resumable_line_per_student():
    import subprocess

    script = REPO / "experiments" / "transfer_commands.sh"
    lines = subprocess.run(
        [script, "sunrgbd", "4"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert len(lines) == 3
    assert lines[2] == (
        "if [ -f runs/transfer/sunrgbd/rgb_hha_s4/checkpoints/last.pt ]; then dsod-depth transfer --resume "
        "runs/transfer/sunrgbd/rgb_hha_s4 --no-progress; else dsod-depth transfer "
        "experiments/configs/sunrgbd/rgb_hha_scratch.yaml "
        "--teacher runs/sweeps/sunrgbd/sunrgbd/rgb_imagenet_s4 --seed 4 "
        "--out runs/transfer/sunrgbd/rgb_hha_s4 --no-progress; fi"
    )
    # the folders the lines write are the ones the transfer matrix reads
    spec = load_matrix(REPO / "experiments" / "matrices" / "sunrgbd_transfer.yaml").expand()[2]
    assert spec.config.model.init == "transfer:runs/transfer/sunrgbd/rgb_hha_s0"
    bad = subprocess.run([script, "voc"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr == "error: unknown dataset 'voc'; choose nyudv2 or sunrgbd\n"


def test_init_placeholders_and_modalities(tmp_path):
    data = matrix(tmp_path, modalities=["rgb", "hha"], seeds=[0, 1])
    data["inits"] = ["scratch", {"init": "transfer:t/{dataset}/{modality}_s{seed}", "modalities": ["hha"]}]
    specs = matrix_from_dict(data).expand()
    assert [(s.modality, s.init, s.seed) for s in specs] == [
        ("rgb", "scratch", 0), ("hha", "scratch", 0), ("hha", "transfer", 0),
        ("rgb", "scratch", 1), ("hha", "scratch", 1), ("hha", "transfer", 1),
    ]  # fmt: skip
    assert specs[5].config.model.init == "transfer:t/synthrooms/hha_s1"
    assert specs[5].run_dir.name == "hha_transfer_s1"
    data["inits"] = [{"init": "transfer:t/{variant}"}]
    with pytest.raises(
        KitError, match=r"inits\[0\] 'transfer:t/\{variant\}' uses unknown placeholder\(s\) variant"
    ):
        matrix_from_dict(data, source="m.yaml")
    data["inits"] = [{"init": "transfer:t", "modalities": []}]
    with pytest.raises(KitError, match=r"inits\[0\].modalities must be a non-empty list"):
        matrix_from_dict(data, source="m.yaml")


def _fake_run(spec, step, *, metrics=True, config=None):
    """A run folder as the trainer leaves it: config.yaml, last.pt at ``step``, maybe test metrics."""
    spec.run_dir.mkdir(parents=True)
    (spec.run_dir / "config.yaml").write_text(dump_config(config or spec.config))
    save_checkpoint(spec.run_dir / "checkpoints" / "last.pt", {"model": {}, "step": step})
    if metrics:
        (spec.run_dir / "eval" / "test").mkdir(parents=True)
        (spec.run_dir / "eval" / "test" / "metrics.json").write_text('{"metric": "voc07", "map": 0.25}')


def test_states_from_the_folders_and_the_dry_run(tmp_path, capsys):
    data = matrix(tmp_path, modalities=["rgb"], set={"train.iters": 10}, seeds=[0, 1, 2, 3])
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(data))
    specs = load_matrix(path).expand()
    _fake_run(specs[0], 10)  # scratch s0: done
    _fake_run(specs[1], 4, metrics=False)  # imagenet s0: interrupted
    _fake_run(specs[2], 10, metrics=False)  # scratch s1: trained, not evaluated
    other = dataclasses.replace(specs[3].config, name="something else")
    _fake_run(specs[3], 10, config=other)  # imagenet s1: a different run in the way
    states = [run_state(s) for s in specs]
    assert [s.kind for s in states] == ["done", "resume", "evaluate", "conflict"] + ["new"] * 4
    assert states[1].step == 4 and "name: 'something else'" in states[3].detail

    result = run_sweep(path, dry_run=True, log=lambda line: None)
    assert not result.ok and [o.spec.name for o in result.failed] == ["synthrooms/rgb_imagenet_s1"]
    assert result.outcomes[0].map == 0.25
    assert main(["sweep", str(path), "--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "[1/8] synthrooms/rgb_scratch_s0: done (10 steps), test mAP 25.0" in out
    assert "[2/8] synthrooms/rgb_imagenet_s0: interrupted, resume at step 4/10" in out
    assert "8 runs: 1 conflict, 1 done, 1 evaluate, 4 new, 1 resume" in out
    assert "would fail: synthrooms/rgb_imagenet_s1" in out
    assert not (tmp_path / "sweep" / "sweep.json").exists()  # a dry run writes nothing

    # A real sweep skips the finished run, reports every failure (here: the store does not exist, and
    # the conflict), never touches the conflicting folder, and writes its summary.
    conflict = specs[3].run_dir
    before = RunDir(conflict).content()  # every file of the run (the lock file is not run content)
    assert before
    lines = []
    result = run_sweep(path, progress=False, log=lines.append)
    assert [o.status for o in result.outcomes] == ["skipped"] + ["failed"] * 7
    assert "delete the folder" in result.outcomes[3].error
    assert "prepared store /stores/rooms not found" in result.outcomes[1].error
    assert RunDir(conflict).content() == before
    summary = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [r["status"] for r in summary["runs"]] == [o.status for o in result.outcomes]
    assert "8 runs: 7 failed, 1 skipped" in lines


def test_bad_matrix_file_is_one_error_line(tmp_path, capsys):
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(matrix(tmp_path, seeds=[0], modalities=["rgb"], extra=1)))
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key 'extra'" in err
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
