"""The HTTP/2 settings and abuse budgets of one server: plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

# RFC 9113 §6.9.1: the largest flow-control window.
MAX_WINDOW = 2**31 - 1


@dataclass(frozen=True, slots=True)
class H2Limits:
    """The ``h2_*`` settings and ``limit_request_body``, read once per server
    (``settings_view(H2Limits, config)``) and shared by its HTTP/2 connections."""

    h2_max_concurrent_streams: int
    h2_initial_window_size: int
    h2_max_frame_size: int
    h2_max_header_list_size: int
    h2_max_reset_streams: int
    h2_max_control_frames: int
    h2_timeout_stalled_stream: float
    limit_request_body: int | None

    @property
    def connection_window(self) -> int:
        """The connection's receive window: room for every stream's window at once, so a
        stream whose app doesn't read its body never holds up the others."""
        return min(MAX_WINDOW, self.h2_max_concurrent_streams * self.h2_initial_window_size)


class RateBudget:
    """A token bucket: ``capacity`` events at once, refilled at ``capacity / 10`` per second.

    A burst the size of the budget is fine; a peer that keeps spending faster than the
    refill runs out, which is how flood and rapid-reset attacks are told from busy clients
    (RFC 9113 §10.5).
    """

    __slots__ = ("capacity", "refill_per_second", "tokens", "updated_at")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = float(capacity)
        self.refill_per_second = capacity / 10
        self.tokens = float(capacity)
        self.updated_at = now

    def spend(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens; ``False`` once the budget is exhausted."""
        elapsed = now - self.updated_at
        if elapsed > 0:
            self.updated_at = now
            self.tokens = min(self.capacity, self.tokens + elapsed * self.refill_per_second)
        self.tokens -= cost
        return self.tokens >= 0

    def earn(self, amount: float) -> None:
        """Give back tokens for useful work the peer's frames went with (never above capacity)."""
        self.tokens = min(self.capacity, self.tokens + amount)
