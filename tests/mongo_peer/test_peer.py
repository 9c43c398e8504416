#!/usr/bin/python3
"""test_peer — checks the mongo_peer test double against MongoDB's documented semantics,
with an independent driver (Debian's python3-pymongo) and a raw-socket client for the
wire details the driver does not exercise (checksums, moreToCome, protocol errors).

Each test starts its own peer (journal in a fresh directory under OTA_TEST_TMP).
"""

import os
import socket
import struct
import sys
import tempfile
import threading
import unittest
from pathlib import Path

import bson
import pymongo
from bson.int64 import Int64
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mongo_peer  # noqa: E402
from peer_proc import Peer  # noqa: E402

TMP = Path(os.environ.get("OTA_TEST_TMP") or tempfile.gettempdir()) / "test_peer"


class PeerCase(unittest.TestCase):
    def setUp(self):
        TMP.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=self.id().split(".")[-1] + "-", dir=TMP))
        self.peer = Peer(self.dir)
        self.addCleanup(self.peer.stop)
        self.client = self.connect()
        self.db = self.client.ota

    def connect(self):
        c = pymongo.MongoClient(self.peer.uri(), serverSelectionTimeoutMS=3000,
                                connectTimeoutMS=3000)
        self.addCleanup(c.close)
        return c

    def events(self, unique=True):
        ev = self.db.ota_vehicle_upgrade_status
        ev.create_index([("vin", ASCENDING), ("seq", ASCENDING), ("idx", ASCENDING)],
                        unique=unique, name="vin_seq_idx")
        return ev


class Handshake(PeerCase):
    def test_hello_reports_a_standalone_server(self):
        r = self.client.admin.command("hello")
        self.assertTrue(r["isWritablePrimary"])
        self.assertNotIn("setName", r)
        for k in ("maxBsonObjectSize", "maxMessageSizeBytes", "maxWriteBatchSize",
                  "logicalSessionTimeoutMinutes", "minWireVersion", "maxWireVersion"):
            self.assertIn(k, r)
        self.assertTrue(self.client.admin.command("isMaster")["ismaster"])
        self.assertEqual(self.client.admin.command("ping")["ok"], 1.0)
        self.assertIn("version", self.client.admin.command("buildInfo"))

    def test_unknown_command_is_command_not_found(self):
        with self.assertRaises(OperationFailure) as cm:
            self.db.command("mapReduce", "x", map="", reduce="", out={"inline": 1})
        self.assertEqual(cm.exception.code, 59)
        self.assertEqual(cm.exception.details["codeName"], "CommandNotFound")

    def test_unknown_query_operator_is_refused_not_guessed(self):
        self.db.c.insert_one({"a": 1})
        with self.assertRaises(OperationFailure) as cm:
            list(self.db.c.find({"a": {"$regex": "x"}}))
        self.assertEqual(cm.exception.code, 2)
        with self.assertRaises(OperationFailure) as cm:
            self.db.c.update_one({"a": 1}, {"$push": {"l": 1}})
        self.assertEqual(cm.exception.code, 9)


