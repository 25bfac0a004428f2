"""The entry codec: how values, streams and vectors become the bytes a store holds (never pickle)."""
