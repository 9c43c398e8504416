#!/usr/bin/python3
"""Integration: resumable block download, ota/v1/{vin}/file/get -> file/data (SPEC §3).

A vehicle asks for blocks {file, bs, from, n, bitmap?} of a file named in a description
issued to it and gets one file/data {file, i, data} per block, or {file, err, msg}. Files
are granted the way the plugin learns them at a restart: a row in
ota_vehicle_package_description, loaded at start. Covered: a 20 MB file uploaded through
the operator API, downloaded with 30% of the blocks lost by the vehicle and a reconnect in
the middle, resumed with bitmaps, sha256 checked; refusals (another vehicle's file, a file
in no description, a granted file not in the repository, bad block size / offset / count /
bitmap, malformed CBOR, too many blocks queued); MQTT 5 response topic and correlation
data kept for every block; other clients served during an 8 MiB burst; a 1 GB sparse file
read at its end with the broker's RSS staying small; a disconnect dropping the queue.
"""

import hashlib
import os
import random
import sqlite3
import struct
import sys
import time
from pathlib import Path

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402

V1, V2, V3 = ot.vin(1), ot.vin(2), ot.vin(3)
KIB, MIB = 1024, 1024 * 1024
# plugin_opt_file_vehicle_rate of the big downloads: the default 1 MiB/s per vehicle
# (tested in test_hostile.py) would make each of them a 20 s wait for its byte bucket;
# what they test (resume, bitmaps, sparse reads, RSS) is the same at any rate.
FAST_RATE = 64 * MIB


def file_get(sha, from_=0, n=1, bs=None, bitmap=None, **extra):
    req = {"file": sha, "from": from_, "n": n}
    if bs is not None:
        req["bs"] = bs
    if bitmap is not None:
        req["bitmap"] = bitmap
    req.update(extra)
    return cbor2.dumps(req)


