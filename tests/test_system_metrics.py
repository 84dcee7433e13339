"""System metrics: the process's CPU and memory at log steps; the GPU's where NVML answers,
quietly absent where it does not."""

from __future__ import annotations

import torch

from fino.train.system_metrics import SystemMetrics


def test_the_process_is_measured_on_a_cpu_and_no_gpu_key_appears():
    metrics = SystemMetrics(torch.device("cpu"))
    sum(i * i for i in range(200_000))  # some CPU time in the interval
    values = metrics.read()
    assert set(values) == {"system/cpu_percent", "system/rss_gib"}
    assert values["system/cpu_percent"] >= 0.0
    assert 0.01 < values["system/rss_gib"] < 64  # this process holds torch: tens of MiB at least


def test_gpu_figures_come_from_nvml_and_are_dropped_once_it_cannot_answer(monkeypatch):
    calls = []

    def utilization(device):
        calls.append(device)
        return 37

    monkeypatch.setattr(torch.cuda, "utilization", utilization)
    monkeypatch.setattr(torch.cuda, "device_memory_used", lambda device: 3 * (1 << 30),
                        raising=False)
    values = SystemMetrics(torch.device("cuda")).read()
    assert values["system/gpu_util"] == 37.0 and values["system/gpu_mem_gib"] == 3.0

    def no_nvml(device):
        calls.append(device)
        raise ModuleNotFoundError("pynvml does not seem to be installed")

    monkeypatch.setattr(torch.cuda, "utilization", no_nvml)
    quiet = SystemMetrics(torch.device("cuda"))
    assert "system/gpu_util" not in quiet.read() and "system/rss_gib" in quiet.read()
    assert len(calls) == 2  # asked once, then never again
