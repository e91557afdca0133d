"""95 % intervals of a comparison: a paired bootstrap over test images, seeds pooled per resample.

For one dataset of :func:`~dsod_depth.experiments.compare.compare_runs`: the test images are
resampled B times once (:func:`~dsod_depth.evaluation.bootstrap.resample_counts` with the given seed,
in the image order of the first run's ``gt.json``; every other run is aligned to it by image id),
and every run is scored on the same resamples (:func:`~dsod_depth.evaluation.bootstrap.resampled_map`,
the run's detections matched once by the evaluator's rules). Then per resample:

* a group's value = the mean over its seeds of each seed's mAP on that resample (seeds **pooled**:
  every seed sees the same resampled images, and a resample moves them together);
* Δ = value(init) − value(scratch), mismatch = Δ(rgb) − Δ(modality), on the same resample (paired);

and each interval is the 2.5th and 97.5th percentile of those B values (numpy's linear
interpolation). It covers the sampling of test images only, not seed variance (the std over seeds
shows that). Identical detections give identical resampled values, so a Δ between two such groups is
exactly [0, 0].

Checks (one-line :class:`KitError`): all runs of a dataset must list the same test images, and each
run's detections must give, with every image drawn once, the mAP of its ``metrics.json`` (stale
files would put the interval around another number).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dsod_depth.engine.run_dir import RunDir
from dsod_depth.errors import KitError
from dsod_depth.evaluation.bootstrap import (
    VOC_METRICS,
    image_positions,
    match_files,
    resample_counts,
    resampled_map,
)

__all__ = ["CONFIDENCE", "add_intervals"]

CONFIDENCE = 0.95  # the intervals' coverage: the 2.5th and 97.5th percentiles of the resampled values


def _interval(values: np.ndarray) -> tuple[float | None, float | None]:
    """(low, high) percentiles of float [B] resampled values; resamples without any GT (NaN) drop out."""
    values = values[~np.isnan(values)]
    if not len(values):
        return None, None
    tail = 100.0 * (1.0 - CONFIDENCE) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def _missing_files(runs: list[dict[str, Any]], split: str) -> str | None:
    """Why the runs cannot be resampled (runs without ``gt.json`` or ``detections.json``), or None."""
    lacking = [
        r["run_dir"]
        for r in runs
        if not (
            RunDir(r["run_dir"]).eval_gt(split).is_file()
            and RunDir(r["run_dir"]).eval_detections(split).is_file()
        )
    ]
    if not lacking:
        return None
    return (
        f"{len(lacking)} of {len(runs)} runs have no eval/{split}/gt.json and detections.json to resample "
        f"(e.g. {lacking[0]})"
    )


def _resampled_maps(
    runs: list[dict[str, Any]], split: str, resamples: int, seed: int
) -> tuple[dict[str, np.ndarray], int]:
    """({run_dir: float [B] mAP of the run on each resample}, number of test images): one draw of
    counts for all runs of a dataset, in the first run's image order, each run aligned by image id."""
    maps: dict[str, np.ndarray] = {}
    first, reference = "", ()
    counts = np.zeros((0, 0), np.int64)
    for r in runs:  # one run at a time: only its resampled mAPs are kept, not its matched detections
        run = RunDir(r["run_dir"])
        det = run.eval_detections(split)
        matched = match_files(run.eval_gt(split), det, metric=r["metric"], iou_threshold=r["iou_threshold"])
        if not first:
            first, reference = r["run_dir"], matched.image_ids
            counts = resample_counts(len(reference), resamples, seed)  # [B, N], reference order
        positions = image_positions(reference, matched.image_ids)  # [N] or None
        if positions is None:
            raise KitError(
                f"{r['run_dir']} and {first} were evaluated on different {split} images "
                f"({len(matched.image_ids)} vs {len(reference)}); paired intervals need one test set: "
                "evaluate them on the same split, or pass --bootstrap 0"
            )
        whole = resampled_map(matched, np.ones((1, len(positions)), np.int64))[0]  # every image once
        if not math.isclose(whole, r["map"], rel_tol=0.0, abs_tol=1e-9):
            raise KitError(
                f"{det} gives mAP {whole:.6f} but {run.eval_metrics(split)} says {r['map']:.6f}; "
                f"re-score the run with `dsod-depth eval {r['run_dir']}`, or pass --bootstrap 0"
            )
        maps[r["run_dir"]] = resampled_map(matched, counts[:, positions])  # [B]
    return maps, len(reference)


def add_intervals(
    dataset: dict[str, Any],
    runs: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    gains: list[dict[str, Any]],
    mismatch: list[dict[str, Any]],
    *,
    resamples: int,
    seed: int,
) -> str | None:
    """Fill the ``*_lo``/``*_hi`` fields (fractions) of ``dataset``'s groups (``map``), gains
    (``delta``) and mismatch figures (``mismatch``), and its ``intervals`` entry (``resamples``,
    ``seed``, ``num_images``), with ``resamples`` > 0 resamples drawn from ``seed``. The lists are
    :func:`compare_runs`'s; entries of other datasets are left alone. Returns why the dataset gets
    no intervals (a COCO metric, missing files) without touching anything, else None."""
    runs, groups, gains, mismatch = (
        [entry for entry in entries if entry["dataset"] == dataset["name"]]
        for entries in (runs, groups, gains, mismatch)
    )
    if dataset["metric"] not in VOC_METRICS:
        return f"VOC metrics only, and these runs are scored with {dataset['metric']}"
    reason = _missing_files(runs, dataset["split"])
    if reason is not None:
        return reason
    maps, num_images = _resampled_maps(runs, dataset["split"], resamples, seed)
    value = {}  # (modality, init) → float [B], the mean of the group's seeds on each resample
    for g in groups:
        key = (g["modality"], g["init"])
        value[key] = np.mean([maps[d] for d in g["run_dirs"]], axis=0)  # [seeds, B] → [B]
        g["map_lo"], g["map_hi"] = _interval(value[key])
    delta = {}  # (modality, init) → float [B]
    for d in gains:
        key = (d["modality"], d["init"])
        delta[key] = value[key] - value[(d["modality"], "scratch")]
        d["delta_lo"], d["delta_hi"] = _interval(delta[key])
    for m in mismatch:
        figure = delta[("rgb", m["init"])] - delta[(m["modality"], m["init"])]  # [B]
        m["mismatch_lo"], m["mismatch_hi"] = _interval(figure)
    dataset["intervals"] = {"resamples": resamples, "seed": seed, "num_images": num_images}
    return None
