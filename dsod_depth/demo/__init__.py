"""`dsod-depth demo`: the whole study on SynthRooms, end to end, on a laptop-class CPU.

1. generate SynthRooms and prepare the store (RGB, depth, raw depth, HHA);
2. pretrain the ``dsod_tiny`` backbone as a classifier of RGB object crops — the offline stand-in
   for ImageNet pretraining, i.e. pretraining in the RGB domain — on a separate SynthRooms corpus
   (generator seed :data:`PRETRAIN_CORPUS_SEED`; the detection frames are seed 0, so no frame is
   shared): the stand-in shares the classes with the detection task, never the frames;
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
how much of the table comes from colour that tells the classes apart. ``--with-transfer`` adds the
third init, supervision transfer (:mod:`dsod_depth.demo.transfer`). Each step's message goes to
the ``log`` callable of :func:`run_demo`
(the command line prints it with the time of day).
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dsod_depth.config import dump_config, load_config
from dsod_depth.demo.report import map_cell, public_row, result_rows, summary_table, write_demo_report
from dsod_depth.demo.settings import (
    ABLATION_MODALITIES,
    ABLATIONS,
    DEPTH_MODALITIES,
    DETECT_FRAMES,
    MODALITIES,
    PRETRAIN_CORPUS_SEED,
    PRETRAIN_FOLDER,
    PRETRAINED_INIT,
    TRANSFER_INIT,
    DemoSettings,
    appearance_phrase,
    demo_settings,
    detector_config,
    pretrain_config,
)
from dsod_depth.demo.transfer import TRANSFER_MODALITIES, run_transfers, teachers_by_seed, transfer_init_entry
from dsod_depth.engine.init import PRETRAINED_PREFIX
from dsod_depth.engine.run_dir import CONFIG_FILE, RunDir
from dsod_depth.errors import KitError
from dsod_depth.experiments.compare import compare_runs, write_tables
from dsod_depth.experiments.matrix import matrix_from_dict
from dsod_depth.experiments.naming import modality_token
from dsod_depth.experiments.runs import RunOutcome
from dsod_depth.experiments.sweep import run_sweep
from dsod_depth.fileio import write_text_atomic

__all__ = [
    "ABLATIONS", "ABLATION_MODALITIES", "DEPTH_MODALITIES", "MODALITIES", "PRETRAINED_INIT", "TRANSFER_INIT",
    "DemoSettings", "check_run_folders", "demo_matrix", "demo_settings", "detector_config", "pretrain_config",
    "result_rows", "run_appearance_ablation", "run_demo", "scratch_matrix", "summary_table",
    "write_demo_report",
]  # fmt: skip

_LOGGER = logging.getLogger(__name__)  # run_demo's default log (the command line passes a printing one)


def demo_matrix(out: Path, settings: DemoSettings) -> tuple[dict[str, Any], str]:
    """The detectors as a sweep matrix (plain dict) and the text of its base config: SynthRooms ×
    modalities × (scratch, RGB-pretrained) × seeds, every run from ``out/configs/detector.yaml``
    (written by :func:`run_demo`), run folders under ``out/runs`` named by the sweep."""
    store, backbone = out / "data" / "synthrooms", RunDir(out / PRETRAIN_FOLDER).last
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
    # The transfer column's runs (--with-transfer) belong to the demo with or without the flag.
    matrix = {**matrix, "inits": [*matrix["inits"], transfer_init_entry(root.parent)]}
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

    backbone_dir = out / PRETRAIN_FOLDER
    if RunDir(backbone_dir).last.is_file():
        log(f"2/4 RGB-pretrained backbone already in {backbone_dir}")
    else:
        corpus = out / "data" / "pretrain_corpus"
        log(f"2/4 pretraining the dsod_tiny backbone on RGB object crops ({settings.pretrain_iters} steps) "
            f"of a separate corpus: {settings.pretrain_frames} frames of SynthRooms seed "
            f"{PRETRAIN_CORPUS_SEED} → {corpus}")  # fmt: skip
        _generate(corpus, settings, settings.appearance_randomness, progress, corpus=True)
        summary = pretrain(pretrain_config(settings, corpus), backbone_dir, progress=progress)
        log(f"    crop classification accuracy on the corpus's test split: {summary['test_accuracy']:.3f}")

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

    outcomes, transfers = list(result.outcomes), None
    if settings.with_transfer:
        transfers, more = _transfer_column(out, settings, matrix, outcomes, progress=progress, log=log)
        outcomes += more

    log("4/4 comparison table, figures and report")
    # compare reads every run's test metrics (a run without them, e.g. held by another process, is
    # a one-line error naming it).
    comparison = compare_runs([o.spec.run_dir for o in outcomes])
    write_tables(comparison, out / "comparison.md")
    rows = result_rows(outcomes, comparison)
    write_text_atomic(out / "results.json", json.dumps([public_row(r) for r in rows], indent=2) + "\n")
    table = summary_table(comparison)
    ablation = None
    if "appearance" in settings.ablations:
        ablation = run_appearance_ablation(out, settings, comparison, progress=progress, log=log)
    report = write_demo_report(
        out, rows, table, settings, time.perf_counter() - start, ablation=ablation, transfers=transfers
    )
    return {"rows": rows, "table": table, "report": report, "ablation": ablation, "transfers": transfers}


def _transfer_column(
    out: Path, settings: DemoSettings, matrix: dict[str, Any], outcomes: list[RunOutcome], *, progress: bool,
    log: Callable[[str], None],
) -> tuple[list[dict[str, Any]], list[RunOutcome]]:  # fmt: skip
    """Distil (:func:`~dsod_depth.demo.transfer.run_transfers`), then train the transfer cells with the
    sweep; returns the students' records and the new cells' outcomes."""
    store = Path(matrix["datasets"]["synthrooms"])
    count = len(TRANSFER_MODALITIES) * settings.seeds
    log(f"3/4 supervision transfer: {count} students ({settings.iters} steps each), then {count} detectors")
    transfers = run_transfers(
        out, lambda modality, seed: detector_config(settings, store, modality, "scratch", seed),
        teachers_by_seed(outcomes), progress=progress, log=log,
    )  # fmt: skip
    column = {**matrix, "inits": [transfer_init_entry(out)]}
    result = run_sweep(column, jobs=settings.jobs, progress=progress, log=lambda line: log(f"    {line}"))
    if not result.ok:
        raise KitError(f"demo: {len(result.failed)} transfer detector run(s) did not finish; rerun to resume")
    write_text_atomic(out / "transfer.json", json.dumps(transfers, indent=2) + "\n")
    return transfers, list(result.outcomes)


def _generate(
    store: Path, settings: DemoSettings, randomness: float, progress: bool, *, corpus: bool = False
) -> None:
    """The detection frames (seed 0), or with ``corpus`` the pretraining corpus (its own seed)."""
    from dsod_depth.data.prepare import prepare_synthrooms

    counts = (settings.pretrain_frames, max(settings.pretrain_frames // 6, 1)) if corpus else (
        settings.num_train, settings.num_test)  # fmt: skip
    prepare_synthrooms(
        store, num_train=counts[0], num_test=counts[1], size=settings.frame_size,
        seed=PRETRAIN_CORPUS_SEED if corpus else 0, workers=settings.workers, progress=progress,
        appearance_model=settings.appearance_model, appearance_randomness=randomness,
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
        lines.append(f"| {modality_token(modality)} | {map_cell(a)} | {map_cell(b)} | {delta:+.1f} |")
    rows = [{"modality": modality_token(r["modality"]), "seed": r["seed"], "map": r["map"]}
            for r in comparison["runs"]]  # fmt: skip
    ablation = {"randomness": 1.0, "table": "\n".join(lines), "rows": rows}
    write_text_atomic(out / "ablation_appearance.json", json.dumps(ablation, indent=2) + "\n")
    return ablation
