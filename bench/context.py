"""What every benchmark suite needs: where the local services are."""

import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[1]
DATABASE = "mailsync_bench"


@dataclass(frozen=True)
class BenchContext:
    imap_host: str
    imap_port: int
    lmtp_port: int
    smtp_host: str
    smtp_port: int
    mongodb_url: str
    users_file: Path
    api_url: str = "http://127.0.0.1:8000"
    secret_key: str = field(default_factory=lambda: Fernet.generate_key().decode())

    @classmethod
    def from_env(cls) -> "BenchContext":
        env = os.environ
        return cls(
            imap_host=env.get("MAILSYNC_IMAP_HOST", "127.0.0.1"),
            imap_port=int(env.get("MAILSYNC_IMAP_PORT", "10143")),
            lmtp_port=int(env.get("MAILSYNC_LMTP_PORT", "10024")),
            smtp_host=env.get("MAILSYNC_SMTP_HOST", "127.0.0.1"),
            smtp_port=int(env.get("MAILSYNC_SMTP_PORT", "10587")),
            mongodb_url=env.get("MAILSYNC_MONGODB_URL", "mongodb://127.0.0.1:27017/"),
            users_file=Path(env.get("MAILSYNC_MAIL_USERS_FILE", REPO / ".infra/dovecot/users")),
        )

    @property
    def service_env(self) -> dict[str, str]:
        """Environment for the services under measurement."""
        return {
            "MAILSYNC_MONGODB_DATABASE": DATABASE,
            "MAILSYNC_SECRET_KEY": self.secret_key,
            "MAILSYNC_ALLOW_PRIVATE_HOSTS": "true",
            "MAILSYNC_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        }

    @property
    def log_dir(self) -> Path:
        return REPO / ".bench" / "logs"
