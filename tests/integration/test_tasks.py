#!/usr/bin/python3
"""Integration: task creation and inspection through the operator API (SPEC §5-6).

A catalog is built with the operator commands (models, a file, packages, strategies,
vehicles, lists), then createTask runs against it through a real broker: a task accepted
for good VINs; every per-VIN rejection code reached (duplicate, unknown, model mismatch,
factory status, blacklisted, usage, status, firmware 0, upgrade in progress — after a
report of an upgrade that is still going — same version, downgrade, config word missing);
every task-level error failing the command with its SPEC code; the forced and
same-version whitelists, spot-check and diagnostic-tool skips; getTask counts,
listTaskVehicles (VIN order, state filter); setTaskTypeRules changing the outcome;
tasks, executions, type rules and latest statuses surviving a restart; and otactl's
`task` commands. With OTA_TASK_BENCH=1 it also times a task of 100,000 VINs created by
`otactl task create --vins-file` (figure printed).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_catalog_api import CatalogCase, package  # noqa: E402

M, S = "EX5", "S1"
MODELS = [
    {"model": M, "series": S, "supports_config_word": True, "ecus": ["BMS", "VCU"]},
    {"model": M, "series": "S2", "supports_config_word": False, "ecus": ["BMS", "VCU"]},
    {"model": "EX7", "series": "S1", "supports_config_word": False, "ecus": ["BMS", "VCU"]},
]
OTACTL = os.environ.get("OTA_OTACTL", "")


def vehicle(i, model=M, series=S, status="in_stock", usage="retail", fw="1.0", cw="0001",
            **extra):
    v = {"vin": ot.vin(i), "model": model, "series": series, "status": status, "usage": usage}
    if fw is not None:
        v["fw"] = fw
    if cw is not None:
        v["config_word"] = cw
    v.update(extra)
    return v


# VIN number -> (vehicle, the code a normal task of version 2.0 gives it; None: accepted)
FLEET = {
    1: (vehicle(1), None),
    2: (vehicle(2, status="sold", usage="fleet", fw="1.5"), None),
    3: (vehicle(3, model="EX7", cw=None), "E_MODEL_MISMATCH"),
    5: (vehicle(5), "E_BLACKLISTED"),
    6: (vehicle(6, usage="rental"), "E_USAGE_MISMATCH"),
    7: (vehicle(7, status="scrapped"), "E_STATUS_MISMATCH"),
    8: (vehicle(8, fw="0.0"), "E_FIRMWARE_ZERO"),
    9: (vehicle(9), "E_UPGRADE_IN_PROGRESS"),
    10: (vehicle(10, fw="2.0"), "E_SAME_VERSION"),
    11: (vehicle(11, fw="3.0"), "E_DOWNGRADE"),
    12: (vehicle(12, cw=None), "E_CONFIG_WORD_MISSING"),
    13: (vehicle(13, status="scrapped", fw=None), None),  # forced whitelist
    14: (vehicle(14, fw="2.0"), None),  # same-version whitelist
    15: (vehicle(15, fw="2.5"), None),  # downgrade whitelist... of 2.5 -> 2.0
    16: (vehicle(16, status="assembly_offline"), "E_STATUS_MISMATCH"),
}
UNKNOWN = 99  # not in the catalog
STATES = ("queued", "notified", "downloading", "installing", "succeeded", "failed",
          "canceled", "rejected", "accepted", "postponed", "declined")


class TaskCase(CatalogCase):

    def catalog(self):
        """Models, one file, packages of EX5/S1 (2.0 released, 2.1 draft, 2.2 released
        without baseline), EX7/S1 3.0 (no default strategy), EX5/S2 1.0 (a default
        strategy with an unordered ECU); the fleet and the lists."""
        self.models(*MODELS)
        sha = self.put_file(b"firmware image " * 1000)
        files = [("BMS", "ecu", sha), ("VCU", "ecu", sha)]
        self.p20 = self.add_package(package("2.0", files))
        self.set_status(self.p20, "released")
        self.p21 = self.add_package(package("2.1", files))
        p22 = package("2.2", files)
        del p22["baseline_description"]
        self.set_status(self.add_package(p22), "released")
        self.set_status(self.add_package(package("3.0", files, model="EX7")), "released")
        self.set_status(self.add_package(package("1.0", files, series="S2")), "released")
        self.ok("setStrategy", strategy={"id": "ex5", "package_kind": "auto",
                                         "compare_version": "auto",
                                         "ecus": [{"ecu": "BMS", "order": 0},
                                                  {"ecu": "VCU", "order": 1}]})
        self.ok("bindStrategy", id="ex5", model=M, series=S)
        self.ok("setStrategy", strategy={"id": "ex5s2", "package_kind": "full",
                                         "compare_version": "always",
                                         "ecus": [{"ecu": "BMS", "order": 0}, {"ecu": "VCU"}]})
        self.ok("bindStrategy", id="ex5s2", model=M, series="S2")
        self.ok("upsertVehicles", vehicles=[v for v, _ in FLEET.values()])
        self.ok("addToList", list="blacklist", vins=[ot.vin(5)])
        self.ok("addToList", list="forced_whitelist", vins=[ot.vin(13)])
        self.ok("addToList", list="same_version_whitelist", vins=[ot.vin(14)])
        self.ok("addToList", list="downgrade_whitelist", vins=[ot.vin(15)])
        # VIN 9 is still upgrading under a normal task.
        car = self.vehicle(self.b, ot.vin(9))
        car.report(1, [ot.ev_status(task="T-old", status="upgrading", trigger="normal")])
        self.wait_taken(1)

    def wait_taken(self, n):
        """Waits until n reports are stored and their effects set off (issue 14: after the
        PUBACK, once the writer has them)."""
        ot.wait_until(lambda: self.ok("getStats")["reports_accepted"] >= n,
                      msg="%d reports taken" % n)

    def task(self, vins, **kw):
        t = {"name": "campaign", "type": "normal", "model": M, "series": S, "version": "2.0",
             "vins": vins}
        t.update(kw)
        return t

    def create(self, vins, **kw):
        return self.ok("createTask", task=self.task(vins, **kw))

    def outcome(self, data):
        """{vin: code or None} of a createTask answer (checked to cover each VIN once)."""
        out = {v: None for v in data["accepted"]}
        for r in data["rejected"]:
            self.assertEqual(set(r), {"vin", "code"}, r)
            out.setdefault(r["vin"], r["code"])
        return out


class CreateTask(TaskCase):

    def test_accepts_good_vins(self):
        self.start()
        self.catalog()
        d = self.create([ot.vin(1), ot.vin(2)])
        self.assertEqual(d, {"id": "T000001", "accepted": [ot.vin(1), ot.vin(2)], "rejected": []})
        t = self.ok("getTask", id="T000001")
        self.assertEqual(t["state"], "active")
        self.assertEqual(t["package"], self.p20)
        self.assertEqual(t["counts"], dict({s: 0 for s in STATES}, queued=2))
        self.assertEqual(t["task"], {"id": "T000001", "name": "campaign", "type": "normal",
                                     "source": "console", "model": M, "series": S,
                                     "version": "2.0", "max_resend": 0, "rate": 0,
                                     "timeout_min": 0})
        self.assertAlmostEqual(t["created_at"], ot.now_ms(), delta=60_000)

    def test_every_rejection_code(self):
        self.start()
        self.catalog()
        vins = [ot.vin(i) for i in FLEET] + [ot.vin(UNKNOWN), ot.vin(1)]
        d = self.create(vins)
        expect = {ot.vin(i): code for i, (_, code) in FLEET.items()}
        expect[ot.vin(UNKNOWN)] = "E_UNKNOWN_VEHICLE"
        self.assertEqual(self.outcome(d), expect)
        # The repeat of VIN 1 is rejected in its place; its first place was accepted.
        self.assertEqual(d["rejected"][-1], {"vin": ot.vin(1), "code": "E_DUPLICATE_VIN"})
        self.assertEqual(d["accepted"], [ot.vin(i) for i in FLEET if FLEET[i][1] is None])
        # A factory task: only factory statuses (VIN 16 is assembly_offline).
        d = self.create([ot.vin(1), ot.vin(16)], type="factory")
        self.assertEqual(self.outcome(d), {ot.vin(1): "E_FACTORY_STATUS", ot.vin(16): None})

    def test_task_level_errors(self):
        self.start()
        self.catalog()
        v = [ot.vin(1)]
        cases = [
            (self.task([]), "E_EMPTY_VINS: "),
            (self.task(v, version="9.9"), "E_NO_PACKAGE: no full package of EX5/S1 version 9.9"),
            (self.task(v, version="2.1"), "E_PACKAGE_NOT_RELEASED: "),
            (self.task(v, version="2.2"), "E_NO_BASELINE: "),
            (self.task([ot.vin(3)], model="EX7", version="3.0"), "E_NO_DEFAULT_STRATEGY: "),
            (self.task(v, series="S2", version="1.0"), "E_STRATEGY_ECU_ORDER: strategy ex5s2"),
        ]
        for task, prefix in cases:
            err = self.fails("createTask", task=task)
            self.assertTrue(err.startswith(prefix), "%r does not start with %r" % (err, prefix))
        # A spot check may use a package that is not released.
        self.create(v, type="spot_check", version="2.1")
        # Field errors name the field.
        self.fails("createTask", "task.vins[1]: ", task=self.task([ot.vin(1), "NOT-A-VIN"]))
        self.fails("createTask", "task.type: expected normal|", task=self.task(v, type="urgent"))
        self.fails("createTask", "task.colour: unknown field", task=self.task(v, colour="red"))
        self.fails("createTask", "task.end: must be after start",
                   task=self.task(v, start=ot.now_ms() + 2000, end=ot.now_ms() + 1000))
        self.fails("createTask", "task.abort.failure_pct: missing",
                   task=self.task(v, abort={"min_executed": 10}))
        self.fails("createTask", "task: missing")
        # Nothing of those was stored: the next id is still T000002.
        self.assertEqual(self.create(v)["id"], "T000002")

    def test_whitelists_spot_check_and_diagnostic_tool(self):
        self.start()
        self.catalog()
        skipped = [ot.vin(i) for i in (5, 6, 7, 8, 9, 10)]
        d = self.create(skipped, source="diagnostic_tool")
        # The list, usage, status, firmware and busy checks and the same-version rule are
        # skipped for a diagnostic tool.
        self.assertEqual(self.outcome(d), {v: None for v in skipped})
        # A diagnostic tool still may not downgrade nor reach the wrong model.
        d = self.create([ot.vin(11), ot.vin(3)], source="diagnostic_tool")
        self.assertEqual(self.outcome(d), {ot.vin(11): "E_DOWNGRADE",
                                           ot.vin(3): "E_MODEL_MISMATCH"})
        # A spot check compares no version (VIN 10 runs 2.0 already) but checks statuses.
        d = self.create([ot.vin(10), ot.vin(2)], type="spot_check")
        self.assertEqual(self.outcome(d), {ot.vin(10): None, ot.vin(2): "E_STATUS_MISMATCH"})
        # Diagnostic tasks: no same-version rule either.
        d = self.create([ot.vin(10)], type="diagnostic")
        self.assertEqual(self.outcome(d), {ot.vin(10): None})

    def test_upgrade_in_progress_follows_reports(self):
        self.start()
        self.catalog()
        car = self.vehicle(self.b, ot.vin(1))
        car.report(1, [ot.ev_status(task="T-x", status="waiting", trigger="normal")])
        self.wait_taken(2)  # and VIN 9's of catalog()
        self.assertEqual(self.outcome(self.create([ot.vin(1)])),
                         {ot.vin(1): "E_UPGRADE_IN_PROGRESS"})
        # A forced task's upgrade does not block (only a normal task's does).
        car.report(2, [ot.ev_status(task="T-x", status="upgrading", trigger="forced",
                                    ts=ot.TS0 + 1)])
        self.wait_taken(3)
        self.assertEqual(self.outcome(self.create([ot.vin(1)])), {ot.vin(1): None})
        # An older event (a replay) does not bring the old status back.
        car.report(3, [ot.ev_status(task="T-x", status="rolling_back", trigger="normal",
                                    ts=ot.TS0 - 5)])
        self.wait_taken(4)
        self.assertEqual(self.outcome(self.create([ot.vin(1)])), {ot.vin(1): None})
        car.report(4, [ot.ev_status(task="T-x", status="succeeded", trigger="normal",
                                    ts=ot.TS0 + 2)])
        self.wait_taken(5)
        self.assertEqual(self.outcome(self.create([ot.vin(1)])), {ot.vin(1): None})


class InspectTasks(TaskCase):

    def test_counts_and_vehicle_listing(self):
        self.start()
        self.catalog()
        vins = [ot.vin(i) for i in (12, 2, 6, 1)] + [ot.vin(UNKNOWN), ot.vin(2)]
        d = self.create(vins)
        tid = d["id"]
        t = self.ok("getTask", id=tid)
        self.assertEqual(t["counts"], dict({s: 0 for s in STATES}, queued=2, rejected=3))
        listed = self.ok("listTaskVehicles", id=tid)["vehicles"]
        self.assertEqual(listed, [
            {"vin": ot.vin(1), "state": "queued"},
            {"vin": ot.vin(2), "state": "queued"},
            {"vin": ot.vin(6), "state": "rejected", "code": "E_USAGE_MISMATCH"},
            {"vin": ot.vin(12), "state": "rejected", "code": "E_CONFIG_WORD_MISSING"},
            {"vin": ot.vin(UNKNOWN), "state": "rejected", "code": "E_UNKNOWN_VEHICLE"},
        ])
        self.assertEqual(self.ok("listTaskVehicles", id=tid, state="queued")["vehicles"],
                         listed[:2])
        self.assertEqual(self.ok("listTaskVehicles", id=tid, state="failed")["vehicles"], [])
        self.fails("listTaskVehicles", "state: expected queued|", id=tid, state="lost")
        self.fails("getTask", "id: unknown task T999999", id="T999999")
        self.fails("getTask", "id: missing")
        # The store has the same executions.
        rows = ot.Db(self.b.db_path).query(
            "SELECT vin, state, code, resends, notified_at FROM ota_task_vin WHERE task = ? "
            "ORDER BY vin", (tid,))
        self.assertEqual([(r["vin"], r["state"], r["code"]) for r in rows],
                         [(x["vin"], x["state"], x.get("code")) for x in listed])
        self.assertEqual({(r["resends"], r["notified_at"]) for r in rows}, {(0, None)})

    def test_type_rules(self):
        self.start()
        self.catalog()
        rules = self.ok("getTaskTypeRules")["rules"]
        self.assertEqual(rules, {
            "normal": {"statuses": ["in_stock", "sold"], "usages": ["retail", "fleet", "test"]},
            "forced": {"statuses": ["in_stock", "sold"], "usages": ["retail", "fleet", "test"]},
            "factory": {"statuses": ["assembly_offline", "ok_offline", "certificate_printed"],
                        "usages": []},
            "spot_check": {"statuses": ["ok_offline", "certificate_printed", "in_stock"],
                           "usages": []},
            "diagnostic": {"statuses": [], "usages": []},
        })
        v = [ot.vin(6), ot.vin(7), ot.vin(1)]
        self.assertEqual(self.outcome(self.create(v)),
                         {ot.vin(6): "E_USAGE_MISMATCH", ot.vin(7): "E_STATUS_MISMATCH",
                          ot.vin(1): None})
        # Scrapped vehicles allowed, any usage ([] = any); VIN 1 is now out (in_stock).
        self.assertEqual(self.ok("setTaskTypeRules", type="normal", statuses=["scrapped", "sold"],
                                 usages=[]), {})
        self.assertEqual(self.outcome(self.create(v)),
                         {ot.vin(6): "E_STATUS_MISMATCH", ot.vin(7): None,
                          ot.vin(1): "E_STATUS_MISMATCH"})
        self.assertEqual(self.ok("getTaskTypeRules")["rules"]["normal"],
                         {"statuses": ["scrapped", "sold"], "usages": []})
        # Forced tasks keep their own rules.
        self.assertEqual(self.outcome(self.create(v, type="forced"))[ot.vin(7)],
                         "E_STATUS_MISMATCH")
        self.fails("setTaskTypeRules", "type: expected normal|", type="urgent", statuses=[],
                   usages=[])
        self.fails("setTaskTypeRules", "usages: missing", type="normal", statuses=[])
        self.fails("setTaskTypeRules", "statuses[1]: duplicate", type="normal",
                   statuses=["sold", "sold"], usages=[])
        self.b.restart()
        self.a = self.admin(self.b, nodelay=True)
        self.assertEqual(self.ok("getTaskTypeRules")["rules"]["normal"],
                         {"statuses": ["scrapped", "sold"], "usages": []})


class Restart(TaskCase):

    def test_tasks_survive_a_restart(self):
        self.start()
        self.catalog()
        t0 = ot.now_ms() + 3_600_000  # a start in the past is refused (issue 18)
        d1 = self.create([ot.vin(i) for i in FLEET], name="first", start=t0,
                         end=t0 + 3_600_000, max_resend=3, rate=50, timeout_min=30,
                         abort={"min_executed": 100, "failure_pct": 20})
        d2 = self.create([ot.vin(1)], name="second", type="forced")
        before = [(self.ok("getTask", id=d["id"]), self.ok("listTaskVehicles", id=d["id"]))
                  for d in (d1, d2)]
        self.assertEqual(before[0][0]["task"]["abort"], {"min_executed": 100, "failure_pct": 20})
        self.b.restart()
        self.a = self.admin(self.b, nodelay=True)
        after = [(self.ok("getTask", id=d["id"]), self.ok("listTaskVehicles", id=d["id"]))
                 for d in (d1, d2)]
        self.assertEqual(after, before)
        # Ids go on; VIN 9's upgrade (a stored report) still blocks it.
        d3 = self.create([ot.vin(9), ot.vin(1)])
        self.assertEqual(d3["id"], "T000003")
        self.assertEqual(self.outcome(d3), {ot.vin(9): "E_UPGRADE_IN_PROGRESS", ot.vin(1): None})
        self.b.kill9()
        self.b.start()
        self.a = self.admin(self.b, nodelay=True)
        self.assertEqual(self.ok("getTask", id="T000003")["counts"]["queued"], 1)


class OtactlTasks(TaskCase):

    def setUp(self):
        super().setUp()
        if not OTACTL or not Path(OTACTL).exists():
            self.skipTest("otactl not built (OTA_OTACTL=%r)" % OTACTL)

    def otactl(self, *args, ok=True, json_out=True):
        cmd = [OTACTL, "--host", "127.0.0.1", "--port", str(self.b.port), "--user", ot.ADMIN,
               "--timeout", str(int(ot.TIMEOUT * 3))] + (["--json"] if json_out else [])
        p = subprocess.run(cmd + list(args), capture_output=True, text=True,
                           timeout=6 * ot.TIMEOUT)
        if ok:
            self.assertEqual(p.returncode, 0, "%s\nstdout: %s\nstderr: %s" %
                             (" ".join(cmd + list(args)), p.stdout, p.stderr))
        return p

    def test_create_get_vehicles_rules(self):
        self.start()
        self.catalog()
        vf = self.tmp / "vins.txt"
        vf.write_text("# campaign\n%s\n%s, %s\n" % (ot.vin(2), ot.vin(6), ot.vin(UNKNOWN)))
        p = self.otactl("task", "create", "--name", "cli", "--type", "normal", "--model", M,
                        "--series", S, "--version", "2.0", "--vins", ot.vin(1),
                        "--vins-file", str(vf), "--max-resend", "2", "--rate", "10",
                        "--abort-min-executed", "5", "--abort-failure-pct", "50")
        d = json.loads(p.stdout)
        self.assertEqual(d["id"], "T000001")
        self.assertEqual(d["accepted"], [ot.vin(1), ot.vin(2)])
        self.assertEqual(d["rejected"], [{"vin": ot.vin(6), "code": "E_USAGE_MISMATCH"},
                                         {"vin": ot.vin(UNKNOWN), "code": "E_UNKNOWN_VEHICLE"}])
        t = json.loads(self.otactl("task", "get", "T000001").stdout)
        self.assertEqual(t["task"]["abort"], {"min_executed": 5, "failure_pct": 50})
        self.assertEqual((t["task"]["max_resend"], t["task"]["rate"]), (2, 10))
        self.assertEqual(t["counts"]["queued"], 2)
        v = json.loads(self.otactl("task", "vehicles", "T000001", "--state", "rejected").stdout)
        self.assertEqual([x["vin"] for x in v["vehicles"]], [ot.vin(6), ot.vin(UNKNOWN)])
        # Human output.
        p = self.otactl("task", "vehicles", "T000001", json_out=False)
        self.assertIn("%s  rejected  E_USAGE_MISMATCH" % ot.vin(6), p.stdout)
        p = self.otactl("task", "create", "--name", "x", "--type", "normal", "--model", M,
                        "--series", S, "--version", "9.9", "--vins", ot.vin(1), ok=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("E_NO_PACKAGE", p.stderr)
        # --json FILE
        tf = self.tmp / "task.json"
        tf.write_text(json.dumps({"task": self.task([ot.vin(1)], type="forced")}))
        self.assertEqual(json.loads(self.otactl("task", "create", "--json", str(tf)).stdout)["id"],
                         "T000002")
        # Rules.
        self.otactl("task", "rules", "set", "normal", "--statuses", "in_stock,sold",
                    "--usages", "retail,fleet,test,rental")
        r = json.loads(self.otactl("task", "rules", "get").stdout)
        self.assertEqual(r["rules"]["normal"]["usages"], ["retail", "fleet", "test", "rental"])
        p = self.otactl("task", "rules", "set", "urgent", ok=False)
        self.assertEqual(p.returncode, 2)


class Bench100k(TaskCase):
    """100,000 VINs validated and queued through the broker (OTA_TASK_BENCH=1)."""

    N = 100_000

    def test_100k_vins(self):
        if not os.environ.get("OTA_TASK_BENCH") or not OTACTL:
            self.skipTest("set OTA_TASK_BENCH=1 (and build otactl) to run")
        self.start()
        self.models(*MODELS)
        sha = self.put_file(b"image")
        files = [("BMS", "ecu", sha)]
        self.set_status(self.add_package(package("2.0", files)), "released")
        self.ok("setStrategy", strategy={"id": "s", "package_kind": "full",
                                         "compare_version": "auto",
                                         "ecus": [{"ecu": "BMS", "order": 0}]})
        self.ok("bindStrategy", id="s", model=M, series=S)
        csv = self.tmp / "fleet.csv"
        with open(csv, "w") as f:
            f.write("vin,model,series,status,usage,fw,config_word\n")
            for i in range(self.N):
                f.write("%s,%s,%s,in_stock,retail,1.0,01\n" % (ot.vin(i, "LSVTB"), M, S))
        OtactlTasks.otactl(self, "vehicle", "import", str(csv), "--batch", "10000")
        vf = self.tmp / "vins.txt"
        vf.write_text("\n".join(ot.vin(i, "LSVTB") for i in range(self.N)) + "\n")
        t0 = time.monotonic()
        p = OtactlTasks.otactl(self, "task", "create", "--name", "big", "--type", "normal",
                               "--model", M, "--series", S, "--version", "2.0",
                               "--vins-file", str(vf))
        elapsed = time.monotonic() - t0
        d = json.loads(p.stdout)
        self.assertEqual(len(d["accepted"]), self.N)
        self.assertLess(elapsed, 1.0 * ot.SCALE, "100,000 VINs must be queued within 1 s")
        print("\n100k-VIN createTask through the broker (otactl, end to end): %.3f s"
              % elapsed, file=sys.stderr)
        t = self.ok("getTask", id=d["id"])
        self.assertEqual(t["counts"]["queued"], self.N)


if __name__ == "__main__":
    ot.main()
