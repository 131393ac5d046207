from doudi.cli.main import main

raise SystemExit(main())
