/* SPDX-License-Identifier: MIT */
#pragma once

/* Scans: what python/djdesk-probe finds in a workspace's project, kept per kind. One probe run (spawned
 * through child.c like a task: the workspace's interpreter and environment, the checked project directory,
 * its own process group, the tasks' timeout, cancellable) serves every kind that was asked for:
 *
 *   schema      apps, models, fields, relations (and Django/Python versions, the settings summary)
 *   migrations  every migration per app with applied true/false, the plan, conflicts, the database state
 *   checks      the system-check messages
 *
 * A scan record per kind keeps DJDesk's shape: pending -> running -> completed | failed. Only the newest
 * record per (workspace, kind) is kept, in memory and in the store; the result of the last completed scan
 * of a kind is kept beside it, so a new scan that is pending, running or failed does not blank what the
 * status shows. Events: scan.started and scan.finished, one per kind.
 *
 * Scans are requested on workspace.add (unless seed_scans is false), after a run of a preset with
 * "rescan": true (migrate), after a server reload, when migration files change (debounced), and by
 * scan.start. A request for a workspace whose probe is already pending or running is merged into it (or
 * into the next one, once the running probe is done): a burst of triggers makes at most two probes. */

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "dj-error.h"
#include "dj-macro.h"

typedef struct Daemon Daemon;
typedef struct ScanSet ScanSet;
typedef struct Workspace Workspace;

typedef enum ScanKind {
        SCAN_SCHEMA,
        SCAN_MIGRATIONS,
        SCAN_CHECKS,
        _SCAN_KIND_MAX,
        _SCAN_KIND_INVALID = -EINVAL,
} ScanKind;

#define SCAN_KIND_MASK(k) (1u << (k))
#define SCAN_ALL          ((1u << _SCAN_KIND_MAX) - 1)

const char *scan_kind_to_string(ScanKind k); /* "schema", "migrations", "checks" */
ScanKind scan_kind_from_string(const char *s);

typedef enum ScanStatus {
        SCAN_PENDING,
        SCAN_RUNNING,
        SCAN_COMPLETED,
        SCAN_FAILED,
        _SCAN_STATUS_MAX,
        _SCAN_STATUS_INVALID = -EINVAL,
} ScanStatus;

const char *scan_status_to_string(ScanStatus s); /* "pending", "running", "completed", "failed" */
ScanStatus scan_status_from_string(const char *s);

/* The newest scan of one kind in one workspace. */
typedef struct ScanRecord {
        uint64_t id; /* daemon-wide, growing, never reused (also across restarts) */
        ScanKind kind;
        ScanStatus status;
        unsigned progress;  /* 0 pending, 10 running, 100 completed or failed */
        char *summary;      /* one line: "7 models in 3 apps, 9 relations", "27 migrations, 3 pending",
                             * "1 warning, 0 errors"; NULL until completed */
        char *error;        /* why it failed ("ImproperlyConfigured: ...", "timed out after 60 s",
                             * "cancelled"), NULL otherwise */
        json_t *error_info; /* the probe's structured error {type, message, traceback} or NULL */
        char *trigger;      /* "added", "request", "run", "reload", "migrate" (the server migrated on start),
                        * "migrations-changed", "restart" */
        uint64_t requested_at, started_at, completed_at; /* µs, CLOCK_REALTIME; 0: not yet */
} ScanRecord;

/* Counts from the last completed scans (0 when that kind never completed), for D-Bus properties and
 * insights. */
typedef struct ScanCounts {
        unsigned pending_migrations; /* migrations scan: unapplied migrations, all apps */
        unsigned applied_migrations;
        unsigned migration_conflicts; /* apps with more than one leaf */
        unsigned models;              /* schema scan: every model, contrib apps included */
        unsigned apps;                /* schema scan: installed apps */
        unsigned relations;
        unsigned check_warnings; /* checks scan: DEBUG/INFO not counted; WARNING */
        unsigned check_errors;   /* ERROR and CRITICAL */
        uint64_t last_scan_at; /* µs: the newest completed_at of any kind (completed or failed), 0: never */
} ScanCounts;

