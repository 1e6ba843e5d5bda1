/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config-file.h"
#include "dj-log.h"
#include "dj-util.h"
#include "xdg.h"

typedef enum ConfigType {
        CONFIG_TYPE_LOG_LEVEL,
        CONFIG_TYPE_UINT,
        CONFIG_TYPE_SIZE,
        CONFIG_TYPE_DBUS,
        CONFIG_TYPE_NOTIFY,
        CONFIG_TYPE_PATH,   /* absolute path, empty = unset */
        CONFIG_TYPE_STRING, /* any string, empty = unset */
} ConfigType;

typedef struct ConfigItem {
        const char *section;
        const char *key;
        ConfigType type;
        size_t offset;
        uint64_t min, max;
        const char *def;    /* default, as text; NULL = computed or unset */
        const char *env[2]; /* environment overrides, first one set wins */
        bool reloadable;
        const char *help;
} ConfigItem;

#define OFF(f) offsetof(Config, f)

static const ConfigItem config_items[_CONFIG_ITEM_MAX] = {
        [CONFIG_LOG_LEVEL] = { "daemon",
                               "log_level",
                               CONFIG_TYPE_LOG_LEVEL,
                               OFF(log_level),
                               0,
                               0,
                               "info",
                               { "DJDESK_LOG_LEVEL" },
                               true,
                               "error|warning|notice|info|debug" },
        [CONFIG_MAX_CLIENTS] = { "daemon",
                                 "max_clients",
                                 CONFIG_TYPE_UINT,
                                 OFF(max_clients),
                                 1,
                                 65536,
                                 "256",
                                 { NULL },
                                 true,
                                 "socket clients at once" },
        [CONFIG_CLIENT_OUTPUT_LIMIT] = { "daemon",
                                         "client_output_limit",
                                         CONFIG_TYPE_SIZE,
                                         OFF(client_output_limit),
                                         UINT64_C(64) << 10,
                                         UINT64_C(1) << 30,
                                         "8M",
                                         { NULL },
                                         true,
                                         "queued output per client" },
        [CONFIG_EVENT_RING] = { "daemon",
                                "event_ring",
                                CONFIG_TYPE_UINT,
                                OFF(event_ring),
                                1,
                                1048576,
                                "4096",
                                { NULL },
                                false,
                                "events kept for replay" },
        [CONFIG_EVENT_RING_BYTES] = { "daemon",
                                      "event_ring_bytes",
                                      CONFIG_TYPE_SIZE,
                                      OFF(event_ring_bytes),
                                      UINT64_C(64) << 10,
                                      UINT64_C(1) << 30,
                                      "16M",
                                      { NULL },
                                      false,
                                      "serialized event bytes kept for replay" },
        [CONFIG_DBUS] = { "daemon",
                          "dbus",
                          CONFIG_TYPE_DBUS,
                          OFF(dbus),
                          0,
                          0,
                          "auto",
                          { NULL },
                          false,
                          "auto|yes|no" },
        [CONFIG_SOCKET] = { "daemon",
                            "socket",
                            CONFIG_TYPE_PATH,
                            OFF(socket),
                            0,
                            0,
                            NULL,
                            { NULL },
                            false,
                            "JSON-RPC socket" },
        [CONFIG_DATABASE] = { "daemon",
                              "database",
                              CONFIG_TYPE_PATH,
                              OFF(database),
                              0,
                              0,
                              NULL,
                              { NULL },
                              false,
                              "SQLite store" },
        [CONFIG_NOTIFICATIONS] = { "daemon",
                                   "notifications",
                                   CONFIG_TYPE_NOTIFY,
                                   OFF(notifications),
                                   0,
                                   0,
                                   "all",
                                   { "DJDESK_NOTIFICATIONS" },
                                   true,
                                   "all|failures|off: desktop notifications of finished runs" },
        [CONFIG_PYTHON] = { "server",
                            "python",
                            CONFIG_TYPE_STRING,
                            OFF(python),
                            0,
                            0,
                            NULL,
                            { "DJDESK_PYTHON" },
                            true,
                            "interpreter tried before the project's own" },
        [CONFIG_FORCE_PORT] = { "server",
                                "force_port",
                                CONFIG_TYPE_UINT,
                                OFF(force_port),
                                1,
                                65535,
                                NULL,
                                { "DJDESK_FORCE_PORT" },
                                true,
                                "port for every server" },
        [CONFIG_SETTINGS_MODULE] = { "server",
                                     "settings_module",
                                     CONFIG_TYPE_STRING,
                                     OFF(settings_module),
                                     0,
                                     0,
                                     NULL,
                                     { "DJANGO_SETTINGS_MODULE" },
                                     true,
                                     "fallback settings module" },
        [CONFIG_DATA_LAB_ROOT] = { "paths",
                                   "data_lab_root",
                                   CONFIG_TYPE_PATH,
                                   OFF(data_lab_root),
                                   0,
                                   0,
                                   NULL,
                                   { "INSPECTOR_DATA_LAB_ROOT", "DJDESK_DATA_LAB_ROOT" },
                                   true,
                                   "Data Lab exports" },
        [CONFIG_SAMPLE_ROOT] = { "paths",
                                 "sample_root",
                                 CONFIG_TYPE_PATH,
                                 OFF(sample_root),
                                 0,
                                 0,
                                 NULL,
                                 { "DJDESK_SAMPLE_ROOT" },
                                 true,
                                 "installed samples" },
        [CONFIG_SAMPLES_DIR] = { "paths",
                                 "samples_dir",
                                 CONFIG_TYPE_PATH,
                                 OFF(samples_dir),
                                 0,
                                 0,
                                 NULL,
                                 { "DJDESK_SAMPLES_DIR" },
                                 true,
                                 "samples shipped with djdesk (read-only)" },
        [CONFIG_SERVE_HELPER] = { "server",
                                  "serve_helper",
                                  CONFIG_TYPE_PATH,
                                  OFF(serve_helper),
                                  0,
                                  0,
                                  NULL,
                                  { "DJDESK_SERVE" },
                                  true,
                                  "the djdesk-serve helper" },
        [CONFIG_START_TIMEOUT] = { "server",
                                   "start_timeout_sec",
                                   CONFIG_TYPE_UINT,
                                   OFF(start_timeout_sec),
                                   1,
                                   3600,
                                   "60",
                                   {},
                                   true,
                                   "a start not ready by then fails" },
        [CONFIG_STOP_TIMEOUT] = { "server",
                                  "stop_timeout_sec",
                                  CONFIG_TYPE_UINT,
                                  OFF(stop_timeout_sec),
                                  1,
                                  600,
                                  "5",
                                  {},
                                  true,
                                  "SIGKILL after this long" },
        [CONFIG_RELOAD_DEBOUNCE] = { "server",
                                     "reload_debounce_ms",
                                     CONFIG_TYPE_UINT,
                                     OFF(reload_debounce_ms),
                                     10,
                                     60000,
                                     "300",
                                     {},
                                     true,
                                     "quiet time before a code change reloads" },
        [CONFIG_LOG_LINES] = { "server",
                               "log_lines",
                               CONFIG_TYPE_UINT,
                               OFF(log_lines),
                               10,
                               1000000,
                               "2000",
                               {},
                               true,
                               "log lines kept in memory per workspace" },
        [CONFIG_LOG_STORE_LINES] = { "server",
                                     "log_store_lines",
                                     CONFIG_TYPE_UINT,
                                     OFF(log_store_lines),
                                     0,
                                     10000000,
                                     "20000",
                                     {},
                                     true,
                                     "log lines kept in the store per workspace" },
        [CONFIG_PRESETS_DIR] = { "paths",
                                 "presets_dir",
                                 CONFIG_TYPE_PATH,
                                 OFF(presets_dir),
                                 0,
                                 0,
                                 NULL,
                                 { "DJDESK_PRESETS_DIR" },
                                 true,
                                 "the built-in presets.d" },
        [CONFIG_TASK_TIMEOUT] = { "tasks",
                                  "timeout_sec",
                                  CONFIG_TYPE_UINT,
                                  OFF(task_timeout_sec),
                                  1,
                                  86400,
                                  "60",
                                  { "DJDESK_INSPECTOR_TASK_TIMEOUT" },
                                  true,
                                  "a preset's timeout when it sets none" },
        [CONFIG_MAX_PARALLEL] = { "tasks",
                                  "max_parallel",
                                  CONFIG_TYPE_UINT,
                                  OFF(max_parallel),
                                  1,
                                  64,
                                  "2",
                                  { "DJDESK_MAX_PARALLEL" },
                                  true,
                                  "runs at once, in all workspaces (one per workspace)" },
        [CONFIG_RUN_RETENTION] = { "tasks",
                                   "retention",
                                   CONFIG_TYPE_UINT,
                                   OFF(run_retention),
                                   1,
                                   1000000,
                                   "500",
                                   {},
                                   true,
                                   "finished runs kept per workspace" },
        [CONFIG_CANCEL_GRACE] = { "tasks",
                                  "cancel_grace_sec",
                                  CONFIG_TYPE_UINT,
                                  OFF(cancel_grace_sec),
                                  1,
                                  300,
                                  "5",
                                  {},
                                  true,
                                  "SIGKILL this long after SIGTERM (cancel, timeout)" },
        [CONFIG_PROBE_HELPER] = { "scans",
                                  "probe_helper",
                                  CONFIG_TYPE_PATH,
                                  OFF(probe_helper),
                                  0,
                                  0,
                                  NULL,
                                  { "DJDESK_PROBE" },
                                  true,
                                  "the djdesk-probe helper" },
        [CONFIG_SCAN_DEBOUNCE] = { "scans",
                                   "debounce_ms",
                                   CONFIG_TYPE_UINT,
                                   OFF(scan_debounce_ms),
                                   10,
                                   600000,
                                   "1000",
                                   {},
                                   true,
                                   "quiet time after a migration file changed before a rescan" },
        [CONFIG_DOCS_URL] = { "docs",
                              "django_url",
                              CONFIG_TYPE_STRING,
                              OFF(docs_url),
                              0,
                              0,
                              "https://docs.djangoproject.com/en/{version}/",
                              { "DJDESK_DOCS_URL" },
                              true,
                              "Django's online docs ({version}: the workspace's, e.g. 3.2)" },
        [CONFIG_DOCS_DIR] = { "docs",
                              "django_dir",
                              CONFIG_TYPE_PATH,
                              OFF(docs_dir),
                              0,
                              0,
                              "/usr/share/doc/python-django-doc/html",
                              { "DJDESK_DOCS_DIR" },
                              true,
                              "locally installed Django docs, preferred when a page is there" },
        [CONFIG_DATALAB_TEMPLATES] = { "datalab",
                                       "templates_dir",
                                       CONFIG_TYPE_PATH,
                                       OFF(datalab_templates),
                                       0,
                                       0,
                                       NULL,
                                       { "DJDESK_DATALAB_TEMPLATES" },
                                       true,
                                       "the built-in notebook templates" },
        [CONFIG_EXPORT_HELPER] = { "datalab",
                                   "export_helper",
                                   CONFIG_TYPE_PATH,
                                   OFF(export_helper),
                                   0,
                                   0,
                                   NULL,
                                   { "DJDESK_EXPORT" },
                                   true,
                                   "the djdesk-export helper" },
};

