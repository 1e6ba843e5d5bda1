/* SPDX-License-Identifier: MIT */
/* djdeskctl status, scan, schema: what the daemon knows of a workspace's project (workspace.status, the
 * scan.* methods and events).
 *
 * Text meant for a person (the dashboard, the schema listing) never carries control characters from the
 * daemon's strings (a log line, an error, a name): they are shown as '?', so that nothing a project prints
 * can drive the terminal. Colour only on a terminal, never with $NO_COLOR set or TERM=dumb (ctl_colors()). */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dj-util.h"

#define TOPIC_SCANS         "scan.*"
#define TOPIC_SCAN_FINISHED "scan.finished"
#define TOPIC_REMOVED       "workspace.removed"

#define ANSI_BOLD   "\033[1m"
#define ANSI_DIM    "\033[2m"
#define ANSI_RED    "\033[31m"
#define ANSI_GREEN  "\033[32m"
#define ANSI_YELLOW "\033[33m"
#define ANSI_BLUE   "\033[34m"
#define ANSI_RESET  "\033[0m"

#define DASHBOARD_INDENT "  "

/* Whether the text output is coloured (set by the commands that colour). */
static bool use_color = false;

/* ---- help ---- */

void help_status(void) {
        printf("Usage: djdeskctl status [WS] [--json]\n"
               "\n"
               "Show a workspace's status, as the daemon keeps it up to date: its server\n"
               "(state, URL, pid, restarts, last error), the insights (pending migrations,\n"
               "models, apps, check warnings and errors, the last run, the server's uptime),\n"
               "its apps with their pending migrations, the scans, the recent runs and the\n"
               "last lines of the server's and the runs' logs.\n"
               "\n"
               "Without WS: the status of the only workspace, or with several one line per\n"
               "workspace (server state, pending migrations, check warnings and errors).\n"
               "Colours on a terminal, unless $NO_COLOR is set.\n"
               "\n"
               "Options:\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the workspace.status document as JSON (without WS\n"
               "                     and with several workspaces: an array of them)\n");
}

void help_scan(void) {
        printf("Usage: djdeskctl scan WS [KIND] [--wait]\n"
               "\n"
               "Ask the daemon to inspect workspace WS's project again: KIND is schema (apps,\n"
               "models, fields, relations), migrations (applied and pending), checks (the\n"
               "system checks), or all (the default; one probe run serves every kind).\n"
               "The daemon answers at once; one line is printed per scan requested:\n"
               "  scan ID KIND STATUS\n"
               "\n"
               "With --wait, wait until every scan requested has finished and print its\n"
               "outcome: 'scan ID KIND completed: SUMMARY', or the error of one that failed.\n"
               "\n"
               "Options:\n"
               "  -w, --wait         Wait for the scans to finish; the exit status is then 0\n"
               "                     when all of them completed, 1 when one failed\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the scan.start result as JSON; with --wait, each\n"
               "                     finished scan record as one JSON line instead\n");
}

void help_schema(void) {
        printf("Usage: djdeskctl schema WS [--dot]\n"
               "\n"
               "List the models of workspace WS's project per app, as the last completed\n"
               "schema scan found them: each model's fields (name: type [flags]) and its\n"
               "relations (Model.field -> app.Model (kind): fk, one_to_one, many_to_many).\n"
               "Fails when no schema scan has completed yet (run 'djdeskctl scan WS').\n"
               "\n"
               "With --dot, print the schema as a Graphviz graph instead: a node per model,\n"
               "a cluster per app, an edge per relation labelled with its field, e.g.\n"
               "  djdeskctl schema atlas --dot | dot -Tpng > atlas.png\n"
               "\n"
               "Options:\n"
               "      --dot          Print Graphviz DOT\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the scan.result result as JSON\n");
}

/* ---- text helpers ---- */

/* Prints s cleaned, in color (when colour is on and color is not NULL). Returns 0 or -ENOMEM. */
static int print_colored(const char *color, const char *s) {
        _cleanup_free_ char *clean = ctl_clean_text(s);

        if (!clean)
                return -ENOMEM;
        if (use_color && color)
                printf("%s%s%s", color, clean, ANSI_RESET);
        else
                fputs(clean, stdout);
        return 0;
}

static void print_heading(const char *title) {
        if (use_color)
                printf("\n%s%s%s\n", ANSI_BOLD, title, ANSI_RESET);
        else
                printf("\n%s\n", title);
}

static const char *severity_color(const char *severity) {
        if (!severity)
                return NULL;
        if (streq(severity, "ok"))
                return ANSI_GREEN;
        if (streq(severity, "warning"))
                return ANSI_YELLOW;
        if (streq(severity, "error"))
                return ANSI_RED;
        if (streq(severity, "info"))
                return ANSI_BLUE;
        return NULL;
}

static const char *state_color(const char *state) {
        if (!state)
                return NULL;
        if (streq(state, "ready") || streq(state, "succeeded") || streq(state, "completed") ||
            streq(state, "ok"))
                return ANSI_GREEN;
        if (streq(state, "failed") || streq(state, "crashed") || streq(state, "timed_out") ||
            streq(state, "error") || streq(state, "conflict"))
                return ANSI_RED;
        if (streq(state, "starting") || streq(state, "migrating") || streq(state, "reloading") ||
            streq(state, "stopping") || streq(state, "cancelled") || streq(state, "interrupted") ||
            streq(state, "pending") || streq(state, "warning") || streq(state, "running") ||
            streq(state, "queued"))
                return ANSI_YELLOW;
        return NULL;
}

