"""Contact capture: the workspace's rules, previewing and applying a change, explanations."""

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Query
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_api.dependencies import DbDep, PrincipalDep, PublisherDep, ViewerDep, WorkspaceDep
from mailsync_api.principal import Principal
from mailsync_api.problems import problem_responses
from mailsync_api.routes.associations import actor_name
from mailsync_api.schemas.capture import (
    CaptureRulesIn,
    CaptureRulesOut,
    CaptureRulesPatch,
    ExplanationOut,
    LookupAddress,
    RuleApplicationOut,
    RulePreviewOut,
)
from mailsync_api.visible_mail import decisions_seen, mail_view, mentions_seen
from mailsync_shared.capture_policy import explain, review
from mailsync_shared.capture_policy.repository import CaptureRepository
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.capture_rules import (
    CAPTURE_RULES_COLLECTION,
    CaptureDecisionDocument,
    CaptureRulesDocument,
)
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore

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
    """Replace the whole rule set (a field left out takes its default) and re-decide the logged
    mail: contacts added or retracted as previewed."""
    return await _apply(store, db, principal, publisher, body.document(store.workspace_id))


@router.patch("/capture-rules")
async def change_capture_rules(
    body: CaptureRulesPatch,
    store: WorkspaceDep,
    db: DbDep,
    principal: PrincipalDep,
    publisher: PublisherDep,
) -> RuleApplicationOut:
    """Change only the fields given, keep the rest, and re-decide the logged mail."""
    current = await CaptureRepository(store, SystemCollections(db)).rules()
    return await _apply(store, db, principal, publisher, body.applied_to(current))


async def _apply(
    store: WorkspaceStore,
    db: AsyncDatabase[Document],
    principal: Principal,
    publisher: EventPublisher,
    rules: CaptureRulesDocument,
) -> RuleApplicationOut:
    application = await review.apply(
        store,
        SystemCollections(db),
        rules,
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
    viewer: ViewerDep,
) -> ExplanationOut:
    """Why an address is, or is not, a contact: in plain words, with the decisions behind it;
    only from the mail the caller may see the address on."""
    view = await mail_view(store, viewer)
    wanted = address.strip().lower()

    async def shown(decisions: Sequence[CaptureDecisionDocument]) -> list[CaptureDecisionDocument]:
        return await decisions_seen(store, view, wanted, decisions)

    explanation = await explain.explain(
        store,
        SystemCollections(db),
        wanted,
        mentions=await mentions_seen(store, view, wanted),
        shown=shown,
    )
    return ExplanationOut.of(explanation)
