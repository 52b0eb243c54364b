"""`python -m mailsync_api`: the api over HTTP."""

from mailsync_api.app import create_app
from mailsync_api.request_context import install_request_id_filter
from mailsync_api.settings import Settings
from mailsync_shared.service import serve
from mailsync_shared.structured_logging import configure_logging
from mailsync_shared.tracing import configure_tracing


def main() -> None:
    settings = Settings()
    configure_logging("api", settings.log_level)
    configure_tracing("api")
    install_request_id_filter()
    serve(create_app(settings), host=settings.http_host, port=settings.http_port)


if __name__ == "__main__":
    main()
