from edgecam.cli import main

raise SystemExit(main())
