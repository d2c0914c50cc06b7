"""Schedules of intents: cron (croniter), RFC 5545 RRULE (dateutil) or a fixed
interval, always in an IANA time zone (zoneinfo). Pure functions, no I/O.

Cron and RRULE times are wall-clock times of the intent's zone, turned into
instants like this:
- a wall time that does not exist (the spring-forward gap) runs at the same
  instant zoneinfo gives for fold=0, i.e. shifted forward by the gap
  (02:30 on a 02:00->03:00 day runs at 03:30); if that instant was already
  produced by another wall time it is produced once;
- a wall time that exists twice (fall back) runs once, at its first instant.
An interval counts seconds from the start instant and knows no wall time.

End of month, for a day of month of 29, 30 or 31 (cron's day field or a
single RRULE BYMONTHDAY): `skip` leaves out months without that day (the
cron/RRULE meaning); `clamp` runs on the month's last day instead.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from dateutil.rrule import rrulestr

from .errors import IntentError

UTC = timezone.utc
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")


def zone(name: str, field: str = "timezone") -> ZoneInfo:
    if not isinstance(name, str) or not name or name.startswith("/") or ".." in name:
        raise IntentError(field, "must be an IANA time zone name such as Europe/Zurich")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise IntentError(field, f"{name!r} is not an IANA time zone") from None


def to_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """A naive wall time of `tz` as an aware UTC instant (the rules above)."""
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC)


def to_wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def _last_day(d: datetime) -> int:
    return calendar.monthrange(d.year, d.month)[1]


@dataclass(frozen=True)
class Schedule:
    kind: str  # cron | rrule | interval
    expr: str | None
    interval_seconds: int | None
    tz: ZoneInfo
    start: datetime  # aware
    end: datetime | None
    end_of_month: str = "skip"
    clamp_day: int | None = None  # set when end_of_month = clamp applies

    @classmethod
    def build(cls, *, cron: str | None = None, rrule: str | None = None, interval_seconds: int | None = None,
              timezone_name: str, start: datetime, end: datetime | None = None,
              end_of_month: str = "skip", trusted: bool = False) -> Schedule:
        given = [n for n, v in (("cron", cron), ("rrule", rrule), ("interval_seconds", interval_seconds))
                 if v is not None]
        if len(given) != 1:
            raise IntentError("schedule", "give exactly one of cron, rrule, interval_seconds")
        tz = zone(timezone_name)
        if start.tzinfo is None:
            raise IntentError("start", "must carry a UTC offset")
        if end is not None and (end.tzinfo is None or end <= start):
            raise IntentError("end", "must carry a UTC offset and be after start")
        if end_of_month not in ("skip", "clamp"):
            raise IntentError("end_of_month", "must be skip or clamp")
        start, end = start.astimezone(UTC), end.astimezone(UTC) if end else None
        if interval_seconds is not None:
            if not isinstance(interval_seconds, int) or isinstance(interval_seconds, bool) or not (
                    60 <= interval_seconds <= 10 * 366 * 86400):
                raise IntentError("interval_seconds", "must be an integer from 60 to ten years")
            return cls("interval", None, interval_seconds, tz, start, end, end_of_month)
        if cron is not None:
            return cls._cron(cron, tz, start, end, end_of_month, trusted)
        return cls._rrule(rrule, tz, start, end, end_of_month)

    @classmethod
    def _cron(cls, expr: str, tz, start, end, eom, trusted: bool = False) -> Schedule:
        fields = expr.split() if isinstance(expr, str) else []
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            raise IntentError("cron", "must be a 5-field cron expression (minute hour day month weekday)")
        if not trusted and not croniter.is_valid(expr):
            raise IntentError("cron", f"{expr!r} is not a valid cron expression")
        clamp = None
        if eom == "clamp" and fields[2].isdigit() and 29 <= int(fields[2]) <= 31:
            clamp = int(fields[2])
            expr = " ".join(fields[:2] + [f"28-{clamp}"] + fields[3:])
        s = cls("cron", expr, None, tz, start, end, eom, clamp)
        if not trusted and end is None and next(s.times(start), None) is None:
            raise IntentError("cron", f"{expr!r} never runs")
        return s

    @classmethod
    def _rrule(cls, text: str, tz, start, end, eom) -> Schedule:
        if not isinstance(text, str) or not text.strip() or len(text) > 1000:
            raise IntentError("rrule", "must be an RFC 5545 RRULE such as FREQ=MONTHLY;BYMONTHDAY=1")
        body = text.strip()
        if body.upper().startswith("RRULE:"):
            body = body[6:]
        parts = [p for p in body.split(";") if p]
        if any(p.upper().startswith(("DTSTART", "UNTIL")) for p in parts):
            raise IntentError("rrule", "give the start and end as the intent's start and end, not in the RRULE")
        if any(p.upper().replace(" ", "") == "FREQ=SECONDLY" for p in parts):
            raise IntentError("rrule", "FREQ=SECONDLY is too frequent for payouts (at most once a minute)")
        clamp = None
        for i, p in enumerate(parts):
            k, _, v = p.partition("=")
            if k.upper() == "BYMONTHDAY" and eom == "clamp" and v.isdigit() and 29 <= int(v) <= 31:
                clamp = int(v)
                parts[i] = "BYMONTHDAY=" + ",".join(str(d) for d in range(28, clamp + 1))
        body = ";".join(parts)
        try:
            rrulestr(body, dtstart=to_wall(start, tz))
        except (ValueError, TypeError) as exc:
            raise IntentError("rrule", f"not a valid RRULE: {exc}") from None
        return cls("rrule", body, None, tz, start, end, eom, clamp)

    def _keep(self, wall: datetime) -> bool:
        if self.clamp_day is None:
            return True
        return wall.day == self.clamp_day or (wall.day < self.clamp_day and wall.day == _last_day(wall))

    def _walls(self, after_wall: datetime) -> Iterator[datetime]:
        """Wall times strictly after `after_wall` (naive, the intent's zone)."""
        if self.kind == "cron":
            it = croniter(self.expr, after_wall)
            while True:
                try:
                    wall = it.get_next(datetime)
                except (CroniterBadDateError, OverflowError, ValueError):  # nothing further (or past 9999)
                    return
                yield wall
        else:
            rule = rrulestr(self.expr, dtstart=to_wall(self.start, self.tz))
            try:
                yield from rule.xafter(after_wall, inc=False)
            except (OverflowError, ValueError):  # past year 9999: the schedule ends
                return

    def times(self, at_or_after: datetime) -> Iterator[datetime]:
        """Scheduled instants (aware, UTC) >= at_or_after, within [start, end], in order."""
        lo = max(at_or_after.astimezone(UTC), self.start)
        if self.kind == "interval":
            step = timedelta(seconds=self.interval_seconds)
            k = max(0, -((self.start - lo) // step))  # ceil((lo - start) / step)
            t = self.start + k * step
            while self.end is None or t <= self.end:
                yield t
                try:
                    t += step
                except OverflowError:  # past year 9999: the schedule ends
                    return
            return
        last = None
        # One hour back covers a fall-back repeat and a gap shift; instants below lo are dropped.
        try:
            first = to_wall(lo, self.tz) - timedelta(hours=1, seconds=1)
        except OverflowError:
            return
        for wall in self._walls(first):
            if not self._keep(wall):
                continue
            try:
                t = to_instant(wall, self.tz)
            except OverflowError:
                return
            if t < lo or (last is not None and t <= last):
                continue
            if self.end is not None and t > self.end:
                return
            last = t
            yield t

    def next_after(self, t: datetime) -> datetime | None:
        return next(self.times(t + timedelta(microseconds=1)), None)

    def upcoming(self, t: datetime, n: int) -> list[datetime]:
        out = []
        for x in self.times(t):
            out.append(x)
            if len(out) >= n:
                break
        return out
