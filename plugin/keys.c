/*
 * keys.c — the signing key and the content-key KEK (keys.h).
 *
 * A missing file is created with O_CREAT|O_EXCL and mode 0600 (the umask cannot widen
 * it), written in full and fsync'd before the plugin uses the key: the key a vehicle
 * learns to trust must survive a crash; its absolute path is logged, so an operator knows
 * where the secret landed. An existing private key file (signing key, KEK) that group or
 * others may read or write stops the start, with the chmod that fixes it (as ssh refuses
 * an open private key). The public key beside the signing key is rewritten at every start
 * from the private key, so it always matches. The key's type follows
 * plugin_opt_signing_alg (Ed25519 or EC P-256); a key file of the other type stops the
 * start rather than silently changing what vehicles must verify.
 */
#include "keys.h"

#include <mosquitto_broker.h>
#include <mosquitto.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A key file just created: its absolute path goes to the log (it is a secret to back up
 * and to keep out of any repository). */
static void log_created(const char *what, const char *path)
{
    char abs[PATH_MAX];
    mosquitto_log_printf(MOSQ_LOG_NOTICE, "ota: created %s %s (mode 0600)", what,
                         realpath(path, abs) ? abs : path);
}

/* An open private key file: 0 when only its owner may read and write it, else -1 with
 * the fix in err. */
static int check_private(FILE *f, const char *path, char *err, size_t errlen)
{
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        return -1;
    }
    if ((sb.st_mode & 077) != 0) {
        snprintf(err, errlen,
                 "permissions %04o for private key file %s are too open: group and others "
                 "must not read it; run: chmod 600 %s",
                 (unsigned)(sb.st_mode & 07777), path, path);
        return -1;
    }
    return 0;
}

/* Opens path for writing a new secret file (mode 0600); NULL with err. */
static FILE *create_secret(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    return f;
}

/* Flushes, fsyncs and closes f. 0, or -1 with err. */
static int finish_file(FILE *f, const char *path, int ok, char *err, size_t errlen)
{
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok) {
        snprintf(err, errlen, "cannot write %s", path);
        unlink(path);
    }
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- the algorithm */

/* plugin_opt_signing_alg: "ed25519" (also when NULL) or "es256"; NONE for another word. */
static ota_cose_alg alg_of_option(const char *word)
{
    return word == NULL || strcmp(word, "ed25519") == 0 ? OTA_COSE_EDDSA
           : strcmp(word, "es256") == 0                 ? OTA_COSE_ES256
                                                        : OTA_COSE_NONE;
}

/* A new key of the algorithm: Ed25519, or EC on P-256. */
static EVP_PKEY *keygen(ota_cose_alg alg)
{
    return alg == OTA_COSE_ES256 ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")
                                 : EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
}

/* NULL when k is a key of alg, else why not (for the start error). */
static const char *wrong_key(EVP_PKEY *k, ota_cose_alg alg)
{
    if (k == NULL)
        return "not a private key in PEM";
    if (ota_codec_cose_alg(k) == alg)
        return NULL;
    return alg == OTA_COSE_ES256 ? "not an EC P-256 private key (plugin_opt_signing_alg es256)"
                                 : "not an Ed25519 private key (plugin_opt_signing_alg ed25519)";
}

/* ---------------------------------------------------------------- the files */

static EVP_PKEY *create_signing(const char *path, ota_cose_alg alg, char *err, size_t errlen)
{
    EVP_PKEY *k = keygen(alg);
    FILE *f = k ? create_secret(path, err, errlen) : NULL;
    if (f == NULL ||
        finish_file(f, path, PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1, err,
                    errlen) != 0) {
        EVP_PKEY_free(k);
        return NULL;
    }
    log_created("signing key", path);
    return k;
}

