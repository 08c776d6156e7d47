"""GPU schema and catalog: the bundled ``kvplan/data/gpus.yaml`` plus user YAML files."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError

from kvplan.catalog import format_validation_error, read_yaml
from kvplan.errors import InvalidInput, did_you_mean
from kvplan.files import read_bundled_yaml
from kvplan.units import MIB

_CATALOG = Path(__file__).resolve().parent / "data" / "gpus.yaml"


class GPU(BaseModel):
    """One accelerator. ``memory_mib`` is what the driver reports, not the marketing number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    display_name: str | None = None
    architecture: str | None = Field(None, description="chip generation: ampere, ada, hopper, blackwell, cdna3, ...")
    memory_mib: PositiveInt
    bandwidth_gbps: PositiveFloat = Field(description="memory bandwidth, GB/s (1e9 bytes)")
    bf16_dense_tflops: PositiveFloat
    fp8_dense_tflops: PositiveFloat | None = None
    fp4_dense_tflops: PositiveFloat | None = Field(
        None, description="dense FP4 (NVFP4) tensor-core peak; None: no FP4 tensor cores (Hopper and older)"
    )
    fp32_tflops: PositiveFloat | None = Field(
        None,
        description="FP32 peak of the CUDA cores (no tensor cores): what a float32 torch matmul runs at with TF32 off "
        "(PyTorch's default); None: not in the catalog",
    )
    sm_count: PositiveInt | None = Field(
        None, description="streaming multiprocessors: a GEMM's output tiles run in waves of this many (None: unknown)"
    )
    interconnect: str | None = None
    interconnect_gbps: PositiveFloat | None = Field(None, description="GPU-GPU bandwidth, GB/s")
    gpus_per_node: PositiveInt = Field(8, description="GPUs in one server (one NVLink/xGMI domain for SXM/OAM)")
    nvlink_domain_gpus: PositiveInt | None = Field(
        None, description="GPUs one NVLink domain joins where it spans several servers (GB200 NVL72: 72)"
    )
    host_link_gbps: PositiveFloat | None = Field(None, description="GPU <-> CPU memory, GB/s per direction")
    host_cpu: str | None = Field(
        None, description="the host CPU where the system fixes it (GB200: Grace); None: the server vendor's choice"
    )
    node_selector: dict[str, str] | None = Field(None, description="Kubernetes node labels of servers with this GPU")
    k8s_resource: str = Field("nvidia.com/gpu", description="the device plugin's extended resource name")
    source: str = Field(min_length=1)

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB


@lru_cache(maxsize=1)
def bundled_gpus() -> dict[str, GPU]:
    return {g.name.lower(): g for g in _parse(read_bundled_yaml(_CATALOG), origin=str(_CATALOG))}


def _parse(data: object, *, origin: str) -> list[GPU]:
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise InvalidInput(f"{origin}: a GPU file must hold a mapping or a list of mappings")
    gpus = []
    for i, item in enumerate(data):
        where = origin if len(data) == 1 else f"{origin}: GPU {i + 1} of {len(data)}"  # no "[0]" for one GPU
        try:
            gpus.append(GPU.model_validate(item))
        except ValidationError as exc:
            raise InvalidInput(format_validation_error(exc, origin=where)) from None
    return gpus


def load_gpu_file(path: Path) -> list[GPU]:
    return _parse(read_yaml(path), origin=str(path))


def resolve_gpu(arg: str) -> GPU:
    """A GPU argument: a catalog name (case-insensitive) or a YAML file describing one GPU."""
    path = Path(arg)
    if path.suffix.lower() in (".yaml", ".yml"):
        if not path.is_file():
            raise InvalidInput(f"GPU file {arg!r} does not exist")
        gpus = load_gpu_file(path)
        if len(gpus) != 1:
            raise InvalidInput(f"GPU file {arg!r} describes {len(gpus)} GPUs; expected exactly one")
        return gpus[0]
    catalog = bundled_gpus()
    key = arg.strip().lower()
    if key not in catalog:
        raise InvalidInput(f"unknown GPU {arg!r}{did_you_mean(key, list(catalog)) or ';'} see 'kvplan gpus'")
    return catalog[key]


# ---- usable device memory ----------------------------------------------------------------------

# What CUDA reports as total (cudaMemGetInfo / torch total_memory), in MiB, where a log or a
# measurement shows it. nvidia-smi's figure is larger: the driver keeps some memory back.
CUDA_TOTAL_MIB: dict[str, int] = {
    # vLLM 0.19 logs "79.19 GiB" total on H100 80GB HBM3 (engine_logs.json vllm-15..27);
    # torch total_memory 81082-81090 MiB (shared/reference/gpus.md S12c).
    "h100-sxm": 81090,
    # vLLM logs total_gpu_memory 39.50GiB on A100-40GB (gpus.md S20).
    "a100-40gb": 40448,
    # vLLM logs total_gpu_memory=23.58GiB on an RTX 3090 (engine_logs.json vllm-01).
    "rtx-3090": 24146,
}
# Elsewhere: nvidia-smi minus the H100 gap (81559 - 81090 = 469 MiB, gpus.md "CUDA sees less").
DEFAULT_DRIVER_RESERVE_MIB = 469


def usable_memory_bytes(gpu: GPU, override: int | None = None) -> int:
    """Device memory an engine sees (CUDA's total), not the nvidia-smi figure.

    Every command uses this one figure (estimate, capacity with any engine, plan, cost): it is what
    torch.cuda.mem_get_info / cudaMemGetInfo report and what vLLM's gpu_worker multiplies by
    gpu_memory_utilization, so "fits" means the same thing everywhere.
    """
    if override is not None:
        return override
    if gpu.name in CUDA_TOTAL_MIB:
        return CUDA_TOTAL_MIB[gpu.name] * MIB
    return (gpu.memory_mib - DEFAULT_DRIVER_RESERVE_MIB) * MIB
