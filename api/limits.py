"""Limits that come from config.yml, checked per request; violations are 422 like schema errors."""

from fastapi.exceptions import RequestValidationError


def invalid(loc: tuple, message: str, type: str, value=None):
    raise RequestValidationError([{"type": type, "loc": loc, "msg": message, "input": value}])


def check_text(text: str, maximum: int, loc: tuple):
    if len(text) > maximum:
        invalid(loc, f"String should have at most {maximum} characters (api.max_question_length)", "string_too_long")


def check_limit(value: int | None, maximum: int, loc: tuple, key: str = "search.max_limit"):
    if value is not None and value > maximum:
        invalid(loc, f"Input should be less than or equal to {maximum} ({key})", "less_than_equal", value)
