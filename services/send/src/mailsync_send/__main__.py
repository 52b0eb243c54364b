"""`python -m mailsync_send`: run the send service."""

from mailsync_send.app import create_app
from mailsync_send.settings import Settings
from mailsync_shared.service import serve
from mailsync_shared.structured_logging import configure_logging
from mailsync_shared.tracing import configure_tracing


def main() -> None:
    settings = Settings()
    configure_logging("send", settings.log_level)
    configure_tracing("send")
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
