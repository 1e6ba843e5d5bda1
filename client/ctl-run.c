/* SPDX-License-Identifier: MIT */
/* djdeskctl presets, run, runs, run-log, cancel: the task queue (preset.list, run.* methods and events).
 *
 * Output rule: a run's standard output lines go to our standard output and its standard error lines to our
 * standard error, as the command wrote them, so that "djdeskctl run atlas dumpdata -f > dump.json" gives the
 * data. Everything djdeskctl adds (the progress line on a terminal, the "lines were cut" marker, the final
 * summary) goes to standard error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "ctl.h"
#include "dj-util.h"
#include "rpc-frame.h"

#define TOPIC_RUNS     "run.*"
#define TOPIC_QUEUED   "run.queued"
#define TOPIC_STARTED  "run.started"
#define TOPIC_LOG      "run.log"
#define TOPIC_FINISHED "run.finished"

/* Lines per run.logs page: the daemon's default, which keeps a page of long lines within a message. */
#define RUN_LOGS_PAGE  1000
#define RUNS_LIMIT_MAX 1000
#define STATUS_COLUMNS 80 /* the terminal's width when it does not say */

static const char *const run_statuses[] = {
        "queued", "running", "succeeded", "failed", "cancelled", "timed_out", "interrupted",
};

/* ---- help ---- */

void help_presets(void) {
        printf("Usage: djdeskctl presets [WS]\n"
               "\n"
               "List the presets: the commands a run may execute (the allowlist). One row\n"
               "each: key, label, category, flags ('confirm': needs --confirm, 'read-only':\n"
               "does not change the project) and parameters (NAME, or NAME=DEFAULT).\n"
               "With WS, also the command line each preset would run in that workspace.\n"
               "\n"
               "Options:\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the preset.list result as JSON\n");
}

void help_run(void) {
        printf("Usage: djdeskctl run WS PRESET [--param NAME=VALUE]... [--confirm] [--note TEXT]\n"
               "                     [-f]\n"
               "\n"
               "Queue a run of PRESET in workspace WS. The daemon answers at once; the run\n"
               "id is printed alone on standard output (for scripts: id=$(djdeskctl run ...)).\n"
               "\n"
               "With -f, follow the run until it finishes: its standard output lines are\n"
               "printed on standard output and its standard error lines on standard error,\n"
               "as they come; on a terminal a progress line is shown on standard error. A\n"
               "summary line ends it, and the exit status is 0 when the run succeeded, 1\n"
               "otherwise (failed, cancelled, timed out, interrupted).\n"
               "\n"
               "Options:\n"
               "  -p, --param NAME=VALUE  A value for one of the preset's parameters (one\n"
               "                          whole argument, checked against its regular\n"
               "                          expression; repeatable)\n"
               "      --confirm           Confirm a preset that changes the project (migrate)\n"
               "      --note TEXT         A note kept with the run (at most 280 characters)\n"
               "  -f, --follow            Print the run's output and wait for its outcome\n"
               "  -h, --help              Show this help\n"
               "      --socket PATH       Daemon socket\n"
               "      --json              Print the run as JSON; with -f, one JSON object per\n"
               "                          log line, then the finished run\n"
               "\n"
               "Exit status: 0 queued (with -f: succeeded), 1 refused (with -f: did not\n"
               "succeed), 2 usage error, 3 the daemon is unreachable.\n");
}

void help_runs(void) {
        printf("Usage: djdeskctl runs [WS] [--status STATUS] [--limit N]\n"
               "\n"
               "List runs, newest first: id, workspace, preset, status, exit code, duration\n"
               "and when it was queued. With WS, only that workspace's runs.\n"
               "\n"
               "Options:\n"
               "      --status STATUS  Only runs in this status: queued, running, succeeded,\n"
               "                       failed, cancelled, timed_out or interrupted\n"
               "  -n, --limit N        At most N runs (1..%d, default 50)\n"
               "  -h, --help           Show this help\n"
               "      --socket PATH    Daemon socket\n"
               "      --json           Print the run.list result as JSON\n",
               RUNS_LIMIT_MAX);
}

void help_run_log(void) {
        printf("Usage: djdeskctl run-log ID [-f]\n"
               "\n"
               "Print all the output of run ID that the daemon kept: its standard output lines\n"
               "on standard output, its standard error lines on standard error (2>&1 merges\n"
               "them in order). When the oldest lines were cut to stay within the preset's\n"
               "limits, a line \"... N earlier lines were cut ...\" comes first, on standard\n"
               "error. With -f, keep printing new lines until the run finishes.\n"
               "\n"
               "Options:\n"
               "  -f, --follow       Follow the run until it finishes; the exit status is then\n"
               "                     0 when it succeeded, 1 otherwise\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the run.logs result (all pages) as JSON; with -f,\n"
               "                     one log line object per line, then the finished run\n");
}

void help_cancel(void) {
        printf("Usage: djdeskctl cancel ID\n"
               "\n"
               "Cancel run ID. A queued run is dropped at once; a running run's processes get\n"
               "SIGTERM (SIGKILL after the grace period) and it ends as 'cancelled'.\n"
               "A run that has already finished cannot be cancelled (exit 1).\n"
               "\n"
               "Options:\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the run as JSON\n");
}

/* ---- small helpers ---- */

