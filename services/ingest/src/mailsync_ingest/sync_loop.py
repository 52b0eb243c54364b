"""The sync loop of one IMAP mailbox: backfill, then live, read-only, restart-safe.

One task per leased mailbox runs `MailboxSync.run`, over one IMAP connection. The states are
the mailbox document's `status.state`:

                       lease taken
                            |
                            v
    +--------------> +------------+  credentials refused   +-------+
    |   reconnect    | connecting | ---------------------> | error | -- auth_retry_seconds --+
    |   (jittered    +------------+  (undecryptable, or     +-------+                         |
    |    backoff)          |          OAuth grant refused)     |                              |
    |                      | LIST (SPECIAL-USE): INBOX + \\Sent  |                              |
    |                      | (Gmail: All Mail); EXAMINE each     |                              |
    |                      v                                    |                              |
    |              +-------------+  every folder's window done  +------+                       |
    +-- network -- | backfilling | ---------------------------> | live | <-- IDLE on INBOX, or |
    |   error      +-------------+                              +------+     poll every        |
    |                 ^   | per round: new mail, then older mail   |         poll_interval;    |
    |                 +---+ for backfill_round_seconds             |         fetch new mail    |
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
  of None means the backfill is complete. `total`/`done` count the window for progress,
  and live mail as it arrives.

Each round reads new mail first, then backfills for up to `backfill_round_seconds`, so mail
arriving during a long backfill still shows within seconds. Batches are pipelined: the next
UID FETCH runs while the current batch's bytes are stored (one unordered insert) and its
events published (every confirm in flight at once).

A checkpoint moves only after the broker confirmed every publish it covers, and after a crash
the loop repeats at most the batch in flight (for new mail, the round's: its checkpoint is
written once per round, with `last_synced_at`): at-least-once, with stable event ids. Nothing
here changes the mailbox: EXAMINE and BODY.PEEK[] only (see `imap_connection`).

Where the server offers CONDSTORE (a QRESYNC server does too) it is ENABLEd and each EXAMINE
reports HIGHESTMODSEQ; a folder whose HIGHESTMODSEQ and UIDNEXT are what the checkpoint saw is
skipped without a SEARCH. Flag changes and expunges are not mirrored: ingest logs mail, it
does not track mailbox state (so QRESYNC's VANISHED answers are not asked for).

IDLE watches one folder per connection, so the loop IDLEs on INBOX for at most
`idle_refresh_seconds` (the keepalive, far under the 29 minutes after which servers may drop an
IDLE), then checks every folder and IDLEs again. With CONDSTORE the other folders are checked
with STATUS (INBOX stays open) and INBOX with EXAMINE last, whose answer is the one the IDLE
starts from: a quiet round is DONE, STATUS, EXAMINE, IDLE. Ending an IDLE must be answered
within the keepalive too, so a connection that died silently (no FIN, no RST) is found within
twice the keepalive and replaced; a failing command does the same. Mail that arrived after a
round looked at INBOX but before IDLE started is seen from UIDNEXT, not waited for. A server
without IDLE is polled every `poll_interval_seconds`. Reconnects back off with jitter.

A live mailbox is reconciled (see `reconciliation`) `reconcile_settle_seconds` after its
backfill is done (mail just published may not be logged yet), when the api asks
(`reconcile_requested_at`, read with every lease renewal), and every
`reconcile_interval_seconds`: the server's messages per folder against what was logged; gaps
land in `status.gaps` and the log. While gaps remain the next comparison comes sooner (after
the settle time, doubling up to the interval).
"""

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mailsync_ingest.byte_budget import ByteBudget
from mailsync_ingest.folders import Folder, choose_folders, folder_key
from mailsync_ingest.imap_connection import FetchedMessage, FolderState, ImapConnection
from mailsync_ingest.mailbox_metrics import SyncLag
from mailsync_ingest.mailbox_record import LeaseLostError, MailboxRecord
from mailsync_ingest.messages import MessagePipeline
from mailsync_ingest.reconciliation import (
    FolderTally,
    gaps,
    logged_uids,
    skipped_count,
    up_to_checkpoint,
)
from mailsync_ingest.settings import Settings
from mailsync_ingest.window import (
    backfill_criteria,
    backfill_window,
    batches_within,
    contiguous_done,
    imap_date,
    newer_than,
    newest_first,
)
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import MailSource
from mailsync_shared.crypto import CredentialError
from mailsync_shared.mail_servers.accounts import Credentials
from mailsync_shared.mail_servers.errors import (
    AuthRefusedError,
    HostRefusedError,
    MailServerError,
    failure_reason,
)
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.oauth import OAuthError
from mailsync_shared.storage.documents import FolderCheckpoint, MailboxDocument, MailboxState
from mailsync_shared.tracing import tracer

