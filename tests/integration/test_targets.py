#!/usr/bin/python3
"""Integration: targeting by query, groups and previewTarget (issue 16) through a real
broker, on the catalog of test_tasks (every rejection code has a vehicle).

previewTarget counts what createTask would do, checked against createTask itself given
the same VINs explicitly (computed here by a brute-force filter over the fleet as this
file built it); createTask with a target resolves it to exactly those VINs, keeps its
query, and the task survives a restart; field errors name the field; groups (static and
dynamic) are set, listed, shown, used by targets, refused when they would close a cycle
or are still named, and survive a restart on SQLite and on MongoDB (the wire-protocol test
peer); otactl's `group` and `task preview` commands.
"""

import json
import os
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_tasks import FLEET, M, S, TaskCase  # noqa: E402

OTACTL = os.environ.get("OTA_OTACTL", "")


def version_key(v):
    """ota_version_cmp's order: dot-separated parts, numbers numerically."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in v.split(".")]


def below(fw, limit):
    return fw is not None and version_key(fw) < version_key(limit)


def brute(pred):
    """VINs of the fleet (EX5/S1 only: a task's target is its model/series) with pred."""
    return sorted(v["vin"] for v, _ in FLEET.values()
                  if v["model"] == M and v["series"] == S and pred(v))


class TargetCase(TaskCase):

    def restart(self):
        """Restarts the broker with a new operator client; the old one is closed first, or
        its automatic reconnection (same client id) would take the new one's session."""
        self.a.close()
        self.b.restart()
        self.a = self.admin(self.b, nodelay=True)

    def target_task(self, target, **kw):
        """createTask's task object with a target instead of VINs."""
        t = self.task(None, **kw)
        del t["vins"]
        t["target"] = target
        return t

    def preview(self, target, **kw):
        return self.ok("previewTarget", task=self.target_task(target, **kw))

    def create_target(self, target, **kw):
        return self.ok("createTask", task=self.target_task(target, **kw))

    def check_groups(self):
        """Sets a static and a dynamic group, uses and shows them; returns the listing."""
        self.assertEqual(self.ok("setGroup", group={"name": "pilot",
                                                    "vins": [ot.vin(1), ot.vin(2), ot.vin(99)]}),
                         {"name": "pilot", "kind": "static", "size": 3})
        self.assertEqual(self.ok("setGroup", group={"name": "sold",
                                                    "query": {"status": ["sold"]}}),
                         {"name": "sold", "kind": "dynamic", "size": 1})
        self.ok("setGroup", group={"name": "sold_pilot", "query": {"groups": ["pilot", "sold"]}})
        self.assertEqual(self.ok("previewTarget", target={"groups": ["pilot"]}), {"matched": 2})
        self.assertEqual(self.ok("previewTarget", target={"groups": ["sold_pilot"]}),
                         {"matched": 1})
        g = self.ok("getGroup", name="pilot", members=True)
        self.assertEqual(g["vins"], [ot.vin(1), ot.vin(2), ot.vin(99)])
        g = self.ok("getGroup", name="sold", members=True)
        self.assertEqual(g, {"name": "sold", "kind": "dynamic", "size": 1,
                             "query": {"status": ["sold"]}, "vins": [ot.vin(2)]})
        # listVehicles by group (issue 18): members the catalog knows, static or dynamic.
        for name, want in (("pilot", [ot.vin(1), ot.vin(2)]), ("sold_pilot", [ot.vin(2)])):
            got = self.ok("listVehicles", group=name)
            self.assertEqual(([v["vin"] for v in got["vehicles"]], got["total"]),
                             (want, len(want)), name)
        self.fails("listVehicles", "unknown group \"ghost\"", group="ghost")
        return self.ok("listGroups")

    def counts(self, data):
        """{code or "accepted": n} of a createTask answer."""
        out = {"accepted": len(data["accepted"])}
        for r in data["rejected"]:
            out[r["code"]] = out.get(r["code"], 0) + 1
        return out


class Preview(TargetCase):

    def test_preview_counts_what_create_does(self):
        self.start()
        self.catalog()
        for target, pred in [
            ({}, lambda v: True),
            ({"fw_below": "2.0"}, lambda v: below(v.get("fw"), "2.0")),
            ({"status": ["in_stock", "scrapped"], "usage": ["retail"]},
             lambda v: v["status"] in ("in_stock", "scrapped") and v["usage"] == "retail"),
            ({"not_lists": ["blacklist"], "config_bits_set": [0]},
             lambda v: v["vin"] != ot.vin(5) and v.get("config_word", "0")[-1] in "13579BDF"),
        ]:
            vins = brute(pred)
            p = self.preview(target)
            self.assertEqual(p["matched"], len(vins), target)
            self.assertNotIn("task_error", p)
            made = self.counts(self.create(vins))
            self.assertEqual(dict(p["rejected"], accepted=p["accepted"]), made, target)
        # A bare target only counts (every model: VIN 3 is an EX7).
        self.assertEqual(self.ok("previewTarget", target={}), {"matched": len(FLEET)})
        self.assertEqual(self.ok("previewTarget", target={"model": "EX7"}), {"matched": 1})
        # The task-level rule that would fail the task is named; nothing fails the preview.
        p = self.preview({}, version="9.9")
        self.assertEqual(p["task_error"], "E_NO_PACKAGE")
        p = self.preview({"model": M, "vin_prefix": "Z"})
        self.assertEqual((p["matched"], p["task_error"]), (0, "E_EMPTY_VINS"))
        # previewTarget created nothing: the four tasks above are T000001..T000004.
        self.assertEqual(self.create([ot.vin(1)])["id"], "T000005")

    def test_preview_errors_name_the_field(self):
        self.start()
        self.catalog()
        self.fails("previewTarget", "task: missing (or target)")
        self.fails("previewTarget", "give either task or target", target={}, task={})
        self.fails("previewTarget", "target.colour: unknown field", target={"colour": 1})
        self.fails("previewTarget", "target.groups[0]: unknown group \"nope\"",
                   target={"groups": ["nope"]})
        self.fails("previewTarget", "task.target.status[1]: duplicate",
                   task={"name": "x", "type": "normal", "model": M, "series": S,
                         "version": "2.0", "target": {"status": ["sold", "sold"]}})


class CreateWithTarget(TargetCase):

    def test_target_resolves_to_the_brute_force_vins(self):
        self.start()
        self.catalog()
        target = {"status": ["in_stock", "sold"], "fw_below": "2.5"}
        vins = brute(lambda v: v["status"] in ("in_stock", "sold") and below(v.get("fw"), "2.5"))
        d = self.create_target(target)
        self.assertEqual(sorted(d["accepted"] + [r["vin"] for r in d["rejected"]]), vins)
        explicit = self.create(vins)
        self.assertEqual(self.counts(d), self.counts(explicit))
        self.assertEqual(self.outcome(d), self.outcome(explicit))
        before = self.ok("listTaskVehicles", id=d["id"])
        self.restart()
        self.assertEqual(self.ok("listTaskVehicles", id=d["id"]), before)

    def test_target_errors(self):
        self.start(max_task_vins=3)
        self.catalog()
        t = self.task([ot.vin(1)])
        t["target"] = {}
        self.fails("createTask", "task.vins: give either vins or target, not both", task=t)
        self.fails("createTask", "task.target.model: \"EX7\" is not the task's model",
                   task=self.target_task({"model": "EX7"}))
        err = self.fails("createTask", "E_TOO_LARGE: task.target: ", task=self.target_task({}))
        self.assertIn("at most 3 in one task", err)
        # A preview may look past the limit, and says so.
        self.assertTrue(self.preview({})["too_large"])
        # The empty match is a task-level error, as an empty VIN list is.
        self.fails("createTask", "E_EMPTY_VINS", task=self.target_task({"vin_prefix": "Z"}))


class Groups(TargetCase):

    def test_static_and_dynamic_groups(self):
        self.start()
        self.catalog()
        listing = self.check_groups()
        self.assertEqual([g["name"] for g in listing["groups"]], ["pilot", "sold", "sold_pilot"])
        # A cycle through the new definition, an unknown group, a group still named.
        self.fails("setGroup", "unknown group \"ghost\"",
                   group={"name": "x", "query": {"groups": ["ghost"]}})
        self.fails("setGroup", "a cycle?", group={"name": "pilot",
                                                  "query": {"groups": ["sold_pilot"]}})
        self.fails("deleteGroup", "is named by dynamic group \"sold_pilot\"", name="pilot")
        self.fails("deleteGroup", "name: unknown group", name="ghost")
        self.fails("setGroup", "group.vins: missing (or query", group={"name": "y"})
        self.fails("setGroup", "group.vins[0]: ", group={"name": "y", "vins": ["BAD"]})
        # A task over a group.
        d = self.create_target({"groups": ["pilot"]})
        self.assertEqual(d["accepted"], [ot.vin(1), ot.vin(2)])
        # Replacing a static group's members; the groups survive a restart.
        self.ok("setGroup", group={"name": "pilot", "vins": [ot.vin(6)]})
        self.restart()
        self.assertEqual(self.ok("getGroup", name="pilot", members=True)["vins"], [ot.vin(6)])
        self.assertEqual(self.ok("deleteGroup", name="sold_pilot"), {"deleted": 1})
        self.assertEqual(self.ok("deleteGroup", name="pilot"), {"deleted": 1})
        self.restart()
        self.assertEqual(self.ok("listGroups"),
                         {"groups": [{"name": "sold", "kind": "dynamic", "size": 1}]})


class MongoGroups(TargetCase):

    def test_groups_on_mongodb(self):
        peer = self.mongo_peer()
        self.start(store=peer.uri("ota"))
        self.catalog()
        self.check_groups()
        self.ok("setGroup", group={"name": "pilot", "vins": [ot.vin(6)]})
        self.restart()
        self.assertEqual(self.ok("getGroup", name="pilot", members=True)["vins"], [ot.vin(6)])
        self.assertEqual(len(self.ok("listGroups")["groups"]), 3)
        self.assertEqual(self.ok("deleteGroup", name="sold_pilot"), {"deleted": 1})
        self.restart()
        self.assertEqual([g["name"] for g in self.ok("listGroups")["groups"]], ["pilot", "sold"])


class OtactlGroups(TargetCase):

    def setUp(self):
        super().setUp()
        if not OTACTL or not Path(OTACTL).exists():
            self.skipTest("otactl not built (OTA_OTACTL=%r)" % OTACTL)

    def otactl(self, *args):
        cmd = [OTACTL, "--host", "127.0.0.1", "--port", str(self.b.port), "--user", ot.ADMIN,
               "--timeout", str(int(ot.TIMEOUT * 3)), "--json"]
        p = subprocess.run(cmd + list(args), capture_output=True, text=True,
                           timeout=6 * ot.TIMEOUT)
        self.assertEqual(p.returncode, 0, "%s\nstdout: %s\nstderr: %s" %
                         (" ".join(cmd + list(args)), p.stdout, p.stderr))
        return json.loads(p.stdout) if p.stdout.strip() else None

    def test_group_and_preview_commands(self):
        self.start()
        self.catalog()
        qf = self.tmp / "q.json"
        qf.write_text('{"status": ["sold"]}')
        self.assertEqual(self.otactl("group", "set", "pilot", "--vins",
                                     "%s,%s" % (ot.vin(1), ot.vin(2)))["size"], 2)
        self.assertEqual(self.otactl("group", "set", "sold", "--query", "@" + str(qf))["kind"],
                         "dynamic")
        self.assertEqual([g["name"] for g in self.otactl("group", "list")["groups"]],
                         ["pilot", "sold"])
        self.assertEqual(self.otactl("group", "get", "pilot", "--members")["vins"],
                         [ot.vin(1), ot.vin(2)])
        self.assertEqual(self.otactl("task", "preview", "--target", '{"groups":["pilot"]}'),
                         {"matched": 2})
        p = self.otactl("task", "preview", "--type", "normal", "--model", M, "--series", S,
                        "--version", "2.0", "--target", "{}")
        self.assertEqual(p["matched"], len(brute(lambda v: True)))
        d = self.otactl("task", "create", "--name", "cli", "--type", "normal", "--model", M,
                        "--series", S, "--version", "2.0", "--target", '{"groups":["sold"]}')
        self.assertEqual(d["accepted"], [ot.vin(2)])
        self.otactl("group", "delete", "pilot")
        self.assertEqual([g["name"] for g in self.otactl("group", "list")["groups"]], ["sold"])


if __name__ == "__main__":
    unittest.main()
