"""Field types shared by the HTTP models."""

import re
from typing import Annotated, Self

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from mailsync_shared.mail.headers import has_line_break

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


def no_line_breaks(value: str) -> str:
    """Values that can reach a mail header must not carry CR, LF or NUL (header injection)."""
    if has_line_break(value):
        raise ValueError("must not contain line breaks (CR, LF) or NUL")
    return value


def email_address(value: str) -> str:
    """A syntactically valid addr-spec, lower-cased; display names and comments are refused."""
    no_line_breaks(value)
    try:
        # `test_environment` accepts special-use domains such as `.test`; no DNS is queried.
        checked = validate_email(value, check_deliverability=False, test_environment=True)
    except EmailNotValidError as error:
        raise ValueError(str(error)) from error
    return checked.normalized.lower()


def domain_name(value: str) -> str:
    normalized = value.strip().lower().rstrip(".")
    if not _DOMAIN.match(normalized):
        raise ValueError("is not a domain name such as `example.com`")
    return normalized


HeaderText = Annotated[str, AfterValidator(no_line_breaks)]
EmailAddress = Annotated[str, StringConstraints(max_length=320), AfterValidator(email_address)]
DomainName = Annotated[str, StringConstraints(max_length=253), AfterValidator(domain_name)]
Name = Annotated[str, StringConstraints(max_length=300), AfterValidator(no_line_breaks)]
ExternalId = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(no_line_breaks)
]
RecordId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
]


def unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class Input(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error rather than silently lost."""

    model_config = ConfigDict(extra="forbid")


class DocumentView(BaseModel):
    """A response made of the same-named fields of a stored document (and only those)."""

    @classmethod
    def of(cls, document: BaseModel) -> Self:
        return cls.model_validate(document, from_attributes=True)


class AddressOut(BaseModel):
    address: str
    name: str = ""


class AddressIn(Input):
    address: EmailAddress
    name: Name = Field(default="", description="Display name.")
