"""The visibility matrix: every route the app serves, called by every kind of caller, over mail
in a mailbox of each visibility that the caller owns or not; no answer, no delivered mail and
no published event carries what the policy hides.

Real services throughout: the api app, associate logging the mail (in this process) and
publishing its events on the real broker, the send service (a process) relaying replies and
forwards through the SMTP server into Dovecot, where they are read back over IMAP.

Each planted message carries unique canary strings in its subject, body, a Cc participant and
a Bcc recipient. One conversation is seen in two mailboxes: its first message in Bob's
`workspace` and Alice's `private` mailbox, its last only in Alice's. What a caller may see is
written down here from the rules (owner: everything; anyone else: by visibility; Bcc: the
owner only; a subscriber: what docs/event-visibility.md publishes), not computed by the code
under test. Canary addresses are role addresses (`noreply-...`), which no capture rule turns
into contacts: contacts are workspace records by design, outside the mail policy.

Routes are enumerated from the app: a route added later fails `test_every_route_is_classified`
until it is given a place in `ROUTES`. Everything is set up once per module.
"""

import asyncio
import email
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_associate.app import create_app as create_associate_app
from mailsync_associate.settings import Settings as AssociateSettings
from mailsync_shared.contracts.mail import CapturedMessage, MailMessage, MessageCaptured
from mailsync_shared.storage.capture_rules import CaptureDecisionDocument
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.raw_messages import store_raw
from mailsync_shared.topology import EVENTS_EXCHANGE
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    API_DATABASE,
    ApiWorkspace,
    api_db_fixture,
    api_routes,
    api_settings,
    bearer,
    create_workspace,
    invite,
    running_api,
    system_key,
)
from tests.integration.conftest_capture import Tap, publish, running, settings_from, taps
from tests.integration.conftest_send import (
    SendProcess,
    ready_account,
    start_send,
    stop_send,
    store_mailbox,
)
from tests.support.infra import Infra
from tests.support.mail import MailAccount, fetch_all
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

VISIBILITIES = ("private", "metadata", "subject", "workspace")
FIELDS = ("subject", "body", "participant", "bcc")
# What anyone but the owner is shown of a mailbox's mail, per visibility (Bcc: never).
SHOWN_TO_OTHERS: dict[str, frozenset[str]] = {
    "private": frozenset(),
    "metadata": frozenset({"participant"}),
    "subject": frozenset({"participant", "subject"}),
    "workspace": frozenset({"participant", "subject", "body"}),
}
# What an event subscriber is told (docs/event-visibility.md): the subject at `workspace` only.
PUBLISHED: dict[str, frozenset[str]] = {
    "private": frozenset(),
    "metadata": frozenset({"participant"}),
    "subject": frozenset({"participant"}),
    "workspace": frozenset({"participant", "subject"}),
}
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)

# Who owns which mailbox; the `key` mailbox was connected by an API key (visibility private).
OWNERS = {"alice": "private", "admin": "metadata", "owner": "subject", "bob": "workspace"}

