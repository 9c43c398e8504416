#!/usr/bin/python3
"""Integration: report ingestion end to end.

A vehicle publishes CBOR reports on ota/v1/{VIN}/report; the plugin acks them, stores
every event in its SQLite tables, republishes upgrade_status events as JSON on
ota/v1/events/status/{VIN}, and forwards the report itself to nobody. Covers MQTT 5 and
3.1.1 (paho), the raw PUBACK reason code, Debian's mosquitto_pub/mosquitto_sub, replays
(stored once), a clean restart, and the ota-fleet load generator.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402

STATUS_KEYS = {"id", "vin", "seq", "index", "task", "ts", "status", "trigger", "received_at"}

# Column values expected per event type, from the event dict (absent optional -> None).
COLUMNS = {
    "download_progress": ("ecu", "pct", "bytes"),
    "upgrade_progress": ("ecu", "pct", "step"),
    "upgrade_status": ("status", "error", "trigger", "fw"),
    "command": ("cmd", "at"),
    "eeprom_clear": ("ecu", "result"),
}


class IngestTest(ot.OtaTestCase):

    def check_stored(self, db, v, seq, events, t0, t1):
        """Every event of report (v, seq) is in its table with the right values; returns
        {idx: received_at}."""
        received = {}
        for idx, ev in enumerate(events):
            rows = [r for r in db.rows(ev["type"], v) if r["seq"] == seq and r["idx"] == idx]
            self.assertEqual(len(rows), 1, "%s seq %d idx %d (%s)" % (v, seq, idx, ev["type"]))
            row = rows[0]
            self.assertEqual(row["task"], ev["task"])
            self.assertEqual(row["ts"], ev["ts"])
            for col in COLUMNS[ev["type"]]:
                self.assertEqual(row[col], ev.get(col), "%s.%s" % (ev["type"], col))
            self.assertTrue(t0 - 1000 <= row["received_at"] <= t1 + 1000,
                            "received_at %r not within [%d, %d]" % (row["received_at"], t0, t1))
            received[idx] = row["received_at"]
        return received

    def check_status_event(self, msg, v, seq, idx, ev, received_at):
        self.assertEqual(msg.topic, "ota/v1/events/status/%s" % v)
        self.assertEqual(msg.qos, 1)
        j = msg.json()
        expected_keys = set(STATUS_KEYS)
        for opt in ("error", "fw"):
            if opt in ev:
                expected_keys.add(opt)
        self.assertEqual(set(j), expected_keys, j)
        self.assertEqual(j["vin"], v)
        self.assertEqual(j["seq"], seq)
        self.assertEqual(j["index"], idx)
        self.assertEqual(j["id"], "%s:%d:%d:0" % (v, seq, idx))  # docs/events.md "Event ids"
        self.assertEqual(next(iter(j)), "id")  # first: the events broker reads it there
        for k in ("task", "ts", "status", "trigger", "error", "fw"):
            if k in ev:
                self.assertEqual(j[k], ev[k], k)
        self.assertEqual(j["received_at"], received_at)

    def ingest_one_of_each(self, mqtt5):
        b = self.broker()
        admin = self.admin(b)
        self.assertEqual(admin.subscribe("ota/v1/events/status/#"), 1)
        v = ot.vin(1 if mqtt5 else 2)
        car = self.vehicle(b, v, mqtt5=mqtt5)
        full = ot.all_types_events(task="T-full")
        minimal = [
            ot.ev_download("T-min", ot.TS0 + 10, pct=0, ecu=None, nbytes=None),
            ot.ev_upgrade_progress("T-min", ot.TS0 + 11, ecu="GW", pct=100, step=None),
            ot.ev_status("T-min", ot.TS0 + 12, status="succeeded", trigger="normal"),
            ot.ev_command("T-min", ot.TS0 + 13, cmd="now"),
        ]
        t0 = ot.now_ms()
        car.report(1, full)
        car.report(2, minimal)
        t1 = ot.now_ms()
        db = ot.Db(b.db_path)
        ot.wait_until(lambda: db.total() == len(full) + len(minimal), msg="9 stored events")
        self.assertEqual(db.counts(), {"download_progress": 2, "upgrade_progress": 2,
                                       "upgrade_status": 2, "command": 2, "eeprom_clear": 1})
        rec1 = self.check_stored(db, v, 1, full, t0, t1)
        rec2 = self.check_stored(db, v, 2, minimal, t0, t1)
        # One status JSON per upgrade_status event, with the stored receipt time.
        m1 = admin.get("ota/v1/events/status/+", pred=lambda m: m.json().get("seq") == 1)
        self.check_status_event(m1, v, 1, 2, full[2], rec1[2])
        m2 = admin.get("ota/v1/events/status/+", pred=lambda m: m.json().get("seq") == 2)
        self.check_status_event(m2, v, 2, 2, minimal[2], rec2[2])
        self.assertEqual(admin.quiet("ota/v1/events/#"), [], "only two status events")
        self.assertEqual(car.received(), [], "a good report gets no reply")
        st = ot.wait_until(lambda: (lambda s: s["writer"]["events_stored"] == 9 and s)
                           (admin.stats()), msg="getStats events_stored 9")
        self.assertEqual(st["reports_accepted"], 2)
        self.assertEqual(st["events_accepted"], 9)
        self.assertEqual(st["reports_rejected"], 0)
        self.assertTrue(st["writer"]["store_ok"])
        self.assertGreaterEqual(st["spool"]["appended"], 2)

    def test_every_event_type_mqtt5(self):
        self.ingest_one_of_each(mqtt5=True)

    def test_every_event_type_mqtt311(self):
        self.ingest_one_of_each(mqtt5=False)

    def test_puback_reason_code_mqtt5(self):
        # Contract: a consumed report gets a success PUBACK (reason 0). Mosquitto 2.0.11
        # itself answers 0x10 "no matching subscribers" (also a success code) when no
        # subscription matches the topic, so without a subscription either is accepted;
        # a vehicle subscribed to its own namespace (the normal case) must see 0.
        b = self.broker()
        db = ot.Db(b.db_path)
        v = ot.vin(3)
        raw = self.raw(b, v)
        rc = raw.publish(ot.report_topic(v), ot.report(1, [ot.ev_download()]))
        self.assertIn(rc, (0x00, 0x10), "PUBACK reason 0x%02x" % rc)
        self.assertEqual(raw.subscribe("ota/v1/%s/#" % v), 1)
        rc = raw.publish(ot.report_topic(v), ot.report(2, [ot.ev_download(), ot.ev_eeprom()]))
        self.assertEqual(rc, 0x00, "PUBACK reason 0x%02x" % rc)
        ot.wait_until(lambda: db.count_vin(v) == 3, msg="3 events stored")
        self.assertEqual([r for r in raw.received if r[0].endswith("/report")], [])

    def test_report_reaches_no_subscriber(self):
        # An ACL file that allows everything, so only the plugin can stop the report.
        acl = self.tmp / "acl"
        acl.write_text("pattern readwrite #\n")
        b = self.broker(extra_conf=["acl_file %s" % acl])
        va, vb = ot.vin(4), ot.vin(5)
        admin = self.admin(b)
        self.assertEqual(admin.subscribe("ota/v1/events/#"), 1)
        snoop = self.client(ot.Client, b, "snoop")
        snoop_codes = {f: snoop.subscribe(f)
                       for f in ("#", "ota/#", "+/+/+/report", "ota/v1/+/report")}
        # Outside its namespace the plugin defers, so the ACL file grants '#': only READ
        # denial of request topics can keep the report from this subscriber.
        self.assertEqual(snoop_codes["#"], 1)
        car_b = self.vehicle(b, vb)
        b_codes = {f: car_b.subscribe(f) for f in ("#", "ota/v1/%s/#" % va)}
        car_a = self.vehicle(b, va)
        self.assertEqual(car_a.subscribe("ota/v1/%s/#" % va), 1)
        car_a.subscribe(ot.report_topic(va))
        car_a.report(1, [ot.ev_status(status="downloading", trigger="normal")])
        admin.get("ota/v1/events/status/%s" % va)  # the report went through the plugin
        # Prove the '#' subscriptions that were granted are live: other topics arrive.
        other = self.client(ot.Client, b, "other-pub")
        other.publish("fleet/other", b"x")
        snoop.get("fleet/other")
        if b_codes["#"] < 0x80:
            car_b.get("fleet/other")
        time.sleep(ot.QUIET)
        for who, c in (("snoop", snoop), ("vehicle B", car_b), ("vehicle A", car_a),
                       ("admin", admin)):
            self.assertEqual(c.received("ota/v1/+/report"), [], "%s got the report" % who)
        self.assertEqual(car_a.received(), [], "vehicle A got something")
        self.assertEqual(snoop.received("ota/#"), [])

    def test_replay_is_stored_once(self):
        b = self.broker()
        admin = self.admin(b)
        db = ot.Db(b.db_path)
        v = ot.vin(6)
        car = self.vehicle(b, v)
        events = [ot.ev_download(pct=10), ot.ev_upgrade_progress(pct=20),
                  ot.ev_status(status="upgrading", trigger="normal")]
        car.report(5, events)
        ot.wait_until(lambda: db.total() == 3, msg="3 events stored")
        before_rows = {k: db.rows(k, v) for k in ot.TABLES}
        s0 = admin.stats()
        car.report(5, events)
        changed = [ot.ev_download(pct=99), ot.ev_upgrade_progress(pct=99),
                   ot.ev_status(status="failed", trigger="forced")]
        car.report(5, changed)  # same key, other values: the stored event is kept
        # Each replay is answered (issue 13) with the last seq taken, and kept in the
        # quarantine; nothing is stored twice and nothing is set off again.
        for _ in range(2):
            err = car.error()
            self.assertEqual((err["err"], err["seq"], err["last_seq"], err["last_epoch"]),
                             ("E_REPLAY", 5, 5, "0"), err)
        s1 = admin.wait_drained(baseline=s0)
        ot.wait_until(lambda: admin.stats()["writer"]["quarantined"]
                      >= s0["writer"]["quarantined"] + 2, msg="2 replays quarantined")
        s1 = admin.stats()
        self.assertStatsDelta(s0, s1, "writer.events_stored", 0)
        self.assertStatsDelta(s0, s1, "reports_accepted", 0)
        self.assertStatsDelta(s0, s1, "reports_replayed", 2)
        self.assertStatsDelta(s0, s1, "rejected.E_REPLAY", 2)
        self.assertStatsDelta(s0, s1, "status_events", 0)
        self.assertEqual(db.total(), 3)
        self.assertEqual({k: db.rows(k, v) for k in ot.TABLES}, before_rows)

    def test_data_survives_clean_restart(self):
        b = self.broker()
        db = ot.Db(b.db_path)
        cars = [self.vehicle(b, ot.vin(i)) for i in (7, 8)]
        for seq in range(1, 11):
            for car in cars:
                car.report(seq, ot.all_types_events(task="T-%d" % seq))
        for car in cars:
            car.close()
        b.restart()  # SIGTERM: the plugin must finish and close cleanly (checked)
        # Whatever was not yet in the store is replayed from the spool at start.
        ot.wait_until(lambda: db.total() == 2 * 10 * 5, msg="100 events after restart")
        self.assertEqual(db.counts()["upgrade_status"], 20)
        self.assertEqual(set(db.per_report().values()), {5})
        car = self.vehicle(b, ot.vin(7))
        car.report(11, [ot.ev_eeprom()])
        ot.wait_until(lambda: db.total() == 101, msg="the report after the restart stored")
        st = self.admin(b).wait_drained()
        self.assertTrue(st["writer"]["store_ok"])
        self.assertEqual(db.total(), 101)

    def test_mosquitto_cli_clients(self):
        b = self.broker()
        db = ot.Db(b.db_path)
        v = ot.vin(9)
        status = ot.ev_status(status="succeeded", trigger="normal", fw="9.9.9")
        sub = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(b.port), "-u", ot.ADMIN,
             "-i", "admin-cli", "-q", "1", "-t", "ota/v1/events/status/%s" % v, "-C", "1",
             "-v", "-W", str(int(ot.TIMEOUT))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            b.wait_log(lambda line: "Sending SUBACK to admin-cli" in line)
            f = self.tmp / "report.cbor"
            f.write_bytes(ot.report(1, [ot.ev_download(), status]))
            r = ot.mosquitto_pub(b, "-i", v, "-q", "1", "-t", ot.report_topic(v), "-f", str(f))
            self.assertEqual(r.returncode, 0, r.stderr)
            out, err = sub.communicate(timeout=ot.TIMEOUT + 5)
        finally:
            if sub.poll() is None:
                sub.kill()
                sub.communicate()
        self.assertEqual(sub.returncode, 0, err)
        topic, _, payload = out.strip().partition(" ")
        self.assertEqual(topic, "ota/v1/events/status/%s" % v)
        j = json.loads(payload)
        self.assertEqual((j["vin"], j["seq"], j["index"], j["status"], j["fw"]),
                         (v, 1, 1, "succeeded", "9.9.9"))
        # And an MQTT 5 mosquitto_pub.
        f.write_bytes(ot.report(2, [ot.ev_command(cmd="cancel_schedule")]))
        r = ot.mosquitto_pub(b, "-V", "mqttv5", "-i", v, "-q", "1", "-t",
                             ot.report_topic(v), "-f", str(f))
        self.assertEqual(r.returncode, 0, r.stderr)
        ot.wait_until(lambda: db.count_vin(v) == 3, msg="3 events stored")
        self.assertEqual(db.rows("command", v)[0]["cmd"], "cancel_schedule")

    def test_fleet_tool(self):
        b = self.broker(full_stacks=True)  # for ota-fleet (otatest.Broker)
        db = ot.Db(b.db_path)
        acked = self.tmp / "acked"
        rc, summary, err = ot.run_fleet(b, 3, 20, 4, acked=acked, mqtt_=5)
        self.assertEqual(rc, 0, err)
        self.assertEqual((summary["reports_acked"], summary["events_acked"],
                          summary["puback_failures"]), (60, 240, 0), summary)
        rows = ot.read_acked(acked)
        self.assertEqual(len(rows), 60)
        self.assertEqual(len({r[0] for r in rows}), 3)
        self.assertTrue(all(len(r[0]) == 17 and r[0].startswith("LSVTA") for r in rows), rows)
        self.assertEqual({r[2] for r in rows}, {4})
        ot.wait_until(lambda: db.total() == 240, msg="240 events stored")
        self.assertEqual(db.per_report(), {(r[0], r[1]): r[2] for r in rows})
        # MQTT 3.1.1, a new seq range: 240 more.
        rc, summary, err = ot.run_fleet(b, 3, 20, 4, acked=acked, mqtt_=311, seq_start=1000)
        self.assertEqual(rc, 0, err)
        self.assertEqual((summary["reports_acked"], summary["events_acked"],
                          summary["puback_failures"]), (60, 240, 0), summary)
        ot.wait_until(lambda: db.total() == 480, msg="480 events stored")
        self.assertEqual(db.unique_keys(), 480)


if __name__ == "__main__":
    ot.main()
