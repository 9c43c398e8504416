/*
 * catalog_rxswin.c — what each committed success changed in a vehicle's RXSWINs (issue 17,
 * catalog.h): one record per task and VIN, its lists interned (a campaign's vehicles share
 * a handful of lists), so exportTask finds a vehicle's before/after in O(1).
 */
#include "catalog_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key; /* "task/vin" */
    ota_rxswin_change ch;
} cat_rxswin;

static ota_map_key rxswin_key(const void *rec)
{
    return ota_map_key_str(((const cat_rxswin *)rec)->key);
}

static void rxswin_fini(void *rec)
{
    free(((cat_rxswin *)rec)->key);
}

void cat_rxswin_init(ota_catalog *c)
{
    ota_map_init(&c->rxswin, sizeof(cat_rxswin), rxswin_key);
}

void cat_rxswin_destroy(ota_catalog *c)
{
    ota_map_destroy(&c->rxswin, rxswin_fini);
}

void ota_catalog_rxswin_key(const char *task, const char *vin, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", task, vin);
}

const ota_rxswin_change *ota_catalog_rxswin_change(const ota_catalog *c, const char *task,
                                                   const char *vin)
{
    char key[128];
    ota_catalog_rxswin_key(task, vin, key, sizeof key);
    const cat_rxswin *r = ota_map_get_str(&c->rxswin, key);
    return r ? &r->ch : NULL;
}

int ota_catalog_put_rxswin_change(ota_catalog *c, const ota_rxswin_change_rec *r)
{
    cat_touch(c);
    ota_rxswin_change ch = {.package = r->package, .at_ms = r->at_ms};
    if (r->task == NULL || r->vin == NULL || cat_intern(c, r->before, &ch.before) != 0 ||
        cat_intern(c, r->after, &ch.after) != 0)
        return -1;
    char key[128];
    ota_catalog_rxswin_key(r->task, r->vin, key, sizeof key);
    cat_rxswin *old = ota_map_get_str(&c->rxswin, key);
    if (old != NULL) {
        old->ch = ch;
        return 0;
    }
    cat_rxswin rec = {.key = strdup(key), .ch = ch};
    if (rec.key == NULL || ota_map_put(&c->rxswin, &rec) == NULL) {
        free(rec.key);
        return -1;
    }
    return 0;
}

size_t ota_catalog_rxswin_count(const ota_catalog *c)
{
    return ota_map_count(&c->rxswin);
}
