"""A realistic corpus through capture and associate on the real broker and store.

Every message of `tests/support/corpus.py` is published as ingest would (MessageFetched)
and then checked against its written-down outcome: its thread, whether it was stored, and
the capture decision for each participant; then every thread's links, the public events,
the client-only counter, and finally rule review, explanations and manual association on
the same workspace.
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_associate.app import create_app as create_associate
from mailsync_associate.settings import Settings as AssociateSettings
from mailsync_capture.app import create_app as create_capture
from mailsync_capture.settings import Settings as CaptureSettings
from mailsync_shared.association.manual import associate_manually, suggestions
from mailsync_shared.association.scope import skipped_unmatched
from mailsync_shared.capture_policy.explain import explain
from mailsync_shared.capture_policy.review import apply, preview
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.contracts.records import ContactCaptured
from mailsync_shared.outbox import entry, relay_pending
from mailsync_shared.storage.capture_rules import CaptureRulesDocument
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import ThreadDocument
from mailsync_shared.storage.raw_messages import store_raw
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore
from tests.integration.conftest_capture import Tap, publish, running, settings_from, taps
from tests.support.corpus import JO, MAX, PETE, Corpus, build_corpus
from tests.support.infra import Infra
from tests.support.polling import eventually

# A few hundred messages through two services on FerretDB take minutes, not seconds.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

LOGGED = "mailsync.email.logged.v1"
ASSOCIATED = "mailsync.thread.associated.v1"
CONTACT_CAPTURED = "mailsync.contact.captured.v1"


@dataclass
class Processed:
    corpus: Corpus
    db: AsyncDatabase[Document]
    store: WorkspaceStore
    system: SystemCollections
    events: Tap
    broker: RabbitBroker

    async def publish(self, event: Event) -> None:
        await publish(self.broker, event)


async def _seed(db: AsyncDatabase[Document], store: WorkspaceStore, corpus: Corpus) -> None:
    await db["workspaces"].insert_one(
        {"_id": corpus.workspace_id, "name": "Acme", "domains": ["acme.test"]}
    )
    for name, documents in (
        ("mailboxes", corpus.mailboxes),
        ("companies", corpus.companies),
        ("contacts", corpus.contacts),
        ("deals", corpus.deals),
    ):
        for document in documents:
            await store.collection(name).insert_one(document)
    await store.collection("capture_rules").insert_one({"_id": corpus.workspace_id, **corpus.rules})


@pytest.fixture(scope="module")
async def processed(
    infra: Infra, service_env: dict[str, str], mongo: AsyncDatabase[Document], broker: RabbitBroker
) -> AsyncIterator[Processed]:
    workspace_id = f"ws{uuid.uuid4().hex}"
    corpus = build_corpus(workspace_id)
    store = WorkspaceStore(mongo, workspace_id)
    await _seed(mongo, store, corpus)
    # Two capture and three associate replicas, as a deployment scaled out runs them.
    async with (
        running(create_capture(settings_from(service_env, CaptureSettings))),
        running(create_capture(settings_from(service_env, CaptureSettings))),
        running(create_associate(settings_from(service_env, AssociateSettings))),
        running(create_associate(settings_from(service_env, AssociateSettings))),
        running(create_associate(settings_from(service_env, AssociateSettings))),
        taps(infra.rabbitmq_url) as tap,
    ):
        events = await tap("mailsync.events", f"#.{workspace_id}")
        for message in corpus.messages:
            await store_raw(store, message.raw)
            fetched = MessageFetched.create(
                source="/mailsync/ingest", workspace_id=workspace_id, data=message.mail
            )
            await publish(broker, fetched)

        # Decisions about skipped messages are deleted with them.
        expected_decisions = len(
            {
                (m.mail.message_id, a)
                for m in corpus.messages
                if m.mail.message_id in corpus.stored_messages
                for a in m.capture
            }
        )
        cora = corpus.mailboxes[2]["_id"]

        expected = (len(corpus.stored_messages), expected_decisions, corpus.skipped(cora))
        progress: list[tuple[int, int, int]] = []

        async def all_done() -> bool:
            logged = await store.announced_messages.count({})
            decided = await store.capture_decisions.count({})
            progress.append((logged, decided, await skipped_unmatched(store, cora)))
            return progress[-1] == expected

        try:
            await eventually(all_done, timeout=600, interval=2, what="the corpus processed")
        except AssertionError as error:
            raise AssertionError(f"{error}; expected {expected}, got {progress[-3:]}") from None
        yield Processed(corpus, mongo, store, SystemCollections(mongo), events, broker)


async def _threads_by_label(p: Processed) -> dict[str, str]:
    stored = {d["message_id"]: d for d in await p.store.messages.find({})}
    return {
        m.thread: stored[m.mail.message_id]["thread_id"]
        for m in p.corpus.messages
        if m.stored and m.mail.message_id in stored
    }


async def test_every_message_is_stored_threaded_and_decided_as_written_down(
    processed: Processed,
) -> None:
    p = processed
    stored = {d["message_id"]: d for d in await p.store.messages.find({})}
    assert set(stored) == set(p.corpus.stored_messages), "exactly the expected messages stored"
    thread_of_label = await _threads_by_label(p)
    assert len(set(thread_of_label.values())) == len(thread_of_label), "one thread per label"
    decisions: dict[tuple[str, str], Document] = {
        (d["message_id"], d["address"]): d for d in await p.store.capture_decisions.find({})
    }
    last_copy = {m.mail.message_id: m for m in p.corpus.messages}
    mismatches: list[str] = []
    for message in p.corpus.messages:
        mid = message.mail.message_id
        if message.stored:
            if stored[mid]["thread_id"] != thread_of_label[message.thread]:
                mismatches.append(f"{message.key}: not on thread {message.thread}")
            if message.mail.mailbox_id not in stored[mid]["mailbox_ids"]:
                mismatches.append(f"{message.key}: mailbox link missing")
        if mid not in stored:
            # Skipped: nothing of it is kept, capture's decisions included.
            kept = sorted(address for (decided, address) in decisions if decided == mid)
            if kept:
                mismatches.append(f"{message.key}: skipped, yet decisions about {kept} kept")
            continue
        if last_copy[mid] is not message:
            continue  # a later copy re-decided this message
        for address, (decision, rule) in message.capture.items():
            found = decisions.get((mid, address))
            got = (found["decision"], found["rule"]) if found else None
            if got != (decision, rule):
                mismatches.append(f"{message.key}: {address} decided {got}, expected {rule}")
    assert mismatches == []

    internal = [m for m in p.corpus.messages if m.key.startswith("internal-0/")]
    copy = stored[internal[0].mail.message_id]
    assert sorted(copy["mailbox_ids"]) == sorted(m.mail.mailbox_id for m in internal)
    assert len(copy["sources"]) == 2, "one message, a source per mailbox"


async def test_every_thread_is_linked_as_written_down_with_reasons(processed: Processed) -> None:
    p = processed
    thread_of_label = await _threads_by_label(p)
    mismatches: list[str] = []
    for label, expected in p.corpus.threads.items():
        document = await p.store.threads.find_one({"_id": thread_of_label[label]})
        assert document is not None
        thread = ThreadDocument.from_document(document)
        got = (set(thread.contact_ids), set(thread.company_ids), set(thread.deal_ids))
        if got != (expected.contacts, expected.companies, expected.deals):
            mismatches.append(f"{label} ({expected.why}): linked {got}")
        reasons = {(r.record_type, r.record_id) for r in thread.link_reasons}
        linked = {
            *(("contact", i) for i in thread.contact_ids),
            *(("company", i) for i in thread.company_ids),
            *(("deal", i) for i in thread.deal_ids),
        }
        if not linked <= reasons:
            mismatches.append(f"{label}: links without a stored reason")
    assert mismatches == []
    grouped = await p.store.threads.find_one({"_id": thread_of_label["notify-build"]})
    assert grouped is not None
    assert grouped["message_count"] == 3, "the provider thread id grouped the notifications"


async def test_public_events_announce_each_logged_email_and_captured_contact(
    processed: Processed,
) -> None:
    p = processed
    await p.events.drain()
    logged = [e["data"]["message_id"] for e in p.events.events(LOGGED)]
    assert sorted(set(logged)) == sorted(p.corpus.stored_messages)
    assert all(e["specversion"] == "1.0" for e in p.events.events())
    captured = {e["data"]["address"]: e["data"]["rule"] for e in p.events.events(CONTACT_CAPTURED)}
    assert captured == {
        "nina@contoso.test": "policy_sent_and_received",
        "lars@eu.fabrikam.test": "policy_sent_and_received",
        PETE: "policy_sent_and_received",
    }
    thread_of_label = await _threads_by_label(p)
    last_links: dict[str, set[str]] = {}
    for event in p.events.events(ASSOCIATED):
        data = event["data"]
        last_links[data["thread_id"]] = {*data["contact_ids"], *data["deal_ids"]}
    for label, expected in p.corpus.threads.items():
        if expected.contacts or expected.deals:
            assert last_links.get(thread_of_label[label]) == expected.contacts | expected.deals, (
                label
            )


async def test_client_only_mailbox_counts_unmatched_mail_and_stores_none_of_it(
    processed: Processed,
) -> None:
    p = processed
    cora = p.corpus.mailboxes[2]["_id"]
    assert await skipped_unmatched(p.store, cora) == p.corpus.skipped(cora) == 11
    stored = await p.store.messages.find({"mailbox_ids": cora})
    assert sorted(d["subject"] for d in stored) == ["Hello Cora"]
    unmatched = [m.mail.message_id for m in p.corpus.messages if not m.stored]
    assert await p.store.messages.count({"message_id": {"$in": unmatched}}) == 0
    assert await p.store.threads.count({"message_ids": {"$in": unmatched}}) == 0
    assert await p.store.capture_decisions.count({"message_id": {"$in": unmatched}}) == 0
    raw_ids = [m.mail.raw_id for m in p.corpus.messages if m.mail.message_id in unmatched]
    assert raw_ids, "the corpus records the raw ids of what it published"
    assert await p.store.raw_messages.count({"_id": {"$in": raw_ids}}) == 0, "no bytes kept"


async def test_unassigned_thread_gets_suggestions_and_a_manual_link_that_sticks(
    processed: Processed,
) -> None:
    p = processed
    thread_of_label = await _threads_by_label(p)
    thread_id = thread_of_label["free-0"]  # Max Mustermann from web.de
    document = await p.store.threads.find_one({"_id": thread_id})
    assert document is not None
    thread = ThreadDocument.from_document(document)
    assert (thread.contact_ids, thread.company_ids, thread.deal_ids) == ([], [], [])
    suggested = await suggestions(p.store, thread)
    assert (suggested[0].record_type, suggested[0].record_id) == (
        "contact",
        p.corpus.id("max"),
    )
    assert suggested[0].reason == f"{MAX} writes as Max Mustermann"

    linked = await associate_manually(
        p.store, thread_id, [p.corpus.id("max")], [], [], actor="user-olive", publish=p.publish
    )
    assert linked.manually_linked
    assert [r.reason for r in linked.link_reasons] == ["linked by user-olive"]
    announced = await p.events.wait_for(
        lambda e: any(
            x["data"].get("thread_id") == thread_id and x["data"].get("manual") for x in e
        ),
        "the manual ThreadAssociated",
    )
    manual = [e for e in announced if e["type"] == ASSOCIATED and e["data"]["manual"]]
    assert [e["data"]["contact_ids"] for e in manual] == [[p.corpus.id("max")]]
    stored_thread = await p.store.threads.find_one({"_id": thread_id})
    assert stored_thread is not None
    assert stored_thread.get("outbox") == [], "the published event left the outbox"

    # A later message of the thread keeps the person's links.
    last = next(m for m in reversed(p.corpus.messages) if m.thread == "free-0")
    follow_up = last.mail.model_copy(
        update={
            "message_id": f"<followup.{uuid.uuid4().hex}@web.de>",
            "in_reply_to": [last.mail.message_id],
            "references": [last.mail.message_id],
            "direction": "received",
            "from_": last.mail.to[0],
            "to": [last.mail.from_],
        }
    )
    await publish(
        p.broker,
        MessageFetched.create(source="/t", workspace_id=p.corpus.workspace_id, data=follow_up),
    )

    async def grown() -> Document | None:
        found = await p.store.threads.find_one({"_id": thread_id, "message_count": 3})
        return found

    after = await eventually(grown, what="the follow-up on the manually linked thread")
    assert (after["contact_ids"], after["manually_linked"]) == ([p.corpus.id("max")], True)


async def test_rule_preview_apply_and_explain(processed: Processed) -> None:
    p = processed
    ws = p.corpus.workspace_id
    current = CaptureRulesDocument.model_validate({"_id": ws, "workspace_id": ws, **p.corpus.rules})

    company_only = current.model_copy(update={"known_company_domains_only": True})
    narrowed = await preview(p.store, p.system, company_only)
    assert [c.address for c in narrowed.would_remove] == [PETE]
    assert narrowed.would_remove[0].rule == "unknown_company_domain"
    assert narrowed.would_add == []

    with_free_mail = current.model_copy(update={"exclude_free_mail": False})
    widened = await preview(p.store, p.system, with_free_mail)
    assert sorted(c.address for c in widened.would_add) == [JO, MAX]
    assert widened.would_remove == []
    assert widened.messages_evaluated == len(p.corpus.stored_messages) + 1

    applied = await apply(p.store, p.system, with_free_mail, actor="user-admin", publish=p.publish)
    jo = await p.store.contacts.find_one({"emails": JO})
    assert jo is not None
    assert (jo["name"], jo["source"], jo.get("outbox")) == ("Jo Doe", "capture", [])
    assert jo["_id"] in applied.created_contact_ids
    redecided = await p.store.capture_decisions.find({"address": JO, "origin": "rules_applied"})
    assert [(d["decision"], d["previous_rule"]) for d in redecided] == [
        ("captured", "free_mail_domain")
    ]
    thread_of_label = await _threads_by_label(p)
    jo_threads = {thread_of_label[f"free-{n}"] for n in (1, 3, 5, 7, 9)}
    assert jo_threads <= set(applied.relinked_thread_ids), "logged mail was re-linked"
    assert thread_of_label["free-0"] not in applied.relinked_thread_ids, "manual links stand"
    await p.events.wait_for(
        lambda e: any(x["type"] == CONTACT_CAPTURED and x["data"]["address"] == JO for x in e),
        "ContactCaptured for Jo",
    )
    saved = await p.store.collection("capture_rules").find_one({"_id": ws})
    assert saved is not None
    assert (saved["exclude_free_mail"], saved["updated_by"]) == (False, "user-admin")

    # Back to the defaults plus company domains only: Pete was edited by a person, so kept;
    # Jo and Max are retracted, not deleted.
    await p.store.contacts.update_one({"emails": PETE}, {"$set": {"edited_at": jo["created_at"]}})
    narrowed_again = await apply(
        p.store, p.system, company_only, actor="user-admin", publish=p.publish
    )
    assert sorted(c.address for c in narrowed_again.preview.would_remove) == [JO, MAX]
    assert [(c.address, c.kept_because) for c in narrowed_again.preview.kept] == [(PETE, "edited")]
    retracted = await p.store.contacts.find_one({"emails": JO})
    assert retracted is not None
    assert retracted["retracted_rule"] == "free_mail_domain"

    why_jo = await explain(p.store, p.system, JO)
    assert (why_jo.is_contact, why_jo.retracted) == (False, True)
    assert "free-mail provider" in why_jo.summary
    why_news = await explain(p.store, p.system, "news@updates.test")
    assert not why_news.is_contact
    assert why_news.current is not None
    assert why_news.current.rule == "automated_message"
    assert "sent by a machine" in why_news.summary
    why_anna = await explain(p.store, p.system, "anna@northwind.test")
    assert why_anna.is_contact
    assert why_anna.summary == "anna@northwind.test is a contact, added through the api."


async def test_events_left_in_an_outbox_by_a_crash_are_relayed(processed: Processed) -> None:
    p = processed
    contact_id = p.corpus.id("anna")
    lost = ContactCaptured.create(
        source="/mailsync/capture",
        workspace_id=p.corpus.workspace_id,
        subject=contact_id,
        data={
            "contact_id": contact_id,
            "address": "anna@northwind.test",
            "name": "Anna Berg",
            "rule": "policy_sent",
            "mailbox_id": "mb",
            "message_id": "<lost@test>",
        },
    )
    # What a kill between the write and the publish leaves behind.
    stale = entry(lost, at=lost.time - timedelta(minutes=5))
    await p.store.contacts.update_one({"_id": contact_id}, {"$push": {"outbox": stale}})

    relayed = await relay_pending(
        p.system, lambda ws: WorkspaceStore(p.db, ws), "contacts", p.publish
    )
    assert relayed >= 1
    await p.events.wait_for(lambda e: any(x["id"] == lost.id for x in e), "the relayed event")
    contact = await p.store.contacts.find_one({"_id": contact_id})
    assert contact is not None
    assert contact["outbox"] == []
