"""Measuring memory and time: the torch CUDA allocator, NVML and CUDA events; tensor bytes on CPU/meta.

A :class:`Meter` answers three questions the same way on every device:

- ``allocation(build, tensors)``: how many bytes did building this add (CUDA: allocator delta;
  CPU/meta: bytes of the tensors it returned);
- ``transient(fn)``: the peak bytes above what was live before, and the time it took (CUDA:
  ``max_memory_allocated`` after a peak reset, CUDA events; CPU: a dispatch mode that follows
  every tensor the ops create, ``perf_counter``);
- ``snapshot(phase)``: allocator counters and, on CUDA, NVML device/process memory.

pynvml (the ``nvidia-ml-py`` package) is imported only on CUDA, and only when installed.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


def storage_key(t: torch.Tensor) -> int:
    """Identity of the storage behind ``t`` (views share it)."""
    return t.untyped_storage()._cdata


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors``."""
    seen: dict[int, int] = {}
    for t in tensors:
        seen.setdefault(storage_key(t), t.untyped_storage().nbytes())
    return sum(seen.values())


class PeakTracker(TorchDispatchMode):
    """Follows every storage an op creates while active: live bytes now, and the peak.

    Storages in ``ignore`` (weights, caches, inputs) are not counted when an op returns them.
    """

    def __init__(self, ignore: set[int]) -> None:
        super().__init__()
        self.ignore, self.live, self.now, self.peak = ignore, {}, 0, 0
        self.refs: dict[int, weakref.ref] = {}  # keeps the death callbacks alive (by id: tensors lack ==)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._see(t)
        return out

    def _see(self, t: torch.Tensor) -> None:
        key = storage_key(t)
        if key in self.ignore:
            return
        entry = self.live.get(key)
        if entry is None:
            entry = self.live[key] = [t.untyped_storage().nbytes(), 0]
            self.now += entry[0]
            self.peak = max(self.peak, self.now)
        entry[1] += 1
        ref = weakref.ref(t, lambda ref, key=key: self._drop(ref, key))
        self.refs[id(ref)] = ref

    def _drop(self, ref: weakref.ref, key: int) -> None:
        self.refs.pop(id(ref), None)
        entry = self.live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.now -= entry[0]
            del self.live[key]


@dataclass
class Transient:
    """What running one phase cost on top of what was already live."""

    peak_bytes: int
    ms: float


@dataclass
class Meter:
    """Tensor-bytes accounting (CPU and meta). :class:`CudaMeter` overrides it with the allocator."""

    device: torch.device
    resident: set[int] = field(default_factory=set)  # storages of weights and caches

    @property
    def name(self) -> str:
        return "CPU (tensor bytes)" if self.device.type == "cpu" else "meta (shapes only)"

    def allocation(self, build: Callable[[], Any], tensors: Callable[[Any], Iterable[torch.Tensor]]) -> tuple[Any, int]:
        """Run ``build``; return its result and the bytes it added."""
        obj = build()
        held = list(tensors(obj))
        self.resident.update(storage_key(t) for t in held)
        return obj, tensor_bytes(held)

    def transient(self, fn: Callable[[], Any]) -> Transient:
        tracker = PeakTracker(set(self.resident))
        start = time.perf_counter()
        with tracker:
            fn()
        return Transient(tracker.peak, (time.perf_counter() - start) * 1e3)

    def free_bytes(self) -> int | None:
        """Memory available for new allocations (host RAM on CPU; nothing to check on meta)."""
        if self.device.type != "cpu":
            return None
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):  # not Linux
            return None

    def non_torch_bytes(self) -> int | None:
        return None

    def context_bytes(self) -> int | None:
        return None

    def snapshot(self, phase: str) -> dict[str, Any]:
        return {"phase": phase}

    def trim(self) -> None:
        """Return freed blocks to the device between runs (CUDA); nothing to do for tensor bytes."""

    def release(self) -> None:
        self.resident.clear()


