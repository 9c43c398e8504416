#!/usr/bin/python3
"""Integration: package descriptions, pkg/get -> pkg/desc (SPEC §3, §6; docs/protocol.md,
docs/vehicle-crypto.md).

A catalog (a model with a config-word ignore rule, four files, a full and a delta
package, a default strategy and a VIN's own strategy, vehicles) and a task are set up
through the operator API; vehicles are independent Python clients (paho + cbor2 +
cryptography) that verify the COSE_Sign1 with the key of the .pub file the plugin wrote
(Ed25519, and ES256 with plugin_opt_signing_alg es256: the same tests run with both), and
check every field: the VIN's strategy over the default, the delta chosen under `auto`,
compare_version, ECUs filtered by strategy and config word and sorted by order; `req`
comes back in the unprotected header, outside the signature.
Descriptions are signed ahead (issue 14): the task's notice pre-signs them, pkg/get is
answered from memory, a retry gets the same signed bytes, a catalog or vehicle change
gives a new description with a higher counter, and only descriptions served are stored;
a retry is answered without deciding again until the catalog changes, and a broker sharing
its store with another never serves a vehicle an older description than the other served.
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

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_catalog_api import CatalogCase, package  # noqa: E402
from test_shadow import ShadowCar  # noqa: E402

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


def cose_verify(pub, message, req=None):
    """The vehicle's check of a pkg/desc (docs/vehicle-crypto.md) with the trusted key pub
    (Ed25519 or P-256: the algorithm follows the key, never the message). Returns
    (description, req from the unprotected header or None); raises on any mismatch."""
    tag = ot.cbor2.loads(message)
    assert isinstance(tag, ot.cbor2.CBORTag) and tag.tag == 18, tag
    protected, unprotected, payload, sig = tag.value
    if isinstance(pub, Ed25519PublicKey):
        want = b"\xa1\x01\x27"  # {1: -8} EdDSA
        raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        want = b"\xa1\x01\x26"  # {1: -7} ES256
        raw = pub.public_bytes(serialization.Encoding.X962,
                               serialization.PublicFormat.UncompressedPoint)
    assert protected == want, protected
    assert set(unprotected) <= {4, "req"}, unprotected
    assert unprotected[4] == hashlib.sha256(raw).digest()[:8], "kid"
    tbs = ot.cbor2.dumps(["Signature1", protected, b"", payload])
    assert len(sig) == 64, len(sig)
    if isinstance(pub, Ed25519PublicKey):
        pub.verify(sig, tbs)  # raises InvalidSignature
    else:  # raw r || s, as COSE has it; cryptography wants DER
        der = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                   int.from_bytes(sig[32:], "big"))
        pub.verify(der, tbs, ec.ECDSA(hashes.SHA256()))
    d = ot.cbor2.loads(payload)
    assert "req" not in d, "req is not signed"
    got = unprotected.get("req")
    assert req is None or got == req, (got, req)
    return d, got


def signed_part(message):
    """What the signature covers, and the signature: the same for every retry."""
    protected, _, payload, sig = ot.cbor2.loads(message).value
    return protected, payload, sig


class PkgCase(CatalogCase):
    ALG = None  # plugin_opt_signing_alg; None: the default (ed25519)

    def start(self, **kw):
        if self.ALG:
            kw.setdefault("signing_alg", self.ALG)
        return super().start(**kw)

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

    def verify(self, m, req=None):
        """Checks the COSE_Sign1 layout and signature (and the header's req when given);
        returns the description."""
        self.assertEqual(m.prop("ContentType"), "application/cose")
        return cose_verify(self.pub, m.payload, req)[0]

    def stats(self):
        return self.ok("getStats")["pkg"]

    def setup_catalog_with(self, **opts):
        start = self.start
        self.start = lambda **kw: start(**dict(kw, **opts))
        try:
            self.setup_catalog()
        finally:
            self.start = start

    def wait_presigned(self, n):
        """The task's notices pre-signed n descriptions, all back from the signer."""
        ot.wait_until(lambda: (lambda s: s["presigned"] == n and s["signing"] == 0)(
            self.stats()), msg="%d descriptions pre-signed" % n)

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
        m1 = self.get(v1, req=11)
        d = self.verify(m1, req=11)
        t0 = ot.now_ms()
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
        # Again: the same signed description (a retry), with this request's req.
        m = self.get(v1, req=12)
        self.assertEqual(self.verify(m, req=12)["ctr"], 1)
        self.assertEqual(signed_part(m.payload), signed_part(m1.payload))
        # The vehicle changed (config word bit 3: no ADAS): a new description, ctr 2.
        self.ok("upsertVehicles", vehicles=[vehicle(1, cw="0008")])
        d = self.verify(self.get(v1, req=13), req=13)
        self.assertEqual((d["ctr"], [e["ecu"] for e in d["ecus"]]), (2, ["VCU", "BMS"]))
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
                         [(v1.vin, 1, 11), (v1.vin, 2, 13), (v2.vin, 1, 1), (v3.vin, 1, 1)])
        self.assertEqual(rows[2][5], ",".join(self.sha[e] for e in ("IVI", "BMS")))
        self.assertEqual(rows[0][4], self.delta)
        self.verify_bytes(rows[3][6])
        # The counter survives a restart (grants are loaded from the store). The old client
        # goes first: its automatic reconnect (same client id) would take the new one's.
        v1.close()
        self.b.restart()
        v1 = self.vehicle(self.b, ot.vin(1))
        self.assertEqual(self.verify(self.get(v1))["ctr"], 3)

    def verify_bytes(self, cose):
        return cose_verify(self.pub, cose)[0]

    def test_retries_from_memory_until_the_catalog_changes(self):
        """A retry is answered without deciding again while the catalog has not changed
        since the description was asked for; any change (here the delta package leaving
        `released`, which makes the full package the answer) is seen by the next retry,
        and going back to versions asked for before gets a new description, never the
        older one (ctr only grows)."""
        self.setup_catalog()
        v1 = self.vehicle(self.b, ot.vin(1))
        m1 = self.get(v1, req=1)
        d = self.verify(m1, req=1)
        self.assertEqual((d["ctr"], d["kind"]), (1, "delta"))
        for r in (2, 3):  # retries: the same signed bytes
            self.assertEqual(signed_part(self.get(v1, req=r).payload), signed_part(m1.payload))
        self.set_status(self.delta, "deprecated")
        d = self.verify(self.get(v1, req=4), req=4)
        self.assertEqual((d["ctr"], d["kind"], d["package"]), (2, "full", self.full))
        m5 = self.get(v1, req=5)
        self.assertEqual(self.verify(m5, req=5)["ctr"], 2)
        # another firmware, then back: each a new description, never an older one again
        self.ok("upsertVehicles", vehicles=[vehicle(1, fw="1.5")])
        self.assertEqual(self.verify(self.get(v1, req=6, cur="1.5"), req=6)["ctr"], 3)
        self.ok("upsertVehicles", vehicles=[vehicle(1)])
        self.assertEqual(self.verify(self.get(v1, req=7), req=7)["ctr"], 4)
        st = self.stats()
        self.assertEqual((st["answered_from_memory"], st["signed_on_request"]), (3, 4))
        self.wait_stored(4)
        self.assertEqual([(r[1], r[3]) for r in self.stored()], [(1, 1), (2, 4), (3, 6), (4, 7)])

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
        self.verify(m, req=5)


