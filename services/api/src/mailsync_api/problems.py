"""RFC 9457 problem details (`application/problem+json`) for every error the api returns."""

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://mailsync.dev/problems/"

logger = logging.getLogger(__name__)


class InvalidParam(BaseModel):
    name: str = Field(description="Where the invalid value is, e.g. `body.emails.0`.")
    reason: str


class Problem(BaseModel):
    """An error, described for people and programs alike (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(default="about:blank", description="URI that identifies the problem type.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    invalid_params: list[InvalidParam] | None = Field(
        default=None, description="For validation problems: each invalid field and why."
    )


class ProblemError(Exception):
    """Raise to answer with a problem; `kind` names the problem type, e.g. `not-found`."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind
        self.title = title or HTTPStatus(status).phrase
        self.headers = dict(headers or {})
        self.extensions = extensions


def not_found(what: str) -> ProblemError:
    return ProblemError(404, f"{what} not found", kind="not-found")


def conflict(detail: str) -> ProblemError:
    return ProblemError(409, detail, kind="conflict")


def invalid(field: str, reason: str) -> ProblemError:
    """A 422 about one field that pydantic could not judge (it needs the database or a server)."""
    return ProblemError(
        422,
        f"{field}: {reason}",
        kind="validation-error",
        title="Invalid request",
        invalid_params=[{"name": field, "reason": reason}],
    )


def problem_response(
    request: Request,
    status: int,
    detail: str | None,
    *,
    kind: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body = Problem(
        type=PROBLEM_TYPE_BASE + kind if kind else "about:blank",
        title=title or HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.url.path,
        **dict(extensions or {}),
    )
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_MEDIA_TYPE,
    )


def _location(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc)


async def answer_problem(request: Request, error: Exception) -> JSONResponse:
    """The problem-details answer to a raised `ProblemError`."""
    assert isinstance(error, ProblemError)
    return problem_response(
        request,
        error.status,
        error.detail,
        kind=error.kind,
        title=error.title,
        headers=error.headers,
        extensions=error.extensions,
    )


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else None
    kind = "body-too-large" if error.status_code == 413 else None
    return problem_response(request, error.status_code, detail, kind=kind, headers=error.headers)


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    params = [
        InvalidParam(name=_location(item.get("loc", ())), reason=str(item.get("msg", "invalid")))
        for item in error.errors()
    ]
    detail = "; ".join(f"{param.name}: {param.reason}" for param in params)
    return problem_response(
        request,
        422,
        detail or "the request is not valid",
        kind="validation-error",
        title="Invalid request",
        extensions={"invalid_params": [param.model_dump() for param in params]},
    )


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    logger.exception("unhandled error", extra={"path": request.url.path})
    return problem_response(request, 500, "an unexpected error occurred; it has been logged")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, answer_problem)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)


def _problem_content() -> dict[str, Any]:
    return {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem answers for the given statuses."""
    return {
        status: {"description": HTTPStatus(status).phrase, "content": _problem_content()}
        for status in statuses
    }


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Put `Problem` into the OpenAPI components and describe every 422 as a problem."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem_schema.pop("$defs", {}))
    components["Problem"] = problem_schema
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            if "422" in responses:
                responses["422"] = {"description": "Invalid request", "content": _problem_content()}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema
