/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "bus.h"

#define BUS_PATH_MANAGER          "/io/djdesk/Desk1"
#define BUS_IFACE_MANAGER         "io.djdesk.Desk1.Manager"
#define BUS_PATH_WORKSPACE_PREFIX "/io/djdesk/Desk1/workspace"
#define BUS_IFACE_WORKSPACE       "io.djdesk.Desk1.Workspace"
#define BUS_PATH_RUN_PREFIX       "/io/djdesk/Desk1/run"
#define BUS_IFACE_RUN             "io.djdesk.Desk1.Run"

typedef struct BusLoop BusLoop;
typedef struct BusRunObjects BusRunObjects;
typedef struct EventSubscriber EventSubscriber;

struct Bus {
        Daemon *daemon;
        sd_bus *bus;
        BusLoop *loop;
        bool name_acquired;
        EventSubscriber *workspace_events; /* workspace.* and server.state -> signals (bus-workspace.c) */
        BusRunObjects *runs;               /* run.* -> signals, the run objects announced (bus-run.c) */
};

/* bus-manager.c: the manager object, the ObjectManager and the error map. */
int bus_manager_register(Bus *b);
/* Runs the operation method with params (stolen, may be NULL) for the method call m and replies to m once
 * the operation is done: with format(reply, result) on success (NULL: an empty reply), or with the error
 * named after the operation's error kind. Returns 1 (the reply comes later) or a negative errno. */
int bus_call_op(sd_bus_message *m, Bus *b, const char *method, json_t *params /* stolen */,
                int (*format)(sd_bus_message *reply, json_t *result), sd_bus_error *error);
/* A format for bus_call_op(): the result as one string of compact JSON (keys sorted). */
int bus_format_json_string(sd_bus_message *reply, json_t *result);

/* bus-workspace.c: one object per workspace below BUS_PATH_WORKSPACE_PREFIX, and the event subscriber that
 * turns workspace.* and server.state into InterfacesAdded/InterfacesRemoved and PropertiesChanged. */
int bus_workspace_register(Bus *b);
void bus_workspace_unregister(Bus *b);
/* The object path of the workspace with this slug (sd_bus_path_encode), or -ENOMEM. */
int bus_workspace_path(const char *slug, char **ret);

/* bus-run.c: one object per run in memory below BUS_PATH_RUN_PREFIX (decimal id), and the event subscriber
 * that turns run.* into InterfacesAdded/InterfacesRemoved, PropertiesChanged and Manager.RunFinished. */
int bus_run_register(Bus *b);
void bus_run_unregister(Bus *b);
/* The object path of the run with this id, or -ENOMEM. */
int bus_run_path(uint64_t id, char **ret);
/* Appends "to": a run's id and object path, from its JSON (run.start's and export.create's replies). */
int bus_append_run_ref(sd_bus_message *reply, json_t *run);
