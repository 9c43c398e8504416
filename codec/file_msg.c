/*
 * file_msg.c — the file/get request (SPEC §3, docs/protocol.md) and the block arithmetic.
 *
 * file/get {file, bs?, from, n, bitmap?} is read in one pass with the strict pull reader
 * (cbor_util.h): nothing is allocated, the bitmap is folded into a 64-bit mask (bit k =
 * block from+k, the SPEC's bit k mod 8 of byte k div 8, least significant first), so the
 * handler never touches the payload again. Each field has its own error code: a wrong
 * type or shape is E_BAD_REQUEST; bs out of range E_BLOCK_SIZE; n out of range, or a
 * bitmap selecting nothing, E_BLOCK_COUNT. Whether `from` exists depends on the file:
 * the handler checks it (E_OFFSET) with ota_file_blocks_in().
 */
#include "cbor_util.h"
#include "ota_codec.h"

#include <string.h>

enum { F_FILE, F_BS, F_FROM, F_N, F_BITMAP, F_COUNT };
static const char *const KEYS[F_COUNT] = {"file", "bs", "from", "n", "bitmap"};

/* An unsigned integer of any size (range checks with their own codes follow). */
static int want_u64(const ota_cbor_item *v, const char *key, ota_cbor_need need, uint64_t *out,
                    ota_error *err)
{
    return ota_cbor_want_uint(v, "", key, need, 0, UINT64_MAX, out, err);
}

static int check_bs(const ota_cbor_item *v, ota_file_get *out, ota_error *err)
{
    uint64_t bs = OTA_FILE_BS_DEFAULT;
    if (want_u64(v, "bs", OTA_CBOR_OPTIONAL, &bs, err) < 0)
        return -1;
    if (bs < OTA_FILE_BS_MIN || bs > OTA_FILE_BS_MAX)
        return ota_cbor_field_error(err, OTA_E_BLOCK_SIZE, "", "bs", "%llu not in %u..%u",
                                    (unsigned long long)bs, OTA_FILE_BS_MIN, OTA_FILE_BS_MAX);
    out->bs = (uint32_t)bs;
    return 0;
}

static int check_n(const ota_cbor_item *v, ota_file_get *out, ota_error *err)
{
    uint64_t n;
    if (want_u64(v, "n", OTA_CBOR_REQUIRED, &n, err) < 0)
        return -1;
    if (n < 1 || n > OTA_FILE_N_MAX)
        return ota_cbor_field_error(err, OTA_E_BLOCK_COUNT, "", "n", "%llu not in 1..%d",
                                    (unsigned long long)n, OTA_FILE_N_MAX);
    out->n = (uint32_t)n;
    out->blocks = n == 64 ? UINT64_MAX : ((uint64_t)1 << n) - 1;
    return 0;
}

/* The bitmap of (n+7)/8 bytes, bit k of the mask = bit k mod 8 of byte k div 8. */
static int check_bitmap(const ota_cbor_item *v, ota_file_get *out, ota_error *err)
{
    const uint8_t *p;
    size_t len, want = (out->n + 7) / 8;
    int rc = ota_cbor_want_bytes(v, "", "bitmap", OTA_CBOR_OPTIONAL, 0, SIZE_MAX, &p, &len, err);
    if (rc <= 0)
        return rc;
    if (len != want)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "", "bitmap",
                                    "%zu bytes for n = %u: expected %zu", len, out->n, want);
    uint64_t mask = 0;
    for (size_t i = 0; i < len; i++)
        mask |= (uint64_t)p[i] << (8 * i);
    if (mask & ~out->blocks)
        return ota_cbor_field_error(err, OTA_E_BAD_REQUEST, "", "bitmap",
                                    "selects a block at n = %u or beyond", out->n);
    if (mask == 0)
        return ota_cbor_field_error(err, OTA_E_BLOCK_COUNT, "", "bitmap", "selects no block");
    out->blocks = mask;
    return 0;
}

static int check_fields(const ota_cbor_item *v, uint32_t found, ota_file_get *out, ota_error *err)
{
#define VAL(i) ((found >> (i)) & 1u ? &v[i] : NULL)
    if (ota_cbor_want_sha256(VAL(F_FILE), "", "file", out->file, err) < 0 ||
        check_bs(VAL(F_BS), out, err) < 0 ||
        want_u64(VAL(F_FROM), "from", OTA_CBOR_REQUIRED, &out->from, err) < 0 ||
        check_n(VAL(F_N), out, err) < 0 || check_bitmap(VAL(F_BITMAP), out, err) < 0)
        return -1;
#undef VAL
    return 0;
}

int ota_codec_decode_file_get(const void *buf, size_t len, ota_file_get *out, ota_error *err)
{
    memset(out, 0, sizeof *out);
    if (ota_cbor_check_size(len, OTA_FILE_GET_MAX_PAYLOAD, "file/get", err) != 0)
        return -1;
    ota_cbor_reader r;
    ota_cbor_reader_init(&r, buf, len, "file/get", err);
    ota_cbor_item root, values[F_COUNT];
    uint32_t found = 0;
    int rc = ota_cbor_next(&r, &root);
    if (rc == 0)
        rc = ota_cbor_map_scan(&r, &root, "", "", KEYS, F_COUNT, values, &found, err);
    if (rc == 0)
        rc = check_fields(values, found, out, err);
    if (ota_cbor_reader_end(&r) < 0) { /* a CBOR error replaces any other */
        out->file[0] = '\0';
        rc = -1;
    }
    return rc;
}

uint64_t ota_file_block_count(uint64_t size, uint32_t bs)
{
    return size / bs + (size % bs != 0);
}

uint32_t ota_file_block_len(uint64_t size, uint32_t bs, uint64_t i)
{
    uint64_t left = size - i * bs; /* i < count: at least 1 */
    return left < bs ? (uint32_t)left : bs;
}

uint64_t ota_file_blocks_in(const ota_file_get *g, uint64_t count)
{
    if (g->from >= count)
        return 0;
    uint64_t avail = count - g->from; /* blocks from `from` to the end */
    return avail >= 64 ? g->blocks : g->blocks & (((uint64_t)1 << avail) - 1);
}
