#!/usr/bin/python3
"""Integration: who may publish and subscribe where.

A vehicle (VIN = username, else client id; 17 chars of 0-9A-HJ-NPR-Z) may publish its own
request topics and subscribe under ota/v1/{its VIN}/ only; admins may read ota/v1/events/#
and use $CONTROL/ota/v1; nobody publishes under ota/v1/events; everybody else is denied in
the OTA namespace; outside it the plugin defers (so, with no other ACL source, Mosquitto
denies). MQTT 5 denials are checked on the wire: PUBACK 0x87, SUBACK 0x87 (0x80 for 3.1.1).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402

DENIED = 0x87
GOOD = ot.report(1, [ot.ev_download()])


class AclTest(ot.OtaTestCase):

    def barrier(self, b, db, seq=1):
        """A good report of a fresh vehicle, waited for in the store: anything published
        before it that was going to be stored is stored by then (one spool, in order)."""
        v = ot.vin(99)
        car = self.vehicle(b, v)
        before = db.count_vin(v) if db.path.exists() else 0
        car.report(seq, [ot.ev_eeprom()])
        ot.wait_until(lambda: db.count_vin(v) == before + 1, msg="barrier report stored")
        car.close()

    def test_vehicle_cannot_publish_for_another(self):
        b = self.broker()
        db = ot.Db(b.db_path)
        A, B, C = ot.vin(1), ot.vin(2), ot.vin(3)
        admin = self.admin(b)
        s0 = admin.stats()
        car_b = self.vehicle(b, B)
        self.assertEqual(car_b.subscribe("ota/v1/%s/#" % B), 1)
        car_a = self.vehicle(b, A)
        car_a.publish(ot.report_topic(B), GOOD)
        err = car_a.error()
        self.assertEqual(err["err"], "E_UNAUTHORIZED", err)
        self.assertIsInstance(err["msg"], str)
        self.assertTrue(err["msg"])
        raw_c = self.raw(b, C)
        self.assertEqual(raw_c.publish(ot.report_topic(B), GOOD), DENIED)
        payload, _ = raw_c.wait_publish(ot.error_topic(C))
        self.assertEqual(ot.cbor2.loads(payload)["err"], "E_UNAUTHORIZED")
        # Other request topics of B, and reply topics nobody may publish.
        for suffix in ("shadow/update", "shadow/get", "pkg/get", "file/get"):
            self.assertEqual(raw_c.publish("ota/v1/%s/%s" % (B, suffix), b"\xa0"), DENIED,
                             suffix)
        for suffix in ("error", "shadow/delta", "shadow/accepted", "pkg/desc", "file/data",
                       "whatever"):
            self.assertEqual(raw_c.publish("ota/v1/%s/%s" % (C, suffix), b"\xa0"), DENIED,
                             "own " + suffix)
        car_b.report(1, [ot.ev_download(pct=1)])
        car_a.report(1, [ot.ev_download(pct=2)])
        ot.wait_until(lambda: db.count_vin(A) == 1 and db.count_vin(B) == 1,
                      msg="A's and B's own reports stored")
        self.barrier(b, db)
        self.assertEqual(db.count_vin(B), 1, "a foreign report was stored")
        self.assertEqual([r["pct"] for r in db.rows("download_progress", B)], [1])
        self.assertEqual(db.count_vin(C), 0)
        self.assertEqual(car_b.quiet(), [], "B saw something of A's or C's")
        s1 = admin.stats()
        self.assertGreaterEqual(s1["acl_denied"] - s0["acl_denied"], 2)
        self.assertStatsDelta(s0, s1, "reports_accepted", 3)

    def test_vehicle_cannot_subscribe_elsewhere(self):
        b = self.broker()
        A, B = ot.vin(1), ot.vin(2)
        denied = ["ota/v1/%s/#" % B, "ota/v1/%s/error" % B, "ota/v1/%s/shadow/delta" % B,
                  "ota/v1/+/error", "ota/v1/+/#", "ota/v1/#", "ota/#", "#", "+/v1/%s/#" % B,
                  "ota/v1/events/#", "ota/v1/events/status/%s" % A,
                  "$CONTROL/ota/v1/response", "$CONTROL/ota/v1/#"]
        for mqtt5, code in ((True, DENIED), (False, 0x80)):
            car = self.vehicle(b, A, mqtt5=mqtt5)
            for f in denied:
                self.assertEqual(car.subscribe(f), code, "%s (mqtt5=%s)" % (f, mqtt5))
            for f in ("ota/v1/%s/#" % A, "ota/v1/%s/error" % A, "ota/v1/%s/shadow/+" % A):
                self.assertEqual(car.subscribe(f), 1, f)
            car.close()
        raw = self.raw(b, A)
        self.assertEqual(raw.subscribe("ota/v1/%s/#" % B), DENIED)

    def test_vehicle_cannot_use_control_api(self):
        b = self.broker()
        admin = self.admin(b)
        s0 = admin.stats()
        A = ot.vin(1)
        raw = self.raw(b, A)
        stats_req = json.dumps({"commands": [{"command": "getStats"}]}).encode()
        self.assertEqual(raw.publish("$CONTROL/ota/v1", stats_req), DENIED)
        self.assertEqual(raw.publish("$CONTROL/ota/v1/file", b"\xa0"), DENIED)
        raw.close()
        car = self.vehicle(b, A)
        car.publish("$CONTROL/ota/v1", stats_req)
        self.assertEqual(car.quiet(), [], "a vehicle got an operator API response")
        s1 = admin.stats()
        self.assertGreaterEqual(s1["acl_denied"] - s0["acl_denied"], 3)

    def test_non_vehicle_is_denied_in_namespace(self):
        b = self.broker()
        db = ot.Db(b.db_path)
        V = ot.vin(1)
        raw = self.raw(b, "not-a-vin")
        for topic in (ot.report_topic(V), "ota/v1/not-a-vin/report", "ota/v1/events/status/%s" % V,
                      "$CONTROL/ota/v1", "$CONTROL/ota/v1/file"):
            self.assertEqual(raw.publish(topic, GOOD), DENIED, topic)
        for f in ("ota/v1/#", "ota/v1/%s/#" % V, "ota/v1/events/#", "$CONTROL/ota/v1/response"):
            self.assertEqual(raw.subscribe(f), DENIED, f)
        c311 = self.client(ot.Client, b, "not-a-vin-311", mqtt5=False)
        self.assertEqual(c311.subscribe("ota/v1/events/#"), 0x80)
        self.barrier(b, db)
        self.assertEqual(db.count_vin(V), 0)
        self.assertEqual(db.count_vin("not-a-vin"), 0)

    def test_outside_namespace_is_deferred(self):
        # Default config: the plugin defers, no other ACL source -> Mosquitto denies.
        b = self.broker()
        raw = self.raw(b, ot.vin(1))
        self.assertEqual(raw.publish("fleet/x", b"x"), DENIED)
        self.assertEqual(raw.subscribe("fleet/#"), DENIED)
        raw2 = self.raw(b, "not-a-vin")
        self.assertEqual(raw2.publish("fleet/x", b"x"), DENIED)
        # With an ACL file that allows everything, the deferred topics are allowed ...
        acl = self.tmp / "acl"
        acl.write_text("pattern readwrite #\n")
        b2 = self.broker(extra_conf=["acl_file %s" % acl])
        db2 = ot.Db(b2.db_path)
        raw = self.raw(b2, ot.vin(1))
        self.assertEqual(raw.subscribe("fleet/#"), 1)
        self.assertEqual(raw.publish("fleet/x", b"x"), 0)
        self.assertEqual(raw.wait_publish("fleet/x")[0], b"x")
        # ... but the plugin still decides in its namespace.
        self.assertEqual(raw.publish(ot.report_topic(ot.vin(2)), GOOD), DENIED)
        self.assertEqual(raw.subscribe("ota/v1/%s/#" % ot.vin(2)), DENIED)
        self.assertEqual(self.raw(b2, "not-a-vin").publish(ot.report_topic(ot.vin(2)), GOOD),
                         DENIED)
        self.barrier(b2, db2)
        self.assertEqual(db2.count_vin(ot.vin(2)), 0)

    def test_admin_reads_events_but_cannot_publish_them(self):
        b = self.broker()
        db = ot.Db(b.db_path)
        V = ot.vin(1)
        admin = self.admin(b)
        self.assertEqual(admin.response_suback, 1)
        self.assertEqual(admin.subscribe("ota/v1/events/#"), 1)
        raw = self.raw(b, "admin-raw", username=ot.ADMIN)
        fake = json.dumps({"vin": V, "seq": 1, "index": 0, "task": "T", "ts": 1,
                           "status": "succeeded", "trigger": "normal", "received_at": 1})
        self.assertEqual(raw.publish("ota/v1/events/status/%s" % V, fake.encode()), DENIED)
        self.assertEqual(raw.publish(ot.report_topic(V), GOOD), DENIED)
        self.assertEqual(raw.subscribe("ota/v1/%s/#" % V), DENIED)
        self.assertEqual(admin.quiet("ota/v1/events/#"), [], "a forged event was delivered")
        # Real events reach the admin.
        car = self.vehicle(b, V)
        car.report(1, [ot.ev_status(status="downloaded", trigger="normal")])
        self.assertEqual(admin.get("ota/v1/events/status/%s" % V).json()["status"], "downloaded")
        # A non-admin username is no operator.
        op = self.raw(b, "operator-raw", username="operator")
        req = json.dumps({"commands": [{"command": "getStats"}]}).encode()
        self.assertEqual(op.publish("$CONTROL/ota/v1", req), DENIED)
        self.assertEqual(op.subscribe("ota/v1/events/#"), DENIED)
        self.barrier(b, db)
        self.assertEqual(db.count_vin(V), 1)

    def test_invalid_vins_are_not_vehicles(self):
        b = self.broker()
        db = ot.Db(b.db_path)
        bad = ["lsvta000000000001", "LSVTI000000000001", "LSVTO000000000001",
               "LSVTQ000000000001", "LSVTA00000000001", "LSVTA0000000000001",
               "LSVTA00000000000-"]
        for cid in bad:
            raw = self.raw(b, cid)
            self.assertEqual(raw.publish(ot.report_topic(cid), GOOD), DENIED, cid)
            self.assertEqual(raw.subscribe("ota/v1/%s/#" % cid), DENIED, cid)
            raw.close()
        # An invalid username makes the connection a non-vehicle; with a VIN as client id it
        # would hold that vehicle's client id: refused at CONNECT (issue 13).
        good_id = ot.vin(5)
        with self.assertRaises(ot.HarnessError):
            self.raw(b, good_id, username="lsvta000000000005")
        raw = self.raw(b, "tcu-5", username="lsvta000000000005")
        self.assertEqual(raw.publish(ot.report_topic(good_id), GOOD), DENIED)
        self.assertEqual(raw.publish(ot.report_topic("lsvta000000000005"), GOOD), DENIED)
        self.barrier(b, db)
        self.assertEqual(db.total(), 1, "only the barrier report may be stored")

    def test_retained_publish_refused(self):
        b = self.broker()
        db = ot.Db(b.db_path)
        V = ot.vin(1)
        raw = self.raw(b, V)
        self.assertEqual(raw.publish(ot.report_topic(V), GOOD, retain=True), DENIED)
        self.assertEqual(raw.subscribe("ota/v1/%s/#" % V), 1)
        self.barrier(b, db)
        self.assertEqual(db.count_vin(V), 0)
        late = self.vehicle(b, ot.vin(2))
        self.assertEqual(late.subscribe("ota/v1/%s/#" % ot.vin(2)), 1)
        self.assertEqual(late.quiet(), [])
        self.assertEqual([r for r in raw.received if r[0].endswith("/report")], [])

    def test_username_overrides_client_id(self):
        b = self.broker()
        db = ot.Db(b.db_path)
        A, B = ot.vin(1), ot.vin(2)
        car = self.vehicle(b, "tcu-of-B", username=B)  # client id not a VIN, username B: B
        self.assertEqual(car.vin, B)
        car.report(1, [ot.ev_download(pct=5)], vin_=B)
        car.publish(ot.report_topic(A), GOOD)
        err = car.error()  # on ota/v1/B/error
        self.assertEqual(err["err"], "E_UNAUTHORIZED")
        self.assertEqual(car.subscribe("ota/v1/%s/#" % B), 1)
        self.assertEqual(car.subscribe("ota/v1/%s/#" % A), DENIED)
        # Another VIN as client id is refused at CONNECT (issue 13: it would receive what
        # the plugin sends to that VIN's client id); the VIN's own is fine.
        with self.assertRaises(ot.HarnessError):
            self.raw(b, ot.vin(5), username=ot.vin(6))
        raw = self.raw(b, ot.vin(6), username=ot.vin(6))
        self.assertIn(raw.publish(ot.report_topic(ot.vin(6)), GOOD), (0x00, 0x10))
        self.assertEqual(raw.publish(ot.report_topic(ot.vin(5)), GOOD), DENIED)
        self.barrier(b, db)
        self.assertEqual(db.count_vin(B), 1)
        self.assertEqual(db.rows("download_progress", B)[0]["pct"], 5)
        self.assertEqual(db.count_vin(A), 0)
        self.assertEqual(db.count_vin(ot.vin(6)), 1)
        self.assertEqual(db.count_vin(ot.vin(5)), 0)


if __name__ == "__main__":
    ot.main()
