"""SIGTERM as an exception that waits for the current file write: a terminated run keeps every finished
point whole, prints how to resume, and exits 143 (128 + SIGTERM)."""
import signal
import threading
from contextlib import contextmanager

EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives (after the write in progress, if any); a BaseException so
    that the `except Exception` which turns a failing point into an error row lets it through."""


_state = {"depth": 0, "pending": False}


def _handler(signum, frame):
    if _state["depth"]:
        _state["pending"] = True          # inside a write: raise when it is finished
    else:
        raise Terminated()


@contextmanager
def critical():
    """A section (one file write and rename) that SIGTERM does not cut in half."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if not _state["depth"] and _state["pending"]:
            _state["pending"] = False
            raise Terminated()


@contextmanager
def terminate_as_exception():
    """Install the handler for the duration (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _state["pending"] = False
