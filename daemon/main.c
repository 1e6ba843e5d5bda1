/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "bus.h"
#include "child.h"
#include "config.h"
#include "daemon.h"
#include "dj-log.h"
#include "dj-util.h"
#include "events.h"
#include "export.h"
#include "interp.h"
#include "loop.h"
#include "ops-domain.h"
#include "notify.h"
#include "rpc-server.h"
#include "run.h"
#include "scan.h"
#include "status.h"
#include "workspace.h"
#include "server.h"

static bool arg_print_config = false;

static void help(void) {
        printf("Usage: djdeskd [OPTIONS]\n\n"
               "The djdesk daemon: runs your Django projects and publishes their state over D-Bus\n"
               "(%s) and a JSON-RPC socket.\n\n"
               "  -h --help              Show this help\n"
               "     --version           Show the version\n"
               "  -c --config=PATH       Configuration file (default: $XDG_CONFIG_HOME/djdesk/djdesk.conf)\n"
               "     --socket=PATH       JSON-RPC socket (default: $XDG_RUNTIME_DIR/djdesk/daemon.sock)\n"
               "     --database=PATH     SQLite store (default: $XDG_STATE_HOME/djdesk/djdesk.db)\n"
               "     --log-level=LEVEL   error, warning, notice, info or debug\n"
               "  -v --verbose           Same as --log-level=debug\n"
               "  -q --quiet             Same as --log-level=warning\n"
               "     --no-bus            Do not connect to the D-Bus session bus\n"
               "     --print-config      Print the effective configuration and where each value came "
               "from\n\n"
               "See djdeskd(8) and djdesk.conf(5).\n",
               DJDESK_BUS_NAME);
}

static int add_override(Daemon *d, ConfigItemId id, const char *value) {
        ConfigOverride *o = realloc(d->overrides, (d->n_overrides + 1) * sizeof(ConfigOverride));

        if (!o)
                return log_oom();
        d->overrides = o;
        o[d->n_overrides].id = id;
        o[d->n_overrides].value = strdup(value);
        if (!o[d->n_overrides].value)
                return log_oom();
        d->n_overrides++;
        return 0;
}

