"""The one error type for bad user input: it names the field and the value."""

from __future__ import annotations


class LayerwiseError(ValueError):
    """Bad input (a field with a bad value). Command-line tools print it as one line."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")
