/* SPDX-License-Identifier: MIT */
/* djdeskctl: command-line client for djdeskd. Talks JSON-RPC over the daemon's Unix socket only. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "ctl.h"

const char *arg_socket = NULL;
bool arg_json = false;

typedef struct Verb {
        const char *name;
        const char *args; /* synopsis after the name, for the command list */
        const char *summary;
        int (*run)(int argc, char *argv[]);
        void (*help)(void);
} Verb;

static int verb_help(int argc, char *argv[]);
static void help_help(void);

static const Verb verbs[] = {
        { "ws", "add|ls|show|rm", "Register Django projects and look at them", verb_ws, help_ws },
        { "server", "start|stop|restart|status WS...|--all", "Control workspaces' Django servers",
          verb_server, help_server },
        { "url", "WS", "Print the URL a workspace's server serves on", verb_url, help_url },
        { "open", "WS", "Open a workspace's server in the browser", verb_open, help_open },
        { "logs", "WS [-f] [-n N]", "Print (and follow) a workspace's server log", verb_logs, help_logs },
        { "sample", "ls|install NAME [--start]", "List and install the sample projects", verb_sample,
          help_sample },
        { "presets", "[WS]", "List the presets: the commands a run may execute", verb_presets,
          help_presets },
        { "run", "WS PRESET [--param K=V]... [--confirm] [-f]", "Queue a run of a preset (and follow it)",
          verb_run, help_run },
        { "runs", "[WS] [--status S] [-n N]", "List runs, newest first", verb_runs, help_runs },
        { "run-log", "ID [-f]", "Print (and follow) a run's output", verb_run_log, help_run_log },
        { "cancel", "ID", "Cancel a queued or running run", verb_cancel, help_cancel },
        { "status", "[WS]", "Show a workspace's status: server, insights, apps, runs, log", verb_status,
          help_status },
        { "scan", "WS [KIND] [--wait]", "Inspect a project again: schema, migrations, checks", verb_scan,
          help_scan },
        { "schema", "WS [--dot]", "List a project's models and relations (or draw them)", verb_schema,
          help_schema },
        { "templates", "", "List the Data Lab templates: the notebooks export writes", verb_templates,
          help_templates },
        { "export", "WS TEMPLATE [--wait] [--open]", "Export a Data Lab notebook of a workspace",
          verb_export, help_export },
        { "exports", "WS", "List a workspace's exported notebooks", verb_exports, help_exports },
        { "preview", "WS NAME [--open]", "Write (and open) an HTML page of an exported notebook",
          verb_preview, help_preview },
        { "info", "", "Show daemon information", verb_info, help_info },
        { "watch", "[--topic PATTERN]... [--since SEQ]", "Print events as they happen", verb_watch,
          help_watch },
        { "reload", "", "Reload the daemon's configuration", verb_reload, help_reload },
        { "help", "[COMMAND]", "Show help for a command", verb_help, help_help },
};

static const Verb *verb_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, name))
                        return &verbs[i];
        return NULL;
}

void ctl_message(const char *fmt, ...) {
        va_list ap;

        (void) fflush(stdout); /* keep the order of interleaved stdout/stderr output */
        (void) fputs("djdeskctl: ", stderr);
        va_start(ap, fmt);
        (void) vfprintf(stderr, fmt, ap);
        va_end(ap);
        (void) fputc('\n', stderr);
}

int ctl_oom(void) {
        ctl_message("out of memory");
        return CTL_EXIT_FAILURE;
}

int ctl_usage_error(const char *verb, const char *fmt, ...) {
        va_list ap;

        (void) fputs("djdeskctl: ", stderr);
        va_start(ap, fmt);
        (void) vfprintf(stderr, fmt, ap);
        va_end(ap);
        (void) fprintf(stderr, "\nTry 'djdeskctl%s%s --help'.\n", verb ? " " : "", verb ?: "");
        return -EINVAL;
}

int ctl_flush_stdout(void) {
        if (fflush(stdout) == 0 && !ferror(stdout))
                return 0;
        /* A failed write in an earlier printf() left its errno (EPIPE, ENOSPC...) and the error flag. */
        return errno > 0 ? -errno : -EIO;
}

int ctl_print_json(json_t *j, bool pretty) {
        size_t flags = (pretty ? JSON_INDENT(2) : JSON_COMPACT) | JSON_SORT_KEYS | JSON_ENCODE_ANY;

        errno = 0;
        if (json_dumpf(j, stdout, flags) < 0 || fputc('\n', stdout) == EOF)
                return errno > 0 ? -errno : -EIO;
        return ctl_flush_stdout();
}

