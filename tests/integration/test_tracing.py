"""One trace follows a message from ingest's publish through capture and associate to the
public `email.logged` event, carried in the RabbitMQ headers (real broker, in-memory exporter)."""

from collections.abc import Iterator

import pytest
from faststream.rabbit import RabbitBroker
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_associate.app import create_app as create_associate_app
from mailsync_associate.settings import Settings as AssociateSettings
from mailsync_capture.app import create_app as create_capture_app
from mailsync_capture.settings import Settings as CaptureSettings
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.tracing import broker_tracing
from tests.integration.conftest_capture import running, settings_from
from tests.support.captured_mail import stored_mail
from tests.support.infra import Infra
from tests.support.mail import build_message
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

        async def logged() -> list[ReadableSpan] | None:
            found = [
                span
                for span in spans.get_finished_spans()
                if "email.logged" in span.name and span.name.endswith("publish")
            ]
            return found or None

        events = await eventually(logged, timeout=60, what="the email.logged publish span")

    trace_id = root.get_span_context().trace_id
    in_trace = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    by_id = {span.context.span_id: span for span in in_trace}
    event = next(span for span in events if span.context.trace_id == trace_id)
    chain = ancestors(event, by_id)
    assert chain[-1] == "ingest fetch", chain
    processed = [name for name in chain if name.endswith("process")]
    assert any("message-captured" in name or "message.captured" in name for name in processed), (
        chain
    )
    assert any("message-fetched" in name or "message.fetched" in name for name in processed), chain
