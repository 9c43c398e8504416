#!/usr/bin/python3
"""Integration: ota-fleet's campaign mode against the real plugin (docs/ota-fleet.md).

50 simulated vehicles (keys registered with upsertVehicles public_key) go through one
campaign of an encrypted two-file package with injected upgrade failures, cut links and
lost blocks: the fleet must exit 0 (every signature, counter, key, SHA-256 and GCM tag
checked out), resume downloads (bitmap requests, resumed windows), and its succeeded /
failed counts must be the task's; the same with an ES256 signing key (issue 14). Then
what the fleet must refuse: descriptions checked
with another signing key, and a file altered in the repository (exit 1)."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_catalog_api import CatalogCase, package  # noqa: E402

FLEET = os.environ.get("OTA_FLEET", "")
M, S = "EX5", "S1"
SEED = "ctest-seed"


def fleet_keys(n):
    out = subprocess.run([FLEET, "keys", "--vehicles", str(n), "--key-seed", SEED],
                         check=True, capture_output=True, text=True).stdout
    return dict(line.split(",") for line in out.split())


def encrypt(key, plain):
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plain, None)


class FleetCampaign(CatalogCase):

    def setUp(self):
        super().setUp()
        if not FLEET or not Path(FLEET).exists():
            self.skipTest("ota-fleet not built (OTA_FLEET=%r)" % FLEET)

    def setup_campaign(self, n, encrypted=True, sizes=(40000, 20000), **opts):
        self.start(signing_key=str(self.tmp / "ota-signing.pem"), **opts)
        self.pub = self.tmp / "ota-signing.pem.pub"
        self.assertTrue(self.pub.exists(), "the plugin wrote no public key")
        self.ok("setModel", model=M, series=S, supports_config_word=False,
                ecus=["BMS", "VCU"])
        keys = fleet_keys(n)
        self.ok("upsertVehicles", vehicles=[
            {"vin": vin, "model": M, "series": S, "status": "in_stock", "usage": "retail",
             "fw": "1.0", "public_key": pub} for vin, pub in keys.items()])
        ckey = os.urandom(32)
        files = []
        for ecu, size in zip(("BMS", "VCU"), sizes):
            plain = hashlib.sha256(ecu.encode()).digest() * (size // 32)
            files.append((ecu, "ecu", self.put_file(encrypt(ckey, plain) if encrypted
                                                    else plain)))
        extra = {"encrypted": True, "content_key": ckey.hex()} if encrypted else {}
        pid = self.add_package(package("2.0", files, **extra))
        self.set_status(pid, "released")
        self.ok("setStrategy", strategy={"id": "s", "package_kind": "full",
                                         "compare_version": "always",
                                         "ecus": [{"ecu": "BMS", "order": 0},
                                                  {"ecu": "VCU", "order": 1}]})
        self.ok("bindStrategy", id="s", model=M, series=S)
        t = self.ok("createTask", task={"name": "fleet", "type": "normal", "model": M,
                                        "series": S, "version": "2.0",
                                        "vins": sorted(keys)})
        self.assertEqual(len(t["accepted"]), n, t)
        return t["id"], [sha for _, _, sha in files]

    def run_fleet(self, n, pub=None, *extra):
        cmd = [FLEET, "campaign", "--port", str(self.b.port), "--vehicles", str(n),
               "--pub", str(pub or self.pub), "--key-seed", SEED, "--fw", "1.0",
               "--block-size", "1024", "--window", "8", "--install-step", "0.01",
               "--request-timeout", "2", "--json", "--timeout", str(60 * ot.SCALE)]
        p = subprocess.run(cmd + list(extra), capture_output=True, text=True,
                           timeout=120 * ot.SCALE)
        self.assertTrue(p.stdout.strip(), "no summary; stderr:\n%s" % p.stderr)
        return p.returncode, json.loads(p.stdout), p.stderr

    def counts(self, tid):
        return self.ok("getTask", id=tid)["counts"]

    def test_campaign_with_failures_and_resumes(self):
        n = 50
        tid, _ = self.setup_campaign(n)
        rc, s, err = self.run_fleet(n, None, "--failure-rate", "0.2", "--disconnect-rate",
                                    "0.15", "--drop-rate", "0.05", "--seed", "7")
        self.assertEqual(rc, 0, "summary %r\nstderr:\n%s" % (s, err))
        self.assertEqual(s["vehicles_notified"], n)
        self.assertEqual(s["descriptions_verified"], n)
        self.assertEqual(s["keys_unwrapped"], n)
        self.assertEqual(s["succeeded"] + s["failed"], n, s)
        self.assertGreater(s["failed"], 0, s)
        self.assertGreater(s["succeeded"], 0, s)
        # every vehicle downloads both files before installing (failures come later)
        self.assertEqual(s["files_verified"], 2 * n, s)
        self.assertGreater(s["links_cut"], 0, s)
        self.assertGreaterEqual(s["resumes"], s["links_cut"], s)
        self.assertGreater(s["blocks_dropped"], 0, s)
        self.assertGreater(s["bitmap_requests"], 0, s)
        self.assertEqual(s["verify_failures"] + s["error_replies"], 0, s)
        ot.wait_until(lambda: self.counts(tid)["succeeded"] == s["succeeded"] and
                      self.counts(tid)["failed"] == s["failed"], msg="task counts")
        task = self.ok("getTask", id=tid)
        self.assertEqual(task["state"], "finished", task)

    def test_campaign_es256(self):
        n = 10
        tid, _ = self.setup_campaign(n, signing_alg="es256")
        self.assertIn(b"BEGIN PUBLIC KEY", self.pub.read_bytes())
        rc, s, err = self.run_fleet(n)
        self.assertEqual(rc, 0, "summary %r\nstderr:\n%s" % (s, err))
        self.assertEqual((s["descriptions_verified"], s["keys_unwrapped"]), (n, n), s)
        self.assertEqual(s["succeeded"], n, s)
        # one description per vehicle: pre-signed after its notice, or signed on request
        # when the vehicle asked first (pre-signing waits for the dispatch, issue 14)
        st = self.ok("getStats")["pkg"]
        self.assertEqual((st["issued"], st["presigned"] + st["signed_on_request"]), (n, n), st)

    def test_wrong_signing_key_is_refused(self):
        n = 3
        tid, _ = self.setup_campaign(n, encrypted=False)
        other = self.tmp / "other.pub"
        other.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        rc, s, err = self.run_fleet(n, other)
        self.assertEqual(rc, 1, s)
        self.assertEqual(s["verify_failures"], n, s)
        self.assertEqual(s["descriptions_verified"], 0, s)
        self.assertEqual((s["failed"], s["files_verified"]), (n, 0), s)
        self.assertIn("kid is not the plugin's key", err)
        ot.wait_until(lambda: self.counts(tid)["failed"] == n, msg="failed executions")

    def test_altered_file_is_refused(self):
        n = 2
        tid, shas = self.setup_campaign(n, encrypted=False, sizes=(8192, 4096))
        f = self.files / shas[1]  # the content-addressed repository: <dir>/<sha256>
        data = bytearray(f.read_bytes())
        data[100] ^= 1
        f.write_bytes(bytes(data))
        rc, s, err = self.run_fleet(n)
        self.assertEqual(rc, 1, s)
        self.assertEqual((s["files_verified"], s["verify_failures"]), (n, n), s)
        self.assertIn("SHA-256 mismatch", err)
        ot.wait_until(lambda: self.counts(tid)["failed"] == n, msg="failed executions")


if __name__ == "__main__":
    ot.main()
