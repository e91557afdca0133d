"""The demo's supervision-transfer column (``dsod-depth demo --with-transfer``).

For every seed, the seed's RGB-pretrained RGB detector is the teacher — on real data the plan is the
same: the ImageNet-initialised RGB detector of the dataset (Gupta et al. distil an RGB network that has
seen RGB labels into a depth network that has seen none). Its features are distilled into a
``dsod_tiny`` student for each of depth, HHA and RGB+HHA on the detection training frames, labels
unused (:func:`~dsod_depth.engine.transfer.transfer`, default layer ``backbone.second``, the
detectors' own step budget), into ``<out>/transfer/<modality>_s<seed>``. The students then start
detectors (``init: transfer:RUN_DIR``) trained exactly like the other cells, by the same sweep.
RGB has no transfer cell: its teacher already reads RGB.

Finished transfer runs are skipped and interrupted ones resumed, like every other demo step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dsod_depth.engine.init import TRANSFER_PREFIX
from dsod_depth.engine.run_dir import RunDir
from dsod_depth.experiments.naming import is_rgb, modality_token
from dsod_depth.experiments.runs import RunOutcome

TRANSFER_MODALITIES = ("depth", "hha", "rgb+hha")  # students: every modality but plain RGB
TRANSFER_FOLDER = "transfer"


def transfer_init_entry(out: Path) -> dict[str, Any]:
    """The matrix's transfer init: one student folder per modality and seed, RGB left out."""
    template = f"{TRANSFER_PREFIX}{out / TRANSFER_FOLDER}/{{modality}}_s{{seed}}"
    return {"init": template, "modalities": [modality_token(m) for m in TRANSFER_MODALITIES]}


def teachers_by_seed(outcomes: list[RunOutcome]) -> dict[int, Path]:
    """seed → run folder of the RGB detector from the RGB-pretrained backbone (the sweep's outcomes)."""
    return {
        o.spec.seed: o.spec.run_dir
        for o in outcomes
        if is_rgb(o.spec.modality) and o.spec.init.startswith("pretrained:")
    }


def run_transfers(
    out: Path,
    student_config: Callable[[str, int], Any],
    teachers: dict[int, Path],
    *,
    progress: bool,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Distil each seed's teacher into a student per modality of :data:`TRANSFER_MODALITIES`;
    ``student_config(modality, seed)`` is the demo's detector config of that cell. Returns one record
    per student (modality, seed, folder, held-out loss at step 0 and at the end)."""
    from dsod_depth.engine.logging import read_metrics
    from dsod_depth.engine.run_dir import run_kind
    from dsod_depth.engine.transfer import TransferSettings, transfer

    records = []
    for seed in sorted(teachers):
        for modality in TRANSFER_MODALITIES:
            folder = RunDir(out / TRANSFER_FOLDER / f"{modality_token(modality)}_s{seed}")
            config = student_config(modality, seed)
            config = dataclasses.replace(config, name=f"transfer_{modality_token(modality)}_s{seed}")
            if folder.summary.is_file():
                log(f"    {folder.path.name}: finished already")
            elif folder.last.is_file() and run_kind(folder) == "transfer":
                log(f"    {folder.path.name}: resuming")
                transfer(config, folder.path, resume=True, progress=progress)
            else:
                log(f"    {folder.path.name}: distilling {teachers[seed].name} into a {modality} student")
                transfer(config, folder.path, TransferSettings(str(teachers[seed])), progress=progress)
            losses = [r["heldout_loss"] for r in read_metrics(folder.metrics_log) if "heldout_loss" in r]
            records.append({
                "modality": modality_token(modality), "seed": seed, "run_dir": str(folder.path),
                "teacher": str(teachers[seed]), "heldout_start": losses[0], "heldout_end": losses[-1],
            })  # fmt: skip
    return records
