"""The CPU: perf_counter timing, peak RSS from /proc (resettable through clear_refs), the LLC from sysfs."""
import contextlib
import os
import platform
import time

import torch

from bench.devices.base import MemorySample


class CpuDevice:
    kind = "cpu"
    size_class = "cpu"
    isolated = False

    def __init__(self, threads: int = 1):
        self.threads = threads
        torch.set_num_threads(threads)
        self._can_reset_rss = self._try_reset_rss()

    @property
    def torch_device(self) -> str:
        return "cpu"

    def name(self) -> str:
        model = ""
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        model = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        return model or platform.processor() or "cpu"

    def sync(self) -> None:
        pass

    def start(self):
        return time.perf_counter()

    def stop(self, token) -> float:
        """Seconds since start(token)."""
        return time.perf_counter() - token

    def free_bytes(self) -> int:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        return 0

    def total_bytes(self) -> int:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

    @staticmethod
    def _try_reset_rss() -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")               # resets VmHWM (peak RSS) to the current RSS
            return True
        except OSError:
            return False

    @staticmethod
    def _status_bytes(key: str) -> int | None:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(key):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def empty_cache(self) -> None:
        pass

    def sampling(self):
        return contextlib.nullcontext()

    def reset_peak(self) -> None:
        if self._can_reset_rss:
            self._try_reset_rss()

    def read_peak(self) -> MemorySample:
        return MemorySample(rss_peak_bytes=self._status_bytes("VmHWM:") if self._can_reset_rss else None)

    def info(self) -> dict:
        return {"device_kind": "cpu", "device_name": self.name(), "threads": self.threads,
                "rss_peak_resettable": self._can_reset_rss, "logical_cpus": os.cpu_count(),
                "llc_bytes": llc_bytes()}

    def state(self) -> dict:
        return {}


def llc_bytes() -> int | None:
    """Size of the largest CPU cache level, from sysfs."""
    best = None
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for idx in os.listdir(base):
            try:
                with open(f"{base}/{idx}/size") as f:
                    text = f.read().strip()
            except OSError:
                continue
            mult = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1], 1)
            size = int(text.rstrip("KMG")) * mult
            best = size if best is None or size > best else best
    except OSError:
        return None
    return best