int ctl_stdout_failed(int r) {
        if (r == -EPIPE)
                return CTL_EXIT_OK; /* whoever read our output went away: nothing left to do */
        ctl_message("cannot write to standard output: %s", strerror(-r));
        return CTL_EXIT_FAILURE;
}

int ctl_output_failed(int r) {
        return r == -ENOMEM ? ctl_oom() : ctl_stdout_failed(r);
}

int ctl_print_result(json_t *j) {
        int r = ctl_print_json(j, true);

        return r < 0 ? ctl_stdout_failed(r) : CTL_EXIT_OK;
}

int ctl_finish_stdout(void) {
        int r = ctl_flush_stdout();

        return r < 0 ? ctl_stdout_failed(r) : CTL_EXIT_OK;
}

int ctl_malformed(const char *method) {
        ctl_message("the daemon sent a malformed %s result", method);
        return CTL_EXIT_FAILURE;
}

json_t *ctl_result_array(json_t *result, const char *key, const char *method) {
        json_t *a = json_object_get(result, key);

        if (json_is_array(a))
                return a;
        (void) ctl_malformed(method);
        return NULL;
}

static void print_version(void) {
        printf("djdeskctl %s\n", DJDESK_VERSION);
}

static void help_main(void) {
        printf("Usage: djdeskctl [OPTIONS] COMMAND [ARGS]\n"
               "\n"
               "Query and control djdeskd, the djdesk daemon, over its socket.\n"
               "\n"
               "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++) {
                int n = printf("  %s%s%s", verbs[i].name, isempty(verbs[i].args) ? "" : " ", verbs[i].args);

                /* The summary in a column, or on the next line under a long synopsis */
                if (n >= 0 && n < 21)
                        printf("%*s%s\n", 21 - n, "", verbs[i].summary);
                else
                        printf("\n%21s%s\n", "", verbs[i].summary);
        }
        printf("\n"
               "Options:\n"
               "  -h, --help         Show this help (after a command: that command's help)\n"
               "      --version      Show the version\n"
               "      --socket PATH  Daemon socket (default: $DJDESK_SOCKET, else\n"
               "                     $XDG_RUNTIME_DIR/djdesk/daemon.sock)\n"
               "      --json         Print JSON instead of text\n"
               "\n"
               "Run 'djdeskctl COMMAND --help' for a command's own options.\n"
               "\n"
               "Exit status: 0 success, 1 the daemon answered with an error, 2 usage error,\n"
               "3 the daemon is unreachable.\n");
}

static void help_help(void) {
        printf("Usage: djdeskctl help [COMMAND]\n"
               "\n"
               "Show the general help, or the help of COMMAND.\n");
}

/* Handles one getopt_long() result shared by every command. Returns 1 when handled (sets *ret_exit to true
 * when --help/--version was printed and the command should stop), 0 when the option is the command's own,
 * -EINVAL on a usage error (already printed). */
static int parse_common_option(int c, const char *verb, char *const argv[], void (*help)(void),
                               bool *ret_exit) {
        const char *arg = argv[optind - 1];

        switch (c) {
        case 'h':
                help();
                *ret_exit = true;
                return 1;
        case CTL_ARG_VERSION:
                print_version();
                *ret_exit = true;
                return 1;
        case CTL_ARG_SOCKET:
                if (isempty(optarg))
                        return ctl_usage_error(verb, "--socket needs a path");
                arg_socket = optarg;
                return 1;
        case CTL_ARG_JSON:
                arg_json = true;
                return 1;
        case ':':
                return ctl_usage_error(verb, "option '%s' requires an argument", arg);
        case '?':
                if (optopt > 0 && optopt < 0x80 && isalnum(optopt))
                        return ctl_usage_error(verb, "invalid option '-%c'", optopt);
                if (optopt >= 0x100) /* a known long option given "=value" */
                        return ctl_usage_error(verb, "option '%.*s' does not take an argument",
                                               (int) strcspn(arg, "="), arg);
                return ctl_usage_error(verb, "unrecognized option '%s'", arg);
        default:
                return 0;
        }
}

int ctl_getopt(int argc, char *argv[], const char *shortopts, const struct option *options, const char *verb,
               void (*help)(void), bool *ret_exit) {
        int c, r;

        while ((c = getopt_long(argc, argv, shortopts, options, NULL)) >= 0) {
                r = parse_common_option(c, verb, argv, help, ret_exit);
                if (r < 0)
                        return r;
                if (*ret_exit)
                        return 0;
                if (r == 0)
                        return c;
        }
        return 0;
}

