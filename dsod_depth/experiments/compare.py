"""Scratch vs pretrained: gathering finished runs into groups, gains and domain-mismatch figures.

:func:`compare_runs` reads each run folder's ``config.yaml`` and ``eval/<test split>/metrics.json``
and returns plain containers (all scores are fractions in [0, 1], exact; the tables round):

* a **group** is (dataset, modality, init) over seeds: mean and sample standard deviation
  (n − 1 denominator; none for one seed) of the mAP and of each class's AP;
* the **pretraining gain** of a non-scratch init on a modality is Δ = mean mAP(init) − mean mAP(scratch)
  of the same dataset and modality. Every init other than ``scratch`` counts as pretrained and
  gets its own Δ: ``imagenet`` (torchvision ImageNet weights) and each ``pretrained:NAME`` (a kit
  checkpoint, e.g. an RGB detector or a ``pretrain`` backbone);
* the **domain mismatch** of a depth-based modality m (every modality other than plain ``rgb``,
  fusions included) for a pretrained init is Δ(rgb) − Δ(m): how much more the pretraining helps
  colour images than m. Positive means the pretrained features transfer worse to m. A ``transfer``
  init (the student of a supervision-transfer run) has no figure: its teacher is the RGB network, so
  there is no RGB student to take Δ(rgb) from; its Δ over scratch per modality is its figure;
* with ``bootstrap`` resamples (default 1000), a **95 % interval** for every group mAP, every Δ and
  every mismatch figure: a paired bootstrap over test images (:mod:`dsod_depth.evaluation.bootstrap`).
  The resamples are drawn once per dataset, from ``numpy.random.default_rng(bootstrap_seed)`` over
  its test images, and every run of the dataset is scored on the same ones, so Δ and mismatch
  intervals are paired. Seeds are pooled per resample: a group's value on a resample is the mean of
  its seeds' mAPs on that resample, Δ and mismatch are differences of these values on the same
  resample, and the interval is their 2.5th–97.5th percentile. It covers the sampling of test images,
  not seed variance (the std over seeds shows that). VOC metrics only: a COCO-scored dataset, or one
  whose runs lack ``gt.json``/``detections.json``, gets no intervals and says why. Point estimates stay
  the means of the runs' ``metrics.json``.

Folders that train no detector (``pretrain`` and ``transfer`` runs, e.g. under a sweep's output; see
:func:`~dsod_depth.engine.run_dir.run_kind`) are skipped and named in ``result["skipped"]`` and in a
note, whether found below a folder argument or passed directly.

Labels: the dataset of a run is the ``dataset`` attribute of its prepared store (``<store>/<test
split>.h5``), or the store folder's name when the store cannot be read (e.g. run folders copied to
another machine); the modality is ``data.modality`` in canonical form (``rgb+hha``; ``raw`` reads
``depth``); the init is ``model.init`` labelled by :func:`~dsod_depth.experiments.naming.init_label`;
the seed is ``train.seed``. A generated dataset also has a **variant**, how its frames were made
(for SynthRooms: the appearance model and randomness its store records; a store written before the
record was made with the ``hue-blend`` model): the tables' captions state it, and runs of one dataset
with different variants are compared as separate datasets named ``<dataset> (<variant>)``.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dsod_depth.config import ExperimentConfig, load_config
from dsod_depth.engine.run_dir import CONFIG_FILE, RunDir, read_eval_metrics, read_metrics_log, run_kind
from dsod_depth.errors import KitError
from dsod_depth.experiments.intervals import CONFIDENCE, add_intervals
from dsod_depth.experiments.naming import (
    canonical_modality,
    init_label,
    init_sort_key,
    is_rgb,
    is_transfer,
    modality_sort_key,
)
from dsod_depth.experiments.tables import skipped_note, write_tables

__all__ = [
    "compare_runs", "write_tables", "find_run_dirs", "split_detector_runs", "read_run",
    "dataset_name", "dataset_variant", "gains_and_mismatch",
]  # fmt: skip

# Settings that must agree between the seeds of one group (else the mean mixes different experiments).
_SETUP_KEYS = ("model", "input_size", "iters", "batch_size", "accumulate")


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run folders from the arguments: a folder with ``config.yaml`` is a run; any other folder (e.g. a
    sweep's output root) contributes every run folder below it, in sorted order."""
    runs: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if RunDir(path).is_run():
            runs.append(path)
        elif path.is_dir():
            found = sorted(p.parent for p in path.rglob(CONFIG_FILE))
            if not found:
                raise KitError(f"{path} holds no run folder (no config.yaml below it); pass run directories")
            runs += found
        else:
            raise KitError(f"run directory {path} not found")
    unique: dict[Path, Path] = {}  # resolved → as given (the same run named twice counts once)
    for run in runs:
        unique.setdefault(run.resolve(), run)
    return list(unique.values())


