"""SIGINT and SIGTERM become exceptions, so cleanup code runs and nothing is left half-written.

:func:`handle_signals` (installed by the CLI for the whole command) turns SIGTERM into
:class:`Terminated` and SIGINT into ``KeyboardInterrupt``; ``finally`` blocks and context
managers (``graphkit.util.files.atomic_path`` among them) then remove their temporary files, and
the CLI exits 143 or 130 without a traceback. After the first signal further ones are
ignored, so that cleanup itself is not cut short.

:func:`deferred` holds signals back for a few statements that must not be split (create a
temporary file *and* register it for cleanup); a signal that arrives meanwhile is delivered
right after.

:func:`signals_seen` records the signals delivered during a block (a pass run, a pass file's
import), so a ``KeyboardInterrupt``/``SystemExit`` that a pass raises itself is told apart from
a real Ctrl-C or SIGTERM: only the latter ends the command.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that ``except Exception`` blocks do not
    swallow it.
    """

    exit_code = 128 + signal.SIGTERM


def exit_code_of(interrupt: BaseException) -> int:
    """130 for SIGINT (``KeyboardInterrupt``), 143 for SIGTERM (:class:`Terminated`)."""
    return interrupt.exit_code if isinstance(interrupt, Terminated) else 128 + signal.SIGINT


_state = {"deferring": 0, "pending": None, "received": None}


def received() -> int | None:
    """The signal number handled so far (SIGINT/SIGTERM), or None.

    Tells a real interrupt from a ``KeyboardInterrupt`` that code raised itself (a misbehaving
    pass): only the former must end the command.
    """
    return _state["received"]


def _raise_for(signum: int, frame) -> None:
    _state["received"] = signum
    for other in SIGNALS:  # cleanup must not be interrupted by a second signal
        signal.signal(other, signal.SIG_IGN)
    if _state["deferring"]:
        _state["pending"] = signum  # raised when the deferred block ends
        return
    _raise(signum)


def _raise(signum: int) -> None:
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` and SIGINT ``KeyboardInterrupt``.

    The previous handlers are restored on exit. Outside the main thread this does nothing
    (Python delivers signals to the main thread only).
    """
    if not _in_main_thread():
        yield
        return
    _state.update(received=None, pending=None)
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        if previous[s] is not signal.SIG_IGN:  # ignored on purpose (nohup, a background job): keep it so
            signal.signal(s, _raise_for)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back during the block; a pending one is raised right after it.

    A flag, not the signal mask: Python runs handlers in the main thread whichever thread the
    signal hit, so blocking it in the main thread alone would not hold it back. In other threads
    this does nothing: handlers never interrupt them.
    """
    if not _in_main_thread():
        yield
        return
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1
        pending = _state["pending"]
        if pending is not None and not _state["deferring"]:
            _state["pending"] = None
            _raise(pending)


WATCHED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def signals_seen() -> Iterator[list[int] | None]:
    """Record the signals delivered while the block runs (None outside the main thread).

    Every signal handler that is a Python callable is wrapped (and still called), so a
    ``KeyboardInterrupt`` or ``SystemExit`` that comes from a real signal can be told apart
    from one a pass raises itself. Handlers are restored on exit.
    """
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    seen: list[int] = []
    previous = {}
    for signum in WATCHED_SIGNALS:
        handler = signal.getsignal(signum)
        if callable(handler):

            def record(number, frame, _handler=handler):
                seen.append(number)
                _handler(number, frame)

            previous[signum] = handler
            signal.signal(signum, record)
    try:
        yield seen
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
