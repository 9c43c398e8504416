#!/usr/bin/python3
"""Integration: the adversary run of issue 13 — one vehicle (or whoever holds its
credentials) attacking the broker, the other vehicles and the operators. Each attack of
the issue has its test here, and each fails without the change that closed it:

1. memory: a vehicle asks for blocks of a big file 16 times a second and never reads its
   socket, for 30 s: the broker's RSS grows by less than the documented bound and another
   vehicle's shadow/get stays fast; the pacing is given back on disconnect (a second round
   stays in the same bound). Asking for the same file again and again on one connection
   is refused past its size.
2. keys: a private key file (signing key, KEK) that group or others can read stops the
   start with the chmod that fixes it; keys created at first start are 0600 and logged by
   absolute path; the SQLite file is 0600, the spool 0700.
3. foreign publishes: thousands of publishes on another VIN's topics get the vehicle
   kicked, a bounded number of replies and log lines, and the broker's RSS stays put.
4. client-id takeover with a real password_file: vehicle A with its own credentials and
   B's VIN as client id is refused at CONNECT, B keeps its connection and its replies.
5. $share: a vehicle cannot join $share/<group>/ota/v1/events/#, an operator can.
Plus the operators' configuration of the README: two operator sessions side by side (a
mosquitto_sub on ota/v1/events/# kept running while otactl runs) on the operators' own
listener; on a listener with use_username_as_clientid they kick each other.

Figures (RSS growth, shadow/get latency) are printed; they are measured on a shared
machine and are a safety bound, not a speed test.
"""
import os
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import cbor2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_file_get import grant, rss_kib  # noqa: E402

V1, V2, V3 = ot.vin(1), ot.vin(2), ot.vin(3)
KIB, MIB = 1024, 1024 * 1024
DENIED = 0x87
OTACTL = ot._env_path("OTA_OTACTL", ot._build_dir() / "tools" / "otactl" / "otactl")
MOSQUITTO_SUB = "/usr/bin/mosquitto_sub"
MEMORY_BOUND = 64 * MIB  # docs/security.md "Memory per vehicle": 34 MiB with the defaults
RATE, BURST = 1 * MIB, 4 * MIB  # plugin_opt_file_vehicle_rate, _burst (the defaults)
# The configuration docs/operations.md recommends: nothing dropped (a message Mosquitto
# 2.0.11 drops for a plugin is never freed), 20 messages in flight per client (each in
# flight is held twice: the message and its packet).
RECOMMENDED = ["max_inflight_messages 20", "max_queued_messages 0", "max_queued_bytes 0",
               "set_tcp_nodelay true"]


class RawConn:
    """A vehicle that writes MQTT 5 and reads nothing after its CONNACK (a small receive
    buffer, so the broker's side fills quickly)."""

    def __init__(self, port, client_id, username=None, rcvbuf=4096, password=None):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(ot.TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password else 0)
        body = ot._mstr("MQTT") + bytes([5, flags]) + struct.pack("!H", 60) + ot._varint(0)
        body += ot._mstr(client_id) + (ot._mstr(username) if username is not None else b"")
        body += ot._mstr(password) if password else b""
        self.sock.sendall(bytes([0x10]) + ot._varint(len(body)) + body)
        head = self._recv(2)
        rest = self._recv(head[1])
        if head[0] != 0x20 or rest[1] != 0:
            raise ot.HarnessError("CONNACK refused: %r" % rest)

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ot.HarnessError("connection closed")
            buf += chunk
        return buf

    def publish0(self, topic, payload):
        """A QoS 0 PUBLISH; False once the broker closed the connection."""
        body = ot._mstr(topic) + ot._varint(0) + payload
        try:
            self.sock.sendall(bytes([0x30]) + ot._varint(len(body)) + body)
            return True
        except OSError:
            return False

    def closed_by_broker(self):
        """True when the broker has closed this connection (reads what is pending)."""
        self.sock.setblocking(False)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except BlockingIOError:
            return False
        except OSError:
            return True
        finally:
            self.sock.settimeout(ot.TIMEOUT)

    def close(self):
        self.sock.close()


