"""Who is using the console: a person signed in with their personal token, kept in a cookie.

The token goes through the same check as every api request (`authenticate`, the route's rule
in the permission table). A browser without a valid cookie is sent to the sign-in page; a
caller using `Authorization: Bearer` instead gets the api's problem answers, so the console
is held to the same permission and isolation tests as the rest of the api.

Writes need the `HX-Request` header when the token came from the cookie: a form on another
site cannot send it (and the cookie is `SameSite=Strict` besides).
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from mailsync_api.dependencies import DbDep, authenticate
from mailsync_api.principal import Principal
from mailsync_api.problems import ProblemError
from mailsync_shared.storage.scoped import WorkspaceStore

COOKIE = "mailsync_console"
COOKIE_PATH = "/console"


class SignInRequiredError(Exception):
    """The browser has no valid console session: show the sign-in page."""


class NotAllowedError(Exception):
    """The signed-in person's role does not allow this page or action."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True)
class ConsoleCaller:
    principal: Principal
    store: WorkspaceStore
    from_cookie: bool


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def get_console_caller(request: Request, db: DbDep) -> ConsoleCaller:
    token = bearer_token(request)
    if token is not None:
        principal = await authenticate(request, db, token)
        return ConsoleCaller(principal, WorkspaceStore(db, principal.workspace_id), False)
    cookie = request.cookies.get(COOKIE)
    try:
        principal = await authenticate(request, db, cookie)
    except ProblemError as error:
        if error.status == 401:
            raise SignInRequiredError from None
        raise NotAllowedError(error.detail) from None
    if request.method != "GET" and request.headers.get("hx-request") != "true":
        raise NotAllowedError("console changes are made from the console's own pages")
    return ConsoleCaller(principal, WorkspaceStore(db, principal.workspace_id), True)


CallerDep = Annotated[ConsoleCaller, Depends(get_console_caller)]
