"""Measuring memory and time: the torch CUDA allocator, NVML and CUDA events; tensor bytes on CPU/meta.

A :class:`Meter` answers three questions the same way on every device:

- ``allocation(build, tensors)``: how many bytes did building this add (CUDA: allocator delta;
  CPU/meta: bytes of the tensors it returned);
- ``transient(fn)``: the peak bytes above what was live before, and the time it took (CUDA:
  ``max_memory_allocated`` after a peak reset, CUDA events; CPU: a dispatch mode that follows
  every tensor the ops create, ``perf_counter``);
- ``snapshot(phase)``: allocator counters and, on CUDA, NVML device/process memory.

``mark(label)`` stamps a point inside a transient (CUDA event, or ``perf_counter``); the transient
returns the time between consecutive stamps per label, so a forward pass splits into embedding,
each layer and head. pynvml (the ``nvidia-ml-py`` package) is imported only on CUDA, and only
when installed; NVML is matched to torch's device by UUID (``CUDA_VISIBLE_DEVICES`` renumbers devices
and MIG slices have no NVML index of their own), never by position.
"""

from __future__ import annotations

import os
import statistics
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
    """What running one phase cost on top of what was already live.

    ``host_ms``: how long the host took to issue the work (CUDA; equal to ``ms`` on CPU, where
    every op runs as it is issued). ``spans``: milliseconds per ``mark`` label, summed over calls.
    """

    peak_bytes: int
    ms: float
    host_ms: float | None = None
    spans: dict[str, float] = field(default_factory=dict)

    @property
    def launch_bound(self) -> bool | None:
        """The device finished when the host finished issuing: it waited for the host (launches,
        synchronisations), so ``ms`` measures Python and kernel launch time, not the kernels."""
        if self.host_ms is None:
            return None
        return self.host_ms >= LAUNCH_BOUND_SHARE * self.ms


# Share of the device time the host spent issuing work above which a timing is launch-bound: with
# asynchronous launches and no synchronisation the host runs ahead, so issue time << device time
# when the kernels dominate. 0.9 leaves room for the last kernel after the last launch.
LAUNCH_BOUND_SHARE = 0.9


