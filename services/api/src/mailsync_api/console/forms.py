"""Reading the console's HTML forms (`application/x-www-form-urlencoded`) into the api's own
request schemas, so a form is validated exactly like the JSON it stands for."""

from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from pydantic import ValidationError

from mailsync_api.schemas.capture import CaptureRulesIn
from mailsync_api.schemas.mailboxes import MailboxIn

Form = dict[str, list[str]]


async def read_form(request: Request) -> Form:
    body = (await request.body()).decode("utf-8", errors="replace")
    return parse_qs(body, keep_blank_values=True, max_num_fields=200)


def one(form: Form, name: str, default: str = "") -> str:
    values = form.get(name)
    return values[0].strip() if values else default


def checked(form: Form, name: str) -> bool:
    return one(form, name) in ("on", "true", "1")


def _server(form: Form, prefix: str) -> dict[str, Any]:
    return {
        "host": one(form, f"{prefix}_host"),
        "port": one(form, f"{prefix}_port") or None,
        "security": one(form, f"{prefix}_security", "tls"),
        "username": one(form, f"{prefix}_username") or one(form, "address"),
        "password": one(form, f"{prefix}_password") or one(form, "imap_password") or None,
    }


def mailbox_in(form: Form) -> MailboxIn:
    """The connect form as `POST /v1/mailboxes` takes it; SMTP reuses the IMAP user name and
    password when its own are left blank."""
    backfill = one(form, "backfill_days")
    return MailboxIn.model_validate(
        {
            "address": one(form, "address"),
            "display_name": one(form, "display_name"),
            "imap": _server(form, "imap"),
            "smtp": _server(form, "smtp"),
            "sync": {
                "scope": one(form, "scope", "all"),
                "backfill_days": int(backfill) if backfill.isdigit() else None,
            },
            "visibility": one(form, "visibility", "metadata"),
            "append_to_sent": checked(form, "append_to_sent"),
        }
    )


def capture_rules_in(form: Form) -> CaptureRulesIn:
    blocked = [line.strip() for line in one(form, "blocked").splitlines() if line.strip()]
    return CaptureRulesIn.model_validate(
        {
            "policy": one(form, "policy", "sent"),
            "known_company_domains_only": checked(form, "known_company_domains_only"),
            "exclude_free_mail": checked(form, "exclude_free_mail"),
            "exclude_automated": checked(form, "exclude_automated"),
            "exclude_internal": checked(form, "exclude_internal"),
            "create_companies": checked(form, "create_companies"),
            "blocked": blocked,
        }
    )


def problems(error: ValidationError) -> list[str]:
    """Each invalid field and why, in words (never the value given)."""
    found = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "form"
        found.append(f"{where}: {item['msg']}")
    return found
