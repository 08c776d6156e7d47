"""kvplan's Gated DeltaNet mixer kernels against aiconfigurator's measured GDN kernel tables, and the scan's fit.

aiconfigurator 0.12.0 ships ``aiconfigurator_core/systems/data/<gpu>/linear_attention/<engine>/<version>/
gdn_perf.parquet`` for vLLM 0.24.0, SGLang 0.5.14 and TensorRT-LLM 1.3.0rc20 on H100 SXM, H200 and B200 (and GB200).
Its columns: ``kernel_source``, ``phase`` (``context`` / ``generation``), ``batch_size``, ``seq_len`` (tokens per
prompt; 1 at generation), ``num_k_heads`` / ``num_v_heads`` (one TP rank's heads: the Qwen3.5 layers at TP 1-8),
``head_k_dim`` / ``head_v_dim`` (128), ``d_conv`` (4) and ``latency`` in ms of one layer's kernel. Unlike the Mamba2
tables (``mamba_compare.py``), every kernel is there: at context ``causal_conv1d_fn`` and the chunked delta rule
(``chunk_gated_delta_rule``, the fla Triton kernels, TensorRT-LLM and SGLang; ``chunk_gated_delta_rule_flashinfer``,
FlashInfer's GDN prefill kernel, vLLM 0.24.0), at generation ``causal_conv1d_update`` and the recurrent state update
(``fused_recurrent_gated_delta_rule`` / ``..._packed_decode``).

kvplan's side (:func:`kvplan.latency._recurrent_prefill_s` and :func:`kvplan.latency._recurrent_decode_s` of the row's
layer on one rank, the engine's calibration; the in/out projection GEMMs are in neither side): at context the conv1d
by its bytes plus the chunked delta rule by its FLOPs (:func:`kvplan.recurrent.deltanet_flops_per_token`) at
``gdn_scan_eff``, plus the launches; at generation the conv and recurrent state read and written per sequence. The
state is taken as fp32, as the tables' Qwen3.5 layers keep it (aiconfigurator ``sdk/models/qwen35.py``: every
bundled Qwen3.5 config pins ``mamba_ssm_dtype`` "float32", SGLang's ``mamba2_state_dtype`` default too).

1. ``--collect`` (needs aiconfigurator and pandas; does not import kvplan) writes the H100 SXM, H200 and B200 tables,
   one row per (kernel, phase, batch, prompt length, heads), to ``benchmarks/data/aiconfigurator_gdn.json``. Without
   aiconfigurator it says so and exits 0::

       /work/aic-venv/bin/python benchmarks/gdn_compare.py --collect

2. default (kvplan only): per engine, GPU and phase the median and worst ``|ln(kvplan / measured)|`` of the mixer
   (both kernels summed), the median signed ``ln``, then by token band.
3. ``--fit``: the chunked delta rule's share of the 16-bit peak per engine, the median over the context rows of at
   least :data:`FIT_TOKENS` tokens (past the kernels' short-prompt floor) of FLOPs / (peak x (measured - launches)),
   GPU by GPU and over the Hopper rows (the figure a calibration takes; Blackwell is priced as Hopper times
   ``blackwell_compute_eff``, as every kernel); then the conv1d's bytes per second per SM (``conv1d_sm_bytes_s``,
   :func:`fit_conv1d`: vLLM's and SGLang's ``causal_conv1d_fn`` rows of at least :data:`FIT_CONV_TOKENS` tokens, fitted
   on :data:`FIT_CONV_GPUS`, H100 SXM held out).
4. ``--conv1d``: the conv1d kernel alone against its measured rows, by engine, GPU and token band, with the per-SM
   ceiling (:func:`kvplan.latency._conv1d_bandwidth`) and by the bytes at ``elementwise_mem_eff`` alone.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import frame_rows, load_row_tables, read_tables, write_row_tables  # noqa: E402 - where aiconfigurator's tables lie, shared

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_gdn.json"
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm"}
ENGINES = {"vllm": "0.24.0", "sglang": "0.5.14", "trtllm": "1.3.0rc20"}
COLUMNS = ("kernel_source", "phase", "batch_size", "seq_len", "num_k_heads", "head_k_dim", "num_v_heads", "head_v_dim",
           "d_conv", "latency")  # fmt: skip
# Kept of the tables' sweep (1-1024 prompts at context; key heads 1-16 on a rank): one prompt and 16 prompts at
# context, and the layers with 16 key heads (TP 1 of every Qwen3.5 model, the only ones TensorRT-LLM's table holds) and
# 2 (their TP 8 slices), so the committed sample stays small
CONTEXT_BATCHES = (1, 16)
K_HEADS = (2, 16)
FIT_TOKENS = 4096  # the fitted rows: the chunk kernels' time is flat below about 64 tokens and linear past ~1K
STATE_DTYPE = "fp32"
# The conv1d's per-SM ceiling (Calibration.conv1d_sm_bytes_s): fitted on the context rows of at least 8,192 tokens
# (past the launch-bound short prompts: 2-5 us flat up to ~256 tokens) on H200 and B200, whose HBM gives an SM 36 and
# 52 GB/s (bandwidth / sm_count), twice the ceiling and more; H100 SXM (25 GB/s an SM, 20 at elementwise_mem_eff) is
# held out, its rows near both limits. The engines whose tables time the Triton kernel's behaviour: vLLM 0.24.0 and
# SGLang 0.5.14; TensorRT-LLM's conv1d rows are faster than their bytes allow (docs/cost.md), not fitted.
FIT_CONV_TOKENS = 8192
FIT_CONV_GPUS = ("h200", "b200")
CONV_ENGINES = ("vllm", "sglang")


def collect(out: Path) -> int:
    read = read_tables(SYSTEMS, ENGINES, "linear_attention", "gdn_perf.parquet")
    if read is None:
        return 0
    tables = []
    for gpu, engine, version, _, source, frame in read:
        frame = frame[
            ((frame["phase"] == "generation") | frame["batch_size"].isin(CONTEXT_BATCHES))
            & frame["num_k_heads"].isin(K_HEADS)
        ]
        key = ["kernel_source", "phase", "batch_size", "seq_len", "num_k_heads", "num_v_heads"]
        frame = frame.drop_duplicates(subset=key).sort_values(key)
        tables.append({"gpu": gpu, "engine": engine, "version": version, "source": source, "columns": list(COLUMNS),
                       "rows": frame_rows(frame, COLUMNS)})  # fmt: skip
    write_row_tables(out, tables)
    return 0


def load(path: Path = DATA) -> list[dict]:
    return load_row_tables(path)


def layer_spec(row: dict):  # noqa: ANN201
    """A one-layer model whose only layer is the row's Gated DeltaNet mixer (its rank's heads), fp32 state."""
    from kvplan.spec import ModelSpec

    heads = row["num_v_heads"]
    # hidden, vocab and MLP sizes are placeholders: the mixer kernels priced here read none of them
    return ModelSpec.model_validate({
        "name": f"gdn-{row['num_k_heads']}k-{heads}v", "source": "aiconfigurator 0.12.0 gdn_perf row",
        "hidden_size": 1024, "vocab_size": 32000, "num_layers": 1, "num_attention_heads": heads, "num_kv_heads": heads,
        "head_dim": row["head_v_dim"], "intermediate_size": 4096, "dtype": "bf16", "max_position_embeddings": 1 << 20,
        "rope": None,
        "layers": {"kinds": {"gdn": {"type": "recurrent", "variant": "gated_deltanet", "n_heads": heads,
                                     "n_k_heads": row["num_k_heads"], "head_k_dim": row["head_k_dim"],
                                     "head_v_dim": row["head_v_dim"], "d_conv": row["d_conv"],
                                     "state_dtype": STATE_DTYPE, "mlp": False}},
                   "pattern": ["gdn"]},
    })  # fmt: skip


def _ctx(row: dict, gpu_name: str, engine: str):  # noqa: ANN202
    from kvplan import latency
    from kvplan.hardware import resolve_gpu

    spec = layer_spec(row)
    return latency._make_ctx(spec, resolve_gpu(gpu_name), tp=1, weights_dtype="bf16",
                             cal=latency.calibration(engine), eager=row["phase"] == "context")  # fmt: skip


def mixer_seconds(row: dict, gpu_name: str, engine: str) -> float:
    """kvplan's whole GDN mixer (conv1d and the delta rule) of one layer at the row's phase, batch and length."""
    from kvplan import latency
    from kvplan.memory import cache_plan

    c = _ctx(row, gpu_name, engine)
    if row["phase"] == "context":
        terms = latency._recurrent_terms(c.spec, range(1), 1)
        return latency._recurrent_prefill_s(c, terms, row["batch_size"] * row["seq_len"], prompts=row["batch_size"])
    [(_, layer)] = cache_plan(c.spec, "bf16", tp=1).stages[0].groups
    return latency._recurrent_decode_s(c, c.spec.kind("gdn"), row["batch_size"] * layer.state_bytes)


def pairs(table: dict) -> list[dict]:
    """The table's two kernels of one call summed: one row per (phase, batch, length, heads) holding both."""
    groups: dict[tuple, dict] = {}
    for r in table["rows"]:
        key = (r["phase"], r["batch_size"], r["seq_len"], r["num_k_heads"], r["num_v_heads"])
        g = groups.setdefault(key, {**r, "kernels": {}})
        g["kernels"][r["kernel_source"]] = r["latency"] / 1e3
    return [{**g, "measured_s": sum(g["kernels"].values())} for g in groups.values() if len(g["kernels"]) == 2]


