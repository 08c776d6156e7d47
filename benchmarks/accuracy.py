"""KV-cache bytes of every bundled model by three methods, against what transformers really holds.

Methods, for one sequence at 4K / 32K / 128K tokens in the model's own dtype:
  kvplan        kvplan.memory.cache_plan (the ideal layout: windows, MLA latent, recurrent state)
  naive         2 * layers * hidden_size * bytes * tokens (the formula most calculators use)
  llm-analysis  llm_analysis.analysis.LLMAnalysis.get_memory_kv_cache_per_layer * layers, fed the
                same architecture (layers, heads, KV heads, hidden size) built from our spec
Ground truth: the bytes of the tensors transformers 5.24.0's DynamicCache holds after a forward
pass over that many tokens, from kvplan.engines.transformers, which tests/test_against_transformers.py
proves exact, layer by layer, on skeleton models of every family.

    python benchmarks/accuracy.py                  # print the markdown
    python benchmarks/accuracy.py --write docs/accuracy.md

llm-analysis 0.2.2 pins transformers<5 and huggingface-hub<0.15; it imports neither at module
load, so install it beside transformers 5 without its pins:
    pip install --no-deps llm-analysis==0.2.2 fire==0.5.0 termcolor
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from kvplan.catalog import bundled_names, load_bundled
from kvplan.engines.transformers import TRANSFORMERS_VERSION, transformers_cache_bytes
from kvplan.memory import cache_plan
from kvplan.spec import ModelSpec
from kvplan.units import GIB, KV_DTYPES

LENGTHS = (4096, 32768, 131072)  # 4K, 32K, 128K (K = 1024)
METHODS = ("kvplan", "naive", "llm-analysis")
COMMAND = "python benchmarks/accuracy.py --write docs/accuracy.md"


@dataclass(frozen=True)
class Row:
    model: str
    tokens: int
    beyond_context: bool
    truth: int
    estimates: dict[str, int]

    def error(self, method: str) -> float:
        """Signed relative error of ``method`` against the truth, in percent."""
        return 100.0 * (self.estimates[method] - self.truth) / self.truth


def kv_bytes_per_element(spec: ModelSpec) -> int:
    # transformers stores K/V in the dtype the model runs in; every bundled spec is bf16 or fp16
    return int(KV_DTYPES[spec.dtype].bytes_per_element)


def naive(spec: ModelSpec, tokens: int) -> int:
    return 2 * spec.num_layers * spec.hidden_size * kv_bytes_per_element(spec) * tokens


def llm_analysis_bytes(spec: ModelSpec, tokens: int) -> int:
    """llm-analysis 0.2.2: 2 * tokens * (hidden / heads) * kv_heads * bytes per layer, times layers."""
    from llm_analysis.analysis import LLMAnalysis
    from llm_analysis.config import ModelConfig, get_gpu_config_by_name
    from llm_analysis.logger import logger

    logger.setLevel(logging.ERROR)  # it warns about training efficiency on every construction

    ffn = spec.intermediate_size or (spec.moe.expert_intermediate_size if spec.moe else 4 * spec.hidden_size)
    model = ModelConfig(
        name=spec.name,
        num_layers=spec.num_layers,
        n_head=spec.num_attention_heads,
        hidden_dim=spec.hidden_size,
        vocab_size=spec.vocab_size,
        max_seq_len=spec.max_position_embeddings,
        num_key_value_heads=spec.num_kv_heads,
        ffn_embed_dim=ffn,
        expansion_ratio=ffn / spec.hidden_size,  # both given: skips its divisibility assert
        moe_num_experts=spec.moe.num_experts if spec.moe else 1,
        moe_top_k=spec.moe.experts_per_token if spec.moe else 1,
    )
    # the GPU only matters for its latency figures, not for the cache bytes
    analysis = LLMAnalysis(model, get_gpu_config_by_name("a100-sxm-80gb"))
    per_layer = analysis.get_memory_kv_cache_per_layer(1, tokens, kv_cache_dtype_bytes=kv_bytes_per_element(spec))
    return round(per_layer * spec.num_layers)


def rows_for(spec: ModelSpec) -> list[Row]:
    plan = cache_plan(spec)
    rows = []
    for tokens in LENGTHS:
        estimates = {
            "kvplan": plan.bytes_per_sequence(tokens),
            "naive": naive(spec, tokens),
            "llm-analysis": llm_analysis_bytes(spec, tokens),
        }
        truth = transformers_cache_bytes(spec, tokens)
        rows.append(Row(spec.name, tokens, tokens > spec.max_position_embeddings, truth, estimates))
    return rows


def gib(nbytes: int) -> str:
    return f"{nbytes / GIB:,.3f}"


def signed(pct: float) -> str:
    if pct == 0:
        return "0"
    if abs(pct) < 0.01:
        return f"{pct:+.1g}%"  # a window's last token: keep it visible rather than "+0.00%"
    return f"{pct:+.2f}%" if abs(pct) < 1000 else f"{pct:+,.0f}%"


def k(tokens: int) -> str:
    return f"{tokens // 1024}K"


def summary(rows: list[Row]) -> list[str]:
    lines = ["| method | median abs error | worst abs error | worst case | exact (0 B) |", "|---|---:|---:|---|---:|"]
    for method in METHODS:
        errors = [abs(r.error(method)) for r in rows]
        worst = max(rows, key=lambda r: abs(r.error(method)))
        exact = sum(r.estimates[method] == r.truth for r in rows)
        lines.append(
            f"| {method} | {statistics.median(errors):.2f}% | {abs(worst.error(method)):,.2f}% | "
            f"{worst.model} @ {k(worst.tokens)} | {exact}/{len(rows)} |"
        )
    return lines


def table(rows: list[Row]) -> list[str]:
    head = "| model | tokens | transformers (GiB) | " + " | ".join(f"{m} error" for m in METHODS) + " |"
    lines = [head, "|---|---:|---:|" + "---:|" * len(METHODS)]
    for r in rows:
        mark = "*" if r.beyond_context else ""
        errors = " | ".join(signed(r.error(m)) for m in METHODS)
        lines.append(f"| {r.model} | {k(r.tokens)}{mark} | {gib(r.truth)} | {errors} |")
    return lines


def storage_table(specs: list[ModelSpec]) -> list[str]:
    """Windowed models at 128K: tensors exposed vs storage kept alive, and kvplan's ideal."""
    tokens = LENGTHS[-1]
    lines = [
        "| model | kvplan ideal | tensors (truth) | storage while decoding | storage right after prefill |",
        "|---|---:|---:|---:|---:|",
    ]
    for spec in specs:
        if not any(k.type in ("sliding", "chunked") for k in spec.layers.kinds.values()):
            continue
        cells = [cache_plan(spec).bytes_per_sequence(tokens)] + [
            transformers_cache_bytes(spec, tokens, held=held) for held in ("tensors", "decode", "prefill")
        ]
        lines.append(f"| {spec.name} | " + " | ".join(gib(c) for c in cells) + " |")
    return lines


