#!/usr/bin/python3
"""Integration: the catalog through the operator API ($CONTROL/ota/v1, docs/operator-api.md).

Every command goes through a real broker from an independent raw JSON client (otatest's
Admin): models, vehicles (all or nothing, defaults, replace, delete), files uploaded in
CBOR chunks, packages (ids, statuses forward only, versions compared numerically,
listing and filters), strategies and their bindings, the four VIN lists; the rules common
to every command (several commands per request answered in order and seeing each other's
effects, correlationData echoed, unknown commands and fields refused with the field
named, bad JSON answered, non-operators denied and answered nothing); the "answered =
stored" promise across a clean restart and a kill -9; and a few commands through the
otactl tool (OTA_OTACTL), whose --json output is parsed.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402

M, S = "EX5", "S1"  # the main model/series
MODEL = {"model": M, "series": S, "supports_config_word": True,
         "ecus": ["BMS", "VCU", "GW", "TBOX"],
         "ignore": [{"bit": 0, "ecus": ["TBOX"]}, {"bit": 3, "ecus": ["GW", "VCU"]}]}
MODEL_S2 = {"model": M, "series": "S2", "supports_config_word": False,
            "ecus": ["BMS", "VCU"], "ignore": []}
MODEL_EX7 = {"model": "EX7", "series": "S1", "supports_config_word": False,
             "ecus": ["ADAS", "BMS"], "ignore": []}
LISTS = ("blacklist", "forced_whitelist", "same_version_whitelist", "downgrade_whitelist")
DENIED = 0x87


def full_vehicle(i, model=M, series=S, prefix="LSVTA"):
    """A vehicle with every field set (non-default flags)."""
    return {"vin": ot.vin(i, prefix), "model": model, "series": series, "platform": "E3",
            "status": "in_stock", "usage": "retail", "sold": True, "activated": True,
            "passenger": False, "config_word": "0x001F", "fw": "1.2.%d" % i,
            "public_key": ot.sha256_hex(b"key %d" % i)}


def minimal_vehicle(i, model=M, series=S, prefix="LSVTA", status="ok_offline"):
    """A vehicle with only the required fields."""
    return {"vin": ot.vin(i, prefix), "model": model, "series": series, "status": status,
            "usage": "fleet"}


def with_defaults(v):
    out = {"sold": False, "activated": False, "passenger": True}
    out.update(v)
    return out


def version_key(v):
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in v.split(".")]


def package(version, files, kind="full", frm=None, model=M, series=S, **extra):
    """An addPackage package; files: [(ecu, type, sha256)]."""
    p = {"model": model, "series": series, "version": version, "kind": kind,
         "baseline_description": "baseline of %s %s" % (version, kind),
         "ecus": [{"ecu": e, "type": t, "version": "%s-%s" % (e, version),
                   "file": {"sha256": sha, "name": "%s_%s.bin" % (e, version)}}
                  for e, t, sha in files]}
    if frm is not None:
        p["from"] = frm
    p.update(extra)
    return p


def stored_package(p, pid, sizes, status="draft"):
    """What getPackage should show for package p: + id, status, encrypted default and
    every file's size (sizes: {sha256: size})."""
    out = json.loads(json.dumps(p))
    out["id"] = pid
    out["status"] = status
    out.setdefault("encrypted", False)
    out.pop("content_key", None)  # sealed by the plugin, never shown
    for e in out["ecus"]:
        e["file"]["size"] = sizes[e["file"]["sha256"]]
    return out


class CatalogCase(ot.OtaTestCase):
    """A broker with a file repository, an operator, and assertion helpers."""

    def start(self, **kw):
        self.files = self.tmp / "files"
        # TCP_NODELAY on both ends: otherwise Nagle + delayed ACKs add ~80 ms per request.
        self.b = self.broker(file_dir=str(self.files), extra_conf=["set_tcp_nodelay true"], **kw)
        self.a = self.admin(self.b, nodelay=True)
        self.sizes = {}
        return self.b, self.a

    def ok(self, command, **fields):
        """Sends one command that must succeed; returns its data."""
        r = self.a.command(command, **fields)
        self.assertEqual(r.get("command"), command, r)
        self.assertNotIn("error", r, "%s failed: %r" % (command, r))
        self.assertIsInstance(r.get("data"), dict, r)
        return r["data"]

    def fails(self, command, *needles, **fields):
        """Sends one command that must fail; its error text must contain every needle
        (a compiled regex is searched). Returns the text."""
        r = self.a.command(command, **fields)
        self.assertEqual(r.get("command"), command, r)
        self.assertIn("error", r, "%s should have failed: %r" % (command, r))
        self.assertNotIn("data", r, r)
        self.assertIsInstance(r["error"], str, r)
        for n in needles:
            if isinstance(n, re.Pattern):
                self.assertRegex(r["error"], n)
            else:
                self.assertIn(n, r["error"])
        return r["error"]

    def put_file(self, content, chunk=64 * 1024):
        """Uploads content with the chunk protocol; returns its sha256."""
        sha = ot.sha256_hex(content)
        rs = self.a.upload(content, chunk=chunk)
        for r in rs:
            self.assertNotIn("error", r, r)
        self.assertEqual(rs[-1]["data"], {"sha256": sha, "received": len(content),
                                          "total": len(content), "stored": True})
        self.sizes[sha] = len(content)
        return sha

    def models(self, *models):
        for m in models or (MODEL, MODEL_S2, MODEL_EX7):
            self.assertEqual(self.ok("setModel", **m), {})

    def add_package(self, p):
        d = self.ok("addPackage", package=p)
        self.assertEqual(set(d), {"id"}, d)
        self.assertIsInstance(d["id"], int)
        return d["id"]

    def set_status(self, pid, *statuses):
        for st in statuses:
            self.assertEqual(self.ok("setPackageStatus", id=pid, status=st), {})

    def batch(self, commands):
        """One request of several commands; returns the response objects (checked to be
        one per command, in order, correlationData echoed)."""
        cmds = [dict(c, correlationData="k%d" % i) for i, c in enumerate(commands)]
        r = self.a.control(cmds)
        rs = r["responses"]
        self.assertEqual(len(rs), len(cmds), r)
        for i, (c, resp) in enumerate(zip(cmds, rs)):
            self.assertEqual(resp.get("command"), c["command"], resp)
            self.assertEqual(resp.get("correlationData"), "k%d" % i, resp)
        return rs


