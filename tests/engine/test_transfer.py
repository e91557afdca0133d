"""Supervision transfer: the distillation learns the pairing, ``init: transfer:RUN`` copies the student,
a killed run resumes bit-identically, and bad inputs are one line with nothing written."""

from __future__ import annotations

import json

import pytest
import torch

from dsod_depth.cli import main
from dsod_depth.config import load_config
from dsod_depth.data.loader import DetectionDataset
from dsod_depth.data.prepare import prepare_synthrooms
from dsod_depth.engine.checkpoint import load_checkpoint, save_checkpoint
from dsod_depth.engine.logging import read_metrics
from dsod_depth.engine.model_setup import build_model_for
from dsod_depth.engine.run_dir import run_kind
from dsod_depth.engine.trainer import train
from dsod_depth.engine.transfer import TransferSettings, transfer
from dsod_depth.errors import KitError
from tests.engine.conftest import write_config
from tests.engine.test_resume_and_ddp import kill_at_first_checkpoint, run_cli


def heldout(run) -> list[float]:
    return [r["heldout_loss"] for r in read_metrics(run / "metrics.jsonl") if "heldout_loss" in r]


@pytest.fixture(scope="module")
def tiny_teacher(tiny_store, tmp_path_factory):
    """An RGB detector run (4 steps): enough to be a teacher for the mechanics."""
    root = tmp_path_factory.mktemp("teacher")
    cfg = write_config(root / "rgb.yaml", tiny_store, data={"modality": "rgb"})
    train(load_config(cfg), root / "rgb", progress=False)
    return root / "rgb"


def student_config(tmp_path, store, modality="hha", **train_options):
    options = {"iters": 4, "checkpoint_every": 2, **train_options}
    return write_config(tmp_path / f"{modality}.yaml", store, data={"modality": modality}, train=options)


# --------------------------------------------------------------------------- learning the pairing


def test_distillation_learns_the_pairing_not_a_constant(tmp_path):
    # 128 training frames and 150 steps of batch 8 at 96×96: the smallest set-up found (CPU, ~1 min in
    # all) in which the held-out loss separates clearly. The teacher is an RGB detector trained for 200
    # steps; the student reads HHA and matches the teacher's first backbone map (12×12 here).
    store = tmp_path / "store"
    prepare_synthrooms(store, num_train=128, num_test=8, size=(128, 96), seed=3, progress=False)
    teacher_cfg = write_config(
        tmp_path / "rgb.yaml", store, data={"modality": "rgb"}, train={"iters": 200, "batch_size": 4}
    )
    train(load_config(teacher_cfg), tmp_path / "teacher", progress=False)
    config = load_config(
        write_config(
            tmp_path / "hha.yaml", store, data={"modality": "hha"}, optim={"lr": 0.05},
            train={"iters": 150, "batch_size": 8, "eval_every": 50, "log_every": 50, "checkpoint_every": 150},
        )
    )  # fmt: skip
    losses = {}
    for pairing in ("paired", "shuffled"):
        settings = TransferSettings(str(tmp_path / "teacher"), ("backbone.first",), pairing=pairing)
        transfer(config, tmp_path / pairing, settings, progress=False)
        losses[pairing] = heldout(tmp_path / pairing)
    paired, shuffled = losses["paired"], losses["shuffled"]
    assert paired[0] == shuffled[0]  # same student at step 0, same held-out frames
    assert paired[-1] <= 0.8 * paired[0], paired
    assert shuffled[-1] >= 1.2 * paired[-1], (paired, shuffled)


# --------------------------------------------------------------------------- init: transfer:RUN