int ctl_unexpected_option(const char *verb, char *const argv[]) {
        return ctl_usage_error(verb, "unexpected option '%s'", argv[optind - 1]);
}

/* The options of a command whose only own option is at most one flag, ARG_FLAG. */
#define ARG_FLAG _CTL_ARG_MAX

static int parse_options(int argc, char *argv[], const char *shortopts, const struct option *options,
                         const char *verb, void (*help)(void), bool *ret_flag) {
        bool done = false;
        int c;

        while ((c = ctl_getopt(argc, argv, shortopts, options, verb, help, &done)) > 0) {
                if (c != ARG_FLAG || !ret_flag)
                        return ctl_unexpected_option(verb, argv);
                *ret_flag = true;
        }
        if (c < 0 || done)
                return c;
        return 1;
}

int ctl_parse_common(int argc, char *argv[], const char *shortopts, const char *verb, void (*help)(void)) {
        static const struct option options[] = {
                CTL_COMMON_OPTIONS,
                {},
        };

        return parse_options(argc, argv, shortopts, options, verb, help, NULL);
}

int ctl_parse_flag(int argc, char *argv[], const char *verb, void (*help)(void), const char *flag,
                   bool *ret_flag) {
        const struct option options[] = {
                CTL_COMMON_OPTIONS,
                { flag, no_argument, NULL, ARG_FLAG },
                {},
        };

        return parse_options(argc, argv, CTL_COMMON_SHORTOPTS, options, verb, help, ret_flag);
}

int ctl_parse_operand(int argc, char *argv[], const char *verb, const char *missing, const char *empty,
                      const char **ret) {
        if (optind >= argc)
                return ctl_usage_error(verb, "%s", missing);
        if (argc - optind > 1)
                return ctl_usage_error(verb, "unexpected argument '%s'", argv[optind + 1]);
        if (empty && isempty(argv[optind]))
                return ctl_usage_error(verb, "%s", empty);
        *ret = argv[optind];
        return 1;
}

int ctl_parse_no_args(int argc, char *argv[], const char *verb, void (*help)(void)) {
        int r;

        r = ctl_parse_common(argc, argv, CTL_COMMON_SHORTOPTS, verb, help);
        if (r <= 0)
                return r;
        if (optind < argc)
                return ctl_usage_error(verb, "unexpected argument '%s'", argv[optind]);
        return 1;
}

static int verb_help(int argc, char *argv[]) {
        const Verb *v;
        int r;

        r = ctl_parse_common(argc, argv, CTL_COMMON_SHORTOPTS, "help", help_help);
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
        if (optind >= argc) {
                help_main();
                return CTL_EXIT_OK;
        }
        if (argc - optind > 1) {
                (void) ctl_usage_error("help", "too many arguments");
                return CTL_EXIT_USAGE;
        }
        v = verb_find(argv[optind]);
        if (!v) {
                (void) ctl_usage_error(NULL, "unknown command '%s'", argv[optind]);
                return CTL_EXIT_USAGE;
        }
        v->help();
        return CTL_EXIT_OK;
}

int main(int argc, char *argv[]) {
        const Verb *v;
        int c, r;

        /* A daemon hanging up on us must be an error from write(), not a silent death. */
        (void) signal(SIGPIPE, SIG_IGN);
        opterr = 0; /* we print our own messages, prefixed "djdeskctl:" */

        /* "+": global options end at the command; the command parses the rest itself. */
        r = ctl_parse_common(argc, argv, "+" CTL_COMMON_SHORTOPTS, NULL, help_main);
        if (r < 0)
                return CTL_EXIT_USAGE;
        if (r == 0)
                r = CTL_EXIT_OK;
        else if (optind >= argc) {
                (void) ctl_usage_error(NULL, "missing command");
                return CTL_EXIT_USAGE;
        } else {
                v = verb_find(argv[optind]);
                if (!v) {
                        (void) ctl_usage_error(NULL, "unknown command '%s'", argv[optind]);
                        return CTL_EXIT_USAGE;
                }
                argc -= optind;
                argv += optind;
                optind = 0; /* full re-initialisation, for the command's own option string */
                r = v->run(argc, argv);
        }

        c = ctl_flush_stdout();
        if (c < 0 && r == CTL_EXIT_OK)
                r = ctl_stdout_failed(c);
        return r;
}