class Inserts(PeerCase):
    def test_insert_and_duplicate_id(self):
        self.db.c.insert_one({"_id": "A", "x": 1})
        with self.assertRaises(DuplicateKeyError) as cm:
            self.db.c.insert_one({"_id": "A", "x": 2})
        self.assertEqual(cm.exception.code, 11000)
        self.assertIn("E11000 duplicate key error", str(cm.exception))
        self.assertEqual(self.db.c.find_one({"_id": "A"})["x"], 1)

    def test_ordered_bulk_stops_at_the_first_duplicate(self):
        ev = self.events()
        ev.insert_one({"vin": "V", "seq": 2, "idx": 0})
        docs = [{"vin": "V", "seq": s, "idx": 0} for s in (1, 2, 3)]
        with self.assertRaises(BulkWriteError) as cm:
            ev.insert_many(docs, ordered=True)
        d = cm.exception.details
        self.assertEqual(d["nInserted"], 1)
        self.assertEqual([(e["index"], e["code"]) for e in d["writeErrors"]], [(1, 11000)])
        self.assertEqual(d["writeErrors"][0]["keyValue"], {"vin": "V", "seq": 2, "idx": 0})
        self.assertEqual(sorted(x["seq"] for x in ev.find()), [1, 2])

    def test_unordered_bulk_reports_every_duplicate_and_inserts_the_rest(self):
        ev = self.events()
        ev.insert_many([{"vin": "V", "seq": s, "idx": 0} for s in (2, 4)])
        docs = [{"vin": "V", "seq": s, "idx": 0} for s in range(1, 7)] + \
            [{"vin": "V", "seq": 1, "idx": 0}]
        with self.assertRaises(BulkWriteError) as cm:
            ev.insert_many(docs, ordered=False)
        d = cm.exception.details
        self.assertEqual(d["nInserted"], 4)
        self.assertEqual([e["index"] for e in d["writeErrors"]], [1, 3, 6])
        self.assertEqual({e["code"] for e in d["writeErrors"]}, {11000})
        self.assertEqual(len(list(ev.find())), 6)

    def test_missing_fields_count_as_null_in_a_unique_index(self):
        self.db.u.create_index("k", unique=True, name="k")
        self.db.u.insert_one({"a": 1})
        with self.assertRaises(DuplicateKeyError):
            self.db.u.insert_one({"k": None})

    def test_numbers_of_different_types_are_the_same_key(self):
        ev = self.events()
        ev.insert_one({"vin": "V", "seq": Int64(7), "idx": 0})
        with self.assertRaises(DuplicateKeyError):
            ev.insert_one({"vin": "V", "seq": 7.0, "idx": 0})
        ev.insert_one({"vin": "V", "seq": True, "idx": 0})  # bool is not a number

    def test_unique_index_on_duplicated_data_fails_and_same_index_twice_is_ok(self):
        self.db.d.insert_many([{"k": 1}, {"k": 1}])
        with self.assertRaises(OperationFailure) as cm:
            self.db.d.create_index("k", unique=True, name="k_u")
        self.assertEqual(cm.exception.code, 11000)
        self.events()
        self.events()  # same name, same key: no error
        with self.assertRaises(OperationFailure) as cm:
            self.db.ota_vehicle_upgrade_status.create_index(
                [("vin", 1), ("seq", 1), ("idx", 1)], unique=False, name="vin_seq_idx")
        self.assertEqual(cm.exception.code, 85)
        with self.assertRaises(OperationFailure) as cm:
            self.db.ota_vehicle_upgrade_status.create_index([("vin", 1)], name="vin_seq_idx")
        self.assertEqual(cm.exception.code, 86)
        names = [i["name"] for i in self.db.ota_vehicle_upgrade_status.list_indexes()]
        self.assertEqual(names, ["_id_", "vin_seq_idx"])


class Upserts(PeerCase):
    def test_upsert_builds_the_document_from_the_query_and_operators(self):
        r = self.db.n.update_one({"msg_id": "M1", "vin": "V"},
                                 {"$set": {"state": "a"}, "$inc": {"tries": 1},
                                  "$setOnInsert": {"created": 5}}, upsert=True)
        self.assertEqual((r.matched_count, r.modified_count), (0, 0))
        self.assertIsNotNone(r.upserted_id)
        doc = self.db.n.find_one({"_id": r.upserted_id}, {"_id": 0})
        self.assertEqual(doc, {"msg_id": "M1", "vin": "V", "state": "a", "tries": 1,
                               "created": 5})
        r = self.db.n.update_one({"msg_id": "M1", "vin": "V"},
                                 {"$set": {"state": "b"}, "$inc": {"tries": 1},
                                  "$setOnInsert": {"created": 9}}, upsert=True)
        self.assertEqual((r.matched_count, r.modified_count, r.upserted_id), (1, 1, None))
        doc = self.db.n.find_one({"msg_id": "M1"}, {"_id": 0})
        self.assertEqual((doc["state"], doc["tries"], doc["created"]), ("b", 2, 5))

    def test_set_on_insert_alone_does_not_touch_an_existing_document(self):
        for owner in ("first", "second"):
            r = self.db.n.update_one({"msg_id": "M"}, {"$setOnInsert": {"owner": owner}},
                                     upsert=True)
        self.assertEqual((r.matched_count, r.modified_count), (1, 0))
        self.assertEqual(self.db.n.find_one({"msg_id": "M"})["owner"], "first")

    def test_replacement_upsert_takes_id_from_the_query(self):
        r = self.db.v.replace_one({"_id": "VIN1"}, {"model": "X"}, upsert=True)
        self.assertEqual(r.upserted_id, "VIN1")
        r = self.db.v.replace_one({"_id": "VIN1"}, {"model": "Y", "series": "S"}, upsert=True)
        self.assertEqual((r.matched_count, r.modified_count), (1, 1))
        self.assertEqual(self.db.v.find_one(), {"_id": "VIN1", "model": "Y", "series": "S"})
        r = self.db.v.replace_one({"_id": "VIN1"}, {"model": "Y", "series": "S"})
        self.assertEqual((r.matched_count, r.modified_count), (1, 0))

    def test_inc_types_and_errors(self):
        self.db.i.insert_one({"_id": 1, "a": 1, "b": Int64(1), "c": 1.5, "s": "x"})
        self.db.i.update_one({"_id": 1}, {"$inc": {"a": 1, "b": 1, "c": 1, "new": 3}})
        raw = self.db.i.find_one({"_id": 1})
        self.assertEqual((raw["a"], raw["b"], raw["c"], raw["new"]), (2, 2, 2.5, 3))
        self.assertIsInstance(raw["b"], Int64)
        self.db.i.update_one({"_id": 1}, {"$inc": {"a": 2**31}})
        self.assertIsInstance(self.db.i.find_one({"_id": 1})["a"], Int64)
        with self.assertRaises(OperationFailure) as cm:
            self.db.i.update_one({"_id": 1}, {"$inc": {"s": 1}})
        self.assertEqual(cm.exception.code, 14)
        with self.assertRaises(OperationFailure) as cm:
            self.db.i.update_one({"_id": 1}, {"$set": {"a": 1}, "$inc": {"a": 1}})
        self.assertEqual(cm.exception.code, 40)
        with self.assertRaises(OperationFailure) as cm:
            self.db.i.update_one({"_id": 1}, {"$set": {"_id": 2}})
        self.assertEqual(cm.exception.code, 66)

    def test_upsert_into_a_unique_key_is_a_write_error(self):
        self.db.t.create_index([("task", 1), ("vin", 1)], unique=True, name="task_vin")
        self.db.t.insert_one({"_id": "a", "task": "T", "vin": "V"})
        with self.assertRaises(DuplicateKeyError):
            self.db.t.replace_one({"_id": "b"}, {"task": "T", "vin": "V"}, upsert=True)
        res = self.db.command("update", "t", ordered=False, updates=[
            {"q": {"_id": "c"}, "u": {"task": "T", "vin": "V"}, "upsert": True},
            {"q": {"_id": "d"}, "u": {"task": "T", "vin": "W"}, "upsert": True}])
        self.assertEqual([(e["index"], e["code"]) for e in res["writeErrors"]], [(0, 11000)])
        self.assertEqual((res["n"], res["upserted"]), (1, [{"index": 1, "_id": "d"}]))

    def test_multi_update_and_set_same_value(self):
        self.db.m.insert_many([{"g": 1, "v": i % 2} for i in range(10)])
        r = self.db.m.update_many({"g": 1}, {"$set": {"v": 1}})
        self.assertEqual((r.matched_count, r.modified_count), (10, 5))
        r = self.db.m.update_many({"g": 1, "v": {"$gt": 5}}, {"$set": {"v": 1}}, upsert=False)
        self.assertEqual(r.matched_count, 0)


