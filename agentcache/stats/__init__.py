"""Counters per cached function, the report `agentcache.stats()` prints, and the shared totals kept in stores."""
