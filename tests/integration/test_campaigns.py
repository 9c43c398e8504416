#!/usr/bin/python3
"""Integration: campaigns as fleets run them (issue 16, the engine half; docs/task-engine.md):
timeouts from the engine's timer heap, recomputed after a broker restart; waves promoted
on success, by hand, gated by approval, aborted on errors without touching the next
wave; pause and resume; otactl's rollout commands; task events; maintenance windows and
end_action on a sped-up engine clock (plugin_opt_test_time_scale); the notice-rate ramp;
retries up to their limit. Real broker, python vehicles (test_shadow.ShadowCar); a minute
of timeout_min is plugin_opt_task_minute_ms, so nothing sleeps."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
import test_campaign as tc  # noqa: E402  (module import: its cases do not run here)
import test_tasks  # noqa: E402
from test_shadow import update  # noqa: E402

vehicle, delta, report = test_tasks.vehicle, tc.delta, tc.report


class CampaignCase(test_tasks.TaskCase):
    car, counts, wait_counts = tc.Campaign.car, tc.Campaign.counts, tc.Campaign.wait_counts

    def bounce(self):
        """Restarts the broker; the old admin client is closed first, or its automatic
        reconnect would take the new one's client id over."""
        self.a.close()
        self.b.restart()
        self.a = self.admin(self.b, nodelay=True)

    def setup_fleet(self, nums, **opts):
        self.start(**opts)
        self.catalog()
        self.ok("upsertVehicles", vehicles=[vehicle(i) for i in nums])
        return {ot.vin(i): self.car(i) for i in nums}

    def states(self, tid):
        return {r["vin"]: r["state"]
                for r in self.ok("listTaskVehicles", id=tid)["vehicles"]}

    def in_state(self, tid, state):
        return sorted(v for v, s in self.states(tid).items() if s == state)

    def rollout(self, tid):
        return self.ok("getTask", id=tid)["rollout"]

    def succeed(self, cars, vins, tid, status="succeeded", seq=1):
        for v in vins:
            report(cars[v], seq, ot.ev_status(task=tid, status=status,
                                              **({"error": "flash_failed"}
                                                 if status == "failed" else {})))


    def task_event(self, tid, event):
        topic = "ota/v1/events/task/%s" % tid
        m = self.a.get(topic, pred=lambda m: m.json()["event"] == event)
        self.assertEqual(m.qos, 1)
        return m.json()

    def fail_cmd(self, cmd, tid, code):
        r = self.a.command(cmd, id=tid)
        self.assertIn(code, r.get("error", ""), r)


class Timers(CampaignCase):

    def test_timeout_survives_restart(self):
        """A vehicle notified, then the broker restarts: its timeout comes from the stored
        execution (timers are recomputed at load; test_engine's
        test_restart_recomputes_timeouts pins the exact time), a vehicle that finished
        before does not move."""
        self.start(task_minute_ms=1000)
        self.catalog()
        self.ok("upsertVehicles", vehicles=[vehicle(20), vehicle(21)])
        a, b = self.car(20), self.car(21)
        tid = self.create([a.vin, b.vin], timeout_min=3)["id"]
        delta(a), delta(b)
        report(b, 1, ot.ev_status(task=tid, status="succeeded"))
        self.wait_counts(tid, succeeded=1)
        a.close(), b.close()
        self.bounce()
        ot.wait_until(lambda: self.counts(tid)["failed"] == 1, msg="timeout after restart")
        rows = {r["vin"]: r for r in self.ok("listTaskVehicles", id=tid)["vehicles"]}
        self.assertEqual(rows[ot.vin(20)]["code"], "timeout")
        self.assertEqual(rows[ot.vin(21)]["state"], "succeeded")


