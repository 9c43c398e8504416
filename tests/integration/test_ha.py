#!/usr/bin/python3
"""Integration: several brokers on one database (the mongo_peer test double), any broker
serves any vehicle (issue 15, docs/mongodb.md "Several brokers").

Three real brokers share `plugin_opt_store mongodb://.../ota`, their file repository and
their signing key. ota-fleet's campaign mode spreads the vehicles over the three
(--ports) and moves a vehicle to the next broker each time its link is lost, so vehicles
notified by one broker resume their downloads, install and report on another. Each
broker is bridged to an events broker (scripts/bridge-events-conf.sh) where a downstream
subscriber reads. 300 vehicles; in the middle of the campaign one broker is killed
(SIGKILL) and restarted on its own disk, as an operator (or systemd) does; its vehicles
reconnect to the others meanwhile. Checked, in the database (read back with pymongo):
every execution final and as many succeeded / failed as the vehicles did (the killed
broker's replay makes the moves its writer had not stored), every acked report stored
once, every vehicle notified, every notice msg_id (task:vin:resends) stored once and
claimed once, the executions that moved from one broker to another read from the store by
the broker they moved to (getStats claims.adopted); downstream, every stored status event
seen exactly once: the restarted broker's replay publishes again, with the same ids, the
events it had published before the kill and not checkpointed, and the events broker's
mosquitto_ota_dedupe.so drops them (OTA_TEST_NO_DEDUPE=1, without it, fails when the
replay republished any).
"""

import collections
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
import test_fleet_campaign as fc  # noqa: E402
from test_catalog_api import CatalogCase  # noqa: E402

FLEET, SEED = fc.FLEET, fc.SEED
BRIDGE_CONF = Path(__file__).resolve().parents[2] / "scripts" / "bridge-events-conf.sh"


