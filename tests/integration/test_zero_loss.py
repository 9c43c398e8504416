#!/usr/bin/python3
"""Integration: zero loss — a report acked by the broker is never lost.

ota-fleet (libmosquitto) streams reports from several vehicles and writes each report it
got a PUBACK for to its acked file. The broker is killed with SIGKILL mid-stream (no
clean shutdown: only what the plugin spooled before acking can survive), restarted on the
same directories, and every acked report must then reach SQLite with all its events.
A second run re-sends the whole range: each event must be stored exactly once.

OTA_ZL_REPORTS (reports per vehicle, default 3000: 24,000 events in all) scales the run.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402

VEHICLES = 4
REPORTS = int(os.environ.get("OTA_ZL_REPORTS", "3000"))
EVENTS = 2
TOTAL_REPORTS = VEHICLES * REPORTS
TOTAL_EVENTS = TOTAL_REPORTS * EVENTS
KILL_AFTER = max(100, TOTAL_REPORTS // 5)  # acked reports before the kill
QUIET_LOG = ("error", "warning", "notice", "information")


class ZeroLossTest(ot.OtaTestCase):
    asan_full_stacks = True  # ota-fleet's brokers (otatest.Broker)

    def start_broker(self):
        return self.broker(log_types=QUIET_LOG)

    def run_and_kill(self, b):
        """Streams reports, kills the broker after KILL_AFTER acks; returns the acked
        [(vin, seq, nevents)] of that run."""
        path = self.tmp / "acked-run1"
        fleet = ot.start_fleet(b, VEHICLES, REPORTS, EVENTS, acked=path)
        try:
            ot.wait_until(lambda: ot.count_lines(path) >= KILL_AFTER or fleet.poll() is not None,
                          timeout=60 * ot.SCALE, msg="%d acked reports" % KILL_AFTER)
        except AssertionError:
            fleet.kill()
            raise
        if fleet.poll() is not None:
            out, err = fleet.communicate()
            self.fail("ota-fleet ended (%s) before the kill: %s %s"
                      % (fleet.returncode, out[-500:], err[-1000:]))
        b.kill9()
        rc, _, err = ot.finish_fleet(fleet, timeout=30 * ot.SCALE)
        self.assertEqual(rc, 3, "ota-fleet exit status after the broker died: %s" % err[-1000:])
        acked = ot.read_acked(path)
        self.assertGreaterEqual(len(acked), KILL_AFTER)
        self.assertLess(len(acked), TOTAL_REPORTS, "the kill came after the end of the run")
        self.assertEqual(len(set((v, s) for v, s, _ in acked)), len(acked), "acked twice")
        self.assertEqual({n for _, _, n in acked}, {EVENTS})
        return acked

    def check_acked_stored(self, db, acked):
        stored = db.per_report()
        missing = [(v, s, n, stored.get((v, s))) for v, s, n in acked if stored.get((v, s)) != n]
        self.assertEqual(missing[:10], [], "%d of %d acked reports not (fully) stored"
                         % (len(missing), len(acked)))
        self.assertTrue(all(n == EVENTS for n in stored.values()), "partial report stored")
        return stored

    def test_acked_before_kill_is_stored_after_restart(self):
        b = self.start_broker()
        db = ot.Db(b.db_path)
        acked = self.run_and_kill(b)
        at_kill = db.total()
        b.start()
        st = self.admin(b).wait_drained(timeout=60 * ot.SCALE)
        self.assertTrue(st["writer"]["store_ok"])
        stored = self.check_acked_stored(db, acked)
        print("\nzero-loss: acked before kill %d reports / %d events; in SQLite at the kill "
              "%d events; after restart %d reports / %d events (replayed: %d stored, %d "
              "duplicates; spool bad records %d)"
              % (len(acked), len(acked) * EVENTS, at_kill, len(stored), sum(stored.values()),
                 st["writer"]["events_stored"], st["writer"]["duplicates"],
                 st["spool"]["bad_records"]), file=sys.stderr)
        self.assertLessEqual(len(stored), TOTAL_REPORTS)
        self.assertEqual(st["writer"]["events_stored"], db.total() - at_kill,
                         "getStats events_stored after the restart vs. rows added by replay")

    def test_kill_restart_and_resend_stores_each_event_once(self):
        b = self.start_broker()
        db = ot.Db(b.db_path)
        acked = self.run_and_kill(b)
        b.start()
        admin = self.admin(b)
        s0 = admin.wait_drained(timeout=60 * ot.SCALE)
        stored_before = db.total()
        self.check_acked_stored(db, acked)
        # Re-send the whole range (same seq numbers). Each report taken before the kill
        # is a replay now: acked, answered with E_REPLAY and quarantined (issue 13).
        taken_before = stored_before // EVENTS
        rc, summary, err = ot.run_fleet(b, VEHICLES, REPORTS, EVENTS,
                                        acked=self.tmp / "acked-run2")
        self.assertEqual(rc, 0, err[-2000:])
        self.assertEqual((summary["reports_acked"], summary["events_acked"],
                          summary["puback_failures"], summary["error_replies"],
                          summary["replays"]),
                         (TOTAL_REPORTS, TOTAL_EVENTS, 0, 0, taken_before), summary)
        self.assertEqual(len(ot.read_acked(self.tmp / "acked-run2")), TOTAL_REPORTS)
        s1 = admin.wait_drained(timeout=60 * ot.SCALE, baseline=s0)
        stored = self.check_acked_stored(db, acked)
        self.assertEqual(len(stored), TOTAL_REPORTS)
        self.assertEqual(db.total(), TOTAL_EVENTS)
        self.assertEqual(db.unique_keys(), TOTAL_EVENTS)
        # Each re-sent report was either new or a counted replay, exactly once.
        self.assertStatsDelta(s0, s1, "writer.events_stored", TOTAL_EVENTS - stored_before)
        self.assertStatsDelta(s0, s1, "reports_accepted", TOTAL_REPORTS - taken_before)
        self.assertStatsDelta(s0, s1, "reports_replayed", taken_before)
        self.assertStatsDelta(s0, s1, "writer.quarantined", taken_before)
        print("\nzero-loss resend: acked before kill %d reports; stored after restart %d "
              "events; after re-sending %d reports: %d events, %d replays"
              % (len(acked), stored_before, TOTAL_REPORTS, db.total(),
                 s1["reports_replayed"] - s0["reports_replayed"]), file=sys.stderr)


if __name__ == "__main__":
    ot.main()