def test_init_transfer_copies_the_student_backbone_and_trains(tiny_store, tiny_teacher, tmp_path, capsys):
    cfg = student_config(tmp_path, tiny_store, "depth")
    out = tmp_path / "student"
    argv = ["transfer", str(cfg), "--teacher", str(tiny_teacher), "--out", str(out), "--no-progress"]
    assert main([*argv, "--layers", "backbone.second,scale.1"]) == 0
    assert f"model.init=transfer:{out}" in capsys.readouterr().out
    assert run_kind(out) == "transfer"
    student = load_checkpoint(out / "checkpoints" / "last.pt")
    assert student["kind"] == "transfer" and student["step"] == student["iters"] == 4
    assert all(k.startswith("features.") for k in student["model"])
    assert student["adapters"] == {}  # same channel counts as the teacher: no adaptation layer
    record = json.loads((out / "transfer.json").read_text())
    assert record["settings"]["layers"] == ["backbone.second", "scale.1"]
    assert record["teacher"]["modality"] == "rgb" and record["student"]["modality"] == "raw"

    base = load_config(cfg)
    frames = DetectionDataset(tiny_store, "train", "depth", 96)
    torch.manual_seed(0)
    scratch = build_model_for(base, frames)
    detector_cfg = load_config(cfg, [f"model.init=transfer:{out}"])
    torch.manual_seed(0)
    detector = build_model_for(detector_cfg, frames)
    assert detector.features.backbone.stem[0].conv.weight.shape[1] == 1  # the first conv reads depth
    state = detector.state_dict()
    for key, value in student["model"].items():
        assert torch.equal(state[key], value), key
    for key, value in scratch.head.state_dict().items():  # heads: as a fresh detector's
        assert torch.equal(detector.head.state_dict()[key], value), key
    assert detector.info["init_source"]["teacher"]["source"].endswith("last.pt")

    run = tmp_path / "detector"
    assert (
        main(["train", str(cfg), "--set", f"model.init=transfer:{out}", "--out", str(run), "--no-progress"])
        == 0
    )
    text = (run / "config.yaml").read_text()
    assert text.startswith(
        f"# model.init: the student of transfer run {out}, distilled from the rgb dsod_tiny"
    )
    assert load_config(run / "config.yaml").model.init == f"transfer:{out}"
    trained = load_checkpoint(run / "checkpoints" / "last.pt")
    assert trained["step"] == 4 and trained["init_source"]["transfer_run"] == str(out)
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r] == [1, 2, 3, 4]


def test_a_late_fusion_student_gets_adaptation_layers_that_init_leaves_out(
    tiny_store, tiny_teacher, tmp_path
):
    cfg = write_config(
        tmp_path / "late.yaml", tiny_store, data={"modality": "rgb+hha"},
        model={"options": {"fusion": "late"}}, train={"iters": 1},
    )  # fmt: skip
    transfer(load_config(cfg), tmp_path / "late", TransferSettings(str(tiny_teacher)), progress=False)
    student = load_checkpoint(tmp_path / "late" / "checkpoints" / "last.pt")
    assert student["model"]["features.branches.1.backbone.stem.0.conv.weight"].shape[1] == 3
    teacher = load_checkpoint(tiny_teacher / "checkpoints" / "last.pt")["model"]
    c = teacher["features.backbone.transition4.conv.weight"].shape[0]
    assert student["adapters"]["backbone_second.weight"].shape == (c, 2 * c, 1, 1)  # both branches → teacher
    detector = build_model_for(
        load_config(cfg, [f"model.init=transfer:{tmp_path / 'late'}"]),
        DetectionDataset(tiny_store, "train", "rgb+hha", 96),
    )
    assert not any("adapter" in k for k in detector.state_dict())
    for key, value in student["model"].items():
        assert torch.equal(detector.state_dict()[key], value), key


# --------------------------------------------------------------------------- exact resume


