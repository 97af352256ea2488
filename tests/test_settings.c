#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "assert_text.h"

#include "error.h"
#include "plan.h"
#include "settings.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* A program's options, as the programs declare theirs. */
typedef struct opts {
    int count;
    unsigned long long seed;
    double ratio;
    double wait_s;
    int verbose;
    const char *out;
    int level;
    int help;
    uint64_t seen;
} opts;

static const char *const levels[] = {"low", "mid", "high", NULL};

static const st_setting rows[] = {
    {.key = "count", .flag = "count", .type = ST_SETTING_INT, .where = ST_SETTING_OWN, .arg = "N",
     .min = 1, .max = 10, .has_def = true, .def = 3, .help = "how many",
     ST_SETTING_AT(opts, count)},
    {.key = "seed", .flag = "seed", .type = ST_SETTING_UINT, .where = ST_SETTING_OWN, .arg = "N",
     .min = 0, .max = 4294967296.0, .has_def = true, .def = 1, .help = "seed",
     ST_SETTING_AT(opts, seed)},
    {.key = "ratio", .flag = "ratio", .type = ST_SETTING_DOUBLE, .where = ST_SETTING_OWN,
     .arg = "X", .min = -1, .max = 1, .help = "a ratio", ST_SETTING_AT(opts, ratio)},
    {.key = "wait", .flag = "wait", .type = ST_SETTING_DURATION,
     .where = ST_SETTING_OWN | ST_SETTING_REMOTE, .arg = "TIME", .min = 0, .max = 3600,
     .has_def = true, .def = 90, .help = "how long to wait", ST_SETTING_AT(opts, wait_s)},
    {.key = "verbose", .flag = "verbose", .type = ST_SETTING_BOOL,
     .where = ST_SETTING_OWN | ST_SETTING_REMOTE, .help = "say more",
     ST_SETTING_AT(opts, verbose)},
    {.key = "out", .flag = "out", .type = ST_SETTING_STRING, .where = ST_SETTING_OWN,
     .arg = "FILE", .has_def = true, .def_text = "-", .help = "where to write",
     ST_SETTING_AT(opts, out)},
    {.key = "level", .flag = "level", .type = ST_SETTING_ENUM, .where = ST_SETTING_OWN,
     .arg = "LEVEL", .choices = levels, .has_def = true, .def = 1, .help = "how loud",
     ST_SETTING_AT(opts, level)},
    {.flag = "help", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN | ST_SETTING_STOP,
     .help = "this help", ST_SETTING_AT(opts, help)},
};

static const st_setting *row(const char *flag)
{
    const st_setting *s = st_settings_find_flag(rows, N(rows), flag, ~0u);
    assert_non_null(s);
    return s;
}

/* The flag value must be refused with a message that contains frag. */
static void text_refused(const char *flag, const char *text, const char *frag)
{
    char err[256] = "";
    unsigned char dst[16];
    memset(dst, 0xab, sizeof(dst));
    assert_int_equal(st_setting_from_text(row(flag), text, dst, err, sizeof(err)), ST_EINVAL);
    if (!strstr(err, frag)) {
        fail_msg("--%s %s: message \"%s\" lacks \"%s\"", flag, text, err, frag);
    }
    for (size_t i = 0; i < sizeof(dst); i++) {
        assert_int_equal(dst[i], 0xab); /* nothing written */
    }
}

/* The JSON value must be refused with a reason that contains frag. */
static void json_refused(const char *flag, const char *json, const char *frag)
{
    char why[256] = "";
    unsigned char dst[16];
    cJSON *v = cJSON_Parse(json);
    assert_non_null(v);
    assert_int_equal(st_setting_from_json(row(flag), v, dst, why, sizeof(why)), ST_EINVAL);
    if (!strstr(why, frag)) {
        fail_msg("%s = %s: reason \"%s\" lacks \"%s\"", flag, json, why, frag);
    }
    cJSON_Delete(v);
}

static void json_ok(const char *flag, const char *json, void *dst)
{
    char why[256] = "";
    cJSON *v = cJSON_Parse(json);
    assert_non_null(v);
    if (st_setting_from_json(row(flag), v, dst, why, sizeof(why)) != 0) {
        fail_msg("%s = %s refused: %s", flag, json, why);
    }
    cJSON_Delete(v);
}

