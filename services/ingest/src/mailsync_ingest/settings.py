"""Settings of the ingest service."""

import os
import socket

from pydantic import Field

from mailsync_shared.settings import SecretSettings


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(SecretSettings):
    http_port: int = Field(default=8101, description="Port of the health endpoints.")
    worker_id: str = Field(
        default_factory=default_worker_id,
        description="Owner name written into mailbox leases; unique per running process.",
    )
    workspaces: list[str] = Field(
        default_factory=list,
        description=(
            "Workspaces whose mailboxes this worker pool leases (JSON list); empty means all. "
            "Scaling per tenant: run one pool per set of workspaces."
        ),
    )
    exclude_workspaces: list[str] = Field(
        default_factory=list,
        description=(
            "Workspaces this pool never leases (JSON list): the ones served by pools of their "
            "own, so a shared pool and per-tenant pools split the mailboxes between them."
        ),
    )
    max_mailboxes: int = Field(default=1000, ge=1, description="Mailboxes leased per worker.")
    lease_seconds: float = Field(
        default=15.0,
        gt=0,
        description=(
            "How long a lease lasts unless renewed (renewed every third of it); a killed "
            "worker's mailboxes are taken over within this plus `claim_interval_seconds`."
        ),
    )
    claim_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description=(
            "How often the worker looks for unleased mailboxes: the guarantee behind the "
            "api's wake-ups (`mailsync.mailbox.claimable.v1`), which make it look at once."
        ),
    )
    wake_gap_seconds: float = Field(
        default=0.2,
        gt=0,
        description=(
            "Shortest time between two claims (or two renewals) brought forward by wake-ups: "
            "wakes arriving meanwhile make one claim, so a burst of connects costs a scan of "
            "the mailbox documents per this time at most, not one per mailbox."
        ),
    )
    poll_interval_seconds: float = Field(
        default=2.0, gt=0, description="How often to look for new mail when not using IDLE."
    )
    use_idle: bool = Field(default=True, description="Wait with IMAP IDLE where offered.")
    idle_refresh_seconds: float = Field(
        default=10.0,
        gt=0,
        le=25 * 60,
        description=(
            "The keepalive: longest single IDLE; then the other folders (Sent) are checked and "
            "IDLE is re-issued, so mail filed in Sent shows within this time "
            "(servers may drop an IDLE after 29 minutes). The server must answer the end of "
            "an IDLE within the same time, so a silently dead connection is found within "
            "twice this."
        ),
    )
    connect_concurrency: int = Field(
        default=64,
        ge=1,
        description=(
            "Mailboxes connecting at once (login, folder planning, the first status write); "
            "the others wait, so a worker taking many mailboxes at once (at start, on "
            "failover) floods neither the mail server nor the store."
        ),
    )
    fetch_batch: int = Field(default=200, ge=1, description="Messages per UID FETCH.")
    max_bytes_in_flight: int = Field(
        default=64 * 1024 * 1024,
        ge=64 * 1024,
        description=(
            "Message bytes the worker holds at once, fetched and not yet confirmed by the "
            "broker; fetches wait beyond it. One FETCH brings at most a quarter of it (a "
            "larger single message goes alone)."
        ),
    )
    backfill_round_seconds: float = Field(
        default=5.0,
        gt=0,
        description=(
            "Longest stretch of backfill (older mail) before every folder is checked for new "
            "mail again; FETCHes inside a stretch are pipelined."
        ),
    )
    reconcile_interval_seconds: float = Field(
        default=900.0,
        gt=0,
        description=(
            "How often a live mailbox compares the server's message count per folder (inside "
            "the window) with what was logged, and records any gap."
        ),
    )
    reconcile_settle_seconds: float = Field(
        default=30.0,
        gt=0,
        description=(
            "How long after a backfill is done the first comparison waits, and the next after "
            "one that found gaps (doubling up to `reconcile_interval_seconds` while gaps "
            "remain; never longer than that interval): mail just published takes associate a "
            "while to log."
        ),
    )
    imap_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Socket timeout of IMAP commands (detects dead peers)."
    )
    reconnect_initial_seconds: float = Field(
        default=1.0, gt=0, description="First delay before reconnecting after a failure."
    )
    reconnect_max_seconds: float = Field(
        default=300.0, gt=0, description="Longest delay between reconnection attempts."
    )
    oauth_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of a request to an OAuth token endpoint."
    )
    auth_retry_seconds: float = Field(
        default=900.0,
        gt=0,
        description="Delay before retrying a mailbox whose credentials were refused.",
    )
    max_message_bytes: int = Field(
        default=50 * 1024 * 1024, ge=1024, description="Larger messages are stored truncated."
    )
    max_header_bytes: int = Field(
        default=256 * 1024, ge=1024, description="Bytes kept of each header (a longer one is cut)."
    )
    max_mime_parts: int = Field(default=1000, ge=1, description="MIME parts kept per message.")
    max_mime_depth: int = Field(default=30, ge=1, description="Multipart nesting kept.")
    max_addresses_per_header: int = Field(
        default=1000, ge=1, description="Addresses parsed per address header."
    )
