/* SPDX-License-Identifier: MIT */
/* djdeskctl server start|stop|restart|status, url, open, logs: a workspace's Django server (server.*). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dj-util.h"
#include "strv.h"

#define TOPIC_LOG     "server.log"
#define TOPIC_REMOVED "workspace.removed"

#define LOGS_DEFAULT_LINES 50
#define LOGS_MAX_LINES     1000000
#define URL_MAX            2048

void help_server(void) {
        printf("Usage: djdeskctl server start|stop|restart|status WS... | --all\n"
               "\n"
               "Start, stop, restart or show the Django servers of one or more workspaces.\n"
               "Several workspaces are handled together: every request is sent at once and\n"
               "each line is printed as its server gets there:\n"
               "  atlas: ready http://127.0.0.1:38211/\n"
               "  polls: failed: <reason>\n"
               "start and restart return once each server is ready (or failed), stop once\n"
               "each one has stopped. 'status' without a workspace shows them all.\n"
               "\n"
               "Options:\n"
               "      --all          Every registered workspace\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the server JSON (several workspaces: an object\n"
               "                     mapping each slug to its server, or to {\"error\": ...})\n"
               "\n"
               "Exit status: 0 when every server did what was asked (for start and restart:\n"
               "it is ready), 1 when any did not.\n");
}

void help_url(void) {
        printf("Usage: djdeskctl url WS\n"
               "\n"
               "Print the URL a workspace's server is serving on, e.g.\n"
               "http://127.0.0.1:38211/. Exits 1 with \"WS: not running (STATE)\" when it\n"
               "is not serving.\n"
               "\n"
               "Options:\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the server.status result as JSON\n");
}

void help_open(void) {
        printf("Usage: djdeskctl open WS\n"
               "\n"
               "Open a workspace's running server in the browser with xdg-open (run directly,\n"
               "without a shell). Only http:// URLs are ever opened. $DJDESK_OPENER names\n"
               "another program to run instead of xdg-open; it gets the URL as its only\n"
               "argument.\n"
               "\n"
               "Options:\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n");
}

void help_logs(void) {
        printf("Usage: djdeskctl logs WS [-n N] [-f]\n"
               "\n"
               "Print the last lines of a workspace's server log (its stdout and stderr, and\n"
               "djdesk's own notes), one per line:\n"
               "  HH:MM:SS L TEXT\n"
               "in local time; L is ' ' for information, 'W' for a warning and 'E' for an\n"
               "error (tracebacks, 5xx responses). With -f, keep printing new lines as they\n"
               "come, until interrupted, the workspace is removed or the daemon stops.\n"
               "\n"
               "Options:\n"
               "  -n, --lines N      How many past lines to print (default %d; 0: none)\n"
               "  -f, --follow       Print new lines as they arrive\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the server.logs result as JSON; with -f, one log\n"
               "                     line object per line\n",
               LOGS_DEFAULT_LINES);
}

/* ---- shared ---- */

bool ctl_server_serving(json_t *server) {
        const char *state = ctl_str(server, "state", NULL), *url = ctl_str(server, "url", NULL);

        return state && url && (streq(state, "ready") || streq(state, "reloading"));
}

char *ctl_server_line(const char *slug, json_t *server, json_t *error) {
        const char *state = ctl_str(server, "state", NULL),
                   *last_error = ctl_str(server, "last_error", NULL);
        char *line = NULL;
        int r;

        if (error || !state)
                r = asprintf(&line, "%s: failed: %s", slug,
                             error ? ctl_str(error, "message", "the daemon reported an error")
                                   : "the daemon sent no server state");
        else if (ctl_server_serving(server))
                r = asprintf(&line, "%s: %s %s%s%s%s", slug, state, ctl_str(server, "url", "-"),
                             last_error ? " (last error: " : "", last_error ?: "", last_error ? ")" : "");
        else if (streq(state, "failed") || streq(state, "crashed"))
                r = asprintf(&line, "%s: %s: %s", slug, state, last_error ?: "no reason given");
        else
                r = asprintf(&line, "%s: %s", slug, state);
        return r < 0 ? NULL : line;
}

