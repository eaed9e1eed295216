"""One rank's part of each iteration: drop what the plan says is gone, lay out the batch, run the
stage (a CUDA-graph replay for a padded decode batch, else eagerly), and pass the result on: the
next stage's rows, or the sampled tokens (to the host in a one-stage plan, back to stage 0 in a
pipeline). Every rank runs every plan in the order rank 0 made them; ranks other than rank 0 loop
in :meth:`RankServing.follow` until rank 0 says stop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from executor.serving.attention import DeviceBatch, to_device
from executor.serving.clock import RunClock
from executor.serving.graphs import DecodeGraphs
from executor.serving.inputs import HostBatch, TokenHistory, prepare_batch, release
from executor.serving.messages import CLOCK, PLAN, STOP, PlanMessage, recv_message
from executor.serving.pages import PagePool
from executor.serving.stage import ServingStage
from executor.serving.transport import Links, Outbox, TokenInbox


@dataclass(frozen=True)
class Executed:
    """One iteration on this rank: the sampled tokens when they are on this host (a one-stage plan's
    last stage), how long the forward took from its first launch to the device being done, and
    whether it replayed a graph."""

    tokens: tuple[int, ...] | None
    forward_s: float
    graph: bool


class RankServing:
    """Everything one rank serves with: its stage, KV pages, token ids (stage 0), graphs, peers."""

    def __init__(self, stage: ServingStage, pool: PagePool, max_pages: int, graphs: DecodeGraphs | None,
                 links: Links, clock: RunClock, history: TokenHistory | None) -> None:
        self.stage, self.pool, self.max_pages, self.graphs = stage, pool, max_pages, graphs
        self.links, self.clock, self.history = links, clock, history
        layout = links.layout
        self.device = stage.weights.device
        self.num_stages = layout.num_stages
        self.outbox = Outbox()
        self.inbox: TokenInbox | None = None
        if layout.is_first_stage and layout.num_stages > 1:
            assert layout.loop_recv_from is not None and links.groups is not None
            self.inbox = TokenInbox(layout.loop_recv_from, links.groups.loop, self.device, layout.num_stages - 2)
        self.graph_iterations = 0
        self.eager_iterations = 0

    def graph_ready(self, rows: int) -> bool:
        return self.graphs is not None and rows in self.graphs.graphs

    # --- one iteration ----------------------------------------------------------------------------

    def execute(self, message: PlanMessage) -> Executed:
        layout, links = self.links.layout, self.links
        self.outbox.flush()  # the previous iteration's sends are done: their buffers may be reused
        if links.plan_peers:
            self.outbox.send_message(message, links.plan_peers, links.ctrl)
        release(message, self.pool, self.history)
        host = prepare_batch(message, self.pool, self.history)
        rows_in = None
        if not layout.is_first_stage:
            assert layout.recv_from is not None and links.groups is not None
            rows_in = torch.empty((message.rows, self.stage.weights.model.hidden_size), device=self.device,
                                  dtype=self.stage.weights.dtype)  # (R, h)
            work = dist.irecv(rows_in, src=layout.recv_from, group=links.groups.recv_edge)
            assert work is not None
            work.wait()
        graph = message.graph and self.graph_ready(message.rows)
        batch = None
        if graph:
            assert self.graphs is not None
            self.graphs.fill(host, rows_in)
        else:
            batch = to_device(host, self.stage.selection.path, self.device, self.pool.page_tokens, self.max_pages)
        begin_s = time.perf_counter()  # the forward: from its first launch to the device being done
        out = self._forward(host, batch, rows_in)
        if self.device.type == "cuda":  # this stream only: a posted token receive must not be waited for
            torch.cuda.current_stream(self.device).synchronize()
        forward_s = time.perf_counter() - begin_s
        if graph:
            self.graph_iterations += 1
        else:
            self.eager_iterations += 1
        tokens = None
        if layout.is_last_stage:
            tokens = self._hand_on_tokens(message, out)
        else:
            self._hand_on_rows(message, out, graph)
        if self.inbox is not None:
            self.inbox.post(message)
        return Executed(tokens, forward_s, graph)

    def _forward(self, host: HostBatch, batch: DeviceBatch | None, rows_in: torch.Tensor | None) -> torch.Tensor:
        """The stage's output: hidden rows (R, h), or on the last stage the tokens of the emitting rows.
        ``batch`` None: replay the graph of ``host.rows`` rows (its inputs already filled)."""
        stage = self.stage
        if batch is None:
            assert self.graphs is not None
            out = self.graphs.launch(host.rows)
            return out[:host.num_tokens] if stage.weights.shape.last else out.clone()
        if rows_in is None:
            assert batch.input_ids is not None
            x = stage.embed(batch.input_ids)
        else:
            x = rows_in
        hidden = stage.forward(x, batch)  # (R, h)
        return stage.sample(hidden.index_select(0, batch.logits_rows)) if stage.weights.shape.last else hidden

    def _hand_on_tokens(self, message: PlanMessage, tokens: torch.Tensor) -> tuple[int, ...] | None:
        """A one-stage plan: the tokens to the host (each TP rank keeps its own history). A pipeline:
        (count, tokens, middle stages' ticks) back to stage 0."""
        if self.num_stages == 1:
            values = tuple(int(t) for t in tokens.tolist())
            self.take_tokens(message, values)
            return values
        links = self.links
        assert links.groups is not None
        head = torch.tensor([tokens.numel()], dtype=torch.int64, device=self.device)
        stamps = torch.tensor(message.stamps, dtype=torch.int64, device=self.device)
        packed = torch.cat([head, tokens.to(torch.int64), stamps])
        for dst in links.layout.loop_send_to:
            self.outbox.send(packed, dst, links.groups.loop)
        return None

    def _hand_on_rows(self, message: PlanMessage, out: torch.Tensor, graph: bool) -> None:
        layout, links = self.links.layout, self.links
        assert links.groups is not None
        if not layout.is_first_stage:
            message = message.with_stamp(self.clock.ticks())  # a middle stage: when its forward ended
        self.outbox.send_message(message, layout.send_to, links.ctrl)
        for dst in layout.send_to:
            self.outbox.send(out, dst, links.groups.send_edge)

    def take_tokens(self, message: PlanMessage, tokens: tuple[int, ...]) -> None:
        """Record an iteration's sampled tokens in stage 0's token ids (its emitting items, in order)."""
        if self.history is None:
            return
        emitting = message.emitting
        if len(tokens) != len(emitting):
            raise RuntimeError(f"iteration {message.iteration}: {len(tokens)} tokens for {len(emitting)} requests")
        for item, token in zip(emitting, tokens, strict=True):
            self.history.append(item.request_id, token)

    def take_token_message(self) -> tuple[PlanMessage, tuple[int, ...], list[int]]:
        """Stage 0 of a pipeline: the oldest token message (blocks), recorded in the token ids."""
        assert self.inbox is not None
        entry, tokens, ticks = self.inbox.take()
        self.take_tokens(entry.message, tuple(tokens))
        return entry.message, tuple(tokens), ticks

    # --- ranks other than 0 -----------------------------------------------------------------------

    def follow(self) -> None:
        """Run rank 0's plans until it says stop; pass heartbeats and the stop down the pipeline."""
        links, layout = self.links, self.links.layout
        source = links.plan_source
        assert source is not None
        while True:
            message = recv_message(source, links.ctrl)
            if message.kind != PLAN:
                if not layout.is_last_stage:
                    self.outbox.send_message(message, layout.send_to, links.ctrl)
                if message.kind == STOP:
                    break
                if message.kind == CLOCK:
                    self.clock.restart(message.iteration)
                continue
            if self.inbox is not None:
                while self.inbox.taken < message.completions:
                    self.take_token_message()
            self.execute(message)
        self.outbox.flush()
