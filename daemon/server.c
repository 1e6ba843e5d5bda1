/* SPDX-License-Identifier: MIT */
/* The Django server's whole life: port, spawn, readiness, migrations, reload without downtime, crash
 * restart with back-off, stop, and the server log.
 *
 * Processes. A server has at most one *main* process (the one serving, or starting to), at most one reload
 * *candidate* (a new process on the same listening socket, waiting for its READY=1), in runserver mode a
 * *migrate* process before the main one, and any number of *retiring* processes: SIGTERMed, finishing the
 * requests they accepted, SIGKILLed after stop_timeout_sec. Every process is a Proc on Server.procs until
 * its exit has been seen, so a stop is over when that list is empty.
 *
 * The listening socket. Serve mode: bound by us once per start, handed to every process as fd 3, kept
 * across reloads and crash restarts (same URL), closed when the server stops or fails. Runserver mode:
 * bound to pick the port (same rules) and closed right before manage.py runserver starts, which binds it
 * itself: a small window in which another program could take the port (runserver then fails and the crash
 * loop reports it). That is the price of running Django's own command; serve mode has no such window. */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "child.h"
#include "config-file.h"
#include "daemon.h"
#include "dj-log.h"
#include "dj-util.h"
#include "events.h"
#include "loop.h"
#include "server.h"
#include "store.h"
#include "strv.h"
#include "watch.h"
#include "workspace.h"

#define CRASH_WINDOW_USEC       (60 * USEC_PER_SEC)
#define CRASH_MAX               5 /* more crashes than this within the window: failed */
#define BACKOFF_FIRST_USEC      (500 * USEC_PER_MSEC)
#define BACKOFF_MAX_USEC        (30 * USEC_PER_SEC)
#define TAIL_MAX                5 /* stderr lines kept per process for error reports */
#define LOG_FLUSH_USEC          (50 * USEC_PER_MSEC)
#define LOG_FLUSH_LINES         100
#define LOG_LIMIT_MAX           10000 /* server.logs never returns more lines than this */
#define PROBE_FIRST_USEC        (5 * USEC_PER_MSEC)
#define PROBE_MAX_USEC          (100 * USEC_PER_MSEC)
#define LISTEN_BACKLOG          128
#define SERVE_GRACE_MARGIN_MSEC 500 /* djdesk-serve gives up this long before the SIGKILL */
#define SERVE_GRACE_MIN_MSEC    500

typedef enum ProcRole {
        PROC_MAIN,      /* serving, or starting to */
        PROC_CANDIDATE, /* a reload's new process, not ready yet */
        PROC_MIGRATE,   /* runserver mode: manage.py migrate before runserver */
        PROC_RETIRING,  /* told to go; its exit only matters for a stop */
} ProcRole;

typedef struct Proc Proc;
struct Proc {
        Server *server;
        Child *child;
        ProcRole role;
        pid_t pid;
        char *tail[TAIL_MAX]; /* the last stderr lines that are not request lines */
        size_t tail_next, n_tail;
        bool in_traceback[_CHILD_STREAM_MAX];
        Proc *prev, *next;
};

typedef struct LogLine {
        uint64_t n;
        uint64_t time; /* µs, CLOCK_REALTIME */
        ChildStream stream;
        ServerLogLevel level;
        ServerLogKind kind;
        int status;
        char *text;
} LogLine;

typedef struct Waiter Waiter;
struct Waiter {
        ServerDoneFn done;
        void *userdata;
        Waiter *next;
};

struct Server {
        Workspace *w;
        ServerState state;
        ServerMode mode; /* of the current (or last) run */

        int listen_fd;
        unsigned port;
        char url[64];

        Proc *procs;
        Proc *main, *candidate;
        bool migrate; /* this start applies migrations */

        LoopSource *deadline;        /* the start deadline */
        LoopSource *reload_deadline; /* the candidate's deadline */
        LoopSource *restart_timer;   /* crashed: the back-off */
        Watch *watch;
        bool reload_pending;   /* a change arrived while starting or reloading */
        bool start_after_stop; /* restart: start again once stopped */

        unsigned restarts;
        uint64_t crashes[CRASH_MAX + 1]; /* CLOCK_MONOTONIC µs of the recent crashes, oldest first */
        size_t n_crashes;
        char *last_error;
        char *reason; /* why it is crashed or failed */
        uint64_t started_at, ready_at;

        /* runserver readiness probe */
        LoopSource *probe_timer, *probe_io;
        int probe_fd;
        uint64_t probe_delay;
        bool probe_sent;
        char probe_buf[128];
        size_t probe_len;

        /* log: a ring of the newest lines; the newest n_pending of them are not flushed yet */
        LogLine *ring;
        size_t ring_size, ring_start, ring_n, n_pending;
        uint64_t next_n;
        LoopSource *flush_timer;

        Waiter *start_waiters, *stop_waiters;
        bool *freed; /* set when a callback freed us */
};

static const char *const server_state_table[_SERVER_STATE_MAX] = {
        [SERVER_STOPPED] = "stopped", [SERVER_STARTING] = "starting",   [SERVER_MIGRATING] = "migrating",
        [SERVER_READY] = "ready",     [SERVER_RELOADING] = "reloading", [SERVER_STOPPING] = "stopping",
        [SERVER_CRASHED] = "crashed", [SERVER_FAILED] = "failed",
};

const char *server_state_to_string(ServerState s) {
        return s >= 0 && s < _SERVER_STATE_MAX ? server_state_table[s] : NULL;
}

ServerState server_state_from_string(const char *s) {
        for (ServerState i = 0; s && i < _SERVER_STATE_MAX; i++)
                if (streq(server_state_table[i], s))
                        return i;
        return _SERVER_STATE_INVALID;
}

static const char *const log_level_table[_SERVER_LOG_LEVEL_MAX] = {
        [SERVER_LOG_INFO] = "info",
        [SERVER_LOG_WARNING] = "warning",
        [SERVER_LOG_ERROR] = "error",
};

const char *server_log_level_to_string(ServerLogLevel l) {
        return l >= 0 && l < _SERVER_LOG_LEVEL_MAX ? log_level_table[l] : NULL;
}

ServerLogLevel server_log_level_from_string(const char *s) {
        for (ServerLogLevel i = 0; s && i < _SERVER_LOG_LEVEL_MAX; i++)
                if (streq(log_level_table[i], s))
                        return i;
        return _SERVER_LOG_LEVEL_INVALID;
}

static const char *const log_kind_table[_SERVER_LOG_KIND_MAX] = {
        [SERVER_LOG_KIND_LOG] = "log",
        [SERVER_LOG_KIND_REQUEST] = "request",
        [SERVER_LOG_KIND_TRACEBACK] = "traceback",
};

const char *server_log_kind_to_string(ServerLogKind k) {
        return k >= 0 && k < _SERVER_LOG_KIND_MAX ? log_kind_table[k] : NULL;
}

/* ---- log line classification (pure) ---- */