class PreSigned(PkgCase):
    """Descriptions are signed when the task's notice goes out, before pkg/get. (The
    engine notifies a vehicle once it is online: its shadow/get.)"""

    def online(self, *nums):
        cars = [self.client(ShadowCar, self.b, ot.vin(i)) for i in nums]
        for c in cars:
            c.shadow()
        return cars

    def test_notice_presigns_and_request_is_answered_from_memory(self):
        self.setup_catalog()
        st = self.stats()
        self.assertEqual((st["presigned"], st["held"]), (0, 0))  # nobody notified yet
        v1, _, _ = self.online(1, 2, 3)
        self.wait_presigned(3)  # vehicles 1, 2, 3 of the task, cur = their firmware
        st = self.stats()
        self.assertEqual((st["held"], st["issued"]), (3, 0))
        self.assertGreater(st["held_bytes"], 3 * 500)
        self.assertEqual(self.stored(), [])  # pre-signed, not served: not stored
        m = self.get(v1, req=7)
        d = self.verify(m, req=7)
        self.assertEqual(d["ctr"], 1)
        st = self.stats()
        self.assertEqual((st["answered_from_memory"], st["signed_on_request"], st["issued"]),
                         (1, 0, 1))
        self.wait_stored(1)
        row = self.stored()[0]
        self.assertEqual((row[0], row[1], row[3]), (v1.vin, 1, 7))
        # the stored message is the signed one, without the reply's req
        self.assertEqual(cose_verify(self.pub, row[6]), (d, None))
        self.assertEqual(signed_part(row[6]), signed_part(m.payload))
        # another firmware than the one guessed: a new description (ctr 2) on request
        self.ok("upsertVehicles", vehicles=[vehicle(1, fw="1.1")])
        d2 = self.verify(self.get(v1, req=8, cur="1.1"), req=8)
        self.assertEqual((d2["ctr"], d2["from"]), (2, "1.1"))
        self.assertEqual(self.stats()["signed_on_request"], 1)
        # back to 1.0: ctr 1 is no longer the newest, so a third description is signed
        self.ok("upsertVehicles", vehicles=[vehicle(1)])
        self.assertEqual(self.verify(self.get(v1, req=9), req=9)["ctr"], 3)

    def test_changed_catalog_gives_a_new_description(self):
        self.setup_catalog()
        _, v2, _ = self.online(1, 2, 3)
        self.wait_presigned(3)
        # the VIN's strategy now also upgrades VCU: the pre-signed description is stale
        self.ok("setStrategy", strategy={"id": "own", "package_kind": "full",
                                         "compare_version": "never",
                                         "ecus": [{"ecu": "IVI", "order": 0},
                                                  {"ecu": "VCU", "order": 1},
                                                  {"ecu": "BMS", "order": 5}]})
        d = self.verify(self.get(v2, req=1), req=1)
        self.assertEqual((d["ctr"], [e["ecu"] for e in d["ecus"]]), (2, ["IVI", "VCU", "BMS"]))
        st = self.stats()
        self.assertEqual((st["answered_from_memory"], st["signed_on_request"]), (0, 1))
        self.wait_stored(1)  # ctr 1 was never served: only ctr 2 is stored
        self.assertEqual([(r[0], r[1]) for r in self.stored()], [(v2.vin, 2)])

    def test_presign_off(self):
        self.setup_catalog_with(presign_max=0)
        v1 = self.vehicle(self.b, ot.vin(1))
        self.assertEqual(self.verify(self.get(v1, req=3), req=3)["ctr"], 1)
        st = self.stats()
        self.assertEqual((st["presigned"], st["signed_on_request"]), (0, 1))


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
        # each reply carries its own request's Correlation Data and req, in request order,
        # and the same signed description (retries of one request)
        self.assertEqual([m.prop("CorrelationData") for m in got], [b"c-%d" % r for r in reqs])
        self.assertEqual([cose_verify(self.pub, m.payload)[1] for m in got], reqs)
        self.assertEqual({signed_part(m.payload) for m in got}, {signed_part(got[0].payload)})
        self.assertEqual(self.verify(got[0])["ctr"], 1)
        self.assertEqual(v1.received(pkg_topic(v1)), [])  # nothing on the default topic
        self.wait_stored(1)

    def test_signed_after_disconnect_and_before_stop_is_stored(self):
        # A slow signer (plugin_opt_sign_delay_ms, signer.h): the vehicle is gone and the
        # broker is stopping while its descriptions are still being signed.
        self.setup_catalog_with(sign_delay_ms=25)  # nobody notified: all signed on request
        v1, v2 = self.vehicle(self.b, ot.vin(1)), self.vehicle(self.b, ot.vin(2))
        self.burst(v1, range(1, 6))
        v1.close()  # gone before its replies: still persisted
        # v2 (no firmware on record) asks with 20 different versions: 20 descriptions
        self.ok("upsertVehicles", vehicles=[
            {k: x for k, x in vehicle(2).items() if k != "fw"}])
        self.burst_cur(v2, range(1, 21))
        self.b.stop()  # clean stop right after the acks: the signer is drained first
        rows = self.stored()
        # v1's five requests were retries of one: one description, the first req's
        self.assertEqual([(r[0], r[1], r[3]) for r in rows if r[0] == v1.vin], [(v1.vin, 1, 1)])
        self.assertEqual([(r[0], r[1], r[3]) for r in rows if r[0] == v2.vin],
                         [(v2.vin, i, i) for i in range(1, 21)])
        for r in rows:
            self.verify_bytes(r[6])
        v2.close()  # or its automatic reconnect (same client id) takes the new one's
        self.b.start()
        v2 = self.vehicle(self.b, ot.vin(2))
        self.assertEqual(self.verify(self.get(v2, req=999))["ctr"], 21)

    def burst_cur(self, v, reqs):
        """Like burst, with cur = "1.<req>" (a vehicle without a firmware in the catalog:
        any cur below the target is accepted), so each request needs its own description."""
        infos = [v.c.publish("ota/v1/%s/pkg/get" % v.vin, ot.cbor2.dumps(
            {"req": r, "task": self.tid, "cur": "1.%d" % r, "tgt": "2.0"}), qos=1) for r in reqs]
        for info in infos:
            info.wait_for_publish(ot.TIMEOUT)
            self.assertTrue(info.is_published())

    verify_bytes = Descriptions.verify_bytes