def compare(tables: list[dict]) -> list[dict]:
    out = []
    for t in tables:
        for row in pairs(t):
            kv = mixer_seconds(row, t["gpu"], t["engine"])
            out.append({"engine": t["engine"], "gpu": t["gpu"], "phase": row["phase"], "batch": row["batch_size"],
                        "tokens": row["batch_size"] * row["seq_len"], "kvplan_s": kv, "measured_s": row["measured_s"],
                        "ln": math.log(kv / row["measured_s"])})  # fmt: skip
    return out


def band(r: dict) -> str:
    if r["phase"] != "context":
        return f"decode batch {'<= 16' if r['batch'] <= 16 else '> 16'}"
    for edge in (64, 1024, 8192):
        if r["tokens"] <= edge:
            return f"prefill <= {edge} tokens"
    return "prefill > 8192 tokens"


def render(rows: list[dict]) -> str:
    lines = []
    for key, label in ((lambda r: (r["engine"], r["gpu"], r["phase"]), "engine, GPU, phase"),
                       (lambda r: (r["engine"], band(r)), "engine, band")):  # fmt: skip
        groups: dict[tuple, list[float]] = {}
        for r in rows:
            groups.setdefault(key(r), []).append(r["ln"])
        lines.append(f"by {label}:")
        for k in sorted(groups):
            lns = groups[k]
            lines.append(f"  {' '.join(k)}: {len(lns)} rows; median |ln| {statistics.median(abs(x) for x in lns):.3f}, "
                         f"worst {max(abs(x) for x in lns):.3f}, signed {statistics.median(lns):+.3f}")  # fmt: skip
    return "\n".join(lines)


