#!/usr/bin/env python3
"""Predict single-GPU step latencies of dense transformer layer stacks with NVIDIA AIConfigurator.

Runs in its own virtualenv (never imported by layerwise), one that has
``aiconfigurator==0.12.0`` (or just ``aiconfigurator-core==0.12.0``, all it imports) installed:

    /work/aic-venv/bin/python aic_predict.py shapes.json out.json [--backend trtllm|vllm|sglang]
        [--system h200_sxm] [--database-mode auto|SILICON|HYBRID|EMPIRICAL|SOL] [--no-kv-proxy] [--no-sol]

Input: a JSON list of shapes
    {"name", "hidden_size", "num_heads", "num_kv_heads", "head_dim", "mlp_hidden_size", "num_layers",
     "phase": "decode"|"prefill", "batch_size", "context_len" (decode), "prompt_len" (prefill),
     optional "vocab_size" (default 32000; only affects the excluded embedding/LM-head ops),
     optional "gated_mlp" (default true: SiLU-gated, gate+up+down; false: plain up+down MLP)}

Output: a JSON object {"meta": {...}, "results": [...]} with, per shape, the predicted step latency in
seconds of the transformer layers only (``step_s``; embedding, LM head, TP/PP comm excluded), the same
including embedding + LM head as AIConfigurator reports it (``step_s_with_embed_lm_head``), a per-op
breakdown (seconds, summed over layers), the data provenance of every op (silicon / empirical / mixed),
the database mode that answered (SILICON; HYBRID when the attention slice was never collected;
"...+kv_proxy" when AIConfigurator has no data for the KV-head count at all and a nearest-KV-head proxy
shape was util-transferred per op), and the speed-of-light reference ``sol_step_s``.

Conventions (matching layerwise's executor):
  * decode at context_len C = one new token per sequence attending over C tokens in total (the new
    token sits at position C-1). AIConfigurator's static_gen step i=0 attends over s = isl + 1 tokens,
    so we pass isl = C - 1, osl = 2 (exactly one decode step).
  * prefill of prompt_len S = static_ctx with isl = S, prefix 0 (causal attention over S tokens).
  * MLP is gated SiLU (LLaMA: gate+up fused GEMM n = 2*mlp, then down GEMM), BF16 weights/KV/FMHA.

The model is described to AIConfigurator as a LlamaForCausalLM HF config.json written to a cache
folder (one per distinct model shape, in a temporary directory by default); everything is read from
the package's bundled H200 database, no network access is needed. Results are deterministic.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

# Everything AIConfigurator needs is local; make sure nothing tries the HF hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Ops that are not part of the layer stack (embedding lookup, LM head, TP all-reduce of the
# embedding, pipeline p2p). With TP=PP=1 the comm ops are 0 anyway.
NON_LAYER_SUFFIXES = ("_embedding", "_logits_gemm", "_embedding_ar", "_p2p")


def _model_dir(shape: dict, cache_root: Path) -> str:
    cfg = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": int(shape["hidden_size"]),
        "num_attention_heads": int(shape["num_heads"]),
        "num_key_value_heads": int(shape["num_kv_heads"]),
        "head_dim": int(shape["head_dim"]),
        "intermediate_size": int(shape["mlp_hidden_size"]),
        "num_hidden_layers": int(shape["num_layers"]),
        "vocab_size": int(shape.get("vocab_size", 32000)),
        "max_position_embeddings": 1 << 20,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    blob = json.dumps(cfg, sort_keys=True).encode()
    d = cache_root / ("llama-" + hashlib.sha1(blob).hexdigest()[:16])
    if not (d / "config.json").exists():
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(cfg, indent=1))
    return str(d)


def _strip(name: str, prefix: str) -> str:
    return name[len(prefix):] if name.startswith(prefix) else name


class Predictor:
    """Loads one (system, backend, version, database_mode) database once and evaluates shapes."""

    def __init__(self, system: str, backend: str, version: str | None, database_mode: str, tp_size: int = 1):
        from aiconfigurator_core.sdk.backends.factory import get_backend
        from aiconfigurator_core.sdk.perf_database import get_database_view, get_latest_database_version

        self.system, self.backend_name, self.database_mode, self.tp_size = system, backend, database_mode, tp_size
        self.version = version or get_latest_database_version(system=system, backend=backend)
        if self.version is None:
            raise SystemExit(f"no AIConfigurator database for system={system} backend={backend}")
        self.database = get_database_view(system, backend, self.version,
                                          allow_missing_data=database_mode != "SILICON",
                                          database_mode=database_mode)
        if self.database is None:
            raise SystemExit(f"failed to load database {system}/{backend}/{self.version}")
        self.backend = get_backend(backend)

    def predict(self, shape: dict, model_path: str) -> dict:
        from aiconfigurator_core.sdk.config import RuntimeConfig
        from aiconfigurator_core.sdk.config_builders import build_model_config
        from aiconfigurator_core.sdk.models import get_model
        from aiconfigurator_core.sdk.models.helpers import resolve_context_fmha_by_data

        phase = shape["phase"]
        bs = int(shape["batch_size"])
        if phase == "decode":
            ctx = int(shape["context_len"])
            mode, isl, osl = "static_gen", ctx - 1, 2
        elif phase == "prefill":
            mode, isl, osl = "static_ctx", int(shape["prompt_len"]), 1
        else:
            raise ValueError(f"unknown phase {phase!r}")

        mc = build_model_config(self.tp_size, 1, 1, None, None, "bfloat16", "bfloat16", "bfloat16", None, None)
        mc.nextn = 0
        resolve_context_fmha_by_data(mc, model_path, self.database, self.backend_name,
                                     is_context_role=mode != "static_gen")
        model = get_model(model_path, mc, self.backend_name)
        rc = RuntimeConfig(batch_size=bs, isl=isl, osl=osl, prefix=0)
        (ctx_lat, _ctx_e, gen_lat, _gen_e, ctx_src, gen_src, _fb) = self.backend._run_static_breakdown(
            model, self.database, rc, mode, 32, 1.0, include_energy=False)
        lat, src = (gen_lat, gen_src) if mode == "static_gen" else (ctx_lat, ctx_src)
        prefix = "generation_" if mode == "static_gen" else "context_"
        per_op = {_strip(k, prefix): v / 1000.0 for k, v in lat.items()}  # ms -> s
        src = {_strip(k, prefix): str(v) for k, v in src.items()}
        if not shape.get("gated_mlp", True):
            # AIConfigurator's LLAMA graph always has a gated MLP (gate+up GEMM n = 2*mlp, SiLU*mul).
            # For a plain 2-matrix MLP, swap those two ops for a GEMM(n = mlp, k = h) and an
            # element-wise activation (mlp in, mlp out), evaluated by the same engine.
            per_op.pop("gate_ffn1_gemm", None)
            per_op.pop("act_gate", None)
            src.pop("gate_ffn1_gemm", None)
            src.pop("act_gate", None)
            tokens = bs if mode == "static_gen" else bs * isl
            per_op["ffn1_gemm"], src["ffn1_gemm"] = self._single_op("gemm", shape, tokens)
            per_op["act"], src["act"] = self._single_op("act", shape, tokens)
        total = sum(per_op.values())
        layers = {k: v for k, v in per_op.items() if not ("_" + k).endswith(NON_LAYER_SUFFIXES)}
        return {
            "step_s": sum(layers.values()),
            "step_s_with_embed_lm_head": total,
            "per_op_s": per_op,
            "per_op_source": src,
            "aic_mode": mode, "aic_isl": isl, "aic_osl": osl,
        }


    def _single_op(self, kind: str, shape: dict, tokens: int) -> tuple[float, str]:
        """One non-gated-MLP op (times num_layers) through the engine; returns (seconds, source)."""
        from aiconfigurator_core.sdk import common
        from aiconfigurator_core.sdk.engine import _evaluate_single_op
        from aiconfigurator_core.sdk.operations import GEMM, ElementWise

        layers, h, mlp = int(shape["num_layers"]), int(shape["hidden_size"]), int(shape["mlp_hidden_size"])
        if kind == "gemm":
            op = GEMM("ffn1_gemm", layers, mlp, h, common.GEMMQuantMode.bfloat16)
        else:
            op = ElementWise("act", layers, mlp, mlp, 0.8)
        res = _evaluate_single_op(self.database, op, is_context=True, batch_size=1, s=1, x=tokens)
        return float(res) / 1000.0, str(getattr(res, "source", ""))


def collected_kv_heads(system: str, backend: str, version: str, phase: str) -> dict[int, list[int]]:
    """{head_dim: sorted GQA/MQA kv-head counts} present in the bundled attention table (MHA rows excluded;
    MHA is its own slice keyed n_kv=0 in AIConfigurator and interpolated over num_heads)."""
    import aiconfigurator_core
    import pandas as pd

    fname = "generation_attention_perf.parquet" if phase == "decode" else "context_attention_perf.parquet"
    root = Path(aiconfigurator_core.__file__).parent / "systems" / "data" / system
    path = root / "attention" / backend / version / fname
    df = pd.read_parquet(path, columns=["num_heads", "num_key_value_heads", "head_dim", "kv_cache_dtype"])
    df = df[(df.kv_cache_dtype == "bfloat16") & (df.num_heads != df.num_key_value_heads)]
    out: dict[int, list[int]] = {}
    for hd, grp in df.groupby("head_dim"):
        out[int(hd)] = sorted(int(v) for v in grp.num_key_value_heads.unique())
    return out


def kv_proxy_shape(shape: dict, kv_table: dict[int, list[int]]) -> dict | None:
    """Nearest collected kv-head count (log2 distance) keeping the GQA group size num_heads/num_kv_heads."""
    import math

    n, nkv, hd = int(shape["num_heads"]), int(shape["num_kv_heads"]), int(shape["head_dim"])
    if nkv == n or nkv <= 0 or n % nkv:
        return None
    cands = kv_table.get(hd) or sorted({v for vs in kv_table.values() for v in vs})
    cands = [c for c in cands if c != nkv]
    if not cands:
        return None
    pk = min(cands, key=lambda c: (abs(math.log2(c) - math.log2(nkv)), c))
    proxy = dict(shape)
    proxy["num_kv_heads"] = pk
    proxy["num_heads"] = pk * (n // nkv)
    return proxy


def util_transfer(orig_sol: dict, proxy: dict, proxy_sol: dict) -> dict:
    """latency(op) = SOL_orig(op) * latency_proxy(op) / SOL_proxy(op): AIConfigurator's own util-transfer
    rule, applied per op from the proxy shape to the requested one."""
    out = {}
    for k, lat_p in proxy.items():
        sp, so = proxy_sol.get(k, 0.0), orig_sol.get(k, 0.0)
        out[k] = so * lat_p / sp if sp > 0 and so > 0 else lat_p
    return out


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shapes", help="input JSON list of shapes")
    ap.add_argument("out", help="output JSON path")
    ap.add_argument("--system", default="h200_sxm")
    ap.add_argument("--backend", default="trtllm", help="trtllm | vllm | sglang (default trtllm)")
    ap.add_argument("--backend-version", default=None, help="database version (default: latest shipped)")
    ap.add_argument("--database-mode", default="auto",
                    help="SILICON | HYBRID | EMPIRICAL | SOL | auto (SILICON, falling back to HYBRID for "
                         "shapes whose attention slice was never collected) (default auto)")
    ap.add_argument("--no-kv-proxy", action="store_true",
                    help="do not fall back to a nearest-collected-KV-head proxy shape (util transfer) when "
                         "AIConfigurator has no data for the shape's KV-head count")
    ap.add_argument("--no-sol", action="store_true", help="skip the speed-of-light reference (sol_step_s)")
    ap.add_argument("--cache-dir", default=None,
                    help="where the per-shape HF config.json folders are written (default: a temporary "
                         "directory removed at exit)")
    ap.add_argument("-v", "--verbose", action="store_true", help="keep AIConfigurator's log output")
    return ap


class ShapeRunner:
    """One database per mode, loaded once; a shape tried mode by mode, then through a KV-head proxy."""

    def __init__(self, args: argparse.Namespace, cache_root: Path) -> None:
        self.args, self.cache_root = args, cache_root
        self.modes = ["SILICON", "HYBRID"] if args.database_mode == "auto" else [args.database_mode.upper()]
        self.predictors: dict[str, Predictor] = {}
        self.kv_tables: dict[str, dict] = {}
        self.version = self.predictor(self.modes[0]).version

    def predictor(self, mode: str) -> Predictor:
        if mode not in self.predictors:
            self.predictors[mode] = Predictor(self.args.system, self.args.backend, self.args.backend_version, mode)
        return self.predictors[mode]

    def run_modes(self, shape: dict) -> tuple[dict | None, list[str]]:
        errors = []
        path = _model_dir(shape, self.cache_root)
        for mode in self.modes:
            try:
                rec = self.predictor(mode).predict(shape, path)
                rec["database_mode"] = mode
                return rec, errors
            except Exception as exc:  # report and try the next mode
                errors.append(f"{mode}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        return None, errors

    def _proxy(self, shape: dict, sol: dict, errors: list[str]) -> dict | None:
        phase = shape["phase"]
        if phase not in self.kv_tables:
            self.kv_tables[phase] = collected_kv_heads(self.args.system, self.args.backend, self.version, phase)
        proxy = kv_proxy_shape(shape, self.kv_tables[phase])
        if proxy is None:
            return None
        ppred, perr = self.run_modes(proxy)
        errors += [f"proxy {e}" for e in perr]
        if ppred is None:
            return None
        psol = self.predictor("SOL").predict(proxy, _model_dir(proxy, self.cache_root))
        per_op = util_transfer(sol["per_op_s"], ppred["per_op_s"], psol["per_op_s"])
        layers = {k: v for k, v in per_op.items() if not ("_" + k).endswith(NON_LAYER_SUFFIXES)}
        return dict(ppred, per_op_s=per_op, step_s=sum(layers.values()), step_s_with_embed_lm_head=sum(per_op.values()),
                    database_mode=f"{ppred['database_mode']}+kv_proxy",
                    kv_proxy={"num_heads": proxy["num_heads"], "num_kv_heads": proxy["num_kv_heads"]})

    def one(self, shape: dict) -> dict:
        t1 = time.perf_counter()
        rec = {"name": shape.get("name"), "shape": shape}
        pred, errors = self.run_modes(shape)
        sol = None
        if not self.args.no_sol or (pred is None and not self.args.no_kv_proxy):
            sol = self.predictor("SOL").predict(shape, _model_dir(shape, self.cache_root))
        if pred is None and not self.args.no_kv_proxy and sol is not None:
            pred = self._proxy(shape, sol, errors)
        if pred is not None:
            rec.update(pred)
        if sol is not None and not self.args.no_sol:
            rec["sol_step_s"] = sol["step_s"]
            rec["sol_per_op_s"] = sol["per_op_s"]
        if errors:
            rec["errors"] = errors
        rec["runtime_s"] = time.perf_counter() - t1
        if "step_s" in rec:
            print(f"{rec['name']}: {rec['step_s'] * 1e3:.4f} ms layers "
                  f"({rec['step_s_with_embed_lm_head'] * 1e3:.4f} ms with embed+LM head) "
                  f"[{rec['database_mode']}, {rec['runtime_s']:.3f} s]", file=sys.stderr)
        else:
            print(f"{rec['name']}: FAILED {errors}", file=sys.stderr)
        return rec


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.verbose:
        logging.disable(logging.WARNING)
    import warnings
    warnings.filterwarnings("ignore")
    import importlib.metadata as md

    t0 = time.perf_counter()
    shapes = json.loads(Path(args.shapes).read_text())
    with tempfile.TemporaryDirectory(prefix="aic_predict_") as tmp:
        runner = ShapeRunner(args, Path(args.cache_dir or tmp))
        t_load = time.perf_counter() - t0
        results = [runner.one(shape) for shape in shapes]
    out = {
        "meta": {
            "tool": "aiconfigurator", "aiconfigurator_core_version": md.version("aiconfigurator-core"),
            "system": args.system, "backend": args.backend, "backend_version": runner.version,
            "database_mode_requested": args.database_mode, "tp_size": 1, "dtype": "bfloat16",
            "units": "seconds", "load_s": t_load, "total_s": time.perf_counter() - t0,
            "decode_convention": "context_len C -> static_gen isl=C-1, osl=2 (one step, attention over C tokens)",
            "prefill_convention": "prompt_len S -> static_ctx isl=S, prefix=0",
            "step_s_excludes": [s.lstrip("_") for s in NON_LAYER_SUFFIXES],
        },
        "results": results,
    }
    Path(args.out).write_text(json.dumps(out, indent=1))
    return 0 if all("step_s" in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
