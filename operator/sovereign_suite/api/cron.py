"""Cron schedules (a backup's ``schedule``): checked field by field, and the longest wait between two runs.

The syntax is the five fields Kubernetes' CronJob accepts (minute, hour, day of month, month, day of week; the
robfig/cron standard parser it uses, kubernetes pkg/apis/batch/validation, v1.34): numbers, ``*``, ranges
``a-b``, steps ``/n``, lists ``a,b`` and the three-letter month and day names. Not accepted here: the
``@daily``-style macros and a ``TZ=``/``CRON_TZ=`` prefix (the API server refuses the prefix in
``spec.schedule``; a time zone belongs in ``spec.timeZone``), so that one string means the same thing to the
CronJob, to CloudNativePG's ScheduledBackup (which gets a leading seconds field ``0``) and to the alert.

``longest_gap`` is the longest time between two consecutive runs over a whole (leap) year: the alert says a
backup is late when the last success is older than twice that.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
NAMES = {
    3: {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                          "dec"))},
    4: {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
}
MAX_LENGTH = 120


def _value(text: str, index: int) -> int:
    low = text.lower()
    if low in NAMES.get(index, {}):
        return NAMES[index][low]
    if not text.isdigit():
        raise ValueError(f"{FIELDS[index][0]}: {text!r} is not a number" + (" or a name" if index in NAMES else ""))
    return int(text)


def _field(text: str, index: int) -> frozenset[int]:
    name, lo, hi = FIELDS[index]
    out: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{name}: step {step_text!r} is not a positive number")
            step = int(step_text)
        if base == "*":
            first, last = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, index), _value(b, index)
        else:
            first = _value(base, index)
            last = hi if slash else first
        for v in (first, last):
            if not lo <= v <= hi:
                raise ValueError(f"{name}: {v} is outside {lo}-{hi}")
        if first > last:
            raise ValueError(f"{name}: range {base} goes backwards")
        out.update(range(first, last + 1, step))
    if index == 4 and 7 in out:  # 7 is Sunday too
        out = (out - {7}) | {0}
    return frozenset(out)


def parse(schedule: str) -> tuple[frozenset[int], ...]:
    """The set of values of each field; ValueError with the field's name when the schedule is not valid."""
    parts = schedule.split()
    if len(parts) != 5 or schedule != schedule.strip() or "  " in schedule:
        raise ValueError("expected five fields separated by single spaces (minute hour day-of-month month "
                         "day-of-week), e.g. '0 2 * * *'")
    return tuple(_field(p, i) for i, p in enumerate(parts))


def check(schedule: str) -> str:
    """For a pydantic AfterValidator: the schedule unchanged, or ValueError. At least one run a year."""
    if longest_gap(schedule) is None:
        raise ValueError(f"{schedule!r} never runs (no day matches)")
    return schedule


@lru_cache(maxsize=256)
def longest_gap(schedule: str) -> int | None:
    """Seconds of the longest wait between two runs (None: it never runs). Cron's rule for days: when both day
    of month and day of week are restricted, a day matches either (a '*' field restricts nothing)."""
    minutes, hours, doms, months, dows = parse(schedule)
    dom_any, dow_any = schedule.split()[2].startswith("*"), schedule.split()[4].startswith("*")
    day_minutes = sorted(h * 60 + m for h in hours for m in minutes)
    start = dt.date(2024, 1, 1)  # a leap year: 29 February schedules are seen
    runs: list[int] = []
    for d in range(366 * 2):  # two years: the gap across New Year and schedules of one day a year
        day = start + dt.timedelta(days=d)
        dom_ok, dow_ok = day.day in doms, (day.isoweekday() % 7) in dows
        if day.month not in months:
            continue
        if dom_any or dow_any:
            ok = dom_ok and dow_ok
        else:
            ok = dom_ok or dow_ok
        if ok:
            base = d * 1440
            runs.extend(base + m for m in day_minutes)
    if not runs:
        return None
    if len(runs) == 1:
        return 366 * 86400
    return max(b - a for a, b in zip(runs, runs[1:])) * 60