# ---------------------------------------------------------------------------------------


class ModelsAndVehicles(CatalogCase):

    def test_set_and_get_model(self):
        self.start()
        self.models()
        for m in (MODEL, MODEL_S2, MODEL_EX7):
            self.assertEqual(self.ok("getModel", model=m["model"], series=m["series"]),
                             {"model": m})
        # setModel replaces the model/series.
        changed = dict(MODEL_S2, supports_config_word=True, ecus=["BMS", "VCU", "GW"],
                       ignore=[{"bit": 7, "ecus": ["GW"]}])
        self.ok("setModel", **changed)
        self.assertEqual(self.ok("getModel", model=M, series="S2"), {"model": changed})
        self.fails("getModel", "model", model="NOPE", series=S)
        self.fails("getModel", "series", model=M)
        self.fails("setModel", "supports_config_word", model="EX9", series=S, ecus=["A"])
        self.fails("setModel", "ignore[0].ecus[0]", model="EX9", series=S,
                   supports_config_word=True, ecus=["A"], ignore=[{"bit": 0, "ecus": ["B"]}])
        self.fails("setModel", "colour: unknown field", model="EX9", series=S,
                   supports_config_word=False, colour="red")
        self.fails("getModel", "model", model="EX9", series=S)  # none of those was stored

    def test_vehicles_round_trip(self):
        self.start()
        self.models()
        sent = [full_vehicle(1), minimal_vehicle(2), full_vehicle(3, M, "S2"),
                dict(minimal_vehicle(4, "EX7", "S1"), passenger=False, fw="0"),
                dict(minimal_vehicle(5), sold=True, activated=False, passenger=True,
                     public_key="0f" * 32)]
        self.assertEqual(self.ok("upsertVehicles", vehicles=sent), {"upserted": 5})
        for v in sent:
            self.assertEqual(self.ok("getVehicle", vin=v["vin"]), {"vehicle": with_defaults(v)},
                             v["vin"])
        self.assertEqual(self.a.stats()["catalog"]["vehicles"], 5)
        # Upserting replaces the whole vehicle: fields not given again are gone.
        v1 = dict(minimal_vehicle(1, "EX7", "S1"), status="sold", usage="test")
        self.assertEqual(self.ok("upsertVehicles", vehicles=[v1]), {"upserted": 1})
        self.assertEqual(self.ok("getVehicle", vin=v1["vin"]), {"vehicle": with_defaults(v1)})
        # Delete.
        self.assertEqual(self.ok("deleteVehicle", vin=ot.vin(2)), {})
        self.fails("getVehicle", "vin", vin=ot.vin(2))
        self.assertEqual(self.ok("getVehicle", vin=ot.vin(3)),
                         {"vehicle": with_defaults(sent[2])})
        self.assertEqual(self.a.stats()["catalog"]["vehicles"], 4)
        self.fails("getVehicle", "vin", vin=ot.vin(99))
        self.fails("getVehicle", "vin", vin="NOT-A-VIN")

    def test_upsert_is_all_or_nothing(self):
        self.start()
        self.models()
        good = [full_vehicle(1), minimal_vehicle(2)]

        def refused(vehicles, *needles):
            self.fails("upsertVehicles", *needles, vehicles=vehicles)
            for v in vehicles:
                if isinstance(v, dict) and isinstance(v.get("vin"), str) and len(v["vin"]) == 17:
                    self.fails("getVehicle", "vin", vin=v["vin"])

        refused(good + [minimal_vehicle(3, model="EX9")], "vehicles[2].model")
        refused([good[0], minimal_vehicle(3, series="S9"), good[1]],
                re.compile(r"vehicles\[1\]\.(model|series)"))
        refused([good[0], dict(good[1], vin="LSVTA00000000000I")], "vehicles[1].vin")
        refused([good[0], dict(good[1], colour="red")], "vehicles[1].colour: unknown field")
        refused([dict(good[0], public_key="ab" * 31)], "vehicles[0].public_key")
        refused([dict(good[0], public_key="zz" * 32)], "vehicles[0].public_key")
        refused([dict(good[0], status="s" * 65)], "vehicles[0].status")
        refused([dict(good[0], sold="yes")], "vehicles[0].sold")
        refused([good[0], {k: v for k, v in good[1].items() if k != "usage"}],
                "vehicles[1].usage")
        self.fails("upsertVehicles", "vehicles", vehicles=[])
        self.assertEqual(self.a.stats()["catalog"]["vehicles"], 0)
        self.assertEqual(self.ok("upsertVehicles", vehicles=good), {"upserted": 2})
        self.assertEqual(self.a.stats()["catalog"]["vehicles"], 2)


    def test_vin_given_twice(self):
        # Refused (which one would win?), nothing stored, and, like every error, the text
        # names the field: the vehicle's index (in a 10000-vehicle import the operator
        # must find the line), e.g. "vehicles[2].vin: LSV... given twice (also at [0])".
        self.start()
        self.models()
        a, b = full_vehicle(1), minimal_vehicle(2)
        err = self.fails("upsertVehicles", a["vin"], vehicles=[a, b, dict(a, fw="9.9")])
        for v in (a, b):
            self.fails("getVehicle", "vin", vin=v["vin"])
        self.assertRegex(err, r"vehicles\[[02]\]\.vin")