static bool status_is_valid(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(run_statuses); i++)
                if (streq(run_statuses[i], s))
                        return true;
        return false;
}

static bool status_is_final(const char *s) {
        return s && status_is_valid(s) && !streq(s, "queued") && !streq(s, "running");
}

static int parse_run_id(const char *verb, const char *s, json_int_t *ret) {
        uint64_t id;

        if (parse_uint_range(s, 1, INT64_MAX, &id) < 0)
                return ctl_usage_error(verb, "invalid run id '%s': expected a number (see 'djdeskctl runs')",
                                       s);
        *ret = (json_int_t) id;
        return 1;
}

/* Takes the one operand ID left after the options. */
static int parse_id_operand(int argc, char *argv[], const char *verb, json_int_t *ret) {
        const char *s = NULL;
        int r;

        r = ctl_parse_operand(argc, argv, verb, "missing run id (see 'djdeskctl runs')", NULL, &s);
        if (r <= 0)
                return r;
        return parse_run_id(verb, s, ret);
}

/* Appends s to *text, single-quoted as a shell would need it (for showing a command, never for running
 * one). */
static int append_quoted(char **text, const char *s) {
        static const char safe[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-{}";
        _cleanup_free_ char *q = NULL;
        char *joined = NULL;
        size_t n = 0;

        if (!isempty(s) && strspn(s, safe) == strlen(s))
                q = strdup(s);
        else {
                /* ' becomes '\'' */
                for (const char *p = s; *p; p++)
                        n += *p == '\'' ? 4 : 1;
                q = malloc(n + 3);
                if (q) {
                        char *o = q;

                        *o++ = '\'';
                        for (const char *p = s; *p; p++)
                                if (*p == '\'')
                                        o = stpcpy(o, "'\\''");
                                else
                                        *o++ = *p;
                        *o++ = '\'';
                        *o = '\0';
                }
        }
        if (!q)
                return -ENOMEM;
        if (asprintf(&joined, "%s%s%s", *text ?: "", *text ? " " : "", q) < 0)
                return -ENOMEM;
        free(*text);
        *text = joined;
        return 0;
}

static char *command_text(json_t *argv) {
        _cleanup_free_ char *text = NULL;
        json_t *a;
        size_t i;

        json_array_foreach (argv, i, a)
                if (append_quoted(&text, json_string_value(a) ?: "?") < 0)
                        return NULL;
        return text ? TAKE_PTR(text) : strdup("-");
}

/* Copies s with control characters shown as '?' (a command's output must not drive the terminal). */
static char *sanitize(const char *s) {
        char *t = strdup(s);

        if (!t)
                return NULL;
        for (char *p = t; *p; p++)
                if (((unsigned char) *p < ' ' && *p != '\t') || *p == 0x7f)
                        *p = '?';
        return t;
}

static bool fd_is_terminal(int fd) {
        const char *term = getenv("TERM");

        return isatty(fd) && !(term && streq(term, "dumb"));
}

static bool fd_has_colors(int fd) {
        return fd_is_terminal(fd) && !getenv("NO_COLOR");
}

/* ---- presets ---- */

static char *preset_flags(json_t *p) {
        bool confirm = json_is_true(json_object_get(p, "requires_confirmation")),
             ro = json_is_true(json_object_get(p, "read_only"));

        if (!confirm && !ro)
                return strdup("-");
        return strdup(confirm && ro ? "confirm,read-only" : confirm ? "confirm" : "read-only");
}

static char *preset_params(json_t *p) {
        _cleanup_free_ char *text = NULL;
        json_t *params = json_object_get(p, "params"), *v;
        const char *name;

        json_object_foreach (params, name, v) {
                const char *def = ctl_str(v, "default", NULL);
                char *t = NULL;

                if (asprintf(&t, "%s%s%s%s%s", text ?: "", text ? "," : "", name, def ? "=" : "",
                             def ?: "") < 0)
                        return NULL;
                free(text);
                text = t;
        }
        return text ? TAKE_PTR(text) : strdup("-");
}

int verb_presets(int argc, char *argv[]) {
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;
        json_auto_t *params = NULL, *result = NULL;
        json_t *list, *p, *w;
        const char *ws = NULL;
        size_t i;
        int r;

        r = ctl_parse_optional_ws(argc, argv, "presets", help_presets, &ws);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        if (ws) {
                r = ctl_workspace_params("presets", ws, &params);
                if (r != CTL_EXIT_OK)
                        return r;
        }
        r = ctl_simple_call("preset.list", TAKE_PTR(params), &result);
        if (r != CTL_EXIT_OK)
                return r;
        list = ctl_result_array(result, "presets", "preset.list");
        if (!list)
                return CTL_EXIT_FAILURE;
        json_array_foreach (json_object_get(result, "warnings"), i, w)
                if (json_is_string(w))
                        ctl_message("warning: %s", json_string_value(w));
        if (arg_json)
                return ctl_print_result(result);
        if (json_array_size(list) == 0) {
                printf("No presets.\n");
                return ctl_finish_stdout();
        }

        t = ws ? ctl_table_new(6, "KEY", "LABEL", "CATEGORY", "FLAGS", "PARAMS", "COMMAND")
               : ctl_table_new(5, "KEY", "LABEL", "CATEGORY", "FLAGS", "PARAMS");
        if (!t)
                return ctl_oom();
        json_array_foreach (list, i, p) {
                _cleanup_free_ char *flags = preset_flags(p), *pars = preset_params(p), *cmd = NULL;

                if (ws) {
                        json_t *command = json_object_get(p, "command");

                        cmd = json_is_array(command) ? command_text(command) : strdup("-");
                }
                if (!flags || !pars || (ws && !cmd))
                        return ctl_oom();
                r = ctl_table_add(t, ctl_str(p, "key", NULL), ctl_str(p, "label", NULL),
                                  ctl_str(p, "category", NULL), flags, pars, cmd);
                if (r < 0)
                        return ctl_oom();
        }
        ctl_table_print(t);
        return ctl_finish_stdout();
}

/* ---- following a run ---- */

/* What is known of the run being printed or followed, the connection, and the terminal's progress line. */
typedef struct RunView {
        Ctl *c;
        bool follow;          /* c is subscribed to the run events (interruptible) */
        json_int_t page_size; /* lines per run.logs call */
        json_int_t id;
        json_int_t last_n; /* the highest line number printed; 0: none yet */
        json_t *run;       /* the newest run object seen, or NULL */
        char *status;      /* from the newest event */
        json_int_t progress;
        bool sanitize_out, sanitize_err; /* stdout/stderr are terminals: control characters become '?' */
        bool color_out, color_err;
        bool progress_line; /* draw a progress line on stderr (a terminal, text output, following) */
        bool shown;         /* it is on the screen now */
        bool shutdown;      /* the daemon announced that it shuts down */
} RunView;

static void run_view_done(RunView *v) {
        v->c = ctl_free(v->c);
        json_decref(v->run);
        v->run = NULL;
        free(v->status);
        v->status = NULL;
}

static void run_view_init(RunView *v, json_int_t id, bool follow) {
        *v = (RunView){
                .follow = follow,
                .page_size = RUN_LOGS_PAGE,
                .id = id,
                .sanitize_out = fd_is_terminal(STDOUT_FILENO),
                .sanitize_err = fd_is_terminal(STDERR_FILENO),
                .color_out = fd_has_colors(STDOUT_FILENO),
                .color_err = fd_has_colors(STDERR_FILENO),
                .progress_line = follow && !arg_json && fd_is_terminal(STDERR_FILENO),
        };
}

static void run_view_set_status(RunView *v, const char *status, json_int_t progress) {
        if (status && (!v->status || !streq(v->status, status))) {
                char *s = strdup(status);

                if (s) {
                        free(v->status);
                        v->status = s;
                }
        }
        if (progress >= 0)
                v->progress = progress;
}

static void run_view_set_run(RunView *v, json_t *run) {
        json_decref(v->run);
        v->run = json_incref(run);
        run_view_set_status(v, ctl_str(run, "status", NULL), ctl_int(run, "progress", -1));
}

static void progress_clear(RunView *v) {
        if (!v->shown)
                return;
        (void) fputs("\r\033[K", stderr);
        (void) fflush(stderr);
        v->shown = false;
}

static void progress_draw(RunView *v) {
        struct winsize ws = {};
        char line[512];
        size_t columns = STATUS_COLUMNS;
        int n;

        if (!v->progress_line)
                return;
        if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) >= 0 && ws.ws_col > 0)
                columns = ws.ws_col;
        n = snprintf(line, sizeof(line),
                     "[%s %" JSON_INTEGER_FORMAT "%%] %s (run %" JSON_INTEGER_FORMAT
                     "): %" JSON_INTEGER_FORMAT " line%s",
                     v->status ?: "queued", v->progress, ctl_str(v->run, "preset", "?"), v->id, v->last_n,
                     v->last_n == 1 ? "" : "s");
        if (n < 0)
                return;
        /* One row, or \r cannot take us back to its start: cut at the width (the text is ASCII but for the
         * preset key, which is [a-z0-9-]). */
        if (columns > 1 && (size_t) n >= columns)
                line[columns - 1] = '\0';
        (void) fflush(stdout);
        (void) fprintf(stderr, "\r\033[K%s", line);
        (void) fflush(stderr);
        v->shown = true;
}

