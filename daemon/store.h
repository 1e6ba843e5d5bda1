/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dj-error.h"

typedef struct Store Store;

#define STORE_SCHEMA_VERSION 5

/* Opens (creating when missing) the SQLite store at path: checks it with PRAGMA quick_check before
 * writing anything (a damaged file is left untouched and the error names it), then WAL, foreign keys, a
 * busy timeout, and forward migrations up to STORE_SCHEMA_VERSION. */
int store_open(const char *path, Store **ret, DjError *reterr);
/* Same, migrating only up to target (tests use it to build a previous schema). */
int store_open_version(const char *path, unsigned target, Store **ret, DjError *reterr);
Store *store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free);

unsigned store_schema_version(Store *s);
const char *store_path(Store *s);

int store_meta_get_u64(Store *s, const char *key, uint64_t *ret); /* -ENOENT when unset */
int store_meta_set_u64(Store *s, const char *key, uint64_t value);

typedef enum StorePreviousShutdown {
        STORE_PREVIOUS_NONE, /* first start on this store */
        STORE_PREVIOUS_CLEAN,
        STORE_PREVIOUS_UNCLEAN, /* the previous daemon never recorded its stop: it crashed or was killed */
} StorePreviousShutdown;

/* Records this daemon's start and reports how the previous one ended. */
int store_daemon_started(Store *s, int pid, const char *version, uint64_t started_at, uint64_t *ret_id,
                         StorePreviousShutdown *ret_previous);
int store_daemon_stopped(Store *s, uint64_t id, uint64_t stopped_at, const char *reason);

/* child process groups (store-child.c) */
typedef struct StoreChildGroup {
        int pgid;
        int pid;
        uint64_t start_time; /* of the leader, clock ticks since boot (/proc/PID/stat field 22) */
        char *owner;
        uint64_t started_at; /* µs, CLOCK_REALTIME */
} StoreChildGroup;

/* Records a group (replacing a stale record with the same pgid). */
int store_child_group_add(Store *s, int pgid, int pid, uint64_t start_time, const char *owner,
                          uint64_t started_at);
int store_child_group_remove(Store *s, int pgid); /* 0 also when there was no such record */
int store_child_group_list(Store *s, StoreChildGroup **ret, size_t *ret_n);
void store_child_group_free_many(StoreChildGroup *g, size_t n);

/* workspaces (store-workspace.c) */
typedef struct Workspace Workspace;
/* Inserts w (every field but id) and sets w->id. A slug or path taken already is -EEXIST. */
int store_workspace_insert(Store *s, Workspace *w, DjError *reterr);
/* Writes every field of w (by w->id). */
int store_workspace_update(Store *s, const Workspace *w, DjError *reterr);
/* Deletes the row and, by cascade, its server_log lines. 0 also when there was no such row. */
int store_workspace_delete(Store *s, int64_t id, DjError *reterr);
int store_workspace_set_last_port(Store *s, int64_t id, unsigned port);
/* Hands every stored workspace (allocated, unlinked, without a server) to fn in creation order; fn takes
 * it over. A negative return from fn stops the load and is returned. */
typedef int (*StoreWorkspaceFn)(Workspace *w /* stolen */, void *userdata);
int store_workspaces_load(Store *s, StoreWorkspaceFn fn, void *userdata, DjError *reterr);

/* server log (store-server.c) */
typedef struct StoreLogLine {
        uint64_t n;    /* per workspace, from 1 */
        uint64_t time; /* µs, CLOCK_REALTIME */
        char *stream;  /* "stdout", "stderr" */
        char *level;   /* "info", "warning", "error" */
        char *text;
} StoreLogLine;

/* Appends lines (in one transaction) and drops all but the newest keep lines of the workspace. */
int store_server_log_append(Store *s, int64_t workspace_id, const StoreLogLine *lines, size_t n_lines,
                            uint64_t keep);
/* The highest line number stored for the workspace (0 when none). */
int store_server_log_max_n(Store *s, int64_t workspace_id, uint64_t *ret);
/* The newest limit lines with n > since, oldest first. */
int store_server_log_read(Store *s, int64_t workspace_id, uint64_t since, uint64_t limit, StoreLogLine **ret,
                          size_t *ret_n);
void store_log_lines_free(StoreLogLine *l, size_t n);

