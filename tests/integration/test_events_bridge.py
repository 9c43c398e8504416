#!/usr/bin/python3
"""Integration: events downstream at any number of brokers (issue 15, docs/mongodb.md
"Events downstream", docs/events.md "Deduplication on the events broker"). Vehicle-facing
brokers bridged to a third, plain Mosquitto (the events broker) with the configuration
scripts/bridge-events-conf.sh prints (ota/v1/events/# out, QoS 1, cleansession false, one
bridge client id per broker), which loads mosquitto_ota_dedupe.so. A downstream subscriber
on the events broker only must see every event exactly once, identified by its id:
- the status events of the vehicles on two brokers;
- after a kill -9 of a vehicle broker whose spool checkpoint is then taken away (its
  restart replays every report and publishes their status and side-effect events again,
  with the same ids): each event still once; and two reports with the same (vin, seq,
  index) in two epochs are two events;
- an event the events broker saw before a clean restart (its window saved to
  plugin_opt_state_file) is still a duplicate after it.
A dropped duplicate is acked without disconnecting the bridge (the events broker's
max_queued_messages must not be 0: scripts/events-broker-conf.sh).
With OTA_TEST_NO_DEDUPE=1 (no plugin) the last two fail: that is what the plugin does.
"""

import collections
import json
import subprocess
import sys
from pathlib import Path

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GEN = ROOT / "scripts" / "bridge-events-conf.sh"
VEHICLES, REPORTS = 5, 4


