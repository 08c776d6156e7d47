"""Every bundled spec: loads, cites a source, counts its parameters, and caches what the reference says.

KV golden numbers are bf16, one sequence, ideal layout. The first table is copied from
shared/reference/models.md section 2.3 (hand arithmetic, re-checked there); the second is
hand arithmetic for the bundled models that table does not list, shown next to each row.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvplan.catalog import bundled_names, load_bundled, specs_dir
from kvplan.memory import cache_plan
from kvplan.params import count_params

K4, K32, K128 = 4_096, 32_768, 131_072
NAMES = bundled_names()

# models.md 2.3: bytes/token (all layers), marginal bytes/token beyond every window, 4K, 32K, 128K.
REFERENCE_KV: dict[str, tuple[int, int, int, int, int]] = {
    "llama-2-7b": (524_288, 524_288, 2_147_483_648, 17_179_869_184, 68_719_476_736),
    "llama-2-13b": (819_200, 819_200, 3_355_443_200, 26_843_545_600, 107_374_182_400),
    "llama-2-70b": (327_680, 327_680, 1_342_177_280, 10_737_418_240, 42_949_672_960),
    "llama-3-8b": (131_072, 131_072, 536_870_912, 4_294_967_296, 17_179_869_184),
    "llama-3.1-8b": (131_072, 131_072, 536_870_912, 4_294_967_296, 17_179_869_184),
    "llama-3.1-70b": (327_680, 327_680, 1_342_177_280, 10_737_418_240, 42_949_672_960),
    "llama-3.1-405b": (516_096, 516_096, 2_113_929_216, 16_911_433_728, 67_645_734_912),
    "mistral-7b-v0.1": (131_072, 0, 536_870_912, 536_870_912, 536_870_912),
    "mixtral-8x7b": (131_072, 131_072, 536_870_912, 4_294_967_296, 17_179_869_184),
    "qwen2.5-7b": (57_344, 57_344, 234_881_024, 1_879_048_192, 7_516_192_768),
    "qwen2.5-72b": (327_680, 327_680, 1_342_177_280, 10_737_418_240, 42_949_672_960),
    "qwen3-8b": (147_456, 147_456, 603_979_776, 4_831_838_208, 19_327_352_832),
    "qwen3-30b-a3b": (98_304, 98_304, 402_653_184, 3_221_225_472, 12_884_901_888),
    "gemma-2-9b": (344_064, 172_032, 1_409_286_144, 6_341_787_648, 23_253_221_376),
    "gemma-2-27b": (376_832, 188_416, 1_543_503_872, 6_945_767_424, 25_467_813_888),
    "gemma-3-27b": (507_904, 81_920, 771_751_936, 3_120_562_176, 11_173_625_856),
    "deepseek-v2": (69_120, 69_120, 283_115_520, 2_264_924_160, 9_059_696_640),
    "deepseek-v3": (70_272, 70_272, 287_834_112, 2_302_672_896, 9_210_691_584),
    "phi-3-mini-128k": (393_216, 393_216, 1_610_612_736, 12_884_901_888, 51_539_607_552),
    "falcon-7b": (8_192, 8_192, 33_554_432, 268_435_456, 1_073_741_824),
    "gpt-oss-20b": (49_152, 24_576, 103_809_024, 808_452_096, 3_224_371_200),
    "gpt-oss-120b": (73_728, 36_864, 155_713_536, 1_212_678_144, 4_836_556_800),
    "yarn-llama-2-7b-128k": (524_288, 524_288, 2_147_483_648, 17_179_869_184, 68_719_476_736),
    "codellama-7b": (524_288, 524_288, 2_147_483_648, 17_179_869_184, 68_719_476_736),
}

# Hand arithmetic for the rest (same columns). c = bytes per token per attention layer = 2 * kv * head_dim * 2.
OWN_KV: dict[str, tuple[int, int, int, int, int]] = {
    # c = 2*8*64*2 = 2,048; 16 layers -> 32,768/token; x4096, x32768, x131072.
    "llama-3.2-1b": (32_768, 32_768, 134_217_728, 1_073_741_824, 4_294_967_296),
    # c = 2*8*128*2 = 4,096; 28 layers -> 114,688/token.
    "llama-3.2-3b": (114_688, 114_688, 469_762_048, 3_758_096_384, 15_032_385_536),
    # c = 4,096; 40 layers -> 163,840/token.
    "mistral-nemo-12b": (163_840, 163_840, 671_088_640, 5_368_709_120, 21_474_836_480),
    # c = 4,096; 56 layers -> 229,376/token.
    "mixtral-8x22b": (229_376, 229_376, 939_524_096, 7_516_192_768, 30_064_771_072),
    # c = 4,096; 64 layers -> 262,144/token.
    "qwen3-32b": (262_144, 262_144, 1_073_741_824, 8_589_934_592, 34_359_738_368),
    # c = 2*4*128*2 = 2,048; 94 layers -> 192,512/token.
    "qwen3-235b-a22b": (192_512, 192_512, 788_529_152, 6_308_233_216, 25_232_932_864),
    # c = 2*10*128*2 = 5,120; 40 layers -> 204,800/token.
    "phi-4": (204_800, 204_800, 838_860_800, 6_710_886_400, 26_843_545_600),
    # MLA latent (512 + 64) * 2 B = 1,152 per layer; 27 layers -> 31,104/token.
    "deepseek-v2-lite": (31_104, 31_104, 127_401_984, 1_019_215_872, 4_076_863_488),
    # c = 2*4*256*2 = 4,096; 34 layers: global at 5, 11, 17, 23, 29 (5), 29 sliding W=1024.
    # 4K: 4,096*(5*4,096 + 29*1,024) = 4,096*50,176; 32K: 4,096*(5*32,768 + 29,696); 128K: 4,096*(5*131,072 + 29,696).
    "gemma-3-4b": (139_264, 20_480, 205_520_896, 792_723_456, 2_805_989_376),
    # c = 2*8*256*2 = 8,192; 48 layers: 8 global + 40 sliding W=1024.
    # 4K: 8,192*(8*4,096 + 40*1,024) = 8,192*73,728; 32K: 8,192*(262,144 + 40,960); 128K: 8,192*(1,048,576 + 40,960).
    "gemma-3-12b": (393_216, 65_536, 603_979_776, 2_483_027_968, 8_925_478_912),
    # c = 4,096; 48 layers: 36 chunked (8,192) + 12 global. 4K: 48*4,096*4,096.
    # 32K: 4,096*(12*32,768 + 36*8,192) = 4,096*688,128; 128K: 4,096*(12*131,072 + 294,912) = 4,096*1,867,776.
    "llama-4-scout-17b-16e": (196_608, 49_152, 805_306_368, 2_818_572_288, 7_650_410_496),
    # Maverick: Scout's attention (40 heads, 8 KV heads x 128, 36 chunked + 12 global): the same bytes.
    "llama-4-maverick-17b-128e": (196_608, 49_152, 805_306_368, 2_818_572_288, 7_650_410_496),
    # 4 attention layers: c = 4,096 -> 16,384/token. 28 Mamba layers hold a fixed state each:
    # conv 8,192*(4-1) = 24,576 + ssm 8,192*16 = 131,072 elements, *2 B = 311,296 B; *28 = 8,716,288 B.
    # 4K: 16,384*4,096 + 8,716,288; 32K: 16,384*32,768 + 8,716,288; 128K: 16,384*131,072 + 8,716,288.
    "jamba-v0.1": (16_384, 16_384, 75_825_152, 545_587_200, 2_156_199_936),
    # 12 full layers: c = 2*2*256*2 = 2,048 -> 24,576/token. 36 Gated DeltaNet layers hold conv
    # (2*16*128 + 32*128)*(4-1) = 24,576 + state 32*128*128 = 524,288 elements, *2 B = 1,097,728 B; *36 = 39,518,208.
    # 4K: 24,576*4,096 + 39,518,208; 32K: 24,576*32,768 + 39,518,208; 128K: 24,576*131,072 + 39,518,208.
    "qwen3-next-80b-a3b": (24_576, 24_576, 140_181_504, 844_824_576, 3_260_743_680),
    # Issue 9 families. DeepSeek-V3.1 and Kimi K2: MLA latent (512 + 64) * 2 B = 1,152 per layer; 61 layers -> 70,272.
    # 4K: 70,272 * 4,096 = 287,834,112; 32K: 2,302,672,896; 128K: 9,210,691,584.
    "deepseek-v3.1": (70_272, 70_272, 287_834_112, 2_302_672_896, 9_210_691_584),
    "kimi-k2-instruct-0905": (70_272, 70_272, 287_834_112, 2_302_672_896, 9_210_691_584),
    # DeepSeek-V3.2-Exp: latent 1,152 + indexer key 128 * 2 B = 256 -> 1,408 per layer; 61 layers -> 85,888.
    # 4K: 85,888 * 4,096 = 351,797,248; 32K: 2,814,377,984; 128K: 11,257,511,936.
    "deepseek-v3.2-exp": (85_888, 85_888, 351_797_248, 2_814_377_984, 11_257_511_936),
    # SmolLM3: c = 2*4*128*2 = 2,048; 36 layers (NoPE ones cache the same) -> 73,728/token.
    "smollm3-3b": (73_728, 73_728, 301_989_888, 2_415_919_104, 9_663_676_416),
    # OLMo 2 7B: c = 2*32*128*2 = 16,384; 32 layers -> 524,288/token (Llama-2-7B's geometry).
    "olmo-2-1124-7b": (524_288, 524_288, 2_147_483_648, 17_179_869_184, 68_719_476_736),
    # MiniMax-M2: c = 2*8*128*2 = 4,096; 62 full-attention layers -> 253,952/token.
    "minimax-m2": (253_952, 253_952, 1_040_187_392, 8_321_499_136, 33_285_996_544),
    # Command A: c = 2*8*128*2 = 4,096; 64 layers: 48 sliding (W 4,096) + 16 global (NoPE).
    # 4K: 4,096*64*4,096; 32K: 4,096*(16*32,768 + 48*4,096) = 4,096*720,896; 128K: 4,096*(16*131,072 + 196,608).
    "command-a-03-2025": (262_144, 65_536, 1_073_741_824, 2_952_790_016, 9_395_240_960),
    # Nemotron-H 8B: 4 attention layers, c = 2*8*128*2 = 4,096 -> 16,384/token. 24 Mamba2 layers (d_inner 8,192,
    # 8 groups, d_state 128, conv 4) hold conv (8,192 + 2*8*128)*(4-1) = 30,720 + ssm 8,192*128 = 1,048,576
    # elements, *2 B = 2,158,592 B each; *24 = 51,806,208. 4K: 16,384*4,096 + 51,806,208 = 118,915,072;
    # 32K: 536,870,912 + 51,806,208; 128K: 2,147,483,648 + 51,806,208. The 24 MLP-only layers cache nothing.
    "nemotron-h-8b-base-8k": (16_384, 16_384, 118_915_072, 588_677_120, 2_199_289_856),
    # Nemotron 3 Nano 30B-A3B: 6 attention layers, c = 2*2*128*2 = 1,024 -> 6,144/token. 23 Mamba2 layers
    # (d_inner 4,096): conv (4,096 + 2*8*128)*3 = 18,432 elements *2 B = 36,864 + ssm 4,096*128 = 524,288 elements
    # in fp32 (the config's mamba_ssm_cache_dtype "float32", ssm_state_dtype) *4 B = 2,097,152 -> 2,134,016 B;
    # *23 = 49,082,368. 4K: 6,144*4,096 + 49,082,368 = 74,248,192; 32K: 201,326,592 + 49,082,368;
    # 128K: 805,306,368 + 49,082,368. The 23 MoE-only layers cache nothing. (Was 50,130,944 / 226,291,712 /
    # 830,271,488 with the SSM state at the model's bf16, 1,085,440 B a layer, before the field was read.)
    "nemotron-3-nano-30b-a3b": (6_144, 6_144, 74_248_192, 250_408_960, 854_388_736),
    # Granite 4.0 H Small: 4 attention layers, c = 4,096 -> 16,384/token. 36 Mamba2 layers (d_inner 8,192,
    # 1 group, d_state 128): conv (8,192 + 2*128)*3 = 25,344 + ssm 1,048,576 elements, *2 B = 2,147,840 B;
    # *36 = 77,322,240. 4K: 67,108,864 + 77,322,240 = 144,431,104; 32K: 536,870,912 + 77,322,240;
    # 128K: 2,147,483,648 + 77,322,240.
    "granite-4.0-h-small": (16_384, 16_384, 144_431_104, 614_193_152, 2_224_805_888),
    # Falcon-H1 7B: all 44 layers cache K/V, c = 2*2*128*2 = 1,024 -> 45,056/token, AND keep the state of the
    # Mamba2 mixer beside the attention: conv (3,072 + 2*1*256)*(4-1) = 10,752 + ssm 3,072*256 = 786,432
    # elements, *2 B = 1,594,368 B per layer; *44 = 70,152,192. 4K: 45,056*4,096 + 70,152,192 = 254,701,568;
    # 32K: 1,476,395,008 + 70,152,192; 128K: 5,905,580,032 + 70,152,192.
    "falcon-h1-7b-instruct": (45_056, 45_056, 254_701_568, 1_546_547_200, 5_975_732_224),
    # MiniMax-M1: 10 softmax layers, c = 2*8*128*2 = 4,096 -> 40,960/token. 70 lightning layers hold one
    # K^T V state of 64 heads x 128 x 128 = 1,048,576 elements, *2 B = 2,097,152 B each; *70 = 146,800,640.
    # 4K: 40,960*4,096 + 146,800,640 = 314,572,800; 32K: 1,342,177,280 + 146,800,640; 128K: 5,368,709,120 + 146,800,640.
    "minimax-m1-80k": (40_960, 40_960, 314_572_800, 1_488_977_920, 5_515_509_760),
    # Llama-3.3-Nemotron-Super-49B-v1: c = 2*8*128*2 = 4,096 on the 49 attention blocks; the 31 no_op blocks hold
    # nothing -> 200,704/token. 4K: 200,704*4,096 = 822,083,584; 32K: 6,576,668,672; 128K: 26,306,674,688.
    "llama-3.3-nemotron-super-49b-v1": (200_704, 200_704, 822_083_584, 6_576_668_672, 26_306_674_688),
    # Gemma 3n E4B (35 layers) and E2B (30): only the first 20 layers store K/V (the last 15 / 10 reuse it):
    # 4 global (layers 4, 9, 14, 19) + 16 sliding (W 512), c = 2*2*256*2 = 2,048 -> 40,960/token; marginal 4*2,048.
    # 4K: 2,048*(4*4,096 + 16*512) = 2,048*24,576 = 50,331,648; 32K: 2,048*(4*32,768 + 8,192) = 285,212,672;
    # 128K: 2,048*(4*131,072 + 8,192) = 1,090,519,040.
    "gemma-3n-e4b": (40_960, 8_192, 50_331_648, 285_212_672, 1_090_519_040),
    "gemma-3n-e2b": (40_960, 8_192, 50_331_648, 285_212_672, 1_090_519_040),
    # Llama 3.2 Vision, one image per request. 11B: 32 self-attention layers, c = 2*8*128*2 = 4,096 -> 131,072/token;
    # 8 cross-attention layers hold the image's 4 x 1,601 = 6,404 vision tokens: 8*4,096*6,404 = 209,846,272 B.
    # 4K: 131,072*4,096 + 209,846,272; 32K: 131,072*32,768 + 209,846,272; 128K: 131,072*131,072 + 209,846,272.
    "llama-3.2-11b-vision": (131_072, 131_072, 746_717_184, 4_504_813_568, 17_389_715_456),
    # 90B: 80 self-attention layers -> 327,680/token; 20 cross layers: 20*4,096*6,404 = 524,615,680 B.
    "llama-3.2-90b-vision": (327_680, 327_680, 1_866_792_960, 11_262_033_920, 43_474_288_640),
    # GLM-4.5: c = 2*8*128*2 = 4,096; 92 layers -> 376,832/token (partial RoPE and q/k norm cache nothing extra).
    # 4K: 376,832*4,096 = 1,543,503,872; 32K: 12,348,030,976; 128K: 49,392,123,904.
    "glm-4.5": (376_832, 376_832, 1_543_503_872, 12_348_030_976, 49_392_123_904),
    # GLM-4.5-Air: c = 4,096; 46 layers -> 188,416/token. 4K: 771,751,936; 32K: 6,174,015,488; 128K: 24,696,061,952.
    "glm-4.5-air": (188_416, 188_416, 771_751_936, 6_174_015_488, 24_696_061_952),
    # GLM-4.6: GLM-4.5's 92 layers (376,832/token); only max_position_embeddings (202,752) differs.
    "glm-4.6": (376_832, 376_832, 1_543_503_872, 12_348_030_976, 49_392_123_904),
    # Mistral Small 3.1: c = 2*8*128*2 = 4,096; 40 full layers -> 163,840/token (Mistral Nemo's geometry).
    "mistral-small-3.1-24b": (163_840, 163_840, 671_088_640, 5_368_709_120, 21_474_836_480),
    # Qwen3.5 27B: 16 full layers, c = 2*4*256*2 = 4,096 -> 65,536/token. 48 Gated DeltaNet layers hold conv
    # (2*16*128 + 48*128)*(4-1) = 30,720 elements *2 B = 61,440 + state 48*128*128 = 786,432 elements in fp32
    # (text_config mamba_ssm_dtype "float32") *4 B = 3,145,728 -> 3,207,168 B; *48 = 153,944,064.
    # 4K: 65,536*4,096 + 153,944,064; 32K: 65,536*32,768 + 153,944,064; 128K: 65,536*131,072 + 153,944,064.
    # (Was 346,882,048 / 2,225,930,240 /
    # 8,668,381,184 with the state at bf16, 1,634,304 B a layer, before the field was read.)
    "qwen3.5-27b": (65_536, 65_536, 422_379_520, 2_301_427_712, 8_743_878_656),
    # Qwen3.5 35B-A3B: 10 full layers, c = 2*2*256*2 = 2,048 -> 20,480/token. 30 Gated DeltaNet layers hold conv
    # (2*16*128 + 32*128)*3 = 24,576 elements *2 B = 49,152 + state 32*128*128 = 524,288 elements in fp32
    # (mamba_ssm_dtype) *4 B = 2,097,152 -> 2,146,304 B; *30 = 64,389,120. 4K: 20,480*4,096 + 64,389,120;
    # 32K: 20,480*32,768 + 64,389,120; 128K: 20,480*131,072 + 64,389,120.
    # (Was 116,817,920 / 704,020,480 / 2,717,286,400 at bf16.)
    "qwen3.5-35b-a3b": (20_480, 20_480, 148_275_200, 735_477_760, 2_748_743_680),
    # Qwen3.5 122B-A10B: 12 full layers, c = 2*2*256*2 = 2,048 -> 24,576/token. 36 DeltaNet layers hold conv
    # (2*16*128 + 64*128)*3 = 36,864 elements *2 B = 73,728 + state 64*128*128 = 1,048,576 elements in fp32
    # (mamba_ssm_dtype) *4 B = 4,194,304 -> 4,268,032 B; *36 = 153,649,152. 4K: 24,576*4,096 + 153,649,152; 32K:
    # 24,576*32,768 + 153,649,152; 128K: 24,576*131,072 + 153,649,152. (Was 178,814,976 / 883,458,048 /
    # 3,299,377,152 at bf16.)
    "qwen3.5-122b-a10b": (24_576, 24_576, 254_312_448, 958_955_520, 3_374_874_624),
}

EXPECTED_KV = {**REFERENCE_KV, **OWN_KV}

# Exact parameter counts. models.md gives hand-computed totals for the models it covers ([COMPUTED]);
# the others were checked against transformers' own modules built on the meta device (tests/test_params.py
# repeats that check when transformers is installed). (total, active) -- active equals total for dense models.
EXPECTED_PARAMS: dict[str, tuple[int, int]] = {
    "llama-2-7b": (6_738_415_616, 6_738_415_616),  # models.md 1.1
    "llama-2-13b": (13_015_864_320, 13_015_864_320),  # models.md 1.2
    "llama-2-70b": (68_976_648_192, 68_976_648_192),  # models.md 1.3
    "llama-3-8b": (8_030_261_248, 8_030_261_248),  # models.md 1.4
    "llama-3.1-8b": (8_030_261_248, 8_030_261_248),  # models.md 1.4/1.5
    "llama-3.1-70b": (70_553_706_496, 70_553_706_496),  # models.md 1.6
    "llama-3.1-405b": (405_853_388_800, 405_853_388_800),  # models.md 1.7
    "mistral-7b-v0.1": (7_241_732_096, 7_241_732_096),  # models.md 1.8
    "mixtral-8x7b": (46_702_792_704, 12_879_925_248),  # models.md 1.9
    "qwen2.5-7b": (7_615_616_512, 7_615_616_512),  # models.md 1.10
    "qwen2.5-72b": (72_706_203_648, 72_706_203_648),  # models.md 1.11
    "qwen3-8b": (8_190_735_360, 8_190_735_360),  # models.md 1.12
    "qwen3-30b-a3b": (30_532_122_624, 3_353_032_704),  # models.md 1.13
    "gemma-2-9b": (9_241_705_984, 9_241_705_984),  # models.md 1.14
    "gemma-2-27b": (27_227_128_320, 27_227_128_320),  # models.md 1.15
    "gemma-3-27b": (27_009_346_304, 27_009_346_304),  # models.md 1.16 (text only)
    "phi-3-mini-128k": (3_821_079_552, 3_821_079_552),  # models.md 1.19
    "falcon-7b": (6_921_720_704, 6_921_720_704),  # models.md 1.20
    "gpt-oss-20b": (20_914_757_184, 4_187_440_704),  # models.md 1.21 total; active incl. the input embedding
    "gpt-oss-120b": (116_829_156_672, 5_711_982_912),  # models.md 1.21
    "codellama-7b": (6_738_546_688, 6_738_546_688),  # models.md 1.23
    "yarn-llama-2-7b-128k": (6_738_415_616, 6_738_415_616),  # Llama 2 7B geometry
    "llama-3.2-1b": (1_235_814_400, 1_235_814_400),
    "llama-3.2-3b": (3_212_749_824, 3_212_749_824),
    "mistral-nemo-12b": (12_247_782_400, 12_247_782_400),
    "mixtral-8x22b": (140_620_634_112, 39_152_031_744),
    "qwen3-32b": (32_762_123_264, 32_762_123_264),
    "qwen3-235b-a22b": (235_093_634_560, 22_190_763_520),
    "gemma-3-4b": (3_880_263_168, 3_880_263_168),
    "gemma-3-12b": (11_766_034_176, 11_766_034_176),
    "deepseek-v2": (235_741_434_880, 21_375_800_320),
    "deepseek-v2-lite": (15_706_484_224, 2_661_150_208),
    # + 58 MoE layers x 256 router correction biases (e_score_correction_bias, a buffer in transformers).
    "deepseek-v3": (671_026_419_200, 37_552_297_472),
    "phi-4": (14_659_507_200, 14_659_507_200),
    "jamba-v0.1": (51_570_323_328, 12_110_311_296),
    # active = total - 48 layers x (512 - 10) experts x 3*2048*512 = 79,674,391,296 - 75,799,461,888.
    "qwen3-next-80b-a3b": (79_674_391_296, 3_874_929_408),
    "llama-4-scout-17b-16e": (107_769_861_120, 17_172_894_720),
    # Maverick text model: embeddings 202,048 x 5,120 x 2 = 2,068,971,520; attention 48 x 62,914,560 = 3,019,898,880;
    # norms 48 x 10,240 + 5,120 = 496,640; 24 dense MLPs x 3 x 5,120 x 16,384 = 6,039,797,760; 24 MoE layers x
    # (129 experts (128 + shared) x 3 x 5,120 x 8,192 + router 5,120 x 128) = 389,582,684,160. Active: total -
    # 24 x 127 x 125,829,120 = 17,184,691,200. Meta's "400B total, 17B active" (vision encoder included):
    # +0.18 %, +1.1 %.
    "llama-4-maverick-17b-128e": (400_711_848_960, 17_184_691_200),
    # Issue 9. DeepSeek-V3.1: V3's architecture. V3.2-Exp: the same + 61 lightning indexers of 13,959,424
    # (wq_b 1,536*64*128 + wk 7,168*128 + k_norm 256 + weights_proj 7,168*64) = 851,524,864, run by every token.
    # Was (671,026,419,200, 37,552,297,472) while the indexer weights were not counted; now +0.13% vs 671B.
    "deepseek-v3.1": (671_026_419_200, 37_552_297_472),
    "deepseek-v3.2-exp": (671_877_944_064, 38_403_822_336),
    # Kimi K2: 60 MoE layers x 384 experts x 3*7168*2048 = 1,014,686,023,680 of the total; published "1T".
    "kimi-k2-instruct-0905": (1_026_408_232_448, 32_861_500_928),
    # SmolLM3 3B: tied 128,256 x 2,048 embedding + 36 x (10,485,760 attention + 67,633,152 MLP + 4,096 norms) + 2,048.
    "smollm3-3b": (3_075_098_624, 3_075_098_624),
    # OLMo 2 7B: Llama-2-7B's 6,738,415,616 - 32,000 x 4,096 x 2 + 100,352 x 4,096 x 2 + 32 x 8,192 q/k norms.
    "olmo-2-1124-7b": (7_298_617_344, 7_298_617_344),
    # MiniMax-M2: 62 x 256 experts x 3*3072*1536 = 224,680,476,672 of it; 0.57% under the published 230B.
    "minimax-m2": (228_689_764_864, 11_030_553_088),
    # Command A: tied 256,000 x 12,288 embedding + 12,288 final norm
    # + 64 x (327,155,712 attention + 1,358,954,496 MLP + 12,288 norm).
    "command-a-03-2025": (111_057_580_032, 111_057_580_032),
    # Nemotron-H 8B, one mixer per block: untied 2 x 131,072 x 4,096 = 1,073,741,824
    # + 24 Mamba2 x 109,635,968 (in_proj 4,096 x (2*8,192 + 2*8*128 + 128) = 76,021,760, out_proj 33,554,432,
    #   conv 10,240 x 4 + 10,240 bias, dt_bias/A_log/D 3 x 128, gated norm 8,192)
    # + 4 attention x 41,943,040 (q 4,096^2, k/v 2 x 4,096 x 1,024, o 4,096^2)
    # + 24 MLP x 176,160,768 (up + down 2 x 4,096 x 21,504) + 52 x 4,096 norms + 4,096 final norm.
    # Published "8B" (a size class; the count is 1.3% above it).
    "nemotron-h-8b-base-8k": (8_100_852_736, 8_100_852_736),
    # Nemotron 3 Nano: untied 2 x 131,072 x 2,688 = 704,643,072 + 23 Mamba2 x 38,742,208 + 6 attention x 23,396,352
    # + 23 MoE x 1,297,465,472 (128 experts x 2 x 2,688 x 1,856 + router 128 x 2,688 + bias 128
    # + shared 2 x 2,688 x 3,712) + 52 x 2,688 + 2,688 = 31,577,940,288, 0.07% under the published 31.6B.
    # Active: 6 routed experts: 23 x 80,167,040 instead -> 3,580,076,352 (published "3.6B with embeddings").
    "nemotron-3-nano-30b-a3b": (31_577_940_288, 3_580_076_352),
    # Granite 4.0 H Small: tied 100,352 x 4,096 = 411,041,792 + 36 Mamba2 x 102,286,976 + 4 attention x 41,943,040
    # + 40 MoE x 698,646,528 (72 x 3 x 4,096 x 768 + router 72 x 4,096 + shared 3 x 4,096 x 1,536)
    # + 80 x 4,096 + 4,096 norms = 32,207,337,984, 0.65% over the published 32B. Active: 10 experts per layer
    # (40 x 113,541,120) -> 8,803,121,664 (published "9B active", rounded).
    "granite-4.0-h-small": (32_207_337_984, 8_803_121_664),
    # Falcon-H1 7B: untied 2 x 130,048 x 3,072 = 799,014,912 + 44 x 154,238,536 + 3,072 final norm, a layer being
    # attention 11,010,048 (q 3,072 x 1,536, k/v 2 x 3,072 x 256, o 1,536 x 3,072) + Mamba2 29,976,136 (in_proj
    # 3,072 x (3,072 + 3,584 + 24), out_proj 3,072^2, conv 3,584 x 4 + 3,584, dt_bias/A_log/D 3 x 24, no gated norm)
    # + gated MLP 3 x 3,072 x 12,288 = 113,246,208 + 2 x 3,072 norms = 7,585,513,568, 0.06% under 7.59B.
    "falcon-h1-7b-instruct": (7_585_513_568, 7_585_513_568),
    # MiniMax-M1: untied 2 x 200,064 x 6,144 = 2,458,386,432 + 70 lightning x 251,666,432 (qkv 6,144 x 3 x 8,192,
    # output_gate and out_proj 6,144 x 8,192 each, norm 8,192) + 10 softmax x 113,246,208 (q/o 6,144 x 8,192,
    # k/v 2 x 6,144 x 1,024) + 80 MoE x 5,436,014,592 (32 x 3 x 6,144 x 9,216 + router 32 x 6,144) + 80 x 2 x 6,144
    # + 6,144 norms = 456,089,655,296, 0.02% over the published 456B. Active (top-2): 80 x 339,935,232 for the MoE
    # -> 48,403,306,496; without the embedding and LM head 45,944,920,064 against the published 45.9B.
    "minimax-m1-80k": (456_089_655_296, 48_403_306_496),
    # Llama-3.3-Nemotron-Super-49B-v1 (transformers has no DeciLM class: hand arithmetic). Untied embedding + head
    # 2 x 128,256 x 8,192 = 2,101,346,304; final norm 8,192; 49 attention blocks x (2 x 8,192^2 q/o + 2 x 8,192 x
    # 1,024 k/v = 150,994,944) = 7,398,752,256; FFN 3 x 8,192 x sum of widths (49 x 28,672 + 17,920 + 6 x 14,336
    # + 10 x 7,168 + 8 x 5,632 + 6 x 2,816 = 1,642,496) = 40,365,981,696; norms (49 input + 80 post) x 8,192
    # = 1,056,768. Total 49,867,145,216: "49B" is the size class, 1.8% below it.
    "llama-3.3-nemotron-super-49b-v1": (49_867_145_216, 49_867_145_216),
    # Gemma 3n E4B (text model; checked against transformers' modules in tests/test_params.py, which adds the K/V
    # projections of the shared layers that transformers drops). Tied embedding 262,400 x 2,048 = 537,395,200;
    # PLE table 262,144 x 35 x 256 = 2,348,810,240, its projection 2,048 x 8,960 + norm 256 = 18,350,336;
    # AltUp projections 2 x 3 x 2,048^2 = 25,165,824; final norm 2,048. Per layer (x 35): q/o 2 x 2,048 x 2,048
    # = 8,388,608, k/v 2 x 2,048 x 512 = 2,097,152, q/k norms 512, MLP 3 x 2,048 x 16,384 = 100,663,296,
    # 8 x 2,048 norms = 16,384, LAuReL 2 x 2,048 x 64 = 262,144, PLE gate/projection 2 x 2,048 x 256
    # = 1,048,576, AltUp 16 + 64 + 8,192 = 8,272: 112,484,944. Total 2,929,723,648 + 35 x 112,484,944.
    "gemma-3n-e4b": (6_866_696_688, 6_866_696_688),
    # E2B: 30 layers, MLP 3 x 2,048 x 8,192 = 50,331,648 -> 62,153,296 per layer; PLE 262,144 x 30 x 256
    # = 2,013,265,920, projection 2,048 x 7,680 + 256 = 15,728,896: 2,591,557,888 + 30 x 62,153,296.
    "gemma-3n-e2b": (4_456_156_768, 4_456_156_768),
    # Llama 3.2 11B Vision (= transformers' MllamaForConditionalGeneration on meta, tests/test_params.py): embedding
    # and head 2 x 128,256 x 4,096 = 1,050,673,152; final norm 4,096; 32 self layers x (q/o 2 x 4,096^2 + k/v
    # 2 x 4,096 x 1,024 + MLP 3 x 4,096 x 14,336 + 2 norms x 4,096 = 218,112,000); 8 cross layers x (the same
    # + q/k norms 2 x 128 + 2 gates = 218,112,258); extra 895,061,523 = vision tower 863,567,379 + projector
    # 7,680 x 4,096 + 4,096 + 8 image-token embedding rows x 4,096. 10,670,220,835 vs Meta's 10.6B: +0.66%.
    "llama-3.2-11b-vision": (10_670_220_835, 10_670_220_835),
    # 90B: 2 x 128,256 x 8,192 + 8,192 + 80 x 855,654,400 + 20 x 855,654,658 + (863,567,379 + 7,680 x 8,192
    # + 8,192 + 8 x 8,192 = 926,555,667) = 88,593,355,323 vs Meta's 88.8B: -0.23%.
    "llama-3.2-90b-vision": (88_593_355_323, 88_593_355_323),
    # GLM-4.5 (h 5,120). Attention: q 5,120*12,288 + k,v 5,120*2,048 + o 12,288*5,120 + q/k/v biases 14,336
    # + q/k norms 256 = 136,329,472; norms 10,240. Dense MLP 3*5,120*12,288 = 188,743,680. MoE layer: 160 x
    # 3*5,120*1,536 (23,592,960) + router 5,120*160 + bias 160 + shared 23,592,960 = 3,799,285,920.
    # Total: 2 x 151,552*5,120 + 5,120 + 92 x 136,339,712 + 3 x 188,743,680 + 89 x 3,799,285,920 = 352,797,829,024
    # (-0.62% vs the published 355B). Active: 89 MoE layers run 8 experts + router + shared = 213,156,000 each.
    "glm-4.5": (352_797_829_024, 33_632_266_144),
    # GLM-4.5-Air (h 4,096). Attention 50,331,648*2 + 8,388,608 + 14,336 = 109,066,240; norms 8,192; dense MLP
    # 134,479,872; MoE layer 128 x 17,301,504 + 524,416 + 17,301,504 = 2,232,418,432.
    # Total: 2 x 620,756,992 + 4,096 + 46 x 109,074,432 + 134,479,872 + 45 x 2,232,418,432 = 106,852,251,264 (+0.80%).
    "glm-4.5-air": (106_852_251_264, 13_424_129_664),
    "glm-4.6": (352_797_829_024, 33_632_266_144),  # GLM-4.5's architecture, the same count
    # Mistral Small 3.1 text model: 2 x 131,072*5,120 + 5,120 + 40 x (52,428,800 attention + 503,316,480 MLP
    # + 10,240 norms); the vision tower adds 438,958,080 (tests/test_params.py).
    "mistral-small-3.1-24b": (23_572_403_200, 23_572_403_200),
    # Qwen3.5 27B (h 5,120). Full layer: q_proj (query + gate) 5,120*12,288 + k,v 10,485,760 + o 6,144*5,120
    # + q/k norms 512 = 104,858,112. DeltaNet layer: in_proj_qkv 5,120*10,240 + z 5,120*6,144 + b,a 2*5,120*48
    # + out 6,144*5,120 + conv 10,240*4 + dt_bias, A_log 96 + norm 128 = 115,876,064. MLP 3*5,120*17,408 = 267,386,880.
    # Total: 2 x 248,320*5,120 + 5,120 + 16 x 104,858,112 + 48 x 115,876,064 + 64 x (267,386,880 + 10,240)
    # = 26,895,998,464 (-0.39% vs the published 27B).
    "qwen3.5-27b": (26_895_998_464, 26_895_998_464),
    # Qwen3.5 35B-A3B (h 2,048). Full layer 27,263,488; DeltaNet layer 33,718,464; MoE layer 256 x 3*2,048*512
    # + router 2,048*256 + shared 3,145,728 + shared gate 2,048 = 808,978,432 (active: 8 experts, the rest
    # = 28,837,888).
    # Total: 2 x 248,320*2,048 + 2,048 + 10 x 27,263,488 + 30 x 33,718,464 + 40 x (808,978,432 + 4,096)
    # = 34,660,610,688 (-0.97% vs the published 35B).
    "qwen3.5-35b-a3b": (34_660_610_688, 3_454_988_928),
    # Qwen3.5 122B-A10B (h 3,072). Full layer: q_proj 3,072*16,384 + k,v 3,145,728 + o 8,192*3,072 + 512 = 78,643,712.
    # DeltaNet layer: qkv 3,072*12,288 + z 3,072*8,192 + b,a 2*3,072*64 + out 8,192*3,072 + conv 12,288*4 + 128
    # + norm 128 = 88,523,008. MoE layer: 256 x 3*3,072*1,024 + router 786,432 + shared 9,437,184 + gate 3,072
    # = 2,426,145,792 (active 85,724,160). Total: 2 x 248,320*3,072 + 3,072 + 12 x 78,643,712 + 36 x 88,523,008
    # + 48 x (2,426,145,792 + 6,144) = 122,111,526,912 (+0.09% vs the published 122B).
    "qwen3.5-122b-a10b": (122_111_526_912, 9_771_288_576),
}


# Google publishes Gemma 3n's "effective" parameters: without the input and per-layer embedding tables
# (google/gemma3n-slicing-configs, "# Effective Params (B)": 3.98 for E4B, 1.91 for E2B; the "raw" 8B / 5B
# add the vision and audio towers, which the text specs do not count).
# E4B: 6,866,696,688 - 537,395,200 - 2,348,810,240 = 3,980,491,248 (+0.01%);
# E2B: 4,456,156,768 - 537,395,200 - 2,013,265,920 = 1,905,495,648 (-0.24%).
GEMMA3N_EFFECTIVE = {"gemma-3n-e4b": (3_980_491_248, 3.98e9), "gemma-3n-e2b": (1_905_495_648, 1.91e9)}


@pytest.mark.parametrize("name", sorted(GEMMA3N_EFFECTIVE))
def test_gemma3n_effective_params_match_published(name):
    exact, published = GEMMA3N_EFFECTIVE[name]
    assert count_params(load_bundled(name)).effective == exact
    assert abs(exact - published) <= 0.01 * published


def test_bundled_catalog_is_complete():
    required = {
        "llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3.1-8b", "llama-3.1-70b",
        "llama-3.1-405b", "llama-3.2-1b", "llama-3.2-3b", "codellama-7b", "yarn-llama-2-7b-128k",
        "mistral-7b-v0.1", "mistral-nemo-12b", "mixtral-8x7b", "mixtral-8x22b", "qwen2.5-7b", "qwen2.5-72b",
        "qwen3-8b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b", "gemma-2-9b", "gemma-2-27b",
        "gemma-3-4b", "gemma-3-12b", "gemma-3-27b", "deepseek-v2", "deepseek-v2-lite", "deepseek-v3",
        "phi-3-mini-128k", "phi-4", "falcon-7b", "gpt-oss-20b", "gpt-oss-120b", "jamba-v0.1",
        "qwen3-next-80b-a3b", "llama-4-scout-17b-16e",
    }  # fmt: skip
    assert required <= set(NAMES)


def test_every_bundled_model_has_golden_numbers():
    assert set(EXPECTED_KV) == set(NAMES)
    assert set(EXPECTED_PARAMS) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_spec_loads_and_cites_a_source(name):
    spec = load_bundled(name)
    assert spec.name == name
    assert spec.source.startswith(("https://", "arXiv"))
    first = (specs_dir() / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# ") and "models.md" in first  # names its models.md section, or says it is not there


@pytest.mark.parametrize("name", [n for n in NAMES if load_bundled(n).published_params])
def test_computed_params_within_one_percent_of_published(name):
    spec = load_bundled(name)
    assert spec.published_params_source
    total = count_params(spec).total
    assert abs(total - spec.published_params) <= 0.01 * spec.published_params


@pytest.mark.parametrize("name", NAMES)
def test_exact_param_counts(name):
    count = count_params(load_bundled(name))
    assert (count.total, count.active) == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", NAMES)
def test_kv_bytes_match_hand_arithmetic(name):
    per_token, marginal, at_4k, at_32k, at_128k = EXPECTED_KV[name]
    plan = cache_plan(load_bundled(name), "bf16")
    assert plan.bytes_per_token == per_token
    assert plan.bytes_per_sequence(K128 + 1) - plan.bytes_per_sequence(K128) == marginal
    assert [plan.bytes_per_sequence(n) for n in (K4, K32, K128)] == [at_4k, at_32k, at_128k]


# ---- the traps of models.md 2.4, one assertion each --------------------------------------------


def test_explicit_head_dim_is_kept():
    assert load_bundled("gemma-2-9b").head_dim == 256  # not 3584 / 16 = 224
    assert load_bundled("gemma-3-27b").head_dim == 128  # not 5376 / 32 = 168
    assert load_bundled("qwen3-30b-a3b").head_dim == 128  # not 2048 / 32 = 64
    assert load_bundled("gpt-oss-20b").head_dim == 64  # not 2880 / 64 = 45
    assert load_bundled("mistral-nemo-12b").head_dim == 128  # not 5120 / 32 = 160


def test_llama_405b_has_eight_kv_heads():
    assert load_bundled("llama-3.1-405b").num_kv_heads == 8


def test_falcon_multi_query_is_one_kv_head():
    assert load_bundled("falcon-7b").num_kv_heads == 1


@pytest.mark.parametrize("name", ["qwen2.5-7b", "qwen2.5-72b", "phi-3-mini-128k", "mixtral-8x7b", "qwen3-8b"])
def test_inactive_windows_are_full_attention(name):
    assert set(load_bundled(name).layer_kind_names) == {"full"}


@pytest.mark.parametrize(("name", "window"), [("gemma-2-9b", 4096), ("gemma-2-27b", 4096), ("gpt-oss-20b", 128)])
def test_even_layers_slide_odd_layers_are_global(name, window):
    spec = load_bundled(name)
    for i, kind_name in enumerate(spec.layer_kind_names):
        kind = spec.kind(kind_name)
        assert (kind.type, kind.window) == (("sliding", window) if i % 2 == 0 else ("full", None))


@pytest.mark.parametrize("name", ["gemma-3-4b", "gemma-3-12b", "gemma-3-27b"])
def test_gemma3_every_sixth_layer_is_global(name):
    spec = load_bundled(name)
    full = [i for i, k in enumerate(spec.layer_kind_names) if spec.kind(k).type == "full"]
    assert full == list(range(5, spec.num_layers, 6))


def test_llama4_every_fourth_layer_is_global_without_rope():
    spec = load_bundled("llama-4-scout-17b-16e")
    kinds = [spec.kind(k) for k in spec.layer_kind_names]
    assert [i for i, k in enumerate(kinds) if k.type == "full"] == list(range(3, 48, 4))
    assert all(not k.use_rope for k in kinds if k.type == "full")
    assert {k.chunk for k in kinds if k.type == "chunked"} == {8192}


def test_llama4_maverick_moe_on_odd_layers_and_near_the_published_400b_17b():
    # interleave_moe_layer_step 2: transformers Llama4TextConfig moe_layers = range(1, 48, 2); the even layers
    # are dense (intermediate_size_mlp 16,384). Meta's model card: 400B total, 17B active (with the vision encoder).
    spec = load_bundled("llama-4-maverick-17b-128e")
    assert sorted(spec.moe_layers) == list(range(1, 48, 2))
    assert sorted(spec.dense_mlp_layers) == list(range(0, 48, 2))
    count = count_params(spec)
    assert abs(count.total / 400e9 - 1) < 0.002  # 400,711,848,960: +0.18 %
    assert abs(count.active / 17e9 - 1) < 0.011  # 17,184,691,200: +1.09 %


def test_jamba_attention_every_eighth_layer_from_four():
    spec = load_bundled("jamba-v0.1")
    attention = [i for i, k in enumerate(spec.layer_kind_names) if spec.kind(k).type == "full"]
    assert attention == [4, 12, 20, 28]
    assert sorted(set(range(32)) - spec.dense_mlp_layers) == list(range(1, 32, 2))  # MoE on odd layers


def test_qwen3_next_three_deltanet_to_one_full():
    spec = load_bundled("qwen3-next-80b-a3b")
    full = [i for i, k in enumerate(spec.layer_kind_names) if spec.kind(k).type == "full"]
    assert full == list(range(3, 48, 4))


@pytest.mark.parametrize("name", ["deepseek-v2", "deepseek-v2-lite", "deepseek-v3"])
def test_mla_caches_the_latent(name):
    spec = load_bundled(name)
    plan = cache_plan(spec, "bf16")
    assert plan.bytes_per_token == (512 + 64) * 2 * spec.num_layers


@pytest.mark.parametrize(
    ("name", "tied"),
    [("gemma-2-9b", True), ("gemma-3-27b", True), ("falcon-7b", True), ("llama-3.2-1b", True), ("llama-3.1-8b", False)],
)
def test_tied_embeddings_from_class_defaults(name, tied):
    assert load_bundled(name).tie_word_embeddings is tied


# ---- the CLI lists the catalog ------------------------------------------------------------------


def test_models_command_lists_every_spec_file(cli):
    result = cli("models", "--format", "json")
    assert result.exit_code == 0, result.output
    listed = {row["name"] for row in json.loads(result.stdout)}
    files = {p.stem for p in Path(specs_dir()).glob("*.yaml")}
    assert listed == files
