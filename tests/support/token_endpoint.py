"""A local OAuth 2.0 token endpoint, as providers run them for refresh-token grants."""

import json
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs


def numbered(count: int) -> str:
    return f"access-{count}"


class TokenEndpoint:
    """A `refresh_token` grant for one of `refresh_tokens` gets a new access token, made by
    `mint` from how many were issued (`access-1`, `access-2`, ... unless told otherwise);
    any other grant gets 400 `invalid_grant`, as a revoked one does. `forms` keeps every
    request's form, `issued` every token handed out. Use it as a context manager."""

    def __init__(
        self, refresh_tokens: Iterable[str], mint: Callable[[int], str] = numbered
    ) -> None:
        self.refresh_tokens = set(refresh_tokens)
        self.issued: list[str] = []
        self.forms: list[dict[str, list[str]]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                endpoint.forms.append(form)
                body: dict[str, object]
                if form.get("refresh_token", [""])[0] not in endpoint.refresh_tokens:
                    body, status = {"error": "invalid_grant"}, 400
                else:
                    token = mint(len(endpoint.issued) + 1)
                    endpoint.issued.append(token)
                    body, status = {"access_token": token, "expires_in": 3600}, 200
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "TokenEndpoint":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
