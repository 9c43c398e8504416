/*
 * file.h — resumable block download (SPEC §3 "File blocks"): the file/get handler and the
 * paced sender behind it (file.c, docs/protocol.md).
 *
 * A request is checked at once (decoded, granted, the file opened, its blocks clipped to
 * the file) and its blocks queued for the vehicle; ota_files_tick, on every TICK, sends
 * blocks round-robin over the vehicles with queued blocks, up to plugin_opt_file_pass_bytes
 * per broker loop pass, so a burst of 8 MiB never holds the broker thread for long and
 * every vehicle progresses. A vehicle may have at most plugin_opt_file_queue_blocks blocks
 * queued; its queue is dropped when it disconnects. Each vehicle's blocks are paced
 * (plugin_opt_file_vehicle_rate/_burst), and a connection gets each file about once (its
 * size plus one burst): the memory the broker holds for a vehicle that does not read stays
 * bounded (file.c, docs/security.md).
 */
#ifndef OTA_FILE_H
#define OTA_FILE_H

#include "ota_plugin.h"

#include <stdint.h>

typedef struct ota_files ota_files;

typedef struct {
    uint64_t requests;       /* file/get accepted (queued) */
    uint64_t blocks_sent;    /* file/data blocks handed to the broker */
    uint64_t bytes_sent;     /* data bytes of those blocks */
    uint64_t blocks_dropped; /* queued blocks dropped: the vehicle disconnected */
    uint64_t read_errors;    /* a block that could not be read (request dropped, E_INTERNAL) */
    uint64_t passes;         /* loop passes that sent at least one block */
    uint64_t paced;          /* times a vehicle's next block waited for its byte rate */
    uint64_t refused[OTA_E_INTERNAL + 1]; /* file/get refused, by error code */
} ota_file_stats;

/* dir: the repository (plugin_opt_file_dir); pass_bytes: data bytes sent per loop pass
 * (at least one block); queue_blocks: blocks a vehicle may have queued; rate, burst: data
 * bytes handed to the broker per vehicle per second and at once (at least one block), also
 * the margin over a file's size a connection may ask for (rate 0: no pacing at all). NULL when out
 * of memory. */
ota_files *ota_files_new(const char *dir, size_t pass_bytes, uint32_t queue_blocks, size_t rate,
                         size_t burst);
void ota_files_free(ota_files *fs);

/* router.c table: ota/v1/{vin}/file/get. */
int ota_handle_file_get(ota_plugin *p, const ota_request *req);
/* TICK: sends the next slice of queued blocks. */
void ota_files_tick(ota_plugin *p);
/* DISCONNECT of a vehicle's connection: drops what was queued for it. */
void ota_files_on_disconnect(ota_plugin *p, const char *vin, const char *client_id);

struct cJSON;
/* getStats' "file" object: the counters, blocks queued now and vehicles with a queue. */
void ota_files_stats_json(const ota_files *fs, struct cJSON *data);

#endif
