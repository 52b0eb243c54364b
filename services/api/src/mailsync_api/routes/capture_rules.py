"""Contact capture: the workspace's rules, previewing and applying a change, explanations."""

from typing import Annotated

from fastapi import APIRouter, Query

from mailsync_api.dependencies import DbDep, PrincipalDep, PublisherDep, WorkspaceDep
from mailsync_api.problems import problem_responses
from mailsync_api.routes.associations import actor_name
from mailsync_api.schemas.capture import (
    CaptureRulesIn,
    CaptureRulesOut,
    ExplanationOut,
    LookupAddress,
    RuleApplicationOut,
    RulePreviewOut,
)
from mailsync_shared.capture_policy import explain, review
from mailsync_shared.capture_policy.repository import CaptureRepository
from mailsync_shared.storage.capture_rules import CAPTURE_RULES_COLLECTION
from mailsync_shared.storage.scoped import SystemCollections

router = APIRouter(prefix="/v1", tags=["capture"], responses=problem_responses(401, 403, 422))


@router.get("/capture-rules")
async def get_capture_rules(store: WorkspaceDep, db: DbDep) -> CaptureRulesOut:
    """The rules deciding which people in mail become contacts; the defaults until changed."""
    saved = await store.collection(CAPTURE_RULES_COLLECTION).find_one(
        {"_id": store.workspace_id}, projection={"_id": 1}
    )
    rules = await CaptureRepository(store, SystemCollections(db)).rules()
    return CaptureRulesOut.of(rules, is_default=saved is None)


@router.post("/capture-rules/preview")
async def preview_capture_rules(
    body: CaptureRulesIn, store: WorkspaceDep, db: DbDep
) -> RulePreviewOut:
    """What the proposed rules would change over the logged mail; nothing is saved."""
    preview = await review.preview(store, SystemCollections(db), body.document(store.workspace_id))
    return RulePreviewOut.of(preview)


@router.put("/capture-rules")
async def apply_capture_rules(
    body: CaptureRulesIn,
    store: WorkspaceDep,
    db: DbDep,
    principal: PrincipalDep,
    publisher: PublisherDep,
) -> RuleApplicationOut:
    """Save the rules and re-decide the logged mail: contacts added or retracted as previewed."""
    application = await review.apply(
        store,
        SystemCollections(db),
        body.document(store.workspace_id),
        actor=await actor_name(store, principal),
        publish=publisher.publish,
    )
    return RuleApplicationOut.of(application)


@router.get("/capture-decisions")
async def explain_address(
    address: Annotated[
        LookupAddress, Query(description="The address asked about, e.g. `ann@client.test`.")
    ],
    store: WorkspaceDep,
    db: DbDep,
) -> ExplanationOut:
    """Why an address is, or is not, a contact: in plain words, with the decisions behind it."""
    return ExplanationOut.of(await explain.explain(store, SystemCollections(db), address))
