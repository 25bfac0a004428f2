"""The `agentcache` command line: stats, inspect, clear, eval."""

from agentcache.cli.main import main

__all__ = ["main"]
