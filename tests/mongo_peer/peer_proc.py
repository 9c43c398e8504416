"""peer_proc — start, stop, pause and restart the mongo_peer test double from tests.

Peer(dir) starts mongo_peer.py (Debian's /usr/bin/python3) with its journal and command
log in dir, on a free loopback port (port 0 the first time, then the same port again on
restart, so a broker's URI stays valid across an outage). Used by the peer's own tests,
the integration harness (otatest.py) and run_with_peer.py (ctest fixture).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "mongo_peer.py"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


class PeerFailed(AssertionError):
    pass


class Peer:
    def __init__(self, workdir, persist=True, quiet=False, start=True):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = self.dir / "peer.journal" if persist else None
        self.log_path = self.dir / "peer.log"
        self.quiet = quiet
        self.port = 0
        self.proc = None
        self.paused = False
        if start:
            self.start()

    def uri(self, db="ota", options=""):
        return "mongodb://127.0.0.1:%d/%s%s" % (self.port, db, options)

    def start(self, timeout=10):
        assert self.proc is None, "peer already running"
        cmd = [PYTHON, str(SCRIPT), "--port", str(self.port), "--log", str(self.log_path)]
        if self.data:
            cmd += ["--data", str(self.data)]
        if self.quiet:
            cmd.append("--quiet")
        deadline = time.monotonic() + timeout
        while True:  # the old port may linger briefly after a stop
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         stdin=subprocess.DEVNULL, text=True)
            line = self.proc.stdout.readline()
            if line.startswith("mongo-peer listening on"):
                self.port = int(line.rsplit(":", 1)[1])
                return self
            err = self.proc.communicate()[1]
            self.proc = None
            if time.monotonic() > deadline or "Address already in use" not in err:
                raise PeerFailed("mongo_peer did not start: %s %s" % (line, err[-2000:]))
            time.sleep(0.2)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pause(self):
        """SIGSTOP: the peer holds its connections but answers nothing."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self, kill=False):
        """SIGTERM (or SIGKILL: no clean shutdown; the journal keeps what was
        acknowledged); returns the exit status."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if self.paused:
            proc.send_signal(signal.SIGCONT)
            self.paused = False
        proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        return proc.returncode

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, n=30):
        return "\n".join(["--- %s" % self.log_path] + self.log().splitlines()[-n:])
