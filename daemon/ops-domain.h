/* SPDX-License-Identifier: MIT */
#pragma once

/* The domain operations of the table in ops.c, one block per file. */

#include <jansson.h>

typedef struct Daemon Daemon;
typedef struct OpCall OpCall;

/* workspaces and samples (ops-workspace.c) */
int op_sample_install(OpCall *c, json_t *params);
int op_sample_list(OpCall *c, json_t *params);
int op_workspace_add(OpCall *c, json_t *params);
int op_workspace_get(OpCall *c, json_t *params);
int op_workspace_list(OpCall *c, json_t *params);
int op_workspace_remove(OpCall *c, json_t *params);
int op_workspace_update(OpCall *c, json_t *params);
/* Fails the workspace operations still in flight (daemon exit, before the transports go). */
void ops_workspace_cancel_all(Daemon *d);

/* servers (ops-server.c) */
int op_server_logs(OpCall *c, json_t *params);
int op_server_restart(OpCall *c, json_t *params);
int op_server_start(OpCall *c, json_t *params);
int op_server_status(OpCall *c, json_t *params);
int op_server_stop(OpCall *c, json_t *params);

/* presets and runs (ops-run.c) */
int op_preset_list(OpCall *c, json_t *params);
int op_preset_reload(OpCall *c, json_t *params);
int op_run_cancel(OpCall *c, json_t *params);
int op_run_get(OpCall *c, json_t *params);
int op_run_list(OpCall *c, json_t *params);
int op_run_logs(OpCall *c, json_t *params);
int op_run_start(OpCall *c, json_t *params);

/* scans (ops-scan.c) */
int op_scan_cancel(OpCall *c, json_t *params);
int op_scan_get(OpCall *c, json_t *params);
int op_scan_list(OpCall *c, json_t *params);
int op_scan_result(OpCall *c, json_t *params);
int op_scan_start(OpCall *c, json_t *params);

/* the Data Lab (ops-export.c) */
int op_export_create(OpCall *c, json_t *params);
int op_export_list(OpCall *c, json_t *params);
int op_export_preview(OpCall *c, json_t *params);
int op_export_remove(OpCall *c, json_t *params);
int op_export_templates(OpCall *c, json_t *params);

/* the status document (status.c) */
int op_workspace_status(OpCall *c, json_t *params);
