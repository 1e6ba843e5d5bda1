/* SPDX-License-Identifier: MIT */
#pragma once

/* The task queue: runs of allowlisted presets (preset.h), one process group each, FIFO with at most one
 * running run per workspace and max_parallel in all. Every run is a row in the store from the moment it is
 * queued; its output lines go to the store in batched transactions. Every change is published once:
 * run.queued, run.started, run.log (batched lines), run.finished (exactly once per run).
 *
 *   queued -> running -> succeeded | failed | cancelled | timed_out
 *   queued -> cancelled (dropped before it ran)
 *   running -> interrupted (the daemon stopped or crashed while it ran; found at the next start)
 *
 * Progress: 0 queued, 5 started, 95 exited, 100 recorded (kept for DJDesk's clients). */

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dj-error.h"
#include "dj-macro.h"
#include "store.h"

typedef struct Child Child;
typedef struct Daemon Daemon;
typedef struct LoopSource LoopSource;
typedef struct Run Run;
typedef struct RunQueue RunQueue;
typedef struct Workspace Workspace;

#define RUN_NOTE_MAX         280                  /* characters (UTF-8 code points) */
#define RUN_OUTPUT_BYTES_MAX (UINT64_C(16) << 20) /* per run, stored; then the tail is kept */
#define RUN_KEEP_FINISHED    64                   /* finished runs kept in memory (and on D-Bus) */

typedef enum RunStatus {
        RUN_QUEUED,
        RUN_RUNNING,
        RUN_SUCCEEDED,
        RUN_FAILED,
        RUN_CANCELLED,
        RUN_TIMED_OUT,
        RUN_INTERRUPTED,
        _RUN_STATUS_MAX,
        _RUN_STATUS_INVALID = -EINVAL,
} RunStatus;

const char *run_status_to_string(RunStatus s); /* "queued", ..., "timed_out", "interrupted" */
RunStatus run_status_from_string(const char *s);
static inline bool run_status_finished(RunStatus s) {
        return s >= RUN_SUCCEEDED;
}

/* A run in memory: every queued or running run, and the RUN_KEEP_FINISHED newest finished ones. Older runs
 * live only in the store. rec mirrors the store row (rec.status is run_status_to_string(status)). */
struct Run {
        RunQueue *queue;
        RunRecord rec;
        RunStatus status;
        Workspace *w; /* NULL once finished and its workspace went away */

        /* while running */
        Child *child;
        LoopSource *timeout_timer; /* the preset's timeout_s */
        bool cancel_requested;
        bool timeout_hit;
        bool stop_for_shutdown;

        /* output not flushed yet (see run.c) */
        StoreLogLine *pending;
        size_t n_pending, n_pending_alloc;
        uint64_t pending_bytes; /* of the pending lines' text */
        uint64_t synced_at;     /* CLOCK_MONOTONIC µs when the running run's row was last written */
        uint32_t *stored_len;   /* ring of the byte lengths of the lines kept in the store, oldest first */
        size_t stored_start, stored_n, stored_alloc;
        uint64_t stored_bytes;
        bool in_traceback[2]; /* per stream, for the level guess */

        Run *prev, *next; /* RunQueue.runs, oldest first */
};

/* The parameters of run.start (also D-Bus StartRun). */
typedef struct RunRequest {
        const char *kind;      /* NULL or "task": a preset; "export": a Data Lab export (export.h) */
        const char *workspace; /* slug */
        const char *preset;    /* key (for "export": the template's slug) */
        json_t *params;        /* object of strings, or NULL */
        bool confirm;
        const char *note;         /* NULL or at most RUN_NOTE_MAX characters */
        const char *requested_by; /* "cli", "dbus::1.42", "daemon" */
        uid_t uid;
} RunRequest;

/* Daemon start, after the orphaned process groups were ended and the workspaces loaded: loads the presets
 * (d->presets), and the runs the previous daemon left unfinished: running ones become interrupted (with a
 * line saying so in their log, and run.finished), queued ones are queued again in their order. Nothing is
 * started before runs_start(). */
int runs_init(Daemon *d, DjError *reterr);
/* After READY=1: starts dispatching. */
void runs_start(Daemon *d);
/* Daemon shutdown (daemon_shutdown, before the servers stop): nothing more is dispatched; running runs get
 * SIGTERM to their group and, when they exit, are recorded as interrupted ("djdeskd stopped") with
 * run.finished. Queued runs stay queued in the store: they run after the next start. */
