/*
 * settings.h - settings declared once, in a table, and everything else generated from it.
 *
 * A setting is one row (st_setting): its JSON key, its flag, its type and bounds, its default, its
 * help line, and where it applies (a plan file, stampede-agent, stampede run, ...). The plan module
 * declares the plan's settings this way (st_plan_settings); each program declares its own flags the
 * same way. From the rows this module generates the JSON value checks, the command-line parser, the
 * defaults, the "only these flags go with X" exclusions and the flag list of the usage text, so a
 * setting spelled once cannot drift between them.
 *
 * Values live in the caller's structs at the row's offsets: `offset` in the settings struct (what a
 * plan file fills, and where defaults go), `flag_offset` in the struct flags are parsed into. The
 * two differ when flags are collected apart and applied over a file later (st_plan_flags); a
 * program's own flags use the same struct for both (ST_SETTING_AT).
 *
 * Value types in those structs: INT, BOOL and ENUM are `int`; UINT is `unsigned long long`; DOUBLE
 * and DURATION are `double` (a duration in seconds); STRING is `const char *`, borrowed from argv
 * or from the cJSON value, never copied; LIST is an st_setting_list. Every flag is given once,
 * except a LIST's, which may be repeated (up to ST_SETTING_LIST_MAX values). CUSTOM rows only declare a key or flag that their owner
 * parses (e.g. a plan's "requests"), so that lookups, unknown-key messages and the usage text know
 * them.
 *
 * Errors: ST_EINVAL with a message that names the flag ("--rate: ...") or, for JSON values, says
 * what the value must be (the caller prefixes the JSON path). Tables are static and read-only;
 * every function is thread-safe except st_settings_parse_args (getopt's globals).
 */
#ifndef ST_SETTINGS_H
#define ST_SETTINGS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum st_setting_type {
    ST_SETTING_INT,      /* an integer from min to max */
    ST_SETTING_UINT,     /* a non-negative integer from min to max (exact up to 2^53) */
    ST_SETTING_DOUBLE,   /* a finite number from min to max */
    ST_SETTING_DURATION, /* seconds above 0 (and >= min), at most max: 30, "500ms", "2m", "1h";
                          * or 0 in a zero_ok row */
    ST_SETTING_BOOL,     /* JSON true/false; on the command line a switch without a value */
    ST_SETTING_STRING,   /* any text */
    ST_SETTING_ENUM,     /* one of choices; the value is its index */
    ST_SETTING_CUSTOM,   /* parsed by the row's owner; this module only knows its name */
    ST_SETTING_LIST,     /* the one repeatable kind of flag: each value is appended to an
                          * st_setting_list (a JSON value is read by the row's owner) */
} st_setting_type;

/* The values of an ST_SETTING_LIST flag, in command-line order, borrowed from argv. */
#define ST_SETTING_LIST_MAX 64
typedef struct st_setting_list {
    const char *v[ST_SETTING_LIST_MAX];
    size_t n;
} st_setting_list;

/* Where a setting applies (st_setting.where). */
enum {
    ST_SETTING_FILE = 1u << 0,   /* a key of a plan file */
    ST_SETTING_AGENT = 1u << 1,  /* a flag of stampede-agent */
    ST_SETTING_RUN = 1u << 2,    /* a flag of stampede run */
    ST_SETTING_REMOTE = 1u << 3, /* also goes with stampede-agent --coordinator */
    ST_SETTING_OWN = 1u << 4,    /* a flag of the program whose table declares it */
    ST_SETTING_STOP = 1u << 5,   /* a switch that ends parsing at once (--help, --version) */
};

/* The most rows a table may have (a parse records the flags it saw in one uint64_t). */
#define ST_SETTINGS_MAX_ROWS 64

/* A row's offset when the value has no field of its own (its owner handles it). */
#define ST_SETTING_NO_FIELD ((size_t)-1)

typedef struct st_setting {
    const char *key;  /* JSON key, or NULL when the setting is not read from a file */
    const char *flag; /* long flag without the dashes ("ramp-up"), or NULL */
    st_setting_type type;
    unsigned where;   /* ST_SETTING_* bits */
    double min, max;  /* bounds of INT, UINT, DOUBLE and DURATION values */
    bool zero_ok;     /* DURATION only: 0 is a value too ("0", "0ms"), below min */
    bool has_def;     /* def / def_text below is the default */
    double def;       /* default of a numeric, BOOL (0/1) or ENUM (index) value */
    const char *def_text;       /* default of a STRING value */
    const char *const *choices; /* ENUM: the names, NULL-terminated, in the order of their values */
    const char *arg;  /* the value's name in the usage text ("N", "TIME"); NULL for switches */
    const char *help; /* one line; the usage text wraps it and appends the default */
    size_t offset;      /* the value's place in the settings struct, or ST_SETTING_NO_FIELD */
    size_t flag_offset; /* the flag value's place in the struct flags are parsed into */
} st_setting;

