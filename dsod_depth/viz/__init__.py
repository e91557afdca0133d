"""Figures of a trained run: detections on RGB / depth / HHA, PR and training curves, a 3D view.

* :func:`visualize_run` — everything for a run directory, plus ``figures/report.md`` (what
  ``dsod-depth visualize`` calls).
* :mod:`~dsod_depth.viz.detections`, :mod:`~dsod_depth.viz.curves`, :mod:`~dsod_depth.viz.cloud`,
  :mod:`~dsod_depth.viz.report`, :mod:`~dsod_depth.viz.comparison` (the scratch-vs-pretrained bar
  chart) — the pieces, usable on their own.

All figures are matplotlib ``Figure`` objects on the Agg canvas (no display, no pyplot state) saved at
a fixed DPI, so each PNG's size in pixels is known in advance.

Names load on first use (PEP 562): importing the package pulls in neither matplotlib nor torch.
"""

from __future__ import annotations

from dsod_depth.lazy import lazy_exports

_LAZY = {
    "RunEvaluation": "dsod_depth.viz.run",
    "VisualizationResult": "dsod_depth.viz.run",
    "load_run": "dsod_depth.viz.run",
    "visualize_run": "dsod_depth.viz.run",
    "DPI": "dsod_depth.viz.style",
    "class_colors": "dsod_depth.viz.style",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