/* One line of the run's output, to the stream it came from. */
static int print_run_line(RunView *v, json_t *line) {
        const char *level = ctl_str(line, "level", "info"), *text = ctl_str(line, "text", "");
        bool err = streq(ctl_str(line, "stream", "stdout"), "stderr");
        bool on_tty = err ? v->sanitize_err : v->sanitize_out, color = err ? v->color_err : v->color_out;
        const char *on = NULL;
        _cleanup_free_ char *clean = NULL;
        FILE *f = err ? stderr : stdout;

        if (arg_json)
                return ctl_print_json(line, false);

        if (color && streq(level, "error"))
                on = "\033[31m";
        else if (color && streq(level, "warning"))
                on = "\033[33m";
        if (on_tty) {
                clean = sanitize(text);
                if (!clean)
                        return -ENOMEM;
                text = clean;
        }
        /* Keep the order of the two streams when they end up in one place (2>&1). */
        if (err)
                (void) fflush(stdout);
        errno = 0;
        (void) fprintf(f, "%s%s%s\n", on ?: "", text, on ? "\033[0m" : "");
        if (err)
                (void) fflush(stderr);
        return 0;
}

/* Prints the lines whose n is above v->last_n, in order, and updates it. */
static int print_run_lines(RunView *v, json_t *lines) {
        json_t *line;
        size_t i;
        int r;

        progress_clear(v);
        json_array_foreach (lines, i, line) {
                json_int_t n = ctl_int(line, "n", -1);

                if (n >= 0 && n <= v->last_n)
                        continue; /* already printed (a page and an event overlap) */
                r = print_run_line(v, line);
                if (r < 0)
                        return r;
                if (n > v->last_n)
                        v->last_n = n;
        }
        r = ctl_flush_stdout();
        if (r < 0)
                return r;
        progress_draw(v);
        return 0;
}

