#!/usr/bin/python3
"""Integration: zero loss with MongoDB down — the foundation's zero-loss test (see
test_zero_loss.py) repeated with the store, the mongo_peer test double, stopped for 30 s
in the middle of the stream (the other two scenarios use a 10 s outage: they need one, not
its length).

While the peer is down the broker keeps acking reports (they are spooled durably) and the
writer keeps its batch and retries; when the peer is back (same port, its journal
replayed) the backlog drains, and every acked event is in the store exactly once. The
outage is a real stop (SIGKILL or SIGTERM of the peer process, the listening port
closed), and in a third test a pause (SIGSTOP/SIGCONT: connections open, nothing
answered) during which the driver's request just waits.

OTA_ZL_REPORTS (reports per vehicle, default 3000) and OTA_MONGO_OUTAGE_S (default 30)
scale the run.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402

VEHICLES = 4
REPORTS = int(os.environ.get("OTA_ZL_REPORTS", "3000"))
EXTRA = REPORTS // 2  # reports per vehicle sent while the peer is down
EVENTS = 2
TOTAL_REPORTS = VEHICLES * (REPORTS + EXTRA)
TOTAL_EVENTS = TOTAL_REPORTS * EVENTS
STOP_AFTER = max(100, VEHICLES * REPORTS // 5)  # acked reports before the peer stops
OUTAGE_S = float(os.environ.get("OTA_MONGO_OUTAGE_S", "30"))
# The other scenarios need an outage, not its length (the 30 s one is the case).
SHORT_OUTAGE_S = OUTAGE_S / 3
QUIET_LOG = ("error", "warning", "notice", "information")


class MongoZeroLossTest(ot.OtaTestCase):
    asan_full_stacks = True  # ota-fleet's brokers (otatest.Broker)

    def setUp(self):
        super().setUp()
        self.peer = self.mongo_peer(quiet=True)
        self.b = self.broker(store=self.peer.uri("ota"), log_types=QUIET_LOG)
        self.db = self.mongo_db(self.peer.uri())

    def stream_until(self, n_acked, path):
        """Starts the fleet over seq 1..REPORTS; returns it once n_acked reports are
        acked (it may have finished since: outage_traffic sends more during the outage)."""
        fleet = ot.start_fleet(self.b, VEHICLES, REPORTS, EVENTS, acked=path)
        try:
            ot.wait_until(lambda: ot.count_lines(path) >= n_acked or fleet.poll() is not None,
                          timeout=60 * ot.SCALE, msg="%d acked reports" % n_acked)
        except AssertionError:
            fleet.kill()
            raise
        return fleet

    def outage_traffic(self, fleet, admin):
        """With the peer down: the running fleet finishes and a second one sends EXTRA
        more reports per vehicle; every report is acked. Returns the stats then."""
        rc, summary, err = ot.finish_fleet(fleet, timeout=60 * ot.SCALE)
        self.assertEqual((rc, summary["puback_failures"]), (0, 0), err[-2000:])
        rc, summary, err = ot.run_fleet(self.b, VEHICLES, EXTRA, EVENTS, seq_start=REPORTS + 1,
                                        acked=self.tmp / "acked-outage")
        self.assertEqual(rc, 0, err[-2000:])
        self.assertEqual(summary["reports_acked"], VEHICLES * EXTRA)
        st = ot.wait_until(lambda: (lambda s: s if not s["writer"]["store_ok"] else None)(
            admin.stats()), timeout=30 * ot.SCALE, msg="the writer to see the store down")
        self.assertGreater(st["writer"]["backlog_bytes"], 0)
        return st

    def check_stored_once(self, st):
        per = self.db.per_report()  # fails on any event stored twice
        self.assertEqual(len(per), TOTAL_REPORTS)
        self.assertEqual(set(per.values()), {EVENTS})
        self.assertEqual(self.db.total(), TOTAL_EVENTS)
        self.assertEqual(st["writer"]["events_stored"] + st["writer"]["duplicates"],
                         TOTAL_EVENTS)

    def sleep_until(self, t):
        time.sleep(max(0.0, t - time.monotonic()))

    def drain(self, admin, since, baseline=None):
        st = admin.wait_drained(timeout=120 * ot.SCALE, baseline=baseline)
        return st, time.monotonic() - since

    def report(self, what, st_down, st, drain_s, stored_at_stop, outage_s=OUTAGE_S):
        drained = TOTAL_EVENTS - stored_at_stop
        print("\nmongo zero-loss (%s, %.0f s): %d events acked, %d stored before the stop; "
              "during the outage >= %d store errors, backlog %d bytes; drained %d events "
              "in %.1f s after the peer came back (%.0f events/s incl. the retry backoff), "
              "%d batches, %d duplicates on retry"
              % (what, outage_s, TOTAL_EVENTS, stored_at_stop,
                 st_down["writer"]["store_errors"],
                 st_down["writer"]["backlog_bytes"], drained, drain_s, drained / drain_s,
                 st["writer"]["batches"], st["writer"]["duplicates"]), file=sys.stderr)

    def test_peer_killed_for_30s_mid_stream_then_everything_acked_is_stored_once(self):
        admin = self.admin(self.b)
        fleet = self.stream_until(STOP_AFTER, self.tmp / "acked-run1")
        ot.wait_until(lambda: admin.stats()["writer"]["events_stored"] > 0,
                      timeout=30 * ot.SCALE, msg="the writer's first batch in the peer")
        self.peer.stop(kill=True)
        down_at = time.monotonic()
        stored_at_stop = self.db_total_after_stop()
        st_down = self.outage_traffic(fleet, admin)
        self.assertLess(st_down["writer"]["events_stored"], TOTAL_EVENTS)
        self.sleep_until(down_at + OUTAGE_S)
        self.assertEqual(admin.stats()["writer"]["events_stored"],
                         st_down["writer"]["events_stored"], "stored while the peer was down")
        self.peer.start()
        up_at = time.monotonic()
        st, drain_s = self.drain(admin, up_at)
        self.assertTrue(st["writer"]["store_ok"])
        self.assertGreater(st["writer"]["store_errors"], 0)
        self.check_stored_once(st)
        self.report("peer SIGKILL", st_down, st, drain_s, stored_at_stop)
        # Re-send everything (the same two runs: ota-fleet picks event types by the
        # report's place in its run): each report is a replay (E_REPLAY, quarantined,
        # issue 13), the store's events are unchanged.
        replays = 0
        for n, start in ((REPORTS, 1), (EXTRA, REPORTS + 1)):
            rc, summary, err = ot.run_fleet(self.b, VEHICLES, n, EVENTS, seq_start=start)
            self.assertEqual(rc, 0, err[-2000:])
            replays += summary["replays"]
        self.assertEqual(replays, TOTAL_EVENTS // EVENTS)
        st2 = admin.wait_drained(timeout=60 * ot.SCALE, baseline=st)
        self.assertStatsDelta(st, st2, "reports_replayed", TOTAL_EVENTS // EVENTS)
        self.assertStatsDelta(st, st2, "writer.events_stored", 0)
        self.assertEqual(self.db.total(), TOTAL_EVENTS)

    def test_broker_killed_during_the_outage_loses_nothing_acked(self):
        admin = self.admin(self.b)
        fleet = self.stream_until(STOP_AFTER, self.tmp / "acked-run1")
        self.peer.stop()
        down_at = time.monotonic()
        stored_at_stop = self.db_total_after_stop()
        st_down = self.outage_traffic(fleet, admin)
        admin.close()
        self.b.kill9()  # nothing shipped since the stop; all of it is in the spool only
        self.sleep_until(down_at + SHORT_OUTAGE_S)
        self.peer.start()
        up_at = time.monotonic()
        self.b.start()  # the plugin needs its store at start (catalog load)
        admin = self.admin(self.b)
        st, drain_s = self.drain(admin, up_at)
        total = self.db.total()
        self.assertEqual(total, TOTAL_EVENTS)
        self.assertEqual(len(self.db.per_report()), TOTAL_REPORTS)
        self.assertEqual(st["writer"]["events_stored"], TOTAL_EVENTS - stored_at_stop,
                         "after the restart the writer stores exactly what was missing")
        self.report("peer SIGTERM + broker SIGKILL", st_down, st, drain_s, stored_at_stop,
                    SHORT_OUTAGE_S)

    def test_peer_paused_mid_stream_then_everything_acked_is_stored_once(self):
        admin = self.admin(self.b)
        fleet = self.stream_until(STOP_AFTER, self.tmp / "acked-run1")
        self.peer.pause()
        paused_at = time.monotonic()
        rc, summary, err = ot.finish_fleet(fleet, timeout=60 * ot.SCALE)
        self.assertEqual(rc, 0, err[-2000:])
        st_paused = admin.stats()
        self.assertGreater(st_paused["writer"]["backlog_bytes"], 0)
        self.sleep_until(paused_at + SHORT_OUTAGE_S)
        self.peer.resume()
        st, _ = self.drain(admin, time.monotonic())
        per = self.db.per_report()
        self.assertEqual(len(per), VEHICLES * REPORTS)
        self.assertEqual(self.db.total(), VEHICLES * REPORTS * EVENTS)
        self.assertEqual(st["writer"]["events_stored"] + st["writer"]["duplicates"],
                         VEHICLES * REPORTS * EVENTS)

    def db_total_after_stop(self):
        """Events in the peer's journal when it stopped (read from the journal file, the
        peer being down)."""
        sys.path.insert(0, str(ot.REPO / "tests" / "mongo_peer"))
        from peer_store import Store
        s = Store(None).replay_file(str(self.peer.data))
        return sum(len(c.docs) for ns, c in s.colls.items()
                   if ns.split(".", 1)[1] in ot.TABLES.values())


if __name__ == "__main__":
    ot.main()
