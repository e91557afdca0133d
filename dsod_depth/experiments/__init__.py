"""Experiments: matrices of runs (``sweep``) and the scratch-vs-pretrained comparison (``compare``).

* :func:`run_sweep` — run a dataset × modality × init × seed matrix, skipping finished runs and
  resuming interrupted ones (:mod:`.sweep`, matrix format in :mod:`.matrix`);
* :func:`compare_runs` — group finished runs over seeds, pretraining gains and domain mismatch
  (:mod:`.compare`); :func:`write_tables` — Markdown, CSV, LaTeX, JSON and a bar chart (:mod:`.tables`;
  the chart is drawn by :mod:`dsod_depth.viz.comparison`).

Names load on first use (PEP 562), so importing the package pulls in neither torch nor matplotlib.
"""

from __future__ import annotations

from dsod_depth.lazy import lazy_exports

_LAZY = {
    "Matrix": "dsod_depth.experiments.matrix",
    "RunSpec": "dsod_depth.experiments.matrix",
    "load_matrix": "dsod_depth.experiments.matrix",
    "matrix_from_dict": "dsod_depth.experiments.matrix",
    "run_sweep": "dsod_depth.experiments.sweep",
    "run_state": "dsod_depth.experiments.sweep",
    "SweepResult": "dsod_depth.experiments.sweep",
    "compare_runs": "dsod_depth.experiments.compare",
    "find_run_dirs": "dsod_depth.experiments.compare",
    "write_tables": "dsod_depth.experiments.tables",
    "render_markdown": "dsod_depth.experiments.tables",
}

__all__ = list(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
