"""Recorded sample bodies shared by the unit tests: the vendor reference's own example;
and ``drain``, which the tests use to iterate a stream of callbacks."""

from __future__ import annotations

from collections.abc import AsyncIterable
from types import MappingProxyType

from convoso_async import Callback

#: The first record of the reference page's example response, as the vendor documents it.
REFERENCE_RECORD = MappingProxyType(
    {
        "id": "657",
        "lead_id": "12345",
        "list_id": "333",
        "campaign_id": "111",
        "status": "ACTIVE",
        "created_at": "2026-03-03 10:00:00",
        "callback_time": "2026-03-05 02:30 PM",
        "modified_at": "2026-03-03 14:30:00",
        "user": "Jane Smith",
        "recipient": "system",
        "comments": "Customer requested callback",
        "stage": "PENDING",
        "user_name": "jane.smith@company.com",
        "campaign_name": "Sales Campaign",
    }
)

#: The documented record fields, in the reference's order.
API_FIELDS: tuple[str, ...] = tuple(REFERENCE_RECORD)


async def drain(stream: AsyncIterable[Callback], into: list[str] | None = None) -> None:
    """Iterate to the end (or the first error), keeping the ids in ``into``."""
    async for callback in stream:
        if into is not None:
            into.append(callback.id)
