#!/usr/bin/env bash
# Walkthrough: extending a model's context with RoPE scaling, and what it costs.
# Scenario: Llama 2 7B was trained at 4K; stretch it to 32K with YaRN. Run from the repo root:
#   bash examples/extend_context.sh
set -euo pipefail

# 1. Memory before and after: 4K is the trained length; 32K is flagged as beyond it.
kvplan estimate llama-2-7b --context 4k,32k --gpu a100-80gb

# 2. YaRN with factor 8: the new length, the attention factor, which rotary dimensions are kept,
#    blended or interpolated, memory and cost at both lengths, and the block for config.json.
kvplan rope llama-2-7b --method yarn --factor 8 --gpu a100-80gb

# 3. Every method side by side (linear PI, NTK, dynamic NTK, YaRN, Llama 3, LongRoPE).
kvplan rope llama-2-7b --factor 8 --compare

# 4. Attention cost grows with the square of the length; the KV cache linearly.
kvplan cost llama-2-7b --gpu a100-80gb --context 4k,32k

# 5. Fine-tuning at the new length with LongLoRA's shifted sparse attention (groups of L/4):
#    8192 tokens cost 16x the attention of 2048 with full attention, 4x with S2-Attn.
kvplan cost llama-2-7b --gpu a100-80gb --context 2k,8k --training --attention s2

# 6. A model that ships a scaling block already: what Llama 3.1's llama3 scaling does.
kvplan rope llama-3.1-8b
