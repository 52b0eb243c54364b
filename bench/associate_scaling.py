"""Associate scaling: backfill with one and with two associate replicas, one workspace and
several at once.

Associate's work is partitioned by workspace (docs/capture-and-association.md, "Replicas"):
one workspace is handled by one replica at a time, several workspaces spread over the
replicas. Four cases on one stack (a RabbitMQ vhost and a database of their own; ingest,
capture, api and send started once, associate started anew for each case):

- `w1_r1` / `w1_r2`: one workspace's mailbox backfilled with one, then two associate replicas;
- `w4_r1` / `w4_r2`: four workspaces' mailboxes backfilled at once (`BENCH_ASSOCIATE_WORKSPACES`).

Each case creates its workspaces and connects in them the first one or four of the same fresh
Dovecot accounts, each holding the same `BENCH_ASSOCIATE_MESSAGES` messages (delivered once
over LMTP to all accounts); it runs until every message of its workspaces has its
`email.logged` event, and the store is then checked to hold every one.

On a machine with a core or two, every part shares the same cores, so the wall-clock rate
can hardly grow with replicas. What shows the design's scaling is CPU: from `/proc`, the
CPU each associate replica spent during the case. `associate_scaling_msgs_per_cpu_s_<case>`
is messages per associate CPU-second over all replicas (what partitioning costs: the same
with two replicas as with one), and `associate_scaling_cpu_bound_msgs_per_s_<case>` is
messages per CPU-second of the busiest replica: the rate associate sustains when each replica
has a core of its own. With one workspace the second replica idles (its ratio stays near 1);
with several, the ratio approaches the number of replicas as far as the workspaces' shards
happen to fall evenly on the replicas' leases: `associate_scaling_busiest_replica_share_<case>`
is the busiest replica's part of the associate CPU, against the even share (1 / replicas).
Baselines are the one-replica figure of the same workspaces in the same run; `w4_r1`'s is
`w1_r1`'s.
"""

import asyncio
import math
import os
import smtplib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench.context import BenchContext
from bench.cpu import CpuMeter
from bench.mailbox import (
    IsolatedStack,
    create_workspace_with_clients,
    free_port,
    isolated_stack,
    mailbox_connection,
    message,
)
from bench.report import Figure
from bench.watch import first_seen
from mailsync_devmail.accounts import add_accounts
from mailsync_devtools.stack import (
    RunningService,
    Service,
    start_service,
    stop_services,
    wait_ready,
)
from mailsync_shared.contracts.records import EmailLogged
from mailsync_shared.storage.client import Document
from mailsync_shared.topology import EVENTS_EXCHANGE, SHARD_COUNT

TEAM = "Sales team <sales@acme.test>"  # every account receives the mail as a list member


@dataclass(frozen=True)
class Case:
    workspaces: int
    replicas: int

    @property
    def name(self) -> str:
        return f"w{self.workspaces}_r{self.replicas}"


@dataclass(frozen=True)
class Outcome:
    """One case: messages logged, wall-clock seconds, and CPU-seconds per associate replica."""

    messages: int
    seconds: float
    replica_cpu: list[float]

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def per_cpu_second(self) -> float:
        return self.messages / max(sum(self.replica_cpu), 0.01)

    @property
    def cpu_bound_rate(self) -> float:
        return self.messages / max(*self.replica_cpu, 0.01)

    @property
    def busiest_share(self) -> float:
        """The busiest replica's part of all associate CPU: 1 / replicas when spread evenly."""
        return max(self.replica_cpu) / max(sum(self.replica_cpu), 0.01)


async def run(context: BenchContext) -> list[Figure]:
    count = int(os.environ.get("BENCH_ASSOCIATE_MESSAGES", "600"))
    many = int(os.environ.get("BENCH_ASSOCIATE_WORKSPACES", "4"))
    cases = [Case(1, 1), Case(1, 2), Case(many, 1), Case(many, 2)]
    # Each case connects its mailboxes in workspaces of its own, so it can use the same accounts.
    accounts = [_account() for _ in range(many)]
    print(
        f"associate scaling: {many} mailboxes of {count} messages each, "
        f"cases {', '.join(case.name for case in cases)}",
        flush=True,
    )
    await asyncio.to_thread(_fill, context, accounts, count)
    outcomes: dict[Case, Outcome] = {}
    with isolated_stack(context, "associate-scaling", without=("associate",)) as stack:
        store: AsyncMongoClient[Document] = AsyncMongoClient(context.mongodb_url)
        try:
            for case in cases:
                outcome = await _measure(
                    context, stack, store[stack.database], case, accounts[: case.workspaces], count
                )
                split = ", ".join(f"{seconds:.1f}" for seconds in outcome.replica_cpu)
                print(
                    f"  {case.name}: {outcome.rate:.0f} msg/s, associate CPU-seconds per replica "
                    f"{split}, {outcome.per_cpu_second:.0f} msg per associate CPU-second",
                    flush=True,
                )
                outcomes[case] = outcome
        finally:
            await store.close()
    return case_figures(cases, outcomes)


