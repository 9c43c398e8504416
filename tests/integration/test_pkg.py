#!/usr/bin/python3
"""Integration: package descriptions, pkg/get -> pkg/desc (SPEC §3, §6; docs/protocol.md,
docs/vehicle-crypto.md).

A catalog (a model with a config-word ignore rule, four files, a full and a delta
package, a default strategy and a VIN's own strategy, vehicles) and a task are set up
through the operator API; vehicles are independent Python clients (paho + cbor2 +
cryptography) that verify the COSE_Sign1 with the Ed25519 key of the .pub file the plugin
wrote, and check every field: the VIN's strategy over the default, the delta chosen under
`auto`, compare_version, ECUs filtered by strategy and config word and sorted by order.
An encrypted package's content key is unwrapped in Python (X25519 + HKDF + AES-GCM) and
decrypts the uploaded file; otactl's `upload --encrypt` is used the way the demo does.
Every refusal (unknown task, task of others, canceled task, version mismatch, malformed
CBOR, wrong types) gets its error and stores nothing; descriptions are in SQLite after,
and the counter survives a restart.
"""

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_catalog_api import CatalogCase, package  # noqa: E402

M, S = "EX5", "S1"
MODEL = {"model": M, "series": S, "supports_config_word": True,
         "ecus": ["BMS", "VCU", "ADAS", "IVI"], "ignore": [{"bit": 3, "ecus": ["ADAS"]}]}
OTACTL = os.environ.get("OTA_OTACTL", "")


def vehicle(i, fw="1.0", cw="0000", **extra):
    v = {"vin": ot.vin(i), "model": M, "series": S, "status": "in_stock", "usage": "retail",
         "fw": fw, "config_word": cw}
    v.update(extra)
    return v


def pkg_topic(v):
    return "ota/v1/%s/pkg/desc" % v.vin


def unwrap(key, priv, vin):
    """The vehicle's side of the key wrap (docs/vehicle-crypto.md)."""
    assert key["alg"] == "X25519-HKDF-SHA256-A256GCM"
    epk = key["epk"]
    pub = priv.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)
    secret = priv.exchange(X25519PublicKey.from_public_bytes(epk))
    kw = HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + pub,
              info=b"mosquitto-ota content key v1").derive(secret)
    return AESGCM(kw).decrypt(key["iv"], key["ct"], vin.encode())


class PkgCase(CatalogCase):

    def setup_catalog(self):
        self.start()
        self.models(MODEL)
        self.sha = {e: self.put_file(("%s firmware " % e).encode() * (100 + i))
                    for i, e in enumerate(("BMS", "VCU", "ADAS", "IVI"))}
        files = [(e, "component" if e == "IVI" else "ecu", self.sha[e]) for e in self.sha]
        self.full = self.add_package(package("2.0", files, prompt="park first",
                                             result_info="done"))
        self.set_status(self.full, "released")
        self.delta = self.add_package(package("2.0", files[:3], kind="delta", frm="1.0"))
        self.set_status(self.delta, "released")
        self.ok("setStrategy", strategy={"id": "def", "package_kind": "auto",
                                         "compare_version": "auto",
                                         "ecus": [{"ecu": "BMS", "order": 2},
                                                  {"ecu": "VCU", "order": 1},
                                                  {"ecu": "ADAS", "order": 3},
                                                  {"ecu": "IVI", "order": 4, "upgrade": False}]})
        self.ok("bindStrategy", id="def", model=M, series=S)
        self.ok("setStrategy", strategy={"id": "own", "package_kind": "full",
                                         "compare_version": "never",
                                         "ecus": [{"ecu": "IVI", "order": 0},
                                                  {"ecu": "BMS", "order": 5}]})
        self.ok("bindStrategy", id="own", vins=[ot.vin(2)])
        self.ok("upsertVehicles", vehicles=[vehicle(1), vehicle(2), vehicle(3, fw="1.5", cw="0008"),
                                            vehicle(4)])
        self.tid = self.ok("createTask", task={"name": "c", "type": "normal", "model": M,
                                               "series": S, "version": "2.0",
                                               "vins": [ot.vin(i) for i in (1, 2, 3)]})["id"]
        pem = (self.b.dir / "ota-signing.pem.pub").read_bytes()
        self.pub = serialization.load_pem_public_key(pem)

    def get(self, v, req=1, task=None, cur="1.0", tgt="2.0", raw=None, **kw):
        """Sends pkg/get and returns the reply message."""
        body = raw if raw is not None else ot.cbor2.dumps(
            {"req": req, "task": task or self.tid, "cur": cur, "tgt": tgt})
        v.publish("ota/v1/%s/pkg/get" % v.vin, body, **kw)
        return v.get(pkg_topic(v))

    def verify(self, m):
        """Checks the COSE_Sign1 layout and signature; returns the description."""
        self.assertEqual(m.prop("ContentType"), "application/cose")
        tag = ot.cbor2.loads(m.payload)
        self.assertIsInstance(tag, ot.cbor2.CBORTag)
        self.assertEqual(tag.tag, 18)
        protected, unprotected, payload, sig = tag.value
        self.assertEqual(protected, b"\xa1\x01\x27")
        raw = self.pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.assertEqual(unprotected, {4: hashlib.sha256(raw).digest()[:8]})
        tbs = ot.cbor2.dumps(["Signature1", protected, b"", payload])
        self.pub.verify(sig, tbs)  # raises InvalidSignature
        return ot.cbor2.loads(payload)

    def refused(self, v, code, **kw):
        m = self.get(v, **kw)
        self.assertEqual(m.prop("ContentType"), "application/cbor")
        e = m.cbor()
        self.assertEqual(e["err"], code, e)
        self.assertIsInstance(e["msg"], str)
        return e

    def stored(self):
        con = sqlite3.connect(str(self.b.db_path))
        try:
            return con.execute("SELECT vin, counter, task, req, package, files, cose "
                               "FROM ota_vehicle_package_description ORDER BY vin, counter"
                               ).fetchall()
        finally:
            con.close()

    def wait_stored(self, n):
        ot.wait_until(lambda: len(self.stored()) == n, msg="%d descriptions stored" % n)


