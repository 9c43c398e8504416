#!/usr/bin/python3
"""Integration: no report a vehicle sends vanishes in silence (issue 13, items 6-8).

- A report whose seq is not newer than the last of its epoch is answered with E_REPLAY
  naming the last seq and epoch, counted, and kept in the quarantine; a new epoch starts
  its seqs again; resetVehicleSeq lets a replaced unit start over without an epoch, its
  events stored under "<epoch>~1"; the guard survives a restart.
- A refused report (here: one without events) is kept in ota_quarantine with its reason
  and payload, published on ota/v1/events/rejected/{vin}, listed by listQuarantine (VIN
  filter, paging) and by `otactl quarantine list`.
- Integer fields take integral floats (cbor-x writes integers above 2^32 as float64).
- A report of a VIN the catalog lacks is answered with E_UNKNOWN_VIN, quarantined, and
  sets nothing off (no ops_alert, no log_replay); plugin_opt_accept_unknown_vins 1 keeps
  the old behaviour.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402

M, S = "EX5", "S1"
MODEL = {"model": M, "series": S, "supports_config_word": False, "ecus": ["BMS", "VCU"]}
OTACTL = os.environ.get("OTA_OTACTL", "")


def vehicle(i):
    return {"vin": ot.vin(i), "model": M, "series": S, "status": "sold", "usage": "retail",
            "sold": True, "activated": True}


def report(seq, events, epoch=None):
    body = {"seq": seq, "events": events}
    if epoch is not None:
        body["epoch"] = epoch
    return cbor2.dumps(body)


class ReportsQuarantineTest(ot.OtaTestCase):

    def start(self, **opts):
        opts.setdefault("accept_unknown_vins", 0)
        self.b = self.broker(**opts)
        self.admin_ = self.admin(self.b)
        self.ok("setModel", **MODEL)
        self.ok("upsertVehicles", vehicles=[vehicle(1), vehicle(2)])
        self.db = ot.Db(self.b.db_path)

    def ok(self, command, **fields):
        r = self.admin_.command(command, **fields)
        self.assertNotIn("error", r, r)
        return r["data"]

    def epochs(self, v):
        return sorted((r["epoch"], r["seq"]) for r in self.db.query(
            "SELECT epoch, seq FROM ota_vehicle_download_progress WHERE vin = ?", (v,)))

    def test_replay_answered_new_epoch_taken_and_guard_kept(self):
        self.start()
        v = ot.vin(1)
        car = self.vehicle(self.b, v)
        car.publish(ot.report_topic(v), report(5, [ot.ev_download()]))
        ot.wait_until(lambda: self.db.total() == 1, msg="seq 5 stored")
        s0 = self.admin_.stats()
        car.publish(ot.report_topic(v), report(1, [ot.ev_download(pct=1)]))
        err = car.error()
        self.assertEqual((err["err"], err["seq"], err["epoch"], err["last_seq"],
                          err["last_epoch"]), ("E_REPLAY", 1, "0", 5, "0"), err)
        # A new telematics unit announces itself with an epoch: its seq 1 is taken.
        car.publish(ot.report_topic(v), report(1, [ot.ev_download(pct=2)], epoch="unit-2"))
        ot.wait_until(lambda: self.db.total() == 2, msg="epoch unit-2 seq 1 stored")
        self.assertEqual(self.epochs(v), [("0", 5), ("unit-2", 1)])
        s1 = self.admin_.wait_drained(baseline=s0)
        self.assertStatsDelta(s0, s1, "reports_replayed", 1)
        self.assertStatsDelta(s0, s1, "rejected.E_REPLAY", 1)
        self.assertStatsDelta(s0, s1, "reports_accepted", 1)
        self.assertEqual(car.quiet(ot.error_topic(v)), [])
        # After a restart the guard remembers epoch unit-2 seq 1.
        car.close()  # its reconnect would take the client id from car2
        self.b.restart()
        car2 = self.vehicle(self.b, v)
        car2.publish(ot.report_topic(v), report(1, [ot.ev_download()], epoch="unit-2"))
        err = car2.error()
        self.assertEqual((err["err"], err["last_seq"], err["last_epoch"]),
                         ("E_REPLAY", 1, "unit-2"), err)
        # An integer epoch is its decimal text.
        car2.publish(ot.report_topic(v), report(3, [ot.ev_download()], epoch=42))
        ot.wait_until(lambda: ("42", 3) in self.epochs(v), msg="epoch 42 stored")

    def test_reset_seq_for_a_replaced_unit(self):
        self.start()
        v = ot.vin(2)
        car = self.vehicle(self.b, v)
        car.publish(ot.report_topic(v), report(7, [ot.ev_download()]))
        ot.wait_until(lambda: self.db.total() == 1, msg="old unit's seq 7 stored")
        # The replacement starts at 1 without an epoch: refused until the operator resets.
        car.publish(ot.report_topic(v), report(1, [ot.ev_download(pct=9)]))
        self.assertEqual(car.error()["err"], "E_REPLAY")
        data = self.ok("resetVehicleSeq", vin=v)
        self.assertEqual((data["vin"], data["last_seq"], data["last_epoch"], data["resets"]),
                         (v, 7, "0", 1), data)
        car.publish(ot.report_topic(v), report(1, [ot.ev_download(pct=9)]))
        ot.wait_until(lambda: self.db.total() == 2, msg="new unit's seq 1 stored")
        self.assertEqual(self.epochs(v), [("0", 7), ("0~1", 1)])
        self.assertEqual(car.quiet(ot.error_topic(v)), [])
        self.admin_.wait_drained()
        car.close()
        self.b.restart()  # the reset and the new unit's seq 1 survive
        car2 = self.vehicle(self.b, v)
        car2.publish(ot.report_topic(v), report(1, [ot.ev_download()]))
        err = car2.error()
        self.assertEqual((err["err"], err["last_seq"]), ("E_REPLAY", 1), err)
        car2.publish(ot.report_topic(v), report(2, [ot.ev_download()]))
        ot.wait_until(lambda: ("0~1", 2) in self.epochs(v), msg="seq 2 stored under 0~1")
        self.admin_ = self.admin(self.b)
        bad = self.admin_.command("resetVehicleSeq", vin="nope")
        self.assertIn("vin", bad.get("error", ""), bad)

    def test_refused_report_quarantined_published_and_listed(self):
        self.start()
        v = ot.vin(1)
        self.admin_.subscribe("ota/v1/events/rejected/#")
        car = self.vehicle(self.b, v)
        bodies = [cbor2.dumps({"seq": 10 + i, "events": []}) for i in range(3)]
        for body in bodies:
            car.publish(ot.report_topic(v), body)
            err = car.error()
            self.assertEqual(err["err"], "E_BAD_REQUEST", err)
            ev = self.admin_.get("ota/v1/events/rejected/%s" % v).json()
            self.assertEqual((ev["vin"], ev["code"], ev["seq"], ev["epoch"], ev["size"]),
                             (v, "E_BAD_REQUEST", cbor2.loads(body)["seq"], "0", len(body)), ev)
            self.assertIn("events", ev["msg"])
            self.assertIsInstance(ev["received_at"], int)
        other = self.vehicle(self.b, ot.vin(2))
        other.publish(ot.report_topic(ot.vin(2)), b"\xff")
        self.assertEqual(other.error()["err"], "E_BAD_CBOR")
        st = self.admin_.wait_drained()
        self.assertEqual(st["writer"]["quarantined"], 4)
        self.assertEqual(st["reports_quarantined"], 4)
        self.assertEqual(self.db.total(), 0)
        rows = self.db.query("SELECT vin, code, seq, payload FROM ota_quarantine ORDER BY id")
        self.assertEqual([(r["vin"], r["code"], r["seq"]) for r in rows],
                         [(v, "E_BAD_REQUEST", 10), (v, "E_BAD_REQUEST", 11),
                          (v, "E_BAD_REQUEST", 12), (ot.vin(2), "E_BAD_CBOR", None)])
        # The operator command: newest first, by VIN, two per page.
        page = self.ok("listQuarantine", vin=v, limit=2)
        self.assertEqual([i["seq"] for i in page["items"]], [12, 11])
        self.assertEqual(bytes.fromhex(page["items"][0]["payload"]), bodies[2])
        self.assertEqual(page["items"][0]["code"], "E_BAD_REQUEST")
        rest = self.ok("listQuarantine", vin=v, limit=2, before=page["next"])
        self.assertEqual([i["seq"] for i in rest["items"]], [10])
        self.assertNotIn("next", rest)
        cbor_only = self.ok("listQuarantine", code="E_BAD_CBOR")
        self.assertEqual([(i["vin"], "seq" in i) for i in cbor_only["items"]],
                         [(ot.vin(2), False)])
        if OTACTL and Path(OTACTL).exists():
            out = subprocess.run(
                [OTACTL, "--host", "127.0.0.1", "--port", str(self.b.port), "--user", ot.ADMIN,
                 "--json", "quarantine", "list", "--vin", v, "--limit", "5"],
                capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual([i["seq"] for i in json.loads(out.stdout)["items"]], [12, 11, 10])

    def test_integral_floats_taken(self):
        self.start()
        v = ot.vin(1)
        car = self.vehicle(self.b, v)
        ev = ot.ev_download()
        ev["ts"] = float(ot.TS0)
        ev["bytes"] = 4294967297.0
        car.publish(ot.report_topic(v), cbor2.dumps({"seq": 4294967296.0, "events": [ev]}))
        ot.wait_until(lambda: self.db.total() == 1, msg="float report stored")
        row = self.db.rows("download_progress", v)[0]
        self.assertEqual((row["seq"], row["ts"], row["bytes"]), (4294967296, ot.TS0, 4294967297))
        ev["ts"] = ot.TS0 + 0.5  # not an integer: refused, kept
        car.publish(ot.report_topic(v), cbor2.dumps({"seq": 4294967297, "events": [ev]}))
        err = car.error()
        self.assertEqual(err["err"], "E_BAD_REQUEST")
        self.assertIn("events[0].ts", err["msg"])

    def test_unknown_vin_refused_without_side_effects(self):
        self.start()
        self.admin_.subscribe("ota/v1/events/#")
        stranger = ot.vin(77)
        car = self.vehicle(self.b, stranger)
        failed = ot.ev_status(status="failed", trigger="normal", error="upgrade_failed")
        car.publish(ot.report_topic(stranger), report(1, [failed]))
        err = car.error()
        self.assertEqual((err["err"], err["seq"]), ("E_UNKNOWN_VIN", 1), err)
        ev = self.admin_.get("ota/v1/events/rejected/%s" % stranger).json()
        self.assertEqual(ev["code"], "E_UNKNOWN_VIN")
        # Nothing else: no status, ops_alert or log_replay event.
        self.assertEqual([m.topic for m in self.admin_.quiet("ota/v1/events/#")], [])
        st = self.admin_.wait_drained()
        self.assertEqual((st["reports_unknown_vin"], st["writer"]["quarantined"]), (1, 1))
        self.assertEqual(self.db.total(), 0)

    def test_unknown_vin_accepted_when_allowed(self):
        self.start(accept_unknown_vins=1)
        self.admin_.subscribe("ota/v1/events/#")
        stranger = ot.vin(77)
        car = self.vehicle(self.b, stranger)
        failed = ot.ev_status(status="failed", trigger="normal", error="upgrade_failed")
        car.publish(ot.report_topic(stranger), report(1, [failed]))
        self.admin_.get("ota/v1/events/ops_alert/%s" % stranger)
        self.admin_.get("ota/v1/events/log_replay/%s" % stranger)
        ot.wait_until(lambda: self.db.total() == 1, msg="stranger's event stored")
        self.assertEqual(car.quiet(ot.error_topic(stranger)), [])


if __name__ == "__main__":
    ot.main()
