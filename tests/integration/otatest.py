"""otatest — the integration-test harness of mosquitto-ota.

Starts a real mosquitto with the plugin on a free loopback port and talks to it with
independent clients: paho-mqtt (MQTT 5 and 3.1.1), a tiny raw-socket MQTT 5 client (paho
1.6.1 hides PUBACK reason codes), Debian's mosquitto_pub/mosquitto_sub, and the project's
ota-fleet tool. Results are checked in the plugin's SQLite database and in its operator
API (getStats).

Environment (set by ctest, see CMakeLists.txt; defaults let a script run alone):
  OTA_PLUGIN          mosquitto_ota.so
  OTA_DEDUPE_PLUGIN   mosquitto_ota_dedupe.so, the events broker's (default: beside OTA_PLUGIN)
  OTA_TEST_NO_DEDUPE=1  events brokers without it (shows the exactly-once checks fail)
  OTA_MOSQUITTO       the broker binary (default: mosquitto on PATH or /usr/sbin)
  OTA_FLEET           the ota-fleet tool
  OTA_BROKER_PRELOAD  sanitizer runtimes to LD_PRELOAD into the uninstrumented broker
  OTA_TEST_TMP        where each test gets its own fresh directory
  OTA_BUILD_DIR       (standalone runs) the build directory whose ctest environment to
                      use (default: <repo>/build)
  OTA_KEEP_TMP=1      keep the directories of passing tests too
  OTA_TIMEOUT_SCALE   multiply every timeout (default 1, or 3 under the sanitizers)
  OTA_ASAN_FULL_STACKS=1  every broker with full allocation stacks (see Broker)

Design: one broker per test in a fresh temporary directory (config, log, SQLite database,
spool, sanitizer logs). A broker that is still running when the test ends is stopped with
SIGTERM; a non-zero exit status or a sanitizer report in any of its logs fails the test.
Waiting is done by polling a condition (wait_until); only "nothing arrives" checks wait a
fixed, short time (QUIET).

MongoDB: OtaTestCase.mongo_peer() starts the wire-protocol test double
(tests/mongo_peer, stopped at the end of the test); a broker gets it as its store with
broker(store=peer.uri()). MongoDb reads the stored events back through pymongo with the
same methods as Db. OTA_TEST_MONGODB_URI (a real server, e.g. mongodb://host/) lets
tests marked with real_mongodb_uri() run there too; they are skipped, saying so,
otherwise.

Operator API helpers: Admin.command (one command, its response object), Admin.upload
(a file in CBOR chunks on $CONTROL/ota/v1/file, with a small window of chunks in flight).
"""

import glob
import hashlib
import itertools
import json
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

import cbor2
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "mongo_peer"))
from peer_proc import Peer  # noqa: E402
LSAN_SUPP = REPO / "tests" / "lsan.supp"


def _build_dir():
    cands = [os.environ.get("OTA_BUILD_DIR"), REPO / "build"]
    for c in cands:
        if c and (Path(c) / "CMakeCache.txt").exists():
            return Path(c)
    return REPO / "build"


def _ctest_env():
    """Run alone (not by ctest), take the environment ctest would pass from the build
    directory's generated CTestTestfile.cmake; variables already set win."""
    if os.environ.get("OTA_PLUGIN"):
        return
    f = _build_dir() / "tests" / "integration" / "CTestTestfile.cmake"
    try:
        text = f.read_text()
    except OSError:
        return
    m = re.search(r'ENVIRONMENT "([^"]*)"', text)
    for item in (m.group(1).split(";") if m else []):
        k, _, v = item.partition("=")
        os.environ.setdefault(k, v)


_ctest_env()


def _env_path(name, default):
    v = os.environ.get(name)
    return v if v else str(default)


PLUGIN = _env_path("OTA_PLUGIN", _build_dir() / "plugin" / "mosquitto_ota.so")
MOSQUITTO = _env_path("OTA_MOSQUITTO", shutil.which("mosquitto") or "/usr/sbin/mosquitto")
FLEET = _env_path("OTA_FLEET", _build_dir() / "tools" / "ota-fleet" / "ota-fleet")
PRELOAD = os.environ.get("OTA_BROKER_PRELOAD", "")
TEST_TMP = _env_path("OTA_TEST_TMP", _build_dir() / "test-tmp")
SCALE = float(os.environ.get("OTA_TIMEOUT_SCALE") or (3 if PRELOAD else 1))
TIMEOUT = 10 * SCALE  # default wait for anything that should happen
QUIET = 0.7  # how long "nothing arrives" checks listen
DEDUPE_PLUGIN = _env_path("OTA_DEDUPE_PLUGIN", Path(PLUGIN).parent / "mosquitto_ota_dedupe.so")


def dedupe_conf(window=65536, state_file=None):
    """The events broker's configuration lines for mosquitto_ota_dedupe.so, as
    scripts/events-broker-conf.sh prints them (docs/events.md "Deduplication on the events
    broker"); no state file unless given; none with OTA_TEST_NO_DEDUPE=1."""
    if os.environ.get("OTA_TEST_NO_DEDUPE") == "1":
        return []
    if not Path(DEDUPE_PLUGIN).exists():
        raise HarnessError("dedupe plugin not found: %s (set OTA_DEDUPE_PLUGIN)" % DEDUPE_PLUGIN)
    env = dict(os.environ, OTA_DEDUPE_PLUGIN=str(DEDUPE_PLUGIN), OTA_DEDUPE_WINDOW=str(window))
    out = subprocess.run([str(REPO / "scripts" / "events-broker-conf.sh"), str(state_file)],
                         env=env, capture_output=True, text=True, check=True).stdout
    lines = [x for x in out.splitlines() if x and not x.startswith("#")]
    return [x for x in lines if state_file or not x.startswith("plugin_opt_state_file")]

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

