"""Launch command lines for a capacity answer; each engine module writes its own flags."""

from __future__ import annotations

import shlex
from dataclasses import replace
from typing import Any

from kvplan.capacity import CapacityResult
from kvplan.engines import get_engine

# Checkpoint names for the launch line; the spec's HF source when it names a repo.
_HF_PREFIX = "https://huggingface.co/"


def model_ref(source: str, name: str) -> str:
    """The Hugging Face repo id a spec's ``source`` points at, else the spec name."""
    if source.startswith(_HF_PREFIX):
        parts = source[len(_HF_PREFIX) :].split("/")
        if len(parts) >= 2:
            return f"{parts[0]}/{parts[1]}"
    return name


def launch_args(r: CapacityResult, *, model: str, sequences: int | None = None) -> list[str] | None:
    """argv for serving ``r``'s configuration with its context and concurrency (the engine's own flags);
    None where the engine has no command line (the ideal layout, transformers)."""
    seqs = max(1, sequences if sequences is not None else r.max_concurrent_sequences_per_replica)
    return get_engine(f"{r.engine}@{r.engine_release}").launch_args(r, model=model, sequences=seqs)


def launch_command(r: CapacityResult, *, model: str, sequences: int | None = None) -> str | None:
    args = launch_args(r, model=model, sequences=sequences)
    return shlex.join(args) if args is not None else None


def shell_join(args: list[str]) -> str:
    """Like shlex.join, but an argument holding ``$VAR`` or ``$((...))`` goes in double quotes, where
    the shell still expands it (the LeaderWorkerSet's $LWS_LEADER_ADDRESS, $LWS_WORKER_INDEX)."""
    return " ".join(f'"{a}"' if "$" in a and not set(a) & set('"`\\') else shlex.quote(a) for a in args)


def one_replica(r: CapacityResult) -> CapacityResult:
    """The answer as one server runs it: one replica of ``tp x pp x dp`` GPUs."""
    return replace(r, replicas=1, gpus=r.gpus // max(r.replicas, 1))


def replica_nodes(r: CapacityResult) -> int:
    per_replica = r.tp * r.pp * r.dp
    return -(-per_replica // r.gpus_per_node)


def node_args(r: CapacityResult, *, model: str, sequences: int, node: int | str, leader: str) -> list[str] | None:
    """argv of node ``node`` (0: the leader, the only one serving HTTP) of one replica; None where the
    engine has no command line."""
    one = one_replica(r)
    nodes = replica_nodes(r)
    engine = get_engine(f"{r.engine}@{r.engine_release}")
    args = launch_args(one, model=model, sequences=sequences)
    if nodes == 1 or args is None:
        return args
    return args + engine.node_args(one, node=node, nodes=nodes, leader=leader)


def node_commands(r: CapacityResult, *, model: str, sequences: int, leader: str = "$LEADER_ADDR") -> list[str]:
    """One command line per node of one replica; a single line when the replica fits one node; none
    where the engine has no command line."""
    lines = [node_args(r, model=model, sequences=sequences, node=i, leader=leader) for i in range(replica_nodes(r))]
    return [shell_join(a) for a in lines if a is not None]


def launch_notes(r: CapacityResult) -> list[str]:
    """What the command line alone cannot say: settings the engine reads from a file, weights that need a
    pre-quantized checkpoint."""
    own = get_engine(f"{r.engine}@{r.engine_release}").launch_notes(r)
    return own + _weights_notes(r)


def _weights_notes(r: CapacityResult) -> list[str]:
    if r.weights_shipped:
        return []  # the checkpoint's own format: the engine reads its quantization_config
    if r.weights_dtype in ("int4", "int8"):
        return [
            f"{r.weights_dtype} weights need a pre-quantized checkpoint (e.g. AWQ/GPTQ for int4, W8A8 for int8): "
            "pass that repository instead of the 16-bit one"
        ]
    if r.weights_dtype == "mxfp4":
        return ["mxfp4 weights: use a checkpoint released in MXFP4 (e.g. gpt-oss); there is no online conversion"]
    return []


def plan_json(r: CapacityResult, *, model: str) -> dict[str, Any]:
    """The whole answer plus its launch line, for scripts."""
    out = r.to_dict()
    out["launch"] = launch_args(r, model=model)
    out["launch_command"] = launch_command(r, model=model)
    out["launch_notes"] = launch_notes(r)
    return out
