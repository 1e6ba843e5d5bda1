/* SPDX-License-Identifier: MIT */
/* djdeskctl templates, export, exports, preview: the Data Lab (export.* methods, export runs and the
 * export.ready event).
 *
 * An export is a run of kind "export" in the daemon's task queue: export.create answers at once with the
 * queued run, the notebook is written when the run has succeeded, and export.ready follows run.finished.
 * "export --wait" subscribes to both before it asks, so neither can be missed. Text from the daemon shown
 * in a table or a message is cleaned of control characters (ctl_clean_text()). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dj-util.h"
#include "rpc-frame.h"

#define TOPIC_FINISHED "run.finished"
#define TOPIC_READY    "export.ready"

/* How long export.ready may take after run.finished (the daemon publishes it a moment later). A preview has
 * no deadline here: the daemon answers within the tasks' timeout_sec (and its grace), and Ctrl-C stops the
 * wait. */
#define READY_TIMEOUT_USEC (10 * USEC_PER_SEC)

/* ---- help ---- */

void help_templates(void) {
        printf("Usage: djdeskctl templates [--json]\n"
               "\n"
               "List the Data Lab templates: the notebooks 'djdeskctl export' can write.\n"
               "One row each: slug, title, the data it reads (schema, migrations, logs,\n"
               "runs) and its description (wrapped to the terminal).\n"
               "\n"
               "Options:\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the export.templates result as JSON\n");
}

void help_export(void) {
        printf("Usage: djdeskctl export WS TEMPLATE [--wait] [--open] [--note TEXT]\n"
               "\n"
               "Export a Jupyter notebook of workspace WS from the Data Lab template TEMPLATE\n"
               "(see 'djdeskctl templates'). The export is queued as a run; the daemon answers\n"
               "at once and the run's id and the notebook's path are printed:\n"
               "  Export 'schema-audit' of atlas queued as run 12: /path/schema-audit.ipynb\n"
               "\n"
               "With --wait, wait until the notebook is written and print\n"
               "  Wrote /path/schema-audit.ipynb (48213 bytes, sha256 HASH)\n"
               "or, when the export failed, its error on standard error (exit 1).\n"
               "\n"
               "Options:\n"
               "  -w, --wait         Wait for the notebook to be written\n"
               "      --open         Wait, then open the notebook with xdg-open (or\n"
               "                     $DJDESK_OPENER)\n"
               "      --note TEXT    A note kept with the run (at most 280 characters)\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the export.create result as JSON; with --wait, the\n"
               "                     finished run, the file and the export.ready data\n"
               "\n"
               "Exit status: 0 queued (with --wait: written, with --open: also opened), 1\n"
               "refused or the export failed, 2 usage error, 3 the daemon is unreachable.\n");
}

void help_exports(void) {
        printf("Usage: djdeskctl exports WS [--json]\n"
               "\n"
               "List the notebooks exported for workspace WS: name, title, size, when it was\n"
               "last modified and the template it came from ('-' when none is known). The\n"
               "name is what 'djdeskctl preview' takes.\n"
               "\n"
               "Options:\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the export.list result as JSON\n");
}

void help_preview(void) {
        printf("Usage: djdeskctl preview WS NAME [--open]\n"
               "\n"
               "Have the daemon write an HTML page of the notebook NAME of workspace WS (see\n"
               "'djdeskctl exports WS'), and print the page's path once it is written.\n"
               "\n"
               "Options:\n"
               "      --open         Also open the page with xdg-open (or $DJDESK_OPENER)\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the export.preview result as JSON\n");
}

/* ---- small helpers ---- */

/* Whether a path from the daemon may be handed to an opener: absolute (so it cannot pass for an option),
 * no control characters. */
static bool path_is_openable(const char *path) {
        if (!path || path[0] != '/')
                return false;
        for (const char *p = path; *p; p++)
                if ((unsigned char) *p < ' ' || *p == 0x7f)
                        return false;
        return true;
}

static int open_file(const char *path, const char *what) {
        if (!path_is_openable(path)) {
                ctl_message("refusing to open '%s': not an absolute path", path ?: "");
                return CTL_EXIT_FAILURE;
        }
        return ctl_open_with_opener(path, what);
}

/* Says where to look after a refused export.create or export.preview: the daemon names what it does not
 * know (the workspace, or the template or notebook) in data.value. */
static void refused_hint(json_t *error, const char *ws, const char *hint) {
        const char *value = ctl_str(json_object_get(error, "data"), "value", NULL);

        if (ctl_int(error, "code", 0) != -32001)
                return;
        if (value && streq(value, ws))
                ctl_message("see 'djdeskctl ws ls' for the workspaces");
        else
                ctl_message("%s", hint);
}

