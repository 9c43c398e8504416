#!/usr/bin/python3
"""Integration: two brokers sharing one MongoDB database (the mongo_peer test double) never
send the same notice twice (docs/mongodb.md "The notice claim", docs/task-engine.md).

Both brokers are real mosquitto processes with the plugin, on two ports, with the same
`plugin_opt_store mongodb://.../ota`. A broker loads tasks at start only, so the task is
created on broker A first and broker B is started afterwards: both then hold the task and
both would dispatch it. Every vehicle is connected to BOTH brokers (its client id on each)
and announces itself on both at once, so both brokers try to notify every vehicle at the
same moment: the race the claim settles. Checked: each notice msg_id reached its vehicle
exactly once across the two connections, and through the broker that holds its claim
(ota_vehicle_notice_claim, read back with pymongo); the notice collection holds each msg_id
once; the brokers' claim counters add up (every vehicle tried by both: won + lost = 2 per
notice). The same for compensation re-sends (new msg_id TASK:VIN:1), which both brokers
attempt when the vehicle's failure report reaches both. And one broker whose claim fails
(the peer killed): nothing is sent, the failure is logged once, the claim is retried with
backoff and the notice goes out once the database is back.
"""

import collections
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_shadow import ShadowCar, update, topic  # noqa: E402
from test_tasks import TaskCase, vehicle  # noqa: E402

FIRST = 20  # VIN numbers of the fleet: FIRST .. FIRST + n - 1


