"""The ``wpsim`` console script: a thin shell around :func:`wpsim.cli.main`.

It imports only modules built into the interpreter, so that an interrupt at any moment ends
with one line and the status of an interrupt, never a traceback: while Python loads wpsim and its
dependencies (half a second at start-up), while a command runs (:func:`wpsim.cli.main` handles it
there, after the command has saved what it finished), and while the interpreter shuts down
(interrupts are ignored once the command has returned).

SIGTERM is handled like Ctrl-C (:func:`sigterm_as_interrupt`): the command stops its workers,
removes its shared memory and exits with the same status, 130. Interrupts before this module
runs (Python's own start-up and ``site``: a few milliseconds, about 25 with an editable install)
are Python's to report.
"""

from __future__ import annotations

import signal  # built into the interpreter: importing it cannot be interrupted half-way
import sys

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


def _quiet_exit() -> None:
    """Ignore further interrupts: the command is done, the interpreter is shutting down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def main() -> int:
    """Entry point of the ``wpsim`` script."""
    status = INTERRUPTED
    try:
        with sigterm_as_interrupt():
            from wpsim.cli import main as cli_main

            status = cli_main()
    except SystemExit:
        raise
    except BaseException:
        # an interrupt while the modules load may surface as another error (an import cut
        # short): it is still the interrupt
        if not interrupted():
            raise
        _say_interrupted()
    finally:
        _quiet_exit()
    return status


def _say_interrupted() -> None:
    try:
        print("wpsim: interrupted", file=sys.stderr)
    except (KeyboardInterrupt, OSError):  # pragma: no cover - a second Ctrl-C, a closed stderr
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
