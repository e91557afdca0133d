"""One rule for choosing a device: names, indices, CUDA without a device, and where the value came from."""

from __future__ import annotations

import pytest
import torch

from dsod_depth.engine.device import select_device
from dsod_depth.errors import KitError


def test_names_and_auto():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "cuda:", "CPU"])
def test_unknown_names_say_the_option(name):
    with pytest.raises(KitError, match=r"--device must be auto, cpu, cuda or cuda:N"):
        select_device(name, option="--device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize(
    ("option", "fix"), [("train.device", "train.device=cpu"), ("--device", "--device cpu")]
)
def test_cuda_without_a_device(option, fix):
    with pytest.raises(KitError, match=f"no CUDA device is visible; use {fix} or auto"):
        select_device("cuda:1", option=option)
