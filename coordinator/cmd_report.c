/* stampede report: the HTML report (html_report.h) of a run, from its summary and time series
 * files. */
#include "commands.h"
#include "error.h"
#include "exit_code.h"
#include "html_report.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *to)
{
    fprintf(to,
            "usage: stampede report SUMMARY.json [TIMESERIES.jsonl] -o FILE\n\n"
            "Writes the self-contained HTML report of a run from the files `stampede run\n"
            "--summary` and `--timeseries` wrote (the same report as `stampede run --report`).\n"
            "Without TIMESERIES the report has no charts over time.\n\n"
            "  -o, --output FILE   the HTML file (written whole or not at all)\n\n"
            "Exit codes: 0 written, 1 the output could not be written, 2 bad flags, or an input\n"
            "that cannot be read or does not follow the format (the message names the file,\n"
            "the line and the key).\n");
}

/* The whole of path, NUL-terminated, into *out. */
static int read_whole(const char *path, char **out, size_t *len, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return st_errf(err, err_len, ST_EINVAL, "%s: cannot open it: %s", path, strerror(errno));
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int e = 0;
    for (;;) {
        if (cap - n < 65536) {
            char *b = realloc(buf, cap + 65536 + 1);
            if (!b) {
                e = ENOMEM;
                break;
            }
            buf = b;
            cap += 65536;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            e = ferror(f) ? EIO : 0;
            break;
        }
    }
    fclose(f);
    if (e) {
        free(buf);
        return st_errf(err, err_len, e == ENOMEM ? ST_ENOMEM : ST_EINVAL, "%s: cannot read it: %s",
                       path, strerror(e));
    }
    buf[n] = 0;
    if (strlen(buf) != n) {
        free(buf);
        return st_errf(err, err_len, ST_EINVAL, "%s: holds a NUL byte: not JSON", path);
    }
    *out = buf;
    *len = n;
    return 0;
}

/* Where a parse stopped, as line:column of text. */
static void position(const char *text, const char *at, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (const char *p = text; at && p < at && *p; p++) {
        if (*p == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

/* One JSON value that must fill text (whose first line is line `first`); "%s:LINE:COL" on error. */
static int parse_json(const char *name, const char *text, size_t first, cJSON **out, char *err,
                      size_t err_len)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    if (!j) {
        if (!end) {
            end = cJSON_GetErrorPtr();
        }
        size_t line, col;
        position(text, end, &line, &col);
        return st_errf(err, err_len, ST_EINVAL, "%s:%zu:%zu: not valid JSON here", name,
                       first + line - 1, col);
    }
    *out = j;
    return 0;
}

/* The time series' lines into *series (an array) and their line numbers into *lines. */
static int read_series(const char *path, cJSON **series, size_t **lines, char *err,
                       size_t err_len)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_whole(path, &text, &len, err, err_len);
    if (rc) {
        return rc;
    }
    cJSON *arr = cJSON_CreateArray();
    size_t n = 0, cap = 0, line = 0;
    size_t *at = NULL;
    char *p = text;
    while (!rc && arr && *p) {
        line++;
        char *nl = strchr(p, '\n');
        if (nl) {
            *nl = 0;
        }
        if (strspn(p, " \t\r") == strlen(p)) {
            rc = st_errf(err, err_len, ST_EINVAL, "%s:%zu: an empty line (JSON Lines has one "
                                                  "object on every line)",
                         path, line);
            break;
        }
        cJSON *o = NULL;
        if ((rc = parse_json(path, p, line, &o, err, err_len)) != 0) {
            break;
        }
        if (n == cap) {
            size_t *a = realloc(at, (cap = cap ? cap * 2 : 256) * sizeof(*a));
            if (!a) {
                cJSON_Delete(o);
                rc = ST_ENOMEM;
                break;
            }
            at = a;
        }
        at[n++] = line;
        cJSON_AddItemToArray(arr, o);
        p = nl ? nl + 1 : p + strlen(p);
    }
    free(text);
    if (!arr && !rc) {
        rc = ST_ENOMEM;
    }
    if (rc) {
        cJSON_Delete(arr);
        free(at);
        return rc;
    }
    *series = arr;
    *lines = at;
    return 0;
}

int st_cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *output = NULL;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return ST_EXIT_OK;
        }
        if (c != 'o') {
            usage(stderr);
            return ST_EXIT_USAGE;
        }
        output = optarg;
    }
    int operands = argc - optind;
    if (operands < 1 || operands > 2 || !output) {
        st_error("report: %s", !output ? "-o FILE is required"
                               : operands < 1 ? "give the SUMMARY.json file"
                                              : "give at most SUMMARY.json and TIMESERIES.jsonl");
        usage(stderr);
        return ST_EXIT_USAGE;
    }
    const char *summary_path = argv[optind];
    const char *series_path = operands == 2 ? argv[optind + 1] : NULL;
    char err[1024];
    char *text = NULL;
    size_t len = 0;
    cJSON *summary = NULL, *series = NULL;
    size_t *lines = NULL;
    int rc = read_whole(summary_path, &text, &len, err, sizeof(err));
    if (!rc) {
        rc = parse_json(summary_path, text, 1, &summary, err, sizeof(err));
    }
    if (!rc && series_path) {
        rc = read_series(series_path, &series, &lines, err, sizeof(err));
    }
    if (!rc) {
        st_html_source src = {summary_path, series_path, lines};
        rc = st_html_report_file("-o", output, summary, series, &src, err, sizeof(err));
    }
    if (rc) {
        st_error("report: %s", rc == ST_ENOMEM ? "out of memory" : err);
    }
    free(text);
    free(lines);
    cJSON_Delete(summary);
    cJSON_Delete(series);
    return rc == ST_EIO ? ST_EXIT_FAILURE : st_exit_code(rc);
}