/* "... 40 earlier lines were cut ..." on stderr (not with --json: the line numbers tell). */
static void print_cut(RunView *v, json_int_t n, bool earlier) {
        if (arg_json || n <= 0)
                return;
        progress_clear(v);
        (void) fflush(stdout);
        (void) fprintf(stderr, "\u2026 %" JSON_INTEGER_FORMAT " %sline%s %s cut \u2026\n", n,
                       earlier ? "earlier " : "", n == 1 ? "" : "s", n == 1 ? "was" : "were");
        (void) fflush(stderr);
}

static int run_view_connect(RunView *v);

/* Reads run.logs after v->last_n, page by page, until the daemon has nothing more. Prints the lines, or
 * with collect appends them to it. Returns CTL_EXIT_OK with *ret_first and *ret_last (the first and last
 * pages' results; may be NULL), or the exit status to use (reported). */
static int page_logs(RunView *v, json_t *collect, json_t **ret_first, json_t **ret_last) {
        json_auto_t *first = NULL, *last = NULL;
        bool first_page = true;
        int r;

        for (;;) {
                json_auto_t *result = NULL, *error = NULL;
                json_int_t since = v->last_n, next;
                json_t *lines, *line;
                size_t i;

                r = ctl_call(
                        v->c, "run.logs",
                        json_pack("{s:I, s:I, s:I}", "id", v->id, "since", since, "limit", v->page_size),
                        CTL_CALL_TIMEOUT_USEC, &result, &error);
                if (r == -EMSGSIZE && v->page_size > 1) {
                        /* Long lines made a page (or an event) larger than a message may be: the stream
                         * cannot be resynchronised, so start over on a new connection, with smaller pages. */
                        v->page_size = MAX(v->page_size / 10, 1);
                        r = run_view_connect(v);
                        if (r != CTL_EXIT_OK)
                                return r;
                        continue;
                }
                if (r == -EINTR) {
                        progress_clear(v);
                        ctl_message("interrupted");
                        return CTL_EXIT_FAILURE;
                }
                if (r < 0) {
                        progress_clear(v);
                        return ctl_report_transport_error(v->c, r);
                }
                if (r > 0) {
                        progress_clear(v);
                        return ctl_report_daemon_error(error);
                }
                lines = ctl_result_array(result, "lines", "run.logs");
                if (!lines)
                        return CTL_EXIT_FAILURE;

                /* Lines between the last one printed and the first one the daemon still has were
                 * dropped (the preset's limits), or never seen (after a lagged cut-off). */
                if (json_array_size(lines) > 0) {
                        json_int_t n0 = ctl_int(json_array_get(lines, 0), "n", since + 1);

                        if (n0 > since + 1)
                                print_cut(v, n0 - since - 1, since == 0);
                } else if (first_page && since == 0)
                        print_cut(v, ctl_int(result, "dropped_lines", 0), true);

                if (collect) {
                        json_array_foreach (lines, i, line) {
                                json_int_t n = ctl_int(line, "n", -1);

                                if (n >= 0 && n <= v->last_n)
                                        continue;
                                if (json_array_append(collect, line) < 0)
                                        return ctl_oom();
                                if (n > v->last_n)
                                        v->last_n = n;
                        }
                } else {
                        r = print_run_lines(v, lines);
                        if (r < 0)
                                return ctl_output_failed(r);
                }
                run_view_set_status(v, ctl_str(result, "status", NULL), -1);

                if (first_page)
                        first = json_incref(result);
                json_decref(last);
                last = json_incref(result);
                first_page = false;

                next = ctl_int(result, "next", since);
                if (json_array_size(lines) == 0 || next <= since)
                        break;
                if (next > v->last_n)
                        v->last_n = next; /* lines with such numbers that the page skipped: none expected */
        }
        if (ret_first)
                *ret_first = TAKE_PTR(first);
        if (ret_last)
                *ret_last = TAKE_PTR(last);
        return CTL_EXIT_OK;
}

