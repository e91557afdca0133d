"""The demo's own outputs from compare's result: ``results.json`` rows, the summary table and
``report.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dsod_depth.demo.settings import (
    DEPTH_MODALITIES,
    MODALITIES,
    PRETRAIN_CORPUS_SEED,
    PRETRAINED_INIT,
    TRANSFER_INIT,
    DemoSettings,
    appearance_phrase,
)
from dsod_depth.experiments.naming import modality_token
from dsod_depth.experiments.runs import RunOutcome
from dsod_depth.experiments.tables import points_cell
from dsod_depth.fileio import write_text_atomic


def map_cell(group: dict[str, Any]) -> str:
    """A group's mAP in % as the demo's tables print it: mean ± sample std (no spread for one seed)."""
    spread = f" ± {100 * group['map_std']:.1f}" if group["map_std"] is not None else ""
    return f"{100 * group['map_mean']:.1f}{spread}"


def _init_name(label: str) -> str:
    """The demo's name of an init label (compare's ``pretrained:pretrain_rgb_corpus`` → ``rgb-pretrained``;
    ``scratch`` and ``transfer`` stay)."""
    return label if label in ("scratch", TRANSFER_INIT) else PRETRAINED_INIT


def public_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("dataset", "modality", "init", "seed", "map")}


def result_rows(outcomes: list[RunOutcome], comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per run in the sweep's order: ``dataset``, ``modality`` (file-name form: rgb, depth, hha,
    rgb_hha, as the experiment configs), ``init`` (scratch / rgb-pretrained), ``seed``, ``map`` (a
    fraction, as compare read it) and ``run_dir``. The first five are the rows of ``results.json``."""
    scores = {Path(r["run_dir"]).resolve(): r["map"] for r in comparison["runs"]}
    return [
        {"dataset": o.spec.dataset, "modality": modality_token(o.spec.modality),
         "init": _init_name(o.spec.init), "seed": o.spec.seed, "map": scores[o.spec.run_dir.resolve()],
         "run_dir": str(o.spec.run_dir)}
        for o in outcomes
    ]  # fmt: skip


def summary_table(comparison: dict[str, Any]) -> str:
    """The demo's compact Markdown table from :func:`compare_runs`'s groups and gains: mAP per modality
    (rows) × init (columns: scratch, RGB-pretrained, and transfer when it ran), mean ± sample std over
    seeds, and each init's gain Δ over scratch (from the unrounded means) with its 95 % bootstrap
    interval over test images when compare made one. RGB has no transfer cell."""
    groups = {(g["modality"], _init_name(g["init"])): g for g in comparison["groups"]}
    gains = {(g["modality"], _init_name(g["init"])): g for g in comparison["gains"]}
    inits = [PRETRAINED_INIT] + ([TRANSFER_INIT] if any(i == TRANSFER_INIT for _, i in groups) else [])
    names = {PRETRAINED_INIT: "RGB-pretrained", TRANSFER_INIT: "transfer"}
    header = ["modality", "scratch mAP@0.5 [%]"] + [f"{names[i]} mAP@0.5 [%]" for i in inits]
    header += [f"Δ {names[i]} − scratch [pts]" for i in inits]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for modality in MODALITIES:
        cells = [modality_token(modality), map_cell(groups[(modality, "scratch")])]
        cells += [map_cell(groups[(modality, i)]) if (modality, i) in groups else "—" for i in inits]
        cells += [points_cell(gains.get((modality, i)), "delta") for i in inits]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_demo_report(
    out: Path,
    rows: list[dict[str, Any]],
    table: str,
    settings: DemoSettings,
    seconds: float,
    *,
    ablation: dict[str, Any] | None = None,
    transfers: list[dict[str, Any]] | None = None,
) -> Path:
    """``out/report.md``: the demo's setting in prose, its summary table, a link to compare's tables
    and chart (``comparison.md``, ``comparison.png``, already written), the supervision-transfer
    students' held-out losses and the appearance ablation's table when they ran, and the figures
    ``visualize`` draws of the best depth-only run. Returns its path."""
    appearance = appearance_phrase(settings.appearance_model, settings.appearance_randomness)
    sections = [
        "# dsod-depth demo on SynthRooms",
        "",
        f"{settings.num_train} training and {settings.num_test} test frames ({settings.frame_size[0]}×"
        f"{settings.frame_size[1]}, {appearance}), "
        f"`dsod_tiny` at {settings.input_size}×{settings.input_size}, "
        f"{settings.iters} steps × batch {settings.batch_size} per run, {settings.seeds} seed(s); "
        f"RGB-pretrained = backbone pretrained for {settings.pretrain_iters} steps on RGB object crops of a "
        f"separate corpus ({settings.pretrain_frames} frames of SynthRooms seed {PRETRAIN_CORPUS_SEED}: "
        "the same classes, none of the detection frames). "
        f"VOC07 11-point mAP@0.5 on the test split. This invocation took {seconds / 60:.1f} min "
        "(reruns skip finished steps).",
        "",
        table,
        "",
        *(
            [
                "Δ [low, high]: 95 % paired-bootstrap interval over the test images (seeds pooled per "
                "resample): how much Δ would move with another draw of test frames, not with another seed.",
                "",
            ]
            if "[" in table
            else []
        ),
        "Full comparison (intervals of every mAP, per-class AP, domain-mismatch table, bar chart): "
        "[comparison.md](comparison.md)",
        "",
        "![mAP per modality and init](comparison.png)",
        "",
    ]
    if transfers:
        sections += [
            "Transfer = supervision transfer: each seed's RGB-pretrained RGB detector is the teacher; a "
            "dsod_tiny student per modality learns, on the detection training frames without their "
            "labels, to reproduce the teacher's deepest backbone map (standardised per channel) from "
            "depth, HHA or RGB+HHA; the detector then starts from the student. Held-out distillation "
            "loss (test frames; 1 ≈ predicting each channel's mean):",
            "",
            "| student | seed | held-out loss at step 0 | at the end |",
            "|---|---|---|---|",
            *(f"| {t['modality']} | {t['seed']} | {t['heldout_start']:.3f} | {t['heldout_end']:.3f} |"
              for t in transfers),
            "",
        ]  # fmt: skip
    if ablation is not None:
        sections += [
            "Ablation: the same rooms with appearance independent of the class (randomness 1: every "
            "part's material drawn from all families), from scratch. What RGB loses here is what colour "
            "that tells the classes apart gave it; HHA changes only through the sensor (dark surfaces "
            "return less depth).",
            "",
            ablation["table"],
            "",
            "Full tables: [ablation_appearance/comparison.md](ablation_appearance/comparison.md)",
            "",
        ]
    depth_rows = [r for r in rows if r["modality"] in DEPTH_MODALITIES]
    if depth_rows:
        from dsod_depth.viz import visualize_run  # matplotlib and open3d only when figures are drawn

        best = max(depth_rows, key=lambda r: r["map"])
        figures = visualize_run(
            best["run_dir"], split="test", num_frames=6, score_threshold=0.3, progress=False
        )
        link = figures.report.relative_to(out)
        sections += [
            f"Best depth-only run: {best['modality']} / {best['init']} (seed {best['seed']}) with mAP@0.5 = "
            f"{100 * best['map']:.1f} %. Its detections on RGB, colourised depth and HHA, PR curves, "
            f"training curves and 3D view: [{link}]({link}).",
        ]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(sections) + "\n")
    return path
