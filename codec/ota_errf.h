/*
 * ota_errf.h — the one way mosquitto-ota formats an error text into a caller's buffer.
 *
 * Every layer (codec, store, core, plugin) writes its error and refusal texts through these
 * functions: the text is always NUL-terminated, and when it does not fit it is cut at a
 * whole UTF-8 character, so a truncated message is still valid text in a JSON or CBOR
 * reply. Each returns -1, so a caller can `return ota_errf(err, errlen, ...)`. A NULL
 * buffer or a capacity of 0 is accepted and left alone.
 */
#ifndef OTA_ERRF_H
#define OTA_ERRF_H

#include <stdarg.h>
#include <stddef.h>

/* Formats fmt into buf[0..cap). */
int ota_errf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int ota_verrf(char *buf, size_t cap, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Appends fmt to the text buf already holds (e.g. after a prefix written by ota_errf). */
int ota_errf_append(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int ota_verrf_append(char *buf, size_t cap, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