class Packages(CatalogCase):

    def setUp(self):
        super().setUp()
        self.start()
        self.models()
        self.f = [self.put_file(os.urandom(n)) for n in (3000, 150_000, 1, 65536)]

    def test_files(self):
        for sha in self.f:
            self.assertEqual(self.ok("getFile", sha256=sha),
                             {"file": {"sha256": sha, "size": self.sizes[sha]}})
            self.assertEqual(self.ok("uploadStatus", sha256=sha),
                             {"sha256": sha, "received": self.sizes[sha],
                              "total": self.sizes[sha], "stored": True})
            self.assertEqual((self.files / sha).stat().st_size, self.sizes[sha])
        self.fails("getFile", "sha256", sha256=ot.sha256_hex(b"never uploaded"))
        self.fails("getFile", "sha256", sha256="XYZ")

    def test_add_and_get(self):
        f = self.f
        full = package("1.0", [("BMS", "ecu", f[0]), ("VCU", "component", f[1])],
                       prompt="Do not drive during the upgrade", result_info="ok",
                       encrypted=True, content_key="11" * 32)
        delta = package("1.1", [("BMS", "ecu", f[2])], kind="delta", frm="1.0")
        self.assertEqual(self.add_package(full), 1)
        self.assertEqual(self.add_package(delta), 2)
        self.assertEqual(self.ok("getPackage", id=1),
                         {"package": stored_package(full, 1, self.sizes)})
        self.assertEqual(self.ok("getPackage", id=2),
                         {"package": stored_package(delta, 2, self.sizes)})
        # The same model/series/version/kind/from twice is refused; another `from` is not.
        self.fails("addPackage", package=full)
        self.fails("addPackage", package=dict(full, ecus=full["ecus"][:1]))
        self.fails("addPackage", package=delta)
        other_from = dict(delta, **{"from": "0.9"})
        # Refusals that name the field.
        missing = ot.sha256_hex(b"not uploaded")
        self.fails("addPackage", "package.ecus[0].file.sha256",
                   package=package("2.0", [("BMS", "ecu", missing)]))
        self.fails("addPackage", "package.ecus[1].file.sha256",
                   package=package("2.0", [("BMS", "ecu", f[0]), ("VCU", "ecu", missing)]))
        self.fails("addPackage", "package.ecus[1].ecu",  # ADAS is EX7's, not EX5/S1's
                   package=package("2.0", [("BMS", "ecu", f[0]), ("ADAS", "ecu", f[1])]))
        self.fails("addPackage", "package.ecus[0].ecu",
                   package=package("2.0", [("XYZ", "ecu", f[0])]))
        self.fails("addPackage", "package.ecus[0].ecu",  # GW is not EX5/S2's
                   package=package("2.0", [("GW", "ecu", f[0])], series="S2"))
        self.fails("addPackage", re.compile(r"package\.(model|series)"),
                   package=package("2.0", [("BMS", "ecu", f[0])], model="EX9"))
        self.fails("addPackage", "package.from",
                   package=package("2.0", [("BMS", "ecu", f[0])], kind="delta"))
        self.fails("addPackage", "package.from",
                   package=package("2.0", [("BMS", "ecu", f[0])], frm="1.0"))
        self.fails("addPackage", "package.kind",
                   package=package("2.0", [("BMS", "ecu", f[0])], kind="patch"))
        self.fails("addPackage", "package.ecus[0].type",
                   package=package("2.0", [("BMS", "module", f[0])]))
        self.fails("addPackage", "package.ecus",
                   package=dict(package("2.0", []), ecus=[]))
        self.fails("addPackage", "package.colour: unknown field",
                   package=package("2.0", [("BMS", "ecu", f[0])], colour="red"))
        self.fails("addPackage", "package.id",
                   package=package("2.0", [("BMS", "ecu", f[0])], id=7))
        self.fails("addPackage", "package.prompt",
                   package=package("2.0", [("BMS", "ecu", f[0])], prompt="p" * 4097))
        self.fails("addPackage", "package.ecus[0].file",
                   package=package("2.0", [("BMS", "ecu", f[0])]) |
                   {"ecus": [{"ecu": "BMS", "type": "ecu", "version": "1"}]})
        self.fails("addPackage", "package")
        self.fails("addPackage", "foo: unknown field",
                   package=package("2.0", [("BMS", "ecu", f[0])]), foo=1)
        # Nothing of those was stored: the next package gets the next id.
        self.assertEqual(self.add_package(other_from), 3)
        self.fails("getPackage", "id", id=4)
        self.fails("getPackage", "id", id="1")
        p4 = package("2.0", [("BMS", "ecu", f[3])], series="S2")
        self.assertEqual(self.add_package(p4), 4)
        self.assertEqual(self.ok("getPackage", id=4)["package"],
                         stored_package(p4, 4, self.sizes))

    def test_status_forward_only(self):
        pid = self.add_package(package("1.0", [("BMS", "ecu", self.f[0])]))
        self.assertEqual(self.ok("getPackage", id=pid)["package"]["status"], "draft")
        self.set_status(pid, "verified")
        self.assertEqual(self.ok("getPackage", id=pid)["package"]["status"], "verified")
        self.fails("setPackageStatus", "status", id=pid, status="draft")
        self.set_status(pid, "released")
        self.assertEqual(self.ok("getPackage", id=pid)["package"]["status"], "released")
        self.fails("setPackageStatus", "status", id=pid, status="verified")
        self.fails("setPackageStatus", "status", id=pid, status="draft")
        self.fails("setPackageStatus", "status", id=pid, status="published")
        self.fails("setPackageStatus", "id", id=99, status="verified")
        self.fails("setPackageStatus", "status", id=pid)
        self.assertEqual(self.ok("getPackage", id=pid)["package"]["status"], "released")

    def test_versions_and_listing(self):
        f = self.f
        ids = {}
        for v in ("1.9", "1.10", "2.0", "1.2.1"):
            ids[v] = self.add_package(package(v, [("BMS", "ecu", f[0])]))
        ids["2.0d"] = self.add_package(package("2.0", [("BMS", "ecu", f[1])], kind="delta",
                                               frm="1.10"))
        ids["S2 3.0"] = self.add_package(package("3.0", [("VCU", "ecu", f[2])], series="S2"))
        ids["EX7 0.5"] = self.add_package(package("0.5", [("ADAS", "ecu", f[3])],
                                                  model="EX7"))
        # maxVersion compares numerically: 2.0 > 1.10 > 1.9 > 1.2.1.
        self.assertEqual(self.ok("maxVersion", model=M, series=S),
                         {"version": "2.0", "id": ids["2.0"]})
        self.assertEqual(self.ok("maxVersion", model=M, series=S, released=False),
                         {"version": "2.0", "id": ids["2.0"]})
        self.fails("maxVersion", model=M, series=S, released=True)  # none released
        self.set_status(ids["1.9"], "verified", "released")
        self.assertEqual(self.ok("maxVersion", model=M, series=S, released=True),
                         {"version": "1.9", "id": ids["1.9"]})
        self.set_status(ids["1.10"], "verified", "released")
        self.set_status(ids["2.0"], "verified")
        self.assertEqual(self.ok("maxVersion", model=M, series=S, released=True),
                         {"version": "1.10", "id": ids["1.10"]})
        self.assertEqual(self.ok("maxVersion", model=M, series=S),
                         {"version": "2.0", "id": ids["2.0"]})
        self.assertEqual(self.ok("maxVersion", model=M, series="S2"),
                         {"version": "3.0", "id": ids["S2 3.0"]})
        self.fails("maxVersion", model="EX9", series=S)
        self.fails("maxVersion", "series", model=M)
        # getVersion: the full package of that version.
        for v in ("1.10", "2.0", "1.2.1"):
            self.assertEqual(self.ok("getVersion", model=M, series=S, version=v),
                             self.ok("getPackage", id=ids[v]))
        self.fails("getVersion", "version", model=M, series=S, version="9.9")
        self.fails("getVersion", model=M, series="S2", version="2.0")
        # listPackages: every package once, in (model, series, version) order.
        everything = {pid: self.ok("getPackage", id=pid)["package"] for pid in ids.values()}

        def listed(expect_ids, **filters):
            got = self.ok("listPackages", **filters)["packages"]
            self.assertEqual(sorted(p["id"] for p in got), sorted(expect_ids), filters)
            for p in got:
                full = everything[p["id"]]
                for k in ("model", "series", "version", "kind", "status"):
                    self.assertEqual(p.get(k), full[k], (filters, p))
            keys = [(p["model"], p["series"], version_key(p["version"])) for p in got]
            self.assertEqual(keys, sorted(keys), "listPackages %r order: %r" % (
                filters, [(p["model"], p["series"], p["version"]) for p in got]))
            return got

        listed(list(ids.values()))
        got = listed([ids[k] for k in ("1.9", "1.10", "2.0", "1.2.1", "2.0d")], model=M,
                     series=S)
        self.assertEqual([p["version"] for p in got][:3], ["1.2.1", "1.9", "1.10"])
        listed([ids[k] for k in ids if k != "EX7 0.5"], model=M)
        listed([ids["S2 3.0"]], model=M, series="S2")
        listed([ids["EX7 0.5"]], model="EX7")
        listed([], model="EX9")
        self.fails("listPackages", "colour: unknown field", colour="red")


