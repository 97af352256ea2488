#include "fetch.h"
#include "error.h"

#include <curl/curl.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct ctx {
    st_fetch_buf body;
    const char *capture;
    char *header_value;
    int oom;
} ctx;

size_t st_fetch_buf_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    st_fetch_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *d = realloc(b->data, cap);
        if (!d) {
            b->oom = 1;
            return 0;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

int st_fetch_header_value(const char *line, size_t n, const char *name, const char **value,
                          size_t *value_len)
{
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0) {
        return 0;
    }
    const char *v = line + k + 1;
    const char *end = line + n;
    while (v < end && isspace((unsigned char)*v)) {
        v++;
    }
    while (end > v && isspace((unsigned char)end[-1])) {
        end--;
    }
    *value = v;
    *value_len = (size_t)(end - v);
    return 1;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userdata)
{
    ctx *c = userdata;
    size_t n = size * nmemb;
    const char *v;
    size_t len;
    if (!c->capture || !st_fetch_header_value(line, n, c->capture, &v, &len)) {
        return n;
    }
    free(c->header_value);
    c->header_value = strndup(v, len);
    if (!c->header_value) {
        c->oom = 1;
        return 0;
    }
    return n;
}

static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    const atomic_int *cancel = clientp;
    return atomic_load(cancel) ? 1 : 0;
}

void st_fetch_watch_cancel(CURL *h, const atomic_int *cancel)
{
    if (cancel) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)cancel);
    }
}

int st_fetch(const st_fetch_req *req, st_fetch_resp *resp)
{
    memset(resp, 0, sizeof(*resp));
    if (!req || !req->url || !req->method) {
        return ST_EINVAL;
    }
    int rc = 0;
    ctx c = {.capture = req->capture_header};
    struct curl_slist *hdrs = NULL;
    CURL *h = curl_easy_init();
    if (!h) {
        return ST_ENOMEM;
    }
    for (const char *const *l = req->headers; l && *l; l++) {
        struct curl_slist *n = curl_slist_append(hdrs, *l);
        if (!n) {
            rc = ST_ENOMEM;
            goto out;
        }
        hdrs = n;
    }
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    if (req->connect_timeout_ms > 0) {
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, req->connect_timeout_ms);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, st_fetch_buf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c.body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &c);
    st_fetch_watch_cancel(h, req->cancel);
    if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
        curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, req->body ? req->body : "");
    }
    CURLcode cc = curl_easy_perform(h);
    if (c.oom || c.body.oom) {
        rc = ST_ENOMEM;
        goto out;
    }
    switch (cc) {
    case CURLE_OK:
        break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        rc = ST_ECONNECT;
        goto out;
    case CURLE_OPERATION_TIMEDOUT:
        rc = ST_ETIMEDOUT;
        goto out;
    case CURLE_ABORTED_BY_CALLBACK:
        rc = ST_ECLOSED;
        goto out;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        rc = ST_EINVAL;
        goto out;
    default:
        rc = ST_EIO;
        goto out;
    }
    if (!c.body.data && !(c.body.data = calloc(1, 1))) {
        rc = ST_ENOMEM;
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    resp->body = c.body.data;
    resp->body_len = c.body.len;
    resp->header_value = c.header_value;
    c.body.data = NULL;
    c.header_value = NULL;
out:
    free(c.body.data);
    free(c.header_value);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc;
}

void st_fetch_resp_fini(st_fetch_resp *resp)
{
    if (!resp) {
        return;
    }
    free(resp->body);
    free(resp->header_value);
    memset(resp, 0, sizeof(*resp));
}