static const char *const dbus_mode_table[_DBUS_MODE_MAX] = {
        [DBUS_MODE_AUTO] = "auto",
        [DBUS_MODE_YES] = "yes",
        [DBUS_MODE_NO] = "no",
};

const char *dbus_mode_to_string(DbusMode m) {
        return m >= 0 && m < _DBUS_MODE_MAX ? dbus_mode_table[m] : NULL;
}

static const char *const notify_mode_table[_NOTIFY_MODE_MAX] = {
        [NOTIFY_MODE_ALL] = "all",
        [NOTIFY_MODE_FAILURES] = "failures",
        [NOTIFY_MODE_OFF] = "off",
};

const char *notify_mode_to_string(NotifyMode m) {
        return m >= 0 && m < _NOTIFY_MODE_MAX ? notify_mode_table[m] : NULL;
}

NotifyMode notify_mode_from_string(const char *s) {
        for (int i = 0; i < _NOTIFY_MODE_MAX; i++)
                if (streq(s, notify_mode_table[i]))
                        return i;
        return _NOTIFY_MODE_INVALID;
}

static DbusMode dbus_mode_from_string(const char *s) {
        int b;

        if (streq(s, "auto"))
                return DBUS_MODE_AUTO;
        b = parse_boolean(s);
        if (b < 0)
                return _DBUS_MODE_INVALID;
        return b ? DBUS_MODE_YES : DBUS_MODE_NO;
}

