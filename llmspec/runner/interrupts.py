"""Ctrl-C as Terraform has it: the first lets running jobs finish (and store their results)
and starts nothing new; a second cancels what is running.

    with graceful_interrupts() as stop:
        for job in jobs:
            if stop.requested:
                break
            ...
    # then: raise KeyboardInterrupt if stop.requested, so the caller knows it was interrupted
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Stop:
    def __init__(self) -> None:
        self.requested = False

    def handler(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        sys.stderr.write(
            "\nInterrupt: letting the running jobs finish and store their results; "
            "Ctrl-C again cancels them.\n"
        )
        sys.stderr.flush()


_CURRENT = Stop()


def current() -> Stop:
    """The stop request of the apply in progress (a never-requested one outside of one)."""
    return _CURRENT


@contextmanager
def graceful_interrupts() -> Iterator[Stop]:
    """Install the two-step Ctrl-C for the block (main thread only; elsewhere a Ctrl-C stays a
    KeyboardInterrupt)."""
    global _CURRENT
    stop = Stop()
    previous = _CURRENT
    _CURRENT = stop
    installed = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, stop.handler) if installed else None
    try:
        yield stop
    finally:
        if installed:
            signal.signal(signal.SIGINT, old)
        _CURRENT = previous
