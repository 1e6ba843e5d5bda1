/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dj-error.h"
#include "dj-macro.h"

typedef struct Daemon Daemon;
typedef struct Server Server;
typedef struct Workspace Workspace;

/* stopped -> starting -> (migrating ->) ready <-> reloading -> stopping -> stopped, plus crashed (waiting
 * to restart) and failed (gave up, with a reason). Every transition is published as server.state. */
typedef enum ServerState {
        SERVER_STOPPED,
        SERVER_STARTING,
        SERVER_MIGRATING,
        SERVER_READY,
        SERVER_RELOADING,
        SERVER_STOPPING,
        SERVER_CRASHED,
        SERVER_FAILED,
        _SERVER_STATE_MAX,
        _SERVER_STATE_INVALID = -EINVAL,
} ServerState;

const char *server_state_to_string(ServerState s);
ServerState server_state_from_string(const char *s);

/* How an asynchronous server operation ends: err is NULL on success (start: ready; stop: stopped). */
typedef void (*ServerDoneFn)(Server *s, const DjError *err, void *userdata);

int server_new(Workspace *w, Server **ret);
/* Frees the server; a running one is killed (SIGKILL to its group) and reaped first. */
Server *server_free(Server *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Server *, server_free);

/* Starts the server, replying through done once it is ready (with the URL) or failed. Starting a server
 * that is already ready replies at once; one that is starting adds done to the waiters. */
int server_start(Server *s, ServerDoneFn done, void *userdata);
/* SIGTERM to its process group, SIGKILL after the grace period; done once stopped. */
int server_stop(Server *s, ServerDoneFn done, void *userdata);
int server_restart(Server *s, ServerDoneFn done, void *userdata);
/* Forgets a caller's pending done callback (its OpCall went away). */
void server_cancel_waiter(Server *s, void *userdata);

ServerState server_state(const Server *s);
const char *server_url(const Server *s); /* "http://127.0.0.1:PORT/" while serving, else NULL */
unsigned server_port(const Server *s);   /* the port bound, 0 when none */
pid_t server_pid(const Server *s);       /* the serving process, 0 when none */
unsigned server_restarts(const Server *s);
const char *server_last_error(const Server *s); /* NULL when none */

/* {state, url, port, pid, restarts, last_error, started_at, ready_at, mode} */
json_t *server_to_json(const Server *s);
/* {workspace, lines: [{n, time, stream, level, text}], next} from the ring, or from the store for lines
 * older than the ring holds. since: lines with n > since; limit: at most that many (the newest). */
json_t *server_logs(Server *s, uint64_t since, uint64_t limit, DjError *reterr);

/* Log lines. */
typedef enum ServerLogLevel {
        SERVER_LOG_INFO,
        SERVER_LOG_WARNING,
        SERVER_LOG_ERROR,
        _SERVER_LOG_LEVEL_MAX,
        _SERVER_LOG_LEVEL_INVALID = -EINVAL,
} ServerLogLevel;

typedef enum ServerLogKind {
        SERVER_LOG_KIND_LOG,       /* anything else */
        SERVER_LOG_KIND_REQUEST,   /* a runserver-style request line: "GET / HTTP/1.1" 200 831 */
        SERVER_LOG_KIND_TRACEBACK, /* a Python traceback, through its exception line */
        _SERVER_LOG_KIND_MAX,
        _SERVER_LOG_KIND_INVALID = -EINVAL,
} ServerLogKind;

const char *server_log_level_to_string(ServerLogLevel l); /* "info", "warning", "error" */
ServerLogLevel server_log_level_from_string(const char *s);
const char *server_log_kind_to_string(ServerLogKind k); /* "log", "request", "traceback" */

/* Classifies one line of a server's output. in_traceback carries the state from one line to the next of
 * the same stream (start with false). Request lines get their HTTP status in *ret_status (else 0) and the
 * level info (< 400), warning (4xx) or error (5xx); tracebacks are errors. Other lines are errors when they
 * are a Python exception line (^\w+(\.\w+)*(Error|Exception):<space>, ^[A-Za-z_.]*Error$), start with
 * "error:" in any case (also after "djdesk-serve: "), "ERRORS:" or Django's "Internal Server Error: ", or
 * have the word ERROR or CRITICAL; warnings when they start with "warning:" in any case (also after
 * "djdesk-serve: "), "WARNINGS:" or one of Django's 4xx messages ("Not Found: ", "Bad Request: ",
 * "Forbidden (", "Method Not Allowed ("), or have the word WARNING or "Warning:" (Python's warnings);
 * else info. */
void server_log_classify(const char *text, bool *in_traceback, ServerLogLevel *ret_level,
                         ServerLogKind *ret_kind, int *ret_status);

/* The --grace given to djdesk-serve, in ms: how long it lets the requests in flight finish after SIGTERM.
 * Half a second less than the stop timeout (after which the daemon sends SIGKILL), at least half a second. */
uint64_t server_serve_grace_msec(uint64_t stop_timeout_sec);

/* Daemon-wide. */
/* Starts every autostart workspace's server (after orphans were reaped). */
void servers_autostart(Daemon *d);
/* Stops every running server; done(userdata) runs once all are stopped. Used by shutdown. */
void servers_stop_all(Daemon *d, void (*done)(void *userdata), void *userdata);
