#!/usr/bin/python3
"""Integration: the R156 semantics of issue 17 with python vehicles on a real broker:
install modes in createTask and the notice (forced by default and absent, soft,
download_only with installNow, time_forced with its deadline; the checks of both fields;
otactl task create --install-mode / --install-deadline),
kept in the stored task across a restart; pre-conditions of a strategy in its document
and in the signed description (with the install mode), a vehicle waiting on failed
pre-conditions shown by getVehicleStatus (also after a restart) and going on once they hold;
the same with real ota-agent + ota-ecu-sim processes (consent_cmd declining,
precondition_cmd failing until a file appears, download_only waiting for installNow);
consent reports (accepted / declined / postponed with until) move executions to their
own states, counted by getTask and listed by listTaskVehicles; a declined execution ends
as declined with the driver's reason; a postponed one waits until its time, then gets
the notice again (a new msg_id) and goes on to succeed."""

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
# test_campaign as a module: a TestCase class bound to a name here runs its tests here too
import test_campaign  # noqa: E402
from test_campaign import report  # noqa: E402
from test_tasks import OTACTL, M, S, vehicle  # noqa: E402
from test_pkg import PkgCase  # noqa: E402
from test_shadow import ShadowCar, update  # noqa: E402
import test_agent  # noqa: E402
from test_agent import VIN  # noqa: E402


def ev_consent(task, answer, until=None, reason=None, ts=ot.TS0):
    e = {"type": "consent", "task": task, "ts": ts, "answer": answer}
    if until is not None:
        e["until"] = until
    if reason is not None:
        e["error"] = reason
    return e


class Fleet(test_campaign.Campaign):
    """test_campaign's helpers (its tests run there, not here) and a fleet of cars."""

    def setup_fleet(self, *nums):
        self.start()
        self.catalog()
        self.ok("upsertVehicles", vehicles=[vehicle(i) for i in nums])
        return [self.car(i) for i in nums]


class Consent(Fleet):

    def test_declined_ends_declined(self):
        a, b = self.setup_fleet(20, 21)
        sub = self.client(ot.Client, self.b, "events-sub", username=ot.ADMIN)
        sub.subscribe("ota/v1/events/consent/#")
        tid = self.create([a.vin, b.vin])["id"]
        self.notice_of(a, tid)
        self.notice_of(b, tid)
        report(a, 1, ev_consent(tid, "declined", reason="not now, ever"))
        report(b, 1, ev_consent(tid, "accepted"))
        self.wait_counts(tid, declined=1, accepted=1)
        rows = {r["vin"]: r for r in self.ok("listTaskVehicles", id=tid)["vehicles"]}
        self.assertEqual(rows[a.vin]["state"], "declined")
        self.assertEqual(rows[a.vin]["code"], "not now, ever")
        self.assertEqual(rows[b.vin]["state"], "accepted")
        got = {}
        for _ in range(2):
            m = sub.get()
            got[m.topic.rsplit("/", 1)[1]] = m.json()
        self.assertEqual((got[a.vin]["answer"], got[a.vin]["error"], got[a.vin]["task"]),
                         ("declined", "not now, ever", tid))
        self.assertEqual(got[b.vin]["answer"], "accepted")
        self.assertEqual([r["vin"] for r in self.ok("listTaskVehicles", id=tid,
                                                      state="declined")["vehicles"]], [a.vin])
        # a late consent of a finished execution moves nothing
        report(a, 2, ev_consent(tid, "accepted"))
        report(b, 2, ot.ev_download(task=tid), ot.ev_status(task=tid, status="succeeded"))
        self.wait_counts(tid, declined=1, succeeded=1, accepted=0)
        ot.wait_until(lambda: self.ok("getTask", id=tid)["state"] == "finished",
                      msg="task finished")

    def test_postponed_resends_at_its_time(self):
        (a,) = self.setup_fleet(20)
        tid = self.create([a.vin])["id"]
        first = self.notice_of(a, tid)["msg_id"]
        until = ot.now_ms() + 1500
        report(a, 1, ev_consent(tid, "postponed", until=until))
        self.wait_counts(tid, postponed=1, notified=0)
        again = self.notice_of(a, tid)  # the notice again, once its time came
        self.assertGreaterEqual(ot.now_ms(), until)
        self.assertNotEqual(again["msg_id"], first)
        self.wait_counts(tid, postponed=0, notified=1)
        report(a, 2, ev_consent(tid, "accepted"), ot.ev_status(task=tid, status="succeeded"))
        self.wait_counts(tid, succeeded=1)

    def test_consent_history(self):
        (a,) = self.setup_fleet(20)
        tid = self.create([a.vin])["id"]
        self.notice_of(a, tid)
        report(a, 1, ev_consent(tid, "postponed", until=ot.now_ms() + 3600000, reason="driving"))
        self.wait_counts(tid, postponed=1)
        hist = lambda: self.ok("getVehicleHistory", vin=a.vin, kind="consent")["events"]  # noqa
        ot.wait_until(hist, msg="consent event stored")  # the writer stores it shortly
        evs = hist()
        self.assertEqual([(e["answer"], e["error"]) for e in evs], [("postponed", "driving")])
        self.assertIn("until", evs[0])


