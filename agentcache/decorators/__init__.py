"""The cache decorators."""

from agentcache.decorators._options import CacheDecorator, CacheOptions
from agentcache.decorators.response import TRANSPORT_FIELDS, response_cached
from agentcache.decorators.tool import tool_cached

__all__ = ["TRANSPORT_FIELDS", "CacheDecorator", "CacheOptions", "response_cached", "tool_cached"]
