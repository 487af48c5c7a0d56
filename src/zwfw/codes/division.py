"""Administrative division code (行政区划代码, GB/T 2260 and its 12-digit statistical extension).

6 digits: province (2) / city (2) / county (2), e.g. 340000 Anhui, 340100 Hefei, 340102 Yaohai.
12 digits add township (3) and village (3), as used by statistical division codes.

Only the structure is checked, not membership in the current official list (which changes every
year): the province part must be one of the province-level codes in use, a county part needs a
city part, and a village part needs a township part. The last two rules are inferences from the
published lists, where no code breaks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from zwfw.codes.errors import CodeError, check_digits, check_text
from zwfw.codes.tables import PROVINCES

KIND = "division"


Level = Literal["province", "city", "county", "township", "village"]


@dataclass(frozen=True)
class DivisionCode:
    """A structurally valid 6- or 12-digit division code; constructing one validates it."""

    value: str

    def __post_init__(self) -> None:
        value = check_text(KIND, self.value, (6, 12), "6 or 12 digits")
        check_digits(KIND, value, 0, len(value), "a division code")
        if value[:2] not in PROVINCES:
            raise CodeError(KIND, value, f"unknown province part '{value[:2]}'", 0)
        if value[2:4] == "00" and value[4:6] != "00":
            raise CodeError(KIND, value, f"county part '{value[4:6]}' under city part '00'", 4)
        if len(value) == 12 and value[6:9] == "000" and value[9:12] != "000":
            raise CodeError(
                KIND, value, f"village part '{value[9:12]}' under township part '000'", 9
            )

    def __str__(self) -> str:
        return self.value

    @property
    def province(self) -> str:
        return self.value[0:2]

    @property
    def province_name(self) -> str:
        return PROVINCES[self.province]

    @property
    def city(self) -> str:
        return self.value[2:4]

    @property
    def county(self) -> str:
        return self.value[4:6]

    @property
    def township(self) -> str | None:
        return self.value[6:9] if len(self.value) == 12 else None

    @property
    def village(self) -> str | None:
        return self.value[9:12] if len(self.value) == 12 else None

    @property
    def level(self) -> Level:
        """The most specific non-zero part."""
        if self.village not in (None, "000"):
            return "village"
        if self.township not in (None, "000"):
            return "township"
        if self.county != "00":
            return "county"
        if self.city != "00":
            return "city"
        return "province"

    @property
    def province_code(self) -> str:
        """The 6-digit code of the province this division belongs to."""
        return self.province + "0000"

    def parts(self) -> dict[str, str]:
        parts = {
            "province": f"{self.province} ({self.province_name})",
            "city": self.city,
            "county": self.county,
        }
        if self.township is not None and self.village is not None:
            parts["township"] = self.township
            parts["village"] = self.village
        parts["level"] = self.level
        return parts


def parse_division(value: str) -> DivisionCode:
    """Validate `value` as a division code; raises CodeError naming the first problem."""
    return DivisionCode(value)


def build_division(
    province: str,
    city: str = "00",
    county: str = "00",
    township: str | None = None,
    village: str | None = None,
) -> DivisionCode:
    """A division code from its parts; township and village give the 12-digit form."""
    value = province + city + county
    if township is not None or village is not None:
        value += (township or "000") + (village or "000")
    if len(province) != 2 or len(city) != 2 or len(county) != 2:
        raise CodeError(KIND, value, "province, city and county parts are 2 digits each")
    if len(value) == 12 and (len(township or "000") != 3 or len(village or "000") != 3):
        raise CodeError(KIND, value, "township and village parts are 3 digits each")
    return DivisionCode(value)