class Waves(CampaignCase):

    def test_three_waves_promote_on_success(self):
        cars = self.setup_fleet(range(20, 26))
        waves = [{"count": 1, "success_threshold": 100}, {"count": 2, "success_threshold": 50}]
        tid = self.create(list(cars), waves=waves)["id"]
        r = self.rollout(tid)
        self.assertEqual([w["size"] for w in r["waves"]], [1, 2, 3])
        self.assertEqual(r["current_wave"], 0)
        self.wait_counts(tid, notified=1)
        first = self.in_state(tid, "notified")
        self.assertEqual(self.counts(tid)["queued"], 5)  # wave 1 waits for wave 0
        self.succeed(cars, first, tid)
        self.wait_counts(tid, succeeded=1, notified=2)
        self.assertEqual(self.rollout(tid)["current_wave"], 1)
        second = self.in_state(tid, "notified")
        self.assertEqual(self.counts(tid)["queued"], 3)
        self.succeed(cars, second[:1], tid)  # 50% of wave 1: the rest starts
        self.wait_counts(tid, succeeded=2, queued=0)
        r = self.rollout(tid)
        self.assertEqual(r["current_wave"], 2)
        self.assertEqual([w["counts"]["succeeded"] for w in r["waves"]], [1, 1, 0])

    def test_wave_one_abort_never_touches_wave_two(self):
        cars = self.setup_fleet(range(20, 26))
        self.assertEqual(self.a.subscribe("ota/v1/events/task/#"), 1)
        waves = [{"count": 2, "error_threshold": 50}]
        tid = self.create(list(cars), waves=waves)["id"]
        ev = self.task_event(tid, "created")
        self.assertEqual((ev["task"], ev["state"], ev["wave"]), (tid, "active", 0))
        self.wait_counts(tid, notified=2)
        first = self.in_state(tid, "notified")
        self.succeed(cars, first[:1], tid, status="failed")
        ot.wait_until(lambda: self.ok("getTask", id=tid)["state"] == "aborted", msg="aborted")
        ev = self.task_event(tid, "aborted")
        self.assertIn("wave 0 reached its error threshold: 1 of 1 failed", ev["reason"])
        self.assertEqual(ev["counts"]["failed"], 1)
        self.assertEqual(self.counts(tid)["queued"], 4)
        r = self.rollout(tid)
        self.assertEqual(r["current_wave"], 0)
        self.assertEqual(r["waves"][1]["counts"]["queued"], 4)
        self.assertEqual(r["waves"][1]["counts"]["notified"], 0)
        self.fail_cmd("promoteWave", tid, "E_TASK_STATE")

    def test_approval_pause_resume_and_by_hand(self):
        cars = self.setup_fleet(range(20, 24))
        self.assertEqual(self.a.subscribe("ota/v1/events/task/#"), 1)
        tid = self.create(list(cars), waves=[{"count": 1, "success_threshold": 100}],
                          wave_approval="first")["id"]
        self.assertTrue(self.rollout(tid)["awaiting_approval"])
        self.ok("pauseTask", id=tid)
        self.ok("approveWave", id=tid)
        self.fail_cmd("approveWave", tid, "E_APPROVED")
        # approved but paused: a vehicle seen again still gets nothing
        c = cars[ot.vin(20)]
        c.update(update(fw="1.0"))
        c.accepted()
        self.assertEqual(self.counts(tid)["notified"], 0)
        self.assertTrue(self.ok("getTask", id=tid)["paused"])
        self.ok("resumeTask", id=tid)
        self.wait_counts(tid, notified=1)
        d = self.ok("promoteWave", id=tid)  # by hand, before wave 0 succeeded
        self.assertEqual(d["current_wave"], 1)
        self.wait_counts(tid, notified=4)
        self.fail_cmd("promoteWave", tid, "E_LAST_WAVE")
        for e in ("paused", "wave_approved", "resumed"):
            self.assertEqual(self.task_event(tid, e)["reason"], "by hand")
        self.assertEqual(self.task_event(tid, "wave_started")["wave"], 1)
        self.succeed(cars, list(cars), tid)
        ev = self.task_event(tid, "finished")
        self.assertEqual(ev["counts"]["succeeded"], 4)

    def test_restart_in_the_middle_of_a_wave(self):
        cars = self.setup_fleet(range(20, 28))
        waves = [{"count": 1}, {"count": 3, "success_threshold": 100}]
        tid = self.create(list(cars), waves=waves)["id"]
        self.wait_counts(tid, notified=1)
        self.succeed(cars, self.in_state(tid, "notified"), tid)
        self.wait_counts(tid, succeeded=1, notified=3)
        second = self.in_state(tid, "notified")
        self.succeed(cars, second[:1], tid)
        self.wait_counts(tid, succeeded=2)
        for c in cars.values():
            c.close()
        self.bounce()
        r = self.rollout(tid)
        self.assertEqual(r["current_wave"], 1)  # the promotion was stored
        self.assertEqual([w["size"] for w in r["waves"]], [1, 3, 4])
        cars = {ot.vin(i): self.car(i) for i in range(20, 28)}
        self.assertEqual(self.counts(tid)["queued"], 4)  # wave 2 still waits
        self.succeed(cars, second[1:], tid, seq=2)
        self.wait_counts(tid, succeeded=4, queued=0)
        self.assertEqual(self.rollout(tid)["current_wave"], 2)
        self.assertEqual(self.in_state(tid, "notified"),
                         sorted(set(cars) - set(second) - set(self.in_state(tid, "succeeded"))))

    def test_bad_waves_refused(self):
        self.setup_fleet([20])
        for waves, text in (([], "waves"), ([{"count": 1, "percent": 5}], "count or percent"),
                            ([{"percent": 101}], "percent"),
                            ([{"count": 1, "success_threshold": 101}], "success_threshold")):
            r = self.a.command("createTask", task=self.task([ot.vin(20)], waves=waves))
            self.assertIn(text, r.get("error", ""), (waves, r))


