"""ImageNet initialisation: finding torchvision's files, loading them by value, adapting input filters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import densenet121
from torchvision.models.vgg import cfgs, make_layers

from dsod_depth.errors import KitError
from dsod_depth.models import adapt_first_conv, build_detector
from dsod_depth.models.weights import imagenet_file_name, load_weights_file

DENSENET_FILE = "densenet121-a639ec97.pth"
VGG_FILE = "vgg16-397923af.pth"


def _response(weight: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return F.conv2d(image, weight, padding=1)


@pytest.mark.parametrize("channels", [1, 3, 4, 6])
@pytest.mark.parametrize(("strategy", "scale"), [("mean", lambda c: c / 3), ("sum", lambda c: 1.0)])
def test_grey_image_replicated_over_channels_gives_the_documented_scale(strategy, scale, channels):
    torch.manual_seed(0)
    rgb = torch.randn(8, 3, 3, 3)
    grey = torch.rand(1, 1, 9, 9)
    adapted = adapt_first_conv(rgb, channels, strategy)
    assert adapted.shape == (8, channels, 3, 3)
    expected = _response(rgb, grey.expand(-1, 3, -1, -1)) * scale(channels)
    torch.testing.assert_close(_response(adapted, grey.expand(-1, channels, -1, -1)), expected)


@pytest.mark.parametrize("channels", [3, 6, 9])
def test_copy_scaled_keeps_the_response_to_an_rgb_image_tiled_over_groups(channels):
    torch.manual_seed(0)
    rgb = torch.randn(8, 3, 3, 3)
    image = torch.rand(2, 3, 9, 9)
    adapted = adapt_first_conv(rgb, channels, "copy-scaled")
    tiled = image.repeat(1, channels // 3, 1, 1)  # [N, C, H, W]: the same RGB image in every group
    torch.testing.assert_close(_response(adapted, tiled), _response(rgb, image))


@pytest.mark.parametrize("channels", [1, 4])
def test_copy_scaled_formula_for_partial_groups(channels):
    rgb = torch.randn(8, 3, 3, 3)
    adapted = adapt_first_conv(rgb, channels, "copy-scaled")
    for c in range(channels):
        torch.testing.assert_close(adapted[:, c], rgb[:, c % 3] * 3 / channels)


def test_three_channels_keep_the_pretrained_filters_and_bad_arguments_raise():
    rgb = torch.randn(4, 3, 7, 7)
    for strategy in ("mean", "sum", "copy-scaled"):
        assert torch.equal(adapt_first_conv(rgb, 3, strategy), rgb)
    with pytest.raises(KitError, match="unknown first_conv strategy 'median'"):
        adapt_first_conv(rgb, 4, "median")
    with pytest.raises(KitError, match=r"RGB filters \[out, 3, k, k\]"):
        adapt_first_conv(torch.randn(4, 2, 3, 3), 4)


def test_file_names_are_torchvisions():
    assert imagenet_file_name("densenet121") == DENSENET_FILE
    assert imagenet_file_name("vgg16") == VGG_FILE


def test_missing_file_error_names_the_file_and_the_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    folder = tmp_path / "checkpoints"
    with pytest.raises(KitError) as err:
        build_detector("densenet121_dsod", num_classes=2, in_channels=1, init="imagenet")
    assert DENSENET_FILE in str(err.value) and str(folder) in str(err.value)
    with pytest.raises(KitError, match=re.escape(f"{tmp_path / 'nope.pth'} not found")):
        build_detector(
            "ssd300_vgg16", num_classes=2, in_channels=3, init="imagenet", weights_path=tmp_path / "nope.pth"
        )


def _densenet_state(old_layout: bool, *, scramble: bool = True) -> dict[str, torch.Tensor]:
    """A torchvision DenseNet-121 state dict; ``scramble``: random values everywhere (BN statistics too),
    so that every tensor is recognisable; otherwise torchvision's initialisation (a working network)."""
    torch.manual_seed(1)
    state = densenet121(weights=None).state_dict()
    if scramble:
        state = {k: torch.rand_like(v) + 0.5 if v.is_floating_point() else v for k, v in state.items()}
    if old_layout:  # the released file: keys like denselayer1.norm.1.weight, no batch counters
        state = {
            re.sub(r"(denselayer\d+\.(?:norm|conv))([12])\.", r"\1.\2.", k): v
            for k, v in state.items()
            if not k.endswith("num_batches_tracked")
        }
    return state