class InstallModes(Fleet):

    def test_modes_in_notice(self):
        a, b, c = self.setup_fleet(20, 21, 22)
        t_forced = self.create([a.vin])["id"]
        self.assertNotIn("install_mode", self.notice_of(a, t_forced))
        self.assertNotIn("install_mode", self.ok("getTask", id=t_forced)["task"])
        t_soft = self.create([b.vin], install_mode="soft")["id"]
        n = self.notice_of(b, t_soft)
        self.assertEqual(n["install_mode"], "soft")
        self.assertNotIn("install_deadline", n)
        deadline = ot.now_ms() + 86400000
        t_timed = self.create([c.vin], install_mode="time_forced",
                              install_deadline=deadline)["id"]
        n = self.notice_of(c, t_timed)
        self.assertEqual((n["install_mode"], n["install_deadline"]), ("time_forced", deadline))
        got = self.ok("getTask", id=t_timed)["task"]
        self.assertEqual((got["install_mode"], got["install_deadline"]),
                         ("time_forced", deadline))
        self.b.restart()
        self.a = self.admin(self.b, nodelay=True)
        got = self.ok("getTask", id=t_timed)["task"]
        self.assertEqual((got["install_mode"], got["install_deadline"]),
                         ("time_forced", deadline))

    def test_mode_checks(self):
        self.setup_fleet(20)
        v = [ot.vin(20)]
        self.fails("createTask", "install_mode", task=self.task(v, install_mode="later"))
        self.fails("createTask", "install_deadline", "required when install_mode is time_forced",
                   task=self.task(v, install_mode="time_forced"))
        self.fails("createTask", "install_deadline", "only with install_mode time_forced",
                   task=self.task(v, install_mode="soft", install_deadline=ot.now_ms()))
        tid = self.create(v)["id"]
        self.fails("installNow", "not download_only", id=tid)
        self.fails("installNow", "unknown task", id="T999999")
        if OTACTL and Path(OTACTL).exists():  # otactl task install-now reaches installNow
            p = subprocess.run([OTACTL, "--host", "127.0.0.1", "--port", str(self.b.port),
                                "--user", ot.ADMIN, "task", "install-now", tid],
                               capture_output=True, text=True, timeout=6 * ot.TIMEOUT)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("not download_only", p.stderr)
            t2 = self.create(v, install_mode="download_only")["id"]
            p = subprocess.run([OTACTL, "--host", "127.0.0.1", "--port", str(self.b.port),
                                "--user", ot.ADMIN, "task", "install-now", t2],
                               capture_output=True, text=True, timeout=6 * ot.TIMEOUT)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("install command sent to", p.stdout)

    def test_otactl_create_install_mode(self):
        """otactl task create --install-mode MODE [--install-deadline TIME] reaches
        createTask; a mode otactl does not know is a usage error before any request."""
        if not (OTACTL and Path(OTACTL).exists()):
            self.skipTest("otactl not built")
        a = self.setup_fleet(20)[0]
        base = [OTACTL, "--host", "127.0.0.1", "--port", str(self.b.port), "--user", ot.ADMIN,
                "task", "create", "--name", "cli", "--type", "normal", "--model", M,
                "--series", S, "--version", "2.0", "--vins", a.vin]

        def run(*extra):
            return subprocess.run(base + list(extra), capture_output=True, text=True,
                                  timeout=6 * ot.TIMEOUT)
        deadline = ot.now_ms() + 86400000
        p = run("--install-mode", "time_forced", "--install-deadline", str(deadline))
        self.assertEqual(p.returncode, 0, p.stderr)
        tid = p.stdout.split()[1]  # "id: T..."
        got = self.ok("getTask", id=tid)["task"]
        self.assertEqual((got["install_mode"], got["install_deadline"]),
                         ("time_forced", deadline))
        self.assertEqual(self.notice_of(a, tid)["install_mode"], "time_forced")
        p = run("--install-mode", "later")
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--install-mode: expected forced, soft", p.stderr)
        p = run("--install-mode", "time_forced")  # the plugin checks the pairing
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("required when install_mode is time_forced", p.stderr)

    def test_download_only_installs_after_install_now(self):
        a, b = self.setup_fleet(20, 21)
        tid = self.create([a.vin, b.vin], install_mode="download_only")["id"]
        first = self.notice_of(a, tid)
        self.assertEqual(first["install_mode"], "download_only")
        self.assertNotIn("install_now", first)
        self.notice_of(b, tid)
        report(a, 1, ot.ev_download(task=tid, pct=100),
               ot.ev_status(task=tid, status="downloaded"))
        self.wait_counts(tid, downloading=1)
        self.fails("installNow", "not in task", id=tid, vins=[ot.vin(30)])
        self.assertEqual(self.ok("installNow", id=tid, vins=[a.vin])["sent"], 1)
        now = self.notice_of(a, tid)
        self.assertEqual((now["install_now"], now["msg_id"]), (True, first["msg_id"]))
        report(a, 2, ot.ev_upgrade_progress(task=tid, pct=50),
               ot.ev_status(task=tid, status="succeeded"))
        self.wait_counts(tid, succeeded=1, notified=1)
        b.quiet()  # b got nothing: installNow named a only
        self.assertFalse([m for m in b.received() if "shadow/delta" in m.topic])


