"""Which messages count as bulk or automated mail, and how a thread keeps that fact."""

from typing import Any

import pytest

from mailsync_shared.association.automated import automated_reason, thread_automation
from mailsync_shared.contracts.mail import MailMessage


def message(sender: str = "ann@client.test", **fields: Any) -> MailMessage:
    return MailMessage.model_validate(
        {
            "mailbox_id": "mb",
            "owner_address": "owner@acme.test",
            "direction": "received",
            "raw_id": "raw",
            "size": 1,
            "message_id": "<1@client.test>",
            "from": {"address": sender},
            **fields,
        }
    )


@pytest.mark.parametrize(
    ("fields", "sender", "expected"),
    [
        ({}, "ann@client.test", None),
        ({"automation": {"auto_submitted": "no"}}, "ann@client.test", None),
        ({"automation": {"auto_submitted": "auto-generated"}}, "ann@client.test", "Auto-Submitted"),
        ({"automation": {"list_unsubscribe": True}}, "ann@client.test", "List-Unsubscribe"),
        ({"automation": {"precedence": "junk"}}, "ann@client.test", "Precedence: junk"),
        ({"automation": {"precedence": "first-class"}}, "ann@client.test", None),
        ({}, "no-reply@client.test", "no-reply@client.test"),
        ({}, "mailer-daemon@client.test", "mailer-daemon@client.test"),
        ({"direction": "sent", "automation": {"precedence": "bulk"}}, "owner@acme.test", None),
    ],
)
def test_the_reason_names_the_signal(
    fields: dict[str, Any], sender: str, expected: str | None
) -> None:
    reason = automated_reason(message(sender, **fields))

    if expected is None:
        assert reason is None
    else:
        assert reason is not None
        assert expected in reason


def test_a_thread_stays_automated_until_a_person_writes() -> None:
    bulk = message(automation={"list_unsubscribe": True})
    person = message()

    first = thread_automation(None, bulk, first=True)
    assert first is not None
    assert thread_automation(first, bulk, first=False) == first
    assert thread_automation(first, person, first=False) is None
    assert thread_automation(None, bulk, first=False) is None, "a person wrote earlier"
    assert thread_automation(None, person, first=True) is None
