"""A tiny VOCdevkit (VOC2007 trainval/test + VOC2012 trainval) in the official layout.

Annotations follow the devkit's XML: ``<size>``, one ``<object>`` per box with ``<name>``,
``<difficult>`` (missing in some VOC2012 files), ``<truncated>`` and a ``<bndbox>`` of 1-based
inclusive pixel indices (VOC2012 has a few written as decimals). One VOC2012 image has inverted
boxes (xmin > xmax, ymin > ymax), which are dropped, beside a valid box and a one-pixel box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class VocSpec:
    year: str
    stem: str
    width: int
    height: int
    objects: list[tuple[str, tuple[float, float, float, float], int | None]]  # name, 1-based box, difficult


SPECS = [
    VocSpec("2007", "000005", 50, 40, [("chair", (1, 1, 10, 20), 0), ("chair", (20, 5, 50, 40), 1)]),
    VocSpec("2007", "000007", 45, 30, [("car", (3, 4, 30, 25), 0)]),
    VocSpec("2007", "000001", 40, 50, [("dog", (5, 6, 40, 50), 0), ("person", (2, 2, 3, 3), 0)]),
    VocSpec("2007", "000004", 36, 36, [("tvmonitor", (10, 10, 20, 20), 1)]),
    VocSpec("2012", "2008_000002", 60, 40, [("sofa", (1.0, 2.5, 59.0, 40.0), None)]),
    VocSpec("2012", "2008_000003", 30, 20, [("bottle", (4, 4, 8, 18), 0), ("train", (1, 1, 30, 20), 0)]),
    VocSpec("2012", "2008_000004", 40, 30, [
        ("cat", (20, 5, 10, 25), 0),  # xmin > xmax: dropped
        ("dog", (2, 3, 12, 20), 0),
        ("bird", (7, 8, 7, 8), 0),  # xmin = xmax, ymin = ymax: one pixel, kept
        ("person", (3, 20, 9, 19), 1),  # ymin > ymax: dropped
    ]),
]  # fmt: skip
SETS = {("2007", "trainval"): ["000005", "000007"], ("2007", "test"): ["000001", "000004"],
        ("2012", "trainval"): ["2008_000002", "2008_000003", "2008_000004"]}  # fmt: skip


def _xml(spec: VocSpec) -> str:
    objects = []
    for name, (x1, y1, x2, y2), difficult in spec.objects:
        flag = "" if difficult is None else f"<difficult>{difficult}</difficult>"
        objects.append(
            f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>{flag}"
            f"<bndbox><xmin>{x1:g}</xmin><ymin>{y1:g}</ymin><xmax>{x2:g}</xmax><ymax>{y2:g}</ymax></bndbox></object>"
        )
    return (
        f"<annotation><folder>VOC{spec.year}</folder><filename>{spec.stem}.jpg</filename>"
        f"<size><width>{spec.width}</width><height>{spec.height}</height><depth>3</depth></size>"
        f"<segmented>0</segmented>{''.join(objects)}</annotation>\n"
    )


def build_devkit(root: Path, seed: int = 0) -> Path:
    """Write the devkit under ``root/VOCdevkit`` and return that folder."""
    rng = np.random.default_rng(seed)
    devkit = root / "VOCdevkit"
    for spec in SPECS:
        base = devkit / f"VOC{spec.year}"
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "Annotations" / f"{spec.stem}.xml").write_text(_xml(spec))
        rgb = rng.integers(0, 256, size=(spec.height, spec.width, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(base / "JPEGImages" / f"{spec.stem}.jpg", quality=95)
    for (year, name), stems in SETS.items():
        # Main/<class>_<set>.txt files also exist in the devkit; only <set>.txt lists the images.
        (devkit / f"VOC{year}" / "ImageSets" / "Main" / f"{name}.txt").write_text("\n".join(stems) + "\n")
    return devkit


def inverted(spec: VocSpec) -> list[int]:
    """Indices of the objects whose box is inverted (xmin > xmax or ymin > ymax): the dropped ones."""
    return [i for i, (_, (x1, y1, x2, y2), _) in enumerate(spec.objects) if x1 > x2 or y1 > y2]


def expected(spec: VocSpec) -> list[tuple[list[float], str, bool]]:
    """(continuous box, class, difficult) per kept object: (xmin - 1, ymin - 1, xmax, ymax)."""
    dropped = inverted(spec)
    return [([x1 - 1.0, y1 - 1.0, float(x2), float(y2)], name, bool(d))
            for i, (name, (x1, y1, x2, y2), d) in enumerate(spec.objects) if i not in dropped]  # fmt: skip