/* Takes the operands "WS NAME" left after the options (missing: the message when NAME is). Returns 1, or
 * -EINVAL (reported). */
static int parse_ws_name(int argc, char *argv[], const char *verb, const char *missing, const char **ret_ws,
                         const char **ret_name) {
        if (optind >= argc)
                return ctl_usage_error(verb, "missing workspace (see 'djdeskctl ws ls')");
        if (optind + 1 >= argc)
                return ctl_usage_error(verb, "%s", missing);
        if (argc - optind > 2)
                return ctl_usage_error(verb, "unexpected argument '%s'", argv[optind + 2]);
        if (isempty(argv[optind]))
                return ctl_usage_error(verb, "the workspace must not be empty");
        if (isempty(argv[optind + 1]))
                return ctl_usage_error(verb, "%s must not be empty",
                                       streq(verb, "export") ? "the template" : "the name");
        *ret_ws = argv[optind];
        *ret_name = argv[optind + 1];
        return 1;
}

/* ---- templates ---- */

static int templates_row(CtlTable *t, json_t *tpl) {
        _cleanup_free_ char *data = NULL, *title = ctl_clean_text(ctl_str(tpl, "title", NULL)),
                            *description = ctl_clean_text(ctl_str(tpl, "description", ""));
        json_t *d;
        size_t i;

        json_array_foreach (json_object_get(tpl, "data"), i, d) {
                char *joined = NULL;

                if (!json_is_string(d))
                        continue;
                if (asprintf(&joined, "%s%s%s", data ?: "", data ? "," : "", json_string_value(d)) < 0)
                        return -ENOMEM;
                free(data);
                data = joined;
        }
        if (!title || !description)
                return -ENOMEM;
        return ctl_table_add(t, ctl_str(tpl, "slug", NULL), title, data, description);
}

int verb_templates(int argc, char *argv[]) {
        static const CtlListing listing = {
                .verb = "templates",
                .help = help_templates,
                .method = "export.templates",
                .key = "templates",
                .empty = "No Data Lab templates (is the daemon's templates_dir right? see 'djdeskd "
                         "--print-config').",
                .add_row = templates_row,
        };
        _cleanup_(ctl_table_freep) CtlTable *t = ctl_table_new(4, "SLUG", "TITLE", "DATA", "DESCRIPTION");

        if (t)
                ctl_table_wrap_last(t);
        return ctl_list_command(argc, argv, &listing, t);
}

/* ---- export ---- */

typedef struct ExportArgs {
        const char *ws;
        const char *template;
        const char *note;
        bool wait;
        bool open;
} ExportArgs;

static int parse_export_args(int argc, char *argv[], ExportArgs *a) {
        enum {
                ARG_OPEN = _CTL_ARG_MAX,
                ARG_NOTE,
        };
        static const struct option options[] = {
                CTL_COMMON_OPTIONS,
                { "wait", no_argument, NULL, 'w' },
                { "open", no_argument, NULL, ARG_OPEN },
                { "note", required_argument, NULL, ARG_NOTE },
                {},
        };
        bool done = false;
        int c;

        while ((c = ctl_getopt(argc, argv, CTL_COMMON_SHORTOPTS "w", options, "export", help_export,
                               &done)) > 0)
                switch (c) {
                case 'w':
                        a->wait = true;
                        break;
                case ARG_OPEN:
                        a->open = a->wait = true;
                        break;
                case ARG_NOTE:
                        a->note = optarg;
                        break;
                default:
                        return ctl_unexpected_option("export", argv);
                }
        if (c < 0 || done)
                return c;
        return parse_ws_name(argc, argv, "export", "missing template (see 'djdeskctl templates')", &a->ws,
                             &a->template);
}

/* What "export --wait" waits for: run.finished of run id, then (after a success) export.ready of it. */
typedef struct ExportWait {
        const ExportArgs *a;
        Ctl *c;
        json_int_t id;
        json_t *run;   /* the finished run, once run.finished arrived */
        json_t *ready; /* the export.ready data */
        bool shutdown; /* the daemon announced that it shuts down */
} ExportWait;

static void export_wait_done(ExportWait *w) {
        w->c = ctl_free(w->c);
        json_decref(w->run);
        json_decref(w->ready);
        w->run = w->ready = NULL;
}

static int subscribe_export(Ctl *c) {
        return ctl_subscribe(c, json_pack("[sss]", TOPIC_FINISHED, TOPIC_READY, CTL_TOPIC_SHUTDOWN));
}

