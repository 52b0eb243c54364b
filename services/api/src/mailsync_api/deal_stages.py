"""How a deal's `stage` and `status` agree.

`status` says whether a deal is still open: only open deals are linked to new mail. The
stages `won` and `lost` (in any case) are closing stages: they mean that status, so a deal
moved to one is closed, a deal moved out of one is open again unless a status is given,
and a stage and status that contradict each other are refused.
"""

from typing import Literal

Status = Literal["open", "won", "lost"]

CLOSING_STAGES: dict[str, Status] = {"won": "won", "lost": "lost"}


class StageConflictError(ValueError):
    """A closing stage given with a status that says otherwise."""


def closes_as(stage: str) -> Status | None:
    return CLOSING_STAGES.get(stage.strip().lower())


def settled_status(stage: str, status: Status | None) -> Status:
    """The status of a deal at `stage`, given `status` or none (None: decided by the stage)."""
    closing = closes_as(stage)
    if closing is None:
        return status or "open"
    if status is not None and status != closing:
        raise StageConflictError(
            f"stage {stage!r} closes the deal as {closing}; status {status!r} contradicts it"
        )
    return closing


def status_after_change(
    current_stage: str,
    current_status: Status,
    stage: str | None,
    status: Status | None,
) -> Status:
    """The status once a change sets `stage` and/or `status` (None: not part of the change)."""
    if stage is None:
        return settled_status(current_stage, status or current_status)
    if status is None and closes_as(stage) is None:
        return "open" if closes_as(current_stage) is not None else current_status
    return settled_status(stage, status)