ConfigItemId config_item_from_name(const char *name) {
        const char *dot = strchr(name, '.');

        for (int i = 0; i < _CONFIG_ITEM_MAX; i++) {
                const ConfigItem *it = &config_items[i];

                if (dot) {
                        if (strlen(it->section) == (size_t) (dot - name) &&
                            strneq(it->section, name, dot - name) && streq(it->key, dot + 1))
                                return i;
                } else if (streq(it->key, name))
                        return i;
        }
        return _CONFIG_ITEM_INVALID;
}

const char *config_item_name(ConfigItemId id) {
        return id >= 0 && id < _CONFIG_ITEM_MAX ? config_items[id].key : NULL;
}

/* Parses value into c's field. reason is a static explanation on failure. */
static int config_item_set(Config *c, ConfigItemId id, const char *value, const char **reason) {
        const ConfigItem *it = &config_items[id];
        void *field = (uint8_t *) c + it->offset;
        uint64_t u;
        int r;

        switch (it->type) {
        case CONFIG_TYPE_LOG_LEVEL:
                r = log_level_from_string(value);
                if (r < 0 || r < LOG_ERR) {
                        *reason = "expected error, warning, notice, info or debug";
                        return -EINVAL;
                }
                *(int *) field = r;
                return 0;
        case CONFIG_TYPE_UINT:
                if (isempty(value) && !it->def) {
                        *(uint64_t *) field = 0;
                        return 0;
                }
                r = parse_uint_range(value, it->min, it->max, &u);
                if (r < 0) {
                        *reason = r == -ERANGE ? "out of range" : "not a number";
                        return r;
                }
                *(uint64_t *) field = u;
                return 0;
        case CONFIG_TYPE_SIZE:
                r = parse_size(value, &u);
                if (r < 0) {
                        *reason = "not a size (bytes, or with a K, M or G suffix)";
                        return r;
                }
                if (u < it->min || u > it->max) {
                        *reason = "out of range";
                        return -ERANGE;
                }
                *(uint64_t *) field = u;
                return 0;
        case CONFIG_TYPE_DBUS: {
                DbusMode m = dbus_mode_from_string(value);

                if (m < 0) {
                        *reason = "expected auto, yes or no";
                        return -EINVAL;
                }
                *(DbusMode *) field = m;
                return 0;
        }
        case CONFIG_TYPE_NOTIFY: {
                NotifyMode m = notify_mode_from_string(value);

                if (m < 0) {
                        *reason = "expected all, failures or off";
                        return -EINVAL;
                }
                *(NotifyMode *) field = m;
                return 0;
        }
        case CONFIG_TYPE_PATH:
                if (!isempty(value) && value[0] != '/') {
                        *reason = "not an absolute path";
                        return -EINVAL;
                }
                _fallthrough_;
        case CONFIG_TYPE_STRING: {
                char *s = NULL;

                if (!isempty(value)) {
                        s = strdup(value);
                        if (!s) {
                                *reason = "out of memory";
                                return -ENOMEM;
                        }
                }
                free(*(char **) field);
                *(char **) field = s;
                return 0;
        }
        }
        *reason = "unknown type";
        return -EINVAL;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        for (int i = 0; i < _CONFIG_ITEM_MAX; i++)
                if (config_items[i].type == CONFIG_TYPE_PATH || config_items[i].type == CONFIG_TYPE_STRING)
                        free(*(char **) ((uint8_t *) c + config_items[i].offset));
        free(c->path);
        free(c);
        return NULL;
}

