from datetime import UTC, datetime

from mailsync_shared.contracts.mail import Address, MailMessage, MessageFetched
from mailsync_shared.contracts.records import EmailLogged, LoggedEmail
from mailsync_shared.topology import EVENTS_EXCHANGE, WORK_EXCHANGE, exchange_for


def make_message(**overrides: object) -> MailMessage:
    fields: dict[str, object] = {
        "mailbox_id": "mb1",
        "owner_address": "owner@acme.test",
        "direction": "received",
        "raw_id": "abc",
        "size": 10,
        "message_id": "<1@client.test>",
        "from": Address(address="ann@client.test", name="Ann"),
        "to": [Address(address="owner@acme.test")],
    }
    fields.update(overrides)
    return MailMessage.model_validate(fields)


def test_event_carries_cloudevents_attributes_and_routes_by_type_and_workspace() -> None:
    event = MessageFetched.create(
        source="/mailsync/ingest", workspace_id="ws1", data=make_message()
    )
    assert event.type == "mailsync.message.fetched.v1"
    assert event.specversion == "1.0"
    assert event.routing_key == "mailsync.message.fetched.v1.ws1"
    assert MessageFetched.binding_key() == "mailsync.message.fetched.v1.*"


def test_json_uses_the_header_name_from_and_round_trips() -> None:
    event = MessageFetched.create(
        source="/mailsync/ingest", workspace_id="ws1", data=make_message()
    )
    body = event.model_dump_json(by_alias=True)
    assert '"from":{"address":"ann@client.test"' in body
    assert MessageFetched.model_validate_json(body) == event


def test_unknown_fields_from_newer_producers_are_ignored() -> None:
    event = EmailLogged.create(
        source="/mailsync/associate",
        workspace_id="ws1",
        data=LoggedEmail(
            email_id="e1",
            thread_id="t1",
            mailbox_id="mb1",
            message_id="<1@x>",
            direction="sent",
            subject="Hi",
            date=datetime(2026, 1, 1, tzinfo=UTC),
            participants=[],
        ),
    )
    payload = event.model_dump(mode="json")
    payload["newfield"] = 1
    payload["data"]["another"] = 2
    assert EmailLogged.model_validate(payload) == event


def test_internal_work_and_public_events_use_separate_exchanges() -> None:
    assert exchange_for(MessageFetched) is WORK_EXCHANGE
    assert exchange_for(EmailLogged) is EVENTS_EXCHANGE


def test_participants_lists_each_address_once_sender_first() -> None:
    message = make_message(
        cc=[Address(address="ann@client.test"), Address(address="bob@client.test")]
    )
    assert [a.address for a in message.participants()] == [
        "ann@client.test",
        "owner@acme.test",
        "bob@client.test",
    ]