/* The end of a followed run: with --json the run object, else a summary on stderr. 0 when it succeeded. */
static int finish_run(RunView *v) {
        const char *status = ctl_str(v->run, "status", v->status ?: "?"),
                   *error = ctl_str(v->run, "error", NULL);
        json_t *duration = json_object_get(v->run, "duration_seconds"),
               *code = json_object_get(v->run, "exit_code");
        bool ok = streq(status, "succeeded");
        _cleanup_free_ char *why = NULL;
        char after[48] = "", buf[32];
        int r;

        progress_clear(v);
        if (arg_json) {
                r = ctl_print_json(v->run, false);
                if (r < 0)
                        return ctl_stdout_failed(r);
                return ok ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
        }

        if (json_is_number(duration))
                (void) snprintf(after, sizeof(after), " after %s",
                                ctl_format_seconds(duration, buf, sizeof(buf)));
        if (!ok && error)
                why = sanitize(error);
        else if (!ok && json_is_integer(code) &&
                 asprintf(&why, "exit %" JSON_INTEGER_FORMAT, json_integer_value(code)) < 0)
                why = NULL;
        ctl_message("run %" JSON_INTEGER_FORMAT " %s: %s%s%s%s", v->id, ctl_str(v->run, "preset", "?"),
                    status, after, why ? ": " : "", why ?: "");
        return ok ? CTL_EXIT_OK : CTL_EXIT_FAILURE;
}

typedef enum FollowEnd {
        FOLLOW_FINISHED,
        FOLLOW_LAGGED,    /* the daemon cut us off */
        FOLLOW_OVERSIZED, /* an event was larger than a message may be */
        FOLLOW_INTERRUPTED,
} FollowEnd;

/* Reads events until run.finished for v->id, a lagged cut-off or an interruption. */
static int follow_events(RunView *v, FollowEnd *ret) {
        int r;

        for (;;) {
                json_auto_t *p = NULL;
                json_t *data;
                const char *topic;

                r = ctl_wait_event(v->c, CTL_USEC_INFINITY, &v->shutdown, &p, &topic, &data);
                if (r == -EINTR) {
                        *ret = FOLLOW_INTERRUPTED;
                        return CTL_EXIT_OK;
                }
                if (r == -EMSGSIZE) {
                        *ret = FOLLOW_OVERSIZED;
                        return CTL_EXIT_OK;
                }
                if (r < 0) {
                        progress_clear(v);
                        return ctl_wait_failed(v->c, r, v->shutdown, "run %" JSON_INTEGER_FORMAT, v->id);
                }

                if (streq(topic, CTL_TOPIC_LAGGED)) {
                        *ret = FOLLOW_LAGGED;
                        return CTL_EXIT_OK;
                }
                if (ctl_int(data, "id", -1) != v->id)
                        continue;
                if (streq(topic, TOPIC_LOG)) {
                        run_view_set_status(v, ctl_str(data, "status", NULL), ctl_int(data, "progress", -1));
                        r = print_run_lines(v, json_object_get(data, "lines"));
                        if (r < 0)
                                return ctl_output_failed(r);
                } else if (streq(topic, TOPIC_QUEUED) || streq(topic, TOPIC_STARTED) ||
                           streq(topic, TOPIC_FINISHED)) {
                        run_view_set_run(v, data);
                        if (streq(topic, TOPIC_FINISHED)) {
                                *ret = FOLLOW_FINISHED;
                                return CTL_EXIT_OK;
                        }
                        progress_draw(v);
                }
        }
}

/* (Re)connects v->c and, when following, subscribes it to the run events. */
static int run_view_connect(RunView *v) {
        int r;

        v->c = ctl_free(v->c);
        r = ctl_connect(v->follow, &v->c);
        if (r != CTL_EXIT_OK)
                return r;
        return v->follow ? ctl_subscribe(v->c, json_pack("[ss]", TOPIC_RUNS, CTL_TOPIC_SHUTDOWN))
                         : CTL_EXIT_OK;
}

/* run.get, into v->run. */
static int get_run(RunView *v) {
        json_auto_t *run = NULL;
        int r;

        r = ctl_call_interruptible(v->c, "run.get", json_pack("{s:I}", "id", v->id), CTL_CALL_TIMEOUT_USEC,
                                   &run);
        if (r != CTL_EXIT_OK)
                return r;
        if (ctl_int(run, "id", -1) != v->id || !ctl_str(run, "status", NULL))
                return ctl_malformed("run.get");
        run_view_set_run(v, run);
        return CTL_EXIT_OK;
}

/* Follows run v->id until it finishes, on v->c (subscribed before the run could have printed anything that
 * is not paged): first the lines already logged when page is set, then the events. A lagged cut-off (the
 * daemon closes the connection) or an oversized event is caught up with on a new connection: subscribe
 * again, then page run.logs from the last line printed. Returns the exit status: 0 when the run
 * succeeded. */
static int follow_run(RunView *v, bool page) {
        int r;

        for (;;) {
                FollowEnd end = FOLLOW_INTERRUPTED;

                if (page) {
                        r = page_logs(v, NULL, NULL, NULL);
                        if (r != CTL_EXIT_OK)
                                return r;
                        if (status_is_final(v->status)) {
                                r = get_run(v);
                                if (r != CTL_EXIT_OK)
                                        return r;
                                return finish_run(v);
                        }
                        progress_draw(v);
                }

                r = follow_events(v, &end);
                if (r != CTL_EXIT_OK)
                        return r;
                if (end == FOLLOW_FINISHED)
                        return finish_run(v);
                progress_clear(v);
                if (end == FOLLOW_INTERRUPTED) {
                        ctl_message("stopped following run %" JSON_INTEGER_FORMAT "; it carries on "
                                    "(cancel it with 'djdeskctl cancel %" JSON_INTEGER_FORMAT "')",
                                    v->id, v->id);
                        return CTL_EXIT_FAILURE;
                }
                if (end == FOLLOW_LAGGED)
                        ctl_message("fell behind the daemon's events; reading the rest of run "
                                    "%" JSON_INTEGER_FORMAT "'s log from its store",
                                    v->id);
                else
                        ctl_message(
                                "the daemon sent an event larger than %zu bytes; reading the rest of run "
                                "%" JSON_INTEGER_FORMAT "'s log from its store",
                                RPC_MAX_MESSAGE, v->id);
                r = run_view_connect(v);
                if (r != CTL_EXIT_OK)
                        return r;
                page = true;
        }
}

