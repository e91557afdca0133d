"""Initialisation strings: parsing, the factory's options, loading a source and copying its weights."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from dsod_depth.config import DataConfig, ExperimentConfig, ModelConfig
from dsod_depth.engine.checkpoint import save_checkpoint
from dsod_depth.engine.init import (
    PRETRAINED_PREFIX,
    Init,
    apply_init,
    factory_options,
    load_source,
    parse_init,
    transfer_weights,
)
from dsod_depth.engine.model_setup import build_model_for
from dsod_depth.errors import KitError
from dsod_depth.models import adapt_first_conv, build_detector

BAD_INIT = "must be scratch, imagenet, pretrained:PATH or transfer:RUN_DIR"


class TwoConvs(nn.Module):
    """A stand-in detector: an input convolution reading ``in_channels`` and a 1×1 classifier."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.stem = nn.Conv2d(in_channels, 4, 3)
        self.cls = nn.Conv2d(4, num_classes, 1)


def _saved(path, model: nn.Module, in_channels: int):
    save_checkpoint(path, {"model": model.state_dict(), "in_channels": in_channels})
    return path


def _config(init: str, name: str = "dsod_tiny", **model) -> ExperimentConfig:
    return ExperimentConfig(data=DataConfig(input_size=96), model=ModelConfig(name=name, init=init, **model))


# A dataset as build_model_for reads it: its class and channel counts.
ONE_CHANNEL = SimpleNamespace(num_classes=3, in_channels=1, modality="depth")


@pytest.mark.parametrize(
    ("text", "kind", "source"),
    [
        ("scratch", "scratch", None),
        ("imagenet", "imagenet", None),
        ("pretrained:runs/rgb_pre", "pretrained", "runs/rgb_pre"),
        ("pretrained:w/b.pt", "pretrained", "w/b.pt"),
        ("pretrained:/abs/x:y.pt", "pretrained", "/abs/x:y.pt"),  # only the first ':' separates
        ("transfer:runs/transfer/hha_s0", "transfer", "runs/transfer/hha_s0"),
    ],
)
def test_every_kind_parses_and_prints_back(text, kind, source):
    init = parse_init(text)
    assert init == Init(kind, source)
    assert str(init) == text


@pytest.mark.parametrize(
    "text", ["", "Scratch", "imagenet21k", "pretrained:", "pretrained", "transfer:", "distil:runs/x"]
)
def test_bad_strings_name_the_key_and_every_form(text):
    with pytest.raises(KitError, match=f"^model.init {BAD_INIT}, got {text!r}$"):
        parse_init(text)
    with pytest.raises(KitError, match=f"^inits\\[0\\] {BAD_INIT}"):
        parse_init(text, key="inits[0]")


def test_build_model_for_refuses_bad_inits_before_building():
    with pytest.raises(KitError, match=f"model.init {BAD_INIT}, got 'imagenet21k'"):
        build_model_for(_config("imagenet21k"), ONE_CHANNEL)
    with pytest.raises(KitError, match="model 'dsod_tiny' has no ImageNet initialisation; use init: scratch"):
        build_model_for(_config("imagenet"), ONE_CHANNEL)


def test_only_imagenet_asks_the_factory_for_options():
    accepted = {"weights_path", "first_conv", "init"}
    for text in ("scratch", "pretrained:x.pt"):
        assert factory_options(parse_init(text), model_name="ssd300_vgg16", accepted=accepted) == {}
    options = factory_options(
        parse_init("imagenet"), model_name="ssd300_vgg16", accepted=accepted, first_conv="sum"
    )
    assert options == {"init": "imagenet", "first_conv": "sum"}


def test_a_run_folder_reads_its_last_checkpoint_and_a_file_itself(tmp_path):
    torch.manual_seed(0)
    last = _saved(tmp_path / "run" / "checkpoints" / "last.pt", TwoConvs(3, 2), 3)
    other = _saved(tmp_path / "weights.pt", TwoConvs(3, 2), 3)
    file, from_folder = load_source(tmp_path / "run")
    assert file == last
    file, from_file = load_source(other)
    assert file == other
    assert not torch.equal(from_folder["model"]["stem.weight"], from_file["model"]["stem.weight"])
    assert load_source(str(last))[1]["model"].keys() == from_folder["model"].keys()


