/* SPDX-License-Identifier: MIT */
/* djdeskctl ws add|ls|show|rm: the workspace registry (workspace.* methods). */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dj-util.h"

#define SHOW_LABEL_WIDTH  18 /* strlen("Migrate on start:") + 1 */
#define ADDED_LABEL_WIDTH 14 /* strlen("Interpreter:") + 2 */

void help_ws(void) {
        printf("Usage: djdeskctl ws COMMAND [ARGS]\n"
               "\n"
               "Register Django projects with the daemon (workspaces) and look at them.\n"
               "A workspace is named by its slug, shown by 'ws ls'.\n"
               "\n"
               "Commands:\n"
               "  add PATH [OPTIONS]  Register the Django project in directory PATH\n"
               "  ls                  List the workspaces: slug, name, server state, URL, path\n"
               "  show WS             Show everything about one workspace\n"
               "  rm WS [--purge]     Unregister a workspace (its server is stopped first)\n"
               "\n"
               "Options:\n"
               "  -h, --help          Show this help\n"
               "      --socket PATH   Daemon socket\n"
               "      --json          Print the daemon's JSON result\n"
               "\n"
               "Run 'djdeskctl ws COMMAND --help' for a command's own options.\n");
}

static void help_ws_add(void) {
        printf("Usage: djdeskctl ws add PATH [OPTIONS]\n"
               "\n"
               "Register the Django project in PATH (a directory holding manage.py) and print\n"
               "what the daemon found: the slug, the settings module and where it came from,\n"
               "the interpreter and its Django version. PATH is made absolute first.\n"
               "\n"
               "Options:\n"
               "      --name NAME        Name shown for it (default: the directory's name);\n"
               "                         the slug is made from it\n"
               "      --settings MODULE  Settings module (default: the one manage.py sets,\n"
               "                         else the daemon's DJANGO_SETTINGS_MODULE)\n"
               "      --python PATH      Interpreter to run it with (must import Django)\n"
               "      --port N           Always serve on this port of 127.0.0.1\n"
               "      --mode MODE        'serve' (default: djdesk-serve, reloads without\n"
               "                         downtime) or 'runserver' (manage.py runserver)\n"
               "      --no-autoreload    Do not reload the server when the code changes\n"
               "      --autostart        Start its server whenever the daemon starts\n"
               "      --no-migrate       Do not apply pending migrations when starting\n"
               "      --start            Start its server once registered\n"
               "      --notify           Also report the outcome as a desktop notification\n"
               "                         (with notify-send; for the desktop entry)\n"
               "  -h, --help             Show this help\n"
               "      --socket PATH      Daemon socket\n"
               "      --json             Print the workspace as JSON\n");
}

static void help_ws_ls(void) {
        printf("Usage: djdeskctl ws ls [--json]\n"
               "\n"
               "List the workspaces in the order they were added: slug, name, server state,\n"
               "URL (while serving) and project path.\n"
               "\n"
               "Options:\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the workspace.list result as JSON\n");
}

static void help_ws_show(void) {
        printf("Usage: djdeskctl ws show WS [--json]\n"
               "\n"
               "Show one workspace: its path, settings module and where it came from, the\n"
               "interpreter and Django version, mode, port, and its server's state, URL,\n"
               "pid, restarts and last error.\n"
               "\n"
               "Options:\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the workspace as JSON\n");
}

static void help_ws_rm(void) {
        printf("Usage: djdeskctl ws rm WS [--purge]\n"
               "\n"
               "Unregister a workspace. Its server is stopped first. The project directory is\n"
               "never touched; its Data Lab exports are kept unless --purge is given.\n"
               "\n"
               "Options:\n"
               "      --purge        Also delete the workspace's Data Lab exports\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the workspace.remove result as JSON\n");
}

/* ---- shared output ---- */

static const char *settings_origin(const char *source) {
        if (!source)
                return NULL;
        if (streq(source, "given"))
                return "given";
        if (streq(source, "manage.py"))
                return "from manage.py";
        if (streq(source, "environment"))
                return "from DJANGO_SETTINGS_MODULE";
        return source;
}

#define print_field(label, ...) ctl_print_field(SHOW_LABEL_WIDTH, label, __VA_ARGS__)

