/*
 * fuzz_event_id.c — fuzz target: the events broker's reading of an event's id
 * (ota_dedupe_payload_id, plugin/core/dedupe.c), which sees every payload bridged to it.
 * Checks: an id found lies inside the payload, is not empty, follows `"id"`, ends right
 * before a `"` that is not escaped, and holds no control byte; the (topic, id) key of it is
 * stable and a second sighting is a duplicate.
 */
#include "dedupe.h"
#include "fuzz.h"

#include <string.h>

static ota_dedupe *window(void)
{
    static ota_dedupe *d;
    if (!d) {
        d = ota_dedupe_new(1024);
        FUZZ_CHECK(d);
    }
    return d;
}

/* True when the quote at end is not escaped (an even run of backslashes before it). */
static bool closes(const char *s, size_t start, size_t end)
{
    size_t n = 0;
    while (end - n > start && s[end - n - 1] == '\\') {
        n++;
    }
    return n % 2 == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *id = NULL;
    size_t n = 0;
    if (ota_dedupe_payload_id(p, size, &id, &n) != 0) {
        return 0;
    }
    size_t start = (size_t)(id - p);
    FUZZ_CHECK(id > p && n > 0 && start + n < size);
    FUZZ_CHECK(p[start - 1] == '"' && p[start + n] == '"' && closes(p, start, start + n));
    FUZZ_CHECK(memchr(p, 'i', start) != NULL);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK((unsigned char)id[i] >= 0x20);
    }
    ota_dedupe *d = window();
    uint64_t k = ota_dedupe_key(d, "ota/v1/events/status/V", 22, id, n);
    FUZZ_CHECK(k != 0 && k == ota_dedupe_key(d, "ota/v1/events/status/V", 22, id, n));
    (void)ota_dedupe_seen(d, k);
    FUZZ_CHECK(ota_dedupe_seen(d, k));
    return 0;
}
