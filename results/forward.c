#include "forward.h"
#include "clock.h"
#include "error.h"
#include "log.h"
#include "result_msg.h"
#include "sqs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct fmsg {
    char *id;
    char *text;
    size_t len;
    int from_spool; /* the spool file is removed once SQS accepts it */
    struct fmsg *next;
} fmsg;

/* What sending needs, shared by the forwarder's thread and st_forward_spool. */
typedef struct sender {
    st_aws_client *client;
    const char *queue_url;
    const char *spool_dir;
    int fifo;
    int entry_attempts;
    st_aws_retry retry;
    st_aws_sys sys;
    const atomic_int *cancel;
    uint64_t sent;
    uint64_t lost;
    char last_error[ST_AWS_MSG_LEN];
    char refused[ST_FORWARD_BATCH_MAX][256]; /* why SQS refused each entry of the last batch */
} sender;

struct st_forwarder {
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done_cv;
    fmsg *head, *tail; /* submitted, not yet taken by the thread */
    int closing;
    int done;
    int closed;
    atomic_int cancel;
    char *queue_url;
    char *spool_dir;
    uint32_t retry_interval_ms;
    sender s;
};

void st_forwarder_config_init(st_forwarder_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    st_aws_config_init(&cfg->aws);
    cfg->aws.retry.max_attempts = 3;
    cfg->aws.retry.base_delay_ms = 100;
    cfg->aws.retry.max_delay_ms = 1000;
    cfg->aws.connect_timeout_ms = 2000;
    cfg->aws.timeout_ms = 10000;
    cfg->retry_interval_ms = 1000;
    cfg->entry_attempts = 3;
}

/* ---- names and batches ---- */

int st_forward_id_valid(const char *id)
{
    return st_result_name_valid(id, ST_RESULT_ID_MAX);
}

int st_forward_entry_id(const char *id, char *out, size_t out_len)
{
    if (!st_forward_id_valid(id)) {
        return ST_EINVAL;
    }
    size_t n = strlen(id);
    if (n + 1 > out_len) {
        return ST_ERANGE;
    }
    for (size_t i = 0; i <= n; i++) {
        out[i] = id[i] == '.' ? '_' : id[i];
    }
    return 0;
}

int st_forward_spool_name(const char *id, char *out, size_t out_len)
{
    if (!st_forward_id_valid(id)) {
        return ST_EINVAL;
    }
    int n = snprintf(out, out_len, "%s.json", id);
    return n < 0 || (size_t)n >= out_len ? ST_ERANGE : 0;
}

int st_forward_spool_id(const char *name, char *out, size_t out_len)
{
    size_t n = strlen(name);
    if (n <= 5 || strcmp(name + n - 5, ".json") != 0 || n - 5 + 1 > out_len) {
        return ST_EINVAL;
    }
    memcpy(out, name, n - 5);
    out[n - 5] = '\0';
    return st_forward_id_valid(out) ? 0 : ST_EINVAL;
}

size_t st_forward_batch_take(const char *const *ids, const size_t *sizes, size_t n)
{
    char eids[ST_FORWARD_BATCH_MAX][ST_RESULT_ID_MAX + 1];
    size_t bytes = 0;
    size_t k = 0;
    while (k < n && k < ST_FORWARD_BATCH_MAX) {
        if (k > 0 && bytes + sizes[k] > ST_FORWARD_BATCH_BYTES) {
            break;
        }
        if (st_forward_entry_id(ids[k], eids[k], sizeof(eids[k])) != 0) {
            eids[k][0] = '\0';
        }
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++) {
            dup = strcmp(eids[j], eids[k]) == 0;
        }
        if (dup) {
            break;
        }
        bytes += sizes[k];
        k++;
    }
    return k == 0 && n > 0 ? 1 : k;
}

/* ---- the spool ---- */

static int mkdirs(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
        return ST_EINVAL;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(path, 0700) != 0 && errno != EEXIST) {
                return ST_EIO;
            }
            *p = '/';
        }
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        return ST_EIO;
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : ST_EIO;
}