class KilledBeforeStored(PkgCase):
    """A description a vehicle holds survives a kill -9 of its broker before the writer
    stored it: pkg/get spools it before the reply (store/ota_spool_desc.h)."""

    def test_description_served_then_kill9_is_stored_by_the_restart(self):
        """The test holds SQLite's write lock (the writer's transactions fail and are
        retried: nothing can be stored) while the vehicle gets its description; the broker
        is then killed with SIGKILL. The restart on the same spool stores the description
        once, byte for byte, and grants its files at start: the vehicle's file/get is
        served at once."""
        self.setup_catalog()
        v = self.vehicle(self.b, ot.vin(1))
        self.wait_stored(0)
        lock = sqlite3.connect(str(self.b.db_path), isolation_level=None, timeout=30)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            m = self.get(v, req=7)
            d = self.verify(m, req=7)
            self.b.kill9()
        finally:
            lock.rollback()
            lock.close()
        self.assertEqual(self.stored(), [], "stored before the kill: the window was not held")
        v.close()
        self.b.start()
        self.wait_stored(1)
        (row,) = self.stored()
        self.assertEqual((row[0], row[1], row[2], row[3]), (v.vin, d["ctr"], self.tid, 7))
        self.assertEqual(signed_part(bytes(row[6])), signed_part(m.payload))
        sha = d["ecus"][0]["file"]["id"]
        v = self.vehicle(self.b, ot.vin(1))
        v.publish("ota/v1/%s/file/get" % v.vin, ot.cbor2.dumps({"file": sha, "from": 0, "n": 1}))
        block = v.get("ota/v1/%s/file/data" % v.vin).cbor()
        self.assertNotIn("err", block)
        self.assertEqual((block["file"], block["i"]), (sha, 0))
        self.a = self.admin(self.b, client_id="admin-again")
        self.assertEqual(self.stats()["issued"], 0)  # this run issued none: granted from the spool


