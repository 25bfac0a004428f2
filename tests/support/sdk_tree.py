"""Every public method reachable from an SDK client: resources, sub-resources and their response forms."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["FORMS", "method_paths", "resolve"]

FORMS = ("with_raw_response", "with_streaming_response")


def _is_resource(value: Any, package: str) -> bool:
    """An SDK resource (or a response-form view of one)."""
    if type(value).__module__.split(".", 1)[0] != package:
        return False
    if type(value).__name__.endswith(("WithRawResponse", "WithStreamingResponse")):
        return True
    return any(c.__name__ in ("SyncAPIResource", "AsyncAPIResource") for c in type(value).__mro__)


def method_paths(client: Any) -> list[str]:
    """Dotted paths of every public method reachable from `client` (``chat.completions.with_raw_response.create``).

    Response forms are walked once per level (a form of a form does not exist in the SDKs).
    """
    package = type(client).__module__.split(".", 1)[0]
    return sorted(set(_walk(client, "", package, in_form=False, depth=0)))


def _walk(obj: Any, prefix: str, package: str, *, in_form: bool, depth: int) -> Iterator[str]:
    if depth > 12:  # the SDK trees are ~6 deep: a cycle would be a walker bug
        raise AssertionError(f"resource tree deeper than expected at {prefix}")
    names = {n for n in [*dir(type(obj)), *vars(obj)] if not n.startswith("_")}
    for name in sorted(names):
        if in_form and name in FORMS:
            continue
        try:
            value = getattr(obj, name)
        except Exception:  # a property that needs state the client lacks
            continue
        path = prefix + name
        if _is_resource(value, package):
            yield from _walk(value, path + ".", package, in_form=in_form or name in FORMS, depth=depth + 1)
        elif callable(value) and not isinstance(value, type) and prefix:
            yield path


def resolve(client: Any, path: str) -> Any:
    """The attribute at dotted `path` from `client`."""
    value = client
    for name in path.split("."):
        value = getattr(value, name)
    return value
