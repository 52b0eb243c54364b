from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from mailsync_shared.crypto import CredentialCipher, CredentialError
from mailsync_shared.storage.scoped import IsolationError, WorkspaceCollection


class RecordingCollection:
    """Stands in for a PyMongo collection to capture the filter the scope builds."""

    name = "contacts"

    def __init__(self) -> None:
        self.filters: list[dict[str, Any]] = []

    async def find_one(self, filter_: dict[str, Any], **_: Any) -> None:
        self.filters.append(filter_)


async def test_every_filter_is_scoped_to_the_workspace() -> None:
    raw = RecordingCollection()
    scoped = WorkspaceCollection(raw, "ws1")  # type: ignore[arg-type]
    await scoped.find_one({"emails": "a@b.test"})
    assert raw.filters == [{"emails": "a@b.test", "workspace_id": "ws1"}]


async def test_a_filter_naming_another_workspace_is_refused() -> None:
    scoped = WorkspaceCollection(RecordingCollection(), "ws1")  # type: ignore[arg-type]
    with pytest.raises(IsolationError):
        await scoped.find_one({"workspace_id": "ws2"})
    with pytest.raises(IsolationError):
        await scoped.find_one({"workspace_id": {"$ne": "ws1"}})


def test_a_workspace_id_is_required() -> None:
    with pytest.raises(IsolationError):
        WorkspaceCollection(RecordingCollection(), "")  # type: ignore[arg-type]


def test_credentials_round_trip_and_do_not_appear_in_the_token() -> None:
    cipher = CredentialCipher(SecretStr(Fernet.generate_key().decode()))
    token = cipher.encrypt("hunter2-password")
    assert "hunter2" not in token
    assert cipher.decrypt(token) == "hunter2-password"


def test_a_token_from_another_key_is_a_clear_error() -> None:
    token = CredentialCipher(SecretStr(Fernet.generate_key().decode())).encrypt("x")
    other = CredentialCipher(SecretStr(Fernet.generate_key().decode()))
    with pytest.raises(CredentialError):
        other.decrypt(token)


def test_a_malformed_key_says_how_to_make_one() -> None:
    with pytest.raises(ValueError, match=r"mailsync_shared\.crypto"):
        CredentialCipher(SecretStr("short"))


def test_several_keys_encrypt_with_the_first_and_decrypt_with_any() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    from_old = CredentialCipher(SecretStr(old)).encrypt("kept")
    both = CredentialCipher(SecretStr(f" {new} , {old} "))

    fresh = both.encrypt("fresh")

    assert both.decrypt(from_old) == "kept"
    assert CredentialCipher(SecretStr(new)).decrypt(fresh) == "fresh"
    assert CredentialCipher(SecretStr(new)).decrypt(both.rotate(from_old)) == "kept"
    with pytest.raises(ValueError, match="MAILSYNC_SECRET_KEYS"):
        CredentialCipher(SecretStr(" , "))
