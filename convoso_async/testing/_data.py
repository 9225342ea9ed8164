"""Deterministic synthetic callbacks: same arguments and seed, same store, byte for byte.

Everything is drawn from one ``random.Random(seed)`` (never the global RNG), in a fixed
order, so a seed names a data set. Shape of the data:

* callback times fall between 07:00 and 20:59 on the days of ``[start_date, start_date +
  days)``; ``hot_days`` get exactly the count asked for, the remaining records are spread
  evenly over the other days of the range (earlier days take the odd ones);
* ``created_at`` is 1 hour to 14 days before the callback time, ``modified_at`` between
  creation and one day after the callback; ids increase with ``created_at``, like the
  auto-increment ids of the real service, so id order differs from result order;
* a few dozen agents, eight campaigns of three lists each; a lead always sits in the list
  :meth:`CallbackStore.list_for_lead` says, and leads carry one to a few callbacks;
* stages weighted COMPLETED 40 / PENDING 30 / PAST_DUE 20 / DISMISSED 10, recipients
  system 55 / personal 45.

``live_dialect=True`` adds the live API's drift on top: about 2% of stages become
``MISSED``, 40% of dismissed ones are spelled ``Dismissed`` and 30% of past-due ones
``PASTDUE``; 10% of system recipients are spelled ``System`` and 2% of all recipients are
``USERONLY``; 10% of callback times use the 24-hour ``YYYY-MM-DD HH:MM:SS`` form and 5% of
``modified_at`` are null.
"""

from __future__ import annotations

import random
from array import array
from collections.abc import Callable, Mapping
from datetime import date, datetime

from ._store import (
    COMPLETED,
    DISMISSED,
    MAX_ROWS,
    MINUTES_PER_DAY,
    MISSED,
    NULL_TIME,
    PAST_DUE,
    PENDING,
    SP_DISMISSED_LIVE,
    SP_PASTDUE_LIVE,
    SP_SYSTEM_CAPITALISED,
    USERONLY,
    CallbackStore,
    CallList,
    Campaign,
    User,
)

FIRST_NAMES = (
    "Jane", "John", "Maria", "David", "Aisha", "Carlos", "Emily", "Kenji", "Fatima", "Liam",
    "Sofia", "Noah", "Priya", "Lucas", "Olivia", "Mateo", "Chloe", "Ethan", "Zara", "Omar",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Doe", "Garcia", "Johnson", "Khan", "Nguyen", "Brown", "Tanaka", "Rossi", "Miller",
    "Lopez", "Wilson", "Patel", "Martin", "Clark", "Silva", "Walker", "Young", "Hall", "Adams",
)  # fmt: skip
CAMPAIGNS = (
    ("Sales Campaign", "OUTBOUND"),
    ("Renewals", "OUTBOUND"),
    ("Win-back", "OUTBOUND"),
    ("Solar Outreach", "BLENDED"),
    ("Medicare Enrollment", "BLENDED"),
    ("Auto Insurance Quotes", "OUTBOUND"),
    ("Debt Relief", "BLENDED"),
    ("Customer Care Follow-up", "INBOUND"),
)
COMMENTS = (
    "",
    "Customer requested callback",
    "Follow-up on previous call",
    "Call back after 5pm",
    "Wants a quote for spouse too",
    "Left voicemail, try again",
    "Interested, needs to check budget",
    "Asked for a Spanish-speaking agent",
    "Send documents before the call",
    "Busy at work, prefers mornings",
    "Warm transfer from inbound",
    "Promised decision by Friday",
)
N_USERS = 40
LISTS_PER_CAMPAIGN = 3
LEAD_BASE = 5_000_000
STAGE_WEIGHTS = ((COMPLETED, 40), (PENDING, 30), (PAST_DUE, 20), (DISMISSED, 10))


def reference_tables(rng: random.Random) -> tuple[list[User], list[Campaign], list[CallList]]:
    """Agents, campaigns and lists (deterministic for the RNG's state)."""
    pairs = rng.sample([(f, last) for f in FIRST_NAMES for last in LAST_NAMES], N_USERS)
    users = [
        User(id=20_001 + i, name=f"{first} {last}", email=f"{first}.{last}@company.com".lower())
        for i, (first, last) in enumerate(pairs)
    ]
    campaigns = [Campaign(id=111 + i, name=n, type=t) for i, (n, t) in enumerate(CAMPAIGNS)]
    lists = []
    for i in range(len(campaigns) * LISTS_PER_CAMPAIGN):
        owner, number = divmod(i, LISTS_PER_CAMPAIGN)
        lists.append(
            CallList(id=333 + i, name=f"{campaigns[owner].name} #{number + 1}", campaign=owner)
        )
    return users, campaigns, lists


