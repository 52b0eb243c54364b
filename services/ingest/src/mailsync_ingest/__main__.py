"""`python -m mailsync_ingest`: run the ingest service."""

import resource

from mailsync_ingest.app import create_app
from mailsync_ingest.settings import Settings
from mailsync_shared.service import serve
from mailsync_shared.structured_logging import configure_logging
from mailsync_shared.tracing import configure_tracing


def allow_open_files() -> None:
    """Raise the soft limit of open files to the hard one: every mailbox holds a socket, and a
    soft limit of 1,024 (a common default) would refuse the thousandth."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main() -> None:
    allow_open_files()
    settings = Settings()
    configure_logging("ingest", settings.log_level)
    configure_tracing("ingest")
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
