#!/usr/bin/python3
"""Integration: bad reports.

Every malformed, mistyped or oversize report is acked (the vehicle must not retry it
forever), answered with CBOR {err, msg, seq?} on ota/v1/{VIN}/error (or on the MQTT 5
Response Topic, with the Correlation Data echoed), logged with the VIN and the code,
counted in getStats, and not stored; the broker keeps serving everyone.
The broker runs with max_report_events 8 and max_report_bytes 1024 to test the limits.
"""

import json
import sys
from pathlib import Path

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402

MAX_EVENTS = 8
MAX_BYTES = 1024
BAD_CBOR, BAD_REQUEST, TOO_LARGE = "E_BAD_CBOR", "E_BAD_REQUEST", "E_TOO_LARGE"


def rep(events, seq=1, **extra):
    d = {"seq": seq, "events": events}
    d.update(extra)
    return cbor2.dumps(d)


def second(**changes):
    """A report whose events[1] is a download_progress event with changes applied (a
    value None removes the key), so error messages must name events[1]."""
    ev = ot.ev_download()
    for k, v in changes.items():
        if v is None:
            ev.pop(k, None)
        else:
            ev[k] = v
    return rep([ot.ev_eeprom(), ev])


def second_ev(ev):
    return rep([ot.ev_eeprom(), ev])


def invalid_utf8():
    raw = rep([ot.ev_eeprom(), ot.ev_download(ecu="ZZZZ")])
    assert raw.count(b"\x64ZZZZ") == 1
    return raw.replace(b"\x64ZZZZ", b"\x64\xff\xfeZZ")


GOOD = ot.report(1, [ot.ev_download()])

# name, payload, error code, text the message must contain (None: any), seq known
CASES = [
    ("truncated", GOOD[:-3], BAD_CBOR, None, False),
    ("trailing bytes", GOOD + b"garbage", BAD_CBOR, None, False),
    ("trailing item", GOOD + b"\x00", BAD_CBOR, None, False),
    ("empty payload", b"", BAD_CBOR, None, False),
    ("not a map", cbor2.dumps([1, 2, 3]), BAD_REQUEST, None, False),
    ("seq missing", cbor2.dumps({"events": [ot.ev_download()]}), BAD_REQUEST, "seq", False),
    ("seq negative", rep([ot.ev_download()], seq=-1), BAD_REQUEST, "seq", False),
    ("seq text", rep([ot.ev_download()], seq="1"), BAD_REQUEST, "seq", False),
    ("events missing", cbor2.dumps({"seq": 1}), BAD_REQUEST, "events", True),
    ("events empty", rep([]), BAD_REQUEST, "events", True),
    ("events a map", cbor2.dumps({"seq": 1, "events": {"a": 1}}), BAD_REQUEST, "events", True),
    ("too many events", rep([ot.ev_eeprom()] * (MAX_EVENTS + 1)), TOO_LARGE, "events", True),
    ("payload too large", rep([ot.ev_upgrade_progress(step="s" * 250)] * 6), TOO_LARGE, None,
     None),
    ("event not a map", rep([ot.ev_eeprom(), 5]), BAD_REQUEST, "events[1]", True),
    ("unknown event type", second(type="reboot"), BAD_REQUEST, "events[1].type", True),
    ("event type not text", second(type=1), BAD_REQUEST, "events[1].type", True),
    ("pct as text", second(pct="50"), BAD_REQUEST, "events[1].pct", True),
    ("pct over 100", second(pct=101), BAD_REQUEST, "events[1].pct", True),
    ("pct missing", second(pct=None), BAD_REQUEST, "events[1].pct", True),
    ("ts negative", second(ts=-5), BAD_REQUEST, "events[1].ts", True),
    ("ts float", second(ts=1.5), BAD_REQUEST, "events[1].ts", True),
    ("task missing", second(task=None), BAD_REQUEST, "events[1].task", True),
    ("task empty", second(task=""), BAD_REQUEST, "events[1].task", True),
    ("task too long", second(task="T" * 65), TOO_LARGE, "events[1].task", True),
    ("step too long", second_ev(ot.ev_upgrade_progress(step="s" * 257)), TOO_LARGE,
     "events[1].step", True),
    ("ecu missing", second_ev(ot.ev_upgrade_progress(ecu=None)), BAD_REQUEST,
     "events[1].ecu", True),
    ("invalid status", second_ev(ot.ev_status(status="exploded")), BAD_REQUEST,
     "events[1].status", True),
    ("invalid trigger", second_ev(ot.ev_status(trigger="whenever")), BAD_REQUEST,
     "events[1].trigger", True),
    ("invalid cmd", second_ev(ot.ev_command(cmd="reboot")), BAD_REQUEST, "events[1].cmd", True),
    ("schedule without at", second_ev(ot.ev_command(cmd="schedule")), BAD_REQUEST,
     "events[1].at", True),
    ("eeprom result missing", second_ev({k: v for k, v in ot.ev_eeprom().items()
                                         if k != "result"}), BAD_REQUEST,
     "events[1].result", True),
    # libcbor refuses a text with invalid UTF-8 as malformed CBOR, before any field is
    # known: E_BAD_CBOR naming the byte (docs/protocol.md), and so no seq either.
    ("invalid UTF-8", invalid_utf8(), BAD_CBOR, "not valid UTF-8", False),
    ("control character", second(task="T\x01"), BAD_REQUEST, "events[1].task", True),
]