class CudaMeter(Meter):
    """The torch CUDA allocator for bytes, CUDA events for time, NVML for what torch cannot see.

    Construct it before anything touches CUDA: it reads NVML's device-used memory first, so the
    CUDA context this process then creates is ``used after - used before`` (other processes are
    assumed idle while a profile runs).
    """

    def __init__(self, device: torch.device) -> None:
        super().__init__(device)
        before = _nvml_used_all()  # before torch asks CUDA anything about the device
        torch.cuda.set_device(device)
        torch.empty(1, device=device)  # creates the CUDA context
        torch.cuda.synchronize(device)
        self._nvml = _Nvml.open(device)
        self.baseline_used = before.get(self._nvml.index) if self._nvml else None
        self.context_used = self._nvml.used() if self._nvml else None

    @property
    def name(self) -> str:
        return torch.cuda.get_device_name(self.device)

    def allocation(self, build: Callable[[], Any], tensors: Callable[[Any], Iterable[torch.Tensor]]) -> tuple[Any, int]:
        torch.cuda.synchronize(self.device)
        before = torch.cuda.memory_allocated(self.device)
        obj = build()
        torch.cuda.synchronize(self.device)
        return obj, torch.cuda.memory_allocated(self.device) - before

    def transient(self, fn: Callable[[], Any]) -> Transient:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(self.device)
        return Transient(torch.cuda.max_memory_allocated(self.device) - base, start.elapsed_time(end))

    def free_bytes(self) -> int | None:
        free, _total = torch.cuda.mem_get_info(self.device)
        return free

    def context_bytes(self) -> int | None:
        """Device memory the CUDA context took when this process created it (NVML)."""
        if self.baseline_used is None:
            return None
        return self.context_used - self.baseline_used

    def non_torch_bytes(self) -> int | None:
        """Device memory this process holds outside torch's allocator: context, cuBLAS workspaces, ..."""
        if self.baseline_used is None:
            return None
        return self._nvml.used() - self.baseline_used - torch.cuda.memory_reserved(self.device)

    def snapshot(self, phase: str) -> dict[str, Any]:
        torch.cuda.synchronize(self.device)
        stats = {
            "phase": phase,
            "allocated_bytes": torch.cuda.memory_allocated(self.device),
            "peak_allocated_bytes": torch.cuda.max_memory_allocated(self.device),
            "reserved_bytes": torch.cuda.memory_reserved(self.device),
        }
        if self._nvml:
            stats.update(self._nvml.stats())
        return stats

    def trim(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()

    def release(self) -> None:
        super().release()
        self.trim()


class _Nvml:
    """The NVML view of one device: used/total memory and this process's own usage."""

    def __init__(self, pynvml: Any, handle: Any) -> None:
        self.pynvml, self.handle = pynvml, handle
        self.index = int(pynvml.nvmlDeviceGetIndex(handle))

    @classmethod
    def open(cls, device: torch.device) -> _Nvml | None:
        try:
            import pynvml  # nvidia-ml-py
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
            return cls(pynvml, _handle(pynvml, device))
        except pynvml.NVMLError:
            return None

    def used(self) -> int:
        return int(self.pynvml.nvmlDeviceGetMemoryInfo(self.handle).used)

    def stats(self) -> dict[str, int | None]:
        info = self.pynvml.nvmlDeviceGetMemoryInfo(self.handle)
        return {
            "nvml_used_bytes": int(info.used),
            "nvml_total_bytes": int(info.total),
            "nvml_process_bytes": self._own(),
        }

    def _own(self) -> int | None:
        """This process's used GPU memory, or None where NVML cannot see it (e.g. a PID namespace)."""
        try:
            procs = self.pynvml.nvmlDeviceGetComputeRunningProcesses(self.handle)
        except self.pynvml.NVMLError:
            return None
        mine = [p.usedGpuMemory for p in procs if p.pid == os.getpid() and p.usedGpuMemory is not None]
        return int(mine[0]) if mine else None


def _nvml_used_all() -> dict[int, int]:
    """NVML used memory of every device, by NVML index; empty without NVML."""
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return {}
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        return {i: int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).used) for i in range(count)}
    except pynvml.NVMLError:
        return {}


def _handle(pynvml: Any, device: torch.device) -> Any:
    """The NVML handle of torch's device: by UUID (CUDA_VISIBLE_DEVICES renumbers), else by index."""
    props = torch.cuda.get_device_properties(device)
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        text = str(uuid)
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(text if text.startswith("GPU-") else f"GPU-{text}")
        except (pynvml.NVMLError, TypeError, ValueError):  # an older NVML or another UUID spelling
            pass
    return pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)


def make_meter(device: torch.device) -> Meter:
    return CudaMeter(device) if device.type == "cuda" else Meter(device)