def median_transient(runs: list[Transient]) -> Transient:
    """Several timed repetitions of one step: the median time, the highest peak."""
    host = [r.host_ms for r in runs if r.host_ms is not None]
    middle = sorted(runs, key=lambda r: r.ms)[(len(runs) - 1) // 2]
    return Transient(
        peak_bytes=max(r.peak_bytes for r in runs),
        ms=statistics.median(r.ms for r in runs),
        host_ms=statistics.median(host) if host else None,
        spans=middle.spans,
    )


def spans_of(stamps: list[tuple[str, Any]], elapsed: Callable[[Any, Any], float]) -> dict[str, float]:
    """Milliseconds from each stamp to the next, summed per label of the later one; ``begin`` opens a pass."""
    spans: dict[str, float] = {}
    for (_, a), (label, b) in zip(stamps, stamps[1:], strict=False):
        if label != "begin":
            spans[label] = spans.get(label, 0.0) + elapsed(a, b)
    return spans


@dataclass
class Meter:
    """Tensor-bytes accounting (CPU and meta). :class:`CudaMeter` overrides it with the allocator."""

    device: torch.device
    resident: set[int] = field(default_factory=set)  # storages of weights and caches
    stamps: list[tuple[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what may pollute the figures (other processes)

    @property
    def name(self) -> str:
        return "CPU (tensor bytes)" if self.device.type == "cpu" else "meta (shapes only)"

    def allocation(self, build: Callable[[], Any], tensors: Callable[[Any], Iterable[torch.Tensor]]) -> tuple[Any, int]:
        """Run ``build``; return its result and the bytes it added."""
        obj = build()
        held = list(tensors(obj))
        self.resident.update(storage_key(t) for t in held)
        return obj, tensor_bytes(held)

    def mark(self, label: str) -> None:
        self.stamps.append((label, time.perf_counter()))

    def transient(self, fn: Callable[[], Any]) -> Transient:
        tracker = PeakTracker(set(self.resident))
        self.stamps = []
        start = time.perf_counter()
        with tracker:
            fn()
        ms = (time.perf_counter() - start) * 1e3
        return Transient(tracker.peak, ms, None, spans_of(self.stamps, lambda a, b: (b - a) * 1e3))

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

    def environment(self) -> dict[str, Any]:
        """Versions and settings a measurement depends on."""
        return {"torch": torch.__version__, "threads": torch.get_num_threads()}

    def snapshot(self, phase: str) -> dict[str, Any]:
        return {"phase": phase}

    def trim(self) -> None:
        """Return freed blocks to the device between runs (CUDA); nothing to do for tensor bytes."""

    def release(self) -> None:
        self.resident.clear()


class CudaMeter(Meter):
    """The torch CUDA allocator for bytes, CUDA events for time, NVML for what torch cannot see.

    Construct it before anything touches CUDA: it reads NVML's used memory of every device (and MIG
    slice) first, keyed by UUID, so the CUDA context this process then creates is ``used after -
    used before`` on torch's device. Processes already on that device are listed in ``warnings``:
    a change in their memory during the run lands in ``non_torch``.
    """

    def __init__(self, device: torch.device) -> None:
        super().__init__(device)
        pynvml = load_nvml()
        before = nvml_inventory(pynvml) if pynvml else {}  # before torch asks CUDA anything
        torch.cuda.set_device(device)
        torch.empty(1, device=device)  # creates the CUDA context
        torch.cuda.synchronize(device)
        self._nvml: Nvml | None = None
        self.baseline_used: int | None = None
        self.context_used: int | None = None
        if pynvml is None:
            return
        self._nvml, problem = Nvml.find(pynvml, torch_uuid(device))
        if self._nvml is None:
            self.warnings.append(problem)
            return
        seen = before.get(self._nvml.uuid)
        if seen is not None:
            self.baseline_used = seen.used
            self.warnings += _others_warning(seen.processes, when="before this process created its context")
        # Less torch's pool: the one-element tensor above reserved a 2 MiB segment that is not context.
        self.context_used = self._nvml.used() - torch.cuda.memory_reserved(device)

    @property
    def name(self) -> str:
        return torch.cuda.get_device_name(self.device)

    def allocation(self, build: Callable[[], Any], tensors: Callable[[Any], Iterable[torch.Tensor]]) -> tuple[Any, int]:
        torch.cuda.synchronize(self.device)
        before = torch.cuda.memory_allocated(self.device)
        obj = build()
        torch.cuda.synchronize(self.device)
        return obj, torch.cuda.memory_allocated(self.device) - before

    def mark(self, label: str) -> None:
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        self.stamps.append((label, event))

    def transient(self, fn: Callable[[], Any]) -> Transient:
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        self.stamps = []
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        host_start = time.perf_counter()
        start.record()
        fn()
        end.record()
        host_ms = (time.perf_counter() - host_start) * 1e3  # issue time: the host does not wait here
        torch.cuda.synchronize(self.device)
        spans = spans_of(self.stamps, lambda a, b: a.elapsed_time(b))
        return Transient(torch.cuda.max_memory_allocated(self.device) - base, start.elapsed_time(end), host_ms, spans)

    def free_bytes(self) -> int | None:
        free, _total = torch.cuda.mem_get_info(self.device)
        return free

    def context_bytes(self) -> int | None:
        """Device memory the CUDA context took when this process created it (NVML)."""
        if self.baseline_used is None or self.context_used is None:
            return None
        return self.context_used - self.baseline_used

    def non_torch_bytes(self) -> int | None:
        """Device memory this process holds outside torch's allocator: context, library workspaces, ..."""
        if self.baseline_used is None or self._nvml is None:
            return None
        return self._nvml.used() - self.baseline_used - torch.cuda.memory_reserved(self.device)

    def environment(self) -> dict[str, Any]:
        major, minor = torch.cuda.get_device_capability(self.device)
        env: dict[str, Any] = {
            **super().environment(),
            "device_name": self.name,
            "compute_capability": f"{major}.{minor}",
            "cuda_runtime": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        }
        size = getattr(torch.backends.cuda, "cublas_workspace_size", None)  # torch >= 2.10
        env["cublas_workspace_bytes"] = size() if size else None
        if self._nvml is not None:
            env.update(self._nvml.system())
        return env

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
            procs = self._nvml.processes()
            if procs is not None:
                mine = [p for p in procs if p.pid != os.getpid()]
                # Inside a PID namespace NVML lists host PIDs: one unmatched entry is this process.
                others = mine if len(mine) < len(procs) else mine[1:]
                for text in _others_warning(others, when=f"during {phase}"):
                    if text not in self.warnings:
                        self.warnings.append(text)
        return stats

    def trim(self) -> None:
        torch.cuda.synchronize(self.device)
        torch.cuda.empty_cache()

    def release(self) -> None:
        super().release()
        self.trim()


# ---- NVML --------------------------------------------------------------------------------------


def load_nvml() -> Any:
    """The initialised ``pynvml`` module, or None (not installed, no driver, no NVML library)."""
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except nvml_errors(pynvml):
        return None
    return pynvml


def nvml_errors(pynvml: Any) -> tuple[type[BaseException], ...]:
    """What an NVML call raises: ``NVMLError`` (and its per-code subclasses) and
    ``NVMLLibraryMismatchError``, which pynvml's ``throwOnVersionMismatch`` raises for an unversioned
    call (``nvmlDeviceGetComputeRunningProcesses``) against a mismatched library; it is not an
    ``NVMLError`` (nvidia-ml-py 13, pynvml.py)."""
    mismatch = getattr(pynvml, "NVMLLibraryMismatchError", None)
    return (pynvml.NVMLError,) + ((mismatch,) if mismatch else ())


@dataclass
class DeviceState:
    used: int
    processes: list[Any] | None  # None: NVML could not list them


def nvml_inventory(pynvml: Any) -> dict[str, DeviceState]:
    """Used memory and compute processes of every GPU and MIG slice, by NVML UUID."""
    errors = nvml_errors(pynvml)
    found: dict[str, DeviceState] = {}
    try:
        count = pynvml.nvmlDeviceGetCount()
    except errors:
        return found
    for i in range(count):
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
        except errors:
            continue
        for h in (handle, *_mig_handles(pynvml, handle)):
            try:
                uuid = _text(pynvml.nvmlDeviceGetUUID(h))
                found[uuid] = DeviceState(int(pynvml.nvmlDeviceGetMemoryInfo(h).used), _processes(pynvml, h))
            except errors:
                continue
    return found


def _mig_handles(pynvml: Any, handle: Any) -> list[Any]:
    """The MIG slices of a GPU (none when MIG is off or unsupported)."""
    errors = nvml_errors(pynvml)
    try:
        slots = pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)
    except errors:
        return []
    handles = []
    for j in range(slots):
        try:
            handles.append(pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, j))
        except errors:  # NVML_ERROR_NOT_FOUND for an empty slot
            continue
    return handles


def _processes(pynvml: Any, handle: Any) -> list[Any] | None:
    try:
        return list(pynvml.nvmlDeviceGetComputeRunningProcesses(handle))
    except nvml_errors(pynvml):
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bare_uuid(text: str) -> str:
    """A UUID without its ``GPU-``/``MIG-`` prefix, lower case: torch prints none, NVML one."""
    text = text.strip().lower()
    for prefix in ("gpu-", "mig-"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


def torch_uuid(device: torch.device) -> str | None:
    """The UUID CUDA reports for torch's device (a MIG slice's own UUID under MIG), or None."""
    uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
    return None if uuid is None else str(uuid)


def _others_warning(processes: list[Any] | None, *, when: str) -> list[str]:
    if not processes:
        return []
    held = sum(p.usedGpuMemory or 0 for p in processes)
    pids = ", ".join(str(p.pid) for p in processes[:5])
    return [
        f"{len(processes)} other process(es) on the device {when} (PID {pids}; {held / 2**20:.0f} MiB): "
        "any change in their memory lands in non_torch"
    ]


class Nvml:
    """The NVML view of torch's device: used/total memory, its processes, driver versions."""

    def __init__(self, pynvml: Any, handle: Any, uuid: str) -> None:
        self.pynvml, self.handle, self.uuid = pynvml, handle, uuid
        self.errors = nvml_errors(pynvml)

    @classmethod
    def find(cls, pynvml: Any, uuid: str | None) -> tuple[Nvml | None, str]:
        """Torch's device in NVML by UUID: ``GPU-<uuid>``, ``MIG-<uuid>``, then every device and slice.

        Positions are never used: torch's index 0 is NVML's index 3 under ``CUDA_VISIBLE_DEVICES=3``,
        and a MIG slice's memory is not its parent GPU's.
        """
        if uuid is None:
            return None, "torch reports no device UUID: NVML figures (context, non_torch) left out"
        bare, errors = _bare_uuid(uuid), nvml_errors(pynvml)
        for text in (f"GPU-{bare}", f"MIG-{bare}"):
            try:
                handle = pynvml.nvmlDeviceGetHandleByUUID(text)
                return cls(pynvml, handle, _text(pynvml.nvmlDeviceGetUUID(handle))), ""
            except errors:
                continue
        try:
            count = pynvml.nvmlDeviceGetCount()
            for i in range(count):
                gpu = pynvml.nvmlDeviceGetHandleByIndex(i)
                for h in (gpu, *_mig_handles(pynvml, gpu)):
                    name = _text(pynvml.nvmlDeviceGetUUID(h))
                    if _bare_uuid(name) == bare:
                        return cls(pynvml, h, name), ""
        except errors:
            pass
        return None, f"no NVML device has torch's UUID {uuid}: NVML figures (context, non_torch) left out"

    def used(self) -> int:
        return int(self.pynvml.nvmlDeviceGetMemoryInfo(self.handle).used)

    def stats(self) -> dict[str, int | None]:
        info = self.pynvml.nvmlDeviceGetMemoryInfo(self.handle)
        return {
            "nvml_used_bytes": int(info.used),
            "nvml_total_bytes": int(info.total),
            "nvml_process_bytes": self._own(),
        }

    def processes(self) -> list[Any] | None:
        return _processes(self.pynvml, self.handle)

    def _own(self) -> int | None:
        """This process's used GPU memory, or None where NVML cannot see it (a PID namespace, a
        library mismatch, a MIG slice without per-process accounting)."""
        procs = self.processes()
        mine = [p.usedGpuMemory for p in procs or [] if p.pid == os.getpid() and p.usedGpuMemory is not None]
        return int(mine[0]) if mine else None

    def system(self) -> dict[str, Any]:
        """Driver and CUDA driver versions, and the device's NVML UUID."""
        out: dict[str, Any] = {"nvml_uuid": self.uuid}
        for key, call in (("driver", "nvmlSystemGetDriverVersion"), ("cuda_driver", "nvmlSystemGetCudaDriverVersion")):
            try:
                out[key] = _text(getattr(self.pynvml, call)())
            except (*self.errors, AttributeError):
                out[key] = None
        return out


def make_meter(device: torch.device) -> Meter:
    return CudaMeter(device) if device.type == "cuda" else Meter(device)
