"""The workspace's mailboxes as read a moment ago: reused, and read again when one is missing."""

import time
from typing import Any, cast

import pytest

from mailsync_shared.storage.mailbox_directory import MailboxDirectory
from mailsync_shared.storage.scoped import WorkspaceStore


class FakeMailboxes:
    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []
        self.reads = 0

    async def find(self, query: dict[str, Any], projection: dict[str, int]) -> list[Any]:
        self.reads += 1
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


async def test_an_old_list_is_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeStore("ws-3")
    directory = MailboxDirectory(seconds=5)
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    await directory.entries(store(fake))
    now[0] += 6

    await directory.entries(store(fake))

    assert fake.mailboxes.reads == 2
