"""`python -m mailsync_ingest`: run the ingest service."""

from mailsync_ingest.app import create_app
from mailsync_ingest.settings import Settings
from mailsync_shared.service import serve
from mailsync_shared.structured_logging import configure_logging
from mailsync_shared.tracing import configure_tracing


def main() -> None:
    settings = Settings()
    configure_logging("ingest", settings.log_level)
    configure_tracing("ingest")
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
