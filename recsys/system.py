"""Facts about the machine the process runs on."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """Cores this process may run on (CPU affinity and cpusets count, unlike os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def available_memory_bytes() -> int | None:
    """Memory the kernel says a new allocation can get without swapping (MemAvailable), or None
    where /proc/meminfo does not exist."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def lower_this_threads_priority(steps: int) -> None:
    """Make the calling thread `steps` nicer (Linux only: elsewhere niceness is per process, and
    nothing happens). Background work then takes only the CPU that requests leave over."""
    import sys
    import threading

    if not sys.platform.startswith("linux"):
        return
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + steps))
    except OSError:  # not allowed: run at the process's priority
        pass
