"""Shared look of the figures: one DPI, pixel-exact figure sizes, class colours, atomic PNG writes.

Figures are built on :class:`matplotlib.figure.Figure` with the Agg canvas, never through pyplot's
global state, so library code leaves no open figures behind and works without a display. Sizes are
given in whole pixels and the DPI is fixed, so a saved PNG is exactly ``width_px`` × ``height_px``
(no ``bbox_inches="tight"``, which would crop to the content and make sizes unpredictable).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dsod_depth.fileio import atomic_output

__all__ = ["DPI", "atomic_output", "class_colors", "new_figure", "readable_text_color", "save_figure"]

DPI = 100  # pixels per inch of every saved figure; 1 pt of text = DPI / 72 pixels


def new_figure(width_px: int, height_px: int) -> Figure:
    """A figure of exactly ``width_px`` × ``height_px`` pixels at :data:`DPI`, on an Agg canvas."""
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    FigureCanvasAgg(fig)  # attaches itself to the figure; needed for text extents and savefig
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as a PNG of exactly its pixel size at :data:`DPI`, atomically
    (:func:`atomic_output`). Returns the path."""
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def class_colors(num_classes: int) -> np.ndarray:
    """One distinct colour per class, the same in every figure: float64 [K, 3] RGB in [0, 1].

    Up to 10 classes: matplotlib's ``tab10``; up to 20: ``tab10`` then the light half of ``tab20``
    (tab20 alternates dark/light pairs, so taking it in order would put near-identical colours on
    neighbouring classes); beyond 20 (COCO): evenly spaced hues of ``hsv``.
    """
    from matplotlib import colormaps

    if num_classes <= 20:
        dark = colormaps["tab10"](np.arange(10))[:, :3]  # [10, 3]
        light = colormaps["tab20"](np.arange(1, 20, 2))[:, :3]  # [10, 3], the light member of each pair
        return np.concatenate([dark, light])[:num_classes].astype(np.float64)
    return colormaps["hsv"](np.arange(num_classes) / num_classes)[:, :3].astype(np.float64)


def readable_text_color(rgb: np.ndarray) -> str:
    """``"black"`` or ``"white"``, whichever reads better on the background colour ``rgb`` (float [3]
    in [0, 1]), by the Rec. 709 relative luminance."""
    luminance = float(np.dot(np.asarray(rgb, dtype=np.float64)[:3], (0.2126, 0.7152, 0.0722)))
    return "black" if luminance > 0.5 else "white"
