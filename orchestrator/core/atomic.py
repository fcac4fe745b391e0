"""The one way weeyuga writes an output file: a new regular file, renamed into place.

The bytes go to a fresh temporary file (O_EXCL, so never through an existing name) in the target's
own folder, are fsync'd, then renamed over the target. A crash leaves the old file or the new one,
never half of either; the temporary file never outlives a failure. A target that is a symbolic
link, a device, a FIFO or a folder is refused, not replaced or written through: `--out /dev/null`
run as root must not turn the device into a file, and a planted link must not carry a write
outside the folder it sits in.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterable

from orchestrator.core.errors import BadInput, os_failure
from orchestrator.core.urls import strip_url_credentials


def check_replaceable(path: Path) -> None:
    """BadInput unless `path` is absent or a regular file (lstat: a link is not followed)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise os_failure(path, exc) from None
    if stat.S_ISLNK(mode):
        raise BadInput(f"{path}: is a symbolic link; refusing to write through it (remove it, or choose another path)")
    if not stat.S_ISREG(mode):
        kind = "folder" if stat.S_ISDIR(mode) else "device, FIFO or socket"
        raise BadInput(f"{path}: is a {kind}, not a regular file; refusing to replace it")


def write_bytes_atomic(path: Path, data: bytes | Iterable[bytes], mode: int = 0o644) -> None:
    """Write-then-rename; `data` may come in pieces (the catalogue's tens of megabytes, never joined)."""
    path = Path(path)
    check_replaceable(path)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            for piece in [data] if isinstance(data, bytes) else data:
                fh.write(piece)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise os_failure(path, exc) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def write_text_atomic(path: Path, text: str | Iterable[str]) -> None:
    """UTF-8 text, whole or in pieces."""
    pieces = [text] if isinstance(text, str) else text
    write_bytes_atomic(path, (piece.encode("utf-8") for piece in pieces))


def write_json_atomic(path: Path, document: Any) -> None:
    """Valid JSON only: a NaN or infinity is a bug to surface here, never a bare `NaN` in the file.
    URL credentials are stripped: a file weeyuga writes may be published."""
    write_text_atomic(path, strip_url_credentials(json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)) + "\n")