class Strategies(CatalogCase):

    def test_strategies_and_bindings(self):
        self.start()
        self.models()
        vins = [ot.vin(i) for i in range(1, 5)]
        self.ok("upsertVehicles", vehicles=[minimal_vehicle(i) for i in range(1, 5)])
        st1 = {"id": "st1", "package_kind": "auto", "compare_version": "auto",
               "ecus": [{"ecu": "BMS", "order": 0}, {"ecu": "VCU", "order": 1, "upgrade": False},
                        {"ecu": "GW"}]}
        st1_stored = {"id": "st1", "package_kind": "auto", "compare_version": "auto",
                      "ecus": [{"ecu": "BMS", "order": 0, "upgrade": True},
                               {"ecu": "VCU", "order": 1, "upgrade": False},
                               {"ecu": "GW", "upgrade": True}]}
        self.assertEqual(self.ok("setStrategy", strategy=st1), {})
        self.assertEqual(self.ok("getStrategy", id="st1"),
                         {"strategy": st1_stored, "defaults": [], "vins": 0})
        # Any model's ECU will do (ADAS is EX7's); an ECU of no model will not.
        st2 = {"id": "st2", "package_kind": "full", "compare_version": "never",
               "ecus": [{"ecu": "ADAS", "order": 0, "upgrade": True},
                        {"ecu": "BMS", "order": 1, "upgrade": True}]}
        self.ok("setStrategy", strategy=st2)
        self.fails("setStrategy", "strategy.ecus[1].ecu",
                   strategy=dict(st2, id="st3", ecus=[{"ecu": "BMS"}, {"ecu": "XYZ"}]))
        self.fails("setStrategy", "strategy.package_kind",
                   strategy=dict(st2, id="st3", package_kind="fast"))
        self.fails("setStrategy", "strategy.compare_version",
                   strategy=dict(st2, id="st3", compare_version="sometimes"))
        self.fails("setStrategy", "strategy.ecus[0].colour: unknown field",
                   strategy=dict(st2, id="st3", ecus=[{"ecu": "BMS", "colour": 1}]))
        self.fails("setStrategy", "strategy.ecus[0].order",
                   strategy=dict(st2, id="st3", ecus=[{"ecu": "BMS", "order": -1}]))
        self.fails("getStrategy", "id", id="st3")
        # Bindings: the model/series default, and VINs.
        self.assertEqual(self.ok("bindStrategy", id="st1", model=M, series=S), {"bound": 1})
        self.assertEqual(self.ok("bindStrategy", id="st1", vins=vins[:3]), {"bound": 3})
        self.assertEqual(self.ok("getStrategy", id="st1"),
                         {"strategy": st1_stored, "defaults": [{"model": M, "series": S}],
                          "vins": 3})
        # A model/series has one default; a VIN one strategy.
        st4 = {"id": "st4", "package_kind": "full", "compare_version": "never",
               "ecus": [{"ecu": "BMS", "order": 0, "upgrade": True}]}
        self.ok("setStrategy", strategy=st4)
        self.assertEqual(self.ok("bindStrategy", id="st4", model=M, series=S), {"bound": 1})
        self.ok("bindStrategy", id="st4", model=M, series="S2")
        self.ok("bindStrategy", id="st4", vins=[vins[0], vins[3]])
        d1, d4 = self.ok("getStrategy", id="st1"), self.ok("getStrategy", id="st4")
        self.assertEqual((d1["defaults"], d1["vins"]), ([], 2))
        self.assertEqual(sorted((x["model"], x["series"]) for x in d4["defaults"]),
                         [(M, S), (M, "S2")])
        self.assertEqual(d4["vins"], 2)
        # Refusals.
        self.fails("bindStrategy", "id", id="nope", model=M, series=S)
        self.fails("bindStrategy", "series", id="st1", model=M)
        self.fails("bindStrategy", id="st1")
        self.fails("bindStrategy", id="st1", model="EX9", series=S)
        self.fails("bindStrategy", "vins[1]", id="st1", vins=[vins[0], "BAD"])
        self.fails("getStrategy", "id", id="nope")
        self.assertEqual(self.ok("getStrategy", id="st1")["vins"], 2)
        # setStrategy replaces the strategy; its bindings stay.
        st1b = {"id": "st1", "package_kind": "delta", "compare_version": "always",
                "ecus": [{"ecu": "TBOX", "order": 5, "upgrade": True}]}
        self.ok("setStrategy", strategy=st1b)
        self.assertEqual(self.ok("getStrategy", id="st1"),
                         {"strategy": st1b, "defaults": [], "vins": 2})
        # A strategy may name ECUs of several models ("every ECU must be declared by some
        # model"): st2 (ADAS of EX7, BMS of both) is the default of EX7/S1 and of EX5/S1;
        # a package's ECUs outside the strategy are simply not upgraded (SPEC section 6).
        self.assertEqual(self.ok("bindStrategy", id="st2", model="EX7", series="S1",
                                 vins=[vins[1]]), {"bound": 2})
        self.ok("bindStrategy", id="st2", model=M, series=S)
        d2 = self.ok("getStrategy", id="st2")
        self.assertEqual(sorted((x["model"], x["series"]) for x in d2["defaults"]),
                         sorted([("EX7", "S1"), (M, S)]))
        self.assertEqual(d2["vins"], 1)


