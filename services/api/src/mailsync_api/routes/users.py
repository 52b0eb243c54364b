"""People of the workspace, their roles and personal tokens."""

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from pymongo.errors import DuplicateKeyError

from mailsync_api.dependencies import DbDep, PrincipalDep, WorkspaceDep
from mailsync_api.permissions import ROLE_RANK, Role
from mailsync_api.principal import Principal
from mailsync_api.problems import ProblemError, conflict, not_found, problem_responses
from mailsync_api.schemas.common import RecordId
from mailsync_api.schemas.identity import InvitedUser, MeOut, UserIn, UserOut, UserPatch
from mailsync_api.users import USERS, UserDocument, create_user, owners, revoke_keys_of
from mailsync_shared.storage.scoped import WorkspaceStore

router = APIRouter(prefix="/v1", tags=["people"], responses=problem_responses(401, 403, 422))

logger = logging.getLogger(__name__)

UserId = Annotated[RecordId, Path(description="Id of the person.")]


def _require_rank(principal: Principal, role: Role, what: str) -> None:
    if ROLE_RANK[role] > principal.rank:
        raise ProblemError(403, f"cannot {what} {role}: above your own role", kind="role-too-high")


async def _load_user(store: WorkspaceStore, user_id: str) -> UserDocument:
    document = await store.collection(USERS).find_one({"_id": user_id})
    if document is None:
        raise not_found("user")
    return UserDocument.from_document(document)


@router.get("/me")
async def who_am_i(principal: PrincipalDep, store: WorkspaceDep) -> MeOut:
    """The person or system the credential in use stands for, with its role and scopes."""
    user = await _load_user(store, principal.user_id) if principal.user_id else None
    return MeOut(
        workspace_id=principal.workspace_id,
        key_id=principal.key_id,
        user=UserOut.of(user) if user else None,
        role=principal.role,
        scopes=sorted(principal.scopes),
    )


@router.post("/users", status_code=status.HTTP_201_CREATED, responses=problem_responses(409))
async def invite_user(
    body: UserIn, principal: PrincipalDep, store: WorkspaceDep, db: DbDep
) -> InvitedUser:
    """Add a person with a role; their personal token is shown only in this answer."""
    _require_rank(principal, body.role, "grant")
    try:
        user, token = await create_user(
            db,
            store,
            UserDocument(
                workspace_id=store.workspace_id, email=body.email, name=body.name, role=body.role
            ),
        )
    except DuplicateKeyError as error:
        raise conflict(f"{body.email} is already a person of this workspace") from error
    logger.info("user invited", extra={"workspace_id": store.workspace_id, "user_id": user.id})
    return InvitedUser(**UserOut.of(user).model_dump(), token=token)


@router.get("/users")
async def list_users(store: WorkspaceDep) -> list[UserOut]:
    """Everyone in the workspace with their role."""
    documents = await store.collection(USERS).find(sort=[("created_at", 1)], limit=1000)
    return [UserOut.of(UserDocument.from_document(document)) for document in documents]


@router.get("/users/{user_id}", responses=problem_responses(404))
async def get_user(user_id: UserId, store: WorkspaceDep) -> UserOut:
    """One person."""
    return UserOut.of(await _load_user(store, user_id))


@router.patch("/users/{user_id}", responses=problem_responses(404, 409))
async def update_user(
    user_id: UserId, body: UserPatch, principal: PrincipalDep, store: WorkspaceDep
) -> UserOut:
    """Rename a person or change their role; nobody grants above their own role."""
    user = await _load_user(store, user_id)
    changes = {key: value for key, value in body.model_dump(exclude_unset=True).items()}
    if changes.get("role") is None:
        changes.pop("role", None)
    if changes.get("name") is None:
        changes.pop("name", None)
    if "role" in changes:
        _require_rank(principal, user.role, "change the role of")
        _require_rank(principal, changes["role"], "grant")
        if user.role == "owner" and changes["role"] != "owner" and await owners(store) <= 1:
            raise conflict("the last owner cannot be demoted; make someone else owner first")
    if not changes:
        return UserOut.of(user)
    document = await store.collection(USERS).find_one_and_update(
        {"_id": user_id}, {"$set": changes}
    )
    if document is None:
        raise not_found("user")
    return UserOut.of(UserDocument.from_document(document))


@router.delete(
    "/users/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 409),
)
async def remove_user(
    user_id: UserId, principal: PrincipalDep, store: WorkspaceDep, db: DbDep
) -> Response:
    """Remove a person and revoke their tokens; mail they logged stays on the records."""
    user = await _load_user(store, user_id)
    _require_rank(principal, user.role, "remove")
    if user.role == "owner" and await owners(store) <= 1:
        raise conflict("the last owner cannot be removed")
    await store.collection(USERS).delete_many({"_id": user_id})
    await revoke_keys_of(db, store.workspace_id, user_id)
    logger.info("user removed", extra={"workspace_id": store.workspace_id, "user_id": user_id})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