def document(specs: list[ModelSpec], rows: list[Row]) -> str:
    from importlib.metadata import version

    import llm_analysis  # noqa: F401  (fail before writing anything if it is missing)

    parts = [
        "# Accuracy: KV-cache bytes against a real implementation",
        "",
        f"Generated by `{COMMAND}` (kvplan.engines.transformers for transformers {TRANSFORMERS_VERSION}, "
        f"llm-analysis {version('llm-analysis')}). Do not edit by hand.",
        "",
        "**Ground truth** is the bytes of the tensors Hugging Face transformers' `DynamicCache` holds "
        "for one sequence after a forward pass over that many tokens, in the model's dtype, computed by "
        "`kvplan.engines.transformers`. That module is proven exact -- every layer, several lengths below "
        "and beyond each window, after prefill and after a decode step -- by "
        "`tests/test_against_transformers.py`, which builds a skeleton of every bundled spec in "
        "transformers (true layer count, KV heads, head_dim, layer pattern, MLA and recurrent sizes; tiny "
        "hidden size, MLP, vocab and experts; random weights, CPU; windows scaled to 16 tokens where "
        "a real one is too long to exceed cheaply), runs it, and sums `numel * element_size` of the "
        "cache tensors it really holds. The full-size models are not run; their truth is that proven "
        "rule applied to the full-size spec.",
        "",
        "Methods:",
        "",
        "- **kvplan**: `kvplan.memory.cache_plan(spec).bytes_per_sequence(tokens)`, the ideal layout "
        "(`kvplan estimate` without an engine). `--engine transformers` uses `kvplan.engines.transformers` "
        "itself and so matches the truth by construction; it is not listed.",
        "- **naive**: `2 * layers * hidden_size * bytes * tokens`.",
        "- **llm-analysis**: `LLMAnalysis.get_memory_kv_cache_per_layer(1, tokens) * layers`, its "
        "`ModelConfig` built from the same spec (layers, heads, KV heads, hidden size, experts). It "
        "takes head_dim = hidden / heads and has no notion of windows, MLA or recurrent layers.",
        "",
        "Error = (estimate - truth) / truth; `0` means equal to the byte. GiB = 2^30 bytes. `*` marks "
        "a length beyond the model's `max_position_embeddings` (arithmetic only).",
        "",
        f"## Summary ({len(rows)} model x length cases, {len(specs)} models)",
        "",
        *summary(rows),
        "",
        "## Where kvplan's ideal layout differs from transformers",
        "",
        "- Sliding-window and chunked layers: transformers' cache tensors keep `window - 1` tokens "
        "(the incoming token completes the window); the ideal keeps `window`. One token per such layer.",
        "- Recurrent layers (Jamba's Mamba, Qwen3-Next's Gated DeltaNet): transformers keeps `d_conv` "
        "conv columns (not `d_conv - 1`) and the SSM / delta-rule state in float32; the ideal keeps the SSM state "
        "in the dtype the checkpoint's config states (Nemotron 3 Nano's `mamba_ssm_cache_dtype`, Qwen3.5's "
        "`mamba_ssm_dtype`: float32, so only the conv column differs there), else in the model dtype.",
        "- MLA (DeepSeek): transformers 5.24 caches the compressed latent (`kv_lora_rank` + "
        "`qk_rope_head_dim`, one head), exactly kvplan's latent layout.",
        "",
        "Storage kept alive differs from the tensors the cache exposes on windowed layers: the "
        "`window - 1` token tensors are views of the concatenation they were cut from. While decoding, "
        "that pins `min(L, window)` tokens -- exactly kvplan's ideal; right after a one-shot prefill it "
        "pins the whole prompt until the next step (both proven by the same test). At 128K:",
        "",
        *storage_table(specs),
        "",
        "## Per model and length",
        "",
        *table(rows),
        "",
    ]
    return "\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="write the markdown here instead of printing it")
    args = parser.parse_args()
    try:
        import llm_analysis  # noqa: F401
    except ImportError:
        sys.exit("llm-analysis is not installed: pip install --no-deps llm-analysis==0.2.2 fire==0.5.0 termcolor")
    specs = [load_bundled(name) for name in bundled_names()]
    rows = [row for spec in specs for row in rows_for(spec)]
    text = document(specs, rows)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text + _registry_section(args.write), encoding="utf-8")
    else:
        sys.stdout.write(text)


def _registry_section(path: Path) -> str:
    """The importer-coverage section benchmarks/registry_sweep.py keeps in the same file, carried over."""
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    start = old.find("<!-- registry-sweep:")  # its first marker: the command line benchmarks/regen_docs.py reads
    return "\n" + old[start:] if start >= 0 else ""


if __name__ == "__main__":
    main()
