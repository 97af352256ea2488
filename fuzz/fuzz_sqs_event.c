/*
 * fuzz_sqs_event: what stampede-sink's Lambda handler reads from an invocation: the SQS event
 * (sink/sqs_event.h), then each record's body as a result message, as sink/store.c decodes it
 * before anything is written.
 */
#include "result_msg.h"
#include "sqs_event.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    cJSON *doc = NULL;
    st_sink_record *recs = NULL;
    size_t n = 0;
    if (st_sink_event_parse(text, &doc, &recs, &n) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (!recs[i].body) {
                abort(); /* the contract: "" when the record has no string body */
            }
            st_result_msg m;
            char err[256];
            if (st_result_decode(recs[i].body, strlen(recs[i].body), &m, err, sizeof(err)) == 0) {
                st_result_msg_fini(&m);
            }
        }
        free(recs);
        cJSON_Delete(doc);
    }
    free(text);
    return 0;
}
