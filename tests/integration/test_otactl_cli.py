#!/usr/bin/python3
"""Integration: otactl, the operator command-line tool.

Without a broker: --help at every level, usage errors (exit 2, nothing sent: a connection
attempt would give exit 3), the request JSON of every subcommand (--dry-run), vehicle
import parsing (CSV quoting, header names, booleans, batches; JSON), and the chunk plan of
an upload. Against a real mosquitto with the plugin: `otactl stats` (human and --json,
compared with getStats sent by paho), an operator that is not one (exit 1), a broker
without the plugin (no answer: exit 3), a closed port (exit 3), and a catalog round trip
(model, vehicles, import, lists, file upload with resume, package, strategy).

Environment: OTA_OTACTL is the otactl binary (set by ctest; default <build>/otactl/otactl).
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402

OTACTL = ot._env_path("OTA_OTACTL", ot._build_dir() / "tools" / "otactl" / "otactl")
V1, V2, V3 = ot.vin(1), ot.vin(2), ot.vin(3)
SHA_A = "a" * 64


def ctl_env():
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
    env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % ot.LSAN_SUPP
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


class OtactlCase(ot.OtaTestCase):

    def setUp(self):
        super().setUp()
        if not Path(OTACTL).exists():
            raise ot.HarnessError("otactl not found: %s (set OTA_OTACTL)" % OTACTL)
        # nothing listens: a connection gives exit 3. The port stays bound (not listening)
        # for the test, so no broker of a test running beside this one can take it.
        self.dead_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.dead_sock.bind(("127.0.0.1", 0))
        self.addCleanup(self.dead_sock.close)
        self.dead_port = str(self.dead_sock.getsockname()[1])

    def ctl(self, *args, input=None, timeout=None, env=None):
        p = subprocess.run([OTACTL, *args], capture_output=True, text=True, input=input,
                           env=dict(ctl_env(), **(env or {})), timeout=timeout or ot.TIMEOUT * 3)
        for marker in ot.SANITIZER_MARKERS:
            self.assertNotIn(marker, p.stderr, "otactl %s:\n%s" % (args, p.stderr))
        return p

    def ok(self, *args, **kw):
        p = self.ctl(*args, **kw)
        self.assertEqual(p.returncode, 0, "otactl %s: %s%s" % (args, p.stdout, p.stderr))
        return p.stdout

    def usage_error(self, *args, expect=None):
        p = self.ctl("-p", self.dead_port, *args)
        self.assertEqual(p.returncode, 2, "otactl %s: %s%s" % (args, p.stdout, p.stderr))
        self.assertTrue(p.stderr.startswith("Error: "), p.stderr)
        if expect:
            self.assertIn(expect, p.stderr)
        self.assertEqual(p.stdout, "")
        return p.stderr

    def dry(self, *args, **kw):
        """The requests otactl would send: [{"commands": [...]}] with each command's
        correlationData checked (a text, unique) and removed."""
        out = self.ok("--dry-run", "-p", self.dead_port, *args, **kw)
        reqs, seen = [], set()
        for line in out.splitlines():
            r = json.loads(line)
            for c in r.get("commands", []):
                corr = c.pop("correlationData")
                self.assertIsInstance(corr, str)
                self.assertNotIn(corr, seen)
                seen.add(corr)
            reqs.append(r)
        return reqs

    def dry1(self, *args, **kw):
        """The one command of the one request otactl would send."""
        reqs = self.dry(*args, **kw)
        self.assertEqual(len(reqs), 1, reqs)
        self.assertEqual(len(reqs[0]["commands"]), 1, reqs)
        return reqs[0]["commands"][0]


class HelpAndUsageTest(OtactlCase):

    def test_help_everywhere(self):
        top = self.ok("--help")
        for word in ("vehicle", "model", "package", "file", "strategy", "list", "stats", "raw",
                     "--host", "--cafile", "--json", "--timeout", "--dry-run", "Exit status"):
            self.assertIn(word, top)
        groups = {"vehicle": ["upsert", "import", "get", "delete"],
                  "model": ["set", "get"],
                  "package": ["add", "status", "get", "list", "max", "version"],
                  "file": ["upload", "get", "status"],
                  "strategy": ["set", "bind", "get"],
                  "list": ["add", "remove", "get"]}
        for g, actions in groups.items():
            out = self.ok(g, "--help")
            for a in actions:
                self.assertIn("%s %s" % (g, a), out)
                sub = self.ok(g, a, "--help")
                self.assertTrue(sub.startswith("usage: otactl %s %s" % (g, a)), sub)
        self.assertIn("--public-key", self.ok("vehicle", "upsert", "--help"))
        self.assertIn("ECU:TYPE:VERSION:SHA256:NAME", self.ok("package", "add", "--help"))
        self.assertIn("--chunk", self.ok("file", "upload", "--help"))
        self.assertIn("getStats", self.ok("stats", "--help"))
        self.assertIn("raw response", self.ok("raw", "--help"))
        # --help wins over anything else, also after global options
        self.ok("-p", "1", "vehicle", "upsert", "--vin", "X", "--help")

    def test_usage_errors(self):
        self.assertIn("no command", self.usage_error())
        self.usage_error("frobnicate", expect="unknown command")
        self.usage_error("vehicle", expect="missing action")
        self.usage_error("vehicle", "frobnicate", expect="unknown action")
        self.usage_error("--colour", "stats", expect="unknown option")
        self.usage_error("stats", "--colour", expect="unknown option")
        self.usage_error("stats", "extra", expect="too many arguments")
        self.usage_error("--port", "0", "stats", expect="--port")
        self.usage_error("--port", "70000", "stats", expect="--port")
        self.usage_error("--timeout", "soon", "stats", expect="--timeout")
        self.usage_error("stats", "--host", expect="needs a value")
        self.usage_error("vehicle", "get", expect="missing arguments")
        self.usage_error("vehicle", "get", V1, V2, expect="too many arguments")
        self.usage_error("vehicle", "upsert", "--vin", V1, "--model", "M", "--series", "S",
                         "--status", "in_stock", expect="--usage is required")
        self.usage_error("vehicle", "upsert", "--vin", V1, "--model", "M", "--series", "S",
                         "--status", "in_stock", "--usage", "retail", "--public-key", "abc",
                         expect="--public-key")
        self.usage_error("vehicle", "upsert", "--sold=yes", expect="takes no value")
        self.usage_error("model", "set", "--model", "M", "--series", "S", "--ignore", "x:BMS",
                         expect="--ignore")
        self.usage_error("model", "set", "--model", "M", "--series", "S", "--ecu", "A,,B",
                         expect="empty name")
        self.usage_error("package", "status", "1", "shipped", expect="draft, verified or released")
        self.usage_error("package", "status", "0", "released", expect="package id")
        self.usage_error("package", "get", "abc", expect="package id")
        pkg = ["package", "add", "--model", "M", "--series", "S", "--version", "2"]
        self.usage_error(*pkg, expect="--ecu")
        ecu = "BMS:ecu:2:%s:bms.bin" % SHA_A
        self.usage_error(*pkg, "--ecu", ecu, "--kind", "delta", expect="--from")
        self.usage_error(*pkg, "--ecu", ecu, "--from", "1", expect="--from")
        self.usage_error(*pkg, "--ecu", ecu, "--kind", "patch", expect="full|delta")
        self.usage_error(*pkg, "--ecu", "BMS:ecu:2:abc:bms.bin", expect="SHA256")
        self.usage_error(*pkg, "--ecu", "BMS:board:2:%s:x" % SHA_A, expect="TYPE")
        self.usage_error(*pkg, "--ecu", "BMS:ecu:2", expect="ECU:TYPE:VERSION:SHA256:NAME")
        self.usage_error("package", "add", "--json", str(self.tmp / "missing.json"),
                         expect="cannot read")
        self.usage_error("file", "get", "abc", expect="SHA-256")
        self.usage_error("file", "status", "g" * 64, expect="SHA-256")
        self.usage_error("file", "upload", str(self.tmp / "missing.bin"), expect="missing.bin")
        f = self.tmp / "f.bin"
        f.write_bytes(b"x")
        self.usage_error("file", "upload", str(f), "--chunk", "0", expect="--chunk")
        self.usage_error("file", "upload", str(f), "--chunk", str(2 * 1024 * 1024),
                         expect="--chunk")
        self.usage_error("file", "upload", str(f), "--window", "99", expect="--window")
        self.usage_error("strategy", "set", "--id", "S1", "--package-kind", "sometimes",
                         expect="full|delta|auto")
        self.usage_error("strategy", "set", "--id", "S1", "--ecu", "BMS:first",
                         expect="neither an order")
        self.usage_error("strategy", "set", "--ecu", "BMS:1", expect="--id is required")
        self.usage_error("strategy", "bind", "S1", expect="--model")
        self.usage_error("strategy", "bind", "S1", "--model", "M", expect="go together")
        self.usage_error("list", "get", "greylist", expect="unknown list")
        self.usage_error("list", "add", "blacklist", expect="no VINs")
        self.usage_error("list", "add", "blacklist", V1, "--batch", "0", expect="--batch")
        self.usage_error("raw", "{not json", expect="JSON")
        self.usage_error("raw", "42", expect="JSON")


class DryRunTest(OtactlCase):

    def test_vehicle(self):
        key = "AB" * 32
        c = self.dry1("vehicle", "upsert", "--vin", V1, "--model", "M1", "--series", "S1",
                      "--status", "in_stock", "--usage", "retail", "--platform", "P9", "--sold",
                      "--activated", "--no-passenger", "--config-word", "0x0F", "--fw", "1.2.3",
                      "--public-key", key)
        self.assertEqual(c, {"command": "upsertVehicles", "vehicles": [{
            "vin": V1, "model": "M1", "series": "S1", "status": "in_stock", "usage": "retail",
            "platform": "P9", "sold": True, "activated": True, "passenger": False,
            "config_word": "0x0F", "fw": "1.2.3", "public_key": key.lower()}]})
        # the minimum: optional fields are left out (the plugin's defaults apply)
        c = self.dry1("vehicle", "upsert", "--vin=%s" % V1, "--model=M1", "--series=S1",
                      "--status=sold", "--usage=fleet")
        self.assertEqual(c["vehicles"], [{"vin": V1, "model": "M1", "series": "S1",
                                          "status": "sold", "usage": "fleet"}])
        self.assertEqual(self.dry1("vehicle", "get", V1), {"command": "getVehicle", "vin": V1})
        self.assertEqual(self.dry1("vehicle", "delete", V1),
                         {"command": "deleteVehicle", "vin": V1})
        # global options may come anywhere
        self.assertEqual(self.dry1("vehicle", "get", V1, "--json", "-h", "example.org"),
                         {"command": "getVehicle", "vin": V1})

    def test_model(self):
        c = self.dry1("model", "set", "--model", "M1", "--series", "S1", "--config-word",
                      "--ecu", "BMS", "--ecu", "VCU,BCM", "--ignore", "3:BCM,VCU",
                      "--ignore", "0:BMS")
        self.assertEqual(c, {"command": "setModel", "model": "M1", "series": "S1",
                             "supports_config_word": True, "ecus": ["BMS", "VCU", "BCM"],
                             "ignore": [{"bit": 3, "ecus": ["BCM", "VCU"]},
                                        {"bit": 0, "ecus": ["BMS"]}]})
        c = self.dry1("model", "set", "--model", "M1", "--series", "S1")
        self.assertEqual(c, {"command": "setModel", "model": "M1", "series": "S1",
                             "supports_config_word": False})
        self.assertEqual(self.dry1("model", "get", "M1", "S1"),
                         {"command": "getModel", "model": "M1", "series": "S1"})

    def test_package(self):
        sha = "0123456789ABCDEF" * 4
        c = self.dry1("package", "add", "--model", "M1", "--series", "S1", "--version", "2.0",
                      "--kind", "delta", "--from", "1.0", "--baseline", "base line",
                      "--prompt", "Update?", "--result-info", "done", "--encrypted",
                      "--ecu", "BMS:ecu:2.0:%s:bms:v2.bin" % sha,
                      "--ecu", "CAM:component:7:%s:cam.bin" % SHA_A)
        self.assertEqual(c, {"command": "addPackage", "package": {
            "model": "M1", "series": "S1", "version": "2.0", "kind": "delta", "from": "1.0",
            "baseline_description": "base line", "prompt": "Update?", "result_info": "done",
            "encrypted": True, "ecus": [
                {"ecu": "BMS", "type": "ecu", "version": "2.0",
                 "file": {"sha256": sha.lower(), "name": "bms:v2.bin"}},
                {"ecu": "CAM", "type": "component", "version": "7",
                 "file": {"sha256": SHA_A, "name": "cam.bin"}}]}})
        c = self.dry1("package", "add", "--model", "M1", "--series", "S1", "--version", "2.0",
                      "--ecu", "BMS:ecu:2.0:%s:b" % SHA_A)
        self.assertEqual(c["package"]["kind"], "full")
        self.assertNotIn("from", c["package"])
        pkg = {"model": "M1", "series": "S1", "version": "3", "kind": "full",
               "ecus": [{"ecu": "BMS", "type": "ecu", "version": "3",
                         "file": {"sha256": SHA_A, "name": "x"}}]}
        f = self.tmp / "pkg.json"
        f.write_text(json.dumps(pkg))
        self.assertEqual(self.dry1("package", "add", "--json", str(f)),
                         {"command": "addPackage", "package": pkg})
        f.write_text(json.dumps({"package": pkg}))
        self.assertEqual(self.dry1("package", "add", "--json", str(f))["package"], pkg)
        self.assertEqual(self.dry1("package", "add", "--json", "-", input=json.dumps(pkg))
                         ["package"], pkg)
        # --json after the subcommand's own --json FILE is the global output option
        self.assertEqual(self.dry1("--json", "package", "add", "--json", str(f))["package"], pkg)
        self.usage_error("package", "add", "--json", str(f), "--model", "M",
                         expect="cannot be combined")
        self.assertEqual(self.dry1("package", "status", "7", "verified"),
                         {"command": "setPackageStatus", "id": 7, "status": "verified"})
        self.assertEqual(self.dry1("package", "get", "7"), {"command": "getPackage", "id": 7})
        self.assertEqual(self.dry1("package", "list"), {"command": "listPackages"})
        self.assertEqual(self.dry1("package", "list", "--model", "M1", "--series", "S1"),
                         {"command": "listPackages", "model": "M1", "series": "S1"})
        self.assertEqual(self.dry1("package", "max", "M1", "S1"),
                         {"command": "maxVersion", "model": "M1", "series": "S1"})
        self.assertEqual(self.dry1("package", "max", "M1", "S1", "--released"),
                         {"command": "maxVersion", "model": "M1", "series": "S1",
                          "released": True})
        self.assertEqual(self.dry1("package", "version", "M1", "S1", "2.0"),
                         {"command": "getVersion", "model": "M1", "series": "S1",
                          "version": "2.0"})

    def test_file_queries(self):
        self.assertEqual(self.dry1("file", "get", SHA_A.upper()),
                         {"command": "getFile", "sha256": SHA_A})
        self.assertEqual(self.dry1("file", "status", SHA_A),
                         {"command": "uploadStatus", "sha256": SHA_A})

    def test_strategy(self):
        c = self.dry1("strategy", "set", "--id", "ST1", "--package-kind", "delta",
                      "--compare-version", "never", "--ecu", "BMS:0", "--ecu", "VCU:1:noupgrade",
                      "--ecu", "BCM", "--ecu", "CAM:noupgrade")
        self.assertEqual(c, {"command": "setStrategy", "strategy": {
            "id": "ST1", "package_kind": "delta", "compare_version": "never",
            "ecus": [{"ecu": "BMS", "order": 0}, {"ecu": "VCU", "order": 1, "upgrade": False},
                     {"ecu": "BCM"}, {"ecu": "CAM", "upgrade": False}]}})
        c = self.dry1("strategy", "set", "--id", "ST2")
        self.assertEqual(c["strategy"], {"id": "ST2", "package_kind": "auto",
                                         "compare_version": "auto", "ecus": []})
        s = {"id": "ST3", "package_kind": "full", "compare_version": "always",
             "ecus": [{"ecu": "BMS", "order": 2}]}
        f = self.tmp / "s.json"
        f.write_text(json.dumps(s))
        self.assertEqual(self.dry1("strategy", "set", "--json", str(f)),
                         {"command": "setStrategy", "strategy": s})
        self.assertEqual(self.dry1("strategy", "bind", "ST1", "--model", "M1", "--series", "S1"),
                         {"command": "bindStrategy", "id": "ST1", "model": "M1",
                          "series": "S1"})
        vf = self.tmp / "vins.txt"
        vf.write_text("# VINs\n%s\n%s, %s\n" % (V1, V2, V3))
        reqs = self.dry("strategy", "bind", "ST1", "--model", "M1", "--series", "S1",
                        "--vins-file", str(vf), "--batch", "2")
        self.assertEqual([r["commands"] for r in reqs], [
            [{"command": "bindStrategy", "id": "ST1", "model": "M1", "series": "S1",
              "vins": [V1, V2]}],
            [{"command": "bindStrategy", "id": "ST1", "vins": [V3]}]])
        self.assertEqual(self.dry1("strategy", "bind", "ST1", "--vins", "%s,%s" % (V1, V2)),
                         {"command": "bindStrategy", "id": "ST1", "vins": [V1, V2]})
        self.assertEqual(self.dry1("strategy", "get", "ST1"),
                         {"command": "getStrategy", "id": "ST1"})

    def test_lists_stats_raw(self):
        self.assertEqual(self.dry1("list", "add", "blacklist", V1, V2),
                         {"command": "addToList", "list": "blacklist", "vins": [V1, V2]})
        vf = self.tmp / "vins.txt"
        vf.write_text("\n".join(ot.vin(i) for i in range(5)) + "\n")
        reqs = self.dry("list", "remove", "downgrade_whitelist", "--file", str(vf), "--batch",
                        "2")
        self.assertEqual([r["commands"][0]["vins"] for r in reqs],
                         [[ot.vin(0), ot.vin(1)], [ot.vin(2), ot.vin(3)], [ot.vin(4)]])
        self.assertTrue(all(r["commands"][0]["command"] == "removeFromList" and
                            r["commands"][0]["list"] == "downgrade_whitelist" for r in reqs))
        self.assertEqual(self.dry1("list", "get", "same_version_whitelist"),
                         {"command": "getList", "list": "same_version_whitelist"})
        self.assertEqual(self.dry1("stats"), {"command": "getStats"})
        # raw: sent as given (no correlationData added)
        out = self.ok("--dry-run", "raw", '{"command":"getStats"}')
        self.assertEqual(json.loads(out), {"commands": [{"command": "getStats"}]})
        req = {"commands": [{"command": "getList", "list": "blacklist"}]}
        out = self.ok("--dry-run", "raw", "-", input=json.dumps(req))
        self.assertEqual(json.loads(out), req)

    def test_upload_plan(self):
        data = os.urandom(300_000)
        f = self.tmp / "fw.bin"
        f.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        lines = [json.loads(x) for x in
                 self.ok("--dry-run", "file", "upload", str(f), "--chunk", "131072").splitlines()]
        self.assertEqual(lines[0]["commands"][0]["command"], "uploadStatus")
        self.assertEqual(lines[0]["commands"][0]["sha256"], sha)
        self.assertEqual([(c["offset"], c["size"]) for c in lines[1:]],
                         [(0, 131072), (131072, 131072), (262144, 37856)])
        for c in lines[1:]:
            self.assertEqual((c["sha256"], c["total"], c["topic"]),
                             (sha, len(data), "$CONTROL/ota/v1/file"))
        lines = self.ok("--dry-run", "file", "upload", str(f)).splitlines()
        self.assertEqual(len(lines), 1 + 2)  # default chunk 256 KiB


class ImportParseTest(OtactlCase):

    def write(self, name, text, mode="w"):
        p = self.tmp / name
        if mode == "wb":
            p.write_bytes(text)
        else:
            p.write_text(text)
        return str(p)

    def vehicles(self, *args, **kw):
        reqs = self.dry("vehicle", "import", *args, **kw)
        out = []
        for r in reqs:
            self.assertEqual([c["command"] for c in r["commands"]], ["upsertVehicles"])
            out.append(r["commands"][0]["vehicles"])
        return out

    def test_csv(self):
        text = ("\ufeffVIN, Model ,series,Status,usage,Sold,config-word,PASSENGER,activated,fw,"
                "platform,public_key\r\n"
                "%s,M1,S1,in_stock,retail,yes,,,,,,\r\n"
                "\r\n"
                "\"%s\", M1 ,\"S \"\"1\"\", x\",sold,fleet,0,\"cw,1\",false,TRUE,2.0,P,%s\r\n"
                "%s,M1,\"multi\nline\",in_stock,retail\n" % (V1, V2, "ab" * 32, V3))
        f = self.write("v.csv", text.encode("utf-8"), "wb")
        batches = self.vehicles(f)
        self.assertEqual(batches, [[
            {"vin": V1, "model": "M1", "series": "S1", "status": "in_stock", "usage": "retail",
             "sold": True},
            {"vin": V2, "model": "M1", "series": 'S "1", x', "status": "sold", "usage": "fleet",
             "sold": False, "config_word": "cw,1", "passenger": False, "activated": True,
             "fw": "2.0", "platform": "P", "public_key": "ab" * 32},
            {"vin": V3, "model": "M1", "series": "multi\nline", "status": "in_stock",
             "usage": "retail"}]])
        # batches of --batch vehicles, in file order
        rows = "".join("%s,M,S,in_stock,retail\n" % ot.vin(i) for i in range(7))
        f = self.write("many.csv", "vin,model,series,status,usage\n" + rows)
        batches = self.vehicles(f, "--batch", "3")
        self.assertEqual([len(b) for b in batches], [3, 3, 1])
        self.assertEqual([v["vin"] for b in batches for v in b], [ot.vin(i) for i in range(7)])

    def test_csv_errors(self):
        cases = [
            ("vin,model,series,status\n", "no \"usage\" column"),
            ("vin,model,series,status,usage,colour\n", "unknown column \"colour\""),
            ("vin,model,vin,series,status,usage\n", "twice"),
            ("vin,model,series,status,usage\n%s,M,S,x,y\n%s,M,S,,y\n" % (V1, V2),
             "line 3: status is empty"),
            ("vin,model,series,status,usage,sold\n%s,M,S,x,y,maybe\n" % V1,
             "line 2: sold: expected true or false"),
            ("vin,model,series,status,usage\n%s,M,S,x,y,extra\n" % V1, "line 2: 6 cells"),
            ("vin,model,series,status,usage\n%s,M,\"S,x,y\n" % V1, "line 2: bad quoting"),
            ("vin,model,series,status,usage\n", "no vehicles"),
            ("", "empty file"),
        ]
        for i, (text, msg) in enumerate(cases):
            f = self.write("bad%d.csv" % i, text)
            err = self.usage_error("--dry-run", "vehicle", "import", f)
            self.assertIn(msg, err, text)

    def test_json(self):
        vs = [{"vin": V1, "model": "M", "series": "S", "status": "sold", "usage": "test",
               "sold": True}, {"vin": V2, "model": "M", "series": "S", "status": "sold",
                               "usage": "test", "colour": "red"}]
        f = self.write("v.json", json.dumps(vs))
        self.assertEqual(self.vehicles(f), [vs])  # sent as they are: the plugin judges
        f = self.write("w.data", json.dumps({"vehicles": vs}))
        self.assertEqual(self.vehicles(f, "--batch", "1"), [[vs[0]], [vs[1]]])
        self.assertEqual(self.vehicles("-", input=json.dumps(vs)), [vs])
        f = self.write("bad.json", "[1]")
        self.assertIn("element 0 is not an object",
                      self.usage_error("--dry-run", "vehicle", "import", f))
        f = self.write("bad2.json", "[{]")
        self.assertIn("not valid JSON", self.usage_error("--dry-run", "vehicle", "import", f))


class BrokerTest(OtactlCase):

    def bctl(self, b, *args, user=ot.ADMIN, **kw):
        pre = ["-p", str(b.port), "--timeout", str(int(ot.TIMEOUT))]
        if user:
            pre += ["-u", user]
        return self.ctl(*pre, *args, **kw)

    def bok(self, b, *args, **kw):
        p = self.bctl(b, *args, **kw)
        self.assertEqual(p.returncode, 0, "otactl %s: %s%s" % (args, p.stdout, p.stderr))
        return p.stdout

    def test_stats(self):
        b = self.broker()
        car = self.vehicle(b, V1)
        car.report(1, [ot.ev_download(), ot.ev_eeprom()])
        admin = self.admin(b)
        ot.wait_until(lambda: admin.stats()["events_accepted"] == 2, msg="report accepted")
        ref = admin.stats()
        data = json.loads(self.bok(b, "stats", "--json"))
        self.assertEqual(data["reports_accepted"], 1)
        self.assertEqual(data["events_accepted"], 2)
        self.assertEqual(set(data), set(ref))
        self.assertEqual(set(data["writer"]), set(ref["writer"]))
        human = self.bok(b, "stats")
        self.assertIn("reports_accepted: 1\n", human)
        self.assertIn("events_accepted: 2\n", human)
        self.assertIn("rejected.E_BAD_CBOR: 0\n", human)
        self.assertRegex(human, r"writer\.store_ok: (true|false)\n")
        # global options after the subcommand, long forms
        out = self.ctl("stats", "--json", "--host", "127.0.0.1", "--port", str(b.port),
                       "--user", ot.ADMIN).stdout
        self.assertEqual(json.loads(out)["reports_accepted"], 1)

    def test_not_an_operator(self):
        b = self.broker()
        p = self.bctl(b, "stats", user=None)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("Error:", p.stderr)
        self.assertEqual(p.stdout, "")
        p = self.bctl(b, "stats", user="somebody")
        self.assertEqual(p.returncode, 1, p.stderr)

    def test_connection_problems(self):
        b = self.broker(plugin=False)  # nobody answers $CONTROL/ota/v1
        p = self.ctl("-p", str(b.port), "-u", ot.ADMIN, "--timeout", "1", "stats")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("no response", p.stderr)
        p = self.ctl("-p", self.dead_port, "stats")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("cannot connect", p.stderr)

    def test_unknown_command_raw(self):
        b = self.broker()
        p = self.bctl(b, "raw", '{"command":"noSuchCommand"}')
        self.assertEqual(p.returncode, 1)
        self.assertEqual(json.loads(p.stdout)["responses"][0]["error"], "unknown command")
        self.assertIn("noSuchCommand: unknown command", p.stderr)
        out = self.bok(b, "raw", '{"commands":[{"command":"getStats","correlationData":"x"}]}')
        r = json.loads(out)["responses"][0]
        self.assertEqual((r["command"], r["correlationData"]), ("getStats", "x"))

    def test_catalog_round_trip(self):
        b = self.broker(file_dir=str(self.tmp / "files"))
        self.bok(b, "model", "set", "--model", "M1", "--series", "S1", "--ecu", "BMS,VCU")
        self.assertIn("ecus: BMS, VCU", self.bok(b, "model", "get", "M1", "S1"))
        self.assertEqual(self.bok(b, "vehicle", "upsert", "--vin", V1, "--model", "M1",
                                  "--series", "S1", "--status", "in_stock", "--usage", "retail",
                                  "--fw", "1.0"), "upserted: 1\n")
        v = json.loads(self.bok(b, "--json", "vehicle", "get", V1))["vehicle"]
        self.assertEqual((v["vin"], v["status"], v["fw"]), (V1, "in_stock", "1.0"))
        human = self.bok(b, "vehicle", "get", V1)
        self.assertIn("vin: %s\n" % V1, human)
        p = self.bctl(b, "vehicle", "get", V3)
        self.assertEqual(p.returncode, 1)
        self.assertTrue(p.stderr.startswith("Error: getVehicle: "), p.stderr)
        # import: the failing batch is traced to its CSV line; earlier batches stay
        csv = self.tmp / "v.csv"
        csv.write_text("vin,model,series,status,usage\n%s,M1,S1,sold,fleet\n"
                       "LSVTA00000000000I,M1,S1,sold,fleet\n" % V2)
        p = self.bctl(b, "vehicle", "import", str(csv), "--batch", "1")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("v.csv line 3", p.stderr)
        csv.write_text("vin,model,series,status,usage\n%s,M1,S1,sold,fleet\n"
                       "%s,M1,S1,in_stock,test\n" % (V2, V3))
        self.assertEqual(self.bok(b, "vehicle", "import", str(csv)), "upserted: 2\n")
        self.bok(b, "vehicle", "delete", V3)
        self.assertEqual(self.bctl(b, "vehicle", "get", V3).returncode, 1)
        # lists
        self.assertEqual(self.bok(b, "list", "add", "blacklist", V2, V1), "added: 2\n")
        self.assertEqual(self.bok(b, "list", "get", "blacklist"), "%s\n%s\n" % (V1, V2))
        self.assertEqual(self.bok(b, "list", "remove", "blacklist", V1), "removed: 1\n")
        # a file: part of it sent by paho first, otactl resumes and finishes
        data = os.urandom(700_000)
        sha = hashlib.sha256(data).hexdigest()
        f = self.tmp / "bms.bin"
        f.write_bytes(data)
        admin = self.admin(b)
        admin.publish("$CONTROL/ota/v1/file", ot.cbor2.dumps(
            {"sha256": sha, "offset": 0, "total": len(data), "data": data[:100_000]}))
        admin.get(admin.RESPONSE)
        st = json.loads(self.bok(b, "--json", "file", "status", sha))
        self.assertEqual((st["received"], st["stored"]), (100_000, False))
        p = self.bctl(b, "file", "upload", str(f), "--chunk", "65536")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, sha + "\n")
        self.assertIn("100.0%", p.stderr)  # the progress bar
        self.assertEqual((self.tmp / "files" / sha).read_bytes(), data)
        out = json.loads(self.bok(b, "--json", "file", "upload", str(f)))
        self.assertTrue(out["stored"])
        self.assertEqual(json.loads(self.bok(b, "--json", "file", "get", sha))["file"]["size"],
                         len(data))
        # package, strategy
        out = self.bok(b, "package", "add", "--model", "M1", "--series", "S1", "--version",
                       "2.0", "--baseline", "base", "--ecu", "BMS:ecu:2.0:%s:bms.bin" % sha)
        self.assertEqual(out, "id: 1\n")
        self.bok(b, "package", "status", "1", "verified")
        p = self.bctl(b, "package", "status", "1", "draft")
        self.assertEqual(p.returncode, 1)
        pkg = json.loads(self.bok(b, "--json", "package", "get", "1"))["package"]
        self.assertEqual((pkg["id"], pkg["status"], pkg["ecus"][0]["file"]["size"]),
                         (1, "verified", len(data)))
        table = self.bok(b, "package", "list").splitlines()
        self.assertEqual(table[0].split(), ["ID", "MODEL", "SERIES", "VERSION", "KIND", "FROM",
                                            "STATUS"])
        self.assertEqual(table[1].split(), ["1", "M1", "S1", "2.0", "full", "verified"])
        mv = json.loads(self.bok(b, "--json", "package", "max", "M1", "S1"))
        self.assertEqual((mv["version"], mv["id"]), ("2.0", 1))
        self.bok(b, "strategy", "set", "--id", "ST1", "--package-kind", "full", "--ecu",
                 "BMS:0", "--ecu", "VCU:1:noupgrade")
        self.assertEqual(self.bok(b, "strategy", "bind", "ST1", "--model", "M1", "--series",
                                  "S1"), "bound: 1\n")
        self.assertEqual(self.bok(b, "strategy", "bind", "ST1", "--vins", V1), "bound: 1\n")
        s = json.loads(self.bok(b, "--json", "strategy", "get", "ST1"))
        self.assertEqual(s["strategy"]["ecus"], [{"ecu": "BMS", "order": 0, "upgrade": True},
                                                 {"ecu": "VCU", "order": 1, "upgrade": False}])
        self.assertEqual(s["defaults"], [{"model": "M1", "series": "S1"}])
        self.assertIn("defaults: M1/S1", self.bok(b, "strategy", "get", "ST1"))


class OpsTest(OtactlCase):
    """Issue 18: credentials, error texts, finding things, export, times, word lists."""

    bctl = BrokerTest.bctl
    bok = BrokerTest.bok

    def test_credentials_and_refused_login(self):
        pw = self.tmp / "passwd"
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), ot.ADMIN, "s3cret"], check=True,
                       capture_output=True)
        b = self.broker(auth="broker",
                        extra_conf=["allow_anonymous false", "password_file %s" % pw])
        p = self.bctl(b, "stats", "-P", "wrong")
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn("not authorised", p.stderr)
        self.assertNotIn("protocol error", p.stderr)
        self.assertEqual(p.stdout, "")
        (self.tmp / "pwfile").write_text("s3cret\n")
        self.assertIn("reports_accepted: 0", self.bok(b, "stats", "--password-file",
                                                      str(self.tmp / "pwfile")))
        self.assertIn("reports_accepted: 0", self.bok(b, "stats",
                                                      env={"OTACTL_PASSWORD": "s3cret"}))
        p = self.bctl(b, "stats", user=None, env={"OTACTL_USER": ot.ADMIN,
                                                   "OTACTL_PASSWORD": "s3cret"})
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.bctl(b, "stats", "--password-file", str(self.tmp / "nope"))
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--password-file", p.stderr)

    def test_dry_run_new_commands(self):
        self.assertEqual(self.dry1("task", "list", "--state", "active", "--from",
                                   "2026-12-08T10:00:00Z", "--limit", "5"),
                         {"command": "listTasks", "state": "active",
                          "created_from": "2026-12-08T10:00:00Z", "limit": 5})
        self.assertEqual(self.dry1("vehicle", "list", "--status", "sold", "--vin-prefix", "LSV"),
                         {"command": "listVehicles", "status": "sold", "vin_prefix": "LSV"})
        self.assertEqual(self.dry1("vehicle", "history", V1, "--kind", "upgrade_status"),
                         {"command": "getVehicleHistory", "vin": V1, "kind": "upgrade_status"})
        self.assertEqual(self.dry1("package", "update", "3", "--baseline", "b"),
                         {"command": "updatePackage", "id": 3, "baseline_description": "b"})
        self.assertEqual(self.dry1("package", "delete", "3"), {"command": "deletePackage", "id": 3})
        self.assertEqual(self.dry1("fleet", "summary"), {"command": "getFleetSummary"})
        t = self.dry1("task", "create", "--name", "n", "--type", "normal", "--model", "M",
                      "--series", "S", "--version", "2", "--vins", V1, "--start",
                      "2026-12-08T18:00:00+08:00", "--end", "1900000000000")["task"]
        self.assertEqual((t["start"], t["end"]), ("2026-12-08T18:00:00+08:00", 1900000000000))
        self.usage_error("task", "export", "T1", "--format", "xml", expect="csv or json")

    def catalog(self, b):
        files = self.tmp / "f.bin"
        files.write_bytes(b"image" * 1000)
        self.bok(b, "model", "set", "--model", "M1", "--series", "S1", "--ecu", "BMS")
        for i, st in ((1, "in_stock"), (2, "sold"), (3, "sold")):
            self.bok(b, "vehicle", "upsert", "--vin", ot.vin(i), "--model", "M1", "--series",
                     "S1", "--status", st, "--usage", "retail", "--fw", "1.0")
        sha = self.bok(b, "file", "upload", str(files)).strip()
        self.bok(b, "package", "add", "--model", "M1", "--series", "S1", "--version", "2.0",
                 "--ecu", "BMS:ecu:2.0:%s:bms.bin" % sha)
        self.bok(b, "package", "status", "1", "released")
        self.bok(b, "strategy", "set", "--id", "ST", "--package-kind", "full", "--ecu", "BMS:0")
        self.bok(b, "strategy", "bind", "ST", "--model", "M1", "--series", "S1")
        return sha

    def test_finding_things(self):
        b = self.broker(file_dir=str(self.tmp / "files"))
        self.catalog(b)
        task = ["task", "create", "--name", "spring", "--type", "normal", "--model", "M1",
                "--series", "S1", "--version", "2.0", "--vins",
                ",".join(ot.vin(i) for i in (1, 2, 3))]
        p = self.bctl(b, *task)  # the package has no baseline description yet
        self.assertEqual(p.returncode, 1)
        self.assertIn("E_NO_BASELINE", p.stderr)
        out = self.bok(b, "package", "update", "1", "--baseline", "BMS 2.0")
        self.assertIn("baseline_description: BMS 2.0", out)
        p = self.bctl(b, *task, "--start", "2020-01-01T00:00:00Z")
        self.assertEqual(p.returncode, 1)
        self.assertIn("in the past", p.stderr)
        p = self.bctl(b, *task, "--start", "1765000000")
        self.assertIn("looks like seconds", p.stderr)
        self.assertIn("id: T000001", self.bok(b, *task, "--end", "2099-01-01T00:00:00Z"))
        self.assertIn("id: T000002", self.bok(b, *task))
        # human times, raw --json
        human = self.bok(b, "task", "get", "T000001")
        self.assertRegex(human, r"created_at: 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\n")
        self.assertIn("task.end: 2099-01-01T00:00:00Z\n", human)
        raw = json.loads(self.bok(b, "--json", "task", "get", "T000001"))
        self.assertEqual(raw["task"]["end"], 4070908800000)
        # task list: newest first, paged
        rows = self.bok(b, "task", "list").splitlines()
        self.assertEqual(rows[0].split()[:4], ["ID", "NAME", "TYPE", "STATE"])
        self.assertEqual([r.split()[0] for r in rows[1:]], ["T000002", "T000001"])
        p = self.bctl(b, "task", "list", "--limit", "1")
        self.assertEqual(len(p.stdout.splitlines()), 2)
        self.assertIn("--cursor T000002", p.stderr)
        pages = self.bok(b, "--json", "task", "list", "--limit", "1", "--all").splitlines()
        self.assertEqual([json.loads(x)["tasks"][0]["id"] for x in pages], ["T000002", "T000001"])
        # task vehicles piped into --vins-file -
        listing = self.bok(b, "task", "vehicles", "T000001")
        self.assertIn("%s  queued" % ot.vin(1), listing)
        out = self.bok(b, "task", "cancel", "T000001", "--vins-file", "-", input=listing)
        self.assertIn("canceled 3", out)
        p = self.bctl(b, "task", "cancel", "T000001")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("T000001 is already finished: nothing to cancel", p.stderr)
        # export
        csv = self.bok(b, "task", "export", "T000001", "--format", "csv").splitlines()
        self.assertEqual(csv[0], "vin,state,code,attempts,notified_at,updated_at,fw,target,rxswin_before,rxswin_after,rxswin")
        self.assertEqual(len(csv), 4)
        self.assertTrue(csv[1].startswith("%s,canceled,,0,," % ot.vin(1)), csv[1])
        self.assertEqual(csv[1].split(",")[6:], ["1.0", "2.0", "", "", ""], csv[1])
        self.assertRegex(csv[1].split(",")[5], r"^20\d\d-.*Z$")
        out_file = self.tmp / "export.json"
        self.bok(b, "task", "export", "T000001", "--format", "json", "--output", str(out_file))
        ex = json.loads(out_file.read_text())
        self.assertEqual([v["vin"] for v in ex["vehicles"]], [ot.vin(i) for i in (1, 2, 3)])
        self.assertIsInstance(ex["vehicles"][0]["updated_at"], int)
        # vehicles
        p = self.bctl(b, "vehicle", "list", "--status", "sodl")
        self.assertEqual(p.returncode, 1)
        self.assertIn('"sodl" is not a vehicle status (assembly_offline, ok_offline, '
                      'certificate_printed, in_stock, sold, scrapped)', p.stderr)
        p = self.bctl(b, "vehicle", "upsert", "--vin", ot.vin(4), "--model", "M1", "--series",
                      "S1", "--status", "sodl", "--usage", "retail")
        self.assertEqual(p.returncode, 1)
        self.assertIn("is not a vehicle status", p.stderr)
        self.assertEqual(self.bok(b, "vehicle", "list", "--status", "sold", "--vins-only"),
                         "%s\n%s\n" % (ot.vin(2), ot.vin(3)))
        table = self.bok(b, "vehicle", "list").splitlines()
        self.assertEqual(table[0].split(), ["VIN", "MODEL", "SERIES", "STATUS", "USAGE", "FW"])
        st = self.bok(b, "vehicle", "status", ot.vin(2))
        self.assertIn("past[0].task: T000001\n", st)
        self.assertIn("current[0].task: T000002\n", st)
        car = self.vehicle(b, ot.vin(2))
        car.report(1, [ot.ev_status(task="T000002", status="failed", error="E_X")])
        admin = self.admin(b)
        ot.wait_until(lambda: admin.command("getVehicleHistory", vin=ot.vin(2))["data"]["events"])
        hist = self.bok(b, "vehicle", "history", ot.vin(2)).splitlines()
        self.assertEqual(hist[0].split()[:5], ["SEQ", "IDX", "KIND", "TASK", "TS"])
        self.assertIn("upgrade_status", hist[1])
        self.assertIn(ot.time.strftime("%Y-%m-%dT", ot.time.gmtime(ot.TS0 / 1000)), hist[1])
        summary = self.bok(b, "fleet", "summary")
        self.assertIn("vehicles: 3\n", summary)
        self.assertIn("by status: in_stock 1 sold 2\n", summary)
        # packages: deprecate refused while T000002 is active; delete refused while used
        p = self.bctl(b, "package", "deprecate", "1")
        self.assertEqual(p.returncode, 1)
        self.assertIn("used by task T000002 (active)", p.stderr)
        p = self.bctl(b, "package", "delete", "1")
        self.assertIn("deprecate it instead", p.stderr)


if __name__ == "__main__":
    ot.main()