static bool run_is_final(json_t *run) {
        const char *s = ctl_str(run, "status", NULL);

        return s && !streq(s, "queued") && !streq(s, "running");
}

/* The notebook of the finished export as export.list lists it, as export.ready data: for when that event
 * was missed (the daemon cut us off) or never came. */
static int export_lookup(ExportWait *w) {
        json_auto_t *result = NULL;
        json_t *nb;
        size_t i;
        int r;

        r = ctl_call_checked(w->c, "export.list", json_pack("{s:s}", "workspace", w->a->ws),
                             CTL_CALL_TIMEOUT_USEC, false, &result);
        if (r != CTL_EXIT_OK)
                return r;
        json_array_foreach (json_object_get(result, "notebooks"), i, nb) {
                if (!streq(ctl_str(nb, "slug", ""), w->a->template) || !ctl_str(nb, "sha256", NULL))
                        continue;
                w->ready =
                        json_pack("{s:s, s:s, s:I, s:O?, s:O?, s:O}", "workspace", w->a->ws, "template",
                                  w->a->template, "run", w->id, "file", json_object_get(nb, "file"), "size",
                                  json_object_get(nb, "size"), "sha256", json_object_get(nb, "sha256"));
                return w->ready ? CTL_EXIT_OK : ctl_oom();
        }
        ctl_message("run %" JSON_INTEGER_FORMAT " succeeded, but the daemon lists no notebook '%s' of %s",
                    w->id, w->a->template, w->a->ws);
        return CTL_EXIT_FAILURE;
}

/* After a lagged cut-off: a new subscribed connection, then run.get for the run's status now. */
static int export_wait_resync(ExportWait *w) {
        json_auto_t *run = NULL;
        int r;

        w->c = ctl_free(w->c);
        r = ctl_connect(true, &w->c);
        if (r != CTL_EXIT_OK)
                return r;
        r = subscribe_export(w->c);
        if (r != CTL_EXIT_OK)
                return r;
        r = ctl_call_interruptible(w->c, "run.get", json_pack("{s:I}", "id", w->id), CTL_CALL_TIMEOUT_USEC,
                                   &run);
        if (r != CTL_EXIT_OK)
                return r;
        if (run_is_final(run) && !w->run)
                w->run = TAKE_PTR(run);
        return CTL_EXIT_OK;
}

/* Reads events until the run finished and, when it succeeded, its export.ready arrived (or, READY_TIMEOUT
 * after run.finished, looks the notebook up instead). */
static int export_wait_events(ExportWait *w) {
        uint64_t deadline = CTL_USEC_INFINITY;
        int r;

        for (;;) {
                json_auto_t *p = NULL;
                json_t *data;
                const char *topic;

                if (w->run && !streq(ctl_str(w->run, "status", ""), "succeeded"))
                        return CTL_EXIT_OK; /* failed: no notebook to wait for */
                if (w->run && deadline == CTL_USEC_INFINITY)
                        deadline = now_usec(CLOCK_MONOTONIC) + READY_TIMEOUT_USEC;

                r = ctl_wait_event(w->c, deadline, &w->shutdown, &p, &topic, &data);
                if (r == -ETIMEDOUT && w->run)
                        return export_lookup(w);
                if (r == -EINTR) {
                        ctl_message("stopped waiting for run %" JSON_INTEGER_FORMAT
                                    "; the export carries on (see 'djdeskctl runs %s')",
                                    w->id, w->a->ws);
                        return CTL_EXIT_FAILURE;
                }
                if (r == -EMSGSIZE) {
                        /* An event too large for a message (not one of ours): start over on a new
                         * connection, as after a lagged cut-off. */
                        r = export_wait_resync(w);
                        if (r != CTL_EXIT_OK)
                                return r;
                        continue;
                }
                if (r < 0)
                        return ctl_wait_failed(w->c, r, w->shutdown, "run %" JSON_INTEGER_FORMAT, w->id);

                if (streq(topic, CTL_TOPIC_LAGGED)) {
                        r = export_wait_resync(w);
                        if (r != CTL_EXIT_OK)
                                return r;
                        if (w->run && streq(ctl_str(w->run, "status", ""), "succeeded"))
                                return export_lookup(w); /* its export.ready may be gone with the cut-off */
                } else if (streq(topic, TOPIC_FINISHED) && ctl_int(data, "id", -1) == w->id) {
                        json_decref(w->run);
                        w->run = json_incref(data);
                } else if (streq(topic, TOPIC_READY) && ctl_int(data, "run", -1) == w->id) {
                        w->ready = json_incref(data);
                        if (!w->run) /* published after run.finished: not expected, but enough */
                                w->run = json_pack("{s:I, s:s}", "id", w->id, "status", "succeeded");
                        return w->run ? CTL_EXIT_OK : ctl_oom();
                }
        }
}

