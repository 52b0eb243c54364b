"""Recorded IMAP server answers turned into what the sync needs."""

from imapclient.response_parser import parse_fetch_response

from mailsync_ingest.folders import Folder
from mailsync_ingest.imap_connection import fetch_items, fetched_message, folder_state
from mailsync_ingest.sync_loop import FolderSync, idle_folder_last, unchanged
from mailsync_shared.contracts.mail import FolderRole
from mailsync_shared.mail_servers.imap import Reply, status_answer
from mailsync_shared.storage.documents import FolderCheckpoint

BODY = b"From: Ann <ann@client.test>\r\nSubject: Pilot\r\nMessage-ID: <a@client.test>\r\n\r\nHi\r\n"


def recorded_fetch(prefix: bytes, body: bytes = BODY) -> list[tuple[bytes, bytes] | bytes]:
    """A FETCH answer as imaplib hands it over: the line with its literal, then `)`."""
    return [(prefix + b" BODY[] {%d}" % len(body), body), b")"]


def test_gmail_thread_and_message_ids_are_captured() -> None:
    # Recorded from imap.gmail.com (X-GM-EXT-1), body replaced.
    answer = parse_fetch_response(
        recorded_fetch(
            b"1 (X-GM-THRID 1278455344230334865 X-GM-MSGID 1278455344230334866 UID 4 "
            b'RFC822.SIZE 81 INTERNALDATE "17-Jul-2026 02:44:25 -0700"'
        ),
        normalise_times=False,
        uid_is_key=True,
    )

    message = fetched_message(4, answer[4])

    assert message.provider_thread_id == "1278455344230334865"
    assert message.provider_message_id == "1278455344230334866"
    assert message.body == BODY
    assert message.size == 81
    assert message.internal_date is not None
    assert message.internal_date.day == 17


def test_other_servers_have_no_provider_ids() -> None:
    answer = parse_fetch_response(
        recorded_fetch(b'1 (UID 7 RFC822.SIZE 81 INTERNALDATE "17-Jul-2026 02:44:25 +0000"'),
        normalise_times=False,
        uid_is_key=True,
    )

    message = fetched_message(7, answer[7])

    assert (message.provider_thread_id, message.provider_message_id) == (None, None)


def test_gmail_ids_are_asked_for_only_on_gmail() -> None:
    assert {"X-GM-THRID", "X-GM-MSGID"} <= set(fetch_items(gmail=True))
    assert not {"X-GM-THRID", "X-GM-MSGID"} & set(fetch_items(gmail=False))
    assert "BODY.PEEK[]" in fetch_items(gmail=False)
    assert "BODY[]" not in fetch_items(gmail=True)


def test_examine_answer_with_condstore() -> None:
    # Dovecot's EXAMINE answer after ENABLE CONDSTORE, as imapclient parses it.
    state = folder_state(
        {
            b"EXISTS": 12,
            b"UIDVALIDITY": 1732600000,
            b"UIDNEXT": 13,
            b"HIGHESTMODSEQ": 40,
            b"READ-ONLY": [b""],
        }
    )

    assert (state.uidvalidity, state.uidnext, state.exists) == (1732600000, 13, 12)
    assert state.highest_modseq == 40


def test_a_folder_is_skipped_only_when_nothing_changed() -> None:
    checkpoint = FolderCheckpoint(
        name="INBOX", role="inbox", uidvalidity=1, last_uid=12, highest_modseq=40
    )
    same = folder_state({b"UIDVALIDITY": 1, b"UIDNEXT": 13, b"HIGHESTMODSEQ": 40})
    flags_changed = folder_state({b"UIDVALIDITY": 1, b"UIDNEXT": 13, b"HIGHESTMODSEQ": 41})
    new_mail = folder_state({b"UIDVALIDITY": 1, b"UIDNEXT": 14, b"HIGHESTMODSEQ": 40})
    without_condstore = folder_state({b"UIDVALIDITY": 1, b"UIDNEXT": 13})

    assert unchanged(checkpoint, same)
    assert not unchanged(checkpoint, flags_changed)
    assert not unchanged(checkpoint, new_mail)
    assert not unchanged(checkpoint, without_condstore)
    assert not unchanged(checkpoint.model_copy(update={"backfill_floor": 5}), same)


def test_status_answer_names_its_numbers_as_an_examine_answer_does() -> None:
    reply = Reply(
        untagged=[
            [
                b'STATUS "Sent (old)" '
                b"(UIDVALIDITY 1732600000 UIDNEXT 13 MESSAGES 12 HIGHESTMODSEQ 40)"
            ],
            [b"3 EXISTS"],  # news of the open folder may come with any answer
        ],
        text=b"Status completed.",
    )
    state = folder_state(status_answer(reply))

    assert (state.uidvalidity, state.uidnext, state.exists) == (1732600000, 13, 12)
    assert state.highest_modseq == 40


def test_a_status_answer_for_a_folder_sent_as_a_literal() -> None:
    reply = Reply(
        untagged=[[(b"STATUS {6}", b"Offers"), b" (UIDVALIDITY 7 UIDNEXT 2 MESSAGES 1)"]],
        text=b"OK",
    )
    state = folder_state(status_answer(reply))

    assert (state.uidvalidity, state.uidnext, state.exists, state.highest_modseq) == (7, 2, 1, None)


def test_a_live_round_ends_with_the_folder_idle_watches() -> None:
    def sync(name: str, role: FolderRole) -> FolderSync:
        checkpoint = FolderCheckpoint(name=name, role=role, uidvalidity=1, last_uid=0)
        return FolderSync(Folder(name=name, role=role), checkpoint)

    inbox, sent, gmail_all = sync("INBOX", "inbox"), sync("Sent", "sent"), sync("All", "all")

    assert idle_folder_last([inbox, sent]) == [sent, inbox]
    assert idle_folder_last([sent, inbox]) == [sent, inbox]
    assert idle_folder_last([gmail_all]) == [gmail_all]
