"""The one error type every code parser raises, and the shared first-pass text checks."""

from __future__ import annotations

from collections.abc import Container

from zwfw.codes.masking import mask_personal_data, mask_resident_id

# The kind of ``zwfw.codes.personal``'s errors: their whole value is masked.
RESIDENT_ID_KIND = "resident-id"

# Longer values are cut in messages so one bad input cannot flood a log line.
_MESSAGE_VALUE_LIMIT = 80


class CodeError(ValueError):
    """A value is not a valid code of `kind`.

    `value` is the raw input (do not log it as is); `str(err)` is a single line that is safe to
    log: it masks resident ID and phone numbers that may have been typed into the wrong field.
    `position` is the 0-based index of the offending character when one can be named.
    """

    def __init__(self, kind: str, value: str, reason: str, position: int | None = None) -> None:
        super().__init__(kind, value, reason, position)
        self.kind = kind
        self.value = value
        self.reason = reason
        self.position = position

    def __str__(self) -> str:
        shown = self.value if isinstance(self.value, str) else repr(self.value)
        if self.kind == RESIDENT_ID_KIND:
            # Malformed numbers escape shape-based masking; mask the whole value.
            shown = mask_resident_id(shown)
        if len(shown) > _MESSAGE_VALUE_LIMIT:
            shown = shown[:_MESSAGE_VALUE_LIMIT] + "…"
        return f"{self.kind} {mask_personal_data(shown)!r}: {self.reason}"

    def within(self, kind: str, value: str, offset: int, label: str) -> CodeError:
        """This error re-told for a longer code that embeds the checked value at `offset`."""
        position = None if self.position is None else self.position + offset
        return CodeError(kind, value, f"{label}: {self.reason}", position)


DIGITS = "0123456789"


def describe_char(char: str) -> str:
    """A character as it should appear in a message: quoted, with invisibles spelled out."""
    if char.isprintable() and not char.isspace():
        return f"'{char}'"
    return f"{char!r} (U+{ord(char):04X})"


def check_text(kind: str, value: object, lengths: Container[int] | None, expected: str = "") -> str:
    """Checks every code shares: a non-empty string, no whitespace, an allowed length.

    `expected` words the allowed length for the message, e.g. "18 characters"; `lengths` None
    leaves the length to the caller.
    """
    if not isinstance(value, str):
        raise CodeError(kind, repr(value), f"expected a string, got {type(value).__name__}")
    if value == "":
        raise CodeError(kind, value, "empty value")
    for index, char in enumerate(value):
        if char.isspace():
            where = (
                "leading"
                if value[:index].strip() == ""
                else "trailing"
                if value[index:].strip() == ""
                else "embedded"
            )
            raise CodeError(
                kind, value, f"{where} whitespace {describe_char(char)} at position {index}", index
            )
    if lengths is not None and len(value) not in lengths:
        raise CodeError(kind, value, f"expected {expected}, got {len(value)}")
    return value


def check_digits(kind: str, value: str, start: int, end: int, what: str) -> None:
    """Every character of value[start:end] is an ASCII digit (`what` names that part)."""
    for index in range(start, end):
        if value[index] not in DIGITS:
            raise CodeError(
                kind,
                value,
                f"{what} must be digits, found {describe_char(value[index])} at position {index}",
                index,
            )