class Descriptions(PkgCase):

    def check_ecu(self, e, ecu, order):
        self.assertEqual(e["ecu"], ecu)
        self.assertEqual(e["order"], order)
        self.assertEqual(e["version"], "%s-2.0" % ecu)
        self.assertEqual(e["type"], "component" if ecu == "IVI" else "ecu")
        f = e["file"]
        self.assertEqual(f["id"], self.sha[ecu])
        self.assertEqual(f["sha256"], bytes.fromhex(self.sha[ecu]))
        self.assertEqual(f["size"], self.sizes[self.sha[ecu]])
        self.assertEqual(f["name"], "%s_2.0.bin" % ecu)

    def test_rules(self):
        self.setup_catalog()
        v1, v2, v3 = (self.vehicle(self.b, ot.vin(i)) for i in (1, 2, 3))
        # Default strategy, auto: the delta from 1.0, no version compare, ECUs by order.
        d = self.verify(self.get(v1, req=11))
        t0 = ot.now_ms()
        self.assertEqual(d["req"], 11)
        self.assertEqual((d["task"], d["package"], d["kind"], d["from"], d["to"]),
                         (self.tid, self.delta, "delta", "1.0", "2.0"))
        self.assertFalse(d["compare_version"])
        self.assertEqual([e["ecu"] for e in d["ecus"]], ["VCU", "BMS", "ADAS"])
        self.check_ecu(d["ecus"][0], "VCU", 1)
        self.assertEqual((d["vin"], d["ctr"]), (v1.vin, 1))
        self.assertAlmostEqual(d["iat"], t0, delta=10_000)
        self.assertEqual(d["exp"] - d["iat"], 24 * 3600 * 1000)
        self.assertNotIn("key", d)
        self.assertEqual((d["prompt"], d["result_info"]), ("", ""))
        # Again: the counter grows.
        self.assertEqual(self.verify(self.get(v1, req=12))["ctr"], 2)
        # The VIN's own strategy: full, never compare, its ECUs only (IVI first).
        d = self.verify(self.get(v2))
        self.assertEqual((d["package"], d["kind"], d["compare_version"]),
                         (self.full, "full", False))
        self.assertEqual([(e["ecu"], e["order"]) for e in d["ecus"]], [("IVI", 0), ("BMS", 5)])
        self.check_ecu(d["ecus"][0], "IVI", 0)
        self.assertEqual((d["prompt"], d["result_info"]), ("park first", "done"))
        # No delta from 1.5: full, compare (auto, cur != tgt); ADAS ignored by config word
        # bit 3, IVI is not to be upgraded under the default strategy.
        d = self.verify(self.get(v3, cur="1.5"))
        self.assertEqual((d["package"], d["kind"], d["compare_version"]),
                         (self.full, "full", True))
        self.assertEqual([e["ecu"] for e in d["ecus"]], ["VCU", "BMS"])
        # Persisted: one row per description, with the COSE as sent and the files granted.
        self.wait_stored(4)
        rows = self.stored()
        self.assertEqual([(r[0], r[1], r[3]) for r in rows],
                         [(v1.vin, 1, 11), (v1.vin, 2, 12), (v2.vin, 1, 1), (v3.vin, 1, 1)])
        self.assertEqual(rows[2][5], ",".join(self.sha[e] for e in ("IVI", "BMS")))
        self.assertEqual(rows[0][4], self.delta)
        self.verify_bytes(rows[3][6])
        # The counter survives a restart (grants are loaded from the store).
        self.b.restart()
        v1 = self.vehicle(self.b, ot.vin(1))
        self.assertEqual(self.verify(self.get(v1))["ctr"], 3)

    def verify_bytes(self, cose):
        class M:
            payload = cose

            def prop(self, name):
                return "application/cose"
        return self.verify(M())

    def test_mqtt5_response_topic(self):
        self.setup_catalog()
        v1 = self.vehicle(self.b, ot.vin(1))
        v1.subscribe("ota/v1/%s/pkg/mine" % v1.vin)
        v1.publish("ota/v1/%s/pkg/get" % v1.vin,
                   ot.cbor2.dumps({"req": 5, "task": self.tid, "cur": "1.0", "tgt": "2.0"}),
                   properties=ot.props(response_topic="ota/v1/%s/pkg/mine" % v1.vin,
                                       correlation=b"c-5"))
        m = v1.get("ota/v1/%s/pkg/mine" % v1.vin)
        self.assertEqual(m.prop("CorrelationData"), b"c-5")
        self.assertEqual(self.verify(m)["req"], 5)