def chunk_kernel(row: dict) -> bool:
    return row["kernel_source"].startswith("chunk_gated_delta_rule")


def fit_effs(tables: list[dict], *, occupancy: bool = True) -> dict[tuple[str, str], float]:
    """(engine, GPU) -> the delta rule's share of the GPU's 16-bit peak (module docstring, step 3), on the SMs the
    engine's kernel keeps busy (:func:`kvplan.latency.scan_occupancy`; ``occupancy`` False: on all of them)."""
    from kvplan import latency
    from kvplan.hardware import resolve_gpu
    from kvplan.recurrent import DELTANET_SCAN_KERNELS, deltanet_flops_per_token

    out = {}
    for t in tables:
        cal, gpu = latency.calibration(t["engine"]), resolve_gpu(t["gpu"])
        peak = gpu.bf16_dense_tflops * 1e12 * (cal.blackwell_compute_eff if gpu.architecture == "blackwell" else 1.0)
        effs = []
        for r in t["rows"]:
            tokens = r["batch_size"] * r["seq_len"]
            if r["phase"] != "context" or not chunk_kernel(r) or tokens < FIT_TOKENS:
                continue
            kind = layer_spec(r).kind("gdn")
            busy = r["latency"] / 1e3 - DELTANET_SCAN_KERNELS * cal.eager_kernel_s
            share = latency.scan_occupancy(gpu, cal, prompts=r["batch_size"], heads=kind.n_heads) if occupancy else 1
            effs.append(deltanet_flops_per_token(kind) * tokens / (peak * share * busy))
        out[(t["engine"], t["gpu"])] = statistics.median(effs)
    return out