class Reads(PeerCase):
    N = 1000

    def fill(self):
        ev = self.events()
        docs = [{"vin": "V%02d" % (i % 7), "seq": Int64(i // 7), "idx": i % 3,
                 "ts": float(i) if i % 5 == 0 else i} for i in range(self.N)]
        ev.insert_many(docs, ordered=False)
        return ev, docs

    def test_sort_limit_and_get_more_over_many_documents(self):
        ev, docs = self.fill()
        got = list(ev.find({}, {"_id": 0}, batch_size=37).sort(
            [("vin", ASCENDING), ("seq", DESCENDING), ("idx", DESCENDING)]))
        want = sorted(docs, key=lambda d: (d["vin"], -d["seq"], -d["idx"]))
        self.assertEqual([(d["vin"], d["seq"], d["idx"]) for d in got],
                         [(d["vin"], d["seq"], d["idx"]) for d in want])
        got = list(ev.find({"vin": "V03"}).sort([("seq", -1), ("idx", -1)]).limit(150))
        self.assertEqual(len(got), 143)  # V03 has only 143 documents
        self.assertEqual(got[0]["seq"], max(d["seq"] for d in docs if d["vin"] == "V03"))
        got = list(ev.find({}).sort("ts", 1).skip(10).limit(250))  # int/double mixed
        self.assertEqual([d["ts"] for d in got], list(range(10, 260)))

    def test_comparison_operators_and_type_brackets(self):
        ev, docs = self.fill()
        n = self.db.command("count", ev.name, query={"seq": {"$gte": 100, "$lt": 110}})["n"]
        self.assertEqual(n, 70)
        self.assertEqual(len(list(ev.find({"vin": {"$in": ["V01", "V02"]}, "idx": {"$ne": 0}}))),
                         len([d for d in docs if d["vin"] in ("V01", "V02") and d["idx"]]))
        self.assertEqual(list(ev.find({"vin": {"$gt": 5}})), [])  # no string is > a number
        self.db.z.insert_many([{"a": None}, {}, {"a": 1}, {"a": [3, 4]}])
        self.assertEqual(len(list(self.db.z.find({"a": None}))), 2)
        self.assertEqual(len(list(self.db.z.find({"a": 4}))), 1)
        self.assertEqual(len(list(self.db.z.find({"a": {"$gt": 3}}))), 1)

    def test_projection_and_kill_cursors(self):
        ev, _ = self.fill()
        cur = ev.find({}, {"vin": 1, "seq": 1, "_id": 0}, batch_size=10)
        first = next(cur)
        self.assertEqual(set(first), {"vin", "seq"})
        cur.close()  # pymongo sends killCursors
        self.assertIn("killCursors", self.peer.log())

    def test_delete_count_drop(self):
        ev, docs = self.fill()
        r = ev.delete_many({"vin": "V00"})
        self.assertEqual(r.deleted_count, len([d for d in docs if d["vin"] == "V00"]))
        self.assertEqual(ev.delete_one({"vin": "V01"}).deleted_count, 1)
        self.assertEqual(self.db.command("count", ev.name)["n"], self.N - r.deleted_count - 1)
        # the unique index forgot the deleted keys
        ev.insert_one({"vin": "V00", "seq": Int64(0), "idx": 0})
        self.db.drop_collection(ev.name)
        self.assertNotIn(ev.name, self.db.list_collection_names())
        self.client.drop_database("ota")
        self.assertEqual(self.db.list_collection_names(), [])


class FindAndModify(PeerCase):
    def claim(self, db, msg_id, owner):
        return db.command("findAndModify", "ota_vehicle_notice_claim",
                          query={"_id": msg_id},
                          update={"$setOnInsert": {"owner": owner, "claimed_at": 1}},
                          upsert=True, new=True)

    def test_claim_race_has_exactly_one_winner(self):
        ids = ["M%03d" % i for i in range(60)]
        wins, lock = {}, threading.Lock()
        barrier = threading.Barrier(6)

        def worker(n):
            db = self.connect().ota
            barrier.wait()
            for m in ids:
                r = self.claim(db, m, "broker%d" % n)
                self.assertEqual(r["lastErrorObject"]["n"], 1)
                won = not r["lastErrorObject"]["updatedExisting"]
                self.assertEqual(won, r["value"]["owner"] == "broker%d" % n)
                with lock:
                    wins.setdefault(m, []).append((n, won, r["value"]["owner"]))
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for m in ids:
            self.assertEqual(len(wins[m]), 6)
            self.assertEqual(sum(w for _, w, _ in wins[m]), 1, wins[m])
            self.assertEqual(len({o for _, _, o in wins[m]}), 1)

    def test_find_and_modify_forms(self):
        c = self.db.q
        c.insert_many([{"_id": i, "state": "queued", "p": i % 3} for i in range(6)])
        doc = c.find_one_and_update({"state": "queued"}, {"$set": {"state": "taken"}},
                                    sort=[("p", DESCENDING), ("_id", ASCENDING)],
                                    return_document=ReturnDocument.BEFORE)
        self.assertEqual((doc["_id"], doc["state"]), (2, "queued"))
        doc = c.find_one_and_update({"state": "queued"}, {"$set": {"state": "taken"}},
                                    sort=[("p", DESCENDING), ("_id", ASCENDING)],
                                    return_document=ReturnDocument.AFTER)
        self.assertEqual((doc["_id"], doc["state"]), (5, "taken"))
        self.assertIsNone(c.find_one_and_update({"state": "none"}, {"$set": {"x": 1}}))
        self.assertEqual(c.find_one_and_delete({"_id": 0})["_id"], 0)
        self.assertIsNone(c.find_one({"_id": 0}))

    def test_upsert_conflict_is_error_11000(self):
        c = self.db.r
        c.create_index("k", unique=True, name="k")
        c.insert_one({"_id": 1, "k": "x"})
        with self.assertRaises(OperationFailure) as cm:
            c.find_one_and_update({"_id": 2}, {"$set": {"k": "x"}}, upsert=True)
        self.assertEqual(cm.exception.code, 11000)


class SharedState(PeerCase):
    """The forms store/mongo_state.c, mongo_changes.c and mongo_json.c send (issue 15),
    each as MongoDB documents it, through pymongo."""

    def test_conditional_transition_race_has_exactly_one_winner(self):
        c = self.db.ota_task_vin
        c.create_index([("task", ASCENDING), ("vin", ASCENDING)], unique=True, name="key")
        c.insert_many([{"task": "T1", "vin": "V%03d" % i, "state": "queued"}
                       for i in range(40)])
        wins, lock = [], threading.Lock()
        barrier = threading.Barrier(6)

        def worker(n):
            db = self.connect().ota
            barrier.wait()
            for i in range(40):
                r = db.ota_task_vin.replace_one(
                    {"task": "T1", "vin": "V%03d" % i, "state": "queued"},
                    {"task": "T1", "vin": "V%03d" % i, "state": "notified", "by": n})
                with lock:
                    wins.append((i, r.matched_count, r.modified_count))
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in range(40):
            self.assertEqual(sum(m for j, m, _ in wins if j == i), 1)
            self.assertEqual(sum(m for j, _, m in wins if j == i), 1)
        # from the wrong state: nothing matched, nothing changed
        r = c.replace_one({"task": "T1", "vin": "V000", "state": "queued"},
                          {"task": "T1", "vin": "V000", "state": "failed"})
        self.assertEqual((r.matched_count, r.modified_count), (0, 0))
        self.assertEqual(c.find_one({"vin": "V000"})["state"], "notified")

    def test_counter_inc_upsert_hands_out_every_number_once(self):
        got, lock = [], threading.Lock()
        barrier = threading.Barrier(6)

        def worker():
            db = self.connect().ota
            barrier.wait()
            for _ in range(30):
                r = db.command("findAndModify", "ota_store_meta", query={"_id": "change_seq"},
                               update={"$inc": {"seq": Int64(2)}}, upsert=True, new=True)
                with lock:
                    got.append(r["value"]["seq"])
        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(got), list(range(2, 361, 2)))
        self.assertIsInstance(self.db.ota_store_meta.find_one()["seq"], int)

    def test_max_upsert_keeps_the_highest(self):
        c = self.db.ota_vehicle_state
        for seq in (5, 9, 3):
            c.update_one({"_id": "V1"}, {"$max": {"last_seq": Int64(seq)}}, upsert=True)
        self.assertEqual(c.find_one({"_id": "V1"}), {"_id": "V1", "last_seq": 9})

    def test_dotted_index_and_queries_on_sub_documents(self):
        c = self.db.ota_vehicle_shadow
        c.create_index([("reported.fw", ASCENDING)], name="reported_fw")
        c.insert_many([{"vin": "V1", "reported": {"fw": "2.0.9", "ecus": {"BMS": "1"}}},
                       {"vin": "V2", "reported": {"fw": "2.0.10"}},
                       {"vin": "V3", "reported": "{\"fw\":\"2.0.9\"}"}])
        self.assertEqual([d["vin"] for d in c.find({"reported.fw": "2.0.9"})], ["V1"])
        self.assertEqual([d["vin"] for d in c.find({"reported.ecus.BMS": "1"})], ["V1"])
        self.assertIn("reported_fw", c.index_information())

    def test_replace_with_the_whole_old_document_as_filter(self):
        c = self.db.ota_task
        c.insert_one({"_id": "T1", "json": "{\"state\":\"running\"}"})
        old = c.find_one({"json": {"$exists": True}})
        r = c.replace_one(old, {"_id": "T1", "state": "running"})
        self.assertEqual(r.modified_count, 1)
        self.assertEqual(c.replace_one(old, {"_id": "T1", "state": "x"}).matched_count, 0)
        shadow = self.db.s
        shadow.insert_one({"vin": "V1", "reported": "{}", "w": {"a": [1, 2]}})
        old = shadow.find_one()
        self.assertEqual(shadow.replace_one(old, {"vin": "V1", "reported": {}}).matched_count, 1)

    def test_guard_row_never_replaced_by_fewer_resets(self):
        """The guard rows' filtered upsert (store/mongo_state.c): a stored document with
        more resets makes the upsert a duplicate _id; as many or more replace it; the first
        layout (no resets field) is replaced."""
        c = self.db.ota_vehicle_state
        c.insert_many([{"_id": "V1", "epoch": "0", "seq": Int64(4), "resets": Int64(3)},
                       {"_id": "V2", "last_seq": Int64(9)}])

        def put(vin, seq, resets):
            q = {"_id": vin, "$or": [{"resets": {"$lte": Int64(resets)}},
                                     {"resets": {"$exists": False}}]}
            doc = {"_id": vin, "epoch": "0", "seq": Int64(seq), "resets": Int64(resets)}
            return c.bulk_write([pymongo.ReplaceOne(q, doc, upsert=True)], ordered=False)

        with self.assertRaises(pymongo.errors.BulkWriteError) as cm:
            put("V1", 9, 2)
        self.assertEqual(cm.exception.details["writeErrors"][0]["code"], 11000)
        self.assertEqual(c.find_one({"_id": "V1"})["seq"], 4)
        put("V1", 1, 3)
        put("V2", 2, 0)
        put("V3", 5, 0)
        self.assertEqual([(d["_id"], d["seq"], d["resets"]) for d in c.find().sort("_id", 1)],
                         [("V1", 1, 3), ("V2", 2, 0), ("V3", 5, 0)])

    def test_log_reads_and_trims_by_int64_id(self):
        c = self.db.ota_change_log
        c.insert_many([{"_id": Int64(i), "at": Int64(1), "kind": "ota_package", "id": str(i),
                        "op": "put"} for i in range(1, 8)])
        self.assertEqual([d["_id"] for d in c.find({"_id": {"$gt": Int64(4)}}).sort("_id", 1)],
                         [5, 6, 7])
        self.assertEqual([d["_id"] for d in c.find().sort("_id", 1).limit(1)], [1])
        self.assertEqual(c.delete_many({"_id": {"$lte": Int64(3)}}).deleted_count, 3)
        self.assertEqual([d["_id"] for d in c.find()], [4, 5, 6, 7])


