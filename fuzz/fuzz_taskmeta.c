/*
 * fuzz_taskmeta: what an agent on ECS reads from the task metadata endpoint at start, the answer
 * of `GET $ECS_CONTAINER_METADATA_URI_V4/task` (aws/taskmeta.h), parsed before the agent
 * registers with what it says.
 */
#include "taskmeta.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_taskmeta m;
    char why[256];
    if (st_taskmeta_parse((const char *)data, size, &m, why, sizeof(why)) == 0) {
        /* The contract: every required string present, limits positive, an address given. */
        if (!m.task_arn || !m.cluster || !m.family || !m.revision || !m.availability_zone ||
            !(m.cpu_vcpus > 0) || m.memory_mib <= 0 || !m.ipv4[0] ||
            memchr(m.ipv4, '\0', sizeof(m.ipv4)) == NULL ||
            (m.has_clock_error_bound && !(m.clock_error_bound_ms >= 0))) {
            abort();
        }
        st_taskmeta_fini(&m);
    } else if (!why[0]) {
        abort(); /* an error always says what and where */
    }
    return 0;
}
