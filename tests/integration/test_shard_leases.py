"""Shard leases on the real store: replicas share the shards, a silent one's shards move on,
a new one gets its share, and two never hold one shard."""

import uuid
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.shard_leases import ShardLeases
from mailsync_shared.storage.client import Document

SHARDS = 16
TERM = 15.0


class Clock:
    """The replicas' clock, moved by the test; `service` keeps each test's leases apart."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)
        self.service = f"lease_test_{uuid.uuid4().hex[:8]}"

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def replica(db: AsyncDatabase[Document], name: str, clock: Clock) -> ShardLeases:
    return ShardLeases(db, clock.service, name, SHARDS, term=TERM, clock=clock)


def assert_disjoint(*replicas: ShardLeases) -> None:
    held = [shard for leases in replicas for shard in leases.held]
    assert len(held) == len(set(held)), "a shard held twice"


async def test_replicas_share_the_shards_and_a_silent_ones_move_on(
    mongo: AsyncDatabase[Document],
) -> None:
    clock = Clock()
    first, second = replica(mongo, "r1", clock), replica(mongo, "r2", clock)

    gained = (await first.step()).gained
    assert sorted(gained) == list(range(SHARDS)), "alone, a replica takes every shard"

    await second.step()  # counts two replicas: nothing is free yet
    given_up = (await first.step()).lost
    assert len(given_up) == SHARDS // 2
    for shard in given_up:
        await first.release(shard)
    assert sorted((await second.step()).gained) == sorted(given_up)
    assert len(first.held) == len(second.held) == SHARDS // 2
    assert_disjoint(first, second)

    # The second replica goes silent (SIGKILL): once its term is over, the first takes all.
    clock.advance(TERM / 3)
    await first.step()
    clock.advance(TERM)
    taken = (await first.step()).gained
    assert sorted(taken) == sorted(second.held)
    assert len(first.held) == SHARDS

    # Back from a long pause, the second finds its leases taken and stops consuming them.
    lost = (await second.step()).lost
    assert sorted(lost) == sorted(taken)
    assert_disjoint(first, second)


async def test_a_replica_leaving_hands_its_shards_over_at_once(
    mongo: AsyncDatabase[Document],
) -> None:
    clock = Clock()
    replicas = [replica(mongo, f"r{n}", clock) for n in range(3)]
    for _ in range(3):  # enough passes for the shares to settle
        for leases in replicas:
            changes = await leases.step()
            for shard in changes.lost:
                await leases.release(shard)
    share = -(-SHARDS // len(replicas))  # ceil: 6 of 16 for 3 replicas
    assert sum(len(leases.held) for leases in replicas) == SHARDS
    assert all(0 < len(leases.held) <= share for leases in replicas)
    assert_disjoint(*replicas)

    await replicas[0].release_all()
    remaining = replicas[1:]
    for leases in remaining:
        await leases.step()
    assert sum(len(leases.held) for leases in remaining) == SHARDS
    assert_disjoint(*remaining)