static const char *level_color(const char *level) {
        if (level && streq(level, "error"))
                return ANSI_RED;
        if (level && streq(level, "warning"))
                return ANSI_YELLOW;
        return NULL;
}

static char *format_int(json_t *v) {
        char *s = NULL;

        if (!json_is_integer(v))
                return strdup("-");
        return asprintf(&s, "%" JSON_INTEGER_FORMAT, json_integer_value(v)) < 0 ? NULL : s;
}

/* ---- a table whose cells may be coloured ---- */

typedef struct Cell {
        char *text; /* cleaned */
        const char *color;
} Cell;

/* The first failure is kept in error: the additions after it do nothing, and grid_print() returns it. */
typedef struct Grid {
        size_t n_columns, n_cells, n_alloc;
        Cell *cells; /* row after row, the header first */
        int error;
} Grid;

static void grid_done(Grid *g) {
        for (size_t i = 0; i < g->n_cells; i++)
                free(g->cells[i].text);
        free(g->cells);
        *g = (Grid){};
}

static void grid_add(Grid *g, const char *text, const char *color) {
        char *t;

        if (g->error < 0)
                return;
        if (g->n_cells >= g->n_alloc) {
                size_t n = MAX(g->n_alloc * 2, (size_t) 16);
                Cell *c = reallocarray(g->cells, n, sizeof(Cell));

                if (!c) {
                        g->error = -ENOMEM;
                        return;
                }
                g->cells = c;
                g->n_alloc = n;
        }
        t = ctl_clean_text(text);
        if (!t) {
                g->error = -ENOMEM;
                return;
        }
        g->cells[g->n_cells++] = (Cell){ .text = t, .color = color };
}

/* An integer cell (format_int()). */
static void grid_add_int(Grid *g, json_t *v, const char *color) {
        _cleanup_free_ char *text = NULL;

        if (g->error < 0)
                return;
        text = format_int(v);
        if (!text)
                g->error = -ENOMEM;
        else
                grid_add(g, text, color);
}

/* Whether the cells of the row after cell i are all empty. */
static bool grid_rest_empty(const Grid *g, size_t i) {
        for (size_t k = i + 1; k % g->n_columns != 0 && k < g->n_cells; k++)
                if (!isempty(g->cells[k].text))
                        return false;
        return true;
}

/* Prints the table, each row indented; the header (the first row) dim. No trailing blanks: a row ends after
 * its last non-empty cell. Returns 0, or the first failure of the additions (then prints nothing). */
static int grid_print(Grid *g, const char *indent) {
        size_t widths[16] = {};

        if (g->error < 0)
                return g->error;
        assert(g->n_columns <= ELEMENTSOF(widths));
        for (size_t i = 0; i < g->n_cells; i++)
                widths[i % g->n_columns] = MAX(widths[i % g->n_columns], ctl_text_width(g->cells[i].text));
        for (size_t i = 0; i < g->n_cells; i++) {
                size_t col = i % g->n_columns;
                const Cell *c = &g->cells[i];
                const char *color = i < g->n_columns ? ANSI_DIM : c->color;

                if (col == 0)
                        fputs(indent, stdout);
                if (use_color && color && !isempty(c->text))
                        printf("%s%s%s", color, c->text, ANSI_RESET);
                else
                        fputs(c->text, stdout);
                if (col + 1 == g->n_columns || grid_rest_empty(g, i)) {
                        putchar('\n');
                        i += g->n_columns - 1 - col;
                } else
                        printf("%*s", (int) (widths[col] - ctl_text_width(c->text) + 2), "");
        }
        return 0;
}

#define GRID_COLUMNS_MAX 5

/* Adds the cells of one row for item. */
typedef void (*GridRowFn)(Grid *g, json_t *item);

/* A table of one row per element of list, filled by add_row, under header (GRID_COLUMNS_MAX strings at
 * most, NULL-terminated), printed each row indented. Returns 0 or -ENOMEM. */
static int grid_print_list(json_t *list, const char *const *header, GridRowFn add_row, const char *indent) {
        _cleanup_(grid_done) Grid g = {};
        json_t *item;
        size_t k;

        while (g.n_columns < GRID_COLUMNS_MAX && header[g.n_columns])
                g.n_columns++;
        for (size_t i = 0; i < g.n_columns; i++)
                grid_add(&g, header[i], NULL);
        json_array_foreach (list, k, item)
                add_row(&g, item);
        return grid_print(&g, indent);
}

/* ---- status ---- */

/* The insight with this key, or NULL. */
static json_t *insight(json_t *doc, const char *key) {
        json_t *list = json_object_get(doc, "insights"), *i;
        size_t k;

        json_array_foreach (list, k, i)
                if (streq(ctl_str(i, "key", ""), key))
                        return i;
        return NULL;
}

