"""The comparison as tables: Markdown, LaTeX (booktabs) and CSV, from :func:`compare_runs`'s result.

Per dataset, four tables: (1) the wide summary, one row per modality with each init's mAP and
each pretrained init's Δ over scratch; (2) the long table, one row per modality × init: mAP mean ±
sample std over seeds, the model, n and Δ; (3) the domain mismatch Δ(rgb) − Δ(modality); (4) AP per
class. Scores are percent with one decimal, gains and mismatch in points; "—" marks what does not
exist (the std of one seed, a class absent from the test split, a cell without runs). With bootstrap
intervals (:mod:`dsod_depth.experiments.intervals`) every mAP, Δ and mismatch cell ends in its 95 %
interval, ``42.6 ± 2.9 [38.1, 46.9]``, ``-7.1 [-9.3, -4.8]``; the first table's caption says how they
were made, or why a dataset has none. Without them (``bootstrap=0``) the cells are plain.

The CSV is one row per (dataset, modality, init) with the numbers of all tables, the interval bounds
in columns of their own (``*_lo_*``, ``*_hi_*``; always present, empty without intervals) and empty
cells for "—"; exact fractions are in the JSON beside it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsod_depth.errors import KitError
from dsod_depth.evaluation.tables import pct
from dsod_depth.experiments.naming import init_sort_key, is_transfer, metric_phrase
from dsod_depth.fileio import atomic_output, write_text_atomic

__all__ = [
    "Table", "dataset_tables", "wide_table", "skipped_note", "render_markdown", "render_latex", "render_csv",
    "write_tables",
]  # fmt: skip

DASH = "—"


@dataclass(frozen=True)
class Table:
    caption: str
    header: tuple[str, ...]
    align: str  # one letter per column: l (text) or r (numbers)
    rows: tuple[tuple[str, ...], ...]


def points(value: float | None) -> str:
    """Difference of fractions → signed points with one decimal ('0.0' instead of '±0.0')."""
    if value is None:
        return DASH
    text = f"{100.0 * value:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text


def map_cell(group: dict[str, Any]) -> str:
    """A group's ``42.6 ± 2.9`` (percent), ``42.6 ± 2.9 [38.1, 46.9]`` when it has an interval."""
    mean, std, low, high = (
        pct(group.get(key), decimals=1, missing=DASH) for key in ("map_mean", "map_std", "map_lo", "map_hi")
    )
    return f"{mean} ± {std}" + (f" [{low}, {high}]" if group.get("map_lo") is not None else "")


def points_cell(entry: dict[str, Any] | None, key: str) -> str:
    """``entry[key]`` in signed points (``-7.1``), with ``entry[key_lo]``/``entry[key_hi]`` after it
    when present (``-7.1 [-9.3, -4.8]``); "—" for no entry."""
    if entry is None or entry.get(key) is None:
        return DASH
    low, high = entry.get(f"{key}_lo"), entry.get(f"{key}_hi")
    return points(entry[key]) + (f" [{points(low)}, {points(high)}]" if low is not None else "")


def skipped_note(skipped: list[dict[str, str]]) -> str | None:
    """One line naming the folders ``compare`` skipped (``{"run_dir", "kind"}`` each), or None."""
    if not skipped:
        return None
    names = ", ".join(f"{s['run_dir']} ({s['kind']})" for s in skipped)
    if len(skipped) == 1:
        return f"Skipped 1 folder that trains no detector: {names}."
    return f"Skipped {len(skipped)} folders that train no detector: {names}."


def _seeds_phrase(groups: list[dict[str, Any]]) -> str:
    seed_sets = {tuple(g["seeds"]) for g in groups}
    if len(seed_sets) == 1:
        seeds = next(iter(seed_sets))
        return f"Seeds: {len(seeds)} per cell ({', '.join(map(str, seeds))})."
    counts = [g["n"] for g in groups]
    return f"Seeds per cell: {min(counts)} to {max(counts)} (column n)."


def _budget_phrase(groups: list[dict[str, Any]]) -> str:
    budgets: dict[tuple[int, int, int, int], list[str]] = {}
    for g in groups:
        key = (g["iters"], g["batch_size"], g["accumulate"], g.get("processes", 1))
        budgets.setdefault(key, []).append(f"{g['modality']}/{g['init']}")
    parts = []
    for (iters, batch, accumulate, processes), cells in budgets.items():
        effective = batch * accumulate * processes
        ranks = f" × {processes} processes" if processes > 1 else ""
        text = (
            f"{iters:,} iterations × effective batch {effective} (batch_size {batch} × accumulate "
            f"{accumulate} per process{ranks}) = {iters * effective:,} images per run"
        )
        parts.append(text if len(budgets) == 1 else f"{text} ({', '.join(cells)})")
    label = "Training budget" if len(budgets) == 1 else "Training budgets"
    return f"{label}: {'; '.join(parts)}."


