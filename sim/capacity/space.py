"""What a capacity search chooses between: one replica's plan, the scheduler's settings, how many
replicas behind which router, and (disaggregated) separate prefill and decode replicas.

* :class:`ReplicaPlan`: a plan for one replica (its stages and TP degrees on GPUs ``0 .. g-1``; every
  replica is a copy of it on its own GPUs). Where it came from: the uniform TP x PP family or the plan
  search's dynamic program (uneven stages, mixed TP; :mod:`sim.capacity.plans`).
* :class:`Knobs`: ``max_num_seqs``, ``max_num_batched_tokens`` and chunked prefill on (policy ``vllm``)
  or off (policy ``prefill-first``, which needs a token budget of at least ``max_model_len_tokens``).
* :class:`Deployment`: aggregated (``replicas`` copies of ``plan``, each serving whole requests) or
  disaggregated (``replicas`` prefill copies of ``plan`` and ``decode_replicas`` copies of
  ``decode_plan``; each request's KV cache moves from its prefill replica to its decode replica over
  the cluster's links, :mod:`sim.capacity.disaggregated`).
"""

from __future__ import annotations

from dataclasses import dataclass

from topology.partition.space import Layout
from topology.plan import Plan

AGGREGATED = "aggregated"
DISAGGREGATED = "disaggregated"


@dataclass(frozen=True)
class ReplicaPlan:
    """One replica's plan: ``label`` as tables show it (``TP4xPP2``, ``TP8xPP2 [41,39]``, ``TP8:40|TP4:40``)."""

    label: str
    layout: Layout
    plan: Plan
    origin: str  # "tp-pp family", "plan search (uneven)", "experiment: NAME"

    @property
    def gpus(self) -> int:
        return self.plan.num_devices

    @property
    def stages(self) -> int:
        return self.plan.num_stages


def layout_label(layout: Layout) -> str:
    """The layout as :meth:`Layout.describe` writes it, without the microbatch count (serving keeps
    as many iterations in flight as there are stages; microbatches do not apply)."""
    return layout.describe().rsplit(" mb=", 1)[0]


@dataclass(frozen=True)
class Knobs:
    """One replica's scheduler settings that the search varies."""

    max_num_seqs: int
    max_num_batched_tokens: int
    chunked_prefill: bool

    @property
    def policy(self) -> str:
        return "vllm" if self.chunked_prefill else "prefill-first"

    def describe(self) -> str:
        chunked = "chunked" if self.chunked_prefill else "no chunking"
        return f"seqs {self.max_num_seqs}, tokens {self.max_num_batched_tokens}, {chunked}"


@dataclass(frozen=True)
class Deployment:
    """One point of the space (module docstring). ``replicas``: aggregated replicas, or prefill
    replicas when ``decode_plan`` is set."""

    plan: ReplicaPlan
    replicas: int
    router: str
    knobs: Knobs
    decode_plan: ReplicaPlan | None = None
    decode_replicas: int = 0

    @property
    def kind(self) -> str:
        return AGGREGATED if self.decode_plan is None else DISAGGREGATED

    @property
    def gpus(self) -> int:
        decode = 0 if self.decode_plan is None else self.decode_plan.gpus * self.decode_replicas
        return self.plan.gpus * self.replicas + decode

    def describe_plan(self) -> str:
        if self.decode_plan is None:
            return self.plan.label
        return f"P {self.plan.label} / D {self.decode_plan.label}"

    def describe_replicas(self) -> str:
        if self.decode_plan is None:
            return str(self.replicas)
        return f"{self.replicas}P+{self.decode_replicas}D"

    @property
    def key(self) -> str:
        """A stable, unique name (sorting ties, JSON, logs)."""
        return (f"{self.kind} {self.describe_plan()} x{self.describe_replicas()} {self.router} "
                f"seqs={self.knobs.max_num_seqs} tokens={self.knobs.max_num_batched_tokens} "
                f"chunked={'on' if self.knobs.chunked_prefill else 'off'}")

    @property
    def group(self) -> tuple[str, int, str, bool, str, int]:
        """Deployments simulated in one task: same plans, replicas, router and chunking (their
        ``max_num_seqs`` and ``max_num_batched_tokens`` differ, so one run can stand for another:
        :mod:`sim.capacity.reuse`)."""
        decode = "" if self.decode_plan is None else self.decode_plan.label
        return (self.plan.label, self.replicas, self.router, self.knobs.chunked_prefill, decode, self.decode_replicas)