bool ctl_url_is_openable(const char *url) {
        size_t n;

        if (!url || !strneq(url, "http://", 7))
                return false;
        n = strlen(url);
        if (n <= 7 || n > URL_MAX || url[7] == '/')
                return false;
        for (const char *p = url; *p; p++)
                if ((unsigned char) *p <= ' ' || *p == 0x7f)
                        return false; /* whitespace and control characters: never for an opener */
        return true;
}

/* ---- server start|stop|restart|status ---- */

typedef struct Target {
        char *slug;
        json_int_t id;
        json_t *result;
        json_t *error;
        bool done;
} Target;

typedef struct Targets {
        Target *items;
        size_t n;
} Targets;

static void targets_done(Targets *t) {
        for (size_t i = 0; i < t->n; i++) {
                free(t->items[i].slug);
                json_decref(t->items[i].result);
                json_decref(t->items[i].error);
        }
        free(t->items);
        t->items = NULL;
        t->n = 0;
}

static int targets_add(Targets *t, const char *slug) {
        Target *items;

        for (size_t i = 0; i < t->n; i++)
                if (streq(t->items[i].slug, slug))
                        return 0; /* "start atlas atlas": once is enough */
        items = reallocarray(t->items, t->n + 1, sizeof(Target));
        if (!items)
                return -ENOMEM;
        t->items = items;
        t->items[t->n] = (Target){ .slug = strdup(slug) };
        if (!t->items[t->n].slug)
                return -ENOMEM;
        t->n++;
        return 0;
}

typedef struct ServerArgs {
        const char *action; /* start, stop, restart, status */
        char **slugs;
        bool all;
} ServerArgs;

static int parse_server_args(int argc, char *argv[], const char *verb, ServerArgs *a) {
        int r;

        r = ctl_parse_flag(argc, argv, verb, help_server, "all", &a->all);
        if (r <= 0)
                return r;
        for (; optind < argc; optind++) {
                if (isempty(argv[optind]))
                        return ctl_usage_error(verb, "a workspace must not be empty");
                if (strv_extend(&a->slugs, argv[optind]) < 0)
                        return -ENOMEM;
        }
        if (a->all && a->slugs)
                return ctl_usage_error(verb, "give workspaces or --all, not both");
        if (!a->all && !a->slugs) {
                if (!streq(a->action, "status"))
                        return ctl_usage_error(verb, "missing workspace (give one or more, or --all)");
                a->all = true;
        }
        return 1;
}

static int list_slugs(Ctl *c, Targets *t, json_t **ret_list) {
        json_auto_t *result = NULL;
        json_t *list, *ws;
        size_t i;
        int r;

        r = ctl_workspace_list(c, &result, &list);
        if (r != CTL_EXIT_OK)
                return r;
        json_array_foreach (list, i, ws) {
                const char *slug = ctl_str(ws, "slug", NULL);

                if (slug && targets_add(t, slug) < 0)
                        return ctl_oom();
        }
        if (ret_list)
                *ret_list = json_incref(list);
        return CTL_EXIT_OK;
}

static bool target_ok(const char *action, Target *t) {
        if (t->error || !json_is_object(t->result))
                return false;
        if (streq(action, "start") || streq(action, "restart"))
                return ctl_server_serving(t->result);
        if (streq(action, "stop"))
                return streq(ctl_str(t->result, "state", ""), "stopped");
        return true; /* status: showing it is the job */
}

static int print_target(Target *t) {
        _cleanup_free_ char *line = NULL;

        if (arg_json)
                return 0; /* all at the end */
        line = ctl_server_line(t->slug, t->result, t->error);
        if (!line)
                return -ENOMEM;
        printf("%s\n", line);
        return ctl_flush_stdout();
}

/* --json: one workspace named alone gets its raw result (an error goes to stderr as usual); several, or
 * --all, get an object mapping each slug to its result or to {"error": ...}. */
static int print_targets_json(Targets *t, bool single) {
        json_auto_t *o = NULL;

        if (single) {
                if (t->items[0].error)
                        return ctl_report_daemon_error(t->items[0].error);
                return ctl_print_result(t->items[0].result);
        }
        o = json_object();
        if (!o)
                return ctl_oom();
        for (size_t i = 0; i < t->n; i++) {
                Target *x = &t->items[i];
                json_t *v = x->error ? json_pack("{s:O}", "error", x->error) : json_incref(x->result);

                if (!v || json_object_set_new(o, x->slug, v) < 0)
                        return ctl_oom();
        }
        return ctl_print_result(o);
}

