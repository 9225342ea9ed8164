"""Helpers shared by the emulator tests: a brute-force oracle over ``emu.store``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

from convoso_async.testing import ConvosoEmulator
from convoso_async.testing._store import ID_BASE

Post = Callable[..., Any]
"""``await post(emu, endpoint, **fields)`` -> (HTTP status, parsed JSON body)."""


def callback_moment(text: str) -> datetime:
    """Parse either ``callback_time`` form (12-hour, or live 24-hour with seconds)."""
    if text.endswith(("AM", "PM")):
        return datetime.strptime(text, "%Y-%m-%d %I:%M %p")
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def expected_ids(
    emu: ConvosoEmulator,
    *,
    start: date | None = None,
    end: date | None = None,
    stages: Iterable[str] | None = None,
    recipients: Iterable[str] | None = None,
    **exact: str,
) -> list[str]:
    """Brute-force oracle: matching ids in (callback_time, numeric id) order."""
    stage_set = {s.upper() for s in stages} if stages is not None else None
    recipient_set = {r.lower() for r in recipients} if recipients is not None else None
    user_id = exact.pop("user_id", None)
    matched = []
    # Walk every row ever created (not the store's own order index), to stay independent.
    for row in range(len(emu.store.alive)):
        record = emu.store.get(ID_BASE + row)
        if record is None:
            continue
        moment = callback_moment(record["callback_time"])
        if start is not None and moment.date() < start:
            continue
        if end is not None and moment.date() > end:
            continue
        if stage_set is not None and record["stage"].upper() not in stage_set:
            continue
        if recipient_set is not None and record["recipient"].lower() not in recipient_set:
            continue
        if any(record[k] != v for k, v in exact.items()):
            continue
        if user_id is not None and str(emu.store.user_id_of(record["id"])) != user_id:
            continue
        matched.append((moment, int(record["id"]), record["id"]))
    return [cid for _, _, cid in sorted(matched)]
