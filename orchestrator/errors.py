"""Errors the CLI turns into one line and an exit code, never a traceback."""


class WeeyugaError(Exception):
    """A failure the user can act on. The message is the whole story."""

    exit_code = 1


class BadInput(WeeyugaError):
    """Malformed or invalid input: a file, a field, an argument."""

    exit_code = 2


class NothingFits(WeeyugaError):
    """No catalogue model fits the machine's memory budget."""

    exit_code = 3
