from dsod_depth.cli import main

raise SystemExit(main())
