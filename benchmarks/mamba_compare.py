"""kvplan's Mamba2 mixer kernels against aiconfigurator's measured Mamba2 kernel tables, GPU by GPU and phase by phase.

aiconfigurator 0.12.0 ships ``aiconfigurator_core/systems/data/<gpu>/linear_attention/trtllm/1.3.0rc20/
mamba2_perf.parquet`` (TensorRT-LLM 1.3.0rc20). Its columns: ``kernel_source``, ``phase`` (``context`` or
``generation``), ``batch_size``, ``seq_len`` (tokens per prompt; 1 at generation), ``num_tokens``, the layer's
``d_model``, ``d_state``, ``d_conv``, ``nheads``, ``head_dim``, ``n_groups``, ``chunk_size``, ``model_name`` and
``latency`` in ms, one Mamba2 layer at full (unsharded) width (``aiconfigurator_core/sdk/operations/mamba.py``
``Mamba2Kernel`` docstring). aiconfigurator composes a Mamba2 layer from four kernels (``sdk/models/nemotron_h.py``:
``causal_conv1d_fn`` + ``mamba_chunk_scan_combined`` at context, ``causal_conv1d_update`` +
``selective_state_update`` at generation), but the 0.12.0 tables of every GPU hold **only the two conv1d kernels**:
the SSD chunked scan and the decode state update are not measured there. So this script is a diagnostic, not a fit:
kvplan's whole mixer kernel time (conv1d and scan together) is set against the measured conv1d alone, a lower bound
of the real mixer. A ratio below 1 means kvplan prices the whole mixer under what its conv1d alone takes.

kvplan's side (:func:`kvplan.latency._attention_s` of a one-layer model whose only layer is the row's Mamba2 mixer,
TensorRT-LLM's calibration, TP 1; the in/out projection GEMMs are not part of either side): at prefill the recurrent
layer has no attention FLOPs (:func:`kvplan.attention.attention_flops` returns 0 for it), so kvplan charges a fixed
``attn_layer_s + eager_kernel_s`` whatever the prompt length; at decode it reads the conv and SSM state
(``state bytes / (bandwidth x attn_decode_mem_eff)``) plus ``attn_layer_s + batch x attn_seq_s``.

Two steps, as ``mla_compare.py``:

1. ``--collect`` (needs aiconfigurator and pandas; does not import kvplan) writes the tables of H100 SXM, H200, B200
   and GB200 to ``benchmarks/data/aiconfigurator_mamba2.json``. Without aiconfigurator it says so and exits 0::

       /work/aic-venv/bin/python benchmarks/mamba_compare.py --collect

2. default (needs kvplan only): prints the median and worst ``|ln(kvplan / measured conv1d)|``, the median signed
   ``ln``, and how many rows kvplan prices under the conv1d alone, per GPU and phase, then per phase, one prompt or
   several, and token band; beside it the same median for a candidate conv1d price by the bytes it moves
   (:func:`conv1d_bytes_seconds`, no fitted constant), the physics a future kvplan change could add.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from aic_tables import frame_rows, load_row_tables, read_tables, write_row_tables  # noqa: E402 - where aiconfigurator's tables lie, shared

DATA = Path(__file__).resolve().parent / "data" / "aiconfigurator_mamba2.json"
# kvplan GPU name -> aiconfigurator system directory
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm", "gb200": "gb200"}
ENGINES = {"trtllm": "1.3.0rc20"}  # the only engine aiconfigurator 0.12.0 measured Mamba2 for
SCAN_DATA = Path(__file__).resolve().parent / "data" / "ssd_scan_measured.json"
LINEAR_REGIME = 1.25  # scan rows fitted: seconds per token within 1.25x of the table's best (past the short floor)
COLUMNS = ("kernel_source", "phase", "batch_size", "seq_len", "d_model", "d_state", "d_conv", "nheads", "head_dim",
           "n_groups", "chunk_size", "model_name", "latency")  # fmt: skip


def collect(out: Path) -> int:
    read = read_tables(SYSTEMS, ENGINES, "linear_attention", "mamba2_perf.parquet")
    if read is None:
        return 0
    tables = []
    for gpu, engine, version, _, source, frame in read:
        rows = frame_rows(frame, COLUMNS)
        tables.append({"gpu": gpu, "engine": engine, "version": version, "source": source, "columns": list(COLUMNS),
                       "rows": rows})  # fmt: skip
    write_row_tables(out, tables)
    return 0


def load(path: Path = DATA) -> list[dict]:
    """Each table's rows as dicts of the collected columns."""
    return load_row_tables(path)