def test_transfer_killed_and_resumed_is_bit_identical(tiny_store, tiny_teacher, tmp_path):
    cfg = student_config(tmp_path, tiny_store, iters=8, seed=5)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    args = ["transfer", str(cfg), "--teacher", str(tiny_teacher), "--no-progress"]
    assert run_cli(*args, "--out", str(straight)).wait(timeout=600) == 0
    last = killed / "checkpoints" / "last.pt"
    kill_at_first_checkpoint(run_cli(*args, "--out", str(killed)), last)
    assert 2 <= load_checkpoint(last)["step"] < 8
    assert run_cli("transfer", "--resume", str(killed), "--no-progress").wait(timeout=600) == 0
    a, b = (load_checkpoint(run / "checkpoints" / "last.pt") for run in (straight, killed))
    assert a["step"] == b["step"] == 8
    for part in ("model", "adapters"):
        for key, value in a[part].items():
            assert torch.equal(value, b[part][key]), (part, key)
    for key, value in a["optimiser"]["state"].items():
        assert torch.equal(value["momentum_buffer"], b["optimiser"]["state"][key]["momentum_buffer"])
    timeless = lambda run: [  # noqa: E731 (the throughput differs between processes)
        {k: v for k, v in r.items() if k != "images_per_s"} for r in read_metrics(run / "metrics.jsonl")
    ]
    assert timeless(straight) == timeless(killed)


# --------------------------------------------------------------------------- bad inputs


def one_line_error(capsys, argv, match: str, out) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and match in err, err
    assert not out.exists(), "nothing may be written"


def test_a_teacher_that_does_not_read_rgb_is_refused_unless_allowed(tiny_store, tmp_path, capsys):
    hha_cfg = write_config(tmp_path / "t.yaml", tiny_store, data={"modality": "hha"}, train={"iters": 1})
    train(load_config(hha_cfg), tmp_path / "hha_teacher", progress=False)
    cfg = student_config(tmp_path, tiny_store, "depth", iters=1)
    argv = ["transfer", str(cfg), "--teacher", str(tmp_path / "hha_teacher"), "--out", str(tmp_path / "o")]
    one_line_error(capsys, argv, "reads hha, not rgb", tmp_path / "o")
    assert main([*argv, "--allow-any-teacher", "--no-progress"]) == 0


def test_a_teacher_of_an_unknown_architecture_is_refused(tiny_store, tiny_teacher, tmp_path, capsys):
    state = load_checkpoint(tiny_teacher / "checkpoints" / "last.pt")
    state["inference"]["build"]["name"] = "resnet_mystery"
    save_checkpoint(tmp_path / "odd.pt", state)
    cfg = student_config(tmp_path, tiny_store)
    argv = ["transfer", str(cfg), "--teacher", str(tmp_path / "odd.pt"), "--out", str(tmp_path / "o")]
    one_line_error(
        capsys, argv, "cannot rebuild its architecture (unknown detector 'resnet_mystery'", tmp_path / "o"
    )


def test_a_layer_that_does_not_exist_lists_the_valid_ones(tiny_store, tiny_teacher, tmp_path, capsys):
    cfg = student_config(tmp_path, tiny_store)
    argv = [
        "transfer",
        str(cfg),
        "--teacher",
        str(tiny_teacher),
        "--out",
        str(tmp_path / "o"),
        "--layers",
        "conv5",
    ]
    one_line_error(
        capsys, argv, "layer 'conv5' does not exist in the student dsod_tiny; valid layers: backbone.first, "
        "backbone.second, scale.0, scale.1", tmp_path / "o",
    )  # fmt: skip


def test_a_student_modality_the_store_lacks_is_refused(tiny_teacher, tmp_path, capsys):
    from tests.data.test_store import Frames, write

    store = tmp_path / "colour"
    write(store, Frames(), with_depth=False)
    cfg = write_config(tmp_path / "c.yaml", store, data={"modality": "hha"})
    argv = ["transfer", str(cfg), "--teacher", str(tiny_teacher), "--out", str(tmp_path / "o")]
    one_line_error(capsys, argv, "colour-only", tmp_path / "o")


