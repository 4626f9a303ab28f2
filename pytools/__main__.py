from pytools.cli import main

raise SystemExit(main())
