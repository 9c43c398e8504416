/*
 * ota_spool_desc.h — package descriptions in the spool (kind 5, ota_spool.h): pkg/get
 * appends the description it serves before the reply goes out, the writer stores it from
 * there (insert-if-absent by (vin, counter)) and a restart reads the ones not yet stored
 * back into the grants. So a description a vehicle holds is stored even when its broker is
 * killed before the writer got to it (docs/mongodb.md "What a killed broker's restart
 * recovers").
 *
 * Payload (little-endian): u64 req | u64 package | i64 issued_ms | i64 expires_ms |
 * task NUL | files NUL | COSE_Sign1 (the rest). The record's vin and seq are the
 * description's vin and counter.
 */
#ifndef OTA_SPOOL_DESC_H
#define OTA_SPOOL_DESC_H

#include "ota_spool.h"
#include "ota_store.h"

/* Broker thread. Appends d as a kind 5 record (a memcpy into the page cache, no fsync).
 * 0, or -1 with errno (ENOMEM, or as ota_spool_append). */
int ota_spool_append_description(ota_spool *s, const ota_description_rec *d, int64_t now_ms);

/* The description of a kind 5 record's vin, seq (its counter) and payload: out's texts and
 * cose point into payload (task and files end in its NULs). 0, or -1 when it does not
 * parse. */
int ota_spool_description(const char *vin, uint64_t seq, const uint8_t *payload, size_t len,
                          ota_description_rec *out);

#endif
