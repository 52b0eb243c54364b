"""Which replica of a sharded service handles which shard of its work: leases in the store.

Capture's and associate's work arrives in shard queues, one workspace always in the same
shard (`mailsync_shared.topology.Sharded`). A replica consumes a shard only while it holds the
shard's lease, so one workspace is handled by one replica at a time, in delivery order, as with
a single replica. Each replica, every `every` seconds:

1. records that it is alive (`<service>_replicas`, until now + `term`);
2. counts the live replicas and takes its fair share, ceil(shards / live);
3. renews the leases it holds (`<service>_shard_leases`, `{_id: shard, owner, until}`) in one
   write; one it finds taken from it (its renewal came too late) is lost at once;
4. gives up leases above its share (scaling out: another replica takes them), and
5. takes free or expired leases up to its share: an insert for a shard never leased (a
   unique `_id` decides a race), else a conditional update naming the owner and term it read.

A replica killed with SIGKILL stops renewing; its connection's unacknowledged deliveries go
back to their queues at once and its leases expire within `term`, so its shards are taken
over within `term + every` seconds (20 s by default). The shard queues have a single active
consumer, so even a replica that holds on to a shard a moment too long never consumes beside
the next owner: the next owner's consumer waits until the previous one is gone.
"""

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailsync_shared.clock import utcnow
from mailsync_shared.storage.client import Document


@dataclass(frozen=True)
class Changes:
    gained: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)


class ShardLeases:
    """One replica's leases on the shards of a service's work."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        service: str,
        replica_id: str,
        shard_count: int,
        *,
        term: float = 15.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._replicas = db[f"{service}_replicas"]
        self._leases = db[f"{service}_shard_leases"]
        self.replica_id = replica_id
        self._shard_count = shard_count
        self._term = timedelta(seconds=term)
        self._clock = clock
        self.held: set[int] = set()

    async def step(self) -> Changes:
        """One pass: heartbeat, renew, give up extras and take free shards up to the share.

        The caller stops consuming the shards in `lost` (already given up or taken) and starts
        consuming those in `gained`."""
        now = self._clock()
        until = now + self._term
        await self._replicas.update_one(
            {"_id": self.replica_id}, {"$set": {"until": until}}, upsert=True
        )
        live = await self._replicas.count_documents({"until": {"$gt": now}})
        share = math.ceil(self._shard_count / max(live, 1))
        changes = Changes()
        for shard in await self._renew(until):
            self.held.discard(shard)
            changes.lost.append(shard)
        for shard in sorted(self.held, reverse=True)[: max(len(self.held) - share, 0)]:
            changes.lost.append(shard)
            self.held.discard(shard)
        if len(self.held) < share:
            changes.gained.extend(await self._take(share - len(self.held), now, until))
        return changes

    async def _renew(self, until: datetime) -> list[int]:
        """Renew every lease held, in one write; the shards found taken from this replica."""
        held = sorted(self.held)
        if not held:
            return []
        mine = {"_id": {"$in": held}, "owner": self.replica_id}
        renewed = await self._leases.update_many(mine, {"$set": {"until": until}})
        if renewed.matched_count == len(held):
            return []
        # Those still ours were just renewed, so no other replica can have taken them since.
        still = {lease["_id"] async for lease in self._leases.find(mine, projection={"_id": 1})}
        return [shard for shard in held if shard not in still]

    async def release(self, shard: int) -> None:
        """Give up a lease at once (after its consumer stopped)."""
        await self._leases.delete_one({"_id": shard, "owner": self.replica_id})

    async def release_all(self) -> None:
        """Leave: give up every lease and the heartbeat (on shutdown)."""
        await self._leases.delete_many({"owner": self.replica_id})
        await self._replicas.delete_one({"_id": self.replica_id})
        self.held.clear()

    async def _take(self, wanted: int, now: datetime, until: datetime) -> list[int]:
        leases = {lease["_id"]: lease async for lease in self._leases.find({})}
        free = [
            shard
            for shard in range(self._shard_count)
            if shard not in self.held and (shard not in leases or leases[shard]["until"] <= now)
        ]
        random.shuffle(free)  # replicas starting together try different shards first
        taken: list[int] = []
        for shard in free:
            if len(taken) == wanted:
                break
            if await self._claim(shard, leases.get(shard), until):
                taken.append(shard)
                self.held.add(shard)
        return taken

    async def _claim(self, shard: int, lease: Document | None, until: datetime) -> bool:
        mine = {"owner": self.replica_id, "until": until}
        if lease is None:
            try:
                await self._leases.insert_one({"_id": shard, **mine})
            except DuplicateKeyError:
                return False
            return True
        claimed = await self._leases.update_one(
            {"_id": shard, "owner": lease["owner"], "until": lease["until"]}, {"$set": mine}
        )
        return claimed.modified_count == 1