class Lists(CatalogCase):

    def test_all_four_lists(self):
        self.start()
        expect = {}
        for n, name in enumerate(LISTS):
            a, b, c, d = (ot.vin(10 * n + k, "LNBSC") for k in (1, 2, 3, 4))
            self.assertEqual(self.ok("addToList", list=name, vins=[c, a, b]), {"added": 3})
            self.assertEqual(self.ok("addToList", list=name, vins=[a, d]), {"added": 1})
            self.assertEqual(self.ok("getList", list=name), {"vins": [a, b, c, d]})
            self.assertEqual(self.ok("removeFromList", list=name, vins=[b, ot.vin(999)]),
                             {"removed": 1})
            expect[name] = [a, c, d]
        for name in LISTS:  # each list kept its own VINs
            self.assertEqual(self.ok("getList", list=name), {"vins": expect[name]})
        for cmd in ("addToList", "removeFromList"):
            self.fails(cmd, "list", list="greylist", vins=[ot.vin(1)])
            self.fails(cmd, "vins", list="blacklist", vins=[])
            self.fails(cmd, "vins", list="blacklist")
            self.fails(cmd, "vins[1]", list="blacklist", vins=[ot.vin(500), "LSVTA0000000000O1"])
            self.fails(cmd, "lists: unknown field", list="blacklist", lists=[ot.vin(1)],
                       vins=[ot.vin(1)])
        self.fails("getList", "list", list="greylist")
        self.fails("getList", "list")
        # A failed add changed nothing; removing everything empties a list.
        self.assertEqual(self.ok("getList", list="blacklist"), {"vins": expect["blacklist"]})
        self.assertEqual(self.ok("removeFromList", list="blacklist", vins=expect["blacklist"]),
                         {"removed": 3})
        self.assertEqual(self.ok("getList", list="blacklist"), {"vins": []})
        self.assertEqual(self.ok("getList", list="forced_whitelist"),
                         {"vins": expect["forced_whitelist"]})


