import pytest

from kvplan.errors import InvalidInput
from kvplan.units import KV_DTYPES, WEIGHT_DTYPES, kv_dtype, parse_length, parse_lengths, parse_size, weight_dtype


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("4096", 4096), ("4k", 4096), ("128K", 131072), ("1M", 1048576), ("1.5k", 1536), (" 32k ", 32768), (7, 7)],
)
def test_parse_length(text, tokens):
    assert parse_length(text) == tokens


@pytest.mark.parametrize("text", ["", "-5", "0", "abc", "4kk", "1.3k", "2G", "2000M", True])
def test_parse_length_rejects(text):
    with pytest.raises(InvalidInput, match="invalid length"):
        parse_length(text)


def test_parse_lengths_keeps_order_drops_duplicates():
    assert parse_lengths("4k,32k,128k,4096") == [4096, 32768, 131072]
    with pytest.raises(InvalidInput):
        parse_lengths(",")


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [("63.5GiB", 68182605824), ("512MiB", 536870912), ("8e9", 8_000_000_000), ("80GB", 80 * 10**9), ("0", 0)],
)
def test_parse_size(text, nbytes):
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["-1GiB", "12 parsecs", "GiB", "1e99"])
def test_parse_size_rejects(text):
    with pytest.raises(InvalidInput, match="invalid size"):
        parse_size(text)


def test_llama_cpp_block_formats_are_exact():
    # q8_0: 34 bytes per 32 values; q4_0: 18 bytes per 32 (llama.cpp ggml-common.h block structs).
    assert kv_dtype("q8_0").nbytes(1024) == 1088
    assert kv_dtype("q4_0").nbytes(1024) == 576
    assert kv_dtype("bfloat16").nbytes(3) == 6
    assert kv_dtype("fp8").nbytes(3) == 3
    assert kv_dtype("int4").nbytes(3) == 2  # rounded up to a whole byte


def test_int4_weights_carry_group_overhead():
    # 0.5 B + (fp16 scale 2 B + 4-bit zero 0.5 B) per group of 128 -> 128 weights = 66.5 B -> 67 B.
    assert weight_dtype("int4").nbytes(128) == 67
    assert weight_dtype("int4").nbytes(128 * 1024) == 68096


def test_unknown_dtype_lists_choices():
    with pytest.raises(InvalidInput, match="expected one of fp32, bf16"):
        kv_dtype("fp7")
    assert set(KV_DTYPES) >= {"fp32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "int8", "int4", "q8_0", "q4_0"}
    assert set(WEIGHT_DTYPES) >= {"bf16", "fp16", "fp8", "int8", "int4"}
