#!/usr/bin/python3
"""Integration: the R156 semantics of issue 17 with python vehicles on a real broker:
consent reports (accepted / declined / postponed with until) move executions to their
own states, counted by getTask and listed by listTaskVehicles; a declined execution ends
as declined with the driver's reason; a postponed one waits until its time, then gets
the notice again (a new msg_id) and goes on to succeed."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_campaign import Campaign, report  # noqa: E402
from test_tasks import vehicle  # noqa: E402


def ev_consent(task, answer, until=None, reason=None, ts=ot.TS0):
    e = {"type": "consent", "task": task, "ts": ts, "answer": answer}
    if until is not None:
        e["until"] = until
    if reason is not None:
        e["error"] = reason
    return e


class Consent(Campaign):

    def setup_fleet(self, *nums):
        self.start()
        self.catalog()
        self.ok("upsertVehicles", vehicles=[vehicle(i) for i in nums])
        return [self.car(i) for i in nums]

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
            m = sub.get(timeout=5)
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


if __name__ == "__main__":
    ot.main()
