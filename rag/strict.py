"""The base of every config.yml model: unknown keys are errors, so a typo fails at start with its name."""

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError


class Strict(BaseModel):
    """A config section or entry that refuses keys it does not know."""

    model_config = ConfigDict(extra="forbid")


NAMED = "named"  # type of the errors below: their message names the offending value itself


def invalid(title: str, problems) -> ValidationError:
    """(key path, message, value) problems found across fields as one ValidationError, each at its
    own key. A model validator's ValueError can only name the model; a ValidationError raised in one
    keeps these paths, below the model's own."""
    errors = [{"type": PydanticCustomError(NAMED, "{message}", {"message": message}), "loc": loc, "input": value} for loc, message, value in problems]
    return ValidationError.from_exception_data(title, errors)