class Indexes(PeerCase):
    """The peer answers from its indexes where a query allows (peer_store lookup): every
    answer must equal the full scan's. The same documents go into an indexed collection
    and an unindexed one; each query must give the same documents in the same order."""

    def docs(self):
        out = []
        values = ["a", "b", 1, 1.0, Int64(2), 2.5, True, None, [1, "a"], ["b", 3], {"x": 1}]
        for i in range(300):
            d = {"_id": Int64(i) if i % 50 else "s%d" % i, "n": i,
                 "v": values[i % len(values)], "sub": {"fw": "f%d" % (i % 4)}}
            if i % 13 == 0:
                del d["v"]
            out.append(d)
        return out

    def pair(self):
        ix, scan = self.db.indexed, self.db.scanned
        ix.create_index([("v", ASCENDING), ("n", ASCENDING)], name="v_n")
        ix.create_index([("sub.fw", ASCENDING)], name="fw")
        ix.create_index([("n", ASCENDING)], unique=True, name="n")
        docs = self.docs()
        ix.insert_many(docs)
        scan.insert_many(docs)
        return ix, scan

    def same(self, ix, scan, query, **kw):
        def run(c):
            cur = c.find(query)
            if "sort" in kw:
                cur = cur.sort(kw["sort"])
            if "limit" in kw:
                cur = cur.limit(kw["limit"])
            return list(cur)
        got, want = run(ix), run(scan)
        self.assertEqual(got, want, query)
        return got

    def test_index_answers_equal_the_scan(self):
        ix, scan = self.pair()
        for q in ({"v": "a"}, {"v": 1}, {"v": 2}, {"v": True}, {"v": None}, {"v": 3},
                  {"v": [1, "a"]}, {"v": {"x": 1}}, {"v": {"$in": ["b", 1, None, 7]}},
                  {"v": {"$in": ["a", 2.0]}, "n": {"$gt": 100}}, {"v": {"$eq": "b"}},
                  {"v": {"$nin": ["a", 1]}}, {"sub.fw": "f2"}, {"sub.fw": {"$in": ["f1"]}},
                  {"n": 7}, {"n": 7.0}, {"_id": {"$in": [Int64(3), 3.0, "s50", 999]}},
                  {"_id": "s100"}, {"$or": [{"v": "a"}, {"n": 5}]}):
            self.same(ix, scan, q)
        self.assertEqual(len(self.same(ix, scan, {"v": "a"})), 50)  # "a" and [1, "a"]

    def test_id_ranges_and_sorted_limits(self):
        log, plain = self.db.log, self.db.plain_log
        ids = [Int64(i) for i in range(1, 400)] + [3.5, 1000]
        for c in (log, plain):
            c.insert_many([{"_id": i, "k": int(i) % 3} for i in ids])
            c.delete_many({"_id": {"$lte": Int64(20)}})
        for q, kw in (({"_id": {"$gt": Int64(390)}}, {"sort": [("_id", 1)]}),
                      ({"_id": {"$gte": 3, "$lt": 30.5}}, {}),
                      ({"_id": {"$gt": 100}, "k": 1}, {"sort": [("_id", -1)], "limit": 5}),
                      ({}, {"sort": [("_id", 1)], "limit": 1}),
                      ({}, {"sort": [("_id", -1)], "limit": 2})):
            self.same(log, plain.with_options(), q, **kw)
        self.assertEqual([d["_id"] for d in log.find({"_id": {"$gt": 398}})], [399, 1000])
        log.insert_one({"_id": "text"})  # mixed _id types: ranges scan again
        self.assertEqual([d["_id"] for d in log.find({"_id": {"$gt": 398}})], [399, 1000])
        self.assertEqual(log.find_one({}, sort=[("_id", -1)])["_id"], "text")

    def test_in_of_many_values_and_replacements_keep_indexes(self):
        ix, scan = self.pair()
        many = [Int64(i) for i in range(0, 3000, 3)] + ["s%d" % i for i in range(0, 300, 25)]
        self.same(ix, scan, {"_id": {"$in": many}})
        self.same(ix, scan, {"n": {"$in": list(range(0, 3000, 7))}})
        for c in (ix, scan):
            c.update_many({"v": "a"}, {"$set": {"v": "z"}})
            c.replace_one({"n": 4}, {"n": 4, "v": "z"})
            c.delete_many({"v": "b"})
        for q in ({"v": "a"}, {"v": "z"}, {"v": "b"}, {"n": 4}):
            self.same(ix, scan, q)
        self.assertEqual(len(self.same(ix, scan, {"v": "z"})), 51)


