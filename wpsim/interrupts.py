"""Ctrl-C and SIGTERM as one interrupt: remembered, raised as KeyboardInterrupt, exit status 130.

Imports only modules built into the interpreter (importing it cannot be interrupted half-way), so
that :mod:`wpsim.console` can set the handlers before it loads anything else.
"""

from __future__ import annotations

import signal  # built into the interpreter: importing it cannot be interrupted half-way

#: Exit status after Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
INTERRUPTED = 130

_SEEN: list[int] = []  # the interrupts received since the current command started


def _interrupt(signum: int, frame: object) -> None:
    _SEEN.append(signum)
    raise KeyboardInterrupt


def interrupted() -> bool:
    """Whether Ctrl-C or SIGTERM arrived since the current command started: an error that
    follows one (an import cut short, a worker that saw the signal) is the interrupt's doing."""
    return bool(_SEEN)


class sigterm_as_interrupt:  # noqa: N801 - used like a function: ``with sigterm_as_interrupt():``
    """Within the block, SIGINT and SIGTERM raise KeyboardInterrupt and are remembered
    (:func:`interrupted`); main thread only; the previous handlers come back after.

    A class rather than :func:`contextlib.contextmanager`: this module imports nothing that
    could be interrupted half-way.
    """

    def __enter__(self) -> sigterm_as_interrupt:
        _SEEN.clear()
        self.previous: dict[int, object] = {}
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, _interrupt)
        except ValueError:  # not the main thread: signals stay with whoever handles them
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def quiet_exit() -> None:
    """Ignore further interrupts: the command is done, the interpreter is shutting down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