Config *config_new_defaults(void) {
        _cleanup_(config_freep) Config *c = calloc(1, sizeof(Config));
        const char *reason;

        if (!c)
                return NULL;
        for (int i = 0; i < _CONFIG_ITEM_MAX; i++) {
                c->origin[i] = (ConfigOrigin){ .source = CONFIG_SOURCE_DEFAULT };
                if (config_items[i].def && config_item_set(c, i, config_items[i].def, &reason) < 0)
                        return NULL;
        }
        return TAKE_PTR(c);
}

typedef struct ParseState {
        Config *config;
        const char *path;
        FILE *f;
        unsigned line;
        char *buf;
        size_t buf_size;
        bool too_long;
        DjError *reterr;
        int error;
} ParseState;

/* Our own reader so that we know the line number (Debian's inih is built without INI_HANDLER_LINENO) and
 * so that an overlong line is one error, not two lines. */
static char *reader_cb(char *str, int num, void *stream) {
        ParseState *s = stream;
        ssize_t n;

        n = getline(&s->buf, &s->buf_size, s->f);
        if (n < 0)
                return NULL;
        s->line++;
        if (n >= num) {
                if (s->error == 0) {
                        s->error = dj_error_set(s->reterr, DJ_E_INVALID,
                                                "%s:%u: line too long (at most %d bytes)", s->path, s->line,
                                                num - 2);
                }
                str[0] = '\n';
                str[1] = '\0';
                return str;
        }
        memcpy(str, s->buf, (size_t) n + 1);
        return str;
}

