"""The send service against a misbehaving SMTP server: retries, permanent failures, dropped and
stalled connections, a SIGKILL mid-flight, XOAUTH2, scheduling, cancelling and rate limiting."""

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from mailsync_send.rate_limit import window_start
from mailsync_send.scheduler import DISPATCHES
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.outbound import EmailSendFailed
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.send_outbox import as_it_stands, cancel
from mailsync_shared.storage.documents import MailboxDocument, SendRequestDocument, ServerAccount
from mailsync_shared.storage.scoped import WorkspaceStore
from tests.integration.conftest_send import (  # noqa: F401  (fixtures register by name)
    Sending,
    SendProcess,
    client_fixture,
    owner_fixture,
    rabbit_fixture,
    sending_fixture,
    start_send,
    stop_send,
)
from tests.support.infra import Infra
from tests.support.mail import MailAccount, fetch_all
from tests.support.metrics import sample, scrape
from tests.support.polling import eventually
from tests.support.smtp_faults import FaultySmtpServer
from tests.support.token_endpoint import TokenEndpoint

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]


@pytest.fixture(scope="module")
def send_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("send-faults") / "send.log"


@pytest.fixture(scope="module")
def send_service(service_env: dict[str, str], send_log: Path) -> Iterator[SendProcess]:
    service = start_send(
        service_env, send_log, retry_backoff_seconds="0.3", redispatch_after_seconds="2"
    )
    try:
        yield service
    finally:
        stop_send(service)


@pytest.fixture
def faulty(infra: Infra, owner: MailAccount) -> Iterator[FaultySmtpServer]:
    server = FaultySmtpServer(infra, files_sent={owner.address: owner.password}).start()
    try:
        yield server
    finally:
        server.stop()


def through(server: FaultySmtpServer, owner: MailAccount, secret_key: str) -> ServerAccount:
    return ServerAccount(
        host=server.host,
        port=server.port,
        security="none",
        username=owner.address,
        secret_encrypted=CredentialCipher(SecretStr(secret_key)).encrypt(owner.password),
    )


async def faulty_mailbox(
    sending: Sending, server: FaultySmtpServer, **changes: object
) -> MailboxDocument:
    """A mailbox relaying through `server`, which files sent mail itself (like Gmail)."""
    settings: dict[str, object] = {
        "smtp": through(server, sending.owner, sending.secret_key),
        "append_to_sent": False,
        **changes,
    }
    return await sending.mailbox(**settings)


async def inbox(sending: Sending) -> list[bytes]:
    """What reached the client."""
    return await asyncio.to_thread(fetch_all, sending.infra, sending.client, "INBOX")


async def delivered_once(sending: Sending, request: SendRequestDocument) -> None:
    """The client received exactly one message, and it is `request`'s."""
    delivered = await inbox(sending)
    assert len(delivered) == 1
    assert request.message_id.encode() in delivered[0]


async def state_of(store: WorkspaceStore, request_id: str) -> SendRequestDocument:
    """The request as it stands (an attempt's claim holds its `sending` until it ends)."""
    document = await store.send_requests.find_one({"_id": request_id})
    assert document is not None
    return await as_it_stands(store, document)


async def settled(
    store: WorkspaceStore, request_id: str, state: str, within: float = 30
) -> SendRequestDocument:
    async def probe() -> SendRequestDocument | None:
        request = await state_of(store, request_id)
        return request if request.state == state else None

    return await eventually(probe, timeout=within, what=f"request {request_id} to be {state}")


async def test_a_send_killed_between_acceptance_and_record_is_delivered_once(
    service_env: dict[str, str],
    tmp_path: Path,
    sending: Sending,
    faulty: FaultySmtpServer,
) -> None:
    """First in the module: no other send process runs yet to take the request instead.

    The killed attempt's claim runs out after 3 s; the request, still stored `queued`, is handed
    on again `redispatch_after` later."""
    faulty.plan.data_replies = ["accept-then-stall"]
    faulty.plan.stall_seconds = 60
    mailbox = await faulty_mailbox(sending, faulty)
    request = await sending.request(mailbox)
    log = tmp_path / "send.log"
    first = start_send(service_env, log, claim_timeout_seconds="3", redispatch_after_seconds="2")
    try:
        await sending.request_send(request.id)
        await eventually(
            lambda: asyncio.sleep(0, faulty.message_ids() or None),
            what="the server to accept the message",
        )
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
    finally:
        stop_send(first)
    left = await state_of(sending.store, request.id)
    assert left.state == "sending"
    assert left.data_started_at is not None

    second = start_send(service_env, log, claim_timeout_seconds="3", redispatch_after_seconds="2")
    try:
        sent = await settled(sending.store, request.id, "sent", within=60)
    finally:
        stop_send(second)
    assert sent.attempts == 2
    assert faulty.data_attempts == 1
    await delivered_once(sending, request)


