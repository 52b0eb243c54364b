"""Every (method, path template) an app serves through FastAPI, for tests and documents."""

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Routes of included routers too, as FastAPI itself enumerates them for OpenAPI."""
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.path:
            found.update((method, context.path) for method in context.methods or ())
    return sorted(found)
