#!/usr/bin/env bash
# Walkthrough: planning a deployment, from "will it fit" to the launch command.
# Scenario: serve Qwen3-32B to 32 concurrent users with 32K-token contexts. Run from the repo root:
#   bash examples/plan_deployment.sh
set -euo pipefail

# 1. Will it fit at all? Weights and KV per GPU at a few lengths on one H100 (ideal layout).
kvplan estimate qwen3-32b --context 8k,32k --batch 32 --gpu h100-sxm

# 2. Not on one GPU. What is the smallest configuration that serves 32 x 32K? kvplan plan
#    searches GPU types, counts, TP and weight/KV dtypes under vLLM's budget rule.
kvplan plan qwen3-32b --users 32 --context 32k --gpus h100-sxm,a100-80gb,l40s,h200 --top 8

# 3. Take the first answer (2 x H200, TP 2, fp8 weights and KV) and look at it in vLLM's own terms:
#    KV pool, "Maximum concurrency", the longest context for one request, where the memory goes,
#    and the launch line.
kvplan capacity qwen3-32b --gpu h200 --tp 2 --context 32k --engine vllm --weights-dtype fp8 --kv-dtype fp8

# 4. Already own H100s? Four of them with TP 4 in bf16, as JSON for a script.
kvplan capacity qwen3-32b --gpu h100-sxm --tp 4 --context 32k --engine vllm --format json \
  | python -c "import json,sys; r=json.load(sys.stdin); print('4 x H100 bf16: pool', r['kv_pool_tokens'], 'tokens,', r['max_concurrent_sequences'], 'sequences at 32K')"

# 5. Requests are not all 32K long: expected concurrency for a mix of lengths.
kvplan capacity qwen3-32b --gpu h200 --tp 2 --context 32k --weights-dtype fp8 --kv-dtype fp8 \
  --lengths 2k,8k,32k --weights 0.5,0.3,0.2
