"""`python -m agi_server` is the same as the `didrouter` command."""

from agi_server.cli import main

raise SystemExit(main())
