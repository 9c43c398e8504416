#!/usr/bin/python3
"""Integration: start without the database (issue 15, docs/mongodb.md "Start without the
database"). A broker on the mongo_peer test double keeps a local snapshot
(<spool_dir>/snapshot.db); stopped, then started again while the peer is down, it starts
from the snapshot: it knows its vehicles and tasks (getVehicle, getTask), accepts a
vehicle's reports (acked: spooled), and once the peer is back those reports are stored
there and the catalog changes made meanwhile through another broker are followed. A broker
with neither the peer nor a snapshot refuses to start. plugin_opt_snapshot_period_ms sets how
often the snapshot is saved whole (what the change log does not carry: shadows, executions).
"""

import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_catalog_api import CatalogCase, M, S  # noqa: E402

DEADLINE = 30 * ot.SCALE


def snapshot_vins(path, table="ota_vehicle"):
    if not path.exists():
        return set()
    try:
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
        try:
            return {r[0] for r in con.execute("SELECT vin FROM %s" % table)}
        finally:
            con.close()
    except sqlite3.Error:
        return set()


class StartFromSnapshot(CatalogCase):

    def test_start_with_the_peer_down_then_catch_up(self):
        peer = self.mongo_peer()
        uri = peer.uri("ota")
        mdb = self.mongo_db(peer.uri()).db
        self.start(store=uri, broker_id="broker-1")
        vins = [ot.vin(i, "LSNAP") for i in (1, 2)]
        self.ok("setModel", model=M, series=S, supports_config_word=False, ecus=["BMS"])
        self.ok("upsertVehicles", vehicles=[
            {"vin": v, "model": M, "series": S, "status": "in_stock", "usage": "retail",
             "fw": "1.0"} for v in vins])
        snap = self.b.dir / "spool" / "snapshot.db"
        ot.wait_until(lambda: snapshot_vins(snap) == set(vins), timeout=DEADLINE,
                      msg="the vehicles in the local snapshot")
        self.a.close()
        self.b.stop()
        peer.stop()
        self.b.start()  # from the snapshot: the peer is down
        self.a = self.admin(self.b, client_id="admin-again", nodelay=True)
        st = self.ok("getStats")
        self.assertTrue(st["snapshot"]["from_snapshot"], st.get("snapshot"))
        self.assertEqual(self.ok("getVehicle", vin=vins[0])["vehicle"]["fw"], "1.0")
        car = self.vehicle(self.b, vins[0])
        car.report(1, [ot.ev_status("T-1", ot.TS0 + 1, status="downloading")])  # acked
        car.report(2, [ot.ev_status("T-1", ot.TS0 + 2, status="downloaded")])
        peer.start()
        ot.wait_until(lambda: len(list(mdb["ota_vehicle_upgrade_status"].find({"vin": vins[0]}))) == 2,
                      timeout=DEADLINE, msg="the spooled reports stored after the peer is back")
        # the follower catches up: a change stored by another broker meanwhile
        other = self.broker(store=uri, broker_id="broker-2", file_dir=str(self.files))
        a2 = self.admin(other, client_id="admin-2")
        r = a2.command("addToList", list="blacklist", vins=[vins[1]])
        self.assertEqual(r.get("data"), {"added": 1}, r)
        ot.wait_until(lambda: self.ok("getList", list="blacklist")["vins"] == [vins[1]],
                      timeout=DEADLINE, msg="the change from broker 2 followed")

    def test_a_short_snapshot_period_saves_it_whole(self):
        """With plugin_opt_snapshot_period_ms 1000 the snapshot is saved whole every second:
        a vehicle's shadow, which no change log entry carries (the 5 s refresh never copies
        it; only a whole save does, 60 s apart by default), is in it within seconds, and
        getStats counts the saves."""
        peer = self.mongo_peer()
        self.start(store=peer.uri("ota"), broker_id="broker-1", snapshot_period_ms=1000)
        v = ot.vin(1, "LSNAP")
        self.ok("setModel", model=M, series=S, supports_config_word=False, ecus=["BMS"])
        self.ok("upsertVehicles", vehicles=[{"vin": v, "model": M, "series": S,
                                             "status": "in_stock", "usage": "retail",
                                             "fw": "1.0"}])
        snap = self.b.dir / "spool" / "snapshot.db"
        # the save at start is done (the shadow below is not in it)
        ot.wait_until(lambda: self.ok("getStats")["snapshot"]["saves"] >= 1, timeout=DEADLINE,
                      msg="the save at start")
        saves = self.ok("getStats")["snapshot"]["saves"]
        car = self.vehicle(self.b, v)
        car.publish("ota/v1/%s/shadow/update" % v, ot.cbor2.dumps(
            {"reported": {"fw": "1.0", "state": "idle", "ecus": {"BMS": "1.0"}}}))
        car.get("ota/v1/%s/shadow/accepted" % v)
        ot.wait_until(lambda: v in snapshot_vins(snap, "ota_vehicle_shadow"), timeout=DEADLINE,
                      msg="the shadow in the local snapshot (a whole save)")
        ot.wait_until(lambda: self.ok("getStats")["snapshot"]["saves"] >= saves + 2,
                      timeout=DEADLINE, msg="whole saves every second")

    def test_refuses_to_start_with_neither(self):
        peer = self.mongo_peer()
        uri = peer.uri("ota")
        peer.stop()
        with self.assertRaises(ot.HarnessError) as cm:
            self.broker(store=uri, broker_id="broker-x", full_stacks=True)  # fails to start
        self.assertIn("cannot start", str(cm.exception))


if __name__ == "__main__":
    ot.main()
