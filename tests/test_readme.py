"""The README's quick start is what CI runs, its library snippet runs, and the API it names exists."""

import re
from pathlib import Path

import kvplan

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _quick_start() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("##", 1)[0]
    block = re.search(r"```console\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_is_two_commands_and_ci_runs_the_test_one():
    install_and_estimate, install_and_test = _quick_start()
    assert "kvplan estimate" in install_and_estimate and "pip install" in install_and_estimate
    assert install_and_test in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_library_snippet_runs():
    code = README.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert namespace["answer"].max_concurrent_sequences >= 1


def test_every_export_resolves():
    for name in kvplan.__all__:
        assert getattr(kvplan, name) is not None, name


def test_every_command_has_an_example():
    from kvplan.cli import app, load_commands

    load_commands()
    names = {c.name or c.callback.__name__.rstrip("_").replace("_", "-") for c in app.registered_commands}
    for name in names:
        assert f"$ kvplan {name}" in README or f"`kvplan {name}`" in README, name


def test_model_counts_are_the_catalog_and_the_accuracy_summary():
    # hand-written counts that drifted before (56 architectures with 62 files): the catalog's files and the
    # accuracy doc's generated summary are the sources
    specs = len(list((ROOT / "model_specs").glob("*.yaml")))
    assert re.search(r"`model_specs/` has (\d+) architectures", README).group(1) == str(specs)
    accuracy = (ROOT / "docs" / "accuracy.md").read_text(encoding="utf-8")
    models = re.search(r"## Summary \(\d+ model x length cases, (\d+) models\)", accuracy).group(1)
    assert f"Median absolute error over {models} models x 3 lengths" in README


def test_validation_bullets_quote_the_generated_docs():
    # the "Accuracy, speed and validation" bullets repeat figures the generated docs print; they must agree
    accuracy = (ROOT / "docs" / "accuracy.md").read_text(encoding="utf-8")
    row = {m[0]: m[1:] for m in re.findall(r"^\| (kvplan|naive|llm-analysis) \| ([\d.,]+)% \| ([\d.,]+)% \|", accuracy,
                                           re.M)}  # fmt: skip
    assert f"**kvplan {row['kvplan'][0]}%** (worst {float(row['kvplan'][1]):.1f}%" in README
    assert f"**naive `2 x layers x hidden` {float(row['naive'][0]):.0f}%**" in README
    median, worst = row["llm-analysis"]
    assert f"**llm-analysis {float(median):.1f}%** (worst {float(worst.replace(',', '')):,.0f}%" in README
    total, exact, refused, wrong, na = re.search(
        r"\*\*(\d+) types: (\d+) exact / (\d+) refused / (\d+) wrong / (\d+) n\.a\.", accuracy).groups()  # fmt: skip
    assert f"image-text-to-text ({total})" in README and f"({na} have no decoder cache" in README
    assert f"**exact for {exact}, refused with a one-line reason for {refused}, wrong for {wrong}**" in README
    validation = (ROOT / "docs" / "validation.md").read_text(encoding="utf-8")
    inside, outside = re.search(r"In-sample \(vLLM 0\.19, H100\): median ([\d.]+)% over 7.*?Out-of-sample: median "
                                r"([\d.]+)% over 3", validation).groups()  # fmt: skip
    assert f"median error {inside}% over the seven vLLM 0.19 H100 logs" in README
    assert f"{float(outside):.1f}% over three older or unusual logs" in README
