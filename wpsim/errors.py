"""Errors that reach the user as one line, never as a traceback."""


class WpsimError(Exception):
    """Base class for every error the CLI reports as a single line with a non-zero exit."""


class ConfigError(WpsimError):
    """A workload, machine or sweep description is missing, malformed or impossible.

    The message names the file, the field, the bad value and what was expected.
    """


class ExecutionError(WpsimError):
    """The real multi-process executor failed (a worker died or raised)."""


class SchedulingError(WpsimError):
    """A policy broke the scheduling contract: it assigned a task to a busy group of cores, or
    left ready tasks unassigned with nothing running (a policy written by a user, most often)."""
