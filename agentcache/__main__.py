"""`python -m agentcache`: the command line (see `agentcache.cli`)."""

from agentcache.cli import main

raise SystemExit(main())
