/*
 * opt_value.c — a plugin_opt_* value trimmed, or read as a number in a range (opt_value.h).
 */
#include "opt_value.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

char *ota_opt_trimmed(const char *value)
{
    while (isspace((unsigned char)*value)) {
        value++;
    }
    size_t n = strlen(value);
    while (n > 0 && isspace((unsigned char)value[n - 1])) {
        n--;
    }
    return strndup(value, n);
}

int ota_opt_uint(const char *value, unsigned long long min, unsigned long long max,
                 unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    while (isspace((unsigned char)*end)) {
        end++;
    }
    if (errno || end == value || *end || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}
