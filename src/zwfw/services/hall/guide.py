"""The 办事指南 (service guide) of an item, validated field by field.

Field names follow one provincial item schema (see the project's standards notes): a guide
lists everything an applicant needs and must not ask for anything beyond it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from zwfw.codes import (
    CodeError,
    parse_credit_code,
    parse_division,
    parse_handling_item_code,
    parse_implementation_code,
)

TimeUnit = Literal["working_day", "natural_day"]
Channel = Literal["online", "window", "mail", "self_service", "mobile"]
ServerType = Literal["person", "legal_person"]
MaterialFormat = Literal["paper", "electronic"]

_LICENCE_TYPE_CODE = r"^[0-9A-HJ-NPQRTUWXY]{18}[0-9]{3}$"


def _code(parser, value: str) -> str:  # type: ignore[no-untyped-def]
    try:
        return str(parser(value))
    except CodeError as exc:
        raise ValueError(str(exc)) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class HandlingItem(_Strict):
    """A 业务办理项 of the item: its 33-character code and name."""

    code: str
    name: str = Field(min_length=1, max_length=200)

    @field_validator("code")
    @classmethod
    def _valid(cls, value: str) -> str:
        return _code(parse_handling_item_code, value)


class Material(_Strict):
    """One 申请材料: what it is, on what basis, in which form and how many copies."""

    name: str = Field(min_length=1, max_length=200)
    basis: str = Field(min_length=1, max_length=1000, description="材料依据")
    formats: list[MaterialFormat] = Field(min_length=1)
    copies: int = Field(ge=1, le=99, description="份数")
    original_required: bool = False
    seal_required: bool = Field(description="需加盖公章")
    signature_required: bool = Field(description="需申请人签字")
    required: bool = True
    sample_url: HttpUrl | None = None
    # An e-licence type (GB/T 36904 type code) that may replace the material (免证办).
    licence_type_code: str | None = Field(default=None, pattern=_LICENCE_TYPE_CODE)


class Fee(_Strict):
    name: str = Field(min_length=1, max_length=200)
    standard: str = Field(min_length=1, max_length=500, description="收费标准")
    basis: str = Field(min_length=1, max_length=1000, description="收费依据")


class Guide(_Strict):
    """An item's complete 办事指南."""

    name: str = Field(min_length=1, max_length=200)
    implementation_code: str
    item_type: str = Field(pattern=r"^\d{2}$", description="事项类型, e.g. 20 公共服务")
    handling_items: list[HandlingItem] = Field(default_factory=list)
    dept_code: str = Field(description="实施主体 credit code")
    dept_name: str = Field(min_length=1, max_length=200)
    region_code: str = Field(description="行政区划代码 of the implementing body")
    by_law: list[str] = Field(min_length=1, description="设定依据")
    accept_condition: str = Field(min_length=1, max_length=4000)
    anticipate_day: int = Field(ge=0, le=3650, description="法定办结时限")
    anticipate_day_unit: TimeUnit = "working_day"
    promise_day: int = Field(ge=0, le=3650, description="承诺办结时限")
    promise_day_unit: TimeUnit = "working_day"
    is_fee: bool
    fees: list[Fee] = Field(default_factory=list)
    handle_flow: list[str] = Field(min_length=1, description="办理流程")
    handle_type: list[Channel] = Field(min_length=1, description="办理形式")
    limit_scene_num: int = Field(ge=0, le=10, description="到现场次数")
    link_addr: HttpUrl | None = None
    mobile_terminal_url: HttpUrl | None = None
    link_way: str = Field(min_length=1, max_length=500, description="咨询方式")
    supervise_way: str = Field(min_length=1, max_length=500, description="监督投诉方式")
    project_type: Literal[1, 2] = Field(description="1 即办件, 2 承诺件")
    server_type: list[ServerType] = Field(min_length=1)
    transact_addr: str = Field(min_length=1, max_length=500)
    transact_time: str = Field(min_length=1, max_length=500)
    materials: list[Material] = Field(default_factory=list)

    @field_validator("implementation_code")
    @classmethod
    def _implementation(cls, value: str) -> str:
        return _code(parse_implementation_code, value)

    @field_validator("dept_code")
    @classmethod
    def _dept(cls, value: str) -> str:
        return _code(parse_credit_code, value)

    @field_validator("region_code")
    @classmethod
    def _region(cls, value: str) -> str:
        return _code(parse_division, value)

    @field_validator("by_law", "handle_flow")
    @classmethod
    def _no_blank(cls, values: list[str]) -> list[str]:
        if any(not v.strip() for v in values):
            raise ValueError("entries must not be blank")
        return [v.strip() for v in values]

    @model_validator(mode="after")
    def _consistent(self) -> Guide:
        if self.dept_code != self.implementation_code[:18]:
            raise ValueError(
                f"dept_code {self.dept_code} is not the implementing body of implementation "
                f"code {self.implementation_code} (its first 18 characters)"
            )
        for handling in self.handling_items:
            if handling.code[:31] != self.implementation_code:
                raise ValueError(
                    f"handling item {handling.code} does not belong to implementation code "
                    f"{self.implementation_code}"
                )
        if len({h.code for h in self.handling_items}) != len(self.handling_items):
            raise ValueError("handling item codes must be unique")
        if len({m.name for m in self.materials}) != len(self.materials):
            raise ValueError("material names must be unique")
        if self.is_fee and not self.fees:
            raise ValueError("is_fee is true but no fee (name, standard, basis) is listed")
        if not self.is_fee and self.fees:
            raise ValueError("is_fee is false but fees are listed")
        if self.promise_day_unit == self.anticipate_day_unit and (
            self.promise_day > self.anticipate_day
        ):
            raise ValueError(
                f"promise_day {self.promise_day} exceeds the legal time limit "
                f"anticipate_day {self.anticipate_day}"
            )
        if "online" in self.handle_type and self.link_addr is None:
            raise ValueError("handle_type includes online but link_addr is not given")
        return self

    @property
    def basic_code(self) -> str:
        return self.implementation_code[19:]

    def material(self, name: str) -> Material | None:
        return next((m for m in self.materials if m.name == name), None)
