"""ImageNet weights for the baselines: finding torchvision's files offline, loading them, and adapting
the RGB input filters to any channel count.

No network access is assumed. Weights come from torchvision's own files, either in the local torch hub
cache (``torch.hub.get_dir()/checkpoints/<file>``, where ``torchvision`` itself would store them) or
from an explicit ``weights_path``. A missing file is a :class:`KitError` that names the file, where it
can be downloaded, and the folder to put it in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn
from torchvision.models import DenseNet121_Weights, VGG16_Weights

from dsod_depth.errors import KitError

#: torchvision's ImageNet-1k weights per backbone architecture.
IMAGENET_WEIGHTS = {
    "vgg16": VGG16_Weights.IMAGENET1K_V1,
    "densenet121": DenseNet121_Weights.IMAGENET1K_V1,
}

FIRST_CONV_STRATEGIES = ("mean", "sum", "copy-scaled")


def imagenet_file_name(arch: str) -> str:
    """torchvision's file name for ``arch``'s ImageNet weights, e.g. ``vgg16-397923af.pth``."""
    return Path(urlparse(_weights_enum(arch).url).path).name


def imagenet_url(arch: str) -> str:
    """The download address torchvision uses for ``arch``'s ImageNet weights."""
    return _weights_enum(arch).url


def _weights_enum(arch: str):
    try:
        return IMAGENET_WEIGHTS[arch]
    except KeyError:
        raise KitError(
            f"no ImageNet weights known for {arch!r}; choose one of: {', '.join(IMAGENET_WEIGHTS)}"
        ) from None


def hub_checkpoint_dir() -> Path:
    """The folder where torchvision caches downloaded weights: ``torch.hub.get_dir()/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def resolve_weights_file(arch: str, weights_path: str | Path | None = None) -> Path:
    """Path of the ImageNet weight file for ``arch``: ``weights_path`` if given, else the hub cache file.

    Raises KitError when the file does not exist, naming the exact file and folder.
    """
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise KitError(
                f"weights file {path} not found; pass the path of torchvision's {imagenet_file_name(arch)} "
                f"(download: {imagenet_url(arch)})"
            )
        return path
    folder = hub_checkpoint_dir()
    name = imagenet_file_name(arch)
    path = folder / name
    if not path.is_file():
        raise KitError(
            f"ImageNet weights for {arch} not found: put torchvision's file {name} into the folder {folder} "
            f"(download it from {imagenet_url(arch)} on a machine with internet access), "
            "or pass weights_path="
        )
    return path


def load_weights_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict saved with ``torch.save`` (tensors only; loaded with ``weights_only=True``).

    Accepts a bare state dict or one wrapped under ``"state_dict"`` / ``"model"``. Returns CPU tensors.
    """
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unreadable, truncated, or not a tensor file
        raise KitError(
            f"cannot read weights file {path}: {exc}; expected a torchvision state dict (.pth)"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise KitError(f"weights file {path} does not hold a state dict of tensors")
    return dict(obj)


# Old torchvision DenseNet files name dense-layer parts "norm.1"/"conv.2"; current modules use
# "norm1"/"conv2" (torchvision's own loader renames them the same way).
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$"
)


def rename_densenet_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map torchvision's released DenseNet key layout ("denselayer1.norm.1.weight") to the module layout
    ("denselayer1.norm1.weight"); keys already in module layout are kept."""
    out = {}
    for key, value in state.items():
        m = _DENSENET_OLD_KEY.match(key)
        out[m.group(1) + m.group(2) if m else key] = value
    return out


def adapt_first_conv(weight: torch.Tensor, in_channels: int, strategy: str = "mean") -> torch.Tensor:
    """Adapt pretrained RGB input filters [out, 3, k, k] to ``in_channels`` input channels.

    Three input channels are returned unchanged whatever the strategy (RGB and HHA use ImageNet filters
    as they are, as Gupta et al. do). Otherwise, with w_R, w_G, w_B the RGB filters and C = in_channels:

    * ``"mean"``: every channel gets (w_R + w_G + w_B) / 3. A grey image replicated over the C channels
      gives C/3 times the RGB model's response to the same grey image in R, G and B.
    * ``"sum"``: every channel gets (w_R + w_G + w_B) / C, the summed filter shared out equally (C = 1:
      the summed filter, the usual grayscale conversion). A grey image replicated over the C channels gives
      exactly the RGB model's response.
    * ``"copy-scaled"``: channel c gets w_(c mod 3) · 3 / C (RGB filters tiled, scaled). For C a multiple of
      3, an RGB image tiled over the C/3 channel groups (e.g. RGB+HHA with the same image in both) gives
      exactly the RGB model's response; for other C the tiling is partial and the match approximate.

    Returns a new tensor [out, in_channels, k, k] of the input's dtype.
    """
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise KitError(
            f"adapt_first_conv expects RGB filters [out, 3, k, k], got shape {tuple(weight.shape)}"
        )
    if strategy not in FIRST_CONV_STRATEGIES:
        raise KitError(
            f"unknown first_conv strategy {strategy!r}; choose one of: {', '.join(FIRST_CONV_STRATEGIES)}"
        )
    if in_channels < 1:
        raise KitError(f"in_channels must be ≥ 1, got {in_channels}")
    if in_channels == 3:
        return weight.clone()
    total = weight.sum(dim=1, keepdim=True)  # [out, 1, k, k]
    if strategy == "mean":
        return (total / 3.0).expand(-1, in_channels, -1, -1).clone()
    if strategy == "sum":
        return (total / in_channels).expand(-1, in_channels, -1, -1).clone()
    index = torch.arange(in_channels) % 3  # channel c reads RGB filter c mod 3
    return weight[:, index] * (3.0 / in_channels)


def adapt_state_first_conv(
    state: dict[str, torch.Tensor], key: str, in_channels: int, strategy: str, *, source: str | Path
) -> None:
    """Replace ``state[key]`` (RGB input filters) by :func:`adapt_first_conv` of it, in place.

    An absent key is left for :func:`load_state_strict` to report; a non-RGB tensor raises KitError
    naming ``source``.
    """
    if key not in state:
        return
    weight = state[key]
    if weight.dim() != 4 or weight.shape[1] != 3:
        raise KitError(
            f"weights file {source}: {key} has shape {tuple(weight.shape)}, expected RGB filters "
            "[out, 3, k, k]; use torchvision's ImageNet file"
        )
    state[key] = adapt_first_conv(weight, in_channels, strategy)


def load_state_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, source: str | Path) -> None:
    """Copy ``state`` into ``module``; every tensor of the module must be present with the same shape.

    Raises KitError naming ``source`` and the first few missing, unexpected or mis-shaped keys.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    shaped = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shaped)):
        if keys:
            more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
            problems.append(f"{label}: {', '.join(keys[:3])}{more}")
    if problems:
        raise KitError(
            f"weights file {source} does not match the {type(module).__name__} architecture "
            f"({'; '.join(problems)}); use torchvision's ImageNet file for this backbone"
        )
    module.load_state_dict(dict(state), strict=False)  # num_batches_tracked may be absent in old files