static int server_action(int argc, char *argv[], const char *action) {
        _cleanup_(targets_done) Targets t = {};
        _cleanup_strv_free_ char **slugs = NULL;
        _cleanup_(ctl_freep) Ctl *c = NULL;
        _cleanup_free_ char *verb = NULL;
        json_auto_t *list = NULL;
        ServerArgs a = { .action = action };
        bool quick = streq(action, "status"), failed = false;
        char method[32];
        size_t pending;
        int r;

        if (asprintf(&verb, "server %s", action) < 0)
                return ctl_oom();
        r = parse_server_args(argc, argv, verb, &a);
        slugs = a.slugs;
        if (r == -ENOMEM)
                return ctl_oom();
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;

        r = ctl_connect(!quick, &c);
        if (r != CTL_EXIT_OK)
                return r;

        if (a.all) {
                r = list_slugs(c, &t, quick ? &list : NULL);
                if (r != CTL_EXIT_OK)
                        return r;
                if (t.n == 0) {
                        if (arg_json)
                                return print_targets_json(&t, false);
                        ctl_message("no workspaces; add one with 'djdeskctl ws add PATH'");
                        return CTL_EXIT_OK;
                }
        } else
                for (char **s = slugs; *s; s++)
                        if (targets_add(&t, *s) < 0)
                                return ctl_oom();

        if (list) {
                /* status --all: workspace.list already holds every server's status. */
                json_t *ws;
                size_t i;

                json_array_foreach (list, i, ws) {
                        Target *x = NULL;

                        for (size_t k = 0; k < t.n && !x; k++)
                                if (!t.items[k].done && streq(t.items[k].slug, ctl_str(ws, "slug", "")))
                                        x = &t.items[k];
                        if (!x)
                                continue;
                        x->result = json_incref(json_object_get(ws, "server"));
                        x->done = true;
                        r = print_target(x);
                        if (r < 0)
                                return ctl_output_failed(r);
                }
                return arg_json ? print_targets_json(&t, false) : CTL_EXIT_OK;
        }

        /* Pipelined: every request goes out at once, so the servers start (or stop) side by side. */
        (void) snprintf(method, sizeof(method), "server.%s", action);
        for (size_t i = 0; i < t.n; i++) {
                r = ctl_send(c, method, json_pack("{s:s}", "workspace", t.items[i].slug), CTL_USEC_INFINITY,
                             &t.items[i].id);
                if (r < 0)
                        return ctl_report_transport_error(c, r);
        }

        for (pending = t.n; pending > 0;) {
                json_auto_t *result = NULL, *error = NULL;
                json_int_t id;
                Target *x = NULL;

                r = ctl_read_response(
                        c, quick ? now_usec(CLOCK_MONOTONIC) + CTL_CALL_TIMEOUT_USEC : CTL_USEC_INFINITY,
                        &id, &result, &error);
                if (r == -EINTR) {
                        ctl_message("interrupted; the daemon carries on with what was asked");
                        return CTL_EXIT_FAILURE;
                }
                if (r < 0)
                        return ctl_report_transport_error(c, r);
                if (id == 0 && error) /* about the connection: nothing else will come */
                        return ctl_report_daemon_error(error);
                for (size_t i = 0; i < t.n; i++)
                        if (t.items[i].id == id && !t.items[i].done)
                                x = &t.items[i];
                if (!x)
                        continue;
                x->done = true;
                x->result = TAKE_PTR(result);
                x->error = TAKE_PTR(error);
                pending--;
                if (!target_ok(action, x))
                        failed = true;
                r = print_target(x);
                if (r < 0)
                        return ctl_output_failed(r);
        }

        if (arg_json) {
                r = print_targets_json(&t, !a.all && t.n == 1);
                if (r != CTL_EXIT_OK)
                        return r;
        }
        return failed ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
}

static int server_start(int argc, char *argv[]) {
        return server_action(argc, argv, "start");
}
static int server_stop(int argc, char *argv[]) {
        return server_action(argc, argv, "stop");
}
static int server_restart(int argc, char *argv[]) {
        return server_action(argc, argv, "restart");
}
static int server_status(int argc, char *argv[]) {
        return server_action(argc, argv, "status");
}

