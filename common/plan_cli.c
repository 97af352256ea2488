#include "plan_cli.h"

static void groups_of(const st_plan_cli *cli, st_plan_flags *f, void *opts, uint64_t *seen,
                      st_settings_group g[2])
{
    g[0] = st_plan_flags_group(f);
    g[1] = (st_settings_group){cli->rows, cli->n, opts, seen};
}

int st_plan_cli_parse(const st_plan_cli *cli, int argc, char **argv, st_plan_flags *f, void *opts,
                      uint64_t *seen, st_settings_group g[2], int *first_operand, char *err,
                      size_t err_len)
{
    st_plan_flags_init(f);
    *seen = 0;
    groups_of(cli, f, opts, seen, g);
    st_settings_defaults(cli->rows, cli->n, opts, false);
    return st_settings_parse_args(argc, argv, g, 2, cli->mask, cli->help_hint, first_operand, err,
                                  err_len);
}

void st_plan_cli_usage(const st_plan_cli *cli, FILE *out)
{
    /* The usage text reads only the rows: the values' structs are never touched. */
    st_plan_flags f;
    uint64_t seen = 0;
    st_settings_group g[2];
    st_plan_flags_init(&f);
    groups_of(cli, &f, NULL, &seen, g);
    fputs(cli->usage, out);
    st_settings_usage(out, g, 2, cli->mask, cli->usage_column, 92);
    fprintf(out, "\n%s", cli->exit_codes);
}

int st_plan_cli_plan(st_plan *plan, const char *plan_file, const st_plan_flags *f, char *err,
                     size_t err_len)
{
    int rc = 0;
    st_plan_init(plan);
    if (plan_file) {
        rc = st_plan_load_file(plan, plan_file, err, err_len);
    }
    return rc ? rc : st_plan_apply_flags(plan, f, err, err_len);
}