def _pretrained_phrase(runs: list[dict[str, Any]]) -> str:
    inits = {r["init"]: r["init_value"] for r in runs if r["init"] != "scratch"}
    if not inits:
        return "All runs are trained from scratch."
    parts = []
    for label in sorted(inits, key=init_sort_key):
        value = inits[label]
        if label == "imagenet":
            parts.append("imagenet = torchvision ImageNet-1k weights")
        elif is_transfer(label):
            parts.append(f"{label} = the student of a supervision-transfer run (one per modality and seed)")
        else:
            parts.append(f"{label} = kit checkpoint {value.split(':', 1)[1]}")
    return f"Pretrained = every init other than scratch: {'; '.join(parts)}."


def _variant_phrase(dataset: dict[str, Any]) -> str:
    """How a generated dataset's frames were made (e.g. SynthRooms' appearance), or nothing."""
    return f"Frames: {dataset['variant']}. " if dataset.get("variant") else ""


def _interval_phrase(result: dict[str, Any], dataset: dict[str, Any]) -> str:
    """How the intervals were made (the first table of a dataset), why there are none, or nothing
    when the bootstrap was off."""
    if not result.get("bootstrap", {}).get("resamples"):
        return ""
    if dataset.get("intervals") is None:
        return f" No intervals: {dataset['no_intervals']}."
    iv = dataset["intervals"]
    return (
        f" [low, high] = 95 % interval of a paired bootstrap over the {iv['num_images']:,} "
        f"{dataset['split']} images ({iv['resamples']:,} resamples, seed {iv['seed']}, the same for "
        "every run; on each resample a cell is the mean of its seeds' mAPs, Δ and mismatch are "
        "differences of these; 2.5th–97.5th percentile, not necessarily centred on the mean). It covers "
        "the sampling of test images, not seed variance (± std shows that)."
    )


def _interval_reference(dataset: dict[str, Any], number: int) -> str:
    return f" [low, high]: 95 % bootstrap interval, as in Table {number}." if dataset.get("intervals") else ""


def dataset_tables(result: dict[str, Any], dataset: dict[str, Any], first_number: int = 1) -> list[Table]:
    """The tables of one dataset (entry of ``result["datasets"]``), numbered from ``first_number``:
    the wide summary, the long table, the domain mismatch, AP per class."""
    name = dataset["name"]
    groups = [g for g in result["groups"] if g["dataset"] == name]
    runs = [r for r in result["runs"] if r["dataset"] == name]
    gains = {(d["modality"], d["init"]): d for d in result["gains"] if d["dataset"] == name}
    mismatch = [m for m in result["mismatch"] if m["dataset"] == name]
    summary = first_number
    tables = [wide_table(result, dataset, summary)]
    number = summary + 1

    rows = []
    for g in groups:
        if g["init"] == "scratch":
            delta = "ref."
        else:
            delta = points_cell(gains.get((g["modality"], g["init"])), "delta")
        rows.append((g["modality"], g["init"], g["model"], str(g["n"]), map_cell(g), delta))
    caption = (
        f"Table {number}. {name}: mAP [%] on the {dataset['split']} split ({metric_phrase(dataset)}), mean ± "
        f"sample standard deviation over seeds (n seeds; {DASH} when n = 1). Δ = mAP(init) − mAP(scratch) "
        f"of the same modality, in points, from the unrounded means. {_variant_phrase(dataset)}"
        f"{_pretrained_phrase(runs)} "
        f"{_seeds_phrase(groups)} {_budget_phrase(groups)}{_interval_reference(dataset, summary)}"
    )
    header = ("modality", "init", "model", "n", "mAP [%]", "Δ vs scratch")
    tables.append(Table(caption, header, "lllrrr", tuple(rows)))
    number += 1

    caption = (
        f"Table {number}. {name}: domain mismatch = Δ(rgb) − Δ(modality), in points from the unrounded "
        "means, for each depth-based modality and pretrained init: how much more the pretraining helps "
        "RGB than that modality (positive: the pretrained features transfer worse to it)."
        f"{_interval_reference(dataset, summary)}"
    )
    rows = [
        (m["modality"], m["init"], points(m["delta_rgb"]), points(m["delta_modality"]),
         points_cell(m, "mismatch"))
        for m in mismatch
    ]  # fmt: skip
    if not rows:
        caption += (
            f" No figure for {name}: it needs rgb and a depth-based modality, each trained from scratch "
            "and from the same pretrained init."
        )
    if any(is_transfer(init) for init in dataset["inits"]):
        caption += (
            " The transfer init has no figure: no RGB student exists for it (the RGB network is its "
            f"teacher), so its figure is its Δ over scratch per modality (Table {summary})."
        )
    header = ("modality", "init", "Δ rgb", "Δ modality", "Δ(rgb) − Δ(modality)")
    tables.append(Table(caption, header, "llrrr", tuple(rows)))
    number += 1

    caption = (
        f"Table {number}. {name}: AP per class [%] ({metric_phrase(dataset)}), mean over seeds; "
        f"{DASH} = class absent from the {dataset['split']} split."
    )
    header = ("class", *(f"{g['modality']} / {g['init']}" for g in groups))
    rows = [
        (cls, *(pct(g["ap_per_class"][cls]["mean"], decimals=1, missing=DASH) for g in groups))
        for cls in dataset["classes"]
    ]
    rows.append(("mAP", *(pct(g["map_mean"], decimals=1, missing=DASH) for g in groups)))
    tables.append(Table(caption, header, "l" + "r" * len(groups), tuple(rows)))
    return tables