static void text_ok(const char *flag, const char *text, void *dst)
{
    char err[256] = "";
    if (st_setting_from_text(row(flag), text, dst, err, sizeof(err)) != 0) {
        fail_msg("--%s %s refused: %s", flag, text ? text : "(no value)", err);
    }
}

static void test_settings_check_accepts_the_plan_table(void **state)
{
    (void)state;
    char err[256] = "";
    size_t n;
    const st_setting *plan = st_plan_settings(&n);
    assert_int_equal(st_settings_check(plan, n, err, sizeof(err)), 0);
    assert_int_equal(st_settings_check(rows, N(rows), err, sizeof(err)), 0);
}

static void expect_bad_table(const st_setting *t, size_t n, const char *frag)
{
    char err[256] = "";
    assert_int_equal(st_settings_check(t, n, err, sizeof(err)), ST_EINVAL);
    assert_says(err, frag);
}

static void test_settings_check_refuses_bad_rows(void **state)
{
    (void)state;
    const st_setting dup_flag[] = {
        {.flag = "x", .type = ST_SETTING_BOOL, .help = "x"},
        {.key = "y", .flag = "x", .type = ST_SETTING_BOOL, .help = "y"},
    };
    expect_bad_table(dup_flag, N(dup_flag), "flag --x is declared twice");
    const st_setting dup_key[] = {
        {.key = "k", .type = ST_SETTING_INT, .max = 1},
        {.key = "k", .flag = "k2", .type = ST_SETTING_INT, .arg = "N", .max = 1, .help = "k"},
    };
    expect_bad_table(dup_key, N(dup_key), "key \"k\" is declared twice");
    const st_setting upside_down[] = {{.key = "k", .type = ST_SETTING_DOUBLE, .min = 2, .max = 1}};
    expect_bad_table(upside_down, 1, "do not make a range");
    const st_setting negative_uint[] = {{.key = "k", .type = ST_SETTING_UINT, .min = -1, .max = 1}};
    expect_bad_table(negative_uint, 1, "do not make a range");
    const st_setting def_out[] = {
        {.key = "k", .type = ST_SETTING_INT, .min = 1, .max = 5, .has_def = true, .def = 6}};
    expect_bad_table(def_out, 1, "default 6 is outside 1 to 5");
    const st_setting def_fraction[] = {
        {.key = "k", .type = ST_SETTING_INT, .min = 1, .max = 5, .has_def = true, .def = 1.5}};
    expect_bad_table(def_fraction, 1, "default 1.5");
    const st_setting no_choices[] = {{.key = "k", .type = ST_SETTING_ENUM}};
    expect_bad_table(no_choices, 1, "needs choices");
    const st_setting def_not_a_choice[] = {
        {.key = "k", .type = ST_SETTING_ENUM, .choices = levels, .has_def = true, .def = 3}};
    expect_bad_table(def_not_a_choice, 1, "needs choices");
    const st_setting switch_with_arg[] = {
        {.flag = "s", .type = ST_SETTING_BOOL, .arg = "X", .help = "s"}};
    expect_bad_table(switch_with_arg, 1, "--s: a switch takes no value name");
    const st_setting value_without_arg[] = {
        {.flag = "v", .type = ST_SETTING_INT, .max = 1, .help = "v"}};
    expect_bad_table(value_without_arg, 1, "--v: a flag with a value needs its name");
    const st_setting no_help[] = {{.flag = "h", .type = ST_SETTING_BOOL}};
    expect_bad_table(no_help, 1, "--h: a flag needs a help line");
    const st_setting nameless[] = {{.type = ST_SETTING_BOOL}};
    expect_bad_table(nameless, 1, "neither a key nor a flag");
    st_setting many[ST_SETTINGS_MAX_ROWS + 1];
    memset(many, 0, sizeof(many));
    expect_bad_table(many, N(many), "at most 64");
}

/* One value of a number setting, as a flag's text or as JSON: what it must read as, or (refused
 * set) a part of the message it must be refused with. */
typedef struct value_case {
    enum { AS_TEXT, AS_JSON } as;
    const char *value;
    const char *refused;
    double want;
} value_case;

