"""The typed records a search returns, and the two enums of the API.

The classes are frozen and slotted: records are shared across tasks and held by the
hundred thousand in exports, so they must be immutable and small.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Stage(enum.StrEnum):
    """Where a callback is in its life. Equal to its wire string (``Stage.PENDING == "PENDING"``).

    Lookup is forgiving, as the live API's spelling drifts: ``Stage("pending")``,
    ``Stage("Dismissed")`` and ``Stage("PASTDUE")`` all find their member.
    """

    COMPLETED = "COMPLETED"
    PAST_DUE = "PAST_DUE"
    PENDING = "PENDING"
    DISMISSED = "DISMISSED"

    @classmethod
    def _missing_(cls, value: object) -> Stage | None:
        if isinstance(value, str):
            return _STAGE_ALIASES.get(value.strip().upper().replace("-", "_").replace(" ", "_"))
        return None


_STAGE_ALIASES = {m.value: m for m in Stage} | {"PASTDUE": Stage.PAST_DUE}


class Recipient(enum.StrEnum):
    """Who a callback is for. Equal to the record's wire string (``Recipient.SYSTEM == "system"``).

    Lookup ignores case. Search filters are sent as ``System``/``Personal`` and
    insert/update as ``system``/``personal``, as the vendor documents; the client does that.
    """

    SYSTEM = "system"
    PERSONAL = "personal"

    @classmethod
    def _missing_(cls, value: object) -> Recipient | None:
        if isinstance(value, str):
            lowered = value.strip().lower()
            for member in cls:
                if member.value == lowered:
                    return member
        return None

    @property
    def filter_value(self) -> str:
        """The spelling the search endpoint documents for its filter: ``System``/``Personal``."""
        return self.value.capitalize()


@attrs.frozen(slots=True, weakref_slot=False)
class Callback:
    """One scheduled callback, as ``callbacks/search`` returns it.

    Field names are the API's. Times are ``datetime`` (naive, as the API sends local times
    without a zone, unless the server sent an ISO 8601 offset) or ``None`` when the server
    sent nothing, ``null``, an empty string or ``0000-00-00 00:00:00``. ``stage`` and
    ``recipient`` are enum members when recognised and the raw string otherwise, so a
    value the vendor adds tomorrow is kept rather than fatal. Fields the documentation
    does not list land in ``extra``, untouched, so an export loses nothing. Records
    compare by every field; the hash leaves ``extra`` out (a mapping is not hashable).
    """

    id: str
    lead_id: str | None = None
    list_id: str | None = None
    campaign_id: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    callback_time: datetime | None = None
    modified_at: datetime | None = None
    user: str | None = None
    recipient: Recipient | str | None = None
    comments: str | None = None
    stage: Stage | str | None = None
    user_name: str | None = None
    campaign_name: str | None = None
    extra: Mapping[str, Any] = attrs.field(default=_EMPTY, hash=False)

    # attrs' own pair would hand pickle ``extra`` as the mapping proxy, which it cannot
    # take: the record then failed pickle and deepcopy (a process pool, a cache). Written
    # here, attrs leaves them be; ``extra`` travels as a dict and is read-only again after.
    def __getstate__(self) -> dict[str, Any]:
        state = {name: getattr(self, name) for name in CALLBACK_FIELDS}
        state["extra"] = dict(self.extra)
        return state

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        for name in CALLBACK_FIELDS:
            object.__setattr__(self, name, state[name])
        extra = state["extra"]
        object.__setattr__(self, "extra", MappingProxyType(dict(extra)) if extra else _EMPTY)


#: The documented record fields, in the API's order.
CALLBACK_FIELDS: tuple[str, ...] = tuple(
    a.name for a in attrs.fields(Callback) if a.name != "extra"
)


@attrs.frozen(slots=True)
class CallbackPage:
    """One page of ``callbacks/search``: where it starts, its size, and the server's total.

    ``total`` counts every record matching the filters, not just this page.
    """

    offset: int
    limit: int
    total: int
    results: tuple[Callback, ...]

    def __repr__(self) -> str:
        # The records are counted, not shown: 5000 of them would make a log line or a
        # traceback megabytes long. Each one's own repr shows its fields.
        return (
            f"CallbackPage(offset={self.offset!r}, limit={self.limit!r}, "
            f"total={self.total!r}, results=<{len(self.results)} Callback>)"
        )

    @property
    def next_offset(self) -> int:
        """The offset of the record just past this page."""
        return self.offset + len(self.results)