ADMIN = "admin"
TS0 = 1_700_000_000_000  # a plausible event time (ms since the Unix epoch)

TABLES = {
    "download_progress": "ota_vehicle_download_progress",
    "upgrade_progress": "ota_vehicle_upgrade_progress",
    "upgrade_status": "ota_vehicle_upgrade_status",
    "command": "ota_vehicle_upgrade_command",
    "eeprom_clear": "ota_vehicle_eeprom_clear",
}


class HarnessError(AssertionError):
    pass


def now_ms():
    return int(time.time() * 1000)


def wait_until(fn, timeout=None, interval=0.02, msg=None):
    """Polls fn() until it returns something truthy; returns that value, or raises
    HarnessError (an AssertionError, so the test fails) after timeout seconds."""
    deadline = time.monotonic() + (TIMEOUT if timeout is None else timeout)
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise HarnessError("timed out waiting for %s (last value %r)" % (msg or fn, last))
        time.sleep(interval)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vin(i, prefix="LSVTA"):
    """The i-th test VIN: prefix + zero-padded index, 17 characters (as ota-fleet does)."""
    v = "%s%0*d" % (prefix, 17 - len(prefix), i)
    assert len(v) == 17, v
    return v


# ---------------------------------------------------------------------------------------
# CBOR reports


def ev_download(task="T-1", ts=TS0, pct=50, ecu="BMS", nbytes=4096):
    e = {"type": "download_progress", "task": task, "ts": ts, "pct": pct}
    if ecu is not None:
        e["ecu"] = ecu
    if nbytes is not None:
        e["bytes"] = nbytes
    return e


def ev_upgrade_progress(task="T-1", ts=TS0, ecu="VCU", pct=30, step="flashing"):
    e = {"type": "upgrade_progress", "task": task, "ts": ts, "ecu": ecu, "pct": pct}
    if step is not None:
        e["step"] = step
    return e


def ev_status(task="T-1", ts=TS0, status="failed", trigger="normal", error=None, fw=None):
    e = {"type": "upgrade_status", "task": task, "ts": ts, "status": status, "trigger": trigger}
    if error is not None:
        e["error"] = error
    if fw is not None:
        e["fw"] = fw
    return e


def ev_command(task="T-1", ts=TS0, cmd="now", at=None):
    e = {"type": "command", "task": task, "ts": ts, "cmd": cmd}
    if at is not None:
        e["at"] = at
    return e


def ev_eeprom(task="T-1", ts=TS0, ecu="BCM", result="ok"):
    return {"type": "eeprom_clear", "task": task, "ts": ts, "ecu": ecu, "result": result}


def all_types_events(task="T-1", ts=TS0):
    """One event of every type, every optional field set."""
    return [
        ev_download(task, ts, pct=42, ecu="BMS", nbytes=123456),
        ev_upgrade_progress(task, ts + 1, ecu="VCU", pct=77, step="verify image"),
        ev_status(task, ts + 2, status="failed", trigger="forced", error="upgrade_failed",
                  fw="2.3.4"),
        ev_command(task, ts + 3, cmd="schedule", at=ts + 3_600_000),
        ev_eeprom(task, ts + 4, ecu="BCM", result="cleared"),
    ]


def report(seq, events):
    return cbor2.dumps({"seq": seq, "events": events})


def report_topic(v):
    return "ota/v1/%s/report" % v


def error_topic(v):
    return "ota/v1/%s/error" % v


# ---------------------------------------------------------------------------------------
# File uploads ($CONTROL/ota/v1/file)

UPLOAD_CHUNK = 1 << 20  # the largest data a chunk may carry


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def upload_chunk(sha256, offset, total, data):
    """One CBOR upload chunk {sha256, offset, total, data}."""
    return cbor2.dumps({"sha256": sha256, "offset": offset, "total": total, "data": data})


# ---------------------------------------------------------------------------------------
# Broker