/* Checks each case against the row of flag, an INT, UINT, DOUBLE or DURATION setting. */
static void check_values(const char *flag, const value_case *cases, size_t n)
{
    st_setting_type type = row(flag)->type;
    for (size_t i = 0; i < n; i++) {
        const value_case *c = &cases[i];
        if (c->refused) {
            if (c->as == AS_JSON) {
                json_refused(flag, c->value, c->refused);
            } else {
                text_refused(flag, c->value, c->refused);
            }
            continue;
        }
        union {
            int i;
            unsigned long long u;
            double d;
        } v;
        memset(&v, 0, sizeof(v));
        if (c->as == AS_JSON) {
            json_ok(flag, c->value, &v);
        } else {
            text_ok(flag, c->value, &v);
        }
        double got = type == ST_SETTING_INT ? v.i : type == ST_SETTING_UINT ? (double)v.u : v.d;
        if (got != c->want) {
            fail_msg("%s = %s read as %.17g, not %.17g", flag, c->value, got, c->want);
        }
    }
}

static void test_settings_int_bounds(void **state)
{
    (void)state;
    static const value_case cases[] = {
        {AS_TEXT, "1", .want = 1},
        {AS_TEXT, "10", .want = 10},
        {AS_TEXT, "0", .refused = "--count: \"0\" is not a whole number from 1 to 10"},
        {AS_TEXT, "11", .refused = "--count"},
        {AS_TEXT, "2x", .refused = "--count"},
        {AS_TEXT, "", .refused = "--count"},
        {AS_TEXT, NULL, .refused = "--count"},
        {AS_JSON, "7", .want = 7},
        {AS_JSON, "0", .refused = "must be an integer from 1 to 10"},
        {AS_JSON, "11", .refused = "must be an integer from 1 to 10"},
        {AS_JSON, "2.5", .refused = "must be an integer"},
        {AS_JSON, "\"3\"", .refused = "must be an integer"},
    };
    check_values("count", cases, N(cases));
}

static void test_settings_uint_bounds(void **state)
{
    (void)state;
    static const value_case cases[] = {
        {AS_TEXT, "4294967296", .want = 4294967296.0},
        {AS_TEXT, "0", .want = 0},
        {AS_TEXT, "4294967297",
         .refused = "--seed: \"4294967297\" is not a whole number from 0 to 4294967296"},
        {AS_TEXT, "-1", .refused = "--seed"},
        {AS_TEXT, "+1", .refused = "--seed"},
        {AS_JSON, "4294967296", .want = 4294967296.0},
        {AS_JSON, "-1", .refused = "must be an integer from 0 to 4294967296"},
        {AS_JSON, "1e300", .refused = "must be an integer"},
    };
    check_values("seed", cases, N(cases));
}

static void test_settings_double_bounds(void **state)
{
    (void)state;
    static const value_case cases[] = {
        {AS_TEXT, "-1", .want = -1},
        {AS_TEXT, "0.25", .want = 0.25},
        {AS_TEXT, "1.0001", .refused = "--ratio: \"1.0001\" is not a number from -1 to 1"},
        {AS_TEXT, "nan", .refused = "--ratio"},
        {AS_TEXT, "inf", .refused = "--ratio"},
        {AS_TEXT, "1e400", .refused = "--ratio"},
        {AS_JSON, "1", .want = 1},
        {AS_JSON, "-1.5", .refused = "must be a number from -1 to 1"},
        {AS_JSON, "true", .refused = "must be a number"},
    };
    check_values("ratio", cases, N(cases));
}

static void test_settings_duration_bounds(void **state)
{
    (void)state;
    static const value_case cases[] = {
        {AS_TEXT, "1h", .want = 3600},
        {AS_TEXT, "250ms", .want = 0.25},
        {AS_TEXT, "61m", .refused = "--wait: \"61m\" is not a duration of at most 1 hour"},
        {AS_TEXT, "0", .refused = "--wait"},
        {AS_TEXT, "soon", .refused = "--wait"},
        {AS_JSON, "\"2m\"", .want = 120},
        {AS_JSON, "3600", .want = 3600},
        {AS_JSON, "0", .refused = "must be a duration above 0 and at most 1 hour (got 0)"},
        {AS_JSON, "3601", .refused = "(got 3601)"},
        {AS_JSON, "\"2h\"", .refused = "at most 1 hour (got 7200)"},
        {AS_JSON, "\"2 h\"", .refused = "must be a duration: seconds as a number, or a string"},
        {AS_JSON, "false", .refused = "must be a duration"},
    };
    check_values("wait", cases, N(cases));
}