def bitmap_of(ks, n):
    """The SPEC's bitmap selecting offsets ks (bit k mod 8 of byte k div 8)."""
    out = bytearray((n + 7) // 8)
    for k in ks:
        out[k // 8] |= 1 << (k % 8)
    return bytes(out)


def grant(db_path, vin_, files, counter=1):
    """Stores a description issued to vin_ naming files (what pkg/get persists)."""
    con = sqlite3.connect(str(db_path))
    with con:
        con.execute("INSERT INTO ota_vehicle_package_description (vin, counter, task, req, "
                    "package, files, cose, issued_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?)",
                    (vin_, counter, "T-1", 1, 1, ",".join(files), b"\xd2\x84", ot.now_ms(),
                     ot.now_ms() + 86_400_000))
    con.close()


def rss_kib(pid):
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ot.HarnessError("no VmRSS for %d" % pid)


class Car(ot.Vehicle):
    """A vehicle subscribed to its file/data, error and shadow topics."""

    def __init__(self, broker, vin_, **kw):
        super().__init__(broker, vin_, **kw)
        assert self.subscribe("ota/v1/%s/#" % self.vin) == 1

    def get_blocks(self, payload, **kw):
        self.publish("ota/v1/%s/file/get" % self.vin, payload, **kw)

    def data(self, timeout=None):
        return self.get("ota/v1/%s/file/data" % self.vin, timeout).cbor()

    def refusal(self, payload):
        """Sends a request that must be refused on file/data; returns the error map."""
        self.get_blocks(payload)
        m = self.data()
        self.assertIsError(m)
        return m

    @staticmethod
    def assertIsError(m):
        if set(m) != {"file", "err", "msg"}:
            raise ot.HarnessError("expected {file, err, msg}, got %r" % m)


class Downloader:
    """Downloads a whole file in windows of up to 64 blocks, losing a share of the blocks
    it receives (dropped on arrival), re-asking for the missing ones with a bitmap."""

    def __init__(self, car, sha, size, bs, loss, rng):
        self.car, self.sha, self.size, self.bs = car, sha, size, bs
        self.loss, self.rng = loss, rng
        self.count = (size + bs - 1) // bs
        self.blocks = {}
        self.arrived = 0  # blocks received, kept or lost
        self.requests = 0

    def missing(self):
        return [i for i in range(self.count) if i not in self.blocks]

    def window(self):
        miss = self.missing()
        start = miss[0]
        ks = [i - start for i in miss if i < start + 64]
        n = ks[-1] + 1
        return start, n, ks

    def step(self):
        """One request for the next window; waits for each block it selected."""
        start, n, ks = self.window()
        use_bitmap = len(ks) != n or self.requests % 2 == 1
        self.car.get_blocks(file_get(self.sha, start, n, bs=None if self.bs == 16384 else self.bs,
                                     bitmap=bitmap_of(ks, n) if use_bitmap else None))
        self.requests += 1
        for _ in ks:
            self.take(self.car.data())

    def take(self, m):
        if set(m) != {"file", "i", "data"}:
            raise ot.HarnessError("expected a block, got %r" % m)
        assert m["file"] == self.sha, m
        self.arrived += 1
        i = m["i"]
        want = min(self.bs, self.size - i * self.bs)
        assert len(m["data"]) == want, (i, len(m["data"]), want)
        if self.rng.random() >= self.loss:
            self.blocks[i] = m["data"]

    def done(self):
        return len(self.blocks) == self.count

    def content(self):
        return b"".join(self.blocks[i] for i in range(self.count))


class FileGetTest(ot.OtaTestCase):

    def start(self, grants=(), files=(), **opts):
        """A broker whose repository holds files (bytes, or (sha, path) for files already
        in place) and whose store has the given grants [(vin, [sha...])], loaded at start
        after a restart. Returns the broker."""
        self.files = self.tmp / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        for data in files:
            (self.files / ot.sha256_hex(data)).write_bytes(data)
        b = self.broker(file_dir=str(self.files), **opts)
        if grants:
            b.stop()
            for k, (v, shas) in enumerate(grants):
                grant(b.db_path, v, shas, counter=k + 1)
            b.start()
        return b

    def car(self, b, v, **kw):
        return self.client(Car, b, v, **kw)

    def file_stats(self, b):
        return self.admin(b, client_id="admin-%d" % time.monotonic_ns()).stats()["file"]

    # ---------------------------------------------------------------- the 20 MB download

    def test_20mb_with_loss_and_reconnect(self):
        data = os.urandom(20 * 1000 * 1000)
        sha = ot.sha256_hex(data)
        self.files = self.tmp / "files"
        b = self.broker(file_dir=str(self.files), extra_conf=["set_tcp_nodelay true"],
                        file_vehicle_rate=FAST_RATE)
        a = self.admin(b, nodelay=True)
        rs = a.upload(data, chunk=ot.UPLOAD_CHUNK, window=4, timeout=60 * ot.SCALE)
        self.assertEqual(rs[-1].get("data", {}).get("stored"), True, rs[-1])
        a.close()
        b.stop()
        grant(b.db_path, V1, [ot.sha256_hex(b"another file"), sha])
        b.start()

        car = self.car(b, V1)
        dl = Downloader(car, sha, len(data), 16384, 0.3, random.Random(5))
        t0 = time.monotonic()
        while len(dl.blocks) < dl.count // 2:
            dl.step()
        # Mid-download: a request goes out and the vehicle drops off at once; the blocks
        # still queued for it are dropped by the plugin.
        start, n, ks = dl.window()
        car.get_blocks(file_get(sha, start, n, bitmap=bitmap_of(ks, n)))
        car.close()
        ot.wait_until(lambda: self.file_stats(b)["blocks_queued"] == 0, msg="queue dropped")
        car = self.car(b, V1)
        dl.car = car
        while not dl.done():
            dl.step()
        took = time.monotonic() - t0
        got = dl.content()
        self.assertEqual(hashlib.sha256(got).hexdigest(), sha)
        self.assertTrue(got == data)
        st = self.file_stats(b)
        print("\n20 MB, 30%% loss: %d requests, %d blocks arrived for %d, %.1f s" %
              (dl.requests, dl.arrived, dl.count, took), file=sys.stderr)
        self.assertGreater(dl.arrived, dl.count * 1.3)  # the losses were made good
        # Sent but never arrived: only blocks on their way when the vehicle dropped off.
        self.assertGreaterEqual(st["blocks_sent"], dl.arrived)
        self.assertLessEqual(st["blocks_sent"] - dl.arrived, 64)
        self.assertEqual(st["vehicles_queued"], 0)
        self.assertEqual(st["refused"], {})

    # ---------------------------------------------------------------- blocks and bitmaps

    def test_blocks_bitmap_short_last_and_mqtt5(self):
        data = os.urandom(10 * 1000 + 123)
        sha = ot.sha256_hex(data)
        b = self.start(grants=[(V1, [sha])], files=[data])
        car = self.car(b, V1)
        # bs 1000: 11 blocks, the last one 123 bytes; from 8, n 5 -> 8, 9, 10 only.
        car.get_blocks(file_get(sha, 8, 5, bs=1000))
        got = [car.data() for _ in range(3)]
        self.assertEqual([m["i"] for m in got], [8, 9, 10])
        for m in got:
            self.assertEqual(m["file"], sha)
            self.assertEqual(m["data"], data[m["i"] * 1000:(m["i"] + 1) * 1000])
        self.assertEqual(len(got[-1]["data"]), 123)
        self.assertEqual(car.quiet("ota/v1/%s/file/data" % V1), [])
        # A bitmap selects exactly its blocks, bit k mod 8 of byte k div 8.
        car.get_blocks(file_get(sha, 1, 10, bs=256, bitmap=bitmap_of([0, 3, 8, 9], 10)))
        got = [car.data() for _ in range(4)]
        self.assertEqual([m["i"] for m in got], [1, 4, 9, 10])
        for m in got:
            self.assertEqual(m["data"], data[m["i"] * 256:(m["i"] + 1) * 256])
        self.assertEqual(car.quiet("ota/v1/%s/file/data" % V1), [])
        # Default bs 16384: the whole file is block 0.
        car.get_blocks(file_get(sha, 0, 64))
        m = car.data()
        self.assertEqual((m["i"], m["data"]), (0, data))
        # MQTT 5: every block goes to the response topic with the correlation data.
        car.get_blocks(file_get(sha, 0, 3, bs=4096),
                       properties=ot.props("ota/v1/%s/dl/7" % V1, b"corr-7"))
        got = [car.get("ota/v1/%s/dl/7" % V1) for _ in range(3)]
        self.assertEqual([m.cbor()["i"] for m in got], [0, 1, 2])
        for m in got:
            self.assertEqual(m.prop("CorrelationData"), b"corr-7")
            self.assertEqual(m.prop("ContentType"), "application/cbor")
        self.assertEqual(car.quiet("ota/v1/%s/file/data" % V1), [])

    # ---------------------------------------------------------------- refusals

    def test_refusals(self):
        data = os.urandom(5000)
        sha = ot.sha256_hex(data)
        other = os.urandom(3000)
        sha_other = ot.sha256_hex(other)  # in the repository, in no description
        absent = ot.sha256_hex(b"granted but never uploaded")
        b = self.start(grants=[(V1, [sha, absent]), (V3, [sha_other])], files=[data, other])
        car = self.car(b, V1)
        v2 = self.car(b, V2)

        def refused(c, payload, code, needle, file_=None):
            m = c.refusal(payload)
            self.assertEqual(m["err"], code, m)
            self.assertEqual(m["file"], sha if file_ is None else file_, m)
            self.assertIn(needle, m["msg"], m)

        # Grants: another vehicle, a file granted to someone else.
        refused(v2, file_get(sha), "E_UNAUTHORIZED", V2)
        refused(car, file_get(sha_other), "E_UNAUTHORIZED", "description", sha_other)
        refused(car, file_get(absent), "E_NOT_FOUND", "repository", absent)
        # Block size, offset, count.
        refused(car, file_get(sha, bs=255), "E_BLOCK_SIZE", "bs")
        refused(car, file_get(sha, bs=131073), "E_BLOCK_SIZE", "bs")
        refused(car, file_get(sha, 20, bs=256), "E_OFFSET", "20")  # 5000 B = 20 blocks
        refused(car, file_get(sha, 2 ** 64 - 1, bs=256), "E_OFFSET", "from")
        refused(car, file_get(sha, 16, 8, bs=256, bitmap=bitmap_of([5], 8)), "E_OFFSET",
                "from 16")
        refused(car, file_get(sha, n=0), "E_BLOCK_COUNT", "n")
        refused(car, file_get(sha, n=65), "E_BLOCK_COUNT", "n")
        refused(car, file_get(sha, n=8, bitmap=b"\x00"), "E_BLOCK_COUNT", "bitmap")
        # Shape and types.
        refused(car, file_get(sha, n=9, bitmap=b"\x01"), "E_BAD_REQUEST", "bitmap")
        refused(car, file_get(sha, n=3, bitmap=b"\x08"), "E_BAD_REQUEST", "bitmap")
        refused(car, file_get(sha, n=3, bitmap="\x01"), "E_BAD_REQUEST", "bitmap")
        refused(car, file_get(sha, bs="16384"), "E_BAD_REQUEST", "bs")
        refused(car, file_get(sha, from_=-1), "E_BAD_REQUEST", "from")
        refused(car, file_get(sha, n=1.0), "E_BAD_REQUEST", "n")
        refused(car, cbor2.dumps({"file": sha, "n": 1}), "E_BAD_REQUEST", "from")
        refused(car, cbor2.dumps({"from": 0, "n": 1}), "E_BAD_REQUEST", "file", "")
        refused(car, file_get(sha.upper()), "E_BAD_REQUEST", "file", "")
        refused(car, file_get(sha[:63]), "E_BAD_REQUEST", "file", "")
        refused(car, file_get(bytes.fromhex(sha)), "E_BAD_REQUEST", "file", "")
        refused(car, cbor2.dumps([sha, 0, 1]), "E_BAD_REQUEST", "map", "")
        # Not CBOR at all: the error topic (SPEC §6, any topic).
        for payload in (b"\xff\xfe garbage", file_get(sha)[:-3], file_get(sha) + b"\x00", b""):
            car.get_blocks(payload)
            e = car.error()
            self.assertEqual(e["err"], "E_BAD_CBOR", (payload, e))
        car.get_blocks(b"\xa1" + cbor2.dumps("x") + b"\x59" + b"\xff" * 2000)
        self.assertEqual(car.error()["err"], "E_TOO_LARGE")
        # Nothing was sent, the refusals are counted, the broker still serves V1.
        self.assertEqual(car.quiet("ota/v1/%s/file/data" % V1), [])
        st = self.file_stats(b)
        self.assertEqual(st["blocks_sent"], 0)
        self.assertEqual(st["refused"], {"E_UNAUTHORIZED": 2, "E_NOT_FOUND": 1,
                                         "E_BLOCK_SIZE": 2, "E_OFFSET": 3, "E_BLOCK_COUNT": 3,
                                         "E_BAD_REQUEST": 12, "E_BAD_CBOR": 4,
                                         "E_TOO_LARGE": 1}, st)
        car.get_blocks(file_get(sha, 0, 1, bs=5000))
        self.assertEqual(car.data()["data"], data)

    def test_queue_limit(self):
        """file_queue_blocks 64: a second request of 64 blocks sent in the same TCP write
        as the first (so read in the next loop pass, before the queue drained) is refused
        with E_RATE_LIMITED on the error topic; what was queued still arrives."""
        data = os.urandom(64 * 256)
        sha = ot.sha256_hex(data)
        b = self.start(grants=[(V1, [sha])], files=[data], file_queue_blocks=64,
                       file_pass_bytes=1024)
        car = self.car(b, V1)
        raw = self.raw(b, V1 + "-raw", username=V1)
        topic = "ota/v1/%s/file/get" % V1
        pkts = b""
        for pid in (1, 2, 3):
            body = ot._mstr(topic) + struct.pack("!H", pid) + ot._varint(0)
            body += file_get(sha, 0, 64, bs=256)
            pkts += b"\x32" + ot._varint(len(body)) + body
        raw.sock.sendall(pkts)
        e, _ = raw.wait_publish("ota/v1/%s/error" % V1)
        e = cbor2.loads(e)
        self.assertEqual(e["err"], "E_RATE_LIMITED", e)
        self.assertIn(sha, e["msg"])
        self.assertIn("64", e["msg"])
        got = 0
        deadline = time.monotonic() + ot.TIMEOUT
        while time.monotonic() < deadline:
            got = sum(1 for r in raw.received if r[0].endswith("/file/data"))
            if got and got % 64 == 0 and self.file_stats(b)["blocks_queued"] == 0:
                break
            raw.sock.settimeout(0.2)
            try:
                raw._dispatch(*raw._read())
            except OSError:
                pass
        st = self.file_stats(b)
        self.assertGreaterEqual(st["refused"].get("E_RATE_LIMITED", 0), 1, st)
        self.assertEqual(st["blocks_sent"], 64 * st["requests"], st)
        self.assertEqual(car.quiet("ota/v1/%s/file/data" % V1), [])  # the raw client's

    # ---------------------------------------------------------------- load and size

    def test_burst_does_not_starve_others(self):
        big = os.urandom(64 * 128 * KIB)
        small = b"small file"
        sha_big, sha_small = ot.sha256_hex(big), ot.sha256_hex(small)
        # The same file four times on one connection: only without per-vehicle pacing
        # (file_vehicle_rate 0), which would refuse the repeats (test_hostile.py).
        b = self.start(grants=[(V1, [sha_big]), (V2, [sha_small])], files=[big, small],
                       file_vehicle_rate=0)
        c1, c2 = self.car(b, V1), self.car(b, V2)
        c3 = self.car(b, V3)
        # V1 asks for 4 x 64 blocks of 128 KiB (32 MiB); V2 asks for its small file and V3
        # for its shadow right after the first burst request.
        for k in range(4):
            c1.get_blocks(file_get(sha_big, 0, 64, bs=128 * KIB), qos=0)
        t_req = time.monotonic()
        c2.get_blocks(file_get(sha_small, 0, 1, bs=256))
        c3.publish("ota/v1/%s/shadow/get" % V3, cbor2.dumps({}))
        m = c2.get("ota/v1/%s/file/data" % V2)
        self.assertEqual(m.cbor()["data"], small)
        t_small = m.t
        t_shadow = c3.get("ota/v1/%s/shadow/state" % V3).t
        for _ in range(4 * 64):
            blk = c1.get("ota/v1/%s/file/data" % V1, timeout=60 * ot.SCALE)
            self.assertEqual(len(blk.cbor()["data"]), 128 * KIB)
        t_burst = blk.t  # when the burst's last block arrived
        st = self.file_stats(b)
        print("\nburst of 32 MiB: small file after %.3f s, shadow after %.3f s, burst done "
              "after %.3f s (%d passes)" % (t_small - t_req, t_shadow - t_req, t_burst - t_req,
                                           st["passes"]), file=sys.stderr)
        self.assertLess(t_small, t_burst, "the small file waited for the whole burst")
        self.assertLess(t_shadow, t_burst, "the shadow/get waited for the whole burst")
        self.assertEqual(st["blocks_sent"], 4 * 64 + 1)
        self.assertGreater(st["passes"], 8, "the burst went out in too few slices")

    def test_1gb_sparse_file(self):
        size = 1 << 30
        tail = os.urandom(3 * MIB + 77)
        self.files = self.tmp / "files"
        self.files.mkdir(parents=True)
        tmp = self.files / "sparse.tmp"
        with open(tmp, "wb") as f:
            f.truncate(size - len(tail))
            f.seek(size - len(tail))
            f.write(tail)
        h = hashlib.sha256()
        zero = bytes(16 * MIB)
        left = size - len(tail)
        while left:
            h.update(zero[:min(left, len(zero))])
            left -= min(left, len(zero))
        h.update(tail)
        sha = h.hexdigest()
        tmp.rename(self.files / sha)
        b = self.start(grants=[(V1, [sha])], file_vehicle_rate=FAST_RATE)
        car = self.car(b, V1)
        rss0 = rss_kib(b.proc.pid)
        bs = 128 * KIB
        count = size // bs
        # The last 192 blocks (24 MiB) in three requests, and one block in the middle.
        for start in (count - 192, count - 128, count - 64):
            car.get_blocks(file_get(sha, start, 64, bs=bs))
            for k in range(64):
                m = car.data(timeout=30 * ot.SCALE)
                i = m["i"]
                self.assertEqual(i, start + k)
                off = i * bs - (size - len(tail))
                want = (bytes(max(0, -off)) + tail[max(0, off):max(0, off + bs)])[:bs]
                self.assertTrue(m["data"] == want, "block %d differs" % i)
        car.get_blocks(file_get(sha, count // 2, 1, bs=bs))
        self.assertEqual(car.data()["data"], bytes(bs))
        car.get_blocks(file_get(sha, count, 1, bs=bs))
        self.assertEqual(car.data()["err"], "E_OFFSET")
        rss1 = rss_kib(b.proc.pid)
        print("\n1 GB sparse file: broker RSS %d KiB -> %d KiB" % (rss0, rss1), file=sys.stderr)
        # Under the sanitizers, freed blocks sit in ASan's quarantine (256 MB by default).
        limit = (320 if ot.PRELOAD else 48) * 1024
        self.assertLess(rss1, rss0 + limit, "the broker grew by %d KiB" % (rss1 - rss0))

    def test_disconnect_drops_queue(self):
        data = os.urandom(256 * 1024)
        sha = ot.sha256_hex(data)
        b = self.start(grants=[(V1, [sha])], files=[data], file_pass_bytes=1024)
        car = self.car(b, V1)
        for k in range(4):
            car.get_blocks(file_get(sha, 64 * k, 64, bs=256), qos=0)
        car.close()
        st = ot.wait_until(lambda: (lambda s: s["blocks_queued"] == 0 and s)(self.file_stats(b)),
                           msg="queue empty")
        self.assertEqual(st["vehicles_queued"], 0)
        self.assertEqual(st["blocks_sent"] + st["blocks_dropped"], 64 * st["requests"], st)
        # The vehicle comes back: served from scratch.
        car = self.car(b, V1)
        car.get_blocks(file_get(sha, 1023, 1, bs=256))
        self.assertEqual(car.data()["data"], data[-256:])


if __name__ == "__main__":
    ot.main()