/* runs (store-run.c) */
typedef struct RunRecord {
        uint64_t id; /* set by store_run_insert */
        int64_t workspace_id;
        char *workspace;      /* slug */
        char *workspace_path; /* where it ran (the workspace's path when it was queued) */
        char *kind;           /* "task", or "export" (preset: the template's slug) */
        char *preset;         /* key */
        char *label;
        char *icon;   /* NULL */
        char **argv;  /* as run (placeholders expanded) */
        char *params; /* the params given, a JSON object as text ("{}" when none) */
        char *note;   /* NULL */
        char *requested_by;
        uint32_t uid;
        /* "queued", "running", "succeeded", "failed", "cancelled", "timed_out", "interrupted" */
        char status[16];
        unsigned progress;
        bool has_exit_code;
        int exit_code; /* the exit status, or 128 + the signal that killed it */
        bool timed_out;
        uint64_t queued_at, started_at, finished_at; /* µs, CLOCK_REALTIME; 0: not yet */
        uint64_t output_lines;  /* lines the command printed (all of them, also those cut) */
        uint64_t dropped_lines; /* the oldest lines cut to stay within max_output_lines / 16 MiB */
        char *error;            /* why it did not succeed ("exited with status 1", "cancelled"...), NULL */
        char *last_error_line;  /* the last line guessed as an error, NULL */
        uint64_t timeout_s;
        uint64_t max_output_lines;
        bool mask_secrets;
} RunRecord;

/* Frees the fields (not r itself) and zeroes it. */
void run_record_done(RunRecord *r);
void run_records_free(RunRecord *r, size_t n);

/* Inserts r (every field but id) and sets r->id. Ids grow and are never reused. */
int store_run_insert(Store *s, RunRecord *r);
/* Writes the mutable fields of r (status, progress, exit code, times, counts, error, argv...) by r->id: every
 * field but id and workspace_id (a run never moves to another workspace). */
int store_run_update(Store *s, const RunRecord *r);
/* -ENOENT when there is no such run. */
int store_run_get(Store *s, uint64_t id, RunRecord *ret);
/* Newest first. workspace (slug) and status: filters when not NULL; limit > 0. */
int store_run_list(Store *s, const char *workspace, const char *status, uint64_t limit, RunRecord **ret,
                   size_t *ret_n);
/* Runs whose status is "queued" or "running", oldest (lowest id) first. */
int store_run_list_unfinished(Store *s, RunRecord **ret, size_t *ret_n);
/* Deletes all but the newest keep finished runs of the workspace, with their log lines. Returns how many
 * were deleted. Queued and running runs are never deleted. */
int store_run_prune(Store *s, int64_t workspace_id, uint64_t keep);

/* Appends lines (n, time, stream, level, text) to the run's log in one transaction, then deletes its lines
 * with n <= drop_through (0: none), in the same transaction. */
int store_run_log_append(Store *s, uint64_t run_id, const StoreLogLine *lines, size_t n_lines,
                         uint64_t drop_through);
/* At most limit lines with n > since, oldest first. */
int store_run_log_read(Store *s, uint64_t run_id, uint64_t since, uint64_t limit, StoreLogLine **ret,
                       size_t *ret_n);
/* The lowest line number kept (0 when none). */
int store_run_log_first(Store *s, uint64_t run_id, uint64_t *ret);

/* scans (store-scan.c): the newest record per (workspace, kind), and the result of the last completed scan
 * of that kind beside it. */
typedef struct StoreScan {
        int64_t workspace_id;
        uint64_t id;
        char *kind;   /* "schema", "migrations", "checks" */
        char *status; /* "pending", "running", "completed", "failed" */
        unsigned progress;
        char *summary;    /* NULL */
        char *error;      /* NULL */
        char *error_info; /* JSON object as text, NULL */
        char *trigger;
        uint64_t requested_at, started_at, completed_at; /* µs, CLOCK_REALTIME; 0: not yet */
        char *result; /* JSON as text: the last completed result, NULL: none (or, when saving: keep it) */
} StoreScan;

void store_scans_free(StoreScan *r, size_t n);
/* The next scan id: growing, never reused, also across restarts (a counter in meta). */
int store_scan_next_id(Store *s, uint64_t *ret);
/* Writes the record of (workspace_id, kind), replacing the previous one. result NULL keeps the stored
 * result; a result replaces it. */
int store_scan_save(Store *s, const StoreScan *r);
/* Every record of the workspace (with its result), in no particular order. */
int store_scan_load(Store *s, int64_t workspace_id, StoreScan **ret, size_t *ret_n);
