#!/usr/bin/python3
"""mongo_peer — a MongoDB wire-protocol TEST DOUBLE for mosquitto-ota's tests.

Not a database: a small in-memory server that speaks enough of the MongoDB wire protocol
and commands for the store backend (store/mongo*.c, libmongoc 1.23) and an independent
driver (pymongo) to talk to it, with MongoDB's documented semantics for exactly the
commands and operators the backend uses (COMMANDS.md). See README.md for its limits.

Wire protocol (all little-endian; header = messageLength, requestID, responseTo, opCode):
  - OP_QUERY (2004) on "<db>.$cmd": the drivers' legacy handshake (isMaster/hello) and
    any command sent that way; answered with OP_REPLY (1). A query on a collection
    (legacy find) is refused with the QueryFailure flag.
  - OP_MSG (2013): flagBits (checksumPresent = bit 0, moreToCome = bit 1, exhaustAllowed =
    bit 16; other required bits 2..15 must be 0), sections: kind 0 = the command body,
    kind 1 = a document sequence (size, identifier, documents) merged into the body as
    an array; an optional CRC-32C checksum is verified. moreToCome from the client means
    no reply (unacknowledged write). Replies are OP_MSG with one kind 0 section.
  - Anything else (OP_COMPRESSED, legacy OP_INSERT...) closes the connection.

Threads: one per connection; one lock around every command, so commands are atomic and
serialized (findAndModify races resolve as on a real server: one winner). A read's batch
is cut and encoded after the lock is released (peer_commands.PendingCursor).

Usage: mongo_peer.py [--host 127.0.0.1] [--port 0] [--data FILE] [--log FILE|-] [--quiet]
                     [--profile FILE]
--profile (or OTA_PEER_PROFILE=FILE in the environment): at the stop, FILE gets the time
spent per command shape (command, collection, filter fields and operators, sort) and
FILE.pstats cProfile's statistics of the commands' code (they run one at a time under the
lock, so one profiler sees them all). For finding where a benchmark's time goes.
Prints "mongo-peer listening on HOST:PORT" (the bound port) on stdout when ready.
SIGTERM/SIGINT stop it cleanly.
"""

import argparse
import cProfile
import gc
import os
import signal
import socketserver
import struct
import sys
import threading
import time

import bson
import bson.errors

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_commands import finish_reply, keep_cursor, run_command  # noqa: E402
from peer_store import CODEC, Store  # noqa: E402

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
MSG_CHECKSUM, MSG_MORE_TO_COME, MSG_EXHAUST = 1 << 0, 1 << 1, 1 << 16
MAX_MESSAGE = 48_000_000
HEADER = struct.Struct("<iiii")


class ProtocolError(Exception):
    pass


# ---------------------------------------------------------------------------------------
# CRC-32C (Castagnoli) for OP_MSG checksums


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# ---------------------------------------------------------------------------------------
# Message parsing


def _cstring(buf, i):
    end = buf.index(b"\x00", i)
    return buf[i:end].decode(), end + 1


def _bson_at(buf, i):
    n = struct.unpack_from("<i", buf, i)[0]
    if n < 5 or i + n > len(buf):
        raise ProtocolError("bad BSON length %d at %d" % (n, i))
    return bson.decode(buf[i:i + n], codec_options=CODEC), i + n


def parse_op_query(body):
    """(db, command) of an OP_QUERY on <db>.$cmd; None for a collection query."""
    i = 4  # flags
    name, i = _cstring(body, i)
    i += 8  # numberToSkip, numberToReturn
    query, i = _bson_at(body, i)
    if not name.endswith(".$cmd"):
        return None
    if "$query" in query:
        query = query["$query"]
    return name[:-len(".$cmd")], query


def parse_op_msg(whole, body):
    """(flags, command with document sequences merged)."""
    flags = struct.unpack_from("<I", body, 0)[0]
    if flags & 0xFFFC:
        raise ProtocolError("unknown required OP_MSG flag bits 0x%x" % (flags & 0xFFFC))
    end = len(body)
    if flags & MSG_CHECKSUM:
        end -= 4
        want = struct.unpack_from("<I", body, end)[0]
        if crc32c(whole[:-4]) != want:
            raise ProtocolError("OP_MSG checksum mismatch")
    i, cmd, seqs = 4, None, {}
    while i < end:
        kind, i = body[i], i + 1
        if kind == 0:
            if cmd is not None:
                raise ProtocolError("two kind 0 sections")
            cmd, i = _bson_at(body, i)
        elif kind == 1:
            size = struct.unpack_from("<i", body, i)[0]
            stop = i + size
            ident, j = _cstring(body, i + 4)
            docs = []
            while j < stop:
                d, j = _bson_at(body, j)
                docs.append(d)
            seqs[ident] = docs
            i = stop
        else:
            raise ProtocolError("unknown OP_MSG section kind %d" % kind)
    if cmd is None:
        raise ProtocolError("OP_MSG without a kind 0 section")
    for ident, docs in seqs.items():
        if ident in cmd:
            raise ProtocolError("'%s' both in the body and as a document sequence" % ident)
        cmd[ident] = docs
    return flags, cmd