/* ---- run ---- */

typedef struct RunArgs {
        const char *ws;
        const char *preset;
        json_t *params; /* {name: value} */
        const char *note;
        bool confirm;
        bool follow;
} RunArgs;

static void run_args_done(RunArgs *a) {
        json_decref(a->params);
        a->params = NULL;
}

static int parse_run_args(int argc, char *argv[], RunArgs *a) {
        enum {
                ARG_CONFIRM = _CTL_ARG_MAX,
                ARG_NOTE,
        };
        static const struct option options[] = {
                CTL_COMMON_OPTIONS,
                { "param", required_argument, NULL, 'p' },
                { "confirm", no_argument, NULL, ARG_CONFIRM },
                { "note", required_argument, NULL, ARG_NOTE },
                { "follow", no_argument, NULL, 'f' },
                {},
        };
        bool done = false;
        int c;

        a->params = json_object();
        if (!a->params)
                return -ENOMEM;

        while ((c = ctl_getopt(argc, argv, CTL_COMMON_SHORTOPTS "p:f", options, "run", help_run, &done)) >
               0) {
                switch (c) {
                case 'p': {
                        const char *eq = strchr(optarg, '=');
                        _cleanup_free_ char *name = NULL;
                        json_t *v;

                        if (!eq || eq == optarg)
                                return ctl_usage_error("run", "invalid --param '%s': expected NAME=VALUE",
                                                       optarg);
                        name = strndup(optarg, (size_t) (eq - optarg));
                        if (!name)
                                return -ENOMEM;
                        if (json_object_get(a->params, name))
                                return ctl_usage_error("run", "--param '%s' given twice", name);
                        v = json_string(eq + 1);
                        if (!v || json_object_set_new(a->params, name, v) < 0) /* not UTF-8 */
                                return ctl_usage_error("run", "invalid --param '%s'", optarg);
                        break;
                }
                case ARG_CONFIRM:
                        a->confirm = true;
                        break;
                case ARG_NOTE:
                        a->note = optarg;
                        break;
                case 'f':
                        a->follow = true;
                        break;
                default:
                        return ctl_unexpected_option("run", argv);
                }
        }
        if (c < 0 || done)
                return c;
        if (optind >= argc)
                return ctl_usage_error("run", "missing workspace (see 'djdeskctl ws ls')");
        if (optind + 1 >= argc)
                return ctl_usage_error("run", "missing preset (see 'djdeskctl presets')");
        if (argc - optind > 2)
                return ctl_usage_error("run", "unexpected argument '%s'", argv[optind + 2]);
        a->ws = argv[optind];
        a->preset = argv[optind + 1];
        if (isempty(a->ws))
                return ctl_usage_error("run", "the workspace must not be empty");
        if (isempty(a->preset))
                return ctl_usage_error("run", "the preset must not be empty");
        return 1;
}

/* Says what to do about a refused run.start, after the daemon's message. */
static void run_refused_hint(RunArgs *a, json_t *error) {
        json_int_t code = ctl_int(error, "code", 0);
        const char *value = ctl_str(json_object_get(error, "data"), "value", NULL);

        if (code == -32002)
                ctl_message("add --confirm to run '%s' anyway", a->preset);
        else if (code == -32001 && value && streq(value, a->ws))
                ctl_message("see 'djdeskctl ws ls' for the workspaces");
        else if (code == -32001)
                ctl_message("see 'djdeskctl presets' for the presets");
        else if (code == -32602)
                ctl_message("see 'djdeskctl presets %s' for the parameters of '%s'", a->ws, a->preset);
}

int verb_run(int argc, char *argv[]) {
        _cleanup_(run_args_done) RunArgs a = {};
        _cleanup_(run_view_done) RunView v = {};
        json_auto_t *params = NULL, *run = NULL, *error = NULL;
        int r;

        r = parse_run_args(argc, argv, &a);
        if (r == -ENOMEM)
                return ctl_oom();
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;

        params = json_pack("{s:s, s:s, s:O}", "workspace", a.ws, "preset", a.preset, "params", a.params);
        if (!params) {
                (void) ctl_usage_error("run", "invalid workspace '%s' or preset '%s'", a.ws, a.preset);
                return CTL_EXIT_USAGE;
        }
        if (a.confirm && json_object_set_new(params, "confirm", json_true()) < 0)
                return ctl_oom();
        r = ctl_params_set_note("run", params, a.note);
        if (r != CTL_EXIT_OK)
                return r;

        /* With -f, subscribed before the run exists: none of its events can be missed. */
        if (a.follow)
                (void) setvbuf(stdout, NULL, _IOLBF, 0);
        run_view_init(&v, 0, a.follow);
        r = run_view_connect(&v);
        if (r != CTL_EXIT_OK)
                return r;

        r = ctl_call(v.c, "run.start", TAKE_PTR(params), CTL_CALL_TIMEOUT_USEC, &run, &error);
        if (r == -EINTR) {
                ctl_message("interrupted; the run may have been queued (see 'djdeskctl runs')");
                return CTL_EXIT_FAILURE;
        }
        if (r < 0)
                return ctl_report_transport_error(v.c, r);
        if (r > 0) {
                r = ctl_report_daemon_error(error);
                run_refused_hint(&a, error);
                return r;
        }
        if (ctl_int(run, "id", -1) <= 0)
                return ctl_malformed("run.start");

        if (!a.follow) {
                if (arg_json)
                        return ctl_print_result(run);
                printf("%" JSON_INTEGER_FORMAT "\n", ctl_int(run, "id", 0));
                return ctl_finish_stdout();
        }

        v.id = ctl_int(run, "id", 0);
        run_view_set_run(&v, run);
        progress_draw(&v);
        return follow_run(&v, false);
}