def mixer_spec(row: dict):  # noqa: ANN201
    """A one-layer model whose only layer is the row's Mamba2 mixer (d_inner = nheads x head_dim), bf16."""
    from kvplan.spec import ModelSpec

    d_inner = row["nheads"] * row["head_dim"]
    # vocab and intermediate sizes are placeholders: the mixer kernels priced here read neither
    return ModelSpec.model_validate({
        "name": f"mamba2-{row['d_model']}-{row['nheads']}x{row['head_dim']}-s{row['d_state']}-g{row['n_groups']}",
        "source": "aiconfigurator 0.12.0 mamba2_perf row",
        "hidden_size": row["d_model"], "vocab_size": 32000, "num_layers": 1, "num_attention_heads": row["nheads"],
        "num_kv_heads": row["nheads"], "head_dim": row["head_dim"], "intermediate_size": 4 * row["d_model"],
        "dtype": "bf16", "max_position_embeddings": 1 << 20, "rope": None,
        "layers": {"kinds": {"mamba2": {"type": "recurrent", "variant": "mamba2", "d_inner": d_inner,
                                        "d_state": row["d_state"], "d_conv": row["d_conv"],
                                        "n_groups": row["n_groups"], "n_heads": row["nheads"],
                                        "scan_chunk": row.get("chunk_size") or None, "mlp": False}},
                   "pattern": ["mamba2"]},
    })  # fmt: skip


def mixer_seconds(row: dict, gpu_name: str, *, cal=None) -> float:  # noqa: ANN001
    """kvplan's Mamba2 mixer kernels of one layer at the row's phase, batch and prompt length (module docstring)."""
    from kvplan import latency
    from kvplan.hardware import resolve_gpu

    spec = mixer_spec(row)
    prefill = row["phase"] == "context"
    cal = cal or latency.calibration("trtllm")
    ctx = latency._make_ctx(spec, resolve_gpu(gpu_name), tp=1, weights_dtype="bf16", cal=cal, eager=prefill)
    context = row["seq_len"]  # generation rows hold seq_len 1: the state's size does not grow with the context
    flops = latency._count_flops(spec, range(1), context=context, prefix=0, prompts=row["batch_size"], tp=1)
    return latency._attention_s(ctx, phase="prefill" if prefill else "decode", context=context,
                                batch=row["batch_size"], attention_flops=flops, kv_dtype="bf16")  # fmt: skip


def conv1d_bytes_seconds(row: dict, gpu_name: str, *, cal=None) -> float:  # noqa: ANN001
    """A candidate price of the conv1d kernel alone by the bytes it moves, with no fitted constant: kvplan's
    ``elementwise_mem_eff`` of bandwidth plus one ``eager_kernel_s`` (context) or ``graph_kernel_s`` (generation), TP 1,
    bf16, conv channels ``nheads x head_dim + 2 x n_groups x d_state`` (transformers ``modeling_nemotron_h.py``
    ``NemotronHMamba2Mixer.conv_dim``). Context (``causal_conv1d_fn``): each token's channels read and written once,
    plus the ``d_conv`` taps. Generation (``causal_conv1d_update``): each sequence reads and writes its
    ``d_conv - 1`` conv state and reads and writes one token's channels."""
    from kvplan import latency
    from kvplan.hardware import resolve_gpu
    from kvplan.recurrent import CONV_ELEMENT_BYTES, conv1d_bytes, conv_channels

    cal = cal or latency.calibration("trtllm")
    kind = mixer_spec(row).kind("mamba2")
    if row["phase"] == "context":  # what kvplan.latency prices at prefill (kvplan.recurrent.conv1d_bytes)
        moved = conv1d_bytes(kind, row["batch_size"] * row["seq_len"])
        fixed = cal.eager_kernel_s
    else:
        moved = CONV_ELEMENT_BYTES * conv_channels(kind) * row["batch_size"] * (2 * (row["d_conv"] - 1) + 2)
        fixed = cal.graph_kernel_s
    return fixed + moved / (resolve_gpu(gpu_name).bandwidth_gbps * 1e9 * cal.elementwise_mem_eff)


