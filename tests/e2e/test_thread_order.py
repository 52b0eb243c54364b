"""The same conversations give the same threads backfilled (newest first), arriving live, and
seen by two mailboxes at once.

Mailboxes in three workspaces receive the same mail through Dovecot and all five services:
one has it all before it is connected (the backfill processes replies before the messages they
answer); one is connected first and gets each message live, oldest first, each logged before
the next arrives; and in the third workspace two mailboxes hold copies of every message and are
connected together, so their backfills race to log the same mail. All end with the threads
written down below, including header-less replies (subject fallback) whose original is
processed after them.
"""

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.storage.client import Document
from tests.support.infra import Infra
from tests.support.mail import (
    MailAccount,
    build_message,
    create_account,
    deliver,
    mailbox_connection,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

ANN = "ann@client.test"
CARL = "carl@other.test"
BEN = "ben@client.test"

# (key, subject, hours after the start, sender is the owner?, other party, parents)
CONVERSATIONS = [
    ("a0", "Proposal", 0, False, ANN, []),
    ("a1", "Re: Proposal", 2, True, ANN, ["a0"]),
    ("a2", "Re: Proposal", 5, False, ANN, ["a0", "a1"]),
    ("b0", "Budget", 24, False, ANN, []),
    ("b1", "RE: Budget", 26, True, ANN, []),
    ("b2", "Re: Budget", 30, False, ANN, []),
    ("e0", "Proposal", 1, False, CARL, []),
    ("e1", "Re: Proposal", 3, True, CARL, []),
    ("f0", "Invoice", 40, False, BEN, []),
    ("f1", "Invoice", 60, False, BEN, []),
    ("g0", "Plan", 48, False, ANN, []),
    ("g1", "Re: Plan", 49, True, ANN, ["g0"]),
    ("g2", "Re: Plan", 51, False, ANN, []),
]
EXPECTED = {
    frozenset({"a0", "a1", "a2"}),
    frozenset({"b0", "b1", "b2"}),
    frozenset({"e0", "e1"}),
    frozenset({"f0"}),
    frozenset({"f1"}),
    frozenset({"g0", "g1", "g2"}),
}


def mail(owner: str, start: datetime) -> list[EmailMessage]:
    """The conversations, oldest first."""
    messages = []
    for key, subject, hours, by_owner, party, parents in sorted(
        CONVERSATIONS, key=lambda item: item[2]
    ):
        ids = [f"<{parent}@order.test>" for parent in parents]
        message = build_message(
            sender=owner if by_owner else party,
            to=[party if by_owner else owner],
            subject=subject,
            body=f"message {key}",
            in_reply_to=ids[-1] if ids else None,
            references=ids or None,
            date=start + timedelta(hours=hours),
        )
        message.replace_header("Message-ID", f"<{key}@order.test>")
        messages.append(message)
    return messages


async def connect(
    api: httpx.AsyncClient, infra: Infra, account: MailAccount, *, api_key: str | None = None
) -> tuple[str, str]:
    """Connect the account's mailbox, in a new workspace unless `api_key` names one; the
    workspace's id and key."""
    if api_key is None:
        workspace = (await api.post("/v1/workspaces", json={"name": account.address})).json()
        workspace_id, api_key = str(workspace["id"]), str(workspace["api_key"])
    else:
        me = (await api.get("/v1/me", headers={"Authorization": f"Bearer {api_key}"})).json()
        workspace_id = str(me["workspace_id"])
    connected = await api.post(
        "/v1/mailboxes",
        headers={"Authorization": f"Bearer {api_key}"},
        json=mailbox_connection(infra, account, sync={"backfill_days": 30}),
    )
    assert connected.status_code == 201, connected.text
    return workspace_id, api_key


async def partition(mongo: AsyncDatabase[Document], workspace_id: str) -> set[frozenset[str]]:
    threads: dict[str, set[str]] = {}
    for document in await mongo["messages"].find({"workspace_id": workspace_id}).to_list():
        key = document["message_id"].strip("<>").removesuffix("@order.test")
        threads.setdefault(document["thread_id"], set()).add(key)
    return {frozenset(keys) for keys in threads.values()}


async def test_backfilled_and_live_mail_end_on_the_same_threads(
    api_url: str, infra: Infra, mongo: AsyncDatabase[Document]
) -> None:
    start = (datetime.now(UTC) - timedelta(days=4)).replace(microsecond=0)
    backfilled = create_account(infra, "acme.test", "backfilled")
    live = create_account(infra, "acme.test", "live")
    racing = create_account(infra, "acme.test", "racing")
    colleague = create_account(infra, "acme.test", "colleague")
    for message in mail(backfilled.address, start):
        deliver(infra, message, [backfilled.address])
    for message in mail(racing.address, start):
        for recipient in (racing.address, colleague.address):  # LMTP answers once per recipient
            deliver(infra, message, [recipient])
    messages = mongo["messages"]
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as api:
        backfill_workspace, _ = await connect(api, infra, backfilled)
        live_workspace, _ = await connect(api, infra, live)
        racing_workspace, key = await connect(api, infra, racing)
        await connect(api, infra, colleague, api_key=key)

        async def logged(workspace_id: str, count: int) -> bool:
            return await messages.count_documents({"workspace_id": workspace_id}) >= count

        await eventually(
            lambda: logged(backfill_workspace, len(CONVERSATIONS)), what="backfill", timeout=120
        )

        async def both_copies() -> bool:
            copies = await messages.find(
                {"workspace_id": racing_workspace}, {"mailbox_ids": 1}
            ).to_list()
            return len(copies) == len(CONVERSATIONS) and all(
                len(copy["mailbox_ids"]) == 2 for copy in copies
            )

        await eventually(both_copies, what="both mailboxes' copies logged", timeout=120)
        for count, message in enumerate(mail(live.address, start), start=1):
            deliver(infra, message, [live.address])
            await eventually(
                lambda count=count: logged(live_workspace, count),  # type: ignore[misc]
                what=f"live message {count}",
                timeout=60,
            )

    assert await partition(mongo, backfill_workspace) == EXPECTED
    assert await partition(mongo, live_workspace) == EXPECTED
    assert await partition(mongo, racing_workspace) == EXPECTED