def reply_op_msg(request_id, response_to, doc):
    payload = struct.pack("<I", 0) + b"\x00" + bson.encode(doc, codec_options=CODEC)
    return HEADER.pack(16 + len(payload), request_id, response_to, OP_MSG) + payload


def reply_op_reply(request_id, response_to, doc, flags=0):
    payload = struct.pack("<iqii", flags, 0, 0, 1) + bson.encode(doc, codec_options=CODEC)
    return HEADER.pack(16 + len(payload), request_id, response_to, OP_REPLY) + payload


# ---------------------------------------------------------------------------------------
# Server


class PeerState:
    """What all connections share: the store, the cursors, the lock, the log."""

    def __init__(self, store, log, quiet):
        self.store = store
        self.cursors = {}
        self.lock = threading.Lock()
        self.log_file = log
        self.quiet = quiet
        self.next_conn = 0
        self.next_request = 0
        self.profiler = None  # --profile: a cProfile.Profile and {shape: [n, s, max]}
        self.shapes = {}

    def log(self, line):
        if not self.quiet:
            self.log_file.write("%.3f %s\n" % (time.time(), line))
            self.log_file.flush()


class ConnCtx:
    """The view one command has: shared store and cursors, its connection's id."""

    def __init__(self, state, conn_id):
        self.store = state.store
        self.cursors = state.cursors
        self.conn_id = conn_id


def _summary(cmd):
    name = next(iter(cmd), "?")
    arg = cmd.get(name)
    parts = [name, str(arg) if isinstance(arg, str) else ""]
    for seq in ("documents", "updates", "deletes"):
        if isinstance(cmd.get(seq), list):
            parts.append("%s=%d" % (seq, len(cmd[seq])))
    return " ".join(p for p in parts if p)


def _result(reply):
    if reply.get("ok") != 1.0:
        return "error %s %s" % (reply.get("code"), reply.get("errmsg"))
    errs = reply.get("writeErrors")
    return "ok" + (" writeErrors=%d (first: %s)" % (len(errs), errs[0]["errmsg"])
                   if errs else "")


