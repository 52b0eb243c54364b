"""What a public event may say about mail, by the visibility of the mailbox it came from.

Subscribers of `mailsync.events` are other systems: each gets what the mailbox's visibility
shares with the whole workspace, and less where the issue says so. Every field of every public
event is classified here once; `public_copy` blanks what the level does not publish, and
`tests/unit/shared/test_event_privacy.py` fails when a field is added without a class. A field
missing from the table is never published (a new field fails closed).

- `id`: ids, flags and the records' own data (contacts are workspace records): always.
- `metadata`: who took part, when, the headers' ids and sizes: not for `private` mail.
- `content`: the subject: only for `workspace` mail.
- `scrubbed`: free text (link reasons, server replies) that may quote an address: always, with
  every address replaced by `[address]`.
- `never`: Bcc recipients, whatever the level.

The level is the mailbox's visibility, or `private` for a thread marked private; a publisher
that cannot tell publishes at `private`.
"""

import re
import types
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from mailsync_shared.contracts.envelope import Contract, Event
from mailsync_shared.contracts.mail import Address, AutomationHints, MailSource
from mailsync_shared.contracts.outbound import EmailSendFailed, EmailSent
from mailsync_shared.contracts.records import ContactCaptured, EmailLogged, ThreadAssociated
from mailsync_shared.storage.documents import Visibility

Disclosure = Literal["id", "metadata", "content", "scrubbed", "never"]
LEVELS: tuple[Visibility, ...] = ("private", "metadata", "subject", "workspace")

# Contracts published whole under one class rather than field by field.
LEAF_MODELS: tuple[type[BaseModel], ...] = (Address, MailSource, AutomationHints)

_MESSAGE: Mapping[str, Disclosure] = {
    "mailbox_id": "id",
    "owner_address": "id",
    "direction": "id",
    "source": "metadata",
    "raw_id": "id",
    "size": "metadata",
    "message_id": "metadata",
    "in_reply_to": "metadata",
    "references": "metadata",
    "subject": "content",
    "date": "metadata",
    "from_": "metadata",
    "to": "metadata",
    "cc": "metadata",
    "bcc": "never",
    "reply_to": "metadata",
    "automation": "metadata",
    "provider_thread_id": "metadata",
    "provider_message_id": "metadata",
    "send_request_id": "id",
    "defects": "metadata",
}

EVENT_FIELDS: Mapping[type[Event], Mapping[str, Disclosure]] = {
    EmailLogged: {
        "email_id": "id",
        "thread_id": "id",
        "mailbox_id": "id",
        "message_id": "metadata",
        "direction": "id",
        "subject": "content",
        "date": "metadata",
        "participants": "metadata",
    },
    ThreadAssociated: {
        "thread_id": "id",
        "contact_ids": "id",
        "company_ids": "id",
        "deal_ids": "id",
        "reasons.record_type": "id",
        "reasons.record_id": "id",
        "reasons.reason": "scrubbed",
        "manual": "id",
    },
    ContactCaptured: {
        "contact_id": "id",
        "address": "id",
        "name": "id",
        "rule": "id",
        "mailbox_id": "id",
        "message_id": "metadata",
    },
    EmailSent: {
        "send_request_id": "id",
        "thread_id": "id",
        **{f"message.{name}": disclosure for name, disclosure in _MESSAGE.items()},
    },
    EmailSendFailed: {
        "send_request_id": "id",
        "mailbox_id": "id",
        "reason": "scrubbed",
        "permanent": "id",
    },
}

_SHOWN_FROM: Mapping[Disclosure, int] = {
    "id": 0,
    "scrubbed": 0,
    "metadata": LEVELS.index("metadata"),
    "content": LEVELS.index("workspace"),
    "never": len(LEVELS),
}
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']+")

E = TypeVar("E", bound=Event)


def event_level(visibility: Visibility | None, *, private_thread: bool = False) -> Visibility:
    """The level an event is published at: the mailbox's visibility, `private` for a private
    thread or an unknown mailbox."""
    if visibility is None or private_thread:
        return "private"
    return visibility


def visibility_of(mailbox: Mapping[str, Any]) -> Visibility:
    """A stored mailbox's visibility (the model's default when unset; `private` when unknown)."""
    value = mailbox.get("visibility", "metadata")
    return next((level for level in LEVELS if level == value), "private")


