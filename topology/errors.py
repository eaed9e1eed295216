"""The one error type for bad user input: it names the field and the value."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class LayerwiseError(ValueError):
    """Bad input (a field with a bad value). Command-line tools print it as one line."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@contextmanager
def reading(record: str) -> Iterator[None]:
    """Read the fields of a ``record`` (a plan, a result, a profile...) inside this block: a missing
    field or a value of the wrong type becomes one ``LayerwiseError`` naming the record."""
    try:
        yield
    except LayerwiseError:
        raise
    except KeyError as exc:
        raise LayerwiseError(record, f"missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise LayerwiseError(record, f"malformed ({exc})") from None
