/*
 * fuzz.h — what every fuzz target in tests/fuzz/ shares.
 *
 * Each target defines LLVMFuzzerTestOneInput: it feeds one input to a decoder and checks
 * the decoder's promises (FUZZ_CHECK aborts, which libFuzzer and the corpus driver report
 * as a crash). Built with -DOTA_FUZZ=ON (clang) it links libFuzzer; in the normal build it
 * links driver.c, which runs every file of the target's seed corpus once.
 */
#ifndef OTA_FUZZ_H
#define OTA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
