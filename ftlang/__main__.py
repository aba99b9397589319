from ftlang.cli import main

raise SystemExit(main())
