"""Re-encrypting every stored credential (mailbox passwords and tokens, webhook signing
secrets) with the newest secret key (an operator command)."""

import asyncio
import logging
from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.crypto import CredentialCipher, CredentialError
from mailsync_shared.settings import SecretSettings
from mailsync_shared.storage.client import Document, connect, database
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.structured_logging import configure_logging

# Where a mailbox keeps encrypted values: each server account's password or refresh token,
# and its OAuth client secret.
ENCRYPTED_FIELDS = tuple(
    f"{account}.{field}"
    for account in ("imap", "smtp")
    for field in ("secret_encrypted", "client_secret_encrypted")
)

# Where a webhook subscription keeps its signing secrets.
WEBHOOK_SECRET_FIELDS = ("secret_encrypted", "previous_secret_encrypted")

logger = logging.getLogger(__name__)


@dataclass
class RotationReport:
    mailboxes: int = 0
    credentials: int = 0
    unreadable: int = 0
    webhook_secrets: int = 0


async def rotate_credentials(
    db: AsyncDatabase[Document], cipher: CredentialCipher
) -> RotationReport:
    """Encrypt every stored credential again with `cipher`'s newest key, workspace by workspace.

    A credential none of the keys opens is left as it is and counted, so the old key is not
    dropped while something still needs it.
    """
    report = RotationReport()
    for workspace_id in sorted(await db["mailboxes"].distinct("workspace_id")):
        store = WorkspaceStore(db, str(workspace_id))
        projection = {field: 1 for field in ENCRYPTED_FIELDS}
        async for mailbox in store.mailboxes.iterate(projection=projection):
            changes: dict[str, str] = {}
            for field in ENCRYPTED_FIELDS:
                account, name = field.split(".")
                token = (mailbox.get(account) or {}).get(name)
                if not token:
                    continue
                try:
                    changes[field] = cipher.rotate(token)
                except CredentialError:
                    report.unreadable += 1
                    logger.warning(
                        "credential not rotated: no key opens it",
                        extra={"workspace_id": workspace_id, "mailbox_id": mailbox["_id"]},
                    )
            if changes:
                await store.mailboxes.update_one({"_id": mailbox["_id"]}, {"$set": changes})
                report.mailboxes += 1
                report.credentials += len(changes)
    await _rotate_webhook_secrets(db, cipher, report)
    logger.info("credentials rotated", extra=vars(report))
    return report


async def _rotate_webhook_secrets(
    db: AsyncDatabase[Document], cipher: CredentialCipher, report: RotationReport
) -> None:
    for workspace_id in sorted(await db["webhook_subscriptions"].distinct("workspace_id")):
        subscriptions = WorkspaceStore(db, str(workspace_id)).collection("webhook_subscriptions")
        projection = {field: 1 for field in WEBHOOK_SECRET_FIELDS}
        async for subscription in subscriptions.iterate(projection=projection):
            changes: dict[str, str] = {}
            for field in WEBHOOK_SECRET_FIELDS:
                token = subscription.get(field)
                if not token:
                    continue
                try:
                    changes[field] = cipher.rotate(token)
                except CredentialError:
                    report.unreadable += 1
                    logger.warning(
                        "webhook secret not rotated: no key opens it",
                        extra={
                            "workspace_id": workspace_id,
                            "subscription_id": subscription["_id"],
                        },
                    )
            if changes:
                await subscriptions.update_one({"_id": subscription["_id"]}, {"$set": changes})
                report.webhook_secrets += len(changes)


async def _rotate(settings: SecretSettings) -> RotationReport:
    client = connect(settings)
    try:
        return await rotate_credentials(
            database(client, settings), CredentialCipher(settings.secret_key)
        )
    finally:
        await client.close()


def run_rotation() -> int:
    """`python -m mailsync_shared.crypto rotate`: exit status 1 if a credential stayed unread."""
    settings = SecretSettings()
    configure_logging("crypto", settings.log_level)
    report = asyncio.run(_rotate(settings))
    print(
        f"re-encrypted {report.credentials} credentials of {report.mailboxes} mailboxes and "
        f"{report.webhook_secrets} webhook secrets; {report.unreadable} could not be read"
    )
    return 1 if report.unreadable else 0
