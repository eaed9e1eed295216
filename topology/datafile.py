"""Load YAML data files shipped inside a package (through importlib.resources).

Numbers in hardware files are written as ``{value: ..., source: "..."}`` so that every
number carries its source; ``sourced_value`` unwraps them and refuses a bare number.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from topology.errors import LayerwiseError

DATA_PACKAGE = "topology.data"


def data_dir(kind: str) -> Any:
    """The traversable folder ``topology/data/<kind>`` inside the installed package."""
    return resources.files(DATA_PACKAGE).joinpath(kind)


def preset_names(kind: str) -> list[str]:
    """Names (file stems) of the presets of one kind, sorted."""
    return sorted(
        entry.name[: -len(".yaml")]
        for entry in data_dir(kind).iterdir()
        if entry.name.endswith(".yaml")
    )


def load_preset(kind: str, name: str) -> dict[str, Any]:
    """Parse ``topology/data/<kind>/<name>.yaml``; unknown names list the known ones."""
    entry = data_dir(kind).joinpath(f"{name}.yaml")
    if not entry.is_file():
        known = ", ".join(preset_names(kind))
        raise LayerwiseError(kind.rstrip("s"), f"unknown preset {name!r} (known: {known})")
    return parse_yaml(entry.read_text(encoding="utf-8"), f"{kind}/{name}.yaml")


MAX_INPUT_BYTES = 256 * 2**20  # an input file larger than this is refused (the largest trace shipped: 1.6 MB)
MAX_YAML_ALIASES = 20  # aliases in one document (4 levels of 5 expand a node at most 625 times: no "billion laughs")


def read_text_file(path: str | Path, field: str, max_bytes: int = MAX_INPUT_BYTES) -> str:
    """A UTF-8 text file's contents, read safely: only a regular file (not a FIFO, a device, a folder),
    at most ``max_bytes``; a missing, unreadable, too large, binary or over-long name is one
    :class:`LayerwiseError` line naming ``field``."""
    file_path = Path(path)
    shown = str(file_path) if len(str(file_path)) <= 120 else str(file_path)[:117] + "..."
    try:
        fd = os.open(file_path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting
    except FileNotFoundError:
        raise LayerwiseError(field, f"no such file: {shown!r}") from None
    except OSError as exc:
        raise LayerwiseError(field, f"cannot read {shown!r}: {_reason(exc)}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise LayerwiseError(field, f"{shown!r} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > max_bytes:
            raise LayerwiseError(field, f"{shown!r} is {info.st_size:,} bytes, more than the {max_bytes:,} "
                                        "an input file may hold")
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise LayerwiseError(field, f"cannot read {shown!r}: {_reason(exc)}") from None
    if len(data) > max_bytes:
        raise LayerwiseError(field, f"{shown!r} grew past {max_bytes:,} bytes while it was read")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LayerwiseError(field, f"{shown!r} is not UTF-8 text (byte {exc.start:,})") from None


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long for the file system (NAME_MAX / PATH_MAX)"
    return str(exc.strerror or exc)


def load_json_file(path: str | Path, field: str) -> Any:
    """Parse a JSON file; a missing or malformed file is a one-line error naming ``field``."""
    text = read_text_file(path, field)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LayerwiseError(field, f"{str(path)!r} is not valid JSON ({exc.msg})") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise LayerwiseError(field, f"{str(path)!r} is not valid JSON ({str(exc).split(';')[0]})") from None
    except RecursionError:
        raise LayerwiseError(field, f"{str(path)!r} is not valid JSON (nested too deeply)") from None


def path_given(path: str | Path) -> bool:
    """Whether ``path`` names something on disk (of any kind) or is too long to be a preset's name: then it is
    read as a file (:func:`read_text_file` says what is wrong with it), not looked up among the presets."""
    text = str(path)
    return os.path.lexists(text) or len(os.path.basename(text).encode()) > NAME_MAX or len(text.encode()) >= PATH_MAX


NAME_MAX = 255  # bytes in one path component (Linux)
PATH_MAX = 4096  # bytes in a path (Linux)


class _BoundedLoader(yaml.SafeLoader):
    """yaml's safe loader, refusing a document that uses anchors more than :data:`MAX_YAML_ALIASES`
    times: a 1 KB file of nested aliases otherwise expands to gigabytes."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases_seen = getattr(self, "aliases_seen", 0) + 1
            if self.aliases_seen > MAX_YAML_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} aliases")
        return super().compose_node(parent, index)


def safe_yaml(text: str) -> Any:
    """``yaml.safe_load`` with aliases bounded (:class:`_BoundedLoader`); raises ``yaml.YAMLError``."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def parse_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        loaded = safe_yaml(text)
    except yaml.YAMLError as exc:
        detail = f": {exc}" if "aliases" in str(exc) else ""
        raise LayerwiseError(origin, f"not valid YAML ({exc.__class__.__name__}{detail})") from None
    except RecursionError:
        raise LayerwiseError(origin, "not valid YAML (nested too deeply)") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise LayerwiseError(origin, f"not valid YAML ({str(exc).split(';')[0]})") from None
    if not isinstance(loaded, dict):
        raise LayerwiseError(origin, "must hold a mapping at the top level")
    return loaded


def sourced_value(raw: dict[str, Any], key: str, origin: str) -> float:
    """Return ``raw[key]['value']``; the entry must also name its ``source``."""
    entry = raw.get(key)
    if not isinstance(entry, dict) or "value" not in entry:
        raise LayerwiseError(f"{origin}.{key}", "missing; expected {value: ..., source: ...}")
    if not str(entry.get("source", "")).strip():
        raise LayerwiseError(f"{origin}.{key}", "has no source")
    value = entry["value"]
    if isinstance(value, bool):
        raise LayerwiseError(f"{origin}.{key}", f"value {value!r} is not a number")
    try:
        return float(value)  # YAML 1.1 reads "989.4e12" as a string
    except (TypeError, ValueError):
        raise LayerwiseError(f"{origin}.{key}", f"value {value!r} is not a number") from None