@pytest.mark.parametrize("old_layout", [True, False])
def test_densenet_weights_replace_every_backbone_tensor(tmp_path, monkeypatch, old_layout):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    state = _densenet_state(old_layout)
    torch.save(state, tmp_path / "checkpoints" / DENSENET_FILE)
    expected = {
        k[len("features.") :]: v for k, v in _densenet_state(False).items() if k.startswith("features.")
    }
    model = build_detector(
        "densenet121_dsod",
        num_classes=2,
        in_channels=4,
        input_size=64,
        init="imagenet",
        first_conv="sum",
        fusion="late",
        late_split=(3, 1),
    )
    for branch, channels in zip(model.features.branches, (3, 1)):
        loaded = branch.backbone.features.state_dict()
        assert set(loaded) == set(expected)
        for key, value in expected.items():
            want = adapt_first_conv(value, channels, "sum") if key == "conv0.weight" else value
            assert torch.equal(loaded[key], want), key
    assert model.info["init"] == "imagenet" and model.info["first_conv"] == "sum"
    assert model.info["weights_file"] == str(tmp_path / "checkpoints" / DENSENET_FILE)


def _vgg_state() -> dict[str, torch.Tensor]:
    """torchvision VGG16 layout. The 400 MB classifier is stored as overlapping strided views of small
    random vectors (W[i, j] = v[i + j]), so the file stays small but every entry is distinguishable."""
    torch.manual_seed(2)
    state = {f"features.{k}": torch.randn_like(v) for k, v in make_layers(cfgs["D"]).state_dict().items()}
    for index, (rows, cols) in {0: (4096, 25088), 3: (4096, 4096), 6: (1000, 4096)}.items():
        base = torch.randn(rows + cols)
        state[f"classifier.{index}.weight"] = base.as_strided((rows, cols), (1, 1))
        state[f"classifier.{index}.bias"] = torch.randn(rows)
    return state


def test_vgg_weights_fill_the_backbone_and_decimate_fc6_fc7(tmp_path):
    path = tmp_path / "vgg.pth"
    state = _vgg_state()
    torch.save(state, path)
    model = build_detector(
        "ssd300_vgg16",
        num_classes=2,
        in_channels=6,
        init="imagenet",
        weights_path=path,
        first_conv="copy-scaled",
    )
    loaded = model.features.backbone.state_dict()
    for key, value in state.items():
        if key.startswith("features."):
            want = adapt_first_conv(value, 6, "copy-scaled") if key == "features.0.weight" else value
            assert torch.equal(loaded[key], want), key
    fc6, fc7 = state["classifier.0.weight"], state["classifier.3.weight"]
    conv6, conv7 = loaded["conv6.weight"], loaded["conv7.weight"]
    assert conv6.shape == (1024, 512, 3, 3) and conv7.shape == (1024, 1024, 1, 1)
    for o, c, y, x in [(0, 0, 0, 0), (5, 17, 1, 2), (1023, 511, 2, 2), (300, 2, 2, 0)]:
        # fc6 input index = c·49 + row·7 + col with taps at rows/cols 0, 3, 6; filters 0, 4, 8, …
        assert conv6[o, c, y, x] == fc6[4 * o, c * 49 + 3 * y * 7 + 3 * x]
    for o, i in [(0, 0), (7, 1000), (1023, 1023)]:
        assert conv7[o, i, 0, 0] == fc7[4 * o, 4 * i]
    assert torch.equal(loaded["conv6.bias"], state["classifier.0.bias"][::4])
    assert torch.equal(loaded["conv7.bias"], state["classifier.3.bias"][::4])
    assert len(loaded) == len([k for k in state if k.startswith("features.")]) + 4


def test_mismatching_files_are_rejected_with_the_file_name(tmp_path):
    state = _densenet_state(False)
    broken = dict(state)
    broken["features.denseblock2.denselayer1.conv1.weight"] = torch.zeros(3, 3, 1, 1)
    del broken["features.norm5.running_var"]
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(
        KitError, match=r"broken\.pth does not match.*missing: norm5\.running_var.*wrong shape"
    ):
        build_detector("densenet121_dsod", num_classes=2, in_channels=3, init="imagenet", weights_path=path)
    torch.save(state, tmp_path / "densenet.pth")
    with pytest.raises(KitError, match=r"densenet\.pth is not torchvision's VGG16"):
        build_detector(
            "ssd300_vgg16",
            num_classes=2,
            in_channels=3,
            init="imagenet",
            weights_path=tmp_path / "densenet.pth",
        )
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(KitError, match=r"cannot read weights file .*notes\.pth"):
        load_weights_file(text)


def test_six_channel_model_answers_a_tiled_image_like_the_rgb_model(tmp_path):
    path = Path(tmp_path) / "densenet.pth"
    torch.save(_densenet_state(True, scramble=False), path)
    kwargs = dict(num_classes=2, input_size=64, init="imagenet", weights_path=path, first_conv="copy-scaled")
    rgb = build_detector("densenet121_dsod", in_channels=3, **kwargs).eval()
    six = build_detector("densenet121_dsod", in_channels=6, **kwargs).eval()
    shared = {k: v for k, v in rgb.state_dict().items() if not k.endswith("conv0.weight")}
    six.load_state_dict(shared, strict=False)  # same new layers; the first conv comes from the file
    image = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(rgb(image), six(image.repeat(1, 2, 1, 1))):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
