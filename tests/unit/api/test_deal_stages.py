"""A deal's stage and status decide together whether it is open."""

import pytest

from mailsync_api.deal_stages import StageConflictError, settled_status, status_after_change


def test_a_closing_stage_sets_the_status_in_any_case() -> None:
    assert settled_status("Won", None) == "won"
    assert settled_status(" lost ", "lost") == "lost"
    assert settled_status("proposal", None) == "open"
    assert settled_status("proposal", "lost") == "lost"


def test_a_contradicting_status_is_refused() -> None:
    with pytest.raises(StageConflictError, match="contradicts"):
        settled_status("won", "open")


@pytest.mark.parametrize(
    ("current", "stage", "status", "expected"),
    [
        (("proposal", "open"), "won", None, "won"),
        (("won", "won"), "proposal", None, "open"),
        (("proposal", "lost"), "review", None, "lost"),
        (("proposal", "open"), None, "lost", "lost"),
        (("won", "won"), None, None, "won"),
    ],
)
def test_a_change_settles_the_status(
    current: tuple[str, str], stage: str | None, status: str | None, expected: str
) -> None:
    assert status_after_change(current[0], current[1], stage, status) == expected  # type: ignore[arg-type]


def test_reopening_a_deal_at_a_closing_stage_needs_a_new_stage() -> None:
    with pytest.raises(StageConflictError):
        status_after_change("won", "won", None, "open")