def split_detector_runs(run_dirs: Iterable[Path]) -> tuple[list[Path], list[dict[str, str]]]:
    """(detector runs, skipped): the folders that train a detector, and ``{"run_dir", "kind"}`` for
    each that trains none (``pretrain``, ``transfer``: no test metrics to table), in the given order."""
    detectors, skipped = [], []
    for run in run_dirs:
        kind = run_kind(run)
        if kind == "detector":
            detectors.append(run)
        else:
            skipped.append({"run_dir": str(run), "kind": kind})
    return detectors, skipped


def _store_attrs(config: ExperimentConfig) -> dict[str, Any] | None:
    """The attributes of the run's test split file, or None when it cannot be read."""
    if not config.data.store:
        return None
    from dsod_depth.data.store import split_path

    try:
        import h5py

        with h5py.File(split_path(Path(config.data.store), config.data.test_split), "r") as f:
            return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    except OSError:
        return None


_UNREAD = object()  # the store's attributes not read yet


def dataset_name(config: ExperimentConfig, attrs: Any = _UNREAD) -> tuple[str, str]:
    """(name, where it came from): the store's ``dataset`` attribute, else the store folder's name.
    ``attrs``: the store's attributes when the caller has read them (:func:`_store_attrs`)."""
    attrs = _store_attrs(config) if attrs is _UNREAD else attrs
    name = str(attrs.get("dataset", "")) if attrs else ""
    if name:
        return name, "store"
    store = Path(config.data.store) if config.data.store else None
    if store is not None and store.name:
        return store.name, "store folder"
    return "unknown", "none"


def dataset_variant(config: ExperimentConfig, attrs: Any = _UNREAD) -> str | None:
    """How the run's generated frames were made, e.g. ``appearance materials, randomness 0.1`` for
    SynthRooms (None for real datasets and unreadable stores). A SynthRooms store without an
    ``appearance_model`` record predates the materials model, i.e. was made with ``hue-blend``.
    ``attrs`` as for :func:`dataset_name`."""
    attrs = _store_attrs(config) if attrs is _UNREAD else attrs
    if not attrs or attrs.get("dataset") != "synthrooms":
        return None
    try:
        prep = json.loads(attrs.get("prep_args", "{}"))
    except ValueError:
        return None
    if "appearance_randomness" not in prep:
        return None
    model = prep.get("appearance_model", "hue-blend")
    return f"appearance {model}, randomness {float(prep['appearance_randomness']):g}"