static int print_server(json_t *server) {
        const char *state = ctl_str(server, "state", "unknown"), *url = ctl_str(server, "url", NULL),
                   *last_error = ctl_str(server, "last_error", NULL);
        json_int_t pid = ctl_int(server, "pid", 0);
        int r;

        fputs("Server: ", stdout);
        r = print_colored(state_color(state), state);
        if (r >= 0 && !isempty(url)) {
                putchar(' ');
                r = print_colored(NULL, url);
        }
        if (r < 0)
                return r;
        if (pid > 0)
                printf("  pid %" JSON_INTEGER_FORMAT, pid);
        printf("  restarts %" JSON_INTEGER_FORMAT, ctl_int(server, "restarts", 0));
        if (!isempty(last_error)) {
                fputs("  last error: ", stdout);
                r = print_colored(ANSI_RED, last_error);
                if (r < 0)
                        return r;
        }
        putchar('\n');
        return 0;
}

static void insight_row(Grid *g, json_t *i) {
        grid_add(g, ctl_str(i, "title", ctl_str(i, "key", "?")), NULL);
        grid_add(g, ctl_str(i, "value", "-"), severity_color(ctl_str(i, "severity", NULL)));
        grid_add(g, ctl_str(i, "caption", ""), NULL);
}

static void app_row(Grid *g, json_t *a) {
        const char *status = ctl_str(a, "status", "unknown");

        grid_add(g, ctl_str(a, "label", "?"), NULL);
        grid_add_int(g, json_object_get(a, "models"), NULL);
        grid_add_int(g, json_object_get(a, "pending_migrations"),
                     ctl_int(a, "pending_migrations", 0) > 0 ? ANSI_YELLOW : NULL);
        grid_add(g, status, state_color(status));
}

static void scan_row(Grid *g, json_t *s) {
        const char *status = ctl_str(s, "status", "?");
        const char *at =
                ctl_str(s, "completed_at", ctl_str(s, "started_at", ctl_str(s, "requested_at", NULL)));
        char clock[32];

        grid_add(g, ctl_str(s, "kind", "?"), NULL);
        grid_add(g, status, state_color(status));
        grid_add(g, ctl_clock(at, false, clock, sizeof(clock)), NULL);
        grid_add(g, ctl_str(s, "error", ctl_str(s, "summary", "")),
                 streq(status, "failed") ? ANSI_RED : NULL);
}

static void task_row(Grid *g, json_t *t) {
        const char *status = ctl_str(t, "status", "?");
        char duration[32], clock[32];

        grid_add_int(g, json_object_get(t, "id"), NULL);
        grid_add(g, ctl_str(t, "preset", "?"), NULL);
        grid_add(g, status, state_color(status));
        grid_add(g, ctl_format_seconds(json_object_get(t, "duration_seconds"), duration, sizeof(duration)),
                 NULL);
        grid_add(g, ctl_clock(ctl_str(t, "queued_at", NULL), false, clock, sizeof(clock)), NULL);
}

static void log_row(Grid *g, json_t *l) {
        const char *level = ctl_str(l, "level", "info");
        char clock[32];

        grid_add(g, ctl_clock(ctl_str(l, "timestamp", NULL), false, clock, sizeof(clock)), NULL);
        grid_add(g, level, level_color(level));
        grid_add(g, ctl_str(l, "source", "-"), NULL);
        grid_add(g, ctl_str(l, "message", ""), level_color(level));
}

/* A part of the dashboard: a heading, then a table of the status document's array key, or the line empty
 * when the array is empty. */
typedef struct Section {
        const char *key, *title, *empty;
        const char *header[GRID_COLUMNS_MAX + 1]; /* NULL-terminated */
        GridRowFn add_row;
} Section;

static const Section sections[] = {
        { "insights", "Insights", "none", { "INSIGHT", "VALUE", "" }, insight_row },
        { "apps",
          "Apps",
          "none known yet (no schema scan completed)",
          { "APP", "MODELS", "PENDING", "STATUS" },
          app_row },
        { "scans", "Scans", "none yet", { "KIND", "STATUS", "AT", "OUTCOME" }, scan_row },
        { "tasks", "Recent runs", "none", { "ID", "PRESET", "STATUS", "DURATION", "QUEUED" }, task_row },
        { "log_excerpt", "Log", "no lines yet", { "TIME", "LEVEL", "SOURCE", "MESSAGE" }, log_row },
};

static int print_section(json_t *doc, const Section *s) {
        json_t *list = json_object_get(doc, s->key);

        print_heading(s->title);
        if (json_array_size(list) == 0) {
                printf(DASHBOARD_INDENT "%s\n", s->empty);
                return 0;
        }
        return grid_print_list(list, s->header, s->add_row, DASHBOARD_INDENT);
}

/* The dashboard of one status document. Returns 0, or -ENOMEM. */
static int print_dashboard(json_t *doc) {
        const char *slug = ctl_str(doc, "workspace", "?"), *name = ctl_str(doc, "name", NULL),
                   *version = ctl_str(doc, "django_version", NULL), *path = ctl_str(doc, "path", NULL);
        int r;

        r = print_colored(ANSI_BOLD, name ?: slug);
        if (r >= 0 && name && !streq(name, slug)) {
                fputs(" (", stdout);
                r = print_colored(NULL, slug);
                putchar(')');
        }
        if (r >= 0 && version) {
                fputs("  Django ", stdout);
                r = print_colored(NULL, version);
        }
        if (r >= 0 && path) {
                fputs("  ", stdout);
                r = print_colored(NULL, path);
        }
        if (r < 0)
                return r;
        putchar('\n');

        r = print_server(json_object_get(doc, "server"));
        for (size_t i = 0; i < ELEMENTSOF(sections) && r >= 0; i++)
                r = print_section(doc, &sections[i]);
        return r;
}

/* One line per workspace: slug, server state, pending migrations, check warnings and errors. */
static void summary_row(Grid *g, json_t *doc) {
        static const char *const keys[] = { "pending_migrations", "check_warnings", "check_errors" };
        const char *state = ctl_str(json_object_get(doc, "server"), "state", "?");

        grid_add(g, ctl_str(doc, "workspace", "?"), NULL);
        grid_add(g, state, state_color(state));
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                json_t *in = insight(doc, keys[i]);

                grid_add(g, ctl_str(in, "value", "-"), severity_color(ctl_str(in, "severity", NULL)));
        }
}

static int print_summary(json_t *docs) {
        static const char *const header[] = { "WORKSPACE", "SERVER", "PENDING", "WARNINGS", "ERRORS", NULL };

        return grid_print_list(docs, header, summary_row, "");
}

/* workspace.status for every workspace workspace.list names, into *ret (an array). A workspace removed in
 * between is left out. */
static int status_all(Ctl *c, json_t **ret) {
        json_auto_t *result = NULL, *docs = json_array();
        json_t *list, *ws;
        size_t i;
        int r;

        if (!docs)
                return ctl_oom();
        r = ctl_workspace_list(c, &result, &list);
        if (r != CTL_EXIT_OK)
                return r;
        json_array_foreach (list, i, ws) {
                json_auto_t *doc = NULL, *error = NULL;
                const char *slug = ctl_str(ws, "slug", NULL);

                if (!slug)
                        return ctl_malformed("workspace.list");
                r = ctl_call(c, "workspace.status", json_pack("{s:s}", "workspace", slug),
                             CTL_CALL_TIMEOUT_USEC, &doc, &error);
                if (r < 0)
                        return ctl_report_transport_error(c, r);
                if (r > 0) {
                        if (ctl_int(error, "code", 0) == -32001)
                                continue; /* removed since workspace.list */
                        return ctl_report_daemon_error(error);
                }
                if (json_array_append(docs, doc) < 0)
                        return ctl_oom();
        }
        *ret = TAKE_PTR(docs);
        return CTL_EXIT_OK;
}

int verb_status(int argc, char *argv[]) {
        _cleanup_(ctl_freep) Ctl *c = NULL;
        json_auto_t *docs = NULL, *doc = NULL, *params = NULL;
        const char *ws = NULL;
        int r;

        r = ctl_parse_optional_ws(argc, argv, "status", help_status, &ws);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        use_color = !arg_json && ctl_colors();

        if (ws) {
                r = ctl_workspace_params("status", ws, &params);
                if (r != CTL_EXIT_OK)
                        return r;
                r = ctl_simple_call("workspace.status", TAKE_PTR(params), &doc);
                if (r != CTL_EXIT_OK)
                        return r;
        } else {
                r = ctl_connect(false, &c);
                if (r != CTL_EXIT_OK)
                        return r;
                r = status_all(c, &docs);
                if (r != CTL_EXIT_OK)
                        return r;
                if (json_array_size(docs) == 1)
                        doc = json_incref(json_array_get(docs, 0));
        }

        if (arg_json)
                return ctl_print_result(doc ?: docs);
        if (doc)
                r = print_dashboard(doc);
        else if (json_array_size(docs) == 0) {
                printf("No workspaces. Add one with 'djdeskctl ws add PATH'.\n");
                r = 0;
        } else
                r = print_summary(docs);
        if (r < 0)
                return ctl_output_failed(r);
        return ctl_finish_stdout();
}

/* ---- scan ---- */

typedef struct ScanWait {
        const char *ws;
        json_int_t *ids;
        bool *done;
        size_t n, n_left;
        unsigned failed;
        bool shutdown;
} ScanWait;

static void scan_wait_done(ScanWait *w) {
        free(w->ids);
        free(w->done);
        w->ids = NULL;
        w->done = NULL;
}

static bool scan_status_is_final(const char *status) {
        return status && (streq(status, "completed") || streq(status, "failed"));
}

/* "scan 12 schema pending", "scan 12 schema completed: 9 models in 6 apps, 9 relations", on stdout; a
 * failed scan on stderr, with its error. */
static int print_scan_record(json_t *rec) {
        const char *status = ctl_str(rec, "status", "?"), *summary = ctl_str(rec, "summary", NULL);
        _cleanup_free_ char *text = NULL;

        if (arg_json)
                return ctl_print_json(rec, false);
        if (streq(status, "failed")) {
                text = ctl_clean_text(ctl_str(rec, "error", "no reason given"));
                if (!text)
                        return -ENOMEM;
                ctl_message("scan %" JSON_INTEGER_FORMAT " %s failed: %s", ctl_int(rec, "id", 0),
                            ctl_str(rec, "kind", "?"), text);
                return 0;
        }
        if (summary) {
                text = ctl_clean_text(summary);
                if (!text)
                        return -ENOMEM;
        }
        printf("scan %" JSON_INTEGER_FORMAT " %s %s%s%s\n", ctl_int(rec, "id", 0), ctl_str(rec, "kind", "?"),
               status, text ? ": " : "", text ?: "");
        return ctl_flush_stdout();
}

/* A finished scan record: printed and counted when it is one we wait for. */
static int scan_wait_finished(ScanWait *w, json_t *rec) {
        json_int_t id = ctl_int(rec, "id", 0);

        for (size_t i = 0; i < w->n; i++) {
                if (w->ids[i] != id || w->done[i])
                        continue;
                w->done[i] = true;
                w->n_left--;
                if (streq(ctl_str(rec, "status", ""), "failed"))
                        w->failed++;
                return print_scan_record(rec);
        }
        return 0;
}

static int subscribe_scans(Ctl *c) {
        return ctl_subscribe(c, json_pack("[sss]", TOPIC_SCANS, TOPIC_REMOVED, CTL_TOPIC_SHUTDOWN));
}

/* After a lagged cut-off: a new subscribed connection, then scan.get for what is still awaited (a record
 * no longer known was replaced by a newer scan of its kind: nothing more to wait for). */
static int scan_wait_resync(ScanWait *w, Ctl **c) {
        int r;

        *c = ctl_free(*c);
        r = ctl_connect(true, c);
        if (r != CTL_EXIT_OK)
                return r;
        r = subscribe_scans(*c);
        if (r != CTL_EXIT_OK)
                return r;
        for (size_t i = 0; i < w->n; i++) {
                json_auto_t *rec = NULL, *error = NULL;

                if (w->done[i])
                        continue;
                r = ctl_call(*c, "scan.get", json_pack("{s:I}", "id", w->ids[i]), CTL_CALL_TIMEOUT_USEC,
                             &rec, &error);
                if (r < 0)
                        return ctl_report_transport_error(*c, r);
                if (r > 0 && ctl_int(error, "code", 0) == -32001) {
                        ctl_message("scan %" JSON_INTEGER_FORMAT " was replaced by a newer scan of its kind",
                                    w->ids[i]);
                        w->done[i] = true;
                        w->n_left--;
                        continue;
                }
                if (r > 0)
                        return ctl_report_daemon_error(error);
                if (scan_status_is_final(ctl_str(rec, "status", NULL))) {
                        r = scan_wait_finished(w, rec);
                        if (r < 0)
                                return ctl_output_failed(r);
                }
        }
        return CTL_EXIT_OK;
}

/* Reads events until every awaited scan finished. */
static int scan_wait_events(ScanWait *w, Ctl **c) {
        int r;

        while (w->n_left > 0) {
                json_auto_t *p = NULL;
                json_t *data;
                const char *topic;

                r = ctl_wait_event(*c, CTL_USEC_INFINITY, &w->shutdown, &p, &topic, &data);
                if (r == -EINTR) {
                        ctl_message("stopped waiting; the scans carry on (see 'djdeskctl status %s')",
                                    w->ws);
                        return CTL_EXIT_FAILURE;
                }
                if (r < 0)
                        return ctl_wait_failed(*c, r, w->shutdown, "the scans");

                if (streq(topic, CTL_TOPIC_LAGGED)) {
                        r = scan_wait_resync(w, c);
                        if (r != CTL_EXIT_OK)
                                return r;
                } else if (streq(topic, TOPIC_REMOVED) && streq(ctl_str(data, "slug", ""), w->ws)) {
                        ctl_message("workspace '%s' was removed before the scans finished", w->ws);
                        return CTL_EXIT_FAILURE;
                } else if (streq(topic, TOPIC_SCAN_FINISHED) &&
                           streq(ctl_str(data, "workspace", ""), w->ws)) {
                        r = scan_wait_finished(w, json_object_get(data, "scan"));
                        if (r < 0)
                                return ctl_output_failed(r);
                }
        }
        return w->failed > 0 ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
}

static int scan_parse(int argc, char *argv[], bool *ret_wait, const char **ret_ws, const char **ret_kind) {
        static const struct option options[] = {
                CTL_COMMON_OPTIONS,
                { "wait", no_argument, NULL, 'w' },
                {},
        };
        bool done = false;
        int c;

        while ((c = ctl_getopt(argc, argv, CTL_COMMON_SHORTOPTS "w", options, "scan", help_scan, &done)) >
               0) {
                if (c != 'w')
                        return ctl_unexpected_option("scan", argv);
                *ret_wait = true;
        }
        if (c < 0 || done)
                return c;
        if (optind >= argc)
                return ctl_usage_error("scan", "missing workspace (see 'djdeskctl ws ls')");
        if (isempty(argv[optind]))
                return ctl_usage_error("scan", "the workspace must not be empty");
        *ret_ws = argv[optind++];
        if (optind < argc) {
                if (isempty(argv[optind]))
                        return ctl_usage_error("scan", "the kind must not be empty");
                *ret_kind = argv[optind++];
        }
        if (optind < argc)
                return ctl_usage_error("scan", "unexpected argument '%s'", argv[optind]);
        return 1;
}

