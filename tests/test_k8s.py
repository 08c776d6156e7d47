"""Kubernetes manifests: every core object and every pod template validates against the schemas."""

import kubernetes_validate
import pytest
import yaml

from kvplan.errors import InvalidInput
from kvplan.hardware import resolve_gpu
from kvplan.k8s import Workload, manifests, nccl_shm_bytes, object_name, to_yaml
from kvplan.units import GIB

K8S_VERSION = kubernetes_validate.latest_version()
H200 = resolve_gpu("h200")


def validate(obj: dict) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def as_pod_template(name: str, template: dict) -> dict:
    """A LeaderWorkerSet's leader/worker templates are PodTemplateSpecs: check them as a PodTemplate."""
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}, "template": template}


def workload(**changes) -> Workload:  # noqa: ANN003
    base = dict(
        name="Llama-3.1-8B",
        image="vllm/vllm-openai:v0.19.0",
        gpu=H200,
        gpus_per_pod=1,
        pods=1,
        replicas=3,
        leader="vllm serve meta-llama/Llama-3.1-8B --max-model-len 8192",
        worker=None,
        port=8000,
        health_path="/health",
        shm_bytes=nccl_shm_bytes(1),
    )
    base.update(changes)
    return Workload(**base)


def test_single_node_replicas_are_one_deployment() -> None:
    deployment, service = manifests(workload())
    validate(deployment)
    validate(service)
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H200"}
    assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["command"][-1].startswith("vllm serve")
    assert deployment["metadata"]["name"] == "llama-3-1-8b"
    assert service["spec"]["selector"] == {"app": "llama-3-1-8b"}


def test_multi_node_replica_is_a_leader_worker_set() -> None:
    w = workload(
        name="llama-3.1-405b", gpus_per_pod=8, pods=2, replicas=1, shm_bytes=nccl_shm_bytes(8),
        leader="ray start --head --port=6379 && vllm serve meta-llama/Llama-3.1-405B -tp 8 -pp 2",
        worker="ray start --address=$LWS_LEADER_ADDRESS:6379 --block",
    )  # fmt: skip
    lws, service = manifests(w)
    validate(service)
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1" and lws["kind"] == "LeaderWorkerSet"
    spec = lws["spec"]["leaderWorkerTemplate"]
    assert spec["size"] == 2
    for role in ("leaderTemplate", "workerTemplate"):
        validate(as_pod_template(role.lower(), spec[role]))
        assert spec[role]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    assert "startupProbe" in spec["leaderTemplate"]["spec"]["containers"][0]
    assert "startupProbe" not in spec["workerTemplate"]["spec"]["containers"][0]  # workers serve no HTTP
    # /dev/shm for 8 local ranks: 8 x 7 ordered pairs x 32 channels x 4 MiB = 7 GiB.
    assert spec["workerTemplate"]["spec"]["volumes"][0]["emptyDir"] == {"medium": "Memory", "sizeLimit": "7Gi"}
    assert service["spec"]["selector"]["role"] == "leader"


def test_shm_floor_and_yaml_stream() -> None:
    assert nccl_shm_bytes(1) == 1 * GIB  # the NCCL troubleshooting guide's 1 GiB floor
    assert nccl_shm_bytes(2) == 1 * GIB  # 2 x 1 x 32 x 4 MiB = 256 MiB, below the floor
    docs = list(yaml.safe_load_all(to_yaml(manifests(workload()))))
    assert [d["kind"] for d in docs] == ["Deployment", "Service"]


def test_bad_workloads_are_refused() -> None:
    with pytest.raises(InvalidInput, match="worker command"):
        manifests(workload(pods=2))
    with pytest.raises(InvalidInput, match="invalid name"):
        object_name("///")