int verb_server(int argc, char *argv[]) {
        static const CtlSubVerb subs[] = {
                { "start", NULL, server_start },
                { "stop", NULL, server_stop },
                { "restart", NULL, server_restart },
                { "status", NULL, server_status },
        };

        return ctl_dispatch(argc, argv, "server", help_server, subs, ELEMENTSOF(subs), NULL);
}

/* ---- url, open ---- */

static int not_serving(const char *ws, json_t *server) {
        const char *state = ctl_str(server, "state", "unknown");

        ctl_message("%s: not running (%s)", ws, state);
        if (streq(state, "stopped"))
                ctl_message("start it with 'djdeskctl server start %s'", ws);
        return CTL_EXIT_FAILURE;
}

int verb_url(int argc, char *argv[]) {
        json_auto_t *server = NULL;
        const char *ws = NULL;
        int r;

        r = ctl_workspace_command(argc, argv, "url", help_url, "server.status", &ws, &server);
        if (r != CTL_EXIT_OK || !server)
                return r;
        if (arg_json) {
                r = ctl_print_json(server, true);
                if (r < 0)
                        return ctl_stdout_failed(r);
        }
        if (!ctl_server_serving(server))
                return not_serving(ws, server);
        if (!arg_json)
                printf("%s\n", ctl_str(server, "url", "-"));
        return ctl_finish_stdout();
}

int verb_open(int argc, char *argv[]) {
        json_auto_t *server = NULL;
        const char *ws = NULL, *url;
        int r;

        r = ctl_workspace_command(argc, argv, "open", help_open, "server.status", &ws, &server);
        if (r != CTL_EXIT_OK || !server)
                return r;
        if (!ctl_server_serving(server))
                return not_serving(ws, server);

        url = ctl_str(server, "url", NULL);
        if (!ctl_url_is_openable(url)) {
                ctl_message("%s: refusing to open '%s': only http:// URLs are opened", ws, url ?: "");
                return CTL_EXIT_FAILURE;
        }

        return ctl_open_with_opener(url, "the server");
}

/* ---- logs ---- */

typedef struct LogsArgs {
        const char *ws;
        uint64_t lines;
        bool follow;
} LogsArgs;

static int parse_logs_args(int argc, char *argv[], LogsArgs *a) {
        static const struct option options[] = {
                CTL_COMMON_OPTIONS,
                { "lines", required_argument, NULL, 'n' },
                { "follow", no_argument, NULL, 'f' },
                {},
        };
        bool done = false;
        int c;

        a->lines = LOGS_DEFAULT_LINES;
        while ((c = ctl_getopt(argc, argv, CTL_COMMON_SHORTOPTS "n:f", options, "logs", help_logs, &done)) >
               0)
                switch (c) {
                case 'n':
                        if (parse_uint_range(optarg, 0, LOGS_MAX_LINES, &a->lines) < 0)
                                return ctl_usage_error("logs", "invalid -n '%s': expected 0..%d", optarg,
                                                       LOGS_MAX_LINES);
                        break;
                case 'f':
                        a->follow = true;
                        break;
                default:
                        return ctl_unexpected_option("logs", argv);
                }
        if (c < 0 || done)
                return c;
        return ctl_parse_ws_operand(argc, argv, "logs", &a->ws);
}

/* One log line: "HH:MM:SS L TEXT". On a terminal, control characters in the text become '?' (a
 * project's output must not drive the terminal) and warnings and errors are coloured. */
static int print_log_line(json_t *line, bool tty) {
        const char *level = ctl_str(line, "level", "info"), *text = ctl_str(line, "text", "");
        char clock[32], mark = ' ';
        const char *on = "", *off = "";

        if (arg_json)
                return ctl_print_json(line, false);

        if (streq(level, "warning"))
                mark = 'W', on = "\033[33m";
        else if (streq(level, "error"))
                mark = 'E', on = "\033[31m";
        if (!tty || mark == ' ')
                on = "";
        else
                off = "\033[0m";

        printf("%s %c %s", ctl_clock(ctl_str(line, "time", NULL), false, clock, sizeof(clock)), mark, on);
        if (tty) {
                for (const char *p = text; *p; p++)
                        (void) putchar((unsigned char) *p < ' ' && *p != '\t' ? '?' : *p == 0x7f ? '?' : *p);
        } else
                (void) fputs(text, stdout);
        printf("%s\n", off);
        return 0;
}

