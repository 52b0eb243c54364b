"""Classifying SMTP failures: what may pass on a later try and what never will."""

import ssl

import aiosmtplib
import pytest

from mailsync_send.relay import classify
from mailsync_shared.mail_servers.errors import (
    AuthRefusedError,
    HostRefusedError,
    ProtocolError,
    ServerTimeoutError,
    TlsError,
    UnreachableError,
)
from mailsync_shared.mail_servers.smtp import smtp_failure


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (aiosmtplib.SMTPResponseException(421, "4.3.2 Service shutting down"), False),
        (aiosmtplib.SMTPDataError(451, "4.3.0 Local delivery failed"), False),
        (aiosmtplib.SMTPSenderRefused(452, "4.3.1 Insufficient storage", "a@b.test"), False),
        (aiosmtplib.SMTPDataError(554, "5.3.0 Transaction failed"), True),
        (aiosmtplib.SMTPAuthenticationError(535, "5.7.8 Authentication failed"), True),
        (aiosmtplib.SMTPSenderRefused(553, "5.7.1 Sender not owned", "a@b.test"), True),
        (aiosmtplib.SMTPServerDisconnected("Connection lost"), False),
        (aiosmtplib.SMTPConnectError("Connection refused"), False),
        (aiosmtplib.SMTPReadTimeoutError("Timed out waiting for server response"), False),
        (ConnectionResetError("reset by peer"), False),
        (aiosmtplib.SMTPNotSupported("STARTTLS extension not supported by server"), True),
        (ssl.SSLCertVerificationError("certificate verify failed"), True),
    ],
)
def test_reply_classes(error: Exception, permanent: bool) -> None:
    assert classify(error).permanent is permanent


def test_a_refused_recipient_keeps_the_servers_reply() -> None:
    refusal = aiosmtplib.SMTPRecipientRefused(
        550, "5.1.1 <x@client.test>: Recipient address rejected: User unknown", "x@client.test"
    )

    failure = classify(aiosmtplib.SMTPRecipientsRefused([refusal]))

    assert failure.permanent
    assert "550 5.1.1" in failure.reason
    assert "User unknown" in failure.reason


def test_all_recipients_refused_with_a_transient_reply_is_transient() -> None:
    refusals = [
        aiosmtplib.SMTPRecipientRefused(550, "5.1.1 unknown", "x@client.test"),
        aiosmtplib.SMTPRecipientRefused(450, "4.2.1 mailbox busy", "y@client.test"),
    ]

    assert not classify(aiosmtplib.SMTPRecipientsRefused(refusals)).permanent


def test_a_connection_lost_during_the_message_data_is_ambiguous() -> None:
    lost = aiosmtplib.SMTPServerDisconnected("Connection lost")

    assert classify(lost, during_data=True).ambiguous
    assert not classify(lost, during_data=False).ambiguous
    assert not classify(
        aiosmtplib.SMTPDataError(451, "4.3.0 try later"), during_data=True
    ).ambiguous


@pytest.mark.parametrize(
    ("error", "permanent", "auth_refused"),
    [
        (AuthRefusedError("535 5.7.8 Authentication failed"), True, True),
        (AuthRefusedError("454 4.7.0 Temporary authentication failure"), False, True),
        (HostRefusedError("smtp.example.test resolves to a non-public address"), True, False),
        (TlsError("certificate verify failed"), True, False),
        (UnreachableError("Connection refused"), False, False),
        (ServerTimeoutError("no answer"), False, False),
        (ProtocolError("421 4.3.2 Service shutting down"), False, False),
        (ProtocolError("SMTPNotSupported: STARTTLS extension not supported"), True, False),
    ],
)
def test_failures_of_the_shared_layer(
    error: Exception, permanent: bool, auth_refused: bool
) -> None:
    failure = classify(error)
    assert failure.permanent is permanent
    assert failure.auth_refused is auth_refused


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (aiosmtplib.SMTPAuthenticationError(535, "5.7.8 Authentication failed"), "auth_refused"),
        (aiosmtplib.SMTPConnectError("Connection refused"), "unreachable"),
        (aiosmtplib.SMTPConnectTimeoutError("Timed out connecting"), "timeout"),
        (ssl.SSLCertVerificationError("certificate verify failed"), "tls"),
        (aiosmtplib.SMTPResponseException(421, "4.3.2 Service shutting down"), "protocol"),
        (aiosmtplib.SMTPNotSupported("STARTTLS extension not supported"), "protocol"),
    ],
)
def test_smtp_client_errors_take_the_shared_kinds(error: Exception, kind: str) -> None:
    assert smtp_failure(error).kind == kind