/* Both offsets of a field of a program's own options struct. */
#define ST_SETTING_AT(type, field)                                                                 \
    .offset = offsetof(type, field), .flag_offset = offsetof(type, field)

/* A table and the structs its values go to, for the command line and the usage text. */
typedef struct st_settings_group {
    const st_setting *rows;
    size_t n;
    void *flags;    /* flag values are stored at flags + row->flag_offset */
    uint64_t *seen; /* if not NULL, bit i is set when rows[i]'s flag is given */
} st_settings_group;

/* Checks a table: a key or flag given twice, bounds upside down, a default outside its bounds or
 * choices, a switch with a value name, more than ST_SETTINGS_MAX_ROWS rows. Returns 0, or
 * ST_EINVAL with the offending row named in err. Programs' tests call it on their tables. */
int st_settings_check(const st_setting *rows, size_t n, char *err, size_t err_len);

/* The row with this JSON key, or with this flag name (no dashes) and a bit of mask in its
 * `where`; NULL if none. */
const st_setting *st_settings_find_key(const st_setting *rows, size_t n, const char *key);
const st_setting *st_settings_find_flag(const st_setting *rows, size_t n, const char *flag,
                                        unsigned mask);

/* Writes "a, b, c" (or "a, b or c" when last_or): the keys of the rows with a bit of mask. */
void st_settings_list_keys(const st_setting *rows, size_t n, unsigned mask, bool last_or,
                           char *out, size_t len);

/* Reads a JSON value into *dst (typed as the row says; STRING borrows v's text). Returns 0, or
 * ST_EINVAL and writes what the value must be into why ("must be an integer from 1 to 1024").
 * CUSTOM rows are refused with ST_EINVAL. */
int st_setting_from_json(const st_setting *s, const cJSON *v, void *dst, char *why,
                         size_t why_len);

/* Reads a command-line value (NULL for a switch) into *dst. Returns 0, or ST_EINVAL with a
 * message that names the flag. CUSTOM rows store the text as a STRING would. */
int st_setting_from_text(const st_setting *s, const char *text, void *dst, char *err,
                         size_t err_len);

/* Writes each row's default at base + offset; with only_unset, only where the value is unset
 * (a negative number or a NULL string, the plan's convention). Rows without a default, CUSTOM
 * rows and rows without a field are left alone. */
void st_settings_defaults(const st_setting *rows, size_t n, void *base, bool only_unset);

/* Copies the value of rows[i] from flags + flag_offset to base + offset. */
void st_setting_copy(const st_setting *s, void *base, const void *flags);

/* Parses argv[1..argc-1] with getopt_long (abbreviations and operands anywhere, as GNU does): every
 * flag of a row with a bit of mask, from every group. Operands are moved to the end; *first_operand
 * gets the index of the first. Returns 0; 1 when a ST_SETTING_STOP switch was given (its value is
 * set; nothing after it is read); ST_EINVAL with a message naming the flag (unknown flags end with
 * "(see <help_hint>)"; a flag given twice, also abbreviated, is refused, unless it is a LIST's); ST_ENOMEM. Not thread-safe: uses getopt's globals. */
int st_settings_parse_args(int argc, char **argv, const st_settings_group *groups,
                           size_t n_groups, unsigned mask, const char *help_hint,
                           int *first_operand, char *err, size_t err_len);

/* Refuses every given flag whose row lacks the bit `allowed`. Returns 0, or ST_EINVAL with
 * "<because>: <reason>; only --a, --b and --c go with it (not --x)" listing the allowed flags of
 * rows with a bit of mask (but not the STOP switches or `because` itself). */
int st_settings_check_only(const st_settings_group *groups, size_t n_groups, unsigned mask,
                           unsigned allowed, const char *because, const char *reason, char *err,
                           size_t err_len);

/* Writes the flag list of a usage text: one entry per row with a flag and a bit of mask, in table
 * order, "  --flag ARG" and the help from column `column`, wrapped at `width`, with "(default X)"
 * appended for rows with a default. */
void st_settings_usage(FILE *f, const st_settings_group *groups, size_t n_groups, unsigned mask,
                       int column, int width);

#endif
