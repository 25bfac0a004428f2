"""Single-flight: concurrent misses of one key compute once, in threads and in asyncio tasks.

The first caller of a missing key leads the computation; the others wait for its outcome. A flight belongs to an
invalidation epoch (see `agentcache.engine.cache.Cache.epoch_of`): a caller that starts after an invalidation
covering the key never joins a computation that began before it.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any, TypeVar

    T = TypeVar("T")

__all__ = ["OVERTAKEN", "Flights"]


_ABANDONED: Any = object()
OVERTAKEN: Any = object()
"""In place of a miss's entry bytes: its write was refused because an invalidation overtook the computation.
Callers that waited for that computation run the call again instead of taking its (possibly old) result."""


def _overtaken(outcome: Any) -> bool:
    """Whether a flight's outcome is a miss whose write an invalidation refused (see `OVERTAKEN`)."""
    return type(outcome) is tuple and len(outcome) > 1 and outcome[1] is OVERTAKEN


class _Flight:
    """A computation in progress that concurrent callers of the same key wait for (threads)."""

    __slots__ = ("epoch", "error", "event", "outcome")

    def __init__(self, epoch: int) -> None:
        self.event = threading.Event()
        self.epoch = epoch
        self.outcome: Any = _ABANDONED
        self.error: BaseException | None = None


class Flights:
    """The computations in progress of one cache layer, by key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}
        self._aflights: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], int]] = {}

    def join(self, key: str, epoch: int) -> tuple[_Flight, bool]:
        """Join the computation of `key` (thread face); returns the flight and whether we lead it."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is None or flight.epoch != epoch:
                flight = self._flights[key] = _Flight(epoch)
                return flight, True
            return flight, False

    def leave(self, key: str, flight: _Flight) -> None:
        """Forget a finished flight."""
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]

    def ajoin(self, key: str, epoch: int) -> tuple[asyncio.Future[Any], bool]:
        """Join the computation of `key` (asyncio face); flights never cross event loops."""
        import asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._aflights.get(key)
            if entry is None or entry[0] is not loop or entry[2] != epoch or entry[1].done():
                fut: asyncio.Future[Any] = loop.create_future()
                self._aflights[key] = (loop, fut, epoch)
                return fut, True
            return entry[1], False

    def aleave(self, key: str, fut: asyncio.Future[Any]) -> None:
        """Forget a finished asyncio flight."""
        with self._lock:
            entry = self._aflights.get(key)
            if entry is not None and entry[1] is fut:
                del self._aflights[key]

    def coalesce_sync(
        self,
        key: str,
        epoch: int,
        run: Callable[[], T],
        retry: Callable[[], Any],
        lead: Callable[[T], Any],
        follow: Callable[[T], Any],
    ) -> Any:
        """Single-flight for threads: the first caller of a missing key runs `run()` and returns `lead(outcome)`;
        concurrent callers wait and return `follow(outcome)`, re-raise its error, or `retry()` if it was abandoned.
        """
        flight, leader = self.join(key, epoch)
        if not leader:
            flight.event.wait()
            if flight.error is not None:
                raise flight.error
            if flight.outcome is _ABANDONED or _overtaken(flight.outcome):
                return retry()
            return follow(flight.outcome)
        try:
            flight.outcome = run()
            return lead(flight.outcome)
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            self.leave(key, flight)
            flight.event.set()

    async def coalesce_async(
        self,
        key: str,
        epoch: int,
        run: Callable[[], Awaitable[T]],
        retry: Callable[[], Awaitable[Any]],
        lead: Callable[[T], Any],
        follow: Callable[[T], Any],
    ) -> Any:
        """Single-flight for asyncio tasks, same contract as `coalesce_sync`; a cancelled leader abandons the
        flight, so the tasks waiting for it run the call themselves instead of inheriting the cancellation."""
        import asyncio

        fut, leader = self.ajoin(key, epoch)
        if not leader:
            outcome = await asyncio.shield(fut)
            if outcome is _ABANDONED or _overtaken(outcome):
                return await retry()
            return follow(outcome)
        try:
            outcome = await run()
        except asyncio.CancelledError:
            fut.set_result(_ABANDONED)
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: callers that waited re-raise it themselves
            raise
        else:
            fut.set_result(outcome)
            return lead(outcome)
        finally:
            self.aleave(key, fut)
