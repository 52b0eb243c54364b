"""The CloudEvents envelope every broker message travels in."""

from datetime import datetime
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from mailsync_shared.clock import utcnow
from mailsync_shared.ids import new_id


class Contract(BaseModel):
    """Base of every payload: frozen, and tolerant of fields added by newer producers."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Event(Contract):
    """CloudEvents 1.0 attributes plus the workspace extension; subclasses add `type` and `data`.

    Routing key: `<type>.<workspaceid>`, so a consumer can bind to one type (`<type>.*`)
    or to one workspace (`#.<workspaceid>`).
    """

    specversion: Literal["1.0"] = Field(default="1.0", description="CloudEvents version.")
    id: str = Field(default_factory=new_id, description="Unique per event; use it to deduplicate.")
    source: str = Field(description="The producing service, e.g. `/mailsync/associate`.")
    type: str = Field(description="Event type with its version, e.g. `mailsync.email.logged.v1`.")
    time: datetime = Field(default_factory=utcnow, description="When the fact happened (UTC).")
    subject: str | None = Field(default=None, description="The main entity id the event is about.")
    datacontenttype: Literal["application/json"] = "application/json"
    workspaceid: str = Field(description="Workspace the event belongs to.")
    data: Any

    event_type: ClassVar[str]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields.get("type")
        if field is not None and isinstance(field.default, str):
            cls.event_type = field.default

    @classmethod
    def create(
        cls, *, source: str, workspace_id: str, data: Any, subject: str | None = None
    ) -> Self:
        return cls(
            type=cls.event_type, source=source, workspaceid=workspace_id, data=data, subject=subject
        )

    @property
    def routing_key(self) -> str:
        return f"{self.type}.{self.workspaceid}"

    @classmethod
    def binding_key(cls) -> str:
        """Binding key that selects this event type in every workspace."""
        return f"{cls.event_type}.*"