class Requests(CatalogCase):

    def test_commands_in_order_see_each_other(self):
        self.start()
        v = minimal_vehicle(1, "EX9", "S9")
        rs = self.batch([
            {"command": "getVehicle", "vin": v["vin"]},
            {"command": "upsertVehicles", "vehicles": [v]},  # EX9/S9 not set yet
            {"command": "setModel", "model": "EX9", "series": "S9", "supports_config_word": False},
            {"command": "upsertVehicles", "vehicles": [v]},
            {"command": "getVehicle", "vin": v["vin"]},
            {"command": "noSuchCommand"},
            {"command": "addToList", "list": "blacklist", "vins": [v["vin"]]},
            {"command": "getList", "list": "blacklist"},
            {"command": "deleteVehicle", "vin": v["vin"]},
            {"command": "getVehicle", "vin": v["vin"]},
            {"command": "getStats"},
        ])
        self.assertIn("error", rs[0])
        self.assertIn("vehicles[0].model", rs[1].get("error", ""), rs[1])
        self.assertEqual(rs[2].get("data"), {}, rs[2])
        self.assertEqual(rs[3].get("data"), {"upserted": 1}, rs[3])
        self.assertEqual(rs[4].get("data"), {"vehicle": with_defaults(v)}, rs[4])
        self.assertIn("unknown command", rs[5].get("error", ""), rs[5])
        self.assertEqual(rs[6].get("data"), {"added": 1}, rs[6])
        self.assertEqual(rs[7].get("data"), {"vins": [v["vin"]]}, rs[7])
        self.assertEqual(rs[8].get("data"), {}, rs[8])
        self.assertIn("error", rs[9])
        self.assertEqual(rs[10]["data"]["catalog"]["vehicles"], 0)

    def test_request_errors(self):
        self.start()
        r = self.a.command("noSuchCommand", correlationData="x1")
        self.assertIn("unknown command", r.get("error", ""), r)
        self.assertEqual(r.get("correlationData"), "x1")
        r = self.a.command("getStats")
        self.assertNotIn("correlationData", r)
        for bad in ("{not json", "", "null", "[1, 2]", '{"commands": {}}',
                    '{"commands": "getStats"}'):
            r = self.a.control_raw(bad)
            rs = r.get("responses")
            self.assertIsInstance(rs, list, (bad, r))
            self.assertTrue(rs and all("error" in x for x in rs), (bad, r))
        r = self.a.control_raw(json.dumps({"commands": [{"vin": ot.vin(1)}, 5]}))
        self.assertEqual(len(r["responses"]), 2, r)
        self.assertTrue(all("error" in x for x in r["responses"]), r)
        # Unknown fields are refused, naming them.
        self.fails("getVehicle", "colour: unknown field", vin=ot.vin(1), colour="red")
        self.fails("getList", "lst: unknown field", list="blacklist", lst="x")
        self.fails("uploadStatus", "sha256", sha256="nothex")
        self.fails("uploadStatus", "sha255: unknown field", sha256="0" * 64, sha255="x")
        # The broker still serves.
        self.assertIn("catalog", self.a.stats())
        # Every command refuses unknown fields, getStats too.
        self.fails("getStats", "colour: unknown field", colour="red")

    def test_trailing_garbage_is_bad_json(self):
        # A request with something after its JSON value is not JSON: answered with an
        # error, not run (a truncated or concatenated request must not half-run).
        self.start()
        for bad in ('{"commands": [{"command": "addToList", "list": "blacklist", '
                    '"vins": ["%s"]}]} trailing' % ot.vin(1),
                    '{"commands": [{"command": "addToList", "list": "blacklist", '
                    '"vins": ["%s"]}]}{"commands": []}' % ot.vin(1)):
            r = self.a.control_raw(bad)
            rs = r.get("responses")
            self.assertTrue(rs and all("error" in x for x in rs), (bad, r))
        self.assertEqual(self.ok("getList", list="blacklist"), {"vins": []})

    def test_non_operator_is_denied_and_answered_nothing(self):
        b, a = self.start()
        s0 = a.stats()
        req = json.dumps({"commands": [{"command": "addToList", "list": "blacklist",
                                        "vins": [ot.vin(1)]}]}).encode()
        raw = self.raw(b, "eve-raw", username="eve")
        self.assertEqual(raw.publish("$CONTROL/ota/v1", req), DENIED)
        raw.close()
        car = self.raw(b, ot.vin(2))  # a vehicle is no operator either
        self.assertEqual(car.publish("$CONTROL/ota/v1", req), DENIED)
        car.close()
        eve = self.client(ot.Client, b, "eve", username="eve")
        self.assertEqual(eve.subscribe("$CONTROL/ota/v1/response"), DENIED)
        eve.subscribe("#")  # whatever the broker grants: nothing of ours may arrive
        eve.publish("$CONTROL/ota/v1", req)
        eve.publish("$CONTROL/ota/v1", json.dumps({"commands": [{"command": "getStats"}]}))
        self.assertEqual(eve.quiet(), [], "a non-operator got an answer")
        self.assertEqual(self.ok("getList", list="blacklist"), {"vins": []})
        s1 = a.stats()
        self.assertGreaterEqual(s1["acl_denied"] - s0["acl_denied"], 4)