/* ---- runs ---- */

typedef struct RunsArgs {
        const char *ws;
        const char *status;
        uint64_t limit; /* 0: the daemon's default */
} RunsArgs;

static int parse_runs_args(int argc, char *argv[], RunsArgs *a) {
        enum {
                ARG_STATUS = _CTL_ARG_MAX,
        };
        static const struct option options[] = {
                CTL_COMMON_OPTIONS,
                { "status", required_argument, NULL, ARG_STATUS },
                { "limit", required_argument, NULL, 'n' },
                {},
        };
        bool done = false;
        int c;

        while ((c = ctl_getopt(argc, argv, CTL_COMMON_SHORTOPTS "n:", options, "runs", help_runs, &done)) >
               0)
                switch (c) {
                case ARG_STATUS:
                        if (!status_is_valid(optarg))
                                return ctl_usage_error(
                                        "runs",
                                        "invalid --status '%s': expected queued, running, "
                                        "succeeded, failed, cancelled, timed_out or interrupted",
                                        optarg);
                        a->status = optarg;
                        break;
                case 'n':
                        if (parse_uint_range(optarg, 1, RUNS_LIMIT_MAX, &a->limit) < 0)
                                return ctl_usage_error("runs", "invalid --limit '%s': expected 1..%d",
                                                       optarg, RUNS_LIMIT_MAX);
                        break;
                default:
                        return ctl_unexpected_option("runs", argv);
                }
        if (c < 0 || done)
                return c;
        if (optind >= argc)
                return 1;
        return ctl_parse_ws_operand(argc, argv, "runs", &a->ws);
}

int verb_runs(int argc, char *argv[]) {
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;
        json_auto_t *params = NULL, *result = NULL;
        RunsArgs a = {};
        json_t *list, *run;
        size_t i;
        int r;

        r = parse_runs_args(argc, argv, &a);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        if (a.ws) {
                r = ctl_workspace_params("runs", a.ws, &params);
                if (r != CTL_EXIT_OK)
                        return r;
        } else {
                params = json_object();
                if (!params)
                        return ctl_oom();
        }
        if ((a.status && json_object_set_new(params, "status", json_string(a.status)) < 0) ||
            (a.limit > 0 && json_object_set_new(params, "limit", json_integer((json_int_t) a.limit)) < 0))
                return ctl_oom();

        r = ctl_simple_call("run.list", TAKE_PTR(params), &result);
        if (r != CTL_EXIT_OK)
                return r;
        list = ctl_result_array(result, "runs", "run.list");
        if (!list)
                return CTL_EXIT_FAILURE;
        if (arg_json)
                return ctl_print_result(result);
        if (json_array_size(list) == 0) {
                printf("No runs.\n");
                return ctl_finish_stdout();
        }

        t = ctl_table_new(7, "ID", "WORKSPACE", "PRESET", "STATUS", "EXIT", "DURATION", "QUEUED AT");
        if (!t)
                return ctl_oom();
        json_array_foreach (list, i, run) {
                char id[32], code[32] = "-", duration[32], when[32];
                json_t *exit_code = json_object_get(run, "exit_code");

                (void) snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT, ctl_int(run, "id", 0));
                if (json_is_integer(exit_code))
                        (void) snprintf(code, sizeof(code), "%" JSON_INTEGER_FORMAT,
                                        json_integer_value(exit_code));
                r = ctl_table_add(t, id, ctl_str(run, "workspace", NULL), ctl_str(run, "preset", NULL),
                                  ctl_str(run, "status", NULL), code,
                                  ctl_format_seconds(json_object_get(run, "duration_seconds"), duration,
                                                     sizeof(duration)),
                                  ctl_format_when(ctl_str(run, "queued_at", NULL), when, sizeof(when)));
                if (r < 0)
                        return ctl_oom();
        }
        ctl_table_print(t);
        return ctl_finish_stdout();
}

/* ---- run-log ---- */

