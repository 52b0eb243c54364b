"""Encryption of mailbox credentials at rest."""

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr


class CredentialError(Exception):
    """A stored credential cannot be decrypted with the configured key."""


class CredentialCipher:
    """Encrypts and decrypts credentials with the deployment's secret key."""

    def __init__(self, key: SecretStr) -> None:
        try:
            self._fernet = Fernet(key.get_secret_value().encode())
        except ValueError as error:
            raise ValueError(
                "MAILSYNC_SECRET_KEY must be 32 url-safe base64-encoded bytes; "
                "generate one with `python -m mailsync_shared.crypto`"
            ) from error

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as error:
            raise CredentialError("stored credential does not match MAILSYNC_SECRET_KEY") from error


def generate_key() -> str:
    return Fernet.generate_key().decode()


if __name__ == "__main__":
    print(generate_key())
