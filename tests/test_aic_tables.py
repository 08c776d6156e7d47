"""benchmarks/aic_tables.py: the walk over aiconfigurator's tables that every ``--collect`` step shares."""

import logging
import sys
import types
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


def test_capture_static_breakdown_without_aiconfigurator_says_so_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "aiconfigurator", None)  # None in sys.modules: its import raises ImportError
    assert aic_tables.capture_static_breakdown() is None
    assert capsys.readouterr().out == aic_tables.SKIPPED + "\n"


def test_capture_static_breakdown_keeps_what_the_last_call_saw(monkeypatch: pytest.MonkeyPatch) -> None:
    # stand-ins for the two aiconfigurator modules it imports; the backend's method returns seven dicts as
    # aiconfigurator_core/sdk/backends/base_backend.py's does, the context latencies first, the generation ones third
    class BaseBackend:
        def _run_static_breakdown(self, model, database, runtime_config, mode):  # noqa: ANN001, ANN202
            return ({"context_gemm": 7}, {}, {"generation_gemm": 2, "generation_attention": 0.5}, {}, {}, {}, ())

    def cli_estimate(model, database) -> tuple:  # noqa: ANN001 - as the real one, it reaches the backend's method
        return BaseBackend()._run_static_breakdown(model, database, "runtime", mode="static_gen")

    api, base_backend = types.ModuleType("api"), types.ModuleType("base_backend")
    api.cli_estimate, base_backend.BaseBackend = cli_estimate, BaseBackend
    backends = types.ModuleType("backends")
    backends.base_backend = base_backend
    for name, module in {"aiconfigurator": types.ModuleType("aiconfigurator"), "aiconfigurator.cli": types.ModuleType(
            "cli"), "aiconfigurator.cli.api": api, "aiconfigurator_core": types.ModuleType("aiconfigurator_core"),
            "aiconfigurator_core.sdk": types.ModuleType("sdk"), "aiconfigurator_core.sdk.backends": backends,
            "aiconfigurator_core.sdk.backends.base_backend": base_backend}.items():  # fmt: skip
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(sys.modules["aiconfigurator.cli"], "api", api, raising=False)
    try:
        estimate, seen = aic_tables.capture_static_breakdown()
        result = estimate("the model", "the database")
        assert logging.root.manager.disable == logging.WARNING  # aiconfigurator's warnings silenced
    finally:
        logging.disable(logging.NOTSET)
    assert result[2] == {"generation_gemm": 2, "generation_attention": 0.5}  # passed through untouched
    assert seen == {"model": "the model", "database": "the database", "context": {"context_gemm": 7.0},
                    "generation": {"generation_gemm": 2.0, "generation_attention": 0.5}}  # fmt: skip
    assert all(type(v) is float for v in (*seen["context"].values(), *seen["generation"].values()))


@pytest.mark.parametrize(
    "script",
    ["aiconfigurator_compare", "dp_ep_gap", "hybrid_compare", "long_prompt_gap", "moe_bucket_compare", "moe_gap"],
)
def test_each_collect_skips_cleanly_without_aiconfigurator(
    script: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # the scripts whose --collect runs aiconfigurator's estimate through capture_static_breakdown: one line, exit 0,
    # nothing written, whether or not aiconfigurator is installed on this machine
    monkeypatch.setitem(sys.modules, "aiconfigurator", None)
    assert bench_module(script).collect(tmp_path / "out.json") == 0
    assert not (tmp_path / "out.json").exists()
    assert capsys.readouterr().out == aic_tables.SKIPPED + "\n"


def test_collect_cases_runs_every_case_in_order_and_says_each(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    seen = {"generation": {}}
    calls = []

    def estimate(model: str, batch: int) -> float:
        calls.append((model, batch))
        seen["generation"] = {"generation_gemm": float(batch)}
        return 0.1 * batch

    module = types.ModuleType("aiconfigurator")
    module.__version__ = "9.9.9"
    monkeypatch.setitem(sys.modules, "aiconfigurator", module)
    monkeypatch.setattr(aic_tables, "capture_static_breakdown", lambda: (estimate, seen))

    def row(cli_estimate, kept: dict, case: dict) -> dict:  # noqa: ANN001
        ms = cli_estimate("m", case["batch"])
        return {**case, "ms": ms, "ops": dict(kept["generation"])}

    cases = [{"batch": 8}, {"batch": 1}, {"batch": 32}]
    rows, version = aic_tables.collect_cases(cases, row)
    assert version == "9.9.9" and calls == [("m", 8), ("m", 1), ("m", 32)]
    # each row made from its own call: what the call kept is read before the next case runs
    assert [(r["batch"], r["ops"]["generation_gemm"]) for r in rows] == [(8, 8.0), (1, 1.0), (32, 32.0)]
    out = capsys.readouterr()
    assert out.out == "" and out.err.splitlines() == [f"{i}/3 {c}" for i, c in enumerate(cases, 1)]


def test_band_label_names_the_band_that_holds_the_value() -> None:
    bands = ((1, 8), (9, 64), (65, None))
    assert [aic_tables.band_label(v, bands) for v in (1, 8, 9, 64, 65, 10**6)] == [
        "1-8", "1-8", "9-64", "9-64", ">=65", ">=65"]  # fmt: skip
    assert aic_tables.band_label(0, bands) == "other"  # below the first band
    assert aic_tables.band_label(20, ((1, 16), (32, 512))) == "other"  # in a gap between bands
    assert aic_tables.band_label(70, bands, prefix="batch ") == "batch >=65"
