/*
 * fuzz_result_msg: the result-message decoder that stampede-sink runs on every SQS body
 * (results/result_msg.h), then the DynamoDB item it would write, read back.
 *
 * Oracle besides the sanitizers: a message that decodes becomes an item, and that item parses
 * back to the same kind, run and second.
 */
#include "result_item.h"
#include "result_msg.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_result_msg m;
    char err[512];
    if (st_result_decode((const char *)data, size, &m, err, sizeof(err)) != 0) {
        return 0;
    }
    cJSON *item = NULL;
    if (st_result_item_build(&m, 1700000000, &item) == 0) {
        st_result_msg back;
        int64_t ttl = 0;
        if (st_result_item_parse(item, &back, &ttl, err, sizeof(err)) != 0) {
            abort(); /* an item we built must parse */
        }
        if (back.kind != m.kind || back.second != m.second || strcmp(back.run_id, m.run_id) != 0 ||
            ttl != 1700000000) {
            abort();
        }
        st_result_msg_fini(&back);
        cJSON_Delete(item);
    }
    st_result_msg_fini(&m);
    return 0;
}
