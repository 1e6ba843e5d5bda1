/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the djdeskctl commands: JSON accessors, times, tables, spawning a helper
 * program, sub-command dispatch. */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "dj-util.h"
#include "strv.h"

extern char **environ;

const char *ctl_str(json_t *o, const char *key, const char *def) {
        const char *s = json_string_value(json_object_get(o, key));

        return s ?: def;
}

json_int_t ctl_int(json_t *o, const char *key, json_int_t def) {
        json_t *v = json_object_get(o, key);

        return json_is_integer(v) ? json_integer_value(v) : def;
}

const char *ctl_clock(const char *iso, bool msec, char *buf, size_t n) {
        static const char shape[] = "dddd-dd-ddTdd:dd:dd";
        int year, mon, day, hour, min, sec, frac = 0, off_h = 0, off_m = 0;
        struct tm tm = {}, local;
        const char *p;
        time_t t;
        char hms[9];

        if (!iso)
                return "-";
        for (size_t i = 0; i < sizeof(shape) - 1; i++)
                if (shape[i] == 'd' ? !isdigit((unsigned char) iso[i]) : iso[i] != shape[i])
                        return iso;
        if (sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2d", &year, &mon, &day, &hour, &min, &sec) != 6)
                return iso;
        p = iso + sizeof(shape) - 1;
        if (*p == '.') {
                size_t digits = 0;

                for (p++; isdigit((unsigned char) *p); p++, digits++)
                        if (digits < 3)
                                frac = frac * 10 + (*p - '0');
                if (digits == 0)
                        return iso;
                for (; digits < 3; digits++)
                        frac *= 10;
        }
        if (!streq(p, "Z") && ((p[0] != '+' && p[0] != '-') || strlen(p) != 6 ||
                               sscanf(p + 1, "%2d:%2d", &off_h, &off_m) != 2))
                return iso;

        tm.tm_year = year - 1900;
        tm.tm_mon = mon - 1;
        tm.tm_mday = day;
        tm.tm_hour = hour;
        tm.tm_min = min;
        tm.tm_sec = sec;
        t = timegm(&tm);
        if (t == (time_t) -1)
                return iso;
        t -= (p[0] == '-' ? -1 : 1) * (time_t) (off_h * 3600 + off_m * 60);
        if (!localtime_r(&t, &local) || strftime(hms, sizeof(hms), "%H:%M:%S", &local) == 0)
                return iso;
        if (msec)
                (void) snprintf(buf, n, "%s.%03d", hms, frac);
        else
                (void) snprintf(buf, n, "%s", hms);
        return buf;
}

void ctl_print_field(int width, const char *label, const char *fmt, ...) {
        va_list ap;

        printf("%-*s", width, label);
        va_start(ap, fmt);
        (void) vprintf(fmt, ap);
        va_end(ap);
        (void) putchar('\n');
}

/* ---- tables ---- */

struct CtlTable {
        size_t n_columns;
        char **cells; /* row after row, the header first */
        bool wrap_last;
};

CtlTable *ctl_table_free(CtlTable *t) {
        if (!t)
                return NULL;
        strv_free(t->cells);
        free(t);
        return NULL;
}

static int table_add_va(CtlTable *t, va_list ap) {
        for (size_t i = 0; i < t->n_columns; i++) {
                const char *s = va_arg(ap, const char *);
                int r = strv_extend(&t->cells, s ?: "-");

                if (r < 0)
                        return r;
        }
        return 0;
}

CtlTable *ctl_table_new(size_t n_columns, ...) {
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;
        va_list ap;
        int r;

        assert(n_columns > 0);
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->n_columns = n_columns;
        va_start(ap, n_columns);
        r = table_add_va(t, ap);
        va_end(ap);
        return r < 0 ? NULL : TAKE_PTR(t);
}

int ctl_table_add(CtlTable *t, ...) {
        va_list ap;
        int r;

        va_start(ap, t);
        r = table_add_va(t, ap);
        va_end(ap);
        return r;
}

void ctl_table_wrap_last(CtlTable *t) {
        t->wrap_last = true;
}

size_t ctl_text_width(const char *s) {
        size_t w = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xc0) != 0x80)
                        w++;
        return w;
}

