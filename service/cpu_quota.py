"""How many CPUs this process may use, for ``rueckhalt serve --workers auto`` (``service.serving``): its
affinity, capped by its cgroup's CPU quota, which a container's ``cpus:`` sets and ``nproc`` does not see."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath

_CGROUP_ROOT = Path("/sys/fs/cgroup")


def available_cpus(
    cgroups: Path = Path("/proc/self/cgroup"),
    root: Path = _CGROUP_ROOT,
    mountinfo: Path = Path("/proc/self/mountinfo"),
) -> int:
    """The CPUs this process may use: its affinity (what ``nproc`` counts), capped by the CPU quota of its
    cgroup and every parent, rounded up: cgroup v2's ``cpu.max``, or on a host with cgroup v1 the cpu
    controller's ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``. A container's ``cpus:`` sets that quota and
    ``nproc`` does not see it; workers beyond it would only take turns on it, each with its own database
    connections and memory. Files that cannot be read count as no quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        lines = cgroups.read_text().splitlines()
    except OSError:
        return cpus
    for line in lines:
        number, controllers, path = [*line.split(":", 2), "", ""][:3]
        if number == "0" and not controllers:
            quota = _v2_quota(root, path)
        elif "cpu" in controllers.split(","):
            quota = _v1_quota(mountinfo, path)
        else:
            continue
        if quota is not None:
            cpus = min(cpus, quota)
    return max(1, cpus)


def _v2_quota(root: Path, path: str) -> int | None:
    """The smallest ``cpu.max`` of the cgroup at ``path`` under the v2 mount ``root`` and its parents."""
    top = root.resolve()
    return _smallest(top, (top / path.lstrip("/")).resolve(), lambda folder: _quota(folder / "cpu.max"))


def _v1_quota(mountinfo: Path, path: str) -> int | None:
    """The smallest cgroup v1 CFS quota of the cgroup at ``path`` and its parents, found through the mount
    that holds the cpu controller. Its root is what of the hierarchy is mounted there: ``/`` on a host, the
    container's own cgroup inside one (``/proc/self/cgroup`` names the path from the hierarchy's root)."""
    mount = _v1_cpu_mount(mountinfo)
    if mount is None:
        return None
    mounted, point = mount
    try:
        below = PurePosixPath(path).relative_to(mounted)
    except ValueError:
        return None  # the cgroup is not in what is mounted here
    top = point.resolve()
    return _smallest(top, (top / below).resolve(), _cfs_quota)


def _v1_cpu_mount(mountinfo: Path) -> tuple[PurePosixPath, Path] | None:
    """(root within the hierarchy, mount point) of the cgroup v1 mount with the cpu controller."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        mount, separator, source = line.partition(" - ")
        fields, kind = mount.split(), source.split()
        cgroup_v1 = separator and len(fields) >= 5 and len(kind) >= 3 and kind[0] == "cgroup"
        if cgroup_v1 and "cpu" in kind[2].split(","):
            return PurePosixPath(fields[3]), Path(fields[4])
    return None


def _smallest(top: Path, start: Path, quota_of: Callable[[Path], int | None]) -> int | None:
    """The smallest quota of ``start`` and its parents up to ``top``; None if ``start`` is not under it."""
    if start != top and top not in start.parents:
        return None  # a path that climbs out of the mount is not followed
    found: int | None = None
    current = start
    while True:
        quota = quota_of(current)
        if quota is not None:
            found = quota if found is None else min(found, quota)
        if current == top:
            return found
        current = current.parent


def _cfs_quota(folder: Path) -> int | None:
    """cgroup v1's ``cpu.cfs_quota_us`` (-1 for none) over ``cpu.cfs_period_us``, in whole CPUs rounded up."""
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else max(1, -(-quota // period))
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _quota(cpu_max: Path) -> int | None:
    """``cpu.max`` ("$MAX $PERIOD", or "max $PERIOD" for none) as whole CPUs rounded up; None for no quota
    or a file that cannot be read."""
    try:
        quota, period = cpu_max.read_text().split()
        return None if quota == "max" else max(1, -(-int(quota) // int(period)))
    except (OSError, ValueError, ZeroDivisionError):
        return None