def wide_table(result: dict[str, Any], dataset: dict[str, Any], number: int) -> Table:
    """The summary of one dataset: one row per modality; per init its mAP, then per non-scratch init
    its Δ over scratch (columns only when the dataset has scratch runs)."""
    name = dataset["name"]
    cells = {(g["modality"], g["init"]): g for g in result["groups"] if g["dataset"] == name}
    gains = {(d["modality"], d["init"]): d for d in result["gains"] if d["dataset"] == name}
    inits = dataset["inits"]
    others = [i for i in inits if i != "scratch"] if "scratch" in inits else []
    rows = []
    for modality in dataset["modalities"]:
        scores = [map_cell(cells[(modality, i)]) if (modality, i) in cells else DASH for i in inits]
        deltas = [points_cell(gains.get((modality, init)), "delta") for init in others]
        rows.append((modality, *scores, *deltas))
    caption = (
        f"Table {number}. {name}: summary per modality. mAP [%] of each init on the {dataset['split']} split "
        f"({metric_phrase(dataset)}), mean ± sample standard deviation over seeds ({DASH} when n = 1)"
        + (", then Δ = mAP(init) − mAP(scratch) of each pretrained init, in points from the unrounded means"
           if others else "")
        + f"; {DASH} = no such runs.{_interval_phrase(result, dataset)}"
    )  # fmt: skip
    header = ("modality", *inits, *(f"Δ {i}" for i in others))
    return Table(caption, header, "l" + "r" * (len(inits) + len(others)), tuple(rows))


# --------------------------------------------------------------------------- renderers


def _markdown_table(table: Table) -> list[str]:
    lines = [table.caption, ""]
    if not table.rows:
        return lines
    rule = ["---:" if a == "r" else "---" for a in table.align]
    for row in (table.header, rule, *table.rows):
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    return lines


def render_markdown(
    result: dict[str, Any], *, chart_name: str | None = None, json_name: str | None = None
) -> str:
    """The whole comparison as a Markdown document (one section per dataset)."""
    num_runs, num_groups = len(result["runs"]), len(result["groups"])
    lines = ["# Scratch vs pretrained initialisation", ""]
    intro = f"{num_runs} runs in {num_groups} groups (dataset × modality × init)."
    if json_name:
        intro += f" Exact values: `{json_name}`."
    lines += [intro, ""]
    note = skipped_note(result.get("skipped", []))
    if note:
        lines += [note, ""]
    if chart_name:
        lines += [f"![mAP per modality and init]({chart_name})", ""]
    number = 1
    for dataset in result["datasets"]:
        lines += [f"## {dataset['name']}", ""]
        tables = dataset_tables(result, dataset, number)
        number += len(tables)
        for table in tables:
            lines += _markdown_table(table)
    return "\n".join(lines).rstrip("\n") + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "—": "---", "–": "--", "Δ": r"$\Delta$", "−": r"$-$", "×": r"$\times$", "`": "",
}  # fmt: skip