char *ctl_clean_text(const char *s) {
        char *t = strdup(s ?: "-"), *o = t;

        if (!t)
                return NULL;
        for (const char *p = t; *p; p++) {
                unsigned char c = (unsigned char) *p;

                if (c == '\t')
                        *o++ = ' ';
                else if (c < ' ' || c == 0x7f)
                        *o++ = '?';
                else if (c == 0xc2 && (unsigned char) p[1] >= 0x80 && (unsigned char) p[1] <= 0x9f) {
                        *o++ = '?';
                        p++;
                } else
                        *o++ = *p;
        }
        *o = '\0';
        return t;
}

const char *ctl_format_when(const char *iso, char *buf, size_t n) {
        static const char shape[] = "dddd-dd-ddTdd:dd:dd";

        if (!iso)
                return "-";
        for (size_t i = 0; i < sizeof(shape) - 1; i++)
                if (shape[i] == 'd' ? iso[i] < '0' || iso[i] > '9' : iso[i] != shape[i])
                        return iso;
        (void) snprintf(buf, n, "%.10s %.8s", iso, iso + 11);
        return buf;
}

const char *ctl_format_size(uint64_t bytes, char *buf, size_t n) {
        static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
        double v = (double) bytes;
        size_t u = 0;

        if (bytes < 1024) {
                (void) snprintf(buf, n, "%" PRIu64 " B", bytes);
                return buf;
        }
        v /= 1024;
        /* 1023.95 KiB would print as "1024.0 KiB": go up a unit first. */
        while (v >= 1023.95 && u + 1 < ELEMENTSOF(units)) {
                v /= 1024;
                u++;
        }
        (void) snprintf(buf, n, "%.1f %s", v, units[u]);
        return buf;
}

const char *ctl_format_seconds(json_t *v, char *buf, size_t n) {
        double s;

        if (!json_is_number(v))
                return "-";
        s = json_number_value(v);
        if (s < 0)
                s = 0;
        return format_duration(buf, n, (uint64_t) (s * (double) USEC_PER_SEC));
}

/* The width of the terminal on stdout, or 0 when stdout is not a terminal (or it does not say). */
static size_t stdout_columns(void) {
        struct winsize ws = {};

        if (!isatty(STDOUT_FILENO) || ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0)
                return 0;
        return ws.ws_col;
}

/* The byte length of s's first n characters (UTF-8). */
static size_t text_prefix(const char *s, size_t n) {
        const char *p = s;

        for (; *p && n > 0; n--)
                for (p++; ((unsigned char) *p & 0xc0) == 0x80; p++)
                        ;
        return (size_t) (p - s);
}

/* Prints s, broken at spaces into lines of at most width characters (a longer word is cut), each line
 * after the first indented by indent columns. */
static void print_wrapped(const char *s, size_t width, size_t indent) {
        bool first = true;

        for (;;) {
                size_t len, cut, end;

                while (!first && *s == ' ')
                        s++;
                if (ctl_text_width(s) <= width) {
                        printf("%*s%s\n", first ? 0 : (int) indent, "", s);
                        return;
                }
                len = text_prefix(s, width);
                cut = len;
                if (s[len] != ' ')
                        while (cut > 0 && s[cut - 1] != ' ')
                                cut--;
                if (cut == 0)
                        cut = len; /* one word longer than the line */
                end = cut;
                while (end > 0 && s[end - 1] == ' ')
                        end--;
                printf("%*s%.*s\n", first ? 0 : (int) indent, "", (int) end, s);
                s += cut;
                first = false;
        }
}

void ctl_table_print(CtlTable *t) {
        size_t n = strv_length(t->cells), widths[16] = {}, indent = 0, columns = 0;

        assert(t->n_columns <= ELEMENTSOF(widths));
        for (size_t i = 0; i < n; i++)
                widths[i % t->n_columns] = MAX(widths[i % t->n_columns], ctl_text_width(t->cells[i]));
        for (size_t i = 0; i + 1 < t->n_columns; i++)
                indent += widths[i] + 2;
        if (t->wrap_last) {
                columns = stdout_columns();
                /* Too narrow a space left for the last column: no wrapping at all beats one word a line. */
                if (columns < indent + 20)
                        columns = 0;
        }
        for (size_t i = 0; i < n; i++) {
                size_t col = i % t->n_columns;

                if (col + 1 == t->n_columns && columns > 0)
                        print_wrapped(t->cells[i], columns - indent - 1, indent);
                else if (col + 1 == t->n_columns)
                        printf("%s\n", t->cells[i]);
                else
                        printf("%s%*s", t->cells[i], (int) (widths[col] - ctl_text_width(t->cells[i]) + 2),
                               "");
        }
}