/* Prints the lines with n > *last_n, in order; updates *last_n. */
static int print_log_lines(json_t *lines, json_int_t *last_n, bool tty, bool print) {
        json_t *line;
        size_t i;
        int r;

        json_array_foreach (lines, i, line) {
                json_int_t n = ctl_int(line, "n", -1);

                if (n >= 0 && n <= *last_n)
                        continue; /* already printed */
                if (print) {
                        r = print_log_line(line, tty);
                        if (r < 0)
                                return r;
                }
                if (n > *last_n)
                        *last_n = n;
        }
        return ctl_flush_stdout();
}

static int logs_follow(Ctl *c, const char *ws, json_int_t last_n, bool tty) {
        int r;

        for (;;) {
                json_auto_t *p = NULL;
                json_t *data;
                const char *topic;

                r = ctl_next_event(c, &p);
                if (r != CTL_EXIT_OK || !p)
                        return r; /* interrupted: CTL_EXIT_OK */
                topic = ctl_str(p, "topic", "");
                data = json_object_get(p, "data");

                if (streq(topic, TOPIC_LOG) && streq(ctl_str(data, "workspace", ""), ws)) {
                        r = print_log_lines(json_object_get(data, "lines"), &last_n, tty, true);
                        if (r < 0)
                                return ctl_stdout_failed(r);
                } else if (streq(topic, TOPIC_REMOVED) && streq(ctl_str(data, "slug", ""), ws)) {
                        ctl_message("%s: the workspace was removed", ws);
                        return CTL_EXIT_OK;
                } else if (streq(topic, CTL_TOPIC_SHUTDOWN)) {
                        ctl_message("the daemon is shutting down");
                        return CTL_EXIT_OK;
                } else if (streq(topic, CTL_TOPIC_LAGGED)) {
                        ctl_message(
                                "the daemon dropped this subscription: log lines were not read fast enough");
                        return CTL_EXIT_FAILURE;
                }
        }
}

int verb_logs(int argc, char *argv[]) {
        _cleanup_(ctl_freep) Ctl *c = NULL;
        json_auto_t *params = NULL, *result = NULL, *sub = NULL;
        LogsArgs a = {};
        json_int_t last_n = -1;
        json_t *lines;
        bool tty;
        int r;

        r = parse_logs_args(argc, argv, &a);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;

        r = ctl_connect(a.follow, &c);
        if (r != CTL_EXIT_OK)
                return r;

        if (a.follow) {
                /* Subscribe first, then read the past lines: a line logged in between arrives as an
                 * event too, and is skipped by its number. Nothing is lost, nothing printed twice. */
                (void) setvbuf(stdout, NULL, _IOLBF, 0);
                ctl_keep_notifications(c, true);
                r = ctl_call_checked(
                        c, "subscribe",
                        json_pack("{s:[sss]}", "topics", TOPIC_LOG, TOPIC_REMOVED, CTL_TOPIC_SHUTDOWN),
                        CTL_CALL_TIMEOUT_USEC, true, &sub);
                if (r != CTL_EXIT_OK || !sub)
                        return r;
        }

        /* With -n 0 the newest line is still asked for: its number is where -f starts. */
        r = ctl_workspace_params("logs", a.ws, &params);
        if (r != CTL_EXIT_OK)
                return r;
        if (json_object_set_new(params, "limit", json_integer((json_int_t) MAX(a.lines, (uint64_t) 1))) < 0)
                return ctl_oom();
        r = ctl_call_checked(c, "server.logs", TAKE_PTR(params), CTL_CALL_TIMEOUT_USEC, true, &result);
        if (r != CTL_EXIT_OK || !result)
                return r;
        lines = ctl_result_array(result, "lines", "server.logs");
        if (!lines)
                return CTL_EXIT_FAILURE;

        tty = ctl_colors();
        if (arg_json && !a.follow) {
                if (a.lines == 0 && json_array_clear(lines) < 0)
                        return ctl_oom();
                return ctl_print_result(result);
        }
        r = print_log_lines(lines, &last_n, tty, a.lines > 0);
        if (r < 0)
                return ctl_stdout_failed(r);
        if (!a.follow)
                return CTL_EXIT_OK;
        return logs_follow(c, a.ws, last_n, tty);
}