def latex_escape(text: str) -> str:
    """Plain text (with ±, Δ, −, ×, —) → LaTeX text-mode source."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def render_latex(result: dict[str, Any]) -> str:
    """Every table as a LaTeX ``table`` float (booktabs rules; needs ``\\usepackage{booktabs}``)."""
    lines = ["% Scratch vs pretrained initialisation (dsod-depth compare); needs \\usepackage{booktabs}", ""]
    number = 1
    for dataset in result["datasets"]:
        tables = dataset_tables(result, dataset, number)
        number += len(tables)
        for table in tables:
            caption = table.caption.split(". ", 1)[1]  # LaTeX numbers the tables itself
            lines += ["\\begin{table}[t]", "\\centering", f"\\caption{{{latex_escape(caption)}}}"]
            if table.rows:
                lines += [f"\\begin{{tabular}}{{{table.align}}}", "\\toprule"]
                lines.append(" & ".join(latex_escape(c) for c in table.header) + r" \\")
                lines.append("\\midrule")
                lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in table.rows]
                lines += ["\\bottomrule", "\\end{tabular}"]
            lines += ["\\end{table}", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def render_csv(result: dict[str, Any]) -> str:
    """One row per (dataset, modality, init): the numbers of all tables (percent / points, one decimal)."""
    gains = {(d["dataset"], d["modality"], d["init"]): d for d in result["gains"]}
    mismatch = {(m["dataset"], m["modality"], m["init"]): m for m in result["mismatch"]}
    classes = list(dict.fromkeys(c for d in result["datasets"] for c in d["classes"]))
    metric = {d["name"]: d["metric"] for d in result["datasets"]}

    def num(value: float | None) -> str:  # an empty cell for "—"; never "-0.0"
        text = pct(value, decimals=1, missing="")
        return "0.0" if text == "-0.0" else text

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([
        "dataset", "modality", "init", "model", "n", "seeds", "metric", "map_pct", "std_pct",
        "map_lo_pct", "map_hi_pct", "delta_vs_scratch_pts", "delta_lo_pts", "delta_hi_pts", "mismatch_pts",
        "mismatch_lo_pts", "mismatch_hi_pts", "iters", "effective_batch", "images",
        *(f"AP {c}" for c in classes),
    ])  # fmt: skip
    for g in result["groups"]:
        key = (g["dataset"], g["modality"], g["init"])
        gain, figure = gains.get(key, {}), mismatch.get(key, {})
        per_class = [num(g["ap_per_class"][c]["mean"]) if c in g["ap_per_class"] else "" for c in classes]
        writer.writerow([
            g["dataset"], g["modality"], g["init"], g["model"], g["n"], " ".join(map(str, g["seeds"])),
            metric[g["dataset"]], num(g["map_mean"]), num(g["map_std"]), num(g.get("map_lo")),
            num(g.get("map_hi")), num(gain.get("delta")), num(gain.get("delta_lo")),
            num(gain.get("delta_hi")), num(figure.get("mismatch")), num(figure.get("mismatch_lo")),
            num(figure.get("mismatch_hi")), g["iters"], g["effective_batch"],
            g["iters"] * g["effective_batch"], *per_class,
        ])  # fmt: skip
    return out.getvalue()


# --------------------------------------------------------------------------- files


def write_tables(result: dict[str, Any], out_md: str | Path, *, chart: bool = True) -> dict[str, Path]:
    """Write ``out_md`` (Markdown) and beside it, with the same stem, ``.csv``, ``.tex``, ``.json``
    (the exact result) and ``.png`` (the bar chart, unless ``chart`` is False).

    Returns {"md", "csv", "tex", "json", "png"} → paths. Each file is written atomically.
    """
    from dsod_depth.evaluation import write_json_atomic

    out_md = Path(out_md)
    if out_md.suffix != ".md":
        raise KitError(
            f"--out {out_md}: name a Markdown file ending in .md (CSV, LaTeX, JSON, PNG go beside it)"
        )
    paths = {kind: out_md.with_suffix(f".{kind}") for kind in ("md", "csv", "tex", "json", "png")}
    if chart:
        from dsod_depth.viz.comparison import draw_bar_chart

        phrases = {d["name"]: metric_phrase(d) for d in result["datasets"]}
        with atomic_output(paths["png"]) as tmp:
            draw_bar_chart(result, tmp, metric_phrases=phrases)
    else:
        del paths["png"]
    write_json_atomic(paths["json"], result)
    write_text_atomic(paths["csv"], render_csv(result))
    write_text_atomic(paths["tex"], render_latex(result))
    markdown = render_markdown(
        result, chart_name=paths["png"].name if chart else None, json_name=paths["json"].name
    )
    write_text_atomic(paths["md"], markdown)
    return paths
