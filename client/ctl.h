/* SPDX-License-Identifier: MIT */
#pragma once

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "dj-macro.h"

/* djdeskctl exit statuses (see djdeskctl(1)). */
enum {
        CTL_EXIT_OK = 0,
        CTL_EXIT_FAILURE = 1, /* the daemon answered with an error (or any other failure) */
        CTL_EXIT_USAGE = 2,
        CTL_EXIT_UNREACHABLE = 3,
};

#define CTL_USEC_INFINITY     UINT64_MAX
#define CTL_CALL_TIMEOUT_USEC (30 * USEC_PER_SEC)

/* ---- command line (djdeskctl.c) ---- */

/* Global options, accepted before the command and after it. */
extern const char *arg_socket;
extern bool arg_json;

enum {
        CTL_ARG_VERSION = 0x100,
        CTL_ARG_SOCKET,
        CTL_ARG_JSON,
        _CTL_ARG_MAX, /* first value free for a command's own long options */
};

/* clang-format off */
#define CTL_COMMON_OPTIONS                                          \
        { "help",    no_argument,       NULL, 'h' },                \
        { "version", no_argument,       NULL, CTL_ARG_VERSION },    \
        { "socket",  required_argument, NULL, CTL_ARG_SOCKET },     \
        { "json",    no_argument,       NULL, CTL_ARG_JSON }
/* clang-format on */

/* Option string matching CTL_COMMON_OPTIONS (":" first: missing arguments are reported as ':'). */
#define CTL_COMMON_SHORTOPTS ":h"

/* getopt_long() that handles the common options itself (--help, --version, --socket, --json, and a missing
 * argument or an unknown option: a usage error). Returns the next option of the command's own (> 0), 0 after
 * the last option or, with *ret_exit set to true, when --help/--version was printed and the command should
 * stop, or -EINVAL on a usage error (already printed). */
int ctl_getopt(int argc, char *argv[], const char *shortopts, const struct option *options, const char *verb,
               void (*help)(void), bool *ret_exit);

/* Reports an option of the command's own that it does not handle (argv[optind - 1]). Returns -EINVAL. */
int ctl_unexpected_option(const char *verb, char *const argv[]);

/* Prints "djdeskctl: <message>" and the --help hint for verb (NULL: the global one). Returns -EINVAL. */
int ctl_usage_error(const char *verb, const char *fmt, ...) _printf_(2, 3);

/* Parses the options of a command that has only the common ones (shortopts: CTL_COMMON_SHORTOPTS, with a
 * leading "+" to stop at the first operand). Returns 1 with optind at the first operand, 0 when
 * --help/--version was printed, -EINVAL on a usage error (already printed). */
int ctl_parse_common(int argc, char *argv[], const char *shortopts, const char *verb, void (*help)(void));

/* Takes the one operand left after the options, argv[optind]. A usage error (already printed, -EINVAL) when
 * it is missing (saying missing), followed by another one, or empty (saying empty; NULL: empty is fine).
 * Returns 1 with *ret. */
int ctl_parse_operand(int argc, char *argv[], const char *verb, const char *missing, const char *empty,
                      const char **ret);

/* Parses the options of a command whose only option of its own is the flag --FLAG (sets *ret_flag), like
 * ctl_parse_common() (shortopts CTL_COMMON_SHORTOPTS). */
int ctl_parse_flag(int argc, char *argv[], const char *verb, void (*help)(void), const char *flag,
                   bool *ret_flag);

/* Parses the arguments of a command that only takes the common options. Returns 1 to run the command, 0
 * when --help/--version was printed, -EINVAL on a usage error (already printed). */
int ctl_parse_no_args(int argc, char *argv[], const char *verb, void (*help)(void));

/* ---- output helpers (djdeskctl.c) ---- */

/* Prints "djdeskctl: <message>" to stderr. */
void ctl_message(const char *fmt, ...) _printf_(1, 2);
/* Prints "djdeskctl: out of memory"; returns CTL_EXIT_FAILURE. */
int ctl_oom(void);
/* Writes a JSON value to stdout: pretty (indent 2) or compact, keys sorted, plus a newline, and flushes.
 * Returns 0, or -errno when stdout failed (-EPIPE when the reader went away). */