# Every route, by how the matrix calls it:
#   public      without credentials;
#   read        by every caller, on every planted value of its path parameters;
#   write       by every caller with the request's documented example, on planted values;
#   spare       by every caller, on values that exist for this (mailboxes, users, keys, threads
#               that hold no canary), since the call changes or removes what it addresses;
#   send        by every caller, through `test_reply_and_forward_deliver_no_hidden_canary`;
#   events      answers holding copies of published events (webhook deliveries), held to what
#               events may publish by `test_published_events_carry_no_canary_the_policy_hides`.
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/health/live"): "public",
    ("GET", "/health/ready"): "public",
    ("GET", "/metrics"): "public",
    ("GET", "/asyncapi.json"): "public",
    ("POST", "/v1/workspaces"): "public",
    ("GET", "/v1/workspace"): "read",
    ("GET", "/v1/me"): "read",
    ("POST", "/v1/users"): "write",
    ("GET", "/v1/users"): "read",
    ("GET", "/v1/users/{user_id}"): "read",
    ("PATCH", "/v1/users/{user_id}"): "spare",
    ("DELETE", "/v1/users/{user_id}"): "spare",
    ("POST", "/v1/api-keys"): "write",
    ("GET", "/v1/api-keys"): "read",
    ("DELETE", "/v1/api-keys/{key_id}"): "spare",
    ("POST", "/v1/contacts"): "write",
    ("GET", "/v1/contacts"): "read",
    ("GET", "/v1/contacts/{contact_id}"): "read",
    ("PATCH", "/v1/contacts/{contact_id}"): "write",
    ("PUT", "/v1/contacts/by-external-id/{external_id}"): "write",
    ("GET", "/v1/contacts/{contact_id}/timeline"): "read",
    ("POST", "/v1/companies"): "write",
    ("GET", "/v1/companies"): "read",
    ("GET", "/v1/companies/{company_id}"): "read",
    ("PATCH", "/v1/companies/{company_id}"): "write",
    ("PUT", "/v1/companies/by-external-id/{external_id}"): "write",
    ("GET", "/v1/companies/{company_id}/timeline"): "read",
    ("POST", "/v1/deals"): "write",
    ("GET", "/v1/deals"): "read",
    ("GET", "/v1/deals/{deal_id}"): "read",
    ("PATCH", "/v1/deals/{deal_id}"): "write",
    ("PUT", "/v1/deals/by-external-id/{external_id}"): "write",
    ("GET", "/v1/deals/{deal_id}/timeline"): "read",
    ("POST", "/v1/imports/{record_type}"): "write",
    ("GET", "/v1/exports/{dataset}"): "read",
    ("POST", "/v1/mailboxes"): "write",
    ("GET", "/v1/mailboxes"): "read",
    ("GET", "/v1/mailboxes/{mailbox_id}"): "read",
    ("PATCH", "/v1/mailboxes/{mailbox_id}"): "spare",
    ("POST", "/v1/mailboxes/{mailbox_id}/resync"): "spare",
    ("POST", "/v1/mailboxes/{mailbox_id}/reconcile"): "spare",
    ("POST", "/v1/mailboxes/{mailbox_id}/approve-address"): "spare",
    ("GET", "/v1/mailboxes/{mailbox_id}/sync-summary"): "read",
    ("GET", "/v1/mailboxes/{mailbox_id}/skipped"): "read",
    ("POST", "/v1/mailboxes/{mailbox_id}/disconnect"): "spare",
    ("DELETE", "/v1/mailboxes/{mailbox_id}/synced-data"): "spare",
    ("POST", "/v1/mailboxes/{mailbox_id}/aliases"): "spare",
    ("POST", "/v1/mailboxes/{mailbox_id}/aliases/{address}/verify"): "spare",
    ("DELETE", "/v1/mailboxes/{mailbox_id}/aliases/{address}"): "spare",
    ("GET", "/v1/threads"): "read",
    ("GET", "/v1/threads/{thread_id}"): "read",
    ("POST", "/v1/threads/{thread_id}/reply"): "send",
    ("POST", "/v1/threads/{thread_id}/forward"): "send",
    ("GET", "/v1/threads/{thread_id}/suggestions"): "read",
    ("PUT", "/v1/threads/{thread_id}/links"): "write",
    ("POST", "/v1/threads/{thread_id}/private"): "spare",
    ("DELETE", "/v1/threads/{thread_id}/private"): "spare",
    ("GET", "/v1/messages"): "read",
    ("GET", "/v1/messages/{logged_message_id}"): "read",
    ("GET", "/v1/capture-rules"): "read",
    ("POST", "/v1/capture-rules/preview"): "write",
    ("PUT", "/v1/capture-rules"): "write",
    ("PATCH", "/v1/capture-rules"): "write",
    ("GET", "/v1/capture-decisions"): "read",
    ("POST", "/v1/send-requests"): "write",
    ("GET", "/v1/send-requests/{send_request_id}"): "read",
    ("GET", "/v1/send-requests"): "read",
    ("POST", "/v1/send-requests/{send_request_id}/cancel"): "write",
    ("POST", "/v1/attachments"): "write",
    ("POST", "/v1/webhooks"): "write",
    ("GET", "/v1/webhooks"): "read",
    ("GET", "/v1/webhooks/{webhook_id}"): "read",
    ("PATCH", "/v1/webhooks/{webhook_id}"): "spare",
    ("DELETE", "/v1/webhooks/{webhook_id}"): "spare",
    ("POST", "/v1/webhooks/{webhook_id}/rotate-secret"): "spare",
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): "events",
    ("GET", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"): "events",
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): "events",
    ("GET", "/console"): "read",
    ("POST", "/console/sign-in"): "public",
    ("POST", "/console/sign-out"): "public",
    ("GET", "/console/static/{name}"): "public",
    ("GET", "/console/mailboxes"): "read",
    ("GET", "/console/mailboxes/new"): "read",
    ("POST", "/console/mailboxes/review"): "write",
    ("POST", "/console/mailboxes"): "write",
    ("GET", "/console/mailboxes/{mailbox_id}"): "read",
    ("GET", "/console/contacts"): "read",
    ("GET", "/console/companies"): "read",
    ("GET", "/console/deals"): "read",
    ("GET", "/console/contacts/{contact_id}"): "read",
    ("GET", "/console/companies/{company_id}"): "read",
    ("GET", "/console/deals/{deal_id}"): "read",
    ("GET", "/console/threads/unassigned"): "read",
    ("POST", "/console/threads/{thread_id}/links"): "write",
    ("GET", "/console/capture-rules"): "read",
    ("POST", "/console/capture-rules/preview"): "write",
    ("POST", "/console/capture-rules"): "write",
}


