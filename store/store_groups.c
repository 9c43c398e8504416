/*
 * store_groups.c — the public ota_store_*_group calls (ota_store.h), dispatched to the
 * backend's ops like every other store call (store.c).
 */
#include "store_impl.h"

int ota_store_put_group(ota_store *s, const char *name, const char *json, const char *const *vins,
                        size_t n_vins, char *err, size_t errlen)
{
    return s->ops->put_group(s, name, json, vins, n_vins, err, errlen);
}

int ota_store_delete_group(ota_store *s, const char *name, char *err, size_t errlen)
{
    return s->ops->delete_group(s, name, err, errlen);
}

int ota_store_load_groups(ota_store *s, ota_store_group_fn fn, ota_store_group_member_fn member,
                          void *ctx)
{
    return s->ops->load_groups(s, fn, member, ctx);
}
