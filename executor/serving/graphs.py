"""Decode-only iterations replay CUDA graphs, one per batch size (vLLM's FULL graphs for uniform decode).

The scheduler pads a decode-only batch of n sequences to the smallest captured size b >= n
(``IterationPlan.padded_tokens``); its b - n extra rows decode a one-token context in the scratch page.
Each graph reads static buffers (token ids or the received hidden rows, slots, ``seqused_k``, the
block table) that the host fills before the replay, and runs the stage's forward (and, on the last
stage, the sampler) over b rows; the TP all-reduces are captured inside, as in the fixed-batch
executor. Graphs need the ``paged-varlen`` attention path: its shapes depend on b alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import torch

from executor.serving.attention import DeviceBatch
from executor.serving.inputs import HostBatch
from executor.serving.stage import ServingStage


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    batch: DeviceBatch  # static inputs
    x: torch.Tensor | None  # (b, h) static input of a non-first stage
    out: torch.Tensor  # (b, h) hidden, or (b,) tokens on the last stage


class DecodeGraphs:
    """Graphs of ``stage``'s decode forward at each size of ``sizes`` (captured by :meth:`capture`)."""

    def __init__(self, stage: ServingStage, max_pages: int, max_context_tokens: int) -> None:
        self.stage = stage
        self.max_pages = max_pages
        self.max_context_tokens = max_context_tokens
        self.graphs: dict[int, _Graph] = {}
        self.failures: dict[int, str] = {}
        self._pool: Any = None

    def _static(self, size: int) -> tuple[DeviceBatch, torch.Tensor | None]:
        weights, device = self.stage.weights, self.stage.weights.device
        scratch_page = self.stage.k_pages[0].shape[0] - 1
        page_tokens = self.stage.selection.page_tokens
        dummy = HostBatch(rows=size, num_tokens=size, query_starts=tuple(range(size + 1)), context_tokens=(1,) * size,
                          page_lists=((scratch_page,),) * size, slots=(scratch_page * page_tokens,) * size,
                          logits_rows=tuple(range(size)), input_ids=(0,) * size)
        table = torch.zeros((size, self.max_pages), dtype=torch.int32, device=device)
        table[:, 0] = scratch_page
        batch = DeviceBatch(
            host=dummy,
            slots=torch.full((size,), scratch_page * page_tokens, dtype=torch.int64, device=device),
            cu_seq_q=torch.arange(size + 1, dtype=torch.int32, device=device),
            seqused_k=torch.ones(size, dtype=torch.int32, device=device),
            cu_seq_k=torch.arange(size + 1, dtype=torch.int32, device=device),
            max_q=1, max_k=self.max_context_tokens,
            logits_rows=torch.arange(size, dtype=torch.int64, device=device),
            input_ids=torch.zeros(size, dtype=torch.int64, device=device) if weights.shape.first else None,
            block_table=table,
        )
        x = None if weights.shape.first else torch.zeros((size, weights.model.hidden_size), device=device,
                                                         dtype=weights.dtype)
        return batch, x

    def _body(self, batch: DeviceBatch, x: torch.Tensor | None) -> torch.Tensor:
        stage = self.stage
        if x is None:
            assert batch.input_ids is not None
            x = stage.embed(batch.input_ids)
        hidden = stage.forward(x, batch)  # (b, h)
        return stage.sample(hidden) if stage.weights.shape.last else hidden

    def capture(self, sizes: tuple[int, ...]) -> None:
        """Capture a graph per size (a failure is recorded, that size then runs eagerly)."""
        device = self.stage.weights.device
        for size in sizes:
            try:
                batch, x = self._static(size)
                side = torch.cuda.Stream(device)
                side.wait_stream(torch.cuda.current_stream(device))
                with torch.cuda.stream(side):
                    for _ in range(2):
                        self._body(batch, x)
                torch.cuda.current_stream(device).wait_stream(side)
                torch.cuda.synchronize(device)
                graph = torch.cuda.CUDAGraph()
                # thread_local: the NCCL watchdog thread may query events while this thread captures.
                with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                    out = self._body(batch, x)
                self._pool = graph.pool()
                self.graphs[size] = _Graph(graph, batch, x, out)
            except Exception as exc:  # this size runs eagerly; the run's environment says why
                self.failures[size] = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
                torch.cuda.synchronize(device)
        torch.cuda.synchronize(device)

    def keep_only(self, sizes: set[int]) -> None:
        """Drop graphs of sizes another rank could not capture (every rank must replay the same)."""
        for size in list(self.graphs):
            if size not in sizes:
                del self.graphs[size]
                self.failures.setdefault(size, "not captured on another rank")

    def fill(self, host: HostBatch, x: torch.Tensor | None) -> None:
        """Copy ``host`` (and a non-first stage's received rows ``x``) into the static inputs of the
        graph of ``host.rows`` rows."""
        entry = self.graphs[host.rows]
        batch, items = entry.batch, len(host.context_tokens)
        scratch_page = self.stage.k_pages[0].shape[0] - 1
        context = list(host.context_tokens) + [1] * (host.rows - items)
        table = [list(p) + [0] * (self.max_pages - len(p)) for p in host.page_lists]
        table += [[scratch_page] + [0] * (self.max_pages - 1)] * (host.rows - items)
        batch.slots.copy_(torch.tensor(host.slots, dtype=torch.int64), non_blocking=True)
        batch.seqused_k.copy_(torch.tensor(context, dtype=torch.int32), non_blocking=True)
        assert batch.cu_seq_k is not None
        batch.cu_seq_k.copy_(torch.tensor([0, *accumulate(context)], dtype=torch.int32), non_blocking=True)
        assert batch.block_table is not None
        batch.block_table.copy_(torch.tensor(table, dtype=torch.int32), non_blocking=True)
        if batch.input_ids is not None:
            assert host.input_ids is not None
            batch.input_ids.copy_(torch.tensor(host.input_ids, dtype=torch.int64), non_blocking=True)
        if entry.x is not None:
            assert x is not None
            entry.x.copy_(x)

    def launch(self, rows: int) -> torch.Tensor:
        """Replay the graph of ``rows`` rows (filled by :meth:`fill`); its output (rows past the
        scheduled decodes are padding)."""
        entry = self.graphs[rows]
        entry.graph.replay()
        return entry.out