def sparse_file(path, size):
    """A file of size bytes, mostly a hole, with a random tail; returns its sha256."""
    tail = os.urandom(64 * KIB)
    with open(path, "wb") as f:
        f.truncate(size - len(tail))
        f.seek(size - len(tail))
        f.write(tail)
    return ot.sha256_hex(path.read_bytes())


def p99(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


class ShadowProbe(threading.Thread):
    """Another vehicle asking for its shadow every 50 ms; the latencies in seconds."""

    def __init__(self, car):
        super().__init__(daemon=True)
        self.car, self.lat, self.stop = car, [], threading.Event()

    def run(self):
        topic = "ota/v1/%s/shadow/state" % self.car.vin
        while not self.stop.is_set():
            t0 = time.monotonic()
            self.car.publish("ota/v1/%s/shadow/get" % self.car.vin, b"\xa0")
            self.car.get(topic)
            self.lat.append(time.monotonic() - t0)
            self.stop.wait(0.05)


class HostileTest(ot.OtaTestCase):

    # ------------------------------------------------------------ 1. memory

    def file_broker(self, size, **opts):
        files = self.tmp / "files"
        files.mkdir(parents=True, exist_ok=True)
        tmp = files / "big.tmp"
        sha = sparse_file(tmp, size)
        tmp.rename(files / sha)
        opts.setdefault("vehicle_rate", 20)  # production's request limit
        b = self.broker(file_dir=str(files), extra_conf=RECOMMENDED, **opts)
        b.stop()
        grant(b.db_path, V1, [sha])
        b.start()
        return b, sha

    def flood_file_get(self, b, sha, seconds, blocks, probe_car):
        """V1 asks for 64 blocks of 128 KiB 16 times a second without reading; returns
        the highest RSS growth (bytes) seen and probe_car's shadow/get latencies."""
        base = rss_kib(b.proc.pid) * KIB
        attacker = RawConn(b.port, V1, username=V1)
        probe = ShadowProbe(probe_car)
        probe.start()
        t0 = time.monotonic()
        peak, k, t_end = 0, 0, t0 + seconds
        while time.monotonic() < t_end:
            req = {"file": sha, "bs": 128 * KIB, "from": (k * 64) % blocks, "n": 64}
            attacker.publish0("ota/v1/%s/file/get" % V1, cbor2.dumps(req))
            k += 1
            peak = max(peak, rss_kib(b.proc.pid) * KIB - base)
            time.sleep(1 / 16)
        probe.stop.set()
        probe.join()
        attacker.close()
        self.elapsed = time.monotonic() - t0
        return peak, probe.lat

    def test_non_reading_vehicle_memory_is_bounded(self):
        size = 512 * MIB
        b, sha = self.file_broker(size)
        admin = self.admin(b)
        probe_car = self.vehicle(b, V2, nodelay=True)
        self.assertEqual(probe_car.subscribe("ota/v1/%s/#" % V2), 1)
        peak, lat = self.flood_file_get(b, sha, 30, size // (128 * KIB), probe_car)
        st = admin.stats()["file"]
        print("\nnon-reading vehicle, 30 s: broker RSS +%.1f MiB (bound %d MiB), blocks sent "
              "%d (%.1f MiB), paced %d; other vehicle's shadow/get p50 %.1f ms p99 %.1f ms "
              "max %.1f ms (%d requests)"
              % (peak / MIB, MEMORY_BOUND // MIB, st["blocks_sent"], st["bytes_sent"] / MIB,
                 st["paced"], sorted(lat)[len(lat) // 2] * 1e3, p99(lat) * 1e3,
                 max(lat) * 1e3, len(lat)), file=sys.stderr)
        # The plugin's bound: what it handed the broker for the vehicle (measured in both
        # builds); the broker's RSS (without sanitizers: ASan keeps freed memory in its
        # quarantine, so RSS is no measure of what is live there).
        self.assertLessEqual(st["bytes_sent"], BURST + RATE * (self.elapsed + 1))
        if not ot.PRELOAD:
            self.assertLess(peak, MEMORY_BOUND)
        self.assertGreater(st["paced"], 0, "the vehicle's rate never held a block back")
        # Starvation guard, not a speed test (a loaded CI machine must not fail it): the
        # flood used to hold other vehicles' requests for 0.5 s and more. The 50 ms goal of
        # issue 13 is checked by measurement (printed above; docs/security.md), not here.
        self.assertLess(p99(lat), 0.4 * ot.SCALE, "shadow/get starved by the flood")
        # Released on disconnect: nothing left queued, and a second round reuses the
        # memory instead of adding to it.
        ot.wait_until(lambda: admin.stats()["file"]["vehicles_queued"] == 0,
                      msg="the plugin's queue of the gone vehicle")
        first = rss_kib(b.proc.pid) * KIB
        peak2, _ = self.flood_file_get(b, sha, 10, size // (128 * KIB), probe_car)
        print("second round, 10 s: RSS +%.1f MiB over the first round's end"
              % ((rss_kib(b.proc.pid) * KIB - first) / MIB), file=sys.stderr)
        if not ot.PRELOAD:
            self.assertLess(peak2, MEMORY_BOUND)

    def test_same_file_again_and_again_is_refused(self):
        size = 2 * MIB
        b, sha = self.file_broker(size, file_vehicle_burst=1 * MIB)
        car = self.vehicle(b, V1)
        self.assertEqual(car.subscribe("ota/v1/%s/#" % V1), 1)
        req = cbor2.dumps({"file": sha, "bs": 128 * KIB, "from": 0, "n": 16})
        for _ in range(3):  # 2 MiB each: the size plus the 1 MiB burst allows one
            car.publish("ota/v1/%s/file/get" % V1, req)
        err = car.error()
        self.assertEqual(err["err"], "E_RATE_LIMITED")
        self.assertIn("already sent on this connection", err["msg"])
        car.close()
        again = self.vehicle(b, V1)  # a new connection may fetch it again
        self.assertEqual(again.subscribe("ota/v1/%s/#" % V1), 1)
        again.publish("ota/v1/%s/file/get" % V1, req)
        self.assertEqual(set(again.get("ota/v1/%s/file/data" % V1).cbor()), {"file", "i", "data"})

    # ------------------------------------------------------------ 2. keys and file modes

    def test_keys_created_private_and_logged(self):
        b = self.broker()
        sign, kek = b.dir / "ota-signing.pem", b.dir / "ota-content.kek"
        for path in (sign, kek, b.db_path):
            self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600, path)
        self.assertEqual(stat.S_IMODE(b.spool_dir.stat().st_mode), 0o700)
        log = b.log()
        self.assertIn("created signing key %s " % sign.resolve(), log)
        self.assertIn("created content-key KEK %s " % kek.resolve(), log)
        b.stop()
        b.start()  # existing keys: used, not created again
        self.assertEqual(b.log().count("created signing key"), 1)

    def test_open_private_key_stops_the_start(self):
        for name, mode in (("ota-signing.pem", 0o644), ("ota-content.kek", 0o640),
                           ("ota-content.kek", 0o604)):
            with self.subTest(name=name, mode=oct(mode)):
                b = self.broker(full_stacks=True)  # its second start fails (otatest.Broker)
                b.stop()
                path = b.dir / name
                path.chmod(mode)
                with self.assertRaises(ot.HarnessError):
                    b.start()
                b.proc = None
                self.assertIn("run: chmod 600 %s" % name, b.log())
                path.chmod(0o600)
                b.start()
                b.stop()

    # ------------------------------------------------------------ 3. foreign publishes

    def test_foreign_publisher_is_kicked_quietly(self):
        b = self.broker(vehicle_rate=20, vehicle_burst=200, vehicle_kick_after=200)
        other = self.vehicle(b, V2)
        self.assertEqual(other.subscribe("ota/v1/%s/#" % V2), 1)
        base_rss = rss_kib(b.proc.pid) * KIB
        base_lines = len(b.log_lines())
        attacker = RawConn(b.port, V1, username=V1, rcvbuf=1 << 20)
        payload = cbor2.dumps({"seq": 1, "events": []})
        sent = 0
        for i in range(20000):
            if not attacker.publish0("ota/v1/%s/report" % V2 if i % 2 else
                                     "ota/v1/%s/shadow/update" % V3, payload):
                break
            sent += 1
        ot.wait_until(attacker.closed_by_broker, msg="the foreign publisher kicked")
        attacker.close()
        other.publish("ota/v1/%s/shadow/get" % V2, b"\xa0")
        other.get("ota/v1/%s/shadow/state" % V2)  # served meanwhile and after
        lines = b.log_lines()[base_lines:]
        plugin = [ln for ln in lines if " ota: " in ln]  # Mosquitto's debug lines aside
        ours = [ln for ln in plugin if "E_UNAUTHORIZED from %s" % V1 in ln]
        growth = rss_kib(b.proc.pid) * KIB - base_rss
        print("\nforeign publisher: %d publishes sent before the kick, %d new log lines of the "
              "plugin (%d E_UNAUTHORIZED), %d of Mosquitto's debug log, RSS +%.1f MiB"
              % (sent, len(plugin), len(ours), len(lines) - len(plugin), growth / MIB),
              file=sys.stderr)
        self.assertTrue(any("disconnected %s" % V1 in ln for ln in plugin), plugin[-20:])
        self.assertLessEqual(len(ours), 3, ours)
        self.assertLess(len(plugin), 10, plugin)
        self.assertLess(growth, 32 * MIB)
        self.assertEqual(ot.Db(b.db_path).count_vin(V2), 0)

    def test_foreign_publish_replies_are_throttled(self):
        b = self.broker()  # no request rate limit (the harness's): still one reply a second
        car = self.vehicle(b, V1)
        self.assertEqual(car.subscribe("ota/v1/%s/#" % V1), 1)
        for _ in range(50):
            car.publish("ota/v1/%s/report" % V2, b"\xa0")
        self.assertEqual(car.error()["err"], "E_UNAUTHORIZED")
        self.assertEqual([m for m in car.quiet() if m.topic.endswith("/error")], [])

    # ------------------------------------------------------------ 4. client-id takeover

    def password_broker(self, users):
        pw = self.tmp / "passwd"
        pw.write_text("")
        for user, password in users.items():
            subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True,
                           capture_output=True)
        pw.chmod(0o600)
        return self.broker(auth="broker",
                           extra_conf=["allow_anonymous false", "password_file %s" % pw])

    def test_client_id_takeover_with_password_file(self):
        users = {V1: "pw-a", V2: "pw-b", ot.ADMIN: "pw-ops"}
        b = self.password_broker(users)
        # Without its password, nobody gets in: the password_file still decides.
        for user, password in ((V2, "wrong"), (V2, None), (ot.ADMIN, "wrong"), (None, None)):
            with self.assertRaises(ot.HarnessError, msg=(user, password)):
                RawConn(b.port, "x-%s" % user, username=user, password=password).close()
        victim = self.vehicle(b, V2, username=V2, password="pw-b")
        self.assertEqual(victim.subscribe("ota/v1/%s/#" % V2), 1)
        # A with its own credentials and B's VIN as client id: refused at CONNECT. (Before
        # issue 13 it got in, Mosquitto disconnected B, and B's next notice went to A.)
        with self.assertRaises(ot.HarnessError):
            RawConn(b.port, V2, username=V1, password="pw-a")
        self.assertTrue(b.wait_log(lambda ln: "refused a connection of %s with client id %s"
                                   % (V1, V2) in ln))
        # B kept its connection and receives what is meant for it.
        victim.publish("ota/v1/%s/shadow/get" % V2, b"\xa0")
        victim.get("ota/v1/%s/shadow/state" % V2)
        self.assertTrue(victim.c.is_connected())
        a = self.vehicle(b, V1, username=V1, password="pw-a")  # A as itself: fine
        self.assertEqual(a.subscribe("ota/v1/%s/#" % V1), 1)
        admin = self.admin(b, password="pw-ops")
        self.assertIn("data", admin.command("getStats"))

    # ------------------------------------------------------------ 5. $share

    def test_shared_subscriptions_judged_by_their_filter(self):
        b = self.broker()
        car = self.vehicle(b, V1)
        for f in ("$share/ops/ota/v1/events/#", "$share/ops/ota/v1/%s/#" % V2,
                  "$share/x/$CONTROL/ota/v1/response"):
            self.assertEqual(car.subscribe(f), DENIED, f)
        self.assertEqual(car.subscribe("$share/mine/ota/v1/%s/#" % V1), 1)
        ops = self.admin(b)
        self.assertEqual(ops.subscribe("$share/ops/ota/v1/events/#"), 1)
        car.report(1, [ot.ev_status(status="failed", error="upgrade_failed")])
        ops.get("ota/v1/events/status/%s" % V1)

    # ------------------------------------------------------------ operators side by side

    def run_otactl(self, port, *args):
        p = subprocess.run([str(OTACTL), "-p", str(port), "-u", ot.ADMIN, *args],
                           capture_output=True, text=True, timeout=30 * ot.SCALE)
        self.assertEqual(p.returncode, 0, p.stderr)
        return p.stdout

    def watcher(self, port):
        """mosquitto_sub of the operator on ota/v1/events/#, kept running."""
        out = open(self.tmp / ("sub-%d.out" % port), "w+")
        p = subprocess.Popen([MOSQUITTO_SUB, "-p", str(port), "-u", ot.ADMIN, "-V", "5",
                              "-t", "ota/v1/events/#", "-v"], stdout=out,
                             stderr=subprocess.STDOUT)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait(), out.close()))
        return p, out

    def test_two_operator_sessions_side_by_side(self):
        if not Path(OTACTL).exists():
            self.skipTest("otactl not built")
        ops_port = ot.free_port()
        # Vehicles' listener: client id forced to the username; operators' own listener
        # without it (README "Configuration").
        b = self.broker(extra_conf=["use_username_as_clientid true",
                                    "listener %d 127.0.0.1" % ops_port])
        sub, out = self.watcher(ops_port)
        car = self.vehicle(b, V1, username=V1)
        b.wait_log(lambda ln: "u'%s'" % ot.ADMIN in ln, msg="the watcher connected")
        b.wait_log(lambda ln: "SUBSCRIBE" in ln or "ota/v1/events/#" in ln,
                   msg="the watcher subscribed")
        for _ in range(3):
            self.assertIn("vehicles", self.run_otactl(ops_port, "stats"))
        car.report(1, [ot.ev_status(status="failed", error="upgrade_failed")])
        ot.wait_until(lambda: "ota/v1/events/status/%s" % V1 in
                      Path(out.name).read_text(), msg="the watcher got the event")
        self.assertIsNone(sub.poll(), "the operator's watcher was disconnected")
        # The same on the vehicles' listener: every otactl run takes the watcher's client
        # id (the username) and Mosquitto disconnects the watcher.
        sub2, out2 = self.watcher(b.port)
        ot.wait_until(lambda: b.log().count("u'%s'" % ot.ADMIN) >= 2,
                      msg="the second watcher connected")
        # (otactl itself may lose: the watcher reconnects and takes the id back, if otactl
        # has not finished by then on a busy machine; the takeover is what is checked.)
        subprocess.run([str(OTACTL), "-p", str(b.port), "-u", ot.ADMIN, "stats"],
                       capture_output=True, timeout=30 * ot.SCALE)
        ot.wait_until(lambda: "already connected" in b.log() or sub2.poll() is not None,
                      msg="the watcher on the vehicles' listener was taken over")


if __name__ == "__main__":
    ot.main()
