"""Schedules: cron, RRULE and intervals in an IANA zone, end-of-month rules,
DST and leap days, and bad input naming its field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from settlement.intents.errors import IntentError
from settlement.intents.schedule import Schedule
from settlement.intents.scheduler import plan_times
from settlement.intents.spec import IntentSpec

UTC = timezone.utc
START = datetime(2028, 1, 1, tzinfo=UTC)


def days(ts):
    return [t.astimezone(UTC).strftime("%Y-%m-%d %H:%M") for t in ts]


def test_cron_on_the_31st_skip_and_clamp_with_leap_day():
    skip = Schedule.build(cron="0 9 31 * *", timezone_name="UTC", start=START)
    clamp = Schedule.build(cron="0 9 31 * *", timezone_name="UTC", start=START, end_of_month="clamp")
    assert [d[:10] for d in days(skip.upcoming(START, 4))] == ["2028-01-31", "2028-03-31", "2028-05-31", "2028-07-31"]
    assert [d[:10] for d in days(clamp.upcoming(START, 14))] == [
        "2028-01-31", "2028-02-29", "2028-03-31", "2028-04-30", "2028-05-31", "2028-06-30", "2028-07-31",
        "2028-08-31", "2028-09-30", "2028-10-31", "2028-11-30", "2028-12-31", "2029-01-31", "2029-02-28"]


def test_rrule_clamp_matches_cron_clamp():
    r = Schedule.build(rrule="FREQ=MONTHLY;BYMONTHDAY=31;BYHOUR=9;BYMINUTE=0;BYSECOND=0", timezone_name="UTC",
                       start=START, end_of_month="clamp")
    c = Schedule.build(cron="0 9 31 * *", timezone_name="UTC", start=START, end_of_month="clamp")
    assert r.upcoming(START, 14) == c.upcoming(START, 14)
    r30 = Schedule.build(rrule="FREQ=MONTHLY;BYMONTHDAY=30", timezone_name="UTC", start=START, end_of_month="clamp")
    assert [d[:10] for d in days(r30.upcoming(START, 3))] == ["2028-01-30", "2028-02-29", "2028-03-30"]


def test_wall_time_kept_across_dst_in_the_zone():
    s = Schedule.build(cron="0 9 1 * *", timezone_name="America/New_York", start=START)
    ts = s.upcoming(START, 4)  # Jan, Feb: EST (UTC-5); Apr: EDT (UTC-4)
    assert days(ts) == ["2028-01-01 14:00", "2028-02-01 14:00", "2028-03-01 14:00", "2028-04-01 13:00"]


def test_spring_gap_shifts_forward_and_fall_back_runs_once():
    # 2028-03-12: 02:00 -> 03:00 in New York; 2028-11-05: 02:00 -> 01:00.
    s = Schedule.build(cron="30 2 * * *", timezone_name="America/New_York", start=datetime(2028, 3, 11, tzinfo=UTC))
    ts = s.upcoming(datetime(2028, 3, 11, tzinfo=UTC), 3)
    assert days(ts) == ["2028-03-11 07:30", "2028-03-12 07:30", "2028-03-13 06:30"]
    h = Schedule.build(cron="30 1 * * *", timezone_name="America/New_York", start=datetime(2028, 11, 4, tzinfo=UTC))
    ts = h.upcoming(datetime(2028, 11, 4, tzinfo=UTC), 3)
    assert days(ts) == ["2028-11-04 05:30", "2028-11-05 05:30", "2028-11-06 06:30"]
    hourly = Schedule.build(cron="0 * * * *", timezone_name="America/New_York", start=datetime(2028, 3, 12, 5, tzinfo=UTC))
    ts = hourly.upcoming(datetime(2028, 3, 12, 5, tzinfo=UTC), 4)
    assert len(set(ts)) == 4 and ts == sorted(ts)


def test_interval_end_and_times_from_a_point():
    s = Schedule.build(interval_seconds=3600, timezone_name="Europe/Zurich", start=START,
                       end=START + timedelta(hours=3))
    assert days(s.times(START + timedelta(minutes=1))) == ["2028-01-01 01:00", "2028-01-01 02:00", "2028-01-01 03:00"]
    assert s.next_after(START) == START + timedelta(hours=1)


@pytest.mark.parametrize("kwargs,field", [
    ({"cron": "61 * * * *"}, "cron"),
    ({"cron": "* * *"}, "cron"),
    ({"rrule": "FREQ=SOMETIMES"}, "rrule"),
    ({"rrule": "FREQ=DAILY;UNTIL=20290101T000000Z"}, "rrule"),
    ({"interval_seconds": 5}, "interval_seconds"),
    ({"cron": "0 9 * * *", "rrule": "FREQ=DAILY"}, "schedule"),
    ({"cron": "0 9 * * *", "timezone_name": "Mars/Olympus"}, "timezone"),
])
def test_bad_schedule_names_its_field(kwargs, field):
    kwargs = {"timezone_name": "UTC", "start": START, **kwargs}
    with pytest.raises(IntentError) as e:
        Schedule.build(**kwargs)
    assert e.value.field == field


BASE = {"name": "rent", "chain": "anvil", "asset": "native", "to": "0x" + "11" * 20, "amount": "5",
        "cron": "0 9 1 * *", "timezone": "UTC", "start": "2028-01-01T00:00:00Z"}


@pytest.mark.parametrize("change,field", [
    ({"amount": "-1"}, "amount"), ({"amount": "1.5"}, "amount"), ({"amount": 0}, "amount"),
    ({"buffer": "x"}, "buffer"), ({"timezone": "Nowhere/City"}, "timezone"), ({"cron": "bad"}, "cron"),
    ({"window_start": "25:00", "window_end": "10:00"}, "window_start"), ({"window_start": "09:00"}, "window_end"),
    ({"missed_run_policy": "sometimes"}, "missed_run_policy"), ({"start": "yesterday"}, "start"),
    ({"surprise": 1}, "surprise"), ({"amount_mode": "above_floor", "amount": None}, "floor"),
])
def test_bad_spec_names_its_field(change, field):
    data = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(IntentError) as e:
        IntentSpec.parse(data)
    assert e.value.field == field, e.value


def test_missed_run_policies():
    now = datetime(2028, 6, 1, 12, tzinfo=UTC)
    times = [now - timedelta(days=d) for d in (4, 3, 2, 1)] + [now - timedelta(seconds=10)]

    def plan(**kw):
        spec = IntentSpec.parse({**BASE, "grace_seconds": 60, **kw})
        return [(p[1], p[2]) for p in plan_times(spec, times, now)]

    assert plan(missed_run_policy="skip") == [("skipped", False)] * 4 + [("due", False)]
    assert plan(missed_run_policy="latest") == [("skipped", False)] * 4 + [("due", False)]
    assert plan(missed_run_policy="latest")[:4] == [("skipped", False)] * 4
    late_only = times[:4]
    spec = IntentSpec.parse({**BASE, "grace_seconds": 60, "missed_run_policy": "latest"})
    assert [p[1] for p in plan_times(spec, late_only, now)] == ["skipped"] * 3 + ["due"]
    assert plan(missed_run_policy="all", max_catch_up=2) == [("skipped", False)] * 2 + [("due", True)] * 2 + [("due", False)]
    assert plan(missed_run_policy="all", catch_up_approval_above="4")[:4] == [("awaiting_approval", True)] * 4
