"""Which mailboxes a worker pool may lease: how ingest scales per tenant."""

from mailsync_ingest.leasing import fair_share, pool_scope


def test_a_shared_pool_leases_every_workspace() -> None:
    assert pool_scope([], []) == {}


def test_a_tenant_pool_leases_only_its_workspaces() -> None:
    assert pool_scope(["ws-b", "ws-a"], []) == {"workspace_id": {"$in": ["ws-a", "ws-b"]}}


def test_a_shared_pool_leaves_tenants_with_their_own_pool_alone() -> None:
    assert pool_scope([], ["ws-big"]) == {"workspace_id": {"$nin": ["ws-big"]}}
    assert pool_scope(["ws-a", "ws-big"], ["ws-big"]) == {"workspace_id": {"$in": ["ws-a"]}}


def test_the_fair_share_rounds_up_so_every_mailbox_has_a_worker() -> None:
    assert fair_share(10, 3) == 4
    assert fair_share(9, 3) == 3
    assert fair_share(0, 2) == 1
    assert fair_share(5, 0) == 5
