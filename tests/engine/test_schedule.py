import pytest

from dsod_depth.config import OptimConfig
from dsod_depth.engine.schedule import lr_factor


def test_multistep_with_warmup():
    optim = OptimConfig(milestones=(10, 20), gamma=0.1, warmup_iters=4, warmup_factor=0.2)
    assert lr_factor(0, optim, 30) == pytest.approx(0.2)
    assert lr_factor(2, optim, 30) == pytest.approx(0.6)
    assert lr_factor(4, optim, 30) == pytest.approx(1.0)
    assert lr_factor(9, optim, 30) == pytest.approx(1.0)
    assert lr_factor(10, optim, 30) == pytest.approx(0.1)
    assert lr_factor(25, optim, 30) == pytest.approx(0.01)


def test_cosine_ends_at_zero():
    optim = OptimConfig(schedule="cosine")
    assert lr_factor(0, optim, 100) == pytest.approx(1.0)
    assert lr_factor(50, optim, 100) == pytest.approx(0.5)
    assert lr_factor(100, optim, 100) == pytest.approx(0.0, abs=1e-12)
