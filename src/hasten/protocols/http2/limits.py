"""The HTTP/2 settings and abuse budgets of one server: plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass

from hasten.config import Config

# RFC 9113 §6.9.1: the largest flow-control window.
MAX_WINDOW = 2**31 - 1


@dataclass(frozen=True, slots=True)
class H2Limits:
    """The ``h2_*`` settings (named without ``h2_``) and ``limit_request_body``, read once per
    server and shared by its HTTP/2 connections; the defaults are ``Config``'s."""

    max_concurrent_streams: int
    initial_window_size: int
    max_frame_size: int
    max_header_list_size: int
    max_reset_streams: int
    max_control_frames: int
    timeout_stalled_stream: float
    limit_request_body: int | None

    @classmethod
    def from_config(cls, config: Config) -> H2Limits:
        return cls(
            max_concurrent_streams=config.h2_max_concurrent_streams,
            initial_window_size=config.h2_initial_window_size,
            max_frame_size=config.h2_max_frame_size,
            max_header_list_size=config.h2_max_header_list_size,
            max_reset_streams=config.h2_max_reset_streams,
            max_control_frames=config.h2_max_control_frames,
            timeout_stalled_stream=config.h2_timeout_stalled_stream,
            limit_request_body=config.limit_request_body,
        )

    @property
    def connection_window(self) -> int:
        """The connection's receive window: room for every stream's window at once, so a
        stream whose app doesn't read its body never holds up the others."""
        return min(MAX_WINDOW, self.max_concurrent_streams * self.initial_window_size)


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
