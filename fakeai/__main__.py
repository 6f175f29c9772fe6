from fakeai.cli import main

raise SystemExit(main())
