/* SPDX-License-Identifier: MIT */
/* djdeskctl sample ls|install: the sample projects shipped with djdesk (sample.* methods). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

void help_sample(void) {
        printf("Usage: djdeskctl sample COMMAND [ARGS]\n"
               "\n"
               "The small Django projects shipped with djdesk (atlas, polls, generated).\n"
               "Installing one copies it to $XDG_DATA_HOME/djdesk/samples/NAME (or the\n"
               "daemon's sample_root) and registers the copy as a workspace.\n"
               "\n"
               "Commands:\n"
               "  ls                    List the samples and whether they are installed\n"
               "  install NAME [--start]\n"
               "                        Install and register a sample (and start it)\n"
               "\n"
               "Options:\n"
               "  -h, --help            Show this help\n"
               "      --socket PATH     Daemon socket\n"
               "      --json            Print the daemon's JSON result\n");
}

static void help_sample_ls(void) {
        printf("Usage: djdeskctl sample ls [--json]\n"
               "\n"
               "List the shipped samples: name, whether installed, the workspace it is\n"
               "registered as, and its title.\n"
               "\n"
               "Options:\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the sample.list result as JSON\n");
}

static void help_sample_install(void) {
        printf("Usage: djdeskctl sample install NAME [--start]\n"
               "\n"
               "Copy the sample NAME (see 'djdeskctl sample ls') to the daemon's sample root\n"
               "and register the copy as a workspace named after the sample. Prints what the\n"
               "daemon found, as 'ws add' does.\n"
               "\n"
               "Options:\n"
               "      --start        Also start its server and print its URL\n"
               "  -h, --help         Show this help\n"
               "      --socket PATH  Daemon socket\n"
               "      --json         Print the workspace as JSON\n");
}

static int finish_stdout(void) {
        int r = ctl_flush_stdout();

        return r < 0 ? ctl_stdout_failed(r) : CTL_EXIT_OK;
}

static int sample_ls(int argc, char *argv[]) {
        _cleanup_(ctl_table_freep) CtlTable *t = NULL;
        json_auto_t *result = NULL;
        json_t *list, *s;
        size_t i;
        int r;

        r = ctl_parse_no_args(argc, argv, "sample ls", help_sample_ls);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        r = ctl_simple_call("sample.list", NULL, &result);
        if (r != CTL_EXIT_OK)
                return r;
        list = json_object_get(result, "samples");
        if (!json_is_array(list)) {
                ctl_message("the daemon sent a malformed sample.list result");
                return CTL_EXIT_FAILURE;
        }
        if (arg_json) {
                r = ctl_print_json(result, true);
                return r < 0 ? ctl_stdout_failed(r) : CTL_EXIT_OK;
        }
        if (json_array_size(list) == 0) {
                printf("No samples found (is the daemon's samples_dir right? see 'djdeskd "
                       "--print-config').\n");
                return finish_stdout();
        }
        t = ctl_table_new(4, "NAME", "INSTALLED", "WORKSPACE", "TITLE");
        if (!t)
                return ctl_oom();
        json_array_foreach (list, i, s)
                if (ctl_table_add(t, ctl_str(s, "name", NULL),
                                  json_is_true(json_object_get(s, "installed")) ? "yes" : "no",
                                  ctl_str(s, "workspace", NULL), ctl_str(s, "title", NULL)) < 0)
                        return ctl_oom();
        ctl_table_print(t);
        return finish_stdout();
}

static int sample_install(int argc, char *argv[]) {
        enum { ARG_START = _CTL_ARG_MAX };
        static const struct option options[] = {
                CTL_COMMON_OPTIONS,
                { "start", no_argument, NULL, ARG_START },
                {},
        };
        const char *verb = "sample install", *name, *slug;
        _cleanup_(ctl_freep) Ctl *c = NULL;
        json_auto_t *ws = NULL, *error = NULL, *server = NULL, *params = NULL;
        bool done = false, start = false;
        int c_, r, rc;

        while ((c_ = getopt_long(argc, argv, CTL_COMMON_SHORTOPTS, options, NULL)) >= 0) {
                r = ctl_parse_common_option(c_, verb, argv, help_sample_install, &done);
                if (r < 0)
                        return CTL_EXIT_USAGE;
                if (done)
                        return CTL_EXIT_OK;
                if (r > 0)
                        continue;
                if (c_ == ARG_START) {
                        start = true;
                        continue;
                }
                (void) ctl_usage_error(verb, "unexpected option '%s'", argv[optind - 1]);
                return CTL_EXIT_USAGE;
        }
        if (optind >= argc) {
                (void) ctl_usage_error(verb, "missing NAME (see 'djdeskctl sample ls')");
                return CTL_EXIT_USAGE;
        }
        if (argc - optind > 1) {
                (void) ctl_usage_error(verb, "unexpected argument '%s'", argv[optind + 1]);
                return CTL_EXIT_USAGE;
        }
        name = argv[optind];
        params = isempty(name) ? NULL : json_pack("{s:s}", "name", name);
        if (!params) {
                (void) ctl_usage_error(verb, "invalid NAME '%s'", name);
                return CTL_EXIT_USAGE;
        }

        /* Copying and finding an interpreter take a moment; starting takes as long as Django does. */
        r = ctl_connect(true, &c);
        if (r != CTL_EXIT_OK)
                return r;
        r = ctl_call(c, "sample.install", TAKE_PTR(params), CTL_USEC_INFINITY, &ws, &error);
        if (r < 0)
                return ctl_report_transport_error(c, r);
        if (r > 0)
                return ctl_report_daemon_error(error);
        if (!json_is_object(ws) || !(slug = ctl_str(ws, "slug", NULL))) {
                ctl_message("the daemon sent a malformed sample.install result");
                return CTL_EXIT_FAILURE;
        }

        rc = CTL_EXIT_OK;
        if (start) {
                r = ctl_call(c, "server.start", json_pack("{s:s}", "workspace", slug), CTL_USEC_INFINITY,
                             &server, &error);
                if (r == -EINTR) {
                        ctl_message("interrupted; the daemon carries on starting '%s'", slug);
                        return CTL_EXIT_FAILURE;
                }
                if (r < 0)
                        return ctl_report_transport_error(c, r);
                if (r == 0 && json_is_object(server) && json_object_set(ws, "server", server) < 0)
                        return ctl_oom();
                if (r > 0 || !ctl_server_serving(server))
                        rc = CTL_EXIT_FAILURE;
        }

        if (arg_json) {
                r = ctl_print_json(ws, true);
                if (r < 0)
                        return ctl_stdout_failed(r);
                if (error)
                        (void) ctl_report_daemon_error(error);
                return rc;
        }
        ctl_print_workspace_added(ws);
        if (start) {
                _cleanup_free_ char *line = ctl_server_line(slug, server, error);

                if (!line)
                        return ctl_oom();
                printf("%s\n", line);
        } else
                printf("Start it with 'djdeskctl server start %s'.\n", slug);
        r = finish_stdout();
        return r != CTL_EXIT_OK ? r : rc;
}

int verb_sample(int argc, char *argv[]) {
        static const CtlSubVerb subs[] = {
                { "ls", "list", sample_ls },
                { "install", NULL, sample_install },
        };

        return ctl_dispatch(argc, argv, "sample", help_sample, subs, ELEMENTSOF(subs), NULL);
}
