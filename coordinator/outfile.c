#include "outfile.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct st_outfile {
    FILE *fp;
    char *label;
    char *path;
    char *tmp; /* NULL when written in place */
    int err;   /* errno of the first failed write, 0 while none failed */
};

static void outfile_free(st_outfile *f)
{
    free(f->label);
    free(f->path);
    free(f->tmp);
    free(f);
}

/* The folder of path ("." when it has none), and the name in it. */
static int split_path(const char *path, char **dir, const char **base)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        *dir = strdup(".");
        *base = path;
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        *dir = strndup(path, n);
        *base = slash + 1;
    }
    return *dir ? 0 : ST_ENOMEM;
}

/* Creates the temporary file beside path: O_EXCL under a fresh name, mode 0666 less the umask,
 * as a plain fopen would have made the file. */
static int create_tmp(st_outfile *f, int *fd_out)
{
    static atomic_uint counter;
    char *dir = NULL;
    const char *base;
    if (split_path(f->path, &dir, &base)) {
        return ST_ENOMEM;
    }
    size_t n = strlen(dir) + strlen(base) + 64;
    int rc = ST_ENOMEM;
    if ((f->tmp = malloc(n))) {
        rc = ST_EIO;
        for (int attempt = 0; attempt < 16; attempt++) {
            snprintf(f->tmp, n, "%s/.%s.tmp-%ld-%u", dir, base, (long)getpid(),
                     atomic_fetch_add(&counter, 1));
            int fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            if (fd >= 0) {
                *fd_out = fd;
                rc = 0;
                break;
            }
            if (errno != EEXIST) {
                break;
            }
        }
    }
    free(dir);
    return rc;
}

int st_outfile_open(st_outfile **out, const char *label, const char *path, char *err,
                    size_t err_len)
{
    st_outfile *f = calloc(1, sizeof(*f));
    if (!f || !(f->label = strdup(label)) || !(f->path = strdup(path))) {
        if (f) {
            outfile_free(f);
        }
        return ST_ENOMEM;
    }
    struct stat st;
    bool in_place = stat(path, &st) == 0 && !S_ISREG(st.st_mode);
    int fd = -1, rc;
    if (in_place) {
        /* A device or a FIFO cannot be renamed over (and must not be: /dev/full is not ours). */
        fd = open(path, O_WRONLY | O_CLOEXEC);
        rc = fd >= 0 ? 0 : ST_EIO;
    } else {
        rc = create_tmp(f, &fd);
    }
    if (rc) {
        int e = errno;
        if (rc == ST_EIO) {
            st_errf(err, err_len, rc, "%s %s: cannot create %s: %s", label, path,
                    in_place ? "it" : "a file in its folder", strerror(e));
        }
        outfile_free(f);
        return rc;
    }
    if (!(f->fp = fdopen(fd, "w"))) {
        close(fd);
        if (f->tmp) {
            unlink(f->tmp);
        }
        outfile_free(f);
        return ST_ENOMEM;
    }
    *out = f;
    return 0;
}

const char *st_outfile_path(const st_outfile *f)
{
    return f->path;
}

int st_outfile_printf(st_outfile *f, const char *fmt, ...)
{
    if (f->err) {
        return f->err;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vfprintf(f->fp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        f->err = errno ? errno : EIO;
    }
    return f->err;
}

int st_outfile_flush(st_outfile *f)
{
    if (!f->err && fflush(f->fp) != 0) {
        f->err = errno ? errno : EIO;
    }
    return f->err;
}

int st_outfile_commit(st_outfile *f, char *err, size_t err_len)
{
    const char *what = "cannot write it";
    int e = f->err;
    if (!e && fflush(f->fp) != 0) {
        e = errno ? errno : EIO;
    }
    if (!e && ferror(f->fp)) {
        e = EIO;
    }
    /* The rename must never publish a file whose contents are not on disk; a device written in
     * place may not support fsync at all, which is no failure of ours. */
    if (!e && fsync(fileno(f->fp)) != 0 && (f->tmp || (errno != EINVAL && errno != EROFS))) {
        e = errno;
        what = "cannot sync it";
    }
    if (fclose(f->fp) != 0 && !e) {
        e = errno ? errno : EIO;
        what = "cannot close it";
    }
    f->fp = NULL;
    if (!e && f->tmp && rename(f->tmp, f->path) != 0) {
        e = errno;
        what = "cannot rename the temporary file over it";
    }
    if (e) {
        if (f->tmp) {
            unlink(f->tmp);
        }
        st_errf(err, err_len, ST_EIO, "%s %s: %s: %s", f->label, f->path, what, strerror(e));
        outfile_free(f);
        return ST_EIO;
    }
    if (f->tmp) {
        /* The rename itself reaches the disk with its folder. */
        char *dir = NULL;
        const char *base;
        if (split_path(f->path, &dir, &base) == 0) {
            int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
        }
        free(dir);
    }
    outfile_free(f);
    return 0;
}

void st_outfile_abort(st_outfile *f)
{
    if (!f) {
        return;
    }
    if (f->fp) {
        fclose(f->fp);
    }
    if (f->tmp) {
        unlink(f->tmp);
    }
    outfile_free(f);
}