class Aggregate(PeerCase):
    """aggregate with $match and $group (peer_aggregate): how the store counts a task's
    executions by state and wave (ota_store_count_task_execs) without reading them."""

    STATES = ("queued", "notified", "succeeded", "failed")

    def execs(self, n=600):
        out = []
        for i in range(n):
            d = {"task": "T%d" % (i % 3), "vin": "V%05d" % i, "state": self.STATES[i % 4]}
            if i % 7:  # some without a wave; some with a null one; numbers of three types
                d["wave"] = [Int64(i % 5), i % 5, float(i % 5), None][i % 4]
            out.append(d)
        return out

    def brute(self, docs, task):
        want = {}
        for d in docs:
            if d["task"] == task:
                key = (d["state"], "wave" in d, None if d.get("wave") is None else
                       int(d["wave"]))
                want[key] = want.get(key, 0) + 1
        return want

    def counted(self, coll, task, **kw):
        pipe = [{"$match": {"task": task}},
                {"$group": {"_id": {"state": "$state", "wave": "$wave"}, "n": {"$sum": 1}}}]
        got = {}
        for g in coll.aggregate(pipe, **kw):
            w = g["_id"].get("wave")
            key = (g["_id"]["state"], "wave" in g["_id"], None if w is None else int(w))
            self.assertNotIn(key, got)
            got[key] = g["n"]
        return got

    def test_group_counts_equal_a_brute_force_count(self):
        ix, scan = self.db.ix, self.db.scan
        ix.create_index([("task", 1), ("state", 1), ("wave", 1)], name="by_state_wave")
        docs = self.execs()
        ix.insert_many([dict(d) for d in docs])
        scan.insert_many([dict(d) for d in docs])
        for task in ("T0", "T1", "T2", "none"):
            want = self.brute(docs, task)
            self.assertEqual(self.counted(ix, task), want)
            self.assertEqual(self.counted(scan, task, batchSize=2), want)  # through getMore
        self.assertIn(("queued", False, None), self.counted(ix, "T0"))  # missing: apart
        self.assertIn(("failed", True, None), self.counted(ix, "T0"))  # from null

    def test_sum_types_scalar_ids_and_later_match(self):
        c = self.db.sums
        c.insert_many([{"k": "a", "v": 1}, {"k": "a", "v": Int64(2)}, {"k": "b", "v": 1.5},
                       {"k": "b", "v": "x"}, {"v": 3}, {"k": None, "v": 4}])
        got = {g["_id"]: g for g in c.aggregate(
            [{"$group": {"_id": "$k", "s": {"$sum": "$v"}, "n": {"$sum": 1}}},
             {"$match": {"n": {"$gte": 1}}}])}
        self.assertEqual(set(got), {"a", "b", None})
        self.assertEqual((got["a"]["s"], type(got["a"]["s"])), (3, Int64))
        self.assertEqual((got["b"]["s"], type(got["b"]["s"])), (1.5, float))
        self.assertEqual((got[None]["s"], got[None]["n"], type(got[None]["n"])), (7, 2, int))

    def test_what_it_does_not_implement_is_refused(self):
        c = self.db.refused
        c.insert_one({"a": 1})
        for pipe, code in (([{"$nosuch": {}}], 40324), ([{"$sort": {"a": 1}}], 2),
                           ([{"$match": {}, "$group": {"_id": 1}}], 40323),
                           ([{"$group": {"n": {"$sum": 1}}}], 15955),
                           ([{"$group": {"_id": 1, "n": {"$nosuch": 1}}}], 15952),
                           ([{"$group": {"_id": 1, "n": {"$push": "$a"}}}], 2),
                           ([{"$group": {"_id": 1, "n": 1}}], 40234)):
            with self.assertRaises(OperationFailure) as e:
                list(c.aggregate(pipe))
            self.assertEqual(e.exception.code, code, pipe)
        with self.assertRaises(OperationFailure) as e:
            self.db.command("aggregate", "refused", pipeline=[])  # no cursor option
        self.assertEqual(e.exception.code, 9)


