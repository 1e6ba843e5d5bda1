/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dj-error.h"

typedef enum ConfigItemId {
        CONFIG_LOG_LEVEL,
        CONFIG_MAX_CLIENTS,
        CONFIG_CLIENT_OUTPUT_LIMIT,
        CONFIG_EVENT_RING,
        CONFIG_EVENT_RING_BYTES,
        CONFIG_DBUS,
        CONFIG_SOCKET,
        CONFIG_DATABASE,
        CONFIG_NOTIFICATIONS,
        CONFIG_PYTHON,
        CONFIG_FORCE_PORT,
        CONFIG_SETTINGS_MODULE,
        CONFIG_DATA_LAB_ROOT,
        CONFIG_SAMPLE_ROOT,
        CONFIG_SAMPLES_DIR,
        CONFIG_SERVE_HELPER,
        CONFIG_START_TIMEOUT,
        CONFIG_STOP_TIMEOUT,
        CONFIG_RELOAD_DEBOUNCE,
        CONFIG_LOG_LINES,
        CONFIG_LOG_STORE_LINES,
        CONFIG_PRESETS_DIR,
        CONFIG_TASK_TIMEOUT,
        CONFIG_MAX_PARALLEL,
        CONFIG_RUN_RETENTION,
        CONFIG_CANCEL_GRACE,
        CONFIG_PROBE_HELPER,
        CONFIG_SCAN_DEBOUNCE,
        CONFIG_DOCS_URL,
        CONFIG_DOCS_DIR,
        CONFIG_DATALAB_TEMPLATES,
        CONFIG_EXPORT_HELPER,
        _CONFIG_ITEM_MAX,
        _CONFIG_ITEM_INVALID = -EINVAL,
} ConfigItemId;

typedef enum ConfigSource {
        CONFIG_SOURCE_DEFAULT,
        CONFIG_SOURCE_FILE,
        CONFIG_SOURCE_ENV,
        CONFIG_SOURCE_CMDLINE,
        _CONFIG_SOURCE_MAX,
} ConfigSource;

typedef enum DbusMode {
        DBUS_MODE_AUTO,
        DBUS_MODE_YES,
        DBUS_MODE_NO,
        _DBUS_MODE_MAX,
        _DBUS_MODE_INVALID = -EINVAL,
} DbusMode;

/* Which finished runs become desktop notifications (server failures are always shown unless off). */
typedef enum NotifyMode {
        NOTIFY_MODE_ALL,
        NOTIFY_MODE_FAILURES,
        NOTIFY_MODE_OFF,
        _NOTIFY_MODE_MAX,
        _NOTIFY_MODE_INVALID = -EINVAL,
} NotifyMode;

typedef struct ConfigOrigin {
        ConfigSource source;
        unsigned line;   /* CONFIG_SOURCE_FILE */
        const char *env; /* CONFIG_SOURCE_ENV: the variable's name (static) */
} ConfigOrigin;

typedef struct Config {
        char *path;       /* the file that was (or would have been) read */
        bool file_loaded; /* the file existed */

        int log_level;
        uint64_t max_clients;
        uint64_t client_output_limit;
        uint64_t event_ring;
        uint64_t event_ring_bytes;
        DbusMode dbus;
        char *socket;
        char *database;
        NotifyMode notifications;
        char *python;
        uint64_t force_port; /* 0: none */
        char *settings_module;
        char *data_lab_root;
        char *sample_root;  /* where `sample install` copies samples */
        char *samples_dir;  /* the read-only samples shipped with djdesk */
        char *serve_helper; /* python/djdesk-serve */
        uint64_t start_timeout_sec;
        uint64_t stop_timeout_sec;
        uint64_t reload_debounce_ms;
        uint64_t log_lines;       /* per-workspace ring of server log lines */
        uint64_t log_store_lines; /* per-workspace server log lines kept in the store */
        char *presets_dir; /* the built-in presets.d (the user's is $XDG_CONFIG_HOME/djdesk/presets.d) */
        uint64_t task_timeout_sec; /* a preset's timeout_s when it sets none */
        uint64_t max_parallel;     /* runs running at once, in all workspaces */
        uint64_t run_retention;    /* finished runs kept per workspace */
        uint64_t cancel_grace_sec; /* SIGTERM, then SIGKILL after this long (cancel, timeout) */
        char *probe_helper;        /* python/djdesk-probe */
        char *datalab_templates;   /* the built-in Data Lab templates (data/datalab) */
        char *export_helper;       /* djdesk-export, the Data Lab's writer */
        uint64_t scan_debounce_ms; /* quiet time after a migration file changed before it is scanned */
        char *docs_url;            /* Django's online docs, "{version}" replaced ("3.2") */
        char *docs_dir;            /* locally installed Django HTML docs (python-django-doc) */

        ConfigOrigin origin[_CONFIG_ITEM_MAX];
} Config;

/* Values given on the command line, applied last and again on every reload. */
typedef struct ConfigOverride {
        ConfigItemId id;
        char *value;
} ConfigOverride;

Config *config_free(Config *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Config *, config_free);

/* Builds a configuration: defaults, then the file at path (a missing file is fine), then the
 * environment, then the overrides. Bad values fail with reterr naming "FILE:LINE" (or the variable).
 * Unknown keys are logged as warnings. */
int config_load(const char *path, const ConfigOverride *overrides, size_t n_overrides, Config **ret,
                DjError *reterr);

/* Parses only the file into c (for tests and for config_load). */
int config_parse_file(Config *c, const char *path, FILE *f, DjError *reterr);
Config *config_new_defaults(void);

ConfigItemId config_item_from_name(const char *name); /* "log_level" or "daemon.log_level" */
const char *config_item_name(ConfigItemId id);

/* Prints the effective configuration as INI with the origin of each value. */
void config_print(const Config *c, FILE *f);

/* The default path: $XDG_CONFIG_HOME/djdesk/djdesk.conf */
int config_default_path(char **ret);

const char *dbus_mode_to_string(DbusMode m);
const char *notify_mode_to_string(NotifyMode m); /* "all", "failures", "off" */
NotifyMode notify_mode_from_string(const char *s);

bool config_item_reloadable(ConfigItemId id);
/* Whether a and b hold the same value for id. */
bool config_item_equal(const Config *a, const Config *b, ConfigItemId id);
/* Copies one value (and its origin) from src to dst. */
int config_item_copy(Config *dst, const Config *src, ConfigItemId id);
