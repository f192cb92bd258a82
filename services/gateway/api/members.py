"""GraphQL types and root fields of members."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import uuid
from typing import TYPE_CHECKING, Annotated, Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField

from gateway.api.common import Node, PageInfo, check_cursor, page_size, parse_id, require_id, today
from gateway.api.context import GatewayContext
from gateway.api.errors import BadUserInput
from gateway.read_models import UnitRow

if TYPE_CHECKING:
    from gateway.api.units import OrganizationUnit


@strawberry.enum
class MemberStatus(enum.Enum):
    OFFICIAL = "official"
    PROBATIONARY = "probationary"
    LEFT = "left"
    DECEASED = "deceased"
    TRANSFERRED_OUT = "transferred_out"


@strawberry.enum
class MemberFlag(enum.Enum):
    EXEMPTED = "exempted"
    ON_SCREENING_LIST = "on_screening_list"
    TEMPORARILY_AWAY = "temporarily_away"
    HOSTED = "hosted"


@strawberry.enum
class MemberOrder(enum.Enum):
    NAME = "NAME"
    ADMITTED_ON = "ADMITTED_ON"
    BIRTH_DATE = "BIRTH_DATE"


@strawberry.type
class PartyCard:
    number: str
    generation: int | None


@strawberry.type
class Rating:
    year: int
    level: str


@strawberry.type(description="One event in a member's history")
class MemberHistoryEntry:
    type: str
    version: int
    effective_on: dt.date
    recorded_at: str
    actor: str | None
    data: JSON


@strawberry.type(description="A party member")
class Member(Node):
    full_name: str
    gender: str
    status: MemberStatus
    admitted_on: dt.date
    official_on: dt.date | None
    probation_ends_on: dt.date | None
    badges: list[int]
    row: strawberry.Private[dict[str, Any]]
    pii: strawberry.Private[bool]
    cell: strawberry.Private[UnitRow | None]
    """The unit the member belonged to on the date it was read for, read in the member's own statement."""

    @strawberry.field(description="Masked (null) without pii:read")
    def birth_date(self) -> dt.date | None:
        return self.row["birth_date"] if self.pii else None

    @strawberry.field(description="Masked (null) without pii:read")
    def citizen_id(self) -> str | None:
        return self.row["citizen_id"] if self.pii else None

    @strawberry.field(description="Masked (null) without pii:read")
    def phone(self) -> str | None:
        return self.row["phone"] if self.pii else None

    @strawberry.field(description="Masked (null) without pii:read")
    def address(self) -> str | None:
        return self.row["address"] if self.pii else None

    @strawberry.field
    def ethnicity(self) -> str | None:
        return self.row["ethnicity"]  # type: ignore[no-any-return]

    @strawberry.field
    def religion(self) -> str | None:
        return self.row["religion"]  # type: ignore[no-any-return]

    @strawberry.field
    def occupation(self) -> str | None:
        return self.row["occupation"]  # type: ignore[no-any-return]

    @strawberry.field(description="TEMPORARILY_AWAY from the official cell and HOSTED by another go together")
    def flags(self) -> list[MemberFlag]:
        flags = []
        if self.row["exempted"]:
            flags.append(MemberFlag.EXEMPTED)
        if self.row["on_screening_list"]:
            flags.append(MemberFlag.ON_SCREENING_LIST)
        if self.row["host_unit_id"]:
            flags += [MemberFlag.TEMPORARILY_AWAY, MemberFlag.HOSTED]
        return flags

    @strawberry.field(description="Whole years from the admission decision, minus periods outside the Party")
    def party_age(self, as_of: dt.date | None = None) -> int:
        day = as_of or today()
        counted = day - dt.timedelta(days=self.row["interruption_days"] or 0)
        admitted: dt.date = self.row["admitted_on"]
        years = counted.year - admitted.year - ((counted.month, counted.day) < (admitted.month, admitted.day))
        return max(0, years)

    @strawberry.field
    def card(self) -> PartyCard | None:
        if not self.row["card_number"]:
            return None
        return PartyCard(number=self.row["card_number"], generation=self.row["card_generation"])

    @strawberry.field
    def ratings(self) -> list[Rating]:
        return [Rating(year=int(y), level=level) for y, level in sorted(self.row["ratings"].items())]

    @strawberry.field(description="The cell the member belonged to (on the date the member was read for)")
    def unit(self) -> Annotated[OrganizationUnit, strawberry.lazy("gateway.api.units")] | None:
        from gateway.api.units import unit_from_row

        return unit_from_row(self.cell) if self.cell else None

    @strawberry.field(description="Every event about this member, in order")
    async def history(self, info: Info[GatewayContext, None]) -> list[MemberHistoryEntry]:
        member_id = uuid.UUID(str(self.id))
        read_beside = info.context.histories.pop(member_id, None)
        rows = await (read_beside or info.context.read_models.member_history(member_id))
        masked = not self.pii
        return [MemberHistoryEntry(type=r["event_type"], version=r["seq"], effective_on=r["effective_on"],
                                   recorded_at=r["recorded_at"].isoformat(), actor=r["actor"],
                                   data=cast(JSON, _mask(r["data"]) if masked else r["data"]))
                for r in rows]


