"""Test helpers shared by the suites (servers started by the tests, backend factories)."""