void runs_shutdown(Daemon *d);
/* After runs_shutdown(): calls done once no run is running any more (at once when none is), which takes at
 * most cancel_grace_sec (then SIGKILL). */
typedef void (*RunsStoppedFn)(void *userdata);
void runs_wait_stopped(Daemon *d, RunsStoppedFn done, void *userdata);
/* Daemon exit: runs still running are killed (SIGKILL, reaped) and recorded as interrupted. Frees the queue
 * and the presets. */
void runs_free(Daemon *d);

/* preset.reload and SIGHUP: parses every presets directory into a fresh set and swaps it in (a bad file is
 * skipped with a warning, returned in *ret_warnings when not NULL). Runs already queued keep the argv they
 * were expanded to. */
int runs_reload_presets(Daemon *d, char ***ret_warnings, DjError *reterr);
/* The warnings of the last presets load (borrowed; NULL when there were none), for preset.list. */
char **runs_preset_warnings(Daemon *d);
/* The presets directories, lowest priority first: the built-in one, then the user's. */
char **runs_preset_dirs(Daemon *d);

/* run.start: checks everything (unknown workspace or preset DJ_E_NOT_FOUND; undeclared param, a value
 * failing its regex, a note too long DJ_E_INVALID; requires_confirmation without confirm DJ_E_CONFIRM; a
 * workspace being removed DJ_E_BUSY), expands the argv, writes the run to the store, publishes
 * run.queued and returns it queued. It never waits for the command: dispatching happens from the loop
 * after the caller has returned. A refused request creates nothing. */
int run_enqueue(Daemon *d, const RunRequest *req, Run **ret, DjError *reterr);

/* run.cancel: a queued run is dropped (cancelled at once), a running one gets SIGTERM to its group and
 * SIGKILL after the grace period, and is cancelled once it exited. A finished run is DJ_E_BUSY, an unknown
 * one DJ_E_NOT_FOUND. */
int run_cancel(Daemon *d, uint64_t id, DjError *reterr);

/* A run in memory (NULL: not in memory; it may still be in the store). */
Run *run_find(Daemon *d, uint64_t id);
/* Every run in memory, oldest first (for D-Bus enumeration). */
Run *runs_first(Daemon *d);

/* The run as JSON: id, kind, workspace, preset, label, icon, status, progress, params, note,
 * requested_by, uid, argv, workspace_path, exit_code (null), duration_seconds (null), output_lines,
 * timed_out, truncated, dropped_lines, error (null), last_error_line (null), queued_at, started_at,
 * finished_at (ISO 8601 or null), and metadata.command {argv, workspace_path, exit_code,
 * duration_seconds, output_lines, timed_out, requested_by} (DJDesk's keys). */
json_t *run_record_to_json(const RunRecord *rec);
json_t *run_to_json(const Run *r);

/* run.get: from memory or the store. */
json_t *run_get_json(Daemon *d, uint64_t id, DjError *reterr);
/* run.list: newest first; workspace (slug) and status filter when not NULL; limit 0 means the default. */
json_t *runs_list_json(Daemon *d, const char *workspace, const char *status, uint64_t limit,
                       DjError *reterr);
/* run.logs: {id, status, lines: [{n, timestamp, stream, level, text}], next, first, dropped_lines,
 * truncated}: at most limit lines with n > since, oldest first (pending lines are flushed first). */
json_t *run_logs_json(Daemon *d, uint64_t id, uint64_t since, uint64_t limit, DjError *reterr);

/* workspace.remove: cancels its queued and running runs (run.finished for each) and forgets its finished
 * ones in memory (the store drops its runs by cascade with the workspace row). */
void runs_workspace_removed(Daemon *d, Workspace *w);

/* Counts, for daemon.info. */
size_t runs_count_queued(Daemon *d);
size_t runs_count_running(Daemon *d);

/* Pure helpers, exported for unit tests (run-text.c). */

/* diffsettings and friends: masks the value of every secret-looking setting in one line of output, in
 * place of the value: "SECRET_KEY = 'abc'  ###" -> "SECRET_KEY = '********'  ###", and inside dicts,
 * "'PASSWORD': 'x'" / "\"password\": \"x\"" -> "'PASSWORD': '********'". A name is secret-looking when,
 * upper-cased, it is SECRET_KEY or contains PASSWORD, TOKEN, SECRET or API_KEY (also APIKEY, PASSWD).
 * Returns a new string (the line itself when nothing was masked, copied), NULL on OOM. */
char *run_mask_secrets(const char *line);