def day_counts(
    records: int, start_date: date, days: int, hot_days: Mapping[date, int] | None
) -> list[tuple[int, int]]:
    """(date ordinal, number of callbacks) per day, in date order."""
    if records < 0 or days < 1:
        raise ValueError("records must be >= 0 and days >= 1")
    if records > MAX_ROWS:
        # Checked before any record is drawn: the store would only refuse them once built,
        # minutes and gigabytes later.
        raise ValueError(f"the emulator holds at most {MAX_ROWS} callbacks, not {records}")
    hot = {d.toordinal(): n for d, n in (hot_days or {}).items()}
    if any(n < 0 for n in hot.values()):
        raise ValueError("hot_days counts must be >= 0")
    rest = records - sum(hot.values())
    if rest < 0:
        raise ValueError("hot_days ask for more callbacks than records")
    first = start_date.toordinal()
    plain = [o for o in range(first, first + days) if o not in hot]
    if rest and not plain:
        raise ValueError("hot_days cover the whole range: nowhere to put the other records")
    counts = dict(hot)
    if plain:
        base, extra = divmod(rest, len(plain))
        for i, ordinal in enumerate(plain):
            counts[ordinal] = base + (i < extra)
    return sorted((o, n) for o, n in counts.items() if n)


def build_store(
    records: int,
    *,
    seed: int,
    start_date: date,
    days: int,
    hot_days: Mapping[date, int] | None = None,
    live_dialect: bool = False,
    clock: Callable[[], datetime] = datetime.now,
) -> CallbackStore:
    """A store holding ``records`` synthetic callbacks (see the module docstring)."""
    rng = random.Random(seed)
    users, campaigns, lists = reference_tables(rng)
    store = CallbackStore(
        users=users,
        campaigns=campaigns,
        lists=lists,
        comments=COMMENTS,
        live_dialect=live_dialect,
        clock=clock,
    )
    counts = day_counts(records, start_date, days, hot_days)
    if not records:
        return store
    rand = rng.random
    # Columns in callback-time order ("position"); re-ordered by creation below.
    minute: array[int] = array("q")
    for ordinal, count in counts:
        base = ordinal * MINUTES_PER_DAY + 420
        minute.extend(sorted([base + int(rand() * 840) for _ in range(count)]))
    stage = bytearray(
        rng.choices([s for s, _ in STAGE_WEIGHTS], [w for _, w in STAGE_WEIGHTS], k=records)
    )
    recipient = bytearray(rng.choices((0, 1), (55, 45), k=records))
    n_leads = max(1, records * 2 // 3)
    lead = array("q", [LEAD_BASE + int(rand() * n_leads) for _ in range(records)])
    user = array("i", [int(rand() * N_USERS) for _ in range(records)])
    comment = array("I", [int(rand() * len(COMMENTS)) for _ in range(records)])
    created: array[int] = array("q")
    modified: array[int] = array("q")
    for m in minute:
        due = m * 60
        made = due - 3600 - int(rand() * (14 * 86_400 - 3600))
        created.append(made)
        modified.append(made + int(rand() * (due + 86_400 - made)))
    clock24 = bytearray(records)
    if live_dialect:
        _drift(rng, stage, recipient, clock24, modified)
    status = bytearray(1 if s == DISMISSED else 0 for s in stage)
    # Ids follow creation: row r is the r-th created callback.
    order = sorted(range(records), key=created.__getitem__)
    store.load(
        minute=array("q", [minute[p] for p in order]),
        created=array("q", [created[p] for p in order]),
        modified=array("q", [modified[p] for p in order]),
        lead=array("q", [lead[p] for p in order]),
        user=array("i", [user[p] for p in order]),
        stage_spelling=bytearray([stage[p] for p in order]),
        recipient_spelling=bytearray([recipient[p] for p in order]),
        status=bytearray([status[p] for p in order]),
        clock24=bytearray([clock24[p] for p in order]),
        comment=array("I", [comment[p] for p in order]),
    )
    return store


def _drift(
    rng: random.Random,
    stage: bytearray,
    recipient: bytearray,
    clock24: bytearray,
    modified: array[int],
) -> None:
    """Turn canonical codes into the live API's spellings, in place (see module doc)."""
    rand = rng.random
    for i in range(len(stage)):
        s = stage[i]
        x = rand()
        if x < 0.02:
            stage[i] = MISSED
        elif s == DISMISSED and x < 0.42:
            stage[i] = SP_DISMISSED_LIVE
        elif s == PAST_DUE and x < 0.32:
            stage[i] = SP_PASTDUE_LIVE
        x = rand()
        if x < 0.02:
            recipient[i] = USERONLY
        elif recipient[i] == 0 and x < 0.12:
            recipient[i] = SP_SYSTEM_CAPITALISED
        x = rand()
        clock24[i] = x < 0.10
        if x > 0.95:
            modified[i] = NULL_TIME
