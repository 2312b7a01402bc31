"""Facts about the machine this runs on: its CPU model and its physical cores."""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "Hardware"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return platform.machine()


def physical_cores(cpus: set[int] | None = None, sysfs: Path = Path("/sys/devices/system/cpu")) -> int:
    """The physical cores among the CPUs this process may use (`cpus`, default its affinity): a
    core's second hardware thread shares its vector units, so a CNN gains nothing from it and its
    threads then wait for each other. Each CPU counts as a core where the topology is not known."""
    if cpus is None:
        everything = set(range(os.cpu_count() or 1))
        cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else everything
    cores = set()
    for cpu in cpus:
        try:
            cores.add((sysfs / f"cpu{cpu}" / "topology" / "thread_siblings_list").read_text().strip())
        except OSError:
            return max(1, len(cpus))
    return max(1, len(cores))
