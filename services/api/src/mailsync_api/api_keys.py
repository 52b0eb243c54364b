"""API keys: shown once at creation, stored only as a SHA-256 digest."""

import hashlib
import secrets

KEY_PREFIX = "msk_"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """The first characters of a key: enough to tell keys apart, useless to an attacker."""
    return key[: len(KEY_PREFIX) + 6]
