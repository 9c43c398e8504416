#!/usr/bin/python3
"""Integration: several brokers on one database (the mongo_peer test double), any broker
serves any vehicle (issue 15, docs/mongodb.md "Several brokers").

Three real brokers share `plugin_opt_store mongodb://.../ota`, their file repository and
their signing key. ota-fleet's campaign mode spreads the vehicles over the three
(--ports) and moves a vehicle to the next broker each time its link is lost, so vehicles
notified by one broker resume their downloads, install and report on another. In the
middle of the downloads one broker is killed (SIGKILL); its vehicles reconnect to the
others. Checked, in the database (read back with pymongo): every vehicle notified, every
notice msg_id stored once and claimed once, the stored executions' final states equal to
what the vehicles did (succeeded / failed), and the executions that moved from one broker
to another were read from the store by the broker they moved to (getStats claims.adopted).
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

    def stored_states(self, tid):
        c = collections.Counter()
        for d in self.mdb["ota_task_vin"].find({"task": tid}, {"state": 1}):
            c[d["state"]] += 1
        return c

    @staticmethod
    def lost(stored, killed_log):
        """VINs in flight in the store that reported to the killed broker."""
        return sorted(v for v, st in stored.items() if st not in ("succeeded", "failed") and
                      ("'ota/v1/%s/report'" % v) in killed_log)

    def test_campaign_survives_a_broker_kill(self):
        n = 120
        tid, _ = self.setup_campaign(n, sizes=(60000, 30000))
        (b2, a2), (b3, a3) = self.more_brokers(2)
        proc = self.fleet(n, [self.b.port, b2.port, b3.port], "--failure-rate", "0.1",
                          "--disconnect-rate", "0.1", "--seed", "11")
        try:
            # killed in the middle of the downloads, once every description is stored (a
            # killed broker loses what its writer had not stored yet: docs/mongodb.md)
            ot.wait_until(lambda: len(list(self.mdb["ota_vehicle_package_description"]
                          .find({"task": tid}, {"_id": 1}))) >= n and
                          self.stored_states(tid)["downloading"] >= 10,
                          timeout=60 * ot.SCALE, interval=0.005, msg="downloads under way")
        except Exception:
            proc.kill()
            raise
        b3.kill9()  # its vehicles reconnect to broker 1 (the next port)
        rc, s, err = self.finish(proc)
        self.assertEqual(rc, 0, "summary %r\nstderr:\n%s" % (s, err[-3000:]))
        self.assertEqual(s["vehicles_notified"], n, s)
        self.assertEqual(s["succeeded"] + s["failed"], n, s)
        self.assertEqual(s["verify_failures"] + s["error_replies"], 0, s)
        self.assertGreater(s["links_cut"], 0, s)
        # what the vehicles did is what the database holds
        # What the vehicles did is what the database holds, except the last moves of
        # vehicles whose final reports the killed broker acked but had not stored yet:
        # its writer's lag (the events are in its spool: docs/mongodb.md "Failures").
        # Those are in flight in the store, and were on the killed broker.
        def stored():
            return {d["vin"]: d["state"] for d in self.mdb["ota_task_vin"].find({"task": tid})}
        on_killed = b3.log_path.read_text(errors="replace")
        ot.wait_until(lambda: sum(st in ("succeeded", "failed") for st in stored().values())
                      + len(self.lost(stored(), on_killed)) == n, timeout=30 * ot.SCALE,
                      msg="the stored final states")
        st = stored()
        lost = self.lost(st, on_killed)
        print("lost with the killed broker: %d %r" % (len(lost), lost), file=sys.stderr)
        # How many is the killed writer's lag at the kill: timing, so not asserted (it was
        # 0-6 of 120 unloaded, 27 under the sanitizers on a loaded machine). What is
        # asserted is that each was on the killed broker and is in flight in the store
        # (self.lost), and that the others are final and match what the vehicles did.
        finals = collections.Counter(v for v in st.values() if v in ("succeeded", "failed"))
        self.assertLessEqual(finals["succeeded"], s["succeeded"])
        self.assertLessEqual(finals["failed"], s["failed"])
        self.assertEqual(finals["succeeded"] + finals["failed"] + len(lost), n, st)
        # every notice once: one row and one claim per msg_id, every vehicle notified
        notices = [d["msg_id"] for d in
                   self.mdb["ota_vehicle_download_notice"].find({"task": tid})]
        self.assertEqual(len(notices), len(set(notices)), "a notice stored twice")
        self.assertEqual({m.split(":")[1] for m in notices}, set(s_vins(n)))
        claims = [d["_id"] for d in self.mdb["ota_vehicle_notice_claim"].find({"task": tid})]
        self.assertEqual(sorted(claims), sorted(notices))
        # the vehicles that moved were driven by the broker they moved to
        adopted = sum(a.stats()["claims"]["adopted"] for a in (self.a, a2))
        self.assertGreater(adopted, 0)


def s_vins(n):
    out = subprocess.run([FLEET, "keys", "--vehicles", str(n), "--key-seed", SEED],
                         check=True, capture_output=True, text=True).stdout
    return [line.split(",")[0] for line in out.split()]


if __name__ == "__main__":
    ot.main()
