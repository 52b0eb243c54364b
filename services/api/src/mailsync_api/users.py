"""People of a workspace and the credentials they and other systems authenticate with."""

from datetime import datetime

from pydantic import Field
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_api.api_keys import display_prefix, hash_api_key, new_api_key
from mailsync_api.permissions import Role, Scope
from mailsync_api.stored import as_stored
from mailsync_shared.clock import utcnow
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import StoredDocument
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore
from mailsync_shared.storage.workspaces import ApiKeyDocument

USERS = "users"


class UserDocument(StoredDocument):
    """A person in a workspace; they authenticate with personal tokens."""

    email: str | None = None
    name: str = ""
    role: Role
    created_at: datetime = Field(default_factory=utcnow)


async def issue_key(
    db: AsyncDatabase[Document],
    workspace_id: str,
    *,
    name: str,
    user_id: str | None,
    scopes: list[Scope] | None,
) -> tuple[str, Document]:
    """A new key (shown once) and its stored form, which keeps only the key's digest."""
    key = new_api_key()
    document = as_stored(
        ApiKeyDocument(
            key_hash=hash_api_key(key),
            workspace_id=workspace_id,
            prefix=display_prefix(key),
            name=name,
            user_id=user_id,
            scopes=list(scopes) if scopes is not None else None,
        )
    ).to_document()
    await SystemCollections(db).api_keys.insert_one(document)
    return key, document


async def create_user(
    db: AsyncDatabase[Document], store: WorkspaceStore, user: UserDocument
) -> tuple[UserDocument, str]:
    """Store the person and give them a personal token; returns both, the token shown once."""
    user = as_stored(user)
    await store.collection(USERS).insert_one(user.to_document())
    token, _ = await issue_key(
        db,
        store.workspace_id,
        name=f"personal token of {user.email or user.name}",
        user_id=user.id,
        scopes=None,
    )
    return user, token


async def revoke_keys_of(db: AsyncDatabase[Document], workspace_id: str, user_id: str) -> int:
    result = await SystemCollections(db).api_keys.update_many(
        {"workspace_id": workspace_id, "user_id": user_id, "revoked_at": None},
        {"$set": {"revoked_at": utcnow()}},
    )
    return result.modified_count


async def owners(store: WorkspaceStore) -> int:
    return await store.collection(USERS).count({"role": "owner"})
