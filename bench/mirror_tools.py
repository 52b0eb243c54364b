"""What established mail-sync tools manage on the same mailbox: baselines for the backfill.

mbsync (isync, C) and offlineimap (Python) each mirror the benchmark's INBOX into a fresh
Maildir, read-only on the server (mbsync pulls only; offlineimap's repository is `readonly`).
Both are Debian packages that `deploy/infra.sh start` installs. A rate is messages in the
Maildir afterwards over the wall-clock seconds of the tool's run.
"""

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MBSYNC_CONFIG = """\
IMAPAccount bench
Host {host}
Port {port}
User {user}
Pass {password}
SSLType None
AuthMechs LOGIN

IMAPStore far
Account bench

MaildirStore near
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel bench
Far :far:
Near :near:
Patterns INBOX
Create Near
Sync Pull
SyncState {maildir}/state/
"""

OFFLINEIMAP_CONFIG = """\
[general]
accounts = bench
metadata = {workdir}/metadata
ui = quiet

[Account bench]
localrepository = near
remoterepository = far

[Repository near]
type = Maildir
localfolders = {maildir}

[Repository far]
type = IMAP
remotehost = {host}
remoteport = {port}
remoteuser = {user}
remotepass = {password}
ssl = no
starttls = no
readonly = True
folderfilter = lambda folder: folder == "INBOX"
"""


def mbsync_rate(host: str, port: int, user: str, password: str) -> float:
    """Messages per second mbsync mirrors the INBOX at."""
    return _mirror_rate(
        "mbsync",
        MBSYNC_CONFIG,
        lambda config: ["mbsync", "-q", "-c", str(config), "bench"],
        host=host,
        port=port,
        user=user,
        password=password,
    )


def offlineimap_rate(host: str, port: int, user: str, password: str) -> float:
    """Messages per second offlineimap mirrors the INBOX at (one sync, no daemon)."""
    return _mirror_rate(
        "offlineimap",
        OFFLINEIMAP_CONFIG,
        lambda config: ["offlineimap", "-o", "-c", str(config)],
        host=host,
        port=port,
        user=user,
        password=password,
    )


def _mirror_rate(
    tool: str,
    template: str,
    command: Callable[[Path], list[str]],
    **account: object,
) -> float:
    if shutil.which(tool) is None:
        raise RuntimeError(f"{tool} is not installed: `bash deploy/infra.sh start` installs it")
    with tempfile.TemporaryDirectory(prefix=f"bench-{tool}-") as workdir:
        maildir = Path(workdir) / "mail"
        (maildir / "state").mkdir(parents=True)
        config = Path(workdir) / "config"
        config.write_text(template.format(workdir=workdir, maildir=maildir, **account))
        config.chmod(0o600)
        started = time.perf_counter()
        subprocess.run(command(config), check=True, capture_output=True, timeout=1800)
        seconds = time.perf_counter() - started
        mirrored = sum(
            1
            for folder in maildir.rglob("*")
            if folder.is_dir() and folder.name in ("cur", "new")
            for item in folder.iterdir()
            if item.is_file()
        )
    if not mirrored:
        raise RuntimeError(f"{tool} mirrored no message")
    return mirrored / seconds
