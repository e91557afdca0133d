"""Figures of a trained run: detections on RGB / depth / HHA, PR and training curves, a 3D view.

* :func:`visualize_run` — everything for a run directory, plus ``figures/report.md`` (what
  ``dsod-depth visualize`` calls).
* :mod:`~dsod_depth.viz.detections`, :mod:`~dsod_depth.viz.curves`, :mod:`~dsod_depth.viz.cloud`,
  :mod:`~dsod_depth.viz.report` — the pieces, usable on their own.

All figures are matplotlib ``Figure`` objects on the Agg canvas (no display, no pyplot state) saved at
a fixed DPI, so each PNG's size in pixels is known in advance.
"""

from dsod_depth.viz.run import RunEvaluation, VisualizationResult, load_run, visualize_run
from dsod_depth.viz.style import DPI, class_colors

__all__ = ["DPI", "RunEvaluation", "VisualizationResult", "class_colors", "load_run", "visualize_run"]
