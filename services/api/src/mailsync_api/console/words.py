"""The console's plain words for states and codes the api reports."""

MAILBOX_STATES = {
    "connecting": "Connecting: logging in to the mail server.",
    "backfilling": "Importing past mail.",
    "live": "Up to date: new mail is logged as it arrives.",
    "error": "Stopped by an error; it is retried by itself.",
    "disconnected": "Disconnected: nothing is read or sent any more.",
}

DEFECTS = {
    "header_line_skipped": "a line in the headers was neither a header nor a continuation and "
    "was skipped",
    "charset_replaced": "text in an unknown or wrong character set was read as Windows-1252",
    "header_truncated": "a header was longer than the limit and was cut",
    "addresses_cut": "a header listed more addresses than the limit; the rest were left out",
    "date_out_of_range": "the Date header was implausible; the server's arrival time was used",
    "too_many_parts": "the message had more MIME parts than the limit; the rest were left out",
    "nesting_too_deep": "the message nested parts deeper than the limit; the rest were left out",
    "headers_unreadable": "the headers could not be read at all; the message was kept as it is",
}

UNSTORED = {
    "too_large": "larger than the largest message Mailsync keeps",
    "store_refused": "the database refused it",
}

ACCESS = {
    "metadata": "You see who took part and when: the mailbox shares no more with you.",
    "subject": "You see who took part, when and the subject: the mailbox shares no bodies "
    "with you.",
    "everything": "",
}


def defect(code: str) -> str:
    return DEFECTS.get(code, code.replace("_", " "))


def unstored(reason: str) -> str:
    return UNSTORED.get(reason, reason.replace("_", " "))
