"""`dsod-depth demo`: the whole study on SynthRooms, end to end, on a laptop-class CPU.

1. generate SynthRooms and prepare the store (RGB, depth, raw depth, HHA);
2. pretrain the ``dsod_tiny`` backbone as a classifier of RGB object crops — the offline stand-in
   for ImageNet pretraining, i.e. pretraining in the RGB domain;
3. train ``dsod_tiny`` detectors for the modalities rgb, depth, hha and rgb+hha, each from scratch
   and from the RGB-pretrained backbone, for every seed;
4. evaluate each on the test split (VOC07 mAP@0.5), write ``results.json``, the comparison tables
   and figures, and print the table.

Step 3 is a matrix (modality × init × seed) run by the sweep (``sweep --jobs``), which names the run
folders; step 4 is ``compare`` (it reads every run's metrics and writes the comparison tables and
chart; the demo's summary table and ``results.json`` are built from its result) and ``visualize``
(the figures of the best depth-only run). What stays here is the demo's own: the data, the
pretraining, the matrix and the report's prose. Every step is resumable: rerunning the same command
skips what is finished; an output folder holding run folders this version would not make is refused
before anything is written. The default budget fits about 15 minutes on two CPU cores; ``--full``
trains longer on more frames. ``--ablation appearance`` adds rgb, hha and rgb+hha from scratch on a
second store whose appearance is independent of the class (``appearance_randomness`` 1), to show
how much of the table comes from colour that tells the classes apart. Each step's message goes to
the ``log`` callable of :func:`run_demo`
(the command line prints it with the time of day).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsod_depth.config import (
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    dump_config,
    load_config,
)
from dsod_depth.data.synthrooms_defaults import DEFAULT_APPEARANCE_MODEL, DEFAULT_RANDOMNESS
from dsod_depth.engine.init import PRETRAINED_PREFIX
from dsod_depth.engine.run_dir import CONFIG_FILE, RunDir
from dsod_depth.errors import KitError
from dsod_depth.experiments.compare import compare_runs, write_tables
from dsod_depth.experiments.matrix import matrix_from_dict
from dsod_depth.experiments.naming import modality_token
from dsod_depth.experiments.runs import RunOutcome
from dsod_depth.experiments.sweep import run_sweep
from dsod_depth.fileio import write_text_atomic

MODALITIES = ("rgb", "depth", "hha", "rgb+hha")  # channel groups fed to the network (config form)
DEPTH_MODALITIES = ("depth", "hha")  # depth-based: no colour at all
PRETRAINED_INIT = "rgb-pretrained"
DETECT_FRAMES = 6  # test frames written as plain files for the README's `detect` example
ABLATIONS = ("appearance",)
ABLATION_MODALITIES = ("rgb", "hha", "rgb+hha")  # the appearance ablation: what colour can change
_LOGGER = logging.getLogger(__name__)  # run_demo's default log (the command line passes a printing one)


@dataclass(frozen=True)
class DemoSettings:
    """Budget of one demo run (the defaults are the ~15-minute CPU budget)."""

    num_train: int = 600  # SynthRooms training frames
    num_test: int = 200  # test frames
    frame_size: tuple[int, int] = (320, 240)  # generated frame (width, height)
    input_size: int = 160  # network input side
    pretrain_iters: int = 150
    pretrain_crop: int = 64
    pretrain_batch: int = 64
    iters: int = 300  # optimiser steps per detector
    # The SSD zoom-in/zoom-out augmentation pays off only over long schedules: at 250 steps it cost
    # HHA 0.58 → 0.31 mAP in development runs, so the short budget trains on the frames as they are
    # (resized only) and --full uses the official recipe.
    augment: bool = False
    batch_size: int = 16
    lr: float = 0.05
    seeds: int = 1
    workers: int = 2  # preparation processes
    jobs: int = 2  # detectors trained at the same time (sweep --jobs: each with cpu_count / jobs threads)
    appearance_model: str = DEFAULT_APPEARANCE_MODEL  # SynthRooms appearance (see its CALIBRATION.md)
    appearance_randomness: float = DEFAULT_RANDOMNESS
    ablations: tuple[str, ...] = ()  # "appearance": also train on class-independent appearance

    @classmethod
    def full(cls, seeds: int = 3) -> DemoSettings:
        """A longer, more faithful run: more frames, 5× the steps, three seeds."""
        return cls(num_train=2000, num_test=500, pretrain_iters=600, iters=2000, augment=True, seeds=seeds)


def detector_config(
    settings: DemoSettings, store: Path, modality: str, init: str, seed: int
) -> ExperimentConfig:
    """One detector run of the demo; the sweep replaces ``name``, ``data.store``, ``data.modality``,
    ``model.init`` and ``train.seed`` per cell (the run names are the sweep's, never built here)."""
    return ExperimentConfig(
        name="synthrooms_demo_detector",
        data=DataConfig(
            store=str(store),
            modality=modality,
            input_size=settings.input_size,
            augment=settings.augment,
            num_workers=0,
        ),  # fmt: skip
        model=ModelConfig(name="dsod_tiny", init=init, first_conv="mean"),
        optim=OptimConfig(
            lr=settings.lr,
            schedule="cosine",
            warmup_iters=max(settings.iters // 10, 1),
            warmup_factor=0.05,
            grad_clip=10.0,
        ),  # fmt: skip
        train=TrainConfig(
            iters=settings.iters,
            batch_size=settings.batch_size,
            seed=seed,
            device="cpu",
            log_every=max(settings.iters // 20, 1),
            checkpoint_every=max(settings.iters // 4, 1),
            eval_every=0,
        ),  # fmt: skip
    )


def pretrain_config(settings: DemoSettings, store: Path) -> ExperimentConfig:
    return ExperimentConfig(
        name="synthrooms_pretrain_rgb",
        data=DataConfig(store=str(store), modality="rgb", input_size=settings.pretrain_crop, num_workers=0),
        model=ModelConfig(name="dsod_tiny"),
        optim=OptimConfig(lr=0.05, schedule="cosine", warmup_iters=10, warmup_factor=0.1, weight_decay=5e-4),
        train=TrainConfig(
            iters=settings.pretrain_iters,
            batch_size=settings.pretrain_batch,
            seed=0,
            device="cpu",
            log_every=10,
        ),  # fmt: skip
    )


def demo_matrix(out: Path, settings: DemoSettings) -> tuple[dict[str, Any], str]:
    """The detectors as a sweep matrix (plain dict) and the text of its base config: SynthRooms ×
    modalities × (scratch, RGB-pretrained) × seeds, every run from ``out/configs/detector.yaml``
    (written by :func:`run_demo`), run folders under ``out/runs`` named by the sweep."""
    store, backbone = out / "data" / "synthrooms", RunDir(out / "pretrain_rgb").last
    matrix = {
        "name": "demo", "output": str(out / "runs"), "config": str(out / "configs" / "detector.yaml"),
        "datasets": {"synthrooms": str(store)}, "modalities": list(MODALITIES),
        "inits": ["scratch", f"{PRETRAINED_PREFIX}{backbone}"], "seeds": list(range(settings.seeds)),
    }  # fmt: skip
    return matrix, dump_config(detector_config(settings, store, MODALITIES[0], "scratch", 0))


def check_run_folders(matrix: dict[str, Any], base_config: str) -> None:
    """Refuse an output folder holding run folders this demo would not make (e.g. an older version's
    names): they would sit beside the new runs under other names, and ``compare`` on the folder
    would mix them in. Runs of other seeds of the same matrix are this demo's and stay. Writes
    nothing in the output folder (the matrix is expanded from a temporary copy of its base config)."""
    root = Path(matrix["output"])
    found = sorted(p.parent for p in root.rglob(CONFIG_FILE)) if root.is_dir() else []
    if not found:
        return
    seeds = set(matrix["seeds"])
    for run_dir in found:
        try:  # a folder of another seed (an earlier `--seeds 3`) is named by the same rule
            seeds.add(load_config(RunDir(run_dir).config).train.seed)
        except KitError:
            pass  # unreadable as this version's config: refused below unless its name fits
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "detector.yaml"
        base.write_text(base_config, encoding="utf-8")
        specs = matrix_from_dict({**matrix, "config": str(base), "seeds": sorted(seeds)}).expand()
    expected = {spec.run_dir.resolve() for spec in specs}
    for run_dir in found:
        if run_dir.resolve() not in expected:
            raise KitError(
                f"{run_dir} is not a run folder this demo makes (its runs are named like "
                f"{specs[0].run_dir}); it is from another version: use another --out or delete {run_dir}"
            )


def run_demo(
    out: str | Path,
    settings: DemoSettings,
    *,
    progress: bool = True,
    log: Callable[[str], None] = _LOGGER.info,
) -> dict[str, Any]:
    """Run the demo into ``out``; returns {"rows": results, "table": markdown, "report": path}.

    ``log`` receives one message per step (and the sweep's lines, indented); by default an INFO
    record of this module's logger. An ``out`` holding run folders of another version or matrix is
    refused before anything is written (:func:`check_run_folders`).
    """
    from dsod_depth.data.frame_files import write_frame_files
    from dsod_depth.data.store import load_prepared
    from dsod_depth.engine.pretrain import pretrain

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    matrix, base_config = demo_matrix(out, settings)
    check_run_folders(matrix, base_config)
    _write_base_config(Path(matrix["config"]), base_config)
    store = Path(matrix["datasets"]["synthrooms"])
    appearance = appearance_phrase(settings.appearance_model, settings.appearance_randomness)
    log(f"1/4 generating SynthRooms: {settings.num_train} train + {settings.num_test} test frames "
        f"({appearance}) → {store}")  # fmt: skip
    _generate(store, settings, settings.appearance_randomness, progress)

    # A few test frames with objects as plain files (rgb/, depth/, raw/, intrinsics.txt) for `detect`.
    samples, _ = load_prepared(store, "test")
    busy = [i for i in range(len(samples)) if len(samples.annotations(i)[0]) >= 2][:DETECT_FRAMES]
    write_frame_files(store, "test", out / "frames", indices=busy)

    backbone_dir = out / "pretrain_rgb"
    if RunDir(backbone_dir).last.is_file():
        log(f"2/4 RGB-pretrained backbone already in {backbone_dir}")
    else:
        log(f"2/4 pretraining the dsod_tiny backbone on RGB object crops ({settings.pretrain_iters} steps)")
        summary = pretrain(pretrain_config(settings, store), backbone_dir, progress=progress)
        log(f"    crop classification accuracy on the test split: {summary['test_accuracy']:.3f}")

    # The detectors are a matrix run through the sweep (its --jobs children share out the cores).
    count = len(MODALITIES) * 2 * settings.seeds  # modalities × (scratch, RGB-pretrained) × seeds
    log(f"3/4 {count} detectors ({settings.iters} steps × batch {settings.batch_size} each), finished "
        f"ones skipped, {settings.jobs} at a time")  # fmt: skip
    result = run_sweep(matrix, jobs=settings.jobs, progress=progress, log=lambda line: log(f"    {line}"))
    if all(o.status == "skipped" for o in result.outcomes):
        log(f"3/4 all {count} detectors done already")
    if not result.ok:
        first = result.failed[0] if result.failed else None
        why = f"{first.spec.name}: {first.error}" if first else "interrupted"
        raise KitError(f"demo: {len(result.failed)} detector run(s) did not finish ({why}); "
                       "use another --out for other demo settings")  # fmt: skip

    log("4/4 comparison table, figures and report")
    # compare reads every run's test metrics (a run without them, e.g. held by another process, is
    # a one-line error naming it).
    comparison = compare_runs([o.spec.run_dir for o in result.outcomes])
    write_tables(comparison, out / "comparison.md")
    rows = result_rows(result.outcomes, comparison)
    write_text_atomic(out / "results.json", json.dumps([_public(r) for r in rows], indent=2) + "\n")
    table = summary_table(comparison)
    ablation = None
    if "appearance" in settings.ablations:
        ablation = run_appearance_ablation(out, settings, comparison, progress=progress, log=log)
    report = write_demo_report(out, rows, table, settings, time.perf_counter() - start, ablation=ablation)
    return {"rows": rows, "table": table, "report": report, "ablation": ablation}


def appearance_phrase(model: str, randomness: float) -> str:
    """``materials appearance, randomness 0.1`` (how the report and the log name a store's frames)."""
    return f"{model} appearance, randomness {randomness:g}"


def _generate(store: Path, settings: DemoSettings, randomness: float, progress: bool) -> None:
    from dsod_depth.data.prepare import prepare_synthrooms

    prepare_synthrooms(
        store, num_train=settings.num_train, num_test=settings.num_test, size=settings.frame_size,
        seed=0, workers=settings.workers, progress=progress, appearance_model=settings.appearance_model,
        appearance_randomness=randomness,
    )  # fmt: skip


def _write_base_config(path: Path, text: str) -> None:
    """Write a matrix's base config, leaving the file untouched when it already holds ``text``."""
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)


def scratch_matrix(
    name: str, folder: Path, store: Path, settings: DemoSettings, modalities: tuple[str, ...]
) -> dict[str, Any]:
    """A sweep matrix of the demo's detectors trained from scratch on ``store`` for ``modalities`` ×
    the settings' seeds, run folders under ``folder/runs``; writes its base config
    ``folder/detector.yaml`` (unchanged when already there, so a rerun resumes)."""
    base = folder / "detector.yaml"
    _write_base_config(base, dump_config(detector_config(settings, store, modalities[0], "scratch", 0)))
    return {
        "name": name, "output": str(folder / "runs"), "config": str(base),
        "datasets": {"synthrooms": str(store)}, "modalities": list(modalities),
        "inits": ["scratch"], "seeds": list(range(settings.seeds)),
    }  # fmt: skip


def _map_cell(group: dict[str, Any]) -> str:
    """A group's mAP in % as the demo's tables print it: mean ± sample std (no spread for one seed)."""
    spread = f" ± {100 * group['map_std']:.1f}" if group["map_std"] is not None else ""
    return f"{100 * group['map_mean']:.1f}{spread}"


def run_appearance_ablation(
    out: Path,
    settings: DemoSettings,
    main: dict[str, Any],
    *,
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """rgb, hha and rgb+hha from scratch on the same frames (seed 0: same rooms, cameras, objects)
    with appearance independent of the class (randomness 1), in ``out/ablation_appearance``;
    ``main`` is :func:`compare_runs` of the demo's own runs (the same seeds).

    Returns {"randomness", "table", "rows"}: the Markdown table (scratch mAP per modality, default
    appearance beside class-independent appearance) and one row per run; writes
    ``ablation_appearance.json`` and the folder's ``comparison.md``."""
    folder = out / "ablation_appearance"
    store = folder / "data" / "synthrooms"
    log(f"ablation: SynthRooms with class-independent appearance "
        f"({appearance_phrase(settings.appearance_model, 1.0)}) → {store}")  # fmt: skip
    _generate(store, settings, 1.0, progress)
    matrix = scratch_matrix("ablation_appearance", folder, store, settings, ABLATION_MODALITIES)
    log(f"ablation: {len(ABLATION_MODALITIES) * settings.seeds} detectors from scratch")
    result = run_sweep(matrix, jobs=settings.jobs, progress=progress, log=lambda line: log(f"    {line}"))
    if not result.ok:
        raise KitError(f"demo ablation: {len(result.failed)} detector run(s) did not finish; rerun to resume")
    comparison = compare_runs([o.spec.run_dir for o in result.outcomes])
    write_tables(comparison, folder / "comparison.md")
    default = {g["modality"]: g for g in main["groups"] if g["init"] == "scratch"}
    free = {g["modality"]: g for g in comparison["groups"]}
    lines = [
        f"| modality | scratch mAP@0.5 [%], randomness {settings.appearance_randomness:g} | "
        "scratch mAP@0.5 [%], randomness 1 | Δ [pts] |",
        "|---|---|---|---|",
    ]
    for modality in ABLATION_MODALITIES:
        a, b = default[modality], free[modality]
        delta = 100 * (b["map_mean"] - a["map_mean"])
        lines.append(f"| {modality_token(modality)} | {_map_cell(a)} | {_map_cell(b)} | {delta:+.1f} |")
    rows = [{"modality": modality_token(r["modality"]), "seed": r["seed"], "map": r["map"]}
            for r in comparison["runs"]]  # fmt: skip
    ablation = {"randomness": 1.0, "table": "\n".join(lines), "rows": rows}
    write_text_atomic(out / "ablation_appearance.json", json.dumps(ablation, indent=2) + "\n")
    return ablation


def _init_name(label: str) -> str:
    """The demo's name of an init label (compare's ``pretrained:pretrain_rgb`` → ``rgb-pretrained``)."""
    return "scratch" if label == "scratch" else PRETRAINED_INIT


def _public(row: dict[str, Any]) -> dict[str, Any]:
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
    (rows) × init (columns), mean ± sample std over seeds, and the gain Δ (from the unrounded means)."""
    groups = {(g["modality"], _init_name(g["init"])): g for g in comparison["groups"]}
    gains = {g["modality"]: g["delta"] for g in comparison["gains"]}

    lines = [
        "| modality | scratch mAP@0.5 [%] | RGB-pretrained mAP@0.5 [%] | Δ pretrained − scratch [pts] |",
        "|---|---|---|---|",
    ]
    for modality in MODALITIES:
        scratch, pretrained = (_map_cell(groups[(modality, init)]) for init in ("scratch", PRETRAINED_INIT))
        lines.append(
            f"| {modality_token(modality)} | {scratch} | {pretrained} | {100 * gains[modality]:+.1f} |"
        )
    return "\n".join(lines)


def write_demo_report(
    out: Path,
    rows: list[dict[str, Any]],
    table: str,
    settings: DemoSettings,
    seconds: float,
    *,
    ablation: dict[str, Any] | None = None,
) -> Path:
    """``out/report.md``: the demo's setting in prose, its summary table, a link to compare's tables
    and chart (``comparison.md``, ``comparison.png``, already written), the appearance ablation's
    table when it ran, and the figures ``visualize`` draws of the best depth-only run. Returns its path."""
    appearance = appearance_phrase(settings.appearance_model, settings.appearance_randomness)
    sections = [
        "# dsod-depth demo on SynthRooms",
        "",
        f"{settings.num_train} training and {settings.num_test} test frames ({settings.frame_size[0]}×"
        f"{settings.frame_size[1]}, {appearance}), "
        f"`dsod_tiny` at {settings.input_size}×{settings.input_size}, "
        f"{settings.iters} steps × batch {settings.batch_size} per run, {settings.seeds} seed(s); "
        f"RGB-pretrained = backbone pretrained for {settings.pretrain_iters} steps on RGB object crops. "
        f"VOC07 11-point mAP@0.5 on the test split. This invocation took {seconds / 60:.1f} min "
        "(reruns skip finished steps).",
        "",
        table,
        "",
        "Full comparison (per-class AP, domain-mismatch table, bar chart): [comparison.md](comparison.md)",
        "",
        "![mAP per modality and init](comparison.png)",
        "",
    ]
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


def demo_settings(*, full: bool, seeds: int | None, **overrides: Any) -> DemoSettings:
    settings = DemoSettings.full() if full else DemoSettings()
    unknown = set(overrides.get("ablations") or ()) - set(ABLATIONS)
    if unknown:
        raise KitError(f"unknown demo ablation {sorted(unknown)[0]!r}; choose from {', '.join(ABLATIONS)}")
    if seeds is not None:
        if seeds < 1:
            raise KitError(f"--seeds must be at least 1, got {seeds}")
        settings = dataclasses.replace(settings, seeds=seeds)
    return dataclasses.replace(settings, **{k: v for k, v in overrides.items() if v is not None})