int st_forward_spool_write(const char *spool_dir, const char *id, const char *json, size_t len)
{
    static atomic_uint counter;
    char name[ST_RESULT_ID_MAX + 8];
    char path[4096], tmp[4096];
    if (st_forward_spool_name(id, name, sizeof(name)) != 0 || !spool_dir) {
        return ST_EINVAL;
    }
    snprintf(path, sizeof(path), "%s/%s", spool_dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.tmp-%s-%ld-%u", spool_dir, name, (long)getpid(),
             atomic_fetch_add(&counter, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return ST_EIO;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, json + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            close(fd);
            unlink(tmp);
            return ST_EIO;
        }
        off += (size_t)w;
    }
    /* The rename must never publish a file whose contents are not on disk yet. */
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return ST_EIO;
    }
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return ST_EIO;
    }
    int dfd = open(spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the spool files in dir. */
static int spool_list(const char *dir, char ***names_out, size_t *n_out)
{
    DIR *d = opendir(dir);
    if (!d) {
        return errno == ENOENT ? ST_ENOTFOUND : ST_EIO;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char id[ST_RESULT_ID_MAX + 1];
        if (st_forward_spool_id(e->d_name, id, sizeof(id)) != 0) {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            char **nn = realloc(names, ncap * sizeof(*nn));
            if (!nn) {
                rc = ST_ENOMEM;
                break;
            }
            names = nn;
            cap = ncap;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = ST_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc) {
        for (size_t i = 0; i < n; i++) {
            free(names[i]);
        }
        free(names);
        return rc;
    }
    if (n > 1) {
        qsort(names, n, sizeof(*names), name_cmp);
    }
    *names_out = names;
    *n_out = n;
    return 0;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}

static uint64_t spool_count(const char *dir)
{
    char **names = NULL;
    size_t n = 0;
    if (spool_list(dir, &names, &n) != 0) {
        return 0;
    }
    free_names(names, n);
    return n;
}

static int read_file(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return errno == ENOENT ? ST_ENOTFOUND : ST_EIO;
    }
    char *buf = malloc(ST_FORWARD_BATCH_BYTES + 2);
    if (!buf) {
        fclose(f);
        return ST_ENOMEM;
    }
    size_t n = fread(buf, 1, ST_FORWARD_BATCH_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n == 0 || n > ST_FORWARD_BATCH_BYTES) {
        free(buf);
        return bad ? ST_EIO : ST_ERANGE;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

static void fmsg_free(fmsg *m)
{
    if (m) {
        free(m->id);
        free(m->text);
        free(m);
    }
}

static void fmsg_list_free(fmsg *m)
{
    while (m) {
        fmsg *next = m->next;
        fmsg_free(m);
        m = next;
    }
}

/* ---- sending ---- */

enum { ENTRY_PENDING = 0, ENTRY_SENT = 1, ENTRY_FAILED = 2 };

static int cancelled(const sender *s)
{
    return s->cancel && atomic_load(s->cancel);
}

/* One SendMessageBatch of msgs[0..k). Entry outcomes go to status[], the last refusal's reason to
 * s->last_error. Returns 0 when SQS answered the call, or the call's error. */
static int send_batch(sender *s, fmsg **msgs, size_t k, int *status)
{
    char eids[ST_FORWARD_BATCH_MAX][ST_RESULT_ID_MAX + 1];
    char groups[ST_FORWARD_BATCH_MAX][ST_RESULT_ID_MAX + 1];
    st_sqs_entry e[ST_FORWARD_BATCH_MAX];
    for (size_t i = 0; i < k; i++) {
        status[i] = ENTRY_FAILED;
        snprintf(s->refused[i], sizeof(s->refused[i]), "SQS did not answer for %s", msgs[i]->id);
        st_forward_entry_id(msgs[i]->id, eids[i], sizeof(eids[i]));
        e[i] = (st_sqs_entry){.id = eids[i], .body = msgs[i]->text};
        if (s->fifo) {
            /* A run's messages form one group: the result id less its last dotted part. */
            snprintf(groups[i], sizeof(groups[i]), "%s", msgs[i]->id);
            char *dot = strrchr(groups[i], '.');
            if (dot && dot != groups[i]) {
                *dot = '\0';
            }
            e[i].group_id = groups[i];
            e[i].dedup_id = msgs[i]->id;
        }
    }
    st_aws_error ae;
    int rc = st_sqs_send_batch(s->client, s->queue_url, e, k, &ae);
    if (rc == ST_ENOMEM) {
        return rc;
    }
    if (rc) {
        snprintf(s->last_error, sizeof(s->last_error), "%s", ae.message);
        return rc;
    }
    for (size_t i = 0; i < k; i++) {
        if (e[i].sent) {
            status[i] = ENTRY_SENT;
        } else if (e[i].refused) {
            snprintf(s->refused[i], sizeof(s->refused[i]), "SQS refused %.80s: %.150s",
                     msgs[i]->id, e[i].why);
        }
    }
    return 0;
}

static void spool_dir_remove(sender *s, const fmsg *m)
{
    char name[ST_RESULT_ID_MAX + 8], path[4096];
    if (st_forward_spool_name(m->id, name, sizeof(name)) == 0) {
        snprintf(path, sizeof(path), "%s/%s", s->spool_dir, name);
        if (unlink(path) != 0 && errno != ENOENT) {
            st_warn("cannot remove delivered spool file %s: %s", path, strerror(errno));
        }
    }
}

/* Puts an undelivered message into the spool (unless it already is there). */
static void spool_keep(sender *s, const fmsg *m)
{
    if (m->from_spool) {
        return;
    }
    int rc = st_forward_spool_write(s->spool_dir, m->id, m->text, m->len);
    if (rc) {
        s->lost++;
        st_error("result %s is lost: cannot write it to the spool directory %s: %s", m->id,
                 s->spool_dir, strerror(errno));
    }
}

static void mark_sent(sender *s, const fmsg *m)
{
    s->sent++;
    if (m->from_spool) {
        spool_dir_remove(s, m);
    }
}

/* Sends msgs[0..n) in batches. Each message ends up sent or spooled. Returns 0 when every call was
 * answered (refused entries are spooled), or the first call error (everything unsent from there on
 * is spooled). */
static int send_all(sender *s, fmsg **msgs, size_t n)
{
    const char *ids[ST_FORWARD_BATCH_MAX];
    size_t sizes[ST_FORWARD_BATCH_MAX];
    int status[ST_FORWARD_BATCH_MAX];
    size_t i = 0;
    int call_rc = 0;
    while (i < n && !call_rc) {
        size_t window = n - i < ST_FORWARD_BATCH_MAX ? n - i : ST_FORWARD_BATCH_MAX;
        for (size_t j = 0; j < window; j++) {
            ids[j] = msgs[i + j]->id;
            sizes[j] = msgs[i + j]->len;
        }
        size_t k = st_forward_batch_take(ids, sizes, window);
        call_rc = cancelled(s) ? ST_ECLOSED : send_batch(s, msgs + i, k, status);
        for (size_t j = 0; j < k; j++) {
            fmsg *m = msgs[i + j];
            if (call_rc) {
                spool_keep(s, m);
                continue;
            }
            if (status[j] == ENTRY_SENT) {
                mark_sent(s, m);
                continue;
            }
            st_warn("%s; retrying it alone", s->refused[j]);
            int st = ENTRY_FAILED;
            for (int a = 1; a < s->entry_attempts && st != ENTRY_SENT && !call_rc; a++) {
                uint32_t delay = st_aws_backoff_ms(&s->retry, a - 1, s->sys.random(s->sys.ctx));
                for (uint32_t slept = 0; slept < delay && !cancelled(s); slept += 50) {
                    s->sys.sleep_ms(s->sys.ctx, delay - slept < 50 ? delay - slept : 50);
                }
                call_rc = cancelled(s) ? ST_ECLOSED : send_batch(s, &m, 1, &st);
            }
            if (!call_rc && st == ENTRY_SENT) {
                mark_sent(s, m);
            } else {
                if (!call_rc) {
                    snprintf(s->last_error, sizeof(s->last_error), "%s", s->refused[0]);
                    st_error("%s; kept in the spool %s", s->refused[0], s->spool_dir);
                }
                spool_keep(s, m);
            }
        }
        i += k;
    }
    for (; i < n; i++) {
        spool_keep(s, msgs[i]);
    }
    return call_rc;
}

/* Delivers the spool, oldest identity first, in groups of batches. Returns 0 when every file was
 * attempted and the calls answered, or the first call error. */
static int replay_spool(sender *s, uint64_t *remaining)
{
    char **names = NULL;
    size_t n = 0;
    int rc = spool_list(s->spool_dir, &names, &n);
    if (rc) {
        return rc;
    }
    fmsg *group[ST_FORWARD_BATCH_MAX * 10];
    size_t i = 0;
    while (i < n && rc == 0) {
        size_t g = 0;
        for (; i < n && g < sizeof(group) / sizeof(group[0]); i++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", s->spool_dir, names[i]);
            fmsg *m = calloc(1, sizeof(*m));
            char id[ST_RESULT_ID_MAX + 1];
            st_forward_spool_id(names[i], id, sizeof(id));
            if (!m || !(m->id = strdup(id))) {
                fmsg_free(m);
                rc = ST_ENOMEM;
                break;
            }
            int frc = read_file(path, &m->text, &m->len);
            if (frc) {
                if (frc != ST_ENOTFOUND) {
                    st_error("spool file %s cannot be sent: %s", path,
                             frc == ST_ERANGE ? "empty or larger than 256 KiB" : st_strerror(frc));
                }
                fmsg_free(m);
                continue;
            }
            m->from_spool = 1;
            group[g++] = m;
        }
        if (g > 0 && rc == 0) {
            rc = send_all(s, group, g);
        }
        for (size_t j = 0; j < g; j++) {
            fmsg_free(group[j]);
        }
    }
    free_names(names, n);
    if (remaining) {
        *remaining = spool_count(s->spool_dir);
    }
    return rc;
}

/* ---- the forwarder's thread ---- */

static uint64_t now_ms(void)
{
    return st_clock_mono_ns() / ST_NS_PER_MS;
}

/* The monotonic instant ms from now: the forwarder's conditions wait on that clock. */
static struct timespec mono_after_ms(uint64_t ms)
{
    return st_clock_timespec(st_clock_mono_ns() + ms * ST_NS_PER_MS);
}

static void go_down(st_forwarder *f, int *down, uint64_t *next_try_ms)
{
    if (!*down && !cancelled(&f->s)) {
        st_warn("SQS unreachable (%s); results go to the spool %s and are sent when it answers",
                f->s.last_error, f->spool_dir);
    }
    *down = 1;
    *next_try_ms = now_ms() + f->retry_interval_ms;
}

static void wait_for_work(st_forwarder *f, int spool_pending, uint64_t next_try_ms)
{
    while (!f->head && !f->closing) {
        if (!spool_pending) {
            pthread_cond_wait(&f->wake, &f->mu);
            continue;
        }
        uint64_t now = now_ms();
        if (now >= next_try_ms) {
            return;
        }
        struct timespec ts = mono_after_ms(next_try_ms - now);
        pthread_cond_timedwait(&f->wake, &f->mu, &ts);
    }
}

static void *forward_main(void *arg)
{
    st_forwarder *f = arg;
    sender *s = &f->s;
    int down = 0;
    int spool_pending = spool_count(f->spool_dir) > 0;
    uint64_t next_try_ms = 0;

    pthread_mutex_lock(&f->mu);
    for (;;) {
        wait_for_work(f, spool_pending, next_try_ms);
        fmsg *taken = f->head;
        f->head = f->tail = NULL;
        int closing = f->closing;
        pthread_mutex_unlock(&f->mu);

        /* New messages first: straight to SQS when it answers and nothing older waits, else to
         * the spool behind the older ones. */
        size_t n = 0;
        for (fmsg *m = taken; m; m = m->next) {
            n++;
        }
        fmsg **arr = n ? malloc(n * sizeof(*arr)) : NULL;
        if (n > 0 && (!arr || down || spool_pending || cancelled(s))) {
            for (fmsg *m = taken; m; m = m->next) {
                spool_keep(s, m);
            }
            spool_pending = 1;
        } else if (n > 0) {
            size_t i = 0;
            for (fmsg *m = taken; m; m = m->next) {
                arr[i++] = m;
            }
            if (send_all(s, arr, n) != 0) {
                go_down(f, &down, &next_try_ms);
                spool_pending = 1;
            } else if (spool_count(f->spool_dir) > 0) {
                /* SQS answered but refused some entries: they wait in the spool. */
                spool_pending = 1;
                next_try_ms = now_ms() + f->retry_interval_ms;
            }
        }
        free(arr);
        fmsg_list_free(taken);

        /* Then the spool, when it is due (and once more when closing). */
        if (spool_pending && !cancelled(s) && (closing || now_ms() >= next_try_ms)) {
            uint64_t left = 0;
            int rc = replay_spool(s, &left);
            if (rc) {
                go_down(f, &down, &next_try_ms);
            } else {
                if (down) {
                    st_info("SQS answers again; %llu result(s) still in the spool %s",
                            (unsigned long long)left, f->spool_dir);
                }
                down = 0;
                spool_pending = left > 0;
                next_try_ms = now_ms() + f->retry_interval_ms;
            }
        }

        pthread_mutex_lock(&f->mu);
        if ((closing && !f->head) || atomic_load(&f->cancel)) {
            break;
        }
    }
    /* Cancelled with messages still queued: they go to the spool. */
    fmsg *rest = f->head;
    f->head = f->tail = NULL;
    pthread_mutex_unlock(&f->mu);
    for (fmsg *m = rest; m; m = m->next) {
        spool_keep(s, m);
    }
    fmsg_list_free(rest);
    pthread_mutex_lock(&f->mu);
    f->done = 1;
    pthread_cond_broadcast(&f->done_cv);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* ---- public API ---- */

static int sender_init(sender *s, const char *queue_url, const char *spool_dir,
                       const st_aws_config *aws, char *err, size_t err_len)
{
    memset(s, 0, sizeof(*s));
    st_aws_config c = *aws;
    c.sqs_queue_url = queue_url;
    st_aws_error ae;
    int rc = st_aws_client_new(&s->client, &c, &ae);
    if (rc) {
        return st_errf(err, err_len, rc, "%s", ae.message[0] ? ae.message : st_strerror(rc));
    }
    s->queue_url = queue_url;
    s->spool_dir = spool_dir;
    size_t n = strlen(queue_url);
    s->fifo = n > 5 && strcmp(queue_url + n - 5, ".fifo") == 0;
    s->retry = aws->retry;
    s->sys = aws->sys ? *aws->sys : st_aws_sys_real;
    return 0;
}

/* Frees f and everything it holds once its thread is gone (or was never started). */
static void release(st_forwarder *f)
{
    fmsg_list_free(f->head);
    st_aws_client_free(f->s.client);
    free(f->queue_url);
    free(f->spool_dir);
    pthread_cond_destroy(&f->done_cv);
    pthread_cond_destroy(&f->wake);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

int st_forwarder_new(st_forwarder **out, const st_forwarder_config *cfg, char *err, size_t err_len)
{
    if (!cfg || !cfg->queue_url || !*cfg->queue_url) {
        return st_errf(err, err_len, ST_EINVAL, "an SQS queue URL is required");
    }
    if (!cfg->spool_dir || !*cfg->spool_dir) {
        return st_errf(err, err_len, ST_EINVAL, "a spool directory is required");
    }
    int rc = mkdirs(cfg->spool_dir);
    if (rc) {
        return st_errf(err, err_len, rc, "cannot create the spool directory %s: %s", cfg->spool_dir,
                       strerror(errno));
    }
    if (access(cfg->spool_dir, W_OK | X_OK) != 0) {
        return st_errf(err, err_len, ST_EIO, "the spool directory %s is not writable",
                       cfg->spool_dir);
    }
    st_forwarder *f = calloc(1, sizeof(*f));
    if (!f) {
        return ST_ENOMEM;
    }
    pthread_mutex_init(&f->mu, NULL);
    /* Deadlines are on the monotonic clock: a step of the wall clock must not shorten or
     * stretch a retry or the flush bound. */
    st_clock_cond_init(&f->wake);
    st_clock_cond_init(&f->done_cv);
    atomic_init(&f->cancel, 0);
    f->queue_url = strdup(cfg->queue_url);
    f->spool_dir = strdup(cfg->spool_dir);
    f->retry_interval_ms = cfg->retry_interval_ms ? cfg->retry_interval_ms : 1000;
    if (!f->queue_url || !f->spool_dir) {
        rc = ST_ENOMEM;
        goto fail;
    }
    if ((rc = sender_init(&f->s, f->queue_url, f->spool_dir, &cfg->aws, err, err_len)) != 0) {
        goto fail;
    }
    f->s.entry_attempts = cfg->entry_attempts > 0 ? cfg->entry_attempts : 1;
    f->s.cancel = &f->cancel;
    st_aws_client_set_cancel(f->s.client, &f->cancel);
    if (pthread_create(&f->thread, NULL, forward_main, f) != 0) {
        rc = st_errf(err, err_len, ST_ESYSTEM, "cannot start the forwarder's thread");
        goto fail;
    }
    f->started = 1;
    *out = f;
    return 0;
fail:
    release(f);
    return rc;
}

int st_forwarder_submit(st_forwarder *f, const char *id, const char *json_text)
{
    if (!f || !st_forward_id_valid(id) || !json_text || !*json_text) {
        return ST_EINVAL;
    }
    size_t len = strlen(json_text);
    if (len > ST_FORWARD_BATCH_BYTES) {
        return ST_ERANGE;
    }
    fmsg *m = calloc(1, sizeof(*m));
    if (!m || !(m->id = strdup(id)) || !(m->text = malloc(len + 1))) {
        fmsg_free(m);
        return ST_ENOMEM;
    }
    memcpy(m->text, json_text, len + 1);
    m->len = len;
    pthread_mutex_lock(&f->mu);
    if (f->closing) {
        pthread_mutex_unlock(&f->mu);
        fmsg_free(m);
        return ST_ECLOSED;
    }
    if (f->tail) {
        f->tail->next = m;
    } else {
        f->head = m;
    }
    f->tail = m;
    pthread_cond_signal(&f->wake);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

int st_forwarder_flush_and_close(st_forwarder *f, uint32_t timeout_ms, st_forward_report *report)
{
    if (f->closed) {
        return ST_ESTATE;
    }
    f->closed = 1;
    struct timespec deadline = mono_after_ms(timeout_ms);
    pthread_mutex_lock(&f->mu);
    f->closing = 1;
    pthread_cond_signal(&f->wake);
    while (!f->done) {
        if (pthread_cond_timedwait(&f->done_cv, &f->mu, &deadline) != 0 && !f->done) {
            /* Out of time: abort the call in flight; the thread spools what is left and ends. */
            atomic_store(&f->cancel, 1);
            pthread_cond_signal(&f->wake);
            while (!f->done) {
                pthread_cond_wait(&f->done_cv, &f->mu);
            }
        }
    }
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    f->started = 0;
    st_forward_report r = {
        .sent = f->s.sent, .lost = f->s.lost, .spooled = spool_count(f->spool_dir)};
    if (report) {
        *report = r;
    }
    if (r.lost) {
        return ST_EIO;
    }
    return r.spooled ? ST_EAGAIN : 0;
}

void st_forwarder_free(st_forwarder *f)
{
    if (!f) {
        return;
    }
    if (!f->closed) {
        st_forwarder_flush_and_close(f, 0, NULL);
    }
    release(f);
}

int st_forward_spool(const char *spool_dir, const char *queue_url, const st_aws_config *aws,
                     st_forward_report *report, char *err, size_t err_len)
{
    st_forward_report r = {0};
    if (!spool_dir || !queue_url || !*queue_url) {
        return st_errf(err, err_len, ST_EINVAL,
                       "a spool directory and an SQS queue URL are required");
    }
    struct stat st;
    if (stat(spool_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return st_errf(err, err_len, ST_ENOTFOUND, "the spool directory %s does not exist",
                       spool_dir);
    }
    sender s;
    int rc = sender_init(&s, queue_url, spool_dir, aws, err, err_len);
    if (rc) {
        return rc;
    }
    s.entry_attempts = 3;
    uint64_t left = 0;
    rc = replay_spool(&s, &left);
    r.sent = s.sent;
    r.lost = s.lost;
    r.spooled = left;
    if (report) {
        *report = r;
    }
    if (rc == ST_EAUTH || rc == ST_ENOMEM) {
        st_errf(err, err_len, rc, "%s", s.last_error);
    } else if (rc || left) {
        rc = st_errf(err, err_len, ST_EAGAIN, "%llu message(s) remain in %s: %s",
                     (unsigned long long)left, spool_dir,
                     s.last_error[0] ? s.last_error : "SQS refused them");
    }
    st_aws_client_free(s.client);
    return rc;
}
