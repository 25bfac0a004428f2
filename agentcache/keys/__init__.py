"""Cache keys: canonical encoding of call arguments, digests, namespaces and function identity.

Imports only `agentcache.errors`, the codec's type registry (`agentcache.codec.types`, shared with value encoding
and the CLI) and the standard library (checked by the import contracts in pyproject.toml).
"""
