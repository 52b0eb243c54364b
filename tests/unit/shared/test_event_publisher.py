"""What the publisher asks of the broker for each event: work must reach a queue, a public
event may find no subscriber."""

from typing import Any
from unittest.mock import patch

from faststream.rabbit import RabbitBroker
from faststream.rabbit.response import RabbitPublishCommand
from faststream.rabbit.testing import TestRabbitBroker

from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.contracts.mailboxes import ClaimableMailbox, MailboxClaimable
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.topology import INTERNAL_EVENTS, PUBLIC_EVENTS
from tests.unit.shared.test_event_privacy import message, samples


async def test_only_work_is_returned_by_the_broker_when_no_queue_takes_it() -> None:
    broker = RabbitBroker()
    publisher = EventPublisher(broker, [*PUBLIC_EVENTS, *INTERNAL_EVENTS])
    public = samples()
    work = MessageFetched.create(source="/test", workspace_id="w1", data=message())
    wake = MailboxClaimable.create(
        source="/test",
        workspace_id="w1",
        data=ClaimableMailbox(mailbox_id="m1", because="connected"),
    )
    sent: list[RabbitPublishCommand] = []
    async with TestRabbitBroker(broker):
        producer: Any = broker.config.producer

        async def recorded(command: RabbitPublishCommand) -> None:
            sent.append(command)

        with patch.object(producer, "publish", recorded):
            await publisher.publish_each([(event, "workspace") for event in public])
            await publisher.publish(public[0], level="workspace")
            await publisher.publish(work)
            await publisher.publish(wake)
    mandatory = {
        (command.message_options["message_type"], command.publish_options["mandatory"])
        for command in sent
    }
    assert {event.type for event in public} == {
        event_type.event_type for event_type in PUBLIC_EVENTS
    }
    assert mandatory == {
        *((event_type.event_type, False) for event_type in PUBLIC_EVENTS),
        (MessageFetched.event_type, True),
        (MailboxClaimable.event_type, False),
    }