class SharedStore(PkgCase):
    """Two brokers on one store (the MongoDB test peer): a vehicle that got a newer
    description from the other broker is never served the older one this broker still
    holds (ctr grows in the order the vehicle sees descriptions)."""

    def stored_ctrs(self, db, vin_):
        return sorted(d["counter"] for d in db.db["ota_vehicle_package_description"].find(
            {"vin": vin_}, {"counter": 1, "_id": 0}))

    def test_newer_description_from_the_other_broker(self):
        uri = self.mongo_peer().uri("ota")
        self.setup_catalog_with(store=uri, broker_id="broker-1")
        a = self.b
        b = self.broker(store=uri, broker_id="broker-2", file_dir=str(self.files),
                        extra_conf=["set_tcp_nodelay true"],
                        signing_key=str(a.dir / "ota-signing.pem"))
        db = self.mongo_db(uri)
        vin1 = ot.vin(1)
        v = self.vehicle(a, vin1)
        self.assertEqual(self.verify(self.get(v, req=1), req=1)["ctr"], 1)
        ot.wait_until(lambda: self.stored_ctrs(db, vin1) == [1], msg="ctr 1 stored")
        v.close()
        v = self.vehicle(b, vin1)  # broker 2 follows the task, then reads ctr 1 from the store
        ot.wait_until(lambda: "ctr" in self.verify_any(self.get(v, req=2)),
                      msg="broker 2 serves the task")
        ot.wait_until(lambda: self.stored_ctrs(db, vin1) == [1, 2], msg="ctr 2 stored")
        v.close()
        v = self.vehicle(a, vin1)  # back: broker 1 still holds ctr 1, fresh
        d = self.verify(self.get(v, req=3), req=3)
        self.assertEqual((d["ctr"], d["from"], d["to"]), (3, "1.0", "2.0"))
        self.assertEqual(self.verify(self.get(v, req=4), req=4)["ctr"], 3)  # retried: the same

    def verify_any(self, m):
        """The description of a pkg/desc, or the refusal map."""
        if m.prop("ContentType") == "application/cbor":
            return m.cbor()
        return self.verify(m)


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


