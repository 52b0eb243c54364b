"""HTTP webhooks end to end: subscriptions through the api, events on the real public exchange,
the send service (a process) delivering them to a real HTTP receiver on loopback that verifies
each request with the reference Standard Webhooks library, fails on purpose and goes away."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.contracts.records import (
    AssociatedThread,
    EmailLogged,
    ThreadAssociated,
)
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.client import Document
from mailsync_shared.topology import WEBHOOK_EVENTS_QUEUE
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    API_DATABASE,
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    api_settings,
    bearer,
    invite,
    other_ws_fixture,
    running_api,
    ws_fixture,
)
from tests.integration.conftest_send import SendProcess, start_send, stop_send
from tests.support.events import logged_email
from tests.support.infra import Infra
from tests.support.metrics import sample, scrape
from tests.support.polling import eventually
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.integration

GIVE_UP_AFTER = 8.0


@pytest.fixture(scope="module")
async def earlier_events_dropped(broker: RabbitBroker) -> None:
    """Public events that other suites of this session left for webhooks concern none of these
    tests' workspaces: dropped, so the send service starts on this module's events."""
    queue = await broker.declare_queue(WEBHOOK_EVENTS_QUEUE)
    await queue.purge()


@pytest.fixture(scope="module")
def webhook_sender(
    service_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    earlier_events_dropped: None,
) -> Iterator[SendProcess]:
    """The send service on the api's database, retrying within seconds rather than a day."""
    log: Path = tmp_path_factory.mktemp("webhooks") / "send.log"
    service = start_send(
        {**service_env, "MAILSYNC_MONGODB_DATABASE": API_DATABASE},
        log,
        webhook_retry_base_seconds="0.2",
        webhook_retry_max_delay_seconds="0.5",
        webhook_give_up_after_seconds=str(GIVE_UP_AFTER),
        webhook_poll_seconds="0.2",
        webhook_timeout_seconds="20",
        # Subscriptions read afresh for every event: a change applies at once.
        webhook_subscriptions_cache_seconds="0",
    )
    try:
        yield service
    finally:
        stop_send(service)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    item = WebhookReceiver()
    await item.start()
    yield item
    await item.stop()


@pytest.fixture
def events(broker: RabbitBroker) -> EventPublisher:
    return EventPublisher(broker, [EmailLogged])


async def publish_logged(events: EventPublisher, ws: ApiWorkspace, count: int) -> list[str]:
    """`count` email.logged events of the workspace on the public exchange, in order; their ids."""
    ids = []
    for number in range(count):
        event = logged_email(ws.id, number)
        await events.publish(event)
        ids.append(event.id)
    return ids


async def subscribe(
    api: httpx.AsyncClient, ws: ApiWorkspace, url: str, **fields: Any
) -> dict[str, Any]:
    response = await api.post("/v1/webhooks", json={"url": url, **fields}, headers=ws.auth)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["secret"].startswith("whsec_")
    return body


async def deliveries(
    api: httpx.AsyncClient, ws: ApiWorkspace, webhook_id: str
) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=ws.auth)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def all_delivered(
    api: httpx.AsyncClient, ws: ApiWorkspace, webhook_id: str, count: int
) -> list[dict[str, Any]]:
    """The log once it shows `count` deliveries, all delivered (outcomes are written after
    each batch of requests, so the log can trail the receiver by a moment)."""

    async def done() -> list[dict[str, Any]] | None:
        log = await deliveries(api, ws, webhook_id)
        finished = len(log) == count and all(item["state"] == "delivered" for item in log)
        return log if finished else None

    return await eventually(done, what="every delivery logged as delivered")


def first_occurrences(ids: list[str]) -> list[str]:
    return list(dict.fromkeys(ids))


