"""The plain-words answers about a mailbox."""

from typing import Any

from mailsync_api.mailbox_summary import sync_summary
from mailsync_shared.storage.documents import MailboxDocument


def mailbox(**fields: Any) -> MailboxDocument:
    account = {"host": "smtp.acme.test", "port": 465, "username": "olga@acme.test"}
    return MailboxDocument.model_validate(
        {
            "workspace_id": "ws",
            "address": "olga@acme.test",
            "imap": account,
            "smtp": account,
            **fields,
        }
    )


def test_backfill_window_and_visibility_are_spelled_out() -> None:
    summary = sync_summary(mailbox(sync={"backfill_days": 30}, visibility="metadata"))

    assert "last 30 days" in summary.what_is_synced
    assert "olga@acme.test" in summary.direction
    assert "smtp.acme.test" in summary.direction
    assert "never changes flags" in summary.direction
    assert "who took part and when" in summary.who_can_see
    assert "only the mailbox owner sees subjects and message bodies" in summary.who_can_see


def test_no_backfill_means_from_connection_on() -> None:
    summary = sync_summary(mailbox(sync={"backfill_days": None}, visibility="private"))

    assert "older mail is not imported" in summary.what_is_synced
    assert summary.who_can_see.startswith("Only the mailbox owner")


def test_client_only_scope_and_no_sent_copy() -> None:
    summary = sync_summary(mailbox(sync={"scope": "client_only"}, append_to_sent=False))

    assert "already contacts" in summary.what_is_synced
    assert "no copy is put in its Sent folder" in summary.direction


def test_a_disconnected_mailbox_syncs_nothing() -> None:
    summary = sync_summary(mailbox(status={"state": "disconnected"}, visibility="workspace"))

    assert summary.what_is_synced.startswith("Nothing")
    assert summary.direction.startswith("Neither way")
