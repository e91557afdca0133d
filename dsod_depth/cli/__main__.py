"""``python -m dsod_depth.cli``: the same as ``dsod-depth``."""

from dsod_depth.cli import main

raise SystemExit(main())