int verb_scan(int argc, char *argv[]) {
        _cleanup_(ctl_freep) Ctl *c = NULL;
        _cleanup_(scan_wait_done) ScanWait w = {};
        json_auto_t *params = NULL, *result = NULL;
        const char *ws = NULL, *kind = NULL;
        json_t *records, *rec;
        bool wait = false;
        size_t i;
        int r;

        r = scan_parse(argc, argv, &wait, &ws, &kind);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        r = ctl_workspace_params("scan", ws, &params);
        if (r != CTL_EXIT_OK)
                return r;
        /* The daemon checks the kind (and names the ones it knows). */
        if (kind && json_object_set_new(params, "kind", json_string(kind)) < 0) {
                (void) ctl_usage_error("scan", "invalid kind '%s'", kind);
                return CTL_EXIT_USAGE;
        }

        r = ctl_connect(wait, &c);
        if (r != CTL_EXIT_OK)
                return r;
        if (wait) {
                /* Before scan.start: no scan.finished can be missed. */
                r = subscribe_scans(c);
                if (r != CTL_EXIT_OK)
                        return r;
        }
        /* Without --wait the connection is not interruptible: the call cannot be cut short. */
        r = ctl_call_interruptible(c, "scan.start", TAKE_PTR(params), CTL_CALL_TIMEOUT_USEC, &result);
        if (r != CTL_EXIT_OK)
                return r;
        records = ctl_result_array(result, "scans", "scan.start");
        if (!records)
                return CTL_EXIT_FAILURE;

        if (!wait) {
                if (arg_json)
                        return ctl_print_result(result);
                json_array_foreach (records, i, rec) {
                        r = print_scan_record(rec);
                        if (r < 0)
                                return ctl_output_failed(r);
                }
                return ctl_finish_stdout();
        }

        w.ws = ws;
        w.n = json_array_size(records);
        w.ids = calloc(MAX(w.n, (size_t) 1), sizeof(json_int_t));
        w.done = calloc(MAX(w.n, (size_t) 1), sizeof(bool));
        if (!w.ids || !w.done)
                return ctl_oom();
        json_array_foreach (records, i, rec) {
                w.ids[i] = ctl_int(rec, "id", 0);
                if (w.ids[i] <= 0)
                        return ctl_malformed("scan.start");
                w.n_left++;
        }
        json_array_foreach (records, i, rec) {
                if (!arg_json && !scan_status_is_final(ctl_str(rec, "status", NULL))) {
                        r = print_scan_record(rec);
                        if (r < 0)
                                return ctl_output_failed(r);
                }
                if (scan_status_is_final(ctl_str(rec, "status", NULL))) {
                        r = scan_wait_finished(&w, rec);
                        if (r < 0)
                                return ctl_output_failed(r);
                }
        }
        r = scan_wait_events(&w, &c);
        if (r == CTL_EXIT_OK || r == CTL_EXIT_FAILURE) {
                int k = ctl_flush_stdout();

                if (k < 0)
                        return ctl_stdout_failed(k);
        }
        return r;
}

/* ---- schema ---- */

/* "name: CharField [unique, max_length 100]". */
static char *field_text(json_t *f) {
        _cleanup_free_ char *flags = NULL;
        char *text = NULL;
        json_t *v;
        struct {
                const char *key, *flag;
        } bools[] = {
                { "primary_key", "primary key" },
                { "unique", "unique" },
                { "null", "null" },
                { "blank", "blank" },
        };

        for (size_t i = 0; i < ELEMENTSOF(bools); i++) {
                char *t;

                if (!json_is_true(json_object_get(f, bools[i].key)))
                        continue;
                /* A primary key is unique: say it once. */
                if (streq(bools[i].key, "unique") && json_is_true(json_object_get(f, "primary_key")))
                        continue;
                if (asprintf(&t, "%s%s%s", flags ?: "", flags ? ", " : "", bools[i].flag) < 0)
                        return NULL;
                free(flags);
                flags = t;
        }
        v = json_object_get(f, "max_length");
        if (json_is_integer(v)) {
                char *t;

                if (asprintf(&t, "%s%smax_length %" JSON_INTEGER_FORMAT, flags ?: "", flags ? ", " : "",
                             json_integer_value(v)) < 0)
                        return NULL;
                free(flags);
                flags = t;
        }
        v = json_object_get(f, "choices");
        if (json_is_integer(v) && json_integer_value(v) > 0) {
                char *t;

                if (asprintf(&t, "%s%s%" JSON_INTEGER_FORMAT " choices", flags ?: "", flags ? ", " : "",
                             json_integer_value(v)) < 0)
                        return NULL;
                free(flags);
                flags = t;
        }
        if (asprintf(&text, "%s: %s%s%s%s", ctl_str(f, "name", "?"), ctl_str(f, "type", "?"),
                     flags ? " [" : "", flags ?: "", flags ? "]" : "") < 0)
                return NULL;
        return text;
}

/* Prints one line: indent, then the cleaned text in color. */
static int print_line(const char *indent, const char *color, const char *fmt, ...) _printf_(3, 4);
static int print_line(const char *indent, const char *color, const char *fmt, ...) {
        _cleanup_free_ char *text = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&text, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        fputs(indent, stdout);
        r = print_colored(color, text);
        putchar('\n');
        return r;
}

/* The app labels of a schema, in its apps' order, then those only models name. */
static json_t *schema_app_labels(json_t *schema) {
        json_auto_t *labels = json_array();
        json_t *a, *m;
        size_t i;

        if (!labels)
                return NULL;
        json_array_foreach (json_object_get(schema, "apps"), i, a)
                if (json_array_append_new(labels, json_string(ctl_str(a, "label", "?"))) < 0)
                        return NULL;
        json_array_foreach (json_object_get(schema, "models"), i, m) {
                const char *app = ctl_str(m, "app", "?");
                bool seen = false;
                json_t *l;
                size_t k;

                json_array_foreach (labels, k, l)
                        seen = seen || streq(json_string_value(l) ?: "", app);
                if (!seen && json_array_append_new(labels, json_string(app)) < 0)
                        return NULL;
        }
        return TAKE_PTR(labels);
}

static json_t *schema_app(json_t *schema, const char *label) {
        json_t *a;
        size_t i;

        json_array_foreach (json_object_get(schema, "apps"), i, a)
                if (streq(ctl_str(a, "label", ""), label))
                        return a;
        return NULL;
}

static int print_schema(json_t *schema) {
        json_auto_t *labels = schema_app_labels(schema);
        json_t *models = json_object_get(schema, "models"), *l, *m;
        size_t i, k, n_models = 0, n_relations = 0;
        int r;

        if (!labels)
                return -ENOMEM;
        json_array_foreach (labels, i, l) {
                const char *label = json_string_value(l) ?: "?";
                json_t *app = schema_app(schema, label);
                const char *name = ctl_str(app, "name", label);
                size_t n = 0;

                json_array_foreach (models, k, m)
                        n += streq(ctl_str(m, "app", ""), label);
                r = print_line("", ANSI_BOLD, "%s%s%s%s: %zu model%s", label, streq(name, label) ? "" : " (",
                               streq(name, label) ? "" : name, streq(name, label) ? "" : ")", n,
                               n == 1 ? "" : "s");
                if (r < 0)
                        return r;
                json_array_foreach (models, k, m) {
                        const char *model = ctl_str(m, "name", "?");
                        json_t *f, *rel, *fields = json_object_get(m, "fields"),
                                         *relations = json_object_get(m, "relations");
                        size_t j;

                        if (!streq(ctl_str(m, "app", ""), label))
                                continue;
                        n_models++;
                        r = print_line("  ", NULL, "%s (%s)", model, ctl_str(m, "db_table", "-"));
                        json_array_foreach (fields, j, f) {
                                _cleanup_free_ char *text = field_text(f);

                                if (r >= 0)
                                        r = text ? print_line("    ", NULL, "%s", text) : -ENOMEM;
                        }
                        if (r >= 0 && json_array_size(relations) > 0)
                                r = print_line("    ", ANSI_DIM, "relations:");
                        json_array_foreach (relations, j, rel) {
                                n_relations++;
                                if (r >= 0)
                                        r = print_line("      ", NULL, "%s.%s -> %s (%s)", model,
                                                       ctl_str(rel, "field", "?"),
                                                       ctl_str(rel, "target", "?"),
                                                       ctl_str(rel, "kind", "?"));
                        }
                        if (r < 0)
                                return r;
                }
        }
        printf("\n%zu app%s, %zu model%s, %zu relation%s\n", json_array_size(labels),
               json_array_size(labels) == 1 ? "" : "s", n_models, n_models == 1 ? "" : "s", n_relations,
               n_relations == 1 ? "" : "s");
        return 0;
}

/* s as the inside of a DOT double-quoted string (a label made of several parts): '"' and '\' escaped (so
 * that no escape sequence of a label, \N, \G, \l..., comes from the data), control characters as a space. */
static void dot_label_part(const char *s) {
        for (const char *p = s ?: ""; *p; p++) {
                unsigned char c = (unsigned char) *p;

                if (c == '"' || c == '\\') {
                        putchar('\\');
                        putchar(c);
                } else if (c < ' ' || c == 0x7f)
                        putchar(' ');
                else
                        putchar(c);
        }
}

/* Writes s as a DOT double-quoted string (dot_label_part()). */
static void dot_quoted(const char *s) {
        putchar('"');
        dot_label_part(s);
        putchar('"');
}

static const char *dot_edge_style(const char *kind) {
        if (streq(kind, "one_to_one"))
                return "style=bold, arrowhead=tee";
        if (streq(kind, "many_to_many"))
                return "style=dashed, dir=both, arrowhead=crow, arrowtail=crow";
        return "style=solid, arrowhead=normal"; /* fk */
}

/* Whether the schema has a model with this "app.Model" label. */
static bool schema_has_model(json_t *schema, const char *id) {
        json_t *m;
        size_t i;

        json_array_foreach (json_object_get(schema, "models"), i, m) {
                const char *app = ctl_str(m, "app", ""), *name = ctl_str(m, "name", "");
                size_t n = strlen(app);

                if (strneq(id, app, n) && id[n] == '.' && streq(id + n + 1, name))
                        return true;
        }
        return false;
}

static int print_dot(const char *ws, json_t *schema) {
        json_auto_t *labels = schema_app_labels(schema);
        json_t *models = json_object_get(schema, "models"), *l, *m;
        size_t i, k;

        if (!labels)
                return -ENOMEM;
        printf("digraph ");
        dot_quoted(ws);
        printf(" {\n"
               "  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=11, labelloc=t, label=");
        dot_quoted(ws);
        printf("];\n"
               "  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n"
               "  edge [fontname=\"Helvetica\", fontsize=9];\n");

        /* A cluster per app; cluster ids are numbered, the app is the label. */
        json_array_foreach (labels, i, l) {
                const char *label = json_string_value(l) ?: "?";
                const char *name = ctl_str(schema_app(schema, label), "name", label);
                bool contrib = strneq(name, "django.contrib.", strlen("django.contrib."));

                printf("  subgraph \"cluster_%zu\" {\n    label=", i);
                dot_quoted(label);
                printf(";\n    style=%s;\n", contrib ? "\"rounded,filled\"; color=gray90" : "rounded");
                json_array_foreach (models, k, m) {
                        json_t *fields = json_object_get(m, "fields"), *f;
                        _cleanup_free_ char *id = NULL;
                        size_t j;

                        if (!streq(ctl_str(m, "app", ""), label))
                                continue;
                        if (asprintf(&id, "%s.%s", label, ctl_str(m, "name", "?")) < 0)
                                return -ENOMEM;
                        printf("    ");
                        dot_quoted(id);
                        printf(" [label=\"");
                        dot_label_part(ctl_str(m, "name", "?"));
                        printf("\\n");
                        json_array_foreach (fields, j, f) {
                                dot_label_part(ctl_str(f, "name", "?"));
                                printf(": ");
                                dot_label_part(ctl_str(f, "type", "?"));
                                printf("\\l");
                        }
                        printf("\"%s];\n", contrib ? ", style=filled, fillcolor=white" : "");
                }
                printf("  }\n");
        }

        /* An edge per relation; a target the schema does not list still gets a (dashed) node. */
        json_array_foreach (models, k, m) {
                json_t *relations = json_object_get(m, "relations"), *rel;
                _cleanup_free_ char *id = NULL;
                size_t j;

                if (asprintf(&id, "%s.%s", ctl_str(m, "app", "?"), ctl_str(m, "name", "?")) < 0)
                        return -ENOMEM;
                json_array_foreach (relations, j, rel) {
                        const char *target = ctl_str(rel, "target", "?");

                        if (!schema_has_model(schema, target)) {
                                printf("  ");
                                dot_quoted(target);
                                printf(" [style=dashed];\n");
                        }
                        printf("  ");
                        dot_quoted(id);
                        printf(" -> ");
                        dot_quoted(target);
                        printf(" [label=");
                        dot_quoted(ctl_str(rel, "field", "?"));
                        printf(", %s];\n", dot_edge_style(ctl_str(rel, "kind", "fk")));
                }
        }
        printf("}\n");
        return 0;
}

int verb_schema(int argc, char *argv[]) {
        json_auto_t *params = NULL, *result = NULL;
        const char *ws = NULL;
        json_t *schema, *scan;
        bool dot = false;
        int r;

        r = ctl_parse_flag(argc, argv, "schema", help_schema, "dot", &dot);
        if (r > 0)
                r = ctl_parse_ws_operand(argc, argv, "schema", &ws);
        if (r > 0 && dot && arg_json)
                r = ctl_usage_error("schema", "--dot and --json cannot be combined");
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        r = ctl_workspace_params("schema", ws, &params);
        if (r != CTL_EXIT_OK)
                return r;
        if (json_object_set_new(params, "kind", json_string("schema")) < 0)
                return ctl_oom();
        r = ctl_simple_call("scan.result", TAKE_PTR(params), &result);
        if (r != CTL_EXIT_OK)
                return r;
        if (arg_json)
                return ctl_print_result(result);

        schema = json_object_get(result, "result");
        scan = json_object_get(result, "scan");
        if (!json_is_object(schema)) {
                const char *status = ctl_str(scan, "status", NULL);

                ctl_message("no schema scan yet: run djdeskctl scan %s", ws);
                if (status && streq(status, "failed")) {
                        _cleanup_free_ char *error =
                                ctl_clean_text(ctl_str(scan, "error", "no reason given"));

                        if (error)
                                ctl_message("the last schema scan failed: %s", error);
                } else if (status && !scan_status_is_final(status))
                        ctl_message(
                                "a schema scan is %s: wait for it with 'djdeskctl scan %s schema --wait'",
                                status, ws);
                return CTL_EXIT_FAILURE;
        }
        use_color = ctl_colors() && !dot;
        r = dot ? print_dot(ws, schema) : print_schema(schema);
        if (r < 0)
                return ctl_output_failed(r);
        return ctl_finish_stdout();
}
