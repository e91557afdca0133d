"""The flags that stand for config keys (`--data`, `--iters`, ...) map to `--set` overrides in one place."""

from __future__ import annotations

import pytest

from dsod_depth.cli import build_parser, main
from dsod_depth.cli.common import config_overrides


def test_train_and_pretrain_map_their_flags_alike():
    parser = build_parser()
    train = parser.parse_args(["train", "c.yaml", "--set", "optim.lr=0.1", "--data", "S", "--iters", "7",
                               "--checkpoint-every", "2", "--seed", "0"])  # fmt: skip
    assert config_overrides(train) == [
        "optim.lr=0.1", "data.store=S", "train.iters=7", "train.checkpoint_every=2", "train.seed=0",
    ]  # fmt: skip
    pretrain = parser.parse_args(["pretrain", "c.yaml", "--data", "S", "--out", "o", "--iters", "7"])
    assert config_overrides(pretrain) == ["data.store=S", "train.iters=7"]
    assert config_overrides(parser.parse_args(["train", "c.yaml"])) == []


@pytest.mark.parametrize(
    "flag", [["--iters", "0"], ["--checkpoint-every", "2"], ["--seed", "1"], ["--data", "S"]]
)
def test_resume_refuses_every_config_flag(flag, tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), *flag]) == 2
    assert capsys.readouterr().err.startswith("error: --resume takes only the run directory")
