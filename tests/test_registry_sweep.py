"""transformers' generative registry as the oracle for the config.json importer (issue 9).

``benchmarks/registry_sweep.py`` builds a skeleton of every model type transformers registers
for causal LM or image-text-to-text generation, runs a prefill, sums the cache tensors it holds
and compares them with kvplan's import of the same config dict. The whole sweep takes tens of
minutes on a shared 2-core machine, so the default suite

* checks that the published table (``docs/accuracy.md``) lists exactly the registry's types and
  that none of them is ``wrong`` -- every cache-bearing decoder is exact or refused with a reason;
* reruns the sweep on one type per building block (slow) and requires the published result.

``KVPLAN_FULL_SWEEP=1`` reruns every type against the table.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "accuracy.md"


def _sweep_module():
    spec = importlib.util.spec_from_file_location("registry_sweep", ROOT / "benchmarks" / "registry_sweep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sweep = _sweep_module()


def published() -> dict[str, str]:
    """model_type -> result, from the table in docs/accuracy.md."""
    text = DOCS.read_text()
    section = text[text.index(sweep.START) : text.index(sweep.END)]
    rows = re.findall(r"^\| ([^ |]+) \| (exact|refused|wrong|n\.a\.) \|", section, re.M)
    return dict(rows)


def test_table_covers_the_registry_and_nothing_is_wrong() -> None:
    table = published()
    rerun = "rerun: python benchmarks/registry_sweep.py --write docs/accuracy.md"
    assert sorted(table) == sweep.registry_types(), rerun
    wrong = sorted(t for t, status in table.items() if status == "wrong")
    assert wrong == [], f"silently wrong model types: {wrong}"
    assert sum(status == "exact" for status in table.values()) >= 100


# One model type per building block the importer reads; each must give its published result.
SAMPLE = [
    "llama",  # full attention, GQA
    "mistral",  # sliding window on every layer
    "gemma3",  # multimodal wrapper, 5:1 sliding/global, per-type RoPE
    "cohere2",  # layer_types sliding/full
    "gpt_oss",  # alternating windows, sinks
    "llama4",  # chunked attention from the no_rope_layers default
    "deepseek_v3",  # MLA latent
    "axk1",  # MLA under a model_type kvplan has no table for
    "deepseek_v32",  # MLA + DSA indexer key cache
    "qwen3_next",  # Gated DeltaNet + full attention
    "jamba",  # Mamba + attention
    "nemotron_h",  # Mamba2 / attention / MLP-only pattern string
    "gemma3n",  # KV sharing across layers
    "jetmoe",  # kv_channels head size
    "bloom",  # refused: no max_position_embeddings (ALiBi)
]


@pytest.mark.slow
@pytest.mark.parametrize("model_type", SAMPLE)
def test_sample_types_give_the_published_result(model_type: str) -> None:
    table = published()
    row = sweep.sweep([model_type])[0]
    assert row.status != "wrong", row.reason
    assert row.status == table[model_type], row.reason


@pytest.mark.skipif(not os.environ.get("KVPLAN_FULL_SWEEP"), reason="set KVPLAN_FULL_SWEEP=1 (tens of minutes)")
def test_full_registry_matches_the_table() -> None:
    table = published()
    rows = sweep.sweep()
    changed = {r.model_type: (table.get(r.model_type), r.status, r.reason) for r in rows}
    changed = {t: v for t, v in changed.items() if v[0] != v[1]}
    assert not changed
    assert not [r.model_type for r in rows if r.status == "wrong"]