static void print_settings(int width, const char *label, json_t *ws) {
        const char *origin = settings_origin(ctl_str(ws, "settings_source", NULL));

        if (origin)
                ctl_print_field(width, label, "%s (%s)", ctl_str(ws, "settings_module", "-"), origin);
        else
                ctl_print_field(width, label, "%s", ctl_str(ws, "settings_module", "-"));
}

static void print_interpreter(int width, const char *label, json_t *ws) {
        const char *version = ctl_str(ws, "django_version", NULL);

        if (version)
                ctl_print_field(width, label, "%s (Django %s)", ctl_str(ws, "interpreter", "-"), version);
        else
                ctl_print_field(width, label, "%s", ctl_str(ws, "interpreter", "-"));
}

/* The summary of a workspace just registered: slug, path, settings module and where it came from,
 * interpreter and Django version. */
static void print_added_summary(json_t *ws) {
        printf("Added workspace '%s' (%s)\n", ctl_str(ws, "slug", "?"), ctl_str(ws, "path", "?"));
        print_settings(ADDED_LABEL_WIDTH, "Settings:", ws);
        print_interpreter(ADDED_LABEL_WIDTH, "Interpreter:", ws);
}

static const char *yes_no(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);

        return json_is_boolean(v) ? (json_is_true(v) ? "yes" : "no") : "-";
}

static void print_workspace(json_t *ws) {
        json_t *server = json_object_get(ws, "server");
        json_int_t port = ctl_int(ws, "port", 0), last_port = ctl_int(ws, "last_port", 0);
        const char *python = ctl_str(ws, "python", NULL);

        print_field("Slug:", "%s", ctl_str(ws, "slug", "-"));
        print_field("Name:", "%s", ctl_str(ws, "name", "-"));
        print_field("Path:", "%s", ctl_str(ws, "path", "-"));
        print_settings(SHOW_LABEL_WIDTH, "Settings module:", ws);
        print_interpreter(SHOW_LABEL_WIDTH, "Interpreter:", ws);
        if (python)
                print_field("Python setting:", "%s", python);
        print_field("Mode:", "%s", ctl_str(ws, "mode", "-"));
        if (port > 0)
                print_field("Port:", "%" JSON_INTEGER_FORMAT " (fixed)", port);
        else if (last_port > 0)
                print_field("Port:", "any free (last %" JSON_INTEGER_FORMAT ")", last_port);
        else
                print_field("Port:", "any free");
        print_field("Autostart:", "%s", yes_no(ws, "autostart"));
        print_field("Autoreload:", "%s", yes_no(ws, "autoreload"));
        print_field("Migrate on start:", "%s", yes_no(ws, "migrate_on_start"));
        print_field("State:", "%s", ctl_str(server, "state", "-"));
        print_field("URL:", "%s", ctl_str(server, "url", "-"));
        if (ctl_int(server, "pid", 0) > 0)
                print_field("PID:", "%" JSON_INTEGER_FORMAT, ctl_int(server, "pid", 0));
        else
                print_field("PID:", "-");
        print_field("Restarts:", "%" JSON_INTEGER_FORMAT, ctl_int(server, "restarts", 0));
        print_field("Last error:", "%s", ctl_str(server, "last_error", "-"));
        if (ctl_str(server, "started_at", NULL))
                print_field("Started:", "%s", ctl_str(server, "started_at", "-"));
        if (ctl_str(server, "ready_at", NULL))
                print_field("Ready:", "%s", ctl_str(server, "ready_at", "-"));
        print_field("Created:", "%s", ctl_str(ws, "created_at", "-"));
        print_field("D-Bus object:", "%s", ctl_str(ws, "object_path", "-"));
}

int ctl_start_added(Ctl *c, json_t *ws, json_t **ret_server, json_t **ret_error) {
        int r;

        r = ctl_call(c, "server.start", json_pack("{s:s}", "workspace", ctl_str(ws, "slug", "")),
                     CTL_USEC_INFINITY, ret_server, ret_error);
        if (r < 0)
                return r;
        if (r == 0 && json_is_object(*ret_server) && json_object_set(ws, "server", *ret_server) < 0)
                return -ENOMEM;
        return r > 0 || !ctl_server_serving(*ret_server) ? CTL_EXIT_FAILURE : CTL_EXIT_OK;
}