def case_figures(cases: list[Case], outcomes: dict[Case, Outcome]) -> list[Figure]:
    """The rates of each case against one replica on the same workspaces (`w1_r1` first), and
    how evenly several replicas shared the work."""
    one = cases[0]
    figures: list[Figure] = []
    for case in cases:
        outcome = outcomes[case]
        base = outcomes[one if case.replicas == 1 else Case(case.workspaces, 1)]
        figures += [
            Figure(f"associate_scaling_msgs_per_s_{case.name}", outcome.rate, "msg/s", base.rate),
            Figure(
                f"associate_scaling_msgs_per_cpu_s_{case.name}",
                outcome.per_cpu_second,
                "msg/CPU-s",
                base.per_cpu_second,
            ),
            Figure(
                f"associate_scaling_cpu_bound_msgs_per_s_{case.name}",
                outcome.cpu_bound_rate,
                "msg/s",
                base.cpu_bound_rate,
            ),
        ]
        if case.replicas > 1:
            figures.append(
                Figure(
                    f"associate_scaling_busiest_replica_share_{case.name}",
                    outcome.busiest_share,
                    "share",
                    1 / case.replicas,
                )
            )
    return figures


def _account() -> str:
    return f"scaling-{uuid.uuid4().hex[:10]}@acme.test"


def _fill(context: BenchContext, addresses: list[str], count: int) -> None:
    """The same `count` messages into every account's INBOX, each delivered once to all."""
    add_accounts(context.users_file, {address: _password(address) for address in addresses})
    now = datetime.now(UTC)
    with smtplib.LMTP(context.imap_host, context.lmtp_port) as lmtp:
        for index in range(count):
            mail = message(TEAM, index, now)
            lmtp.mail(str(mail["From"].addresses[0].addr_spec))
            for address in addresses:
                lmtp.rcpt(address)
            # LMTP answers the data once per recipient; smtplib reads only the first answer.
            answers = [lmtp.data(mail.as_bytes()), *(lmtp.getreply() for _ in addresses[1:])]
            refused = [answer for answer in answers if answer[0] != 250]
            if refused:
                raise RuntimeError(f"LMTP refused a delivery: {refused}")


def _password(address: str) -> str:
    return f"pw-{address.split('@')[0]}"  # throwaway accounts of the local Dovecot


@contextmanager
def _associate_replicas(
    context: BenchContext, stack: IsolatedStack, case: Case
) -> Iterator[list[RunningService]]:
    """`case.replicas` associate processes on the stack, each logging to a folder of its own."""
    log_dir = context.log_dir / "associate-scaling"
    replicas = [
        start_service(
            Service("associate", 0), stack.env, log_dir / f"{case.name}-{index}", free_port()
        )
        for index in range(case.replicas)
    ]
    try:
        wait_ready(replicas)
        yield replicas
    finally:
        stop_services(replicas)


async def _until_shards_spread(
    db: AsyncDatabase[Document], replicas: int, within: float = 60
) -> None:
    """Every shard leased, each live replica holding its fair share: the split the case measures."""
    share = math.ceil(SHARD_COUNT / replicas)
    deadline = time.perf_counter() + within
    while True:
        held: dict[str, int] = {}
        async for lease in db["associate_shard_leases"].find({}):
            held[str(lease["owner"])] = held.get(str(lease["owner"]), 0) + 1
        if (
            len(held) == replicas
            and sum(held.values()) == SHARD_COUNT
            and max(held.values()) <= share
        ):
            return
        if time.perf_counter() > deadline:
            raise RuntimeError(f"associate shards not spread over {replicas} replicas: {held}")
        await asyncio.sleep(0.5)


async def _measure(
    context: BenchContext,
    stack: IsolatedStack,
    db: AsyncDatabase[Document],
    case: Case,
    owners: list[str],
    count: int,
) -> Outcome:
    expected = count * case.workspaces
    limit = float(os.environ.get("BENCH_E2E_TIMEOUT", "900"))
    with _associate_replicas(context, stack, case) as replicas:
        await _until_shards_spread(db, case.replicas)
        parts = {f"associate_{index}": item.process.pid for index, item in enumerate(replicas)}
        meter = CpuMeter(parts, store_url=context.mongodb_url)
        async with (
            httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api,
            first_seen(
                stack.rabbitmq_url,
                EVENTS_EXCHANGE,
                EmailLogged,
                lambda event: f"{event.workspaceid} {event.data.message_id}",
            ) as logged,
        ):
            workspaces = [
                await create_workspace_with_clients(api, f"Scaling {case.name} {index}")
                for index in range(case.workspaces)
            ]
            meter.start()
            started = time.perf_counter()
            for workspace, owner in zip(workspaces, owners, strict=True):
                response = await api.post(
                    "/v1/mailboxes",
                    headers=workspace.headers,
                    json=mailbox_connection(context, owner, _password(owner)),
                )
                response.raise_for_status()
            while len(logged) < expected:
                await asyncio.sleep(0.05)
                if time.perf_counter() - started > limit:
                    raise RuntimeError(
                        f"{case.name}: {len(logged)}/{expected} logged after {limit:.0f} s"
                    )
            used = meter.stop()
            seconds = max(logged.values()) - started
        for workspace in workspaces:
            stored = await db["messages"].count_documents({"workspace_id": workspace.id})
            if stored != count:
                raise RuntimeError(f"{case.name}: {stored} of {count} messages in {workspace.id}")
    replica_cpu = [used.by_part.get(part, 0.0) for part in parts]
    return Outcome(expected, seconds, replica_cpu)
