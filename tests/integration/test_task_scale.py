#!/usr/bin/python3
"""Integration: createTask by query over the 100,000 VINs a request may list (issue 16):
a real broker (SQLite), a catalog of 120,000 extra vehicles upserted in chunks, one task
over a target matching them all. The answer gives counts (not 120,000-entry lists), the
executions are stored in batches of 50,000 before the task document, and the task is
whole in memory and in the store, and again after a restart. The 1,000,000-vehicle figures
are bench/ota-target-bench's (docs/benchmarks.md): a test measures no time.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_targets import TargetCase  # noqa: E402
from test_tasks import vehicle  # noqa: E402

BIG = 120000
CHUNK = 10000
FIRST = 1000000  # VIN numbers of the extra vehicles: above the shared fleet's


class LargeTask(TargetCase):

    def test_target_over_100000_vins(self):
        self.start()
        self.catalog()
        for k in range(0, BIG, CHUNK):
            self.ok("upsertVehicles", timeout=120 * ot.SCALE,
                    vehicles=[vehicle(FIRST + i, fw="1.0", usage="test") for i in
                              range(k, k + CHUNK)])
        target = {"usage": ["test"], "vin_prefix": "LSVTA000001"}
        pv = self.preview(target)
        self.assertEqual(pv["matched"], BIG, pv)
        r = self.a.command("createTask", timeout=300 * ot.SCALE, task=self.target_task(target))
        self.assertNotIn("error", r, r)
        d = r["data"]
        self.assertNotIn("accepted", d)  # counts, not lists, over 100,000 VINs
        self.assertEqual(d["accepted_count"], pv["accepted"], (d, pv))
        self.assertEqual(sum(d["rejected_counts"].values()), BIG - pv["accepted"], d)
        tid = d["id"]
        counts = self.ok("getTask", id=tid)["counts"]
        self.assertEqual(counts["queued"] + counts["rejected"], BIG, counts)
        db = ot.Db(self.b.db_path)
        stored = db.query("SELECT count(*) AS n FROM ota_task_vin WHERE task = ?", (tid,))
        self.assertEqual(stored[0]["n"], BIG)
        self.assertEqual(len(db.query("SELECT key FROM ota_task WHERE key = ?", (tid,))), 1)
        self.restart()
        again = self.ok("getTask", id=tid)["counts"]
        self.assertEqual(again["queued"] + again["rejected"], BIG, again)


if __name__ == "__main__":
    ot.main()
