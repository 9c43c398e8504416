#!/usr/bin/python3
"""Integration: continuous tasks and notice jitter (issue 16; docs/task-engine.md
"Continuous tasks"). Real broker, python vehicles (test_shadow.ShadowCar).

A continuous task keeps its target open: a vehicle upserted later, one whose reported
firmware makes it match, one added to a static group, one matching a dynamic group joins (validated with the SPEC §6
rules: a rejected joiner has its code, and is validated again when it changes); a queued
vehicle that stops matching leaves (canceled, code left_target) and is never notified, one
already notified stays, and each change is a task event; the membership, the joiners' wave and the flags survive a restart
on SQLite and on MongoDB (the wire-protocol test peer). jitter_ms spreads notices: on a
sped-up engine clock, no vehicle is notified before its own delay (the same hash as the
plugin's) and the notices go out in the order of the delays. otactl's --continuous and
--jitter."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
import test_campaigns as tcs  # noqa: E402  (module import: its cases do not run here)
from test_campaign import delta  # noqa: E402
from test_tasks import M, S, vehicle  # noqa: E402

OTACTL = os.environ.get("OTA_OTACTL", "")
FLEET_TARGET = {"usage": ["fleet"]}  # of test_tasks.FLEET only VIN 2 is a fleet vehicle


def waves_key(task_id, vin):
    """plugin/core/waves.c ota_waves_key: FNV-1a 64 of "task\\x1fvin", splitmix64's
    finalizer."""
    m = (1 << 64) - 1
    h = 0xcbf29ce484222325
    for b in (task_id + "\x1f" + vin).encode():
        h = ((h ^ b) * 0x100000001b3) & m
    h ^= h >> 30
    h = (h * 0xbf58476d1ce4e5b9) & m
    h ^= h >> 27
    h = (h * 0x94d049bb133111eb) & m
    return h ^ (h >> 31)


class ContinuousCase(tcs.CampaignCase):

    def create_continuous(self, target=None, **kw):
        t = self.task(None, continuous=True, **kw)
        del t["vins"]
        t["target"] = FLEET_TARGET if target is None else target
        return self.ok("createTask", task=t)

    def member_event(self, tid, reason):
        """The task event of vehicles joining / leaving tid, with this reason."""
        m = self.a.get("ota/v1/events/task/%s" % tid,
                       pred=lambda m: m.json()["event"] == "members" and
                       m.json()["reason"] == reason)
        return m.json()

    def rows(self, tid):
        return {r["vin"]: r for r in self.ok("listTaskVehicles", id=tid)["vehicles"]}

    def wait_row(self, tid, i, state, code=None):
        def ok():
            r = self.rows(tid).get(ot.vin(i))
            return r is not None and r["state"] == state and r.get("code") == code
        ot.wait_until(ok, msg="%s %s %s" % (ot.vin(i), state, code))


class Joins(ContinuousCase):

    def test_upserted_reported_and_grouped_vehicles_join(self):
        self.start()
        self.catalog()
        d = self.create_continuous()
        tid = d["id"]
        self.assertEqual(d["accepted"], [ot.vin(2)])
        t = self.ok("getTask", id=tid)
        self.assertEqual((t["state"], t["continuous"]), ("active", True))
        # upserted later: joins queued (offline: nothing to send yet)
        self.ok("upsertVehicles", vehicles=[vehicle(20, usage="fleet")])
        self.wait_row(tid, 20, "queued")
        # blacklisted before its notice: rejected; off the list: queued again
        self.ok("addToList", list="blacklist", vins=[ot.vin(20)])
        self.wait_row(tid, 20, "rejected", "E_BLACKLISTED")
        self.ok("removeFromList", list="blacklist", vins=[ot.vin(20)])
        self.wait_row(tid, 20, "queued")
        # upserted matching but failing a rule: joins rejected with its code ...
        self.ok("upsertVehicles", vehicles=[vehicle(22, usage="fleet", status="scrapped")])
        self.wait_row(tid, 22, "rejected", "E_STATUS_MISMATCH")
        # ... and is validated again when it changes
        self.ok("upsertVehicles", vehicles=[vehicle(22, usage="fleet")])
        self.wait_row(tid, 22, "queued")
        # its reported firmware makes it match: 2.0 is not below 2.0, the car reports 1.0
        other = self.create_continuous(target={"vin_prefix": ot.vin(21), "fw_below": "2.0"})["id"]
        self.ok("upsertVehicles", vehicles=[vehicle(21, fw="2.0")])
        self.assertNotIn(ot.vin(21), self.rows(other))
        car = self.car(21)  # shadow/update with fw 1.0: the catalog follows it
        self.assertEqual(delta(car)["desired"]["task"]["task"], other)
        self.wait_row(other, 21, "notified")
        # added to a static group
        self.ok("setGroup", group={"name": "pilot", "vins": [ot.vin(1)]})
        grouped = self.create_continuous(target={"groups": ["pilot"]})["id"]
        self.ok("upsertVehicles", vehicles=[vehicle(23)])
        self.ok("setGroup", group={"name": "pilot", "vins": [ot.vin(1), ot.vin(23)]})
        self.wait_row(grouped, 23, "queued")
        c23 = self.car(23)
        self.assertEqual(delta(c23)["desired"]["task"]["task"], grouped)
        self.fails("deleteGroup", "named by the target of continuous task %s" % grouped,
                   name="pilot")
        # matching a dynamic group: sold vehicles of the "fleet" usage
        self.ok("setGroup", group={"name": "sold_fleet",
                                   "query": {"status": ["sold"], "usage": ["fleet"]}})
        dyn = self.create_continuous(target={"groups": ["sold_fleet"]})
        self.assertEqual(dyn["accepted"], [ot.vin(2)])
        self.ok("upsertVehicles", vehicles=[vehicle(24, usage="fleet", status="sold")])
        self.wait_row(dyn["id"], 24, "queued")
        # the joiners are counted and listed in VIN order, the creation's VINs sorted in
        self.wait_counts(tid, queued=4)
        self.assertEqual(list(self.rows(tid)), [ot.vin(2), ot.vin(20), ot.vin(22), ot.vin(24)])
        # a continuous task with nothing open stays active: vehicles may still join
        tcs.report(car, 1, ot.ev_status(task=other, status="succeeded"))
        self.wait_counts(other, succeeded=1)
        self.assertEqual(self.ok("getTask", id=other)["state"], "active")

    def test_continuous_needs_a_target(self):
        self.start()
        self.catalog()
        # previewTarget takes the same task; a continuous one may match nobody yet
        t = self.task(None, continuous=True, jitter_ms=10)
        del t["vins"]
        t["target"] = {"vin_prefix": "ZZZ"}
        self.assertEqual(self.ok("previewTarget", task=t)["matched"], 0)
        self.assertNotIn("task_error", self.ok("previewTarget", task=t))
        self.fails("createTask", "task.continuous: needs a target",
                   task=self.task([ot.vin(1)], continuous=True))
        self.fails("createTask", "task.jitter_ms", task=self.task([ot.vin(1)], jitter_ms=-1))


class Leaves(ContinuousCase):

    def test_leaving_before_the_notice_is_never_notified(self):
        self.start()
        self.catalog()
        self.assertEqual(self.a.subscribe("ota/v1/events/task/#"), 1)
        tid = self.create_continuous()["id"]
        self.ok("upsertVehicles", vehicles=[vehicle(20, usage="fleet"),
                                            vehicle(21, usage="fleet")])
        self.wait_counts(tid, queued=3)
        self.assertEqual(self.member_event(tid, "2 joined, 0 left")["counts"]["queued"], 3)
        c21 = self.car(21)  # online: notified
        delta(c21)
        self.wait_row(tid, 21, "notified")
        # 21 leaves the target after its notice (stays), then 20 before its notice (leaves);
        # changes are matched in one pass per TICK, so once 20 is seen, 21 was too
        self.ok("upsertVehicles", vehicles=[vehicle(21, usage="retail")])
        self.ok("upsertVehicles", vehicles=[vehicle(20, usage="retail")])
        self.wait_row(tid, 20, "canceled", "left_target")
        self.assertEqual(self.rows(tid)[ot.vin(21)]["state"], "notified")
        self.member_event(tid, "0 joined, 1 left")
        # 20 comes online: the continuous task (the oldest) does not take it, so a newer
        # task does
        c20 = self.car(20)
        second = self.create([ot.vin(20)])["id"]
        self.assertEqual(delta(c20)["desired"]["task"]["task"], second)
        self.assertEqual(self.rows(tid)[ot.vin(20)]["state"], "canceled")
        # matching again, it joins again, and is notified once the vehicle is free
        self.ok("upsertVehicles", vehicles=[vehicle(20, usage="fleet", fw="1.0")])
        self.wait_row(tid, 20, "queued")
        tcs.report(c20, 1, ot.ev_status(task=second, status="succeeded"))
        c20.get("ota/v1/%s/shadow/delta" % c20.vin,
                pred=lambda m: ((m.cbor().get("desired") or {}).get("task") or {}).get("task")
                == tid)
        self.wait_row(tid, 20, "notified")


class Restart(ContinuousCase):

    def keeps_membership(self, **start):
        self.start(**start)
        self.catalog()
        self.ok("upsertVehicles", vehicles=[vehicle(30, usage="fleet")])
        tid = self.create_continuous(waves=[{"count": 1}], jitter_ms=5)["id"]
        self.ok("upsertVehicles", vehicles=[vehicle(20, usage="fleet"),
                                            vehicle(24, usage="fleet", status="scrapped"),
                                            vehicle(21, usage="fleet")])
        self.wait_counts(tid, queued=4, rejected=1)
        self.ok("upsertVehicles", vehicles=[vehicle(21, usage="retail")])
        self.wait_row(tid, 21, "canceled", "left_target")
        before = (self.ok("getTask", id=tid), self.ok("listTaskVehicles", id=tid))
        r = before[0]["rollout"]
        # created with 2 and 30: one in wave 0, one in the rest; joiners go to the rest
        self.assertEqual([w["size"] for w in r["waves"]], [1, 3])  # 20, 21 (left), 30
        self.bounce()
        after = (self.ok("getTask", id=tid), self.ok("listTaskVehicles", id=tid))
        self.assertEqual(after, before)
        self.assertEqual((after[0]["continuous"], after[0]["jitter_ms"]), (True, 5))
        # the target is still open after the restart, and still closes for leavers
        self.ok("upsertVehicles", vehicles=[vehicle(25, usage="fleet")])
        self.wait_row(tid, 25, "queued")
        self.ok("upsertVehicles", vehicles=[vehicle(24, usage="fleet")])
        self.wait_row(tid, 24, "queued")
        self.assertEqual([w["size"] for w in self.rollout(tid)["waves"]], [1, 5])
        self.bounce()
        self.assertEqual(self.rows(tid)[ot.vin(25)]["state"], "queued")
        self.assertEqual([w["size"] for w in self.rollout(tid)["waves"]], [1, 5])

    def test_restart_keeps_membership(self):
        self.keeps_membership()

    def test_restart_keeps_membership_on_mongodb(self):
        self.keeps_membership(store=self.mongo_peer().uri("ota"))


SCALE = 600  # plugin_opt_test_time_scale: one real second is ten minutes of the engine


class Jitter(ContinuousCase):

    def test_jitter_spreads_notices_in_the_order_of_their_delays(self):
        self.start(test_time_scale=SCALE)
        self.catalog()
        nums = range(40, 52)
        self.ok("upsertVehicles", vehicles=[vehicle(i) for i in nums])
        cars = [self.car(i) for i in nums]  # all online before the task
        jitter = 30 * 60 * 1000  # 30 engine minutes: 3 s real
        tid = self.create([c.vin for c in cars], jitter_ms=jitter)["id"]
        t = self.ok("getTask", id=tid)
        self.assertEqual(t["jitter_ms"], jitter)
        for c in cars:
            delta(c)
        self.wait_counts(tid, notified=len(cars))
        rows = self.ok("listTaskVehicles", id=tid)["vehicles"]
        delay = {c.vin: waves_key(tid, c.vin) % (jitter + 1) for c in cars}
        sent = {r["vin"]: r["notified_at"] for r in rows}
        order = sorted(delay, key=delay.get)  # notices in the order of the delays ...
        self.assertEqual([sent[v] for v in order], sorted(sent.values()))
        # ... spread over the window (not one burst): the delays span most of it, and the
        # notices went out at many different TICKs
        self.assertGreater(max(delay.values()) - min(delay.values()), jitter // 2)
        self.assertGreaterEqual(len(set(sent.values())), 4, sent)


class OtactlContinuous(ContinuousCase):

    def setUp(self):
        super().setUp()
        if not OTACTL or not Path(OTACTL).exists():
            self.skipTest("otactl not built (OTA_OTACTL=%r)" % OTACTL)

    def test_continuous_and_jitter_flags(self):
        self.start()
        self.catalog()
        cmd = [OTACTL, "--host", "127.0.0.1", "--port", str(self.b.port), "--user", ot.ADMIN,
               "--timeout", str(int(ot.TIMEOUT * 3)), "--json", "task", "create", "--name",
               "cli", "--type", "normal", "--model", M, "--series", S, "--version", "2.0",
               "--target", json.dumps(FLEET_TARGET), "--continuous", "--jitter", "250"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=6 * ot.TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        tid = json.loads(p.stdout)["id"]
        t = self.ok("getTask", id=tid)
        self.assertEqual((t["continuous"], t["jitter_ms"]), (True, 250))
        self.ok("upsertVehicles", vehicles=[vehicle(20, usage="fleet")])
        self.wait_row(tid, 20, "queued")


if __name__ == "__main__":
    import unittest
    unittest.main()
