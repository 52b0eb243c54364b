"""Logging a batch and announcing it: outcomes per message, events in order per workspace."""

import asyncio

from pymongo.errors import DuplicateKeyError

from mailsync_associate.batch_logbook import BatchLogbook, ToLog
from mailsync_shared.contracts.records import EmailLogged, ThreadAssociated
from tests.unit.associate.memory import MemoryBatches, Published, mail

LOGGED = EmailLogged.event_type
ASSOCIATED = ThreadAssociated.event_type


def logbook() -> tuple[BatchLogbook, MemoryBatches, Published]:
    batches, published = MemoryBatches(), Published()
    return BatchLogbook(batches, published.publish_each), batches, published


async def test_a_batch_is_logged_in_order_published_and_marked() -> None:
    book, batches, published = logbook()
    batches["w1"].linked = {"<b@client.test>"}
    batches["w1"].visibility = "metadata"
    items = [ToLog(mail("a")), ToLog(mail("b")), ToLog(mail("c"))]

    outcomes = await (await book.log_batch("w1", items))

    assert outcomes == [None, None, None]
    assert [m for m, _ in batches["w1"].logged] == [i.message.message_id for i in items]
    assert published.message_ids() == ["<a@client.test>", "<b@client.test>", "<c@client.test>"]
    assert len(published.of_type(ASSOCIATED)) == 1, "only the thread whose links changed"
    assert {level for _, level in published.events} == {"metadata"}
    assert sorted(batches["w1"].announced) == [i.message.message_id for i in items]


async def test_skipped_dropped_and_failed_messages_publish_nothing_and_fail_alone() -> None:
    book, batches, published = logbook()
    memory = batches["w1"]
    memory.skipped = {"<s@client.test>"}
    memory.dropped = {"<d@client.test>"}
    broken = ValueError("unreadable")
    memory.failing = {"<f@client.test>": broken}
    items = [ToLog(mail(name)) for name in ("s", "ok", "d", "f")]

    outcomes = await (await book.log_batch("w1", items))

    assert outcomes == [None, None, None, broken]
    assert published.message_ids() == ["<ok@client.test>"]
    assert memory.announced == ["<ok@client.test>"]


async def test_a_message_another_writer_stored_first_fails_and_is_not_announced() -> None:
    book, batches, published = logbook()
    batches["w1"].taken_by_another_writer = {"<a@client.test>"}

    outcomes = await (await book.log_batch("w1", [ToLog(mail("a")), ToLog(mail("b"))]))

    assert isinstance(outcomes[0], DuplicateKeyError)
    assert outcomes[1] is None
    assert published.message_ids() == ["<b@client.test>"]
    assert batches["w1"].announced == ["<b@client.test>"]


async def test_a_refused_event_fails_its_message_which_stays_unannounced() -> None:
    book, batches, published = logbook()
    published.failing = {"<a@client.test>"}

    outcomes = await (await book.log_batch("w1", [ToLog(mail("a")), ToLog(mail("b"))]))

    assert isinstance(outcomes[0], ConnectionError)
    assert outcomes[1] is None
    assert batches["w1"].announced == ["<b@client.test>"]
    published.failing.clear()
    again = await (await book.log_batch("w1", [ToLog(mail("a"))]))
    assert again == [None]
    assert batches["w1"].announced[-1] == "<a@client.test>", "retried, it goes out"


async def test_a_workspaces_announcements_follow_each_other_and_cover_later_copies() -> None:
    book, batches, published = logbook()
    published.hold("w1")  # the first batch's events are held at the broker

    first = await book.log_batch("w1", [ToLog(mail("a")), ToLog(mail("b"))])
    second = await book.log_batch("w1", [ToLog(mail("a", mailbox_id="mb2")), ToLog(mail("c"))])
    for _ in range(5):
        await asyncio.sleep(0)
    assert [getattr(e.data, "message_id", "") for e in published.waiting] == [
        "<a@client.test>",
        "<b@client.test>",
    ], "the second batch's events wait for the first batch's to be out"
    assert batches["w1"].opened_with == [frozenset(), {"<a@client.test>", "<b@client.test>"}]

    published.release("w1")
    assert await first == [None, None]
    assert await second == [None, None]
    assert published.message_ids() == ["<a@client.test>", "<b@client.test>", "<c@client.test>"], (
        "the copy in the second batch is not announced again"
    )
    assert book.announcements.announcing("w1") == frozenset()
    third = await book.log_batch("w1", [ToLog(mail("a", mailbox_id="mb3"))])
    assert await third == [None]
    assert batches["w1"].opened_with[-1] == frozenset(), "nothing is going out any more"
    assert published.message_ids() == ["<a@client.test>", "<b@client.test>", "<c@client.test>"]


async def test_workspaces_do_not_wait_for_each_other() -> None:
    book, batches, published = logbook()
    published.hold("w1")
    held = await book.log_batch("w1", [ToLog(mail("a"))])

    other = await book.log_batch("w2", [ToLog(mail("a"))])

    assert await other == [None]
    assert not held.done()
    assert batches["w2"].opened_with == [frozenset()], "w1's announcement does not cover w2"
    published.release("w1")
    assert await held == [None]
    assert [e.workspaceid for e, _ in published.events] == ["w2", "w1"]