class OtactlRollout(CampaignCase):
    otactl = test_tasks.OtactlTasks.otactl

    def test_otactl_pause_resume_promote_approve(self):
        if not test_tasks.OTACTL or not Path(test_tasks.OTACTL).exists():
            self.skipTest("otactl not built")
        cars = self.setup_fleet(range(20, 23))
        tid = self.create(list(cars), waves=[{"count": 1}], wave_approval="each")["id"]
        self.assertEqual(self.otactl("task", "pause", tid).returncode, 0)
        self.assertTrue(self.ok("getTask", id=tid)["paused"])
        self.otactl("task", "approve", tid)
        self.otactl("task", "resume", tid)
        self.wait_counts(tid, notified=1)
        out = self.otactl("task", "promote", tid, json_out=False).stdout
        self.assertIn("current_wave", out)
        r = self.rollout(tid)
        self.assertEqual((r["current_wave"], r["awaiting_approval"]), (1, True))
        self.assertEqual(self.counts(tid)["notified"], 1)  # wave 1 waits for approval
        self.otactl("task", "approve", tid)
        self.wait_counts(tid, notified=3)
        p = self.otactl("task", "promote", tid, ok=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("E_LAST_WAVE", p.stderr + p.stdout)


SCALE = 600  # plugin_opt_test_time_scale: one real second is ten minutes of the engine


class Windows(CampaignCase):
    """The engine's clock runs SCALE times faster (plugin_opt_test_time_scale), so an hour
    passes in 6 s: nothing sleeps, the test waits for the broker's own clock."""

    def start_fast(self):
        t0 = time.time()
        self.start(test_time_scale=SCALE)
        t1 = time.time()
        self.clock0 = (t0 + t1) / 2  # when the engine's clock started, +- (t1 - t0) / 2

    def engine_now(self):
        t = time.time()
        return self.clock0 + (t - self.clock0) * SCALE

    def test_window_closed_now_opens_on_time(self):
        self.start_fast()
        self.catalog()
        self.ok("upsertVehicles", vehicles=[vehicle(20), vehicle(21)])
        self.assertEqual(self.a.subscribe("ota/v1/events/task/#"), 1)
        a, b = self.car(20), self.car(21)
        opens = time.gmtime(self.engine_now() + 90 * 60)  # 90 engine minutes: ~9 s
        cron = "%d %d * * *" % (opens.tm_min, opens.tm_hour)
        tid = self.create([a.vin, b.vin], maintenance_window={"cron": cron, "duration_min": 30,
                                                               "tz": "UTC"})["id"]
        t = self.ok("getTask", id=tid)
        self.assertEqual(t["counts"]["queued"], 2)  # closed now: nothing sent
        self.assertEqual(self.counts(tid)["notified"], 0)
        ot.wait_until(lambda: self.counts(tid)["notified"] == 2, timeout=60, msg="window opens")
        self.assertGreaterEqual(self.engine_now(), time.mktime(opens) - time.timezone - 600)
        report(a, 1, ot.ev_status(task=tid, status="succeeded"))
        # b was notified inside the window: it may finish whenever it does
        ot.wait_until(lambda: self.counts(tid)["succeeded"] == 1)

    def test_bad_window_refused(self):
        self.start()
        self.catalog()
        for w, text in (({"cron": "0 25 * * *", "duration_min": 10}, "hours"),
                        ({"cron": "0 2 * * *", "duration_min": 0}, "duration_min"),
                        ({"cron": "0 2 * * *", "duration_min": 10, "tz": "Mars/Base"}, "tz")):
            r = self.a.command("createTask", task=self.task([ot.vin(1)], maintenance_window=w))
            self.assertIn(text, r.get("error", ""), (w, r))
        r = self.a.command("createTask", task=self.task([ot.vin(1)], end_action="explode"))
        self.assertIn("end_action", r.get("error", ""))

    def test_end_action_cancel_all(self):
        """At the end, cancel_all cancels what is in flight too (cancel_pending, the
        default, lets it finish: test_campaign's end test)."""
        self.start_fast()
        self.catalog()
        self.ok("upsertVehicles", vehicles=[vehicle(20)])
        self.assertEqual(self.a.subscribe("ota/v1/events/task/#"), 1)
        a = self.car(20)
        end = int(time.time() * 1000) + 60 * 60 * 1000  # an engine hour: ~6 s
        tid = self.create([a.vin], end=end, end_action="cancel_all")["id"]
        delta(a)
        self.wait_counts(tid, notified=1)
        c = delta(a, timeout=60)  # the cancel, at the end
        self.assertEqual(c["desired"], {"task": None, "cancel": tid})
        self.assertEqual(self.ok("getTask", id=tid)["state"], "canceled")
        report(a, 1, ot.ev_status(task=tid, status="canceled"))
        self.wait_counts(tid, canceled=1)
        m = self.a.get("ota/v1/events/task/%s" % tid, pred=lambda m: m.json()["event"] == "canceled")
        self.assertIn("in flight canceled", m.json()["reason"])
        self.bounce()
        t = self.ok("getTask", id=tid)
        self.assertEqual((t["state"], t["task"].get("end")), ("canceled", end))


class Ramp(CampaignCase):
    """The exponential ramp: a rate so low the second notice would take 100 s, until a
    success multiplies it by 1000 (no timing is asserted: only who is still queued)."""

    def test_ramp_after_success(self):
        cars = self.setup_fleet(range(20, 23))
        ramp = {"start_rate": 0.01, "factor": 1000, "increase_after_succeeded": 1,
                "max_rate": 50}
        tid = self.create(list(cars), ramp=ramp)["id"]
        self.wait_counts(tid, notified=1)
        self.assertEqual(self.counts(tid)["queued"], 2)  # the bucket refills at 0.01/s
        self.succeed(cars, self.in_state(tid, "notified"), tid)
        self.wait_counts(tid, succeeded=1, notified=2, queued=0)
        self.bounce()  # the ramp is stored with the task
        self.assertEqual(self.counts(tid)["notified"], 2)

    def test_bad_ramp_refused(self):
        self.setup_fleet([20])
        for ramp, text in (({"start_rate": 1, "factor": 2, "max_rate": 5}, "increase_after"),
                           ({"start_rate": 5, "factor": 2, "max_rate": 1,
                             "increase_after_notified": 3}, "max_rate"),
                           ({"start_rate": 1, "factor": 0.5, "max_rate": 5,
                             "increase_after_notified": 3}, "factor")):
            r = self.a.command("createTask", task=self.task([ot.vin(20)], ramp=ramp))
            self.assertIn(text, r.get("error", ""), (ramp, r))


class Retries(CampaignCase):

    def test_retries_stop_at_the_limit(self):
        cars = self.setup_fleet([20, 21])
        a, b = cars[ot.vin(20)], cars[ot.vin(21)]
        retry = {"on": ["flash_failed", "timeout"], "max_retries": 2, "backoff_ms": 50}
        tid = self.create([a.vin, b.vin], retry=retry)["id"]
        for car in (a, b):
            self.assertEqual(delta(car)["desired"]["task"]["msg_id"], "%s:%s:0" % (tid, car.vin))
        report(b, 1, ot.ev_status(task=tid, status="failed", error="download_failed"))
        for n in (1, 2):  # each retry is a new notice, after the backoff
            report(a, n, ot.ev_status(task=tid, status="failed", error="flash_failed"))
            msg = delta(a)["desired"]["task"]["msg_id"]
            self.assertEqual(msg, "%s:%s:%d" % (tid, a.vin, n))
        report(a, 3, ot.ev_status(task=tid, status="failed", error="flash_failed"))
        self.wait_counts(tid, failed=2)
        rows = {r["vin"]: r for r in self.ok("listTaskVehicles", id=tid)["vehicles"]}
        self.assertEqual(rows[a.vin]["code"], "flash_failed")
        self.assertEqual(rows[b.vin]["code"], "download_failed")  # not a retried word
        db = ot.Db(self.b.db_path)
        want = ["%s:%s:%d" % (tid, a.vin, n) for n in range(3)]  # every attempt, stored
        ot.wait_until(lambda: sorted(r["msg_id"] for r in db.query(
            "SELECT msg_id FROM ota_vehicle_download_notice WHERE vin = ?", (a.vin,))) == want,
            msg="three notices stored")

    def test_retry_backoff_survives_restart(self):
        """A failed attempt waits in its backoff; the broker restarts in the middle of it:
        the stored execution (code retry_backoff, updated_at = the due time) sets the retry
        timer again at start, and the retry is sent once, not before its time."""
        cars = self.setup_fleet([20])
        a = cars[ot.vin(20)]
        backoff = int(4000 * ot.SCALE)  # a restart takes well under (sanitizers: x3)
        retry = {"on": ["flash_failed"], "max_retries": 1, "backoff_ms": backoff}
        tid = self.create([a.vin], retry=retry)["id"]
        self.assertEqual(delta(a)["desired"]["task"]["msg_id"], "%s:%s:0" % (tid, a.vin))
        report(a, 1, ot.ev_status(task=tid, status="failed", error="flash_failed"))
        db = ot.Db(self.b.db_path)

        def stored():
            return db.query("SELECT * FROM ota_task_vin WHERE task = ?", (tid,))[0]
        ot.wait_until(lambda: stored()["code"] == "retry_backoff", msg="the backoff stored")
        due = stored()["updated_at"]
        self.assertEqual(stored()["resends"], 0)
        a.close()
        self.bounce()  # in the middle of the backoff
        a = self.car(20)  # (its shadow's delta still carries attempt 0 until the retry)
        retry_msg = "%s:%s:1" % (tid, a.vin)
        a.get("ota/v1/%s/shadow/delta" % a.vin, timeout=30,
              pred=lambda m: m.cbor()["desired"]["task"]["msg_id"] == retry_msg)
        notices = lambda: db.query(  # noqa: E731
            "SELECT msg_id, sent_at FROM ota_vehicle_download_notice WHERE vin = ? "
            "ORDER BY sent_at", (a.vin,))
        ot.wait_until(lambda: len(notices()) == 2, msg="the retry's notice stored")
        self.assertEqual([m for m in a.quiet("ota/v1/%s/shadow/delta" % a.vin)  # once
                          if m.cbor()["desired"]["task"]["msg_id"] == retry_msg], [])
        n = notices()
        self.assertEqual([r["msg_id"] for r in n], ["%s:%s:%d" % (tid, a.vin, k) for k in (0, 1)])
        self.assertGreaterEqual(n[1]["sent_at"], due)  # at its time, not at the restart

    def test_retry_on_timeout(self):
        cars = self.setup_fleet([20], task_minute_ms=100)
        a = cars[ot.vin(20)]
        tid = self.create([a.vin], timeout_min=2,
                          retry={"on": ["timeout"], "max_retries": 1})["id"]
        delta(a)
        self.assertEqual(delta(a, timeout=30)["desired"]["task"]["msg_id"], "%s:%s:1" % (tid, a.vin))
        self.wait_counts(tid, failed=1)
        self.assertEqual(self.ok("listTaskVehicles", id=tid)["vehicles"][0]["code"], "timeout")


if __name__ == "__main__":
    ot.main()
