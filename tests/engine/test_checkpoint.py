# ruff: noqa: NPY002 (the legacy global NumPy RNG is what the checkpoint must capture)
import pickle
import random

import numpy as np
import pytest
import torch

from dsod_depth.engine.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from dsod_depth.engine.logging import MetricsLogger, read_metrics
from dsod_depth.errors import KitError


def test_round_trip_with_rng_state(tmp_path):
    model = torch.nn.Linear(3, 2)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = {"model": model.state_dict(), "step": 7, "rng": capture_rng_state(), "config": {"a": [1, 2]}}
    save_checkpoint(tmp_path / "ck" / "last.pt", state)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    loaded = load_checkpoint(tmp_path / "ck" / "last.pt")
    restore_rng_state(loaded["rng"])
    assert (random.random(), np.random.rand()) == expected[:2]
    assert torch.equal(torch.rand(1), expected[2])
    assert loaded["step"] == 7 and loaded["config"] == {"a": [1, 2]}
    torch.testing.assert_close(loaded["model"]["weight"], model.weight.detach())
    assert [p.name for p in (tmp_path / "ck").iterdir()] == ["last.pt"]  # no temporary left


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


# The hostile file is a plain pickle (protocol 4), which torch's safe loader warns about before refusing it.
@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
def test_pickled_objects_are_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": Payload()}, path)
    with pytest.raises(KitError, match="pickled Python objects"):
        load_checkpoint(path)
    assert "never run" not in capsys.readouterr().out
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"model": Payload()}))
    with pytest.raises(KitError):
        load_checkpoint(raw)
    assert "never run" not in capsys.readouterr().out


def test_truncated_missing_and_foreign_files(tmp_path):
    good = tmp_path / "good.pt"
    save_checkpoint(good, {"model": {"w": torch.zeros(1000)}})
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:500])
    with pytest.raises(KitError, match="truncated or corrupt"):
        load_checkpoint(cut)
    with pytest.raises(KitError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(KitError, match="not a dsod-depth checkpoint"):
        load_checkpoint(other)
    text = tmp_path / "text.pt"
    text.write_text("hello")
    with pytest.raises(KitError, match="not a readable checkpoint"):
        load_checkpoint(text)


def test_metrics_logger_truncates_on_resume(tmp_path):
    log = MetricsLogger(tmp_path, tensorboard=True)
    for step in (10, 20, 30):
        log.log({"step": step, "loss": step / 10, "bad": float("nan")})
    log.truncate_after(20)
    log.close()
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == [10, 20]
    assert records[0]["bad"] is None
    assert any((tmp_path / "tensorboard").iterdir())