async def test_421_and_451_are_retried_with_backoff_until_the_server_recovers(
    send_service: SendProcess,
    sending: Sending,
    faulty: FaultySmtpServer,
) -> None:
    failures = await sending.tap(EmailSendFailed.event_type)
    faulty.plan.data_replies = ["421 4.3.2 Service shutting down", "451 4.3.0 Try again later"]
    mailbox = await faulty_mailbox(sending, faulty)
    request = await sending.request(mailbox)
    before = await scrape(send_service.url)

    await sending.request_send(request.id)

    sent = await settled(sending.store, request.id, "sent")

    async def counted_sent() -> str | None:
        text = await scrape(send_service.url)
        done = sample(text, "mailsync_send_outcomes_total", outcome="sent")
        return (
            text if done > sample(before, "mailsync_send_outcomes_total", outcome="sent") else None
        )

    after = await eventually(counted_sent, what="the sent outcome counted")

    def counted(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert counted("mailsync_send_outcomes_total", outcome="retried") == 2
    assert counted("mailsync_send_outcomes_total", outcome="sent") == 1
    assert counted("mailsync_send_smtp_seconds_count", result="failed") == 2
    assert counted("mailsync_send_smtp_seconds_count", result="accepted") == 1
    assert sent.attempts == 3
    assert faulty.data_attempts == 3
    assert faulty.message_ids() == [request.message_id]
    assert len(await inbox(sending)) == 1
    events = [EmailSendFailed.model_validate_json(e) for e in await failures.drain()]
    assert [e.data.permanent for e in events] == [False, False]
    assert "421 4.3.2" in events[0].data.reason
    assert "451 4.3.0" in events[1].data.reason
    # The first retry waited the backoff (0.3 s), the second twice as long.
    assert events[1].time - events[0].time >= timedelta(seconds=0.3)
    assert sent.sent_at is not None
    assert sent.sent_at - events[1].time >= timedelta(seconds=0.6)


@pytest.mark.parametrize(
    ("where", "reply"),
    [("rcpt", "550 5.1.1 No such user here"), ("data", "550 5.7.1 Message refused as spam")],
)
async def test_a_550_fails_at_once_with_the_servers_reason(
    send_service: SendProcess,
    sending: Sending,
    faulty: FaultySmtpServer,
    where: str,
    reply: str,
) -> None:
    if where == "rcpt":
        faulty.plan.rcpt_replies = {sending.client.address: [reply]}
    else:
        faulty.plan.data_replies = [reply]
    mailbox = await faulty_mailbox(sending, faulty)
    request = await sending.request(mailbox)
    before = sample(
        await scrape(send_service.url), "mailsync_send_outcomes_total", outcome="failed"
    )

    await sending.request_send(request.id)

    failed = await settled(sending.store, request.id, "failed")

    async def failures_counted() -> float | None:
        text = await scrape(send_service.url)
        after = sample(text, "mailsync_send_outcomes_total", outcome="failed")
        return after - before if after > before else None

    assert await eventually(failures_counted, what="the failure counted") == 1
    assert failed.attempts == 1
    assert failed.error is not None
    assert reply in failed.error
    assert faulty.accepted == []
    assert await inbox(sending) == []


@pytest.mark.parametrize("action", ["accept-then-drop", "drop"])
async def test_a_connection_dropped_mid_data_ends_in_exactly_one_delivery(
    send_service: SendProcess,
    sending: Sending,
    faulty: FaultySmtpServer,
    action: str,
) -> None:
    """The provider files sent mail itself, so the Sent folder tells whether it went out."""
    faulty.plan.data_replies = [action]
    mailbox = await faulty_mailbox(sending, faulty)
    request = await sending.request(mailbox)

    await sending.request_send(request.id)

    sent = await settled(sending.store, request.id, "sent")
    assert sent.attempts == 2
    assert faulty.message_ids() == [request.message_id]
    await delivered_once(sending, request)


async def test_a_drop_mid_data_where_sent_cannot_tell_ends_unknown_without_a_second_send(
    send_service: SendProcess,
    sending: Sending,
    faulty: FaultySmtpServer,
) -> None:
    faulty.files_sent = {}
    faulty.plan.data_replies = ["accept-then-drop"]
    mailbox = await faulty_mailbox(sending, faulty, append_to_sent=True)
    request = await sending.request(mailbox)

    await sending.request_send(request.id)

    unknown = await settled(sending.store, request.id, "unknown")
    assert unknown.error is not None
    assert "cannot tell" in unknown.error
    assert faulty.data_attempts == 1
    assert len(await inbox(sending)) == 1


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint({"refresh-secret"}) as endpoint:
        yield endpoint


async def test_xoauth2_refreshes_a_refused_token_and_sends(
    send_service: SendProcess,
    sending: Sending,
    faulty: FaultySmtpServer,
    token_endpoint: TokenEndpoint,
) -> None:
    """The first token is refused (revoked); the sender refreshes once and sends with the next."""
    faulty.tokens = {"access-2"}
    cipher = CredentialCipher(SecretStr(sending.secret_key))
    smtp = ServerAccount(
        host=faulty.host,
        port=faulty.port,
        security="none",
        username=sending.owner.address,
        auth="xoauth2",
        secret_encrypted=cipher.encrypt("refresh-secret"),
        token_endpoint=token_endpoint.url,
        client_id="mailsync-test",
        scope="https://mail.test/",
    )
    mailbox = await faulty_mailbox(sending, faulty, smtp=smtp)
    request = await sending.request(mailbox)

    await sending.request_send(request.id)

    sent = await settled(sending.store, request.id, "sent")
    assert sent.attempts == 1
    assert token_endpoint.issued == ["access-1", "access-2"]
    assert token_endpoint.forms[0]["grant_type"] == ["refresh_token"]
    assert token_endpoint.forms[0]["client_id"] == ["mailsync-test"]
    assert faulty.xoauth2_attempts == 2
    assert [m.auth_mechanism for m in faulty.accepted] == ["XOAUTH2"]
    assert len(await inbox(sending)) == 1


async def test_a_scheduled_request_is_not_sent_before_its_time(
    send_service: SendProcess,
    sending: Sending,
    faulty: FaultySmtpServer,
) -> None:
    mailbox = await faulty_mailbox(sending, faulty)
    send_at = utcnow() + timedelta(seconds=3)
    request = await sending.request(mailbox, send_at=send_at)

    await sending.request_send(request.id)

    waiting = await eventually(
        lambda: _with_next_attempt(sending.store, request.id), what="the request to be scheduled"
    )
    assert waiting.state == "queued"
    assert faulty.accepted == []
    sent = await settled(sending.store, request.id, "sent")
    assert sent.sent_at is not None
    assert sent.sent_at >= send_at
    assert faulty.message_ids() == [request.message_id]


async def _with_next_attempt(store: WorkspaceStore, request_id: str) -> SendRequestDocument | None:
    request = await state_of(store, request_id)
    return request if request.next_attempt_at is not None else None


async def test_a_queued_request_can_be_cancelled_and_is_never_sent(
    send_service: SendProcess,
    sending: Sending,
    faulty: FaultySmtpServer,
) -> None:
    mailbox = await faulty_mailbox(sending, faulty)
    later = await sending.request(mailbox, send_at=utcnow() + timedelta(seconds=2))
    done = await sending.request(mailbox)
    await sending.request_send(done.id)
    await settled(sending.store, done.id, "sent")

    cancelled = await cancel(sending.store, later.id)
    assert cancelled is not None
    assert cancelled.state == "cancelled"
    assert await cancel(sending.store, done.id) is None, "a sent request cannot be cancelled"
    await sending.request_send(later.id)
    marker = await sending.request(mailbox, send_at=utcnow())
    await sending.request_send(marker.id)
    await settled(sending.store, marker.id, "sent")
    await asyncio.sleep(2.5)  # past the cancelled request's send_at: the scheduler had its turn

    assert (await state_of(sending.store, later.id)).state == "cancelled"
    assert (await state_of(sending.store, done.id)).state == "sent"
    assert later.message_id not in faulty.message_ids()
    assert len(await inbox(sending)) == 2


async def test_the_mailbox_rate_limit_defers_without_losing_requests(
    send_service: SendProcess,
    sending: Sending,
    faulty: FaultySmtpServer,
) -> None:
    mailbox = await faulty_mailbox(sending, faulty, send_rate_per_minute=2)
    requests = [await sending.request(mailbox) for _ in range(3)]
    for request in requests:
        await sending.request_send(request.id)

    async def all_moved() -> list[SendRequestDocument] | None:
        states = [await state_of(sending.store, r.id) for r in requests]
        sent = [s for s in states if s.state == "sent"]
        deferred = [s for s in states if s.state == "queued" and s.next_attempt_at is not None]
        return states if len(sent) + len(deferred) == 3 and sent else None

    states = await eventually(all_moved, what="every request sent or deferred")
    per_minute: dict[object, int] = {}
    for state in states:
        if state.sent_at is not None:
            window = window_start(state.sent_at)
            per_minute[window] = per_minute.get(window, 0) + 1
    assert max(per_minute.values()) <= 2
    for state in states:
        if state.state == "queued":
            assert state.next_attempt_at is not None
            assert state.next_attempt_at == window_start(state.next_attempt_at)
            assert state.next_attempt_at > utcnow() - timedelta(seconds=1)
    assert len(faulty.accepted) == sum(per_minute.values())


async def test_a_request_whose_send_requested_was_lost_is_sent_anyway(
    send_service: SendProcess,
    sending: Sending,
    faulty: FaultySmtpServer,
) -> None:
    mailbox = await faulty_mailbox(sending, faulty)
    stale = utcnow() - timedelta(seconds=5)
    request = await sending.request(mailbox, created_at=stale, updated_at=stale)

    sent = await settled(sending.store, request.id, "sent")

    assert sent.attempts == 1
    assert await sending.store.collection(DISPATCHES).find_one({"_id": request.id}) is not None
    assert faulty.message_ids() == [request.message_id]


@pytest.fixture(autouse=True)
async def _no_leftover_stall(faulty: FaultySmtpServer) -> AsyncIterator[None]:
    yield
    faulty.plan.data_replies.clear()
