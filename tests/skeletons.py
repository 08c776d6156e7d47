"""Small hand-written specs for tests that must not depend on the bundled catalog."""

from kvplan.spec import ModelSpec


def skeleton(**over) -> ModelSpec:
    """A tiny GQA model; keyword arguments replace top-level fields."""
    base = {
        "name": "skeleton",
        "source": "tests",
        "hidden_size": 256,
        "vocab_size": 1000,
        "num_layers": 6,
        "num_attention_heads": 8,
        "num_kv_heads": 2,
        "head_dim": 32,
        "intermediate_size": 512,
        "max_position_embeddings": 4096,
    }
    base.update(over)
    return ModelSpec.model_validate(base)


def sliding_skeleton(window: int = 64) -> ModelSpec:
    return skeleton(
        layers={
            "kinds": {"local": {"type": "sliding", "window": window}, "global": {"type": "full"}},
            "pattern": ["local", "local", "global"],
        }
    )


def hybrid_skeleton() -> ModelSpec:
    return skeleton(
        layers={
            "kinds": {
                "mamba": {"type": "recurrent", "variant": "mamba", "d_inner": 512, "d_state": 16, "d_conv": 4},
                "attn": {"type": "full"},
                "chunk": {"type": "chunked", "chunk": 128},
            },
            "pattern": ["mamba", "mamba", "chunk", "attn"],
        },
        num_layers=8,
    )


def mla_skeleton() -> ModelSpec:
    return skeleton(
        num_kv_heads=8,
        layers={"kinds": {"mla": {"type": "mla", "kv_lora_rank": 64, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16}}},
        moe={"num_experts": 4, "experts_per_token": 2, "expert_intermediate_size": 128, "first_dense_layers": 1},
    )
