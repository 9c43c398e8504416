#!/usr/bin/python3
"""Integration: the operator commands that find things again (issue 18,
docs/operator-api.md "Finding things"), through a real broker with the plugin:
listTasks (filters, newest first, paging by cursor), listVehicles (every filter, VIN
order, paging), getVehicleStatus (shadow, current and past executions, latest status,
last error), getVehicleHistory (stored events newest first, kinds, paging — a store read
on the writer thread — also after a restart), getFleetSummary, exportTask, the package
commands (updatePackage, deprecated, deletePackage refused while a task uses it), ISO 8601
times (refusing seconds and past starts) and the closed word lists."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_catalog_api import package  # noqa: E402
import test_campaign  # noqa: E402
from test_campaign import report  # noqa: E402
from test_tasks import M, S, TaskCase as _TaskCase, vehicle  # noqa: E402

STATUS_WORDS = "assembly_offline, ok_offline, certificate_printed, in_stock, sold, scrapped"


class OpsApi(_TaskCase):
    # the campaign tests' helpers (their tests stay in test_campaign.py)
    fleet = test_campaign.Campaign.fleet
    car = test_campaign.Campaign.car
    counts = test_campaign.Campaign.counts
    wait_counts = test_campaign.Campaign.wait_counts
    notice_of = test_campaign.Campaign.notice_of

    # ---- listTasks

    def test_list_tasks_filters_and_pages(self):
        self.fleet([20, 21, 22])
        before = ot.now_ms()
        ids = [self.create([ot.vin(20 + i % 3)], name="t%d" % i)["id"] for i in range(5)]
        spot = self.create([ot.vin(1)], type="spot_check", version="2.1")["id"]
        self.ok("cancelTask", id=ids[1])
        r = self.ok("listTasks")
        self.assertEqual([t["id"] for t in r["tasks"]], [spot] + ids[::-1])  # newest first
        self.assertEqual(r["total"], 6)
        self.assertNotIn("next_cursor", r)
        t0 = r["tasks"][-1]
        self.assertEqual((t0["name"], t0["state"], t0["version"], t0["counts"]["queued"]),
                         ("t0", "active", "2.0", 1))
        self.assertNotIn("vins", t0)
        self.assertGreaterEqual(t0["created_at"], before)
        # filters
        self.assertEqual([t["id"] for t in self.ok("listTasks", state="canceled")["tasks"]],
                         [ids[1]])
        self.assertEqual([t["id"] for t in self.ok("listTasks", version="2.1")["tasks"]], [spot])
        self.assertEqual(self.ok("listTasks", model="EX7")["total"], 0)
        self.assertEqual(self.ok("listTasks", model=M, series=S, state="active")["total"], 5)
        self.assertEqual(self.ok("listTasks", created_from=before)["total"], 6)
        self.assertEqual(self.ok("listTasks", created_to=before)["total"], 0)
        iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(before / 1000 - 3600))
        self.assertEqual(self.ok("listTasks", created_from=iso)["total"], 6)
        # pages of 2 cover everything once, in order
        seen, cursor = [], None
        while True:
            page = self.ok("listTasks", limit=2, **({"cursor": cursor} if cursor else {}))
            self.assertEqual(page["total"], 6)
            seen += [t["id"] for t in page["tasks"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
            self.assertLessEqual(len(page["tasks"]), 2)
        self.assertEqual(seen, [spot] + ids[::-1])
        page = self.ok("listTasks", state="active", limit=1, cursor=ids[3])
        self.assertEqual([t["id"] for t in page["tasks"]], [ids[2]])
        self.fails("listTasks", "state: expected active|canceled|aborted|finished", state="done")
        self.fails("listTasks", "cursor: unknown task", cursor="T999999")
        self.fails("listTasks", "limit: expected an integer in 1..1000", limit=0)
        self.fails("listTasks", "created_from: 1765000000 looks like seconds",
                   created_from=1765000000)
        self.fails("listTasks", "colour: unknown field", colour=1)

    # ---- listVehicles

    def test_list_vehicles_filters_and_pages(self):
        self.start()
        self.catalog()
        r = self.ok("listVehicles")
        vins = sorted(v["vin"] for v in r["vehicles"])
        self.assertEqual([v["vin"] for v in r["vehicles"]], vins)  # VIN order
        self.assertEqual(r["total"], 15)
        self.assertEqual(r["vehicles"][0], self.ok("getVehicle", vin=vins[0])["vehicle"])

        def found(**f):
            return [v["vin"] for v in self.ok("listVehicles", **f)["vehicles"]]
        self.assertEqual(found(status="scrapped"), [ot.vin(7), ot.vin(13)])
        self.assertEqual(found(usage="fleet"), [ot.vin(2)])
        self.assertEqual(found(model="EX7"), [ot.vin(3)])
        self.assertEqual(found(fw="2.0"), [ot.vin(10), ot.vin(14)])
        self.assertEqual(found(list="blacklist"), [ot.vin(5)])
        self.assertEqual(found(model=M, series=S, status="in_stock", fw="1.0", usage="retail",
                               vin_prefix=ot.vin(1)[:16]), [ot.vin(1), ot.vin(5), ot.vin(9)])
        self.assertEqual(found(vin_prefix=ot.vin(12)), [ot.vin(12)])
        self.assertEqual(found(vin_prefix="LSVTB"), [])
        seen, cursor = [], None
        while True:
            page = self.ok("listVehicles", model=M, limit=4,
                           **({"cursor": cursor} if cursor else {}))
            self.assertLessEqual(len(page["vehicles"]), 4)
            seen += [v["vin"] for v in page["vehicles"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        self.assertEqual(seen, found(model=M, limit=1000))
        self.assertEqual(len(seen), 14)
        self.fails("listVehicles", 'status: "sodl" is not a vehicle status (%s)' % STATUS_WORDS,
                   status="sodl")
        self.fails("listVehicles", 'usage: "privat" is not a vehicle usage', usage="privat")
        self.fails("listVehicles", 'list: "greylist" is not a list', list="greylist")
        self.fails("listVehicles", "vin_prefix: longer than a VIN", vin_prefix="L" * 18)

    # ---- getVehicleStatus, getVehicleHistory, exportTask

    def test_vehicle_status_history_and_export(self):
        self.fleet([20, 21])
        a = self.car(20)
        b = self.car(21)
        tid = self.create([a.vin, b.vin, ot.vin(3)])["id"]
        self.notice_of(a, tid)
        self.notice_of(b, tid)
        report(a, 1, ot.ev_download(task=tid, pct=40))
        report(a, 2, ot.ev_status(task=tid, status="failed", error="E_VERIFY"))
        report(b, 1, ot.ev_download(task=tid))
        self.wait_counts(tid, failed=1, downloading=1)

        st = self.ok("getVehicleStatus", vin=a.vin)
        self.assertEqual(st["vehicle"]["vin"], a.vin)
        self.assertEqual(st["shadow"]["reported"]["fw"], "1.0")
        self.assertEqual(st["latest_status"], {"status": "failed", "trigger": "normal"})
        self.assertEqual(st["current"], [])
        self.assertEqual([(x["task"], x["state"], x["code"]) for x in st["past"]],
                         [(tid, "failed", "E_VERIFY")])
        self.assertEqual((st["last_error"]["task"], st["last_error"]["code"]), (tid, "E_VERIFY"))
        sb = self.ok("getVehicleStatus", vin=b.vin)
        self.assertEqual([(x["task"], x["state"]) for x in sb["current"]], [(tid, "downloading")])
        self.assertIsNone(sb["last_error"])
        self.assertIsInstance(sb["current"][0]["notified_at"], (int, float))
        quiet = self.ok("getVehicleStatus", vin=ot.vin(2))
        self.assertEqual((quiet["shadow"], quiet["latest_status"], quiet["current"],
                          quiet["past"]), (None, None, [], []))
        self.fails("getVehicleStatus", "vin: unknown vehicle", vin=ot.vin(98))

        # history: newest first, all kinds, one kind, pages
        ot.wait_until(lambda: len(self.ok("getVehicleHistory", vin=a.vin)["events"]) == 2)
        h = self.ok("getVehicleHistory", vin=a.vin)
        self.assertNotIn("next_cursor", h)
        e0, e1 = h["events"]
        self.assertEqual((e0["seq"], e0["kind"], e0["status"], e0["error"], e0["task"]),
                         (2, "upgrade_status", "failed", "E_VERIFY", tid))
        self.assertEqual((e1["seq"], e1["kind"], e1["pct"]), (1, "download_progress", 40))
        self.assertIn("received_at", e1)
        one = self.ok("getVehicleHistory", vin=a.vin, limit=1)
        self.assertEqual(one["next_cursor"], "2:0")
        rest = self.ok("getVehicleHistory", vin=a.vin, limit=1, cursor=one["next_cursor"])
        self.assertEqual([e["seq"] for e in rest["events"]], [1])
        self.assertNotIn("next_cursor", rest)
        k = self.ok("getVehicleHistory", vin=a.vin, kind="download_progress")
        self.assertEqual([e["seq"] for e in k["events"]], [1])
        self.assertEqual(self.ok("getVehicleHistory", vin=ot.vin(97)), {"events": []})
        self.fails("getVehicleHistory", "kind: expected download_progress|", vin=a.vin,
                   kind="gps")
        self.fails("getVehicleHistory", 'cursor: "x" is not a history cursor', vin=a.vin,
                   cursor="x")
        self.fails("getVehicleHistory", "vin: ", vin="nope")

        # export
        ex = self.ok("exportTask", id=tid)
        self.assertEqual(ex["task"]["id"], tid)
        rows = {v["vin"]: v for v in ex["vehicles"]}
        self.assertEqual([v["vin"] for v in ex["vehicles"]], sorted(rows))
        ra = rows[a.vin]
        self.assertEqual((ra["state"], ra["code"], ra["attempts"], ra["fw"], ra["target"]),
                         ("failed", "E_VERIFY", 1, "1.0", "2.0"))
        self.assertIn("notified_at", ra)
        r3 = rows[ot.vin(3)]
        self.assertEqual((r3["state"], r3["code"], r3["attempts"]),
                         ("rejected", "E_MODEL_MISMATCH", 0))
        self.assertNotIn("notified_at", r3)
        self.fails("exportTask", "id: unknown task", id="T999999")

        # the history is read from the store: also after a restart
        self.b.restart()
        self.a = self.admin(self.b, nodelay=True)
        self.assertEqual(len(self.ok("getVehicleHistory", vin=a.vin)["events"]), 2)

    # ---- getFleetSummary

    def test_fleet_summary(self):
        self.start()
        self.catalog()
        tid = self.create([ot.vin(1), ot.vin(3)])["id"]
        s = self.ok("getFleetSummary")
        self.assertEqual(s["vehicles"], 15)
        self.assertEqual(s["by_model"], [{"model": "EX5", "series": "S1", "vehicles": 14},
                                         {"model": "EX7", "series": "S1", "vehicles": 1}])
        fw = {(r["model"], r["fw"]): r["vehicles"] for r in s["by_firmware"]}
        self.assertEqual(fw[("EX5", "1.0")], 7)
        self.assertEqual(fw[("EX5", "")], 1)  # VIN 13 has no firmware
        self.assertEqual(sum(fw.values()), 15)
        self.assertEqual(s["by_status"], {"assembly_offline": 1, "in_stock": 11, "scrapped": 2,
                                          "sold": 1})
        self.assertEqual(s["by_usage"], {"fleet": 1, "rental": 1, "retail": 13})
        self.assertEqual(s["tasks"], {"active": 1, "canceled": 0, "aborted": 0, "finished": 0})
        self.assertEqual((s["executions"]["queued"], s["executions"]["rejected"]), (1, 1))
        self.ok("cancelTask", id=tid)
        self.assertEqual(self.ok("getFleetSummary")["tasks"]["canceled"], 1)
        self.fails("getFleetSummary", "x: unknown field", x=1)

    # ---- packages

    def test_package_update_deprecate_delete(self):
        self.start()
        self.catalog()
        p22 = self.ok("getVersion", model=M, series=S, version="2.2")["package"]
        self.assertNotIn("baseline_description", p22)
        self.fails("createTask", "E_NO_BASELINE", task=self.task([ot.vin(1)], version="2.2"))
        d = self.ok("updatePackage", id=p22["id"], baseline_description="BMS+VCU 2.2")
        self.assertEqual(d["package"]["baseline_description"], "BMS+VCU 2.2")
        self.assertEqual(self.ok("getPackage", id=p22["id"])["package"]["status"], "released")
        self.fails("updatePackage", "give baseline_description", id=p22["id"])
        tid = self.create([ot.vin(1)], version="2.2")["id"]
        self.fails("updatePackage", "is used by task %s (active)" % tid, id=p22["id"],
                   prompt="x")
        self.fails("setPackageStatus", "is used by task %s (active)" % tid, id=p22["id"],
                   status="deprecated")
        self.fails("deletePackage", "is used by task %s (active): deprecate it instead" % tid,
                   id=p22["id"])
        self.ok("cancelTask", id=tid)
        self.set_status(p22["id"], "deprecated")
        self.fails("setPackageStatus", "forward only", id=p22["id"], status="released")
        self.fails("createTask", "E_PACKAGE_NOT_RELEASED", "deprecated",
                   task=self.task([ot.vin(1)], version="2.2"))
        self.fails("deletePackage", "is used by task %s (canceled)" % tid, id=p22["id"])
        # 2.1 (draft) is used by no task: it goes, and stays gone after a restart
        self.ok("deletePackage", id=self.p21)
        self.fails("getPackage", "unknown package", id=self.p21)
        self.assertNotIn("2.1", [p["version"] for p in self.ok("listPackages")["packages"]])
        self.assertEqual(self.ok("maxVersion", model=M, series=S)["version"], "2.0")  # 2.2 deprecated
        self.b.restart()
        self.a = self.admin(self.b, nodelay=True)
        self.fails("getPackage", "unknown package", id=self.p21)
        self.assertEqual(self.ok("getPackage", id=p22["id"])["package"]["status"], "deprecated")
        self.assertEqual(self.ok("getPackage", id=p22["id"])["package"]["baseline_description"],
                         "BMS+VCU 2.2")
        # a package can be added again under the deleted one's name
        files = [(e["ecu"], e["type"], e["file"]["sha256"]) for e in p22["ecus"]]
        self.add_package(package("2.1", files))

    # ---- times and closed word lists

    def test_times_and_words(self):
        self.start()
        self.catalog()
        v = [ot.vin(1)]
        iso = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() + 3600))
        d = self.create(v, start=iso, end="2099-01-01T08:00:00+08:00")
        t = self.ok("getTask", id=d["id"])["task"]
        self.assertAlmostEqual(t["start"], (int(time.time()) + 3600) * 1000, delta=5000)
        self.assertEqual(t["end"], 4070908800000)
        self.fails("createTask", "task.start: ", "looks like seconds",
                   task=self.task(v, start=int(time.time()) + 60))
        self.fails("createTask", "task.start: ", "in the past",
                   task=self.task(v, start=ot.now_ms() - 3_600_000))
        self.fails("createTask", "task.end: \"tomorrow\" is not an ISO 8601 time",
                   task=self.task(v, end="tomorrow"))
        self.fails("upsertVehicles",
                   'vehicles[0].status: "sodl" is not a vehicle status (%s)' % STATUS_WORDS,
                   vehicles=[vehicle(30, status="sodl")])
        self.fails("upsertVehicles", 'vehicles[0].usage: "privat" is not a vehicle usage',
                   vehicles=[vehicle(30, usage="privat")])
        self.fails("getVehicle", "unknown", vin=ot.vin(30))  # nothing stored
        self.fails("setTaskTypeRules", 'statuses[1]: "sodl" is not a vehicle status',
                   type="normal", statuses=["sold", "sodl"], usages=[])
        self.fails("setTaskTypeRules", 'usages[0]: "x" is not a vehicle usage',
                   type="normal", statuses=[], usages=["x"])


if __name__ == "__main__":
    ot.main()