class Handler(socketserver.BaseRequestHandler):

    def setup(self):
        st = self.server.state
        with st.lock:
            st.next_conn += 1
            self.ctx = ConnCtx(st, st.next_conn)
        st.log("conn %d open from %s:%d" % ((self.ctx.conn_id,) + self.client_address))

    def _recv(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.request.recv(n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return bytes(buf)

    def handle(self):
        st = self.server.state
        try:
            while self._one_message(st):
                pass
        except (ProtocolError, ValueError, struct.error, bson.errors.BSONError) as e:
            st.log("conn %d protocol error: %s (closing)" % (self.ctx.conn_id, e))
        except OSError as e:
            st.log("conn %d: %s" % (self.ctx.conn_id, e))
        st.log("conn %d closed" % self.ctx.conn_id)

    def _one_message(self, st):
        head = self._recv(16)
        if head is None:
            return False
        length, request_id, _, opcode = HEADER.unpack(head)
        if length < 16 or length > MAX_MESSAGE:
            raise ProtocolError("message length %d" % length)
        body = self._recv(length - 16)
        if body is None:
            return False
        out = self._dispatch(st, head + body, body, request_id, opcode)
        if out:
            self.request.sendall(out)
        return True

    def _dispatch(self, st, whole, body, request_id, opcode):
        if opcode == OP_QUERY:
            parsed = parse_op_query(body)
            if parsed is None:
                err = {"$err": "legacy queries are not supported", "code": 352}
                return reply_op_reply(self._rid(st), request_id, err, flags=2)
            reply = self._command(st, parsed[0], parsed[1], "OP_QUERY")
            return reply_op_reply(self._rid(st), request_id, reply)
        if opcode == OP_MSG:
            flags, cmd = parse_op_msg(whole, body)
            db = cmd.pop("$db", None)
            if not isinstance(db, str):
                reply = {"ok": 0.0, "code": 40571, "codeName": "Location40571",
                         "errmsg": "OP_MSG requests require a $db argument"}
            else:
                reply = self._command(st, db, cmd, "OP_MSG")
            if flags & MSG_MORE_TO_COME:
                return None
            return reply_op_msg(self._rid(st), request_id, reply)
        raise ProtocolError("unsupported opCode %d" % opcode)

    def _rid(self, st):
        with st.lock:
            st.next_request += 1
            return st.next_request

    @staticmethod
    def _keep(st, cursor_id, ns, rest):
        with st.lock:
            return keep_cursor(st.cursors, cursor_id, ns, rest)

    def _command(self, st, db, cmd, via):
        with st.lock:
            if st.profiler is None:
                reply = run_command(self.ctx, db, cmd)
            else:
                reply = _profiled(st, self.ctx, db, cmd)
            st.store.flush()
        reply = finish_reply(reply, lambda cid, ns, rest: self._keep(st, cid, ns, rest))
        st.log("conn %d %s %s.%s -> %s" % (self.ctx.conn_id, via, db, _summary(cmd),
                                          _result(reply)))
        return reply


def _shape(cmd):
    """A command's shape for --profile: name, collection, the filter's fields with their
    operators, sort fields (values left out)."""
    name = next(iter(cmd), "?")
    coll = cmd.get(name) if isinstance(cmd.get(name), str) else ""
    q = cmd.get("filter", cmd.get("query"))
    if q is None and isinstance(cmd.get("updates"), list) and cmd["updates"]:
        q = cmd["updates"][0].get("q")
    if q is None and isinstance(cmd.get("deletes"), list) and cmd["deletes"]:
        q = cmd["deletes"][0].get("q")
    fields = []
    for k, v in (q or {}).items():
        ops = ",".join(v) if isinstance(v, dict) and all(o[:1] == "$" for o in v) else ""
        fields.append(k + (":" + ops if ops else ""))
    sort = " sort " + ",".join(cmd["sort"]) if isinstance(cmd.get("sort"), dict) else ""
    return "%s %s {%s}%s" % (name, coll, " ".join(fields), sort)


def _profiled(st, ctx, db, cmd):
    """run_command under the profiler, its time added to its shape's row."""
    shape = _shape(cmd)
    t0 = time.perf_counter()
    st.profiler.enable()
    try:
        return run_command(ctx, db, cmd)
    finally:
        st.profiler.disable()
        dt = time.perf_counter() - t0
        row = st.shapes.setdefault(shape, [0, 0.0, 0.0])
        row[0] += 1
        row[1] += dt
        row[2] = max(row[2], dt)


def _write_profile(st, path):
    with open(path, "w") as f:
        f.write("%-8s %9s %9s %9s  %s\n" % ("count", "total_s", "mean_ms", "max_ms", "shape"))
        for shape, (n, total, worst) in sorted(st.shapes.items(), key=lambda kv: -kv[1][1]):
            f.write("%-8d %9.2f %9.3f %9.1f  %s\n" % (n, total, 1000 * total / n,
                                                     1000 * worst, shape))
    st.profiler.dump_stats(path + ".pstats")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def _freeze_after_full_collection(phase, info):
    """The stored documents are many, long-lived and acyclic: after each full collection
    they move to the permanent generation, so the next one walks only what is new (else
    each walks them all, seconds at 10,000 vehicles, with the lock held)."""
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    ap.add_argument("--data", help="journal file: keep the data across restarts")
    ap.add_argument("--log", default="-", help="command log file ('-': stderr)")
    ap.add_argument("--quiet", action="store_true", help="no command log")
    ap.add_argument("--profile", default=os.environ.get("OTA_PEER_PROFILE"),
                    help="write time per command shape and cProfile stats here at the stop")
    a = ap.parse_args()
    gc.callbacks.append(_freeze_after_full_collection)
    log = sys.stderr if a.log == "-" else open(a.log, "a", buffering=1)
    state = PeerState(Store(a.data), log, a.quiet)
    if a.profile:
        state.profiler = cProfile.Profile()
    server = Server((a.host, a.port), Handler)
    server.state = state
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    host, port = server.server_address[:2]
    print("mongo-peer listening on %s:%d" % (host, port), flush=True)
    state.log("listening on %s:%d (data: %s)" % (host, port, a.data or "memory only"))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    server.server_close()
    with state.lock:
        state.store.flush()
        if a.profile:
            _write_profile(state, a.profile)
    state.log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
