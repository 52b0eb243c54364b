"""How ingest authenticates: LOGIN with a password, or XOAUTH2 with an access token."""

import base64
from typing import Any, ClassVar

import pytest

from mailsync_ingest import imap_connection
from mailsync_ingest.imap_connection import ImapConnection, Login
from mailsync_shared.oauth import xoauth2_string
from mailsync_shared.storage.documents import ServerAccount


class RecordingClient:
    """Stands in for `imapclient.IMAPClient`; records the SASL exchange it is asked for."""

    instances: ClassVar[list["RecordingClient"]] = []

    def __init__(self, host: str, **kwargs: Any) -> None:
        self.sent: list[tuple[str, str, bytes | None]] = []
        self.enabled: list[str] = []
        self.normalise_times = True
        RecordingClient.instances.append(self)

    def login(self, username: str, password: str) -> None:
        self.sent.append(("LOGIN", username, password.encode()))

    def _command_and_check(self, command: str, mech: str, respond: Any) -> None:
        self.sent.append((command.upper(), mech, respond(None).encode()))

    def oauth2_login(self, user: str, access_token: str) -> None:
        from imapclient import IMAPClient

        IMAPClient.oauth2_login(self, user, access_token)

    def capabilities(self) -> tuple[bytes, ...]:
        return (b"IMAP4REV1", b"IDLE", b"CONDSTORE", b"AUTH=XOAUTH2")

    def enable(self, *capabilities: str) -> None:
        self.enabled.extend(capabilities)


ACCOUNT = ServerAccount(host="imap.example.test", port=993, security="tls", username="ann")


@pytest.fixture(autouse=True)
def recording(monkeypatch: pytest.MonkeyPatch) -> None:
    RecordingClient.instances.clear()
    monkeypatch.setattr(imap_connection, "IMAPClient", RecordingClient)


async def test_xoauth2_sends_the_bearer_token_in_the_sasl_string() -> None:
    connection = await ImapConnection.open(
        ACCOUNT, Login("ann@example.test", access_token="ya29.token"), socket_timeout=5
    )

    [(command, mechanism, response)] = RecordingClient.instances[0].sent
    assert (command, mechanism) == ("AUTHENTICATE", "XOAUTH2")
    assert response == b"user=ann@example.test\x01auth=Bearer ya29.token\x01\x01"
    assert base64.b64encode(response).decode() == xoauth2_string("ann@example.test", "ya29.token")
    assert connection.condstore
    assert RecordingClient.instances[0].enabled == ["CONDSTORE"]


async def test_a_password_uses_login() -> None:
    await ImapConnection.open(ACCOUNT, Login("ann", password="secret"), socket_timeout=5)

    assert RecordingClient.instances[0].sent == [("LOGIN", "ann", b"secret")]


def test_credentials_never_show_in_the_login_repr() -> None:
    shown = repr(Login("ann", password="secret", access_token="ya29.token"))
    assert "secret" not in shown
    assert "ya29" not in shown
