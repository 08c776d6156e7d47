"""benchmarks/aic_tables.py: the walk over aiconfigurator's tables that every ``--collect`` step shares."""

from pathlib import Path

import pytest

from tests.benchmods import bench_module

aic_tables = bench_module("aic_tables")


def test_read_tables_without_aiconfigurator_says_so_once_and_reads_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(aic_tables, "tables_root", lambda: None)  # as where aiconfigurator or pandas is missing
    assert aic_tables.read_tables({"h200": "h200_sxm"}, {"vllm": "0.24.0"}, "gemm", "gemm_perf.parquet") is None
    assert capsys.readouterr().out == aic_tables.SKIPPED + "\n"


def test_each_table_walks_gpu_by_gpu_then_engine_by_engine_and_skips_tables_never_collected(tmp_path: Path) -> None:
    # a tree shaped as aiconfigurator_core/systems/data: <system>/<operation>/<engine>/<version>/<file>; the per-engine
    # file names are mla_compare's (SGLang's module table has its own name); H200 has no SGLang table
    names = {"vllm": "mla_generation_module_perf.parquet", "sglang": "wideep_generation_mla_perf.parquet"}
    for system, engine, version in (("b200_sxm", "sglang", "0.5.10"), ("b200_sxm", "vllm", "0.24.0"),
                                    ("h200_sxm", "vllm", "0.24.0")):  # fmt: skip
        (tmp_path / system / "mla" / engine / version).mkdir(parents=True)
        (tmp_path / system / "mla" / engine / version / names[engine]).write_bytes(b"")
    walk = aic_tables.each_table(tmp_path, {"h200": "h200_sxm", "b200": "b200_sxm"},
                                 {"vllm": "0.24.0", "sglang": "0.5.10"}, "mla", names)  # fmt: skip
    got = [(gpu, engine, version, source) for gpu, engine, version, _, source in walk]
    assert got == [
        ("h200", "vllm", "0.24.0", "aiconfigurator_core/systems/data/h200_sxm/mla/vllm/0.24.0/" + names["vllm"]),
        ("b200", "vllm", "0.24.0", "aiconfigurator_core/systems/data/b200_sxm/mla/vllm/0.24.0/" + names["vllm"]),
        ("b200", "sglang", "0.5.10", "aiconfigurator_core/systems/data/b200_sxm/mla/sglang/0.5.10/" + names["sglang"]),
    ]
