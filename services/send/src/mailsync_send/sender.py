"""Carrying out one send request, so that a retry or a redelivery never sends it twice.

1. Compose the message (a pure function of the request) and store its bytes.
2. Claim the request (`queued` -> `sending`, one more attempt) with an atomic write.
3. A request recovered from `sending` first looks for its Message-ID in the Sent folder: if the
   message is there, the server took it and it is only recorded.
4. Relay it; record `sent` at once, the narrowest window between acceptance and our record.
5. Report: save the copy in Sent (unless it is there), publish `email.sent`, set `reported_at`.
   A redelivered request that is `sent` but not reported repeats only this step.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_send.compose import ComposedMessage, ComposeError, compose
from mailsync_send.hosts import UnsafeHostError, check_public_host
from mailsync_send.outbox import Outbox
from mailsync_send.relay import RelayError, RelayResult, SmtpAccount, relay
from mailsync_send.sent_folder import ImapAccount, SentFolder, SentFolderError
from mailsync_send.settings import Settings
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import MailMessage
from mailsync_shared.contracts.outbound import EmailSendFailed, EmailSent, SendFailure, SentEmail
from mailsync_shared.crypto import CredentialCipher, CredentialError
from mailsync_shared.ids import stable_id
from mailsync_shared.messaging import EventPublisher, PermanentError
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument, SendRequestDocument, ServerAccount
from mailsync_shared.storage.raw_messages import store_raw
from mailsync_shared.storage.scoped import WorkspaceStore

SOURCE = "/mailsync/send"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Done:
    """Nothing more to do for this delivery of the request."""

    result: str


@dataclass(frozen=True)
class RetryLater:
    """Ask again after `delay` seconds."""

    delay: float
    reason: str


Outcome = Done | RetryLater


class AccountError(Exception):
    """The mailbox's stored account cannot be used as it is."""


def password_of(account: ServerAccount, cipher: CredentialCipher) -> str:
    if account.auth != "password":
        raise AccountError(f"{account.auth} authentication is not supported yet")
    if not account.secret_encrypted:
        raise AccountError("the mailbox has no stored password")
    try:
        return cipher.decrypt(account.secret_encrypted)
    except CredentialError as error:
        raise AccountError(str(error)) from error


def sent_message(
    request: SendRequestDocument,
    mailbox_id: str,
    owner: str,
    composed: ComposedMessage,
    raw_id: str,
) -> MailMessage:
    return MailMessage(
        mailbox_id=mailbox_id,
        owner_address=owner,
        direction="sent",
        raw_id=raw_id,
        size=len(composed.data),
        message_id=composed.message_id,
        in_reply_to=list(composed.in_reply_to),
        references=list(composed.references),
        subject=composed.subject,
        date=composed.date,
        from_=composed.from_,
        to=list(composed.to),
        cc=list(composed.cc),
        bcc=list(composed.bcc),
        send_request_id=request.id,
    )


