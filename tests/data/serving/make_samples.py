"""Writes the small synthetic trace samples beside this file (made up here, not downloaded): the
simple format as CSV and JSONL, the Azure LLM inference trace (2023 and 2024 timestamp styles) and
BurstGPT (releases 1/2 and 3). Run it again only to change them: ``python make_samples.py``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROWS = 36


def _rows(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gaps_s = np.round(rng.exponential(0.25, ROWS), 4)
    gaps_s[0] = 0.0
    prompts = np.maximum(1, np.round(rng.lognormal(6.5, 0.8, ROWS))).astype(int)
    outputs = np.maximum(1, np.round(rng.lognormal(4.5, 1.0, ROWS))).astype(int)
    return np.cumsum(gaps_s), prompts, outputs


def main() -> None:
    times, prompts, outputs = _rows(1)
    lines = ["arrival_s,prompt_tokens,output_tokens"]
    lines += [f"{t + 0.5:.4f},{p},{o}" for t, p, o in zip(times, prompts, outputs, strict=True)]
    (HERE / "simple.csv").write_text("\n".join(lines) + "\n")
    (HERE / "simple.jsonl").write_text("".join(
        json.dumps({"arrival_s": round(float(t), 4), "prompt_tokens": int(p), "output_tokens": int(o)}) + "\n"
        for t, p, o in zip(times, prompts, outputs, strict=True)))

    start = dt.datetime(2023, 11, 16, 18, 17, 3)
    times, prompts, outputs = _rows(2)
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for t, p, o in zip(times, prompts, outputs, strict=True):  # seven fractional digits, as the 2023 files
        whole = int(t)
        frac = round((t - whole) * 1e7) + 9799600
        stamp = start + dt.timedelta(seconds=whole + frac // 10_000_000)
        lines.append(f"{stamp:%Y-%m-%d %H:%M:%S}.{frac % 10_000_000:07d},{p},{o}")
    (HERE / "azure_2023.csv").write_text("\n".join(lines) + "\n")

    start = dt.datetime(2024, 5, 10, 23, 59, 58)  # crosses midnight
    times, prompts, outputs = _rows(3)
    for index in range(0, ROWS, 5):  # every fifth row on a whole second (written with no fraction), gaps kept
        times[index:] += np.ceil(times[index]) - times[index]
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for index, (t, p, o) in enumerate(zip(times, prompts, outputs, strict=True)):
        stamp = start + dt.timedelta(microseconds=round(t * 1e6))
        text = f"{stamp:%Y-%m-%d %H:%M:%S}" + (f".{stamp.microsecond:06d}" if index % 5 else "")
        lines.append(f"{text}+00:00,{p},{o}")
    (HERE / "azure_2024.csv").write_text("\n".join(lines) + "\n")

    times, prompts, outputs = _rows(4)
    lines = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    for index, (t, p, o) in enumerate(zip(times, prompts, outputs, strict=True)):
        model = "GPT-4" if index % 3 == 0 else "ChatGPT"
        kind = "API log" if index % 4 == 0 else "Conversation log"
        lines.append(f"{t + 5.0:.0f},{model},{p},{o},{p + o},{kind}" if index == 0 else
                     f"{t + 5.0:.3f},{model},{p},{o},{p + o},{kind}")
    (HERE / "burstgpt.csv").write_text("\n".join(lines) + "\n")

    times, prompts, outputs = _rows(5)
    lines = ["Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    for index, (t, p, o) in enumerate(zip(times, prompts, outputs, strict=True)):
        lines.append(f"{t:.3f},{1000 + index // 4},{0.5 + (index % 4):.2f},ChatGPT,{p},{o},{p + o},Conversation log")
    (HERE / "burstgpt_3.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
