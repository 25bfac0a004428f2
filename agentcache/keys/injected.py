"""Framework context arguments that never belong in a cache key.

Agent frameworks inject a context object into the tools they call: MCP's ``Context``, LangChain's
``ToolRuntime``, LangGraph's ``Runtime``, Pydantic AI's ``RunContext``, the OpenAI Agents SDK's
``RunContextWrapper`` (and its ``ToolContext``). Each is new on every call and holds live state (a session, a
request, the run's usage), so it can never be part of a key: left in, the key would either change on every call or
(for objects whose encoding drops that state) be a constant. agentcache leaves such a parameter out of the key,
found by its annotation when the function is decorated and by the type of the value on the first call of each call
shape. A tool whose result depends on what it reads from the context (the caller, the graph state) must say so
with ``key=`` or ``namespace=``.

The frameworks are never imported here: a class is recognised by its name and the top-level package that defines it
(an object of a class whose module was never imported cannot exist).
"""

from __future__ import annotations

from collections.abc import Callable

from .signature import EMPTY, parameters

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .signature import Parameter

__all__ = ["KNOWN_CONTEXT_TYPES", "injected_parameters", "is_injected_context"]

KNOWN_CONTEXT_TYPES: frozenset[tuple[str, str]] = frozenset(
    {
        ("mcp", "Context"),  # mcp 1.x FastMCP, 2.x MCPServer and the low-level server context
        ("fastmcp", "Context"),
        ("langgraph", "ToolRuntime"),  # re-exported as langchain.tools.ToolRuntime
        ("langchain_core", "_DirectlyInjectedToolArg"),  # the base LangChain injects tool arguments of by type
        ("langgraph", "Runtime"),
        ("pydantic_ai", "RunContext"),
        ("agents", "RunContextWrapper"),  # and its subclasses ToolContext, AgentHookContext
    }
)
"""``(top-level package, class name)`` of the context classes left out of keys (subclasses included)."""

_seen: dict[type, bool] = {}


def _is_context_class(cls: type) -> bool:
    found = _seen.get(cls)
    if found is None:
        found = any(
            (getattr(k, "__module__", "").partition(".")[0], k.__qualname__) in KNOWN_CONTEXT_TYPES
            for k in getattr(cls, "__mro__", ())
        )
        if len(_seen) >= 4096:  # classes made at run time: bounded, recomputing is cheap
            _seen.clear()
        _seen[cls] = found
    return found


def is_injected_context(value: object) -> bool:
    """Whether `value` is one of the framework context objects (see `KNOWN_CONTEXT_TYPES`)."""
    t = type(value)
    if t is str or t is int or t is float or t is bool or t is dict or t is list or value is None:
        return False
    return _is_context_class(t)


def injected_parameters(func: Callable[..., Any], params: tuple[Parameter, ...] | None = None) -> frozenset[str]:
    """The parameters of `func` (`params`, when already read) annotated with a framework context type
    (``ctx: Context``, ``runtime: ToolRuntime[Ctx]``, ``ctx: RunContext[Deps] | None``, string annotations
    included)."""
    if params is None:
        try:
            params = parameters(func)
        except (TypeError, ValueError):
            return frozenset()
    notes = [(name, note) for name, _, _, note in params if note is not EMPTY]
    if not notes:
        return frozenset()
    target = func
    if hasattr(func, "__wrapped__"):
        import inspect

        target = inspect.unwrap(func)
    namespace = getattr(target, "__globals__", None) or {}
    return frozenset(name for name, note in notes if _annotates_context(note, namespace, 0))


def _annotates_context(annotation: Any, namespace: dict[str, Any], depth: int) -> bool:
    if annotation is EMPTY or depth > 8:
        return False
    if isinstance(annotation, str):
        return _annotates_context(_resolve(annotation, namespace), namespace, depth + 1)
    if isinstance(annotation, type):
        return _is_context_class(annotation)
    import typing  # here: a plain class annotation (the common case) needs none of it (#13)

    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _annotates_context(typing.get_args(annotation)[0], namespace, depth + 1)
    if isinstance(origin, type) and _is_context_class(origin):
        return True  # RunContext[Deps], ToolRuntime[Ctx, State]
    if origin is typing.Union or type(annotation).__name__ == "UnionType":  # Optional[Context], Context | None
        return any(_annotates_context(a, namespace, depth + 1) for a in typing.get_args(annotation))
    return False


def _resolve(text: str, namespace: dict[str, Any]) -> Any:
    """What a string annotation names, without evaluating it: ``"Context"``, ``"RunContext[Deps]"``,
    ``"mcp.Context"``, ``"Context | None"`` (each alternative), ``"Annotated[Context, ...]"``."""
    text = text.strip().strip("'\"")
    if text.startswith(("Annotated[", "typing.Annotated[")):
        text = text.partition("[")[2].partition(",")[0]
    if text.startswith(("Optional[", "typing.Optional[")):
        text = text.partition("[")[2].removesuffix("]")
    alternatives = _top_level_alternatives(text)
    for alt in alternatives:
        head = alt.partition("[")[0].strip()
        obj: Any = namespace.get(head.partition(".")[0]) if head else None
        for part in head.split(".")[1:]:
            obj = getattr(obj, part, None)
        if isinstance(obj, type) and _is_context_class(obj):
            return obj
    return EMPTY


def _top_level_alternatives(text: str) -> list[str]:
    """``"A[x | y] | None"`` -> ``["A[x | y]", "None"]``: the ``|`` alternatives outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts
