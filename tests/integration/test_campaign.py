#!/usr/bin/python3
"""Integration: the task engine moving (docs/task-engine.md): a complete campaign of 5
vehicles (notice in shadow/delta, progress reports, succeeded counts), cancel before and
after the notice, the dispatch rate, timeouts (plugin_opt_task_minute_ms), the abort
threshold, a vehicle offline at creation, no second notice after a broker restart, and
`otactl task watch` following a campaign to its end."""

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_shadow import ShadowCar, update, topic  # noqa: E402
import test_tasks  # noqa: E402
from test_tasks import OTACTL, TaskCase, vehicle  # noqa: E402


def delta(car, timeout=None):  # None: the harness's generous default (ot.TIMEOUT)
    return car.get(topic(car.vin, "shadow/delta"), timeout=timeout).cbor()


def report(car, seq, *events):
    car.report(seq, list(events))


class Campaign(TaskCase):

    def fleet(self, nums):
        self.start()
        self.catalog()
        more = [vehicle(i) for i in nums if i >= 20]
        if more:
            self.ok("upsertVehicles", vehicles=more)

    def car(self, i, seen=True):
        c = self.client(ShadowCar, self.b, ot.vin(i))
        if seen:
            c.update(update(fw="1.0"))
            c.accepted()
        return c

    def counts(self, tid):
        return self.ok("getTask", id=tid)["counts"]

    def wait_counts(self, tid, **want):
        ot.wait_until(lambda: all(self.counts(tid)[k] == v for k, v in want.items()),
                      msg="counts %r" % want)

    def notice_of(self, car, tid):
        d = delta(car)
        t = d["desired"]["task"]
        self.assertEqual((t["task"], t["vin"], t["version"], t["upgrade_type"]),
                         (tid, car.vin, "2.0", "normal"))
        return t

    def test_complete_campaign(self):
        nums = list(range(20, 25))
        self.fleet(nums)
        cars = [self.car(i) for i in nums]
        tid = self.create([c.vin for c in cars])["id"]
        ids = set()
        for c in cars:
            ids.add(self.notice_of(c, tid)["msg_id"])
        self.assertEqual(len(ids), 5)
        self.wait_counts(tid, notified=5)
        for c in cars:
            report(c, 1, ot.ev_download(task=tid))
        self.wait_counts(tid, downloading=5)
        for c in cars:
            report(c, 2, ot.ev_upgrade_progress(task=tid))
        self.wait_counts(tid, installing=5)
        for c in cars:
            report(c, 3, ot.ev_status(task=tid, status="succeeded"))
        self.wait_counts(tid, succeeded=5)
        self.assertEqual(self.ok("getTask", id=tid)["state"], "finished")
        for c in cars:  # desired cleared
            self.assertIsNone(delta(c).get("desired", {}).get("task"))
        db = ot.Db(self.b.db_path)
        ot.wait_until(lambda: len(db.query("SELECT * FROM ota_vehicle_download_notice")) == 5)

    def watch(self, tid, *extra):
        """`otactl task watch TID` started in the background (skips when not built)."""
        if not OTACTL or not Path(OTACTL).exists():
            self.skipTest("otactl not built (OTA_OTACTL=%r)" % OTACTL)
        cmd = [OTACTL, "--host", "127.0.0.1", "--port", str(self.b.port), "--user", ot.ADMIN,
               "task", "watch", tid] + list(extra)
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        return p

    def test_otactl_task_watch(self):
        nums = list(range(20, 24))
        self.fleet(nums)
        cars = [self.car(i) for i in nums]
        tid = self.create([c.vin for c in cars])["id"]
        w = self.watch(tid, "--interval", "0.2", "--json", "--timeout", str(ot.TIMEOUT * 6))
        for c in cars:
            self.notice_of(c, tid)
        self.wait_counts(tid, notified=len(cars))
        time.sleep(0.5)
        self.assertIsNone(w.poll(), "watch ended before the campaign")
        for c in cars:
            report(c, 1, ot.ev_download(task=tid))
            report(c, 2, ot.ev_upgrade_progress(task=tid))
            report(c, 3, ot.ev_status(task=tid, status="succeeded"))
        out, err = w.communicate(timeout=ot.TIMEOUT * 6)
        self.assertEqual(w.returncode, 0, "stdout: %s\nstderr: %s" % (out, err))
        final = json.loads(out)
        self.assertEqual(final["state"], "finished")
        self.assertEqual(final["counts"]["succeeded"], len(cars))
        lines = err.splitlines()  # not a terminal: one line per change
        self.assertGreaterEqual(len(lines), 2, err)
        self.assertIn("notified %d" % len(cars), err)
        self.assertIn("%d/%d" % (len(cars), len(cars)), lines[-1])
        self.assertTrue(lines[-1].endswith("finished"), lines[-1])

    def test_otactl_task_watch_unknown_id(self):
        self.start()
        w = self.watch("NO-SUCH-TASK", "--interval", "0.2")
        out, err = w.communicate(timeout=ot.TIMEOUT * 6)
        self.assertEqual(w.returncode, 1, "stdout: %s\nstderr: %s" % (out, err))
        self.assertIn("getTask", err)
        self.assertEqual(out, "")

    def test_cancel_before_and_after_notice(self):
        self.fleet([20, 21, 22])
        a, b = self.car(20), self.car(21)
        tid = self.create([a.vin, b.vin, ot.vin(22)])["id"]
        self.notice_of(a, tid)
        self.notice_of(b, tid)
        d = self.ok("cancelTask", id=tid, vins=[ot.vin(22), a.vin])
        self.assertEqual(d, {"canceled": 1, "pending": 1})
        c = delta(a)
        self.assertEqual(c["desired"], {"task": None, "cancel": tid})
        report(a, 1, ot.ev_status(task=tid, status="canceled"))
        self.wait_counts(tid, canceled=2, notified=1)
        d = self.ok("cancelTask", id=tid)
        self.assertEqual(d, {"canceled": 0, "pending": 1})
        report(b, 1, ot.ev_status(task=tid, status="idle"))
        self.wait_counts(tid, canceled=3)
        self.assertEqual(self.ok("getTask", id=tid)["state"], "canceled")
        # a future start: nothing sent, canceled at once
        tid2 = self.create([a.vin], start=ot.now_ms() + 3600_000)["id"]
        a.quiet(topic(a.vin, "shadow/delta"), wait=0.5)
        self.assertEqual(self.ok("cancelTask", id=tid2, vins=[a.vin]),
                         {"canceled": 1, "pending": 0})
        self.fails("cancelTask", "not in task", id=tid2, vins=[ot.vin(1)])
        if OTACTL and Path(OTACTL).exists():  # otactl task cancel
            tid3 = self.create([a.vin], start=ot.now_ms() + 3600_000)["id"]
            out = test_tasks.OtactlTasks.otactl(self, "task", "cancel", tid3, json_out=False)
            self.assertIn("canceled 1, pending 0", out.stdout)
            self.assertEqual(self.ok("getTask", id=tid3)["state"], "canceled")

    def test_rate_limit(self):
        nums = list(range(20, 26))
        self.fleet(nums)
        cars = [self.car(i) for i in nums]
        tid = self.create([c.vin for c in cars], rate=2)["id"]
        times = []
        for c in cars:
            m = c.get(topic(c.vin, "shadow/delta"))
            self.assertEqual(m.cbor()["desired"]["task"]["task"], tid)
            times.append(m.t)  # when it arrived, not when this loop came to it
        self.assertGreaterEqual(max(times) - min(times), 1.4)

    def test_abort_threshold_and_offline_vehicle(self):
        self.fleet([20, 21, 22])
        a, b = self.car(20), self.car(21)
        c = self.car(22, seen=False)  # connected, not seen: gets nothing
        tid = self.create([a.vin, b.vin, c.vin],
                          abort={"min_executed": 2, "failure_pct": 50})["id"]
        self.notice_of(a, tid)
        self.notice_of(b, tid)
        for car in (a, b):
            report(car, 1, ot.ev_status(task=tid, status="failed", error="upgrade_failed"))
        self.wait_counts(tid, failed=2, queued=1)
        self.assertEqual(self.ok("getTask", id=tid)["state"], "aborted")
        c.update(update(fw="1.0"))
        c.accepted()
        c.quiet(topic(c.vin, "shadow/delta"), wait=0.5)
        self.assertEqual(self.counts(tid)["queued"], 1)

    def test_offline_vehicle_gets_notice_on_report(self):
        self.fleet([20])
        tid = self.create([ot.vin(20)])["id"]
        time.sleep(0.3)
        self.assertEqual(self.counts(tid)["queued"], 1)
        a = self.car(20)
        self.notice_of(a, tid)

    def test_no_second_notice_after_restart(self):
        self.fleet([20])
        a = self.car(20)
        tid = self.create([a.vin])["id"]
        self.notice_of(a, tid)
        a.close()
        self.b.restart()
        self.a = self.admin(self.b, nodelay=True)
        a = self.car(20)
        d = delta(a)  # the stored desired state, same notice
        self.assertEqual(d["desired"]["task"]["msg_id"], "%s:%s:0" % (tid, a.vin))
        db = ot.Db(self.b.db_path)
        self.assertEqual(len(db.query("SELECT * FROM ota_vehicle_download_notice")), 1)
        self.assertEqual(self.counts(tid)["notified"], 1)

    def test_compensation_resend(self):
        self.start()
        self.catalog()
        self.ok("upsertVehicles", vehicles=[vehicle(20, activated=True, passenger=True)])
        a = self.car(20)
        tid = self.create([a.vin], max_resend=1)["id"]
        self.assertEqual(self.notice_of(a, tid)["msg_id"], "%s:%s:0" % (tid, a.vin))
        report(a, 1, ot.ev_status(task=tid, status="failed", error="download_failed"))
        self.assertEqual(self.notice_of(a, tid)["msg_id"], "%s:%s:1" % (tid, a.vin))
        self.wait_counts(tid, notified=1, failed=0)
        report(a, 2, ot.ev_status(task=tid, status="failed", error="download_failed"))
        self.wait_counts(tid, failed=1)  # max_resend reached
        rows = self.ok("listTaskVehicles", id=tid)["vehicles"]
        self.assertEqual(rows[0]["code"], "download_failed")


class Timeout(TaskCase):

    def test_timeout(self):
        self.start(task_minute_ms=100)  # a minute of timeout_min is 100 ms
        self.catalog()
        self.ok("upsertVehicles", vehicles=[vehicle(20)])
        a = self.client(ShadowCar, self.b, ot.vin(20))
        a.update(update(fw="1.0"))
        tid = self.create([a.vin], timeout_min=2)["id"]
        ot.wait_until(lambda: self.ok("getTask", id=tid)["counts"]["failed"] == 1)
        rows = self.ok("listTaskVehicles", id=tid)["vehicles"]
        self.assertEqual(rows[0]["code"], "timeout")


if __name__ == "__main__":
    ot.main()