int ctl_print_json(json_t *j, bool pretty);
/* Flushes stdout; -errno on failure. */
int ctl_flush_stdout(void);
/* Maps a failure to write stdout to an exit status, printing a message unless the reader went away. */
int ctl_stdout_failed(int r);
/* Same, and -ENOMEM gives "out of memory" (for printers that allocate). */
int ctl_output_failed(int r);
/* ctl_print_json(j, true), as an exit status. */
int ctl_print_result(json_t *j);
/* ctl_flush_stdout(), as an exit status: what a command that printed text returns. */
int ctl_finish_stdout(void);
/* Prints "djdeskctl: the daemon sent a malformed <method> result"; returns CTL_EXIT_FAILURE. */
int ctl_malformed(const char *method);
/* The array member key of the result of method (borrowed), or NULL once reported as malformed. */
json_t *ctl_result_array(json_t *result, const char *key, const char *method);

/* ---- connection (ctl-conn.c) ---- */

typedef struct Ctl Ctl;

/* Connects to the daemon socket (--socket, else djdesk_socket_path()). On failure prints why, with the
 * hint to start the daemon, and returns -errno; callers then exit with CTL_EXIT_UNREACHABLE. */
int ctl_open(bool interruptible, Ctl **ret);
Ctl *ctl_free(Ctl *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Ctl *, ctl_free)

/* Blocks SIGINT and SIGTERM outside of waits on the socket, so a connection made with interruptible=true
 * returns -EINTR from its waits once either signal arrived. Call before ctl_open(). */
int ctl_setup_quit_signals(void);

/* Sends a request and waits (at most timeout_usec) for the response with the same id, skipping event
 * notifications. Returns 0 with *ret_result (a new reference), 1 with *ret_error (the "error" member of
 * the response, a new reference) when the daemon refused, or -errno: -ECONNRESET when the daemon closed
 * the connection, -ETIMEDOUT, -EBADMSG for a malformed response, -EINTR when interrupted. */
int ctl_call(Ctl *c, const char *method, json_t *params /* stolen, may be NULL */, uint64_t timeout_usec,
             json_t **ret_result, json_t **ret_error);

/* Sends a request without waiting for its response (pipelining): several requests may be in flight on
 * one connection, their responses read with ctl_read_response(). deadline is CLOCK_MONOTONIC µs or
 * CTL_USEC_INFINITY. Returns 0 with *ret_id (may be NULL), or -errno. */
int ctl_send(Ctl *c, const char *method, json_t *params /* stolen, may be NULL */, uint64_t deadline,
             json_int_t *ret_id);

/* Reads the next response, whichever request it answers: 0 with *ret_id and *ret_result, 1 with *ret_id
 * and *ret_error (*ret_id is 0 for an error about the connection itself, which has a null id), or the
 * same -errno as ctl_call(). Notifications are skipped or kept as for ctl_call(). */
int ctl_read_response(Ctl *c, uint64_t deadline, json_int_t *ret_id, json_t **ret_result,
                      json_t **ret_error);

/* With keep=true, event notifications that arrive while ctl_call() waits for its response are kept, in
 * order, and returned first by ctl_read_message(), instead of being skipped. */
void ctl_keep_notifications(Ctl *c, bool keep);
/* subscribe to topics (a JSON array of patterns, stolen), keeping the events from now on (they may come
 * before the reply). CTL_EXIT_OK once subscribed; "interrupted" (CTL_EXIT_FAILURE) when a signal cut the
 * call short; the call's own exit code otherwise. */
int ctl_subscribe(Ctl *c, json_t *topics);
/* workspace.list on c. Returns CTL_EXIT_OK with *ret_result (a new reference) and *ret_list (its
 * "workspaces" array, borrowed from *ret_result), or the exit status to use (already reported). */
int ctl_workspace_list(Ctl *c, json_t **ret_result, json_t **ret_list);

/* Reads the next message (kept notifications first, blank lines skipped), waiting until deadline
 * (CLOCK_MONOTONIC µs, or CTL_USEC_INFINITY). Same errors as ctl_call(). */
int ctl_read_message(Ctl *c, uint64_t deadline, json_t **ret);

/* Prints "djdeskctl: <message> (<kind>)" for a JSON-RPC error object; returns CTL_EXIT_FAILURE. */
int ctl_report_daemon_error(json_t *error);
/* Reports a failed ctl_call()/ctl_read_message() and returns the exit status to use. */
int ctl_report_transport_error(Ctl *c, int r);

