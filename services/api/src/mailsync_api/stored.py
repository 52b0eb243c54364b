"""What a document looks like after a round trip through the database."""

from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel

ModelT = TypeVar("ModelT", bound=BaseModel)


def as_stored(model: ModelT) -> ModelT:
    """`model` with its top-level times cut to the milliseconds BSON keeps, so an answer given
    right after a write matches every later read."""
    changes = {
        name: value.replace(microsecond=value.microsecond // 1000 * 1000)
        for name, value in model
        if isinstance(value, datetime)
    }
    return model.model_copy(update=changes)
