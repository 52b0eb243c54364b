"""Live sync at scale: 10, 100 and 1,000 mailboxes on ONE ingest worker.

At each size every mailbox is connected through the api (from now on, no backfill) and
`live`; then messages are delivered over LMTP at a steady rate to random mailboxes of the set,
and each one's latency runs from the LMTP server accepting it to its `email.logged` event on
the public exchange. The baseline is the raw IDLE notification delay of the same Dovecot,
measured at the same time: an IMAP client of the benchmark IDLEs on an account of its own, and
a message delivered to it is timed from acceptance to the server's `EXISTS`. No pipeline can
go below that. `live_ingest_p50_ms` / `_p99_ms` stop at ingest's `MessageFetched` on the bus,
which splits ingest's share from capture's and associate's.

Around the largest size:

- `live_connect_all_s`: the worker is started with every mailbox connected and none leased,
  until all of them are `live`;
- `ingest_rss_mib` / `ingest_threads` of that worker with every mailbox live (from `/proc`);
- `failover_s`: the worker is killed with SIGKILL, a second one is started, until the second
  holds every mailbox `live` (the leases of the dead worker expire first: `lease_seconds`).

`BENCH_SCALE_SIZES` (`10,100,1000`), `BENCH_SCALE_SAMPLES` (messages per size, 150),
`BENCH_SCALE_RATE` (messages per second, 5). The accounts (`scale-NNNN@scale.test`) stay in
the local Dovecot between runs and are reused.
"""

import asyncio
import os
import random
import signal
import smtplib
import subprocess
import time
import uuid
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import httpx
from pymongo import AsyncMongoClient

from bench.context import BenchContext
from bench.live import percentile
from bench.mailbox import IsolatedStack, free_port, isolated_stack
from bench.report import Figure
from bench.watch import first_seen
from mailsync_devmail.accounts import add_accounts
from mailsync_devtools.stack import Service, start_service, wait_ready
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.contracts.records import EmailLogged
from mailsync_shared.mail_servers.accounts import Login
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.mail_servers.imap import ImapSession, open_imap
from mailsync_shared.topology import EVENTS_EXCHANGE, WORK_EXCHANGE

DOMAIN = "scale.test"
PASSWORD = "scale-bench-password"  # throwaway accounts of the local Dovecot
BASELINE = f"scale-idle@{DOMAIN}"
SENDER = "Scale Client <scale-client@customer.test>"
LEASE_SECONDS = 15.0
LOGGED_WITHIN = 60.0


def address(index: int) -> str:
    return f"scale-{index:04d}@{DOMAIN}"


def message(to: str, index: int) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = SENDER
    mail["To"] = to
    mail["Subject"] = f"Scale question {index} {uuid.uuid4().hex[:6]}"
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = make_msgid(domain="customer.test")
    mail.set_content("Could you send the signed order form today?\n")
    return mail


def message_key(message_id: str) -> str:
    return message_id.strip().strip("<>")


class Lmtp:
    """One LMTP session for timed deliveries; `deliver` returns when the server accepted."""

    def __init__(self, context: BenchContext) -> None:
        self._client = smtplib.LMTP(context.imap_host, context.lmtp_port)

    async def deliver(self, mail: EmailMessage) -> float:
        await asyncio.to_thread(self._client.send_message, mail, to_addrs=[str(mail["To"])])
        return time.perf_counter()

    def close(self) -> None:
        with suppress(smtplib.SMTPException, OSError):
            self._client.quit()