static int handler_cb(void *user, const char *section, const char *name, const char *value) {
        ParseState *s = user;
        const char *reason = NULL;
        int r;

        for (int i = 0; i < _CONFIG_ITEM_MAX; i++) {
                const ConfigItem *it = &config_items[i];

                if (!streq(it->section, section) || !streq(it->key, name))
                        continue;
                r = config_item_set(s->config, i, value, &reason);
                if (r < 0) {
                        if (s->error == 0)
                                s->error = dj_error_set_value(s->reterr, DJ_E_INVALID, value,
                                                              "%s:%u: invalid value '%s' for '%s': %s",
                                                              s->path, s->line, value, name, reason);
                        return 1; /* keep going: later lines may hold more mistakes worth a warning */
                }
                s->config->origin[i] = (ConfigOrigin){ .source = CONFIG_SOURCE_FILE, .line = s->line };
                return 1;
        }
        log_warning("%s:%u: unknown key '%s' in section [%s], ignoring.", s->path, s->line, name, section);
        return 1;
}

int config_parse_file(Config *c, const char *path, FILE *f, DjError *reterr) {
        ParseState s = { .config = c, .path = path, .f = f, .reterr = reterr };
        int r;

        r = ini_parse_stream(reader_cb, &s, handler_cb, &s);
        free(s.buf);
        if (s.error < 0)
                return s.error;
        if (r > 0)
                return dj_error_set(reterr, DJ_E_INVALID, "%s:%d: syntax error", path, r);
        if (r < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "%s: failed to parse", path);
        return 0;
}

int config_default_path(char **ret) {
        _cleanup_free_ char *dir = NULL;
        int r;

        r = xdg_config_home(&dir);
        if (r < 0)
                return r;
        *ret = path_join(dir, "djdesk/djdesk.conf");
        return *ret ? 0 : -ENOMEM;
}

