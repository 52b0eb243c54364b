"""Readiness probes for the local services, used by ``deploy/infra.sh``.

Each probe talks the service's real protocol (AMQP protocol header, MongoDB ``ping``, IMAP,
LMTP and SMTP greetings), so "up" means "answers", not merely "port open".

    python -m mailsync_devmail.probe [--wait SECONDS] [--pid PID] KIND=TARGET ...

KIND is one of ``amqp``, ``http``, ``mongo``, ``imap``, ``lmtp``, ``smtp``; TARGET is
``HOST:PORT`` (or a URL for ``http`` and ``mongo``). All probes are retried until they pass or
``--wait`` runs out (or process ``--pid`` exits); the exit status is 0 only when every probe
passed.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence

__all__ = ["PROBES", "ProbeError", "main", "probe"]

_TIMEOUT = 3.0


class ProbeError(Exception):
    """The service did not answer as expected."""


def _hostport(target: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ProbeError(f"expected HOST:PORT, got {target!r}")
    return host.strip("[]"), int(port)


def _recv_line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ProbeError(f"connection closed after {data!r}")
        data += chunk
    return data


def _recv_reply(sock: socket.socket) -> list[bytes]:
    lines = []
    while True:
        line = _recv_line(sock)
        lines.append(line)
        if line[3:4] != b"-":
            return lines


def probe_amqp(target: str) -> None:
    """Send the AMQP 0-9-1 protocol header and expect a Connection.Start method frame."""
    with socket.create_connection(_hostport(target), timeout=_TIMEOUT) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        frame = b""
        while len(frame) < 11:
            chunk = sock.recv(11 - len(frame))
            if not chunk:
                raise ProbeError("connection closed before Connection.Start")
            frame += chunk
        # frame type 1 (method), channel 0, size (4 bytes), class 10 / method 10
        if frame[0] != 1 or frame[1:3] != b"\x00\x00" or frame[7:11] != b"\x00\x0a\x00\x0a":
            raise ProbeError(f"unexpected AMQP answer {frame!r}")


def probe_http(target: str) -> None:
    if not target.startswith(("http://", "https://")):
        raise ProbeError(f"not an http URL: {target!r}")
    with urllib.request.urlopen(target, timeout=_TIMEOUT) as response:  # noqa: S310
        if response.status != 200:
            raise ProbeError(f"HTTP {response.status}")


def probe_mongo(target: str) -> None:
    # pymongo is not a dependency of this package (the demo mail server image does not need
    # it); the workspace venv, where deploy/infra.sh runs the probes, has it.
    from pymongo import MongoClient

    client: MongoClient[dict[str, object]] = MongoClient(
        target, serverSelectionTimeoutMS=int(_TIMEOUT * 1000), connectTimeoutMS=2000
    )
    try:
        reply = client.admin.command("ping")
    finally:
        client.close()
    if reply.get("ok") != 1:
        raise ProbeError(f"ping answered {reply!r}")


def probe_imap(target: str) -> None:
    with socket.create_connection(_hostport(target), timeout=_TIMEOUT) as sock:
        greeting = _recv_line(sock)
        if not greeting.startswith(b"* OK"):
            raise ProbeError(f"IMAP greeting {greeting!r}")
        sock.sendall(b"a1 LOGOUT\r\n")


def _probe_smtp_like(target: str, hello: bytes) -> list[bytes]:
    with socket.create_connection(_hostport(target), timeout=_TIMEOUT) as sock:
        greeting = _recv_reply(sock)
        if not greeting[-1].startswith(b"220"):
            raise ProbeError(f"greeting {greeting!r}")
        sock.sendall(hello + b" probe.localhost\r\n")
        reply = _recv_reply(sock)
        if not reply[-1].startswith(b"250"):
            raise ProbeError(f"{hello.decode()} answered {reply!r}")
        sock.sendall(b"QUIT\r\n")
        return reply


def probe_lmtp(target: str) -> None:
    _probe_smtp_like(target, b"LHLO")


def probe_smtp(target: str) -> None:
    reply = _probe_smtp_like(target, b"EHLO")
    if not any(line[4:].upper().startswith(b"AUTH") for line in reply):
        raise ProbeError("EHLO does not offer AUTH")


PROBES: dict[str, Callable[[str], None]] = {
    "amqp": probe_amqp,
    "http": probe_http,
    "mongo": probe_mongo,
    "imap": probe_imap,
    "lmtp": probe_lmtp,
    "smtp": probe_smtp,
}


def probe(kind: str, target: str) -> None:
    """Run one probe; raise :class:`ProbeError` (or OSError) when the service does not answer."""
    try:
        check = PROBES[kind]
    except KeyError:
        raise ProbeError(f"unknown probe kind {kind!r}") from None
    check(target)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mailsync_devmail.probe")
    parser.add_argument("--wait", type=float, default=0.0, help="retry for up to SECONDS")
    parser.add_argument("--quiet", action="store_true", help="print nothing on failure")
    parser.add_argument(
        "--pid", type=int, default=None, help="stop waiting as soon as this process has exited"
    )
    parser.add_argument("checks", nargs="+", metavar="KIND=TARGET")
    args = parser.parse_args(argv)

    pending: dict[str, tuple[str, str]] = {}
    for check in args.checks:
        kind, sep, target = check.partition("=")
        if not sep:
            parser.error(f"expected KIND=TARGET, got {check!r}")
        pending[check] = (kind, target)

    deadline = time.monotonic() + args.wait
    errors: dict[str, str] = {}
    while True:
        for check, (kind, target) in list(pending.items()):
            try:
                probe(kind, target)
            except Exception as exc:  # any failure means "not up yet"
                errors[check] = f"{type(exc).__name__}: {exc}"
            else:
                errors.pop(check, None)
                del pending[check]
        if not pending or time.monotonic() >= deadline:
            break
        if args.pid is not None and not _alive(args.pid):
            errors["process"] = f"process {args.pid} has exited"
            break
        time.sleep(0.5)
    if not args.quiet:
        for check, error in errors.items():
            print(f"probe {check} failed: {error}", file=sys.stderr)
    return 1 if pending else 0


if __name__ == "__main__":
    sys.exit(main())
