"""The schedules one rank runs: closed-loop decode and pipelined prefill, with timing marks.

Decode, per step ``t`` and microbatch ``m`` (the same order on every rank, so matching
sends and receives line up): stage 0 takes microbatch ``m``'s input (the seeded first input
at ``t = 0``, later the last stage's RMS-normalised output of token ``t - 1``, over the
loop-back group); every other stage receives it from the previous stage; the rank runs its
layers (a CUDA-graph replay or eager) and sends the result on. Sends are non-blocking and are
waited on only before their buffer is written again (the next forward of ``m``).

Timing per measured (t, m): the wait for the input (idle: bubbles and p2p transfer), then the
forward (compute, TP all-reduces included; :func:`time_stage_collectives_s` measures those apart,
in a CUDA graph when the step replays graphs).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.distributed as dist

from executor.attention import AttentionChoice
from executor.clock import Clock
from executor.faults import Fault
from executor.groups import StageGroups
from executor.layout import RankLayout
from executor.model import StageModel, next_token_input
from executor.weights import seeded_normal
from topology.workload import Workload

INPUT_LAYER = -1  # the seeded streams of the first stage's inputs use layer -1


@dataclass
class Activity:
    """What the rank is doing now, for the failure message."""

    what: str = "starting"
    peer: int | None = None
    microbatch: int = 0
    step: int = 0


@dataclass
class RankTimings:
    """Sums over the measured iterations on this rank."""

    elapsed_s: float = 0.0
    measured_iters: int = 0
    compute_s: float = 0.0
    idle_s: float = 0.0
    allreduce_s: float = 0.0  # one TP all-reduce of this stage's payload (0 at TP 1)
    allreduces_per_iter: int = 0
    attention: tuple[AttentionChoice, ...] = ()  # the attention kernels this rank chose at start-up


@dataclass
class RankRun:
    """Everything a schedule needs on this rank."""

    stage_model: StageModel
    layout: RankLayout
    groups: StageGroups
    workload: Workload
    microbatches: int
    device: torch.device
    dtype: torch.dtype
    use_graphs: bool
    fault: Fault | None
    dump: bool
    activity: Activity = field(default_factory=Activity)
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)  # dumps (last stage)
    setup_s: float = 0.0  # building the shard: weights, KV cache allocation and fill

    @property
    def microbatch_size(self) -> int:
        return self.workload.batch_size // self.microbatches

    def _wait_input(self, work: Any, peer: int, what: str, m: int, t: int) -> None:
        self.activity = Activity(what=what, peer=peer, microbatch=m, step=t)
        work.wait()


def _recv(tensor: torch.Tensor, src: int, group: Any) -> Any:
    return dist.irecv(tensor, src=src, group=group)


def _send(tensor: torch.Tensor, targets: tuple[int, ...], group: Any) -> list[Any]:
    return [dist.isend(tensor, dst=dst, group=group) for dst in targets]


def prefill_input(run: RankRun, prompt_len: int) -> torch.Tensor | None:
    """Stage 0's seeded prompt hidden states (B, S, h); None on other stages."""
    if not run.layout.is_first_stage:
        return None
    return seeded_normal((run.workload.batch_size, prompt_len, run.stage_model.model.hidden_size),
                         run.workload.seed, INPUT_LAYER, f"prefill_input.{prompt_len}", run.device, run.dtype)


def run_prefill_pass(
    run: RankRun, prompt_len: int, first: torch.Tensor | None, dump: bool, clock: Clock | None = None,
    mark_base: int = 0,
) -> None:
    """One pipelined forward of the whole batch over ``prompt_len`` prompt tokens (KV positions [0, S)).

    ``first``: stage 0's input (B, S, h) from :func:`prefill_input`.
    """
    layout, b, h = run.layout, run.microbatch_size, run.stage_model.model.hidden_size
    pending: list[Any] = []
    last_out: list[torch.Tensor] = []
    for m in range(run.microbatches):
        if clock is not None:
            clock.mark(mark_base + 3 * m)
        if first is not None:
            x = first[m * b:(m + 1) * b]
        else:
            x = torch.empty((b, prompt_len, h), device=run.device, dtype=run.dtype)
            assert layout.recv_from is not None
            run._wait_input(_recv(x, layout.recv_from, run.groups.recv_edge), layout.recv_from,
                            "receiving the prefill input", m, 0)
        if clock is not None:
            clock.mark(mark_base + 3 * m + 1)
        run.activity = Activity(what="prefill forward", microbatch=m)
        y = run.stage_model.prefill(x, m * b)  # (b, S, h)
        if clock is not None:
            clock.mark(mark_base + 3 * m + 2)
        if layout.is_last_stage:
            last_out.append(y)
        else:
            pending += _send(y, layout.send_to, run.groups.send_edge)
            last_out.append(y)  # keep the buffer alive until its send completes
    for work in pending:
        work.wait()
    if dump and layout.is_last_stage:
        run.outputs["prefill"] = torch.cat(last_out, dim=0).float().cpu()  # (B, S, h)


