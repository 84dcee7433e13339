"""Machine measurements logged at log steps beside the training metrics: the process's CPU and
resident memory (psutil) and, on CUDA, the GPU's utilisation and used memory (NVML, through
`torch.cuda`'s wrappers over `nvidia-ml-py`). What a machine cannot measure is left out quietly.

Every key starts with `system/`: they describe the machine, not the training, so a run's numbers
are compared without them (as without `time/`).
"""

from __future__ import annotations

from typing import Any

SYSTEM_PREFIX = "system/"
GIB = float(1 << 30)


class SystemMetrics:
    """Read at each log step. `system/cpu_percent` is the process's CPU use since the previous
    read, in % of one core (above 100 with several threads busy); `system/rss_gib` its resident
    memory. On CUDA, `system/gpu_util` (% of the last sample period the GPU was busy) and
    `system/gpu_mem_gib` (memory used on the device, all processes)."""

    def __init__(self, device: Any) -> None:
        try:
            import psutil

            self._process: Any = psutil.Process()
            self._process.cpu_percent(None)  # the first call only starts the interval
        except (ImportError, OSError):
            self._process = None
        self._cuda = getattr(device, "type", str(device)) == "cuda"
        self._device = device

    def read(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self._process is not None:
            try:
                out["system/cpu_percent"] = float(self._process.cpu_percent(None))
                out["system/rss_gib"] = self._process.memory_info().rss / GIB
            except OSError:
                self._process = None
        if self._cuda:
            out.update(self._gpu())
        return out

    def _gpu(self) -> dict[str, float]:
        """NVML's figures for this device; none (and never asked again) without NVML."""
        import torch

        try:
            out = {"system/gpu_util": float(torch.cuda.utilization(self._device))}
            used = getattr(torch.cuda, "device_memory_used", None)
            if used is not None:
                out["system/gpu_mem_gib"] = used(self._device) / GIB
            return out
        except Exception:  # no nvidia-ml-py, no driver access: quietly absent
            self._cuda = False
            return {}
