"""Re-encrypting every stored credential (mailbox passwords and tokens, webhook signing
secrets) with the newest secret key (an operator command)."""

import asyncio
import logging
from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.crypto import CredentialCipher, CredentialError
from mailsync_shared.settings import SecretSettings
from mailsync_shared.storage.client import Document, connect, database
from mailsync_shared.storage.documents import SECRET_FIELDS
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.structured_logging import configure_logging

# Where a mailbox keeps encrypted values: each server account's password or refresh token,
# and its OAuth client secret (every `*_encrypted` field, the ones disconnecting erases).
ENCRYPTED_FIELDS = tuple(
    f"{account}.{field}" for account in ("imap", "smtp") for field in SECRET_FIELDS
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
    report.mailboxes, report.credentials = await _rotate_fields(
        db, cipher, report, "mailboxes", ENCRYPTED_FIELDS, "credential", "mailbox_id"
    )
    _, report.webhook_secrets = await _rotate_fields(
        db,
        cipher,
        report,
        "webhook_subscriptions",
        WEBHOOK_SECRET_FIELDS,
        "webhook secret",
        "subscription_id",
    )
    logger.info("credentials rotated", extra=vars(report))
    return report


async def _rotate_fields(
    db: AsyncDatabase[Document],
    cipher: CredentialCipher,
    report: RotationReport,
    collection: str,
    fields: tuple[str, ...],
    what: str,
    id_key: str,
) -> tuple[int, int]:
    """Re-encrypt `fields` (dotted paths) of every document of `collection`; count the ones no
    key opens in `report` and log them as `what`, with the document's id as `id_key`. Returns
    how many documents and values changed."""
    documents = values = 0
    for workspace_id in sorted(await db[collection].distinct("workspace_id")):
        stored = WorkspaceStore(db, str(workspace_id)).collection(collection)
        async for document in stored.iterate(projection=dict.fromkeys(fields, 1)):
            changes: dict[str, str] = {}
            for field in fields:
                token = _at_path(document, field)
                if not token:
                    continue
                try:
                    changes[field] = cipher.rotate(token)
                except CredentialError:
                    report.unreadable += 1
                    logger.warning(
                        f"{what} not rotated: no key opens it",
                        extra={"workspace_id": workspace_id, id_key: document["_id"]},
                    )
            if changes:
                await stored.update_one({"_id": document["_id"]}, {"$set": changes})
                documents += 1
                values += len(changes)
    return documents, values


def _at_path(document: Document, path: str) -> str | None:
    value: object = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, str) else None


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
