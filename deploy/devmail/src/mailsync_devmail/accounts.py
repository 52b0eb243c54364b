"""Mail accounts of the local Dovecot: one passwd-file shared by Dovecot and the SMTP server.

Each account is one line ``address:{PLAIN}password::::::`` (Dovecot passwd-file format, the
user name is the full lower-cased email address). Dovecot re-reads the file whenever it
changes, so accounts added here work at once over IMAP, LMTP and SMTP without a reload.

CLI::

    python -m mailsync_devmail.accounts add ADDRESS PASSWORD [--users PATH]
    python -m mailsync_devmail.accounts remove ADDRESS [--users PATH]
    python -m mailsync_devmail.accounts list [--users PATH]

``--users`` defaults to ``$MAILSYNC_MAIL_USERS_FILE``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hmac
import math
import os
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "InvalidAccountError",
    "UsersFile",
    "add_account",
    "add_accounts",
    "normalize_address",
    "read_accounts",
    "remove_account",
]

USERS_FILE_ENV = "MAILSYNC_MAIL_USERS_FILE"
_NEW_FILE_MODE = 0o644  # Dovecot's auth process (user `dovecot`) must be able to read it.
_PLAIN_SCHEMES = ("{PLAIN}", "{CLEARTEXT}")
_FORBIDDEN = frozenset(":\r\n\0")


class InvalidAccountError(ValueError):
    """The address or password cannot be stored in a passwd-file."""


def normalize_address(address: str) -> str:
    """Return the passwd-file user name for ``address``: stripped and lower-cased."""
    normalized = address.strip().lower()
    local, at, domain = normalized.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAccountError(f"not an email address: {address!r}")
    if any(ch in _FORBIDDEN or ch.isspace() for ch in normalized):
        raise InvalidAccountError(f"address contains a forbidden character: {address!r}")
    return normalized


def _check_password(password: str) -> None:
    if not password:
        raise InvalidAccountError("password must not be empty")
    if any(ch in _FORBIDDEN for ch in password):
        raise InvalidAccountError("password must not contain ':', CR, LF or NUL")


def _user_of(line: str) -> str | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    return stripped.split(":", 1)[0].strip().lower()


def read_accounts(users_file: Path) -> dict[str, str | None]:
    """Map each address in ``users_file`` to its plaintext password.

    The password is None when it is stored with a non-plaintext scheme (``{SHA512-CRYPT}``…).
    A missing file means no accounts.
    """
    try:
        text = users_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    accounts: dict[str, str | None] = {}
    for line in text.splitlines():
        user = _user_of(line)
        if user is None:
            continue
        fields = line.strip().split(":")
        secret = fields[1] if len(fields) > 1 else ""
        password: str | None
        if secret.startswith("{"):
            scheme_end = secret.find("}") + 1
            scheme = secret[:scheme_end].upper()
            password = secret[scheme_end:] if scheme in _PLAIN_SCHEMES else None
        else:
            password = secret  # the passdb is configured with scheme=PLAIN
        accounts[user] = password
    return accounts


@contextlib.contextmanager
def _locked(users_file: Path) -> Iterator[None]:
    """Serialize writers (several test workers may add accounts at the same time)."""
    lock_path = users_file.with_name(users_file.name + ".lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _write_atomically(users_file: Path, lines: Sequence[str]) -> None:
    """Replace ``users_file`` with ``lines`` in one rename, keeping its mode and owner.

    Dovecot notices a changed passwd-file only by its mtime in whole seconds and its size, so
    the new file's mtime is made strictly greater (in seconds) than the old one's, even when
    several writes land within one second (it may then run a few seconds ahead of the clock).
    """
    try:
        current = users_file.stat()
    except FileNotFoundError:
        current = None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{users_file.name}.", dir=users_file.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.writelines(line + "\n" for line in lines)
            out.flush()
            os.fsync(out.fileno())
        if current is None:
            tmp.chmod(_NEW_FILE_MODE)
        else:
            tmp.chmod(stat.S_IMODE(current.st_mode))
            with contextlib.suppress(PermissionError):
                os.chown(tmp, current.st_uid, current.st_gid)
            mtime = max(int(time.time()), int(current.st_mtime) + 1)
            os.utime(tmp, (mtime, mtime))
        tmp.replace(users_file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _wait_for_dovecot_resync() -> None:
    """Sleep into the next wall-clock second.

    Dovecot's auth process stats the passwd-file at most once per second (``passwd_file_sync``
    compares the second of its last check with the current one). A lookup made earlier in the
    second of our write may have cached the old file; from the next second on, every lookup
    sees the new one. So once this returns, IMAP/LMTP logins know the change.
    """
    now = time.time()
    time.sleep(math.floor(now) + 1.05 - now)


def add_accounts(users_file: Path, accounts: Mapping[str, str], *, wait: bool = True) -> None:
    """Create or update several accounts (address -> plaintext password) in one write.

    Idempotent: existing lines for the same addresses (case-insensitive) are replaced. The file
    is rewritten atomically, so Dovecot and the SMTP server never see a half-written file. With
    ``wait`` (the default), returns only once Dovecot is sure to see the change (< 1.1 s).
    """
    wanted: dict[str, str] = {}
    for address, password in accounts.items():
        _check_password(password)
        user = normalize_address(address)
        wanted[user] = f"{user}:{{PLAIN}}{password}::::::"
    if not wanted:
        return
    users_file = Path(users_file)
    users_file.parent.mkdir(parents=True, exist_ok=True)
    with _locked(users_file):
        try:
            lines = users_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        present = {_user_of(line): line for line in lines}
        if all(present.get(user) == line for user, line in wanted.items()):
            return  # already exactly there: leave the file (and its mtime) alone
        kept = [line for line in lines if _user_of(line) not in wanted]
        kept.extend(wanted.values())
        _write_atomically(users_file, kept)
    if wait:
        _wait_for_dovecot_resync()


def add_account(users_file: Path, address: str, password: str, *, wait: bool = True) -> None:
    """Create or update the account ``address`` with a plaintext password.

    Idempotent: an existing line for the same address (case-insensitive) is replaced; the
    write is atomic. With ``wait`` (the default) it returns only once Dovecot is sure to see
    the account (up to about a second later: see :func:`add_accounts`); to create many
    accounts, call :func:`add_accounts` once instead.
    """
    add_accounts(users_file, {address: password}, wait=wait)


def remove_account(users_file: Path, address: str) -> bool:
    """Delete the account ``address``; return whether it existed."""
    user = normalize_address(address)
    users_file = Path(users_file)
    with _locked(users_file):
        try:
            lines = users_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return False
        kept = [line for line in lines if _user_of(line) != user]
        if len(kept) == len(lines):
            return False
        _write_atomically(users_file, kept)
    _wait_for_dovecot_resync()
    return True


def split_detail(address: str, delimiter: str = "+") -> str:
    """``bob+crm@client.test`` -> ``bob@client.test`` (Dovecot's recipient_delimiter)."""
    local, at, domain = address.rpartition("@")
    if not at or delimiter not in local:
        return address
    return f"{local.split(delimiter, 1)[0]}@{domain}"


@dataclass
class _Snapshot:
    key: tuple[int, int, int] | None
    accounts: dict[str, str | None]


class UsersFile:
    """Cached view of the passwd-file, re-read whenever the file changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._snapshot = _Snapshot(key=None, accounts={})

    def accounts(self) -> dict[str, str | None]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._snapshot.key:
            self._snapshot = _Snapshot(key=key, accounts=read_accounts(self.path))
        return self._snapshot.accounts

    def resolve(self, address: str) -> str | None:
        """The account that receives mail for ``address`` (``+detail`` stripped), if any."""
        accounts = self.accounts()
        candidate = address.strip().lower()
        if candidate in accounts:
            return candidate
        base = split_detail(candidate)
        return base if base in accounts else None

    def check_password(self, address: str, password: str) -> bool:
        stored = self.accounts().get(address.strip().lower())
        if stored is None:
            return False
        return hmac.compare_digest(stored.encode("utf-8"), password.encode("utf-8"))


def _default_users_file() -> Path | None:
    value = os.environ.get(USERS_FILE_ENV)
    return Path(value) if value else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mailsync_devmail.accounts",
        description="Manage accounts of the local development Dovecot (passwd-file).",
    )
    parser.add_argument(
        "--users",
        type=Path,
        default=_default_users_file(),
        help=f"passwd-file path (default: ${USERS_FILE_ENV})",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create or update an account")
    add.add_argument("address")
    add.add_argument("password")
    remove = commands.add_parser("remove", help="delete an account")
    remove.add_argument("address")
    commands.add_parser("list", help="print the addresses")
    args = parser.parse_args(argv)

    users: Path | None = args.users
    if users is None:
        parser.error(f"--users is required when ${USERS_FILE_ENV} is not set")
    try:
        if args.command == "add":
            add_account(users, args.address, args.password)
        elif args.command == "remove":
            if not remove_account(users, args.address):
                print(f"no such account: {args.address}", file=sys.stderr)
                return 1
        else:
            for address in sorted(read_accounts(users)):
                print(address)
    except InvalidAccountError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
