"""What is run: phase, batch, lengths, and how it is measured."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from topology.errors import LayerwiseError

PHASES = ("prefill", "decode")
CONTEXT_GROWTH = ("fixed", "grow")


@dataclass(frozen=True)
class TokenShape:
    """The tokens one operator sees in one call.

    ``batch`` sequences, each contributing ``new_tokens`` tokens (the prompt in prefill,
    1 in decode) and attending to ``context_len`` tokens (the new ones included).
    """

    batch: int
    new_tokens: int
    context_len: int

    @property
    def tokens(self) -> int:
        return self.batch * self.new_tokens


MAX_SEED = 2**63  # torch.Generator.manual_seed takes a signed 64-bit seed


@dataclass(frozen=True)
class Workload:
    """One experiment's workload.

    prefill: ``batch_size`` prompts of ``prompt_len`` tokens each, one forward pass per
    iteration (``context_len`` is not read). decode: ``batch_size`` sequences generating one
    token per step against a KV cache holding ``context_len`` tokens, the prompt included
    (``context_growth="grow"``: one more per step); ``prompt_len`` is not read, and an
    experiment file that gives a decode ``prompt_len`` above ``context_len`` is refused
    (:func:`workload_from_dict`).
    """

    phase: str
    batch_size: int
    prompt_len: int
    context_len: int
    context_growth: str = "fixed"
    cuda_graphs: bool = True
    warmup_iters: int = 100
    measured_iters: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise LayerwiseError("workload.phase", f"must be one of {PHASES}, got {self.phase!r}")
        if self.context_growth not in CONTEXT_GROWTH:
            raise LayerwiseError(
                "workload.context_growth", f"must be one of {CONTEXT_GROWTH}, got {self.context_growth!r}"
            )
        for key in ("batch_size", "prompt_len", "context_len", "measured_iters"):
            check_positive_int(f"workload.{key}", getattr(self, key))
        if isinstance(self.warmup_iters, bool) or not isinstance(self.warmup_iters, int) or self.warmup_iters < 0:
            raise LayerwiseError("workload.warmup_iters", f"must be an integer >= 0, got {self.warmup_iters!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < MAX_SEED:
            raise LayerwiseError("workload.seed", f"must be an integer from 0 to 2**63 - 1, got {self.seed!r}")

    @property
    def iterations(self) -> int:
        return self.warmup_iters + self.measured_iters

    @property
    def kv_capacity_tokens(self) -> int:
        """Tokens per sequence the KV cache must hold for the whole run."""
        if self.phase == "prefill":
            return self.prompt_len
        grown = self.iterations if self.context_growth == "grow" else 0
        return self.context_len + grown

    def token_shape(self, microbatches: int, iteration: int = 0) -> TokenShape:
        """The shape one microbatch presents to each layer at ``iteration``."""
        check_positive_int("plan.microbatches", microbatches)
        if self.batch_size % microbatches:
            raise LayerwiseError(
                "plan.microbatches",
                f"microbatches={microbatches} does not divide batch_size={self.batch_size}",
            )
        batch = self.batch_size // microbatches
        if self.phase == "prefill":
            return TokenShape(batch=batch, new_tokens=self.prompt_len, context_len=self.prompt_len)
        context = self.context_len + (iteration if self.context_growth == "grow" else 0)
        return TokenShape(batch=batch, new_tokens=1, context_len=context)

    @property
    def tokens_per_iteration(self) -> int:
        """Output tokens (decode) or prompt tokens (prefill) one iteration processes."""
        return self.batch_size if self.phase == "decode" else self.batch_size * self.prompt_len

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_positive_int(field: str, value: Any) -> None:
    """The one rule for counts and lengths: an integer >= 1 (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise LayerwiseError(field, f"must be a positive integer, got {value!r}")


def workload_from_dict(raw: dict[str, Any]) -> Workload:
    """A workload from an experiment file's mapping.

    ``prompt_len`` and ``context_len`` default to each other; a bad value is named as the
    field the file gave, never as the one defaulted from it. Decode reads ``context_len``
    only, so a decode ``prompt_len`` above ``context_len`` (a prompt longer than the KV cache
    it must fit in) is refused rather than silently ignored.
    """
    if raw.get("phase") == "serve":
        raise LayerwiseError("workload.phase", "'serve' is a serving workload: `layerwise simulate` and "
                                               "`layerwise run` serve it, this command takes prefill or decode")
    known = {"phase", "batch_size", "prompt_len", "context_len", "context_growth", "cuda_graphs",
             "warmup_iters", "measured_iters", "seed"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise LayerwiseError("workload", f"unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    for key in ("phase", "batch_size"):
        if key not in raw:
            raise LayerwiseError(f"workload.{key}", "missing")
    values = dict(raw)
    if "prompt_len" not in values and "context_len" not in values:
        raise LayerwiseError("workload.context_len", "missing (give prompt_len or context_len)")
    for key in ("batch_size", "context_len", "prompt_len"):
        if key in values:
            check_positive_int(f"workload.{key}", values[key])
    given_both = "prompt_len" in values and "context_len" in values
    if values["phase"] == "decode" and given_both and values["prompt_len"] > values["context_len"]:
        raise LayerwiseError(
            "workload.prompt_len",
            f"{values['prompt_len']} exceeds context_len {values['context_len']}: decode runs against a KV cache "
            f"of context_len tokens (the prompt included) and does not read prompt_len; "
            f"give prompt_len <= context_len, or leave it out",
        )
    values.setdefault("prompt_len", values.get("context_len"))
    values.setdefault("context_len", values.get("prompt_len"))
    if "cuda_graphs" in values and not isinstance(values["cuda_graphs"], bool):
        raise LayerwiseError("workload.cuda_graphs", f"must be true or false, got {values['cuda_graphs']!r}")
    return Workload(**values)