class SignerPath(PkgCase):
    """Descriptions are signed by signer threads (plugin/signer.c) and answered on TICK."""

    def burst(self, v, reqs):
        """Publishes pkg/get for each req back to back (QoS 1), then waits for every PUBACK
        (each request was built and handed to the signer), not for the replies."""
        infos = [v.c.publish("ota/v1/%s/pkg/get" % v.vin, ot.cbor2.dumps(
            {"req": r, "task": self.tid, "cur": "1.0", "tgt": "2.0"}), qos=1) for r in reqs]
        for info in infos:
            info.wait_for_publish(ot.TIMEOUT)
            self.assertTrue(info.is_published())

    def test_response_topic_and_order_with_two_signers(self):
        self.setup_catalog_with(sign_threads=2)
        v1 = self.vehicle(self.b, ot.vin(1))
        mine = "ota/v1/%s/pkg/mine" % v1.vin
        v1.subscribe(mine)
        reqs = list(range(1, 31))
        for r in reqs:
            v1.publish("ota/v1/%s/pkg/get" % v1.vin,
                       ot.cbor2.dumps({"req": r, "task": self.tid, "cur": "1.0", "tgt": "2.0"}),
                       properties=ot.props(response_topic=mine, correlation=b"c-%d" % r))
        got = [v1.get(mine) for _ in reqs]
        descs = [self.verify(m) for m in got]
        # each reply carries its own request's Correlation Data; built order = reply order
        self.assertEqual([m.prop("CorrelationData") for m in got], [b"c-%d" % r for r in reqs])
        self.assertEqual([d["req"] for d in descs], reqs)
        self.assertEqual([d["ctr"] for d in descs], list(range(1, 31)))
        self.assertEqual(v1.received(pkg_topic(v1)), [])  # nothing on the default topic
        self.wait_stored(30)

    def test_signed_after_disconnect_and_before_stop_is_stored(self):
        # A slow signer (plugin_opt_sign_delay_ms, signer.h): the vehicle is gone and the
        # broker is stopping while its descriptions are still being signed.
        self.setup_catalog_with(sign_delay_ms=25)
        v1, v2 = self.vehicle(self.b, ot.vin(1)), self.vehicle(self.b, ot.vin(2))
        self.burst(v1, range(1, 6))
        v1.close()  # gone before its replies: still persisted
        self.burst(v2, range(1, 21))
        self.b.stop()  # clean stop right after the acks: the signer is drained first
        rows = self.stored()
        self.assertEqual([(r[0], r[1], r[3]) for r in rows if r[0] == v1.vin],
                         [(v1.vin, i, i) for i in range(1, 6)])
        self.assertEqual([(r[0], r[1], r[3]) for r in rows if r[0] == v2.vin],
                         [(v2.vin, i, i) for i in range(1, 21)])
        for r in rows:
            self.verify_bytes(r[6])
        self.b.start()
        v2 = self.vehicle(self.b, ot.vin(2))
        self.assertEqual(self.verify(self.get(v2, req=999))["ctr"], 21)

    def setup_catalog_with(self, **opts):
        start = self.start
        self.start = lambda **kw: start(**dict(kw, **opts))
        try:
            self.setup_catalog()
        finally:
            self.start = start

    verify_bytes = Descriptions.verify_bytes


