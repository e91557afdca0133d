"""Bar chart of a comparison: mAP per modality × init, mean over seeds, seeds as dots; error bars are
the 95 % bootstrap intervals where the comparison has them, else the sample std over seeds.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no global state). The
result comes from :func:`dsod_depth.experiments.compare.compare_runs`; the words naming each dataset's
metric come with it from the caller (:func:`dsod_depth.experiments.naming.metric_phrase`), so that this
module needs nothing from ``experiments``. Sized in inches at its own DPI, unlike the run figures of
:mod:`.style`: the panel width follows the number of bars.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["bar_chart_figure", "draw_bar_chart"]


def draw_bar_chart(
    result: dict[str, Any], path: str | Path, *, metric_phrases: Mapping[str, str], dpi: int = 120
) -> Path:
    """Write :func:`bar_chart_figure` as a PNG at ``dpi``. Returns ``path``."""
    path = Path(path)
    bar_chart_figure(result, metric_phrases=metric_phrases).savefig(path, dpi=dpi, format="png")
    return path


def _error_bar(group: dict[str, Any]) -> tuple[float, float]:
    """(below, above) the mean in percent: to the ends of the group's bootstrap interval when it has
    one (clipped at the mean: a percentile interval need not contain it), else ± the sample std."""
    mean = group["map_mean"]
    if group.get("map_lo") is not None:
        return 100.0 * max(0.0, mean - group["map_lo"]), 100.0 * max(0.0, group["map_hi"] - mean)
    std = 100.0 * (group["map_std"] or 0.0)
    return std, std


def bar_chart_figure(result: dict[str, Any], *, metric_phrases: Mapping[str, str]) -> Figure:
    """A matplotlib ``Figure`` with one panel per dataset: x = modality, one bar per init (height =
    mean mAP in percent; error bar = the 95 % bootstrap interval of the group when the comparison has
    intervals for that dataset, else the sample std over seeds, none for one seed), each seed's mAP as
    a black dot, the mean printed above its bar. ``metric_phrases`` maps each dataset's name to the
    words naming its metric, shown on the y axis. Each axes holds one bar patch per group."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    datasets = result["datasets"]
    # Panel width grows with the number of bars so that labels stay readable.
    widths = [max(4.5, 1.0 + 0.55 * len(d["modalities"]) * len(d["inits"])) for d in datasets]
    fig = Figure(figsize=(sum(widths), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(datasets), squeeze=False, width_ratios=widths)[0]
    colours = [f"C{i}" for i in range(10)]
    for ax, dataset in zip(axes, datasets):
        cells = {(g["modality"], g["init"]): g for g in result["groups"] if g["dataset"] == dataset["name"]}
        modalities, inits = dataset["modalities"], dataset["inits"]
        bar_width = 0.8 / len(inits)
        top = 0.0
        for j, init in enumerate(inits):
            xs, means, below, above, dots_x, dots_y = [], [], [], [], [], []
            for i, modality in enumerate(modalities):
                group = cells.get((modality, init))
                if group is None:
                    continue
                x = i - 0.4 + bar_width * (j + 0.5)
                low, high = _error_bar(group)
                seeds = [100.0 * v for v in group["map_values"]]
                xs.append(x)
                means.append(100.0 * group["map_mean"])
                below.append(low)
                above.append(high)
                dots_x += [x] * group["n"]
                dots_y += seeds
                # The mean is printed above the error bar and the highest seed, never on top of them.
                label_y = max(means[-1] + high, *seeds)
                ax.annotate(f"{means[-1]:.1f}", (x, label_y), xytext=(0, 3), textcoords="offset points",
                            ha="center", va="bottom", fontsize=7)  # fmt: skip
                top = max(top, label_y)
            ax.bar(xs, means, bar_width * 0.92, yerr=[below, above], capsize=3, color=colours[j % 10],
                   label=init, error_kw={"elinewidth": 1.0})  # fmt: skip
            ax.scatter(dots_x, dots_y, s=9, color="black", zorder=3, label="seeds" if j == 0 else None)
        ax.set_xticks(np.arange(len(modalities)), modalities)
        ax.set_xlim(-0.6, len(modalities) - 0.4)
        ax.set_ylim(0.0, min(100.0, top * 1.18 + 2.0))
        ax.set_xlabel("modality")
        ax.set_ylabel(f"mAP [%] ({metric_phrases[dataset['name']]})")
        spread = "mean, 95 % bootstrap interval" if dataset.get("intervals") else "mean ± std over seeds"
        ax.set_title(f"{dataset['name']}: {spread}")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        # Under the panel, so that it never hides a bar.
        ax.legend(title="init", fontsize=8, title_fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16),
                  ncols=len(inits) + 1, frameon=False)  # fmt: skip
    return fig