int ctl_print_added(json_t *ws, bool started, json_t *server, json_t *error) {
        const char *slug = ctl_str(ws, "slug", "?");
        int r;

        if (arg_json) {
                r = ctl_print_result(ws);
                if (error)
                        (void) ctl_report_daemon_error(error);
                return r;
        }
        print_added_summary(ws);
        if (started) {
                _cleanup_free_ char *line = ctl_server_line(slug, server, error);

                if (!line)
                        return ctl_oom();
                printf("%s\n", line);
        } else
                printf("Start it with 'djdeskctl server start %s'.\n", slug);
        return ctl_finish_stdout();
}

/* ---- ws add ---- */

typedef struct AddArgs {
        const char *path;
        json_t *params; /* everything but the path */
        bool start;
        bool notify;
} AddArgs;

static void add_args_done(AddArgs *a) {
        json_decref(a->params);
        a->params = NULL;
}

static int parse_add_args(int argc, char *argv[], AddArgs *a) {
        enum {
                ARG_NAME = _CTL_ARG_MAX,
                ARG_SETTINGS,
                ARG_PYTHON,
                ARG_PORT,
                ARG_MODE,
                ARG_NO_AUTORELOAD,
                ARG_AUTOSTART,
                ARG_NO_MIGRATE,
                ARG_START,
                ARG_NOTIFY,
        };
        static const struct option options[] = {
                CTL_COMMON_OPTIONS,
                { "name", required_argument, NULL, ARG_NAME },
                { "settings", required_argument, NULL, ARG_SETTINGS },
                { "python", required_argument, NULL, ARG_PYTHON },
                { "port", required_argument, NULL, ARG_PORT },
                { "mode", required_argument, NULL, ARG_MODE },
                { "no-autoreload", no_argument, NULL, ARG_NO_AUTORELOAD },
                { "autostart", no_argument, NULL, ARG_AUTOSTART },
                { "no-migrate", no_argument, NULL, ARG_NO_MIGRATE },
                { "start", no_argument, NULL, ARG_START },
                { "notify", no_argument, NULL, ARG_NOTIFY },
                {},
        };
        /* The options that set a member of the params: strings (ARG_NAME..ARG_PYTHON), which must not be
         * empty, and booleans (ARG_NO_AUTORELOAD..ARG_NO_MIGRATE). */
        static const struct {
                const char *key;
                const char *needs; /* the message for an empty value */
        } strings[] = {
                { "name", "--name needs a name" },
                { "settings_module", "--settings needs a module" },
                { "python", "--python needs an interpreter" },
        };
        static const struct {
                const char *key;
                bool value;
        } booleans[] = {
                { "autoreload", false },
                { "autostart", true },
                { "migrate_on_start", false },
        };
        const char *verb = "ws add";
        bool done = false;
        uint64_t port;
        int c;

        a->params = json_object();
        if (!a->params)
                return -ENOMEM;

        while ((c = ctl_getopt(argc, argv, CTL_COMMON_SHORTOPTS, options, verb, help_ws_add, &done)) > 0) {
                json_t *v = NULL;
                const char *key = NULL;

                switch (c) {
                case ARG_NAME:
                case ARG_SETTINGS:
                case ARG_PYTHON:
                        if (isempty(optarg))
                                return ctl_usage_error(verb, "%s", strings[c - ARG_NAME].needs);
                        key = strings[c - ARG_NAME].key;
                        v = json_string(optarg);
                        break;
                case ARG_PORT:
                        if (parse_uint_range(optarg, 1, 65535, &port) < 0)
                                return ctl_usage_error(verb, "invalid --port '%s': expected 1..65535",
                                                       optarg);
                        key = "port";
                        v = json_integer((json_int_t) port);
                        break;
                case ARG_MODE:
                        if (!streq(optarg, "serve") && !streq(optarg, "runserver"))
                                return ctl_usage_error(
                                        verb, "invalid --mode '%s': expected 'serve' or 'runserver'",
                                        optarg);
                        key = "mode";
                        v = json_string(optarg);
                        break;
                case ARG_NO_AUTORELOAD:
                case ARG_AUTOSTART:
                case ARG_NO_MIGRATE:
                        key = booleans[c - ARG_NO_AUTORELOAD].key;
                        v = json_boolean(booleans[c - ARG_NO_AUTORELOAD].value);
                        break;
                case ARG_START:
                        a->start = true;
                        break;
                case ARG_NOTIFY:
                        a->notify = true;
                        break;
                default:
                        return ctl_unexpected_option(verb, argv);
                }
                if (key) {
                        if (!v) /* json_string() refuses invalid UTF-8 */
                                return ctl_usage_error(verb, "invalid value '%s' for %s", optarg,
                                                       argv[optind - 1]);
                        if (json_object_set_new(a->params, key, v) < 0)
                                return -ENOMEM;
                }
        }
        if (c < 0 || done)
                return c;
        return ctl_parse_operand(argc, argv, verb, "missing PATH", "PATH must not be empty", &a->path);
}

