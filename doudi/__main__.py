from doudi.cli import main

raise SystemExit(main())