async def test_events_arrive_signed_in_order_and_the_log_shows_each_answer(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    receiver: WebhookReceiver,
    events: EventPublisher,
    webhook_sender: SendProcess,
) -> None:
    subscription = await subscribe(api, ws, receiver.url, description="CRM feed")
    receiver.secrets = [subscription["secret"]]
    listed = (await api.get("/v1/webhooks", headers=ws.auth)).json()
    assert [item["id"] for item in listed] == [subscription["id"]]
    assert "secret" not in listed[0]

    published = await publish_logged(events, ws, 5)

    await eventually(
        lambda: _at_least(receiver.delivered_ids(), 5), timeout=30, what="5 deliveries"
    )
    assert receiver.delivered_ids() == published
    assert all(item.verified for item in receiver.received)
    assert [item.event["id"] for item in receiver.received] == published
    assert receiver.received[0].event["type"] == "mailsync.email.logged.v1"
    log = await all_delivered(api, ws, subscription["id"], len(published))
    assert [item["event_id"] for item in log] == list(reversed(published))
    assert all(item["attempts"][-1]["status_code"] == 200 for item in log)


async def events_read(sender: SendProcess) -> float:
    """How many public events the send service took off its webhook queue so far."""
    text = await scrape(sender.url)
    return sample(text, "mailsync_received_messages_total", handler=WEBHOOK_EVENTS_QUEUE.name)


async def test_only_the_events_an_enabled_subscription_wants_reach_the_send_service(
    api: httpx.AsyncClient,
    api_db: AsyncDatabase[Document],
    ws: ApiWorkspace,
    receiver: WebhookReceiver,
    events: EventPublisher,
    broker: RabbitBroker,
    webhook_sender: SendProcess,
) -> None:
    read_before = await events_read(webhook_sender)
    await publish_logged(events, ws, 3)  # no subscription yet: the broker drops them
    subscription = await subscribe(api, ws, receiver.url, event_types=[EmailLogged.event_type])
    receiver.secrets = [subscription["secret"]]
    wanted = await publish_logged(events, ws, 2)
    await eventually(lambda: _at_least(receiver.delivered_ids(), 2), what="2 deliveries")

    changed = await api.patch(
        f"/v1/webhooks/{subscription['id']}",
        json={"event_types": [ThreadAssociated.event_type]},
        headers=ws.auth,
    )
    assert changed.status_code == 200, changed.text
    logged_key = f"{EmailLogged.event_type}.{ws.id}"

    async def logged_unbound() -> bool:
        return await api_db["webhook_bindings"].find_one({"_id": logged_key}) is None

    await eventually(logged_unbound, what="the email.logged binding removed")
    assert await api_db["webhook_bindings"].find_one(
        {"_id": f"{ThreadAssociated.event_type}.{ws.id}"}
    )
    await publish_logged(events, ws, 2)  # no longer wanted
    # Published after them: once it is delivered, they would have been read before it.
    marker = ThreadAssociated.create(
        source="/mailsync/test",
        workspace_id=ws.id,
        data=AssociatedThread(
            thread_id="t1", contact_ids=[], company_ids=[], deal_ids=[], reasons=[]
        ),
    )
    await EventPublisher(broker, [ThreadAssociated]).publish(marker)
    wanted.append(marker.id)
    await eventually(lambda: _at_least(receiver.delivered_ids(), 3), what="the marker delivered")
    assert receiver.delivered_ids() == wanted
    assert await events_read(webhook_sender) - read_before == len(wanted)


