#!/usr/bin/python3
"""run_with_peer — the ctest fixture of the mongo_peer test double: starts a peer on a
free loopback port, runs one command with OTA_TEST_MONGO_PEER_URI pointing at it, stops
the peer and exits with the command's status (1 if the peer itself failed).

  run_with_peer.py [--db NAME] [--options '?serverSelectionTimeoutMS=2000'] -- CMD ARGS...

The peer's journal and command log go to a fresh directory under OTA_TEST_TMP (kept when
the command fails, and its log's tail is printed).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_proc import Peer, PeerFailed  # noqa: E402

ENV = "OTA_TEST_MONGO_PEER_URI"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default="ota_contract")
    ap.add_argument("--options", default="?serverSelectionTimeoutMS=2000")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    if not cmd:
        ap.error("no command given")
    base = Path(os.environ.get("OTA_TEST_TMP") or tempfile.gettempdir()) / "mongo_peer"
    base.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="fixture-", dir=base))
    try:
        peer = Peer(work)
    except PeerFailed as e:
        print("run_with_peer: %s" % e, file=sys.stderr)
        return 1
    env = dict(os.environ)
    env[ENV] = peer.uri(a.db, a.options)
    print("run_with_peer: %s=%s" % (ENV, env[ENV]), flush=True)
    try:
        rc = subprocess.call(cmd, env=env)
    finally:
        alive = peer.running()
        peer.stop()
    if not alive:
        print("run_with_peer: the peer died during the test\n%s" % peer.tail(),
              file=sys.stderr)
        rc = rc or 1
    if rc == 0:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("run_with_peer: command exited %d; peer log: %s\n%s"
              % (rc, peer.log_path, peer.tail()), file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
