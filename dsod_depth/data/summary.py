"""What a preparation reports, and the summary ``dsod-depth prepare`` prints of it.

Every ``prepare_<dataset>`` function returns a :class:`PrepareReport`: the files it wrote and what
it left out (annotations dropped from kept frames, frames skipped, frames listed by the split
definition), plus notes. :func:`format_summary` turns it into the printed table: frames and boxes
per class, read back from the written store (its small tables only, no pixels) by
:func:`store_counts`, so the summary describes exactly what training and evaluation will see, also
after a resumed preparation; what was left out and the notes follow below the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["Dropped", "PrepareReport", "store_counts", "format_summary"]

# Skipped frames named in the printed summary; the rest are only counted (each has its warning).
MAX_NAMED_FRAMES = 20


class Dropped(NamedTuple):
    """An annotation left out of a frame that is kept: its 0-based index in the file's list (a
    polygon, an object), the reason (the key it is counted under) and what was seen, for the warning."""

    index: int
    reason: str
    detail: str


@dataclass
class PrepareReport:
    """What a preparation wrote, kept and left out; all but ``files`` is printed below the table by
    :func:`format_summary`.

    files: split → the written store file (``<out>/<split>.h5``), in split order;
    listed: split → frames its split definition lists (the table's ``frames`` row counts those kept);
    dropped: what (``"polygons"``, ...) → reason → count of annotations left out of kept frames;
    skipped: reason → count of frames or frame folders left out;
    skipped_frames: one line per skipped frame, naming its file and the reason;
    notes: further lines for the reader, e.g. the most frequent names outside the classes.
    """

    files: dict[str, Path] = field(default_factory=dict)
    listed: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_frames: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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


def format_summary(counts: Mapping[str, dict], report: PrepareReport | None = None) -> str:
    """A plain-text table: one column per split, one row per class, then frames; below it, what
    ``report`` says was left out (dropped annotations by reason, skipped frames with their names)
    and its notes.

    Difficult boxes are counted in the totals and shown in parentheses.
    """
    report = report or PrepareReport()
    splits = list(counts)
    names = counts[splits[0]]["class_names"]
    width = max(12, *(len(n) for n in names), len("frames listed") if report.listed else 0)
    lines = [f"{'class':<{width}}" + "".join(f"{s:>14}" for s in splits)]

    def cell(c: dict, k: int | None) -> str:
        boxes = int(c["boxes"].sum() if k is None else c["boxes"][k])
        hard = int(c["difficult"].sum() if k is None else c["difficult"][k])
        return f"{boxes} ({hard})" if hard else str(boxes)

    for k, name in enumerate(names):
        lines.append(f"{name:<{width}}" + "".join(f"{cell(counts[s], k):>14}" for s in splits))
    lines.append(f"{'all boxes':<{width}}" + "".join(f"{cell(counts[s], None):>14}" for s in splits))
    lines.append(f"{'frames':<{width}}" + "".join(f"{counts[s]['frames']:>14}" for s in splits))
    if report.listed:
        listed = (report.listed.get(s, "-") for s in splits)
        lines.append(f"{'frames listed':<{width}}" + "".join(f"{n:>14}" for n in listed))
    if any(int(c["difficult"].sum()) for c in counts.values()):
        lines.append("(n) = of which difficult")
    for what, reasons in report.dropped.items():
        by_count = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        detail = f" ({', '.join(f'{n} {reason}' for reason, n in by_count)})" if by_count else ""
        lines.append(f"dropped {what}: {sum(reasons.values())}{detail}")
    for reason, n in report.skipped.items():
        lines.append(f"skipped: {n} {reason}")
    lines.extend(f"skipped frame: {name}" for name in report.skipped_frames[:MAX_NAMED_FRAMES])
    if len(report.skipped_frames) > MAX_NAMED_FRAMES:
        more = len(report.skipped_frames) - MAX_NAMED_FRAMES
        lines.append(f"skipped frame: ... and {more} more, each named in a warning")
    lines.extend(report.notes)
    return "\n".join(lines)
