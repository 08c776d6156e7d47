"""transformers' whole generative registry as the oracle for kvplan's config.json importer.

For every model type transformers registers for causal LM or image-text-to-text generation
(``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`` | ``MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES``):

1. build the config class's defaults (``CONFIG_MAPPING[type]()``); the decoder's text config is
   shrunk where nothing cached depends on it: hidden size (``head_dim`` pinned to its true value
   where the config has the field), MLP and expert widths, vocabulary, expert count; windows and
   attention chunks over ``WINDOW`` tokens are cut to ``WINDOW`` so one prompt exceeds them;
   layer count, layer pattern, KV heads, head dims, latent ranks and state sizes stay true;
2. build the decoder (``AutoModelForCausalLM``, or the text model of a multimodal config) on CPU
   in bf16, run one prefill of ``LENGTH`` tokens with ``use_cache=True`` and sum
   ``numel * element_size`` of every tensor the returned cache holds;
3. import the same config (``config.to_dict()``, nested ``text_config`` included) with
   ``kvplan.hf.spec_from_hf_config`` and ask ``kvplan.engines.transformers`` for the bytes.

Each type is then: ``exact`` (equal to the byte), ``refused`` (kvplan exits 2 with a reason),
``wrong`` (kvplan answers with another number) or ``n.a.`` (no config default, does not build,
encoder-decoder, or no cache after a forward pass).

    python benchmarks/registry_sweep.py                       # print the table
    python benchmarks/registry_sweep.py --write docs/accuracy.md
    python benchmarks/registry_sweep.py --types llama,gemma3   # a few types
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
import signal
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

LENGTH = 40  # one prompt: beyond every (cut) window, inside every real context
WINDOW = 16  # windows and chunks longer than this are cut to it (both sides see the same config)
TINY_VOCAB = 128
TINY_MLP = 64
TINY_EXPERTS = 4
CPU_PARAMS = 150_000_000  # a CPU skeleton beyond this (sub-configs the sweep cannot shrink) is reported, not run
TYPE_SECONDS = 60  # a skeleton slower than this on one CPU thread is reported, not waited for
STATUSES = ("exact", "refused", "wrong", "n.a.")
START, END = "<!-- registry-sweep:begin -->", "<!-- registry-sweep:end -->"
COMMAND = "python benchmarks/registry_sweep.py --write docs/accuracy.md"
COMMAND_LINE = f"<!-- registry-sweep:command {COMMAND} -->"  # the marker benchmarks/regen_docs.py reads
TRUTH = Path(__file__).with_name("registry_truth.json")  # measured bytes per model type (--measure)

_MLP_KEYS = ("intermediate_size", "moe_intermediate_size", "shared_expert_intermediate_size", "ffn_hidden_size",
             "intermediate_size_mlp", "expert_intermediate_size", "shared_intermediate_size", "n_inner",
             "ffn_dim", "mlp_hidden_size", "dense_intermediate_size", "block_ffn_dim")  # fmt: skip
_EXPERT_KEYS = ("n_routed_experts", "num_local_experts", "num_experts", "moe_num_experts", "n_experts")
_WINDOW_KEYS = ("sliding_window", "attention_chunk_size", "window_size", "local_window_size", "attention_window")


@dataclass(frozen=True)
class Row:
    model_type: str
    status: str
    measured: int | None = None
    kvplan: int | None = None
    reason: str = ""


# ---- building a skeleton -------------------------------------------------------------------


def _tiny(value: Any, size: int) -> Any:
    """``value`` capped at ``size``; per-layer lists capped entry by entry."""
    if isinstance(value, int) and not isinstance(value, bool) and value > size:
        return size
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [min(v, size) for v in value]
    return value


def _shrink(text: Any) -> None:
    """Tiny hidden/MLP/vocab/experts on the decoder config, in place; cached sizes kept."""
    if isinstance(getattr(text, "kv_lora_rank", None), int):
        # MLA caches one latent shared by all heads: 4 query heads stand in for 128, and the
        # query low-rank width (never cached) is cut too
        for key in ("num_attention_heads", "num_key_value_heads"):
            if isinstance(getattr(text, key, None), int):
                setattr(text, key, min(getattr(text, key), 4))
        if isinstance(getattr(text, "q_lora_rank", None), int):
            text.q_lora_rank = 32
    heads = getattr(text, "num_attention_heads", None)
    hidden = getattr(text, "hidden_size", None)
    if isinstance(heads, int) and isinstance(hidden, int) and heads > 0:
        head_dim = getattr(text, "head_dim", None)
        if hasattr(text, "head_dim") and head_dim is None and hidden % heads == 0:
            text.head_dim = hidden // heads  # keep the true head size when hidden shrinks
        if hasattr(text, "head_dim") and isinstance(text.head_dim, int):
            text.hidden_size = math.lcm(heads, 16)
        else:  # head size derived from hidden: keep it at least 16 wide
            text.hidden_size = heads * 16
    for key in _MLP_KEYS:
        if hasattr(text, key):
            setattr(text, key, _tiny(getattr(text, key), TINY_MLP))
    for key in _EXPERT_KEYS:
        if hasattr(text, key):
            setattr(text, key, _tiny(getattr(text, key), TINY_EXPERTS))
    for key, value in (("num_experts_per_tok", 2), ("n_group", 1), ("topk_group", 1), ("moe_topk", 2)):
        if isinstance(getattr(text, key, None), int):
            setattr(text, key, min(getattr(text, key), value))
        elif key == "num_experts_per_tok" and hasattr(text, key):  # DeepseekV2Config leaves it None
            setattr(text, key, value)
    if isinstance(getattr(text, "vocab_size", None), int):
        text.vocab_size = TINY_VOCAB
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if isinstance(getattr(text, key, None), int) and getattr(text, key) >= TINY_VOCAB:
            setattr(text, key, 0)
    for key in _WINDOW_KEYS:
        value = getattr(text, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > WINDOW:
            setattr(text, key, WINDOW)
    for key in ("use_mamba_kernels", "use_cache"):
        if hasattr(text, key):
            setattr(text, key, key == "use_cache")


def _decoder_model(config: Any, text: Any, *, device: str) -> Any:
    import torch
    import transformers
    from transformers.initialization import no_init_weights
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_MAPPING_NAMES

    target, auto = config, transformers.AutoModelForCausalLM
    if text is not config:  # multimodal: the text decoder alone holds the cache
        target = text
        if text.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
            if text.model_type not in MODEL_MAPPING_NAMES:
                raise _NotApplicable(f"text config {text.model_type!r} has no model class of its own")
            auto = transformers.AutoModel
    torch.manual_seed(0)
    with no_init_weights(), torch.device(device):
        model = auto.from_config(target, dtype=torch.bfloat16)
    if device != "meta":
        with torch.no_grad():
            for param in model.parameters():
                if param.is_floating_point():
                    param.normal_(0.0, 0.02)
    return model.eval()


class _NotApplicable(Exception):
    pass


def _cache_tensors(obj: Any, found: dict[int, Any], depth: int = 0) -> None:
    import torch

    if depth > 6 or obj is None:
        return
    if isinstance(obj, torch.Tensor):
        found[id(obj)] = obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            _cache_tensors(item, found, depth + 1)
    elif isinstance(obj, dict) or type(obj).__name__ == "KVSharingDict":
        for item in obj.values():
            _cache_tensors(item, found, depth + 1)
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("transformers"):
        for name, item in vars(obj).items():
            if name.startswith("_sliding_window") or name in ("cumulative_length", "config"):
                continue
            _cache_tensors(item, found, depth + 1)


def measured_bytes(cache: Any) -> int:
    found: dict[int, Any] = {}
    _cache_tensors(cache, found)
    return sum(t.numel() * t.element_size() for t in found.values())


def _forward(model: Any, *, device: str) -> Any:
    import torch

    ids = torch.randint(0, TINY_VOCAB, (1, LENGTH)).to(device)
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def _run(config: Any, text: Any) -> Any:
    """Prefill on the meta device (shapes and dtypes, no arithmetic: the cache tensors are the
    ones transformers allocates); on CPU where an operation has no meta kernel."""
    model = _decoder_model(config, text, device="meta")
    try:
        return _forward(model, device="meta")
    except Exception:  # noqa: BLE001 - data-dependent ops (routing, masks) need real values
        params = sum(p.numel() for p in model.parameters())
        if params > CPU_PARAMS:
            what = f"needs real values and its skeleton still has {params / 1e6:,.0f}M parameters"
            raise _NotApplicable(what) from None
        return _forward(_decoder_model(config, text, device="cpu"), device="cpu")


# ---- one type ------------------------------------------------------------------------------


class _Skeleton(NamedTuple):
    config: Any  # the whole config (multimodal wrapper included), shrunk in place
    text: Any  # its decoder config


def skeleton(model_type: str) -> _Skeleton | str:
    """The shrunk default config of ``model_type``, or why there is none."""
    from transformers import CONFIG_MAPPING

    try:
        config = CONFIG_MAPPING[model_type]()
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return f"config has no usable defaults ({_short(exc)})"
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder (cross-attention cache of an encoder)"
    try:
        text = config.get_text_config(decoder=True)
        _shrink(text)
    except Exception as exc:  # noqa: BLE001
        return f"config rejects a skeleton ({_short(exc)})"
    return _Skeleton(config, text)


def measure(model_type: str) -> int | str:
    """Bytes of the cache transformers holds after the prefill, or why nothing was measured."""
    built = skeleton(model_type)
    if isinstance(built, str):
        return built
    try:
        cache = _run(built.config, built.text)
    except _NotApplicable as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001
        return f"does not build or run on CPU ({_short(exc)})"
    if cache is None:
        return "no cache after a forward pass with use_cache"
    return measured_bytes(cache) or "the cache holds no tensors"


def sweep_type(model_type: str, truth: int | str | None = None) -> Row:
    """One type: measured now, or from ``truth`` (bytes, or the reason nothing was measured)."""
    truth = measure(model_type) if truth is None else truth
    if isinstance(truth, str):
        return Row(model_type, "n.a.", reason=truth)
    built = skeleton(model_type)
    if isinstance(built, str):
        return Row(model_type, "n.a.", reason=built)
    return compare(model_type, built.config.to_dict(), truth)


def compare(model_type: str, data: dict[str, Any], truth: int) -> Row:
    from kvplan.engines.transformers import transformers_cache_bytes
    from kvplan.errors import InvalidInput
    from kvplan.hf import spec_from_hf_config

    try:
        spec = spec_from_hf_config(data, origin=f"{model_type} defaults").spec
        estimate = transformers_cache_bytes(spec, LENGTH, "bf16")
    except InvalidInput as exc:
        return Row(model_type, "refused", truth, reason=str(exc).replace(f"{model_type} defaults: ", ""))
    except Exception as exc:  # noqa: BLE001 - a crash is a defect, reported as wrong
        return Row(model_type, "wrong", truth, reason=f"kvplan crashed: {_short(exc)}")
    if estimate == truth:
        return Row(model_type, "exact", truth, estimate)
    return Row(model_type, "wrong", truth, estimate, reason=f"kvplan {estimate:,} B vs transformers {truth:,} B")


# ---- stored measurements -------------------------------------------------------------------
# What transformers holds does not depend on kvplan: the measurements are stored (bytes, or the
# reason a type has none) and kvplan's side is recomputed against them in seconds. ``--measure``
# rebuilds the skeletons (tens of minutes for the whole registry on a shared 2-core machine).


def load_truth(path: Path = TRUTH) -> dict[str, int | str]:
    return json.loads(path.read_text()) if path.exists() else {}


def save_truth(truth: dict[str, int | str], path: Path = TRUTH) -> None:
    path.write_text(json.dumps(dict(sorted(truth.items())), indent=1) + "\n")


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text[:140]


def registry_types() -> list[str]:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    )

    return sorted(set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) | set(MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES))


@contextlib.contextmanager
def single_type_env():
    """Quiet transformers, one torch thread: what :func:`sweep` sets around each type."""
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.set_num_threads(before)


def sweep(
    types: list[str] | None = None, *, progress: bool = False, stored: dict[str, int | str] | None = None
) -> list[Row]:
    """Every type (or ``types``); measured now unless ``stored`` holds its measurement."""
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(1)
    rows = []
    for model_type in types or registry_types():
        started = time.perf_counter()
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _time_limit(TYPE_SECONDS):
            warnings.simplefilter("ignore")
            try:
                row = sweep_type(model_type, (stored or {}).get(model_type))
            except _TimeUp:
                row = Row(model_type, "n.a.", reason=f"skeleton did not finish within {TYPE_SECONDS} s on CPU")
        rows.append(row)
        if progress:
            print(
                f"{model_type}: {row.status} ({time.perf_counter() - started:.1f} s) {row.reason[:100]}",
                file=sys.stderr,
                flush=True,
            )
    return rows


class _TimeUp(BaseException):  # not caught by the per-type "except Exception"
    pass


@contextlib.contextmanager
def _time_limit(seconds: int):
    def _raise(*_: Any) -> None:
        raise _TimeUp

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# ---- report --------------------------------------------------------------------------------


def markdown(rows: list[Row]) -> str:
    import transformers

    counts = Counter(r.status for r in rows)
    summary = " / ".join(f"{counts.get(s, 0)} {s}" for s in STATUSES)
    lines = [
        COMMAND_LINE,
        START,
        "## Importer coverage: transformers' whole generative registry",
        "",
        f"Generated by `{COMMAND}` against transformers {transformers.__version__}. Do not edit by hand.",
        "",
        "Every model type transformers registers for causal LM or image-text-to-text generation, built from its "
        "config class's defaults with a tiny hidden size, MLP, vocabulary and expert count (layer count, layer "
        f"pattern, KV heads, head dims, latent ranks and state sizes true; windows cut to {WINDOW} tokens), run on "
        f"CPU over {LENGTH} tokens; the bytes of the cache tensors transformers holds are compared with "
        "`kvplan.hf.spec_from_hf_config` of the same config dict under the `transformers` engine layout.",
        "",
        f"**{len(rows)} types: {summary}.**",
        "",
        "| model_type | result | transformers (B) | kvplan (B) | reason |",
        "|---|---|---:|---:|---|",
    ]
    for r in rows:
        measured = f"{r.measured:,}" if r.measured is not None else ""
        estimate = f"{r.kvplan:,}" if r.kvplan is not None else ""
        reason = r.reason.replace("|", "\\|")
        lines.append(f"| {r.model_type} | {r.status} | {measured} | {estimate} | {reason} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(f"(?:{re.escape(COMMAND_LINE)}\n)?{re.escape(START)}.*?{re.escape(END)}\n?", re.S)
    text = pattern.sub(lambda _: section, text) if START in text else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="replace the coverage section of this markdown file")
    parser.add_argument("--types", help="comma-separated model types (default: the whole registry)")
    parser.add_argument("--measure", action="store_true", help=f"rebuild the skeletons and update {TRUTH.name}")
    args = parser.parse_args(argv)
    types = args.types.split(",") if args.types else None
    stored = load_truth()
    if args.measure:
        rows = sweep(types, progress=True)
        stored.update({r.model_type: r.measured if r.measured is not None else r.reason for r in rows})
        save_truth(stored)
    rows = sweep(types, progress=not stored, stored=stored)
    section = markdown(rows)
    if args.write:
        write_section(args.write, section)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
