"""Who may call which route: the one table the `Principal` dependency enforces.

A person acts with a role (`viewer` < `member` < `admin` < `owner`); a system acts with an
API key holding scopes. A route names both the least role and the scope it needs; a person's
token passes when their role is high enough, a system's key when it holds the scope. The
table is rendered into `docs/permissions.md` and tested route by route, role by role.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

Role = Literal["viewer", "member", "admin", "owner"]
Scope = Literal["read", "write", "send", "export", "admin"]
Access = Literal["public", "operator", "workspace"]

ROLES: tuple[Role, ...] = get_args(Role)
SCOPES: tuple[Scope, ...] = get_args(Scope)
ROLE_RANK: Mapping[Role, int] = {role: rank for rank, role in enumerate(ROLES)}
ROLE_SCOPES: Mapping[Role, frozenset[Scope]] = {
    "viewer": frozenset({"read"}),
    "member": frozenset({"read", "write", "send"}),
    "admin": frozenset(SCOPES),
    "owner": frozenset(SCOPES),
}


@dataclass(frozen=True)
class Rule:
    """What a route needs: nothing, the operator token, or a role and a scope in a workspace.

    `scope` None: any valid credential of the workspace will do.
    """

    access: Access
    role: Role | None = None
    scope: Scope | None = None

    def describe(self) -> tuple[str, str]:
        if self.access == "public":
            return "anyone", "-"
        if self.access == "operator":
            return "operator token (when `MAILSYNC_OPERATOR_TOKEN` is set)", "-"
        return self.role or "viewer", f"`{self.scope}`" if self.scope else "any"


PUBLIC = Rule("public")
OPERATOR = Rule("operator")
ANY_MEMBER = Rule("workspace", "viewer", None)
READ = Rule("workspace", "viewer", "read")
WRITE = Rule("workspace", "member", "write")
SEND = Rule("workspace", "member", "send")
EXPORT = Rule("workspace", "admin", "export")
ADMIN = Rule("workspace", "admin", "admin")

# (method, path template) -> rule. A route missing here is refused (403) and fails the tests.
PERMISSIONS: Mapping[tuple[str, str], Rule] = {
    ("GET", "/health/live"): PUBLIC,
    ("GET", "/health/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/asyncapi.json"): PUBLIC,
    ("POST", "/v1/workspaces"): OPERATOR,
    ("GET", "/v1/workspace"): ANY_MEMBER,
    ("GET", "/v1/me"): ANY_MEMBER,
    ("POST", "/v1/users"): ADMIN,
    ("GET", "/v1/users"): READ,
    ("GET", "/v1/users/{user_id}"): READ,
    ("PATCH", "/v1/users/{user_id}"): ADMIN,
    ("DELETE", "/v1/users/{user_id}"): ADMIN,
    ("POST", "/v1/api-keys"): ADMIN,
    ("GET", "/v1/api-keys"): ADMIN,
    ("DELETE", "/v1/api-keys/{key_id}"): ADMIN,
    ("POST", "/v1/contacts"): WRITE,
    ("GET", "/v1/contacts"): READ,
    ("GET", "/v1/contacts/{contact_id}"): READ,
    ("PATCH", "/v1/contacts/{contact_id}"): WRITE,
    ("PUT", "/v1/contacts/by-external-id/{external_id}"): WRITE,
    ("GET", "/v1/contacts/{contact_id}/timeline"): READ,
    ("POST", "/v1/companies"): WRITE,
    ("GET", "/v1/companies"): READ,
    ("GET", "/v1/companies/{company_id}"): READ,
    ("PATCH", "/v1/companies/{company_id}"): WRITE,
    ("PUT", "/v1/companies/by-external-id/{external_id}"): WRITE,
    ("GET", "/v1/companies/{company_id}/timeline"): READ,
    ("POST", "/v1/deals"): WRITE,
    ("GET", "/v1/deals"): READ,
    ("GET", "/v1/deals/{deal_id}"): READ,
    ("PATCH", "/v1/deals/{deal_id}"): WRITE,
    ("PUT", "/v1/deals/by-external-id/{external_id}"): WRITE,
    ("GET", "/v1/deals/{deal_id}/timeline"): READ,
    ("POST", "/v1/imports/{record_type}"): WRITE,
    ("GET", "/v1/exports/{dataset}"): EXPORT,
    ("POST", "/v1/mailboxes"): WRITE,
    ("GET", "/v1/mailboxes"): READ,
    ("GET", "/v1/mailboxes/{mailbox_id}"): READ,
    ("PATCH", "/v1/mailboxes/{mailbox_id}"): WRITE,
    ("POST", "/v1/mailboxes/{mailbox_id}/resync"): WRITE,
    ("POST", "/v1/mailboxes/{mailbox_id}/reconcile"): WRITE,
    ("POST", "/v1/mailboxes/{mailbox_id}/approve-address"): ADMIN,
    ("GET", "/v1/mailboxes/{mailbox_id}/sync-summary"): READ,
    ("GET", "/v1/mailboxes/{mailbox_id}/skipped"): READ,
    ("POST", "/v1/mailboxes/{mailbox_id}/disconnect"): WRITE,
    ("DELETE", "/v1/mailboxes/{mailbox_id}/synced-data"): ADMIN,
    ("POST", "/v1/mailboxes/{mailbox_id}/aliases"): WRITE,
    ("POST", "/v1/mailboxes/{mailbox_id}/aliases/{address}/verify"): ADMIN,
    ("DELETE", "/v1/mailboxes/{mailbox_id}/aliases/{address}"): WRITE,
    ("GET", "/v1/threads"): READ,
    ("GET", "/v1/threads/{thread_id}"): READ,
    ("POST", "/v1/threads/{thread_id}/reply"): SEND,
    ("POST", "/v1/threads/{thread_id}/forward"): SEND,
    ("GET", "/v1/threads/{thread_id}/suggestions"): READ,
    ("PUT", "/v1/threads/{thread_id}/links"): WRITE,
    ("POST", "/v1/threads/{thread_id}/private"): WRITE,
    ("DELETE", "/v1/threads/{thread_id}/private"): WRITE,
    ("GET", "/v1/messages"): READ,
    ("GET", "/v1/messages/{logged_message_id}"): READ,
    ("GET", "/v1/capture-rules"): READ,
    ("POST", "/v1/capture-rules/preview"): ADMIN,
    ("PUT", "/v1/capture-rules"): ADMIN,
    ("PATCH", "/v1/capture-rules"): ADMIN,
    ("GET", "/v1/capture-decisions"): READ,
    ("POST", "/v1/send-requests"): SEND,
    ("GET", "/v1/send-requests/{send_request_id}"): READ,
    ("GET", "/v1/send-requests"): READ,
    ("POST", "/v1/send-requests/{send_request_id}/cancel"): SEND,
    ("POST", "/v1/attachments"): SEND,
    ("POST", "/v1/webhooks"): ADMIN,
    ("GET", "/v1/webhooks"): ADMIN,
    ("GET", "/v1/webhooks/{webhook_id}"): ADMIN,
    ("PATCH", "/v1/webhooks/{webhook_id}"): ADMIN,
    ("DELETE", "/v1/webhooks/{webhook_id}"): ADMIN,
    ("POST", "/v1/webhooks/{webhook_id}/rotate-secret"): ADMIN,
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): ADMIN,
    ("GET", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}"): ADMIN,
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay"): ADMIN,
    # The web console: the same rules as the api routes each page reads or writes through.
    ("GET", "/console"): PUBLIC,
    ("POST", "/console/sign-in"): PUBLIC,
    ("POST", "/console/sign-out"): PUBLIC,
    ("GET", "/console/static/{name}"): PUBLIC,
    ("GET", "/console/mailboxes"): READ,
    ("GET", "/console/mailboxes/new"): WRITE,
    ("POST", "/console/mailboxes/review"): WRITE,
    ("POST", "/console/mailboxes"): WRITE,
    ("GET", "/console/mailboxes/{mailbox_id}"): READ,
    ("GET", "/console/contacts"): READ,
    ("GET", "/console/companies"): READ,
    ("GET", "/console/deals"): READ,
    ("GET", "/console/contacts/{contact_id}"): READ,
    ("GET", "/console/companies/{company_id}"): READ,
    ("GET", "/console/deals/{deal_id}"): READ,
    ("GET", "/console/threads/unassigned"): READ,
    ("POST", "/console/threads/{thread_id}/links"): WRITE,
    ("GET", "/console/capture-rules"): READ,
    ("POST", "/console/capture-rules/preview"): ADMIN,
    ("POST", "/console/capture-rules"): ADMIN,
}


def role_at_least(role: Role, least: Role) -> bool:
    return ROLE_RANK[role] >= ROLE_RANK[least]


def render_markdown() -> str:
    """The route table as Markdown, the first part of `docs/permissions.md`."""
    lines = [
        "# Permissions",
        "",
        "Generated from `services/api/src/mailsync_api/permissions.py` (who may call which "
        "route) and `shared/src/mailsync_shared/visibility.py` (what each caller is shown of "
        "mail) by `tests/unit/api/test_permissions_doc.py`; edit those, not this file.",
        "",
        "People authenticate with a personal token and act with their role "
        "(`viewer` < `member` < `admin` < `owner`); a route accepts a role at or above the "
        "one listed. Systems authenticate with an API key and act with its scopes; a route "
        "accepts a key holding the scope listed.",
        "",
        "| Role | Scopes of its token |",
        "| --- | --- |",
    ]
    for role in ROLES:
        lines.append(
            f"| {role} | {', '.join(f'`{s}`' for s in SCOPES if s in ROLE_SCOPES[role])} |"
        )
    lines += ["", "| Method | Path | Least role | Key scope |", "| --- | --- | --- | --- |"]
    for (method, path), rule in PERMISSIONS.items():
        least, scope = rule.describe()
        lines.append(f"| {method} | `{path}` | {least} | {scope} |")
    lines += [
        "",
        "Beyond the table: only a mailbox's owner changes its settings (visibility, sync), "
        "adds an address to send as, or sends from it, whatever their role; a mailbox "
        "connected by an API key is owned by the workspace's API keys. Admins may also "
        "resync, reconcile, disconnect and erase a mailbox, approve its address, and verify or "
        "remove its aliases. Nobody "
        "grants a role above their own, and the last owner cannot be demoted or removed. "
        "What of a thread a person sees is decided by mailbox visibility "
        "(`mailsync_shared.visibility`), not by role.",
        "",
    ]
    return "\n".join(lines)
