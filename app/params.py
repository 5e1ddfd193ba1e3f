"""Validating a run's parameters against the lesson's own parser, before anything starts.

Values arrive as JSON (typed) or from the page's form (strings). Each is checked with the rule the
lesson declared (type, bounds, choices); the first problem raises :class:`ParamError` naming the
field, so the API answers 400 and the page shows the message beside that field.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from typing import Any

from lessons.kit.args import Bounded

from .lesson import Lesson, Param

MAX_TEXT = 200  # characters in one text parameter; lessons take names and modes, not documents
MAX_NUMBER_TEXT = 30  # digits and signs in a number; refuses "1" followed by a million zeros
MAX_ARGS = 64  # arguments of a plain program: a command line, not a data channel
MAX_ARG_CHARS = 500


class ParamError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _describe(param: Param) -> str:
    """The number rule in the kit's own words: the very function the lesson's argparse type uses
    (the kit is stdlib-only data and code; importing it runs no lesson)."""
    return Bounded(int if param.type == "int" else float, param.min, param.max).describe()


def _number(param: Param, raw: Any) -> int | float:
    if isinstance(raw, float) and param.type == "int":
        raise ParamError(param.name, "expected a whole number")
    if not isinstance(raw, (int, float, str)):
        raise ParamError(param.name, f"expected a number, got {type(raw).__name__}")
    text = str(raw).strip()
    if not text:
        raise ParamError(param.name, "a value is required")
    if len(text) > MAX_NUMBER_TEXT:
        raise ParamError(param.name, "number too long")
    try:
        # int() and float() are what the lesson's argparse type applies to the same text.
        value = int(text) if param.type == "int" else float(text)
    except ValueError:
        raise ParamError(param.name, f"expected {_describe(param)}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ParamError(param.name, f"expected a finite number, got {text!r}")
    try:
        out_of_range = (param.min is not None and value < param.min) or (
            param.max is not None and value > param.max)
    except TypeError:  # a bound that is not a number (a teacher's own type): the lesson checks it
        out_of_range = False
    if out_of_range:
        raise ParamError(param.name, f"expected {_describe(param)}, got {text!r}")
    return value


def _convert(param: Param, raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800"), which a JSON body can carry
            raise ParamError(param.name, "text must be valid Unicode (no lone surrogates)") from None
    if param.type == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("on", "true", "1", "yes"):
            return True
        if isinstance(raw, str) and raw.lower() in ("", "off", "false", "0", "no"):
            return False
        raise ParamError(param.name, "expected true or false")
    if isinstance(raw, bool):
        raise ParamError(param.name, f"expected {param.type}, got a boolean")
    if param.type in ("int", "float"):
        return _number(param, raw)
    if not isinstance(raw, (str, int, float)):
        raise ParamError(param.name, f"expected text, got {type(raw).__name__}")
    text = str(raw)
    if len(text) > MAX_TEXT or "\x00" in text:
        raise ParamError(param.name, f"at most {MAX_TEXT} characters of text")
    if param.type == "choice":
        for choice in param.choices or ():
            if str(choice) == text:
                return choice
        raise ParamError(param.name, f"choose one of {', '.join(map(str, param.choices or ()))}")
    # Any other type is text here; a teacher's own converter (Path, a function) runs in the lesson,
    # whose argparse refuses what it cannot take, as it would on the command line.
    return text


def validate(lesson: Lesson, raw: Mapping[str, Any], *, from_form: bool = False) -> dict[str, Any]:
    """Checked values for every parameter (defaults filled in), keyed by name.

    A form leaves an unchecked checkbox out, so there a missing bool means False.
    """
    unknown = sorted(set(raw) - {p.name for p in lesson.params})
    if unknown:
        # Named as sent, except what UTF-8 cannot carry (a lone surrogate): the answer must encode.
        raise ParamError(unknown[0].encode("utf-8", "backslashreplace").decode("utf-8"), "unknown parameter")
    values: dict[str, Any] = {}
    for param in lesson.params:
        if param.name in raw:
            values[param.name] = _convert(param, raw[param.name])
        elif param.type == "bool" and from_form:
            values[param.name] = False
        else:
            values[param.name] = param.default
    return values


def to_argv(lesson: Lesson, values: Mapping[str, Any]) -> list[str]:
    """The lesson's command-line flags for ``values``: ``--name=value``, so a value starting with
    ``-`` can never be read as another option."""
    argv: list[str] = []
    for param in lesson.params:
        value = values.get(param.name, param.default)
        if param.type == "bool":
            if bool(value) != bool(param.default):  # store_true and store_false alike
                argv.append(param.flag)
        elif value is not None:
            argv.append(f"{param.flag}={value}")
    return argv


def validate_args(raw: Any, *, from_form: bool = False) -> list[str]:
    """A plain program's arguments, checked: a JSON list of strings, or the form's one text field
    split as a POSIX shell would split it (quotes, backslashes) with :func:`shlex.split`. Nothing is
    expanded and no shell ever sees them: they become argv entries as they are."""
    if from_form:
        if not isinstance(raw, str):
            raise ParamError("args", "expected text")
        try:
            raw = shlex.split(raw)
        except ValueError as exc:  # "No closing quotation", "No escaped character"
            raise ParamError("args", f"cannot be split like a command line: {exc}") from None
    if not isinstance(raw, list):
        raise ParamError("args", f"expected a list of strings, got {type(raw).__name__}")
    if len(raw) > MAX_ARGS:
        raise ParamError("args", f"at most {MAX_ARGS} arguments")
    for n, arg in enumerate(raw, 1):
        if not isinstance(arg, str):
            raise ParamError("args", f"argument {n}: expected a string, got {type(arg).__name__}")
        if len(arg) > MAX_ARG_CHARS:
            raise ParamError("args", f"argument {n}: at most {MAX_ARG_CHARS} characters")
        if "\x00" in arg:  # argv is C strings: a NUL would cut the argument short
            raise ParamError("args", f"argument {n}: no NUL characters")
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate ("\ud800"), which a JSON body can carry
            raise ParamError("args", f"argument {n}: text must be valid Unicode (no lone surrogates)"
                             ) from None
    return list(raw)
