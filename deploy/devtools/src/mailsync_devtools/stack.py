"""The five services as local processes, started with the same commands as the containers."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class Service:
    name: str
    port: int

    @property
    def module(self) -> str:
        return f"mailsync_{self.name}"

    @property
    def command(self) -> list[str]:
        """The service command; docker-compose.yml runs exactly this (checked by a test)."""
        return ["python", "-m", self.module]


SERVICES: tuple[Service, ...] = (
    Service("api", 8000),
    Service("ingest", 8101),
    Service("capture", 8102),
    Service("associate", 8103),
    Service("send", 8104),
)


class StackError(RuntimeError):
    """A service did not become ready."""


@dataclass
class RunningService:
    service: Service
    process: subprocess.Popen[bytes]
    log_path: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ready_url(self) -> str:
        return f"{self.url}/health/ready"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start_service(
    service: Service, env: Mapping[str, str], log_dir: Path, port: int | None = None
) -> RunningService:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{service.name}.log"
    port = port or service.port
    process_env = {
        **os.environ,
        **env,
        "MAILSYNC_HTTP_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, *service.command[1:]]
    with log_path.open("ab") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed module names, no shell
            command, env=process_env, stdout=log, stderr=subprocess.STDOUT
        )
    return RunningService(service, process, log_path, port)


def wait_ready(running: list[RunningService], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(running)
    while pending and time.monotonic() < deadline:
        for item in list(pending):
            if item.process.poll() is not None:
                raise StackError(
                    f"{item.service.name} exited with {item.process.returncode}:\n{item.log_tail()}"
                )
            try:
                if httpx.get(item.ready_url, timeout=2).status_code == 200:
                    pending.remove(item)
            except httpx.HTTPError:
                pass
        if pending:
            time.sleep(0.3)
    if pending:
        names = ", ".join(item.service.name for item in pending)
        details = "\n".join(f"--- {i.service.name}\n{i.log_tail()}" for i in pending)
        raise StackError(f"not ready after {timeout}s: {names}\n{details}")


def stop_services(running: list[RunningService], timeout: float = 15.0) -> None:
    for item in running:
        if item.process.poll() is None:
            item.process.terminate()
    deadline = time.monotonic() + timeout
    for item in running:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            item.process.wait(remaining)
        except subprocess.TimeoutExpired:
            item.process.kill()
            item.process.wait()


def free_ports(services: tuple[Service, ...] = SERVICES) -> dict[str, int]:
    """A free loopback port per service, for stacks that must not meet another on one machine."""
    ports: dict[str, int] = {}
    sockets = []
    for service in services:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        ports[service.name] = sock.getsockname()[1]
    for sock in sockets:
        sock.close()
    return ports


@contextmanager
def running_stack(
    env: Mapping[str, str],
    log_dir: Path,
    services: tuple[Service, ...] = SERVICES,
    ports: Mapping[str, int] | None = None,
) -> Iterator[list[RunningService]]:
    """Start the services, wait until each reports ready, and stop them on exit.

    Services listen on their default ports unless `ports` names others (see `free_ports`).
    """
    running = [
        start_service(service, env, log_dir, (ports or {}).get(service.name))
        for service in services
    ]
    try:
        wait_ready(running)
        yield running
    finally:
        stop_services(running)