class Persistence(CatalogCase):
    """Everything answered is in the store: it survives a clean restart and a kill -9."""

    def build(self):
        self.models()
        self.vins = [ot.vin(i) for i in range(1, 6)]
        vs = [full_vehicle(1), minimal_vehicle(2), full_vehicle(3, M, "S2"),
              minimal_vehicle(4, "EX7", "S1"), dict(full_vehicle(5), passenger=True)]
        self.ok("upsertVehicles", vehicles=vs)
        self.ok("deleteVehicle", vin=ot.vin(2))
        self.fset = [self.put_file(os.urandom(n)) for n in (1000, 200_000, 70_000)]
        f = self.fset
        self.pids = [
            self.add_package(package("1.9", [("BMS", "ecu", f[0]), ("VCU", "component", f[1])],
                                     prompt="p", result_info="r", encrypted=True,
                                     content_key="22" * 32)),
            self.add_package(package("1.10", [("BMS", "ecu", f[1])])),
            self.add_package(package("1.10", [("BMS", "ecu", f[2])], kind="delta", frm="1.9")),
            self.add_package(package("1.0", [("ADAS", "ecu", f[2])], model="EX7")),
        ]
        self.set_status(self.pids[0], "verified", "released")
        self.set_status(self.pids[1], "verified")
        self.strategies = ["st1", "st2"]
        self.ok("setStrategy", strategy={"id": "st1", "package_kind": "auto",
                                         "compare_version": "auto",
                                         "ecus": [{"ecu": "BMS", "order": 0},
                                                  {"ecu": "VCU", "upgrade": False}]})
        self.ok("setStrategy", strategy={"id": "st2", "package_kind": "full",
                                         "compare_version": "never",
                                         "ecus": [{"ecu": "ADAS", "order": 2}]})
        self.ok("bindStrategy", id="st1", model=M, series=S)
        self.ok("bindStrategy", id="st2", model="EX7", series="S1", vins=[ot.vin(4)])
        self.ok("bindStrategy", id="st1", vins=[ot.vin(1), ot.vin(3)])
        for n, name in enumerate(LISTS):
            self.ok("addToList", list=name, vins=[ot.vin(100 + n + k) for k in range(3)])
        self.ok("removeFromList", list="blacklist", vins=[ot.vin(101)])

    def snapshot(self):
        """Everything the catalog answers, in one request."""
        cmds = [{"command": "getModel", "model": m["model"], "series": m["series"]}
                for m in (MODEL, MODEL_S2, MODEL_EX7, {"model": "EX8", "series": "S1"})]
        cmds += [{"command": "getVehicle", "vin": v} for v in self.vins]
        cmds += [{"command": "getPackage", "id": pid} for pid in self.pids]
        cmds += [{"command": "getFile", "sha256": s} for s in self.fset]
        cmds += [{"command": "uploadStatus", "sha256": s} for s in self.fset]
        cmds += [{"command": "getStrategy", "id": s} for s in self.strategies]
        cmds += [{"command": "getList", "list": name} for name in LISTS]
        cmds += [{"command": "listPackages"},
                 {"command": "maxVersion", "model": M, "series": S},
                 {"command": "maxVersion", "model": M, "series": S, "released": True}]
        rs = self.batch(cmds)
        snap = {}
        for c, r in zip(cmds, rs):
            key = json.dumps({k: v for k, v in c.items() if k != "correlationData"},
                             sort_keys=True)
            snap[key] = r.get("data", "ERROR")
        snap["vehicle count"] = self.a.stats()["catalog"]["vehicles"]
        for s in self.fset:
            snap["on disk " + s] = ot.sha256_hex((self.files / s).read_bytes())
        return snap

    def reconnect(self, name):
        self.a.close()
        self.a = self.admin(self.b, client_id=name, nodelay=True)

    def assertSameCatalog(self, before, after, when):
        for k in before:
            self.assertEqual(after.get(k), before[k], "%s: %s" % (when, k))
        self.assertEqual(set(after), set(before))

    def test_clean_restart_and_kill9(self):
        self.start()
        self.build()
        snap1 = self.snapshot()
        self.assertEqual(snap1["vehicle count"], 4)
        self.a.close()
        self.b.restart()
        self.reconnect("admin-2")
        self.assertSameCatalog(snap1, self.snapshot(), "after a clean restart")
        # Changes after the restart, then more the kill must not lose.
        self.ok("setModel", model="EX8", series="S1", supports_config_word=True, ecus=["HU"])
        self.fset.append(self.put_file(os.urandom(90_000)))
        self.pids.append(self.add_package(package("2.0", [("BMS", "ecu", self.fset[3])])))
        self.assertEqual(self.pids[-1], 5, "ids continue after a restart")
        self.ok("upsertVehicles", vehicles=[full_vehicle(6, "EX8", "S1")])
        self.vins.append(ot.vin(6))
        snap2 = self.snapshot()
        # The last changes: answered, then kill -9 at once.
        v7 = full_vehicle(7, "EX8", "S1")
        late = self.batch([
            {"command": "upsertVehicles", "vehicles": [v7]},
            {"command": "deleteVehicle", "vin": ot.vin(5)},
            {"command": "setPackageStatus", "id": self.pids[-1], "status": "verified"},
            {"command": "addToList", "list": "downgrade_whitelist", "vins": [ot.vin(7)]},
            {"command": "bindStrategy", "id": "st2", "vins": [ot.vin(6)]},
            {"command": "setStrategy", "strategy": {"id": "st3", "package_kind": "delta",
                                                    "compare_version": "always",
                                                    "ecus": [{"ecu": "HU", "order": 0}]}},
        ])
        for r in late:
            self.assertNotIn("error", r, r)
        self.b.kill9()
        # What those changes should have made of the catalog.
        self.vins.append(ot.vin(7))
        self.strategies.append("st3")
        expect = dict(snap2)
        expect[json.dumps({"command": "getVehicle", "vin": ot.vin(7)}, sort_keys=True)] = \
            {"vehicle": v7}
        expect[json.dumps({"command": "getVehicle", "vin": ot.vin(5)}, sort_keys=True)] = "ERROR"
        expect["vehicle count"] = snap2["vehicle count"]  # one added, one deleted
        pkey = json.dumps({"command": "getPackage", "id": self.pids[-1]}, sort_keys=True)
        expect[pkey] = {"package": dict(snap2[pkey]["package"], status="verified")}
        lkey = json.dumps({"command": "listPackages"}, sort_keys=True)
        expect[lkey] = {"packages": [dict(p, status="verified") if p["id"] == self.pids[-1]
                                     else p for p in snap2[lkey]["packages"]]}
        dkey = json.dumps({"command": "getList", "list": "downgrade_whitelist"}, sort_keys=True)
        expect[dkey] = {"vins": sorted(snap2[dkey]["vins"] + [ot.vin(7)])}
        s2key = json.dumps({"command": "getStrategy", "id": "st2"}, sort_keys=True)
        expect[s2key] = dict(snap2[s2key], vins=snap2[s2key]["vins"] + 1)
        expect[json.dumps({"command": "getStrategy", "id": "st3"}, sort_keys=True)] = {
            "strategy": {"id": "st3", "package_kind": "delta", "compare_version": "always",
                         "ecus": [{"ecu": "HU", "order": 0, "upgrade": True}]},
            "defaults": [], "vins": 0}
        self.b.start()
        self.reconnect("admin-3")
        self.assertSameCatalog(expect, self.snapshot(), "after kill -9")
        # The store and the catalog agree on what comes next.
        self.assertEqual(self.add_package(package("2.1", [("BMS", "ecu", self.fset[0])])), 6)


