#!/usr/bin/python3
"""Integration: the README's "A whole campaign by hand" runs as written (issue 18).

The test takes the README's ```sh block under that heading, and runs it with bash in an
empty directory against a real broker with the plugin (OTACTL_PORT points otactl at it;
`otactl` is the built binary). Simulated vehicles of the README's fleet are connected
before; while the script runs, a thread answers each vehicle's task notice as a real one
would (download, install, succeeded), so `otactl task watch` ends. Then the results are
checked: the task finished with the sold vehicles succeeded, the export file has a row per
vehicle, and the in-stock vehicle was not in the task.
"""

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_shadow import ShadowCar, topic, update  # noqa: E402

README = Path(__file__).resolve().parents[2] / "README.md"
OTACTL = ot._env_path("OTA_OTACTL", ot._build_dir() / "tools" / "otactl" / "otactl")
FLEET = ["LSVTA000000000001", "LSVTA000000000002", "LSVTA000000000003"]


def readme_block(heading="### A whole campaign by hand"):
    text = README.read_text()
    start = text.index(heading)
    m = re.search(r"```sh\n(.*?)```", text[start:], re.S)
    if not m:
        raise ot.HarnessError("no ```sh block under %r in README.md" % heading)
    return m.group(1)


class Responder(threading.Thread):
    """Answers every task notice of the cars like a vehicle that installs it."""

    def __init__(self, cars):
        super().__init__(daemon=True)
        self.cars, self.stop, self.done = cars, threading.Event(), set()

    def run(self):
        seq = {c.vin: 1 for c in self.cars}
        while not self.stop.is_set():
            for c in self.cars:
                try:
                    d = c.get(topic(c.vin, "shadow/delta"), timeout=0.1).cbor()
                except AssertionError:
                    continue
                t = (d.get("desired") or {}).get("task")
                if not t or c.vin in self.done:
                    continue
                for ev in (ot.ev_download(task=t["task"]),
                           ot.ev_upgrade_progress(task=t["task"]),
                           ot.ev_status(task=t["task"], status="succeeded", fw="2.1.0")):
                    c.report(seq[c.vin], [ev])
                    seq[c.vin] += 1
                self.done.add(c.vin)


class ReadmeCampaign(ot.OtaTestCase):

    def test_readme_campaign_runs_as_written(self):
        if not Path(OTACTL).exists():
            raise ot.HarnessError("otactl not found: %s (set OTA_OTACTL)" % OTACTL)
        script = readme_block()
        self.assertIn("otactl task create", script)
        self.assertIn("otactl task export", script)
        # the README's operator is ota-admin (the test's admin client too)
        b = self.broker(file_dir=str(self.tmp / "files"), admin_users="ota-admin,%s" % ot.ADMIN)
        cars = []
        for v in FLEET:
            c = self.client(ShadowCar, b, v)
            c.update(update(fw="2.0.9"))
            c.accepted()
            cars.append(c)
        responder = Responder(cars)
        responder.start()
        self.addCleanup(responder.stop.set)
        work = self.tmp / "work"
        work.mkdir()
        bindir = self.tmp / "bin"
        bindir.mkdir()
        (bindir / "otactl").symlink_to(OTACTL)
        env = dict(os.environ, OTACTL_PORT=str(b.port), PATH="%s:%s" % (bindir, os.environ["PATH"]))
        env.pop("LD_PRELOAD", None)
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
        env["LSAN_OPTIONS"] = "suppressions=%s:print_suppressions=0" % ot.LSAN_SUPP
        p = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=work, env=env,
                           capture_output=True, text=True, timeout=ot.TIMEOUT * 12)
        self.assertEqual(p.returncode, 0, "README block failed:\nstdout:\n%s\nstderr:\n%s"
                         % (p.stdout, p.stderr))
        for marker in ot.SANITIZER_MARKERS:
            self.assertNotIn(marker, p.stderr)
        self.assertIn("id: 1\n", p.stdout)
        self.assertIn("id: T000001\n", p.stdout)
        self.assertIn("accepted: 2\n", p.stdout)
        rows = (work / "spring.csv").read_text().splitlines()
        self.assertEqual(rows[0], "vin,state,code,attempts,notified_at,updated_at,fw,target,rxswin_before,rxswin_after,rxswin")
        self.assertEqual(sorted(r.split(",")[0] for r in rows[1:]), FLEET[:2])
        for r in rows[1:]:
            f = r.split(",")
            self.assertEqual((f[1], f[3], f[7]), ("succeeded", "1", "2.1.0"), r)
        self.assertEqual(responder.done, set(FLEET[:2]))  # the in-stock one got no notice
        admin = self.admin(b)
        self.assertEqual(admin.command("getTask", id="T000001")["data"]["state"], "finished")


if __name__ == "__main__":
    ot.main()