/* ---- helper programs ---- */

int ctl_spawn_wait(char *const argv[]) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t empty, dflt;
        pid_t pid;
        int r, status;

        (void) fflush(stdout);
        (void) fflush(stderr);
        (void) sigemptyset(&empty);
        (void) sigemptyset(&dflt);
        (void) sigaddset(&dflt, SIGPIPE); /* we ignore it; a child must not inherit that */
        (void) sigaddset(&dflt, SIGINT);
        (void) sigaddset(&dflt, SIGTERM);

        r = posix_spawnattr_init(&attr);
        if (r != 0)
                return -r;
        r = posix_spawn_file_actions_init(&fa);
        if (r != 0) {
                (void) posix_spawnattr_destroy(&attr);
                return -r;
        }
        r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        if (r == 0)
                r = posix_spawnattr_setsigmask(&attr, &empty);
        if (r == 0)
                r = posix_spawnattr_setsigdefault(&attr, &dflt);
        if (r == 0)
                r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
        if (r == 0)
                r = posix_spawnp(&pid, argv[0], &fa, &attr, argv, environ);
        (void) posix_spawn_file_actions_destroy(&fa);
        (void) posix_spawnattr_destroy(&attr);
        if (r != 0)
                return -r;

        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int ctl_open_with_opener(const char *target, const char *what) {
        const char *opener = getenv("DJDESK_OPENER");
        int r;

        if (isempty(opener))
                opener = "xdg-open";
        char *argv[] = { (char *) opener, (char *) target, NULL };
        r = ctl_spawn_wait(argv);
        if (r == 0)
                return CTL_EXIT_OK;
        if (r == -ENOENT)
                ctl_message("cannot run '%s': not found%s", opener,
                            streq(opener, "xdg-open") ? " (Debian package xdg-utils)" : "");
        else if (r < 0)
                ctl_message("cannot run '%s': %s", opener, strerror(-r));
        else
                ctl_message("'%s %s' failed with status %d", opener, target, r);
        ctl_message("%s is at %s", what, target);
        return CTL_EXIT_FAILURE;
}

bool ctl_colors(void) {
        const char *term = getenv("TERM");

        return isatty(STDOUT_FILENO) && !getenv("NO_COLOR") && !(term && streq(term, "dumb"));
}

/* ---- arguments ---- */

int ctl_parse_ws_operand(int argc, char *argv[], const char *verb, const char **ret) {
        return ctl_parse_operand(argc, argv, verb, "missing workspace (see 'djdeskctl ws ls')",
                                 "the workspace must not be empty", ret);
}

int ctl_subscribe(Ctl *c, json_t *topics) {
        json_auto_t *result = NULL;
        json_t *params;

        params = topics ? json_pack("{s:o}", "topics", topics) : NULL;
        if (!params)
                return ctl_oom();
        ctl_keep_notifications(c, true);
        return ctl_call_interruptible(c, "subscribe", params, CTL_CALL_TIMEOUT_USEC, &result);
}

int ctl_workspace_list(Ctl *c, json_t **ret_result, json_t **ret_list) {
        json_auto_t *result = NULL;
        json_t *list;
        int r;

        r = ctl_call_checked(c, "workspace.list", NULL, CTL_CALL_TIMEOUT_USEC, false, &result);
        if (r != CTL_EXIT_OK)
                return r;
        list = ctl_result_array(result, "workspaces", "workspace.list");
        if (!list)
                return CTL_EXIT_FAILURE;
        *ret_list = list;
        *ret_result = TAKE_PTR(result);
        return CTL_EXIT_OK;
}

