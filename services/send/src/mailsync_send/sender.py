"""Carrying out one send request, so that a retry, a redelivery or a crash never sends it twice.

1. A `queued` request waits (`next_attempt_at`, handed on later by the scheduler) until its
   `send_at` has come and its mailbox has a free slot in the current minute.
2. Compose the message (a pure function of the request and its stored attachments).
3. Claim the request (`queued` -> `sending`, one more attempt, `data_started_at`): a unique
   claim insert, which holds the attempt until it records how it ended on the request.
4. A request recovered from `sending` (stored so, or claimed by an attempt that ran out
   without a word) first looks for its Message-ID in the Sent folder: if
   the message is there, the server took it and it is only recorded. If it is not, it is sent
   again when that is certainly safe: the data never started (`data_started_at` unset), or the
   provider files sent mail itself. When we file the copy ourselves (`append_to_sent`) and the
   data had started, the folder cannot tell, and the request ends `unknown` rather than risk a
   second delivery.
5. Relay it over a kept SMTP session of the mailbox (the raw bytes are stored meanwhile),
   noting the time of the server's acceptance.
6. Report: save the copy in Sent, publish `email.sent`, then record `sent` (with `sent_at`,
   the acceptance's time) and `reported_at` in one write. A crash before that write leaves the
   request `sending`, recovered as in step 4: the copy in Sent, once saved, tells that it went
   out. A request that is `sent` but not reported (recorded so by an older version) repeats
   only this step, looking in Sent first.

Sends run concurrently (the consumer's prefetch), at most `smtp_connections_per_mailbox` per
mailbox at once. Transient failures are not slept on: the request goes back to the scheduler
with the time of its next attempt.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from bson import Binary
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_send.compose import Attachment, ComposedMessage, ComposeError, compose
from mailsync_send.rate_limit import SendSlots
from mailsync_send.relay import RelayError, RelayResult, SmtpPool
from mailsync_send.send_metrics import SendMetrics
from mailsync_send.sent_folder import SentFolder, SentFolderError, SentFolders
from mailsync_send.settings import Settings
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import MailMessage
from mailsync_shared.contracts.outbound import EmailSendFailed, EmailSent, SendFailure, SentEmail
from mailsync_shared.crypto import CredentialCipher, CredentialError
from mailsync_shared.event_privacy import event_level
from mailsync_shared.ids import stable_id
from mailsync_shared.insert_batches import InsertBatches
from mailsync_shared.mail_servers.accounts import Login, ServerLogin
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.messaging import EventPublisher, PermanentError
from mailsync_shared.oauth import OAuthError, TokenCache, grant_of
from mailsync_shared.send_outbox import SendOutbox
from mailsync_shared.storage.attachments import load_attachment
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import (
    MailboxDocument,
    SendRequestDocument,
    ServerAccount,
    Visibility,
)
from mailsync_shared.storage.kept_mailboxes import KeptMailboxes
from mailsync_shared.storage.raw_messages import load_raw, raw_id_for
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.tracing import tracer
from mailsync_shared.update_batches import UpdateBatches

SOURCE = "/mailsync/send"

logger = logging.getLogger(__name__)
spans = tracer("send")


@dataclass(frozen=True)
class Done:
    """Nothing more to do for this delivery of the request."""

    result: str


class AccountError(Exception):
    """The mailbox's stored account cannot be used as it is."""

    def __init__(self, reason: str, *, permanent: bool = True) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True)
class Delivery:
    """The server's acceptance of a message, still to be recorded on its request."""

    raw_id: str
    sent_at: datetime
    note: str | None = None


def password_of(account: ServerAccount, cipher: CredentialCipher) -> str:
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


async def _event_level(
    store: WorkspaceStore, request: SendRequestDocument, mailbox: MailboxDocument | None
) -> Visibility:
    """What `email.sent` may say: the mailbox's visibility, `private` on a private thread."""
    thread = (
        await store.threads.find_one({"_id": request.thread_id}, projection={"private": 1})
        if request.thread_id
        else None
    )
    return event_level(
        mailbox.visibility if mailbox else None,
        private_thread=bool(thread and thread.get("private")),
    )


