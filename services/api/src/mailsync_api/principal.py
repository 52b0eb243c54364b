"""The caller of a request: a person acting with their role, or a system with its key's scopes."""

from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_api.permissions import ROLE_RANK, ROLE_SCOPES, SCOPES, Role, Rule, Scope
from mailsync_api.users import USERS, UserDocument
from mailsync_shared.shared_reads import SharedReads
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.storage.workspaces import ApiKeyDocument
from mailsync_shared.visibility import MailboxShare, Viewer, owns


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

    def owns(self, mailbox: MailboxDocument) -> bool:
        """The caller is the mailbox's owner: its user, or any system key of the workspace for
        a mailbox connected without a person. No role makes anyone else its owner."""
        return owns(self.viewer, MailboxShare(mailbox.owner_user_id, mailbox.visibility))

    @property
    def requester(self) -> str:
        """Who asked, as send requests record it: the person, or the system key itself."""
        return f"user:{self.user_id}" if self.user_id is not None else f"key:{self.key_id}"

    @property
    def viewer(self) -> Viewer:
        """How `mailsync_shared.visibility` sees this caller."""
        if self.user_id is None:
            return Viewer.api_key()
        return Viewer(user_id=self.user_id, role="admin" if self.is_admin else "member")


async def principal_of(
    db: AsyncDatabase[Document],
    key: ApiKeyDocument,
    reads: SharedReads[Document | None] | None = None,
) -> Principal | None:
    """The principal a stored key stands for; None when its person is no longer there. The
    person is read afresh (`reads`: in a read shared with callers that asked meanwhile)."""
    granted = frozenset(key.scopes) if key.scopes is not None else frozenset(SCOPES)
    scopes = frozenset(scope for scope in SCOPES if scope in granted)
    user_id = key.user_id
    if user_id is None:
        return Principal(key.workspace_id, key.id, None, None, scopes)
    users = WorkspaceStore(db, key.workspace_id).collection(USERS)
    reads = reads or SharedReads()
    user = await reads.read(
        f"users:{key.workspace_id}:{user_id}", lambda: users.find_one({"_id": user_id})
    )
    if user is None:
        return None
    role = UserDocument.from_document(user).role
    return Principal(key.workspace_id, key.id, key.user_id, role, scopes & ROLE_SCOPES[role])