class Broker:
    """A mosquitto with the plugin, in its own directory, on a free loopback port.

    Under the sanitizers, allocation stacks are taken with ASan's fast unwinder (frame
    pointers), a fifth of the broker's CPU of the slow one, which stops at the first frame
    of Debian's mosquitto (built without frame pointers): detection is the same, but the
    suppressions of mosquitto's own leaks (tests/lsan.supp) name mosquitto functions and
    only match full stacks. A broker that meets those leaks needs full_stacks=True (the
    slow unwinder): one that ota-fleet talks to (it subscribes again before leaving:
    sub__add), one whose start is meant to fail (config__parse_args, plugin__load_v5).
    fleet_cmd() checks the first; a forgotten second fails with a hint."""

    def __init__(self, tmpdir, admin_users=ADMIN, extra_conf=(), plugin=True,
                 log_types=("all",), start=True, detect_leaks=True, full_stacks=False,
                 **plugin_opts):
        self.dir = Path(tmpdir)
        self.detect_leaks = detect_leaks
        self.full_stacks = full_stacks or bool(os.environ.get("OTA_ASAN_FULL_STACKS"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.db_path = self.dir / "ota.db"
        self.spool_dir = self.dir / "spool"
        self.log_path = self.dir / "broker.log"
        self.conf_path = self.dir / "mosquitto.conf"
        self.stderr_path = self.dir / "broker.stderr"
        opts = {"store": "sqlite:%s" % self.db_path, "spool_dir": str(self.spool_dir)}
        if admin_users is not None:
            opts["admin_users"] = admin_users
        # Tests drive vehicles far faster than real ones: no request rate limit unless a
        # test sets one (test_security.py does).
        opts["vehicle_rate"] = 0
        # No password_file here: usernames are taken as given (a test of the default,
        # Mosquitto's own authentication, passes auth="broker").
        opts["auth"] = "none"
        # Most tests report from VINs they never registered (they test ingestion, not the
        # catalog): the behaviour before issue 13. test_reports_quarantine.py sets 0, the
        # default of the plugin.
        opts["accept_unknown_vins"] = 1
        opts.update(plugin_opts)
        self.plugin_opts = opts
        self._write_conf(plugin, list(extra_conf), log_types)
        self.proc = None
        self.starts = 0
        if start:
            self.start()

    def _write_conf(self, plugin, extra_conf, log_types):
        lines = [
            "listener %d 127.0.0.1" % self.port,
            "allow_anonymous true",
            "persistence false",
            "log_dest file %s" % self.log_path,
            *["log_type %s" % t for t in log_types],
            "log_timestamp true",
            "max_inflight_messages 1000",
            "max_queued_messages 100000",
            "user %s" % pwd.getpwuid(os.getuid()).pw_name,
        ]
        lines += extra_conf
        if plugin:
            if not Path(PLUGIN).exists():
                raise HarnessError("plugin not found: %s (set OTA_PLUGIN)" % PLUGIN)
            lines.append("plugin %s" % PLUGIN)
            for k, v in self.plugin_opts.items():
                if v is not None:
                    lines.append("plugin_opt_%s %s" % (k, v))
        self.conf_path.write_text("\n".join(lines) + "\n")

    def _env(self):
        env = dict(os.environ)
        if PRELOAD:
            env["LD_PRELOAD"] = PRELOAD
        san = "log_path=%s" % (self.dir / "sanitizer")
        env["ASAN_OPTIONS"] = ("abort_on_error=0:detect_leaks=%d:fast_unwind_on_malloc=%d:"
                               "malloc_context_size=40:%s" % (self.detect_leaks,
                                                              not self.full_stacks, san))
        env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % LSAN_SUPP
        env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1:" + san
        return env

    def start(self):
        assert self.proc is None, "broker already running"
        self.starts += 1
        err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf_path)], cwd=self.dir,
                                     env=self._env(), stdout=err, stderr=err,
                                     stdin=subprocess.DEVNULL)
        err.close()
        deadline = time.monotonic() + TIMEOUT
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise HarnessError("broker exited with %s during start-up\n%s" %
                                   (rc, self.tail()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if self._handles_sigterm():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill9()
                raise HarnessError("broker did not accept connections\n%s" % self.tail())
            time.sleep(0.02)

    def _handles_sigterm(self):
        """True once mosquitto has its SIGTERM handler: it sets it up after opening its
        listeners, and a SIGTERM in between (a test that stops it at once, on a busy
        machine) would kill it (status -15) instead of stopping it cleanly."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("SigCgt:"):
                        return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
        except OSError:
            pass
        return False

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, check=True):
        """SIGTERM, wait; fails on a non-zero exit status or a sanitizer report."""
        if self.proc is None:
            if check:
                self.check_sanitizers()
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30 * SCALE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise HarnessError("broker did not stop within %ds of SIGTERM\n%s" %
                               (30 * SCALE, self.tail()))
        if check:
            self.check_sanitizers()
            if rc != 0:
                raise HarnessError("broker exited with status %s\n%s" % (rc, self.tail()))

    def kill9(self):
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        proc.kill()
        proc.wait()

    def restart(self):
        """Clean stop (checked) and start on the same port, config and directories."""
        self.stop()
        self.start()

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self):
        return self.log().splitlines()

    def wait_log(self, pred, timeout=None, msg=None):
        """Waits for a log line for which pred(line) is true; returns it."""
        def find():
            for line in self.log_lines():
                if pred(line):
                    return line
            return None
        return wait_until(find, timeout, msg=msg or "a broker log line")

    def tail(self, n=40):
        out = ["--- %s (last %d lines)" % (self.log_path, n)] + self.log_lines()[-n:]
        for f in [self.stderr_path] + self.sanitizer_files():
            try:
                text = Path(f).read_text(errors="replace")
            except FileNotFoundError:
                continue
            if text.strip():
                out += ["--- %s" % f] + text.splitlines()[-n:]
        return "\n".join(out)

    def sanitizer_files(self):
        return sorted(glob.glob(str(self.dir / "sanitizer*")))

    def check_sanitizers(self):
        for f in [self.log_path, self.stderr_path] + [Path(p) for p in self.sanitizer_files()]:
            try:
                text = Path(f).read_text(errors="replace")
            except FileNotFoundError:
                continue
            for marker in SANITIZER_MARKERS:
                if marker in text:
                    hint = ""
                    if marker == "LeakSanitizer" and not self.full_stacks:
                        hint = ("\n(fast allocation stacks: if all frames are mosquitto's, this "
                                "may be a leak of mosquitto that tests/lsan.supp suppresses, "
                                "seen only with full_stacks=True; see otatest.Broker)")
                    raise HarnessError("sanitizer report (%r) in %s:\n%s%s" %
                                       (marker, f, text[-6000:], hint))


# ---------------------------------------------------------------------------------------
# TLS with client certificates (scripts/make-test-certs.sh, docs/security.md)


def make_certs(outdir, *vins):
    """A test PKI in outdir (CA, server, vehicle-<VIN>, operator, rogue-<first VIN>)."""
    subprocess.run(["bash", str(REPO / "scripts" / "make-test-certs.sh"), str(outdir), *vins],
                   check=True, capture_output=True, timeout=60)
    return Path(outdir)


def tls_listener(certs, port):
    """Config lines of a TLS listener where the client certificate is the identity: its CN
    becomes the username (so the VIN), and the client id too (no session takeover)."""
    certs = Path(certs)
    return ["listener %d 127.0.0.1" % port,
            "cafile %s" % (certs / "ca.crt"),
            "certfile %s" % (certs / "server.crt"),
            "keyfile %s" % (certs / "server.key"),
            "require_certificate true",
            "use_identity_as_username true",
            "use_username_as_clientid true"]


def tls_files(certs, name):
    """(CA, certificate, key) for a client: name is "vehicle-<VIN>", "operator", ..."""
    certs = Path(certs)
    return (certs / "ca.crt", certs / ("%s.crt" % name), certs / ("%s.key" % name))


# ---------------------------------------------------------------------------------------
# paho clients


class Msg:
    def __init__(self, m):
        self.t = time.monotonic()  # when it arrived (made in the client's network thread)
        self.topic = m.topic
        self.payload = m.payload
        self.qos = m.qos
        self.retain = m.retain
        self.properties = getattr(m, "properties", None)

    def cbor(self):
        return cbor2.loads(self.payload)

    def json(self):
        return json.loads(self.payload)

    def prop(self, name):
        return getattr(self.properties, name, None) if self.properties else None

    def __repr__(self):
        return "Msg(%r, %r)" % (self.topic, self.payload[:200])


class Client:
    """A paho client (MQTT 5 by default) that records every message it receives."""

    def __init__(self, broker, client_id, username=None, mqtt5=True, nodelay=False, tls=None,
                 port=None, connect_timeout=None, password=None):
        self.broker = broker
        self.client_id = client_id
        self.mqtt5 = mqtt5
        self.nodelay = nodelay  # TCP_NODELAY: no Nagle delay between request round trips
        proto = mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311
        self.c = mqtt.Client(client_id=client_id, protocol=proto,
                             clean_session=None if mqtt5 else True)
        if username is not None:
            self.c.username_pw_set(username, password)
        self.c.max_inflight_messages_set(1000)
        self._cv = threading.Condition()
        self.messages = []
        self._subacks = {}
        self._conn_rc = None
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        if tls is not None:  # (CA file, certificate file, key file): see tls_listener
            self.c.tls_set(ca_certs=str(tls[0]), certfile=tls[1] and str(tls[1]),
                           keyfile=tls[2] and str(tls[2]))
        port = port or broker.port
        if mqtt5:
            self.c.connect("127.0.0.1", port, 60, clean_start=True)
        else:
            self.c.connect("127.0.0.1", port, 60)
        self.c.loop_start()
        rc = wait_until(lambda: self._conn_rc is not None and [self._conn_rc],
                        timeout=connect_timeout or TIMEOUT, msg="CONNACK for %s" % client_id)[0]
        if rc != 0:
            raise HarnessError("%s: connect refused (%s)" % (client_id, rc))

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        if self.nodelay and client.socket() is not None:
            client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._cv:
            self._conn_rc = rc.value if hasattr(rc, "value") else rc
            self._cv.notify_all()

    def _on_message(self, client, userdata, m):
        with self._cv:
            self.messages.append(Msg(m))
            self._cv.notify_all()

    def _on_subscribe(self, client, userdata, mid, codes, properties=None):
        with self._cv:
            self._subacks[mid] = [c.value if hasattr(c, "value") else c for c in codes]
            self._cv.notify_all()

    def subscribe(self, topic, qos=1):
        """Returns the SUBACK code (granted QoS, or >= 0x80 on failure)."""
        rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        with self._cv:
            if not self._cv.wait_for(lambda: mid in self._subacks, TIMEOUT):
                raise HarnessError("no SUBACK for %s" % topic)
            return self._subacks.pop(mid)[0]

    def publish(self, topic, payload, qos=1, properties=None, retain=False):
        """Publishes and, for QoS > 0, waits for the broker's acknowledgement."""
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if qos:
            info.wait_for_publish(TIMEOUT)
            if not info.is_published():
                raise HarnessError("%s: no PUBACK for %s" % (self.client_id, topic))
        return info

    def report(self, seq, events, vin_=None):
        return self.publish(report_topic(vin_ or self.client_id), report(seq, events))

    def _take(self, pred):
        for i, m in enumerate(self.messages):
            if pred(m):
                return self.messages.pop(i)
        return None

    def get(self, topic=None, timeout=None, pred=None):
        """Removes and returns the first received message on topic (a filter) that
        satisfies pred, waiting for it."""
        def match(m):
            if topic is not None and not mqtt.topic_matches_sub(topic, m.topic):
                return False
            return pred is None or pred(m)
        with self._cv:
            found = []
            ok = self._cv.wait_for(lambda: found.append(self._take(match)) or found[-1],
                                   TIMEOUT if timeout is None else timeout)
            if not ok:
                raise HarnessError("%s: no message on %s; got %r" %
                                   (self.client_id, topic, self.messages))
            return found[-1]

    def received(self, topic="#"):
        with self._cv:
            return [m for m in self.messages if mqtt.topic_matches_sub(topic, m.topic)]

    def quiet(self, topic="#", wait=QUIET):
        """Waits a bounded time and returns what arrived on topic (should be [])."""
        time.sleep(wait)
        return self.received(topic)

    def clear(self):
        with self._cv:
            self.messages.clear()

    def close(self):
        try:
            self.c.disconnect()
        finally:
            self.c.loop_stop()


def props(response_topic=None, correlation=None, content_type=None):
    p = Properties(PacketTypes.PUBLISH)
    if response_topic is not None:
        p.ResponseTopic = response_topic
    if correlation is not None:
        p.CorrelationData = correlation
    if content_type is not None:
        p.ContentType = content_type
    return p


class Vehicle(Client):
    def __init__(self, broker, vin_, mqtt5=True, username=None, **kw):
        super().__init__(broker, vin_, username=username, mqtt5=mqtt5, **kw)
        self.vin = username or vin_

    def error(self, timeout=None):
        """The next CBOR error reply on this vehicle's error topic."""
        return self.get(error_topic(self.vin), timeout).cbor()


class Admin(Client):
    """An operator (username admin): operator API and downstream events."""

    RESPONSE = "$CONTROL/ota/v1/response"

    _ids = itertools.count(1)

    def __init__(self, broker, client_id=None, username=ADMIN, mqtt5=True,
                 nodelay=False, **kw):
        # A client id of its own: two operator clients with one id would kick each other,
        # and an old client reconnecting after a broker restart would take over the new one.
        client_id = client_id or "admin-test-%d-%d" % (os.getpid(), next(Admin._ids))
        super().__init__(broker, client_id, username=username, mqtt5=mqtt5, nodelay=nodelay,
                         **kw)
        self.response_suback = self.subscribe(self.RESPONSE)

    def control_raw(self, payload, timeout=None):
        with self._cv:
            self.messages = [m for m in self.messages if m.topic != self.RESPONSE]
        self.publish("$CONTROL/ota/v1", payload)
        return self.get(self.RESPONSE, timeout).json()

    def control(self, commands, timeout=None):
        return self.control_raw(json.dumps({"commands": commands}), timeout)

    def command(self, command, timeout=None, **fields):
        """Sends a request of one command; returns its response object
        ({command, data | error, correlationData?})."""
        cmd = {"command": command}
        cmd.update(fields)
        r = self.control([cmd], timeout)
        rs = r.get("responses") if isinstance(r, dict) else None
        if not isinstance(rs, list) or len(rs) != 1:
            raise HarnessError("expected one response to %s, got %r" % (command, r))
        return rs[0]

    FILE = "$CONTROL/ota/v1/file"

    def _drop_responses(self):
        with self._cv:
            self.messages = [m for m in self.messages if m.topic != self.RESPONSE]

    def upload_response(self, timeout=None):
        """The next response message, which must hold one `upload` response; returns it."""
        r = self.get(self.RESPONSE, timeout).json()
        rs = r.get("responses") if isinstance(r, dict) else None
        if not isinstance(rs, list) or len(rs) != 1 or rs[0].get("command") != "upload":
            raise HarnessError("expected one upload response, got %r" % r)
        return rs[0]

    def upload_raw(self, payload, timeout=None):
        """Publishes payload on $CONTROL/ota/v1/file; returns the upload response."""
        self._drop_responses()
        self.publish(self.FILE, payload)
        return self.upload_response(timeout)

    def upload(self, data, sha256=None, start=0, end=None, chunk=UPLOAD_CHUNK, window=4,
               timeout=None):
        """Uploads data[start:end] as chunks of `chunk` bytes (offsets and total from the
        whole of data) named sha256 (default: data's own hash), with at most `window`
        chunks unanswered. Returns the upload responses, one per chunk, in order."""
        sha256 = sha256 or sha256_hex(data)
        end = len(data) if end is None else end
        self._drop_responses()
        out, sent = [], 0
        for off in range(start, end, chunk):
            piece = data[off:min(off + chunk, end)]
            self.publish(self.FILE, upload_chunk(sha256, off, len(data), piece))
            sent += 1
            if sent - len(out) >= window:
                out.append(self.upload_response(timeout))
        while len(out) < sent:
            out.append(self.upload_response(timeout))
        return out

    def stats(self):
        r = self.control([{"command": "getStats"}])
        resp = r["responses"][0]
        if resp.get("command") != "getStats" or "data" not in resp:
            raise HarnessError("bad getStats response: %r" % r)
        return resp["data"]

    def wait_drained(self, timeout=None, baseline=None):
        """Waits until the writer has shipped the whole spool to the store: backlog_bytes
        is 0, every event accepted since baseline (a getStats result; default: since the
        broker started) has been stored or counted as a duplicate, and the broker thread
        has taken every stored report's results (its counters are final). Returns the
        stats."""
        base = baseline or {"events_accepted": 0, "writer": {"events_stored": 0,
                                                             "duplicates": 0}}

        def shipped(s):
            return s["writer"]["events_stored"] + s["writer"]["duplicates"]

        def drained():
            s = self.stats()
            if s["writer"]["backlog_bytes"] != 0 or s["writer"].get("results_waiting"):
                return None
            if shipped(s) - shipped(base) < s["events_accepted"] - base["events_accepted"]:
                return None
            return s
        return wait_until(drained, timeout, interval=0.05, msg="writer drained")


# ---------------------------------------------------------------------------------------
# Raw MQTT 5 client (for PUBACK reason codes)


def _varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _mstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def mqtt5_props(response_topic=None, correlation=None, content_type=None):
    out = b""
    if content_type is not None:
        out += b"\x03" + _mstr(content_type)
    if response_topic is not None:
        out += b"\x08" + _mstr(response_topic)
    if correlation is not None:
        out += b"\x09" + _mstr(correlation)
    return out


class RawMqtt5:
    """Just enough MQTT 5 to CONNECT, PUBLISH QoS 1 with properties, read the PUBACK
    reason code, and take in (and acknowledge) what the broker sends meanwhile."""

    # Property id -> wire type, for the properties a broker may put on a PUBLISH.
    _PROP_TYPES = {0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin",
                   0x0B: "varint", 0x23: "u16", 0x26: "pair"}

    def __init__(self, broker, client_id, username=None):
        self.sock = socket.create_connection(("127.0.0.1", broker.port), timeout=TIMEOUT)
        self.next_id = 1
        self.received = []  # (topic, payload, {prop id: value})
        flags = 0x02 | (0x80 if username is not None else 0)
        body = _mstr("MQTT") + bytes([5, flags]) + struct.pack("!H", 60) + _varint(0)
        body += _mstr(client_id) + (_mstr(username) if username is not None else b"")
        self._send(0x10, body)
        ptype, body = self._read()
        if ptype != 0x20 or len(body) < 2 or body[1] != 0:
            raise HarnessError("raw CONNECT refused: %02x %r" % (ptype, body))

    def _send(self, first, body):
        self.sock.sendall(bytes([first]) + _varint(len(body)) + body)

    def _recv(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise HarnessError("raw client: connection closed by broker")
            buf += chunk
        return buf

    def _read(self):
        first = self._recv(1)[0]
        length, shift = 0, 0
        while True:
            b = self._recv(1)[0]
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        return first, self._recv(length)

    @staticmethod
    def _read_varint(buf, i):
        n, shift = 0, 0
        while True:
            b = buf[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n, i

    def _parse_props(self, buf):
        out, i = {}, 0
        while i < len(buf):
            pid, kind = buf[i], self._PROP_TYPES.get(buf[i])
            i += 1
            if kind == "byte":
                out[pid], i = buf[i], i + 1
            elif kind == "u16":
                out[pid], i = struct.unpack_from("!H", buf, i)[0], i + 2
            elif kind == "u32":
                out[pid], i = struct.unpack_from("!I", buf, i)[0], i + 4
            elif kind == "varint":
                out[pid], i = self._read_varint(buf, i)
            elif kind in ("str", "bin"):
                n = struct.unpack_from("!H", buf, i)[0]
                v = bytes(buf[i + 2:i + 2 + n])
                out[pid], i = (v.decode() if kind == "str" else v), i + 2 + n
            elif kind == "pair":
                for _ in range(2):
                    i += 2 + struct.unpack_from("!H", buf, i)[0]
            else:
                raise HarnessError("raw client: unexpected property 0x%02x" % pid)
        return out

    def _on_publish(self, first, body):
        qos = (first >> 1) & 3
        n = struct.unpack_from("!H", body, 0)[0]
        topic, i = body[2:2 + n].decode(), 2 + n
        pid = None
        if qos:
            pid, i = struct.unpack_from("!H", body, i)[0], i + 2
        plen, i = self._read_varint(body, i)
        properties = self._parse_props(body[i:i + plen])
        self.received.append((topic, bytes(body[i + plen:]), properties))
        if qos == 1:
            self._send(0x40, struct.pack("!H", pid))
        elif qos == 2:
            self._send(0x50, struct.pack("!H", pid))

    def _dispatch(self, first, body):
        ptype = first >> 4
        if ptype == 3:
            self._on_publish(first, body)
        elif ptype == 6:  # PUBREL -> PUBCOMP
            self._send(0x70, body[:2])
        elif ptype == 14:
            raise HarnessError("raw client: broker sent DISCONNECT %r" % body)

    def publish(self, topic, payload, properties=b"", retain=False):
        """PUBLISH QoS 1; returns the PUBACK reason code (0 when the broker omits it)."""
        pid = self.next_id
        self.next_id += 1
        body = _mstr(topic) + struct.pack("!H", pid) + _varint(len(properties))
        self._send(0x33 if retain else 0x32, body + properties + payload)
        while True:
            first, body = self._read()
            if first >> 4 == 4 and struct.unpack_from("!H", body, 0)[0] == pid:
                return body[2] if len(body) > 2 else 0
            self._dispatch(first, body)

    def subscribe(self, topic, qos=1):
        """SUBSCRIBE one filter; returns its SUBACK reason code."""
        pid = self.next_id
        self.next_id += 1
        self._send(0x82, struct.pack("!H", pid) + _varint(0) + _mstr(topic) + bytes([qos]))
        while True:
            first, body = self._read()
            if first >> 4 == 9 and struct.unpack_from("!H", body, 0)[0] == pid:
                plen, i = self._read_varint(body, 2)
                return body[i + plen]
            self._dispatch(first, body)

    def wait_publish(self, topic, timeout=None):
        """Returns (payload, properties) of the first PUBLISH on topic."""
        deadline = time.monotonic() + (TIMEOUT if timeout is None else timeout)
        while True:
            for r in self.received:
                if r[0] == topic:
                    self.received.remove(r)
                    return r[1], r[2]
            left = deadline - time.monotonic()
            if left <= 0:
                raise HarnessError("raw client: nothing on %s; got %r" % (topic, self.received))
            self.sock.settimeout(left)
            try:
                self._dispatch(*self._read())
            except socket.timeout:
                pass
            finally:
                self.sock.settimeout(TIMEOUT)

    def close(self):
        try:
            self._send(0xE0, b"\x00")
        except OSError:
            pass
        self.sock.close()


# ---------------------------------------------------------------------------------------
# SQLite


class Db:
    """Read-only looks at the plugin's SQLite database (a fresh connection per call)."""

    def __init__(self, path):
        self.path = Path(path)

    def query(self, sql, args=()):
        if not self.path.exists():
            raise HarnessError("database %s does not exist" % self.path)
        con = sqlite3.connect("file:%s?mode=ro" % self.path, uri=True, timeout=10)
        try:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(sql, args)]
        finally:
            con.close()

    def counts(self):
        return {k: self.query("SELECT COUNT(*) AS n FROM %s" % t)[0]["n"]
                for k, t in TABLES.items()}

    def total(self):
        return sum(self.counts().values())

    def rows(self, kind, vin_=None):
        sql = "SELECT * FROM %s" % TABLES[kind]
        if vin_ is None:
            return self.query(sql + " ORDER BY vin, seq, idx")
        return self.query(sql + " WHERE vin = ? ORDER BY seq, idx", (vin_,))

    def union_sql(self):
        return " UNION ALL ".join("SELECT vin, seq, idx FROM %s" % t for t in TABLES.values())

    def count_vin(self, vin_):
        return self.query("SELECT COUNT(*) AS n FROM (%s) WHERE vin = ?" % self.union_sql(),
                          (vin_,))[0]["n"]

    def per_report(self):
        """{(vin, seq): number of stored events}"""
        rows = self.query("SELECT vin, seq, COUNT(*) AS n, COUNT(DISTINCT idx) AS d FROM (%s) "
                          "GROUP BY vin, seq" % self.union_sql())
        for r in rows:
            if r["n"] != r["d"]:
                raise HarnessError("duplicate idx stored for %r" % r)
        return {(r["vin"], r["seq"]): r["n"] for r in rows}

    def unique_keys(self):
        return self.query("SELECT COUNT(*) AS n FROM (SELECT DISTINCT vin, seq, idx FROM (%s))"
                          % self.union_sql())[0]["n"]


# ---------------------------------------------------------------------------------------
# MongoDB (the mongo_peer test double, or a real server)


class MongoDb:
    """The MongoDB store's report events, read back through pymongo (an independent
    driver): the same questions as Db asks SQLite."""

    def __init__(self, uri, db="ota"):
        import pymongo  # only tests that use MongoDB need python3-pymongo
        self.client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=int(5000 * SCALE))
        self.db = self.client[db]

    def close(self):
        self.client.close()

    def keys(self, kind, query=None):
        proj = {"vin": 1, "seq": 1, "idx": 1, "_id": 0}
        return [(d["vin"], d["seq"], d["idx"])
                for d in self.db[TABLES[kind]].find(query or {}, proj)]

    def all_keys(self):
        return [k for kind in TABLES for k in self.keys(kind)]

    def counts(self):
        return {k: self.db.command("count", t)["n"] for k, t in TABLES.items()}

    def total(self):
        return sum(self.counts().values())

    def rows(self, kind, vin_=None):
        q = {} if vin_ is None else {"vin": vin_}
        docs = list(self.db[TABLES[kind]].find(q, {"_id": 0}))
        return sorted(docs, key=lambda d: (d["vin"], d["seq"], d["idx"]))

    def count_vin(self, vin_):
        return sum(self.db.command("count", t, query={"vin": vin_})["n"]
                   for t in TABLES.values())

    def per_report(self):
        """{(vin, seq): number of stored events}; fails on an event stored twice."""
        out, seen = {}, set()
        for k in self.all_keys():
            if k in seen:
                raise HarnessError("event stored twice: %r" % (k,))
            seen.add(k)
            out[k[:2]] = out.get(k[:2], 0) + 1
        return out

    def unique_keys(self):
        return len(set(self.all_keys()))

    def drop(self):
        self.client.drop_database(self.db.name)


def real_mongodb_uri():
    """OTA_TEST_MONGODB_URI (a real MongoDB server), or None; says so on stderr when it
    is not set, so the skip is visible in the test log."""
    uri = os.environ.get("OTA_TEST_MONGODB_URI")
    if not uri:
        print("\nSKIP: OTA_TEST_MONGODB_URI is not set: not running against a real MongoDB",
              file=sys.stderr)
    return uri


def mongo_uri_with_db(uri, db):
    """uri with its database path replaced by db (options kept)."""
    m = re.match(r"^(mongodb(?:\+srv)?://[^/?]*)(?:/[^?]*)?(\?.*)?$", uri)
    if not m:
        raise HarnessError("not a MongoDB URI: %s" % uri)
    return "%s/%s%s" % (m.group(1), db, m.group(2) or "")


# ---------------------------------------------------------------------------------------
# CLI tools


def fleet_cmd(broker, vehicles, reports, events, acked=None, seq_start=None, mqtt_=None,
              inflight=None, extra=()):
    if PRELOAD and not broker.full_stacks:
        raise HarnessError("a broker that ota-fleet talks to needs full_stacks=True: its "
                           "re-subscribe leaks in mosquitto (sub__add, tests/lsan.supp)")
    cmd = [FLEET, "--host", "127.0.0.1", "--port", str(broker.port), "--vehicles",
           str(vehicles), "--reports", str(reports), "--events", str(events), "--json",
           "--quiet"]
    if acked is not None:
        cmd += ["--acked", str(acked)]
    if seq_start is not None:
        cmd += ["--seq-start", str(seq_start)]
    if mqtt_ is not None:
        cmd += ["--mqtt", str(mqtt_)]
    if inflight is not None:
        cmd += ["--inflight", str(inflight)]
    return cmd + list(extra)


def start_fleet(broker, *args, **kw):
    if not Path(FLEET).exists():
        raise HarnessError("ota-fleet not found: %s (set OTA_FLEET)" % FLEET)
    return subprocess.Popen(fleet_cmd(broker, *args, **kw), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish_fleet(proc, timeout=None):
    """Waits for ota-fleet; returns (exit status, parsed --json summary or None, stderr)."""
    try:
        out, err = proc.communicate(timeout=60 * SCALE if timeout is None else timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise HarnessError("ota-fleet did not finish\n%s\n%s" % (out[-2000:], err[-2000:]))
    summary = None
    for line in reversed(out.splitlines()):
        if line.strip().startswith("{"):
            summary = json.loads(line)
            break
    return proc.returncode, summary, err


def run_fleet(broker, *args, **kw):
    return finish_fleet(start_fleet(broker, *args, **kw))


def read_acked(path):
    """The acked file of ota-fleet: [(vin, seq, nevents)] (whole lines only)."""
    out = []
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return out
    for line in text.split("\n")[:-1]:
        v, seq, n = line.split()
        out.append((v, int(seq), int(n)))
    return out


def count_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b"\n")
    except FileNotFoundError:
        return 0


def mosquitto_pub(broker, *args):
    return subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), *args],
                          capture_output=True, timeout=TIMEOUT)