class Refusals(PkgCase):

    def test_each_refusal_stores_nothing(self):
        self.setup_catalog()
        v1, v4 = self.vehicle(self.b, ot.vin(1)), self.vehicle(self.b, ot.vin(4))
        self.assertEqual(self.refused(v1, "E_NOT_ASSIGNED", task="T999999", req=3)["req"], 3)
        self.refused(v4, "E_NOT_ASSIGNED")
        self.refused(v1, "E_VERSION_MISMATCH", tgt="2.1")
        self.refused(v1, "E_VERSION_MISMATCH", cur="1.2")  # its firmware is 1.0
        e = self.refused(v1, "E_BAD_CBOR", raw=b"\xa4\x63req")
        self.assertNotIn("req", e)
        e = self.refused(v1, "E_BAD_REQUEST", raw=ot.cbor2.dumps(
            {"req": 9, "task": self.tid, "cur": 1, "tgt": "2.0"}))
        self.assertEqual(e["req"], 9)
        self.assertIn("cur", e["msg"])
        self.refused(v1, "E_BAD_REQUEST", raw=ot.cbor2.dumps({"req": "9", "task": self.tid}))
        self.refused(v1, "E_BAD_REQUEST", raw=ot.cbor2.dumps([1, 2]))
        self.refused(v1, "E_TOO_LARGE", raw=ot.cbor2.dumps({"req": 1, "task": "x" * 2000}))
        # A foreign VIN's topic: refused by the ACL, nothing answered on pkg/desc.
        v1.publish("ota/v1/%s/pkg/get" % ot.vin(2),
                   ot.cbor2.dumps({"req": 1, "task": self.tid, "cur": "1.0", "tgt": "2.0"}))
        self.assertEqual(v1.error()["err"], "E_UNAUTHORIZED")
        # A canceled execution, then a canceled task.
        self.ok("cancelTask", id=self.tid, vins=[v1.vin])
        self.refused(v1, "E_TASK_INACTIVE")
        self.ok("cancelTask", id=self.tid)
        v2 = self.vehicle(self.b, ot.vin(2))
        self.refused(v2, "E_TASK_INACTIVE")
        v1.quiet(pkg_topic(v1))
        time.sleep(0.3)  # a batch would have been stored by now
        self.assertEqual(self.stored(), [])
        self.b.wait_log(lambda t: "pkg/get from %s refused: E_TASK_INACTIVE" % v2.vin in t)
        st = self.ok("getStats")["pkg"]  # every refusal counted by its code, none issued
        self.assertEqual(st["issued"], 0)
        for code, n in (("E_NOT_ASSIGNED", 2), ("E_VERSION_MISMATCH", 2), ("E_BAD_CBOR", 1),
                        ("E_BAD_REQUEST", 3), ("E_TASK_INACTIVE", 2)):
            self.assertEqual(st["refused"].get(code), n, st)

    def test_no_package_when_encrypted_without_public_key(self):
        self.setup_catalog()
        key = os.urandom(32)
        sha = self.put_file(b"\0" * 12 + AESGCM(key).encrypt(b"\0" * 12, b"x" * 100, None))
        p = package("3.0", [("BMS", "ecu", sha)], encrypted=True, content_key=key.hex())
        self.set_status(self.add_package(p), "released")
        tid = self.ok("createTask", task={"name": "e", "type": "normal", "model": M,
                                          "series": S, "version": "3.0",
                                          "vins": [ot.vin(1)]})["id"]
        v1 = self.vehicle(self.b, ot.vin(1))
        e = self.refused(v1, "E_NO_PACKAGE", task=tid, tgt="3.0")
        self.assertIn("public_key", e["msg"])


