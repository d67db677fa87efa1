"""The lifecycle benchmark's yardstick does, path for path, what Relance's lifecycles did."""

from __future__ import annotations

from collections import Counter

from bench.bare import BareInput
from bench.lifecycle import Histories


def test_each_path_gets_a_bare_lifecycle_of_its_own_size() -> None:
    # Two paid lifecycles (6 activities, 4 timers of 5 s each) and two handed off (10
    # activities, 7 timers of 8 s each), as their histories would count them.
    h = Histories(lifecycles=4)
    h.lifecycles_by_path = Counter(paid=2, handed_off=2)
    h.activities_by_path = Counter(paid=12, handed_off=20)
    h.timers_by_path = Counter(paid=8, handed_off=14)
    h.timer_seconds_by_path = {"paid": 40.0, "handed_off": 112.0}
    h.events = Counter(ACTIVITY_TASK_SCHEDULED=32, TIMER_FIRED=22)

    assert h.bare_input("paid") == BareInput(activities=6, timers=4, timer_seconds=5.0)
    assert h.bare_input("handed_off") == BareInput(activities=10, timers=7, timer_seconds=8.0)
    # A path none of whose histories was read: the average lifecycle, 8 activities and
    # 22 / 4 = 5.5 timers (rounded to 6) sharing 152 / 4 = 38 s.
    assert h.bare_input("cancelled") == BareInput(activities=8, timers=6, timer_seconds=38 / 6)