def conv1d_bytes(row: dict) -> float:
    """Bytes the row's prefill conv1d moves (:func:`kvplan.recurrent.conv_token_bytes` a token, the taps once)."""
    from kvplan.recurrent import conv_token_bytes, mixer_work

    kind = layer_spec(row).kind("gdn")
    return conv_token_bytes(kind) * row["batch_size"] * row["seq_len"] + mixer_work(kind).call_bytes


def conv1d_rows(tables: list[dict], engine: str, gpus: tuple[str, ...]) -> list[tuple[str, dict]]:
    """(GPU, row) of the engine's context ``causal_conv1d_fn`` rows of at least :data:`FIT_CONV_TOKENS` tokens."""
    return [(t["gpu"], r) for t in tables if t["engine"] == engine and t["gpu"] in gpus for r in t["rows"]
            if conv1d_row(r) and r["batch_size"] * r["seq_len"] >= FIT_CONV_TOKENS]  # fmt: skip


def conv1d_row(row: dict) -> bool:
    return row["kernel_source"] == "causal_conv1d_fn"


def sm_rates(tables: list[dict], engine: str, gpus: tuple[str, ...]) -> list[float]:
    """Bytes per second per SM of each of :func:`conv1d_rows`: conv bytes / ((measured - one eager launch) x
    sm_count), the engine's ``eager_kernel_s``."""
    from kvplan import latency
    from kvplan.hardware import resolve_gpu

    launch = latency.calibration(engine).eager_kernel_s
    return [conv1d_bytes(r) / ((r["latency"] / 1e3 - launch) * resolve_gpu(g).sm_count)
            for g, r in conv1d_rows(tables, engine, gpus)]  # fmt: skip


def fit_conv1d(tables: list[dict], engine: str) -> float:
    """``conv1d_sm_bytes_s`` of ``engine``: the median of :func:`sm_rates` over the :data:`FIT_CONV_GPUS` rows."""
    return statistics.median(sm_rates(tables, engine, FIT_CONV_GPUS))


def render_fit(tables: list[dict]) -> str:
    from kvplan import latency

    lines = ["chunked gated delta rule: share of the 16-bit peak (Blackwell: of peak x blackwell_compute_eff), median "
             f"over context rows of >= {FIT_TOKENS} tokens:"]  # fmt: skip
    for occupancy in (True, False):
        effs = fit_effs(tables, occupancy=occupancy)
        for engine in ENGINES:
            cal = latency.calibration(engine)
            if not occupancy and not cal.gdn_head_blocks:
                continue  # the same figures as above
            mine = {g: e for (eng, g), e in effs.items() if eng == engine}
            hopper = statistics.median(e for g, e in mine.items() if g != "b200")
            cells = ", ".join(f"{g} {e:.4f}" for g, e in mine.items())
            how = "all SMs, not calibrated" if not occupancy else "busy SMs" if cal.gdn_head_blocks else "all SMs"
            lines.append(f"  {engine} ({how}): {cells}; Hopper {hopper:.4f} (calibrated gdn_scan_eff "
                         f"{cal.gdn_scan_eff:.4f})")  # fmt: skip
    lines.append(f"causal conv1d: GB/s per SM (conv bytes / ((measured - one launch) x SMs)), median over context rows "
                 f"of >= {FIT_CONV_TOKENS} tokens; fit on {' + '.join(FIT_CONV_GPUS)}:")  # fmt: skip
    gpus = tuple(dict.fromkeys(t["gpu"] for t in tables))
    for engine in CONV_ENGINES:
        cells = ", ".join(f"{g} {statistics.median(sm_rates(tables, engine, (g,))) / 1e9:.2f}" for g in gpus)
        lines.append(f"  {engine}: {cells}; fit {fit_conv1d(tables, engine) / 1e9:.2f} (calibrated conv1d_sm_bytes_s "
                     f"{latency.calibration(engine).conv1d_sm_bytes_s / 1e9:.2f})")  # fmt: skip
    return "\n".join(lines)