def announce_measuring(run: RankRun) -> None:
    """Rank 0 says when the warm-up is over (before the first measured mark, outside the timed work)."""
    if run.layout.rank == 0:
        w = run.workload
        print(f"executor: warmed up ({w.warmup_iters} iterations), measuring {w.measured_iters}", file=sys.stderr,
              flush=True)


def run_prefill(run: RankRun) -> RankTimings:
    """``warmup_iters + measured_iters`` prefill passes; the measured ones timed."""
    w, mb = run.workload, run.microbatches
    clock = Clock(run.device, 2 + 3 * mb * w.measured_iters)
    timings = RankTimings(measured_iters=w.measured_iters)
    first = prefill_input(run, w.prompt_len)
    for t in range(w.iterations):
        if run.fault is not None:
            run.fault.maybe_trigger(run.layout.rank, run.layout.stage, t)
        measured = t - w.warmup_iters
        if measured == 0:
            announce_measuring(run)
            clock.mark(0)
        dump = run.dump and t == w.iterations - 1
        run_prefill_pass(run, w.prompt_len, first, dump, clock if measured >= 0 else None,
                         2 + 3 * mb * max(measured, 0))
    clock.mark(1)
    clock.sync()
    _sum_marks(clock, timings, mb, w.measured_iters)
    return timings


def _sum_marks(clock: Clock, timings: RankTimings, microbatches: int, measured_iters: int) -> None:
    timings.elapsed_s = clock.elapsed_s(0, 1)
    for i in range(measured_iters * microbatches):
        base = 2 + 3 * i
        timings.idle_s += clock.elapsed_s(base, base + 1)
        timings.compute_s += clock.elapsed_s(base + 1, base + 2)


def run_decode(run: RankRun) -> RankTimings:
    """The closed decode loop of ``warmup_iters + measured_iters`` steps."""
    return DecodeLoop(run).run()


class DecodeLoop:
    """One rank's decode loop: per step and microbatch, receive the input, run the stage, send on.

    The last stage sends the next token's input back to stage 0 (a single-stage plan copies it in
    place). Clock marks per measured microbatch: start, input received, stage done.
    """

    def __init__(self, run: RankRun) -> None:
        self.run_, self.layout, self.w = run, run.layout, run.workload
        self.mb, self.b = run.microbatches, run.microbatch_size
        h = run.stage_model.model.hidden_size
        model = run.stage_model
        if self.w.context_growth == "fixed":
            model.set_fixed_position(self.w.context_len - 1)
        else:
            model.set_position(self.w.context_len - 1)
        self.inputs = [torch.zeros((self.b, h), device=run.device, dtype=run.dtype) for _ in range(self.mb)]  # (b, h)
        if self.layout.is_first_stage:
            first = seeded_normal((self.w.batch_size, h), self.w.seed, INPUT_LAYER, "decode_input", run.device,
                                  run.dtype)
            for m in range(self.mb):
                self.inputs[m].copy_(first[m * self.b:(m + 1) * self.b])
        self.step_fns = self._step_functions()
        self.clock = Clock(run.device, 2 + 3 * self.mb * self.w.measured_iters)
        self.pending: list[list[Any]] = [[] for _ in range(self.mb)]
        self.keep: list[torch.Tensor | None] = [None] * self.mb  # eager outputs kept alive while being sent
        dumping = run.dump and self.layout.is_last_stage
        self.history = _dump_buffer(run, self.w.iterations) if dumping else None  # (T, B, h)
        self.single_stage = self.layout.num_stages == 1

    def _step_functions(self) -> list[Callable[[], tuple[torch.Tensor, torch.Tensor | None]]]:
        run, layout, b, model = self.run_, self.layout, self.b, self.run_.stage_model

        def forward(m: int) -> tuple[torch.Tensor, torch.Tensor | None]:
            y = model.decode(self.inputs[m], m * b)  # (b, h)
            return y, (next_token_input(y) if layout.is_last_stage else None)

        if run.use_graphs:
            run.activity = Activity(what="capturing CUDA graphs")
            return capture_graphs(forward, self.mb, run.device)
        return [lambda m=m: forward(m) for m in range(self.mb)]  # type: ignore[misc]

    def run(self) -> RankTimings:
        w, run = self.w, self.run_
        timings = RankTimings(measured_iters=w.measured_iters)
        for t in range(w.iterations):
            if run.fault is not None:
                run.fault.maybe_trigger(self.layout.rank, self.layout.stage, t)
            if w.context_growth == "grow":
                run.stage_model.set_position(w.context_len - 1 + t)
            measured = t - w.warmup_iters
            if measured == 0:
                announce_measuring(run)
                self.clock.mark(0)
            for m in range(self.mb):
                self._microbatch(m, t, measured)
        run.activity = Activity(what="finishing the last sends", step=w.iterations)
        for works in self.pending:
            for work in works:
                work.wait()
        self.clock.mark(1)
        self.clock.sync()
        _sum_marks(self.clock, timings, self.mb, w.measured_iters)
        if self.history is not None:  # complete: clock.sync() waited for the copies
            run.outputs["decode"] = self.history
        return timings

    def _microbatch(self, m: int, t: int, measured: int) -> None:
        base = 2 + 3 * (measured * self.mb + m)
        if measured >= 0:
            self.clock.mark(base)
        self._receive(m, t)
        if measured >= 0:
            self.clock.mark(base + 1)
        for work in self.pending[m]:
            work.wait()  # the output buffer of m is about to be written again
        self.pending[m] = []  # a gloo work must not be waited on twice
        self.run_.activity = Activity(what="forward (TP all-reduces included)", microbatch=m, step=t)
        y, nxt = self.step_fns[m]()
        if measured >= 0:
            self.clock.mark(base + 2)
        if self.history is not None:  # an asynchronous copy: no host sync inside the timed loop
            self.history[t, m * self.b:(m + 1) * self.b].copy_(y, non_blocking=True)
        self._send(m, t, y, nxt)

    def _receive(self, m: int, t: int) -> None:
        layout, run = self.layout, self.run_
        if not layout.is_first_stage:
            assert layout.recv_from is not None
            run._wait_input(_recv(self.inputs[m], layout.recv_from, run.groups.recv_edge), layout.recv_from,
                            "receiving its input", m, t)
        elif t > 0 and not self.single_stage:
            assert layout.loop_recv_from is not None
            run._wait_input(_recv(self.inputs[m], layout.loop_recv_from, run.groups.loop), layout.loop_recv_from,
                            "receiving the next token's input (loop-back)", m, t)

    def _send(self, m: int, t: int, y: torch.Tensor, nxt: torch.Tensor | None) -> None:
        layout, groups = self.layout, self.run_.groups
        if not layout.is_last_stage:
            self.pending[m] = _send(y, layout.send_to, groups.send_edge)
            self.keep[m] = y
            return
        assert nxt is not None
        if self.single_stage:
            self.inputs[m].copy_(nxt)
        elif t < self.w.iterations - 1:
            self.pending[m] = _send(nxt, layout.loop_send_to, groups.loop)
        self.keep[m] = nxt


