#!/usr/bin/python3
"""Integration: a rollout in waves over three brokers on one database (issue 16, docs/
task-engine.md "Waves across brokers"). Three real brokers on the mongo_peer test double,
python vehicles spread over them; the task is created through broker 1.

- A 3-wave rollout promoted on success: each broker only sees its own vehicles, so the
  thresholds are judged on the store's counts, and every broker may reach one at the same
  TICK; the promotion is a conditional write of the task document, so each wave's
  "wave_started" task event is published exactly once over the three brokers, and no
  vehicle of a wave is notified (in the store) before that wave was promoted.
- pauseTask / resumeTask / approveWave / promoteWave through broker 1 come into effect on
  brokers 2 and 3 (the time it took is printed, not asserted: speed belongs to benchmarks),
  and a broker that holds an older revision gets E_CONFLICT instead of overwriting.
- A task without waves (docs/task-engine.md "Counts and end on a shared store"): it finishes
  on every broker although each broker drives only its own vehicles (the end is judged on
  the store's counts), and "finished" is published once over the three brokers; an abort
  threshold reached only by the sum of the failures seen on different brokers aborts the
  task, told once; a task canceled through broker 1 is told canceled once.
Read back with pymongo: the task document's plan (which VIN is in which wave) and the
notices stored.
"""

import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
import test_campaign as tc  # noqa: E402
import test_campaigns  # noqa: E402
from test_shadow import ShadowCar, update  # noqa: E402

vehicle, delta, report = test_campaigns.vehicle, tc.delta, tc.report
DEADLINE = 30 * ot.SCALE