/* The outcome of "export --wait": the notebook written, or why not. */
static int export_finish(ExportWait *w, const char *file) {
        bool ok = streq(ctl_str(w->run, "status", ""), "succeeded") && w->ready;
        int r;

        if (arg_json) {
                json_auto_t *out = json_pack("{s:O, s:s, s:O}", "run", w->run, "file", file, "ready",
                                             w->ready ?: json_null());

                if (!out)
                        return ctl_oom();
                r = ctl_print_result(out);
                if (r != CTL_EXIT_OK || !ok)
                        return r != CTL_EXIT_OK ? r : CTL_EXIT_FAILURE;
        } else if (ok) {
                _cleanup_free_ char *path = ctl_clean_text(ctl_str(w->ready, "file", file)),
                                    *sha = ctl_clean_text(ctl_str(w->ready, "sha256", "?"));

                if (!path || !sha)
                        return ctl_oom();
                printf("Wrote %s (%" JSON_INTEGER_FORMAT " bytes, sha256 %s)\n", path,
                       ctl_int(w->ready, "size", 0), sha);
                r = ctl_finish_stdout();
                if (r != CTL_EXIT_OK)
                        return r;
        } else {
                _cleanup_free_ char *why = ctl_clean_text(ctl_str(w->run, "error", NULL));

                if (!why)
                        return ctl_oom();
                ctl_message("export '%s' of %s (run %" JSON_INTEGER_FORMAT ") %s: %s", w->a->template,
                            w->a->ws, w->id, ctl_str(w->run, "status", "failed"),
                            ctl_str(w->run, "error", NULL) ? why : "no reason given");
                return CTL_EXIT_FAILURE;
        }

        if (!w->a->open)
                return CTL_EXIT_OK;
        return open_file(ctl_str(w->ready, "file", file), "the notebook");
}

int verb_export(int argc, char *argv[]) {
        _cleanup_(export_wait_done) ExportWait w = {};
        json_auto_t *params = NULL, *result = NULL, *error = NULL;
        ExportArgs a = {};
        const char *file;
        json_t *run;
        int r;

        r = parse_export_args(argc, argv, &a);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        params = json_pack("{s:s, s:s}", "workspace", a.ws, "template", a.template);
        if (!params) {
                (void) ctl_usage_error("export", "invalid workspace '%s' or template '%s'", a.ws,
                                       a.template);
                return CTL_EXIT_USAGE;
        }
        r = ctl_params_set_note("export", params, a.note);
        if (r != CTL_EXIT_OK)
                return r;

        w.a = &a;
        r = ctl_connect(a.wait, &w.c);
        if (r != CTL_EXIT_OK)
                return r;
        if (a.wait) {
                /* Before export.create: neither run.finished nor export.ready can be missed. */
                r = subscribe_export(w.c);
                if (r != CTL_EXIT_OK)
                        return r;
        }

        r = ctl_call(w.c, "export.create", TAKE_PTR(params), CTL_CALL_TIMEOUT_USEC, &result, &error);
        if (r == -EINTR) {
                ctl_message("interrupted; the export may have been queued (see 'djdeskctl runs %s')", a.ws);
                return CTL_EXIT_FAILURE;
        }
        if (r < 0)
                return ctl_report_transport_error(w.c, r);
        if (r > 0) {
                r = ctl_report_daemon_error(error);
                refused_hint(error, a.ws, "see 'djdeskctl templates' for the templates");
                return r;
        }
        run = json_object_get(result, "run");
        file = ctl_str(result, "file", NULL);
        w.id = ctl_int(run, "id", -1);
        if (w.id <= 0 || !file)
                return ctl_malformed("export.create");

        if (!a.wait || !arg_json) {
                _cleanup_free_ char *path = NULL;

                if (arg_json)
                        return ctl_print_result(result);
                path = ctl_clean_text(file);
                if (!path)
                        return ctl_oom();
                printf("Export '%s' of %s queued as run %" JSON_INTEGER_FORMAT ": %s\n", a.template, a.ws,
                       w.id, path);
                r = ctl_finish_stdout();
                if (r != CTL_EXIT_OK || !a.wait)
                        return r;
        }

        r = export_wait_events(&w);
        if (r != CTL_EXIT_OK)
                return r;
        return export_finish(&w, file);
}

/* ---- exports ---- */