class EventsBridge(ot.OtaTestCase):

    def bridge_conf(self, broker_id, events):
        out = subprocess.run([str(GEN), broker_id, "127.0.0.1:%d" % events.port],
                             capture_output=True, text=True, check=True).stdout
        return [line for line in out.splitlines() if line and not line.startswith("#")]

    def events_broker(self, **kw):
        return self.broker(plugin=False, extra_conf=ot.dedupe_conf(**kw))

    def test_every_status_event_of_both_brokers_once_downstream(self):
        events = self.events_broker()
        downstream = self.client(ot.Client, events, "downstream")
        self.assertEqual(downstream.subscribe("ota/v1/events/#"), 1)
        brokers = [self.broker(extra_conf=self.bridge_conf("vb-%d" % i, events))
                   for i in (1, 2)]
        for i in (1, 2):  # both bridges are up on the events broker
            ot.wait_until(lambda: "ota-events-bridge-vb-%d" % i in
                          events.log_path.read_text(errors="replace"),
                          msg="the bridge of vb-%d connected" % i)
        expected = set()
        for n, b in enumerate(brokers):
            for k in range(VEHICLES):
                v = ot.vin(100 * n + k + 1, "LBRDG")
                car = self.vehicle(b, v)
                for seq in range(1, REPORTS + 1):
                    car.report(seq, [ot.ev_status("T-1", ot.TS0 + seq, status="downloading")])
                    expected.add((v, seq, 0))
        key = (lambda m: (m.json()["vin"], m.json()["seq"], m.json()["index"]))
        ot.wait_until(lambda: {key(m) for m in downstream.received("ota/v1/events/status/+")}
                      == expected, timeout=30 * ot.SCALE,
                      msg="every status event downstream")
        downstream.quiet("ota/v1/events/#")  # late duplicates would arrive now
        got = collections.Counter(key(m) for m in downstream.received("ota/v1/events/status/+"))
        self.assertEqual(set(got), expected)
        self.assertEqual([k for k, c in got.items() if c != 1], [], "each exactly once")
        self.assertEqual(len(downstream.received("ota/v1/events/#")), len(expected),
                         "nothing but the status events")
        ids = {m.json()["id"] for m in downstream.received("ota/v1/events/status/+")}
        self.assertEqual(ids, {"%s:%d:%d:0" % k for k in expected})  # epoch "0"

    def test_a_replayed_report_is_seen_once_downstream(self):
        events = self.events_broker()
        downstream = self.client(ot.Client, events, "downstream")
        self.assertEqual(downstream.subscribe("ota/v1/events/#"), 1)
        b = self.broker(extra_conf=self.bridge_conf("vb-1", events))
        ot.wait_until(lambda: "ota-events-bridge-vb-1" in events.log(), msg="bridged")
        v = ot.vin(7, "LRPLY")
        car = self.vehicle(b, v)
        for seq in range(1, REPORTS + 1):  # each failure also sets off ops_alert, log_replay
            car.report(seq, [ot.ev_status("T-1", ot.TS0 + seq, error="upgrade_failed")])
        again = {"seq": 1, "epoch": "e2",
                 "events": [ot.ev_status("T-1", ot.TS0 + 9, error="upgrade_failed")]}
        car.publish(ot.report_topic(v), cbor2.dumps(again))  # a new epoch: seq 1 again
        n = 3 * (REPORTS + 1)
        ot.wait_until(lambda: len(downstream.received("ota/v1/events/#")) >= n,
                      timeout=30 * ot.SCALE, msg="the events downstream")
        first = [(m.topic, m.payload) for m in downstream.received("ota/v1/events/#")]
        car.close()
        b.kill9()  # then every report is replayed at the start, as if none were stored
        (b.spool_dir / "checkpoint").unlink(missing_ok=True)
        b.start()
        ot.wait_until(lambda: events.log().count("Received PUBLISH from ota-events-bridge-vb-1")
                      >= 2 * n, timeout=30 * ot.SCALE, msg="the replay's events bridged")
        downstream.quiet("ota/v1/events/#")
        got = [(m.topic, m.payload) for m in downstream.received("ota/v1/events/#")]
        self.assertEqual(got, first, "each event once, nothing new")
        self.assertEqual(events.log().count("ota-dedupe: duplicate dropped"), n)
        # acked without a disconnect (max_queued_messages of events-broker-conf.sh, not 0)
        self.assertEqual(events.log().count("ota-events-bridge-vb-1 (p2, c0"), 2,
                         "the bridge connected twice: before and after the kill only")
        ids = collections.Counter((t, json.loads(p)["id"]) for t, p in got)
        self.assertEqual([k for k, c in ids.items() if c > 1], [])
        status = {json.loads(p)["id"] for t, p in got if "/status/" in t}
        self.assertIn("%s:1:0:0" % v, status)
        self.assertIn("%s:1:0:e2" % v, status)  # same (vin, seq, index), another epoch
        for kind in ("ops_alert", "log_replay"):
            ids = {json.loads(p)["id"] for t, p in got if "/%s/" % kind in t}
            self.assertEqual(ids, status, "a side effect's id is its status event's")

    def test_the_window_survives_a_clean_restart_of_the_events_broker(self):
        state = self.tmp / "dedupe.window"
        events = self.events_broker(state_file=state)
        downstream = self.client(ot.Client, events, "downstream")
        self.assertEqual(downstream.subscribe("ota/v1/events/#"), 1)
        pub = self.client(ot.Client, events, "publisher", mqtt5=False)  # as a bridge
        topic, ev = "ota/v1/events/status/%s" % ot.vin(1), '{"id":"%s","vin":"x"}'
        pub.publish(topic, ev % "a")
        downstream.get(topic)
        pub.close()
        downstream.close()
        events.restart()
        downstream = self.client(ot.Client, events, "downstream-2")
        self.assertEqual(downstream.subscribe("ota/v1/events/#"), 1)
        pub = self.client(ot.Client, events, "publisher-2", mqtt5=False)
        pub.publish(topic, ev % "a")  # acked (no error) and dropped
        pub.publish(topic, ev % "b")
        pub.publish("ota/v1/events/push/%s" % ot.vin(1), ev % "a")  # another topic
        pub.publish(topic, '{"vin":"x"}')  # no id: passes
        pub.publish(topic, '{"vin":"x"}')
        ot.wait_until(lambda: len(downstream.received()) >= 4, msg="the new events")
        got = [(m.topic, m.payload.decode()) for m in downstream.quiet()]
        self.assertEqual(sorted(got), sorted([(topic, ev % "b"),
                                              ("ota/v1/events/push/%s" % ot.vin(1), ev % "a"),
                                              (topic, '{"vin":"x"}'), (topic, '{"vin":"x"}')]))
        self.assertIn("ota-dedupe: window of 1 keys read from %s" % state, events.log())

    def test_bad_options_stop_the_events_broker(self):
        if not ot.dedupe_conf():
            self.skipTest("OTA_TEST_NO_DEDUPE=1: no plugin")
        for line in ("plugin_opt_window 0", "plugin_opt_window many", "plugin_opt_window -1",
                     "plugin_opt_window 99999999999", "plugin_opt_windows 10"):
            with self.subTest(line):
                conf = [x for x in ot.dedupe_conf() if not x.startswith("plugin_opt_window")]
                # Mosquitto 2.0.11 does not free its own config when a plugin fails to
                # start: no leak check for these brokers (as in test_security).
                with self.assertRaises(ot.HarnessError):
                    self.broker(plugin=False, extra_conf=conf + [line], detect_leaks=False)
                self.assertIn("ota-dedupe: ", self._brokers[-1].log())


if __name__ == "__main__":
    ot.main()
