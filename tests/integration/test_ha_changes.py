#!/usr/bin/python3
"""Integration: change propagation between brokers on one database (issue 15,
docs/mongodb.md "Change propagation"). Three real brokers on the mongo_peer test double;
every operator change goes through broker 1 only, and each must come into effect on
brokers 2 and 3 (started before the changes, so they learn them by following the change
log, not by loading at start): models, vehicles, files, a package released, a strategy and
its binding, a task created, a VIN blacklisted, a task canceled, a vehicle's report seq
reset (resetVehicleSeq: the other brokers' replay guards, and their local snapshots, follow
it). Each condition is waited
for with a generous deadline; the time it took is printed (not asserted: speed belongs to
benchmarks). getStats shows each follower's position and lag.
"""

import signal
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_catalog_api import CatalogCase, M, S, package  # noqa: E402

DEADLINE = 20 * ot.SCALE


def snapshot_resets(path, vins):
    """The resets of vins' replay guard rows in a broker's local snapshot (None: none)."""
    if not path.exists():
        return None
    try:
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            got = dict(con.execute("SELECT vin, resets FROM ota_vehicle_state"))
        finally:
            con.close()
    except sqlite3.Error:
        return None
    return [got.get(v) for v in vins]


class ChangePropagation(CatalogCase):

    def setUp(self):
        super().setUp()
        self.peer = self.mongo_peer()
        self.uri = self.peer.uri("ota")

    def others(self, n):
        out = []
        for i in range(n):
            b = self.broker(store=self.uri, broker_id="broker-%d" % (i + 2),
                            file_dir=str(self.files), extra_conf=["set_tcp_nodelay true"],
                            signing_key=str(self.tmp / "ota-signing.pem"))
            out.append(self.admin(b, client_id="admin-%d" % (i + 2), nodelay=True))
        return out

    def seen(self, admins, what, check):
        """Waits until check(admin) holds on every admin; prints how long it took."""
        t0 = time.monotonic()
        for a in admins:
            try:
                ot.wait_until(lambda: check(a), timeout=DEADLINE, interval=0.01,
                              msg="%s on %s" % (what, a.client_id))
            except ot.HarnessError:
                print("getStats follow on %s: %r" % (a.client_id, self.data(a, "getStats")
                                                      .get("follow")), file=sys.stderr)
                raise
        print("%s: in effect on brokers 2 and 3 after %.0f ms" %
              (what, 1000 * (time.monotonic() - t0)), file=sys.stderr)

    @staticmethod
    def data(a, command, **fields):
        r = a.command(command, **fields)
        return r.get("data")

    def brokers_and_catalog(self, n):
        """Broker 1 and n others on the peer; a model, three vehicles and a package (a
        draft) made through broker 1. Returns (the others' admins, VINs, package id)."""
        self.start(store=self.uri, broker_id="broker-1",
                   signing_key=str(self.tmp / "ota-signing.pem"))
        others = self.others(n)
        self.ok("setModel", model=M, series=S, supports_config_word=False, ecus=["BMS"])
        vins = [ot.vin(i, "LHACH") for i in range(1, 4)]
        self.ok("upsertVehicles", vehicles=[
            {"vin": v, "model": M, "series": S, "status": "in_stock", "usage": "retail",
             "fw": "1.0"} for v in vins])
        sha = self.put_file(b"firmware 2.0" * 100)
        return others, vins, self.add_package(package("2.0", [("BMS", "ecu", sha)]))

    def test_changes_through_broker_1_reach_brokers_2_and_3(self):
        others, vins, pid = self.brokers_and_catalog(2)
        self.seen(others, "a vehicle upserted",
                  lambda a: ((self.data(a, "getVehicle", vin=vins[2]) or {}).get("vehicle")
                  or {}).get("fw") == "1.0")
        self.set_status(pid, "released")
        self.seen(others, "a package released",
                  lambda a: ((self.data(a, "getPackage", id=pid) or {}).get("package")
                             or {}).get("status") == "released")
        self.ok("setStrategy", strategy={"id": "s", "package_kind": "full",
                                         "compare_version": "always",
                                         "ecus": [{"ecu": "BMS", "order": 0}]})
        self.ok("bindStrategy", id="s", model=M, series=S)
        # the vehicles are offline: the task's executions stay queued (nothing dispatched)
        t = self.ok("createTask", task={"name": "ha", "type": "normal", "model": M,
                                        "series": S, "version": "2.0", "vins": vins[:2]})
        tid = t["id"]
        self.seen(others, "a task created",
                  lambda a: ((self.data(a, "getTask", id=tid) or {}).get("counts") or {})
                  .get("queued") == 2)
        self.assertEqual(self.ok("addToList", list="blacklist", vins=[vins[2]]), {"added": 1})
        self.seen(others, "a VIN blacklisted",
                  lambda a: (self.data(a, "getList", list="blacklist") or {}).get("vins")
                  == [vins[2]])
        self.ok("setGroup", group={"name": "pilot", "vins": vins[:2]})
        self.seen(others, "a group set",
                  lambda a: (self.data(a, "getGroup", name="pilot") or {}).get("size") == 2)
        self.ok("setGroup", group={"name": "pilot", "vins": vins[1:]})
        self.seen(others, "a group's members replaced",
                  lambda a: (self.data(a, "getGroup", name="pilot", members=True) or {})
                  .get("vins") == vins[1:])
        self.ok("deleteGroup", name="pilot")
        self.seen(others, "a group deleted",
                  lambda a: "pilot" in a.command("getGroup", name="pilot").get("error", ""))
        self.ok("cancelTask", id=tid)
        self.seen(others, "a task canceled",
                  lambda a: (self.data(a, "getTask", id=tid) or {}).get("state") == "canceled")
        self.ok("deleteVehicle", vin=vins[2])
        self.seen(others, "a vehicle deleted",
                  lambda a: "error" in a.command("getVehicle", vin=vins[2]))
        for a in others:
            d = self.data(a, "getTask", id=tid)
            self.assertEqual(d["counts"]["canceled"], 2, d)
            f = self.data(a, "getStats")["follow"]
            print("getStats follow on %s: %r" % (a.client_id, f), file=sys.stderr)
            self.assertEqual(f["errors"], 0, f)
            self.assertEqual(f["behind"], 0, f)
            self.assertGreaterEqual(f["applied"], 12, f)
            self.assertEqual(f["tasks_added"], 1, f)
            self.assertEqual(f["tasks_canceled"], 1, f)
            ot.wait_until(lambda: self.data(a, "getStats")["follow"]["lag"] == 0,
                          timeout=DEADLINE, msg="no lag")
        # broker 1 follows its own changes too: a no-op (nothing canceled or added twice)
        f1 = self.ok("getStats")["follow"]
        self.assertEqual((f1["tasks_added"], f1["tasks_canceled"], f1["errors"]), (0, 0, 0), f1)

    def test_reset_vehicle_seq_reaches_every_replay_guard(self):
        """Two vehicles' old units report seq 1..5, one on broker 2, one on broker 3; their
        replacements start again at seq 1 and are refused (E_REPLAY) until the operator
        resets both VINs through broker 1, where neither vehicle ever reported. The reset
        reaches the replay guards of brokers 2 and 3 through the change log: each new
        unit's seq 1 is then taken there and stored under epoch "0~1"; the local snapshots
        carry the reset too."""
        others, vins, _ = self.brokers_and_catalog(2)
        brokers = self._brokers[-2:]
        db = self.mongo_db(self.peer.uri()).db["ota_vehicle_download_progress"]

        def stored(v, epoch, seq):
            return any(True for _ in db.find({"vin": v, "epoch": epoch, "seq": seq}))

        cars = []
        for b, v in zip(brokers, vins):
            car = self.vehicle(b, v)
            for seq in range(1, 6):
                car.report(seq, [ot.ev_download(pct=seq)])
            ot.wait_until(lambda: stored(v, "0", 5), timeout=DEADLINE, msg="old unit's seq 5")
            car.report(1, [ot.ev_download(pct=50)])
            self.assertEqual(car.error()["err"], "E_REPLAY")
            cars.append(car)
        for v in vins[:2]:
            self.assertEqual(self.ok("resetVehicleSeq", vin=v)["resets"], 1)

        def taken(car):
            """The new unit's seq 1 on its broker: stored under 0~1, or refused at once
            while that broker has not followed the reset yet (then sent again)."""
            car.report(1, [ot.ev_download(pct=1)])
            ot.wait_until(lambda: stored(car.vin, "0~1", 1) or car.received(
                ot.error_topic(car.vin)), timeout=DEADLINE, msg="seq 1 stored or refused")
            if stored(car.vin, "0~1", 1):
                return True
            self.assertEqual(car.error()["err"], "E_REPLAY")
            return False

        t0 = time.monotonic()
        for car in cars:
            ot.wait_until(lambda: taken(car), timeout=DEADLINE, interval=0.05,
                          msg="%s's seq 1 taken after the reset" % car.vin)
        print("resetVehicleSeq: in effect on brokers 2 and 3 after %.0f ms" %
              (1000 * (time.monotonic() - t0)), file=sys.stderr)
        for a in others:
            f = self.data(a, "getStats")["follow"]
            self.assertEqual(f["errors"], 0, f)
        # every broker's local snapshot carries the reset (its 5 s refresh)
        for b in self._brokers:
            snap = b.dir / "spool" / "snapshot.db"
            ot.wait_until(lambda: snapshot_resets(snap, vins[:2]) == [1, 1], timeout=DEADLINE,
                          msg="the resets in %s" % snap)

    def test_a_broker_behind_the_log_reloads(self):
        """Broker 2 is stopped (SIGSTOP) while broker 1 makes changes and the log is
        trimmed past them (the retention job): it cannot catch up entry by entry, so it
        reloads the catalog and the tasks in the background and swaps them in — a deleted
        vehicle gone, a changed one changed, a group, a blacklisted VIN, a new task, a
        vehicle's seq reset — then follows the log again from where the reload read it."""
        (a2,), vins, pid = self.brokers_and_catalog(1)
        b2 = self._brokers[-1]
        self.set_status(pid, "released")
        self.ok("setStrategy", strategy={"id": "s", "package_kind": "full",
                                         "compare_version": "always",
                                         "ecus": [{"ecu": "BMS", "order": 0}]})
        self.ok("bindStrategy", id="s", model=M, series=S)
        self.seen([a2], "the catalog", lambda a: (self.data(a, "getVehicle", vin=vins[2])
                                                  or {}).get("vehicle") is not None)
        reloads = self.data(a2, "getStats")["follow"]["reloads"]
        # a vehicle's old unit at seq 3 on broker 2; its reset comes while broker 2 is away
        db = self.mongo_db(self.peer.uri()).db["ota_vehicle_download_progress"]

        def stored(v, epoch, seq):
            return any(True for _ in db.find({"vin": v, "epoch": epoch, "seq": seq}))
        car = self.vehicle(b2, vins[0])
        for seq in range(1, 4):
            car.report(seq, [ot.ev_download(pct=seq)])
        ot.wait_until(lambda: stored(vins[0], "0", 3), timeout=DEADLINE, msg="old unit's seq 3")
        b2.proc.send_signal(signal.SIGSTOP)
        try:
            self.assertEqual(self.ok("resetVehicleSeq", vin=vins[0])["resets"], 1)
            self.ok("deleteVehicle", vin=vins[2])
            self.ok("upsertVehicles", vehicles=[{"vin": vins[1], "model": M, "series": S,
                                                 "status": "in_stock", "usage": "retail",
                                                 "fw": "1.5"}])
            self.ok("addToList", list="blacklist", vins=[vins[0]])
            self.ok("setGroup", group={"name": "pilot", "vins": vins[:2]})
            tid = self.ok("createTask", task={"name": "behind", "type": "normal", "model": M,
                                              "series": S, "version": "2.0",
                                              "vins": [vins[1]]})["id"]
            log = self.mongo_db(self.peer.uri()).db["ota_change_log"]
            last = max(d["_id"] for d in log.find({}, {"_id": 1}))
            log.delete_many({"_id": {"$lte": last}})  # trimmed: broker 2 is behind its start
        finally:
            b2.proc.send_signal(signal.SIGCONT)
        self.seen([a2], "the reload", lambda a: self.data(a, "getStats")["follow"]["reloads"]
                  > reloads)
        self.assertNotIn("data", a2.command("getVehicle", vin=vins[2]), "deleted, still held")
        self.assertEqual(self.data(a2, "getVehicle", vin=vins[1])["vehicle"]["fw"], "1.5")
        self.assertEqual(self.data(a2, "getList", list="blacklist")["vins"], [vins[0]])
        self.assertEqual(self.data(a2, "getGroup", name="pilot")["size"], 2)
        self.assertEqual(self.data(a2, "getTask", id=tid)["counts"].get("queued"), 1)
        # the reset it missed reached its replay guard: the new unit's seq 1 is taken
        car.report(1, [ot.ev_download(pct=1)])
        ot.wait_until(lambda: stored(vins[0], "0~1", 1), timeout=DEADLINE,
                      msg="the new unit's seq 1 taken on broker 2 after the reload")
        f = self.data(a2, "getStats")["follow"]
        self.assertGreaterEqual(f["behind"], 1, f)
        # (follow.errors may count reads that failed while the stopped broker's driver
        # caught up with its server: retried, as during any store hiccup)
        # and it follows the log again from where the reload read it
        self.ok("upsertVehicles", vehicles=[{"vin": vins[1], "model": M, "series": S,
                                             "status": "in_stock", "usage": "retail",
                                             "fw": "1.6"}])
        self.seen([a2], "a change after the reload",
                  lambda a: self.data(a, "getVehicle", vin=vins[1])["vehicle"]["fw"] == "1.6")
        print("getStats follow on admin-2: %r" % self.data(a2, "getStats")["follow"],
              file=sys.stderr)


if __name__ == "__main__":
    ot.main()
