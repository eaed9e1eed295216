"""Time marks: CUDA events on the current stream (GPU) or perf_counter (CPU, where work is synchronous)."""

from __future__ import annotations

import time

import torch


class Clock:
    """``count`` preallocated marks; ``mark(i)`` records, ``elapsed_s(i, j)`` reads after :meth:`sync`."""

    def __init__(self, device: torch.device, count: int) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.events = [torch.cuda.Event(enable_timing=True) for _ in range(count)] if self.cuda else []
        self.times_s = [0.0] * count

    def mark(self, index: int) -> None:
        if self.cuda:
            self.events[index].record()
        else:
            self.times_s[index] = time.perf_counter()

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def elapsed_s(self, start: int, stop: int) -> float:
        if self.cuda:
            return float(self.events[start].elapsed_time(self.events[stop])) / 1e3
        return self.times_s[stop] - self.times_s[start]
