#!/usr/bin/python3
"""Integration: campaigns as fleets run them (issue 16, the engine half; docs/task-engine.md):
timeouts from the engine's timer heap, recomputed after a broker restart; waves promoted
on success, by hand, gated by approval, aborted on errors without touching the next
wave; pause and resume. Real broker, python vehicles (test_shadow.ShadowCar); a minute
of timeout_min is plugin_opt_task_minute_ms, so nothing sleeps."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
import test_campaign as tc  # noqa: E402  (module import: its cases do not run here)
import test_tasks  # noqa: E402
from test_shadow import ShadowCar, update  # noqa: E402

vehicle, delta, report = test_tasks.vehicle, tc.delta, tc.report


class CampaignCase(test_tasks.TaskCase):
    car, counts, wait_counts = tc.Campaign.car, tc.Campaign.counts, tc.Campaign.wait_counts

    def bounce(self):
        """Restarts the broker; the old admin client is closed first, or its automatic
        reconnect would take the new one's client id over."""
        self.a.close()
        self.b.restart()
        self.a = self.admin(self.b, nodelay=True)


class Timers(CampaignCase):

    def test_timeout_survives_restart(self):
        """A vehicle notified, then the broker restarts: its timeout comes from the stored
        execution (timers are recomputed at load), the vehicle that keeps reporting does
        not time out meanwhile."""
        self.start(task_minute_ms=400)
        self.catalog()
        self.ok("upsertVehicles", vehicles=[vehicle(20), vehicle(21)])
        a, b = self.car(20), self.car(21)
        tid = self.create([a.vin, b.vin], timeout_min=3)["id"]
        delta(a), delta(b)
        self.wait_counts(tid, notified=2)
        a.close(), b.close()
        self.bounce()
        b = self.car(21)
        report(b, 1, ot.ev_status(task=tid, status="succeeded"))
        ot.wait_until(lambda: self.counts(tid)["failed"] == 1, msg="timeout after restart")
        rows = {r["vin"]: r for r in self.ok("listTaskVehicles", id=tid)["vehicles"]}
        self.assertEqual(rows[ot.vin(20)]["code"], "timeout")
        self.assertEqual(rows[ot.vin(21)]["state"], "succeeded")


if __name__ == "__main__":
    ot.main()
