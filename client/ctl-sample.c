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

static int sample_ls_row(CtlTable *t, json_t *s) {
        return ctl_table_add(t, ctl_str(s, "name", NULL),
                             json_is_true(json_object_get(s, "installed")) ? "yes" : "no",
                             ctl_str(s, "workspace", NULL), ctl_str(s, "title", NULL));
}

static int sample_ls(int argc, char *argv[]) {
        static const CtlListing listing = {
                .verb = "sample ls",
                .help = help_sample_ls,
                .method = "sample.list",
                .key = "samples",
                .empty = "No samples found (is the daemon's samples_dir right? see 'djdeskd "
                         "--print-config').",
                .add_row = sample_ls_row,
        };
        _cleanup_(ctl_table_freep) CtlTable *t = ctl_table_new(4, "NAME", "INSTALLED", "WORKSPACE", "TITLE");

        return ctl_list_command(argc, argv, &listing, t);
}

static int sample_install(int argc, char *argv[]) {
        const char *verb = "sample install", *name = NULL;
        _cleanup_(ctl_freep) Ctl *c = NULL;
        json_auto_t *ws = NULL, *error = NULL, *server = NULL, *params = NULL;
        bool start = false;
        int r, rc;

        r = ctl_parse_flag(argc, argv, verb, help_sample_install, "start", &start);
        if (r > 0)
                r = ctl_parse_operand(argc, argv, verb, "missing NAME (see 'djdeskctl sample ls')", NULL,
                                      &name);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        params = isempty(name) ? NULL : json_pack("{s:s}", "name", name);
        if (!params) {
                (void) ctl_usage_error(verb, "invalid NAME '%s'", name);
                return CTL_EXIT_USAGE;
        }

        /* Copying and finding an interpreter take a moment; starting takes as long as Django does. */
        r = ctl_connect(true, &c);
        if (r != CTL_EXIT_OK)
                return r;
        r = ctl_call_checked(c, "sample.install", TAKE_PTR(params), CTL_USEC_INFINITY, false, &ws);
        if (r != CTL_EXIT_OK)
                return r;
        if (!ctl_str(ws, "slug", NULL))
                return ctl_malformed("sample.install");

        rc = CTL_EXIT_OK;
        if (start) {
                rc = ctl_start_added(c, ws, &server, &error);
                if (rc == -EINTR) {
                        ctl_message("interrupted; the daemon carries on starting '%s'",
                                    ctl_str(ws, "slug", ""));
                        return CTL_EXIT_FAILURE;
                }
                if (rc < 0)
                        return ctl_report_transport_error(c, rc);
        }
        r = ctl_print_added(ws, start, server, error);
        return r != CTL_EXIT_OK ? r : rc;
}

int verb_sample(int argc, char *argv[]) {
        static const CtlSubVerb subs[] = {
                { "ls", "list", sample_ls },
                { "install", NULL, sample_install },
        };

        return ctl_dispatch(argc, argv, "sample", help_sample, subs, ELEMENTSOF(subs), NULL);
}
