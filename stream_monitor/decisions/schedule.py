"""Schedule slots: the latest slot at or before a time, for an interval or a cron expression (UTC).

A schedule is a sequence of slots. Interval slots are multiples of the interval
since the Unix epoch (so every instance and every replay agree); cron slots come from
``croniter`` in UTC. The decision layer remembers the last slot it handled: on the
first tick it only arms (a service started at 10:00 does not retrain for the 03:00
slot it never saw); afterwards every tick that reaches a new slot fires once for the
newest slot reached, and says how many it skipped (a downtime over several slots
gives one retrain, not a burst).
"""
from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

from stream_monitor.decisions.config import ScheduleConfig


def latest_slot(schedule: ScheduleConfig, now: datetime) -> datetime:
    """The newest slot <= now."""
    now = now.astimezone(UTC)
    if schedule.every_seconds is not None:
        step = schedule.every_seconds
        ts = now.timestamp()
        return datetime.fromtimestamp(ts - ts % step, tz=UTC)
    assert schedule.cron is not None
    on_minute = now.replace(second=0, microsecond=0)
    if on_minute == now and croniter.match(schedule.cron, now):
        return now
    prev = croniter(schedule.cron, now).get_prev(datetime)
    return prev.astimezone(UTC)


def slots_between(schedule: ScheduleConfig, after: datetime, until: datetime, cap: int = 10_000) -> int:
    """How many slots lie in (after, until] (capped, for the 'skipped' count in the evidence)."""
    if until <= after:
        return 0
    if schedule.every_seconds is not None:
        return int((latest_slot(schedule, until).timestamp() - latest_slot(schedule, after).timestamp())
                   // schedule.every_seconds)
    assert schedule.cron is not None
    it = croniter(schedule.cron, after)  # get_next is strictly after `after`
    count = 0
    while count < cap:
        nxt = it.get_next(datetime).astimezone(UTC)
        if nxt > until:
            break
        count += 1
    return count