int ctl_parse_optional_ws(int argc, char *argv[], const char *verb, void (*help)(void), const char **ret) {
        int r;

        r = ctl_parse_common(argc, argv, CTL_COMMON_SHORTOPTS, verb, help);
        if (r <= 0)
                return r;
        if (optind >= argc)
                return 1;
        return ctl_parse_ws_operand(argc, argv, verb, ret);
}

int ctl_workspace_params(const char *verb, const char *ws, json_t **ret) {
        *ret = json_pack("{s:s}", "workspace", ws);
        if (!*ret) {
                (void) ctl_usage_error(verb, "invalid workspace '%s'", ws);
                return CTL_EXIT_USAGE;
        }
        return CTL_EXIT_OK;
}

int ctl_params_set_note(const char *verb, json_t *params, const char *note) {
        json_t *j;

        if (!note)
                return CTL_EXIT_OK;
        j = json_string(note);
        if (!j) {
                (void) ctl_usage_error(verb, "invalid --note: not UTF-8");
                return CTL_EXIT_USAGE;
        }
        if (json_object_set_new(params, "note", j) < 0)
                return ctl_oom();
        return CTL_EXIT_OK;
}

/* ---- commands that make one call ---- */

int ctl_call_command(int argc, char *argv[], const char *verb, void (*help)(void), const char *method,
                     json_t **ret_result) {
        int r;

        r = ctl_parse_no_args(argc, argv, verb, help);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        return ctl_simple_call(method, NULL, ret_result);
}

int ctl_list_command(int argc, char *argv[], const CtlListing *l, CtlTable *t) {
        json_auto_t *result = NULL;
        json_t *list, *item;
        size_t i;
        int r;

        r = ctl_call_command(argc, argv, l->verb, l->help, l->method, &result);
        if (r != CTL_EXIT_OK || !result)
                return r;
        list = ctl_result_array(result, l->key, l->method);
        if (!list)
                return CTL_EXIT_FAILURE;
        if (arg_json)
                return ctl_print_result(result);
        if (json_array_size(list) == 0) {
                printf("%s\n", l->empty);
                return ctl_finish_stdout();
        }
        if (!t)
                return ctl_oom();
        json_array_foreach (list, i, item)
                if (l->add_row(t, item) < 0)
                        return ctl_oom();
        ctl_table_print(t);
        return ctl_finish_stdout();
}

int ctl_workspace_command(int argc, char *argv[], const char *verb, void (*help)(void), const char *method,
                          const char **ret_ws, json_t **ret_result) {
        json_t *params = NULL;
        int r;

        r = ctl_parse_common(argc, argv, CTL_COMMON_SHORTOPTS, verb, help);
        if (r > 0)
                r = ctl_parse_ws_operand(argc, argv, verb, ret_ws);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        r = ctl_workspace_params(verb, *ret_ws, &params);
        if (r != CTL_EXIT_OK)
                return r;
        return ctl_simple_call(method, params, ret_result);
}

/* ---- sub-commands ---- */

int ctl_dispatch(int argc, char *argv[], const char *verb, void (*help)(void), const CtlSubVerb *subs,
                 size_t n_subs, const char *def) {
        const char *name;
        int r;

        /* "+": stop at the sub-command, which parses the rest (its own options included). */
        r = ctl_parse_common(argc, argv, "+" CTL_COMMON_SHORTOPTS, verb, help);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;

        if (optind >= argc) {
                if (!def) {
                        (void) ctl_usage_error(verb, "missing sub-command");
                        return CTL_EXIT_USAGE;
                }
                name = def;
        } else
                name = argv[optind];

        for (size_t i = 0; i < n_subs; i++) {
                if (!streq(subs[i].name, name) && !(subs[i].alias && streq(subs[i].alias, name)))
                        continue;
                if (optind >= argc) {
                        char *sub_argv[] = { (char *) subs[i].name, NULL };

                        optind = 0;
                        return subs[i].run(1, sub_argv);
                }
                argc -= optind;
                argv += optind;
                optind = 0; /* full re-initialisation, for the sub-command's own option string */
                return subs[i].run(argc, argv);
        }
        (void) ctl_usage_error(verb, "unknown sub-command '%s'", name);
        return CTL_EXIT_USAGE;
}
