"""The pieces of a supervision-transfer step (:mod:`dsod_depth.engine.transfer` has the method and the
loop): paired frames, the teacher's view of them, the target statistics, the student with its
adaptation layers and the loss, and the held-out loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from dsod_depth.data.loader import DetectionDataset
from dsod_depth.engine.teacher import Teacher
from dsod_depth.models.taps import tap_features

__all__ = ["PairedFrames", "Distiller", "TeacherView", "flip_pairs", "target_stats", "heldout_loss"]


class PairedFrames(Dataset):
    """Frame i of a split as (student input [C_s, H, W], teacher's groups [C_t, H, W]), both normalised
    with the store's statistics; ``partner`` (a permutation) gives the teacher another frame's view.

    ``frames`` reads the union of the student's and the teacher's groups without augmentation.
    """

    def __init__(
        self,
        frames: DetectionDataset,
        student: list[str],
        teacher: list[str],
        partner: list[int] | None = None,
    ) -> None:
        self.frames, self.partner = frames, partner
        offsets, start = {}, 0
        for g in frames.groups:
            size = int(frames.mean[g].numel())
            offsets[g] = list(range(start, start + size))
            start += size
        self.student_channels = torch.tensor([c for g in student for c in offsets[g]])
        self.teacher_channels = torch.tensor([c for g in teacher for c in offsets[g]])

    def set_epoch(self, epoch: int) -> None:
        self.frames.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.frames[index][0]
        other = image if self.partner is None else self.frames[self.partner[index]][0]
        return image[self.student_channels], other[self.teacher_channels]


class Distiller(nn.Module):
    """The student's features, the adaptation layers and the target statistics; :meth:`loss` is the
    module docstring's loss. ``adapters`` keys are layer names with '.' → '_' (ModuleDict keys)."""

    def __init__(self, features: nn.Module, adapters: dict[str, nn.Module], layers: list[str]) -> None:
        super().__init__()
        self.features, self.layers = features, layers
        self.adapters = nn.ModuleDict({k.replace(".", "_"): v for k, v in adapters.items()})
        self.target_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def standardise(self, teacher_maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {}
        for layer, t in teacher_maps.items():
            mean, std = self.target_stats[layer]
            out[layer] = (t.float() - mean[:, None, None]) / std[:, None, None]
        return out

    def loss(self, student_images: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        maps = tap_features(self.features, student_images, self.layers)
        losses = []
        for layer in self.layers:
            predicted = self.adapters[layer.replace(".", "_")](maps[layer]).float()
            target = targets[layer]
            if predicted.shape[-2:] != target.shape[-2:]:
                predicted = F.interpolate(
                    predicted, size=target.shape[-2:], mode="bilinear", align_corners=False
                )
            losses.append(F.mse_loss(predicted, target))
        return torch.stack(losses).mean()


class TeacherView:
    """Store-normalised teacher groups → the teacher's own normalisation and input size, → its maps."""

    def __init__(self, teacher: Teacher, frames: DetectionDataset, layers: list[str], device: torch.device):
        scale, shift = [], []
        for g in teacher.groups:
            store_mean, store_std = frames.mean[g], frames.std[g]
            mean = teacher.mean.get(g)
            std = teacher.std.get(g)
            if mean is None:  # normalised with the store's statistics, as the kit's ImageNet runs are
                mean, std = store_mean, store_std
            scale.append(store_std / std)
            shift.append((store_mean - mean) / std)
        self.scale = torch.cat(scale)[:, None, None].to(device)
        self.shift = torch.cat(shift)[:, None, None].to(device)
        self.features, self.layers, self.size = teacher.features.to(device), layers, teacher.input_size

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = images * self.scale + self.shift
        if self.size is not None and tuple(x.shape[-2:]) != tuple(self.size):
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return tap_features(self.features, x, self.layers)


def flip_pairs(generator_seed: int, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Flip the same randomly chosen samples of every tensor [N, C, H, W] left-right."""
    chosen = torch.rand(tensors[0].shape[0], generator=torch.Generator().manual_seed(generator_seed)) < 0.5
    return [torch.where(chosen[:, None, None, None].to(t.device), t.flip(-1), t) for t in tensors]


@torch.no_grad()
def target_stats(view: TeacherView, pairs: PairedFrames, count: int, device: torch.device) -> dict:
    """Per layer (mean [C], std [C]) of the teacher's maps over the first ``count`` frames."""
    count = min(count, len(pairs))
    sums: dict[str, list] = {}  # layer → [values counted, Σ x [C], Σ x² [C]] in float64
    for start in range(0, count, 16):
        batch = [pairs.frames[i][0][pairs.teacher_channels] for i in range(start, min(start + 16, count))]
        for layer, m in view(torch.stack(batch).to(device)).items():
            m = m.double().transpose(0, 1).flatten(1)  # [C, N·H·W]
            acc = sums.setdefault(layer, [0, 0.0, 0.0])
            acc[0], acc[1], acc[2] = acc[0] + m.shape[1], acc[1] + m.sum(1), acc[2] + m.pow(2).sum(1)
    stats = {}
    for layer, (n, s, s2) in sums.items():
        mean = s / n
        std = (s2 / n - mean**2).clamp_min(0).sqrt()
        floor = 0.01 * std.median().clamp_min(1e-12)
        stats[layer] = (mean.float(), torch.maximum(std, floor).float())
    return stats


@torch.no_grad()
def heldout_loss(
    distiller: Distiller, view: TeacherView, pairs: PairedFrames, count: int, device
) -> float | None:
    """The loss on the first ``count`` frames of ``pairs`` (student in eval mode); None for none."""
    count = min(count, len(pairs))
    if count == 0:
        return None
    was = distiller.training
    distiller.eval()
    total = 0.0
    for start in range(0, count, 16):
        items = [pairs[i] for i in range(start, min(start + 16, count))]
        student = torch.stack([s for s, _ in items]).to(device)
        teacher = torch.stack([t for _, t in items]).to(device)
        loss = distiller.loss(student, distiller.standardise(view(teacher)))
        total += float(loss) * len(items)
    distiller.train(was)
    return total / count
