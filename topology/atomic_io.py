"""Write files atomically: a reader sees the old file or the whole new one, never half.

A path that cannot be written (a folder, no permission, a full disk) is a one-line
:class:`LayerwiseError` naming the path, not a traceback. Commands call
:func:`check_output_file` / :func:`check_output_folder` on every output path *before* their
work, so a bad ``--json``/``--out`` fails in a second, not after the run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from topology.errors import LayerwiseError

PROBE_PREFIX = ".layerwise-probe-"


def check_output_file(path: str | Path, option: str) -> Path:
    """Check, before any work, that ``path`` can be written as a file; return it.

    The path must not be a folder, and its nearest existing folder must take a new file (tried
    by creating and removing an empty probe file, since ``os.access`` says yes to root even on
    ``/proc``). Missing folders in between are not made here (the write makes them).
    Raises :class:`LayerwiseError` naming ``option`` (the flag, e.g. ``--json``) and the path.
    """
    target = Path(path)
    if not str(path):
        raise LayerwiseError(option, "is empty; give a file name")
    try:
        if str(path).endswith(("/", os.sep)) or target.is_dir():
            raise LayerwiseError(option, f"{str(path)!r} is a folder; give a file name")
        if target.exists() and not target.is_file():
            raise LayerwiseError(option, f"{str(path)!r} exists and is not a regular file")
        _check_folder_takes_files(target.parent, option, str(path))
    except OSError as exc:  # a name past NAME_MAX or PATH_MAX
        raise LayerwiseError(option, f"cannot write {str(path)[:120]!r}: {exc.strerror or exc}") from None
    return target


def check_output_folder(path: str | Path, option: str) -> Path:
    """Check, before any work, that files can be written inside the folder ``path``; return it."""
    target = Path(path)
    if not str(path):
        raise LayerwiseError(option, "is empty; give a folder name")
    try:
        if target.exists() and not target.is_dir():
            raise LayerwiseError(option, f"{str(path)!r} is a file, not a folder")
        _check_folder_takes_files(target, option, str(path))
    except OSError as exc:  # a name past NAME_MAX or PATH_MAX
        raise LayerwiseError(option, f"cannot write {str(path)[:120]!r}: {exc.strerror or exc}") from None
    return target


def _check_folder_takes_files(folder: Path, option: str, shown: str) -> None:
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link: the write would fail the same way
            raise LayerwiseError(option, f"cannot write {shown!r}: {str(existing)!r} is a broken link")
        existing = existing.parent
    if not existing.is_dir():
        raise LayerwiseError(option, f"cannot write {shown!r}: {str(existing)!r} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=existing)
    except OSError as exc:
        raise LayerwiseError(
            option, f"cannot write {shown!r}: no file can be made in {str(existing)!r} ({exc.strerror or exc})"
        ) from None
    os.close(fd)
    Path(probe).unlink(missing_ok=True)


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
    if target.is_dir():  # os.replace onto a folder fails with EISDIR, or EBUSY for "."
        raise LayerwiseError("output", f"cannot write {str(target)!r}: it is a folder")
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


def finite_json(obj: Any) -> Any:
    """``obj`` with every NaN or infinity replaced by null: JSON has no such numbers (``NaN`` in a file is not
    JSON, and other readers refuse it). Inputs are checked finite (:mod:`topology.schema`), so what is left
    non-finite is a value that does not exist (a band without a bound)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite_json(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(value) for value in obj]
    return obj


def metadata_block(wall_s: float) -> dict[str, Any]:
    """The one part of a JSON output that differs from run to run (README "Outputs"): when it was made
    and how long it took. Everything outside it is the same, byte for byte, for the same inputs."""
    return {"created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "wall_s": wall_s}


def json_text(obj: Any, indent: int | None = 2) -> str:
    """The one way outputs are written as JSON: sorted keys, finite numbers only, a final newline."""
    return json.dumps(finite_json(obj), indent=indent, sort_keys=True, allow_nan=False) + "\n"


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    return write_text_atomic(path, json_text(obj))



STAGING_INFIX = ".staging-"  # a folder being written beside its target: ``.NAME.staging-XXXX``


@contextmanager
def staged_folder(target: str | Path, replaceable: tuple[str, ...]) -> Iterator[Path]:
    """Write a folder whole or not at all: the block writes into a new folder beside ``target``, which is
    renamed into place when the block ends (any exception, an interrupt included, removes it instead).
    ``target`` may exist only as an empty folder or as an earlier output (holding one of ``replaceable``, the
    names this output writes); that one is replaced. Two writers of one target end with one writer's whole
    folder: each rename is atomic, and the later one replaces the earlier."""
    final = Path(target)
    _check_replaceable(final, replaceable)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}{STAGING_INFIX}", dir=final.parent))
    try:
        yield stage
        os.chmod(stage, 0o777 & ~_umask())
        _rename_into_place(stage, final, replaceable)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _check_replaceable(final: Path, replaceable: tuple[str, ...]) -> None:
    if final.is_dir() and any(final.iterdir()) and not any((final / name).exists() for name in replaceable):
        raise LayerwiseError("--out", f"{str(final)!r} holds other files; give a new or empty folder, or an "
                                      f"earlier output (with {replaceable[0]})")


def _rename_into_place(stage: Path, final: Path, replaceable: tuple[str, ...]) -> None:
    for _ in range(100):  # another writer may put its folder in place between our two renames: go again
        old = None
        if final.exists():
            _check_replaceable(final, replaceable)
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
            try:
                os.replace(final, old)  # an empty folder is replaced by the old output (rename(2) allows it)
            except FileNotFoundError:
                pass  # the other writer moved it first
        try:
            os.rename(stage, final)
            return
        except OSError:
            continue
        finally:
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    raise LayerwiseError("--out", f"cannot put the output in place at {str(final)!r}: other writers keep replacing it")
