"""`python -m agentcache`: the command line (see `agentcache.cli.main`)."""

from agentcache.cli.main import main

raise SystemExit(main())
