/*
 * ota_spool.h — the durable report spool: what makes an acked report impossible to lose.
 *
 * The broker thread appends one record per accepted report into the active segment
 * before the MQTT callback returns (so before the PUBACK). The segment is a shared file
 * mapping, so an append is a memcpy into the kernel's page cache — no system call — and
 * from then on the record survives a crash of the broker process. The file's blocks are
 * reserved ahead (posix_fallocate, 4 MiB at a time), so a full disk makes an append fail
 * instead of faulting. A background sync thread fdatasync()s the active segment every
 * `sync_ms` (group commit), so after a power loss at most that interval is at risk. The
 * broker thread never waits for an fsync.
 *
 * The same spool keeps the package descriptions served (kind 5), for the same reason: what
 * a vehicle was told survives a kill -9 before the writer stored it.
 *
 * Layout of `dir`:
 *   NNNNNNNNNNNNNNNNNNNN.seg  segments, numbered upward; a new one at every open and
 *                             whenever the active one exceeds segment_bytes. A segment
 *                             may end in zeros (reserved space a crash left unused):
 *                             readers take a zero header as its end.
 *   checkpoint                "SEGMENT OFFSET\n": everything before it is in the store
 * Record: u32 magic "OTA1" | u32 body length | u32 crc32 of body | body
 *   body: u8 kind | i64 received_ms | u8 vin length | vin | u64 seq | [meta] |
 *         raw CBOR payload of the report (the rest). Integers little-endian.
 *   kind 1 report (epoch "0", no meta: what older versions wrote)
 *   kind 2 report with epoch; meta: u8 epoch length | epoch | u32 resets
 *   kind 4 reset of the VIN's seq by an operator (resetVehicleSeq); meta as kind 2, seq
 *          unused, no payload
 *   kind 5 a package description served to the VIN (pkg/get), spooled before its reply so
 *          that a killed broker's restart stores it: seq = its counter, no meta, payload =
 *          the description row (store/spool_desc.c)
 *   kind 3 quarantined report (refused; kept with its reason); meta: u8 epoch length |
 *          epoch | u32 resets | u8 error code (ota_err_code) | u8 has seq |
 *          u16 message length | message | u64 size of the payload as received (the
 *          payload kept may be cut to the report size limit)
 * A record whose magic, length or CRC is wrong ends its segment for readers (a torn
 * tail after a crash); the reader counts it and moves on to the next segment.
 *
 * The writer thread reads records with an ota_spool_reader, ships them to the store and
 * then calls ota_spool_checkpoint_store(), which also deletes segments wholly before the
 * checkpoint. Reading is at-least-once; the store's unique key makes it exactly-once.
 */
#ifndef OTA_SPOOL_H
#define OTA_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ota_spool ota_spool;
typedef struct ota_spool_reader ota_spool_reader;

typedef struct {
    uint64_t segment;
    uint64_t offset;
} ota_spool_pos;

typedef struct {
    const char *dir;
    unsigned sync_ms;       /* group-commit interval; default 10 */
    uint64_t segment_bytes; /* rotate the active segment past this size; default 64 MiB */
} ota_spool_config;

#define OTA_SPOOL_SYNC_MS_DEFAULT 10
#define OTA_SPOOL_SEGMENT_BYTES_DEFAULT (64u * 1024u * 1024u)

enum {
    OTA_SPOOL_KIND_REPORT = 1,
    OTA_SPOOL_KIND_REPORT_EPOCH,
    OTA_SPOOL_KIND_QUARANTINE,
    OTA_SPOOL_KIND_RESET,       /* an operator's reset of the VIN's seq: no payload */
    OTA_SPOOL_KIND_DESCRIPTION, /* a description served (ota_spool_desc.h) */
};

#define OTA_SPOOL_EPOCH_MAX 64
#define OTA_SPOOL_MSG_MAX 255