def test_missing_sources_are_one_line_errors(tmp_path):
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(KitError, match="empty_run has no checkpoints/last.pt"):
        load_source(tmp_path / "empty_run")
    with pytest.raises(KitError, match=f"checkpoint {tmp_path / 'missing.pt'} not found"):
        apply_init(TwoConvs(3, 2), parse_init(f"pretrained:{tmp_path / 'missing.pt'}"), model_name="m")


def test_pretrained_copies_matching_tensors_and_adapts_the_rgb_stem(tmp_path):
    torch.manual_seed(0)
    source = TwoConvs(3, 5)  # another class count: the classifier keeps its own initial weights
    _saved(tmp_path / "run" / "checkpoints" / "last.pt", source, 3)
    for text in (
        f"pretrained:{tmp_path / 'run'}",
        f"pretrained:{tmp_path / 'run' / 'checkpoints' / 'last.pt'}",
    ):
        model = TwoConvs(1, 2)
        before = model.cls.weight.clone()
        copied = apply_init(model, parse_init(text), model_name="two_convs", first_conv="sum")
        assert sorted(copied) == ["stem.bias", "stem.weight"]
        torch.testing.assert_close(model.stem.weight, adapt_first_conv(source.stem.weight, 1, "sum"))
        assert torch.equal(model.stem.bias, source.stem.bias)
        assert torch.equal(model.cls.weight, before)


def test_a_source_that_fits_nothing_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    save_checkpoint(path, {"model": {"elsewhere.weight": torch.zeros(2)}, "in_channels": 3})
    with pytest.raises(KitError, match=f"^{path}: no tensor matches model 'two_convs' by name and shape$"):
        apply_init(TwoConvs(3, 2), parse_init(f"{PRETRAINED_PREFIX}{path}"), model_name="two_convs")


def test_scratch_and_imagenet_copy_nothing_after_the_build():
    model = TwoConvs(3, 2)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for text in ("scratch", "imagenet"):
        assert apply_init(model, parse_init(text), model_name="two_convs") == []
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_transfer_weights_leaves_the_stem_when_the_source_was_not_rgb():
    source, model = TwoConvs(2, 2), TwoConvs(1, 2)
    copied = transfer_weights(model, source.state_dict(), source_in_channels=2)
    assert sorted(copied) == ["cls.bias", "cls.weight", "stem.bias"]


def test_build_model_for_loads_a_run_folder_like_its_checkpoint(tmp_path):
    torch.manual_seed(1)
    source = build_detector("dsod_tiny", num_classes=3, in_channels=3, input_size=96)
    _saved(tmp_path / "pre" / "checkpoints" / "last.pt", source, 3)
    models = [
        build_model_for(_config(f"pretrained:{where}", first_conv="sum"), ONE_CHANNEL)
        for where in (tmp_path / "pre", tmp_path / "pre" / "checkpoints" / "last.pt")
    ]
    for key, value in models[0].state_dict().items():
        assert torch.equal(value, models[1].state_dict()[key]), key
    stem = next(k for k, v in source.state_dict().items() if v.dim() == 4)
    torch.testing.assert_close(
        models[0].state_dict()[stem], adapt_first_conv(source.state_dict()[stem], 1, "sum")
    )


def test_a_scratch_build_is_the_factory_build_of_the_same_seed():
    """The init step adds no randomness: the trainer's numbers for a seed do not move."""
    torch.manual_seed(3)
    built = build_model_for(_config("scratch"), ONE_CHANNEL).state_dict()
    torch.manual_seed(3)
    plain = build_detector("dsod_tiny", num_classes=3, in_channels=1, input_size=96).state_dict()
    assert built.keys() == plain.keys()
    assert all(torch.equal(plain[k], v) for k, v in built.items())