int verb_run_log(int argc, char *argv[]) {
        static const struct option options[] = {
                CTL_COMMON_OPTIONS,
                { "follow", no_argument, NULL, 'f' },
                {},
        };
        _cleanup_(run_view_done) RunView v = {};
        json_auto_t *collect = NULL, *first = NULL, *last = NULL;
        bool done = false, follow = false;
        json_int_t id = 0;
        int r;

        while ((r = ctl_getopt(argc, argv, CTL_COMMON_SHORTOPTS "f", options, "run-log", help_run_log,
                               &done)) > 0) {
                if (r != 'f') {
                        (void) ctl_unexpected_option("run-log", argv);
                        return CTL_EXIT_USAGE;
                }
                follow = true;
        }
        if (r < 0)
                return CTL_EXIT_USAGE;
        if (done)
                return CTL_EXIT_OK;
        r = parse_id_operand(argc, argv, "run-log", &id);
        if (r <= 0)
                return CTL_EXIT_USAGE;

        /* With -f, subscribe first, then page: a line logged in between arrives as an event too and is
         * skipped by its number. Nothing is lost, nothing printed twice. */
        if (follow)
                (void) setvbuf(stdout, NULL, _IOLBF, 0);
        run_view_init(&v, id, follow);
        r = run_view_connect(&v);
        if (r != CTL_EXIT_OK)
                return r;
        if (follow) {
                r = get_run(&v); /* an unknown id fails here, and the progress line has a name */
                if (r != CTL_EXIT_OK)
                        return r;
                return follow_run(&v, true);
        }

        if (arg_json) {
                collect = json_array();
                if (!collect)
                        return ctl_oom();
        }
        r = page_logs(&v, collect, &first, &last);
        if (r != CTL_EXIT_OK)
                return r;
        if (arg_json) {
                /* One result for all the pages: the first page's facts, the last page's status and next. */
                if (json_object_set(first, "lines", collect) < 0 ||
                    json_object_set(first, "next", json_object_get(last, "next") ?: json_null()) < 0 ||
                    json_object_set(first, "status", json_object_get(last, "status") ?: json_null()) < 0)
                        return ctl_oom();
                return ctl_print_result(first);
        }
        return CTL_EXIT_OK;
}

/* ---- cancel ---- */

int verb_cancel(int argc, char *argv[]) {
        json_auto_t *run = NULL;
        json_int_t id = 0;
        const char *status;
        int r;

        r = ctl_parse_common(argc, argv, CTL_COMMON_SHORTOPTS, "cancel", help_cancel);
        if (r > 0)
                r = parse_id_operand(argc, argv, "cancel", &id);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;

        r = ctl_simple_call("run.cancel", json_pack("{s:I}", "id", id), &run);
        if (r != CTL_EXIT_OK)
                return r;
        if (arg_json)
                return ctl_print_result(run);
        status = ctl_str(run, "status", "?");
        if (streq(status, "running"))
                printf("Run %" JSON_INTEGER_FORMAT " (%s) is being stopped; it ends as cancelled.\n", id,
                       ctl_str(run, "preset", "?"));
        else
                printf("Run %" JSON_INTEGER_FORMAT " (%s): %s.\n", id, ctl_str(run, "preset", "?"), status);
        return ctl_finish_stdout();
}

/* ---- watch ---- */

int ctl_run_event_summary(const char *topic, json_t *data, char **ret) {
        json_int_t id = ctl_int(data, "id", -1);
        const char *ws = ctl_str(data, "workspace", "?"), *preset = ctl_str(data, "preset", "?");
        _cleanup_free_ char *text = NULL, *tail = NULL;
        int r;

        if (streq(topic, TOPIC_QUEUED)) {
                const char *note = ctl_str(data, "note", NULL);

                if (note) {
                        tail = sanitize(note);
                        if (!tail)
                                return -ENOMEM;
                }
                r = asprintf(&text, "#%" JSON_INTEGER_FORMAT " %s/%s queued by %s%s%s", id, ws, preset,
                             ctl_str(data, "requested_by", "?"), tail ? ": " : "", tail ?: "");
        } else if (streq(topic, TOPIC_STARTED))
                r = asprintf(&text, "#%" JSON_INTEGER_FORMAT " %s/%s started", id, ws, preset);
        else if (streq(topic, TOPIC_LOG)) {
                size_t n = json_array_size(json_object_get(data, "lines"));

                tail = sanitize(ctl_str(data, "log_line", ""));
                if (!tail)
                        return -ENOMEM;
                r = asprintf(&text, "#%" JSON_INTEGER_FORMAT " %s: %zu line%s, last: %s", id, ws, n,
                             n == 1 ? "" : "s", tail);
        } else if (streq(topic, TOPIC_FINISHED)) {
                json_t *code = json_object_get(data, "exit_code");
                const char *error = ctl_str(data, "error", NULL);
                char duration[32], codebuf[32] = "";

                if (json_is_integer(code))
                        (void) snprintf(codebuf, sizeof(codebuf), "exit %" JSON_INTEGER_FORMAT ", ",
                                        json_integer_value(code));
                if (error) {
                        tail = sanitize(error);
                        if (!tail)
                                return -ENOMEM;
                }
                r = asprintf(&text, "#%" JSON_INTEGER_FORMAT " %s/%s %s (%s%s)%s%s", id, ws, preset,
                             ctl_str(data, "status", "?"), codebuf,
                             ctl_format_seconds(json_object_get(data, "duration_seconds"), duration,
                                                sizeof(duration)),
                             tail ? ": " : "", tail ?: "");
        } else {
                *ret = NULL;
                return 0; /* not one of ours: shown as JSON */
        }
        if (r < 0)
                return -ENOMEM;
        *ret = TAKE_PTR(text);
        return 1;
}
