#!/usr/bin/python3
"""Integration: report ingestion into MongoDB — through the plugin into the mongo_peer test
double (tests/mongo_peer) and, when OTA_TEST_MONGODB_URI names one, into a real MongoDB
(skipped otherwise, and the skip is printed).

A broker with `plugin_opt_store mongodb://127.0.0.1:PORT/ota` takes reports from paho and
ota-fleet; the stored events are read back with pymongo (an independent driver), the
writer's figures with getStats.
"""

import os
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402

VIN = ot.vin(1)


class MongoIngestChecks:
    """The checks, run against whatever store_uri() / db() give."""

    def check_every_type_stored(self, b, db):
        v = self.vehicle(b, VIN)
        v.report(1, ot.all_types_events(ts=ot.TS0))
        v.report(1, ot.all_types_events(ts=ot.TS0))  # a replay: quarantined (E_REPLAY)
        self.assertEqual(v.error()["err"], "E_REPLAY")
        st = self.admin(b).wait_drained()
        self.assertTrue(st["writer"]["store_ok"])
        self.assertEqual((st["writer"]["events_stored"], st["writer"]["duplicates"],
                          st["writer"]["quarantined"]), (5, 0, 1))
        self.assertEqual(db.counts(), {k: 1 for k in ot.TABLES})
        row = db.rows("upgrade_status")[0]
        self.assertEqual((row["vin"], row["seq"], row["idx"], row["task"], row["status"],
                          row["trigger"], row["error"], row["fw"]),
                         (VIN, 1, 2, "T-1", "failed", "forced", "upgrade_failed", "2.3.4"))
        self.assertGreater(row["received_at"], ot.TS0)
        row = db.rows("download_progress")[0]
        self.assertEqual((row["ecu"], row["pct"], row["bytes"], row["ts"]),
                         ("BMS", 42, 123456, ot.TS0))
        row = db.rows("command")[0]
        self.assertEqual((row["cmd"], row["at"]), ("schedule", ot.TS0 + 3_600_000))

    def check_fleet(self, b, db, vehicles=4, reports=500, events=2):
        rc, summary, err = ot.run_fleet(b, vehicles, reports, events)
        self.assertEqual(rc, 0, err[-2000:])
        st = self.admin(b).wait_drained(timeout=60 * ot.SCALE)
        total = vehicles * reports * events
        self.assertEqual(st["writer"]["events_stored"], total)
        self.assertEqual(db.total(), total)
        per = db.per_report()
        self.assertEqual(len(per), vehicles * reports)
        self.assertEqual(set(per.values()), {events})
        return st


class PeerIngestTest(ot.OtaTestCase, MongoIngestChecks):

    def setUp(self):
        super().setUp()
        self.peer = self.mongo_peer()
        self.db = self.mongo_db(self.peer.uri())

    def test_every_event_type_is_stored_once_in_the_peer(self):
        b = self.broker(store=self.peer.uri("ota"))
        self.check_every_type_stored(b, self.db)
        self.assertIn("ota.insert ota_vehicle_upgrade_status", self.peer.log())

    def test_fleet_run_into_the_peer(self):
        b = self.broker(store=self.peer.uri("ota"), log_types=("error", "warning", "notice"),
                        full_stacks=True)  # for ota-fleet (otatest.Broker)
        st = self.check_fleet(b, self.db)
        print("\nmongo ingest: %d events in %d batches (%.0f events/batch)"
              % (st["writer"]["events_stored"], st["writer"]["batches"],
                 st["writer"]["events_stored"] / max(1, st["writer"]["batches"])),
              file=sys.stderr)

    def test_stored_events_survive_a_broker_restart_and_replays_are_refused(self):
        b = self.broker(store=self.peer.uri("ota"))
        v = self.vehicle(b, VIN)
        for seq in range(1, 4):
            v.report(seq, [ot.ev_download(ts=ot.TS0 + seq, pct=seq)])
        self.admin(b).wait_drained()
        v.close()
        b.restart()
        v = self.vehicle(b, VIN)
        for seq in range(1, 5):
            v.report(seq, [ot.ev_download(ts=ot.TS0 + seq, pct=seq)])
        st = self.admin(b).wait_drained()
        self.assertEqual((st["writer"]["events_stored"], st["writer"]["duplicates"],
                          st["writer"]["quarantined"], st["reports_replayed"]), (1, 0, 3, 3))
        self.assertEqual([r["pct"] for r in self.db.rows("download_progress")], [1, 2, 3, 4])

    def test_a_broker_whose_store_is_unreachable_at_start_says_so(self):
        port = ot.free_port()
        b = ot.Broker(self.tmp / "nostore", start=False, full_stacks=True,  # fails to start
                      store="mongodb://127.0.0.1:%d/ota?serverSelectionTimeoutMS=500" % port)
        self._brokers.append(b)
        with self.assertRaises(ot.HarnessError):
            b.start()
        self.assertIn("127.0.0.1:%d" % port, b.log() + b.tail())


class RealMongoIngestTest(ot.OtaTestCase, MongoIngestChecks):
    """The same checks against a real MongoDB (OTA_TEST_MONGODB_URI), in a database of
    its own that is dropped afterwards."""

    def setUp(self):
        super().setUp()
        uri = ot.real_mongodb_uri()
        if not uri:
            self.skipTest("OTA_TEST_MONGODB_URI not set (no real MongoDB)")
        name = "ota_test_%d_%d" % (os.getpid(), int(time.time() * 1000) % 10**9)
        self.uri = ot.mongo_uri_with_db(uri, name)
        self.db = self.mongo_db(self.uri, name)
        self.addCleanup(self.db.drop)

    def test_every_event_type_is_stored_once_in_mongodb(self):
        self.check_every_type_stored(self.broker(store=self.uri), self.db)

    def test_fleet_run_into_mongodb(self):
        self.check_fleet(self.broker(store=self.uri, log_types=("error", "warning"),
                                     full_stacks=True), self.db)  # for ota-fleet


if __name__ == "__main__":
    unittest.main(verbosity=2)
