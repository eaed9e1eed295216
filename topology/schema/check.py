"""Check a parsed input against its schema model; the first problem becomes one line naming the file,
the field path and the value."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from topology.errors import LayerwiseError

M = TypeVar("M", bound=BaseModel)
SHOWN_CHARS = 60  # a value longer than this is cut in the message


def field_path(location: tuple[int | str, ...]) -> str:
    """``("stages", 0, "footprint", "weights_bytes")`` -> ``stages[0].footprint.weights_bytes``."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not text:
            text = str(part)
        elif not part.startswith(("function-", "tagged-union[")):  # pydantic's own validator names
            text += f".{part}"
    return text


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def validated(model: type[M], raw: Any, origin: str, kind: str) -> M:
    """``raw`` checked as ``model``; ``origin`` is the file (or what stands for it), ``kind`` what it holds
    (``profile``, ``plan``...). A problem raises one :class:`LayerwiseError`: ``KIND ORIGIN: FIELD: MESSAGE, got
    VALUE``."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        path = field_path(tuple(first["loc"]))
        message = str(first["msg"]).replace("Value error, ", "")
        value = "" if first["type"] == "missing" else f", got {shown(first.get('input'))}"
        raise LayerwiseError(field_name(kind, origin, path), f"{message}{value}") from None


def field_name(kind: str, origin: str, path: str) -> str:
    """``profile.params.matmul_flops_per_s``, or with a file ``profile p.json: params.matmul_flops_per_s``."""
    if not origin or origin == kind:
        return f"{kind}.{path}" if path else kind
    return f"{kind} {origin}: {path}" if path else f"{kind} {origin}"
