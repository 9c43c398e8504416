#!/usr/bin/python3
"""Integration: uploading package files on $CONTROL/ota/v1/file (docs/operator-api.md).

An operator sends CBOR chunks {sha256, offset, total, data}; each is answered with an
`upload` response {sha256, received, total, stored}. Covered: a 50 MB file with the
right hash (stored at <file_dir>/<sha256>, same bytes, getFile/uploadStatus) and with a
wrong one (refused on the last chunk, nothing left behind); resuming after the client
disconnects, after a clean restart and after a kill -9; re-sent chunks; a chunk beyond
what was received; malformed chunks; non-operators denied.
"""

import os
import sys
import time
from pathlib import Path

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402

MB50 = 50 * 1000 * 1000
DENIED = 0x87
KIB = 1024


class UploadTest(ot.OtaTestCase):

    def start(self):
        self.files = self.tmp / "files"
        # TCP_NODELAY on both ends: otherwise Nagle + delayed ACKs add ~80 ms per request.
        self.b = self.broker(file_dir=str(self.files), extra_conf=["set_tcp_nodelay true"])
        self.a = self.admin(self.b, nodelay=True)
        return self.b, self.a

    def status(self, sha):
        r = self.a.command("uploadStatus", sha256=sha)
        self.assertNotIn("error", r, r)
        return r["data"]

    def leftovers(self):
        """Whatever is in the upload area (partial files)."""
        up = self.files / ".upload"
        return sorted(p.name for p in up.iterdir()) if up.exists() else []

    def assertStored(self, sha, data):
        path = self.files / sha
        self.assertTrue(path.exists(), "%s not in the repository" % path)
        self.assertEqual(path.stat().st_size, len(data))
        self.assertTrue(path.read_bytes() == data, "the stored file differs from the upload")
        self.assertEqual(self.leftovers(), [])
        r = self.a.command("getFile", sha256=sha)
        self.assertEqual(r.get("data"), {"file": {"sha256": sha, "size": len(data)}}, r)
        self.assertEqual(self.status(sha), {"sha256": sha, "received": len(data),
                                            "total": len(data), "stored": True})

    def assertProgress(self, rs, sha, total, start, chunk):
        """Every response but the last: no error, received where that chunk ended."""
        at = start
        for i, r in enumerate(rs):
            at = min(at + chunk, total)
            if i == len(rs) - 1:
                break
            self.assertNotIn("error", r, "chunk %d: %r" % (i, r))
            self.assertEqual(r.get("data"), {"sha256": sha, "received": at, "total": total,
                                             "stored": False}, "chunk %d" % i)

    def test_50mb_right_hash(self):
        self.start()
        data = os.urandom(MB50)
        sha = ot.sha256_hex(data)
        t0 = time.monotonic()
        rs = self.a.upload(data, chunk=ot.UPLOAD_CHUNK, window=4, timeout=60 * ot.SCALE)
        took = time.monotonic() - t0
        print("\n50 MB upload: %.2f s (%.1f MB/s)" % (took, MB50 / 1e6 / took), file=sys.stderr)
        self.assertEqual(len(rs), (MB50 + ot.UPLOAD_CHUNK - 1) // ot.UPLOAD_CHUNK)
        self.assertProgress(rs, sha, MB50, 0, ot.UPLOAD_CHUNK)
        self.assertNotIn("error", rs[-1], rs[-1])
        self.assertEqual(rs[-1]["data"], {"sha256": sha, "received": MB50, "total": MB50,
                                          "stored": True})
        self.assertStored(sha, data)
        self.assertLess(took, 30, "a 50 MB upload took %.1f s" % took)
        # The file is in the repository: a chunk sent again changes nothing.
        r = self.a.upload_raw(ot.upload_chunk(sha, 0, MB50, data[:KIB]))
        self.assertNotIn("error", r, r)
        self.assertEqual(r["data"], {"sha256": sha, "received": MB50, "total": MB50,
                                     "stored": True})
        self.assertStored(sha, data)

    def test_50mb_wrong_hash(self):
        self.start()
        data = os.urandom(MB50)
        wrong = ot.sha256_hex(b"some other content")
        rs = self.a.upload(data, sha256=wrong, chunk=ot.UPLOAD_CHUNK, window=4,
                           timeout=60 * ot.SCALE)
        self.assertProgress(rs, wrong, MB50, 0, ot.UPLOAD_CHUNK)
        last = rs[-1]
        self.assertIn("error", last, last)
        self.assertIn("mismatch", last["error"].lower(), last)
        self.assertFalse((self.files / wrong).exists(), "a file with the wrong hash was kept")
        self.assertFalse((self.files / ot.sha256_hex(data)).exists())
        self.assertEqual(self.leftovers(), [], "the partial file was left behind")
        st = self.status(wrong)  # nothing of it is left (total: unknown now, if given)
        self.assertEqual((st.get("sha256"), st.get("received"), st.get("stored")),
                         (wrong, 0, False), st)
        r = self.a.command("getFile", sha256=wrong)
        self.assertIn("error", r, r)
        self.assertIn("catalog", self.a.stats())  # still serving

    def test_resume_after_disconnect_restart_and_kill9(self):
        b, a = self.start()
        chunk = 256 * KIB
        data = os.urandom(16 * chunk + 12345)
        sha, total = ot.sha256_hex(data), len(data)
        self.assertEqual(self.status(sha)["received"], 0)
        self.assertFalse(self.status(sha)["stored"])
        # A quarter, then the operator goes away.
        rs = a.upload(data, end=4 * chunk, chunk=chunk)
        self.assertProgress(rs + [None], sha, total, 0, chunk)
        a.close()
        self.a = a = self.admin(b, client_id="admin-2", nodelay=True)
        partial = [self.status(sha)]  # each: what uploadStatus says of a partial upload
        self.assertEqual((partial[0]["received"], partial[0]["stored"]), (4 * chunk, False))
        # On to half, then a clean restart.
        rs = a.upload(data, start=4 * chunk, end=8 * chunk, chunk=chunk)
        self.assertProgress(rs + [None], sha, total, 4 * chunk, chunk)
        a.close()
        b.restart()
        self.a = a = self.admin(b, client_id="admin-3", nodelay=True)
        st = self.status(sha)
        partial.append(st)
        self.assertEqual((st["received"], st["stored"]), (8 * chunk, False))
        # Three more chunks, answered, then kill -9: they were written.
        rs = a.upload(data, start=8 * chunk, end=11 * chunk, chunk=chunk)
        self.assertProgress(rs + [None], sha, total, 8 * chunk, chunk)
        b.kill9()
        b.start()
        self.a = a = self.admin(b, client_id="admin-4", nodelay=True)
        st = self.status(sha)
        partial.append(st)
        self.assertEqual((st["received"], st["stored"]), (11 * chunk, False))
        self.assertFalse((self.files / sha).exists())
        # The rest, from where the plugin says.
        rs = a.upload(data, start=st["received"], chunk=chunk)
        self.assertProgress(rs, sha, total, st["received"], chunk)
        self.assertEqual(rs[-1].get("data"), {"sha256": sha, "received": total, "total": total,
                                              "stored": True}, rs[-1])
        self.assertStored(sha, data)
        # uploadStatus gives {sha256, received, total, stored} (docs/operator-api.md).
        for st in partial:
            self.assertEqual(set(st), {"sha256", "received", "total", "stored"}, st)
            self.assertEqual(st["total"], total, st)

    def test_resend_gap_and_overlap(self):
        self.start()
        chunk = 256 * KIB
        data = os.urandom(4 * chunk + 100)
        sha, total = ot.sha256_hex(data), len(data)
        rs = self.a.upload(data, end=2 * chunk, chunk=chunk)
        self.assertProgress(rs + [None], sha, total, 0, chunk)

        def send(off, n):
            return self.a.upload_raw(ot.upload_chunk(sha, off, total, data[off:off + n]))
        # Chunks sent again are harmless.
        for off in (0, chunk, 1000):
            r = send(off, chunk)
            self.assertNotIn("error", r, r)
            self.assertEqual(r["data"], {"sha256": sha, "received": 2 * chunk, "total": total,
                                         "stored": False})
        # A chunk beyond what was received is refused, saying where to resume.
        r = send(3 * chunk, chunk)
        self.assertIn("error", r, r)
        self.assertIn(str(2 * chunk), r["error"])
        self.assertEqual(self.status(sha)["received"], 2 * chunk)
        # A chunk that starts inside the received part and goes beyond: either ignored or
        # taken from `received` on; resuming from what the plugin says gives the file.
        r = send(2 * chunk - 1000, 3000)
        self.assertNotIn("error", r, r)
        got = self.status(sha)["received"]
        self.assertIn(got, (2 * chunk, 2 * chunk + 2000))
        rs = self.a.upload(data, start=got, chunk=chunk)
        self.assertEqual(rs[-1].get("data", {}).get("stored"), True, rs[-1])
        self.assertStored(sha, data)
        # A different total for the same sha256 is not the same file: refused or ignored,
        # never stored wrong.
        r = self.a.upload_raw(ot.upload_chunk(sha, 0, total + 1, data[:10]))
        self.assertStored(sha, data)

    def test_malformed_chunks(self):
        self.start()
        sha = ot.sha256_hex(b"x" * 100)

        def chunk(**kw):
            d = {"sha256": sha, "offset": 0, "total": 100, "data": b"x" * 100}
            for k, v in kw.items():
                if v is None:
                    d.pop(k)
                else:
                    d[k] = v
            return cbor2.dumps(d)
        cases = [
            ("not CBOR", b"\xff\xfe\xfd garbage", None),
            ("truncated", chunk()[:-10], None),
            ("empty", b"", None),
            ("JSON", b'{"sha256": "%s", "offset": 0}' % sha.encode(), None),
            ("an array", cbor2.dumps([sha, 0, 100, b"x"]), None),
            ("no sha256", chunk(sha256=None), "sha256"),
            ("no offset", chunk(offset=None), "offset"),
            ("no total", chunk(total=None), "total"),
            ("no data", chunk(data=None), "data"),
            ("sha256 not hex", chunk(sha256="g" * 64), "sha256"),
            ("sha256 short", chunk(sha256=sha[:40]), "sha256"),
            ("sha256 bytes", chunk(sha256=bytes.fromhex(sha)), "sha256"),
            ("offset negative", chunk(offset=-1), "offset"),
            ("offset text", chunk(offset="0"), "offset"),
            ("data text", chunk(data="x" * 100), "data"),
            ("data longer than total", chunk(total=10), None),
            ("past total", chunk(offset=50, total=100, data=b"y" * 60), None),
            ("data over 1 MiB", chunk(total=2 << 20, data=b"z" * ((1 << 20) + 1)), "data"),
        ]
        for name, payload, needle in cases:
            r = self.a.upload_raw(payload)
            self.assertIn("error", r, "%s: %r" % (name, r))
            self.assertNotIn("data", r, name)
            if needle:
                self.assertIn(needle, r["error"], name)
        self.assertEqual(self.leftovers(), [])
        self.assertEqual(self.status(sha)["received"], 0)
        # The broker keeps serving: the good chunk is stored.
        r = self.a.upload_raw(chunk())
        self.assertEqual(r.get("data"), {"sha256": sha, "received": 100, "total": 100,
                                         "stored": True}, r)
        self.assertStored(sha, b"x" * 100)

    def test_non_operator_cannot_upload(self):
        b, a = self.start()
        data = b"payload of a file"
        sha = ot.sha256_hex(data)
        payload = ot.upload_chunk(sha, 0, len(data), data)
        raw = self.raw(b, "eve-raw", username="eve")
        self.assertEqual(raw.publish("$CONTROL/ota/v1/file", payload), DENIED)
        raw.close()
        car = self.raw(b, ot.vin(1))
        self.assertEqual(car.publish("$CONTROL/ota/v1/file", payload), DENIED)
        car.close()
        eve = self.client(ot.Client, b, "eve", username="eve")
        eve.subscribe("#")
        eve.publish("$CONTROL/ota/v1/file", payload)
        self.assertEqual(eve.quiet(), [], "a non-operator got an answer")
        self.assertEqual(self.status(sha)["received"], 0)
        self.assertFalse((self.files / sha).exists())
        self.assertEqual(self.leftovers(), [])


if __name__ == "__main__":
    ot.main()