PRE = {"battery_min_pct": 40, "parked": True, "not_charging": True}


class Preconditions(PkgCase):

    def test_in_strategy_and_description(self):
        self.setup_catalog()
        st = {"id": "own", "package_kind": "full", "compare_version": "never",
              "ecus": [{"ecu": "BMS", "order": 5}], "preconditions": PRE}
        self.ok("setStrategy", strategy=st)
        self.assertEqual(self.ok("getStrategy", id="own")["strategy"]["preconditions"], PRE)
        self.fails("setStrategy", "strategy.preconditions.battery_min_pct",
                   strategy=dict(st, preconditions={"battery_min_pct": 101}))
        self.fails("setStrategy", "strategy.preconditions",
                   strategy=dict(st, preconditions={"fuel": True}))
        tid = self.ok("createTask", task={"name": "soft", "type": "normal", "model": "EX5",
                                          "series": "S1", "version": "2.0",
                                          "vins": [ot.vin(4)], "install_mode": "soft"})["id"]
        self.ok("bindStrategy", id="own", vins=[ot.vin(4)])
        v = self.vehicle(self.b, ot.vin(4))
        d = self.verify(self.get(v, task=tid))
        self.assertEqual(d["preconditions"], PRE)
        self.assertEqual(d["install_mode"], "soft")
        v1 = self.vehicle(self.b, ot.vin(1))
        d = self.verify(self.get(v1))  # the first task: forced, default strategy
        self.assertNotIn("preconditions", d)
        self.assertNotIn("install_mode", d)

    def test_waiting_shown_then_goes_on(self):
        self.setup_catalog()
        v = self.client(ShadowCar, self.b, ot.vin(1))
        v.update(update(fw="1.0"))
        v.accepted()
        status = lambda: self.ok("getVehicleStatus", vin=v.vin)["latest_status"]  # noqa
        v.report(1, [ot.ev_status(task=self.tid, status="waiting")
                     | {"conditions": "battery,parked"}])
        ot.wait_until(lambda: (status() or {}).get("failed_conditions") == ["battery", "parked"],
                      msg="failed conditions shown")
        self.assertEqual(status()["status"], "waiting")
        v.report(2, [ot.ev_status(task=self.tid, status="waiting", ts=ot.TS0 + 1)
                     | {"conditions": "not_charging"}])
        ot.wait_until(lambda: status().get("failed_conditions") == ["not_charging"])
        self.a.wait_drained()
        v.close()  # or its automatic reconnect (same client id) takes the new one's
        self.b.restart()
        self.a = self.admin(self.b, nodelay=True)
        self.assertEqual(status()["failed_conditions"], ["not_charging"])  # from the store
        v = self.client(ShadowCar, self.b, ot.vin(1))
        v.report(3, [ot.ev_status(task=self.tid, status="upgrading", ts=ot.TS0 + 2),
                     ot.ev_status(task=self.tid, status="succeeded", ts=ot.TS0 + 3)])
        ot.wait_until(lambda: status()["status"] == "succeeded")
        self.assertNotIn("failed_conditions", status())
        ot.wait_until(lambda: self.ok("getTask", id=self.tid)["counts"]["succeeded"] == 1)
        bad = ot.ev_status(task=self.tid, status="waiting") | {"conditions": "fuel"}
        v.report(4, [bad])
        self.assertIn("conditions", v.error()["msg"])


