"""The ``wpsim`` console script: a thin shell around :func:`wpsim.cli.main`.

It imports only modules built into the interpreter, so that an interrupt at any moment ends
with one line and the status of an interrupt, never a traceback: while Python loads wpsim and its
dependencies (half a second at start-up), while a command runs (:func:`wpsim.cli.main` handles it
there, after the command has saved what it finished), and while the interpreter shuts down
(interrupts are ignored once the command has returned).

SIGTERM is handled like Ctrl-C (:func:`wpsim.interrupts.sigterm_as_interrupt`): the command stops its workers,
removes its shared memory and exits with the same status, 130. Interrupts before this module
runs (Python's own start-up and ``site``: a few milliseconds, about 25 with an editable install)
are Python's to report.
"""

from __future__ import annotations

import sys

from wpsim.interrupts import INTERRUPTED, interrupted, quiet_exit, sigterm_as_interrupt


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
        quiet_exit()
    return status


def _say_interrupted() -> None:
    try:
        print("wpsim: interrupted", file=sys.stderr)
    except (KeyboardInterrupt, OSError):  # pragma: no cover - a second Ctrl-C, a closed stderr
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