def _processes(run: RunDir) -> int:
    """How many processes trained the run (DDP ranks; the sweep's ``--gpus-per-run`` divides
    ``optim.accumulate`` by it), from its training log; 1 for a log without the field."""
    try:
        records = read_metrics_log(run)
    except KitError:  # a damaged log does not stop a comparison; the caption then assumes one process
        return 1
    counts = [r["processes"] for r in records if isinstance(r.get("processes"), int)]
    return counts[-1] if counts else 1


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """One finished run as a flat record (labels, setup, scores as fractions)."""
    run = RunDir(run_dir)
    run_dir = run.path
    if not run.is_run():
        raise KitError(
            f"{run_dir} is not a run directory (no config.yaml); pass folders written by train or sweep"
        )
    config = load_config(run.config)
    metrics = read_eval_metrics(run, config.data.test_split)
    processes = _processes(run)
    attrs = _store_attrs(config)  # one read of the store for both labels
    dataset, source = dataset_name(config, attrs)
    return {
        "run_dir": str(run_dir),
        "dataset": dataset,
        "dataset_source": source,
        "variant": dataset_variant(config, attrs),
        "modality": canonical_modality(config.data.modality),
        "init": init_label(config.model.init),
        "init_value": config.model.init,
        "seed": config.train.seed,
        "model": config.model.name,
        "input_size": config.data.input_size,
        "iters": config.train.iters,
        "batch_size": config.train.batch_size,
        "accumulate": config.optim.accumulate,
        "processes": processes,
        "effective_batch": config.train.batch_size * config.optim.accumulate * processes,
        "split": config.data.test_split,
        "metric": metrics["metric"],
        "iou_threshold": metrics.get("iou_threshold"),
        "map": float(metrics["map"]),
        "ap_per_class": {
            str(k): (None if v is None else float(v)) for k, v in metrics["ap_per_class"].items()
        },
    }


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (n − 1); std is None for fewer than two values."""
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _group(dataset: str, modality: str, init: str, runs: list[dict[str, Any]], classes: list[str]) -> dict:
    runs = sorted(runs, key=lambda r: r["seed"])
    name = f"{dataset}/{modality}/{init}"
    for a, b in zip(runs, runs[1:]):
        if a["seed"] == b["seed"]:
            raise KitError(
                f"runs {a['run_dir']} and {b['run_dir']} are the same experiment ({name}, seed {a['seed']}); "
                "pass only one of them"
            )
    first = runs[0]
    for run in runs[1:]:
        differ = [k for k in _SETUP_KEYS if run[k] != first[k]]
        if differ:
            what = ", ".join(f"{k} {first[k]} vs {run[k]}" for k in differ)
            raise KitError(
                f"the seeds of {name} differ in setup ({what}: {first['run_dir']} and {run['run_dir']}); "
                "compare runs trained alike"
            )
    maps = [r["map"] for r in runs]
    mean, std = _mean_std(maps)
    per_class = {}
    for cls in classes:
        values = [r["ap_per_class"].get(cls) for r in runs]
        present = [v for v in values if v is not None]
        cls_mean, cls_std = _mean_std(present)
        per_class[cls] = {"mean": cls_mean, "std": cls_std, "values": values}
    return {
        "dataset": dataset, "modality": modality, "init": init, "n": len(runs),
        "seeds": [r["seed"] for r in runs], "run_dirs": [r["run_dir"] for r in runs],
        "map_values": maps, "map_mean": mean, "map_std": std, "ap_per_class": per_class,
        **{k: first[k] for k in (*_SETUP_KEYS, "processes", "effective_batch")},
    }  # fmt: skip


def gains_and_mismatch(groups: Sequence[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """Pretraining gains Δ and domain-mismatch figures from groups (``dataset``, ``modality``,
    ``init``, ``map_mean``). Returns (gains, mismatch) in table order; ``transfer`` inits get gains
    but no mismatch figure (module docstring)."""
    mean = {(g["dataset"], g["modality"], g["init"]): g["map_mean"] for g in groups}
    gains = []
    for g in groups:
        scratch = mean.get((g["dataset"], g["modality"], "scratch"))
        if g["init"] != "scratch" and scratch is not None:
            gains.append({
                "dataset": g["dataset"], "modality": g["modality"], "init": g["init"],
                "scratch_map": scratch, "init_map": g["map_mean"], "delta": g["map_mean"] - scratch,
            })  # fmt: skip
    delta = {(d["dataset"], d["modality"], d["init"]): d["delta"] for d in gains}
    mismatch = []
    for d in gains:
        rgb = delta.get((d["dataset"], "rgb", d["init"]))
        if not is_rgb(d["modality"]) and rgb is not None and not is_transfer(d["init"]):
            mismatch.append({
                "dataset": d["dataset"], "modality": d["modality"], "init": d["init"],
                "delta_rgb": rgb, "delta_modality": d["delta"], "mismatch": rgb - d["delta"],
            })  # fmt: skip
    return gains, mismatch


def compare_runs(
    run_dirs: Iterable[str | Path], *, bootstrap: int = 1000, bootstrap_seed: int = 0
) -> dict[str, Any]:
    """Compare finished runs (folders, or folders holding run folders such as a sweep's output).

    Args:
        run_dirs: run folders or folders above them; folders that train no detector are skipped.
        bootstrap: resamples of the test images for the 95 % intervals (module docstring); 0 = none.
        bootstrap_seed: seed of the resamples (the same seed gives the same intervals).

    Returns ``{"runs", "groups", "gains", "mismatch", "datasets", "skipped", "notes", "bootstrap"}`` —
    lists of plain dicts (see the module docstring); ``datasets`` gives per dataset its ``metric``,
    ``iou_threshold``, ``classes``, ``modalities`` and ``inits`` in table order, ``intervals``
    (``{"resamples", "seed", "num_images"}`` or None) and ``no_intervals`` (why not, or None).
    Groups carry ``map_lo``/``map_hi``, gains ``delta_lo``/``delta_hi`` and mismatch figures
    ``mismatch_lo``/``mismatch_hi`` (fractions; None without intervals). ``notes``: lines for the
    user (skipped folders, datasets without intervals). Raises :class:`KitError` for a folder
    without test metrics, two runs of the same cell and seed, seeds of one cell trained differently,
    runs of one dataset scored with different metrics or on different test images, or detections
    that do not give their run's mAP.
    """
    wanted = {
        "bootstrap": "a number of resamples >= 0 (0: no intervals)",
        "bootstrap_seed": "an integer >= 0",
    }
    for name, value in (("bootstrap", bootstrap), ("bootstrap_seed", bootstrap_seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise KitError(f"{name} must be {wanted[name]}; got {value!r}")
    folders, skipped = split_detector_runs(find_run_dirs(run_dirs))
    note = skipped_note(skipped)
    if not folders:
        raise KitError("no run directories given" + (f" ({note[:-1]})" if note else ""))
    runs = [read_run(d) for d in folders]
    for name in {r["dataset"] for r in runs}:  # frames made differently are different datasets
        mine = [r for r in runs if r["dataset"] == name]
        if len({r["variant"] for r in mine}) > 1:
            for r in mine:
                r["dataset"] = f"{name} ({r['variant'] or 'unknown variant'})"
    order = lambda r: (r["dataset"], modality_sort_key(r["modality"]), init_sort_key(r["init"]), r["seed"])  # noqa: E731
    runs.sort(key=order)
    datasets, groups = [], []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        mine = [r for r in runs if r["dataset"] == dataset]
        scoring = {(r["metric"], r["iou_threshold"]) for r in mine}
        if len(scoring) > 1:
            detail = "; ".join(f"{r['run_dir']}: {r['metric']}" for r in mine)
            raise KitError(
                f"the {dataset} runs were scored differently ({detail}); re-score them alike with "
                "`dsod-depth eval RUN_DIR --metric voc07`"
            )
        classes = list(dict.fromkeys(c for r in mine for c in r["ap_per_class"]))
        cells = list(dict.fromkeys((r["modality"], r["init"]) for r in mine))
        for modality, init in cells:
            members = [r for r in mine if (r["modality"], r["init"]) == (modality, init)]
            groups.append(_group(dataset, modality, init, members, classes))
        datasets.append({
            "name": dataset, "split": mine[0]["split"], "metric": mine[0]["metric"],
            "variant": mine[0]["variant"],
            "iou_threshold": mine[0]["iou_threshold"],
            "classes": classes, "modalities": list(dict.fromkeys(m for m, _ in cells)),
            "inits": sorted({i for _, i in cells}, key=init_sort_key),
            "intervals": None, "no_intervals": None,
        })  # fmt: skip
    gains, mismatch = gains_and_mismatch(groups)
    for item, key in ((groups, "map"), (gains, "delta"), (mismatch, "mismatch")):
        for entry in item:
            entry[f"{key}_lo"] = entry[f"{key}_hi"] = None
    notes = [note] if note else []
    if bootstrap:
        for dataset in datasets:
            reason = add_intervals(
                dataset, runs, groups, gains, mismatch, resamples=bootstrap, seed=bootstrap_seed
            )
            if reason is not None:
                dataset["no_intervals"] = reason
                notes.append(f"No intervals for {dataset['name']}: {reason}.")
    return {
        "runs": runs, "groups": groups, "gains": gains, "mismatch": mismatch, "datasets": datasets,
        "skipped": skipped, "notes": notes,
        "bootstrap": {"resamples": bootstrap, "seed": bootstrap_seed, "confidence": CONFIDENCE},
    }  # fmt: skip