def _asks_for(fields: list[Any], name: str) -> bool:
    """Whether the fields select `name` directly or through a fragment."""
    for field in fields:
        for selection in field.selections:
            if isinstance(selection, SelectedField) and selection.name == name:
                return True
            if isinstance(selection, FragmentSpread | InlineFragment) and _asks_for([selection], name):
                return True
    return False


def _retrieved(read: asyncio.Future[Any]) -> None:
    """A read started ahead and never awaited (its member was not found) ends without a warning; whoever awaits
    it still gets its error."""
    if not read.cancelled():
        read.exception()


def _mask(data: dict[str, Any]) -> dict[str, Any]:
    hidden = {"citizen_id", "birth_date", "phone", "address"}
    out = {k: (None if k in hidden else v) for k, v in data.items()}
    for nested in ("profile", "changes"):
        inner = out.get(nested)
        if isinstance(inner, dict):
            out[nested] = {k: (None if k in hidden else v) for k, v in inner.items()}
    return out


@strawberry.type
class MemberEdge:
    node: Member
    cursor: str


@strawberry.type
class MemberConnection:
    edges: list[MemberEdge]
    page_info: PageInfo
    total_count: int


def member_from_row(row: dict[str, Any], pii: bool) -> Member:
    return Member(
        id=strawberry.ID(str(row["member_id"])), full_name=row["full_name"], gender=row["gender"],
        status=MemberStatus(row["status"]), admitted_on=row["admitted_on"], official_on=row["official_on"],
        probation_ends_on=row["probation_ends_on"], badges=list(row["badges"] or []), row=row, pii=pii,
        cell=row["cell"],
    )


async def member_connection(info: Info[GatewayContext, None], *, unit_id: uuid.UUID | None,
                            include_descendants: bool, status: list[MemberStatus] | None,
                            flags: list[MemberFlag] | None, search: str | None, as_of: dt.date | None,
                            order_by: MemberOrder | None, first: int | None, after: str | None) -> MemberConnection:
    from gateway.read_models import encode_cursor

    size = page_size(first)
    check_cursor(after)
    if order_by is MemberOrder.BIRTH_DATE and not info.context.pii:
        raise BadUserInput("ordering by birth date needs pii:read", field="orderBy")
    page = await info.context.read_models.member_page(
        scope=info.context.scope, unit_id=unit_id, include_descendants=include_descendants,
        statuses=[s.value for s in status] if status else None, flags=[f.value for f in flags or []],
        search=search, day=as_of, order=(order_by or MemberOrder.NAME).value, first=size, after=after)
    edges = [MemberEdge(node=member_from_row(r, info.context.pii),
                        cursor=encode_cursor(r["sort_key"], r["member_id"])) for r in page.rows]
    return MemberConnection(edges=edges, total_count=page.total,
                            page_info=PageInfo(has_next_page=page.has_next, has_previous_page=page.has_previous,
                                               start_cursor=page.start_cursor, end_cursor=page.end_cursor))


async def load_member(info: Info[GatewayContext, None], member_id: uuid.UUID) -> Member | None:
    row = await info.context.loaders.member.load(member_id)
    if row is None or not await info.context.in_scope(row["unit_id"]):
        return None
    return member_from_row(row, info.context.pii)


@strawberry.type
class MemberQueries:
    @strawberry.field(description="One member by id")
    async def member(self, info: Info[GatewayContext, None], id: strawberry.ID) -> Member | None:
        member_id = parse_id(id)
        if member_id is None:
            return None
        if _asks_for(info.selected_fields, "history"):
            # The history needs only the id: it is read beside the member instead of after it, and answered only
            # for a member found and in scope.
            history = asyncio.ensure_future(info.context.read_models.member_history(member_id))
            history.add_done_callback(_retrieved)
            info.context.histories[member_id] = history
        member = await load_member(info, member_id)
        if member is None:
            info.context.histories.pop(member_id, None)
        return member

    @strawberry.field(description="Current members (or, with `asOf`, the membership of that date)")
    async def members(
        self, info: Info[GatewayContext, None], unit_id: strawberry.ID | None = None,
        include_descendants: bool = True, status: list[MemberStatus] | None = None,
        flags: list[MemberFlag] | None = None, search: str | None = None, as_of: dt.date | None = None,
        order_by: MemberOrder | None = None, first: int | None = 50, after: str | None = None,
    ) -> MemberConnection:
        unit = require_id(unit_id, "unitId") if unit_id is not None else None
        return await member_connection(info, unit_id=unit, include_descendants=include_descendants, status=status,
                                       flags=flags, search=search, as_of=as_of, order_by=order_by, first=first,
                                       after=after)