# ---------------------------------------------------------------------------------------
# Test case base


class OtaTestCase(unittest.TestCase):
    """Gives each test a fresh directory and stops (and checks) its brokers at the end.
    asan_full_stacks: the default of full_stacks for the brokers of self.broker()."""

    asan_full_stacks = False

    def setUp(self):
        base = Path(TEST_TMP) / Path(sys.argv[0]).stem
        base.mkdir(parents=True, exist_ok=True)
        name = self.id().split(".", 1)[-1]
        self.tmp = Path(tempfile.mkdtemp(prefix=name + "-", dir=base))
        self._brokers = []
        self._clients = []
        self._peers = []
        self._outcome_ok = True
        self.addCleanup(self._cleanup)

    def broker(self, **kw):
        kw.setdefault("full_stacks", self.asan_full_stacks)
        b = Broker(self.tmp / ("broker%d" % len(self._brokers)), start=False, **kw)
        self._brokers.append(b)
        b.start()
        return b

    def client(self, cls, *args, **kw):
        c = cls(*args, **kw)
        self._clients.append(c)
        return c

    def vehicle(self, broker, vin_, **kw):
        return self.client(Vehicle, broker, vin_, **kw)

    def admin(self, broker, **kw):
        return self.client(Admin, broker, **kw)

    def raw(self, broker, client_id, username=None):
        return self.client(RawMqtt5, broker, client_id, username)

    def mongo_peer(self, name="peer", **kw):
        """A started mongo_peer (journal and command log in this test's directory); it
        is stopped after the brokers at the end of the test."""
        p = Peer(self.tmp / name, **kw)
        self._peers.append(p)
        return p

    def mongo_db(self, uri, db="ota"):
        m = MongoDb(uri, db)
        self.addCleanup(m.close)
        return m

    def _cleanup(self):
        for c in self._clients:
            try:
                c.close()
            except Exception:
                pass
        errors = []
        for b in self._brokers:
            try:
                b.stop()
            except AssertionError as e:
                errors.append(str(e))
        for p in self._peers:
            p.stop()
        if errors:
            raise HarnessError("\n".join(errors))
        if not os.environ.get("OTA_KEEP_TMP") and self._passed():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _passed(self):
        # (outcome.success is reset while cleanups run: look at the result's lists.)
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None:
            return False
        for t, _ in result.failures + result.errors:
            if t is self or getattr(t, "test_case", None) is self:
                return False
        return True

    # -- assertions shared by the test scripts

    def assertStatsDelta(self, before, after, path, delta):
        def get(d):
            for k in path.split("."):
                d = d.get(k, 0) if isinstance(d, dict) else 0
            return d
        self.assertEqual(get(after) - get(before), delta,
                         "getStats %s: %r -> %r" % (path, get(before), get(after)))


def main():
    unittest.main(verbosity=2)
