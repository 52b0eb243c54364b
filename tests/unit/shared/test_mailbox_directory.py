"""The workspace's mailboxes as read a moment ago: reused, checked against the api's count of
changes in the background, scanned again when it moved, and at once when one is missing."""

import asyncio
import time
from typing import Any, cast

import pytest

from mailsync_shared.storage.mailbox_changes import COLLECTION, count_change
from mailsync_shared.storage.mailbox_directory import MailboxDirectory
from mailsync_shared.storage.scoped import WorkspaceStore


class FakeMailboxes:
    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []
        self.reads = 0
        self.failing = False

    async def find(self, query: dict[str, Any], projection: dict[str, int]) -> list[Any]:
        self.reads += 1
        if self.failing:
            raise ConnectionError("store unreachable")
        return list(self.documents)


class FakeChanges:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    async def find_one(self, query: dict[str, Any]) -> dict[str, Any] | None:
        return {"_id": query["_id"], **self.counts} if self.counts else None

    async def update_one(self, query: dict[str, Any], update: dict[str, Any], **_: Any) -> None:
        for kind, step in update["$inc"].items():
            self.counts[kind] = self.counts.get(kind, 0) + step


class FakeStore:
    def __init__(self, workspace_id: str) -> None:
        self.workspace_id = workspace_id
        self.mailboxes = FakeMailboxes()
        self.changes = FakeChanges()

    def collection(self, name: str) -> FakeChanges:
        assert name == COLLECTION
        return self.changes


def store(fake: FakeStore) -> WorkspaceStore:
    return cast(WorkspaceStore, fake)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    return now


async def settle() -> None:
    """Let the directory's background check run to its end."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_list_is_reused_within_the_interval() -> None:
    fake = FakeStore("ws-1")
    fake.mailboxes.documents = [{"_id": "m1", "address": "Ann@Acme.test"}]
    directory = MailboxDirectory(seconds=60)

    first = await directory.entries(store(fake))
    second = await directory.entries(store(fake), including=["m1"])

    assert first["m1"].address == "ann@acme.test"
    assert first["m1"].scope == "all"
    assert second == first
    assert fake.mailboxes.reads == 1


async def test_a_mailbox_missing_from_the_list_makes_it_read_again() -> None:
    fake = FakeStore("ws-2")
    fake.mailboxes.documents = [{"_id": "m1", "address": "ann@acme.test"}]
    directory = MailboxDirectory(seconds=60)
    await directory.entries(store(fake))
    fake.mailboxes.documents.append(
        {"_id": "m2", "address": "bob@acme.test", "sync": {"scope": "client_only"}}
    )

    entries = await directory.entries(store(fake), including=["m2"])

    assert entries["m2"].scope == "client_only"
    assert fake.mailboxes.reads == 2


async def test_an_unchanged_directory_is_not_scanned_again(clock: list[float]) -> None:
    fake = FakeStore("ws-3")
    fake.mailboxes.documents = [{"_id": "m1", "address": "ann@acme.test"}]
    directory = MailboxDirectory(seconds=5, max_age=300)
    await directory.entries(store(fake))
    await count_change(store(fake), "controls")  # a resync: not the directory's business

    for _ in range(10):
        clock[0] += 6
        await directory.entries(store(fake))
        await settle()

    assert fake.mailboxes.reads == 1


async def test_a_counted_change_is_scanned_in_the_background(clock: list[float]) -> None:
    fake = FakeStore("ws-4")
    fake.mailboxes.documents = [{"_id": "m1", "address": "ann@acme.test"}]
    directory = MailboxDirectory(seconds=5)
    await directory.entries(store(fake))
    fake.mailboxes.documents[0]["sync"] = {"scope": "client_only"}
    await count_change(store(fake), "directory")
    clock[0] += 6

    served = await directory.entries(store(fake))
    await settle()

    assert served["m1"].scope == "all"  # the copy, at once
    assert (await directory.entries(store(fake)))["m1"].scope == "client_only"
    assert fake.mailboxes.reads == 2


async def test_an_uncounted_change_shows_within_the_longest_age(clock: list[float]) -> None:
    fake = FakeStore("ws-5")
    fake.mailboxes.documents = [{"_id": "m1", "address": "ann@acme.test"}]
    directory = MailboxDirectory(seconds=5, max_age=60)
    await directory.entries(store(fake))
    fake.mailboxes.documents[0]["sync"] = {"scope": "client_only"}

    clock[0] += 30
    await directory.entries(store(fake))
    await settle()
    before = (await directory.entries(store(fake)))["m1"].scope
    clock[0] += 31
    await directory.entries(store(fake))
    await settle()

    assert before == "all"
    assert (await directory.entries(store(fake)))["m1"].scope == "client_only"


async def test_a_failed_background_scan_keeps_the_copy(clock: list[float]) -> None:
    fake = FakeStore("ws-6")
    fake.mailboxes.documents = [{"_id": "m1", "address": "ann@acme.test"}]
    directory = MailboxDirectory(seconds=5)
    await directory.entries(store(fake))
    await count_change(store(fake), "directory")
    clock[0] += 6
    fake.mailboxes.failing = True

    await directory.entries(store(fake))
    await settle()
    fake.mailboxes.failing = False
    kept = await directory.entries(store(fake))
    await settle()

    assert set(kept) == {"m1"}
    assert fake.mailboxes.reads == 3  # the first, the failed one, and the next try