/* The status of a request line: '"METHOD TARGET HTTP/x.y" NNN' (runserver and djdesk-serve), else 0. */
static int request_status(const char *t) {
        const char *q = strchr(t, '"'), *p;
        size_t k = 0;

        if (!q)
                return 0;
        q++;
        while (q[k] >= 'A' && q[k] <= 'Z')
                k++;
        if (k == 0 || q[k] != ' ')
                return 0;
        p = strstr(q + k, " HTTP/");
        if (!p)
                return 0;
        p += strlen(" HTTP/");
        while ((*p >= '0' && *p <= '9') || *p == '.')
                p++;
        if (p[0] != '"' || p[1] != ' ')
                return 0;
        p += 2;
        if (!(p[0] >= '1' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9'))
                return 0;
        if (p[3] != '\0' && p[3] != ' ')
                return 0;
        return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

static bool startswith(const char *s, const char *prefix) {
        return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool word_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Whether word occurs in s as a whole word (no \w on either side). */
static bool has_word(const char *s, const char *word) {
        size_t n = strlen(word);

        for (const char *p = s; (p = strstr(p, word)); p++)
                if ((p == s || !word_char(p[-1])) && !word_char(p[n]))
                        return true;
        return false;
}

/* Whether the len bytes at s end in suffix, with at least one byte before it. */
static bool ends_in_after_one(const char *s, size_t len, const char *suffix) {
        size_t m = strlen(suffix);

        return len > m && strncmp(s + len - m, suffix, m) == 0;
}

/* A Python exception line: ^\w+(\.\w+)*(Error|Exception):<space> ("ValueError: x",
 * "django.db.utils.OperationalError: no such table: x"), or ^[A-Za-z_.]*Error$ ("RecursionError"). */
static bool exception_line(const char *t) {
        const char *p, *last = t;
        size_t n;

        n = strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_.");
        if (t[n] == '\0' && n >= strlen("Error") && streq(t + n - strlen("Error"), "Error"))
                return true;

        for (p = t;; p++) {
                if (word_char(*p))
                        continue;
                if (*p != '.' || p == last)
                        break;
                last = p + 1; /* the next component */
        }
        if (p == last || p[0] != ':' || p[1] != ' ')
                return false;
        return ends_in_after_one(last, (size_t) (p - last), "Error") ||
               ends_in_after_one(last, (size_t) (p - last), "Exception");
}

void server_log_classify(const char *text, bool *in_traceback, ServerLogLevel *ret_level,
                         ServerLogKind *ret_kind, int *ret_status) {
        ServerLogLevel level = SERVER_LOG_INFO;
        ServerLogKind kind = SERVER_LOG_KIND_LOG;
        int status = 0;

        if (startswith(text, "Traceback (most recent call last):") ||
            startswith(text, "During handling of the above exception") ||
            startswith(text, "The above exception was the direct cause")) {
                *in_traceback = true;
                kind = SERVER_LOG_KIND_TRACEBACK;
                level = SERVER_LOG_ERROR;
        } else if (*in_traceback) {
                kind = SERVER_LOG_KIND_TRACEBACK;
                level = SERVER_LOG_ERROR;
                /* Indented frames, source lines, carets and blank lines belong to it; the first line at
                 * the margin is the exception, and ends it. */
                if (text[0] != ' ' && text[0] != '\t' && text[0] != '\0')
                        *in_traceback = false;
        } else if ((status = request_status(text)) > 0) {
                kind = SERVER_LOG_KIND_REQUEST;
                level = status >= 500   ? SERVER_LOG_ERROR
                        : status >= 400 ? SERVER_LOG_WARNING
                                        : SERVER_LOG_INFO;
        } else {
                /* Our helper's own lines: "djdesk-serve: error: ...", "djdesk-serve: warning: ...". */
                const char *msg =
                        startswith(text, "djdesk-serve: ") ? text + strlen("djdesk-serve: ") : text;

                if (exception_line(text) || startswith(text, "ERRORS:") || has_word(text, "ERROR") ||
                    has_word(text, "CRITICAL") || strncasecmp(msg, "error:", strlen("error:")) == 0 ||
                    startswith(text, "Internal Server Error: "))
                        level = SERVER_LOG_ERROR;
                else if (startswith(text, "WARNINGS:") || has_word(text, "WARNING") ||
                         strncasecmp(msg, "warning:", strlen("warning:")) == 0 || strstr(text, "Warning:") ||
                         startswith(text, "Not Found: ") || startswith(text, "Bad Request: ") ||
                         startswith(text, "Forbidden (") || startswith(text, "Method Not Allowed ("))
                        level = SERVER_LOG_WARNING;
        }

        *ret_level = level;
        *ret_kind = kind;
        if (ret_status)
                *ret_status = kind == SERVER_LOG_KIND_REQUEST ? status : 0;
}

/* ---- helpers ---- */

static Daemon *server_daemon(const Server *s) {
        return s->w->daemon;
}

static const Config *server_config(const Server *s) {
        return s->w->daemon->config;
}

static void set_string(char **p, const char *v) {
        char *n = v ? strdup(v) : NULL;

        free(*p);
        *p = n;
}

static char *iso_or_null(uint64_t usec) {
        return usec > 0 ? format_timestamp_iso(usec) : NULL;
}

/* Takes a waiter list off the server and completes it. Returns false when a callback freed the server: the
 * caller must return at once. */
static bool waiters_complete(Server *s, Waiter **list, const DjError *err) {
        bool freed = false, *outer = s->freed;

        s->freed = &freed;
        while (*list) {
                Waiter *wt = *list;
                ServerDoneFn done = wt->done;
                void *userdata = wt->userdata;

                *list = wt->next;
                free(wt);
                if (done)
                        done(s, err, userdata);
                if (freed) {
                        if (outer)
                                *outer = true;
                        return false;
                }
        }
        s->freed = outer;
        return true;
}

static bool waiters_fail(Server *s, Waiter **list, DjErrKind kind, const char *message) {
        DjError err = DJ_ERROR_INIT;
        bool alive;

        (void) dj_error_set(&err, kind, "%s", message);
        alive = waiters_complete(s, list, &err);
        dj_error_done(&err);
        return alive;
}

static int waiter_add(Waiter **list, ServerDoneFn done, void *userdata) {
        Waiter *wt = calloc(1, sizeof(*wt)), **p;

        if (!wt)
                return -ENOMEM;
        wt->done = done;
        wt->userdata = userdata;
        for (p = list; *p; p = &(*p)->next)
                ;
        *p = wt;
        return 0;
}

/* ---- state ---- */

ServerState server_state(const Server *s) {
        return s ? s->state : SERVER_STOPPED;
}

static bool state_serving(ServerState st) {
        return st == SERVER_READY || st == SERVER_RELOADING;
}

const char *server_url(const Server *s) {
        return s && state_serving(s->state) && s->port > 0 ? s->url : NULL;
}

unsigned server_port(const Server *s) {
        return s ? s->port : 0;
}

pid_t server_pid(const Server *s) {
        return s && s->main ? s->main->pid : 0;
}

unsigned server_restarts(const Server *s) {
        return s ? s->restarts : 0;
}

const char *server_last_error(const Server *s) {
        return s ? s->last_error : NULL;
}

json_t *server_to_json(const Server *s) {
        _cleanup_free_ char *started = NULL, *ready = NULL;

        started = iso_or_null(s->started_at);
        ready = iso_or_null(s->ready_at);
        return json_pack("{s:s, s:s?, s:I, s:I, s:I, s:s?, s:s?, s:s?, s:s}", "state",
                         server_state_to_string(s->state), "url", server_url(s), "port",
                         (json_int_t) s->port, "pid", (json_int_t) server_pid(s), "restarts",
                         (json_int_t) s->restarts, "last_error", s->last_error, "started_at", started,
                         "ready_at", ready, "mode",
                         server_mode_to_string(s->state == SERVER_STOPPED ? s->w->mode : s->mode));
}

static void server_set_state(Server *s, ServerState state, bool reload_failed) {
        ServerState previous = s->state;
        json_t *data;

        s->state = state;
        if (state != SERVER_CRASHED && state != SERVER_FAILED)
                s->reason = mfree(s->reason);
        log_debug("Server '%s': %s -> %s%s%s", s->w->slug, server_state_to_string(previous),
                  server_state_to_string(state), s->reason ? ": " : "", s->reason ?: "");
        data = json_pack("{s:s, s:s, s:s, s:s?, s:I, s:I, s:I, s:s?}", "workspace", s->w->slug, "state",
                         server_state_to_string(state), "previous", server_state_to_string(previous), "url",
                         server_url(s), "port", (json_int_t) s->port, "pid", (json_int_t) server_pid(s),
                         "restarts", (json_int_t) s->restarts, "last_error", s->last_error);
        if (!data)
                return;
        if (s->reason)
                (void) json_object_set_new(data, "reason", json_string(s->reason));
        if (reload_failed)
                (void) json_object_set_new(data, "reload_failed", json_true());
        (void) events_publish(server_daemon(s)->events, "server.state", data);
}

/* ---- the log ---- */

static void log_line_done(LogLine *l) {
        l->text = mfree(l->text);
}

static LogLine *ring_at(Server *s, size_t i) {
        return &s->ring[(s->ring_start + i) % s->ring_size];
}

static void server_log_flush(Server *s) {
        const Config *cfg = server_config(s);
        _cleanup_free_ StoreLogLine *rows = NULL;
        json_t *lines;
        size_t first;
        int r;

        if (s->flush_timer)
                loop_timer_disarm(s->flush_timer);
        if (s->n_pending == 0)
                return;
        first = s->ring_n - s->n_pending;

        if (cfg->log_store_lines > 0 && s->w->id > 0) {
                rows = calloc(s->n_pending, sizeof(StoreLogLine));
                if (rows) {
                        for (size_t i = 0; i < s->n_pending; i++) {
                                LogLine *l = ring_at(s, first + i);

                                rows[i] = (StoreLogLine){
                                        .n = l->n,
                                        .time = l->time,
                                        .stream = (char *) child_stream_to_string(l->stream),
                                        .level = (char *) server_log_level_to_string(l->level),
                                        .text = l->text,
                                };
                        }
                        r = store_server_log_append(server_daemon(s)->store, s->w->id, rows, s->n_pending,
                                                    cfg->log_store_lines);
                        if (r < 0)
                                log_debug_errno(r, "Cannot store %zu log lines of '%s': %m", s->n_pending,
                                                s->w->slug);
                }
        }

        lines = json_array();
        for (size_t i = 0; lines && i < s->n_pending; i++) {
                LogLine *l = ring_at(s, first + i);
                _cleanup_free_ char *t = format_timestamp_iso(l->time);
                json_t *o = json_pack("{s:I, s:s?, s:s, s:s, s:s, s:s}", "n", (json_int_t) l->n, "time", t,
                                      "stream", child_stream_to_string(l->stream), "level",
                                      server_log_level_to_string(l->level), "kind",
                                      server_log_kind_to_string(l->kind), "text", l->text);

                if (o && l->kind == SERVER_LOG_KIND_REQUEST)
                        (void) json_object_set_new(o, "status", json_integer(l->status));
                (void) json_array_append_new(lines, o);
        }
        s->n_pending = 0;
        if (lines)
                (void) events_publish(server_daemon(s)->events, "server.log",
                                      json_pack("{s:s, s:o}", "workspace", s->w->slug, "lines", lines));
}

static void flush_timer_cb(LoopSource *src, void *userdata) {
        server_log_flush(userdata);
}

/* Makes the ring hold the configured number of lines (it may change on a reload of the configuration). */
static int server_log_resize(Server *s, size_t size) {
        LogLine *ring;
        size_t keep;

        server_log_flush(s);
        ring = calloc(size, sizeof(LogLine));
        if (!ring)
                return -ENOMEM;
        keep = MIN(s->ring_n, size);
        for (size_t i = 0; i < s->ring_n; i++) {
                LogLine *l = ring_at(s, i);

                if (i >= s->ring_n - keep)
                        ring[i - (s->ring_n - keep)] = *l;
                else
                        log_line_done(l);
        }
        free(s->ring);
        s->ring = ring;
        s->ring_size = size;
        s->ring_start = 0;
        s->ring_n = keep;
        return 0;
}

static void server_log_append(Server *s, ChildStream stream, ServerLogLevel level, ServerLogKind kind,
                              int status, char *text /* stolen */) {
        size_t size = MAX(server_config(s)->log_lines, (uint64_t) 1);
        LogLine *l;

        if (s->ring_size != size && server_log_resize(s, size) < 0) {
                free(text);
                return;
        }
        if (s->ring_n == s->ring_size) {
                /* Full: the oldest goes; it was flushed (we flush before the ring wraps). */
                log_line_done(ring_at(s, 0));
                s->ring_start = (s->ring_start + 1) % s->ring_size;
                s->ring_n--;
        }
        l = ring_at(s, s->ring_n++);
        *l = (LogLine){
                .n = s->next_n++,
                .time = now_usec(CLOCK_REALTIME),
                .stream = stream,
                .level = level,
                .kind = kind,
                .status = status,
                .text = text,
        };
        s->n_pending++;
        if (s->n_pending >= MIN((size_t) LOG_FLUSH_LINES, s->ring_size))
                server_log_flush(s);
        else if (s->flush_timer && !loop_timer_armed(s->flush_timer))
                (void) loop_timer_arm(s->flush_timer, LOG_FLUSH_USEC);
}

static json_t *log_line_json(uint64_t n, uint64_t time, const char *stream, const char *level,
                             ServerLogKind kind, int status, const char *text) {
        _cleanup_free_ char *t = format_timestamp_iso(time);
        json_t *o = json_pack("{s:I, s:s?, s:s, s:s, s:s, s:s}", "n", (json_int_t) n, "time", t, "stream",
                              stream, "level", level, "kind", server_log_kind_to_string(kind), "text", text);

        if (o && kind == SERVER_LOG_KIND_REQUEST)
                (void) json_object_set_new(o, "status", json_integer(status));
        return o;
}

json_t *server_logs(Server *s, uint64_t since, uint64_t limit, DjError *reterr) {
        json_t *lines = json_array();
        uint64_t last = s->next_n - 1, want, next;
        int r;

        if (!lines) {
                (void) dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
                return NULL;
        }
        server_log_flush(s);
        limit = MIN(limit, (uint64_t) LOG_LIMIT_MAX);
        next = MIN(since, last);
        /* The lines wanted are (want, last]. */
        want = MAX(since, last > limit ? last - limit : 0);

        if (limit == 0 || want >= last)
                ;
        else if (s->ring_n > 0 && ring_at(s, 0)->n <= want + 1) {
                for (size_t i = 0; i < s->ring_n; i++) {
                        LogLine *l = ring_at(s, i);

                        if (l->n <= want)
                                continue;
                        (void) json_array_append_new(
                                lines, log_line_json(l->n, l->time, child_stream_to_string(l->stream),
                                                     server_log_level_to_string(l->level), l->kind,
                                                     l->status, l->text));
                        next = l->n;
                }
        } else {
                StoreLogLine *rows = NULL;
                size_t n = 0;
                bool tb = false;

                r = store_server_log_read(server_daemon(s)->store, s->w->id, want, last - want, &rows, &n);
                if (r < 0) {
                        json_decref(lines);
                        (void) dj_error_set(reterr, DJ_E_INTERNAL, "cannot read the log of '%s': %s",
                                            s->w->slug, strerror(-r));
                        return NULL;
                }
                for (size_t i = 0; i < n; i++) {
                        ServerLogLevel level;
                        ServerLogKind kind;
                        int status;

                        /* The kind is not stored: classify again (a traceback cut by the window's start
                         * is recognised by its indented lines). */
                        if (i == 0 && streq(rows[i].level, "error") && rows[i].text[0] == ' ')
                                tb = true;
                        server_log_classify(rows[i].text, &tb, &level, &kind, &status);
                        (void) json_array_append_new(lines, log_line_json(rows[i].n, rows[i].time,
                                                                          rows[i].stream, rows[i].level,
                                                                          kind, status, rows[i].text));
                        next = rows[i].n;
                }
                store_log_lines_free(rows, n);
        }
        return json_pack("{s:s, s:o, s:I}", "workspace", s->w->slug, "lines", lines, "next",
                         (json_int_t) next);
}

/* ---- processes ---- */

static void proc_tail_push(Proc *p, const char *line) {
        char *copy = strdup(line);

        if (!copy)
                return;
        free(p->tail[p->tail_next]);
        p->tail[p->tail_next] = copy;
        p->tail_next = (p->tail_next + 1) % TAIL_MAX;
        p->n_tail = MIN(p->n_tail + 1, (size_t) TAIL_MAX);
}

/* The last stderr lines, oldest first, joined with "\n"; NULL when there are none. */
static char *proc_tail_join(const Proc *p, size_t max) {
        size_t n = MIN(p->n_tail, max), len = 0;
        char *s, *q;

        if (n == 0)
                return NULL;
        for (size_t i = 0; i < n; i++)
                len += strlen(p->tail[(p->tail_next + TAIL_MAX - n + i) % TAIL_MAX]) + 1;
        s = q = malloc(len);
        if (!s)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                const char *t = p->tail[(p->tail_next + TAIL_MAX - n + i) % TAIL_MAX];

                if (i > 0)
                        *q++ = '\n';
                q = stpcpy(q, t);
        }
        return s;
}

static Proc *proc_free(Proc *p) {
        Server *s;

        if (!p)
                return NULL;
        s = p->server;
        if (s->main == p)
                s->main = NULL;
        if (s->candidate == p)
                s->candidate = NULL;
        if (p->prev)
                p->prev->next = p->next;
        else
                s->procs = p->next;
        if (p->next)
                p->next->prev = p->prev;
        p->child = child_free(p->child);
        for (size_t i = 0; i < TAIL_MAX; i++)
                free(p->tail[i]);
        free(p);
        return NULL;
}

/* Tells a process to go: it becomes retiring, gets SIGTERM (its group), and SIGKILL after the grace
 * period; with kill, SIGKILL at once. */
static void proc_retire(Proc *p, bool kill) {
        Server *s = p->server;

        if (s->main == p)
                s->main = NULL;
        if (s->candidate == p)
                s->candidate = NULL;
        p->role = PROC_RETIRING;
        (void) child_stop(p->child, kill ? 0 : server_config(s)->stop_timeout_sec * USEC_PER_SEC);
}

static void server_retire_all(Server *s, bool kill) {
        for (Proc *p = s->procs; p; p = p->next)
                if (p->role != PROC_RETIRING || kill)
                        proc_retire(p, kill);
}

static void proc_line_cb(Child *c, ChildStream stream, const char *line, size_t len, void *userdata);
static void proc_notify_cb(Child *c, const char *key, const char *value, void *userdata);
static void proc_exited_cb(Child *c, const ChildExit *e, void *userdata);

static const ChildOps proc_ops = {
        .line = proc_line_cb,
        .notify = proc_notify_cb,
        .exited = proc_exited_cb,
};

static int proc_spawn(Server *s, ProcRole role, char **argv, bool with_socket, bool notify, Proc **ret,
                      DjError *reterr) {
        Daemon *d = server_daemon(s);
        _cleanup_strv_free_ char **env = NULL;
        _cleanup_free_ char *owner = NULL;
        _cleanup_close_ int dirfd = -1;
        ChildSpec spec;
        Proc *p;
        int r;

        dirfd = workspace_verify(s->w, reterr);
        if (dirfd < 0)
                return dirfd;
        env = workspace_child_env(s->w, NULL);
        if (!env || asprintf(&owner, "server:%s", s->w->slug) < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        p = calloc(1, sizeof(*p));
        if (!p)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        p->server = s;
        p->role = role;
        spec = (ChildSpec){
                .argv = argv,
                .envp = env,
                .cwd = s->w->path,
                .cwd_fd = dirfd,
                .listen_fd = with_socket ? s->listen_fd : -1,
                .notify = notify,
                .owner = owner,
                .store = d->store,
        };
        r = child_spawn(d->loop, &spec, &proc_ops, p, &p->child);
        if (r < 0) {
                free(p);
                return dj_error_set_value(reterr, DJ_E_INTERNAL, argv[0], "cannot run '%s': %s", argv[0],
                                          strerror(-r));
        }
        p->pid = child_pid(p->child);
        p->next = s->procs;
        if (s->procs)
                s->procs->prev = p;
        s->procs = p;
        log_debug("Server '%s': started %s (pid %d)", s->w->slug, argv[1] ?: argv[0], (int) p->pid);
        if (ret)
                *ret = p;
        return 0;
}

/* ---- the listening socket ---- */

static int bind_loopback(unsigned port, int *ret_fd, unsigned *ret_port) {
        struct sockaddr_in sa = {
                .sin_family = AF_INET,
                .sin_port = htons((uint16_t) port),
                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
        };
        socklen_t len = sizeof(sa);
        _cleanup_close_ int fd = -1;
        int one = 1;

        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        if (listen(fd, LISTEN_BACKLOG) < 0)
                return -errno;
        if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                return -errno;
        *ret_port = ntohs(sa.sin_port);
        *ret_fd = TAKE_FD(fd);
        return 0;
}

static void server_close_socket(Server *s) {
        s->listen_fd = safe_close(s->listen_fd);
}

/* Binds the port: the workspace's, else the forced one, else last time's if still free, else any. */
static int server_bind(Server *s, DjError *reterr) {
        const Config *cfg = server_config(s);
        unsigned port = 0, forced = 0;
        const char *why = NULL;
        char origin[128];
        int r;

        if (s->listen_fd >= 0)
                return 0;
        if (s->w->port > 0) {
                forced = s->w->port;
                why = "the workspace's port";
        } else if (cfg->force_port > 0) {
                forced = (unsigned) cfg->force_port;
                if (cfg->origin[CONFIG_FORCE_PORT].source == CONFIG_SOURCE_ENV &&
                    cfg->origin[CONFIG_FORCE_PORT].env)
                        why = cfg->origin[CONFIG_FORCE_PORT].env;
                else {
                        (void) snprintf(origin, sizeof(origin), "force_port in %s",
                                        cfg->path ?: "djdesk.conf");
                        why = origin;
                }
        }

        if (forced > 0) {
                r = bind_loopback(forced, &s->listen_fd, &port);
                if (r == -EADDRINUSE) {
                        char v[16];

                        (void) snprintf(v, sizeof(v), "%u", forced);
                        return dj_error_set_value(reterr, DJ_E_BUSY, v, "port %u is already in use (%s)",
                                                  forced, why);
                }
                if (r < 0)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "cannot listen on 127.0.0.1:%u (%s): %s",
                                            forced, why, strerror(-r));
        } else {
                r = -EADDRNOTAVAIL;
                if (s->w->last_port > 0)
                        r = bind_loopback(s->w->last_port, &s->listen_fd, &port);
                if (r < 0)
                        r = bind_loopback(0, &s->listen_fd, &port);
                if (r < 0)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "cannot listen on 127.0.0.1: %s",
                                            strerror(-r));
        }

        s->port = port;
        (void) snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u/", port);
        if (s->w->last_port != port) {
                s->w->last_port = port;
                r = store_workspace_set_last_port(server_daemon(s)->store, s->w->id, port);
                if (r < 0)
                        log_debug_errno(r, "Cannot remember port %u for '%s': %m", port, s->w->slug);
        }
        return 0;
}

/* ---- runserver readiness probe ---- */

static void probe_stop(Server *s) {
        s->probe_timer = loop_source_free(s->probe_timer);
        s->probe_io = loop_source_free(s->probe_io);
        s->probe_fd = safe_close(s->probe_fd);
}

static void server_became_ready(Server *s);
static void probe_io_cb(LoopSource *src, int fd, unsigned revents, void *userdata);

static void probe_again(Server *s) {
        s->probe_io = loop_source_free(s->probe_io);
        s->probe_fd = safe_close(s->probe_fd);
        s->probe_delay = MIN(s->probe_delay * 2, PROBE_MAX_USEC);
        if (s->probe_timer)
                (void) loop_timer_arm(s->probe_timer, s->probe_delay);
}

static void probe_timer_cb(LoopSource *src, void *userdata) {
        Server *s = userdata;
        struct sockaddr_in sa = {
                .sin_family = AF_INET,
                .sin_port = htons((uint16_t) s->port),
                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
        };
        int r;

        s->probe_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s->probe_fd < 0)
                goto again;
        s->probe_sent = false;
        s->probe_len = 0;
        if (connect(s->probe_fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
                goto again; /* ECONNREFUSED: not listening yet */
        r = loop_add_io(server_daemon(s)->loop, s->probe_fd, LOOP_IO_WRITE, probe_io_cb, s, &s->probe_io);
        if (r >= 0)
                return;
again:
        probe_again(s);
}

static void probe_io_cb(LoopSource *src, int fd, unsigned revents, void *userdata) {
        static const char request[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        Server *s = userdata;
        struct sockaddr_in local;
        socklen_t len = sizeof(local);
        unsigned status;
        int error = 0, r;
        ssize_t n;
        char *eol;

        if (!s->probe_sent) {
                socklen_t el = sizeof(error);

                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &el) < 0 || error != 0)
                        goto again;
                /* A TCP self-connect (source port == the port) is not a server. */
                if (getsockname(fd, (struct sockaddr *) &local, &len) < 0 ||
                    ntohs(local.sin_port) == s->port)
                        goto again;
                n = send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL);
                if (n != (ssize_t) sizeof(request) - 1)
                        goto again;
                s->probe_sent = true;
                s->probe_io = loop_source_free(s->probe_io);
                r = loop_add_io(server_daemon(s)->loop, fd, LOOP_IO_READ, probe_io_cb, s, &s->probe_io);
                if (r < 0)
                        goto again;
                return;
        }

        n = recv(fd, s->probe_buf + s->probe_len, sizeof(s->probe_buf) - 1 - s->probe_len, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n > 0) {
                s->probe_len += (size_t) n;
                s->probe_buf[s->probe_len] = '\0';
                eol = strstr(s->probe_buf, "\r\n");
                if (!eol && s->probe_len < sizeof(s->probe_buf) - 1)
                        return; /* the status line is not complete yet */
        }
        s->probe_buf[s->probe_len] = '\0';
        if (sscanf(s->probe_buf, "HTTP/%*u.%*u %u", &status) == 1 && status >= 100 && status < 500) {
                probe_stop(s);
                server_became_ready(s);
                return;
        }
again:
        probe_again(s);
}

static int probe_start(Server *s) {
        int r;

        probe_stop(s);
        r = loop_add_timer(server_daemon(s)->loop, probe_timer_cb, s, &s->probe_timer);
        if (r < 0)
                return r;
        s->probe_delay = PROBE_FIRST_USEC;
        return loop_timer_arm(s->probe_timer, s->probe_delay);
}

/* ---- spawning ---- */

static int server_check_interpreter(Server *s, DjError *reterr) {
        if (isempty(s->w->interpreter))
                return dj_error_set(reterr, DJ_E_INTERNAL,
                                    "no Python interpreter that can import Django is known for '%s'",
                                    s->w->slug);
        return 0;
}

/* djdesk-serve's --grace: how long it waits for the requests in flight after SIGTERM. A little less than
 * stop_timeout_sec, so that it gives up and exits by itself before we would SIGKILL it. In ms. */
uint64_t server_serve_grace_msec(uint64_t stop_timeout_sec) {
        uint64_t ms = stop_timeout_sec * 1000;

        return ms > SERVE_GRACE_MARGIN_MSEC + SERVE_GRACE_MIN_MSEC ? ms - SERVE_GRACE_MARGIN_MSEC
                                                                   : SERVE_GRACE_MIN_MSEC;
}

static int server_spawn_serve(Server *s, ProcRole role, bool migrate, Proc **ret, DjError *reterr) {
        const Config *cfg = server_config(s);
        _cleanup_strv_free_ char **argv = NULL;
        uint64_t grace = server_serve_grace_msec(cfg->stop_timeout_sec);
        int r;

        r = server_check_interpreter(s, reterr);
        if (r < 0)
                return r;
        if (isempty(cfg->serve_helper))
                return dj_error_set(reterr, DJ_E_INTERNAL, "no serve_helper (djdesk-serve) configured");
        r = server_bind(s, reterr);
        if (r < 0)
                return r;
        if (strv_extend(&argv, s->w->interpreter) < 0 || strv_extend(&argv, cfg->serve_helper) < 0 ||
            strv_extend(&argv, "--project") < 0 || strv_extend(&argv, s->w->path) < 0 ||
            (!isempty(s->w->settings_module) &&
             (strv_extend(&argv, "--settings") < 0 || strv_extend(&argv, s->w->settings_module) < 0)) ||
            (migrate && strv_extend(&argv, "--migrate") < 0) || strv_extend(&argv, "--grace") < 0 ||
            strv_extendf(&argv, "%" PRIu64 ".%03" PRIu64, grace / 1000, grace % 1000) < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        return proc_spawn(s, role, argv, true, true, ret, reterr);
}

static int server_spawn_manage(Server *s, ProcRole role, Proc **ret, DjError *reterr) {
        _cleanup_strv_free_ char **argv = NULL;
        _cleanup_free_ char *manage = NULL;
        int r;

        r = server_check_interpreter(s, reterr);
        if (r < 0)
                return r;
        manage = path_join(s->w->path, "manage.py");
        if (!manage || strv_extend(&argv, s->w->interpreter) < 0 || strv_extend(&argv, manage) < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        if (role == PROC_MIGRATE)
                r = strv_extend(&argv, "migrate") < 0 || strv_extend(&argv, "--noinput") < 0 ? -ENOMEM : 0;
        else
                r = strv_extend(&argv, "runserver") < 0 || strv_extendf(&argv, "127.0.0.1:%u", s->port) < 0
                            ? -ENOMEM
                            : 0;
        if (r < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        return proc_spawn(s, role, argv, false, false, ret, reterr);
}

/* Runserver mode, after migrations: the port is picked (and kept bound until now), then released for
 * runserver to bind (see the top of this file). */
static int server_spawn_runserver(Server *s, DjError *reterr) {
        int r;

        r = server_bind(s, reterr);
        if (r < 0)
                return r;
        server_close_socket(s);
        r = server_spawn_manage(s, PROC_MAIN, &s->main, reterr);
        if (r < 0)
                return r;
        r = probe_start(s);
        if (r < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot probe the server: %s", strerror(-r));
        return 0;
}

/* ---- transitions ---- */

static void server_disarm(Server *s) {
        if (s->deadline)
                loop_timer_disarm(s->deadline);
        if (s->reload_deadline)
                loop_timer_disarm(s->reload_deadline);
        if (s->restart_timer)
                loop_timer_disarm(s->restart_timer);
        probe_stop(s);
}

/* Gives up: every process is killed, the socket closed, the waiters told. Returns false when a waiter's
 * callback freed the server. */
static bool server_fail(Server *s, DjErrKind kind, const char *reason) {
        _cleanup_free_ char *copy = strdup(reason ?: "failed");

        server_disarm(s);
        s->watch = watch_free(s->watch);
        s->reload_pending = false;
        s->start_after_stop = false;
        server_retire_all(s, true);
        server_close_socket(s);
        set_string(&s->last_error, copy);
        set_string(&s->reason, copy);
        server_set_state(s, SERVER_FAILED, false);
        return waiters_fail(s, &s->start_waiters, kind, copy ?: "failed");
}

static bool server_fail_error(Server *s, const DjError *err) {
        return server_fail(s, err->kind, err->message);
}

static void watch_cb(Watch *wt, const char *path, void *userdata);

/* Starts (or, after a crash, restarts) the main process. */
static bool server_begin_start(Server *s, bool fresh) {
        const Config *cfg = server_config(s);
        DjError err = DJ_ERROR_INIT;
        int r;

        if (fresh) {
                s->restarts = 0;
                s->n_crashes = 0;
                s->last_error = mfree(s->last_error);
        }
        s->mode = s->w->mode;
        s->migrate = s->w->migrate_on_start;
        s->started_at = now_usec(CLOCK_REALTIME);
        s->ready_at = 0;
        server_disarm(s);
        if (s->deadline)
                (void) loop_timer_arm(s->deadline, cfg->start_timeout_sec * USEC_PER_SEC);

        if (s->mode == SERVER_MODE_SERVE && s->w->autoreload && !s->watch) {
                r = watch_new(server_daemon(s)->loop, s->w->path, cfg->reload_debounce_ms * USEC_PER_MSEC,
                              watch_cb, s, &s->watch);
                if (r < 0)
                        log_debug_errno(r, "Server '%s': cannot watch '%s', no automatic reload: %m",
                                        s->w->slug, s->w->path);
        } else if (s->mode != SERVER_MODE_SERVE || !s->w->autoreload)
                s->watch = watch_free(s->watch);

        if (s->mode == SERVER_MODE_SERVE)
                r = server_spawn_serve(s, PROC_MAIN, s->migrate, &s->main, &err);
        else if (s->migrate) {
                /* Hold the port while migrations run, so that it is ours when runserver starts. */
                r = server_bind(s, &err);
                if (r >= 0)
                        r = server_spawn_manage(s, PROC_MIGRATE, &s->main, &err);
        } else
                r = server_spawn_runserver(s, &err);
        if (r < 0) {
                bool alive = server_fail_error(s, &err);

                dj_error_done(&err);
                return alive;
        }
        server_set_state(s, SERVER_STARTING, false);
        if (s->mode == SERVER_MODE_RUNSERVER && s->migrate)
                server_set_state(s, SERVER_MIGRATING, false);
        return true;
}

static bool server_begin_reload(Server *s);

static void server_became_ready(Server *s) {
        if (s->deadline)
                loop_timer_disarm(s->deadline);
        probe_stop(s);
        s->ready_at = now_usec(CLOCK_REALTIME);
        s->last_error = mfree(s->last_error);
        server_set_state(s, SERVER_READY, false);
        if (!waiters_complete(s, &s->start_waiters, NULL))
                return;
        if (s->reload_pending && s->state == SERVER_READY)
                (void) server_begin_reload(s);
}

/* The candidate failed (or did not get ready in time): the old process keeps serving. */
static bool server_reload_failed(Server *s, const char *why) {
        if (s->reload_deadline)
                loop_timer_disarm(s->reload_deadline);
        set_string(&s->last_error, why ?: "the reload failed");
        server_set_state(s, SERVER_READY, true);
        if (s->reload_pending)
                return server_begin_reload(s);
        return true;
}

static bool server_begin_reload(Server *s) {
        DjError err = DJ_ERROR_INIT;
        bool alive;
        int r;

        s->reload_pending = false;
        r = server_spawn_serve(s, PROC_CANDIDATE, false, &s->candidate, &err);
        if (r < 0) {
                alive = server_reload_failed(s, err.message);
                dj_error_done(&err);
                return alive;
        }
        if (s->reload_deadline)
                (void) loop_timer_arm(s->reload_deadline,
                                      server_config(s)->start_timeout_sec * USEC_PER_SEC);
        server_set_state(s, SERVER_RELOADING, false);
        return true;
}

static void server_reload_done(Server *s) {
        Proc *old = s->main;

        if (s->reload_deadline)
                loop_timer_disarm(s->reload_deadline);
        if (old)
                proc_retire(old, false); /* finishes the requests it accepted, then exits */
        s->main = s->candidate;
        s->main->role = PROC_MAIN;
        s->candidate = NULL;
        s->ready_at = now_usec(CLOCK_REALTIME);
        s->last_error = mfree(s->last_error);
        server_set_state(s, SERVER_READY, false);
        if (s->reload_pending)
                (void) server_begin_reload(s);
}

static bool server_check_stopped(Server *s) {
        if (s->state != SERVER_STOPPING || s->procs)
                return true;
        server_close_socket(s);
        s->port = 0;
        server_set_state(s, SERVER_STOPPED, false);
        if (!waiters_complete(s, &s->stop_waiters, NULL))
                return false;
        if (s->state != SERVER_STOPPED)
                return true;
        if (!s->start_after_stop)
                return waiters_fail(s, &s->start_waiters, DJ_E_BUSY, "stopped before it was ready");
        s->start_after_stop = false;
        if (server_daemon(s)->shutting_down)
                return waiters_fail(s, &s->start_waiters, DJ_E_BUSY, "the daemon is shutting down");
        return server_begin_start(s, true);
}

static void server_begin_stop(Server *s, bool restart) {
        server_disarm(s);
        s->watch = watch_free(s->watch);
        s->reload_pending = false;
        s->start_after_stop = restart;
        server_set_state(s, SERVER_STOPPING, false);
        server_retire_all(s, false);
        if (!restart && !waiters_fail(s, &s->start_waiters, DJ_E_BUSY, "stopped before it was ready"))
                return;
        (void) server_check_stopped(s);
}

static void server_crashed(Server *s, const char *why, const char *tail) {
        uint64_t now = now_usec(CLOCK_MONOTONIC), backoff;
        size_t keep = 0;

        /* Forget crashes older than the window; remember this one. */
        for (size_t i = 0; i < s->n_crashes; i++)
                if (now - s->crashes[i] < CRASH_WINDOW_USEC)
                        s->crashes[keep++] = s->crashes[i];
        s->n_crashes = keep;
        if (s->n_crashes == ELEMENTSOF(s->crashes)) {
                memmove(s->crashes, s->crashes + 1, (s->n_crashes - 1) * sizeof(uint64_t));
                s->n_crashes--;
        }
        s->crashes[s->n_crashes++] = now;

        if (s->candidate)
                proc_retire(s->candidate, false);
        if (s->n_crashes > CRASH_MAX) {
                _cleanup_free_ char *reason = NULL;

                if (asprintf(&reason, "%s", tail ?: why) < 0)
                        reason = NULL;
                (void) server_fail(s, DJ_E_INTERNAL, reason ?: why);
                return;
        }

        server_disarm(s);
        if (s->mode == SERVER_MODE_RUNSERVER)
                server_close_socket(s); /* runserver binds it again itself */
        backoff = MIN(BACKOFF_FIRST_USEC << (s->n_crashes - 1), BACKOFF_MAX_USEC);
        if (s->restart_timer)
                (void) loop_timer_arm(s->restart_timer, backoff);
        set_string(&s->last_error, tail ?: why);
        set_string(&s->reason, why);
        server_set_state(s, SERVER_CRASHED, false);
}

static void restart_timer_cb(LoopSource *src, void *userdata) {
        Server *s = userdata;

        if (s->state != SERVER_CRASHED)
                return;
        s->restarts++;
        (void) server_begin_start(s, false);
}

static void deadline_cb(LoopSource *src, void *userdata) {
        Server *s = userdata;
        char why[64];

        if (s->state != SERVER_STARTING && s->state != SERVER_MIGRATING)
                return;
        (void) snprintf(why, sizeof(why), "not ready after %" PRIu64 " s",
                        server_config(s)->start_timeout_sec);
        (void) server_fail(s, DJ_E_INTERNAL, why);
}

static void reload_deadline_cb(LoopSource *src, void *userdata) {
        Server *s = userdata;
        char why[64];

        if (s->state != SERVER_RELOADING || !s->candidate)
                return;
        proc_retire(s->candidate, true);
        (void) snprintf(why, sizeof(why), "the reload was not ready after %" PRIu64 " s",
                        server_config(s)->start_timeout_sec);
        (void) server_reload_failed(s, why);
}

static void watch_cb(Watch *wt, const char *path, void *userdata) {
        Server *s = userdata;

        switch (s->state) {
        case SERVER_READY:
                log_debug("Server '%s': reloading: '%s' changed", s->w->slug, path);
                (void) server_begin_reload(s);
                break;
        case SERVER_STARTING:
        case SERVER_MIGRATING:
        case SERVER_RELOADING:
                log_debug("Server '%s': '%s' changed, reloading once ready", s->w->slug, path);
                s->reload_pending = true;
                break;
        case SERVER_CRASHED:
                /* Perhaps the fix: try now rather than at the end of the back-off. */
                log_debug("Server '%s': restarting now: '%s' changed", s->w->slug, path);
                if (s->restart_timer)
                        loop_timer_disarm(s->restart_timer);
                s->restarts++;
                (void) server_begin_start(s, false);
                break;
        default:
                log_debug("Server '%s': '%s' changed", s->w->slug, path);
                break;
        }
}

/* ---- process callbacks ---- */

static void proc_line_cb(Child *c, ChildStream stream, const char *line, size_t len, void *userdata) {
        Proc *p = userdata;
        ServerLogLevel level;
        ServerLogKind kind;
        char *text;
        int status;

        while (len > 0 && line[len - 1] == '\r')
                len--;
        text = utf8_sanitize(line, len);
        if (!text)
                return;
        server_log_classify(text, &p->in_traceback[stream], &level, &kind, &status);
        if (stream == CHILD_STDERR && kind != SERVER_LOG_KIND_REQUEST && !isempty(text))
                proc_tail_push(p, text);
        server_log_append(p->server, stream, level, kind, status, text);
}

static void proc_notify_cb(Child *c, const char *key, const char *value, void *userdata) {
        Proc *p = userdata;
        Server *s = p->server;

        if (streq(key, "READY") && streq(value, "1")) {
                if (p == s->main && (s->state == SERVER_STARTING || s->state == SERVER_MIGRATING))
                        server_became_ready(s);
                else if (p == s->candidate && s->state == SERVER_RELOADING)
                        server_reload_done(s);
        } else if (streq(key, "STATUS") && streq(value, "migrating")) {
                if (p == s->main && s->state == SERVER_STARTING)
                        server_set_state(s, SERVER_MIGRATING, false);
        }
}

static void proc_exited_cb(Child *c, const ChildExit *e, void *userdata) {
        Proc *p = userdata;
        Server *s = p->server;
        ProcRole role = p->role;
        bool was_main = p == s->main, was_candidate = p == s->candidate, usage;
        _cleanup_free_ char *tail = NULL, *last = NULL, *why = NULL;
        char buf[64];

        (void) child_exit_to_string(e, buf, sizeof(buf));
        tail = proc_tail_join(p, TAIL_MAX);
        last = proc_tail_join(p, 1);
        log_debug("Server '%s': process %d %s", s->w->slug, (int) p->pid, buf);
        /* A serve process that says it cannot work (usage, migrations) will not do better next time. */
        usage = s->mode == SERVER_MODE_SERVE && e->code == CLD_EXITED && (e->status == 2 || e->status == 3);
        proc_free(p);

        if (s->state == SERVER_STOPPING) {
                (void) server_check_stopped(s);
                return;
        }
        if (role == PROC_RETIRING)
                return;

        if (role == PROC_MIGRATE && was_main) {
                DjError err = DJ_ERROR_INIT;

                if (!child_exit_success(e)) {
                        if (asprintf(&why, "migrate %s%s%s", buf, last ? ": " : "", last ?: "") < 0)
                                why = NULL;
                        (void) server_fail(s, DJ_E_INTERNAL, last ?: why ?: buf);
                        return;
                }
                if (server_spawn_runserver(s, &err) < 0) {
                        (void) server_fail_error(s, &err);
                        dj_error_done(&err);
                        return;
                }
                server_set_state(s, SERVER_STARTING, false);
                return;
        }

        if (was_candidate) {
                if (s->state == SERVER_RELOADING) {
                        if (asprintf(&why, "the reload %s", buf) < 0)
                                why = NULL;
                        (void) server_reload_failed(s, tail ?: why ?: buf);
                }
                return;
        }

        if (!was_main)
                return;
        switch (s->state) {
        case SERVER_STARTING:
        case SERVER_MIGRATING:
        case SERVER_READY:
        case SERVER_RELOADING:
                if (usage) {
                        (void) server_fail(s, DJ_E_INTERNAL, last ?: buf);
                        return;
                }
                if (e->code != CLD_EXITED) {
                        /* Killed: its last words are not why. */
                        server_crashed(s, buf, NULL);
                        return;
                }
                if (asprintf(&why, "%s%s%s", buf, last ? ": " : "", last ?: "") < 0)
                        why = NULL;
                server_crashed(s, why ?: buf, tail);
                return;
        default:
                return;
        }
}

/* ---- public ---- */

int server_new(Workspace *w, Server **ret) {
        _cleanup_(server_freep) Server *s = NULL;
        Daemon *d;
        uint64_t max_n = 0;
        int r;

        assert_return(w && w->daemon && ret);
        d = w->daemon;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->w = w;
        s->listen_fd = -1;
        s->probe_fd = -1;
        s->mode = w->mode;
        s->next_n = 1;
        if (d->store && w->id > 0) {
                r = store_server_log_max_n(d->store, w->id, &max_n);
                if (r < 0)
                        log_debug_errno(r, "Cannot read the log position of '%s': %m", w->slug);
                s->next_n = max_n + 1;
        }
        if (d->loop) {
                r = loop_add_timer(d->loop, deadline_cb, s, &s->deadline);
                if (r < 0)
                        return r;
                r = loop_add_timer(d->loop, reload_deadline_cb, s, &s->reload_deadline);
                if (r < 0)
                        return r;
                r = loop_add_timer(d->loop, restart_timer_cb, s, &s->restart_timer);
                if (r < 0)
                        return r;
                r = loop_add_timer(d->loop, flush_timer_cb, s, &s->flush_timer);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

Server *server_free(Server *s) {
        if (!s)
                return NULL;
        if (s->freed)
                *s->freed = true;
        s->freed = NULL;
        /* Whoever still waits hears about it (stop waiters: the server is gone, so it is stopped). */
        (void) waiters_fail(s, &s->start_waiters, DJ_E_BUSY, "the server was removed before it was ready");
        s->freed = NULL;
        (void) waiters_complete(s, &s->stop_waiters, NULL);
        s->freed = NULL;
        while (s->procs)
                proc_free(s->procs); /* child_free: SIGKILL to the group, reaped */
        server_log_flush(s);
        for (size_t i = 0; i < s->ring_n; i++)
                log_line_done(ring_at(s, i));
        free(s->ring);
        probe_stop(s);
        s->deadline = loop_source_free(s->deadline);
        s->reload_deadline = loop_source_free(s->reload_deadline);
        s->restart_timer = loop_source_free(s->restart_timer);
        s->flush_timer = loop_source_free(s->flush_timer);
        s->watch = watch_free(s->watch);
        server_close_socket(s);
        free(s->last_error);
        free(s->reason);
        free(s);
        return NULL;
}

int server_start(Server *s, ServerDoneFn done, void *userdata) {
        int r;

        assert_return(s);
        if (server_daemon(s)->shutting_down) {
                DjError err = DJ_ERROR_INIT;

                (void) dj_error_set(&err, DJ_E_BUSY, "the daemon is shutting down");
                if (done)
                        done(s, &err, userdata);
                dj_error_done(&err);
                return 0;
        }
        switch (s->state) {
        case SERVER_READY:
        case SERVER_RELOADING:
                if (done)
                        done(s, NULL, userdata);
                return 0;
        case SERVER_STARTING:
        case SERVER_MIGRATING:
        case SERVER_CRASHED:
                return waiter_add(&s->start_waiters, done, userdata);
        case SERVER_STOPPING:
                r = waiter_add(&s->start_waiters, done, userdata);
                if (r >= 0)
                        s->start_after_stop = true;
                return r;
        case SERVER_STOPPED:
        case SERVER_FAILED:
        default:
                r = waiter_add(&s->start_waiters, done, userdata);
                if (r < 0)
                        return r;
                (void) server_begin_start(s, true);
                return 0;
        }
}

int server_stop(Server *s, ServerDoneFn done, void *userdata) {
        int r;

        assert_return(s);
        switch (s->state) {
        case SERVER_STOPPED:
                if (done)
                        done(s, NULL, userdata);
                return 0;
        case SERVER_FAILED:
                /* Acknowledged. Whatever is left of it was sent SIGKILL when it failed. */
                s->port = 0;
                server_set_state(s, SERVER_STOPPED, false);
                if (done)
                        done(s, NULL, userdata);
                return 0;
        case SERVER_STOPPING:
                s->start_after_stop = false;
                return waiter_add(&s->stop_waiters, done, userdata);
        default:
                r = waiter_add(&s->stop_waiters, done, userdata);
                if (r < 0)
                        return r;
                server_begin_stop(s, false);
                return 0;
        }
}

int server_restart(Server *s, ServerDoneFn done, void *userdata) {
        int r;

        assert_return(s);
        if (s->state == SERVER_STOPPED || s->state == SERVER_FAILED)
                return server_start(s, done, userdata);
        if (server_daemon(s)->shutting_down)
                return server_start(s, done, userdata); /* refuses */
        r = waiter_add(&s->start_waiters, done, userdata);
        if (r < 0)
                return r;
        if (s->state == SERVER_STOPPING)
                s->start_after_stop = true;
        else
                server_begin_stop(s, true);
        return 0;
}

void server_cancel_waiter(Server *s, void *userdata) {
        Waiter **lists[] = { &s->start_waiters, &s->stop_waiters };

        for (size_t i = 0; i < ELEMENTSOF(lists); i++)
                for (Waiter **p = lists[i]; *p;) {
                        if ((*p)->userdata == userdata) {
                                Waiter *wt = *p;

                                *p = wt->next;
                                free(wt);
                        } else
                                p = &(*p)->next;
                }
}

/* ---- daemon-wide ---- */

static void autostart_done(Server *s, const DjError *err, void *userdata) {
        if (err)
                log_warning("Autostart of '%s' failed: %s", s->w->slug, err->message ?: "error");
        else
                log_info("Server '%s' started at %s.", s->w->slug, server_url(s) ?: "?");
}

void servers_autostart(Daemon *d) {
        for (Workspace *w = d->workspaces; w; w = w->next) {
                int r;

                if (!w->autostart || !w->server)
                        continue;
                log_info("Starting the server of '%s' (autostart).", w->slug);
                r = server_start(w->server, autostart_done, NULL);
                if (r < 0)
                        log_warning_errno(r, "Cannot start the server of '%s': %m", w->slug);
        }
}

typedef struct StopAll {
        Daemon *d;
        void (*done)(void *userdata);
        void *userdata;
        size_t pending;
        LoopSource *timer;
} StopAll;

static void stop_all_finish(StopAll *sa) {
        void (*done)(void *) = sa->done;
        void *userdata = sa->userdata;

        for (Workspace *w = sa->d->workspaces; w; w = w->next)
                if (w->server)
                        server_cancel_waiter(w->server, sa);
        sa->timer = loop_source_free(sa->timer);
        free(sa);
        done(userdata);
}

static void stop_all_one(Server *s, const DjError *err, void *userdata) {
        StopAll *sa = userdata;

        if (--sa->pending == 0)
                stop_all_finish(sa);
}

static void stop_all_timeout_cb(LoopSource *src, void *userdata) {
        StopAll *sa = userdata;

        log_warning("%zu server(s) did not stop in time; leaving anyway.", sa->pending);
        stop_all_finish(sa);
}

void servers_stop_all(Daemon *d, void (*done)(void *userdata), void *userdata) {
        StopAll *sa = calloc(1, sizeof(*sa));

        if (!sa) {
                done(userdata);
                return;
        }
        *sa = (StopAll){ .d = d, .done = done, .userdata = userdata, .pending = 1 };
        if (d->loop && loop_add_timer(d->loop, stop_all_timeout_cb, sa, &sa->timer) >= 0)
                (void) loop_timer_arm(sa->timer, (d->config->stop_timeout_sec + 1) * USEC_PER_SEC);
        for (Workspace *w = d->workspaces; w; w = w->next) {
                Server *s = w->server;

                if (!s || s->state == SERVER_STOPPED || s->state == SERVER_FAILED)
                        continue;
                sa->pending++;
                if (server_stop(s, stop_all_one, sa) < 0)
                        sa->pending--;
        }
        if (--sa->pending == 0)
                stop_all_finish(sa);
}
