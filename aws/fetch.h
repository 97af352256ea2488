/*
 * fetch.h - one blocking HTTP request through libcurl, for the small local endpoints stampede talks
 * to outside the AWS APIs: the ECS container credentials endpoint, EC2 instance metadata (IMDSv2)
 * and the AWS Lambda runtime API.
 *
 * Callers: aws/aws_creds.c and sink/lambda.c. Each call uses its own easy handle, so any thread
 * may call st_fetch at any time once the program has called curl_global_init from main. Proxies are
 * never used for these requests: they are link-local or loopback by nature.
 *
 * Ownership: st_fetch fills a caller-provided st_fetch_resp whose buffers it owns until
 * st_fetch_resp_fini (a zeroed response is fine to fini).
 */
#ifndef ST_FETCH_H
#define ST_FETCH_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>

typedef struct st_fetch_req {
    const char *method;         /* "GET", "PUT" or "POST" */
    const char *url;            /* absolute http:// or https:// URL */
    const char *const *headers; /* NULL-terminated "Name: value" lines; NULL for none */
    const char *body;           /* may be NULL */
    size_t body_len;
    long timeout_ms;            /* whole request; 0 waits forever (the Lambda runtime's next) */
    long connect_timeout_ms;    /* 0: libcurl's default */
    const char *capture_header; /* a response header to keep (case-insensitive name), or NULL */
    const atomic_int *cancel;   /* when non-NULL and raised, the request aborts with ST_ECLOSED */
} st_fetch_req;

typedef struct st_fetch_resp {
    long status; /* HTTP status, 0 when no response arrived */
    char *body;  /* NUL-terminated, body_len bytes before the NUL; never NULL on 0 */
    size_t body_len;
    char *header_value; /* the captured header's value, trimmed; NULL when absent */
} st_fetch_resp;

/* A growing, NUL-terminated buffer for response bodies, and the libcurl write callback that fills
 * it (CURLOPT_WRITEDATA is the buffer). Zero-initialise it; free(data) when done. On an allocation
 * failure the callback sets oom and stops the transfer. Also used by aws/aws.c. */
typedef struct st_fetch_buf {
    char *data;
    size_t len;
    size_t cap;
    int oom;
} st_fetch_buf;

size_t st_fetch_buf_write(char *ptr, size_t size, size_t nmemb, void *userdata);

/* When line (n bytes: one header line as libcurl hands it to a CURLOPT_HEADERFUNCTION) is header
 * name (case-insensitive), points *value at its value without the white space around it, sets
 * *value_len and returns 1; otherwise returns 0. Also used by aws/aws.c. */
int st_fetch_header_value(const char *line, size_t n, const char *name, const char **value,
                          size_t *value_len);

/* Makes the transfer on easy handle h abort (CURLE_ABORTED_BY_CALLBACK) once *cancel is raised;
 * NULL leaves h as it is. *cancel must outlive the transfer. Also used by aws/aws.c. */
void st_fetch_watch_cancel(CURL *h, const atomic_int *cancel);

/* Performs the request. Returns 0 when any HTTP response arrived (check resp->status), ST_ECONNECT
 * when no connection could be made, ST_ETIMEDOUT when the timeout passed, ST_EIO for other transfer
 * failures, ST_ECLOSED when cancelled, ST_EINVAL for a malformed request, ST_ENOMEM. On error resp
 * is left zeroed. */
int st_fetch(const st_fetch_req *req, st_fetch_resp *resp);
void st_fetch_resp_fini(st_fetch_resp *resp);

#endif