class WavesAcrossBrokers(test_campaigns.CampaignCase):

    def setUp(self):
        super().setUp()
        self.peer = self.mongo_peer()
        self.uri = self.peer.uri("ota")
        self.mdb = self.mongo_db(self.peer.uri()).db

    def start(self, **kw):
        kw.update(store=self.uri, broker_id="broker-1",
                  signing_key=str(self.tmp / "ota-signing.pem"))
        return super().start(**kw)

    def brokers(self, nums):
        """Brokers 2 and 3 on the same database, files and signing key; every admin
        subscribed to the task events; car i on broker i % 3."""
        self.start()
        self.catalog()
        self.ok("upsertVehicles", vehicles=[vehicle(i) for i in nums])
        self.bs, self.admins = [self.b], [self.a]
        for i in (2, 3):
            b = self.broker(store=self.uri, broker_id="broker-%d" % i, file_dir=str(self.files),
                            extra_conf=["set_tcp_nodelay true"],
                            signing_key=str(self.tmp / "ota-signing.pem"))
            self.bs.append(b)
            self.admins.append(self.admin(b, client_id="admin-%d" % i, nodelay=True))
        for a in self.admins:
            self.assertEqual(a.subscribe("ota/v1/events/task/#"), 1)
        cars = {}
        for i in nums:
            c = self.client(ShadowCar, self.bs[i % 3], ot.vin(i))
            c.update(update(fw="1.0"))
            c.accepted()
            cars[ot.vin(i)] = c
        return cars

    def seen(self, what, check, admins=None):
        t0 = time.monotonic()
        for a in admins or self.admins[1:]:
            ot.wait_until(lambda: check(a), timeout=DEADLINE, interval=0.01,
                          msg="%s on %s" % (what, a.client_id))
        print("%s: in effect on the other brokers after %.0f ms" %
              (what, 1000 * (time.monotonic() - t0)), file=sys.stderr)

    @staticmethod
    def get_task(a, tid):
        return a.command("getTask", id=tid).get("data") or {}

    def plan(self, tid, vins):
        """{vin: wave} from the stored task document (the plan is in VIN order)."""
        doc = self.mdb["ota_task"].find_one({"_id": tid})
        p = doc["waves"]["plan"]
        return {v: int(p[i]) for i, v in enumerate(sorted(vins))}

    def notified(self, tid):
        return {d["vin"] for d in self.mdb["ota_vehicle_download_notice"].find({"task": tid})}

    def wave_events(self, tid):
        """(wave, broker index) of every wave_started event received, on any broker."""
        out = []
        for i, a in enumerate(self.admins):
            for m in a.received("ota/v1/events/task/%s" % tid):
                e = m.json()
                if e["event"] == "wave_started":
                    out.append((e["wave"], i))
        return out

    def task_events(self, tid, event):
        """Broker index of every `event` task event received, on any broker: what a
        downstream subscriber of ota/v1/events/task/# on every broker (or behind their
        bridges) receives."""
        return [i for i, a in enumerate(self.admins)
                for m in a.received("ota/v1/events/task/%s" % tid) if m.json()["event"] == event]

    def told_once(self, tid, event):
        """Every broker reaches the state; the event came exactly once over the three."""
        t0 = time.monotonic()
        for a in self.admins:
            ot.wait_until(lambda: self.get_task(a, tid).get("state") == event,
                          timeout=DEADLINE, msg="%s on %s" % (event, a.client_id))
        ot.wait_until(lambda: self.task_events(tid, event), timeout=DEADLINE,
                      msg="a %s task event" % event)
        print("%s on every broker and told %.0f ms after the last report or command" %
              (event, 1000 * (time.monotonic() - t0)), file=sys.stderr)
        time.sleep(ot.QUIET)  # a second one would come within the follower's 200 ms
        told = self.task_events(tid, event)
        lost = [a.command("getStats")["data"]["rollouts"]["ends_lost"] for a in self.admins]
        print("%s told by broker(s) %r; ends lost per broker %r" %
              (event, [i + 1 for i in told], lost), file=sys.stderr)
        self.assertEqual(len(told), 1, told)
        a = self.admins[told[0]]
        return [m.json() for m in a.received("ota/v1/events/task/%s" % tid)
                if m.json()["event"] == event][0]

    def notice_all(self, cars, tid):
        for v, c in cars.items():  # each vehicle gets its notice, on its own broker
            self.assertEqual(delta(c, timeout=DEADLINE)["desired"]["task"]["msg_id"],
                             "%s:%s:0" % (tid, v))

    def test_task_without_waves_finishes_once_over_three_brokers(self):
        nums = list(range(20, 29))
        cars = self.brokers(nums)
        tid = self.create(list(cars))["id"]
        self.notice_all(cars, tid)
        for v, c in cars.items():
            report(c, 1, ot.ev_status(task=tid, status="succeeded"))
        ev = self.told_once(tid, "finished")
        self.assertEqual(ev["counts"]["succeeded"], 9, ev)
        self.assertEqual(ev["counts"]["queued"] + ev["counts"]["in_flight"], 0, ev)
        self.assertEqual(self.task_events(tid, "aborted"), [])
        for a in self.admins:  # getTask on every broker: every broker's executions, not its own
            ot.wait_until(lambda: self.get_task(a, tid)["counts"]["succeeded"] == 9,
                          timeout=DEADLINE, msg="getTask counts on %s" % a.client_id)

    def test_abort_threshold_reached_by_the_sum_of_brokers(self):
        nums = list(range(20, 26))  # two vehicles on each broker
        cars = self.brokers(nums)
        tid = self.create(list(cars), abort={"min_executed": 3, "failure_pct": 50})["id"]
        self.notice_all(cars, tid)
        failing = [ot.vin(i) for i in (20, 21, 22)]  # one on each broker: 1 of 1 there
        for v in failing:
            report(cars[v], 1, ot.ev_status(task=tid, status="failed", error="flash_failed"))
        ev = self.told_once(tid, "aborted")
        self.assertIn("3 of 3 failed", ev.get("reason", ""), ev)
        self.assertEqual(self.task_events(tid, "finished"), [])

    def test_cancel_through_broker_one_told_once(self):
        nums = list(range(20, 26))
        cars = self.brokers(nums)
        tid = self.create(list(cars))["id"]
        self.notice_all(cars, tid)
        self.ok("cancelTask", id=tid)
        self.told_once(tid, "canceled")
        self.assertEqual(self.task_events(tid, "canceled"), [0])

    def test_three_waves_promoted_once_over_three_brokers(self):
        nums = list(range(20, 29))
        cars = self.brokers(nums)
        waves = [{"count": 3, "success_threshold": 100}, {"count": 3, "success_threshold": 100}]
        tid = self.create(list(cars), waves=waves)["id"]
        plan = self.plan(tid, cars)
        by_wave = collections.defaultdict(list)
        for v, w in plan.items():
            by_wave[w].append(v)
        self.assertEqual(sorted(len(v) for v in by_wave.values()), [3, 3, 3])
        seq = collections.Counter()
        for wave in (0, 1, 2):
            for v in by_wave[wave]:  # each vehicle of the wave gets its notice, on its broker
                self.assertEqual(delta(cars[v], timeout=DEADLINE)["desired"]["task"]["msg_id"],
                                 "%s:%s:0" % (tid, v))
            later = {v for w in range(wave + 1, 3) for v in by_wave[w]}
            self.assertEqual(self.notified(tid) & later, set(), "a later wave notified early")
            for v in by_wave[wave]:
                seq[v] += 1
                report(cars[v], seq[v], ot.ev_status(task=tid, status="succeeded"))
        ot.wait_until(lambda: len(list(self.mdb["ota_task_vin"].find(
            {"task": tid, "state": "succeeded"}, {"_id": 1}))) == 9, timeout=DEADLINE,
            msg="all succeeded")
        self.assertEqual(self.notified(tid), set(cars))
        for a in self.admins:  # every broker follows the last promotion
            ot.wait_until(lambda: self.get_task(a, tid)["rollout"]["current_wave"] == 2,
                          timeout=DEADLINE, msg="wave 2 on %s" % a.client_id)
        ot.wait_until(lambda: sorted(w for w, _ in self.wave_events(tid)) == [1, 2],
                      timeout=DEADLINE, msg="wave_started 1 and 2")
        time.sleep(ot.QUIET)  # a duplicate would come within the follower's 200 ms
        events = self.wave_events(tid)
        print("wave_started events (wave, broker): %r" % events, file=sys.stderr)
        self.assertEqual(sorted(w for w, _ in events), [1, 2], events)
        stats = [a.command("getStats")["data"]["rollouts"] for a in self.admins]
        print("getStats rollouts: %r" % stats, file=sys.stderr)
        self.assertEqual(sum(s["followed"] for s in stats), 4, stats)  # 2 waves x 2 others

    def test_pause_resume_approve_promote_reach_the_other_brokers(self):
        nums = list(range(20, 26))
        cars = self.brokers(nums)
        tid = self.create(list(cars), waves=[{"count": 2}, {"count": 2}],
                          wave_approval="first")["id"]
        self.seen("a task created", lambda a: self.get_task(a, tid).get("rollout") is not None)
        self.assertTrue(self.get_task(self.a, tid)["rollout"]["awaiting_approval"])
        self.ok("pauseTask", id=tid)
        self.seen("pauseTask", lambda a: self.get_task(a, tid).get("paused") is True)
        self.ok("resumeTask", id=tid)
        self.seen("resumeTask", lambda a: self.get_task(a, tid).get("paused") is False)
        self.ok("approveWave", id=tid)
        self.seen("approveWave",
                  lambda a: self.get_task(a, tid)["rollout"]["awaiting_approval"] is False)
        self.ok("promoteWave", id=tid)
        self.seen("promoteWave", lambda a: self.get_task(a, tid)["rollout"]["current_wave"] == 1)
        self.ok("promoteWave", id=tid)
        self.seen("promoteWave again",
                  lambda a: self.get_task(a, tid)["rollout"]["current_wave"] == 2)
        for v, c in cars.items():  # every wave started: every vehicle notified
            self.assertEqual(delta(c, timeout=DEADLINE)["desired"]["task"]["msg_id"],
                             "%s:%s:0" % (tid, v))
        ot.wait_until(lambda: sorted(self.wave_events(tid)) == [(1, 0), (2, 0)],
                      timeout=DEADLINE, msg="wave_started on broker 1 only")
        time.sleep(ot.QUIET)
        self.assertEqual(sorted(self.wave_events(tid)), [(1, 0), (2, 0)])
        # a stale revision: broker 2 answers pauseTask E_CONFLICT while it has not yet
        # followed; once it has, its own pause goes through and reaches broker 1
        self.ok("pauseTask", id=tid)
        r = self.admins[1].command("resumeTask", id=tid)
        if "error" in r:
            self.assertIn("E_CONFLICT", r["error"], r)
        self.seen("pauseTask or resumeTask through broker 2",
                  lambda a: self.get_task(a, tid).get("paused")
                  == self.get_task(self.admins[1], tid).get("paused"),
                  admins=[self.a, self.admins[2]])


if __name__ == "__main__":
    ot.main()