int verb_exports(int argc, char *argv[]) {
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;
        json_auto_t *result = NULL;
        const char *ws = NULL;
        json_t *list, *nb;
        size_t i;
        int r;

        r = ctl_workspace_command(argc, argv, "exports", help_exports, "export.list", &ws, &result);
        if (r != CTL_EXIT_OK || !result)
                return r;
        list = ctl_result_array(result, "notebooks", "export.list");
        if (!list)
                return CTL_EXIT_FAILURE;
        if (arg_json)
                return ctl_print_result(result);
        if (json_array_size(list) == 0) {
                _cleanup_free_ char *dir = ctl_clean_text(ctl_str(result, "directory", "?"));

                if (!dir)
                        return ctl_oom();
                printf("No notebooks yet in %s.\n", dir);
                return ctl_finish_stdout();
        }

        t = ctl_table_new(5, "NAME", "TITLE", "SIZE", "MODIFIED", "TEMPLATE");
        if (!t)
                return ctl_oom();
        json_array_foreach (list, i, nb) {
                const char *error = ctl_str(nb, "error", NULL);
                _cleanup_free_ char *name = ctl_clean_text(ctl_str(nb, "slug", NULL)), *title = NULL,
                                    *template = ctl_clean_text(ctl_str(nb, "template", NULL));
                json_t *size = json_object_get(nb, "size");
                char sizebuf[32] = "-", when[32];

                if (error) {
                        _cleanup_free_ char *e = ctl_clean_text(error);

                        if (e && asprintf(&title, "(not a notebook: %s)", e) < 0)
                                title = NULL;
                } else
                        title = ctl_clean_text(ctl_str(nb, "title", NULL));
                if (!name || !title || !template)
                        return ctl_oom();
                if (json_is_integer(size) && json_integer_value(size) >= 0)
                        (void) ctl_format_size((uint64_t) json_integer_value(size), sizebuf,
                                               sizeof(sizebuf));
                r = ctl_table_add(t, name, title, sizebuf,
                                  ctl_format_when(ctl_str(nb, "modified_at", NULL), when, sizeof(when)),
                                  template);
                if (r < 0)
                        return ctl_oom();
        }
        ctl_table_print(t);
        return ctl_finish_stdout();
}

/* ---- preview ---- */

int verb_preview(int argc, char *argv[]) {
        _cleanup_(ctl_freep) Ctl *c = NULL;
        json_auto_t *params = NULL, *result = NULL, *error = NULL;
        const char *ws = NULL, *name = NULL, *file;
        bool open = false;
        size_t n;
        int r;

        r = ctl_parse_flag(argc, argv, "preview", help_preview, "open", &open);
        if (r > 0)
                r = parse_ws_name(argc, argv, "preview",
                                  "missing notebook name (see 'djdeskctl exports WS')", &ws, &name);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        /* The notebook's file name works too: the name is the file's without ".ipynb". */
        n = strlen(name);
        if (n > strlen(".ipynb") && streq(name + n - strlen(".ipynb"), ".ipynb"))
                n -= strlen(".ipynb");
        params = json_pack("{s:s, s:s%}", "workspace", ws, "name", name, n);
        if (!params) {
                (void) ctl_usage_error("preview", "invalid workspace '%s' or name '%s'", ws, name);
                return CTL_EXIT_USAGE;
        }

        /* The daemon answers once the page is written: that may take a moment, and SIGINT stops waiting. */
        r = ctl_connect(true, &c);
        if (r != CTL_EXIT_OK)
                return r;
        r = ctl_call(c, "export.preview", TAKE_PTR(params), CTL_USEC_INFINITY, &result, &error);
        if (r == -EINTR) {
                ctl_message("interrupted");
                return CTL_EXIT_FAILURE;
        }
        if (r < 0)
                return ctl_report_transport_error(c, r);
        if (r > 0) {
                _cleanup_free_ char *hint = NULL;

                r = ctl_report_daemon_error(error);
                if (asprintf(&hint, "see 'djdeskctl exports %s' for the notebooks", ws) >= 0)
                        refused_hint(error, ws, hint);
                else
                        hint = NULL;
                return r;
        }
        file = ctl_str(result, "file", NULL);
        if (!file)
                return ctl_malformed("export.preview");

        if (arg_json)
                r = ctl_print_result(result);
        else {
                _cleanup_free_ char *path = ctl_clean_text(file);

                if (!path)
                        return ctl_oom();
                printf("%s\n", path);
                r = ctl_finish_stdout();
        }
        if (r != CTL_EXIT_OK || !open)
                return r;
        return open_file(file, "the preview");
}