/* Daemon start, after workspaces_load and runs_init: loads every workspace's scan records and last results
 * from the store, and subscribes to the events that trigger scans (run.finished of a "rescan" preset,
 * server.state reloading -> ready). Pending or running scans left by the previous daemon are requested
 * again (trigger "restart") by scans_start(). Starts each workspace's migrations watch. */
int scans_init(Daemon *d, DjError *reterr);
/* After READY=1: starts dispatching probes. */
void scans_start(Daemon *d);
/* daemon_shutdown: nothing more is dispatched; running probes are killed (their records stay in the store
 * as they were and are requested again at the next start). */
void scans_shutdown(Daemon *d);
/* Daemon exit: kills what still runs, frees everything scan.c owns (also every workspace's ScanSet). */
void scans_free(Daemon *d);

/* workspace.add / sample.install, after workspace_register and workspace.added: starts the workspace's
 * migrations watch and, when seed is true, requests every kind (trigger "added"). */
void scans_workspace_added(Daemon *d, Workspace *w, bool seed);
/* workspace.remove, before the workspace is freed: kills its probe, stops its watch, frees its ScanSet. */
void scans_workspace_removed(Daemon *d, Workspace *w);
/* Frees a workspace's ScanSet (workspace_free calls it; NULL is fine). */
ScanSet *scan_set_free(ScanSet *s);

/* scan.start and the automatic triggers: requests the kinds in mask (SCAN_ALL for all) for w. Creates a
 * pending record for each kind that has none pending yet (publishing nothing: scan.started comes when the
 * probe starts) and returns the ids of the pending records, per kind, in ret_ids (may be NULL; 0 for the
 * kinds not asked for). Never spawns anything itself: dispatching happens from the loop. DJ_E_BUSY while
 * the workspace is being removed or the daemon shuts down. */
int scan_request(Daemon *d, Workspace *w, unsigned mask, const char *trigger,
                 uint64_t ret_ids[_SCAN_KIND_MAX], DjError *reterr);
/* scan.cancel: drops pending records (failed, "cancelled") and kills a running probe (its kinds fail
 * "cancelled"). Returns how many records were cancelled (0: nothing was pending or running). */
int scan_cancel(Daemon *d, Workspace *w, DjError *reterr);

/* The newest record of a kind, NULL when that kind was never scanned (borrowed). */
const ScanRecord *scan_current(Workspace *w, ScanKind k);
/* The record with that id: a newest one, or one requested while a probe ran that kind (it runs next).
 * NULL: no such record is kept. *ret_w (may be NULL) is its workspace. */
const ScanRecord *scan_find(Daemon *d, uint64_t id, Workspace **ret_w);
/* The result of the last completed scan of a kind (borrowed), NULL when none:
 *   schema:     {"django_version", "python_version", "apps": [{label, name, models}],
 *                "models": [{app, name, db_table, fields: [...], relations: [{field, kind, target}]}],
 *                "settings": {debug, databases, installed_apps, time_zone}, "guides": [{title, path}]}
 *   migrations: {"database": {...}, "migrations": [{app, migrations: [{name, applied}], plan, conflicts}]}
 *   checks:     {"checks": [{level, id, msg, hint, obj}]}
 * (the probe's own keys, see python/djdesk-probe). */
json_t *scan_result(Workspace *w, ScanKind k);
void scan_counts(Workspace *w, ScanCounts *ret);
/* Whether a probe is pending or running for w. */
bool scan_busy(Workspace *w);

/* {id, workspace, kind, status, progress, summary, trigger, requested_at, started_at, completed_at,
 * error} (times ISO 8601 or null; error_info, when set, as "error_info"). */
json_t *scan_record_to_json(const Workspace *w, const ScanRecord *r);
/* [record, ...] of w in kind order (kinds never scanned left out). */
json_t *scans_to_json(Workspace *w);

/* Pure helpers, exported for unit tests. */
/* The counts of a probe document's parts (any may be NULL). */
void scan_counts_from_results(json_t *schema, json_t *migrations, json_t *checks, ScanCounts *ret);
/* The summary line of a kind's result (see ScanRecord.summary). */
char *scan_summary(ScanKind k, json_t *result);