logger = logging.getLogger(__name__)
spans = tracer("ingest")

# INTERNALDATE has whole seconds and the server's clock; erring towards one extra message
# beats losing the first one that arrived right after the mailbox was connected.
CLOCK_SKEW = timedelta(seconds=60)
# The folder IDLE watches: INBOX, or Gmail's All Mail where that is what the mailbox syncs.
IDLE_ROLES = ("inbox", "all")


class BatchIncompleteError(Exception):
    """Some messages of a batch could not be stored or published; retried after a backoff."""


@dataclass
class FolderSync:
    """A folder's checkpoint plus what this connection learned about it."""

    folder: Folder
    checkpoint: FolderCheckpoint
    backfill_queue: list[int] | None = None
    backfill_sizes: dict[int, int] = field(default_factory=dict)

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
        credentials: Credentials,
        guard: HostGuard,
        budget: ByteBudget,
        lag: SyncLag,
        starting: asyncio.Semaphore,
    ) -> None:
        self._starting = starting
        self._mailbox = mailbox
        self._lag = lag
        self._budget = budget
        # Bytes one FETCH brings at most, so a mailbox never holds the whole budget alone.
        self._batch_bytes = max(1, budget.limit // 4)
        self._settings = settings
        self._record = record
        self._pipeline = pipeline
        self._credentials = credentials
        self._guard = guard
        self._stopping = asyncio.Event()
        self._reconcile_request: datetime | None = None
        self._reconciled_request: datetime | None = None
        self._checkpoints = dict(mailbox.folders)
        self._ids = {"workspace_id": mailbox.workspace_id, "mailbox_id": mailbox.id}

    def _running(self) -> bool:
        return not self._stopping.is_set()

    @property
    def state(self) -> MailboxState:
        """The sync state last recorded for the mailbox."""
        return self._record.state

    def ask_to_reconcile(self, requested: datetime) -> None:
        """The api asked for a reconciliation at `requested` (seen when leases are renewed);
        it runs at the end of the next live round, once per request."""
        if self._reconciled_request is None or requested > self._reconciled_request:
            self._reconcile_request = requested

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
            except OAuthError as error:
                if error.permanent:
                    reason = f"authorization refused: {error.reason}"
                    logger.warning(
                        "mailbox authorization refused", extra={**self._ids, "reason": reason}
                    )
                    if not await self._report("error", reason):
                        return
                    await self._pause(_jittered(self._settings.auth_retry_seconds))
                    continue
                delay = backoff.next_delay()
                logger.warning(
                    "access token not refreshed; retrying",
                    extra={**self._ids, "error": error.reason, "retry_in": round(delay, 2)},
                )
                if not await self._report("connecting", error.reason):
                    return
                await self._pause(delay)
            except (AuthRefusedError, HostRefusedError, CredentialError) as error:
                reason = _refusal_reason(error)
                logger.warning("mailbox connection refused", extra={**self._ids, "reason": reason})
                if not await self._report("error", reason):
                    return
                await self._pause(_jittered(self._settings.auth_retry_seconds))
            except (OSError, MailServerError, BatchIncompleteError, TimeoutError) as error:
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

    async def _connect(self) -> ImapConnection:
        """Log in with the account's credential; a refused OAuth token is refreshed once."""
        return await self._credentials.attempt(
            self._mailbox.imap,
            lambda login: ImapConnection.open(
                self._mailbox.imap,
                login,
                guard=self._guard,
                socket_timeout=self._settings.imap_timeout_seconds,
                keepalive_seconds=self._settings.idle_refresh_seconds,
            ),
        )

    async def _session(self, backoff: Backoff) -> None:
        """One connection's life: connect, plan folders, then sync rounds until stopped.

        Connecting, planning the folders and the first status write happen under the
        worker's `starting` slots, so a worker that takes a thousand mailboxes at once brings
        them up a few dozen at a time instead of flooding the mail server and the store."""
        async with self._starting_slot() as started:
            await self._session_started(backoff, started)

    @contextlib.asynccontextmanager
    async def _starting_slot(self) -> AsyncIterator[Callable[[], None]]:
        """A slot of the worker's starting mailboxes; calling the yielded function frees it
        early (once the mailbox is up)."""
        await self._starting.acquire()
        held = True

        def started() -> None:
            nonlocal held
            if held:
                held = False
                self._starting.release()

        try:
            yield started
        finally:
            started()

    async def _session_started(self, backoff: Backoff, started: Callable[[], None]) -> None:
        await self._record.set_status("connecting", staged=True)
        connection = await self._connect()
        try:
            folders = choose_folders(await connection.list_folders(), gmail=connection.gmail)
            logger.info(
                "mailbox connected",
                extra={
                    **self._ids,
                    "folders": [f.name for f in folders],
                    "idle": connection.supports_idle,
                    "condstore": connection.condstore,
                },
            )
            syncs = [await self._prepare(connection, folder) for folder in folders]
            loop = asyncio.get_running_loop()
            settle = min(
                self._settings.reconcile_settle_seconds, self._settings.reconcile_interval_seconds
            )
            reconcile_at = loop.time() + self._settings.reconcile_interval_seconds
            recheck = settle
            while not self._stopping.is_set():
                backfilling = any(sync.backfilling for sync in syncs)
                if backfilling:
                    reconcile_at = loop.time() + settle  # once associate logged the last mail
                await self._record.set_status("backfilling" if backfilling else "live")
                started()
                changed = False
                for sync in syncs if backfilling else idle_folder_last(syncs):
                    if self._stopping.is_set():
                        await self._record.flush()
                        return
                    changed = await self._sync_folder(connection, sync) or changed
                backoff.reset()
                if any(sync.backfilling for sync in syncs):
                    continue
                await self._record.set_status("live")
                await self._record.mark_synced(changed=changed)
                requested = self._reconcile_request
                if requested is not None or loop.time() >= reconcile_at:
                    interval = self._settings.reconcile_interval_seconds
                    if await self._reconcile(connection, syncs):
                        # Mail just published may not be logged yet: look again soon.
                        reconcile_at = loop.time() + min(recheck, interval)
                        recheck *= 2
                    else:
                        reconcile_at = loop.time() + interval
                        recheck = settle
                    if requested is not None:
                        await self._record.clear_reconcile_request(requested)
                        self._reconciled_request = requested
                        if self._reconcile_request == requested:
                            self._reconcile_request = None
                await self._wait_for_mail(connection, syncs)
            await self._record.flush()
        finally:
            await connection.close()

    async def _reconcile(self, connection: ImapConnection, syncs: list[FolderSync]) -> bool:
        """Compare each folder's messages on the server with what was logged; record gaps.
        True when something is missing."""
        store = self._pipeline.store
        tallies = []
        for sync in syncs:
            checkpoint = sync.checkpoint
            await connection.examine(sync.folder.name)
            uids: list[int] = []
            if checkpoint.last_uid >= 1:
                criteria = ["UID", f"1:{checkpoint.last_uid}"]
                if checkpoint.backfill_since is not None:
                    criteria += ["SINCE", imap_date(checkpoint.backfill_since)]
                uids = await self._in_window(
                    connection, await connection.search(criteria), checkpoint
                )
            logged = await logged_uids(store, self._mailbox.id, checkpoint)
            tallies.append(
                FolderTally(checkpoint, up_to_checkpoint(uids, checkpoint), frozenset(logged))
            )
        skipped = await skipped_count(store, self._mailbox.id, self._mailbox.sync.scope)
        found = gaps(tallies, skipped)
        await self._record.set_gaps(found)
        counts = {t.checkpoint.name: len(t.server_uids) for t in tallies}
        if found:
            logger.warning(
                "reconciliation found unlogged mail",
                extra={**self._ids, "gaps": [gap.model_dump() for gap in found], "server": counts},
            )
        else:
            logger.info("reconciliation: nothing missing", extra={**self._ids, "server": counts})
        return bool(found)

    async def _in_window(
        self, connection: ImapConnection, uids: list[int], checkpoint: FolderCheckpoint
    ) -> list[int]:
        """For a window that starts at an instant, drop messages received before it."""
        since = checkpoint.backfill_since
        if not uids or self._mailbox.sync.backfill_days is not None or since is None:
            return uids
        dates = await connection.internal_dates(uids)
        earliest = since - CLOCK_SKEW
        return [uid for uid in uids if uid in dates and _aware(dates[uid]) >= earliest]

    async def _prepare(self, connection: ImapConnection, folder: Folder) -> FolderSync:
        """The folder's checkpoint, planning its backfill when the folder is new to us."""
        state = await connection.peek(folder.name)
        known = self._checkpoints.get(folder_key(folder.name))
        if known is not None and known.uidvalidity == state.uidvalidity:
            return FolderSync(folder, known)
        state = connection.just_examined(folder.name) or await connection.examine(folder.name)
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
        update: dict[str, object] = {"total": len(queue)}
        if not queue:
            update["backfill_floor"] = None  # nothing older in the window: complete already
        sync.checkpoint = checkpoint.model_copy(update=update)
        await self._save(sync, staged=True)
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
        uids = await self._in_window(connection, uids, checkpoint)
        sync.backfill_queue = newest_first(uids, floor or 0)
        sync.backfill_sizes = await connection.sizes(sync.backfill_queue)
        return sync.backfill_queue

    async def _sync_folder(self, connection: ImapConnection, sync: FolderSync) -> bool:
        """One round for one folder: all new mail, then older mail for up to a round's time."""
        name = sync.folder.name
        state = await connection.peek(name)
        if state.uidvalidity == sync.checkpoint.uidvalidity and unchanged(sync.checkpoint, state):
            return False
        if connection.just_examined(name) is None:
            state = await connection.examine(name)
        if state.uidvalidity != sync.checkpoint.uidvalidity:
            self._checkpoints.pop(folder_key(sync.folder.name), None)
            fresh = await self._prepare(connection, sync.folder)
            sync.checkpoint, sync.backfill_queue = fresh.checkpoint, fresh.backfill_queue
            return True
        if unchanged(sync.checkpoint, state):
            return False
        modseq_moved = state.highest_modseq not in (None, sync.checkpoint.highest_modseq)
        if modseq_moved:
            # Saved with the next checkpoint write; a crash before it only costs a re-check.
            sync.checkpoint = sync.checkpoint.model_copy(
                update={"highest_modseq": state.highest_modseq}
            )
        changed = await self._fetch_new(connection, sync, state)
        if sync.backfilling and not self._stopping.is_set():
            await self._backfill(connection, sync)
            changed = True
        elif modseq_moved and not changed:
            await self._save(sync)
        return changed

    async def _fetch_new(
        self, connection: ImapConnection, sync: FolderSync, state: FolderState
    ) -> bool:
        last_uid = sync.checkpoint.last_uid
        if state.uidnext is not None and state.uidnext - 1 <= last_uid:
            return False
        sizes = await connection.sizes_from(last_uid + 1)
        uids = newer_than(sizes, last_uid)
        planned = self._plan(uids, sizes)
        more = self._running
        async with aclosing(self._fetch_ahead(connection, planned, sizes, more)) as fetched_batches:
            async for batch, fetched in fetched_batches:
                done = await self._publish(sync, batch, fetched)
                highest = contiguous_done(batch, done)
                if highest is not None:
                    # Live mail counts in the folder's progress as backfilled mail does.
                    arrived = sum(1 for m in fetched if m.uid <= highest and m.uid in done)
                    sync.checkpoint = sync.checkpoint.model_copy(
                        update={
                            "last_uid": highest,
                            "done": sync.checkpoint.done + arrived,
                            "total": sync.checkpoint.total + arrived,
                        }
                    )
                    # Written with the round's `last_synced_at` (or the next write before it):
                    # one mailbox write per round of live mail.
                    await self._save(sync, staged=True)
                    self._observe_lag(fetched, done, highest)
                if len(done) < len(batch):
                    raise BatchIncompleteError(
                        f"{len(batch) - len(done)} new messages not published"
                    )
        return bool(uids)

    def _observe_lag(self, fetched: list[FetchedMessage], done: set[int], highest: int) -> None:
        dates = [
            m.internal_date
            for m in fetched
            if m.uid <= highest and m.uid in done and m.internal_date is not None
        ]
        if dates:
            self._lag.observe(max(_aware(date) for date in dates))

    async def _backfill(self, connection: ImapConnection, sync: FolderSync) -> None:
        """Older mail, newest first, for up to `backfill_round_seconds`; the next batch is
        fetched while the current one is stored and published."""
        queue = await self._backfill_queue(connection, sync)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._settings.backfill_round_seconds
        planned = self._plan(queue, sync.backfill_sizes)
        if not planned:
            sync.checkpoint = sync.checkpoint.model_copy(update={"backfill_floor": None})
            await self._save(sync)
            return

        def more() -> bool:
            return loop.time() < deadline and not self._stopping.is_set()

        async with aclosing(
            self._fetch_ahead(connection, planned, sync.backfill_sizes, more)
        ) as fetched_batches:
            async for batch, fetched in fetched_batches:
                done = await self._publish(sync, batch, fetched)
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
                    raise BatchIncompleteError(
                        f"{len(batch) - len(done)} older messages not published"
                    )

    def _plan(self, uids: list[int], sizes: dict[int, int]) -> list[list[int]]:
        return batches_within(
            uids, sizes, count=self._settings.fetch_batch, max_bytes=self._batch_bytes
        )

    async def _fetch_held(
        self, connection: ImapConnection, batch: list[int], sizes: dict[int, int]
    ) -> tuple[list[FetchedMessage], int]:
        """The batch's messages, fetched once their bytes fit the worker's budget; the grant
        is held until the caller releases it (after the batch is published).

        A message over `max_message_bytes` by its RFC822.SIZE is not fetched: its size is all
        the pipeline needs to record why it is not stored.
        """
        limit = self._settings.max_message_bytes
        too_large = [uid for uid in batch if sizes.get(uid, 0) > limit]
        wanted = [uid for uid in batch if uid not in too_large]
        grant = await self._budget.acquire(sum(sizes.get(uid, 0) for uid in wanted))
        try:
            fetched = await connection.fetch(wanted) if wanted else []
            skipped = [FetchedMessage(uid, sizes[uid], None, b"") for uid in too_large]
            return sorted([*fetched, *skipped], key=lambda message: message.uid), grant
        except BaseException:
            self._budget.release(grant)
            raise

    async def _fetch_ahead(
        self,
        connection: ImapConnection,
        planned: list[list[int]],
        sizes: dict[int, int],
        more: Callable[[], bool] = lambda: True,
    ) -> AsyncGenerator[tuple[list[int], list[FetchedMessage]], None]:
        """Each planned batch with its messages; the next FETCH runs while the caller works.

        The connection is only ever used by one command at a time: the fetch ahead is the
        only IMAP command in flight while a batch is published, and it is awaited before the
        generator closes. A batch's bytes count against the worker's budget from before its
        FETCH until the caller is done with it.
        """
        if not planned:
            return
        ahead: asyncio.Future[tuple[list[FetchedMessage], int]] | None = asyncio.ensure_future(
            self._fetch_held(connection, planned[0], sizes)
        )
        held = 0
        try:
            for index, batch in enumerate(planned):
                assert ahead is not None
                fetched, held = await ahead
                ahead = None
                if index + 1 < len(planned) and more():
                    ahead = asyncio.ensure_future(
                        self._fetch_held(connection, planned[index + 1], sizes)
                    )
                yield batch, fetched
                self._budget.release(held)
                held = 0
                if ahead is None:
                    return
        finally:
            self._budget.release(held)
            if ahead is not None:
                outcome = await asyncio.gather(ahead, return_exceptions=True)
                if isinstance(outcome[0], tuple):
                    self._budget.release(outcome[0][1])

    async def _publish(
        self, sync: FolderSync, uids: list[int], fetched: list[FetchedMessage]
    ) -> set[int]:
        """Store and publish a fetched batch; the UIDs that are done (published, or gone)."""
        by_uid = {message.uid: message for message in fetched}
        done = {uid for uid in uids if uid not in by_uid}
        wanted = [by_uid[uid] for uid in uids if uid in by_uid]
        if not wanted:
            return done
        await self._record.check_still_ours()  # a disconnect stops what was fetched meanwhile
        items = [(message, self._source(sync, message.uid)) for message in wanted]
        # The root of each message's trace: its MessageFetched publish, then capture,
        # associate and the public events, nest under it.
        with spans.start_as_current_span(
            "ingest batch",
            attributes={
                "mailsync.mailbox_id": self._mailbox.id,
                "mailsync.folder_role": sync.folder.role,
                "messaging.batch.message_count": len(items),
            },
        ):
            outcomes = await self._pipeline.ingest_batch(items)
        for message, outcome in zip(wanted, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                logger.warning(
                    "message not published",
                    extra={
                        **self._ids,
                        "folder": sync.folder.name,
                        "uid": message.uid,
                        "error": _describe(outcome),
                    },
                )
            else:
                done.add(message.uid)
        return done

    def _source(self, sync: FolderSync, uid: int) -> MailSource:
        return MailSource(
            mailbox_id=self._mailbox.id,
            folder=sync.folder.name,
            folder_role=sync.folder.role,
            uidvalidity=sync.checkpoint.uidvalidity,
            uid=uid,
        )

    async def _save(self, sync: FolderSync, *, staged: bool = False) -> None:
        await self._record.save_folder(sync.checkpoint, staged=staged)
        self._checkpoints[folder_key(sync.folder.name)] = sync.checkpoint

    async def _wait_for_mail(self, connection: ImapConnection, syncs: list[FolderSync]) -> None:
        inbox = next((s for s in syncs if s.folder.role in IDLE_ROLES), None)
        if not (self._settings.use_idle and connection.supports_idle and inbox):
            await self._pause(self._settings.poll_interval_seconds)
            return
        # The round looked at INBOX last: when nothing was fetched since, that answer is fresh.
        state = connection.just_examined(inbox.folder.name) or await connection.examine(
            inbox.folder.name
        )
        if state.uidnext is not None and state.uidnext - 1 > inbox.checkpoint.last_uid:
            # Arrived after this round looked: IDLE reports only later changes, so go now.
            return
        await connection.wait_for_new_mail(self._settings.idle_refresh_seconds, self._stopping)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


def idle_folder_last(syncs: list[FolderSync]) -> list[FolderSync]:
    """The folders of a live round, the one IDLE watches last, so that the round ends with it
    open and its state fresh for the IDLE that follows."""
    return sorted(syncs, key=lambda sync: sync.folder.role in IDLE_ROLES)


def unchanged(checkpoint: FolderCheckpoint, state: FolderState) -> bool:
    """CONDSTORE: nothing in the folder changed since the last round, so it can be skipped."""
    return (
        checkpoint.backfill_floor is None
        and state.highest_modseq is not None
        and state.highest_modseq == checkpoint.highest_modseq
        and (state.uidnext is None or state.uidnext - 1 <= checkpoint.last_uid)
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _jittered(seconds: float) -> float:
    return random.uniform(seconds * 0.8, seconds * 1.2)


def _describe(error: BaseException) -> str:
    if isinstance(error, MailServerError):
        return failure_reason(error)
    text = str(error)
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__


def _refusal_reason(error: Exception) -> str:
    if isinstance(error, CredentialError):
        return "stored credential cannot be decrypted with this deployment's key"
    assert isinstance(error, MailServerError)
    return failure_reason(error)