# Console forms, filled as the documented rule example is (role addresses are kept out).
RULES_FORM = {
    "policy": "sent_and_received",
    "exclude_free_mail": "on",
    "exclude_automated": "on",
    "exclude_internal": "on",
}
FORMS: dict[str, dict[str, str]] = {
    "/console/capture-rules/preview": RULES_FORM,
    "/console/capture-rules": RULES_FORM,
}


@dataclass(frozen=True)
class Caller:
    name: str
    headers: dict[str, str]
    owns: frozenset[str]  # keys of `World.mailboxes` this caller owns
    sends: bool


@dataclass
class World:
    ws: ApiWorkspace
    ann: str  # the correspondent every mailbox writes with (a Dovecot account, a contact)
    callers: list[Caller]
    accounts: dict[str, MailAccount]  # mailbox key -> its Dovecot account
    mailboxes: dict[str, str]  # mailbox key -> id; keys: visibilities, "key", "spare"
    visibility: dict[str, str]  # mailbox key -> visibility
    canaries: dict[str, dict[str, str]]  # mail key -> field -> canary
    seen_in: dict[str, tuple[str, ...]]  # mail key -> the mailbox keys its message was seen in
    threads: dict[str, str]  # mail key -> thread id
    message_ids: dict[str, str]  # mail key -> Message-ID
    values: dict[str, list[str]] = field(default_factory=dict)  # path parameter -> values
    spare: dict[str, str] = field(default_factory=dict)
    events: Tap | None = None
    recipient: MailAccount | None = None

    def hidden_from(self, caller: Caller) -> set[str]:
        """Every canary the policy hides from `caller`."""
        hidden = set()
        for mail, fields in self.canaries.items():
            seen_in = self.seen_in[mail]
            if caller.owns & set(seen_in):
                continue
            shown = frozenset().union(*(SHOWN_TO_OTHERS[self.visibility[m]] for m in seen_in))
            hidden |= {canary for name, canary in fields.items() if name not in shown}
        return hidden

    def unpublished(self) -> set[str]:
        """Every canary no published event may carry."""
        hidden = set()
        for mail, fields in self.canaries.items():
            seen_in = self.seen_in[mail]
            told = frozenset().union(*(PUBLISHED[self.visibility[m]] for m in seen_in))
            hidden |= {canary for name, canary in fields.items() if name not in told}
        return hidden

    def everything(self) -> set[str]:
        return {c for fields in self.canaries.values() for c in fields.values()}

    def shown_to(self, caller: Caller) -> set[str]:
        return self.everything() - self.hidden_from(caller)


def canaries_for(mail: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        "subject": f"cnry{mail}subj{tag}",
        "body": f"cnry{mail}body{tag}",
        "participant": f"noreply-cnry{mail}cc{tag}@canary.test",
        "bcc": f"noreply-cnry{mail}bcc{tag}@canary.test",
    }


