"""The caller of a request: a person acting with their role, or a system with its key's scopes."""

from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_api.permissions import ROLE_RANK, ROLE_SCOPES, SCOPES, Role, Rule, Scope
from mailsync_api.users import USERS, UserDocument
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.storage.workspaces import ApiKeyDocument
from mailsync_shared.visibility import Viewer


@dataclass(frozen=True)
class Principal:
    workspace_id: str
    key_id: str
    user_id: str | None
    role: Role | None
    scopes: frozenset[Scope]

    @property
    def is_person(self) -> bool:
        return self.user_id is not None

    @property
    def is_admin(self) -> bool:
        """Admins and owners, or a system key holding the `admin` scope."""
        if self.role is not None:
            return ROLE_RANK[self.role] >= ROLE_RANK["admin"]
        return "admin" in self.scopes

    @property
    def rank(self) -> int:
        """The role a grant may not exceed; a system key with `admin` grants up to admin."""
        if self.role is not None:
            return ROLE_RANK[self.role]
        return ROLE_RANK["admin"] if "admin" in self.scopes else -1

    def allows(self, rule: Rule) -> bool:
        if rule.access == "public":
            return True
        if rule.access == "operator":
            return False
        if (
            self.role is not None
            and rule.role is not None
            and ROLE_RANK[self.role] < ROLE_RANK[rule.role]
        ):
            return False
        return rule.scope is None or rule.scope in self.scopes

    @property
    def viewer(self) -> Viewer:
        """How `mailsync_shared.visibility` sees this caller."""
        if self.user_id is None:
            return Viewer.api_key()
        return Viewer(user_id=self.user_id, role="admin" if self.is_admin else "member")


async def principal_of(db: AsyncDatabase[Document], key: ApiKeyDocument) -> Principal | None:
    """The principal a stored key stands for; None when its person is no longer there."""
    granted = frozenset(key.scopes) if key.scopes is not None else frozenset(SCOPES)
    scopes = frozenset(scope for scope in SCOPES if scope in granted)
    if key.user_id is None:
        return Principal(key.workspace_id, key.id, None, None, scopes)
    user = (
        await WorkspaceStore(db, key.workspace_id).collection(USERS).find_one({"_id": key.user_id})
    )
    if user is None:
        return None
    role = UserDocument.from_document(user).role
    return Principal(key.workspace_id, key.id, key.user_id, role, scopes & ROLE_SCOPES[role])