/* ctl_call() that reports any failure. Returns CTL_EXIT_OK with *ret_result, or the exit status to use. With
 * quit_ok, being interrupted (SIGINT/SIGTERM, on an interruptible connection) is how the command ends:
 * CTL_EXIT_OK without a message, *ret_result left untouched (NULL). */
int ctl_call_checked(Ctl *c, const char *method, json_t *params /* stolen, may be NULL */,
                     uint64_t timeout_usec, bool quit_ok, json_t **ret_result);

/* ctl_call_checked() with quit_ok, for a call the command cannot do without: being interrupted is a failure
 * too, reported as "interrupted" (CTL_EXIT_FAILURE). Returns CTL_EXIT_OK with *ret_result, or the exit
 * status to use. */
int ctl_call_interruptible(Ctl *c, const char *method, json_t *params /* stolen, may be NULL */,
                           uint64_t timeout_usec, json_t **ret_result);

/* Connects to the daemon, calls method and reports any failure. Returns CTL_EXIT_OK with *ret_result, or
 * the exit status to use. */
int ctl_simple_call(const char *method, json_t *params /* stolen, may be NULL */, json_t **ret_result);

/* Waits for the next event notification, skipping other messages and events without a string "topic".
 * Returns CTL_EXIT_OK with *ret_params (the notification's params, a new reference), CTL_EXIT_OK with
 * *ret_params left NULL once interrupted (SIGINT/SIGTERM), or the exit status to use (already reported). */
int ctl_next_event(Ctl *c, json_t **ret_params);

/* Topics every command that waits on events deals with. */
#define CTL_TOPIC_SHUTDOWN "daemon.shutdown" /* the daemon shuts down: it closes the connection next */
#define CTL_TOPIC_LAGGED   "lagged"          /* the daemon cut a slow subscriber off */

/* For a command waiting on events for something to finish (run -f, export --wait, scan --wait): like
 * ctl_next_event(), until deadline (CLOCK_MONOTONIC µs, or CTL_USEC_INFINITY), but a daemon.shutdown event
 * only sets *shutdown and is not returned. Returns 0 with *ret_params (the notification's params, a new
 * reference), *ret_topic and *ret_data (its "topic" and "data", borrowed from it; data may be NULL), or the
 * -errno of ctl_read_message() (not reported: -EINTR, -ETIMEDOUT and -EMSGSIZE are the caller's to handle;
 * ctl_wait_failed() reports the others). */
int ctl_wait_event(Ctl *c, uint64_t deadline, bool *shutdown, json_t **ret_params, const char **ret_topic,
                   json_t **ret_data);
/* Reports a failed ctl_wait_event(): "the daemon shut down before <what> finished" (what formatted from fmt)
 * when the daemon closed the connection after announcing its shutdown, else ctl_report_transport_error().
 * Returns the exit status to use. */
int ctl_wait_failed(Ctl *c, int r, bool shutdown, const char *fmt, ...) _printf_(4, 5);

/* Opens a connection for a command that may wait long (server start, logs -f): sets up SIGINT/SIGTERM
 * handling first when interruptible. Returns CTL_EXIT_OK with *ret, or the exit status to use (the
 * failure was reported). */
int ctl_connect(bool interruptible, Ctl **ret);

/* ---- small helpers (ctl-util.c) ---- */

/* A string member of o, or def when missing or not a string. */
const char *ctl_str(json_t *o, const char *key, const char *def);
/* An integer member of o, or def. */
json_int_t ctl_int(json_t *o, const char *key, json_int_t def);

/* "2026-11-24T03:52:18.123456+01:00" (fraction optional, "Z" accepted) -> "HH:MM:SS" (or, with msec,
 * "HH:MM:SS.mmm") in the local time zone, into buf (at least 16 bytes). Anything that does not parse is
 * returned as it came; NULL gives "-". */
const char *ctl_clock(const char *iso, bool msec, char *buf, size_t n);

/* "3.2s", "412ms", "2m 5s" for a JSON number of seconds (a negative one as 0), into buf; "-" for anything
 * else. */
const char *ctl_format_seconds(json_t *v, char *buf, size_t n);

/* The width of s in columns: characters, not bytes (UTF-8 continuation bytes do not take a column). */
size_t ctl_text_width(const char *s);

