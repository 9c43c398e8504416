/*
 * fuzz_desc_texts.c — fuzz target: the vehicle's reading of a description's user texts
 * (tools/vehicle-crypto vc_desc_user_text, issue 17): a COSE_Sign1 whose payload may carry
 * texts {language, prompt: {tag: text}, result_info: {tag: text}}, read for a driver's
 * language. Checks: outputs always terminated and within their buffers; a refused input
 * leaves them empty.
 */
#include "fuzz.h"
#include "vcrypto.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const langs[] = {NULL, "", "en", "de-AT"};
    for (size_t i = 0; i < sizeof langs / sizeof langs[0]; i++) {
        char out[64], used[8];
        memset(out, 'x', sizeof out);
        memset(used, 'x', sizeof used);
        int rc = vc_desc_user_text(data, size, i % 2 ? "result_info" : "prompt", langs[i], out,
                                   sizeof out, used, sizeof used);
        FUZZ_CHECK(memchr(out, '\0', sizeof out) != NULL);
        FUZZ_CHECK(memchr(used, '\0', sizeof used) != NULL);
        FUZZ_CHECK(rc == 0 || (out[0] == '\0' && used[0] == '\0'));
    }
    return 0;
}
