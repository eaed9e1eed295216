"""Write files atomically: a reader sees the old file or the whole new one, never half.

A path that cannot be written (a folder, no permission, a full disk) is a one-line
:class:`LayerwiseError` naming the path, not a traceback.
"""

from __future__ import annotations

import json
import os
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from topology.errors import LayerwiseError


def write_text_atomic(path: str | Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


@cache
def _umask() -> int:
    """The process's umask, read once (reading it means setting it, so not on every write)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    target = Path(path)
    tmp_name: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp makes 0600; give the file a normal file's mode
        os.replace(tmp_name, target)
    except OSError as exc:
        raise LayerwiseError("output", f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    finally:
        if tmp_name is not None and os.path.exists(tmp_name):
            Path(tmp_name).unlink(missing_ok=True)
    return target


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def check_output_path(path: str | Path, field: str) -> None:
    """Before any work: fail with one line naming ``field`` if ``path`` cannot be written as a file.

    Creates the missing folders and a probe file, then removes what it created, so a later
    atomic write will succeed (barring a full disk) and nothing is left behind now.
    """
    target = Path(path)
    if target.is_dir():
        raise LayerwiseError(field, f"{str(target)!r} is a folder, not a file")
    created: list[Path] = []
    folder = target.parent
    try:
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        for directory in reversed(missing):
            directory.mkdir()
            created.append(directory)
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise LayerwiseError(field, f"cannot write {str(target)!r}: {exc.strerror or exc}") from None
    finally:
        for directory in reversed(created):
            directory.rmdir()
