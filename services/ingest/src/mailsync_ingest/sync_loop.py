"""The sync loop of one IMAP mailbox: backfill, then live, read-only, restart-safe.

One task per leased mailbox runs `MailboxSync.run`, over one IMAP connection. The states are
the mailbox document's `status.state`:

                       lease taken
                            |
                            v
    +--------------> +------------+  credentials refused   +-------+
    |   reconnect    | connecting | ---------------------> | error | -- auth_retry_seconds --+
    |   (jittered    +------------+  (or undecryptable)     +-------+                         |
    |    backoff)          |                                   ^                              |
    |                      | LIST (SPECIAL-USE): INBOX + \\Sent  |                              |
    |                      | (Gmail: All Mail); EXAMINE each     |                              |
    |                      v                                    |                              |
    |              +-------------+  every folder's window done  +------+                       |
    +-- network -- | backfilling | ---------------------------> | live | <-- IDLE on INBOX, or |
    |   error      +-------------+                              +------+     poll every        |
    |                 ^   | one batch per folder per round,        |         poll_interval;    |
    |                 +---+ new mail first, then older mail       |         fetch new mail    |
    +-------------------------------------------------------------+                           |
    ^                                                                                          |
    +------------------------------------------------------------------------------------------+

    Any state --(lease lost or mailbox disconnected: a guarded write matched nothing)--> stop.

Per folder the checkpoint (`MailboxDocument.folders[<folder key>]`) holds:

- `uidvalidity`: the UIDs below are only meaningful for this value. When the server reports
  another one, the folder starts over as if new; associate deduplicates by Message-ID, so a
  record never shows a message twice.
- `last_uid`: every UID up to it is done: published, or before the window. New mail is UID
  `last_uid+1:*`, fetched oldest first, and `last_uid` moves to the highest UID of the batch's
  longest all-published prefix.
- `backfill_since` / `backfill_floor`: the window is fixed when the folder is first seen
  (`now - backfill_days`, or the mailbox's `connected_at` when nothing before it is wanted).
  `last_uid` starts at UIDNEXT-1 then, and older mail in the window is fetched newest first
  (`UID SEARCH UID 1:<floor-1> SINCE <date>`), lowering the floor after each batch. A floor
  of None means the backfill is complete. `total`/`done` count the window for progress.

A checkpoint moves only after the broker confirmed every publish it covers, and after a crash
the loop repeats at most the batch in flight: at-least-once, with stable event ids. Nothing
here changes the mailbox: EXAMINE and BODY.PEEK[] only (see `imap_connection`).

IDLE watches one folder per connection, so the loop IDLEs on INBOX for at most
`idle_refresh_seconds` (well under the 29 minutes after which servers may drop it), then
checks every folder and IDLEs again. A dead connection shows as a failing command and leads
to a reconnect; a server without IDLE is polled every `poll_interval_seconds`.
"""

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from imapclient.exceptions import IMAPClientError

from mailsync_ingest.folders import Folder, choose_folders, folder_key
from mailsync_ingest.imap_connection import (
    AuthenticationRefusedError,
    FetchedMessage,
    FolderState,
    ImapConnection,
)
from mailsync_ingest.mailbox_record import LeaseLostError, MailboxRecord
from mailsync_ingest.messages import MessagePipeline
from mailsync_ingest.settings import Settings
from mailsync_ingest.window import (
    backfill_criteria,
    backfill_window,
    batches,
    contiguous_done,
    new_mail_criteria,
    newer_than,
    newest_first,
)
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import MailSource
from mailsync_shared.crypto import CredentialCipher, CredentialError
from mailsync_shared.storage.documents import FolderCheckpoint, MailboxDocument, MailboxState

logger = logging.getLogger(__name__)

# INTERNALDATE has whole seconds and the server's clock; erring towards one extra message
# beats losing the first one that arrived right after the mailbox was connected.
CLOCK_SKEW = timedelta(seconds=60)


class BatchIncompleteError(Exception):
    """Some messages of a batch could not be stored or published; retried after a backoff."""


@dataclass
class FolderSync:
    """A folder's checkpoint plus what this connection learned about it."""

    folder: Folder
    checkpoint: FolderCheckpoint
    backfill_queue: list[int] | None = None

    @property
    def backfilling(self) -> bool:
        return self.checkpoint.backfill_floor is not None


@dataclass
class Backoff:
    initial: float
    maximum: float
    attempts: int = field(default=0)

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * 2**self.attempts)
        self.attempts += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0


