"""Folder choice from the server's LIST answer."""

from mailsync_ingest.folders import Folder, choose_folders, folder_key

DOVECOT = [
    ((b"\\HasNoChildren", b"\\Sent"), b"/", "Sent"),
    ((b"\\HasNoChildren", b"\\Drafts"), b"/", "Drafts"),
    ((b"\\HasNoChildren", b"\\Junk"), b"/", "Junk"),
    ((b"\\HasNoChildren", b"\\Trash"), b"/", "Trash"),
    ((b"\\HasNoChildren",), b"/", "INBOX"),
]


def test_inbox_and_special_use_sent() -> None:
    expected = [Folder("INBOX", "inbox"), Folder("Sent", "sent")]
    assert choose_folders(DOVECOT, gmail=False) == expected


def test_sent_found_by_attribute_not_name() -> None:
    entries = [((), b".", "INBOX"), ((b"\\Sent",), b".", "INBOX.Gesendet"), ((), b".", "Sent")]
    assert choose_folders(entries, gmail=False)[1] == Folder("INBOX.Gesendet", "sent")


def test_sent_by_name_only_without_attributes() -> None:
    entries = [((), b"/", "INBOX"), ((), b"/", "Sent Items"), ((b"\\Junk",), b"/", "Sent")]
    assert choose_folders(entries, gmail=False) == [
        Folder("INBOX", "inbox"),
        Folder("Sent Items", "sent"),
    ]


def test_gmail_reads_all_mail_only() -> None:
    entries = [
        ((), b"/", "INBOX"),
        ((b"\\HasNoChildren", b"\\All"), b"/", "[Gmail]/All Mail"),
        ((b"\\Sent",), b"/", "[Gmail]/Sent Mail"),
        ((b"\\Junk",), b"/", "[Gmail]/Spam"),
    ]
    assert choose_folders(entries, gmail=True) == [Folder("[Gmail]/All Mail", "all")]


def test_folder_key_is_a_safe_field_name() -> None:
    assert folder_key("INBOX.Sent") == "INBOX%2ESent"
    assert folder_key("$x%") == "%24x%25"
