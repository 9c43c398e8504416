#!/usr/bin/python3
"""Integration: the server side of UNECE R156 that issue 17 left open, on a real broker.

RXSWIN: packages declare the RXSWINs they set (addPackage / updatePackage / getPackage,
format and one-per-regulation checks), vehicles keep theirs (upsertVehicles may set them;
upserting a vehicle without the field keeps them); a committed success (upgrade_status
succeeded) merges the package's into the vehicle's — not a failure, not a progress report —
and exportTask (JSON and otactl's CSV) lists per VIN the RXSWINs before and after; both
survive a restart; the same on the MongoDB test peer. With a real ota-agent flashing
ota-ecu-sim ECUs, the vehicle's RXSWIN changes only once the agent reports its success
after the post-install check.
Texts per language: prompt / result_info as {tag: text} with a default language, checked
and bounded, carried in the signed description (texts) with the default texts as before;
the agent logs the driver's language and gives it to consent_cmd.
Install-mode defaults: a package's install_mode is what a task gets unless it names its
own (createTask, otactl package add --install-mode)."""

import sqlite3
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_campaign import report  # noqa: E402
from test_r156 import Fleet  # noqa: E402
from test_tasks import OTACTL, vehicle  # noqa: E402
from test_pkg import PkgCase  # noqa: E402
import test_agent  # noqa: E402
from test_agent import VIN  # noqa: E402

PKG_RX = ["R79-STEER.2", "R13-BRK.5"]
OLD_RX = ["R10-EMC.1", "R79-STEER.1"]


