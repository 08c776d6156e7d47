"""transformers skeletons for the tests: a model built from a config with random weights, the oracle for what a
model caches (test_against_transformers.py, test_ssm_state_dtype.py). Imported only where torch and transformers
are installed (callers skip first)."""

from __future__ import annotations

from typing import Any


def build(config: Any) -> Any:
    """Random weights: transformers' own init is skipped, every parameter drawn from N(0, 0.02) (seed 0), bf16, eval."""
    import torch
    import transformers
    from transformers.initialization import no_init_weights

    torch.manual_seed(0)
    with no_init_weights():
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.02)
    return model.eval()
