"""Liveness and readiness for the orchestrator."""

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from mailsync_api.dependencies import ContextDep
from mailsync_shared.storage.client import ping

router = APIRouter(prefix="/health", tags=["health"])

logger = logging.getLogger(__name__)


@router.get("/live")
async def live() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/ready",
    responses={503: {"description": "A dependency is not reachable; `failing` names it."}},
)
async def ready(context: ContextDep) -> JSONResponse:
    """The broker and the database both answer."""
    failing = []
    try:
        broker_ok = await context.broker.ping(timeout=2.0)
    except Exception:
        logger.exception("broker readiness check failed")
        broker_ok = False
    if not broker_ok:
        failing.append("broker")
    if not await ping(context.db):
        failing.append("database")
    if failing:
        return JSONResponse({"status": "not ready", "failing": failing}, status_code=503)
    return JSONResponse({"status": "ready"})
