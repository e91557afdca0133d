import torch

from dsod_depth.cli import main
from dsod_depth.config import load_config
from dsod_depth.data.crops import ObjectCrops
from dsod_depth.data.loader import DetectionDataset
from dsod_depth.engine.checkpoint import load_checkpoint
from dsod_depth.engine.model_setup import build_model_for
from dsod_depth.models import adapt_first_conv
from tests.engine.conftest import write_config


def test_object_crops_cover_non_difficult_boxes(tiny_store):
    frames = DetectionDataset(tiny_store, "train", "rgb+hha", 64)
    crops = ObjectCrops(frames, 48, train=True, seed=1)
    expected = 0
    for i in range(len(frames)):
        boxes, _, difficult = frames.samples.annotations(i)
        sides = torch.from_numpy(boxes[:, 2:] - boxes[:, :2]).min(1).values
        expected += int(((~torch.from_numpy(difficult)) & (sides >= 8)).sum())
    assert len(crops) == expected > 0
    image, label = crops[0]
    assert image.shape == (6, 48, 48) and torch.isfinite(image).all()
    assert 0 <= label < frames.num_classes
    again, _ = crops[0]
    assert torch.equal(image, again)  # seeded by (seed, epoch, index)


def test_pretrain_then_transfer_into_detectors(tiny_store, tmp_path, capsys):
    cfg = write_config(
        tmp_path / "pre.yaml", tiny_store, data={"modality": "rgb", "input_size": 48},
        train={"iters": 3, "batch_size": 4, "log_every": 1},
    )  # fmt: skip
    out = tmp_path / "pre"
    assert main(["pretrain", str(cfg), "--data", str(tiny_store), "--out", str(out), "--no-progress"]) == 0
    assert "test crop accuracy" in capsys.readouterr().out
    backbone = load_checkpoint(out / "checkpoints" / "last.pt")
    assert backbone["kind"] == "backbone" and backbone["in_channels"] == 3
    weights = backbone["model"]
    assert weights and all(k.startswith("features.") for k in weights)

    # Same modality: every backbone tensor arrives unchanged.
    rgb_cfg = write_config(tmp_path / "rgb.yaml", tiny_store, data={"modality": "rgb"},
                           model={"init": f"pretrained:{out / 'checkpoints' / 'last.pt'}"})  # fmt: skip
    config = load_config(rgb_cfg)
    model = build_model_for(config, DetectionDataset(tiny_store, "train", "rgb", 96))
    state = model.state_dict()
    for key, value in weights.items():
        assert torch.equal(state[key], value), key

    # Depth (1 channel): the RGB input filters are adapted with the configured strategy.
    init = f"pretrained:{out / 'checkpoints' / 'last.pt'}"
    depth_cfg = write_config(
        tmp_path / "depth.yaml",
        tiny_store,
        data={"modality": "depth"},
        model={"init": init, "first_conv": "sum"},
    )
    model = build_model_for(load_config(depth_cfg), DetectionDataset(tiny_store, "train", "depth", 96))
    state = model.state_dict()
    adapted = [k for k, v in weights.items() if v.dim() == 4 and v.shape[1] == 3 and state[k].shape[1] == 1]
    assert adapted, "the first convolution should have been adapted"
    for key in adapted:
        torch.testing.assert_close(state[key], adapt_first_conv(weights[key], 1, "sum"))
    for key, value in weights.items():
        if key not in adapted:
            assert torch.equal(state[key], value), key


def test_pretraining_optimiser_decays_weights_only(tiny_store, tmp_path, monkeypatch):
    """The trainer's rule (optimiser_for): norm scales and biases (1-D) carry no weight decay."""
    from dsod_depth.engine import pretrain as pretrain_module

    real, built = pretrain_module.optimiser_for, []

    def spy(model, optim):
        built.append((model, real(model, optim)))
        return built[-1][1]

    monkeypatch.setattr(pretrain_module, "optimiser_for", spy)
    cfg = write_config(
        tmp_path / "pre.yaml", tiny_store, data={"modality": "rgb", "input_size": 48},
        optim={"weight_decay": 1e-3}, train={"iters": 1, "batch_size": 4},
    )  # fmt: skip
    pretrain_module.pretrain(load_config(cfg), tmp_path / "pre", progress=False)
    [(model, optimiser)] = built
    decay = {id(p): group["weight_decay"] for group in optimiser.param_groups for p in group["params"]}
    params = list(model.parameters())
    assert len(decay) == len(params)  # every parameter, once, including the linear classifier's
    assert any(p.ndim == 1 for p in params) and any(p.ndim > 1 for p in params)
    for param in params:
        assert decay[id(param)] == (1e-3 if param.ndim > 1 else 0.0), tuple(param.shape)
    assert decay[id(model.classifier.bias)] == 0.0