class SortPasses(unittest.TestCase):
    """sort_docs sorts by one stable pass per key with plain Python keys where the values
    allow: it must give the order of MongoDB's compare() applied key by key."""

    def test_passes_equal_the_comparison_sort(self):
        import functools
        import random
        import peer_match as pm
        rnd = random.Random(7)
        pools = [["b", "a", "ab", ""], [1, 2.5, Int64(2), -1, 0.0], [None, True, False],
                 [{"x": 1}, [1, 2], b"z"]]
        for mixed in (False, True):
            docs = []
            for i in range(400):
                d = {"i": i}
                for f in ("a", "b"):
                    pool = rnd.choice(pools if mixed else pools[:2])
                    if rnd.random() < 0.9:
                        d[f] = rnd.choice(pool)
                docs.append(d)
            for spec in ({"a": 1}, {"a": -1, "b": 1}, {"b": -1, "a": -1}):
                def cmp(x, y):
                    for path, direction in spec.items():
                        c = pm.compare(x.get(path), y.get(path))
                        if c:
                            return c * direction
                    return 0
                want = sorted(docs, key=functools.cmp_to_key(cmp))
                got = pm.sort_docs(list(docs), spec)
                self.assertEqual([d["i"] for d in got], [d["i"] for d in want], (mixed, spec))


