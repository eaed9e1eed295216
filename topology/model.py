"""Transformer model specifications (dimensions only; no weights)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from topology.datafile import load_preset, preset_names
from topology.errors import LayerwiseError

# A bound on what is planned, so an absurd input (a million layers) is refused rather than left
# to run for hours: the plan search grows as layers squared. The deepest shipped model
# (llama3-70b) has 80 layers; the scale benchmark's layer-wise plan on 10,000 GPUs needs 10,000.
MAX_LAYERS = 16_384
# How a layer's attention and MLP follow each other: "sequential" (each a pre-norm residual
# block, Llama-style) or "parallel" (both read one normed input and add to one residual,
# GPT-J / PaLM style). topology.layer_graph builds each as a graph.
BLOCKS = ("sequential", "parallel")
TP_SPLIT_FIELDS = ("num_heads", "num_kv_heads", "mlp_hidden_size")  # what a TP degree must divide


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer: ``num_layers`` identical layers.

    Each layer: RMSNorm, attention (Q from ``num_heads``, K and V from ``num_kv_heads``,
    each ``head_dim`` wide), output projection, residual; RMSNorm, MLP (gated: gate, up and
    down matrices with SiLU; plain: up and down with GELU), residual.
    """

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_hidden_size: int
    gated_mlp: bool
    vocab_size: int
    dtype_bytes: int
    block: str = "sequential"  # one of BLOCKS: how attention and the MLP follow each other in a layer

    def __post_init__(self) -> None:
        for key in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim",
                    "mlp_hidden_size", "vocab_size", "dtype_bytes"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LayerwiseError(f"model.{key}", f"must be a positive integer, got {value!r}")
        if self.num_layers > MAX_LAYERS:
            raise LayerwiseError("model.num_layers", f"{self.num_layers:,} is more than this tool plans for "
                                                     f"({MAX_LAYERS:,}; its partitioners grow as layers squared)")
        if self.num_heads % self.num_kv_heads:
            raise LayerwiseError(
                "model.num_kv_heads",
                f"num_kv_heads={self.num_kv_heads} does not divide num_heads={self.num_heads}",
            )
        if self.dtype_bytes not in (1, 2, 4):
            raise LayerwiseError("model.dtype_bytes", f"must be 1, 2 or 4, got {self.dtype_bytes}")
        if self.block not in BLOCKS:
            raise LayerwiseError("model.block", f"must be one of {BLOCKS}, got {self.block!r}")

    @property
    def q_width(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def mlp_matrices(self) -> int:
        return 3 if self.gated_mlp else 2

    @property
    def attention_params_per_layer(self) -> int:
        # Q, K, V projections (hidden -> q, kv, kv) and the output projection (q -> hidden).
        return self.hidden_size * (self.q_width + 2 * self.kv_width) + self.q_width * self.hidden_size

    @property
    def mlp_params_per_layer(self) -> int:
        return self.mlp_matrices * self.hidden_size * self.mlp_hidden_size

    @property
    def norm_params_per_layer(self) -> int:
        norms = 2 if self.block == "sequential" else 1  # a parallel block normalizes its input once
        return norms * self.hidden_size

    @property
    def params_per_layer(self) -> int:
        return self.attention_params_per_layer + self.mlp_params_per_layer + self.norm_params_per_layer

    @property
    def weight_bytes_per_layer(self) -> int:
        return self.params_per_layer * self.dtype_bytes

    @property
    def layer_params_total(self) -> int:
        """Parameters of all transformer layers (embedding and LM head not counted)."""
        return self.params_per_layer * self.num_layers


    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_MODEL_FIELDS = ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "head_dim",
                 "mlp_hidden_size", "gated_mlp", "vocab_size", "dtype_bytes", "block")


def model_from_dict(raw: dict[str, Any], default_name: str = "inline") -> ModelSpec:
    known = set(_MODEL_FIELDS) | {"name", "description", "source"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise LayerwiseError("model", f"unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {"name": str(raw.get("name", default_name))}
    for key in _MODEL_FIELDS:
        if key == "num_kv_heads":
            values[key] = raw.get(key, raw.get("num_heads"))
        elif key == "head_dim" and key not in raw and "hidden_size" in raw and "num_heads" in raw:
            hidden, heads = raw["hidden_size"], raw["num_heads"]
            derivable = all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (hidden, heads))
            # when not derivable, ModelSpec names the bad hidden_size / num_heads first
            if derivable and hidden % heads:  # the one place a head width is derived: never rounded down
                raise LayerwiseError("model.head_dim", f"not given, and num_heads={heads} does not divide "
                                                       f"hidden_size={hidden}; give head_dim")
            values[key] = hidden // heads if derivable else None
        elif key == "gated_mlp":
            values[key] = raw.get(key, True)
            if not isinstance(values[key], bool):
                raise LayerwiseError("model.gated_mlp", f"must be true or false, got {values[key]!r}")
        elif key == "vocab_size":
            values[key] = raw.get(key, 50257)
        elif key == "dtype_bytes":
            values[key] = raw.get(key, 2)
        elif key == "block":
            values[key] = raw.get(key, "sequential")
        elif key not in raw:
            raise LayerwiseError(f"model.{key}", "missing")
        else:
            values[key] = raw[key]
    return ModelSpec(**values)


def model_names() -> list[str]:
    return preset_names("models")


def load_model(name: str) -> ModelSpec:
    raw = load_preset("models", name)
    raw.setdefault("name", name)
    return model_from_dict(raw, default_name=name)


def tp_degree_problem(model: ModelSpec, tp_degree: int) -> str | None:
    """Why ``tp_degree`` cannot split ``model`` (it must divide the heads, KV heads and MLP width), or None.
    The one statement of the rule: plans, partitioners, the executor and calibration all ask here."""
    if isinstance(tp_degree, bool) or not isinstance(tp_degree, int) or tp_degree < 1:
        return f"tp={tp_degree!r} must be a positive integer"
    for name in TP_SPLIT_FIELDS:
        value = getattr(model, name)
        if value % tp_degree:
            return f"tp={tp_degree} does not divide {name}={value}"
    return None


def check_tp_degree(model: ModelSpec, tp_degree: int, field: str = "tp") -> None:
    """Raise (naming ``field``) unless ``tp_degree`` splits the model (:func:`tp_degree_problem`)."""
    problem = tp_degree_problem(model, tp_degree)
    if problem is not None:
        raise LayerwiseError(field, problem)
