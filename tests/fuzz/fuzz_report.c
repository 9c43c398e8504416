/*
 * fuzz_report.c — fuzz target: ota/v1/{vin}/report payloads (ota_codec_decode_report), as
 * the broker thread decodes them and the writer thread re-decodes them from the spool.
 * Checks: a decoded report keeps the limits and the event table of ota_codec.h; a refused
 * one has an error code and message; the status-event JSON and the error replies encode.
 * The envelope check (ota_codec_report_envelope) runs on the same input: whatever the full
 * decoder takes, it takes with the same seq and epoch; an epoch is 1..64 bytes; its skim
 * of plain reports answers as its strict reader does. The strict CBOR reader itself (which
 * decodes plain headers without libcbor) accepts exactly what cbor_load() loads whole.
 */
#include "cbor_util.h"
#include "fuzz.h"
#include "ota_codec.h"

#include <string.h>

static void check_event(const ota_event *e, uint32_t i)
{
    FUZZ_CHECK(e->index == i);
    FUZZ_CHECK(e->task && strlen(e->task) >= 1 && strlen(e->task) <= OTA_ID_MAX);
    FUZZ_CHECK(e->ts >= 0);
    switch (e->type) {
    case OTA_EV_DOWNLOAD_PROGRESS:
        FUZZ_CHECK(e->pct >= 0 && e->pct <= 100);
        break;
    case OTA_EV_UPGRADE_PROGRESS:
        FUZZ_CHECK(e->ecu && e->pct >= 0 && e->pct <= 100);
        break;
    case OTA_EV_UPGRADE_STATUS:
        FUZZ_CHECK(e->status && ota_status_valid(e->status));
        FUZZ_CHECK(e->trigger && ota_trigger_valid(e->trigger));
        break;
    case OTA_EV_COMMAND:
        FUZZ_CHECK(e->cmd);
        FUZZ_CHECK(strcmp(e->cmd, "schedule") != 0 || e->at >= 0);
        break;
    case OTA_EV_EEPROM_CLEAR:
        FUZZ_CHECK(e->ecu && e->result);
        break;
    case OTA_EV_CONSENT: /* postponed always says until when */
        FUZZ_CHECK(e->answer);
        FUZZ_CHECK(strcmp(e->answer, "postponed") != 0 || e->until >= 0);
        break;
    default:
        FUZZ_CHECK(!"unknown event type decoded");
    }
}

static void encode_status_events(const ota_report *r)
{
    for (size_t i = 0; i < r->n_events; i++) {
        if (r->events[i].type == OTA_EV_UPGRADE_STATUS || r->events[i].type == OTA_EV_CONSENT) {
            size_t len = 0;
            char *json = ota_codec_status_event_json("LSVTA000000000001", r->seq, &r->events[i],
                                                     1700000000000, &len);
            FUZZ_CHECK(json && strlen(json) == len);
            free(json);
        }
    }
}

static void check_envelope(const uint8_t *data, size_t size, const ota_report *full, bool taken)
{
    ota_report env;
    ota_error err;
    int rc = ota_codec_report_envelope(data, size, &env, &err);
    if (rc == 0) {
        FUZZ_CHECK(env.seq_valid && env.n_events == 0 && env.events == NULL);
        size_t n = strlen(env.epoch);
        FUZZ_CHECK(n >= 1 && n <= OTA_EPOCH_MAX);
    } else {
        FUZZ_CHECK(err.code != OTA_OK && err.code < OTA_ERR_CODE_COUNT && err.msg[0] != '\0');
    }
    if (taken) {
        FUZZ_CHECK(rc == 0 && env.seq == full->seq && strcmp(env.epoch, full->epoch) == 0);
    }
    ota_report strict;
    ota_error serr;
    int src = ota_codec_report_envelope_strict(data, size, &strict, &serr);
    FUZZ_CHECK(src == rc); /* the skim answers only what the strict reader would */
    FUZZ_CHECK(rc != 0 || (strict.seq == env.seq && strcmp(strict.epoch, env.epoch) == 0));
    FUZZ_CHECK(rc == 0 || strcmp(serr.msg, err.msg) == 0);
    size_t len = 0;
    uint8_t *reply = ota_codec_encode_report_error(&err, rc == 0 ? (int64_t)env.seq : -1,
                                                   rc == 0 ? env.epoch : NULL, 1, "0", &len);
    FUZZ_CHECK(rc == 0 || (reply && len > 0));
    free(reply);
}

static void check_reader(const uint8_t *data, size_t size)
{
    ota_cbor_reader rd;
    ota_error err;
    ota_cbor_reader_init(&rd, data, size, "report", &err);
    bool read = ota_cbor_reader_end(&rd) == 0;
    if (!read && strstr(err.msg, "declared sizes exceed payload") != NULL)
        return; /* truncated, and cbor_load() would allocate what the headers declare */
    struct cbor_load_result res;
    cbor_item_t *item = size > 0 ? cbor_load(data, size, &res) : NULL;
    bool loaded = item != NULL && res.read == size;
    if (item != NULL)
        cbor_decref(&item);
    FUZZ_CHECK(read == loaded);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_reader(data, size);
    const ota_report_limits lim = {OTA_REPORT_MAX_PAYLOAD_DEFAULT, 16};
    ota_report r;
    ota_error err;
    if (ota_codec_decode_report(data, size, &lim, &r, &err) == 0) {
        check_envelope(data, size, &r, true);
        FUZZ_CHECK(size <= lim.max_payload);
        FUZZ_CHECK(r.seq_valid && r.n_events >= 1 && r.n_events <= lim.max_events);
        for (size_t i = 0; i < r.n_events; i++) {
            check_event(&r.events[i], (uint32_t)i);
        }
        encode_status_events(&r);
        ota_report_free(&r);
        return 0;
    }
    check_envelope(data, size, &r, false);
    FUZZ_CHECK(err.code != OTA_OK && err.code < OTA_ERR_CODE_COUNT);
    FUZZ_CHECK(err.msg[0] != '\0' && strlen(err.msg) < OTA_ERRMSG_MAX);
    size_t len = 0;
    uint8_t *reply = ota_codec_encode_error(&err, r.seq_valid ? (int64_t)r.seq : -1, &len);
    FUZZ_CHECK(reply && len > 0);
    free(reply);
    return 0;
}