class Es256(PkgCase):
    """The same descriptions signed with ES256 (plugin_opt_signing_alg es256)."""
    ALG = "es256"

    def test_es256_key_and_signature(self):
        self.setup_catalog()
        self.assertIsInstance(self.pub, ec.EllipticCurvePublicKey)
        self.assertEqual(self.pub.curve.name, "secp256r1")
        v1 = self.vehicle(self.b, ot.vin(1))
        m = self.get(v1, req=4)
        self.assertEqual(self.verify(m, req=4)["ctr"], 1)
        protected, payload, sig = signed_part(m.payload)
        self.assertEqual(protected, b"\xa1\x01\x26")
        kid = {4: ot.cbor2.loads(m.payload).value[1][4]}
        # tampered payload, or the same signature presented as EdDSA: refused
        bad = ot.cbor2.dumps(ot.cbor2.CBORTag(18, [protected, kid, payload[:-1] + b"x", sig]))
        with self.assertRaises(InvalidSignature):
            cose_verify(self.pub, bad)
        bad = ot.cbor2.dumps(ot.cbor2.CBORTag(18, [b"\xa1\x01\x27", kid, payload, sig]))
        with self.assertRaises(AssertionError):
            cose_verify(self.pub, bad)
        self.wait_stored(1)
        self.verify_bytes(self.stored()[0][6])

    def test_key_of_the_other_type_stops_the_start(self):
        self.setup_catalog()  # an ES256 key file now exists
        self.b.stop()
        conf = self.b.conf_path.read_text()
        self.b.conf_path.write_text(conf.replace("plugin_opt_signing_alg es256",
                                                 "plugin_opt_signing_alg ed25519"))
        self.b.full_stacks = True  # its start fails (otatest.Broker)
        with self.assertRaises(ot.HarnessError) as cm:
            self.b.start()
        self.assertIn("not an Ed25519 private key", str(cm.exception))

    verify_bytes = Descriptions.verify_bytes


class DescriptionsEs256(Descriptions):
    ALG = "es256"


class PreSignedEs256(PreSigned):
    ALG = "es256"


if __name__ == "__main__":
    ot.main()
