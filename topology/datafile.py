"""Load YAML data files shipped inside a package (through importlib.resources).

Numbers in hardware files are written as ``{value: ..., source: "..."}`` so that every
number carries its source; ``sourced_value`` unwraps them and refuses a bare number.
"""

from __future__ import annotations

import json
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


def read_text_file(path: str | Path, field: str) -> str:
    """A UTF-8 text file's contents; a missing, unreadable or binary file is a one-line error naming ``field``."""
    file_path = Path(path)
    try:
        return file_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LayerwiseError(field, f"no such file: {str(file_path)!r}") from None
    except OSError as exc:
        raise LayerwiseError(field, f"cannot read {str(file_path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise LayerwiseError(field, f"{str(file_path)!r} is not UTF-8 text") from None


def load_json_file(path: str | Path, field: str) -> Any:
    """Parse a JSON file; a missing or malformed file is a one-line error naming ``field``."""
    text = read_text_file(path, field)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LayerwiseError(field, f"{str(path)!r} is not valid JSON ({exc.msg})") from None


def parse_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LayerwiseError(origin, f"not valid YAML ({exc.__class__.__name__})") from None
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
