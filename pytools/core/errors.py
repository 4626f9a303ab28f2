"""Errors a user can act on. The CLI prints their message as one line and exits non-zero."""


class PytoolsError(Exception):
    """A failure caused by input, configuration or the environment, not by a bug."""

    exit_code = 1


class ConfigError(PytoolsError):
    exit_code = 2


class CheckError(PytoolsError):
    """A check ran and the thing checked failed it (parity, verification, a benchmark gate)."""

    exit_code = 3