static EVP_PKEY *load_signing(const char *path, ota_cose_alg alg, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return errno == ENOENT ? create_signing(path, alg, err, errlen) : NULL;
    if (check_private(f, path, err, errlen) != 0) {
        fclose(f);
        return NULL;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    const char *why = wrong_key(k, alg);
    if (why != NULL) {
        snprintf(err, errlen, "%s: %s", path, why);
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

/* <path>.pub, PEM SubjectPublicKeyInfo, replaced atomically (tmp + rename). */
static int write_public(EVP_PKEY *k, const char *path, char *err, size_t errlen)
{
    char pub[4096], tmp[4200];
    snprintf(pub, sizeof pub, "%s.pub", path);
    snprintf(tmp, sizeof tmp, "%s.tmp", pub);
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    if (finish_file(f, tmp, PEM_write_PUBKEY(f, k) == 1, err, errlen) != 0)
        return -1;
    if (rename(tmp, pub) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", pub, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int create_kek(const char *path, uint8_t kek[OTA_CONTENT_KEY_LEN], char *err, size_t errlen)
{
    char hex[2 * OTA_CONTENT_KEY_LEN + 1];
    if (RAND_bytes(kek, OTA_CONTENT_KEY_LEN) != 1) {
        snprintf(err, errlen, "no randomness for %s", path);
        return -1;
    }
    FILE *f = create_secret(path, err, errlen);
    if (f == NULL)
        return -1;
    ota_codec_hex(kek, OTA_CONTENT_KEY_LEN, hex);
    int rc = finish_file(f, path, fprintf(f, "%s\n", hex) > 0, err, errlen);
    OPENSSL_cleanse(hex, sizeof hex);
    if (rc == 0)
        log_created("content-key KEK", path);
    return rc;
}

static int load_kek(const char *path, uint8_t kek[OTA_CONTENT_KEY_LEN], char *err, size_t errlen)
{
    char line[256] = "";
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return create_kek(path, kek, err, errlen);
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    if (check_private(f, path, err, errlen) != 0) {
        fclose(f);
        return -1;
    }
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    ok = ok && ota_codec_unhex(line, kek, OTA_CONTENT_KEY_LEN) == 0;
    OPENSSL_cleanse(line, sizeof line);
    if (!ok)
        snprintf(err, errlen, "%s: expected 64 hex characters (a 256-bit key)", path);
    return ok ? 0 : -1;
}

ota_keys *ota_keys_open(const char *signing_path, const char *signing_alg, const char *kek_path,
                        char *err, size_t errlen)
{
    ota_cose_alg alg = alg_of_option(signing_alg);
    if (alg == OTA_COSE_NONE) {
        snprintf(err, errlen, "plugin_opt_signing_alg: \"%s\" is not ed25519 or es256",
                 signing_alg);
        return NULL;
    }
    ota_keys *k = calloc(1, sizeof *k);
    if (k == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    err[0] = '\0';
    k->signing = load_signing(signing_path, alg, err, errlen);
    if (k->signing == NULL && err[0] == '\0')
        snprintf(err, errlen, "cannot read %s: %s", signing_path, strerror(errno));
    if (k->signing == NULL || write_public(k->signing, signing_path, err, errlen) != 0 ||
        ota_codec_cose_kid(k->signing, k->kid) != 0 ||
        load_kek(kek_path, k->kek, err, errlen) != 0) {
        ota_keys_free(k);
        return NULL;
    }
    return k;
}

void ota_keys_free(ota_keys *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->signing);
    OPENSSL_cleanse(k->kek, sizeof k->kek);
    free(k);
}

static size_t package_aad(uint64_t package, char aad[40])
{
    return (size_t)snprintf(aad, 40, "ota-package:%" PRIu64, package);
}

int ota_keys_seal_content(const ota_keys *k, uint64_t package,
                          const uint8_t key[OTA_CONTENT_KEY_LEN], char out[OTA_SEALED_KEY_HEX + 1])
{
    uint8_t sealed[OTA_SEALED_LEN(OTA_CONTENT_KEY_LEN)];
    char aad[40];
    size_t n = package_aad(package, aad);
    if (ota_codec_seal(k->kek, aad, n, key, OTA_CONTENT_KEY_LEN, sealed) != 0)
        return -1;
    ota_codec_hex(sealed, sizeof sealed, out);
    return 0;
}

int ota_keys_open_content(const ota_keys *k, uint64_t package, const char *sealed_hex,
                          uint8_t key[OTA_CONTENT_KEY_LEN])
{
    uint8_t sealed[OTA_SEALED_LEN(OTA_CONTENT_KEY_LEN)];
    char aad[40];
    size_t n = package_aad(package, aad);
    if (ota_codec_unhex(sealed_hex, sealed, sizeof sealed) != 0)
        return -1;
    return ota_codec_open(k->kek, aad, n, sealed, sizeof sealed, key);
}
