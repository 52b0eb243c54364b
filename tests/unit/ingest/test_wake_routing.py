"""Which wakes reach which ingest worker: its pool's workspaces, through its own queue."""

from mailsync_ingest.leasing import in_pool
from mailsync_shared.contracts.mailboxes import ClaimableMailbox, MailboxClaimable
from mailsync_shared.topology import INTERNAL_EVENTS, WORK_EXCHANGE, exchange_for, ingest_wakes

TYPE = "mailsync.mailbox.claimable.v1"


def test_a_wake_is_internal_work_routed_by_type_and_workspace() -> None:
    event = MailboxClaimable.create(
        source="/mailsync/api",
        workspace_id="ws1",
        subject="mb1",
        data=ClaimableMailbox(mailbox_id="mb1", because="connected"),
    )
    assert MailboxClaimable in INTERNAL_EVENTS
    assert exchange_for(MailboxClaimable) is WORK_EXCHANGE
    assert event.routing_key == f"{TYPE}.ws1"


def test_a_tenant_pools_worker_is_bound_to_its_workspaces_only() -> None:
    wakes = ingest_wakes("host-1", ["ws-b", "ws-a", "ws-gone"], ["ws-gone"])
    assert wakes.keys == (f"{TYPE}.ws-a", f"{TYPE}.ws-b")


def test_a_shared_pools_worker_is_bound_to_every_workspace() -> None:
    assert ingest_wakes("host-1").keys == (f"{TYPE}.*",)
    assert ingest_wakes("host-1", [], ["ws-big"]).keys == (f"{TYPE}.*",)


def test_each_worker_has_a_queue_of_its_own_that_goes_with_it() -> None:
    first, second = ingest_wakes("host-1").queue, ingest_wakes("host-2").queue
    assert first.name != second.name
    assert first.exclusive
    assert first.auto_delete
    assert not first.durable


def test_a_pool_leases_its_workspaces_minus_the_excluded_ones() -> None:
    assert in_pool("ws-a", [], [])
    assert in_pool("ws-a", ["ws-a"], [])
    assert not in_pool("ws-b", ["ws-a"], [])
    assert not in_pool("ws-big", [], ["ws-big"])
    assert not in_pool("ws-a", ["ws-a"], ["ws-a"])