# ---------------------------------------------------------------------------------------
# otactl


OTACTL = os.environ.get("OTA_OTACTL", "")


class Otactl(CatalogCase):

    def setUp(self):
        super().setUp()
        if not OTACTL or not Path(OTACTL).exists():
            self.skipTest("otactl not built (OTA_OTACTL=%r)" % OTACTL)

    def otactl(self, *args, ok=True):
        cmd = [OTACTL, "--host", "127.0.0.1", "--port", str(self.b.port), "--user", ot.ADMIN,
               "--timeout", str(int(ot.TIMEOUT)), "--json", *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=3 * ot.TIMEOUT)
        if ok:
            self.assertEqual(p.returncode, 0, "%s\nstdout: %s\nstderr: %s" %
                             (" ".join(cmd), p.stdout, p.stderr))
        return p

    def json_out(self, p):
        """The last line of stdout that is a JSON object."""
        for line in reversed(p.stdout.splitlines()):
            if line.strip().startswith("{"):
                return json.loads(line)
        self.fail("no JSON object on stdout: %r" % p.stdout)

    def test_import_get_lists_stats(self):
        self.start()
        self.models()
        vs = [full_vehicle(1), minimal_vehicle(2), dict(minimal_vehicle(3), passenger=False,
                                                         fw="2.0")]
        cols = ["vin", "model", "series", "platform", "status", "usage", "sold", "activated",
                "passenger", "config_word", "fw", "public_key"]

        def cell(v, c):
            x = v.get(c)
            return "" if x is None else ("true" if x is True else "false" if x is False else x)
        csv = self.tmp / "vehicles.csv"
        csv.write_text(",".join(cols) + "\n" +
                       "".join(",".join(cell(v, c) for c in cols) + "\n" for v in vs))
        d = self.json_out(self.otactl("vehicle", "import", str(csv)))
        self.assertEqual(d.get("upserted"), 3, d)
        for v in vs:
            self.assertEqual(self.ok("getVehicle", vin=v["vin"]), {"vehicle": with_defaults(v)})
        self.assertEqual(self.json_out(self.otactl("vehicle", "get", ot.vin(1))),
                         {"vehicle": with_defaults(vs[0])})
        p = self.otactl("vehicle", "get", ot.vin(9), ok=False)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn(ot.vin(9), p.stderr + p.stdout)
        # Lists.
        self.assertEqual(self.json_out(self.otactl("list", "add", "blacklist", ot.vin(3),
                                                   ot.vin(1))), {"added": 2})
        self.assertEqual(self.json_out(self.otactl("list", "get", "blacklist")),
                         {"vins": [ot.vin(1), ot.vin(3)]})
        self.assertEqual(self.ok("getList", list="blacklist"), {"vins": [ot.vin(1), ot.vin(3)]})
        p = self.otactl("list", "get", "greylist", ok=False)
        self.assertNotEqual(p.returncode, 0, p)
        # Stats.
        st = self.json_out(self.otactl("stats"))
        self.assertEqual(st["catalog"]["vehicles"], 3, st)
        self.assertIn("reports_accepted", st)


if __name__ == "__main__":
    ot.main()
