from wsss_stages.cli import main

raise SystemExit(main())
