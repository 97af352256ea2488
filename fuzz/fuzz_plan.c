/*
 * fuzz_plan: the JSON plan parser (common/plan.h) on any bytes, then the whole-plan checks.
 *
 * Inputs that name "body_file" are skipped: the parser would open whatever path the fuzzer
 * made up (tests/test_plan.c covers body files).
 */
#include "plan.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memmem(data, size, "body_file", 9)) {
        return 0;
    }
    st_plan p;
    st_plan_init(&p);
    char err[512];
    if (st_plan_parse(&p, (const char *)data, size, "fuzz", err, sizeof(err)) == 0) {
        (void)st_plan_finish(&p, 2, err, sizeof(err));
    }
    st_plan_fini(&p);
    return 0;
}
