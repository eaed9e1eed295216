"""A model's dimensions, as an experiment file or a saved plan gives them.

Cross-field rule: ``num_heads`` divides ``hidden_size`` unless ``head_dim`` is given (otherwise the
head width would be silently rounded down); the other rules (KV heads divide heads, dtype sizes,
the layer limit) are :class:`topology.model.ModelSpec`'s, checked as it is built.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, model_validator

from topology.schema.fields import Count, Flag, Name, Text


class ModelFile(BaseModel):
    """A decoder-only transformer's dimensions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name | None = None
    description: Text | None = None
    source: Text | None = None
    num_layers: Count
    hidden_size: Count
    num_heads: Count
    num_kv_heads: Count | None = None  # default: num_heads (multi-head attention)
    head_dim: Count | None = None  # default: hidden_size / num_heads, which must then be whole
    mlp_hidden_size: Count
    gated_mlp: Flag = True
    vocab_size: Count = 50257
    dtype_bytes: Literal[1, 2, 4] = 2
    block: Literal["sequential", "parallel"] = "sequential"

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> ModelFile:
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise ValueError(f"num_heads={self.num_heads} does not divide hidden_size={self.hidden_size}; "
                             f"give head_dim")
        return self
