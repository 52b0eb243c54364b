"""Traces carried in the RabbitMQ headers (real broker, real mail servers, in-memory exporter):
one message from ingest's IMAP batch through capture and associate to the public
`email.logged` event, and one send request from the api's HTTP request through send to the
SMTP server's 250 and the copy appended to Sent."""

import asyncio
from collections.abc import Iterator

import pytest
from faststream.rabbit import RabbitBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_associate.app import create_app as create_associate_app
from mailsync_associate.settings import Settings as AssociateSettings
from mailsync_capture.app import create_app as create_capture_app
from mailsync_capture.settings import Settings as CaptureSettings
from mailsync_ingest.app import create_app as create_ingest_app
from mailsync_send.app import create_app as create_send_app
from mailsync_send.settings import Settings as SendSettings
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument, ServerAccount
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.tracing import broker_tracing
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    API_DATABASE,
    api_db_fixture,
    api_settings,
    create_workspace,
    running_api,
)
from tests.integration.conftest_capture import running, settings_from
from tests.integration.conftest_ingest import mailbox_document, worker_settings
from tests.support.captured_mail import stored_mail
from tests.support.infra import Infra
from tests.support.mail import build_message, create_account, deliver
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """The process's tracer provider, keeping finished spans in memory for this module."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    exporter.shutdown()  # later tests' spans are dropped, not kept


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        names.append(by_id[parent.span_id].name)
        parent = by_id[parent.span_id].parent
    return names


async def test_one_trace_spans_ingest_capture_associate_and_the_event(
    spans: InMemorySpanExporter,
    infra: Infra,
    service_env: dict[str, str],
    mongo: AsyncDatabase[Document],
    workspace_id: str,
    store: WorkspaceStore,
) -> None:
    message = await stored_mail(
        store,
        build_message(sender="ann@client.test", to=["owner@acme.test"], subject="Hi", body="."),
    )
    ingest = RabbitBroker(infra.rabbitmq_url, middlewares=[broker_tracing()])
    publisher = EventPublisher(ingest, [MessageFetched])
    capture = create_capture_app(settings_from(service_env, CaptureSettings))
    associate = create_associate_app(settings_from(service_env, AssociateSettings))
    async with running(capture), running(associate):
        await ingest.connect()
        try:
            with trace.get_tracer("tests").start_as_current_span("ingest fetch") as root:
                await publisher.publish(
                    MessageFetched.create(source="/t", workspace_id=workspace_id, data=message)
                )
        finally:
            await ingest.stop()

        trace_id = root.get_span_context().trace_id

        async def logged() -> ReadableSpan | None:
            # Mail other tests left in the shared queues is logged too, in traces of its own.
            return next(
                (
                    span
                    for span in spans.get_finished_spans()
                    if "email.logged" in span.name
                    and span.name.endswith("publish")
                    and span.context.trace_id == trace_id
                ),
                None,
            )

        event = await eventually(logged, timeout=60, what="this message's email.logged span")

    in_trace = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    by_id = {span.context.span_id: span for span in in_trace}
    chain = ancestors(event, by_id)
    assert chain[-1] == "ingest fetch", chain
    processed = [name for name in chain if name.endswith("process")]
    assert any("message-captured" in name or "message.captured" in name for name in processed), (
        chain
    )
    assert any("message-fetched" in name or "message.fetched" in name for name in processed), chain


def in_trace(exporter: InMemorySpanExporter, trace_id: int) -> dict[int, ReadableSpan]:
    return {
        span.context.span_id: span
        for span in exporter.get_finished_spans()
        if span.context.trace_id == trace_id
    }


async def finished(exporter: InMemorySpanExporter, name: str, what: str) -> list[ReadableSpan]:
    async def probe() -> list[ReadableSpan] | None:
        found = [span for span in exporter.get_finished_spans() if span.name == name]
        return found or None

    return await eventually(probe, timeout=60, what=what)


async def test_a_message_fetched_over_imap_is_one_trace_to_its_email_logged_event(
    spans: InMemorySpanExporter,
    infra: Infra,
    service_env: dict[str, str],
    secret_key: str,
    mongo: AsyncDatabase[Document],
    workspace_id: str,
    store: WorkspaceStore,
) -> None:
    """The real ingest app reads the mail from Dovecot: its batch span is the root of the
    trace that capture's and associate's deliveries and the public event join."""
    owner = await asyncio.to_thread(create_account, infra, "acme.test", "traced")
    message = build_message(
        sender="ann@client.test", to=[owner.address], subject="Traced", body="Hello."
    )
    await asyncio.to_thread(deliver, infra, message, [owner.address])
    mailbox = mailbox_document(infra, secret_key, workspace_id, owner, backfill_days=30)
    await store.mailboxes.insert_one(mailbox.to_document())
    ingest = create_ingest_app(worker_settings(infra, secret_key, workspace_id))
    capture = create_capture_app(settings_from(service_env, CaptureSettings))
    associate = create_associate_app(settings_from(service_env, AssociateSettings))
    async with running(capture), running(associate), running(ingest):
        batches = await finished(spans, "ingest batch", "ingest's batch span")

        async def logged() -> ReadableSpan | None:
            for span in spans.get_finished_spans():
                if "email.logged" not in span.name or not span.name.endswith("publish"):
                    continue
                by_id = in_trace(spans, span.context.trace_id)
                if any(batch.context.span_id in by_id for batch in batches):
                    return span
            return None

        event = await eventually(logged, timeout=60, what="email.logged in ingest's trace")

    by_id = in_trace(spans, event.context.trace_id)
    chain = ancestors(event, by_id)
    assert chain[-1] == "ingest batch", chain
    root = next(span for span in by_id.values() if span.name == "ingest batch")
    assert root.parent is None
    assert root.attributes is not None
    assert root.attributes["mailsync.mailbox_id"] == mailbox.id
    processed = [name for name in chain if name.endswith("process")]
    assert any("message-fetched" in name or "message.fetched" in name for name in processed), chain
    assert any("message-captured" in name or "message.captured" in name for name in processed), (
        chain
    )


async def test_a_send_request_is_one_trace_from_the_api_to_smtp_and_the_sent_copy(
    spans: InMemorySpanExporter,
    infra: Infra,
    secret_key: str,
    api_db: AsyncDatabase[Document],
) -> None:
    owner = await asyncio.to_thread(create_account, infra, "acme.test", "tracer")
    ann = await asyncio.to_thread(create_account, infra, "client.test", "ann")
    send = create_send_app(
        SendSettings(
            rabbitmq_url=infra.rabbitmq_url,
            mongodb_url=infra.mongodb_url,
            mongodb_database=API_DATABASE,
            secret_key=SecretStr(secret_key),
            allow_private_hosts=True,
        )
    )
    async for api in running_api(api_settings(infra, secret_key)):
        ws = await create_workspace(api, api_db, "Traced sends")
        secret = CredentialCipher(SecretStr(secret_key)).encrypt(owner.password)
        account = ServerAccount(
            host=infra.imap_host,
            port=infra.imap_port,
            security="none",
            username=owner.address,
            secret_encrypted=secret,
        )
        mailbox = MailboxDocument(
            workspace_id=ws.id,
            address=owner.address,
            imap=account,
            smtp=account.model_copy(update={"host": infra.smtp_host, "port": infra.smtp_port}),
            owner_user_id=ws.owner_user_id,
            append_to_sent=True,
        )
        await ws.store.mailboxes.insert_one(mailbox.to_document())
        async with running(send):
            response = await api.post(
                "/v1/send-requests",
                json={
                    "mailbox_id": mailbox.id,
                    "to": [{"address": ann.address}],
                    "subject": "Traced",
                    "body_text": "Followed from the request to the server's 250.",
                },
                headers=ws.auth,
            )
            assert response.status_code == 202, response.text
            appended = await finished(spans, "sent folder append", "the Sent append span")

    trace_id = appended[-1].context.trace_id
    by_id = in_trace(spans, trace_id)
    relay = next(span for span in by_id.values() if span.name == "smtp relay")
    assert relay.attributes is not None
    assert relay.attributes["mailsync.smtp.accepted"] == 1  # the server answered 250 for Ann
    for span in (relay, appended[-1]):
        chain = ancestors(span, by_id)
        assert chain[-1] == "POST /v1/send-requests", chain
        assert any("send.requested" in name and name.endswith("process") for name in chain), chain