/* A copy of s (NULL: "-") with control characters (C0, DEL, and C1 in UTF-8) shown as '?' and tabs as a
 * space: for text from the daemon shown to a person. NULL on OOM. */
char *ctl_clean_text(const char *s);

/* "2026-11-24 05:00:01" for an ISO 8601 time (the daemon's local time), as it came when it has another
 * shape, "-" for none. */
const char *ctl_format_when(const char *iso, char *buf, size_t n);

/* "512 B", "12.3 KiB", "4.0 MiB" for a byte count, into buf. */
const char *ctl_format_size(uint64_t bytes, char *buf, size_t n);

/* Prints "<label padded to width><formatted value>\n". */
void ctl_print_field(int width, const char *label, const char *fmt, ...) _printf_(3, 4);

/* Columns of text, printed aligned (by UTF-8 characters); the last column is not padded. */
typedef struct CtlTable CtlTable;
CtlTable *ctl_table_new(size_t n_columns, ...); /* the header: n_columns strings */
CtlTable *ctl_table_free(CtlTable *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(CtlTable *, ctl_table_free)
int ctl_table_add(CtlTable *t, ...); /* n_columns strings, NULL shown as "-" */
/* When stdout is a terminal, wrap the last column's text (at spaces) to the terminal's width, the
 * continuation lines aligned under it. Without a terminal every row stays one line. */
void ctl_table_wrap_last(CtlTable *t);
void ctl_table_print(CtlTable *t);

/* Runs argv[0] (looked up in PATH, no shell) with the default signal dispositions and an empty signal
 * mask, stdin from /dev/null, and waits for it. Returns its exit status (>= 0; 128+N when killed by
 * signal N), or -errno when it could not be started (-ENOENT: not found). */
int ctl_spawn_wait(char *const argv[]);

/* Hands target (a URL or an absolute path) to $DJDESK_OPENER, else xdg-open, and waits for it. When the
 * opener is missing, cannot run or fails, says so and where what (e.g. "the notebook") is, on stderr.
 * Returns CTL_EXIT_OK or CTL_EXIT_FAILURE. */
int ctl_open_with_opener(const char *target, const char *what);

/* Whether stdout is a terminal that takes colour (not with $NO_COLOR, not with TERM=dumb). */
bool ctl_colors(void);

/* ctl_parse_operand() for a workspace (its slug): "missing workspace", "the workspace must not be empty". */
int ctl_parse_ws_operand(int argc, char *argv[], const char *verb, const char **ret);
/* The common options, then an optional workspace operand ("VERB [WS]"): *ret stays NULL without one. Returns
 * as ctl_parse_common() (<= 0: done or a usage error), 1 to go on. */
int ctl_parse_optional_ws(int argc, char *argv[], const char *verb, void (*help)(void), const char **ret);
/* The params {"workspace": ws}. Returns CTL_EXIT_OK with *ret, or CTL_EXIT_USAGE when ws cannot be sent (not
 * UTF-8; reported). */
int ctl_workspace_params(const char *verb, const char *ws, json_t **ret);
/* Sets "note" in params to note (--note), unless NULL. Returns CTL_EXIT_OK, CTL_EXIT_USAGE when note is not
 * UTF-8, or CTL_EXIT_FAILURE on OOM (both reported). */
int ctl_params_set_note(const char *verb, json_t *params, const char *note);

/* Commands that make one call. Unless said otherwise they return CTL_EXIT_OK with what they say,
 * CTL_EXIT_OK with *ret_result left NULL when there is nothing more to do (--help/--version printed), or
 * the exit status to use (a usage error or a failure, already reported). */

/* A command without arguments (info, reload): ctl_parse_no_args(), then ctl_simple_call(). */
int ctl_call_command(int argc, char *argv[], const char *verb, void (*help)(void), const char *method,
                     json_t **ret_result);
/* A listing without arguments (ws ls, sample ls): a call whose result has an array, printed as a table. */
typedef struct CtlListing {
        const char *verb;
        void (*help)(void);
        const char *method;
        const char *key;                           /* the array member of the result */
        const char *empty;                         /* the line printed when the array is empty */
        int (*add_row)(CtlTable *t, json_t *item); /* ctl_table_add() for one item of the array */
} CtlListing;
/* Runs a listing: ctl_call_command(), then the result with --json, else the line l->empty or the table t
 * (made with its header; NULL: out of memory) with a row for each item. Returns the exit status. */
int ctl_list_command(int argc, char *argv[], const CtlListing *l, CtlTable *t);
/* "VERB WS" (ws show, url, open): the common options and one workspace, then ctl_simple_call() with
 * {"workspace": WS}. *ret_ws is argv[optind]. */
int ctl_workspace_command(int argc, char *argv[], const char *verb, void (*help)(void), const char *method,
                          const char **ret_ws, json_t **ret_result);

/* A sub-command of a command with sub-commands ("ws add", "server start"). */
typedef struct CtlSubVerb {
        const char *name;
        const char *alias; /* or NULL */
        int (*run)(int argc, char *argv[]);
} CtlSubVerb;

/* Parses the common options of VERB up to its sub-command, then runs the sub-command with argv starting
 * at its name (optind reset). Without a sub-command: def when given, else a usage error. */
int ctl_dispatch(int argc, char *argv[], const char *verb, void (*help)(void), const CtlSubVerb *subs,
                 size_t n_subs, const char *def);

/* ---- shared by the workspace, server and sample commands ---- */

/* --start after ws add or sample install: server.start for the workspace just registered (ws, which has a
 * slug), whose server JSON is also set as ws["server"]. Returns CTL_EXIT_OK when it serves,
 * CTL_EXIT_FAILURE when it did not start (*ret_server or *ret_error say why), or -errno from ctl_call() for
 * the caller to report. */
int ctl_start_added(Ctl *c, json_t *ws, json_t **ret_server, json_t **ret_error);
/* Prints what ws add or sample install did: with --json the workspace (and error, if any, to stderr), else
 * its summary (slug, path, settings module and where it came from, interpreter and Django version) and,
 * when started, its server line, otherwise how to start it. Returns the exit status of the printing. */
int ctl_print_added(json_t *ws, bool started, json_t *server, json_t *error);
/* "atlas: ready http://127.0.0.1:38211/", "atlas: failed: <reason>"..., for a server JSON object
 * (a NULL server and an error object give "SLUG: failed: MESSAGE"). malloc'ed, NULL on OOM. */
char *ctl_server_line(const char *slug, json_t *server, json_t *error);
/* Whether a server JSON object says it serves (ready or reloading, with a URL). */
bool ctl_server_serving(json_t *server);
/* Whether a URL may be handed to an opener: "http://" followed by a host, no whitespace or control
 * characters, at most 2048 bytes. */
bool ctl_url_is_openable(const char *url);

/* ---- shared by the run commands and watch (ctl-run.c) ---- */

/* A one-line summary of a run.* event for watch's human form ("#7 atlas/check succeeded (exit 0, 412ms)"):
 * 1 with *ret (malloc'ed), 0 with *ret NULL for a topic it does not summarise, -ENOMEM. */
int ctl_run_event_summary(const char *topic, json_t *data, char **ret);

/* ---- commands ---- */

int verb_info(int argc, char *argv[]);
void help_info(void);
int verb_reload(int argc, char *argv[]);
void help_reload(void);
int verb_watch(int argc, char *argv[]);
void help_watch(void);
int verb_ws(int argc, char *argv[]);
void help_ws(void);
int verb_server(int argc, char *argv[]);
void help_server(void);
int verb_url(int argc, char *argv[]);
void help_url(void);
int verb_open(int argc, char *argv[]);
void help_open(void);
int verb_logs(int argc, char *argv[]);
void help_logs(void);
int verb_sample(int argc, char *argv[]);
void help_sample(void);
int verb_presets(int argc, char *argv[]);
void help_presets(void);
int verb_run(int argc, char *argv[]);
void help_run(void);
int verb_runs(int argc, char *argv[]);
void help_runs(void);
int verb_run_log(int argc, char *argv[]);
void help_run_log(void);
int verb_cancel(int argc, char *argv[]);
void help_cancel(void);
int verb_status(int argc, char *argv[]);
void help_status(void);
int verb_scan(int argc, char *argv[]);
void help_scan(void);
int verb_schema(int argc, char *argv[]);
void help_schema(void);
int verb_templates(int argc, char *argv[]);
void help_templates(void);
int verb_export(int argc, char *argv[]);
void help_export(void);
int verb_exports(int argc, char *argv[]);
void help_exports(void);
int verb_preview(int argc, char *argv[]);
void help_preview(void);
