#!/usr/bin/python3
"""Integration: events downstream at any number of brokers (issue 15, docs/mongodb.md
"Events downstream"). Two vehicle-facing brokers, each bridged to a third, plain
Mosquitto (the events broker) with the configuration scripts/bridge-events-conf.sh prints
(ota/v1/events/# out, QoS 1, cleansession false, one bridge client id per broker). A
downstream subscriber on the events broker only must see every status event of the
vehicles on both brokers exactly once, identified by (vin, seq, index).
"""

import collections
import subprocess
import sys
from pathlib import Path

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

    def test_every_status_event_of_both_brokers_once_downstream(self):
        events = self.broker(plugin=False)
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


if __name__ == "__main__":
    ot.main()
