"""The workspace's mailboxes as read a moment ago: reused, read again in the background when
old, and at once when one is missing."""

import asyncio
import time
from typing import Any, cast

import pytest

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


class FakeStore:
    def __init__(self, workspace_id: str) -> None:
        self.workspace_id = workspace_id
        self.mailboxes = FakeMailboxes()


def store(fake: FakeStore) -> WorkspaceStore:
    return cast(WorkspaceStore, fake)


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


async def test_an_old_list_is_served_while_it_is_read_again_in_the_background(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeStore("ws-3")
    fake.mailboxes.documents = [{"_id": "m1", "address": "ann@acme.test"}]
    directory = MailboxDirectory(seconds=5)
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    await directory.entries(store(fake))
    fake.mailboxes.documents.append({"_id": "m2", "address": "bob@acme.test"})
    now[0] += 6

    served = await directory.entries(store(fake))
    again = await directory.entries(store(fake))  # one background read at a time
    await settle()

    assert set(served) == set(again) == {"m1"}
    assert set(await directory.entries(store(fake))) == {"m1", "m2"}
    assert fake.mailboxes.reads == 2


async def test_a_failed_background_read_keeps_the_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeStore("ws-4")
    fake.mailboxes.documents = [{"_id": "m1", "address": "ann@acme.test"}]
    directory = MailboxDirectory(seconds=5)
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    await directory.entries(store(fake))
    now[0] += 6
    fake.mailboxes.failing = True

    await directory.entries(store(fake))
    await settle()
    fake.mailboxes.failing = False
    kept = await directory.entries(store(fake))

    assert set(kept) == {"m1"}
    assert fake.mailboxes.reads == 2  # the failed one; the copy is still due, read in turn
    await settle()
    assert fake.mailboxes.reads == 3


async def settle() -> None:
    """Let the directory's background read run to its end."""
    for _ in range(5):
        await asyncio.sleep(0)
