#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets: tests/fuzz/corpus/<target>/seed-*.

Valid messages of every kind (each event type, each optional field), and typical invalid
ones (wrong types, truncation, over-long texts, trailing bytes). Re-run after changing a
protocol; files named crash-* or regress-* (inputs that once crashed a target) are kept.
Usage: /usr/bin/python3 tests/fuzz/make_corpus.py
"""

import json
import struct
import zlib
from pathlib import Path

import cbor2

CORPUS = Path(__file__).resolve().parent / "corpus"
TS = 1_700_000_000_000
SHA = "ab" * 32


def events():
    return [
        {"type": "download_progress", "task": "T-1", "ts": TS, "pct": 42, "ecu": "BMS",
         "bytes": 123456},
        {"type": "upgrade_progress", "task": "T-1", "ts": TS, "ecu": "VCU", "pct": 7,
         "step": "flash"},
        {"type": "upgrade_status", "task": "T-1", "ts": TS, "status": "failed",
         "trigger": "forced", "error": "upgrade_failed", "fw": "2.0"},
        {"type": "command", "task": "T-1", "ts": TS, "cmd": "schedule", "at": TS + 1},
        {"type": "eeprom_clear", "task": "T-1", "ts": TS, "ecu": "BCM", "result": "ok"},
        {"type": "consent", "task": "T-1", "ts": TS, "answer": "postponed", "until": TS + 60000,
         "error": "driving"},
    ]


def reports():
    ev = events()
    out = {"all-types": cbor2.dumps({"seq": 1, "events": ev})}
    for i, e in enumerate(ev):
        out["one-%d" % i] = cbor2.dumps({"seq": 2 + i, "events": [e]})
    good = out["all-types"]
    out.update({
        "bad-cbor": b"\xff\x00",
        "truncated": good[:len(good) // 2],
        "trailing": good + b"\x00",
        "seq-text": cbor2.dumps({"seq": "1", "events": ev}),
        "no-events": cbor2.dumps({"seq": 1}),
        "indefinite": b"\xbf\x63seq\x01\x66events\x9f" + cbor2.dumps(ev[0]) + b"\xff\xff",
        "pct-101": cbor2.dumps({"seq": 1, "events": [dict(ev[0], pct=101)]}),
        "tag": cbor2.dumps(cbor2.CBORTag(24, good)),
        "deep": b"\x81" * 200 + b"\x00",
        "big-array-claim": b"\xa2\x63seq\x01\x66events\x9b\xff\xff\xff\xff\xff\xff\xff\xff",
        # issue 13: epochs and integral floats
        "epoch-text": cbor2.dumps({"seq": 1, "epoch": "unit-2", "events": ev}),
        "epoch-uint": cbor2.dumps({"seq": 1, "epoch": 2 ** 63, "events": ev}),
        "epoch-long": cbor2.dumps({"seq": 1, "epoch": "e" * 65, "events": ev}),
        "epoch-bool": cbor2.dumps({"seq": 1, "epoch": True, "events": ev}),
        "epoch-dup": b"\xa3\x65epoch\x01\x65epoch\x02\x63seq\x01",
        "float-seq": cbor2.dumps({"seq": 4294967297.0, "events": [dict(ev[0], ts=float(TS))]}),
        "float16-pct": cbor2.dumps({"seq": 1, "events": [dict(ev[0], pct=50.0)]},
                                   canonical=True),
        "float-frac": cbor2.dumps({"seq": 1.5, "events": ev}),
        "float-nan": cbor2.dumps({"seq": float("nan"), "events": ev}),
        "float-huge": cbor2.dumps({"seq": 1e300, "events": ev}),
    })
    return out


def shadows():
    upd = {"reported": {"fw": "1.0", "state": "idle", "ecus": {"BMS": "1.0", "VCU": "2.1"},
                        "config_word": "cw1", "usage": "retail"}, "token": "tok"}
    out = {
        "update": b"\x00" + cbor2.dumps(upd),
        "update-min": b"\x00" + cbor2.dumps({"reported": {"fw": "1", "state": "s", "ecus": {}}}),
        "update-dup-ecu": b"\x00" + b"\xa1\x68reported\xa3\x62fw\x61\x31\x65state\x61s"
                          b"\x64ecus\xa2\x63BMS\x61\x31\x63BMS\x61\x32",
        "update-bad-type": b"\x00" + cbor2.dumps({"reported": {"fw": 1, "state": "s",
                                                                "ecus": {}}}),
        "get": b"\x01" + cbor2.dumps({"token": "t"}),
        "get-empty": b"\x01\xa0",
        "get-bad": b"\x01\x81\x00",
    }
    return out


def chunks():
    data = b"hello world"
    ok = {"sha256": SHA, "offset": 0, "total": 11, "data": data}
    return {
        "ok": cbor2.dumps(ok),
        "last": cbor2.dumps(dict(ok, offset=5, data=data[5:])),
        "past-end": cbor2.dumps(dict(ok, offset=10)),
        "upper-hex": cbor2.dumps(dict(ok, sha256=SHA.upper())),
        "huge-total": cbor2.dumps(dict(ok, total=2 ** 64 - 1, offset=2 ** 64 - 2)),
        "data-text": cbor2.dumps(dict(ok, data="text")),
    }


def operator():
    veh = {"vin": "LSVTA000000000001", "model": "EX5", "series": "S1", "status": "sold",
           "usage": "retail", "sold": True, "activated": True, "passenger": True,
           "config_word": "cw", "fw": "1.0", "public_key": "00" * 32}
    pkg = {"model": "EX5", "series": "S1", "version": "2.0", "kind": "full",
           "baseline_description": "base", "prompt": "p", "result_info": "r",
           "ecus": [{"ecu": "BMS", "type": "ecu", "version": "2.0",
                     "file": {"sha256": SHA, "name": "bms.bin"}}]}
    task = {"name": "t", "type": "normal", "model": "EX5", "series": "S1", "version": "2.0",
            "vins": ["LSVTA000000000001", "LSVTA000000000002"], "start": TS, "end": TS + 1,
            "max_resend": 3, "rate": 10, "timeout_min": 60,
            "abort": {"min_executed": 10, "failure_pct": 20}}
    r156 = dict(pkg, language="en", prompt={"en": "park", "de-AT": "parken"},
                result_info={"en": "done"}, rxswin=["R79-STEER.2", "R10-EMC.1"],
                install_mode="soft")
    change = {"task": "T000001", "vin": "LSVTA000000000001", "package": 1,
              "before": ["R79-STEER.1"], "after": ["R79-STEER.2"], "at": TS}
    cmds = {
        "upsert": [{"command": "upsertVehicles", "vehicles": [veh]}],
        # issue 17: RXSWINs, texts per language, install-mode default, change document
        "upsert-rxswin": [{"command": "upsertVehicles",
                           "vehicles": [dict(veh, rxswin=["R10-EMC.1"])]}],
        "package-r156": [{"command": "addPackage", "package": r156}],
        "package-r156-bad": [{"command": "addPackage", "package": dict(
            r156, rxswin=["R79-A", "R79-B"], prompt={"en": "x", "e_n": "y"})}],
        "rxswin-change": [{"command": "rxswinChange", "change": change}],
        "model": [{"command": "setModel", "model": "EX5", "series": "S1",
                   "supports_config_word": True, "ecus": ["BMS", "VCU"],
                   "ignore": [{"bit": 3, "ecus": ["BMS"]}]}],
        "package": [{"command": "addPackage", "package": pkg}],
        "strategy": [{"command": "setStrategy", "strategy": {
            "id": "s1", "package_kind": "auto", "compare_version": "auto",
            "ecus": [{"ecu": "BMS", "order": 1, "upgrade": True}]}}],
        "task": [{"command": "createTask", "task": task}],
        "rules": [{"command": "setTaskTypeRules", "type": "normal", "statuses": ["sold"],
                   "usages": []}],
        "misc": [{"command": "getVehicle", "vin": "LSVTA000000000001"},
                 {"command": "addToList", "list": "blacklist", "vins": ["LSVTA000000000001"]},
                 {"command": "getFile", "sha256": SHA},
                 {"command": "getVehicleHistory", "vin": "LSVTA000000000001", "limit": 5}],
    }
    out = {k: json.dumps({"commands": v}).encode() for k, v in cmds.items()}
    out.update({
        "trailing": b'{"commands":[]} x',
        "not-json": b"{commands",
        "dup-field": b'{"commands":[{"command":"getVehicle","vin":"A","vin":"B"}]}',
        "big-number": b'{"commands":[{"command":"createTask","task":{"max_resend":1e400}}]}',
        "bad-vin": json.dumps({"commands": [{"command": "upsertVehicles", "vehicles": [
            dict(veh, vin="LSVTI000000000001")]}]}).encode(),
        "deep": b"[" * 500 + b"]" * 500,
    })
    return out


def record(vin, seq, payload, kind=1, meta=b""):
    v = vin.encode()
    body = bytes([kind]) + struct.pack("<q", TS) + bytes([len(v)]) + v + struct.pack("<Q", seq)
    return body + meta + payload


def epoch_meta(epoch, resets=0):
    return bytes([len(epoch)]) + epoch + struct.pack("<I", resets)


def quarantine_meta(epoch, code, msg, size):
    return (epoch_meta(epoch) + bytes([code, 1]) + struct.pack("<H", len(msg)) + msg
            + struct.pack("<Q", size))


def framed(bodies, mode=0):
    out = bytes([mode])
    for b in bodies:
        out += struct.pack("<H", len(b)) + b
    return out


def raw_segment(bodies):
    out = b""
    for b in bodies:
        out += b"OTA1" + struct.pack("<II", len(b), zlib.crc32(b)) + b
    return out


def spool():
    rep = cbor2.dumps({"seq": 1, "events": events()[:1]})
    bodies = [record("LSVTA000000000001", s, rep) for s in range(1, 4)]
    seg = raw_segment(bodies)
    return {
        "framed": framed(bodies),
        "framed-torn": framed(bodies, 2),
        "framed-zero-tail": framed(bodies, 4),
        "framed-checkpoint-mid": framed(bodies, 8 | (3 << 4)),
        "raw": b"\x01" + seg,
        "raw-bad-crc": b"\x01" + seg[:8] + b"\x00\x00\x00\x00" + seg[12:],
        "raw-long-vin": b"\x01" + raw_segment([b"\x01" + b"\x00" * 8 + b"\xff" + b"V" * 40]),
        "raw-short-body": b"\x01" + raw_segment([b"\x01\x02"]),
        "raw-zeros": b"\x01" + b"\x00" * 64,
        # issue 13: kinds with meta (report with epoch, quarantined, reset)
        "framed-kinds": framed([
            record("LSVTA000000000001", 1, rep, 2, epoch_meta(b"unit-2", 1)),
            record("LSVTA000000000001", 2, b"\xff", 3, quarantine_meta(b"0", 1, b"bad", 70000)),
            record("LSVTA000000000001", 0, b"", 4, epoch_meta(b"0", 2))]),
        "framed-meta-short": framed([record("LSVTA000000000001", 1, b"", 2, b"\x40abc")]),
        "framed-msg-long": framed([record("LSVTA000000000001", 1, b"", 3,
                                          epoch_meta(b"0") + b"\x01\x01\xff\xff")]),
    }


def pkg_gets():
    ok = {"req": 7, "task": "t1", "cur": "1.0.0", "tgt": "2.0.0"}
    return {
        "ok": cbor2.dumps(ok),
        "no-req": cbor2.dumps({k: v for k, v in ok.items() if k != "req"}),
        "long-task": cbor2.dumps(dict(ok, task="t" * 65)),
        "empty-cur": cbor2.dumps(dict(ok, cur="")),
        "req-text": cbor2.dumps(dict(ok, req="7")),
        "array": cbor2.dumps([7, "t1"]),
        "truncated": cbor2.dumps(ok)[:-3],
    }


def file_gets():
    ok = {"file": SHA, "bs": 16384, "from": 0, "n": 64}
    return {
        "ok": cbor2.dumps(ok),
        "default-bs": cbor2.dumps({k: v for k, v in ok.items() if k != "bs"}),
        "bitmap": cbor2.dumps(dict(ok, n=12, bitmap=bytes([0b10100101, 0b1001]))),
        "bitmap-high-bit": cbor2.dumps(dict(ok, n=12, bitmap=bytes([0xff, 0xff]))),
        "bitmap-empty": cbor2.dumps(dict(ok, n=8, bitmap=b"\x00")),
        "bs-small": cbor2.dumps(dict(ok, bs=255)),
        "n-65": cbor2.dumps(dict(ok, n=65)),
        "from-huge": cbor2.dumps(dict(ok, **{"from": 2 ** 64 - 1})),
        "upper-hex": cbor2.dumps(dict(ok, file=SHA.upper())),
    }


def desc_texts():
    """COSE_Sign1 messages (signature not checked by this reader) with user texts."""
    def sign1(payload):
        return b"\xd2" + cbor2.dumps([b"\xa1\x01\x27", {}, cbor2.dumps(payload), b"\0" * 64])
    d = {"task": "T1", "prompt": "p", "result_info": "r"}
    texts = {"language": "en", "prompt": {"en": "park", "de-AT": "parken"},
             "result_info": {"en": "done"}}
    return {
        "plain": sign1(d),
        "texts": sign1(dict(d, texts=texts)),
        "texts-bad-map": sign1(dict(d, texts={"language": "en", "prompt": ["x"]})),
        "texts-no-default": sign1(dict(d, texts={"language": 5, "prompt": {"de": "y" * 200}})),
        "payload-not-map": sign1([1, 2]),
        "not-cose": cbor2.dumps({"texts": texts}),
    }


def event_ids():
    """Event payloads as the events broker reads their id (mosquitto_ota_dedupe.so)."""
    return {
        "status": b'{"id":"LSVTA000000000001:42:0:0","vin":"LSVTA000000000001","seq":42}',
        "blanks": b' {\n "id" : "T1:paused:0:1796615907123" }',
        "escapes": b'{"id":"a\\"b\\\\","x":1}',
        "bad-not-first": b'{"vin":"V","id":"x"}',
        "bad-open": b'{"id":"unterminated\\',
        "bad-number": b'{"id":7}',
        "bad-empty": b'{"id":""}',
    }


def main():
    for target, seeds in (("fuzz_report", reports()), ("fuzz_shadow", shadows()),
                          ("fuzz_upload_chunk", chunks()), ("fuzz_operator_json", operator()),
                          ("fuzz_spool_record", spool()), ("fuzz_pkg_get", pkg_gets()),
                          ("fuzz_file_get", file_gets()), ("fuzz_desc_texts", desc_texts()),
                          ("fuzz_event_id", event_ids())):
        d = CORPUS / target
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
        for name, data in seeds.items():
            (d / ("seed-" + name)).write_bytes(data)
        print("%s: %d seeds" % (target, len(seeds)))


if __name__ == "__main__":
    main()