static void test_settings_bool_string_enum(void **state)
{
    (void)state;
    int b = -1, e = -1;
    const char *str = NULL;
    text_ok("verbose", NULL, &b);
    assert_int_equal(b, 1);
    json_ok("verbose", "false", &b);
    assert_int_equal(b, 0);
    json_refused("verbose", "1", "must be true or false");
    text_ok("out", "x.json", &str);
    assert_string_equal(str, "x.json");
    json_refused("out", "5", "must be a string");
    text_ok("level", "high", &e);
    assert_int_equal(e, 2);
    text_refused("level", "loud", "--level: \"loud\" is not low, mid or high");
    json_ok("level", "\"low\"", &e);
    assert_int_equal(e, 0);
    json_refused("level", "\"Low\"", "must be \"low\", \"mid\" or \"high\"");
    json_refused("level", "0", "must be \"low\"");
    /* A CUSTOM row is its owner's to read. */
    size_t n;
    const st_setting *plan = st_plan_settings(&n);
    const st_setting *stages = st_settings_find_key(plan, n, "stages");
    assert_non_null(stages);
    cJSON *v = cJSON_Parse("[]");
    char why[128];
    assert_int_equal(st_setting_from_json(stages, v, &str, why, sizeof(why)), ST_EINVAL);
    cJSON_Delete(v);
}

static void test_settings_defaults(void **state)
{
    (void)state;
    opts o;
    memset(&o, 0, sizeof(o));
    st_settings_defaults(rows, N(rows), &o, false);
    assert_int_equal(o.count, 3);
    assert_true(o.seed == 1);
    assert_true(o.ratio == 0); /* no default */
    assert_true(o.wait_s == 90);
    assert_string_equal(o.out, "-");
    assert_int_equal(o.level, 1);
    /* only_unset: negative numbers and NULL strings are unset; set values stay. */
    o.count = -1;
    o.wait_s = 5;
    o.out = NULL;
    o.level = 2;
    st_settings_defaults(rows, N(rows), &o, true);
    assert_int_equal(o.count, 3);
    assert_true(o.wait_s == 5);
    assert_string_equal(o.out, "-");
    assert_int_equal(o.level, 2);
}

static int parse(opts *o, int argc, char **argv, int *first, char *err, size_t err_len)
{
    memset(o, 0, sizeof(*o));
    st_settings_defaults(rows, N(rows), o, false);
    st_settings_group g = {rows, N(rows), o, &o->seen};
    return st_settings_parse_args(argc, argv, &g, 1, ST_SETTING_OWN, "prog --help", first, err,
                                  err_len);
}