class SeveralBrokers(CatalogCase):

    setup_campaign = fc.FleetCampaign.setup_campaign

    def setUp(self):
        super().setUp()
        if not FLEET or not Path(FLEET).exists():
            self.skipTest("ota-fleet not built (OTA_FLEET=%r)" % FLEET)
        self.peer = self.mongo_peer()
        self.uri = self.peer.uri("ota")
        self.mdb = self.mongo_db(self.peer.uri()).db

    def start(self, **kw):
        """Broker 1 (the catalog is made through it), then its two peers on the same
        database, files and signing key (they load the task at start)."""
        kw.update(store=self.uri, broker_id="broker-1", content_kek=self.kek())
        return super().start(**kw)

    def broker(self, **kw):
        """With an events broker, every OTA broker is bridged to it."""
        if "broker_id" in kw and getattr(self, "events", None):
            kw["extra_conf"] = list(kw.get("extra_conf", ())) + self.bridge(kw["broker_id"])
        return super().broker(**kw)

    def kek(self):
        return str(self.tmp / "ota-content.kek")  # the brokers' one content key wrapping key

    def more_brokers(self, n):
        out = []
        for i in range(n):
            b = self.broker(store=self.uri, broker_id="broker-%d" % (i + 2),
                            file_dir=str(self.files), extra_conf=["set_tcp_nodelay true"],
                            signing_key=str(self.tmp / "ota-signing.pem"),
                            content_kek=self.kek())
            out.append((b, self.admin(b, client_id="admin-%d" % (i + 2), nodelay=True)))
        return out

    def fleet(self, n, ports, *extra):
        cmd = [FLEET, "campaign", "--ports", ",".join(str(p) for p in ports),
               "--vehicles", str(n), "--pub", str(self.pub), "--key-seed", SEED,
               "--fw", "1.0", "--block-size", "1024", "--window", "8",
               "--install-step", "0.05", "--request-timeout", "2", "--reconnect",
               "--json", "--timeout", str(120 * ot.SCALE)]
        return subprocess.Popen(cmd + list(extra), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def finish(self, proc):
        out, err = proc.communicate(timeout=240 * ot.SCALE)
        self.assertTrue(out.strip(), "no summary; stderr:\n%s" % err[-3000:])
        return proc.returncode, json.loads(out), err

    def finals(self, tid):
        st = self.stored_states(tid)
        return st["succeeded"] + st["failed"]

    def stored_states(self, tid):
        c = collections.Counter()
        for d in self.mdb["ota_task_vin"].find({"task": tid}, {"state": 1}):
            c[d["state"]] += 1
        return c

    def events_broker(self):
        """Plain Mosquitto where downstream services read (docs/mongodb.md "Events
        downstream"), and a downstream subscriber on it; each broker is bridged to it with
        the configuration scripts/bridge-events-conf.sh prints; it drops duplicates
        (mosquitto_ota_dedupe.so, docs/events.md)."""
        self.events = self.broker(plugin=False, extra_conf=ot.dedupe_conf())
        self.downstream = self.client(ot.Client, self.events, "downstream")
        self.assertEqual(self.downstream.subscribe("ota/v1/events/status/+"), 1)

    def bridge(self, broker_id):
        out = subprocess.run([str(BRIDGE_CONF), broker_id, "127.0.0.1:%d" % self.events.port],
                             capture_output=True, text=True, check=True).stdout
        return [line for line in out.splitlines() if line and not line.startswith("#")]

    def bridged(self, *ids):
        for i in ids:
            ot.wait_until(lambda: "ota-events-bridge-%s" % i in
                          self.events.log_path.read_text(errors="replace"),
                          msg="the bridge of %s connected" % i)

    def stored_status_keys(self, vins):
        return collections.Counter(k for k in self.store_events.keys("upgrade_status")
                                   if k[0] in vins)

    def test_campaign_survives_a_broker_kill(self):
        n = 300
        self.events_broker()
        tid, _ = self.setup_campaign(n, sizes=(60000, 30000))
        (b2, a2), (b3, a3) = self.more_brokers(2)
        self.bridged("broker-1", "broker-2", "broker-3")
        self.store_events = self.mongo_db(self.peer.uri(), "ota")
        vins = set(s_vins(n))
        proc = self.fleet(n, [self.b.port, b2.port, b3.port], "--failure-rate", "0.1",
                          "--disconnect-rate", "0.1", "--seed", "11")
        try:
            # killed in the middle of the campaign, once every description is stored (a
            # killed broker loses the descriptions its writer had not stored yet, and its
            # vehicles' file/get is refused elsewhere: docs/mongodb.md "Failures")
            # A third of the way: vehicles finish all the time, so broker 3 dies with final
            # reports acked whose execution moves its writer has not stored yet. (Read every
            # 0.2 s: the single-threaded peer serves the brokers too.)
            ot.wait_until(lambda: len(list(self.mdb["ota_vehicle_package_description"]
                          .find({"task": tid}, {"_id": 1}))) >= n and
                          self.finals(tid) >= n // 3, timeout=120 * ot.SCALE,
                          interval=0.2, msg="a third of the campaign done")
            b3.kill9()  # its vehicles reconnect to broker 1 (the next port)
            # The operator's answer (docs/mongodb.md "Failures"): broker 3 restarted on its
            # own disk. Its spool replays what it acked and had not stored, and the reports
            # its execution moves were not stored for (the checkpoint waits for them).
            restart_at = b3.log_path.stat().st_size
            b3.start()
        except Exception:
            proc.kill()
            raise
        rc, s, err = self.finish(proc)
        self.assertEqual(rc, 0, "summary %r\nstderr:\n%s" % (s, err[-3000:]))
        self.assertEqual(s["vehicles_notified"], n, s)
        self.assertEqual(s["succeeded"] + s["failed"], n, s)
        self.assertEqual(s["verify_failures"] + s["error_replies"], 0, s)
        self.assertGreater(s["links_cut"], 0, s)

        # What the vehicles did is what the database holds: every execution final, as many
        # succeeded and failed as the vehicles reported (the killed broker's last moves
        # were made again by its replay).
        def stored():
            return collections.Counter(d["state"] for d in
                                       self.mdb["ota_task_vin"].find({"task": tid}))
        try:
            ot.wait_until(lambda: stored()["succeeded"] + stored()["failed"] == n,
                          timeout=60 * ot.SCALE, msg="every stored execution final")
        except ot.HarnessError:
            late = [(d["vin"], d["state"], d.get("code")) for d in
                    self.mdb["ota_task_vin"].find({"task": tid})
                    if d["state"] not in ("succeeded", "failed")]
            self.fail("stored executions not final: %r, e.g. %r (fleet: %r)"
                      % (stored(), late[:5], s))
        self.assertEqual(stored(), collections.Counter(succeeded=s["succeeded"],
                                                       failed=s["failed"]))
        # every acked report stored once: one event per campaign report, keys unique
        # (per_report fails on an event stored twice)
        reports = {k: c for k, c in self.store_events.per_report().items() if k[0] in vins}
        self.assertEqual(len(reports), s["reports_acked"], "acked reports vs stored reports")
        self.assertEqual(set(reports.values()), {1})
        # every notice once: one row and one claim per msg_id (task:vin:resends), every
        # vehicle notified, each resend of a VIN once
        notices = [d["msg_id"] for d in
                   self.mdb["ota_vehicle_download_notice"].find({"task": tid})]
        self.assertEqual(len(notices), len(set(notices)), "a notice stored twice")
        self.assertEqual({m.split(":")[1] for m in notices}, vins)
        per_vin = collections.Counter(m.split(":")[1] for m in notices)
        for m in notices:
            self.assertLess(int(m.split(":")[2]), per_vin[m.split(":")[1]], m)
        claims = [d["_id"] for d in self.mdb["ota_vehicle_notice_claim"].find({"task": tid})]
        self.assertEqual(sorted(claims), sorted(notices))
        # the vehicles that moved were driven by the broker they moved to
        adopted = sum(a.stats()["claims"]["adopted"] for a in (self.a, a2))
        self.assertGreater(adopted, 0)
        self.downstream_saw_every_status_event(vins, b3, restart_at)

    def downstream_saw_every_status_event(self, vins, b3, restart_at):
        """Every stored status event reached the downstream subscriber exactly once, also
        those that broker 3's replay after its restart published again (docs/mongodb.md
        "Events downstream")."""
        key = (lambda m: (m.json()["vin"], m.json()["seq"], m.json()["index"]))
        want = self.stored_status_keys(vins)
        ot.wait_until(lambda: {key(m) for m in self.downstream.received("ota/v1/events/status/+")}
                      >= set(want), timeout=60 * ot.SCALE,
                      msg="every stored status event downstream")
        self.downstream.quiet("ota/v1/events/status/+")
        msgs = self.downstream.received("ota/v1/events/status/+")
        got = collections.Counter(key(m) for m in msgs)
        self.assertEqual(set(got), set(want), "downstream events that are not stored")
        replayed = 0  # status events broker 3 sent after its restart
        with open(b3.log_path, "rb") as f:
            f.seek(restart_at)
            for line in f.read().decode(errors="replace").splitlines():
                replayed += ("Sending PUBLISH to ota-events-local" in line and
                             "events/status/" in line)
        twice = {k: c for k, c in got.items() if c > 1}
        print("downstream: %d status events, %d seen more than once (broker 3's replay sent "
              "%d; the events broker dropped %d duplicates of every kind)"
              % (len(got), len(twice), replayed,
                 self.events.log().count("ota-dedupe: duplicate dropped")), file=sys.stderr)
        self.assertEqual(twice, {}, "each status event exactly once downstream")
        ids = collections.Counter(m.json()["id"] for m in msgs)
        self.assertEqual(len(ids), len(got), "one id per (vin, seq, index)")


def s_vins(n):
    out = subprocess.run([FLEET, "keys", "--vehicles", str(n), "--key-seed", SEED],
                         check=True, capture_output=True, text=True).stdout
    return [line.split(",")[0] for line in out.split()]


if __name__ == "__main__":
    ot.main()