/* Returns 1 to go on, 0 to exit successfully, < 0 on a usage error. */
static int parse_argv(Daemon *d, int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_SOCKET, ARG_DATABASE, ARG_LOG_LEVEL, ARG_NO_BUS, ARG_PRINT_CONFIG };
        static const struct option options[] = { { "help", no_argument, NULL, 'h' },
                                                 { "version", no_argument, NULL, ARG_VERSION },
                                                 { "config", required_argument, NULL, 'c' },
                                                 { "socket", required_argument, NULL, ARG_SOCKET },
                                                 { "database", required_argument, NULL, ARG_DATABASE },
                                                 { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                                                 { "verbose", no_argument, NULL, 'v' },
                                                 { "quiet", no_argument, NULL, 'q' },
                                                 { "no-bus", no_argument, NULL, ARG_NO_BUS },
                                                 { "print-config", no_argument, NULL, ARG_PRINT_CONFIG },
                                                 {} };
        int c, r = 0;

        while ((c = getopt_long(argc, argv, "hc:vq", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("djdeskd %s\n", DJDESK_VERSION);
                        return 0;
                case 'c':
                        free(d->config_path_arg);
                        d->config_path_arg = strdup(optarg);
                        if (!d->config_path_arg)
                                return log_oom();
                        break;
                case ARG_SOCKET:
                        r = add_override(d, CONFIG_SOCKET, optarg);
                        break;
                case ARG_DATABASE:
                        r = add_override(d, CONFIG_DATABASE, optarg);
                        break;
                case ARG_LOG_LEVEL:
                        r = add_override(d, CONFIG_LOG_LEVEL, optarg);
                        break;
                case 'v':
                        r = add_override(d, CONFIG_LOG_LEVEL, "debug");
                        break;
                case 'q':
                        r = add_override(d, CONFIG_LOG_LEVEL, "warning");
                        break;
                case ARG_NO_BUS:
                        r = add_override(d, CONFIG_DBUS, "no");
                        break;
                case ARG_PRINT_CONFIG:
                        arg_print_config = true;
                        break;
                case '?':
                        return -EINVAL;
                default:
                        return -EINVAL;
                }
                if (r < 0)
                        return r;
        }
        if (optind < argc) {
                log_error("Unexpected argument '%s'. Try 'djdeskd --help'.", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static int reserve_seq_cb(uint64_t reserve_until, void *userdata) {
        Daemon *d = userdata;

        return store_meta_set_u64(d->store, "event_seq_reserved", reserve_until);
}

/* The path of an inherited Unix socket, for humans: "@name" for the abstract namespace. */
static char *socket_fd_path(int fd) {
        struct sockaddr_un sa = {};
        socklen_t len = sizeof(sa);
        size_t n;

        if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0 ||
            len <= offsetof(struct sockaddr_un, sun_path))
                return strdup("(inherited)");
        n = len - offsetof(struct sockaddr_un, sun_path);
        if (sa.sun_path[0] == '\0') {
                sa.sun_path[0] = '@';
                return strndup(sa.sun_path, n);
        }
        return strndup(sa.sun_path, strnlen(sa.sun_path, n));
}

static int open_socket(Daemon *d, int *ret_fd) {
        DjError err = DJ_ERROR_INIT;
        int n, r;

        n = sd_listen_fds(1);
        if (n < 0)
                return log_error_errno(n, "Cannot read the sockets passed by systemd: %m");
        if (n > 1)
                return log_error("Expected one socket from systemd, got %d.", n), -EINVAL;
        if (n == 1) {
                if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0)
                        return log_error("The socket passed by systemd is not a listening Unix stream "
                                         "socket."),
                               -EINVAL;
                d->socket_activated = true;
                *ret_fd = SD_LISTEN_FDS_START;
                d->socket_path = socket_fd_path(SD_LISTEN_FDS_START);
                if (!d->socket_path)
                        return log_oom();
                return 0;
        }
        d->socket_path = strdup(d->config->socket);
        if (!d->socket_path)
                return log_oom();
        r = rpc_socket_bind(d->config->socket, ret_fd, &err);
        if (r < 0)
                log_error("%s", err.message ?: "cannot create the socket");
        else
                d->socket_created = true;
        dj_error_done(&err);
        return r;
}

static int open_store(Daemon *d) {
        _cleanup_free_ char *dir = strdup(d->config->database);
        DjError err = DJ_ERROR_INIT;
        char *slash;
        int r;

        if (!dir)
                return log_oom();
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = '\0';
                r = mkdir_parents(dir, 0700);
                if (r < 0)
                        return log_error_errno(r, "Cannot create '%s': %m", dir);
        }
        r = store_open(d->config->database, &d->store, &err);
        if (r < 0)
                log_error("%s", err.message ?: "cannot open the store");
        dj_error_done(&err);
        return r;
}

static int setup_events(Daemon *d) {
        uint64_t reserved = 1;
        int r;

        r = store_meta_get_u64(d->store, "event_seq_reserved", &reserved);
        if (r == -ENOENT || reserved == 0)
                reserved = 1;
        else if (r < 0)
                return log_error_errno(r, "Cannot read the event sequence from the store: %m");
        r = events_new(d->config->event_ring, d->config->event_ring_bytes, reserved, &d->events);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the event ring: %m");
        events_set_reserve(d->events, reserved, reserve_seq_cb, d);
        return 0;
}

/* Desktop notifications go over the session bus too: none when D-Bus is switched off. */
static int setup_notifier(Daemon *d) {
        int r;

        if (d->config->dbus == DBUS_MODE_NO)
                return 0;
        r = notifier_new(d, &d->notifier);
        if (r < 0)
                log_warning_errno(r, "Cannot start the desktop notification thread, ignoring: %m");
        return 0;
}

static int setup_bus(Daemon *d) {
        DjError err = DJ_ERROR_INIT;
        int r;

        if (d->config->dbus == DBUS_MODE_NO) {
                log_info("D-Bus disabled by configuration; serving the socket only.");
                return 0;
        }
        r = bus_open(d, loop_base(d->loop), &d->bus, &err);
        if (r >= 0) {
                d->bus_connected = true;
                dj_error_done(&err);
                return 0;
        }
        if (r == -EEXIST || d->config->dbus == DBUS_MODE_YES) {
                log_error("%s", err.message ?: "D-Bus failed");
                dj_error_done(&err);
                return r;
        }
        log_warning("%s; serving the socket only.", err.message ?: "D-Bus failed");
        dj_error_done(&err);
        return 0;
}

static void daemon_done(Daemon *d) {
        /* Workspace operations still in flight are answered while their transports are still there. */
        ops_workspace_cancel_all(d);
        exports_free(d); /* previews in flight are answered too */
        /* The socket file goes with us, on a clean stop and after a failed start alike, but only if we
         * made it: an inherited one is systemd's, and a live daemon's is never ours. */
        if (d->socket_created && unlink(d->socket_path) < 0 && errno != ENOENT)
                log_warning_errno(errno, "Cannot remove '%s', ignoring: %m", d->socket_path);
        d->rpc = rpc_server_free(d->rpc);
        d->bus = bus_free(d->bus);
        runs_free(d); /* kills what still runs: recorded as interrupted */
        status_free(d);
        scans_free(d); /* kills a probe still running */
        workspaces_free(d);
        interp_cache_clear(d);
        d->notifier = notifier_free(d->notifier); /* sends what is queued, waits ~1 s at most */
        if (d->store && d->start_id > 0)
                (void) store_daemon_stopped(d->store, d->start_id, now_usec(CLOCK_REALTIME),
                                            d->shutdown_reason ?: "exit");
        d->events = events_free(d->events);
        d->store = store_free(d->store);
        d->loop = loop_free(d->loop);
        d->config = config_free(d->config);
        for (size_t i = 0; i < d->n_overrides; i++)
                free(d->overrides[i].value);
        free(d->overrides);
        free(d->config_path_arg);
        free(d->shutdown_reason);
        free(d->socket_path);
        free(d->started_at_iso);
}

static int run(Daemon *d) {
        DjError err = DJ_ERROR_INIT;
        _cleanup_close_ int fd = -1;
        int r;

        r = config_load(d->config_path_arg, d->overrides, d->n_overrides, &d->config, &err);
        if (r < 0) {
                log_error("%s", err.message ?: "bad configuration");
                dj_error_done(&err);
                return r;
        }
        log_set_max_level(d->config->log_level);
        if (arg_print_config) {
                config_print(d->config, stdout);
                return 0;
        }

        d->started_at = now_usec(CLOCK_REALTIME);
        d->started_at_iso = format_timestamp_iso(d->started_at);
        if (!d->started_at_iso)
                return log_oom();
        d->started_mono = now_usec(CLOCK_MONOTONIC);

        r = loop_new(d, &d->loop);
        if (r < 0)
                return log_error_errno(r, "Cannot set up the event loop: %m");
        r = open_socket(d, &fd);
        if (r < 0)
                return r;
        r = open_store(d);
        if (r < 0)
                return r;
        r = store_daemon_started(d->store, (int) getpid(), DJDESK_VERSION, d->started_at, &d->start_id,
                                 &d->previous_shutdown);
        if (r < 0)
                return log_error_errno(r, "Cannot write to the store '%s': %m", d->config->database);
        if (d->previous_shutdown == STORE_PREVIOUS_UNCLEAN)
                log_warning("The previous djdeskd did not shut down cleanly.");
        /* Before anything is started: the process groups a crashed daemon left behind. */
        r = child_reap_orphans(d->store, d->config->stop_timeout_sec * USEC_PER_SEC);
        if (r < 0)
                log_warning_errno(r, "Cannot end the processes left by the previous djdeskd, ignoring: %m");
        else if (r > 0)
                log_notice("Ended %d process group(s) left by the previous djdeskd.", r);
        r = setup_events(d);
        if (r < 0)
                return r;
        r = setup_notifier(d);
        if (r < 0)
                return r;
        r = workspaces_load(d, &err);
        if (r < 0) {
                log_error("Cannot load the workspaces: %s", err.message ?: "error");
                dj_error_done(&err);
                return r;
        }
        /* The presets, and the runs the previous daemon left: nothing starts before runs_start(). */
        r = runs_init(d, &err);
        if (r < 0) {
                log_error("Cannot set up the task queue: %s", err.message ?: "error");
                dj_error_done(&err);
                return r;
        }
        /* The scans the store holds (and the events that trigger new ones), then the status documents. */
        r = scans_init(d, &err);
        if (r < 0) {
                log_error("Cannot set up the scans: %s", err.message ?: "error");
                dj_error_done(&err);
                return r;
        }
        /* The Data Lab's templates and notebooks, before the status documents that show them. */
        r = exports_init(d, &err);
        if (r < 0) {
                log_error("Cannot set up the Data Lab: %s", err.message ?: "error");
                dj_error_done(&err);
                return r;
        }
        r = status_init(d, &err);
        if (r < 0) {
                log_error("Cannot set up the status documents: %s", err.message ?: "error");
                dj_error_done(&err);
                return r;
        }
        r = rpc_server_new(d, loop_base(d->loop), TAKE_FD(fd), &d->rpc);
        if (r < 0)
                return log_error_errno(r, "Cannot serve the socket: %m");
        r = setup_bus(d);
        if (r < 0)
                return r;

        log_info("djdeskd %s ready on '%s'%s%s.", DJDESK_VERSION, d->socket_path,
                 d->socket_activated ? " (socket-activated)" : "",
                 d->bus_connected ? " and on the session bus as " DJDESK_BUS_NAME : "");
        (void) sd_notify(0, "READY=1");
        daemon_update_status(d);
        servers_autostart(d);
        runs_start(d);
        scans_start(d);

        r = loop_run(d->loop);
        if (r < 0)
                return log_error_errno(r, "The event loop failed: %m");
        return 0;
}

int main(int argc, char *argv[]) {
        Daemon d = {};
        int r;

        log_setup("djdeskd");
        r = parse_argv(&d, argc, argv);
        if (r <= 0) {
                daemon_done(&d);
                return r < 0 ? 2 : 0;
        }
        /* Replies to vanished clients must not kill us; signals are handled by the loop. */
        (void) signal(SIGPIPE, SIG_IGN);

        r = run(&d);
        daemon_done(&d);
        return r < 0 ? 1 : 0;
}