static void test_settings_parse_args(void **state)
{
    (void)state;
    opts o;
    char err[256] = "";
    int first = -1;
    char *argv[] = {"prog", "--count", "4", "in.json", "--verbose", "--wait=2m", "--lev", "high",
                    NULL};
    assert_int_equal(parse(&o, 8, argv, &first, err, sizeof(err)), 0);
    assert_int_equal(o.count, 4);
    assert_int_equal(o.verbose, 1);
    assert_true(o.wait_s == 120);
    assert_int_equal(o.level, 2);   /* "--lev": an unambiguous abbreviation, as getopt_long */
    assert_string_equal(o.out, "-"); /* default kept */
    assert_int_equal(first, 7);     /* the operand moved to the end */
    assert_string_equal(argv[first], "in.json");
    assert_true(o.seen == ((1u << 0) | (1u << 3) | (1u << 4) | (1u << 6)));

    char *bad[] = {"prog", "--count", "40", NULL};
    assert_int_equal(parse(&o, 3, bad, &first, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--count: \"40\""));
    char *unknown[] = {"prog", "--bogus", NULL};
    assert_int_equal(parse(&o, 2, unknown, &first, err, sizeof(err)), ST_EINVAL);
    assert_string_equal(err, "--bogus: unknown flag or missing value (see prog --help)");
    char *missing[] = {"prog", "--count", NULL};
    assert_int_equal(parse(&o, 2, missing, &first, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--count: unknown flag or missing value"));
    char *value_to_switch[] = {"prog", "--verbose=yes", NULL};
    assert_int_equal(parse(&o, 2, value_to_switch, &first, err, sizeof(err)), ST_EINVAL);

    /* A STOP switch ends parsing at once: what follows is not read. */
    char *help[] = {"prog", "--count", "2", "--help", "--count", "99", NULL};
    assert_int_equal(parse(&o, 6, help, &first, err, sizeof(err)), 1);
    assert_int_equal(o.help, 1);
    assert_int_equal(o.count, 2);
}

/* A flag given twice is refused, whatever its type and however it is spelled. */
static void test_settings_parse_args_refuses_a_repeated_flag(void **state)
{
    (void)state;
    opts o;
    char err[256] = "";
    int first = -1;
    char *twice[] = {"prog", "--count", "4", "--count", "5", NULL};
    assert_int_equal(parse(&o, 5, twice, &first, err, sizeof(err)), ST_EINVAL);
    assert_string_equal(err, "--count: given twice; give it once");
    char *abbreviated[] = {"prog", "--count=4", "--cou", "4", NULL};
    assert_int_equal(parse(&o, 4, abbreviated, &first, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--count: given twice"));
    char *switches[] = {"prog", "--verbose", "in.json", "--verbose", NULL};
    assert_int_equal(parse(&o, 4, switches, &first, err, sizeof(err)), ST_EINVAL);
    assert_non_null(strstr(err, "--verbose: given twice"));
    char *strings[] = {"prog", "--out", "a", "--out", "a", NULL};
    assert_int_equal(parse(&o, 5, strings, &first, err, sizeof(err)), ST_EINVAL);
    /* Each flag once is fine, also after an earlier parse refused a repeat. */
    char *once[] = {"prog", "--count", "4", "--out", "a", NULL};
    assert_int_equal(parse(&o, 5, once, &first, err, sizeof(err)), 0);
    assert_int_equal(o.count, 4);
}

/* "-0" in a plan file is a sign on a value that cannot be negative, as on the command line. */
static void test_settings_json_negative_zero(void **state)
{
    (void)state;
    unsigned long long u = 0;
    double d = 0;
    json_refused("seed", "-0", "must be an integer from 0");
    json_refused("wait", "-0", "must be a duration");
    json_refused("wait", "\"-0s\"", "must be a duration");
    json_ok("seed", "0", &u);
    json_ok("ratio", "-0", &d); /* a ratio may be negative: -0 is 0 there */
    assert_true(d == 0);
}

static void test_settings_parse_args_groups_and_masks(void **state)
{
    (void)state;
    st_plan_flags f;
    opts o;
    char err[256] = "";
    int first = -1;
    memset(&o, 0, sizeof(o));
    st_plan_flags_init(&f);
    st_settings_group g[2] = {st_plan_flags_group(&f), {rows, N(rows), &o, &o.seen}};
    char *argv[] = {"prog", "--threads", "3", "--http2", "--count", "5", "--rate", "7", NULL};
    assert_int_equal(st_settings_parse_args(8, argv, g, 2, ST_SETTING_AGENT | ST_SETTING_OWN,
                                            "--help", &first, err, sizeof(err)),
                     0);
    assert_int_equal(f.threads, 3);
    assert_int_equal(f.http2, 1);
    assert_int_equal(f.insecure, 0);
    assert_int_equal(f.connections, -1);
    assert_true(f.rate_rps == 7);
    assert_int_equal(o.count, 5);
    assert_int_equal(first, 8);

    /* --agents is stampede run's: stampede-agent does not know it. */
    char *agents[] = {"prog", "--agents", "3", NULL};
    assert_int_equal(st_settings_parse_args(3, agents, g, 2, ST_SETTING_AGENT | ST_SETTING_OWN,
                                            "--help", &first, err, sizeof(err)),
                     ST_EINVAL);
    assert_non_null(strstr(err, "--agents: unknown flag"));
    st_plan_flags_init(&f);
    assert_int_equal(st_settings_parse_args(3, agents, g, 1, ST_SETTING_RUN, "--help", &first,
                                            err, sizeof(err)),
                     0);
    assert_int_equal(f.agents, 3);

    /* The same flag in two groups is a mistake in the tables. */
    const st_setting clash[] = {
        {.flag = "rate", .type = ST_SETTING_BOOL, .where = ST_SETTING_OWN, .help = "r",
         ST_SETTING_AT(opts, verbose)},
    };
    st_settings_group g2[2] = {st_plan_flags_group(&f), {clash, 1, &o, NULL}};
    char *none[] = {"prog", NULL};
    assert_int_equal(st_settings_parse_args(1, none, g2, 2, ST_SETTING_RUN | ST_SETTING_OWN,
                                            "--help", &first, err, sizeof(err)),
                     ST_EINVAL);
    assert_non_null(strstr(err, "--rate: declared twice"));
}

static void test_settings_check_only(void **state)
{
    (void)state;
    st_plan_flags f;
    opts o;
    char err[512] = "";
    int first;
    unsigned mask = ST_SETTING_AGENT | ST_SETTING_OWN;
    memset(&o, 0, sizeof(o));
    st_plan_flags_init(&f);
    st_settings_group g[2] = {st_plan_flags_group(&f), {rows, N(rows), &o, &o.seen}};
    char *fine[] = {"prog", "--threads", "2", "--verbose", "--wait", "3", NULL};
    assert_int_equal(st_settings_parse_args(6, fine, g, 2, mask, "--help", &first, err,
                                            sizeof(err)),
                     0);
    assert_int_equal(st_settings_check_only(g, 2, mask, ST_SETTING_REMOTE, "--wait", "why",
                                            err, sizeof(err)),
                     0);
    /* Every plan flag but --threads is refused; the allowed ones are listed, not --wait itself
     * nor the --help switch. */
    size_t n;
    const st_setting *plan = st_plan_settings(&n);
    for (size_t i = 0; i < n; i++) {
        if (!plan[i].flag || !(plan[i].where & ST_SETTING_AGENT) ||
            strcmp(plan[i].flag, "threads") == 0) {
            continue;
        }
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", plan[i].flag);
        char *argv[] = {"prog", "--wait", "3", flag, "1", NULL};
        int argc = plan[i].type == ST_SETTING_BOOL ? 4 : 5;
        st_plan_flags_init(&f);
        o.seen = 0;
        assert_int_equal(st_settings_parse_args(argc, argv, g, 2, mask, "--help", &first, err,
                                                sizeof(err)),
                         0);
        assert_int_equal(st_settings_check_only(g, 2, mask, ST_SETTING_REMOTE, "--wait",
                                                "the plan comes from elsewhere", err,
                                                sizeof(err)),
                         ST_EINVAL);
        char expect[256];
        snprintf(expect, sizeof(expect),
                 "--wait: the plan comes from elsewhere; only --threads and --verbose go with "
                 "it (not %s)",
                 flag);
        assert_string_equal(err, expect);
    }
    /* A program flag without the bit is refused too. */
    st_plan_flags_init(&f);
    char *own[] = {"prog", "--count", "2", NULL};
    assert_int_equal(st_settings_parse_args(3, own, g, 2, mask, "--help", &first, err,
                                            sizeof(err)),
                     0);
    assert_int_equal(st_settings_check_only(g, 2, mask, ST_SETTING_REMOTE, "--wait", "why", err,
                                            sizeof(err)),
                     ST_EINVAL);
    assert_non_null(strstr(err, "(not --count)"));
}

/* The usage text of the groups, in a malloc'd string. */
static char *usage_of(const st_settings_group *g, size_t n_groups, unsigned mask, int width)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    st_settings_usage(f, g, n_groups, mask, 22, width);
    fclose(f);
    return text;
}

static void test_settings_usage_names_every_flag(void **state)
{
    (void)state;
    st_plan_flags f;
    opts o;
    st_plan_flags_init(&f);
    st_settings_group g[2] = {st_plan_flags_group(&f), {rows, N(rows), &o, NULL}};
    size_t n;
    const st_setting *plan = st_plan_settings(&n);
    const unsigned masks[] = {ST_SETTING_AGENT, ST_SETTING_RUN};
    for (size_t m = 0; m < N(masks); m++) {
        char *usage = usage_of(g, 2, masks[m] | ST_SETTING_OWN, 80);
        /* A newline in front, so that every entry reads "\n  --flag ARG ". */
        size_t len = strlen(usage);
        char *text = malloc(len + 2);
        assert_non_null(text);
        text[0] = '\n';
        memcpy(text + 1, usage, len + 1);
        free(usage);
        for (size_t k = 0; k < 2; k++) {
            const st_setting *t = k == 0 ? plan : rows;
            size_t tn = k == 0 ? n : N(rows);
            for (size_t i = 0; i < tn; i++) {
                if (!t[i].flag) {
                    continue;
                }
                char entry[64];
                snprintf(entry, sizeof(entry), "\n  --%s%s%s ", t[i].flag, t[i].arg ? " " : "",
                         t[i].arg ? t[i].arg : "");
                bool listed = strstr(text, entry) != NULL;
                bool applies = (t[i].where & (masks[m] | ST_SETTING_OWN)) != 0;
                if (listed != applies) {
                    fail_msg("--%s is %slisted in:\n%s", t[i].flag, listed ? "" : "not ", text);
                }
            }
        }
        /* Defaults are generated from the rows (read with the wrapping undone). */
        char *flat = strdup(text);
        assert_non_null(flat);
        for (char *at; (at = strstr(flat, "\n                      "));) {
            *at = ' ';
            memmove(at + 1, at + 23, strlen(at + 23) + 1);
        }
        assert_non_null(strstr(flat, "over all its threads (default 64)"));
        assert_non_null(strstr(flat, "from the send (default 10000)"));
        assert_non_null(strstr(flat, "how long to wait (default 90s)"));
        assert_non_null(strstr(flat, "how loud (default mid)"));
        assert_non_null(strstr(flat, "where to write (default -)"));
        free(flat);
        /* Wrapped at the width, continuation lines indented to the help column. */
        for (char *line = text + 1; *line;) {
            len = strcspn(line, "\n");
            assert_true(len <= 80);
            if (strncmp(line, "  --", 4) != 0) {
                assert_true(len > 22 && strspn(line, " ") == 22);
            }
            line += len + (line[len] == '\n');
        }
        free(text);
    }
    /* --agents is stampede run's only. */
    char *agent = usage_of(g, 1, ST_SETTING_AGENT, 80);
    char *run = usage_of(g, 1, ST_SETTING_RUN, 80);
    assert_null(strstr(agent, "--agents"));
    assert_non_null(strstr(run, "  --agents N"));
    free(agent);
    free(run);
}

static void test_settings_plan_keys_and_flags_from_the_table(void **state)
{
    (void)state;
    size_t n;
    const st_setting *plan = st_plan_settings(&n);
    /* An unknown key is refused with every key of the table listed. */
    st_plan p;
    char err[1024] = "";
    st_plan_init(&p);
    const char *json = "{\"url\": \"http://h/\", \"rate\": 1, \"duration\": 1, \"timeout\": 5}";
    assert_int_equal(st_plan_parse(&p, json, strlen(json), "plan.json", err, sizeof(err)),
                     ST_EINVAL);
    assert_non_null(strstr(err, "plan.json: $.timeout: unknown key"));
    for (size_t i = 0; i < n; i++) {
        if (plan[i].key && (plan[i].where & ST_SETTING_FILE)) {
            char key[64];
            snprintf(key, sizeof(key), " %s%c", plan[i].key, i + 1 < n ? ',' : ';');
            if (!strstr(err, key)) {
                fail_msg("\"%s\" is not listed in: %s", plan[i].key, err);
            }
        }
    }
    st_plan_fini(&p);

    /* Every key of the file, given a value of the wrong kind, is refused naming its path. */
    for (size_t i = 0; i < n; i++) {
        if (!plan[i].key || !(plan[i].where & ST_SETTING_FILE)) {
            continue;
        }
        if (strcmp(plan[i].key, "ecs") == 0) {
            continue; /* its keys are stampede run's rows: tests/integration/test_ecs_run.py */
        }
        char doc[256], path[64];
        snprintf(doc, sizeof(doc), "{\"%s\": {\"not\": \"a value\"}}", plan[i].key);
        snprintf(path, sizeof(path), "$.%s", plan[i].key);
        st_plan_init(&p);
        err[0] = 0;
        assert_int_equal(st_plan_parse(&p, doc, strlen(doc), NULL, err, sizeof(err)), ST_EINVAL);
        if (strncmp(err, path, strlen(path)) != 0) {
            fail_msg("%s: message \"%s\" does not start with %s", plan[i].key, err, path);
        }
        st_plan_fini(&p);
    }

    /* Every flag with a value, given a bad one, is refused naming the flag. */
    for (size_t i = 0; i < n; i++) {
        if (!plan[i].flag || plan[i].type == ST_SETTING_BOOL ||
            plan[i].type == ST_SETTING_STRING || plan[i].type == ST_SETTING_LIST) {
            continue;
        }
        st_plan_flags f;
        st_plan_flags_init(&f);
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s: \"soon\"", plan[i].flag);
        assert_int_equal(st_plan_flags_option(&f, plan[i].flag, "soon", err, sizeof(err)),
                         ST_EINVAL);
        assert_non_null(strstr(err, flag));
        assert_true(f.given == 0);
    }
}

static void test_settings_plan_flags_apply_only_what_was_given(void **state)
{
    (void)state;
    st_plan p;
    st_plan_flags f;
    char err[256] = "";
    st_plan_init(&p);
    const char *json = "{\"url\": \"http://a/\", \"stages\": [{\"duration\": 2, \"rate\": 5}], "
                       "\"connections\": 4, \"timeout_ms\": 300, \"insecure\": false}";
    assert_int_equal(st_plan_parse(&p, json, strlen(json), "plan.json", err, sizeof(err)), 0);
    st_plan_flags_init(&f);
    assert_int_equal(st_plan_flags_option(&f, "timeout", "700", err, sizeof(err)), 0);
    assert_int_equal(st_plan_flags_option(&f, "http2", NULL, err, sizeof(err)), 0);
    assert_int_equal(st_plan_apply_flags(&p, &f, err, sizeof(err)), 0);
    assert_int_equal(p.timeout_ms, 700);
    assert_int_equal(p.http2, 1);
    assert_int_equal(p.connections, 4);
    assert_int_equal(p.insecure, 0);
    assert_int_equal(p.n_stages, 1); /* no rate/duration flag: the stages stay */
    assert_int_equal(st_plan_finish(&p, 2, err, sizeof(err)), 0);
    assert_int_equal(p.late_ms, 10); /* the table's default */
    assert_int_equal(p.agents, 1);
    assert_int_equal(p.threads, 2);
    st_plan_fini(&p);

    /* --duration replaces the stages by the rate/duration shape. */
    st_plan_init(&p);
    assert_int_equal(st_plan_parse(&p, json, strlen(json), "plan.json", err, sizeof(err)), 0);
    st_plan_flags_init(&f);
    assert_int_equal(st_plan_flags_option(&f, "duration", "3s", err, sizeof(err)), 0);
    assert_int_equal(st_plan_flags_option(&f, "rate", "10", err, sizeof(err)), 0);
    assert_int_equal(st_plan_apply_flags(&p, &f, err, sizeof(err)), 0);
    assert_null(p.stages);
    assert_int_equal(st_plan_finish(&p, 2, err, sizeof(err)), 0);
    assert_true(p.profile.total_n == 30);
    st_plan_fini(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings_check_accepts_the_plan_table),
        cmocka_unit_test(test_settings_check_refuses_bad_rows),
        cmocka_unit_test(test_settings_int_bounds),
        cmocka_unit_test(test_settings_uint_bounds),
        cmocka_unit_test(test_settings_double_bounds),
        cmocka_unit_test(test_settings_duration_bounds),
        cmocka_unit_test(test_settings_bool_string_enum),
        cmocka_unit_test(test_settings_defaults),
        cmocka_unit_test(test_settings_parse_args),
        cmocka_unit_test(test_settings_parse_args_refuses_a_repeated_flag),
        cmocka_unit_test(test_settings_json_negative_zero),
        cmocka_unit_test(test_settings_parse_args_groups_and_masks),
        cmocka_unit_test(test_settings_check_only),
        cmocka_unit_test(test_settings_usage_names_every_flag),
        cmocka_unit_test(test_settings_plan_keys_and_flags_from_the_table),
        cmocka_unit_test(test_settings_plan_flags_apply_only_what_was_given),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
