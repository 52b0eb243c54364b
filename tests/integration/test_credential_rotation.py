"""Rotating the secret key: `python -m mailsync_shared.crypto rotate` on the real database."""

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.crypto import CredentialCipher, CredentialError
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument, ServerAccount
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.webhooks.documents import WebhookSubscriptionDocument

pytestmark = pytest.mark.integration


def cipher(*keys: str) -> CredentialCipher:
    return CredentialCipher(SecretStr(",".join(keys)))


async def stored_mailbox(
    db: AsyncDatabase[Document], workspace_id: str, encrypt: CredentialCipher, secret: str
) -> str:
    imap = ServerAccount(
        host="imap.acme.test", port=993, username="u", secret_encrypted=encrypt.encrypt(secret)
    )
    smtp = ServerAccount(
        host="smtp.acme.test",
        port=465,
        username="u",
        auth="xoauth2",
        secret_encrypted=encrypt.encrypt(f"refresh-{secret}"),
        client_secret_encrypted=encrypt.encrypt(f"client-{secret}"),
    )
    mailbox = MailboxDocument(
        workspace_id=workspace_id, address=f"{secret}@acme.test", imap=imap, smtp=smtp
    )
    await WorkspaceStore(db, workspace_id).mailboxes.insert_one(mailbox.to_document())
    return mailbox.id


@pytest.fixture
async def own_db(mongo: AsyncDatabase[Document]) -> AsyncIterator[AsyncDatabase[Document]]:
    """A database of this test's own: rotation touches every mailbox of the database."""
    db = mongo.client[f"mailsync_test_rotation_{uuid.uuid4().hex[:8]}"]
    yield db
    await mongo.client.drop_database(db.name)


async def rotate(
    service_env: dict[str, str], db: AsyncDatabase[Document], keys: str
) -> tuple[int, str]:
    env = {
        **os.environ,
        **service_env,
        "MAILSYNC_MONGODB_DATABASE": db.name,
        "MAILSYNC_SECRET_KEYS": keys,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mailsync_shared.crypto",
        "rotate",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_rotation_reencrypts_every_credential_so_the_old_key_can_go(
    own_db: AsyncDatabase[Document], service_env: dict[str, str]
) -> None:
    mongo = own_db
    old, new, lost = (Fernet.generate_key().decode() for _ in range(3))
    workspaces = [f"ws-rotate-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    ids = {
        secret: (ws, await stored_mailbox(mongo, ws, cipher(old), secret))
        for ws, secret in zip(workspaces, ("alice", "bob"), strict=True)
    }
    unreadable_ws = f"ws-rotate-{uuid.uuid4().hex[:8]}"
    await stored_mailbox(mongo, unreadable_ws, cipher(lost), "carol")

    status, output = await rotate(service_env, mongo, f"{new},{old}")

    assert status == 1, output
    assert "3 could not be read" in output
    only_new, only_old = cipher(new), cipher(old)
    for secret, (ws, mailbox_id) in ids.items():
        stored = await WorkspaceStore(mongo, ws).mailboxes.find_one({"_id": mailbox_id})
        assert stored is not None
        tokens = [
            stored["imap"]["secret_encrypted"],
            stored["smtp"]["secret_encrypted"],
            stored["smtp"]["client_secret_encrypted"],
        ]
        assert [only_new.decrypt(token) for token in tokens] == [
            secret,
            f"refresh-{secret}",
            f"client-{secret}",
        ]
        with pytest.raises(CredentialError):
            only_old.decrypt(tokens[0])
    untouched = await WorkspaceStore(mongo, unreadable_ws).mailboxes.find_one({})
    assert untouched is not None
    assert cipher(lost).decrypt(untouched["imap"]["secret_encrypted"]) == "carol"
    await mongo["mailboxes"].delete_many({"workspace_id": unreadable_ws})

    again, output = await rotate(service_env, mongo, new)

    assert again == 0, output


async def test_rotation_reencrypts_webhook_signing_secrets_too(
    own_db: AsyncDatabase[Document], service_env: dict[str, str]
) -> None:
    old, new = (Fernet.generate_key().decode() for _ in range(2))
    workspace_id = f"ws-rotate-{uuid.uuid4().hex[:8]}"
    subscription = WebhookSubscriptionDocument(
        workspace_id=workspace_id,
        url="https://crm.acme.test/hooks",
        event_types=["mailsync.email.logged.v1"],
        secret_encrypted=cipher(old).encrypt("whsec_current"),
        previous_secret_encrypted=cipher(old).encrypt("whsec_previous"),
    )
    subscriptions = WorkspaceStore(own_db, workspace_id).collection("webhook_subscriptions")
    await subscriptions.insert_one(subscription.to_document())

    status, output = await rotate(service_env, own_db, f"{new},{old}")

    assert status == 0, output
    assert "2 webhook secrets" in output
    stored = await subscriptions.find_one({"_id": subscription.id})
    assert stored is not None
    assert cipher(new).decrypt(stored["secret_encrypted"]) == "whsec_current"
    assert cipher(new).decrypt(stored["previous_secret_encrypted"]) == "whsec_previous"
