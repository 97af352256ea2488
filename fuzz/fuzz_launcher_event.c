/*
 * fuzz_launcher_event: what stampede-launcher reads from an invocation (launcher/launcher.h's
 * st_launcher_event_read: the seed's payload or a plan, checked as stampede run checks it), then
 * the JSON it would hand the coordinator read back the same way, which must give the same run.
 */
#include "launcher.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_launcher_event ev, again;
    char err[1024];
    if (st_launcher_event_read((const char *)data, size, &ev, err, sizeof(err)) != 0) {
        return 0;
    }
    if (!ev.plan_json || ev.agents < 1 || ev.duration_s < 0 || ev.target_rps < 0) {
        abort();
    }
    /* The coordinator reads the handed-on plan: it must be what was checked. */
    if (st_launcher_event_read(ev.plan_json, strlen(ev.plan_json), &again, err, sizeof(err)) != 0 ||
        again.agents != ev.agents || again.duration_s != ev.duration_s ||
        again.target_rps != ev.target_rps || strcmp(again.plan_json, ev.plan_json) != 0) {
        abort();
    }
    st_launcher_event_fini(&again);
    st_launcher_event_fini(&ev);
    return 0;
}