class TwoBrokers(TaskCase):

    def setUp(self):
        super().setUp()
        self.peer = self.mongo_peer()
        self.uri = self.peer.uri("ota")
        self.mdb = self.mongo_db(self.peer.uri()).db

    def start_a(self, n, **vehicle_kw):
        """Broker A with the catalog and a fleet of n vehicles (VINs FIRST..)."""
        self.start(store=self.uri, broker_id="broker-A")
        self.A = self.b
        self.catalog()
        self.ok("upsertVehicles", vehicles=[vehicle(FIRST + i, **vehicle_kw) for i in range(n)])
        return [ot.vin(FIRST + i) for i in range(n)]

    def start_b(self, **kw):
        """Broker B on the same database, its file repository shared with A's."""
        self.B = self.broker(store=self.uri, file_dir=str(self.files),
                             extra_conf=["set_tcp_nodelay true"], **kw)
        self.admin_b = self.admin(self.B, client_id="admin-b", nodelay=True)
        return self.B

    def stats(self):
        return {"A": self.a.stats()["claims"], "B": self.admin_b.stats()["claims"]}

    def notices(self, car):
        """The msg_ids of the notices car received (shadow/delta with desired.task)."""
        out = []
        for m in car.received(topic(car.vin, "shadow/delta")):
            t = (m.cbor().get("desired") or {}).get("task")
            if t:
                out.append(t["msg_id"])
        return out

    def received(self, cars, suffix):
        """{msg_id: [broker names whose connection got it]} for msg_ids ending in suffix."""
        got = collections.defaultdict(list)
        for name, side in cars.items():
            for car in side:
                for mid in self.notices(car):
                    if mid.endswith(suffix):
                        got[mid].append(name)
        return got

    def claims(self, suffix):
        """{msg_id: owner} of the stored claims ending in suffix."""
        return {d["_id"]: d["owner"] for d in self.mdb.ota_vehicle_notice_claim.find()
                if d["_id"].endswith(suffix)}

    def check_exactly_once(self, cars, vins, tid, suffix, owners):
        want = {"%s:%s%s" % (tid, v, suffix) for v in vins}
        ot.wait_until(lambda: set(self.received(cars, suffix)) >= want,
                      timeout=ot.TIMEOUT * 2, msg="every %s notice received" % suffix)
        time.sleep(ot.QUIET)  # a second copy would arrive within this
        got = self.received(cars, suffix)
        self.assertEqual(set(got), want)
        twice = {m: b for m, b in got.items() if len(b) != 1}
        self.assertEqual(twice, {}, "notices received more than once")
        claims = self.claims(suffix)
        self.assertEqual(set(claims), want)
        for mid, brokers in got.items():  # sent by the broker that holds the claim
            self.assertEqual(owners[brokers[0]], claims[mid], mid)
        return got

    def check_notice_rows(self, n_want):
        def rows():
            docs = list(self.mdb.ota_vehicle_download_notice.find({}, {"msg_id": 1}))
            return len(docs) >= n_want and docs
        docs = ot.wait_until(rows, msg="%d notices stored" % n_want)
        ids = [d["msg_id"] for d in docs]
        self.assertEqual(len(ids), len(set(ids)), "a notice stored twice")
        self.assertEqual(len(ids), n_want)

    def test_two_brokers_never_send_the_same_notice_twice(self):
        n = 40
        vins = self.start_a(n)
        tid = self.create(vins)["id"]  # stored before the answer: B loads it at start
        self.start_b(broker_id="broker-B")
        cars = {"A": [self.client(ShadowCar, self.A, v) for v in vins],
                "B": [self.client(ShadowCar, self.B, v) for v in vins]}
        # Each vehicle announces itself on both brokers at the same moment.
        go = threading.Barrier(2)

        def announce(side):
            go.wait()
            for car in cars[side]:
                car.c.publish(topic(car.vin, "shadow/update"), update(fw="1.0"), qos=0)
        threads = [threading.Thread(target=announce, args=(s,)) for s in cars]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = self.check_exactly_once(cars, vins, tid, ":0",
                                      {"A": "broker-A", "B": "broker-B"})
        self.check_notice_rows(n)
        st = self.stats()
        self.assertEqual(st["A"]["won"] + st["B"]["won"], n, st)
        # Both usually try every VIN; on a busy machine one may see the other's notice
        # first (change log) and not try: at most one loser per VIN.
        self.assertLessEqual(st["A"]["lost"] + st["B"]["lost"], n, st)
        self.assertEqual(st["A"]["errors"] + st["B"]["errors"], 0, st)
        split = collections.Counter(b[0] for b in got.values())
        print("\nclaim race: %d notices, sent by A %d, by B %d" % (n, split["A"], split["B"]),
              file=sys.stderr)
        # Only the claim holder stores the execution: every row says notified.
        rows = list(self.mdb.ota_task_vin.find({"task": tid}))
        self.assertEqual(len(rows), n)
        self.assertEqual({r["state"] for r in rows}, {"notified"}, rows[:3])
        # getTask on either broker: every execution notified (here or elsewhere).
        for adm in (self.a, self.admin_b):
            r = adm.command("getTask", id=tid)["data"]["counts"]
            self.assertEqual((r["notified"], r["queued"]), (n, 0), r)
        # The vehicles finish, reporting to both brokers: the claim holder stores the end, the
        # other broker follows in memory (its vehicle is free again) and stores nothing.
        done = ot.report(1, [ot.ev_status(task=tid, status="succeeded")])
        for a, b in zip(cars["A"], cars["B"]):
            a.c.publish(ot.report_topic(a.vin), done, qos=1)
            b.c.publish(ot.report_topic(b.vin), done, qos=1)
        for adm in (self.a, self.admin_b):
            ot.wait_until(lambda: adm.command("getTask", id=tid)["data"]["counts"]["succeeded"]
                          == n, msg="every execution succeeded")
        ot.wait_until(lambda: {r["state"] for r in self.mdb.ota_task_vin.find({"task": tid})}
                      == {"succeeded"}, msg="executions stored as succeeded")

    def test_compensation_resends_are_claimed_too(self):
        n = 12
        vins = self.start_a(n, activated=True, passenger=True)
        tid = self.create(vins, max_resend=1)["id"]
        cars = {"A": [self.client(ShadowCar, self.A, v) for v in vins], "B": []}
        for car in cars["A"]:
            car.update(update(fw="1.0"))
        self.check_exactly_once(cars, vins, tid, ":0", {"A": "broker-A"})
        ot.wait_until(lambda: len(list(self.mdb.ota_task_vin.find(
            {"task": tid, "state": "notified"}))) == n, msg="executions stored as notified")
        # B starts now: it loads the executions notified (in flight) and, like A, re-sends
        # when a vehicle reports download_failed (activated passenger car, max_resend 1).
        self.start_b()  # the default broker id: hostname:spool dir
        cars["B"] = [self.client(ShadowCar, self.B, v) for v in vins]
        for car in cars["B"]:  # a shadow/get: B now knows the client (deltas reach it)
            # (A stores its shadows in batches: B may start before the last one is stored)
            task = ot.wait_until(lambda: (car.shadow().get("desired") or {}).get("task"),
                                 msg="the desired task on B")
            self.assertEqual(task["msg_id"], "%s:%s:0" % (tid, car.vin))
        st = self.stats()
        self.assertNotEqual(st["A"]["broker_id"], st["B"]["broker_id"])
        self.assertTrue(st["B"]["broker_id"].endswith(str(self.B.spool_dir)), st)
        failed = ot.report(1, [ot.ev_status(task=tid, status="failed", error="download_failed")])
        for a, b in zip(cars["A"], cars["B"]):
            a.c.publish(ot.report_topic(a.vin), failed, qos=1)
            b.c.publish(ot.report_topic(b.vin), failed, qos=1)
        owners = {"A": "broker-A", "B": st["B"]["broker_id"]}
        self.check_exactly_once(cars, vins, tid, ":1", owners)
        self.check_notice_rows(2 * n)
        st = self.stats()
        self.assertEqual(st["A"]["won"] + st["B"]["won"], 2 * n, st)
        # At most one loser per resend: on a busy machine one broker may learn the other's
        # resend (change log) before its own vehicle's report and not try at all.
        self.assertLessEqual(st["A"]["lost"] + st["B"]["lost"], n, st)

    def test_a_claim_failing_is_retried_and_the_notice_sent_once(self):
        vins = self.start_a(2)
        tid = self.create(vins)["id"]
        self.peer.stop(kill=True)  # MongoDB gone: the claim job fails
        cars = [self.client(ShadowCar, self.A, v) for v in vins]
        for car in cars:
            car.update(update(fw="1.0"))
            car.accepted()
        self.A.wait_log(lambda line: "notice claims failed" in line, timeout=ot.TIMEOUT * 2)
        st = self.a.stats()["claims"]
        self.assertGreaterEqual(st["errors"], 1, st)
        self.assertEqual(st["won"], 0, st)
        self.assertEqual(self.notices(cars[0]) + self.notices(cars[1]), [])  # nothing sent
        time.sleep(2.5)  # more failed retries (backoff), still logged once
        self.assertEqual(sum("notice claims failed" in line for line in self.A.log_lines()), 1)
        self.peer.start()
        self.A.wait_log(lambda line: "notice claims work again" in line, timeout=ot.TIMEOUT * 2)
        for car in cars:
            ot.wait_until(lambda: self.notices(car), msg="the notice after the outage")
        time.sleep(ot.QUIET)
        for car in cars:
            self.assertEqual(self.notices(car), ["%s:%s:0" % (tid, car.vin)])
        st = self.a.stats()["claims"]
        self.assertEqual((st["won"], st["lost"], st["waiting"]), (2, 0, 0), st)
        self.assertEqual(set(self.claims(":0").values()), {"broker-A"})


if __name__ == "__main__":
    ot.main()