/* The desktop entry runs "ws add --notify" without a terminal: tell the user with a notification too. */
static void notify_desktop(const char *summary, const char *body) {
        char *argv[] = { (char *) "notify-send",
                         (char *) "--app-name=djdesk",
                         (char *) "--icon=applications-development",
                         (char *) "--",
                         (char *) summary,
                         (char *) body,
                         NULL };
        int r;

        r = ctl_spawn_wait(argv);
        if (r == -ENOENT)
                ctl_message("notify-send not found (Debian package libnotify-bin): no desktop notification");
        else if (r < 0)
                ctl_message("cannot run notify-send: %s", strerror(-r));
        else if (r > 0)
                ctl_message("notify-send failed with status %d", r);
}

static void notify_failure(bool notify, const char *path, const char *reason) {
        _cleanup_free_ char *summary = NULL;

        if (!notify)
                return;
        if (asprintf(&summary, "djdesk: cannot add %s", path) < 0)
                return;
        notify_desktop(summary, reason);
}

static void notify_added(json_t *ws, json_t *server, json_t *start_error) {
        _cleanup_free_ char *summary = NULL, *body = NULL, *state = NULL;
        const char *version = ctl_str(ws, "django_version", NULL);

        if (server && ctl_server_serving(server)) {
                if (asprintf(&state, "\nServing at %s", ctl_str(server, "url", "?")) < 0)
                        return;
        } else if (start_error || server) {
                const char *why = start_error ? ctl_str(start_error, "message", "?")
                                              : ctl_str(server, "last_error", ctl_str(server, "state", "?"));

                if (asprintf(&state, "\nThe server did not start: %s", why) < 0)
                        return;
        } else if (asprintf(&state, "\nStart it with: djdeskctl server start %s", ctl_str(ws, "slug", "?")) <
                   0)
                return;

        if (asprintf(&summary, "djdesk: added %s", ctl_str(ws, "slug", "?")) < 0 ||
            asprintf(&body, "%s\nSettings: %s\nPython: %s%s%s%s%s", ctl_str(ws, "path", "?"),
                     ctl_str(ws, "settings_module", "-"), ctl_str(ws, "interpreter", "-"),
                     version ? " (Django " : "", version ?: "", version ? ")" : "", state) < 0)
                return;
        notify_desktop(summary, body);
}

static int ws_add(int argc, char *argv[]) {
        _cleanup_(add_args_done) AddArgs a = {};
        _cleanup_(ctl_freep) Ctl *c = NULL;
        json_auto_t *ws = NULL, *error = NULL, *server = NULL, *start_error = NULL;
        _cleanup_free_ char *abs = NULL;
        const char *shown;
        int r, rc;

        r = parse_add_args(argc, argv, &a);
        if (r == -ENOMEM)
                return ctl_oom();
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;

        /* Absolute and canonical when it exists; otherwise as given, so that the daemon's refusal
         * names exactly what the user typed. */
        abs = realpath(a.path, NULL);
        shown = abs ?: a.path;
        if (json_object_set_new(a.params, "path", json_string(shown)) < 0) {
                (void) ctl_usage_error("ws add", "invalid PATH '%s'", a.path);
                return CTL_EXIT_USAGE;
        }

        rc = ctl_connect(true, &c);
        if (rc != CTL_EXIT_OK) {
                notify_failure(a.notify, shown,
                               "The djdesk daemon cannot be reached. "
                               "Start it with: systemctl --user start djdesk.socket");
                return rc;
        }

        /* Slow: the daemon runs candidate interpreters to find one that imports Django. */
        r = ctl_call(c, "workspace.add", TAKE_PTR(a.params), CTL_USEC_INFINITY, &ws, &error);
        if (r < 0) {
                notify_failure(a.notify, shown, "Lost the connection to the djdesk daemon.");
                return ctl_report_transport_error(c, r);
        }
        if (r > 0) {
                notify_failure(a.notify, shown, ctl_str(error, "message", "the daemon refused"));
                return ctl_report_daemon_error(error);
        }
        if (!ctl_str(ws, "slug", NULL))
                return ctl_malformed("workspace.add");

        rc = CTL_EXIT_OK;
        if (a.start) {
                rc = ctl_start_added(c, ws, &server, &start_error);
                if (rc < 0) {
                        notify_failure(a.notify, shown, "Lost the connection to the djdesk daemon.");
                        return ctl_report_transport_error(c, rc);
                }
        }
        r = ctl_print_added(ws, a.start, server, start_error);
        if (a.notify)
                notify_added(ws, a.start ? server : NULL, start_error);
        return r != CTL_EXIT_OK ? r : rc;
}