static int config_fill_computed(Config *c) {
        _cleanup_free_ char *dir = NULL;
        int r;

        if (!c->socket) {
                r = djdesk_socket_path(&c->socket);
                if (r < 0)
                        return r;
        }
        if (!c->database) {
                r = xdg_state_home(&dir);
                if (r < 0)
                        return r;
                c->database = path_join(dir, "djdesk/djdesk.db");
                if (!c->database)
                        return -ENOMEM;
        }
        if (!c->sample_root || !c->data_lab_root) {
                free(dir);
                dir = NULL;
                r = xdg_data_home(&dir);
                if (r < 0)
                        return r;
                if (!c->sample_root && !(c->sample_root = path_join(dir, "djdesk/samples")))
                        return -ENOMEM;
                if (!c->data_lab_root && !(c->data_lab_root = path_join(dir, "djdesk/data_lab")))
                        return -ENOMEM;
        }
        if (!c->samples_dir && !(c->samples_dir = strdup(DJDESK_DATADIR "/samples")))
                return -ENOMEM;
        if (!c->presets_dir && !(c->presets_dir = strdup(DJDESK_DATADIR "/presets.d")))
                return -ENOMEM;
        if (!c->serve_helper && !(c->serve_helper = strdup(DJDESK_LIBEXECDIR "/djdesk-serve")))
                return -ENOMEM;
        if (!c->probe_helper && !(c->probe_helper = strdup(DJDESK_LIBEXECDIR "/djdesk-probe")))
                return -ENOMEM;
        if (!c->datalab_templates && !(c->datalab_templates = strdup(DJDESK_DATADIR "/datalab")))
                return -ENOMEM;
        if (!c->export_helper && !(c->export_helper = strdup(DJDESK_LIBEXECDIR "/djdesk-export")))
                return -ENOMEM;
        return 0;
}

int config_load(const char *path, const ConfigOverride *overrides, size_t n_overrides, Config **ret,
                DjError *reterr) {
        _cleanup_(config_freep) Config *c = NULL;
        const char *reason = NULL;
        FILE *f;
        int r;

        c = config_new_defaults();
        if (!c)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        if (path)
                c->path = strdup(path);
        else
                (void) config_default_path(&c->path);
        if (!c->path)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot determine the configuration path");

        f = fopen(c->path, "re");
        if (f) {
                c->file_loaded = true;
                r = config_parse_file(c, c->path, f, reterr);
                (void) fclose(f);
                if (r < 0)
                        return r;
        } else if (errno != ENOENT)
                return dj_error_set(reterr, DJ_E_INVALID, "%s: cannot open: %s", c->path, strerror(errno));

        for (int i = 0; i < _CONFIG_ITEM_MAX; i++)
                for (size_t k = 0; k < ELEMENTSOF(config_items[i].env) && config_items[i].env[k]; k++) {
                        const char *name = config_items[i].env[k], *v = getenv(name);

                        if (isempty(v)) /* set but empty counts as unset, for every variable */
                                continue;
                        r = config_item_set(c, i, v, &reason);
                        if (r < 0)
                                return dj_error_set_value(reterr, DJ_E_INVALID, v,
                                                          "environment variable %s: invalid value '%s': %s",
                                                          name, v, reason);
                        c->origin[i] = (ConfigOrigin){ .source = CONFIG_SOURCE_ENV, .env = name };
                        break;
                }

        for (size_t k = 0; k < n_overrides; k++) {
                r = config_item_set(c, overrides[k].id, overrides[k].value, &reason);
                if (r < 0)
                        return dj_error_set_value(reterr, DJ_E_INVALID, overrides[k].value,
                                                  "command line: invalid value '%s' for '%s': %s",
                                                  overrides[k].value, config_item_name(overrides[k].id),
                                                  reason);
                c->origin[overrides[k].id] = (ConfigOrigin){ .source = CONFIG_SOURCE_CMDLINE };
        }

        r = config_fill_computed(c);
        if (r < 0)
                return dj_error_set(reterr, DJ_E_INVALID,
                                    "cannot determine default paths (is $XDG_RUNTIME_DIR set?): %s",
                                    strerror(-r));
        *ret = TAKE_PTR(c);
        return 0;
}

