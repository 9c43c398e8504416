#!/usr/bin/python3
"""Integration: TLS with client certificates, the VIN taken from the certificate.

The broker has a TLS listener with require_certificate, use_identity_as_username and
use_username_as_clientid (docs/security.md); the test PKI comes from
scripts/make-test-certs.sh. A vehicle holding the certificate of VIN A:
- is A whatever username or client id it claims, so it cannot publish or subscribe as B,
  and cannot take over B's session;
- cannot connect without a certificate, nor with one from another CA for the same VIN.
An operator certificate (CN admin) opens the operator API.
"""

import ssl
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402

A, B = ot.vin(1), ot.vin(2)
DENIED = 0x87


class TlsTest(ot.OtaTestCase):

    @classmethod
    def setUpClass(cls):
        cls._pki = tempfile.TemporaryDirectory(prefix="ota-pki-")
        cls.certs = ot.make_certs(cls._pki.name, A, B)

    @classmethod
    def tearDownClass(cls):
        cls._pki.cleanup()

    def setUp(self):
        super().setUp()
        self.tls_port = ot.free_port()
        self.b = self.broker(extra_conf=ot.tls_listener(self.certs, self.tls_port))
        self.db = ot.Db(self.b.db_path)

    def car(self, vin_, client_id=None, username=None, cert=None, mqtt5=True):
        c = self.client(ot.Client, self.b, client_id or ("car-" + vin_), username=username,
                        mqtt5=mqtt5, tls=ot.tls_files(self.certs, cert or "vehicle-" + vin_),
                        port=self.tls_port)
        c.vin = vin_
        return c

    def test_certificate_vin_reports_and_cannot_act_as_another(self):
        a = self.car(A)
        self.assertEqual(a.subscribe("ota/v1/%s/#" % A), 1)
        self.assertEqual(a.subscribe("ota/v1/%s/#" % B), DENIED)
        a.publish(ot.report_topic(A), ot.report(1, [ot.ev_download(pct=11)]))
        a.publish(ot.report_topic(B), ot.report(1, [ot.ev_download(pct=66)]))
        err = a.get(ot.error_topic(A)).cbor()
        self.assertEqual(err["err"], "E_UNAUTHORIZED", err)
        ot.wait_until(lambda: self.db.count_vin(A) == 1, msg="A's own report stored")
        self.assertEqual([r["pct"] for r in self.db.rows("download_progress", A)], [11])
        self.assertEqual(self.db.count_vin(B), 0, "A's certificate published as B")

    def test_claimed_username_and_client_id_do_not_change_the_vin(self):
        b = self.car(B)
        self.assertEqual(b.subscribe("ota/v1/%s/#" % B), 1)
        # A's certificate, claiming B as username and as client id.
        a = self.car(A, client_id=B, username=B, mqtt5=False)
        a.publish(ot.report_topic(B), ot.report(5, [ot.ev_download(pct=55)]))
        a.publish(ot.report_topic(A), ot.report(6, [ot.ev_download(pct=66)]))
        ot.wait_until(lambda: self.db.count_vin(A) == 1, msg="report stored under A")
        self.assertEqual(self.db.rows("download_progress", A)[0]["pct"], 66)
        self.assertEqual(self.db.count_vin(B), 0)
        # B kept its session (A's client id became A, not B) and saw nothing of A's.
        self.assertTrue(b.c.is_connected())
        b.publish(ot.report_topic(B), ot.report(1, [ot.ev_eeprom()]))
        ot.wait_until(lambda: self.db.count_vin(B) == 1, msg="B still served")
        self.assertEqual(b.received(), [])
        stats = self.admin(self.b).stats()
        self.assertGreaterEqual(stats["acl_denied"], 1)

    def test_no_certificate_or_rogue_ca_is_refused(self):
        for name, files in (("no certificate", (self.certs / "ca.crt", None, None)),
                            ("rogue CA", ot.tls_files(self.certs, "rogue-" + A))):
            with self.subTest(name):
                with self.assertRaises((ot.HarnessError, ssl.SSLError, OSError)):
                    # a refused handshake never brings a CONNACK: no need to wait long
                    c = ot.Client(self.b, "x-" + A, tls=files, port=self.tls_port,
                                  connect_timeout=3)
                    c.close()
        self.b.wait_log(lambda line: "peer did not return a certificate" in line)
        self.b.wait_log(lambda line: "certificate verify failed" in line)
        self.assertEqual(self.db.count_vin(A) if self.db.path.exists() else 0, 0)

    def test_operator_certificate_opens_the_operator_api(self):
        op = self.client(ot.Admin, self.b, client_id="ops-console",
                         tls=ot.tls_files(self.certs, "operator"), port=self.tls_port)
        self.assertEqual(op.response_suback, 1)
        r = op.command("getStats")
        self.assertIn("limits", r["data"], r)
        # A vehicle certificate claiming the admin username is still the vehicle.
        a = self.client(ot.Admin, self.b, client_id="fake-admin",
                        tls=ot.tls_files(self.certs, "vehicle-" + A), port=self.tls_port)
        self.assertEqual(a.response_suback, DENIED)


if __name__ == "__main__":
    ot.main()