async def test_an_outage_loses_and_reorders_nothing_and_retries_keep_the_event_id(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    receiver: WebhookReceiver,
    events: EventPublisher,
    webhook_sender: SendProcess,
) -> None:
    subscription = await subscribe(api, ws, receiver.url)
    receiver.secrets = [subscription["secret"]]
    published = await publish_logged(events, ws, 3)
    await eventually(lambda: _at_least(receiver.delivered_ids(), 3), what="first deliveries")

    receiver.mode = "fail"
    published += await publish_logged(events, ws, 3)
    await eventually(
        lambda: _at_least([r for r in receiver.received if r.answered == 500], 2),
        what="two failed tries",
    )
    await receiver.stop()
    published += await publish_logged(events, ws, 4)

    async def refused_tries() -> bool:
        log = await deliveries(api, ws, subscription["id"])
        head = next(item for item in log if item["event_id"] == published[3])
        return sum(1 for a in head["attempts"] if a["status_code"] is None) >= 2

    await eventually(refused_tries, what="tries while the receiver is gone")
    receiver.mode = "accept"
    await receiver.start()

    await eventually(
        lambda: _at_least(first_occurrences(receiver.delivered_ids()), len(published)),
        timeout=30,
        what="every event after the outage",
    )
    assert first_occurrences(receiver.delivered_ids()) == published
    assert all(item.verified for item in receiver.received)
    # Only the oldest undelivered event was tried while the receiver failed: the ones behind
    # it waited their turn, and each retry carried the same event id.
    assert {r.webhook_id for r in receiver.received if r.answered == 500} == {published[3]}
    log = {
        item["event_id"]: item
        for item in await all_delivered(api, ws, subscription["id"], len(published))
    }
    statuses = [attempt["status_code"] for attempt in log[published[3]]["attempts"]]
    assert statuses[0] == 500
    assert None in statuses
    assert statuses[-1] == 200
    assert all(log[event_id]["state"] == "delivered" for event_id in published)
    metrics = await scrape(webhook_sender.url)
    assert sample(metrics, "mailsync_webhook_attempts_total", outcome="retrying") >= 4
    assert sample(metrics, "mailsync_webhook_attempts_total", outcome="delivered") >= 10
    assert sample(metrics, "mailsync_webhook_request_seconds_count", answer="none") >= 2


async def test_a_hanging_receiver_delays_no_other_subscription(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    receiver: WebhookReceiver,
    events: EventPublisher,
    webhook_sender: SendProcess,
) -> None:
    hanging = WebhookReceiver(mode="hang")
    await hanging.start()
    try:
        stuck = await subscribe(api, ws, hanging.url)
        healthy = await subscribe(api, ws, receiver.url)
        receiver.secrets = [healthy["secret"]]

        published = await publish_logged(events, ws, 4)

        # The hanging receiver holds its request for the whole 20 s timeout; the other
        # subscription gets everything well before that.
        await eventually(
            lambda: _at_least(receiver.delivered_ids(), 4), timeout=12, what="healthy deliveries"
        )
        assert receiver.delivered_ids() == published
        assert hanging.delivered_ids() == []
        log = await deliveries(api, ws, stuck["id"])
        assert {item["state"] for item in log} == {"pending"}
    finally:
        await hanging.stop()
        await api.delete(f"/v1/webhooks/{stuck['id']}", headers=ws.auth)


async def test_a_delivery_failing_for_the_whole_window_is_marked_failed_and_can_be_replayed(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    receiver: WebhookReceiver,
    events: EventPublisher,
    webhook_sender: SendProcess,
) -> None:
    subscription = await subscribe(api, ws, receiver.url)
    receiver.secrets = [subscription["secret"]]
    receiver.mode = "fail"
    [event_id] = await publish_logged(events, ws, 1)

    async def failed() -> dict[str, Any] | None:
        log = await deliveries(api, ws, subscription["id"])
        return log[0] if log and log[0]["state"] == "failed" else None

    delivery = await eventually(failed, timeout=GIVE_UP_AFTER + 20, what="the delivery failed")
    assert len(delivery["attempts"]) >= 2
    assert {attempt["status_code"] for attempt in delivery["attempts"]} == {500}

    receiver.mode = "accept"
    path = f"/v1/webhooks/{subscription['id']}/deliveries/{delivery['id']}"
    replayed = await api.post(f"{path}/replay", headers=ws.auth)
    assert replayed.status_code == 202, replayed.text
    assert replayed.json()["state"] == "pending"

    await eventually(lambda: _at_least(receiver.delivered_ids(), 1), what="the replay")
    assert receiver.delivered_ids() == [event_id]
    assert {item.webhook_id for item in receiver.received} == {event_id}
    after = (await api.get(path, headers=ws.auth)).json()
    assert after["state"] == "delivered"
    again = await api.post(f"{path}/replay", headers=ws.auth)
    assert again.status_code == 202
    await eventually(lambda: _at_least(receiver.delivered_ids(), 2), what="a second replay")
    assert receiver.delivered_ids() == [event_id, event_id]


