"""The summary that ``dsod-depth prepare`` prints for a real dataset: frames and boxes per class.

Counts are read back from the written store (its small tables only, no pixels), so the summary
describes exactly what training and evaluation will see, also after a resumed preparation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["store_counts", "format_summary", "print_summary"]


def store_counts(files: Mapping[str, Path]) -> dict[str, dict]:
    """split → {"frames": int, "boxes": int [K] per class, "difficult": int [K], "class_names": list}."""
    from dsod_depth.data.store import PreparedSplit

    counts = {}
    for split, path in files.items():
        data = PreparedSplit(path, split)
        num_classes = len(data.class_names)
        counts[split] = {
            "frames": len(data),
            "boxes": np.bincount(data.labels, minlength=num_classes),
            "difficult": np.bincount(data.labels[data.difficult], minlength=num_classes),
            "class_names": list(data.class_names),
        }
    return counts


def format_summary(counts: Mapping[str, dict], skipped: Mapping[str, int] | None = None) -> str:
    """A plain-text table: one column per split, one row per class, then frames and skipped items.

    ``skipped``: reason → count (e.g. malformed SUN RGB-D frames), printed below the table.
    Difficult boxes are counted in the totals and shown in parentheses.
    """
    splits = list(counts)
    names = counts[splits[0]]["class_names"]
    width = max(12, *(len(n) for n in names))
    lines = [f"{'class':<{width}}" + "".join(f"{s:>14}" for s in splits)]

    def cell(c: dict, k: int | None) -> str:
        boxes = int(c["boxes"].sum() if k is None else c["boxes"][k])
        hard = int(c["difficult"].sum() if k is None else c["difficult"][k])
        return f"{boxes} ({hard})" if hard else str(boxes)

    for k, name in enumerate(names):
        lines.append(f"{name:<{width}}" + "".join(f"{cell(counts[s], k):>14}" for s in splits))
    lines.append(f"{'all boxes':<{width}}" + "".join(f"{cell(counts[s], None):>14}" for s in splits))
    lines.append(f"{'frames':<{width}}" + "".join(f"{counts[s]['frames']:>14}" for s in splits))
    if any(int(c["difficult"].sum()) for c in counts.values()):
        lines.append("(n) = of which difficult")
    for reason, n in (skipped or {}).items():
        lines.append(f"skipped: {n} {reason}")
    return "\n".join(lines)


def print_summary(files: Mapping[str, Path], skipped: Mapping[str, int] | None = None) -> None:
    """Print :func:`format_summary` of a written store."""
    print(format_summary(store_counts(files), skipped))
