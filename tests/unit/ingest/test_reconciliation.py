"""Reconciliation: which folders hold mail on the server that was never logged."""

from mailsync_ingest.reconciliation import FolderTally, gaps, up_to_checkpoint
from mailsync_shared.storage.documents import FolderCheckpoint

INBOX = FolderCheckpoint(name="INBOX", role="inbox", uidvalidity=7, last_uid=10)
SENT = FolderCheckpoint(name="Sent", role="sent", uidvalidity=3, last_uid=4)


def tally(checkpoint: FolderCheckpoint, server: set[int], logged: set[int]) -> FolderTally:
    return FolderTally(checkpoint, frozenset(server), frozenset(logged))


def test_no_gap_when_every_server_message_is_logged() -> None:
    assert gaps([tally(INBOX, {1, 2, 3}, {1, 2, 3, 99})]) == []


def test_a_gap_names_the_folder_and_the_counts() -> None:
    found = gaps([tally(INBOX, {1, 2, 3, 4}, {1, 3}), tally(SENT, {1}, {1})])

    assert [(g.folder, g.server, g.logged, g.missing) for g in found] == [("INBOX", 4, 2, 2)]


def test_mail_skipped_on_purpose_is_not_a_gap() -> None:
    found = gaps([tally(INBOX, {1, 2, 3}, {1}), tally(SENT, {1, 2}, set())], skipped=3)

    assert [(g.folder, g.missing) for g in found] == [("Sent", 1)]


def test_only_uids_the_checkpoint_covers_are_counted() -> None:
    assert up_to_checkpoint([1, 5, 10, 11], INBOX) == {1, 5, 10}
    backfilling = INBOX.model_copy(update={"backfill_floor": 5})
    assert up_to_checkpoint([1, 5, 10, 11], backfilling) == {5, 10}
