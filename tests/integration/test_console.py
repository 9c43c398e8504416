#!/usr/bin/python3
"""Integration: the web console (tools/console/, docs/console.md) in a real browser.

Headless Chromium (python3-selenium + chromium-driver) loads the console from Debian's
websockify, which also relays its MQTT-over-WebSocket to a real broker with the plugin.
The operator logs in, looks at the fleet, uploads a file with the progress bar, adds and
releases a package, previews a target query and creates a task from it, watches a simulated
fleet (ota-fleet campaign mode, with injected failures) finish it live, and opens a vehicle.
What must show a clear message: a refused command, a lost connection (websockify killed,
then back), a wrong password (a broker with a password file).

Screenshots of every page go into the test's directory, and into OTA_CONSOLE_SHOTS when set
(docs/console/ is made that way: OTA_CONSOLE_SHOTS=docs/console)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import otatest as ot  # noqa: E402
from test_catalog_api import CatalogCase, package  # noqa: E402

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # python3-selenium missing: the test skips (setUp)
    webdriver = None

FLEET = os.environ.get("OTA_FLEET", "")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WEBSOCKIFY = shutil.which("websockify") or "/usr/bin/websockify"
M, S = "EX5", "S1"
SEED = "console-seed"
N = 20  # vehicles in the campaign
WAIT = 60 * ot.SCALE  # generous: the machine is shared


def www_dir():
    """tools/console/build.sh into the build directory (npm ci from the lock file)."""
    out = Path(ot.TEST_TMP).parent / "console"
    subprocess.run(["bash", str(ot.REPO / "tools" / "console" / "build.sh"), str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return out / "www"


class Relay:
    """websockify serving the console and relaying ws://127.0.0.1:port to the broker."""

    def __init__(self, www, broker_port, log):
        self.www, self.broker_port, self.log = www, broker_port, log
        self.port = ot.free_port()
        self.proc = None
        self.start()

    def start(self):
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([WEBSOCKIFY, "--web", str(self.www),
                                      "127.0.0.1:%d" % self.port,
                                      "127.0.0.1:%d" % self.broker_port],
                                     stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        out.close()

        def up():
            if self.proc.poll() is not None:
                raise ot.HarnessError("websockify exited: %s" % Path(self.log).read_text())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        ot.wait_until(up, timeout=WAIT, msg="websockify listening")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d/" % self.port


class ConsoleCase(CatalogCase):

    def setUp(self):
        super().setUp()
        if webdriver is None:
            self.skipTest("python3-selenium is not installed")
        if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
            self.skipTest("chromium / chromedriver are not installed")
        if not Path(WEBSOCKIFY).exists():
            self.skipTest("websockify is not installed")
        self.www = www_dir()
        self.relays = []
        self.shots = [self.tmp / "shots"]
        if os.environ.get("OTA_CONSOLE_SHOTS"):
            self.shots.append(Path(os.environ["OTA_CONSOLE_SHOTS"]))
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1360,1000", "--force-device-scale-factor=1",
                  "--user-data-dir=%s" % (self.tmp / "chromium")):
            opts.add_argument(a)
        self.driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
        self.addCleanup(self.driver.quit)
        self.addCleanup(lambda: [r.stop() for r in self.relays])

    # ---- helpers ----
    def relay(self, broker):
        r = Relay(self.www, broker.port, self.tmp / ("websockify%d.log" % len(self.relays)))
        self.relays.append(r)
        return r

    def until(self, cond, msg, timeout=WAIT):
        """Waits for cond(driver) to be truthy; a stale element means try again."""
        def safe(d):
            try:
                return cond(d)
            except (StaleElementReferenceException, WebDriverException) as e:
                if isinstance(e, StaleElementReferenceException) or "stale" in str(e):
                    return False
                raise
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(safe)
        except Exception as e:
            self.shot("failure")
            raise AssertionError("%s: %s\nbanner: %r\npage: %s" % (
                msg, type(e).__name__, self.text("banner"), self.text("main")[:3000])) from None

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def text(self, el_id):
        try:
            return self.driver.find_element(By.ID, el_id).text
        except WebDriverException:
            return ""

    def shown(self, css):
        els = self.driver.find_elements(By.CSS_SELECTOR, css)
        return els[0] if els and els[0].is_displayed() else None

    def shot(self, name):
        self.driver.execute_script("window.scrollTo(0, 0)")
        for d in self.shots:
            d.mkdir(parents=True, exist_ok=True)
            # the whole page, not only the window: size the window to the document
            h = self.driver.execute_script("return document.documentElement.scrollHeight")
            self.driver.set_window_size(1360, max(800, min(int(h) + 20, 2400)))
            self.driver.save_screenshot(str(d / ("%s.png" % name)))
            self.driver.set_window_size(1360, 1000)

    def go(self, hash_, ready_css):
        self.driver.execute_script("location.hash = arguments[0]", hash_)
        return self.until(lambda d: self.shown(ready_css), "page %s shows %s" % (hash_, ready_css))

    def login(self, relay, user, password):
        self.driver.get(relay.url)
        self.until(lambda d: self.shown("#login-form"), "login form")
        for fid, v in (("login-url", "ws://127.0.0.1:%d/" % relay.port), ("login-user", user),
                       ("login-pass", password)):
            el = self.find("#" + fid)
            el.clear()
            el.send_keys(v)
        self.find("#login-go").click()

    def fill(self, form_css, **values):
        for k, v in values.items():
            el = self.find("%s [name=%s]" % (form_css, k))
            if el.tag_name == "select":
                Select(el).select_by_value(v)
            else:
                el.clear()
                el.send_keys(v)


