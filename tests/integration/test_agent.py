#!/usr/bin/python3
"""Integration: ota-agent (the vehicle gateway) against the real broker + plugin, flashing
three ECUs simulated by ota-ecu-sim over UDS/DoIP on loopback (docs/ota-agent.md).

A campaign of an encrypted three-file package installs on the three ECUs in the
description's order and the simulator's flash images equal the package's plain files;
the agent killed with SIGKILL in the middle of the download, and again in the middle of a
TransferData (36) sequence, resumes and finishes without fetching again what it had and
without restarting the ECU's download; an ECU power cut (the simulator killed and
restarted) in the middle of 36 makes the agent program that ECU again; a failing second ECU rolls the first one back and
the task ends failed with rollback_succeeded; over TLS the client certificate's CN is the
VIN; a wrong security key fails the first ECU
with nothing to roll back (upgrade_failed); the exec installer maps a command's
progress lines and exit status; a task canceled during the download ends canceled with
nothing flashed; killed after the description was accepted, it asks again and accepts
the plugin's same signed description (equal ctr) as a retry."""

import hashlib
import os
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_catalog_api import CatalogCase, package  # noqa: E402
from test_fleet_campaign import encrypt  # noqa: E402

BIN = Path(ot.PLUGIN).resolve().parents[1]
AGENT = os.environ.get("OTA_AGENT") or str(BIN / "tools" / "ota-agent" / "ota-agent")
SIM = os.environ.get("OTA_ECU_SIM") or str(BIN / "tools" / "ota-ecu-sim" / "ota-ecu-sim")
M, S = "EX5", "S1"
VIN = ot.vin(1)
ECUS = (("BMS", 0x0701), ("VCU", 0x0702), ("BCM", 0x0703))
RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class AgentCase(CatalogCase):

    def setUp(self):
        super().setUp()
        for exe in (AGENT, SIM):
            if not Path(exe).exists():
                self.fail("not built: %s" % exe)
        self.procs = []
        self.addCleanup(self.stop_procs)

    def stop_procs(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    # ---- the server side ----

    def campaign(self, sizes=(30000, 60000, 20000), encrypted=True, extra_conf=(), **task_extra):
        self.files = self.tmp / "files"
        self.b = self.broker(file_dir=str(self.files),
                             signing_key=str(self.tmp / "ota-signing.pem"),
                             extra_conf=["set_tcp_nodelay true", *extra_conf])
        self.a = self.admin(self.b, nodelay=True)
        self.sizes = {}
        vkey = X25519PrivateKey.generate()
        (self.tmp / "vehicle.key").write_text(vkey.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
            serialization.NoEncryption()).hex() + "\n")
        self.ok("setModel", model=M, series=S, supports_config_word=False,
                ecus=[e for e, _ in ECUS])
        self.ok("upsertVehicles", vehicles=[
            {"vin": VIN, "model": M, "series": S, "status": "in_stock", "usage": "retail",
             "fw": "1.0", "public_key": vkey.public_key().public_bytes(*RAW).hex()}])
        ckey = os.urandom(32)
        self.plain, files = {}, []
        for (ecu, _), size in zip(ECUS, sizes):
            self.plain[ecu] = os.urandom(size)
            data = encrypt(ckey, self.plain[ecu]) if encrypted else self.plain[ecu]
            files.append((ecu, "ecu", self.put_file(data)))
        extra = {"encrypted": True, "content_key": ckey.hex()} if encrypted else {}
        pid = self.add_package(package("2.0", files, **extra))
        self.set_status(pid, "released")
        self.ok("setStrategy", strategy={"id": "s", "package_kind": "full",
                                         "compare_version": "always",
                                         "ecus": [{"ecu": e, "order": i}
                                                  for i, (e, _) in enumerate(ECUS)]})
        self.ok("bindStrategy", id="s", model=M, series=S)
        self.a.subscribe("ota/v1/events/status/%s" % VIN)
        t = self.ok("createTask", task={"name": "agent", "type": "normal", "model": M,
                                        "series": S, "version": "2.0", "vins": [VIN],
                                        **task_extra})
        self.assertEqual(t["accepted"], [VIN], t)
        self.tid = t["id"]

    def counts(self):
        return self.ok("getTask", id=self.tid)["counts"]

    def statuses(self):
        """The upgrade_status events the plugin forwarded, in arrival order."""
        return [m.json() for m in self.a.received("ota/v1/events/status/%s" % VIN)]

    # ---- the vehicle side ----

    def start_sim(self, *extra, port=0):
        self.flash = self.tmp / "flash"
        port_file = self.tmp / "sim.port"
        if port_file.exists():
            port_file.unlink()
        self.sim_log = open(self.tmp / "sim.log", "a")
        self.addCleanup(self.sim_log.close)
        cmd = [SIM, "--dir", str(self.flash), "--port", str(port), "--port-file", str(port_file),
               "--vin", VIN, "--block", "1026", "-v"]
        for ecu, addr in ECUS:
            cmd += ["--ecu", "%04X:%s:%s-1.0" % (addr, ecu, ecu)]
        p = subprocess.Popen(cmd + list(extra), stderr=self.sim_log)
        self.procs.append(p)
        ot.wait_until(port_file.exists, msg="ota-ecu-sim listening")
        self.sim_port = int(port_file.read_text())
        return p

    def config(self, addrs=None, **over):
        state = self.tmp / "agent-state"
        lines = {"broker_host": "127.0.0.1", "broker_port": str(self.b.port), "vin": VIN,
                 "server_pub": str(self.tmp / "ota-signing.pem.pub"),
                 "vehicle_key": str(self.tmp / "vehicle.key"), "state_dir": str(state),
                 "initial_fw": "1.0", "block_size": "1024", "window": "8",
                 "request_timeout_ms": "2000"}
        lines.update(over)
        text = "".join("%s %s\n" % (k, v) for k, v in lines.items() if v is not None)
        for ecu, addr in ECUS:
            addr = (addrs or {}).get(ecu, addr)
            text += "ecu %s uds 127.0.0.1:%d %04X\n" % (ecu, self.sim_port, addr)
        path = self.tmp / "agent.conf"
        path.write_text(text)
        self.state_db = state / "agent.db"
        return path

    def start_agent(self, conf):
        self.agent_log = open(self.tmp / "agent.log", "a")
        self.addCleanup(self.agent_log.close)
        p = subprocess.Popen([AGENT, "-c", str(conf), "--once"], stderr=self.agent_log)
        self.procs.append(p)
        return p

    def wait_exit(self, p, timeout=60):
        try:
            rc = p.wait(timeout=timeout * ot.SCALE)
        except subprocess.TimeoutExpired:
            self.fail("ota-agent did not finish; log:\n%s" % self.log_tail())
        logs = self.log_tail(n=100000)
        if (self.tmp / "sim.log").exists():
            logs += self.log_tail("sim.log", 100000)
        for marker in ot.SANITIZER_MARKERS:  # an ASan exit status is 1, as a failed job's
            self.assertNotIn(marker, logs)
        return rc

    def log_tail(self, name="agent.log", n=40):
        return "".join((self.tmp / name).read_text().splitlines(True)[-n:])

    def state(self, sql):
        """A read of the agent's state file while it runs (WAL: readers do not block)."""
        try:
            with sqlite3.connect("file:%s?mode=ro" % self.state_db, uri=True, timeout=5) as db:
                return db.execute(sql).fetchall()
        except sqlite3.Error:
            return []

    def blocks_here(self):
        return sum(bin(b).count("1") for (m,) in self.state("SELECT bitmap FROM file")
                   for b in (m or b""))

    def transfer_offset(self, idx):
        rows = self.state("SELECT resume FROM ecu WHERE idx = %d" % idx)
        if not rows or not rows[0][0] or len(rows[0][0]) != 12:
            return 0
        magic, step, _ctr, _pad, offset, _block = struct.unpack("<BBBBII", rows[0][0])
        return offset if magic == ord("U") and step == 1 else 0

    def assert_flashed(self):
        for ecu, _ in ECUS:
            self.assertEqual((self.flash / ("%s.bin" % ecu)).read_bytes(), self.plain[ecu],
                             "%s's flash image is not the package file" % ecu)
            self.assertEqual((self.flash / ("%s.ver" % ecu)).read_text(), "%s-2.0" % ecu)

    def assert_succeeded(self):
        ot.wait_until(lambda: self.counts()["succeeded"] == 1, msg="task succeeded")
        ot.wait_until(lambda: any(s["status"] == "succeeded" for s in self.statuses()),
                      msg="succeeded status event")
        st = self.statuses()
        self.assertEqual([s["status"] for s in st if s["status"] != "succeeded"][:1],
                         ["downloading"], st)
        self.assertEqual(st[-1]["fw"], "2.0", st)
        # every report has its own seq: a replayed one may come again, never another
        # event under a seq already used
        by_seq = {}
        for s in st:
            self.assertEqual(by_seq.setdefault(s["seq"], s["status"]), s["status"], st)

    # ---- the cases ----

    def test_campaign_installs_three_ecus_in_order(self):
        self.campaign()
        self.start_sim("--pending", "0702:31:2", "--pending-ms", "50")
        rc = self.wait_exit(self.start_agent(self.config()))
        self.assertEqual(rc, 0, self.log_tail())
        self.assert_flashed()
        self.assert_succeeded()
        log = self.log_tail("sim.log", 100000)
        order = [log.index("%s: download of" % ecu) for ecu, _ in ECUS]
        self.assertEqual(order, sorted(order), "ECUs not flashed in the description's order")
        self.assertIn("VCU: routine 0201 -> 0", log)  # the image hash check
        self.assertEqual(self.state("SELECT count(*) FROM report"), [(0,)])
        self.assertEqual(list((self.tmp / "agent-state" / "files").iterdir()), [],
                         "the downloads were not cleaned up")

    def test_kill9_in_download_resumes_without_fetching_again(self):
        self.campaign(sizes=(200000, 150000, 100000))
        self.start_sim()
        conf = self.config()
        p = self.start_agent(conf)
        total = sum((s + 28 + 1023) // 1024 for s in (200000, 150000, 100000))
        ot.wait_until(lambda: self.blocks_here() >= 60, timeout=30 * ot.SCALE,
                      msg="part of the download")
        p.kill()
        p.wait()
        had = self.blocks_here()
        self.assertLess(had, total, "the download finished before the kill")
        sent_before = self.a.stats()["file"]["blocks_sent"]
        rc = self.wait_exit(self.start_agent(conf))
        self.assertEqual(rc, 0, self.log_tail())
        self.assert_flashed()
        self.assert_succeeded()
        sent = self.a.stats()["file"]["blocks_sent"]
        # after the restart only the missing blocks (and those lost in flight) are asked
        self.assertLessEqual(sent - sent_before, total - had + 2 * 8, (sent, sent_before, had))
        self.assertIn("already here", self.log_tail(n=100000))

    def test_kill9_after_the_description_accepts_its_retry(self):
        """Killed after the description was accepted, the agent asks for it again: the
        plugin answers the held one (same signed bytes, same ctr) and the agent accepts it
        as a retry (last_ctr + the kept digest) instead of refusing an old ctr."""
        import re
        self.campaign(sizes=(200000, 150000, 100000))
        self.start_sim()
        conf = self.config()
        p = self.start_agent(conf)
        ot.wait_until(lambda: self.state("SELECT step FROM job") == [("download",)]
                      and self.blocks_here() >= 1, timeout=30 * ot.SCALE,
                      msg="the description accepted, the download begun")
        p.kill()
        p.wait()
        self.assertEqual(len(self.state("SELECT v FROM kv WHERE k = 'last_digest'")[0][0]), 64)
        rc = self.wait_exit(self.start_agent(conf))
        self.assertEqual(rc, 0, self.log_tail())
        self.assert_flashed()
        self.assert_succeeded()
        log = self.log_tail(n=100000)
        self.assertIn("asking for the description again", log)
        ctrs = re.findall(r"description (\d+) verified", log)
        self.assertEqual(len(ctrs), 2, log)
        self.assertEqual(ctrs[0], ctrs[1], "not the same description: %s" % ctrs)

    def test_kill9_in_transfer_data_resumes_from_the_last_counter(self):
        self.campaign(sizes=(20000, 80000, 20000))
        # every 36 to VCU waits for one response-pending: the transfer takes seconds
        self.start_sim("--pending", "0702:36:1", "--pending-ms", "30")
        conf = self.config()
        p = self.start_agent(conf)
        ot.wait_until(lambda: self.transfer_offset(1) >= 20000, timeout=60 * ot.SCALE,
                      msg="VCU's transfer under way")
        p.kill()
        p.wait()
        offset = self.transfer_offset(1)
        self.assertLess(offset, 80000)
        rc = self.wait_exit(self.start_agent(conf))
        self.assertEqual(rc, 0, self.log_tail())
        self.assert_flashed()
        self.assert_succeeded()
        log = self.log_tail("sim.log", 100000)
        self.assertEqual(log.count("VCU: download of"), 1, "VCU's download started over")
        self.assertIn("install: VCU VCU-1.0 -> VCU-2.0 (uds), resumed", self.log_tail(n=100000))

    def test_ecu_power_cut_in_transfer_data_programs_again(self):
        self.campaign(sizes=(20000, 80000, 20000), encrypted=False)
        sim = self.start_sim("--pending", "0702:36:1", "--pending-ms", "30")
        p = self.start_agent(self.config())
        ot.wait_until(lambda: self.transfer_offset(1) >= 20000, timeout=60 * ot.SCALE,
                      msg="VCU's transfer under way")
        sim.kill()  # the ECUs lose their RAM (session, security, the download in progress)
        sim.wait()
        self.start_sim(port=self.sim_port)
        rc = self.wait_exit(p)
        self.assertEqual(rc, 0, self.log_tail())
        self.assert_flashed()
        self.assert_succeeded()
        log = self.log_tail("sim.log", 100000)
        self.assertEqual(log.count("VCU: download of"), 2, "VCU was not programmed again")
        self.assertEqual(log.count("BMS: download of"), 1)

    def test_cut_link_in_transfer_data_is_resumed(self):
        self.campaign(sizes=(20000, 40000, 20000), encrypted=False)
        self.start_sim("--cut", "0702:7")
        rc = self.wait_exit(self.start_agent(self.config()))
        self.assertEqual(rc, 0, self.log_tail())
        self.assert_flashed()
        log = self.log_tail("sim.log", 100000)
        self.assertIn("VCU: block 7 repeated: acknowledged, not written", log)
        self.assertEqual(log.count("VCU: download of"), 1)

    def test_failing_second_ecu_rolls_back_the_first(self):
        self.campaign(sizes=(20000, 20000, 20000))
        factory = None
        self.start_sim("--nrc", "0702:36:72")  # VCU: generalProgrammingFailure on 36
        factory = (self.flash / "BMS.bin").read_bytes()
        rc = self.wait_exit(self.start_agent(self.config()))
        self.assertEqual(rc, 1, self.log_tail())
        ot.wait_until(lambda: self.counts()["failed"] == 1, msg="task failed")
        ot.wait_until(lambda: any(s["status"] == "failed" for s in self.statuses()),
                      msg="failed status event")
        final = [s for s in self.statuses() if s["status"] == "failed"][-1]
        self.assertEqual(final["error"], "rollback_succeeded", self.statuses())
        self.assertIn("rolling_back", [s["status"] for s in self.statuses()])
        self.assertEqual((self.flash / "BMS.bin").read_bytes(), factory)
        self.assertEqual((self.flash / "BMS.ver").read_text(), "BMS-1.0")
        self.assertEqual((self.flash / "VCU.ver").read_text(), "VCU-1.0")
        self.assertFalse((self.flash / "BCM.prev").exists(), "BCM was flashed after VCU failed")
        log = self.log_tail(n=100000)
        self.assertIn("VCU: 36: NRC 0x72 generalProgrammingFailure", log)
        self.assertIn("rollback: BMS back to BMS-1.0", log)

    def test_wrong_security_key_fails_before_anything_is_flashed(self):
        self.campaign(sizes=(8000, 8000, 8000), encrypted=False)
        self.start_sim("--wrong-key", "0701")
        rc = self.wait_exit(self.start_agent(self.config()))
        self.assertEqual(rc, 1, self.log_tail())
        ot.wait_until(lambda: any(s["status"] == "failed" for s in self.statuses()),
                      msg="failed status event")
        final = [s for s in self.statuses() if s["status"] == "failed"][-1]
        self.assertEqual(final["error"], "upgrade_failed", self.statuses())
        self.assertIn("BMS: 27 08: NRC 0x35 invalidKey", self.log_tail(n=100000))
        for ecu, _ in ECUS:
            self.assertEqual((self.flash / ("%s.ver" % ecu)).read_text(), "%s-1.0" % ecu)

    def test_ecu_that_does_not_answer_fails_as_prepare_failed(self):
        self.campaign(sizes=(8000, 8000, 8000), encrypted=False)
        self.start_sim()
        rc = self.wait_exit(self.start_agent(self.config(addrs={"BMS": 0x0709})))
        self.assertEqual(rc, 1, self.log_tail())
        ot.wait_until(lambda: any(s["status"] == "failed" for s in self.statuses()),
                      msg="failed status event")
        final = [s for s in self.statuses() if s["status"] == "failed"][-1]
        self.assertEqual(final["error"], "prepare_failed", self.statuses())
        self.assertIn("BMS: cannot read its version", self.log_tail(n=100000))

    def test_tls_client_certificate_names_the_vehicle(self):
        certs = ot.make_certs(self.tmp / "pki", VIN)
        tls_port = ot.free_port()
        self.campaign(sizes=(8000, 8000, 8000), extra_conf=ot.tls_listener(certs, tls_port))
        self.start_sim()
        ca, cert, key = ot.tls_files(certs, "vehicle-%s" % VIN)
        conf = self.config(vin=None, broker_port=tls_port, cafile=ca, certfile=cert,
                           keyfile=key)  # the VIN is the certificate's CN
        rc = self.wait_exit(self.start_agent(conf))
        self.assertEqual(rc, 0, self.log_tail())
        self.assertIn("VIN %s" % VIN, self.log_tail(n=100000))
        self.assert_flashed()
        self.assert_succeeded()

    def test_cancel_during_download(self):
        self.campaign(sizes=(8000, 8000, 8000), encrypted=False)
        vcu = hashlib.sha256(self.plain["VCU"]).hexdigest()
        (self.files / vcu).rename(self.tmp / "vcu.away")  # file/get: E_NOT_FOUND, again
        self.start_sim()
        p = self.start_agent(self.config(request_timeout_ms="300"))
        ot.wait_until(lambda: "refused: E_NOT_FOUND" in self.log_tail(n=100000),
                      timeout=30 * ot.SCALE, msg="the agent stuck on VCU's file")
        self.ok("cancelTask", id=self.tid)
        rc = self.wait_exit(p)
        self.assertEqual(rc, 1, self.log_tail())
        ot.wait_until(lambda: self.counts()["canceled"] == 1, msg="execution canceled")
        self.assertIn("canceled", [s["status"] for s in self.statuses()])
        self.assertFalse((self.flash / "BMS.prev").exists(), "something was flashed")

    def test_exec_installer(self):
        self.campaign(sizes=(5000, 6000, 7000), encrypted=False)
        self.flash = self.tmp / "exec"
        self.flash.mkdir()
        script = self.tmp / "install.sh"
        script.write_text(
            "#!/bin/sh\n"
            "d=%s\n"
            "case $OTA_ACTION in\n"
            "version) if [ -f $d/$OTA_ECU.ver ]; then echo version $(cat $d/$OTA_ECU.ver);"
            " else echo version $OTA_ECU-1.0; fi ;;\n"
            "install) echo progress 50 copying; cp $OTA_FILE $d/$OTA_ECU.bin &&"
            " printf %%s $OTA_TO_VERSION > $d/$OTA_ECU.ver; echo progress 100 ;;\n"
            "rollback) printf %%s $OTA_FROM_VERSION > $d/$OTA_ECU.ver ;;\n"
            "esac\n" % self.flash)
        script.chmod(0o755)
        self.sim_port = 1  # unused: every ECU uses the exec installer
        conf = self.config()
        text = "".join(line + "\n" for line in conf.read_text().splitlines()
                       if not line.startswith("ecu "))
        for ecu, _ in ECUS:
            text += "ecu %s exec %s\n" % (ecu, script)
        conf.write_text(text)
        rc = self.wait_exit(self.start_agent(conf))
        self.assertEqual(rc, 0, self.log_tail())
        self.assert_flashed()
        self.assert_succeeded()


if __name__ == "__main__":
    ot.main()