def test_transfer_init_needs_a_finished_transfer_run(tiny_store, tiny_teacher, tmp_path, capsys):
    cfg = student_config(tmp_path, tiny_store)
    out = tmp_path / "o"
    for target in (tmp_path / "nowhere", tiny_teacher):  # no folder; a detector run
        argv = ["train", str(cfg), "--set", f"model.init=transfer:{target}", "--out", str(out)]
        one_line_error(capsys, argv, f"transfer:{target} names no finished transfer run", out)
    unfinished = tmp_path / "unfinished"
    transfer(load_config(cfg), unfinished, TransferSettings(str(tiny_teacher)), progress=False)
    state = load_checkpoint(unfinished / "checkpoints" / "last.pt")
    save_checkpoint(unfinished / "checkpoints" / "last.pt", {**state, "step": 2})
    argv = ["train", str(cfg), "--set", f"model.init=transfer:{unfinished}", "--out", str(out)]
    one_line_error(capsys, argv, "is not finished (step 2 of 4)", out)
    depth = student_config(tmp_path, tiny_store, "depth")
    argv = ["train", str(depth), "--set", f"model.init=transfer:{unfinished}", "--out", str(out)]
    state["step"] = 4
    save_checkpoint(unfinished / "checkpoints" / "last.pt", state)
    one_line_error(capsys, argv, "distilled a hha student but this detector reads raw", out)


def test_settings_are_checked(tiny_store, tiny_teacher, tmp_path):
    cfg = load_config(student_config(tmp_path, tiny_store))
    with pytest.raises(KitError, match="pairing must be paired or shuffled"):
        transfer(cfg, tmp_path / "o", TransferSettings(str(tiny_teacher), pairing="random"))
    with pytest.raises(KitError, match="teacher .*nowhere not found"):
        transfer(cfg, tmp_path / "o", TransferSettings(str(tmp_path / "nowhere")))
    with pytest.raises(KitError, match="imagenet:ssd300_vgg16 or imagenet:densenet121_dsod"):
        transfer(cfg, tmp_path / "o", TransferSettings("imagenet:resnet50"))
    assert not (tmp_path / "o").exists()


def test_an_imagenet_teacher_loads_torchvisions_file(tiny_store, tmp_path, monkeypatch, capsys):
    from torchvision.models import densenet121

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg = student_config(tmp_path, tiny_store, iters=2)
    argv = ["transfer", str(cfg), "--teacher", "imagenet:densenet121_dsod", "--out", str(tmp_path / "o")]
    one_line_error(capsys, argv, "ImageNet weights for densenet121 not found", tmp_path / "o")

    torch.manual_seed(0)
    file = tmp_path / "torch" / "hub" / "checkpoints" / "densenet121-a639ec97.pth"
    file.parent.mkdir(parents=True)
    torch.save(densenet121(weights=None).state_dict(), file)
    assert main([*argv, "--no-progress", "--layers", "backbone.first"]) == 0
    student = load_checkpoint(tmp_path / "o" / "checkpoints" / "last.pt")
    assert student["transfer"]["teacher"] == {
        "source": "imagenet:densenet121_dsod", "kind": "imagenet", "model": "densenet121_dsod",
        "modality": "rgb",
    }  # fmt: skip
    # DenseNet-121's first map has 256 channels at stride 8; dsod_tiny's has its own count: a 1×1 adapter.
    assert student["adapters"]["backbone_first.weight"].shape[:2] == (
        256,
        student["model"]["features.backbone.transition2.conv.weight"].shape[0],
    )


def test_channels_last_gives_the_same_student_and_accumulation_runs(tiny_store, tiny_teacher, tmp_path):
    # The memory layout changes the kernels, not the result beyond rounding.
    runs = {}
    for name, train_options, optim in (
        ("plain", {"batch_size": 2}, {}),
        ("channels_last", {"batch_size": 2, "channels_last": True}, {}),
        ("accumulate", {"batch_size": 2}, {"accumulate": 2}),
    ):
        cfg = write_config(
            tmp_path / f"{name}.yaml", tiny_store, data={"modality": "hha"},
            train={"iters": 2, **train_options}, optim=optim,
        )  # fmt: skip
        transfer(load_config(cfg), tmp_path / name, TransferSettings(str(tiny_teacher)), progress=False)
        runs[name] = load_checkpoint(tmp_path / name / "checkpoints" / "last.pt")["model"]
    for key, value in runs["plain"].items():
        torch.testing.assert_close(runs["channels_last"][key], value, rtol=1e-4, atol=1e-5)
    assert any(not torch.equal(runs["accumulate"][k], v) for k, v in runs["plain"].items())  # 4 frames a step