class MailboxSync:
    def __init__(
        self,
        mailbox: MailboxDocument,
        *,
        settings: Settings,
        record: MailboxRecord,
        pipeline: MessagePipeline,
        cipher: CredentialCipher,
    ) -> None:
        self._mailbox = mailbox
        self._settings = settings
        self._record = record
        self._pipeline = pipeline
        self._cipher = cipher
        self._stopping = asyncio.Event()
        self._checkpoints = dict(mailbox.folders)
        self._ids = {"workspace_id": mailbox.workspace_id, "mailbox_id": mailbox.id}

    def request_stop(self) -> None:
        """Finish the batch in flight, then return from `run`."""
        self._stopping.set()

    async def run(self) -> None:
        backoff = Backoff(
            self._settings.reconnect_initial_seconds, self._settings.reconnect_max_seconds
        )
        while not self._stopping.is_set():
            try:
                await self._session(backoff)
                return
            except LeaseLostError:
                logger.info("lease lost; sync stops", extra=self._ids)
                return
            except (AuthenticationRefusedError, CredentialError) as error:
                reason = _auth_reason(error)
                logger.warning("mailbox credentials refused", extra={**self._ids, "reason": reason})
                if not await self._report("error", reason):
                    return
                await self._pause(_jittered(self._settings.auth_retry_seconds))
            except (OSError, IMAPClientError, BatchIncompleteError, TimeoutError) as error:
                delay = backoff.next_delay()
                logger.warning(
                    "mailbox sync interrupted; reconnecting",
                    extra={**self._ids, "error": _describe(error), "retry_in": round(delay, 2)},
                )
                if not await self._report("connecting", _describe(error)):
                    return
                await self._pause(delay)
            except Exception:
                delay = backoff.next_delay()
                logger.exception(
                    "mailbox sync failed; retrying", extra={**self._ids, "retry_in": delay}
                )
                await self._pause(delay)

    async def _report(self, state: MailboxState, reason: str) -> bool:
        """Record a failure state; False when the lease is gone and the loop must end."""
        try:
            await self._record.set_status(state, reason)
        except LeaseLostError:
            return False
        except Exception:
            logger.warning("status not recorded", extra=self._ids)
        return True

    async def _session(self, backoff: Backoff) -> None:
        """One connection's life: connect, plan folders, then sync rounds until stopped."""
        await self._record.set_status("connecting")
        secret = self._mailbox.imap.secret_encrypted
        if secret is None:
            raise CredentialError("no IMAP credential stored")
        connection = await ImapConnection.open(
            self._mailbox.imap,
            self._cipher.decrypt(secret),
            socket_timeout=self._settings.imap_timeout_seconds,
        )
        try:
            folders = choose_folders(await connection.list_folders(), gmail=connection.gmail)
            logger.info(
                "mailbox connected",
                extra={
                    **self._ids,
                    "folders": [f.name for f in folders],
                    "idle": connection.supports_idle,
                },
            )
            syncs = [await self._prepare(connection, folder) for folder in folders]
            while not self._stopping.is_set():
                backfilling = any(sync.backfilling for sync in syncs)
                await self._record.set_status("backfilling" if backfilling else "live")
                changed = False
                for sync in syncs:
                    if self._stopping.is_set():
                        return
                    changed = await self._sync_folder(connection, sync) or changed
                backoff.reset()
                if any(sync.backfilling for sync in syncs):
                    continue
                await self._record.set_status("live")
                await self._record.mark_synced(changed=changed)
                await self._wait_for_mail(connection, syncs)
        finally:
            await connection.close()

    async def _prepare(self, connection: ImapConnection, folder: Folder) -> FolderSync:
        """The folder's checkpoint, planning its backfill when the folder is new to us."""
        state = await connection.examine(folder.name)
        known = self._checkpoints.get(folder_key(folder.name))
        if known is not None and known.uidvalidity == state.uidvalidity:
            return FolderSync(folder, known)
        if known is not None:
            logger.warning(
                "UIDVALIDITY changed; folder resyncs",
                extra={
                    **self._ids,
                    "folder": folder.name,
                    "was": known.uidvalidity,
                    "now": state.uidvalidity,
                },
            )
        window = backfill_window(
            self._mailbox.sync, connected_at=self._mailbox.connected_at, now=utcnow()
        )
        top = await self._highest_uid(connection, state)
        checkpoint = FolderCheckpoint(
            name=folder.name,
            role=folder.role,
            uidvalidity=state.uidvalidity,
            last_uid=top,
            backfill_since=window.since,
            backfill_floor=top + 1,
        )
        sync = FolderSync(folder, checkpoint)
        queue = await self._backfill_queue(connection, sync)
        sync.checkpoint = checkpoint.model_copy(update={"total": len(queue)})
        await self._save(sync)
        return sync

    async def _highest_uid(self, connection: ImapConnection, state: FolderState) -> int:
        if state.uidnext is not None:
            return state.uidnext - 1
        return max(await connection.search(["ALL"]), default=0)

    async def _backfill_queue(self, connection: ImapConnection, sync: FolderSync) -> list[int]:
        """UIDs still to backfill, newest first (searched once per connection)."""
        if sync.backfill_queue is not None:
            return sync.backfill_queue
        checkpoint = sync.checkpoint
        floor, since = checkpoint.backfill_floor, checkpoint.backfill_since
        criteria = None if floor is None or since is None else backfill_criteria(since, floor)
        uids = await connection.search(criteria) if criteria else []
        if uids and self._mailbox.sync.backfill_days is None and since is not None:
            dates = await connection.internal_dates(uids)
            earliest = since - CLOCK_SKEW
            uids = [uid for uid in uids if uid in dates and _aware(dates[uid]) >= earliest]
        sync.backfill_queue = newest_first(uids, floor or 0)
        return sync.backfill_queue

    async def _sync_folder(self, connection: ImapConnection, sync: FolderSync) -> bool:
        """One round for one folder: all new mail, then one batch of older mail."""
        state = await connection.examine(sync.folder.name)
        if state.uidvalidity != sync.checkpoint.uidvalidity:
            self._checkpoints.pop(folder_key(sync.folder.name), None)
            fresh = await self._prepare(connection, sync.folder)
            sync.checkpoint, sync.backfill_queue = fresh.checkpoint, fresh.backfill_queue
            return True
        changed = await self._fetch_new(connection, sync, state)
        if sync.backfilling and not self._stopping.is_set():
            await self._backfill_batch(connection, sync)
            changed = True
        return changed

    async def _fetch_new(
        self, connection: ImapConnection, sync: FolderSync, state: FolderState
    ) -> bool:
        last_uid = sync.checkpoint.last_uid
        if state.uidnext is not None and state.uidnext - 1 <= last_uid:
            return False
        uids = newer_than(await connection.search(new_mail_criteria(last_uid)), last_uid)
        for batch in batches(uids, self._settings.fetch_batch):
            done = await self._publish(connection, sync, batch)
            highest = contiguous_done(batch, done)
            if highest is not None:
                sync.checkpoint = sync.checkpoint.model_copy(update={"last_uid": highest})
                await self._save(sync)
            if len(done) < len(batch):
                raise BatchIncompleteError(f"{len(batch) - len(done)} new messages not published")
            if self._stopping.is_set():
                break
        return bool(uids)

    async def _backfill_batch(self, connection: ImapConnection, sync: FolderSync) -> None:
        queue = await self._backfill_queue(connection, sync)
        batch = queue[: self._settings.fetch_batch]
        done = await self._publish(connection, sync, batch) if batch else set()
        lowest = contiguous_done(batch, done)
        published = 0 if lowest is None else batch.index(lowest) + 1
        del queue[:published]
        update: dict[str, object] = {"done": sync.checkpoint.done + published}
        if not queue:
            update["backfill_floor"] = None
        elif lowest is not None:
            update["backfill_floor"] = lowest
        sync.checkpoint = sync.checkpoint.model_copy(update=update)
        await self._save(sync)
        if not batch:
            return
        logger.info(
            "backfill progress",
            extra={
                **self._ids,
                "folder": sync.folder.name,
                "done": sync.checkpoint.done,
                "total": sync.checkpoint.total,
                "complete": sync.checkpoint.backfill_floor is None,
            },
        )
        if len(done) < len(batch):
            raise BatchIncompleteError(f"{len(batch) - len(done)} older messages not published")

    async def _publish(
        self, connection: ImapConnection, sync: FolderSync, uids: list[int]
    ) -> set[int]:
        """Fetch and publish a batch; the UIDs that are done (published, or gone meanwhile)."""
        fetched = await connection.fetch(uids)
        by_uid = {message.uid: message for message in fetched}
        gone = {uid for uid in uids if uid not in by_uid}
        results = await asyncio.gather(
            *(self._publish_one(sync, message) for message in fetched), return_exceptions=True
        )
        done = set(gone)
        for message, result in zip(fetched, results, strict=True):
            if isinstance(result, BaseException):
                logger.warning(
                    "message not published",
                    extra={
                        **self._ids,
                        "folder": sync.folder.name,
                        "uid": message.uid,
                        "error": _describe(result),
                    },
                )
            else:
                done.add(message.uid)
        return done

    async def _publish_one(self, sync: FolderSync, message: FetchedMessage) -> None:
        source = MailSource(
            mailbox_id=self._mailbox.id,
            folder=sync.folder.name,
            folder_role=sync.folder.role,
            uidvalidity=sync.checkpoint.uidvalidity,
            uid=message.uid,
        )
        await self._pipeline.ingest(message, source)

    async def _save(self, sync: FolderSync) -> None:
        await self._record.save_folder(sync.checkpoint)
        self._checkpoints[folder_key(sync.folder.name)] = sync.checkpoint

    async def _wait_for_mail(self, connection: ImapConnection, syncs: list[FolderSync]) -> None:
        inbox = next((s.folder for s in syncs if s.folder.role in ("inbox", "all")), None)
        if not (self._settings.use_idle and connection.supports_idle and inbox):
            await self._pause(self._settings.poll_interval_seconds)
            return
        await connection.examine(inbox.name)
        idle = asyncio.ensure_future(
            connection.wait_for_new_mail(self._settings.idle_refresh_seconds)
        )
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({idle, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not idle.done():
                idle.cancel()
            await asyncio.gather(idle, return_exceptions=True)
        if idle.done() and not idle.cancelled():
            idle.result()

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _jittered(seconds: float) -> float:
    return random.uniform(seconds * 0.8, seconds * 1.2)


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


def _auth_reason(error: Exception) -> str:
    if isinstance(error, CredentialError):
        return "stored credential cannot be decrypted with this deployment's key"
    return f"authentication failed: {error}"
