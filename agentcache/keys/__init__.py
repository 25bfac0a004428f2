"""Cache keys: canonical encoding of call arguments, digests, namespaces and function identity.

Imports only `agentcache.errors` and the standard library (checked by the import contract in pyproject.toml).
"""