def conv1d_seconds(row: dict, gpu_name: str, engine: str, *, ceiling: bool = True) -> float:
    """kvplan's prefill conv1d of the row alone: one eager launch plus its bytes at
    :func:`kvplan.latency._conv1d_bandwidth` (``ceiling`` False: at ``elementwise_mem_eff`` of bandwidth alone, as
    before the per-SM ceiling)."""
    from kvplan import latency

    c = _ctx(row, gpu_name, engine)
    bandwidth = latency._conv1d_bandwidth(c) if ceiling else c.bw * c.cal.elementwise_mem_eff
    return c.kernel_s + conv1d_bytes(row) / bandwidth


def conv1d_lns(row: dict, gpu_name: str, engine: str) -> tuple[float, float]:
    """ln(kvplan / measured) of the row's conv1d with the per-SM ceiling, and by bandwidth alone."""
    measured = row["latency"] / 1e3
    return tuple(math.log(conv1d_seconds(row, gpu_name, engine, ceiling=x) / measured) for x in (True, False))


def _cell(lns: tuple[float, ...]) -> str:
    return f"{statistics.median(abs(x) for x in lns):.3f}, {statistics.median(lns):+.3f}"


def render_conv1d(tables: list[dict]) -> str:
    """The conv1d kernel alone, kvplan against the measured ``causal_conv1d_fn`` rows, by engine, GPU and token band:
    median |ln| and median signed ln with the per-SM ceiling, then by the bytes at ``elementwise_mem_eff`` alone."""
    lines = ["conv1d alone, kvplan / measured: median |ln|, signed; with the per-SM ceiling | by bandwidth alone"]
    for t in (t for engine in CONV_ENGINES for t in tables if t["engine"] == engine):
        groups: dict[str, list[tuple[float, float]]] = {}
        for r in filter(conv1d_row, t["rows"]):
            name = band({"phase": "context", "tokens": r["batch_size"] * r["seq_len"]})
            groups.setdefault(name, []).append(conv1d_lns(r, t["gpu"], t["engine"]))
        for name in sorted(groups, key=lambda b: (b.startswith(">"), int(b.split()[-2]))):  # by token band
            now, before = zip(*groups[name], strict=True)
            lines.append(f"  {t['engine']} {t['gpu']} {name}: {len(now)} rows; {_cell(now)} | {_cell(before)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collect", action="store_true", help="sample aiconfigurator's tables (its own venv)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--fit", action="store_true", help="the chunked delta rule's efficiency per engine")
    parser.add_argument("--conv1d", action="store_true", help="the conv1d kernel alone against its measured rows")
    args = parser.parse_args(argv)
    if args.collect:
        return collect(args.data)
    tables = load(args.data)
    if args.fit:
        print(render_fit(tables))
        return 0
    if args.conv1d:
        print(render_conv1d(tables))
        return 0
    print("kvplan's Gated DeltaNet mixer kernels (conv1d + delta rule; decode: conv and state update) / "
          "aiconfigurator's measured ones, one layer on one rank:")  # fmt: skip
    print(render(compare(tables)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