class Sender:
    """Sends requests through their mailbox's SMTP server and reports the outcome."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        publisher: EventPublisher,
        cipher: CredentialCipher,
        settings: Settings,
    ) -> None:
        self._db = db
        self._publisher = publisher
        self._cipher = cipher
        self._settings = settings

    async def handle(self, workspace_id: str, request_id: str) -> Outcome:
        store = WorkspaceStore(self._db, workspace_id)
        outbox = Outbox(
            store, claim_timeout=timedelta(seconds=self._settings.claim_timeout_seconds)
        )
        request = await outbox.get(request_id)
        if request is None:
            raise PermanentError(f"send request {request_id} does not exist in {workspace_id}")
        log = {"workspace_id": workspace_id, "send_request_id": request_id}
        if request.state in ("failed", "unknown", "cancelled"):
            return Done(f"already {request.state}")
        if request.state == "sent" and request.reported_at is not None:
            return Done("already sent")

        mailbox = await self._mailbox(store, request.mailbox_id)
        owner = mailbox.address if mailbox else request.from_.address
        try:
            composed = compose(request, mailbox_address=owner)
        except ComposeError as error:
            return await self._give_up(store, outbox, request, "failed", str(error))
        if request.state == "sent":
            return await self._report(store, outbox, request, mailbox, composed)
        if mailbox is None or mailbox.status.state == "disconnected":
            reason = "the sending mailbox is not connected"
            return await self._give_up(store, outbox, request, "failed", reason)

        if request.state == "sending" and request.claimed_until is not None:
            remaining = (request.claimed_until - utcnow()).total_seconds()
            if remaining > 0:
                return RetryLater(min(remaining, 60.0) + 1.0, "another attempt holds it")
        recovering = request.state == "sending"
        claimed = await outbox.claim(request)
        if claimed is None:
            return RetryLater(1.0, "another attempt holds it")
        request = claimed

        raw_id = await store_raw(store, composed.data)
        if recovering:
            try:
                folder = await self._sent_folder(mailbox)
                delivered = await folder.contains_message_id(composed.message_id)
            except (SentFolderError, AccountError, UnsafeHostError, OSError) as error:
                failure = RelayError(
                    f"cannot check the Sent folder: {error}", permanent=False, ambiguous=True
                )
                return await self._failed(store, outbox, request, failure)
            if delivered:
                logger.info("found in Sent, not sending again", extra=log)
                sent = await outbox.mark_sent(request, raw_id=raw_id, note=None)
                if sent is None:
                    return Done("moved on by another attempt")
                return await self._report(store, outbox, sent, mailbox, composed)

        try:
            result = await self._relay(mailbox, composed)
        except RelayError as error:
            logger.warning(
                "send attempt failed",
                extra={**log, "reason": error.reason, "permanent": error.permanent},
            )
            return await self._failed(store, outbox, request, error)
        note = None
        if result.refused:
            note = "not accepted for " + "; ".join(f"{a}: {r}" for a, r in result.refused.items())
        sent = await outbox.mark_sent(request, raw_id=raw_id, note=note)
        logger.info("sent", extra={**log, "accepted": len(result.accepted)})
        if sent is None:
            return Done("moved on by another attempt")
        return await self._report(store, outbox, sent, mailbox, composed)

    async def _mailbox(self, store: WorkspaceStore, mailbox_id: str) -> MailboxDocument | None:
        document = await store.mailboxes.find_one({"_id": mailbox_id})
        return None if document is None else MailboxDocument.from_document(document)

    async def _sent_folder(self, mailbox: MailboxDocument) -> SentFolder:
        account = mailbox.imap
        await check_public_host(
            account.host, account.port, allow_private=self._settings.allow_private_hosts
        )
        return SentFolder(
            ImapAccount(
                account.host,
                account.port,
                account.security,
                account.username,
                password_of(account, self._cipher),
            ),
            timeout=self._settings.imap_timeout_seconds,
        )

    async def _relay(self, mailbox: MailboxDocument, composed: ComposedMessage) -> RelayResult:
        account = mailbox.smtp
        try:
            password = password_of(account, self._cipher)
            await check_public_host(
                account.host, account.port, allow_private=self._settings.allow_private_hosts
            )
        except (AccountError, UnsafeHostError) as error:
            raise RelayError(str(error), permanent=True) from error
        except OSError as error:
            raise RelayError(str(error), permanent=False) from error
        return await relay(
            SmtpAccount(account.host, account.port, account.security, account.username, password),
            envelope_from=composed.envelope_from,
            recipients=composed.recipients,
            data=composed.data,
            command_timeout=self._settings.smtp_timeout_seconds,
        )

    def _backoff(self, attempts: int) -> float:
        delay = self._settings.retry_backoff_seconds * 2 ** max(attempts - 1, 0)
        return float(min(delay, self._settings.retry_backoff_max_seconds))

    async def _failed(
        self,
        store: WorkspaceStore,
        outbox: Outbox,
        request: SendRequestDocument,
        error: RelayError,
    ) -> Outcome:
        """Retry a transient failure while attempts remain; otherwise stop for good."""
        exhausted = request.attempts >= self._settings.max_attempts
        if error.permanent or exhausted:
            state: Literal["failed", "unknown"] = (
                "unknown" if error.ambiguous and not error.permanent else "failed"
            )
            reason = error.reason
            if exhausted and not error.permanent:
                reason = f"gave up after {request.attempts} attempts: {reason}"
            return await self._give_up(store, outbox, request, state, reason)
        if error.ambiguous:
            await outbox.release(request, error.reason)
        else:
            await outbox.requeue(request, error.reason)
        await self._publish_failure(store, request, error.reason, permanent=False)
        return RetryLater(self._backoff(request.attempts), error.reason)

    async def _give_up(
        self,
        store: WorkspaceStore,
        outbox: Outbox,
        request: SendRequestDocument,
        state: Literal["failed", "unknown"],
        reason: str,
    ) -> Outcome:
        finished = await outbox.finish_unsent(request, state, reason)
        if finished is None:
            return Done("moved on by another attempt")
        logger.warning(
            "send request %s",
            state,
            extra={"workspace_id": store.workspace_id, "send_request_id": request.id},
        )
        await self._publish_failure(store, request, reason, permanent=True)
        return Done(state)

    async def _publish_failure(
        self, store: WorkspaceStore, request: SendRequestDocument, reason: str, *, permanent: bool
    ) -> None:
        event = EmailSendFailed.create(
            source=SOURCE,
            workspace_id=store.workspace_id,
            subject=request.id,
            data=SendFailure(
                send_request_id=request.id,
                mailbox_id=request.mailbox_id,
                reason=reason,
                permanent=permanent,
            ),
        )
        if permanent:
            event = event.model_copy(update={"id": stable_id("send_failed", request.id)})
        await self._publisher.publish(event)

    async def _report(
        self,
        store: WorkspaceStore,
        outbox: Outbox,
        request: SendRequestDocument,
        mailbox: MailboxDocument | None,
        composed: ComposedMessage,
    ) -> Outcome:
        """Save the Sent copy and publish `email.sent` for a request the server accepted."""
        raw_id = request.raw_id or await store_raw(store, composed.data)
        if mailbox is not None and mailbox.append_to_sent:
            await self._save_sent_copy(outbox, request, mailbox, composed)
        owner = mailbox.address if mailbox else composed.from_.address
        event = EmailSent.create(
            source=SOURCE,
            workspace_id=store.workspace_id,
            subject=request.id,
            data=SentEmail(
                send_request_id=request.id,
                thread_id=request.thread_id,
                message=sent_message(request, request.mailbox_id, owner, composed, raw_id),
            ),
        ).model_copy(update={"id": stable_id("email_sent", request.id)})
        await self._publisher.publish(event)
        await outbox.mark_reported(request)
        return Done("sent")

    async def _save_sent_copy(
        self,
        outbox: Outbox,
        request: SendRequestDocument,
        mailbox: MailboxDocument,
        composed: ComposedMessage,
    ) -> None:
        """Append the exact bytes to Sent unless a copy is there; a failure only leaves a note."""
        try:
            folder = await self._sent_folder(mailbox)
            if not await folder.contains_message_id(composed.message_id):
                await folder.append(composed.data, date=composed.date)
        except (SentFolderError, AccountError, UnsafeHostError, OSError) as error:
            note = f"sent, but the copy was not saved to Sent: {error}"
            logger.warning(
                "sent copy not saved",
                extra={"send_request_id": request.id, "reason": str(error)},
            )
            await outbox.note_error(request, note)