async def _store_raw(inserts: InsertBatches, store: WorkspaceStore, data: bytes) -> str:
    """Store the message's bytes unless they are there: an insert (written with those of other
    sends), not a read and an upsert."""
    raw_id = raw_id_for(store.workspace_id, data)
    document = {"_id": raw_id, "size": len(data), "data": Binary(data)}
    await inserts.insert(store.raw_messages, document)  # False: the same bytes are there
    return raw_id


class Sender:
    """Sends requests through their mailbox's SMTP server and reports the outcome."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        publisher: EventPublisher,
        cipher: CredentialCipher,
        settings: Settings,
        metrics: SendMetrics,
        tokens: TokenCache | None = None,
    ) -> None:
        self._db = db
        self._metrics = metrics
        self._publisher = publisher
        self._cipher = cipher
        self._settings = settings
        guard = HostGuard(allow_private=settings.allow_private_hosts)
        self._tokens = tokens or TokenCache(timeout=settings.token_timeout_seconds, guard=guard)
        self._slots = SendSlots()
        self._smtp = SmtpPool(
            size=settings.smtp_connections_per_mailbox,
            timeout=settings.smtp_timeout_seconds,
            guard=guard,
        )
        self._sent_folders = SentFolders(guard=guard, timeout=settings.imap_timeout_seconds)
        self._mailboxes = KeptMailboxes(settings.mailbox_cache_seconds)
        self._inserts = InsertBatches()
        self._updates = UpdateBatches()

    async def close(self) -> None:
        """End the kept SMTP and IMAP sessions."""
        await self._smtp.close()
        await self._sent_folders.close()

    def outbox(self, store: WorkspaceStore) -> SendOutbox:
        return SendOutbox(
            store,
            claim_timeout=timedelta(seconds=self._settings.claim_timeout_seconds),
            insert=self._inserts.insert,
            set_fields=self._updates.set_fields,
        )

    async def handle(self, workspace_id: str, request_id: str) -> Done:
        store = WorkspaceStore(self._db, workspace_id)
        outbox = self.outbox(store)
        request = await outbox.get(request_id)
        if request is None:
            raise PermanentError(f"send request {request_id} does not exist in {workspace_id}")
        log = {"workspace_id": workspace_id, "send_request_id": request_id}
        if request.state in ("failed", "unknown", "cancelled"):
            return Done(f"already {request.state}")
        if request.state == "sent" and request.reported_at is not None:
            return Done("already sent")

        mailbox = await self._mailboxes.get(store, request.mailbox_id)
        if request.state == "sent":
            composed = await self._compose(store, request, mailbox)
            if isinstance(composed, str):
                return Done(f"sent, but cannot be recomposed: {composed}")
            return await self._report(
                store, outbox, request, mailbox, composed, delivery=None, copy="check"
            )
        if mailbox is None or not mailbox.in_service:
            reason = (
                "the sending mailbox's address awaits an admin's approval"
                if mailbox is not None and mailbox.status.state == "awaiting_approval"
                else "the sending mailbox is not connected"
            )
            return await self._give_up(store, outbox, request, "failed", reason)

        now = utcnow()
        if request.state == "queued":
            due = max(
                (t for t in (request.send_at, request.next_attempt_at) if t is not None),
                default=None,
            )
            if due is not None and due > now:
                if request.next_attempt_at != due:
                    await outbox.defer(request, due)
                return Done("scheduled")
            limit = mailbox.send_rate_per_minute or self._settings.send_rate_per_minute
            next_window = await self._slots.take(store, mailbox.id, limit=limit, now=now)
            if next_window is not None:
                await outbox.defer(request, next_window)
                return Done("rate limited")
        elif request.claimed_until is not None and request.claimed_until > now:
            return Done("held by another attempt")

        composed = await self._compose(store, request, mailbox)
        if isinstance(composed, str):
            return await self._give_up(store, outbox, request, "failed", composed)
        raw_id = await _store_raw(self._inserts, store, composed.data)
        claimed = await outbox.claim(request)
        if claimed is None:
            return Done("moved on by another attempt")
        request = claimed.request

        if claimed.recovering:
            try:
                delivered = await self._in_sent_folder(mailbox, composed.message_id)
            except (SentFolderError, AccountError) as error:
                failure = RelayError(
                    f"cannot check the Sent folder: {error}", permanent=False, ambiguous=True
                )
                return await self._failed(store, outbox, request, failure)
            if delivered:
                logger.info("found in Sent, not sending again", extra=log)
                found = Delivery(raw_id, utcnow())
                return await self._report(
                    store, outbox, request, mailbox, composed, delivery=found, copy="present"
                )
            if claimed.data_had_started and mailbox.append_to_sent:
                reason = (
                    "the attempt ended while the message was being transferred, and this "
                    "mailbox's Sent folder cannot tell whether the server took it; not sent "
                    "again to avoid a duplicate"
                )
                return await self._give_up(store, outbox, request, "unknown", reason)

        try:
            result = await self._relay(store, request, mailbox, composed)
        except RelayError as error:
            logger.warning(
                "send attempt failed",
                extra={**log, "reason": error.reason, "permanent": error.permanent},
            )
            return await self._failed(store, outbox, request, error)
        note = None
        if result.refused:
            note = "not accepted for " + "; ".join(f"{a}: {r}" for a, r in result.refused.items())
        accepted = Delivery(raw_id, utcnow(), note)
        logger.info("sent", extra={**log, "accepted": len(result.accepted)})
        return await self._report(
            store, outbox, request, mailbox, composed, delivery=accepted, copy="append"
        )

    async def _compose(
        self,
        store: WorkspaceStore,
        request: SendRequestDocument,
        mailbox: MailboxDocument | None,
    ) -> ComposedMessage | str:
        """The message, or why it cannot be composed (which no retry will change)."""
        attachments: list[Attachment] = []
        for ref in request.attachments:
            data = await load_attachment(store, ref.attachment_id)
            if data is None:
                return f"attachment {ref.filename!r} is not stored"
            attachments.append(Attachment(ref, data))
        forwarded = None
        if request.forward_of is not None:
            forwarded = await load_raw(store, request.forward_of.raw_id)
            if forwarded is None:
                return "the forwarded message is not stored"
        owner = mailbox.address if mailbox else request.from_.address
        aliases = [a.address for a in mailbox.aliases if a.verified] if mailbox else []
        try:
            return compose(
                request,
                mailbox_address=owner,
                verified_aliases=aliases,
                attachments=attachments,
                forwarded=forwarded,
                max_attachments_bytes=self._settings.max_attachments_bytes,
            )
        except ComposeError as error:
            return str(error)

    async def _server_login(self, account: ServerAccount, *, fresh: bool = False) -> ServerLogin:
        """The account's server and login: its password, or a (`fresh`: refreshed) token."""
        if account.auth == "password":
            login = Login(account.username, password=password_of(account, self._cipher))
        else:
            try:
                grant = grant_of(account, self._cipher)
                if fresh:
                    self._tokens.invalidate(grant)
                token = await self._tokens.access_token(grant)
            except OAuthError as error:
                raise AccountError(error.reason, permanent=error.permanent) from error
            login = Login(account.username, access_token=token)
        return ServerLogin(account.host, account.port, account.security, login)

    async def _in_sent_folder(self, mailbox: MailboxDocument, message_id: str) -> bool:
        folder = await self._sent_folder(mailbox)
        return await folder.contains_message_id(message_id)

    async def _sent_folder(self, mailbox: MailboxDocument) -> SentFolder:
        return self._sent_folders.of(await self._server_login(mailbox.imap))

    async def _relay(
        self,
        store: WorkspaceStore,
        request: SendRequestDocument,
        mailbox: MailboxDocument,
        composed: ComposedMessage,
    ) -> RelayResult:
        account = mailbox.smtp
        # An access token may be refused before it expires (revoked, rotated): refresh once.
        for fresh in (False, True):
            try:
                server = await self._server_login(account, fresh=fresh)
            except AccountError as error:
                raise RelayError(str(error), permanent=error.permanent) from error
            try:
                with spans.start_as_current_span(
                    "smtp relay",
                    attributes={"server.address": account.host, "server.port": account.port},
                ) as span:
                    async with self._metrics.smtp_timer():
                        result = await self._smtp.relay(
                            server,
                            envelope_from=composed.envelope_from,
                            recipients=composed.recipients,
                            data=composed.data,
                        )
                    span.set_attribute("mailsync.smtp.accepted", len(result.accepted))
                    return result
            except RelayError as error:
                if fresh or not error.auth_refused or account.auth != "xoauth2":
                    raise
                logger.info(
                    "access token refused, refreshing",
                    extra={"workspace_id": store.workspace_id, "send_request_id": request.id},
                )
        raise AssertionError("unreachable")

    def backoff(self, attempts: int) -> float:
        delay = self._settings.retry_backoff_seconds * 2 ** max(attempts - 1, 0)
        return float(min(delay, self._settings.retry_backoff_max_seconds))

    async def _failed(
        self,
        store: WorkspaceStore,
        outbox: SendOutbox,
        request: SendRequestDocument,
        error: RelayError,
    ) -> Done:
        """Schedule a retry of a transient failure while attempts remain; else stop for good."""
        exhausted = request.attempts >= self._settings.max_attempts
        if error.permanent or exhausted:
            state: Literal["failed", "unknown"] = (
                "unknown" if error.ambiguous and not error.permanent else "failed"
            )
            reason = error.reason
            if exhausted and not error.permanent:
                reason = f"gave up after {request.attempts} attempts: {reason}"
            return await self._give_up(store, outbox, request, state, reason)
        retry_at = utcnow() + timedelta(seconds=self.backoff(request.attempts))
        if error.ambiguous:
            await outbox.release(request, error.reason, retry_at=retry_at)
        else:
            await outbox.requeue(request, error.reason, retry_at=retry_at)
        self._metrics.count("retried")
        await self._publish_failure(store, request, error.reason, permanent=False)
        return Done("retry scheduled")

    async def _give_up(
        self,
        store: WorkspaceStore,
        outbox: SendOutbox,
        request: SendRequestDocument,
        state: Literal["failed", "unknown"],
        reason: str,
    ) -> Done:
        finished = await outbox.finish_unsent(request, state, reason)
        if finished is None:
            return Done("moved on by another attempt")
        self._metrics.count(state)
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
        outbox: SendOutbox,
        request: SendRequestDocument,
        mailbox: MailboxDocument | None,
        composed: ComposedMessage,
        *,
        delivery: Delivery | None,
        copy: Literal["append", "check", "present"],
    ) -> Done:
        """Save the Sent copy and publish `email.sent` for a message the server accepted, then
        record it: `delivery` (this attempt's acceptance) turns the `sending` request `sent` and
        reported in one write; without it the request is `sent` already and only reported.

        `copy`: whether the copy is still to be appended (just sent: none can be in Sent yet),
        to be looked for first, or known to be in Sent.
        """
        raw_id = (
            delivery.raw_id
            if delivery is not None
            else request.raw_id or await _store_raw(self._inserts, store, composed.data)
        )
        notes = [delivery.note] if delivery is not None and delivery.note else []
        if mailbox is not None and mailbox.append_to_sent and copy != "present":
            failure = await self._save_sent_copy(request, mailbox, composed, check=copy == "check")
            if failure is not None:
                notes.append(failure)
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
        await self._publisher.publish(event, level=await _event_level(store, request, mailbox))
        note = "; ".join(notes) or None
        if delivery is None:
            await outbox.mark_reported(request, note=note)
        else:
            await outbox.mark_sent(request, raw_id=raw_id, sent_at=delivery.sent_at, note=note)
            self._metrics.count("sent")
        return Done("sent")

    async def _save_sent_copy(
        self,
        request: SendRequestDocument,
        mailbox: MailboxDocument,
        composed: ComposedMessage,
        *,
        check: bool,
    ) -> str | None:
        """Append the exact bytes to Sent (unless `check` finds a copy there); why it failed,
        which only leaves a note on the request."""
        try:
            with spans.start_as_current_span("sent folder append"):
                folder = await self._sent_folder(mailbox)
                if not check or not await folder.contains_message_id(composed.message_id):
                    await folder.append(composed.data, date=composed.date)
        except (SentFolderError, AccountError) as error:
            logger.warning(
                "sent copy not saved",
                extra={"send_request_id": request.id, "reason": str(error)},
            )
            return f"sent, but the copy was not saved to Sent: {error}"
        return None
