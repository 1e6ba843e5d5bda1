/* SPDX-License-Identifier: MIT */
#pragma once

/* The Data Lab (datalab/datalab.h): notebook templates, exports and previews of a workspace.
 *
 * An export is a run of kind "export" in the task queue (run.h): its preset is the template's slug, its
 * argv the djdesk-export helper's, and its stdin a memfd holding the input document, gathered from memory
 * and the store when the run starts (the latest schema and migrations scans, recent log lines, the
 * workspace's runs). The helper renders and writes <root>/<slug>/<template>.ipynb (root: [paths]
 * data_lab_root), so nothing of it happens on the loop. When such a run succeeds, export.ready
 * {workspace, template, run, file, size, sha256} is published.
 *
 * Each workspace's notebooks (w->notebooks: export.list's answer) are cached and refreshed when an export
 * finishes, on export.list and export.remove; a file is hashed again only when its size or mtime moved. */

#include <jansson.h>
#include <stdbool.h>

#include "dj-error.h"

typedef struct Daemon Daemon;
typedef struct DatalabTemplate DatalabTemplate;
typedef struct Exports Exports;
typedef struct OpCall OpCall;
typedef struct Workspace Workspace;

/* Daemon start, after workspaces_load and before status_init (the templates; every workspace's notebooks
 * listed once). */
int exports_init(Daemon *d, DjError *reterr);
/* Daemon exit: previews still running are killed and their callers told. */
void exports_free(Daemon *d);
/* preset.reload and SIGHUP: reads the templates again (warnings as for presets). */
int exports_reload_templates(Daemon *d, char ***ret_warnings, DjError *reterr);

/* [{slug, title, description, tags, data}], sorted by slug (a new reference). */
json_t *exports_templates_json(Daemon *d);
/* <root>/<slug> (new string), NULL on OOM. */
char *exports_dir(Daemon *d, Workspace *w);

/* For run.c. At run.start of kind "export": the template (DJ_E_NOT_FOUND when there is none) and the
 * helper's argv for it. */
int export_run_argv(Daemon *d, Workspace *w, const char *template, const DatalabTemplate **ret_t,
                    char ***ret_argv, DjError *reterr);
/* When the run starts: the input document in a memfd positioned at 0 (the child's stdin), or a failure
 * that fails the run (no completed scan of a kind the template needs...). */
int export_input_fd(Daemon *d, Workspace *w, const char *template, DjError *reterr);
/* The input document itself (exported for tests and bench). */
json_t *export_input_json(Daemon *d, Workspace *w, const DatalabTemplate *t, DjError *reterr);

/* export.list: the workspace's notebooks, refreshed (a new reference). */
json_t *exports_list(Daemon *d, Workspace *w, DjError *reterr);
/* The cached list for the status document (borrowed; an empty array when none). */
json_t *exports_notebooks(Workspace *w);
/* {templates: [{slug, title, description, tags}], notebooks, live_enabled}: the status document's part. */
json_t *exports_status_json(Daemon *d, Workspace *w);
/* export.remove: name.ipynb (and its name.html preview). */
int export_remove(Daemon *d, Workspace *w, const char *name, DjError *reterr);
/* export.preview: spawns the helper; the call is answered when it is done: {file, notebook}. */
int export_preview(Daemon *d, Workspace *w, const char *name, OpCall *c, DjError *reterr);