class IngestProcess:
    """`python -m mailsync_ingest` of the stack's environment, started and ended by the bench."""

    def __init__(self, stack: IsolatedStack, log_dir: Path, worker_id: str, mailboxes: int):
        self._env = {
            **stack.env,
            "MAILSYNC_WORKER_ID": worker_id,
            "MAILSYNC_MAX_MAILBOXES": str(mailboxes),
            "MAILSYNC_LEASE_SECONDS": str(LEASE_SECONDS),
        }
        self._log_dir = log_dir
        self.worker_id = worker_id
        self._running = start_service(Service("ingest", 0), self._env, log_dir, free_port())
        wait_ready([self._running])

    @property
    def pid(self) -> int:
        return self._running.process.pid

    def stop(self) -> None:
        process = self._running.process
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        self._running.process.send_signal(signal.SIGKILL)
        self._running.process.wait()

    def figures(self) -> tuple[float, int]:
        """(resident MiB, threads) from /proc."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["Threads"])


async def run(context: BenchContext) -> list[Figure]:
    sizes = sorted(int(s) for s in os.environ.get("BENCH_SCALE_SIZES", "10,100,1000").split(","))
    samples = int(os.environ.get("BENCH_SCALE_SAMPLES", "150"))
    rate = float(os.environ.get("BENCH_SCALE_RATE", "5"))
    largest = sizes[-1]
    print(f"scale: {', '.join(map(str, sizes))} mailboxes on one ingest worker", flush=True)
    add_accounts(
        context.users_file, {**{address(i): PASSWORD for i in range(largest)}, BASELINE: PASSWORD}
    )
    with isolated_stack(context, "scale", without=("ingest",)) as stack:
        async with (
            first_seen(
                stack.rabbitmq_url,
                EVENTS_EXCHANGE,
                EmailLogged,
                lambda event: message_key(event.data.message_id),
            ) as logged,
            first_seen(
                stack.rabbitmq_url,
                WORK_EXCHANGE,
                MessageFetched,
                lambda event: message_key(event.data.message_id),
            ) as fetched,
            httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api,
        ):
            bench = ScaleBench(context, stack, api, logged, fetched)
            try:
                return await bench.run(sizes, samples, rate)
            finally:
                bench.close()


class ScaleBench:
    def __init__(
        self,
        context: BenchContext,
        stack: IsolatedStack,
        api: httpx.AsyncClient,
        logged: dict[str, float],
        fetched: dict[str, float],
    ) -> None:
        self._context = context
        self._stack = stack
        self._api = api
        self._logged = logged
        self._fetched = fetched
        self._store: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(context.mongodb_url)
        self._mailboxes = self._store[stack.database]["mailboxes"]
        self._connected = 0
        self._workspace = ""
        self._workers: list[IngestProcess] = []

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()

    def _start_worker(self, worker_id: str, mailboxes: int) -> IngestProcess:
        worker = IngestProcess(self._stack, self._context.log_dir / "scale", worker_id, mailboxes)
        self._workers.append(worker)
        return worker

    async def run(self, sizes: list[int], samples: int, rate: float) -> list[Figure]:
        largest = sizes[-1]
        workspace = (await self._api.post("/v1/workspaces", json={"name": "Scale"})).json()
        self._api.headers["Authorization"] = f"Bearer {workspace['api_key']}"
        self._workspace = workspace["id"]
        figures: list[Figure] = []
        worker: IngestProcess | None = None
        began = datetime.now(UTC) - timedelta(seconds=1)
        for size in sizes:
            since = began
            if size == largest:
                since = datetime.now(UTC)
                if worker is not None:
                    worker.stop()  # its leases are released: the next worker starts from none
                await self._connect(size)
                started = time.perf_counter()
                worker = self._start_worker("scale-one", largest)
            else:
                worker = worker or self._start_worker("scale-warm-up", largest)
                await self._connect(size)
                started = time.perf_counter()
            await self._until_live(size, worker.worker_id, since)
            connect_s = time.perf_counter() - started
            print(f"  {size} mailboxes live after {connect_s:.1f} s", flush=True)
            figures += await self._latency(size, samples, rate, top=size == largest)
        assert worker is not None
        await asyncio.sleep(2)  # settle: the connect burst's garbage is collected
        rss, threads = worker.figures()
        figures += [
            Figure("live_mailboxes", float(largest), "mailboxes"),
            Figure("live_connect_all_s", connect_s, "s"),
            Figure("ingest_rss_mib", rss, "MiB"),
            Figure("ingest_threads", float(threads), "threads"),
            Figure("failover_s", await self._failover(worker, largest), "s"),
        ]
        return figures

    async def _connect(self, size: int) -> None:
        """Connect mailboxes through the api until `size` are connected."""
        pending = list(range(self._connected, size))
        slots = asyncio.Semaphore(24)

        async def connect(index: int) -> None:
            server = {"host": self._context.imap_host, "security": "none"}
            login = {"username": address(index), "password": PASSWORD}
            async with slots:
                response = await self._api.post(
                    "/v1/mailboxes",
                    json={
                        "address": address(index),
                        "imap": {**server, **login, "port": self._context.imap_port},
                        "smtp": {**server, **login, "port": self._context.smtp_port},
                        "sync": {"backfill_days": None},
                    },
                )
            response.raise_for_status()

        await asyncio.gather(*(connect(index) for index in pending))
        self._connected = size

    async def _live_count(self, worker_id: str, since: datetime) -> int:
        """Mailboxes this worker has brought `live` since `since` (a state left by a killed
        worker does not count)."""
        return await self._mailboxes.count_documents(
            {
                "workspace_id": self._workspace,
                "status.state": "live",
                "lease.owner": worker_id,
                "status.last_synced_at": {"$gte": since},
            }
        )

    async def _until_live(
        self, size: int, worker_id: str, since: datetime, within: float = 600
    ) -> None:
        deadline = time.perf_counter() + within
        while (found := await self._live_count(worker_id, since)) < size:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{found} of {size} mailboxes live after {within} s")
            await asyncio.sleep(0.5)

    async def _latency(self, size: int, samples: int, rate: float, *, top: bool) -> list[Figure]:
        """Deliveries at `rate` to random mailboxes; p50/p99 against the IDLE baseline."""
        idle = await _idle_session(self._context)
        sending = Lmtp(self._context)
        accepted: dict[str, float] = {}
        baseline: list[float] = []
        done = asyncio.Event()
        watcher = asyncio.create_task(_idle_delays(self._context, idle, baseline, done))
        try:
            started = time.perf_counter()
            for index in range(samples):
                await _sleep_until(started + index / rate)
                mail = message(address(random.randrange(size)), index)
                accepted[message_key(str(mail["Message-ID"]))] = await sending.deliver(mail)
            for _ in range(int(LOGGED_WITHIN / 0.1)):
                if accepted.keys() <= self._logged.keys():
                    break
                await asyncio.sleep(0.1)
        finally:
            done.set()
            await asyncio.gather(watcher, return_exceptions=True)
            sending.close()
            await idle.logout(timeout=5)
        latencies = [
            (self._logged[key] - at) * 1000 for key, at in accepted.items() if key in self._logged
        ]
        ingest = [
            (self._fetched[key] - at) * 1000 for key, at in accepted.items() if key in self._fetched
        ]
        unlogged = len(accepted) - len(latencies)
        if not latencies or not baseline:
            raise RuntimeError(f"at {size}: {len(latencies)} logged, {len(baseline)} baselines")
        p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
        base50, base99 = percentile(baseline, 0.5), percentile(baseline, 0.99)
        in50, in99 = percentile(ingest, 0.5), percentile(ingest, 0.99)
        print(
            f"  {size}: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(latencies):.0f} ms "
            f"(IDLE p50 {base50:.0f} ms, p99 {base99:.0f} ms; published by ingest p50 "
            f"{in50:.0f} ms, p99 {in99:.0f} ms), {unlogged} not logged",
            flush=True,
        )
        suffix = "" if top else f"_{size}"
        return [
            Figure(f"live_latency_p50_ms{suffix}", p50, "ms", base50),
            Figure(f"live_latency_p99_ms{suffix}", p99, "ms", base99),
            Figure(f"live_ingest_p50_ms{suffix}", in50, "ms", base50),
            Figure(f"live_ingest_p99_ms{suffix}", in99, "ms", base99),
            Figure(f"live_unlogged{suffix}", float(unlogged), "messages"),
        ]

    async def _failover(self, worker: IngestProcess, size: int) -> float:
        since = datetime.now(UTC)
        worker.kill()
        killed = time.perf_counter()
        second = self._start_worker("scale-second", size)
        await self._until_live(size, second.worker_id, since)
        failover = time.perf_counter() - killed
        print(f"  failover: all {size} live on a second worker after {failover:.1f} s", flush=True)
        return failover


async def _sleep_until(moment: float) -> None:
    delay = moment - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def _idle_session(context: BenchContext) -> ImapSession:
    session = await open_imap(
        context.imap_host,
        context.imap_port,
        "none",
        Login(BASELINE, password=PASSWORD),
        guard=HostGuard(allow_private=True),
        timeout=30,
    )
    await session.examine("INBOX")
    return session


async def _idle_delays(
    context: BenchContext, session: ImapSession, delays: list[float], done: asyncio.Event
) -> None:
    """Until `done`: deliver to the baseline account while IDLE waits; the time from
    acceptance to the server's EXISTS."""
    sending = Lmtp(context)
    try:
        index = 0
        while not done.is_set():
            waiting = asyncio.create_task(session.idle(30))
            await asyncio.sleep(0.2)  # IDLE is established (a local round trip) by then
            accepted = await sending.deliver(message(BASELINE, index))
            if await waiting:
                delays.append((time.perf_counter() - accepted) * 1000)
            index += 1
            await _wait_or(done, 0.3)
    finally:
        sending.close()


async def _wait_or(event: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
