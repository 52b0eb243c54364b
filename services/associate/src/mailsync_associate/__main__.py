"""`python -m mailsync_associate`: run the associate service."""

from mailsync_associate.app import create_app
from mailsync_associate.settings import Settings
from mailsync_shared.service import serve
from mailsync_shared.structured_logging import configure_logging
from mailsync_shared.tracing import configure_tracing


def main() -> None:
    settings = Settings()
    configure_logging("associate", settings.log_level)
    configure_tracing("associate")
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
