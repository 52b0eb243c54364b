"""Webhook signatures, retry delays, the host guard on receivers, and refused event bodies."""

import itertools
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from mailsync_send.webhooks.dispatcher import retry_delay
from mailsync_send.webhooks.poster import WebhookPoster
from mailsync_send.webhooks.recorder import Sequence, event_head
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.messaging import PermanentError
from mailsync_shared.webhooks import signing


def test_the_signature_matches_the_published_test_vector() -> None:
    # The example of the Standard Webhooks specification.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'

    signature = signing.sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)

    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_reference_library_verifies_our_headers_with_either_secret() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    body = '{"id": "e1", "data": {"subject": "Grüße"}}'.encode()
    now = int(datetime.now(UTC).timestamp())

    headers = signing.headers([new, old], "e1", now, body)

    assert Webhook(new).verify(body, headers) == {"id": "e1", "data": {"subject": "Grüße"}}
    assert Webhook(old).verify(body, headers)["id"] == "e1"
    assert headers["webhook-id"] == "e1"
    assert len(headers["webhook-signature"].split(" ")) == 2


def test_secrets_are_random_and_prefixed() -> None:
    secrets = {signing.new_secret() for _ in range(5)}
    assert len(secrets) == 5
    assert all(secret.startswith("whsec_") for secret in secrets)


def test_retry_delays_double_up_to_the_cap() -> None:
    delays = [retry_delay(failures, base=5, most=3600) for failures in range(1, 14)]

    assert 4.5 <= delays[0] <= 5
    assert 9 <= delays[1] <= 10
    assert all(later > earlier for earlier, later in itertools.pairwise(delays[:10]))
    assert max(delays) <= 3600
    assert delays[-1] >= 3240


async def test_a_receiver_on_a_loopback_address_is_refused_without_a_request() -> None:
    poster = WebhookPoster(HostGuard(allow_private=False), timeout=5)
    try:
        outcome = await poster.post("http://127.0.0.1:9/hooks", "e1", b"{}", ["whsec_AAAA"])
    finally:
        await poster.close()

    assert outcome.status_code is None
    assert outcome.error is not None
    assert "loopback" in outcome.error
    assert not outcome.delivered


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"id": "e1"}', b'{"id": "", "type": "t", "workspaceid": "w"}']
)
def test_a_body_that_is_not_one_event_is_refused(body: bytes) -> None:
    with pytest.raises(PermanentError):
        event_head(body)


def test_sequence_numbers_only_grow() -> None:
    sequence = Sequence()
    numbers = [sequence.next() for _ in range(1000)]
    assert numbers == sorted(set(numbers))
