/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config-file.h"
#include "store.h"

typedef struct Events Events;
typedef struct Exports Exports;
typedef struct Loop Loop;
typedef struct RpcServer RpcServer;
typedef struct Bus Bus;
typedef struct InterpCache InterpCache;
typedef struct Notifier Notifier;
typedef struct PresetSet PresetSet;
typedef struct RunQueue RunQueue;
typedef struct ScanQueue ScanQueue;
typedef struct StatusHub StatusHub;
typedef struct Workspace Workspace;

/* Everything the daemon owns, in one place (systemd's Manager, in spirit). Domain modules see this struct
 * but only through the plain-C parts: config, store, events. */
typedef struct Daemon {
        Config *config;
        ConfigOverride *overrides; /* from the command line, re-applied on reload */
        size_t n_overrides;
        char *config_path_arg; /* --config, or NULL for the default */

        Loop *loop;
        Store *store;
        Events *events;
        RpcServer *rpc;
        Bus *bus;
        Notifier *notifier;

        Workspace *workspaces;     /* the registry (workspace.c), in creation order */
        InterpCache *interp_cache; /* interp.c's verdicts per (interpreter, mtime) */
        PresetSet *presets;        /* the allowlist (preset.c), swapped whole on reload */
        RunQueue *runs;            /* the task queue (run.c) */
        ScanQueue *scans;          /* the probes (scan.c) */
        StatusHub *status;         /* the status documents (status.c) */
        Exports *exports;          /* the Data Lab (export.c) */

        uint64_t started_at;   /* µs, CLOCK_REALTIME */
        char *started_at_iso;  /* the same, formatted once for daemon.info */
        uint64_t started_mono; /* µs, CLOCK_MONOTONIC */
        uint64_t start_id;     /* row in daemon_starts */
        StorePreviousShutdown previous_shutdown;
        char *socket_path; /* the socket we serve: configured, or inherited from systemd */
        bool socket_activated;
        bool socket_created; /* we bound the socket file, so we remove it */
        bool bus_connected;
        size_t n_clients;     /* socket clients, kept by the transport */
        size_t n_subscribers; /* socket clients with a subscription */
        bool shutting_down;
        char *shutdown_reason;
} Daemon;

/* Re-reads the configuration into a fresh Config and swaps it in only on success. */
int daemon_reload(Daemon *d, DjError *reterr);
/* Begins a graceful shutdown: stop accepting, publish daemon.shutdown, flush replies, then leave the loop. */
void daemon_shutdown(Daemon *d, const char *reason);
/* A one-line summary for sd_notify STATUS=. */
void daemon_update_status(Daemon *d);
