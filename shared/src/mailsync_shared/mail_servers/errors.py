"""One vocabulary of mail-server failures, used by the sync status and the api alike."""

from typing import Literal

FailureKind = Literal["auth_refused", "host_refused", "unreachable", "tls", "timeout", "protocol"]


class MailServerError(Exception):
    """A mail server could not be used; `kind` says why in the shared vocabulary."""

    kind: FailureKind = "protocol"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:300]


class AuthRefusedError(MailServerError):
    """The server refused the credentials (password or OAuth access token)."""

    kind = "auth_refused"


class HostRefusedError(MailServerError):
    """The host resolves to an address this deployment does not connect to."""

    kind = "host_refused"


class UnreachableError(MailServerError):
    """The name does not resolve, nothing answers, or the connection broke."""

    kind = "unreachable"


class TlsError(MailServerError):
    """The TLS handshake or certificate verification failed."""

    kind = "tls"


class ServerTimeoutError(MailServerError):
    """The server did not answer in time."""

    kind = "timeout"


class ProtocolError(MailServerError):
    """The server answered something this client cannot use (or refused a command)."""

    kind = "protocol"


def failure_reason(error: MailServerError) -> str:
    """A short sentence for a status field or a problem detail."""
    labels: dict[FailureKind, str] = {
        "auth_refused": "authentication failed",
        "host_refused": "mail server address not allowed",
        "unreachable": "mail server unreachable",
        "tls": "TLS failed",
        "timeout": "mail server timed out",
        "protocol": "mail server error",
    }
    return f"{labels[error.kind]}: {error.reason}"
