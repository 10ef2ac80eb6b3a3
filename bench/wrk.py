"""wrk (Debian's package, a C load generator) posting on loopback, and CPU accounting from /proc.

``run`` starts wrk with bench/wrk_post.lua for a bounded time (wrk's own duration, and a watchdog that kills
it 30 s after), reads the figures its Lua ``done`` prints, and measures what the run cost: wrk's own CPU
(its rusage from ``wait4``), the CPU of each named process tree (/proc/<pid>/stat of the tree's processes),
and the machine's share of stolen time (/proc/stat), which says how much other guests took meanwhile.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve().parent / "wrk_post.lua"
TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed: make apt-bench-deps")
    return found


def version() -> str:
    """ "wrk 4.1.0" (wrk -v prints "wrk debian/4.1.0-3+b2 [epoll] ..." and exits 1)."""
    out = subprocess.run([binary(), "-v"], capture_output=True, text=True, timeout=10)
    text = out.stdout + out.stderr
    found = re.search(r"wrk (?:\S+/)?(\d+\.\d+(?:\.\d+)?)", text)
    return f"wrk {found.group(1)}" if found else text.splitlines()[0].strip()


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_cpu_seconds(root: int) -> float:
    """User and system CPU of a process and its descendants, with that of the descendants that have exited
    and been waited for (a PostgreSQL backend that ended: its time is in its parent's cutime and cstime)."""
    total = 0
    for pid in descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime (fields 14 to 17 of stat)
        total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / TICKS


def machine_ticks() -> list[int]:
    """The machine's cpu line of /proc/stat: user nice system idle iowait irq softirq steal ..."""
    line = Path("/proc/stat").read_text().splitlines()[0]
    return [int(value) for value in line.split()[1:]]


@dataclass
class Load:
    url: str
    connections: int
    seconds: float
    # Per-connection delay between two requests (paced, open loop); None for a closed loop.
    delay_ms: float | None = None
    threads: int = 1


def run(load: Load, body: dict[str, Any], parts: dict[str, int]) -> dict[str, Any]:
    """One wrk run; ``parts`` names the process trees whose CPU per answered request is measured."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(body, handle)
        body_file = handle.name
    env = {
        **os.environ,
        "WRK_BODY_FILE": body_file,
        "WRK_CONNECTIONS": str(load.connections),
        "WRK_THREADS": str(load.threads),
    }
    if load.delay_ms is not None:
        env["WRK_DELAY_MS"] = f"{load.delay_ms:.3f}"
    command = [
        binary(),
        "-t",
        str(load.threads),
        "-c",
        str(load.connections),
        "-d",
        f"{max(1, round(load.seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPT),
        load.url,
    ]
    cpu_before = {name: tree_cpu_seconds(pid) for name, pid in parts.items()}
    ticks_before = machine_ticks()
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    watchdog = threading.Timer(load.seconds + 30, process.kill)
    watchdog.start()
    try:
        out = process.stdout.read().decode() if process.stdout else ""
        # wait4 gives this child's own rusage: wrk's CPU, none of the servers'.
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    finally:
        watchdog.cancel()
        if process.stdout:
            process.stdout.close()
        os.unlink(body_file)
    wall = time.monotonic() - started
    ticks_after = machine_ticks()
    cpu_after = {name: tree_cpu_seconds(pid) for name, pid in parts.items()}
    line = next((row for row in out.splitlines() if row.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no figures (exit {process.returncode}): {out.strip()[-300:]}")
    figures = json.loads(line.removeprefix("WRKJSON "))
    duration = figures["duration_us"] / 1e6
    errors = figures["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    created = figures["requests"] - figures["non_201"]
    delta = [after - before for before, after in zip(ticks_before, ticks_after, strict=False)]
    total_ticks = sum(delta[:8]) or 1
    client_cpu = usage.ru_utime + usage.ru_stime
    result: dict[str, Any] = {
        "connections": load.connections,
        "seconds": round(duration, 2),
        "requests": figures["requests"],
        "created_201": created,
        "non_201": figures["non_201"],
        "first_other_status": figures["first_other_status"] or None,
        "socket_errors": socket_errors,
        "rate_per_s": created / duration if duration else 0.0,
        "p50_ms": figures["latency_us"]["p50"] / 1000,
        "p90_ms": figures["latency_us"]["p90"] / 1000,
        "p99_ms": figures["latency_us"]["p99"] / 1000,
        "max_ms": figures["latency_us"]["max"] / 1000,
        "client_cpu_share": client_cpu / (wall * CORES),
        "cpu_ms_per_201": {
            name: round((cpu_after[name] - cpu_before[name]) * 1000 / created, 3) if created else None
            for name in parts
        }
        | {"wrk": round(client_cpu * 1000 / created, 3) if created else None},
        "machine": {
            "busy_share": round(1 - (delta[3] + delta[4]) / total_ticks, 3),
            "steal_share": round(delta[7] / total_ticks, 3) if len(delta) > 7 else None,
        },
    }
    if load.delay_ms is not None:
        result["delay_ms_per_connection"] = load.delay_ms
        result["target_rate_per_s"] = load.connections * 1000 / load.delay_ms
    return result
