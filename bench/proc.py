"""What the kernel knows about a process under measurement: CPU time and peak memory."""

from __future__ import annotations

import os
import pathlib

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of every thread of ``pid`` so far (``/proc/<pid>/stat``)."""
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command (which may hold spaces) start with the state, field 3.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _TICKS_PER_SECOND


def peak_rss_mb(pid: int) -> float:
    """The most resident memory ``pid`` has held since it started or since the last reset."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def reset_peak_rss(pid: int) -> None:
    """Start ``peak_rss_mb`` again from the present resident size (``clear_refs`` 5)."""
    pathlib.Path(f"/proc/{pid}/clear_refs").write_text("5")