class Agent(test_agent.AgentCase):
    """The agent's half: its hooks, with a real ota-agent flashing ota-ecu-sim ECUs."""

    def test_declined_consent_ends_declined(self):
        self.campaign(install_mode="soft")
        self.start_sim()
        p = self.start_agent(self.config(consent_cmd="echo decline"))
        self.wait_exit(p)
        ot.wait_until(lambda: self.counts()["declined"] == 1, msg="declined")
        self.assertEqual(self.counts()["succeeded"], 0)
        self.assertIn("consent declined", self.log_tail(n=1000))

    def test_failed_precondition_waits_then_goes_on(self):
        self.campaign(install_mode="soft")
        self.start_sim()
        flag = self.tmp / "parked"
        cmd = "sh -c 'test -f %s || { echo parked,battery; exit 1; }'" % flag
        p = self.start_agent(self.config(consent_cmd="echo accept", precondition_cmd=cmd))
        status = lambda: self.ok("getVehicleStatus", vin=VIN)["latest_status"] or {}  # noqa
        ot.wait_until(lambda: status().get("failed_conditions") == ["battery", "parked"],
                      msg="waiting on its pre-conditions")
        self.assertEqual(self.counts()["accepted"], 1)
        flag.write_text("1")
        self.assertEqual(self.wait_exit(p), 0, self.log_tail())
        self.assert_flashed()
        ot.wait_until(lambda: self.counts()["succeeded"] == 1, msg="succeeded")

    def test_download_only_installs_after_install_now(self):
        self.campaign(install_mode="download_only")
        self.start_sim()
        p = self.start_agent(self.config())
        ot.wait_until(lambda: any(s["status"] == "downloaded" for s in self.statuses()),
                      msg="downloaded")
        self.assertIsNone(p.poll())  # waits for installNow
        self.assertFalse(any(s["status"] == "upgrading" for s in self.statuses()))
        self.assertEqual(self.ok("installNow", id=self.tid)["sent"], 1)
        self.assertEqual(self.wait_exit(p), 0, self.log_tail())
        self.assert_flashed()
        ot.wait_until(lambda: self.counts()["succeeded"] == 1, msg="succeeded")


# The base classes' tests run in their own files; here only those defined above.
# (No module-level name may stay bound to a base class: unittest would run its tests too.)
for _cls, _base in ((Agent, test_agent.AgentCase), (Consent, test_campaign.Campaign),
                    (InstallModes, test_campaign.Campaign), (Fleet, test_campaign.Campaign)):
    for _name in dir(_base):
        if _name.startswith("test_") and _name not in _cls.__dict__:
            setattr(_cls, _name, None)
del _cls, _base


if __name__ == "__main__":
    ot.main()
