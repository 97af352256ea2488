#include "cmd_flags.h"
#include "exit_code.h"

#include <getopt.h>

static const st_cmd_flag *find(const st_cmd_flag *flags, size_t n, int code)
{
    for (size_t i = 0; i < n; i++) {
        if (flags[i].code == code) {
            return &flags[i];
        }
    }
    return NULL;
}

int st_cmd_flags(int argc, char **argv, const struct option *opts, const st_cmd_flag *flags,
                 size_t n, st_aws_config *aws, st_aws_service svc, void (*usage)(FILE *to))
{
    optind = 1;
    int c;
    while ((c = st_aws_getopt(argc, argv, opts, aws, svc)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return ST_EXIT_OK;
        }
        const st_cmd_flag *f = find(flags, n, c);
        if (!f) {
            usage(stderr);
            return ST_EXIT_USAGE;
        }
        if (f->str) {
            *f->str = optarg;
        } else {
            *f->on = 1;
        }
    }
    return -1;
}
