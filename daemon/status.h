/* SPDX-License-Identifier: MIT */
#pragma once

/* The workspace status: one document per workspace (workspace.status, D-Bus Workspace.GetStatus), the
 * successor of DJDesk's /api/workspaces/<slug>/status/, assembled from memory only (no disk, no child
 * process on the request path) and cached until something it shows changes. Every change publishes
 * workspace.changed {workspace, seq, parts: [...]} -- coalesced per workspace, at most one event every
 * STATUS_PUBLISH_INTERVAL_USEC (the first change after a quiet time goes out on the next loop iteration).
 *
 * status.c learns of changes from the event stream (it is a subscriber: server.*, run.*, scan.*,
 * workspace.added, export.ready), and from status_changed() for changes no event announces. Its sink never
 * publishes: it marks parts dirty and arms the publish timer.
 *
 * The document (docs/workspace-status.schema.json is its JSON Schema):
 *   workspace, name, path, seq, updated_at, django_version, server, insights, apps, schema, activity,
 *   log_excerpt, scans, tasks, docs, data_lab. */

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "dj-error.h"
#include "dj-macro.h"

typedef struct Daemon Daemon;
typedef struct ScanCounts ScanCounts;
typedef struct Workspace Workspace;
typedef struct WorkspaceStatus WorkspaceStatus;

#define STATUS_PUBLISH_INTERVAL_USEC (200 * USEC_PER_MSEC)
#define STATUS_ACTIVITY_MAX          20 /* activity entries kept per workspace */
#define STATUS_LOG_EXCERPT_MAX       20 /* log_excerpt lines */
#define STATUS_TASKS_MAX             5  /* tasks: the newest runs */

/* The parts of the document; workspace.changed names the ones that changed. */
typedef enum StatusPart {
        STATUS_PART_WORKSPACE, /* "workspace": name, path, settings, django_version */
        STATUS_PART_SERVER,
        STATUS_PART_INSIGHTS,
        STATUS_PART_APPS,
        STATUS_PART_SCHEMA,
        STATUS_PART_ACTIVITY,
        STATUS_PART_LOG_EXCERPT,
        STATUS_PART_SCANS,
        STATUS_PART_TASKS,
        STATUS_PART_DOCS,
        STATUS_PART_DATA_LAB,
        _STATUS_PART_MAX,
        _STATUS_PART_INVALID = -EINVAL,
} StatusPart;

#define STATUS_PART_MASK(p) (1u << (p))

const char *status_part_to_string(StatusPart p); /* "workspace", "server", ..., "log_excerpt", "data_lab" */
StatusPart status_part_from_string(const char *s);

/* Daemon start, after scans_init: seeds every workspace's activity, log excerpt and tasks from the store
 * (the only disk reads status.c does), subscribes to the event stream. */
int status_init(Daemon *d, DjError *reterr);
/* Daemon exit: unsubscribes, frees every workspace's WorkspaceStatus. */
void status_free(Daemon *d);
/* Frees one (workspace_free calls it; NULL is fine). */
WorkspaceStatus *workspace_status_free(WorkspaceStatus *s);

/* A part of w's document changed without an event saying so (workspace.update, a scan becoming pending,
 * presets reloaded: STATUS_PART_DOCS for every workspace when w is NULL...). mask: STATUS_PART_MASK()s. */
void status_changed(Daemon *d, Workspace *w, unsigned mask);

/* The document (a new reference to the cached object: callers must not modify it). NULL on OOM. */
json_t *workspace_status_json(Workspace *w);
/* The same, serialized compactly (borrowed, valid until the next change to w). NULL on OOM. */
const char *workspace_status_text(Workspace *w);
/* The document's seq: grows by one with every published change of w. */
uint64_t workspace_status_seq(Workspace *w);

/* Pure helpers, exported for unit tests. */
/* A preset's docs_url resolved for a workspace: a https://docs.djangoproject.com/en/<any>/PATH[#frag] URL
 * becomes file://<docs_dir>/PATH.html[#frag] ("PATH/" -> "PATH.html") when that file exists (exists() is
 * asked; NULL means never), else docs_base with "{version}" replaced by the workspace's major.minor
 * Django version ("3.2"; "stable" when unknown) followed by PATH[#frag]. Any other URL is returned as
 * is. *ret_local tells which. */
char *status_resolve_docs_url(const char *url, const char *docs_base, const char *docs_dir,
                              const char *django_version, bool (*exists)(const char *path), bool *ret_local);

/* The document's parts that come from the scan results (scan_result(); any may be NULL: never scanned):
 * apps [{label, models, pending_migrations, status}] in the schema scan's order, status conflict > error
 * (a check ERROR/CRITICAL whose obj is "label" or starts "label.") > pending > warning > ok (unknown while
 * the migrations or checks were never scanned). */
json_t *status_apps_json(json_t *schema, json_t *migrations, json_t *checks);
/* {nodes: [{id, name, app, fields, badge}], connections: [{source, target, field, kind}]}: every model, badge
 * "contrib" (the app's name starts "django.contrib."), else "pending" (its app has unapplied migrations),
 * else null. */
json_t *status_schema_json(json_t *schema, json_t *migrations);
/* The insights, in order: pending_migrations, models, apps, check_warnings, check_errors, last_run,
 * server_uptime (the only one with "since"). server: server_to_json(); last_run: run JSON or NULL. */
json_t *status_insights_json(const ScanCounts *c, json_t *schema, json_t *migrations, json_t *checks,
                             json_t *server, json_t *last_run);