async def test_a_rotated_secret_signs_beside_the_old_one_until_the_old_one_is_dropped(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    receiver: WebhookReceiver,
    events: EventPublisher,
    webhook_sender: SendProcess,
) -> None:
    subscription = await subscribe(api, ws, receiver.url)
    old = subscription["secret"]
    rotated = await api.post(f"/v1/webhooks/{subscription['id']}/rotate-secret", headers=ws.auth)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old
    assert rotated.json()["previous_secret_until"] is not None

    receiver.secrets = [old]
    await publish_logged(events, ws, 1)
    await eventually(lambda: _at_least(receiver.delivered_ids(), 1), what="signed by the old")
    receiver.secrets = [new]
    await publish_logged(events, ws, 1)
    await eventually(lambda: _at_least(receiver.delivered_ids(), 2), what="signed by the new")

    dropped = await api.post(
        f"/v1/webhooks/{subscription['id']}/rotate-secret",
        params={"keep_previous": "false"},
        headers=ws.auth,
    )
    newest = dropped.json()["secret"]
    receiver.secrets = [old, new]
    [last] = await publish_logged(events, ws, 1)
    await eventually(
        lambda: _at_least([r for r in receiver.received if r.answered == 401], 1),
        what="a delivery the old secrets do not verify",
    )
    receiver.secrets = [newest]
    await eventually(lambda: _at_least(receiver.delivered_ids(), 3), what="signed by the newest")
    assert receiver.delivered_ids()[-1] == last


async def test_subscriptions_are_for_admins_of_the_workspace_only(
    api: httpx.AsyncClient, ws: ApiWorkspace, other_ws: ApiWorkspace, receiver: WebhookReceiver
) -> None:
    subscription = await subscribe(api, ws, receiver.url)
    member = await invite(api, ws, "member")

    refused = await api.post(
        "/v1/webhooks", json={"url": receiver.url}, headers=bearer(member["token"])
    )
    assert refused.status_code == 403
    assert (await api.get("/v1/webhooks", headers=bearer(member["token"]))).status_code == 403
    elsewhere = await api.get(f"/v1/webhooks/{subscription['id']}", headers=other_ws.auth)
    assert elsewhere.status_code == 404
    unknown_type = await api.post(
        "/v1/webhooks",
        json={"url": receiver.url, "event_types": ["mailsync.message.fetched.v1"]},
        headers=ws.auth,
    )
    assert unknown_type.status_code == 422
    not_http = await api.post("/v1/webhooks", json={"url": "ftp://crm.test/x"}, headers=ws.auth)
    assert not_http.status_code == 422


async def test_receivers_on_private_addresses_are_refused_unless_allowed(
    infra: Infra, secret_key: str, api_db: object
) -> None:
    async for guarded in running_api(api_settings(infra, secret_key, allow_private_hosts=False)):
        created = await guarded.post("/v1/workspaces", json={"name": "Guarded"})
        auth = bearer(created.json()["api_key"])
        for url in ("http://127.0.0.1:9/hooks", "http://10.1.2.3/hooks", "http://[::1]/x"):
            response = await guarded.post("/v1/webhooks", json={"url": url}, headers=auth)
            assert response.status_code == 422, url
            assert "address" in response.json()["detail"], response.text


async def _at_least(items: list[Any], count: int) -> bool:
    return len(items) >= count
