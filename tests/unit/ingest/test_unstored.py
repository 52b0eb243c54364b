"""Which raw-store errors make a message "not stored" and which are retried with the batch."""

from pymongo.errors import AutoReconnect, BulkWriteError, DocumentTooLarge, NotPrimaryError

from mailsync_ingest.messages import refused_for_good


def test_errors_a_retry_would_meet_again_mark_the_message_not_stored() -> None:
    assert refused_for_good(DocumentTooLarge("17 MiB"))
    assert refused_for_good(BulkWriteError({"writeErrors": [{"code": 10334}]}))


def test_a_lost_connection_is_retried_not_recorded() -> None:
    assert not refused_for_good(AutoReconnect("connection reset"))
    assert not refused_for_good(NotPrimaryError("stepped down"))
    assert not refused_for_good(RuntimeError("anything else"))