class Console(ConsoleCase):

    def setup_fleet(self):
        self.start(signing_key=str(self.tmp / "ota-signing.pem"))
        self.ok("setModel", model=M, series=S, supports_config_word=False, ecus=["BMS", "VCU"])
        self.ok("setModel", model="EX7", series="S2", supports_config_word=False, ecus=["BMS"])
        keys = subprocess.run([FLEET, "keys", "--vehicles", str(N), "--key-seed", SEED],
                              check=True, capture_output=True, text=True).stdout
        vehicles = [{"vin": v, "model": M, "series": S, "status": "sold", "usage": "retail",
                     "sold": True, "activated": True, "fw": "1.0", "public_key": k}
                    for v, k in (line.split(",") for line in keys.split())]
        # vehicles that the campaign's query leaves out: already updated, or another model
        vehicles += [{"vin": ot.vin(i, "LSVTB"), "model": M, "series": S, "status": "in_stock",
                      "usage": "fleet", "fw": "2.0"} for i in range(6)]
        vehicles += [{"vin": ot.vin(i, "LSVTC"), "model": "EX7", "series": "S2",
                      "status": "sold", "usage": "retail", "fw": "3.1"} for i in range(9)]
        self.ok("upsertVehicles", vehicles=vehicles)
        files = [(ecu, "ecu", self.put_file(ecu.encode() * size))
                 for ecu, size in (("BMS", 9000), ("VCU", 6000))]
        pid = self.add_package(package("2.0", files, model=M, series=S))
        self.set_status(pid, "released")
        self.ok("setStrategy", strategy={"id": "s", "package_kind": "full",
                                         "compare_version": "always",
                                         "ecus": [{"ecu": "BMS", "order": 0},
                                                  {"ecu": "VCU", "order": 1}]})
        self.ok("bindStrategy", id="s", model=M, series=S)

    def run_fleet(self):
        cmd = [FLEET, "campaign", "--port", str(self.b.port), "--vehicles", str(N),
               "--pub", str(self.tmp / "ota-signing.pem.pub"), "--key-seed", SEED,
               "--fw", "1.0", "--block-size", "1024", "--window", "8",
               "--install-step", "0.3", "--failure-rate", "0.25", "--seed", "3",
               "--request-timeout", "2", "--json", "--quiet", "--timeout", str(90 * ot.SCALE)]
        out = open(self.tmp / "fleet.log", "wb")
        p = subprocess.Popen(cmd, stdout=out, stderr=out)
        out.close()
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        return p

    def test_campaign_in_the_browser(self):
        if not FLEET or not Path(FLEET).exists():
            self.skipTest("ota-fleet not built")
        self.setup_fleet()
        relay = self.relay(self.b)
        self.login(relay, ot.ADMIN, "")

        # fleet overview: the summary and the vehicle list
        self.until(lambda d: self.shown("#vehicles"), "fleet page with its vehicle list")
        # (read through until(): the page may render them again, making an element stale)
        self.until(lambda d: "35" in self.find(".stats").text, "35 vehicles")  # 20 + 6 + 9
        self.until(lambda d: "EX7" in self.text("main"), "model EX7 listed")
        self.shot("fleet")

        # packages: upload with the progress bar, add, verify, release; a refused add
        self.go("#/packages", "#packages")
        blob = self.tmp / "bms-2.1.bin"
        blob.write_bytes(os.urandom(700 * 1024))  # three chunks of 256 KiB
        self.find("#upload-file").send_keys(str(blob))
        self.find("#upload-go").click()
        sha = ot.sha256_hex(blob.read_bytes())
        self.until(lambda d: self.text("upload-sha") == sha, "upload stored")
        self.assertEqual(self.find("#upload-bar span").get_attribute("style"), "width: 100%;")
        self.assertTrue((self.files / sha).exists(), "the plugin stored the file")
        self.fill("#add-package", model=M, series=S, version="2.1", ecu="BMS",
                  baseline="EX5 2.1: BMS")
        self.find("#add-package button[type=submit]").click()
        self.until(lambda d: "Package 2 added" in self.text("banner"), "package 2 added")
        self.until(lambda d: self.shown("button[data-id='2'][data-action=verified]"),
                   "verify button").click()
        self.until(lambda d: self.shown("button[data-id='2'][data-action=released]"),
                   "release button").click()
        self.until(lambda d: self.shown("button[data-id='2'][data-action=deprecated]"),
                   "package 2 released")
        self.assertEqual(self.ok("getPackage", id=2)["package"]["status"], "released")
        # a refused command: the same package again
        self.fill("#add-package", model=M, series=S, version="2.1", ecu="BMS", sha256=sha,
                  name="bms.bin", baseline="EX5 2.1: BMS")
        self.find("#add-package button[type=submit]").click()
        self.until(lambda d: "addPackage refused" in self.text("banner") and
                   "exists" in self.text("banner"), "a refused command is shown")
        self.shot("packages")

        # a new task from a query, with its preview
        self.go("#/new-task", "#task-form")
        self.fill("#task-form", name="spring-bms", model="%s/%s" % (M, S), version="2.0",
                  fw_below="2.0", status="sold", rate="4")
        self.find("#preview").click()
        self.until(lambda d: self.text("preview-accepted") == str(N), "preview of the query")
        self.shot("new-task")
        self.find("#create").click()
        self.until(lambda d: d.current_url.endswith("#/campaign/T000001") and
                   self.shown("#task-vehicles"), "the new campaign's page")
        self.assertIn("created: %d vehicles accepted" % N, self.text("banner"))

        # the fleet takes the update; the page follows it live
        fleet = self.run_fleet()
        # notices go out at 4/s: the page shows the campaign under way, then finished
        self.until(lambda d: ("active" in self.find("#page h1").text and
                              "succeeded" in self.text("task-vehicles")) or
                   "finished" in self.find("#page h1").text, "live progress")
        self.shot("campaign-live")
        self.until(lambda d: self.text("task-progress") == "100 % done" and
                   "finished" in self.find("#page h1").text, "the campaign finishes", timeout=3 * WAIT)
        self.assertEqual(fleet.wait(timeout=WAIT), 0, (self.tmp / "fleet.log").read_text())
        counts = self.ok("getTask", id="T000001")["counts"]
        self.assertGreater(counts["failed"], 0, counts)
        self.assertEqual(counts["succeeded"] + counts["failed"], N, counts)
        # failures by error word: one row per word, adding up to the task's failed count
        rows = [r.split() for r in self.text("failures").splitlines()[1:]]
        self.assertEqual(sum(int(r[-1]) for r in rows), counts["failed"], rows)
        self.assertIn("succeeded %d" % counts["succeeded"],
                      self.find(".legend").text.replace("\n", " "))
        self.shot("campaign")

        self.go("#/campaigns", "#tasks")
        self.assertIn("spring-bms", self.text("tasks"))
        self.shot("campaigns")

        # a vehicle of the task
        self.go("#/campaign/T000001", "#task-vehicles")
        link = self.find("#task-vehicles tbody a")
        vin = link.text
        link.click()
        self.until(lambda d: self.text("vehicle-vin") == vin and self.shown("#history"),
                   "vehicle page with history")
        self.assertIn("T000001", self.text("past"))
        self.assertIn("upgrade status", self.text("history"))
        self.shot("vehicle")

        # a task by VIN list, then canceled from its page
        vins = [ot.vin(i) for i in range(3)]
        self.go("#/new-task", "#task-form")
        self.fill("#task-form", name="bms-2.1", model="%s/%s" % (M, S), version="2.1")
        self.find("#task-form input[name=by][value=vins]").click()
        self.fill("#task-form", vins="\n".join(vins))
        self.find("#create").click()
        self.until(lambda d: d.current_url.endswith("#/campaign/T000002") and
                   self.shown("#cancel-task"), "the second campaign, active")
        for v in vins:
            self.assertIn(v, self.text("task-vehicles"))
        # the live page redraws every few seconds: click the button as it is now
        self.until(lambda d: self.find("#cancel-task").click() or True, "Cancel clicked")
        self.driver.switch_to.alert.accept()
        self.until(lambda d: "Task T000002 canceled" in self.text("banner") and
                   "canceled" in self.find("#page h1").text, "the task canceled")
        self.assertEqual(self.ok("getTask", id="T000002")["state"], "canceled")

        # lost connection: the relay goes away, then comes back on the same port
        relay.stop()
        self.until(lambda d: "Connection lost" in self.text("banner"), "lost connection shown")
        self.assertIn("connection lost", self.text("conn"))
        self.shot("connection-lost")
        relay.start()
        self.until(lambda d: "Reconnected" in self.text("banner"), "reconnection shown")
        self.go("#/fleet", "#vehicles")

    def test_wrong_password(self):
        pw = self.tmp / "passwd"
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), ot.ADMIN, "s3cret"],
                       check=True, capture_output=True)
        b = self.broker(extra_conf=["allow_anonymous false", "password_file %s" % pw],
                        auth="broker")
        relay = self.relay(b)
        self.login(relay, ot.ADMIN, "wrong")
        self.until(lambda d: "not authorised" in self.text("login-msg"), "refused login shown")
        self.assertIn("wrong username or password", self.text("login-msg"))
        self.assertFalse(self.shown("#nav"))
        self.shot("login-refused")
        self.login(relay, ot.ADMIN, "s3cret")
        self.until(lambda d: self.shown(".stats"), "logged in with the right password")
        self.until(lambda d: "0\nvehicles" in self.find(".stats").text, "0 vehicles shown")

    def test_not_an_operator(self):
        """A broker account that is not in plugin_opt_admin_users cannot subscribe."""
        b, _ = self.start()
        relay = self.relay(b)
        self.login(relay, "viewer", "")
        self.until(lambda d: "is viewer an operator" in self.text("login-msg"),
                   "a non-operator is told why")
        self.assertFalse(self.shown("#nav"))

    def test_no_relay(self):
        """The page loaded, but nothing listens at the WebSocket address given."""
        b, _ = self.start()
        relay = self.relay(b)
        self.driver.get(relay.url)
        self.until(lambda d: self.shown("#login-form"), "login form")
        self.find("#login-url").clear()
        self.find("#login-url").send_keys("ws://127.0.0.1:%d/" % ot.free_port())
        self.find("#login-user").send_keys(ot.ADMIN)
        self.find("#login-go").click()
        self.until(lambda d: "Cannot reach" in self.text("login-msg") or
                   "Login failed" in self.text("login-msg"), "unreachable relay shown")


if __name__ == "__main__":
    unittest.main()