def scan_table(path: Path = SCAN_DATA) -> dict:
    """The measured SSD scan table (``benchmarks/data/ssd_scan_measured.json``): its source, layer and rows."""
    return json.loads(path.read_text())


def scan_kind(layer: dict):  # noqa: ANN201
    """The table's Mamba2 layer as a kvplan layer kind (d_inner = heads x head dim)."""
    from kvplan.spec import LayerKind

    return LayerKind.model_validate({
        "type": "recurrent", "variant": "mamba2", "d_inner": layer["n_heads"] * layer["head_dim"],
        "d_state": layer["d_state"], "d_conv": layer["d_conv"], "n_groups": layer["n_groups"],
        "n_heads": layer["n_heads"], "scan_chunk": layer["scan_chunk"], "mlp": False,
    })  # fmt: skip


def scan_seconds(kind, tokens: int, gpu_name: str, *, eff: float | None = None, cal=None) -> float:  # noqa: ANN001
    """kvplan's SSD scan alone over one prompt of ``tokens`` (as :func:`kvplan.latency._mamba2_prefill_s` prices it):
    its FLOPs (:func:`kvplan.recurrent.scan_flops`) at ``eff`` (default the calibration's ``ssd_scan_eff``) of the
    16-bit peak, plus ``SSD_SCAN_KERNELS`` eager kernels, TP 1, vLLM's calibration (the table times vLLM's kernels)."""
    from kvplan import latency
    from kvplan.hardware import resolve_gpu
    from kvplan.recurrent import SSD_SCAN_KERNELS, scan_flops

    cal = cal or latency.calibration("vllm")
    gpu = resolve_gpu(gpu_name)
    peak16 = gpu.bf16_dense_tflops * 1e12 * (cal.blackwell_compute_eff if gpu.architecture == "blackwell" else 1.0)
    return scan_flops(kind, tokens) / (peak16 * (eff or cal.ssd_scan_eff)) + SSD_SCAN_KERNELS * cal.eager_kernel_s


def linear_rows(rows: list[list[float]]) -> list[list[float]]:
    """The rows past the table's floor: seconds per token within :data:`LINEAR_REGIME` of the table's lowest (the
    shortest prompts take the same time at 1,024 and 2,048 tokens, a floor no FLOP count explains)."""
    best = min(1 / rate for _, rate in rows)
    return [[tokens, rate] for tokens, rate in rows if 1 / rate <= LINEAR_REGIME * best]


def fit_scan_eff(table: dict) -> float:
    """The SSD scan's share of the 16-bit peak: the median over :func:`linear_rows` of FLOPs / (peak x (measured
    seconds - the kernels' launches)), on the table's GPU with vLLM's ``eager_kernel_s``."""
    from kvplan import latency
    from kvplan.hardware import resolve_gpu
    from kvplan.recurrent import SSD_SCAN_KERNELS, scan_flops

    cal, gpu = latency.calibration("vllm"), resolve_gpu(table["source"]["gpu"])
    kind = scan_kind(table["layer"])
    effs = [scan_flops(kind, tokens) / (gpu.bf16_dense_tflops * 1e12 * (tokens / rate - SSD_SCAN_KERNELS *
                                                                        cal.eager_kernel_s))
            for tokens, rate in linear_rows(table["rows"])]  # fmt: skip
    return statistics.median(effs)


