"""Kubernetes manifests for a planned deployment: the objects that run it, as plain dicts.

One replica on one node is a pod of a ``Deployment`` (``replicas`` copies); a replica that spans
nodes is one group of a ``LeaderWorkerSet`` (sigs.k8s.io/lws, ``leaderworkerset.x-k8s.io/v1``): a
leader pod that serves HTTP and ``size - 1`` worker pods that join it with the engine's
multi-node flags. Every pod asks for its GPUs through the device plugin's extended resource,
lands on nodes with that GPU through the catalog's ``node_selector`` (GPU Feature Discovery
labels), mounts a memory-backed ``/dev/shm`` sized for NCCL, and the serving container is probed
on the engine's health endpoint. A ``Service`` fronts the serving pods.

The commands themselves come from the engine (:mod:`kvplan.launch`, :meth:`Engine.node_args`);
nothing here names an engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvplan.errors import InvalidInput
from kvplan.hardware import GPU
from kvplan.units import GIB, MIB

if TYPE_CHECKING:
    from kvplan.capacity import CapacityResult

# NCCL's shared-memory transport (used between local ranks when peer-to-peer is unavailable, and for
# its proxy buffers) takes NCCL_BUFFSIZE per channel for each ordered pair of local ranks: NCCL
# environment-variable docs, NCCL_BUFFSIZE default 4 MiB; channels capped by NCCL_MAX_NCHANNELS
# (32 on NVLink-era GPUs). The NCCL troubleshooting guide's container advice (--shm-size=1g) is the floor.
NCCL_BUFFSIZE = 4 * MIB
NCCL_CHANNELS = 32
SHM_FLOOR = 1 * GIB

# Model loading can take many minutes (hundreds of GB read and sharded): the startup probe allows
# 60 min before the kubelet restarts the pod; then readiness every 10 s and liveness every 30 s.
STARTUP_PERIOD_S = 10
STARTUP_FAILURES = 360


@dataclass(frozen=True)
class Workload:
    """What to run, engine-neutral: one replica is ``pods`` pods of ``gpus_per_pod`` GPUs each."""

    name: str
    image: str
    gpu: GPU
    gpus_per_pod: int
    pods: int  # per replica: 1 -> Deployment, >1 -> LeaderWorkerSet
    replicas: int
    leader: str  # shell line of the serving pod (the only one with an HTTP server when pods > 1)
    worker: str | None  # shell line of the other pods of a group
    port: int
    health_path: str
    shm_bytes: int
    env: dict[str, str] | None = None


def nccl_shm_bytes(local_ranks: int) -> int:
    """``/dev/shm`` for ``local_ranks`` GPUs in one pod: every ordered pair of ranks, every channel,
    one NCCL_BUFFSIZE buffer (the SHM transport's worst case), at least 1 GiB; rounded up to GiB."""
    need = max(SHM_FLOOR, local_ranks * (local_ranks - 1) * NCCL_CHANNELS * NCCL_BUFFSIZE)
    return -(-need // GIB) * GIB


def object_name(text: str) -> str:
    """A DNS-1123 label from a model or plan name (``Llama-3.1-8B`` -> ``llama-3-1-8b``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].strip("-")
    if not name:
        raise InvalidInput(f"invalid name {text!r}; expected letters, digits and dashes")
    return name


def manifests(w: Workload) -> list[dict[str, Any]]:
    """The objects, in apply order: the workload, then its Service."""
    if w.pods < 1 or w.replicas < 1 or w.gpus_per_pod < 1:
        raise InvalidInput(f"invalid workload: {w.replicas} replicas of {w.pods} pods x {w.gpus_per_pod} GPUs")
    if w.pods > 1 and w.worker is None:
        raise InvalidInput(f"a replica of {w.pods} pods needs a worker command")
    name = object_name(w.name)
    if w.pods == 1:
        return [_deployment(w, name), _service(name, w.port, {"app": name})]
    leader_labels = {"leaderworkerset.sigs.k8s.io/name": name, "role": "leader"}
    return [_leader_worker_set(w, name), _service(name, w.port, leader_labels)]


def _deployment(w: Workload, name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": w.replicas,
            "selector": {"matchLabels": labels},
            # A new pod needs the GPUs the old one holds: replace, never surge.
            "strategy": {"type": "Recreate"},
            "template": pod_template(w, labels=labels, line=w.leader, serves=True),
        },
    }


def _leader_worker_set(w: Workload, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1",
        "kind": "LeaderWorkerSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": w.replicas,
            "leaderWorkerTemplate": {
                "size": w.pods,
                # One rank lost breaks the group's collectives: restart the whole group.
                "restartPolicy": "RecreateGroupOnPodRestart",
                "leaderTemplate": pod_template(w, labels={"role": "leader"}, line=w.leader, serves=True),
                "workerTemplate": pod_template(w, labels={"role": "worker"}, line=w.worker or "", serves=False),
            },
        },
    }


def pod_template(w: Workload, *, labels: dict[str, str], line: str, serves: bool) -> dict[str, Any]:
    """A PodTemplateSpec: one engine container with its GPUs, /dev/shm and (serving pods) probes."""
    gpus = str(w.gpus_per_pod)
    container: dict[str, Any] = {
        "name": "engine",
        "image": w.image,
        # A shell runs the line so that $LWS_LEADER_ADDRESS / $LWS_WORKER_INDEX (set by LWS) expand.
        "command": ["/bin/sh", "-c", line],
        "resources": {"limits": {w.gpu.k8s_resource: gpus}, "requests": {w.gpu.k8s_resource: gpus}},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    if w.env:
        container["env"] = [{"name": k, "value": v} for k, v in w.env.items()]
    if serves:
        container["ports"] = [{"name": "http", "containerPort": w.port}]
        container.update(_probes(w))
    spec: dict[str, Any] = {
        "containers": [container],
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": _quantity(w.shm_bytes)}}],
    }
    if w.gpu.node_selector:
        spec["nodeSelector"] = dict(w.gpu.node_selector)
    return {"metadata": {"labels": labels}, "spec": spec}


def _probes(w: Workload) -> dict[str, Any]:
    get = {"httpGet": {"path": w.health_path, "port": "http"}}
    return {
        "startupProbe": {**get, "periodSeconds": STARTUP_PERIOD_S, "failureThreshold": STARTUP_FAILURES},
        "readinessProbe": {**get, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {**get, "periodSeconds": 30, "failureThreshold": 3},
    }


def _service(name: str, port: int, selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": port, "targetPort": "http"}]},
    }


def _quantity(nbytes: int) -> str:
    """Bytes as a Kubernetes quantity (``8Gi``, ``512Mi``)."""
    if nbytes % GIB == 0:
        return f"{nbytes // GIB}Gi"
    return f"{-(-nbytes // MIB)}Mi"


def to_yaml(docs: list[dict[str, Any]]) -> str:
    """A multi-document YAML stream for ``kubectl apply -f``."""
    import yaml

    class _Plain(yaml.SafeDumper):  # repeated labels and probes written out, not as &anchors
        def ignore_aliases(self, data: Any) -> bool:
            return True

    return "---\n".join(yaml.dump(d, Dumper=_Plain, sort_keys=False, default_flow_style=False) for d in docs)


# ---- from a capacity answer ------------------------------------------------------------------------

# What the LeaderWorkerSet controller sets in every pod of a group (sigs.k8s.io/lws, api/v1 constants).
LWS_LEADER = "$LWS_LEADER_ADDRESS"
LWS_INDEX = "$LWS_WORKER_INDEX"


def workload_for(
    r: CapacityResult, *, model: str, image: str, sequences: int, gpu: GPU, name: str | None = None
) -> Workload:
    """The pods that run ``r``: one pod per node of each replica, the engine's own commands."""
    from kvplan.engines import get_engine
    from kvplan.launch import node_args, replica_nodes, shell_join

    engine = get_engine(f"{r.engine}@{r.engine_release}")
    if not engine.serves_http:
        raise InvalidInput(f"engine {r.engine!r} is a library, not a server; manifests need vllm, sglang, "
                           "trtllm or llamacpp")  # fmt: skip
    nodes = replica_nodes(r)
    per_replica = r.tp * r.pp * r.dp
    if per_replica % nodes:
        raise InvalidInput(f"a replica of {per_replica} GPUs does not split evenly over {nodes} nodes of "
                           f"{r.gpus_per_node}; choose a split that fills whole nodes")  # fmt: skip
    listen = list(engine.listen_flags)
    leader = node_args(r, model=model, sequences=sequences, node=0, leader=LWS_LEADER) + listen
    worker = node_args(r, model=model, sequences=sequences, node=LWS_INDEX, leader=LWS_LEADER) if nodes > 1 else None
    return Workload(
        name=name or r.model,
        image=image,
        gpu=gpu,
        gpus_per_pod=per_replica // nodes,
        pods=nodes,
        replicas=r.replicas,
        leader=shell_join(leader),
        worker=shell_join(worker) if worker else None,
        port=engine.serve_port,
        health_path=engine.health_path,
        shm_bytes=nccl_shm_bytes(per_replica // nodes),
    )
