"""Metrics name the queue a delivery came from, for every queue a service consumes."""

from mailsync_shared.contracts.mail import MessageCaptured, MessageFetched
from mailsync_shared.contracts.outbound import EmailSent, SendRequested
from mailsync_shared.metrics import queue_of
from mailsync_shared.topology import (
    ASSOCIATE_SHARDS,
    CAPTURE_SHARDS,
    EVENTS_EXCHANGE,
    PUBLIC_EVENTS,
    SEND_REQUESTS,
    WEBHOOK_EVENTS_QUEUE,
    WORK_EXCHANGE,
)


def test_work_is_named_by_its_queue_or_its_shards() -> None:
    assert (
        queue_of(WORK_EXCHANGE.name, f"{SendRequested.event_type}.w1") == SEND_REQUESTS.queue.name
    )
    assert (
        queue_of(WORK_EXCHANGE.name, f"{MessageFetched.event_type}.w1")
        == CAPTURE_SHARDS.exchange.name
    )
    assert (
        queue_of(WORK_EXCHANGE.name, f"{MessageCaptured.event_type}.w1")
        == ASSOCIATE_SHARDS.exchange.name
    )
    assert (
        queue_of(EVENTS_EXCHANGE.name, f"{EmailSent.event_type}.w1")
        == ASSOCIATE_SHARDS.exchange.name
    )


def test_public_events_taken_off_a_services_own_queue_are_named_by_it() -> None:
    for event_type in PUBLIC_EVENTS:
        label = queue_of(
            EVENTS_EXCHANGE.name,
            f"{event_type.event_type}.w1",
            public_events_from=WEBHOOK_EVENTS_QUEUE.name,
        )
        assert label == WEBHOOK_EVENTS_QUEUE.name, event_type
    work = queue_of(
        WORK_EXCHANGE.name,
        f"{SendRequested.event_type}.w1",
        public_events_from=WEBHOOK_EVENTS_QUEUE.name,
    )
    assert work == SEND_REQUESTS.queue.name