def raw_mail(
    sender: str,
    to: list[str],
    subject: str,
    body: str,
    *,
    cc: Iterable[str] = (),
    bcc: Iterable[str] = (),
    message_id: str,
    at: datetime,
    in_reply_to: str | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    if bcc:
        message["Bcc"] = ", ".join(bcc)  # kept on the sender's own copy
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(at)
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    message.set_content(body + "\n")
    return message


async def captured(
    ws: ApiWorkspace, mailbox_id: str, owner: str, raw: EmailMessage, uid: int
) -> MessageCaptured:
    """What capture hands associate for this copy (the bytes stored first, as ingest does)."""
    data = raw.as_bytes()
    raw_id = await store_raw(ws.store, data)

    def addresses(header: str) -> list[dict[str, str]]:
        value = raw.get(header)
        return (
            [{"address": a.addr_spec.lower(), "name": ""} for a in value.addresses] if value else []
        )

    sender = addresses("From")[0]
    message = MailMessage.model_validate(
        {
            "mailbox_id": mailbox_id,
            "owner_address": owner,
            "direction": "sent" if sender["address"] == owner else "received",
            "source": {
                "mailbox_id": mailbox_id,
                "folder": "INBOX",
                "folder_role": "inbox",
                "uidvalidity": 1,
                "uid": uid,
            },
            "raw_id": raw_id,
            "size": len(data),
            "message_id": raw["Message-ID"],
            "in_reply_to": str(raw.get("In-Reply-To", "")).split(),
            "subject": raw["Subject"],
            "date": raw["Date"].datetime,
            "from": sender,
            "to": addresses("To"),
            "cc": addresses("Cc"),
            "bcc": addresses("Bcc"),
        }
    )
    return MessageCaptured.create(
        source="/test", workspace_id=ws.id, data=CapturedMessage(message=message)
    )


async def plant(world: World, broker: RabbitBroker, api: httpx.AsyncClient) -> None:
    """One message per mailbox, from its owner to Ann, a canary Cc and a canary Bcc; and the
    conversation seen in Bob's and Alice's mailboxes whose last message is Alice's alone."""
    ws = world.ws
    uid = 0
    logged: list[str] = []

    async def log(mail: str, raw: EmailMessage, in_mailboxes: tuple[str, ...]) -> None:
        nonlocal uid
        for key in in_mailboxes:
            uid += 1
            owner = world.accounts[key].address
            await publish(broker, await captured(ws, world.mailboxes[key], owner, raw, uid))
        world.message_ids[mail] = raw["Message-ID"]
        logged.append(raw["Message-ID"])

    for n, key in enumerate([*VISIBILITIES, "key"]):
        canary = canaries_for(key)
        world.canaries[key] = canary
        world.seen_in[key] = (key,)
        raw = raw_mail(
            world.accounts[key].address,
            [world.ann],
            canary["subject"],
            canary["body"],
            cc=[canary["participant"]],
            bcc=[canary["bcc"]],
            message_id=f"<{key}.{uuid.uuid4().hex}@acme.test>",
            at=T0 + timedelta(hours=n),
        )
        await log(key, raw, (key,))

    opening = raw_mail(
        world.ann,
        [world.accounts["workspace"].address, world.accounts["private"].address],
        "Renewal terms",
        "Here are the renewal terms.",
        message_id=f"<opening.{uuid.uuid4().hex}@client.test>",
        at=T0 + timedelta(hours=10),
    )
    await log("opening", opening, ("workspace", "private"))
    world.seen_in["opening"] = ("workspace", "private")
    world.canaries["opening"] = {}
    canary = canaries_for("last")
    world.canaries["last"] = canary
    world.seen_in["last"] = ("private",)
    last = raw_mail(
        world.accounts["private"].address,
        [world.ann],
        canary["subject"],
        canary["body"],
        cc=[canary["participant"]],
        bcc=[canary["bcc"]],
        message_id=f"<last.{uuid.uuid4().hex}@acme.test>",
        at=T0 + timedelta(hours=11),
        in_reply_to=opening["Message-ID"],
    )
    await log("last", last, ("private",))

    async def all_logged() -> dict[str, str] | None:
        found = await ws.store.messages.find({"message_id": {"$in": logged}})
        if len(found) < len(logged):
            return None
        announced = await ws.store.announced_messages.count(
            {"_id": {"$in": [d["_id"] for d in found]}}
        )
        copies = sum(len(d["mailbox_ids"]) for d in found)
        if announced < len(found) or copies < uid:
            return None
        return {str(d["message_id"]): str(d["thread_id"]) for d in found}

    threads = await eventually(all_logged, timeout=90, interval=0.3, what="the planted mail logged")
    for mail, message_id in world.message_ids.items():
        world.threads[mail] = threads[message_id]
    assert world.threads["opening"] == world.threads["last"], "one conversation"
    # Capture's decisions about the canary addresses, as it records them for each copy.
    for mail, fields in world.canaries.items():
        if not fields:
            continue
        for name in ("participant", "bcc"):
            for key in world.seen_in[mail]:
                decision = CaptureDecisionDocument(
                    workspace_id=ws.id,
                    address=fields[name],
                    decision="skipped",
                    rule="role_address",
                    message_id=world.message_ids[mail],
                    mailbox_id=world.mailboxes[key],
                )
                await ws.store.capture_decisions.insert_or_update(
                    [(decision.to_document(), {"$set": {"at": decision.at}})]
                )


async def people(api: httpx.AsyncClient, ws: ApiWorkspace) -> dict[str, dict[str, str]]:
    found = {"owner": {"id": ws.owner_user_id, "token": ws.api_key}}
    for name, role in (
        ("admin", "admin"),
        ("alice", "member"),
        ("bob", "member"),
        ("viewer", "viewer"),
    ):
        found[name] = await invite(api, ws, role)
    return found


@pytest.fixture(scope="module")
async def world(
    infra: Infra,
    secret_key: str,
    service_env: dict[str, str],
    broker: RabbitBroker,
    api_db: AsyncDatabase[Document],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[World, httpx.AsyncClient]]:
    env = {**service_env, "MAILSYNC_MONGODB_DATABASE": API_DATABASE}
    settings = api_settings(infra, secret_key)
    log = tmp_path_factory.mktemp("matrix") / "send.log"
    sender: SendProcess | None = None
    async for api in running_api(settings):
        ws = await create_workspace(api, api_db, "Matrix")
        who = await people(api, ws)
        accounts = dict(
            zip(
                [*VISIBILITIES, "key", "spare", "recipient", "ann"],
                await asyncio.gather(
                    *(ready_account(infra, "acme.test", name) for name in VISIBILITIES),
                    ready_account(infra, "acme.test", "key"),
                    ready_account(infra, "acme.test", "spare"),
                    ready_account(infra, "elsewhere.test", "recipient"),
                    ready_account(infra, "client.test", "ann"),
                ),
                strict=True,
            )
        )
        owner_of = {OWNERS[name]: who[name]["id"] for name in OWNERS}
        mailboxes: dict[str, str] = {}
        visibility: dict[str, str] = {}
        for key in [*VISIBILITIES, "key", "spare"]:
            visible = key if key in VISIBILITIES else "private"
            mailbox = await store_mailbox(
                ws.store,
                infra,
                accounts[key],
                secret_key,
                owner_user_id=owner_of.get(key, who["owner"]["id"] if key == "spare" else None),
                visibility=visible,
                append_to_sent=False,
            )
            mailboxes[key] = mailbox.id
            visibility[key] = visible
        scopes = ("read", "write", "send", "export", "admin")
        keys = {scope: await system_key(api, ws, [scope]) for scope in scopes}
        callers = [
            Caller(
                name,
                bearer(who[name]["token"]),
                frozenset({OWNERS[name]}) if name in OWNERS else frozenset(),
                sends=name in OWNERS,
            )
            for name in ("owner", "admin", "alice", "bob", "viewer")
        ] + [
            Caller(f"key:{scope}", bearer(token), frozenset({"key"}), sends=scope == "send")
            for scope, token in keys.items()
        ]
        world = World(
            ws, accounts["ann"].address, callers, accounts, mailboxes, visibility, {}, {}, {}, {},
            recipient=accounts["recipient"],
        )  # fmt: skip
        async with taps(infra.rabbitmq_url) as tap:
            world.events = await tap(EVENTS_EXCHANGE.name, f"#.{ws.id}")
            contact = await api.post(
                "/v1/contacts", json={"name": "Ann", "emails": [world.ann]}, headers=ws.auth
            )
            company = await api.post(
                "/v1/companies",
                json={"name": "Client", "domains": ["client.test"]},
                headers=ws.auth,
            )
            deal = await api.post(
                "/v1/deals",
                json={"name": "Renewal", "contact_ids": [contact.json()["id"]]},
                headers=ws.auth,
            )
            hook = await api.post(
                "/v1/webhooks",
                json={
                    "url": "http://127.0.0.1:9/hook",
                    "event_types": ["mailsync.email.logged.v1"],
                },
                headers=ws.auth,
            )
            spare_hook = await api.post(
                "/v1/webhooks", json={"url": "http://127.0.0.1:9/spare"}, headers=ws.auth
            )
            for response in (contact, company, deal, hook, spare_hook):
                assert response.status_code == 201, response.text
            associate = create_associate_app(settings_from(env, AssociateSettings))
            sender = await asyncio.to_thread(start_send, env, log)
            try:
                async with running(associate):
                    await plant(world, broker, api)
                    await setup_values(
                        world, api, who, keys, contact, company, deal, hook, spare_hook
                    )
                    yield world, api
            finally:
                await asyncio.to_thread(stop_send, sender)


async def setup_values(
    world: World,
    api: httpx.AsyncClient,
    who: dict[str, dict[str, str]],
    keys: dict[str, str],
    *created: httpx.Response,
) -> None:
    """The values each path parameter takes: planted ones, and spares for changing calls."""
    ws = world.ws
    contact, company, deal, hook, spare_hook = (r.json() for r in created)
    spare_thread = await api.get("/v1/threads", headers=ws.auth)
    assert spare_thread.status_code == 200
    spare_user = await invite(api, ws, "member")
    spare_key = await api.post(
        "/v1/api-keys", json={"name": "spare", "scopes": ["read"]}, headers=ws.auth
    )
    # A scheduled request from every mailbox, with a canary Bcc, that never goes out.
    requests = []
    for key in [*VISIBILITIES, "key"]:
        caller = next(c for c in world.callers if key in c.owns and c.sends)
        response = await api.post(
            "/v1/send-requests",
            json={
                "mailbox_id": world.mailboxes[key],
                "to": [{"address": world.ann}],
                "bcc": [{"address": world.canaries[key]["bcc"]}],
                "subject": f"Re: {key}",
                "body_text": "Scheduled.",
                "send_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
            },
            headers=caller.headers,
        )
        assert response.status_code == 202, response.text
        requests.append(response.json()["id"])
    messages = await ws.store.messages.find({}, projection={"_id": 1})
    deliveries = await ws.store.collection("webhook_deliveries").find({}, projection={"_id": 1})
    world.values = {
        "thread_id": sorted(set(world.threads.values())),
        "logged_message_id": [str(m["_id"]) for m in messages],
        "mailbox_id": [world.mailboxes[k] for k in [*VISIBILITIES, "key"]],
        "contact_id": [contact["id"]],
        "company_id": [company["id"]],
        "deal_id": [deal["id"]],
        "send_request_id": requests,
        "user_id": [who[name]["id"] for name in who],
        "webhook_id": [hook["id"]],
        "delivery_id": [str(d["_id"]) for d in deliveries][:3] or ["nosuchdelivery0"],
        "record_type": ["contacts"],
        "dataset": ["threads", "messages", "contacts", "companies", "deals"],
        "external_id": ["matrix-ext"],
        "name": ["htmx.min.js"],
    }
    world.spare = {
        "mailbox_id": world.mailboxes["spare"],
        "user_id": spare_user["id"],
        "key_id": spare_key.json()["id"],
        "webhook_id": spare_hook["id"],
        "thread_id": "nosuchthread0",
        "address": "alias@acme.test",
    }


def request_example(openapi: dict[str, Any], method: str, path: str) -> Any:
    operation = openapi["paths"].get(path, {}).get(method.lower(), {})
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    media = content["application/json"]
    if "example" in media:
        return media["example"]
    ref = media["schema"].get("$ref", "")
    schema = openapi["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
    return (schema.get("examples") or [{}])[0]


def queries(world: World, path: str) -> list[dict[str, str]]:
    """The query strings a route is tried with: every search a hidden canary could answer."""
    addresses = [f[n] for f in world.canaries.values() for n in ("participant", "bcc") if f]
    subjects = [f["subject"] for f in world.canaries.values() if f]
    if path == "/v1/threads":
        return [
            {},
            {"unassigned": "true"},
            {"since": (T0 + timedelta(hours=10, minutes=30)).isoformat()},
            *({"participant": a} for a in addresses),
            *({"subject": s[:12]} for s in subjects),
        ]
    if path == "/v1/messages":
        return [{"message_id": m} for m in world.message_ids.values()]
    if path == "/v1/capture-decisions":
        return [{"address": a} for a in [*addresses, world.ann]]
    if path == "/v1/exports/{dataset}":
        return [{"format": "json"}, {"format": "csv"}]
    if path == "/v1/mailboxes/{mailbox_id}/synced-data":
        return [{"confirm": world.accounts["spare"].address}]
    if path == "/v1/send-requests":
        return [{}, {"mailbox_id": world.mailboxes["workspace"]}]
    return [{}]


def urls(world: World, kind: str, path: str) -> Iterator[str]:
    """The path with each combination of values its parameters take for this kind of call."""
    params = re.findall(r"\{(\w+)\}", path)
    if not params:
        yield path
        return
    table = dict(world.values)
    if kind == "spare":
        table |= {name: [value] for name, value in world.spare.items()}
    unknown = [p for p in params if p not in table]
    assert unknown == [], f"{path}: give the parameters {unknown} values in setup_values"
    combos: list[dict[str, str]] = [{}]
    for param in params:
        combos = [{**combo, param: value} for combo in combos for value in table[param]]
    for combo in combos:
        url = path
        for name, value in combo.items():
            url = url.replace(f"{{{name}}}", value)
        yield url


async def test_every_route_is_classified(infra: Infra, secret_key: str) -> None:
    served = set(api_routes(api_settings(infra, secret_key)))
    assert served - set(ROUTES) == set(), "classify these routes in ROUTES"
    assert set(ROUTES) - served == set(), "routes in ROUTES that the app no longer serves"


def leaked(text: str, hidden: set[str]) -> list[str]:
    return sorted(canary for canary in hidden if canary in text)


async def test_no_answer_carries_a_canary_the_policy_hides(
    world: tuple[World, httpx.AsyncClient],
) -> None:
    w, api = world
    openapi = (await api.get("/openapi.json")).json()
    leaks: list[tuple[str, str, str, int, list[str]]] = []
    tried = 0
    at_once = asyncio.Semaphore(6)

    async def attempt(caller: Caller | None, method: str, url: str, query: dict[str, str],
                      body: Any, form: dict[str, str] | None) -> None:  # fmt: skip
        nonlocal tried
        hidden = w.everything() if caller is None else w.hidden_from(caller)
        async with at_once:
            response = await api.request(
                method,
                url,
                params=query,
                json=body,
                data=form,
                headers={} if caller is None else caller.headers,
            )
        tried += 1
        asked = url + json.dumps(query)  # an answer may echo what was asked
        found = [c for c in leaked(response.text, hidden) if c not in asked]
        if found:
            who = "anyone" if caller is None else caller.name
            leaks.append((who, method, url + str(query), response.status_code, found))

    # Reads at once; then, one at a time, calls that change something (spares last).
    for kinds, together in ((("read", "public"), True), (("write",), False), (("spare",), False)):
        calls = []
        for (method, path), kind in ROUTES.items():
            if kind not in kinds:
                continue
            body = request_example(openapi, method, path) if method != "GET" else None
            callers: list[Caller | None] = [None] if kind == "public" else list(w.callers)
            for caller in callers:
                for url in urls(w, kind, path):
                    for query in queries(w, path):
                        calls.append((caller, method, url, query, body, FORMS.get(path)))
        if together:
            await asyncio.gather(*(attempt(*call) for call in calls))
        else:
            for call in calls:
                await attempt(*call)

    assert tried > 500
    assert leaks == [], "\n".join(map(str, leaks))


async def test_each_caller_is_shown_what_the_policy_shows(
    world: tuple[World, httpx.AsyncClient],
) -> None:
    """The sweep above proves nothing if nothing is shown: every caller finds, through thread
    reads, each canary the policy shows them; owners their own mail's Bcc."""
    w, api = world
    missing = {}
    readers = [c for c in w.callers if not c.name.startswith("key:") or c.name == "key:read"]
    for caller in readers:
        texts = []
        listed = await api.get("/v1/threads", params={"limit": 50}, headers=caller.headers)
        assert listed.status_code == 200, (caller.name, listed.text)
        texts.append(listed.text)
        for thread in listed.json()["items"]:
            texts.append(
                (await api.get(f"/v1/threads/{thread['id']}", headers=caller.headers)).text
            )
        shown = w.shown_to(caller)
        absent = sorted(c for c in shown if not any(c in t for t in texts))
        if absent:
            missing[caller.name] = absent
    assert missing == {}
    alice = next(c for c in w.callers if c.name == "alice")
    bcc = w.canaries["last"]["bcc"]
    thread = await api.get(f"/v1/threads/{w.threads['last']}", headers=alice.headers)
    assert bcc in thread.json()["participants"], "the owner sees the Bcc of her own mail"


def readable(raw: bytes) -> str:
    """Everything a recipient could read of a delivered message: its bytes, its decoded headers
    and every part decoded, forwarded messages included."""
    texts = [raw.decode("utf-8", "replace")]
    for part in email.message_from_bytes(raw, policy=policy.default).walk():
        texts.extend(f"{name}: {value}" for name, value in part.items())
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                texts.append(payload.decode("utf-8", "replace"))
    return "\n".join(texts)


async def test_reply_and_forward_deliver_no_hidden_canary(
    world: tuple[World, httpx.AsyncClient], infra: Infra
) -> None:
    """Every caller that may send replies to and forwards each thread from their own mailbox,
    by default and naming each message; what reaches Dovecot holds nothing hidden from them."""
    w, api = world
    recipient = w.recipient
    assert recipient is not None
    to = [{"address": recipient.address}]
    expected: dict[str, set[str]] = {}  # Message-ID of a delivered mail -> what it must not hold
    refused = []
    for caller in w.callers:
        if not caller.sends:
            continue
        mailbox = w.mailboxes[sorted(caller.owns)[0]]
        hidden = w.hidden_from(caller)
        for mail, thread in w.threads.items():
            attempts: list[tuple[str, dict[str, Any]]] = [
                ("reply", {"body_text": "Noted.", "mailbox_id": mailbox}),
                ("forward", {"to": to, "mailbox_id": mailbox, "body_text": "FYI"}),
                ("forward", {"to": to, "mailbox_id": mailbox, "message_id": w.message_ids[mail]}),
            ]
            for action, body in attempts:
                if action == "reply":
                    body = {**body, "cc": to}
                response = await api.post(
                    f"/v1/threads/{thread}/{action}", json=body, headers=caller.headers
                )
                assert not leaked(response.text, hidden), (caller.name, action, mail)
                if response.status_code == 202:
                    expected[response.json()["message_id"]] = hidden
                else:
                    refused.append((caller.name, action, mail, response.status_code))
                    assert response.status_code in (403, 404, 409, 422), response.text

    assert len(expected) >= 10, "enough replies and forwards went out to prove anything"

    async def delivered() -> list[bytes] | None:
        found = await asyncio.to_thread(fetch_all, infra, recipient)
        ids = {email.message_from_bytes(raw)["Message-ID"] for raw in found}
        return found if set(expected) <= ids else None

    mails = await eventually(
        delivered, timeout=90, interval=0.5, what="replies and forwards delivered"
    )
    leaks = []
    for raw in mails:
        message_id = email.message_from_bytes(raw)["Message-ID"]
        if message_id in expected:
            found = leaked(readable(raw), expected[message_id])
            if found:
                leaks.append((message_id, found))
    assert leaks == []
    forwarded_in_full = [raw for raw in mails if w.canaries["workspace"]["body"].encode() in raw]
    assert forwarded_in_full, "a forward of mail shared in full carries its body"


async def test_published_events_carry_no_canary_the_policy_hides(
    world: tuple[World, httpx.AsyncClient],
) -> None:
    """What subscribers were told, on the public exchange and in webhook deliveries, about the
    planted mail, the links set and the replies sent: no Bcc ever, a subject only from
    `workspace` mailboxes, nothing of a `private` one beyond ids. Runs after the sweep and the
    sends, so their events are in too."""
    w, api = world
    assert w.events is not None
    await w.events.drain()
    events = w.events.events()
    logged = [e for e in events if e["type"] == "mailsync.email.logged.v1"]
    assert len(logged) >= len(w.message_ids), "every planted message was announced"
    hidden = w.unpublished()
    told = [(e["type"], json.dumps(e)) for e in events]
    assert [(kind, leaked(text, hidden)) for kind, text in told if leaked(text, hidden)] == []
    workspace_subject = w.canaries["workspace"]["subject"]
    assert any(workspace_subject in text for _, text in told), "a shared subject is told"

    deliveries = w.ws.store.collection("webhook_deliveries")
    hook = w.values["webhook_id"][0]

    async def recorded() -> list[Document] | None:
        found = await deliveries.find({"subscription_id": hook}, projection={"_id": 1})
        return found if len(found) >= len(w.message_ids) else None

    found = await eventually(recorded, timeout=60, interval=0.5, what="webhook deliveries")
    leaks = []
    for caller in w.callers:
        answers = [await api.get(f"/v1/webhooks/{hook}/deliveries", headers=caller.headers)]
        for delivery in found:
            url = f"/v1/webhooks/{hook}/deliveries/{delivery['_id']}"
            answers.append(await api.get(url, headers=caller.headers))
            answers.append(await api.post(f"{url}/replay", headers=caller.headers))
        leaks += [
            (caller.name, str(a.url), leaked(a.text, hidden))
            for a in answers
            if leaked(a.text, hidden)
        ]
    assert leaks == []