def rejected(stats, code):
    return stats.get("rejected", {}).get(code, 0)


class BadInputTest(ot.OtaTestCase):

    def setUp(self):
        super().setUp()
        self.b = self.broker(max_report_events=MAX_EVENTS, max_report_bytes=MAX_BYTES)
        self.db = ot.Db(self.b.db_path)
        self.admin_ = self.admin(self.b)

    def log_count(self, v, code):
        return sum(1 for line in self.b.log_lines() if v in line and code in line)

    def test_each_bad_report(self):
        v = ot.vin(1)
        car = self.vehicle(self.b, v)
        too_large = [c[1] for c in CASES if c[0] == "payload too large"][0]
        self.assertTrue(MAX_BYTES < len(too_large) < 2 * MAX_BYTES, len(too_large))
        for name, payload, code, field, seq_known in CASES:
            with self.subTest(name):
                s0 = self.admin_.stats()
                logged = self.log_count(v, code)
                car.publish(ot.report_topic(v), payload)  # acked
                err = car.error()
                self.assertEqual(err.get("err"), code, err)
                self.assertIsInstance(err.get("msg"), str)
                self.assertTrue(err["msg"])
                if field is not None:
                    self.assertIn(field, err["msg"])
                if "seq" in err:
                    self.assertNotEqual(seq_known, False, "seq echoed but not known: %r" % err)
                    self.assertEqual(err["seq"], 1)
                ot.wait_until(lambda: self.log_count(v, code) > logged,
                              msg="a log line with %s and %s" % (v, code))
                s1 = self.admin_.stats()
                self.assertStatsDelta(s0, s1, "reports_rejected", 1)
                self.assertEqual(rejected(s1, code) - rejected(s0, code), 1, s1)
                self.assertStatsDelta(s0, s1, "reports_accepted", 0)
                # Kept for the quarantine (issue 13): one spool record, no event.
                self.assertStatsDelta(s0, s1, "spool.appended", 1)
                self.assertStatsDelta(s0, s1, "reports_quarantined", 1)
                self.assertEqual(car.received(), [], "more than one reply")
        self.assertTrue(car.c.is_connected())
        # Limits are inclusive: exactly MAX_EVENTS events, and the broker still serves
        # the same vehicle and another one.
        car.report(2, [ot.ev_eeprom()] * MAX_EVENTS)
        other = self.vehicle(self.b, ot.vin(2), mqtt5=False)
        other.report(1, [ot.ev_download(), ot.ev_status()])
        ot.wait_until(lambda: self.db.total() == MAX_EVENTS + 2, msg="good reports stored")
        self.assertEqual(self.db.per_report(), {(v, 2): MAX_EVENTS, (ot.vin(2), 1): 2})
        self.assertEqual(car.quiet(), [])
        self.assertEqual(other.received(), [])
        st = self.admin_.wait_drained()
        self.assertEqual(st["reports_rejected"], len(CASES))
        self.assertEqual(self.db.total(), MAX_EVENTS + 2)

    def test_bad_report_never_changes_stored_data(self):
        v = ot.vin(3)
        car = self.vehicle(self.b, v)
        car.report(7, [ot.ev_download(pct=10), ot.ev_eeprom()])
        ot.wait_until(lambda: self.db.total() == 2)
        before = {k: self.db.rows(k) for k in ot.TABLES}
        # Same seq, first event fine (would be a duplicate), second one bad: the replay
        # guard (broker thread, before the writer validates) refuses it first.
        car.publish(ot.report_topic(v), rep([ot.ev_download(pct=99), ot.ev_eeprom(task="")],
                                            seq=7))
        self.assertEqual(car.error()["err"], "E_REPLAY")
        # A new seq whose first event is good and second bad: nothing of it is stored.
        car.publish(ot.report_topic(v), rep([ot.ev_download(pct=50), ot.ev_status(status="x")],
                                            seq=8))
        self.assertEqual(car.error()["err"], BAD_REQUEST)
        car.report(9, [ot.ev_eeprom()])
        ot.wait_until(lambda: self.db.total() == 3)
        after = {k: [r for r in self.db.rows(k) if r["seq"] != 9] for k in ot.TABLES}
        self.assertEqual(after, before)

    def test_error_reply_to_subscribed_vehicle_and_mqtt311(self):
        v, w = ot.vin(4), ot.vin(5)
        car = self.vehicle(self.b, v)
        self.assertEqual(car.subscribe("ota/v1/%s/#" % v), 1)
        car.publish(ot.report_topic(v), b"\xa2")
        self.assertEqual(car.error()["err"], BAD_CBOR)
        self.assertEqual(car.quiet(), [], "the error reply arrived twice")
        old = self.vehicle(self.b, w, mqtt5=False)
        old.publish(ot.report_topic(w), second(pct=-1))
        err = old.error()
        self.assertEqual(err["err"], BAD_REQUEST)
        self.assertIn("events[1].pct", err["msg"])
        # MQTT 5 on the wire: the bad report is acked with a success code.
        raw = self.raw(self.b, ot.vin(6))
        self.assertIn(raw.publish(ot.report_topic(ot.vin(6)), b"\xff"), (0x00, 0x10))
        payload, _ = raw.wait_publish(ot.error_topic(ot.vin(6)))
        self.assertEqual(cbor2.loads(payload)["err"], BAD_CBOR)

    def test_response_topic_and_correlation_data(self):
        v = ot.vin(7)
        car = self.vehicle(self.b, v)
        rt = "ota/v1/%s/replies/42" % v
        corr = b"\x00corr-\xff\x01"
        car.publish(ot.report_topic(v), GOOD[:-1],
                    properties=ot.props(response_topic=rt, correlation=corr))
        m = car.get(rt)
        self.assertEqual(m.cbor()["err"], BAD_CBOR)
        self.assertEqual(m.prop("CorrelationData"), corr)
        self.assertEqual(m.prop("ContentType"), "application/cbor")
        # An event the writer refuses (issue 14: validated off the broker thread) is
        # answered after the PUBACK, on the error topic, naming the report's seq: the
        # request's Response Topic is gone by then.
        car.publish(ot.report_topic(v), second(pct="x"),
                    properties=ot.props(response_topic=rt, correlation=b"c2"))
        body = car.error()
        self.assertEqual(body["err"], BAD_REQUEST)
        self.assertIn("events[1].pct", body["msg"])
        self.assertEqual(body["seq"], 1)
        self.assertEqual(car.quiet(), [], "reply also sent elsewhere: %r" % car.messages)
        # Same with the raw client (properties parsed off the wire).
        raw = self.raw(self.b, ot.vin(8))
        rt8 = "ota/v1/%s/r" % ot.vin(8)
        raw.publish(ot.report_topic(ot.vin(8)), b"\x01\x02",
                    ot.mqtt5_props(response_topic=rt8, correlation=b"xyz"))
        payload, p = raw.wait_publish(rt8)
        self.assertEqual(cbor2.loads(payload)["err"], BAD_CBOR)
        self.assertEqual((p.get(0x09), p.get(0x03)), (b"xyz", "application/cbor"))

    def test_error_reply_echoes_known_seq(self):
        # {err, msg, seq?}: once seq has been read, the reply names the report, so a
        # vehicle with several reports in flight (MQTT 3.1.1: no correlation data) knows
        # which one was refused.
        v = ot.vin(9)
        car = self.vehicle(self.b, v, mqtt5=False)
        for seq, payload in ((41, rep([ot.ev_eeprom(), dict(ot.ev_download(), pct="x")], seq=41)),
                             (42, rep([ot.ev_eeprom()] * (MAX_EVENTS + 1), seq=42)),
                             (43, rep([], seq=43))):
            car.publish(ot.report_topic(v), payload)
            err = car.error()
            self.assertEqual(err.get("seq"), seq, err)

    def test_operator_api_bad_requests(self):
        admin = self.admin_
        r = admin.control_raw("{not json")
        self.assertEqual(len(r["responses"]), 1, r)
        self.assertEqual(r["responses"][0]["command"], "")
        self.assertTrue(r["responses"][0]["error"])
        r = admin.control_raw(json.dumps({"no_commands": []}))
        self.assertEqual(r["responses"][0]["command"], "", r)
        self.assertTrue(r["responses"][0]["error"])
        r = admin.control([{"command": "selfDestruct"}, {"command": "getStats"}])
        self.assertEqual(len(r["responses"]), 2, r)
        self.assertEqual(r["responses"][0], {"command": "selfDestruct",
                                             "error": "unknown command"})
        self.assertEqual(r["responses"][1]["command"], "getStats")
        self.assertIn("writer", r["responses"][1]["data"])
        self.assertTrue(admin.c.is_connected())

    def test_unknown_plugin_option_stops_broker(self):
        # Mosquitto 2.0.11 exits on a plugin init error without freeing its own config
        # (config__read, plugin__load_v5 allocations): no leak check for this broker.
        with self.assertRaises(ot.HarnessError):
            self.broker(spool_dri=str(self.tmp / "typo"), detect_leaks=False)
        self.assertIn("spool_dri", self._brokers[-1].log())


if __name__ == "__main__":
    ot.main()