def render_scan(table: dict) -> str:
    """Each measured row against kvplan's scan at the calibrated ``ssd_scan_eff``, and the fit."""
    from kvplan import latency

    kind, gpu = scan_kind(table["layer"]), table["source"]["gpu"]
    linear = {tokens for tokens, _ in linear_rows(table["rows"])}
    lines = [f"SSD scan, {gpu}, {table['layer']['n_heads']} heads x {table['layer']['head_dim']}, "
             f"{table['layer']['n_groups']} group(s), d_state {table['layer']['d_state']}, chunk "
             f"{table['layer']['scan_chunk']} ({table['source']['url']}):"]  # fmt: skip
    for tokens, rate in table["rows"]:
        measured, mine = tokens / rate, scan_seconds(kind, tokens, gpu)
        note = "" if tokens in linear else " (floor, not fitted)"
        lines.append(f"  {tokens:>7} tokens: measured {measured * 1e3:7.3f} ms, kvplan {mine * 1e3:7.3f} ms, "
                     f"ln {math.log(mine / measured):+.3f}{note}")  # fmt: skip
    lns = [abs(math.log(scan_seconds(kind, t, gpu) / (t / r))) for t, r in table["rows"] if t in linear]
    lines.append(f"  fit: ssd_scan_eff {fit_scan_eff(table):.4f} over {len(lns)} rows (calibrated "
                 f"{latency.calibration('vllm').ssd_scan_eff:.4f}); median |ln| {statistics.median(lns):.3f}, "
                 f"worst {max(lns):.3f} there")  # fmt: skip
    return "\n".join(lines)


def compare(tables: list[dict]) -> list[dict]:
    out = []
    for t in tables:
        for row in t["rows"]:
            kv = mixer_seconds(row, t["gpu"])
            conv = conv1d_bytes_seconds(row, t["gpu"])
            measured = row["latency"] / 1e3
            out.append({"gpu": t["gpu"], "phase": row["phase"], "batch": row["batch_size"],
                        "tokens": row["batch_size"] * row["seq_len"], "kvplan_s": kv, "conv1d_bytes_s": conv,
                        "measured_s": measured, "ln": math.log(kv / measured),
                        "ln_bytes": math.log(conv / measured)})  # fmt: skip
    return out


def stats(rows: list[dict], key: str = "ln") -> dict:
    lns = [r[key] for r in rows]
    return {"n": len(lns), "median_abs": statistics.median(abs(x) for x in lns), "worst_abs": max(abs(x) for x in lns),
            "median_signed": statistics.median(lns), "under": sum(1 for x in lns if x < 0)}  # fmt: skip


def band(tokens: int) -> str:
    for edge in (16, 512, 8192):
        if tokens <= edge:
            return f"<= {edge} tokens"
    return "> 8192 tokens"


def render(rows: list[dict]) -> str:
    lines = []
    prompts = lambda r: "decode" if r["phase"] != "context" else "one prompt" if r["batch"] == 1 else "prompts"  # noqa: E731
    by_band = lambda r: (r["phase"], prompts(r), band(r["tokens"]))  # noqa: E731
    for key, label in ((lambda r: (r["gpu"], r["phase"]), "GPU, phase"), (by_band, "phase, prompts, token band")):
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            groups.setdefault(key(r), []).append(r)
        lines.append(f"by {label}:")
        for k in sorted(groups):
            s, b = stats(groups[k]), stats(groups[k], "ln_bytes")
            lines.append(f"  {' '.join(k)}: {s['n']} rows; kvplan median |ln| {s['median_abs']:.3f}, worst "
                         f"{s['worst_abs']:.3f}, signed {s['median_signed']:+.3f}, under the conv1d alone "
                         f"{s['under']}/{s['n']}; conv1d by bytes median |ln| {b['median_abs']:.3f}, signed "
                         f"{b['median_signed']:+.3f}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collect", action="store_true", help="sample aiconfigurator's tables (its own venv)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--scan", action="store_true", help="the SSD scan against its measured table, and the fit")
    args = parser.parse_args(argv)
    if args.collect:
        return collect(args.data)
    if args.scan:
        print(render_scan(scan_table()))
        return 0
    print("kvplan's Mamba2 mixer kernels (conv1d + scan) / aiconfigurator's measured conv1d kernel alone "
          "(TensorRT-LLM 1.3.0rc20; the tables hold no scan kernel):")  # fmt: skip
    print(render(compare(load(args.data))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
