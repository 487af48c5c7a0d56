"""Government-service item codes (事项编码) and case numbers (办件编号).

- Item basic code (基本编码), GB/T 39554.1-2020: 12 characters. The internal structure of the
  standard was not available; every published sample is 12 digits (``370117002011``,
  ``442199806003``), so exactly 12 ASCII digits are accepted.
- Implementation code (实施编码), 31 characters: the implementing body's credit code (18,
  validated including its check character) + exercise level (1 digit) + basic code (12).
  Level names are an inference from samples and provincial catalogues (3 = municipal appears in
  the samples); levels 1-6 are accepted.
- Handling-item code (业务办理项编码), 33 characters: implementation code + 2 digits.
- Case number (办件编号), one province's practice: implementation code + yyyyMMdd (a date that
  exists) + 4-digit daily sequence 0001-9999, 43 characters in all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from zwfw.codes.credit import LENGTH as CREDIT_LENGTH
from zwfw.codes.credit import CreditCode
from zwfw.codes.errors import CodeError, check_digits, check_text

BASIC_KIND = "item-basic"
IMPLEMENTATION_KIND = "item-impl"
HANDLING_KIND = "handling-item"
CASE_KIND = "case-number"

BASIC_LENGTH = 12
IMPLEMENTATION_LENGTH = CREDIT_LENGTH + 1 + BASIC_LENGTH  # 31
HANDLING_LENGTH = IMPLEMENTATION_LENGTH + 2  # 33
CASE_LENGTH = IMPLEMENTATION_LENGTH + 8 + 4  # 43

# Inference: the samples use 3 for a municipal department's items.
EXERCISE_LEVELS: dict[str, str] = {
    "1": "国家级",
    "2": "省级",
    "3": "市级",
    "4": "县级",
    "5": "乡镇级",
    "6": "村（社区）级",
}


def _check_implementation_part(kind: str, value: str) -> None:
    """Validate value[:31] as an implementation code, errors told in terms of `kind`."""
    try:
        CreditCode(value[:CREDIT_LENGTH])
    except CodeError as err:
        raise err.within(kind, value, 0, "implementing body credit code (positions 0-17)") from None
    level = value[CREDIT_LENGTH]
    if level not in EXERCISE_LEVELS:
        known = ", ".join(EXERCISE_LEVELS)
        raise CodeError(
            kind,
            value,
            f"exercise level at position {CREDIT_LENGTH} is '{level}', expected one of {known}",
            CREDIT_LENGTH,
        )
    check_digits(
        kind, value, CREDIT_LENGTH + 1, IMPLEMENTATION_LENGTH, "basic code (positions 19-30)"
    )


@dataclass(frozen=True)
class ItemBasicCode:
    """A 12-digit item basic code; constructing one validates it."""

    value: str

    def __post_init__(self) -> None:
        check_text(BASIC_KIND, self.value, (BASIC_LENGTH,), f"{BASIC_LENGTH} digits")
        check_digits(BASIC_KIND, self.value, 0, BASIC_LENGTH, "a basic code")

    def __str__(self) -> str:
        return self.value

    def parts(self) -> dict[str, str]:
        return {"basic code": self.value}


@dataclass(frozen=True)
class ImplementationCode:
    """A 31-character implementation code; constructing one validates it."""

    value: str

    def __post_init__(self) -> None:
        check_text(
            IMPLEMENTATION_KIND,
            self.value,
            (IMPLEMENTATION_LENGTH,),
            f"{IMPLEMENTATION_LENGTH} characters (credit code 18 + level 1 + basic code 12)",
        )
        _check_implementation_part(IMPLEMENTATION_KIND, self.value)

    def __str__(self) -> str:
        return self.value

    @property
    def credit_code(self) -> CreditCode:
        return CreditCode(self.value[:CREDIT_LENGTH])

    @property
    def level(self) -> str:
        return self.value[CREDIT_LENGTH]

    @property
    def basic_code(self) -> ItemBasicCode:
        return ItemBasicCode(self.value[CREDIT_LENGTH + 1 :])

    def parts(self) -> dict[str, str]:
        return {
            "implementing body": self.value[:CREDIT_LENGTH],
            "exercise level": f"{self.level} ({EXERCISE_LEVELS[self.level]})",
            "basic code": self.value[CREDIT_LENGTH + 1 :],
        }


@dataclass(frozen=True)
class HandlingItemCode:
    """A 33-character handling-item code; constructing one validates it."""

    value: str

    def __post_init__(self) -> None:
        check_text(
            HANDLING_KIND,
            self.value,
            (HANDLING_LENGTH,),
            f"{HANDLING_LENGTH} characters (implementation code 31 + 2 digits)",
        )
        _check_implementation_part(HANDLING_KIND, self.value)
        check_digits(
            HANDLING_KIND,
            self.value,
            IMPLEMENTATION_LENGTH,
            HANDLING_LENGTH,
            "handling-item suffix (positions 31-32)",
        )

    def __str__(self) -> str:
        return self.value

    @property
    def implementation_code(self) -> ImplementationCode:
        return ImplementationCode(self.value[:IMPLEMENTATION_LENGTH])

    @property
    def suffix(self) -> str:
        return self.value[IMPLEMENTATION_LENGTH:]

    def parts(self) -> dict[str, str]:
        return {
            **ImplementationCode(self.value[:IMPLEMENTATION_LENGTH]).parts(),
            "handling item": self.suffix,
        }


@dataclass(frozen=True)
class CaseNumber:
    """A 43-character case number; constructing one validates it."""

    value: str

    def __post_init__(self) -> None:
        value = self.value
        check_text(
            CASE_KIND,
            value,
            (CASE_LENGTH,),
            f"{CASE_LENGTH} characters (implementation code 31 + yyyyMMdd + 4-digit sequence)",
        )
        _check_implementation_part(CASE_KIND, value)
        start = IMPLEMENTATION_LENGTH
        check_digits(CASE_KIND, value, start, start + 8, "date (positions 31-38)")
        text = value[start : start + 8]
        try:
            date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            raise CodeError(
                CASE_KIND, value, f"date '{text}' does not exist (expected yyyyMMdd)", start
            ) from None
        check_digits(CASE_KIND, value, start + 8, CASE_LENGTH, "sequence (positions 39-42)")
        if value[start + 8 :] == "0000":
            raise CodeError(CASE_KIND, value, "sequence is 0000, expected 0001-9999", start + 8)

    def __str__(self) -> str:
        return self.value

    @property
    def implementation_code(self) -> ImplementationCode:
        return ImplementationCode(self.value[:IMPLEMENTATION_LENGTH])

    @property
    def day(self) -> date:
        text = self.value[IMPLEMENTATION_LENGTH : IMPLEMENTATION_LENGTH + 8]
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))

    @property
    def sequence(self) -> int:
        return int(self.value[IMPLEMENTATION_LENGTH + 8 :])

    def parts(self) -> dict[str, str]:
        return {
            **ImplementationCode(self.value[:IMPLEMENTATION_LENGTH]).parts(),
            "implementation code": self.value[:IMPLEMENTATION_LENGTH],
            "date": self.day.isoformat(),
            "sequence": self.value[IMPLEMENTATION_LENGTH + 8 :],
        }


def parse_item_basic_code(value: str) -> ItemBasicCode:
    return ItemBasicCode(value)


def parse_implementation_code(value: str) -> ImplementationCode:
    return ImplementationCode(value)


def parse_handling_item_code(value: str) -> HandlingItemCode:
    return HandlingItemCode(value)


def parse_case_number(value: str) -> CaseNumber:
    return CaseNumber(value)


def build_implementation_code(
    credit_code: CreditCode | str, level: int | str, basic_code: ItemBasicCode | str
) -> ImplementationCode:
    """The implementation code of an item exercised by `credit_code` at `level`."""
    return ImplementationCode(f"{credit_code}{level}{basic_code}")


def build_handling_item_code(
    implementation_code: ImplementationCode | str, suffix: int | str
) -> HandlingItemCode:
    """`suffix` is 0-99 (or its 2-digit text)."""
    text = f"{suffix:02d}" if isinstance(suffix, int) and 0 <= suffix <= 99 else str(suffix)
    return HandlingItemCode(f"{implementation_code}{text}")


def build_case_number(
    implementation_code: ImplementationCode | str, day: date, sequence: int
) -> CaseNumber:
    """The `sequence`-th (1-9999) case of `day` for the item `implementation_code`."""
    # strftime does not zero-pad years before 1000 on every platform.
    day_text = f"{day.year:04d}{day.month:02d}{day.day:02d}"
    if not 1 <= sequence <= 9999:
        raise CodeError(
            CASE_KIND,
            f"{implementation_code}{day_text}{sequence}",
            f"sequence is {sequence}, expected 1-9999",
        )
    return CaseNumber(f"{implementation_code}{day_text}{sequence:04d}")
