/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "bus.h"
#include "config.h"
#include "daemon.h"
#include "dj-log.h"
#include "events.h"
#include "loop.h"
#include "rpc-server.h"
#include "export.h"
#include "run.h"
#include "scan.h"
#include "server.h"
#include "status.h"
#include "strv.h"

/* The presets are reloaded with the configuration; a failure keeps the current set. */
static void runs_reload_presets_logged(Daemon *d) {
        _cleanup_strv_free_ char **warnings = NULL;
        DjError err = DJ_ERROR_INIT;

        if (runs_reload_presets(d, &warnings, &err) < 0) {
                log_warning("Cannot reload the presets, keeping the current ones: %s",
                            err.message ?: "error");
                dj_error_done(&err);
                return;
        }
        for (char **w = warnings; w && *w; w++)
                log_warning("Preset %s, skipping it.", *w);
        warnings = strv_free(warnings);
        if (exports_reload_templates(d, &warnings, &err) < 0) {
                log_warning("Cannot reload the Data Lab templates, keeping the current ones: %s",
                            err.message ?: "error");
                dj_error_done(&err);
                return;
        }
        for (char **w = warnings; w && *w; w++)
                log_warning("Data Lab template %s, skipping it.", *w);
}

int daemon_reload(Daemon *d, DjError *reterr) {
        _cleanup_(config_freep) Config *c = NULL;
        DjError err = DJ_ERROR_INIT;
        int r;

        r = config_load(d->config_path_arg, d->overrides, d->n_overrides, &c, &err);
        if (r < 0) {
                log_error("Reload failed, keeping the current configuration: %s", err.message ?: "error");
                (void) events_publish(d->events, "daemon.reloaded",
                                      json_pack("{s:b, s:s, s:s}", "ok", 0, "error", err.message ?: "error",
                                                "config_path", d->config->path));
                if (reterr) {
                        dj_error_done(reterr);
                        *reterr = err;
                } else
                        dj_error_done(&err);
                return r;
        }
        for (int i = 0; i < _CONFIG_ITEM_MAX; i++) {
                if (config_item_reloadable(i) || config_item_equal(d->config, c, i))
                        continue;
                log_warning("Changing '%s' needs a restart of djdeskd; keeping the current value.",
                            config_item_name(i));
                (void) config_item_copy(c, d->config, i);
        }
        config_free(d->config);
        d->config = TAKE_PTR(c);
        log_set_max_level(d->config->log_level);
        log_info("Configuration reloaded from '%s'%s.", d->config->path,
                 d->config->file_loaded ? "" : " (not present, defaults)");
        (void) events_publish(d->events, "daemon.reloaded",
                              json_pack("{s:b, s:s}", "ok", 1, "config_path", d->config->path));
        daemon_update_status(d);
        runs_reload_presets_logged(d);
        /* The docs of every status document: the presets' docs_url and the [docs] settings. */
        status_changed(d, NULL, STATUS_PART_MASK(STATUS_PART_DOCS));
        return 0;
}

static void shutdown_drained_cb(void *userdata) {
        Daemon *d = userdata;

        bus_release(d->bus);
        loop_exit(d->loop);
}

static void shutdown_runs_stopped_cb(void *userdata) {
        Daemon *d = userdata;

        if (d->rpc)
                rpc_server_drain(d->rpc, shutdown_drained_cb, d);
        else
                shutdown_drained_cb(d);
}

static void shutdown_servers_stopped_cb(void *userdata) {
        Daemon *d = userdata;

        /* The runs got SIGTERM with the servers; they are SIGKILLed after cancel_grace_sec at most. */
        runs_wait_stopped(d, shutdown_runs_stopped_cb, d);
}

void daemon_shutdown(Daemon *d, const char *reason) {
        if (d->shutting_down)
                return;
        d->shutting_down = true;
        free(d->shutdown_reason);
        d->shutdown_reason = strdup(reason);
        log_info("%s: shutting down.", reason);
        (void) sd_notify(0, "STOPPING=1\nSTATUS=Shutting down");
        (void) events_publish(d->events, "daemon.shutdown", json_pack("{s:s}", "reason", reason));
        /* Running runs get SIGTERM (recorded interrupted when they exit); nothing more is dispatched. */
        runs_shutdown(d);
        scans_shutdown(d);
        /* Servers first (bounded by stop_timeout_sec + 1 s): clients still see their last events. */
        servers_stop_all(d, shutdown_servers_stopped_cb, d);
}

void daemon_update_status(Daemon *d) {
        (void) sd_notifyf(0, "STATUS=Serving on %s%s; D-Bus %s", d->socket_path,
                          d->socket_activated ? " (socket-activated)" : "",
                          d->bus_connected ? "connected as " DJDESK_BUS_NAME : "not connected");
}