/* A record as read back. Pointers are valid until the next reader call. */
typedef struct {
    uint8_t kind;
    int64_t received_ms;
    char vin[32];
    uint64_t seq;
    /* kinds 2 and 3 ("0" and 0 for kind 1) */
    char epoch[OTA_SPOOL_EPOCH_MAX + 1];
    uint32_t resets; /* operator resets of the VIN's seq before this report (epoch "E~N") */
    /* kind 3 */
    uint8_t code; /* ota_err_code of the refusal */
    bool has_seq; /* seq was readable */
    char msg[OTA_SPOOL_MSG_MAX + 1];
    uint64_t size;
    const uint8_t *payload; /* after the meta */
    size_t payload_len;
    ota_spool_pos pos;  /* where the record starts */
    ota_spool_pos next; /* where the next record starts */
} ota_spool_record;

typedef struct {
    uint64_t appended;      /* records appended since open */
    uint64_t append_errors; /* appends that failed (disk full, ...) */
    uint64_t syncs;         /* fdatasync calls made by the sync thread */
    uint64_t bad_records;   /* torn or corrupt records skipped by readers */
    ota_spool_pos end;      /* where the next append goes */
} ota_spool_stats;

/* Creates dir if needed, starts a new active segment and the sync thread.
 * Returns NULL with a message in err on failure. */
ota_spool *ota_spool_open(const ota_spool_config *cfg, char *err, size_t errlen);
/* Final fdatasync, stops the sync thread, frees. Wakes any ota_spool_wait(). */
void ota_spool_close(ota_spool *s);

/* Broker thread only. Appends a report record. Returns 0 when the whole record is in
 * the segment, -1 otherwise (errno kept: EFBIG, ENOSPC, EINVAL...; nothing is published
 * and the next append goes to the same place). */
int ota_spool_append_report(ota_spool *s, const char *vin, uint64_t seq, int64_t received_ms,
                            const void *payload, size_t len);

/* What ota_spool_append writes: a report with its epoch (kind 2), or a refused one with
 * its reason (kind 3). */
typedef struct {
    uint8_t kind;
    const char *vin;
    uint64_t seq;
    int64_t received_ms;
    const char *epoch; /* NULL: "0"; at most OTA_SPOOL_EPOCH_MAX bytes */
    uint32_t resets;
    uint8_t code;    /* kind 3 */
    bool has_seq;    /* kind 3 */
    const char *msg; /* kind 3; cut to OTA_SPOOL_MSG_MAX bytes */
    uint64_t size;   /* kind 3; 0: len */
    const void *payload;
    size_t len;
} ota_spool_entry;

/* Broker thread only. Appends a record of any kind; as ota_spool_append_report. */
int ota_spool_append(ota_spool *s, const ota_spool_entry *e);

/* Waits (up to timeout_ms) until the spool holds data past pos, or the spool is closing.
 * Returns true when there is data past pos. */
bool ota_spool_wait(ota_spool *s, ota_spool_pos pos, unsigned timeout_ms);
/* Ends every ota_spool_wait() in progress (it returns false unless there is data). Any
 * thread: the writer's job queue uses it to wake the writer. */
void ota_spool_wake(ota_spool *s);

/* Readers (writer thread; tests). A reader sees only whole appended records. */
ota_spool_reader *ota_spool_reader_open(ota_spool *s, ota_spool_pos from);
/* Returns 1 and fills *rec, 0 when nothing more is available now, -1 on I/O error. */
int ota_spool_reader_next(ota_spool_reader *r, ota_spool_record *rec);
/* The spool end the reader last looked up. After ota_spool_reader_next returned 0, every
 * record before it has been returned. */
ota_spool_pos ota_spool_reader_seen_end(const ota_spool_reader *r);
void ota_spool_reader_close(ota_spool_reader *r);

/* The checkpoint: where the store is up to. A missing checkpoint means the start of the
 * oldest segment. _store writes it atomically (tmp + rename) and deletes segments that
 * end at or before it (never the active one). Both return 0 or -1. */
int ota_spool_checkpoint_load(ota_spool *s, ota_spool_pos *pos);
int ota_spool_checkpoint_store(ota_spool *s, ota_spool_pos pos);

/* Bytes between pos and the end of the spool (the writer's backlog). */
uint64_t ota_spool_bytes_after(ota_spool *s, ota_spool_pos pos);
void ota_spool_stats_get(ota_spool *s, ota_spool_stats *st);

#endif
