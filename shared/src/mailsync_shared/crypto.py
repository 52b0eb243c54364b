"""Encryption of mailbox credentials at rest, with keys that can be rotated.

The deployment holds one or more Fernet keys, newest first (`MAILSYNC_SECRET_KEYS`, or the
single `MAILSYNC_SECRET_KEY`). New credentials are encrypted with the newest; any of them
decrypts. Rotating: put a new key first, restart the services, run
`python -m mailsync_shared.crypto rotate` (every stored credential re-encrypted with the
newest key), then drop the old key.
"""

import sys

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

KEY_HELP = (
    "MAILSYNC_SECRET_KEYS (comma-separated, newest first) or MAILSYNC_SECRET_KEY must hold "
    "Fernet keys of 32 url-safe base64-encoded bytes; generate one with "
    "`python -m mailsync_shared.crypto`"
)


class CredentialError(Exception):
    """A stored credential cannot be decrypted with the configured keys."""


class CredentialCipher:
    """Encrypts with the newest of the deployment's keys; decrypts with any of them."""

    def __init__(self, keys: SecretStr) -> None:
        values = [key.strip() for key in keys.get_secret_value().split(",") if key.strip()]
        if not values:
            raise ValueError(KEY_HELP)
        try:
            self._fernet = MultiFernet([Fernet(value.encode()) for value in values])
        except ValueError as error:
            raise ValueError(KEY_HELP) from error

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as error:
            raise CredentialError("stored credential matches none of the secret keys") from error

    def rotate(self, token: str) -> str:
        """`token` encrypted again with the newest key (its original time kept)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as error:
            raise CredentialError("stored credential matches none of the secret keys") from error


def generate_key() -> str:
    return Fernet.generate_key().decode()


def main(argv: list[str]) -> int:
    if not argv:
        print(generate_key())
        return 0
    if argv == ["rotate"]:
        from mailsync_shared.credential_rotation import run_rotation

        return run_rotation()
    print("usage: python -m mailsync_shared.crypto [rotate]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