def _dump_buffer(run: RankRun, iterations: int) -> torch.Tensor:
    """Host buffer (iterations, B, h) float32 for the decode outputs; pinned on GPU so copies stay async."""
    shape = (iterations, run.workload.batch_size, run.stage_model.model.hidden_size)
    return torch.empty(shape, dtype=torch.float32, pin_memory=run.device.type == "cuda")


def capture_graphs(
    forward: Callable[[int], tuple[torch.Tensor, torch.Tensor | None]], microbatches: int, device: torch.device
) -> list[Callable[[], tuple[torch.Tensor, torch.Tensor | None]]]:
    """One CUDA graph per microbatch (TP all-reduces captured inside); replays return static outputs."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for m in range(microbatches):
            for _ in range(2):
                forward(m)
    torch.cuda.current_stream(device).wait_stream(side)
    torch.cuda.synchronize(device)
    replays: list[Callable[[], tuple[torch.Tensor, torch.Tensor | None]]] = []
    pool = None
    for m in range(microbatches):
        graph = torch.cuda.CUDAGraph()
        # thread_local: the NCCL watchdog thread may query events while this thread captures.
        with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
            outputs = forward(m)
        pool = graph.pool()

        def replay(graph: torch.cuda.CUDAGraph = graph,
                   outputs: tuple[torch.Tensor, torch.Tensor | None] = outputs
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
            graph.replay()
            return outputs

        replays.append(replay)
    torch.cuda.synchronize(device)
    return replays


def time_stage_collectives_s(run: RankRun, payload_shape: tuple[int, ...], calls: int, repeats: int = 20) -> float:
    """Seconds per TP all-reduce on this stage's group, measured the way the step runs them (0 at TP 1).

    A burst of the step's ``calls`` all-reduces of ``payload_shape`` per iteration: captured in one
    CUDA graph and replayed when the step replays graphs (:func:`capture_graphs`, as the forward
    is), issued eagerly otherwise, and timed like the step (clock marks around ``repeats``
    bursts). Eager all-reduces timed after a graph-mode run would add the launch cost the graph
    replay does not pay, and overstate the communication share.
    """
    if run.groups.tp is None or calls == 0:
        return 0.0
    run.activity = Activity(what="timing TP all-reduces")
    tensor = torch.zeros(payload_shape, device=run.device, dtype=run.dtype)  # zeros: sums stay finite

    def burst(_: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        for _ in range(calls):
            dist.all_reduce(tensor, group=run.groups.tp)
        return tensor, None

    if run.use_graphs:
        replay = capture_graphs(burst, 1, run.device)[0]
    else:
        burst(0)  # warm up the group's buffers and connections
        replay = partial(burst, 0)
    clock = Clock(run.device, 2)
    clock.mark(0)
    for _ in range(repeats):
        replay()
    clock.mark(1)
    clock.sync()
    return clock.elapsed_s(0, 1) / (repeats * calls)
