"""CPU time spent per part of the system during a measurement, read from /proc (Linux).

A rate says how fast; CPU milliseconds per message say what each message costs, and so what
any number of cores could reach: `cores * 1000 / ms per message` when every core works on it.
The parts are the services under measurement (by process id) and the local infrastructure (by
executable name). Given the store's URL, the store is only the process listening on its port:
other MongoDB-wire servers on the machine (a test's own, say) are not counted. A process that
ends before the measurement does is not counted, so the figures are a floor; Dovecot's
per-connection processes live as long as ingest's connections.
"""

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")

# The infrastructure `deploy/infra.sh` starts, by executable name (`/proc/PID/comm`).
INFRA: dict[str, frozenset[str]] = {
    "store": frozenset({"ferretdb", "mongod"}),
    "broker": frozenset({"beam.smp", "erl_child_setup", "inet_gethost", "epmd"}),
    "imap": frozenset(
        {"dovecot", "imap", "imap-login", "auth", "anvil", "log", "config", "stats", "lmtp"}
    ),
}


def _cpu_seconds(pid: int) -> float | None:
    """User plus system CPU of a process and its reaped children; None once it is gone."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return (utime + stime + cutime + cstime) / _TICKS_PER_SECOND


def _infra_processes(store_port: int | None) -> dict[int, str]:
    found: dict[int, str] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        for part, names in INFRA.items():
            if name in names:
                found[int(entry.name)] = part
    if store_port is not None:
        serving = _listening_on(store_port)
        found = {pid: part for pid, part in found.items() if part != "store" or pid in serving}
    return found


def _listening_on(port: int) -> set[int]:
    """The processes holding a listening TCP socket on `port`."""
    sockets: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            rows = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                sockets.add(f"socket:[{inode}]")
    holders: set[int] = set()
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in sockets for fd in (entry / "fd").iterdir()):
                holders.add(int(entry.name))
        except OSError:
            continue
    return holders


def peak_rss_mib(pid: int) -> float | None:
    """The most resident memory the process has held since it started (VmHWM), in MiB."""
    try:
        status = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds per part, and the wall-clock seconds, between `start` and `stop`."""

    by_part: dict[str, float]
    wall_seconds: float

    @property
    def total(self) -> float:
        return sum(self.by_part.values())

    def ms_per(self, count: int) -> dict[str, float]:
        return {part: 1000 * seconds / count for part, seconds in self.by_part.items()}


class CpuMeter:
    """Measures the CPU of `services` (part name -> process id) and of the infrastructure;
    with `store_url`, of the store serving that URL only."""

    def __init__(self, services: Mapping[str, int], *, store_url: str | None = None) -> None:
        self._services = dict(services)
        self._store_port = None if store_url is None else urlsplit(store_url).port or 27017
        self._started: dict[int, float] = {}
        self._started_at = 0.0

    def _processes(self) -> dict[int, str]:
        infra = _infra_processes(self._store_port)
        return {**infra, **{pid: part for part, pid in self._services.items()}}

    def start(self) -> None:
        self._started_at = time.perf_counter()
        self._started = {
            pid: seconds for pid in self._processes() if (seconds := _cpu_seconds(pid)) is not None
        }

    def stop(self) -> CpuUse:
        by_part: dict[str, float] = {}
        for pid, part in self._processes().items():
            seconds = _cpu_seconds(pid)
            if seconds is None:
                continue
            # A process started meanwhile (an IMAP connection's) spent all of its CPU inside.
            spent = seconds - self._started.get(pid, 0.0)
            by_part[part] = by_part.get(part, 0.0) + spent
        return CpuUse(by_part, time.perf_counter() - self._started_at)