/* ---- ws ls ---- */

static int ws_ls_row(CtlTable *t, json_t *ws) {
        json_t *server = json_object_get(ws, "server");

        return ctl_table_add(t, ctl_str(ws, "slug", NULL), ctl_str(ws, "name", NULL),
                             ctl_str(server, "state", NULL), ctl_str(server, "url", NULL),
                             ctl_str(ws, "path", NULL));
}

static int ws_ls(int argc, char *argv[]) {
        static const CtlListing listing = {
                .verb = "ws ls",
                .help = help_ws_ls,
                .method = "workspace.list",
                .key = "workspaces",
                .empty = "No workspaces. Add one with 'djdeskctl ws add PATH'.",
                .add_row = ws_ls_row,
        };
        _cleanup_(ctl_table_freep) CtlTable *t = ctl_table_new(5, "SLUG", "NAME", "STATE", "URL", "PATH");

        return ctl_list_command(argc, argv, &listing, t);
}

/* ---- ws show, ws rm ---- */

static int ws_show(int argc, char *argv[]) {
        json_auto_t *result = NULL;
        const char *ws = NULL;
        int r;

        r = ctl_workspace_command(argc, argv, "ws show", help_ws_show, "workspace.get", &ws, &result);
        if (r != CTL_EXIT_OK || !result)
                return r;
        if (arg_json)
                return ctl_print_result(result);
        print_workspace(result);
        return ctl_finish_stdout();
}

static int ws_rm(int argc, char *argv[]) {
        _cleanup_(ctl_freep) Ctl *c = NULL;
        json_auto_t *result = NULL, *params = NULL;
        const char *ws = NULL;
        bool purge = false;
        int r;

        r = ctl_parse_flag(argc, argv, "ws rm", help_ws_rm, "purge", &purge);
        if (r > 0)
                r = ctl_parse_ws_operand(argc, argv, "ws rm", &ws);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        r = ctl_workspace_params("ws rm", ws, &params);
        if (r != CTL_EXIT_OK)
                return r;
        if (json_object_set_new(params, "purge", json_boolean(purge)) < 0)
                return ctl_oom();

        /* Stopping its server first may take the grace period. */
        r = ctl_connect(true, &c);
        if (r != CTL_EXIT_OK)
                return r;
        r = ctl_call_checked(c, "workspace.remove", TAKE_PTR(params), CTL_USEC_INFINITY, false, &result);
        if (r != CTL_EXIT_OK)
                return r;
        if (arg_json)
                return ctl_print_result(result);
        printf("Removed workspace '%s'.%s\n", ctl_str(result, "slug", ws),
               json_is_true(json_object_get(result, "purged")) ? " Its Data Lab exports were deleted." : "");
        return ctl_finish_stdout();
}

int verb_ws(int argc, char *argv[]) {
        static const CtlSubVerb subs[] = {
                { "add", NULL, ws_add },
                { "ls", "list", ws_ls },
                { "show", NULL, ws_show },
                { "rm", "remove", ws_rm },
        };

        return ctl_dispatch(argc, argv, "ws", help_ws, subs, ELEMENTSOF(subs), NULL);
}
