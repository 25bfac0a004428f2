"""The cache decorators."""

from ._options import CacheDecorator, CacheOptions
from .response import TRANSPORT_FIELDS, response_cached
from .tool import tool_cached

__all__ = ["TRANSPORT_FIELDS", "CacheDecorator", "CacheOptions", "response_cached", "tool_cached"]