class Persistence(PeerCase):
    def test_kill_and_restart_keeps_documents_and_indexes(self):
        ev = self.events()
        ev.insert_many([{"vin": "V", "seq": i, "idx": 0} for i in range(500)])
        ev.update_one({"vin": "V", "seq": 3, "idx": 0}, {"$set": {"x": 1}})
        ev.delete_one({"vin": "V", "seq": 4, "idx": 0})
        self.client.close()
        port = self.peer.port
        self.peer.stop(kill=True)
        self.peer.start()
        self.assertEqual(self.peer.port, port)
        ev = self.connect().ota.ota_vehicle_upgrade_status
        self.assertEqual(len(list(ev.find())), 499)
        self.assertEqual(ev.find_one({"seq": 3})["x"], 1)
        with self.assertRaises(DuplicateKeyError):
            ev.insert_one({"vin": "V", "seq": 7, "idx": 0})


class Wire(PeerCase):
    """Raw OP_MSG: checksums, kind 1 sections, moreToCome, protocol errors."""

    def raw(self):
        s = socket.create_connection(("127.0.0.1", self.peer.port), timeout=5)
        self.addCleanup(s.close)
        return s

    def msg(self, flags, sections, rid=1, checksum=False):
        body = struct.pack("<I", flags) + sections
        total = 16 + len(body) + (4 if checksum else 0)
        out = struct.pack("<iiii", total, rid, 0, 2013) + body
        if checksum:
            out += struct.pack("<I", mongo_peer.crc32c(out))
        return out

    def read_reply(self, s):
        head = self.recv(s, 16)
        n, _, to, op = struct.unpack("<iiii", head)
        body = self.recv(s, n - 16)
        self.assertEqual(op, 2013)
        return to, bson.decode(body[5:])

    @staticmethod
    def recv(s, n):
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def test_checksum_kind1_and_more_to_come(self):
        s = self.raw()
        docs = b"".join(bson.encode({"_id": i}) for i in range(3))
        ident = b"documents\x00"
        seq = b"\x01" + struct.pack("<i", 4 + len(ident) + len(docs)) + ident + docs
        body = b"\x00" + bson.encode({"insert": "w", "$db": "ota"})
        s.sendall(self.msg(1, body + seq, rid=7, checksum=True))
        to, r = self.read_reply(s)
        self.assertEqual((to, r["ok"], r["n"]), (7, 1.0, 3))
        # moreToCome: no reply; the next request's reply comes first
        s.sendall(self.msg(2, b"\x00" + bson.encode({"insert": "w", "$db": "ota",
                                                     "documents": [{"_id": 9}]}), rid=8))
        s.sendall(self.msg(0, b"\x00" + bson.encode({"count": "w", "$db": "ota"}), rid=9))
        to, r = self.read_reply(s)
        self.assertEqual((to, r["n"]), (9, 4))

    def test_bad_checksum_closes_the_connection_and_the_peer_keeps_serving(self):
        s = self.raw()
        m = bytearray(self.msg(1, b"\x00" + bson.encode({"ping": 1, "$db": "admin"}),
                               checksum=True))
        m[-1] ^= 0xFF
        s.sendall(bytes(m))
        with self.assertRaises(ConnectionError):
            self.read_reply(s)
        self.assertIn("checksum mismatch", self.peer.log())
        self.assertEqual(self.client.admin.command("ping")["ok"], 1.0)

    def test_missing_db_is_an_error_reply(self):
        s = self.raw()
        s.sendall(self.msg(0, b"\x00" + bson.encode({"ping": 1})))
        _, r = self.read_reply(s)
        self.assertEqual((r["ok"], r["code"]), (0.0, 40571))


if __name__ == "__main__":
    unittest.main(verbosity=2)
