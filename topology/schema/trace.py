"""A Chrome / Perfetto trace (the simulator's ``--trace``, a torch.profiler export): a list of events or
``{"traceEvents": [...]}``. Each event is a mapping; its timestamp and duration (microseconds) are finite
and >= 0 where given; its ``args`` a mapping. Other fields are kept as given."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel

from topology.schema.fields import NonNegative


class TraceEventFile(BaseModel):
    """One trace event (the fields the validator reads)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ph: str | None = None
    name: Any = None
    cat: Any = None
    ts: NonNegative | None = None
    dur: NonNegative | None = None
    args: dict[str, Any] | None = None


class TraceDocumentFile(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    trace_events: list[TraceEventFile] = Field(alias="traceEvents")


class TraceFile(RootModel[list[TraceEventFile] | TraceDocumentFile]):
    """A trace file: a list of events, or an object holding them in ``traceEvents``."""