class Rxswin(Fleet):
    STORE = None  # plugin_opt_store: None = the default SQLite file

    def start(self, **kw):
        if self.STORE:
            kw.setdefault("store", self.STORE())
        return super().start(**kw)

    def vehicle_rx(self, vin):
        return self.ok("getVehicle", vin=vin)["vehicle"].get("rxswin")

    def test_committed_success_sets_the_vehicles_rxswin(self):
        a, b, c = self.setup_fleet(20, 21, 22)
        self.ok("upsertVehicles", vehicles=[vehicle(20) | {"rxswin": OLD_RX}])
        self.assertEqual(self.vehicle_rx(a.vin), OLD_RX)
        self.assertIsNone(self.vehicle_rx(b.vin))
        self.fails("upsertVehicles", "vehicles[0].rxswin: [0]: \"STEER\" is not an RXSWIN",
                   vehicles=[vehicle(20) | {"rxswin": ["STEER"]}])
        self.fails("updatePackage", "two RXSWINs of one regulation", id=self.p20,
                   rxswin=["R79-A", "R79-B"])
        got = self.ok("updatePackage", id=self.p20, rxswin=PKG_RX)["package"]
        self.assertEqual(got["rxswin"], ["R13-BRK.5", "R79-STEER.2"])  # by regulation
        self.assertEqual(self.ok("getPackage", id=self.p20)["package"]["rxswin"],
                         ["R13-BRK.5", "R79-STEER.2"])
        tid = self.create([a.vin, b.vin, c.vin])["id"]
        for car in (a, b, c):
            self.notice_of(car, tid)
        report(a, 1, ot.ev_download(task=tid), ot.ev_status(task=tid, status="upgrading"))
        report(c, 1, ot.ev_status(task=tid, status="failed", error="upgrade_failed"))
        self.wait_counts(tid, downloading=1, failed=1)
        self.assertEqual(self.vehicle_rx(a.vin), OLD_RX)  # installing is not committed
        report(a, 2, ot.ev_status(task=tid, status="succeeded"))
        report(b, 1, ot.ev_status(task=tid, status="succeeded"))
        want_a = ["R10-EMC.1", "R13-BRK.5", "R79-STEER.2"]
        ot.wait_until(lambda: self.vehicle_rx(a.vin) == want_a, msg="a's RXSWIN updated")
        ot.wait_until(lambda: self.vehicle_rx(b.vin) == ["R13-BRK.5", "R79-STEER.2"],
                      msg="b's RXSWIN set")
        self.assertIsNone(self.vehicle_rx(c.vin))  # failed: unchanged
        # a vehicle upserted again without rxswin keeps it
        self.ok("upsertVehicles", vehicles=[vehicle(20, status="sold")])
        self.assertEqual(self.vehicle_rx(a.vin), want_a)
        self.assertEqual(self.ok("getStats")["rxswin"]["committed"], 2)
        self.check_export(tid, a, b, c, want_a)
        self.a.wait_drained()
        self.b.restart()
        self.a = self.admin(self.b, nodelay=True)
        self.assertEqual(self.vehicle_rx(a.vin), want_a)
        self.check_export(tid, a, b, c, want_a)
        self.assertEqual(self.ok("getStats")["rxswin"]["queued"], 0)  # nothing to do again

    def test_start_repairs_an_update_lost_before_it_was_stored(self):
        """A success whose RXSWIN update never reached the store (a crash in between: made
        here by removing it from the SQLite file while the broker is down) is committed at
        the next start, for a task still active."""
        a, b = self.setup_fleet(20, 21)
        self.ok("updatePackage", id=self.p20, rxswin=PKG_RX)
        tid = self.create([a.vin, b.vin])["id"]  # b never answers: the task stays active
        self.notice_of(a, tid)
        report(a, 1, ot.ev_status(task=tid, status="succeeded"))
        want = ["R13-BRK.5", "R79-STEER.2"]
        ot.wait_until(lambda: self.vehicle_rx(a.vin) == want, msg="RXSWIN committed")
        self.a.wait_drained()
        self.b.stop()
        con = sqlite3.connect(str(self.b.db_path))
        with con:
            con.execute("DELETE FROM ota_rxswin_change")
            con.execute("UPDATE ota_vehicle SET rxswin = NULL")
        con.close()
        self.b.start()
        self.a = self.admin(self.b, nodelay=True)
        ot.wait_until(lambda: self.vehicle_rx(a.vin) == want, msg="RXSWIN committed at start")
        row = [r for r in self.ok("exportTask", id=tid)["vehicles"] if r["vin"] == a.vin][0]
        self.assertEqual((row["rxswin_before"], row["rxswin_after"]), ([], want))

    def check_export(self, tid, a, b, c, want_a):
        rows = {r["vin"]: r for r in self.ok("exportTask", id=tid)["vehicles"]}
        self.assertEqual((rows[a.vin]["rxswin_before"], rows[a.vin]["rxswin_after"]),
                         (OLD_RX, want_a))
        self.assertEqual((rows[b.vin]["rxswin_before"], rows[b.vin]["rxswin_after"]),
                         ([], ["R13-BRK.5", "R79-STEER.2"]))
        self.assertNotIn("rxswin_before", rows[c.vin])
        self.assertEqual(rows[a.vin]["rxswin"], want_a)
        self.assertNotIn("rxswin", rows[c.vin])
        if not (OTACTL and Path(OTACTL).exists()):
            return
        p = subprocess.run([OTACTL, "--host", "127.0.0.1", "--port", str(self.b.port),
                            "--user", ot.ADMIN, "task", "export", tid],
                           capture_output=True, text=True, timeout=6 * ot.TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertTrue(lines[0].endswith(",rxswin_before,rxswin_after,rxswin"), lines[0])
        row = [ln for ln in lines if ln.startswith(a.vin)][0]
        self.assertIn('"R10-EMC.1, R79-STEER.1","R10-EMC.1, R13-BRK.5, R79-STEER.2"', row)

    def test_package_without_rxswin_changes_nothing(self):
        (a,) = self.setup_fleet(20)
        self.ok("upsertVehicles", vehicles=[vehicle(20) | {"rxswin": OLD_RX}])
        tid = self.create([a.vin])["id"]
        self.notice_of(a, tid)
        report(a, 1, ot.ev_status(task=tid, status="succeeded"))
        self.wait_counts(tid, succeeded=1)
        self.a.wait_drained()
        self.assertEqual(self.vehicle_rx(a.vin), OLD_RX)
        row = self.ok("exportTask", id=tid)["vehicles"][0]
        self.assertNotIn("rxswin_after", row)
        self.assertEqual(self.ok("getStats")["rxswin"]["records"], 0)


class RxswinMongo(Rxswin):
    """The same on the MongoDB test peer (tests/mongo_peer)."""

    def setUp(self):
        super().setUp()
        peer = self.mongo_peer()
        self.STORE = lambda: peer.uri("ota")

    test_package_without_rxswin_changes_nothing = None
    test_start_repairs_an_update_lost_before_it_was_stored = None  # edits the SQLite file


class Texts(PkgCase):

    def test_texts_per_language_in_the_description(self):
        self.setup_catalog()
        self.ok("cancelTask", id=self.tid)  # a package of an active task keeps its texts
        texts = {"language": "en",
                 "prompt": {"en": "Park; 20 min; no driving", "de": "Parken; 20 min"},
                 "result_info": {"en": "Updated", "de": "Aktualisiert"}}
        got = self.ok("updatePackage", id=self.full, **texts)["package"]
        self.assertEqual((got["language"], got["prompt"], got["result_info"]),
                         (texts["language"], texts["prompt"], texts["result_info"]))
        tid = self.ok("createTask", task={"name": "t", "type": "normal", "model": "EX5",
                                          "series": "S1", "version": "2.0",
                                          "vins": [ot.vin(2)]})["id"]
        v = self.vehicle(self.b, ot.vin(2))  # strategy "own": the full package
        d = self.verify(self.get(v, task=tid, cur="1.0"))
        self.assertEqual(d["package"], self.full)
        self.assertEqual((d["prompt"], d["result_info"]), ("Park; 20 min; no driving", "Updated"))
        self.assertEqual(d["texts"], texts)
        self.ok("cancelTask", id=tid)
        self.fails("updatePackage", "prompt: no text in the default language fr", id=self.full,
                   language="fr")
        self.fails("updatePackage", "package.prompt: expected 1..16 languages, not 17",
                   id=self.full, prompt={"a%c" % (97 + i): "t" for i in range(17)})
        self.fails("updatePackage", "over 4096 bytes", id=self.full,
                   prompt={"en": "x" * 2100, "de": "y" * 2100})
        # back to one text: language null
        got = self.ok("updatePackage", id=self.full, language=None, prompt="park",
                      result_info="done")["package"]
        self.assertNotIn("language", got)
        tid = self.ok("createTask", task={"name": "t2", "type": "normal", "model": "EX5",
                                          "series": "S1", "version": "2.0",
                                          "vins": [ot.vin(2)]})["id"]
        d = self.verify(self.get(v, req=2, task=tid, cur="1.0"))
        self.assertNotIn("texts", d)
        self.assertEqual(d["prompt"], "park")


class InstallDefault(Fleet):

    def test_package_default_and_precedence(self):
        a, b = self.setup_fleet(20, 21)
        self.fails("updatePackage", "install_mode: expected forced|soft|download_only",
                   id=self.p20, install_mode="time_forced")
        self.ok("updatePackage", id=self.p20, install_mode="soft")
        self.assertEqual(self.ok("getPackage", id=self.p20)["package"]["install_mode"], "soft")
        t1 = self.create([a.vin])["id"]  # inherits soft
        self.assertEqual(self.ok("getTask", id=t1)["task"]["install_mode"], "soft")
        self.assertEqual(self.notice_of(a, t1)["install_mode"], "soft")
        t2 = self.create([b.vin], install_mode="forced")["id"]  # its own wins
        self.assertNotIn("install_mode", self.ok("getTask", id=t2)["task"])
        self.fails("updatePackage", "active", id=self.p20, install_mode=None)  # in use


class OtactlFlags(Fleet):

    def test_otactl_package_and_vehicle_flags(self):
        if not (OTACTL and Path(OTACTL).exists()):
            self.skipTest("otactl not built")
        self.setup_fleet(20)
        base = [OTACTL, "--host", "127.0.0.1", "--port", str(self.b.port), "--user", ot.ADMIN]

        def run(*args):
            p = subprocess.run(base + list(args), capture_output=True, text=True,
                               timeout=6 * ot.TIMEOUT)
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout
        run("package", "update", str(self.p20), "--rxswin", "R79-STEER.9,R10-EMC.2",
            "--install-mode", "download_only", "--language", "en", "--prompt", "Park",
            "--prompt-lang", "de=Parken", "--result-info", "done")
        p = self.ok("getPackage", id=self.p20)["package"]
        self.assertEqual((p["rxswin"], p["install_mode"], p["prompt"], p["result_info"]),
                         (["R10-EMC.2", "R79-STEER.9"], "download_only",
                          {"en": "Park", "de": "Parken"}, "done"))
        out = run("package", "get", str(self.p20))
        self.assertIn("R10-EMC.2, R79-STEER.9", out)
        run("package", "update", str(self.p20), "--rxswin", "", "--install-mode", "none")
        p = self.ok("getPackage", id=self.p20)["package"]
        self.assertNotIn("rxswin", p)
        self.assertNotIn("install_mode", p)
        run("vehicle", "upsert", "--vin", ot.vin(20), "--model", "EX5", "--series", "S1",
            "--status", "in_stock", "--usage", "retail", "--rxswin", "R79-STEER.1")
        self.assertEqual(self.ok("getVehicle", vin=ot.vin(20))["vehicle"]["rxswin"],
                         ["R79-STEER.1"])
        self.assertIn("R79-STEER.1", run("vehicle", "get", ot.vin(20)))
        csv = self.tmp / "fleet.csv"
        csv.write_text("vin,model,series,status,usage,rxswin\n"
                       "%s,EX5,S1,in_stock,retail,\"R79-STEER.3; R10-EMC.4\"\n"
                       "%s,EX5,S1,in_stock,retail,\n" % (ot.vin(20), ot.vin(21)))
        self.assertEqual(run("vehicle", "import", str(csv)), "upserted: 2\n")
        self.assertEqual(self.ok("getVehicle", vin=ot.vin(20))["vehicle"]["rxswin"],
                         ["R10-EMC.4", "R79-STEER.3"])
        self.assertNotIn("rxswin", self.ok("getVehicle", vin=ot.vin(21))["vehicle"])


class Agent(test_agent.AgentCase):
    """A real ota-agent flashing ota-ecu-sim ECUs: the RXSWIN follows its commit, and the
    driver is told the package's texts in its language."""

    def test_rxswin_after_the_agents_commit(self):
        self.campaign(install_mode="soft")
        self.ok("upsertVehicles", vehicles=[self.ok("getVehicle", vin=VIN)["vehicle"]
                                            | {"rxswin": OLD_RX}])
        pid = self.ok("getTask", id=self.tid)["package"]
        # texts and RXSWINs of a package used by an active task cannot change: a second one
        self.ok("cancelTask", id=self.tid)
        self.ok("updatePackage", id=pid, rxswin=PKG_RX, language="en",
                prompt={"en": "Park the car", "de": "Bitte parken"})
        self.tid = self.ok("createTask", task={"name": "agent2", "type": "normal",
                                               "model": test_agent.M, "series": test_agent.S,
                                               "version": "2.0", "vins": [VIN],
                                               "install_mode": "soft"})["id"]
        self.start_sim()
        env_file = self.tmp / "consent.env"
        p = self.start_agent(self.config(
            language="de",
            consent_cmd='echo "$OTA_TEXT_LANGUAGE:$OTA_PROMPT" > %s; echo accept' % env_file))
        self.assertEqual(self.wait_exit(p), 0, self.log_tail())
        self.assert_flashed()
        ot.wait_until(lambda: self.counts()["succeeded"] == 1, msg="succeeded")
        ot.wait_until(lambda: self.ok("getVehicle", vin=VIN)["vehicle"].get("rxswin")
                      == ["R10-EMC.1", "R13-BRK.5", "R79-STEER.2"], msg="RXSWIN committed")
        self.assertEqual(env_file.read_text().strip(), "de:Bitte parken")
        self.assertIn("prompt (de): Bitte parken", self.log_tail(n=1000))
        row = self.ok("exportTask", id=self.tid)["vehicles"][0]
        self.assertEqual((row["rxswin_before"], row["rxswin_after"]),
                         (OLD_RX, ["R10-EMC.1", "R13-BRK.5", "R79-STEER.2"]))

    def test_failed_install_keeps_the_rxswin(self):
        self.campaign()
        pid = self.ok("getTask", id=self.tid)["package"]
        self.ok("cancelTask", id=self.tid)
        self.ok("updatePackage", id=pid, rxswin=PKG_RX)
        self.tid = self.ok("createTask", task={"name": "agent2", "type": "normal",
                                               "model": test_agent.M, "series": test_agent.S,
                                               "version": "2.0", "vins": [VIN]})["id"]
        self.start_sim("--nrc", "0702:36:72")  # VCU fails: BMS rolled back
        self.assertEqual(self.wait_exit(self.start_agent(self.config())), 1, self.log_tail())
        ot.wait_until(lambda: self.counts()["failed"] == 1, msg="failed")
        self.a.wait_drained()
        self.assertNotIn("rxswin", self.ok("getVehicle", vin=VIN)["vehicle"])
        self.assertEqual(self.ok("getStats")["rxswin"]["records"], 0)


# The base classes' tests run in their own files; here only those defined above.
for _cls, _base in ((Agent, test_agent.AgentCase), (Rxswin, Fleet), (Texts, PkgCase),
                    (InstallDefault, Fleet), (OtactlFlags, Fleet)):
    for _name in dir(_base):
        if _name.startswith("test_") and _name not in _cls.__dict__:
            setattr(_cls, _name, None)
del _cls, _base  # a TestCase class bound at module level would run its tests again


if __name__ == "__main__":
    ot.main()