static void config_format_value(const Config *c, ConfigItemId id, char *buf, size_t n) {
        const ConfigItem *it = &config_items[id];
        const void *field = (const uint8_t *) c + it->offset;

        switch (it->type) {
        case CONFIG_TYPE_LOG_LEVEL:
                (void) snprintf(buf, n, "%s", log_level_to_string(*(const int *) field));
                break;
        case CONFIG_TYPE_UINT:
        case CONFIG_TYPE_SIZE: {
                uint64_t u = *(const uint64_t *) field;

                if (u == 0 && !it->def)
                        buf[0] = '\0';
                else if (it->type == CONFIG_TYPE_SIZE && u % (UINT64_C(1) << 20) == 0)
                        (void) snprintf(buf, n, "%" PRIu64 "M", u >> 20);
                else if (it->type == CONFIG_TYPE_SIZE && u % (UINT64_C(1) << 10) == 0)
                        (void) snprintf(buf, n, "%" PRIu64 "K", u >> 10);
                else
                        (void) snprintf(buf, n, "%" PRIu64, u);
                break;
        }
        case CONFIG_TYPE_DBUS:
                (void) snprintf(buf, n, "%s", dbus_mode_to_string(*(const DbusMode *) field));
                break;
        case CONFIG_TYPE_NOTIFY:
                (void) snprintf(buf, n, "%s", notify_mode_to_string(*(const NotifyMode *) field));
                break;
        case CONFIG_TYPE_PATH:
        case CONFIG_TYPE_STRING:
                (void) snprintf(buf, n, "%s", *(char *const *) field ?: "");
                break;
        }
}

void config_print(const Config *c, FILE *f) {
        const char *section = NULL;

        (void) fprintf(f, "# djdesk configuration: %s (%s)\n", c->path,
                       c->file_loaded ? "read" : "not present, defaults used");
        for (int i = 0; i < _CONFIG_ITEM_MAX; i++) {
                const ConfigItem *it = &config_items[i];
                const ConfigOrigin *o = &c->origin[i];
                char value[4096], origin[512];

                if (!section || !streq(section, it->section)) {
                        (void) fprintf(f, "%s[%s]\n", section ? "\n" : "", it->section);
                        section = it->section;
                }
                config_format_value(c, i, value, sizeof(value));
                switch (o->source) {
                case CONFIG_SOURCE_FILE:
                        (void) snprintf(origin, sizeof(origin), "%s:%u", c->path, o->line);
                        break;
                case CONFIG_SOURCE_ENV:
                        (void) snprintf(origin, sizeof(origin), "env %s", o->env);
                        break;
                case CONFIG_SOURCE_CMDLINE:
                        (void) snprintf(origin, sizeof(origin), "command line");
                        break;
                default:
                        (void) snprintf(origin, sizeof(origin), "default");
                        break;
                }
                /* "; " and not "# ": inih only strips inline comments that start with ';', so the output
                 * can be read back as a configuration file. */
                (void) fprintf(f, "%s = %s  ; %s\n", it->key, value, origin);
        }
}

bool config_item_reloadable(ConfigItemId id) {
        return id >= 0 && id < _CONFIG_ITEM_MAX && config_items[id].reloadable;
}

bool config_item_equal(const Config *a, const Config *b, ConfigItemId id) {
        char va[4096], vb[4096];

        config_format_value(a, id, va, sizeof(va));
        config_format_value(b, id, vb, sizeof(vb));
        return streq(va, vb);
}

int config_item_copy(Config *dst, const Config *src, ConfigItemId id) {
        char v[4096];
        const char *reason;
        int r;

        config_format_value(src, id, v, sizeof(v));
        r = config_item_set(dst, id, v, &reason);
        if (r < 0)
                return r;
        dst->origin[id] = src->origin[id];
        return 0;
}
