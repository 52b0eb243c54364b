"""Rate-limit windows, retry backoff, what the scheduler tells apart, and the XOAUTH2 pieces
that need no server."""

import base64
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from mailsync_send.rate_limit import window_start
from mailsync_send.scheduler import version
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.oauth import OAuthError, OAuthGrant, grant_of, xoauth2_string
from mailsync_shared.storage.documents import ServerAccount


def test_windows_start_on_the_minute() -> None:
    at = datetime(2025, 3, 4, 10, 30, 59, 999_000, tzinfo=UTC)

    assert window_start(at) == datetime(2025, 3, 4, 10, 30, tzinfo=UTC)
    assert window_start(at.replace(second=0, microsecond=0)) == window_start(at)
    assert window_start(datetime(2025, 3, 4, 10, 31, tzinfo=UTC)) > window_start(at)


def test_a_request_that_moved_since_it_was_handed_on_is_handed_on_again() -> None:
    at = datetime(2025, 3, 4, 10, 30, tzinfo=UTC)
    later = datetime(2025, 3, 4, 10, 31, tzinfo=UTC)

    assert version("queued", at) == version("queued", at)
    assert version("queued", at) != version("queued", later), "deferred anew"
    assert version("queued", None) != version("queued", at)
    assert version("sending", at, 1) != version("sending", later, 1), "released"
    assert version("sending", at, 1) != version("sending", at, 2), "claimed again"
    assert version("sent", None) != version("queued", None)


def test_the_xoauth2_string_follows_the_protocol() -> None:
    encoded = xoauth2_string("owner@acme.test", "tok")

    assert base64.b64decode(encoded) == b"user=owner@acme.test\x01auth=Bearer tok\x01\x01"


def test_a_grant_is_read_from_the_encrypted_account() -> None:
    cipher = CredentialCipher(SecretStr(Fernet.generate_key().decode()))
    account = ServerAccount(
        host="smtp.acme.test",
        port=587,
        username="owner@acme.test",
        auth="xoauth2",
        secret_encrypted=cipher.encrypt("refresh"),
        client_secret_encrypted=cipher.encrypt("client-secret"),
        token_endpoint="https://login.acme.test/token",
        client_id="client",
    )

    grant = grant_of(account, cipher)

    assert grant.refresh_token == "refresh"
    assert grant.client_secret == "client-secret"
    assert "refresh" not in repr(grant)


def test_an_account_without_an_endpoint_is_a_permanent_oauth_error() -> None:
    cipher = CredentialCipher(SecretStr(Fernet.generate_key().decode()))
    account = ServerAccount(host="h", port=1, username="u", auth="xoauth2")

    with pytest.raises(OAuthError) as raised:
        grant_of(account, cipher)
    assert raised.value.permanent


def test_cache_keys_differ_per_refresh_token() -> None:
    first = OAuthGrant("https://t", "c", "r1")
    second = OAuthGrant("https://t", "c", "r2")

    assert first.cache_key != second.cache_key
