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


def os_failure(path, exc: OSError) -> WeeyugaError:
    """One line for a file operation that failed: a path that cannot be a file (a folder, a missing
    parent) is bad input; a full, read-only or forbidden disk is a failure."""
    import errno

    why = exc.strerror or str(exc)
    if exc.errno in (errno.EISDIR, errno.ENOTDIR, errno.ENOENT):
        return BadInput(f"{path}: cannot write there: {why}")
    if exc.errno == errno.ENOSPC:
        return WeeyugaError(f"{path}: the disk is full ({why}); free some space, then resume")
    return WeeyugaError(f"{path}: cannot write: {why}")


def read_failure(path, exc: OSError) -> BadInput:
    """One line for a file or folder that cannot be read as asked."""
    import errno

    why = {errno.ENOENT: "file not found", errno.EISDIR: "is a folder, not a file", errno.ENOTDIR: "not a folder"}
    return BadInput(f"{path}: {why.get(exc.errno) or 'cannot read: ' + (exc.strerror or str(exc))}")
