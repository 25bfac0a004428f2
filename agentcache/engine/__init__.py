"""The cache engine: settings, stores, the miss flow and its drivers, invalidation and per-call control."""