class Encrypted(PkgCase):

    def encrypted_setup(self, upload_with_otactl):
        self.setup_catalog()
        self.priv = X25519PrivateKey.generate()
        pub = self.priv.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
        self.ok("upsertVehicles", vehicles=[vehicle(1, public_key=pub.hex())])
        self.plain = os.urandom(50_000)
        if upload_with_otactl:
            src = self.tmp / "bms-3.0.bin"
            src.write_bytes(self.plain)
            out = subprocess.run(
                [OTACTL, "-p", str(self.b.port), "-u", ot.ADMIN,
                 "-q", "file", "upload", "--encrypt", str(src)],
                capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            fields = dict(w.split("=", 1) for w in out.stdout.split())
            sha, key = fields["sha256"], bytes.fromhex(fields["content_key"])
            self.stored_file = (self.files / sha).read_bytes()
        else:
            key = os.urandom(32)
            nonce = os.urandom(12)
            self.stored_file = nonce + AESGCM(key).encrypt(nonce, self.plain, None)
            sha = self.put_file(self.stored_file)
        self.assertEqual(hashlib.sha256(self.stored_file).hexdigest(), sha)
        p = package("3.0", [("BMS", "ecu", sha)], encrypted=True, content_key=key.hex())
        self.pid = self.add_package(p)
        self.set_status(self.pid, "released")
        self.key, self.sha_enc = key, sha
        return self.ok("createTask", task={"name": "e", "type": "normal", "model": M,
                                           "series": S, "version": "3.0",
                                           "vins": [ot.vin(1)]})["id"]

    def fetch_and_decrypt(self, tid):
        v1 = self.vehicle(self.b, ot.vin(1))
        d = self.verify(self.get(v1, task=tid, tgt="3.0"))
        self.assertEqual(d["ecus"][0]["file"]["size"], len(self.stored_file))
        self.assertEqual(d["ecus"][0]["file"]["sha256"], hashlib.sha256(self.stored_file).digest())
        ck = unwrap(d["key"], self.priv, v1.vin)
        self.assertEqual(ck, self.key)
        # Another VIN as AAD does not open it.
        with self.assertRaises(Exception):
            unwrap(d["key"], self.priv, ot.vin(2))
        f = self.stored_file
        self.assertEqual(AESGCM(ck).decrypt(f[:12], f[12:], None), self.plain)

    def test_key_wrap_and_decrypt(self):
        tid = self.encrypted_setup(upload_with_otactl=False)
        # Operators never see the key; the store keeps only its sealed form.
        shown = self.ok("getPackage", id=self.pid)["package"]
        self.assertTrue(shown["encrypted"])
        self.assertNotIn("content_key", shown)
        self.assertNotIn("sealed_key", shown)
        listed = self.ok("listPackages", model=M)["packages"]
        self.assertFalse(any("sealed_key" in p or "content_key" in p for p in listed))
        con = sqlite3.connect(str(self.b.db_path))
        doc = con.execute("SELECT doc FROM ota_package WHERE key = ?", (str(self.pid),)
                          ).fetchone()[0]
        con.close()
        self.assertIn("sealed_key", doc)
        self.assertNotIn(self.key.hex(), doc)
        self.assertEqual(os.stat(self.b.dir / "ota-content.kek").st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(self.b.dir / "ota-signing.pem").st_mode & 0o777, 0o600)
        self.fetch_and_decrypt(tid)
        # After a restart the sealed key still opens (KEK from its file).
        self.b.restart()
        self.fetch_and_decrypt(tid)

    def test_otactl_upload_encrypt(self):
        if not OTACTL:
            self.skipTest("OTA_OTACTL not set")
        tid = self.encrypted_setup(upload_with_otactl=True)
        self.fetch_and_decrypt(tid)

    def test_content_key_rules(self):
        self.setup_catalog()
        sha = self.sha["BMS"]
        self.fails("addPackage", "content_key", package=package(
            "3.0", [("BMS", "ecu", sha)], encrypted=True))
        self.fails("addPackage", "content_key", package=package(
            "3.0", [("BMS", "ecu", sha)], content_key="00" * 32))
        self.fails("addPackage", "content_key", package=package(
            "3.0", [("BMS", "ecu", sha)], encrypted=True, content_key="zz" * 32))
        self.fails("addPackage", "sealed_key", package=package(
            "3.0", [("BMS", "ecu", sha)], encrypted=True, sealed_key="00" * 60))


if __name__ == "__main__":
    ot.main()
