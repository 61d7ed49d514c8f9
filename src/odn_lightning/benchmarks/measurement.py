"""How a bench run measures: the device (its name, synchronisation, memory) and timing (median of
repeats after warm-up, ratios).
"""

from __future__ import annotations

import os
import platform
import re
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def device_slug(device: torch.device) -> str:
    """The results' file stem: cpu-<N>cores, or the CUDA device's name slugified."""
    if device.type == "cuda":
        return slug(torch.cuda.get_device_name(device))
    return f"cpu-{os.cpu_count()}cores"


def synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def max_rss_mib() -> float:
    """The process's peak resident memory so far (a high-water mark), MiB."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kib / 1024 / (1024 if platform.system() == "Darwin" else 1), 1)


def current_rss_mib() -> float | None:
    """The process's resident memory now, MiB (Linux: /proc/self/statm; elsewhere None)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class MemoryDuring:
    """Peak memory while a measurement runs: CUDA's allocator peak on a GPU; on a CPU the process's
    resident memory, sampled every 2 ms by a thread (ru_maxrss is a high-water mark of the whole run,
    which cannot tell one runtime from the next)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.result: dict[str, float | None] = {}

    def __enter__(self) -> MemoryDuring:
        import threading

        if self.device.type == "cuda":
            reset_peak(self.device)
            return self
        self.base = current_rss_mib()
        self.peak = self.base
        self.stop = threading.Event()

        def sample() -> None:
            while not self.stop.wait(0.002):
                now = current_rss_mib()
                if now is not None and (self.peak is None or now > self.peak):
                    self.peak = now

        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.result = peak_memory(self.device)
            return
        self.stop.set()
        self.thread.join()
        if self.base is None or self.peak is None:
            self.result = {"peak_rss_mib": None, "rss_increase_mib": None}
        else:
            self.result = {
                "peak_rss_mib": round(self.peak, 1),
                "rss_increase_mib": round(self.peak - self.base, 1),
            }


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, float]:
    if device.type == "cuda":
        return {"peak_cuda_memory_mib": round(torch.cuda.max_memory_allocated(device) / 2**20, 1)}
    return {"max_rss_mib": max_rss_mib()}


# ------------------------------------------------------------------------------------------ timing


def timings(fn: Callable[[], Any], repeats: int, warmup: int, sync: Callable[[], None]) -> list[float]:
    """Seconds of each of `repeats` calls of fn, after `warmup` untimed ones; the device synchronised
    around each call."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def summary_ms(times: Sequence[float]) -> dict[str, float]:
    ms = [t * 1000 for t in times]
    return {
        "median_ms": round(statistics.median(ms), 4),
        "min_ms": round(min(ms), 4),
        "max_ms": round(max(ms), 4),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b > 0:
        return None
    return round(a / b, 4)