def shown(disclosure: Disclosure, level: Visibility) -> bool:
    return LEVELS.index(level) >= _SHOWN_FROM[disclosure]


def scrub(text: str) -> str:
    """The text with every email address replaced by `[address]`."""
    return _ADDRESS.sub("[address]", text)


def _inner(annotation: Any) -> Any:
    """The model inside `X | None` or `list[X]`, else the annotation itself."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType, list):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(inner) == 1:
            return _inner(inner[0])
    return annotation


def _nested(annotation: Any) -> type[BaseModel] | None:
    inner = _inner(annotation)
    if isinstance(inner, type) and issubclass(inner, Contract) and inner not in LEAF_MODELS:
        return inner
    return None


def field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every published field of `model`, dotted through nested contracts."""
    paths: list[str] = []
    for name, field in model.model_fields.items():
        nested = _nested(field.annotation)
        if nested is None:
            paths.append(prefix + name)
        else:
            paths += field_paths(nested, f"{prefix}{name}.")
    return paths


def _data_model(event_type: type[Event]) -> type[BaseModel]:
    model = event_type.model_fields["data"].annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{event_type.__name__}.data is not a model")
    return model


def event_paths(event_type: type[Event]) -> list[str]:
    return field_paths(_data_model(event_type))


def _blank(model: type[BaseModel], name: str) -> Any:
    field = model.model_fields[name]
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    if field.default is not PydanticUndefined:
        return field.default
    annotation = field.annotation
    if get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation):
        return None
    blanks: dict[Any, Any] = {str: "", int: 0, list: []}
    return blanks.get(get_origin(annotation) or annotation)


def _redact(
    value: BaseModel, table: Mapping[str, Disclosure], level: Visibility, prefix: str = ""
) -> dict[str, Any]:
    model = type(value)
    update: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        current = getattr(value, name)
        nested = _nested(field.annotation)
        if nested is not None:
            if isinstance(current, list):
                update[name] = [
                    item.model_copy(update=_redact(item, table, level, f"{prefix}{name}."))
                    for item in current
                ]
            elif current is not None:
                update[name] = current.model_copy(
                    update=_redact(current, table, level, f"{prefix}{name}.")
                )
            continue
        disclosure = table.get(prefix + name, "never")
        if not shown(disclosure, level):
            update[name] = _blank(model, name)
        elif disclosure == "scrubbed" and isinstance(current, str):
            update[name] = scrub(current)
    return update


def public_copy(event: E, level: Visibility) -> E:
    """The event as subscribers get it for mail at `level`; events that are not public pass."""
    table = EVENT_FIELDS.get(type(event))
    if table is None:
        return event
    data = event.data.model_copy(update=_redact(event.data, table, level))
    return event.model_copy(update={"data": data})


def render_markdown() -> str:
    """The table as Markdown: what each public event carries at each visibility level."""
    lines = [
        "# What events publish",
        "",
        "Generated from `shared/src/mailsync_shared/event_privacy.py` by "
        "`tests/unit/shared/test_event_privacy.py`; edit the table there, not this file.",
        "",
        "Public events (`mailsync.events`) carry what the visibility of the mailbox the mail "
        'came from shares with the whole workspace: a field left out is blank (`""`, `[]`, '
        "`null`, `0`). A thread marked private publishes at `private`. Bcc recipients are "
        "never published; free text (link reasons, server replies) has every address replaced "
        "by `[address]`.",
        "",
        "| Event | Field | " + " | ".join(f"`{level}`" for level in LEVELS) + " |",
        "| --- | --- |" + " --- |" * len(LEVELS),
    ]
    for event_type, table in EVENT_FIELDS.items():
        for path in event_paths(event_type):
            disclosure = table.get(path, "never")
            cells = [
                ("scrubbed" if disclosure == "scrubbed" else "yes")
                if shown(disclosure, level)
                else "-"
                for level in LEVELS
            ]
            lines.append(f"| `{event_type.event_type}` | `{path}` | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def summary() -> str:
    """One paragraph for the AsyncAPI document."""
    return (
        "Each event carries what the visibility of the mailbox its mail came from shares with "
        "the workspace: `private` mail publishes ids only; `metadata` and `subject` mail add "
        "participants (never Bcc), dates and Message-IDs; only `workspace` mail publishes the "
        "subject. A thread marked private publishes as `private`. Link reasons and server "
        "replies never name an address. Field by field: docs/event-visibility.md."
    )
