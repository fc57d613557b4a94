"""What both CRM pulls share: a cursor on the CRM's modification time that neither loses nor
repeats records sharing one timestamp, and the mapped fields read back.

A position is a time (epoch milliseconds) and the ids already applied at exactly that time.
A page asks the CRM for records modified at or after the time (`>=`: one modified in the
same millisecond as the last one applied is not lost) and leaves out those ids (so neither
is it applied twice, nor does the pull loop on them). A record changed again later moves on
in the CRM's order and is met again, as it should be."""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class Position:
    """Where a stream of one kind of record stands."""

    since: int = 0  # epoch milliseconds
    seen: set[str] = field(default_factory=set)  # ids applied at exactly `since`

    def is_new(self, record_id: str, modified: int) -> bool:
        return modified > self.since or (modified == self.since and record_id not in self.seen)

    def advanced(self, records: Iterable[tuple[str, int]]) -> "Position":
        """The position once these records (id, modified ms), in the CRM's order, are applied."""
        since, seen = self.since, set(self.seen)
        for record_id, modified in records:
            if modified > since:
                since, seen = modified, set()
            if modified == since:
                seen.add(record_id)
        return Position(since, seen)

    def as_json(self) -> dict[str, Any]:
        return {"since": self.since, "seen": sorted(self.seen)}

    @classmethod
    def from_json(cls, value: Any) -> "Position":
        if not isinstance(value, dict):
            return cls()
        return cls(int(value.get("since") or 0), {str(i) for i in value.get("seen") or []})


def positions_read(cursor: str | None) -> dict[str, Position]:
    """The positions a stored cursor holds, by stream ({} for none, or an unreadable one)."""
    if not cursor:
        return {}
    try:
        value = json.loads(cursor)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {name: Position.from_json(position) for name, position in value.items()}


def positions_text(positions: dict[str, Position]) -> str:
    return json.dumps({name: p.as_json() for name, p in positions.items()}, sort_keys=True)


def milliseconds(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def parsed_time(value: Any) -> datetime | None:
    """An ISO 8601 time as the CRMs write it (Z, +0000 or +00:00), in UTC; None if not one."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    if len(text) > 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"  # +0000 -> +00:00
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def pulled_mappings(
    field_mappings: list[dict[str, str]], defaults: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """(ours, theirs) of the mappings a pull reads: "pull" or "both"; the defaults when the
    connection maps no field at all (as the push does)."""
    if not field_mappings:
        return list(defaults)
    return [
        (mapping["field"], mapping["remote"])
        for mapping in field_mappings
        if mapping.get("direction") in ("pull", "both")
    ]
