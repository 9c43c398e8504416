#!/usr/bin/python3
"""Smoke test of bench/ota-bench, the umbrella benchmark: its --tiny --json path runs every
benchmark in a tiny configuration (brokers, fleets, the MongoDB test peer: ~30 s) and
produces well-formed rows; --render prints them again as text and Markdown; a build
without the plugin, or a benchmark that cannot start, is exit status 2. No timing is
asserted: the figures of a tiny run on a shared machine mean nothing, only their shape is
checked. A tiny run exits 0 when nothing regressed: its sizes judge no throughput target
("not judged"), only the size-free one (no acked report lost when the broker is killed)."""

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "ota-bench"
BUILD = Path(os.environ["OTA_PLUGIN"]).resolve().parents[1]  # BUILD/plugin/mosquitto_ota.so
BENCHMARKS = ("ingest", "baseline", "catalog", "task", "dispatch", "file", "pkg", "presign",
              "mongo", "store", "ha")
TARGET_KEYS = ("ingest.acks", "ingest.e2e", "baseline.lost_ours", "catalog.memory",
               "task.create", "dispatch.notices", "file.bytes", "pkg.replies", "pkg.p99")
JUDGED_IN_TINY = ("baseline.lost_ours",)
DIFFERENCES = ("presign.cpu_signer", "presign.cpu_broker", "presign.vmrss")
ROW_KEYS = {"key", "benchmark", "figure", "value", "baseline", "ratio", "target", "met"}


def bench(*args, timeout=240):
    return subprocess.run([sys.executable, str(BENCH)] + list(args), capture_output=True,
                          text=True, timeout=timeout)


class UmbrellaSmoke(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.p = bench("--build", str(BUILD), "--tiny", "--json")
        cls.out = json.loads(cls.p.stdout) if cls.p.stdout.strip() else None

    def test_ran_every_benchmark(self):
        # 0: nothing regressed (1 = a judged target missed, 2 = could not run)
        self.assertEqual(self.p.returncode, 0, self.p.stderr[-3000:])
        self.assertIsNotNone(self.out)
        self.assertEqual(set(self.out["runs"]), set(BENCHMARKS))
        seen = {r["benchmark"] for r in self.out["rows"]}
        self.assertTrue(set(BENCHMARKS) - {"dispatch"} <= seen)
        self.assertIn("dispatch.notices", {r["key"] for r in self.out["rows"]})
        self.assertIn("memory", seen)  # the dispatch run's VmRSS rows

    def test_rows_well_formed(self):
        rows = self.out["rows"]
        self.assertFalse([r for r in rows if r.get("failed")])
        for r in rows:
            self.assertEqual(set(r) - {"failed"}, ROW_KEYS, r)
            self.assertIsInstance(r["value"], (int, float), r)
            # a tiny run may measure 0 (e.g. a backlog drained in its first batch); the
            # pre-signing costs are differences of two runs (on - off): noise may be < 0
            if r["key"] not in DIFFERENCES:
                self.assertGreaterEqual(r["value"], 0, r)
            if r["baseline"] is not None:
                base = r["baseline"]["value"]
                self.assertTrue(r["baseline"]["what"])
                self.assertGreater(base, 0, r)
                self.assertAlmostEqual(r["ratio"], r["value"] / base, delta=0.001 +
                                       0.001 * r["ratio"])
            if r["target"] is None or r["key"] not in JUDGED_IN_TINY:
                self.assertIsNone(r["met"], r)  # no target, or "not judged" at this size
            else:
                self.assertIsInstance(r["met"], bool, r)
            if r["target"] is not None:
                self.assertIn(r["target"]["op"], (">=", "<=", "<"))
                self.assertIn(r["target"]["on"], ("ratio", "value"))

    def test_every_target_has_its_row(self):
        keys = [r["key"] for r in self.out["rows"]]
        for k in TARGET_KEYS:
            self.assertEqual(keys.count(k), 1, k)
        met = [r["met"] for r in self.out["rows"] if r["met"] is not None]
        self.assertEqual(self.p.returncode, 0 if all(met) else 1)

    def test_render_text_and_markdown(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(self.out, f)
        try:
            text = bench("--render", f.name)
            md = bench("--render", f.name, "--markdown")
        finally:
            os.unlink(f.name)
        self.assertEqual(text.returncode, self.p.returncode)
        lines = md.stdout.splitlines()
        table = [ln for ln in lines if ln.startswith("| ")]
        self.assertEqual(len(table), 1 + len(self.out["rows"]))  # header + one per row
        self.assertTrue(all(ln.count(" | ") == 6 for ln in table), table)
        self.assertIn("pkg/get signed replies/s", text.stdout)
        self.assertIn("not judged", text.stdout)

    def test_could_not_run_is_2(self):
        with tempfile.TemporaryDirectory() as empty:
            p = bench("--build", empty, "--tiny", "--only", "task", "--json", timeout=30)
            self.assertEqual(p.returncode, 2, p.stderr)  # no plugin: nothing runs
            # a plugin but no tools: the task benchmark cannot start; its row says so
            (Path(empty) / "plugin").mkdir()
            (Path(empty) / "plugin" / "mosquitto_ota.so").symlink_to(os.environ["OTA_PLUGIN"])
            p = bench("--build", empty, "--tiny", "--only", "task,file", "--json", timeout=60)
        self.assertEqual(p.returncode, 2, p.stderr)
        rows = json.loads(p.stdout)["rows"]
        self.assertEqual([r["benchmark"] for r in rows], ["task", "file"])
        self.assertTrue(all(r.get("failed") for r in rows), rows)
        self.assertTrue(all(r["figure"].startswith("could not run") for r in rows), rows)


if __name__ == "__main__":
    unittest.main(verbosity=2)
