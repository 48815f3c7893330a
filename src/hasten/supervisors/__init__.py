"""Process supervisors: several worker processes sharing the sockets, and the reloader.

``run_supervised`` is what :func:`hasten.run` calls when the settings need more than the
plain in-process server (``--workers`` > 1, worker recycling limits, or ``--reload``).
"""

from __future__ import annotations

from hasten.config import Config


def needs_supervisor(config: Config) -> bool:
    """Whether ``config`` asks for anything one in-process server cannot do alone."""
    return (
        config.workers > 1
        or config.reload
        or config.limit_max_requests is not None
        or config.limit_max_memory is not None
        or config.metrics_bind is not None
    )


def run_supervised(config: Config) -> int:
    """Run the reloader or the worker supervisor until stopped; return the exit status."""
    if config.reload:
        from hasten.supervisors.reload import Reloader  # noqa: PLC0415 -- imports watchfiles

        reloader = Reloader(config)
        return reloader.run()
    from hasten.supervisors.multiprocess import WorkerSupervisor  # noqa: PLC0415

    return WorkerSupervisor(config).run()
