"""Logging one message (`logbook.log_message`) over an in-memory repository: what is stored,
threaded, linked and due to be announced."""

from collections.abc import Sequence

from mailsync_associate.logbook import Dropped, Logged, Skipped, log_message
from tests.unit.associate.memory import MemoryRepository, mail


async def logged(
    repository: MemoryRepository, *names: str, mailbox_id: str = "mb1", parents: Sequence[str] = ()
) -> list[Logged]:
    results = []
    for name in names:
        result = await log_message(repository, mail(name, mailbox_id=mailbox_id, parents=parents))
        assert isinstance(result, Logged)
        results.append(result)
    return results


async def test_a_new_message_opens_a_thread_linked_to_its_contact() -> None:
    repository = MemoryRepository()
    ann = repository.contact("Ann Client", "ann@client.test")
    repository.raw_bytes["raw-a"] = b"Subject: Hello\r\n\r\nHello owner\r\n"

    (result,) = await logged(repository, "a")

    assert (result.publish, result.links_changed, result.rule) == (True, True, "new")
    assert result.thread.contact_ids == [ann.id]
    assert result.thread.message_count == 1
    assert sorted(result.thread.participants) == ["ann@client.test", "owner@acme.test"]
    stored = repository.messages["<a@client.test>"]
    assert (stored.thread_id, stored.body_text.strip()) == (result.thread.id, "Hello owner")


async def test_a_reply_before_its_parent_and_the_parent_share_one_thread() -> None:
    repository = MemoryRepository()

    reply, parent = [
        await log_message(repository, message) for message in (mail("r", parents=["p"]), mail("p"))
    ]

    assert isinstance(reply, Logged)
    assert isinstance(parent, Logged)
    assert parent.thread.id == reply.thread.id
    assert parent.rule == "headers"
    assert len(repository.threads) == 1
    assert parent.thread.message_count == 2


async def test_a_message_naming_two_threads_merges_them_into_one() -> None:
    repository = MemoryRepository()
    await log_message(repository, mail("x", parents=["a-missing"]))
    await log_message(repository, mail("y", parents=["b-missing"]))
    assert len(repository.threads) == 2

    joined = await log_message(repository, mail("z", parents=["a-missing", "b-missing"]))

    assert isinstance(joined, Logged)
    assert list(repository.threads) == [joined.thread.id]
    assert {m.thread_id for m in repository.messages.values()} == {joined.thread.id}
    assert repository.threads[joined.thread.id].message_count == 3


async def test_a_copy_of_an_announced_message_only_adds_its_mailbox() -> None:
    repository = MemoryRepository()
    (first,) = await logged(repository, "a")
    repository.announced.add("<a@client.test>")

    (copy,) = await logged(repository, "a", mailbox_id="mb2")

    assert (copy.publish, copy.links_changed) == (False, False)
    assert copy.stored.id == first.stored.id
    assert repository.messages["<a@client.test>"].mailbox_ids == ["mb1", "mb2"]
    assert repository.threads[first.thread.id].mailbox_ids == ["mb1", "mb2"]
    assert repository.threads[first.thread.id].message_count == 1


async def test_a_message_stored_but_never_announced_is_due_again_with_its_links() -> None:
    repository = MemoryRepository()
    repository.contact("Ann Client", "ann@client.test")
    (first,) = await logged(repository, "a")

    (again,) = await logged(repository, "a")

    assert again.publish, "its events may never have gone out"
    assert again.links_changed, "its links are announced again"
    assert again.stored.id == first.stored.id
    assert len(repository.messages) == 1
    assert repository.threads[first.thread.id].message_count == 1


async def test_a_client_only_mailboxs_message_matching_no_record_is_counted_not_stored() -> None:
    repository = MemoryRepository()
    repository.scopes["mb1"] = "client_only"
    repository.raw_bytes["raw-s"] = b"x"

    result = await log_message(repository, mail("s", sender="stranger@else.test"))

    assert isinstance(result, Skipped)
    assert repository.skipped == ["<s@client.test>"]
    assert repository.raw_bytes == {}, "what was kept of it is forgotten"
    assert repository.messages == {}
    assert repository.threads == {}


async def test_a_client_only_mailboxs_message_from_a_contact_is_logged() -> None:
    repository = MemoryRepository()
    repository.scopes["mb1"] = "client_only"
    repository.contact("Ann Client", "ann@client.test")

    (result,) = await logged(repository, "a")

    assert result.publish
    assert repository.skipped == []


async def test_a_message_of_a_stopped_mailbox_is_dropped_and_forgotten() -> None:
    repository = MemoryRepository()
    repository.stopped.add("mb1")

    result = await log_message(repository, mail("a"))

    assert isinstance(result, Dropped)
    assert repository.forgotten == ["<a@client.test>"]
    assert repository.messages == {}


async def test_a_thread_linked_by_hand_keeps_its_links() -> None:
    repository = MemoryRepository()
    (first,) = await logged(repository, "a")
    thread_id = first.thread.id
    repository.threads[thread_id] = repository.threads[thread_id].model_copy(
        update={"manually_linked": True}
    )
    repository.contact("Ann Client", "ann@client.test")

    (reply,) = await logged(repository, "b", parents=["a"])

    assert reply.thread.id == thread_id
    assert reply.thread.contact_ids == []
    assert not reply.links_changed
