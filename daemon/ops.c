/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config-file.h"
#include "daemon.h"
#include "dj-log.h"
#include "dj-util.h"
#include "events.h"
#include "ops-domain.h"
#include "ops.h"
#include "rpc-frame.h"
#include "run.h"
#include "workspace.h"

#define USER_EVENT_MAX_DATA ((size_t) 64 * 1024)

/* ---- calls ---- */

int op_call_new(Daemon *d, const OpDef *def, const char *requested_by, const OpSession *session,
                OpReplyFn reply, void *userdata, OpCall **ret) {
        OpCall *c;

        assert_return(d && def && reply && ret);
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->requested_by = strdup(requested_by ?: "unknown");
        if (!c->requested_by) {
                free(c);
                return -ENOMEM;
        }
        c->n_ref = 1;
        c->uid = geteuid();
        c->daemon = d;
        c->def = def;
        c->session = session;
        c->reply = reply;
        c->userdata = userdata;
        *ret = c;
        return 0;
}

OpCall *op_call_ref(OpCall *c) {
        if (c)
                c->n_ref++;
        return c;
}

OpCall *op_call_unref(OpCall *c) {
        if (!c || --c->n_ref > 0)
                return NULL;
        free(c->requested_by);
        free(c);
        return NULL;
}

void op_call_reply(OpCall *c, json_t *result) {
        if (c->replied) {
                json_decref(result);
                return;
        }
        c->replied = true;
        c->reply(c, result ?: json_object(), NULL, c->userdata);
        json_decref(result);
}

void op_call_reply_text(OpCall *c, json_t *result, const char *text) {
        if (c->replied || !result || !text) {
                op_call_reply(c, result);
                return;
        }
        c->replied = true;
        c->result_text = text;
        c->result_text_len = strlen(text);
        c->reply(c, result, NULL, c->userdata);
        c->result_text = NULL;
        c->result_text_len = 0;
        json_decref(result);
}

void op_call_after_reply(OpCall *c) {
        if (!c->after_replay || !c->after_subscriber)
                return;
        c->after_replay = false;
        (void) events_subscriber_replay(c->after_subscriber, c->after_since, NULL);
}

void op_call_fail(OpCall *c, const DjError *err) {
        if (c->replied)
                return;
        c->replied = true;
        c->reply(c, NULL, err, c->userdata);
}

int op_call_fail_error(OpCall *c, DjError *err) {
        int r;

        if (!dj_error_is_set(err))
                (void) dj_error_set(err, DJ_E_INTERNAL, "out of memory");
        r = -dj_err_kind_to_errno(err->kind);
        op_call_fail(c, err);
        dj_error_done(err);
        return r;
}

int op_call_reply_or_fail(OpCall *c, json_t *result, DjError *err) {
        if (!result)
                return op_call_fail_error(c, err);
        op_call_reply(c, result);
        return 0;
}

int op_call_failf(OpCall *c, DjErrKind kind, const char *fmt, ...) {
        DjError err = DJ_ERROR_INIT;
        _cleanup_free_ char *m = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&m, fmt, ap);
        va_end(ap);
        r = dj_error_set(&err, kind, "%s", r >= 0 ? m : "error");
        op_call_fail(c, &err);
        dj_error_done(&err);
        return r;
}

Workspace *op_find_workspace(OpCall *c, json_t *params, DjError *err) {
        const char *slug = json_string_value(json_object_get(params, "workspace"));
        Workspace *w = slug ? workspace_find(c->daemon, slug) : NULL;

        if (!w)
                (void) dj_error_set_value(err, DJ_E_NOT_FOUND, slug ?: "", "no workspace '%s'", slug ?: "");
        return w;
}

json_t *op_error_data(const DjError *err) {
        json_t *data = json_pack("{s:s}", "kind", dj_err_kind_to_string(err->kind));

        if (data && err->value)
                (void) json_object_set_new(data, "value", json_string(err->value));
        return data;
}

/* ---- daemon.* ---- */

json_t *ops_daemon_info(Daemon *d) {
        static const char *const prev[] = {
                [STORE_PREVIOUS_NONE] = "none",
                [STORE_PREVIOUS_CLEAN] = "clean",
                [STORE_PREVIOUS_UNCLEAN] = "unclean",
        };

        return json_pack(
                "{s:s, s:i, s:s?, s:I, s:I, s:s, s:b, s:s, s:b, s:s, s:s, s:b, s:s, s:i, s:s,"
                " s:{s:I, s:I, s:I, s:I, s:I}, s:I,"
                " s:{s:I, s:I, s:I, s:I, s:I}}",
                "version", DJDESK_VERSION, "pid", (int) getpid_cached(), "started_at", d->started_at_iso,
                "started_at_usec", (json_int_t) d->started_at, "uptime_usec",
                (json_int_t) (now_usec(CLOCK_MONOTONIC) - d->started_mono), "socket_path", d->socket_path,
                "socket_activated", d->socket_activated, "bus_name", DJDESK_BUS_NAME, "bus_connected",
                d->bus_connected, "db_path", store_path(d->store), "config_path", d->config->path,
                "config_loaded", d->config->file_loaded, "log_level",
                log_level_to_string(log_get_max_level()), "schema_version",
                (int) store_schema_version(d->store), "previous_shutdown", prev[d->previous_shutdown],
                "counts", "clients", (json_int_t) d->n_clients, "subscribers", (json_int_t) d->n_subscribers,
                "events_in_ring", (json_int_t) events_count(d->events), "runs_queued",
                (json_int_t) runs_count_queued(d), "runs_running", (json_int_t) runs_count_running(d), "seq",
                (json_int_t) events_last_seq(d->events), "limits", "max_clients",
                (json_int_t) d->config->max_clients, "client_output_limit",
                (json_int_t) d->config->client_output_limit, "event_ring",
                (json_int_t) d->config->event_ring, "event_ring_bytes",
                (json_int_t) d->config->event_ring_bytes, "max_message", (json_int_t) RPC_MAX_MESSAGE);
}

static int op_daemon_info(OpCall *c, json_t *params) {
        json_t *info = ops_daemon_info(c->daemon);

        if (!info)
                return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        op_call_reply(c, info);
        return 0;
}

static int op_daemon_reload(OpCall *c, json_t *params) {
        DjError err = DJ_ERROR_INIT;
        int r;

        r = daemon_reload(c->daemon, &err);
        if (r < 0) {
                op_call_fail(c, &err);
                dj_error_done(&err);
                return r;
        }
        op_call_reply(c, json_pack("{s:b}", "ok", 1));
        return 0;
}

/* ---- events ---- */

static int op_events_publish(OpCall *c, json_t *params) {
        const char *topic = json_string_value(json_object_get(params, "topic"));
        json_t *data = json_object_get(params, "data");
        _cleanup_free_ char *dump = NULL;
        int64_t seq;

        if (!events_topic_valid(topic)) {
                DjError err = DJ_ERROR_INIT;
                (void) dj_error_set_value(&err, DJ_E_INVALID, topic,
                                          "invalid topic '%s': expected dotted segments of [a-z0-9_-]",
                                          topic);
                op_call_fail(c, &err);
                dj_error_done(&err);
                return -EINVAL;
        }
        if (!strneq(topic, "user.", 5)) {
                DjError err = DJ_ERROR_INIT;
                (void) dj_error_set_value(
                        &err, DJ_E_NOT_ALLOWED, topic,
                        "topic '%s' is not allowed: clients may only publish 'user.*' topics", topic);
                op_call_fail(c, &err);
                dj_error_done(&err);
                return -EACCES;
        }
        if (data) {
                dump = json_dumps(data, JSON_COMPACT);
                if (!dump)
                        return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
                if (strlen(dump) > USER_EVENT_MAX_DATA)
                        return op_call_failf(c, DJ_E_INVALID, "'data' is %zu bytes, at most %zu are allowed",
                                             strlen(dump), USER_EVENT_MAX_DATA);
        }
        seq = events_publish(c->daemon->events, topic, data ? json_incref(data) : NULL);
        if (seq < 0)
                return op_call_failf(c, DJ_E_INTERNAL, "cannot publish: %s", strerror((int) -seq));
        op_call_reply(c, json_pack("{s:I}", "seq", (json_int_t) seq));
        return 0;
}

static json_t *subscriber_topics(const EventSubscriber *s) {
        json_t *a = json_array();

        for (size_t i = 0; a && i < events_subscriber_n_topics(s); i++)
                (void) json_array_append_new(a, json_string(events_subscriber_topic(s, i)));
        return a;
}

static int op_subscribe(OpCall *c, json_t *params) {
        json_t *topics = json_object_get(params, "topics"), *since = json_object_get(params, "since"), *t;
        EventSubscriber *s;
        uint64_t since_seq = 0;
        size_t i;
        bool gap = false;
        int r;

        json_array_foreach (topics, i, t)
                if (!events_topic_pattern_valid(json_string_value(t))) {
                        DjError err = DJ_ERROR_INIT;
                        const char *v = json_string_value(t);

                        (void) dj_error_set_value(&err, DJ_E_INVALID, v,
                                                  "Invalid params: bad topic pattern '%s': expected '*', "
                                                  "'group.*' or a topic",
                                                  v);
                        op_call_fail(c, &err);
                        dj_error_done(&err);
                        return -EINVAL;
                }
        if (since)
                since_seq = (uint64_t) json_integer_value(since);

        s = c->session && c->session->subscriber ? c->session->subscriber(c->session->session) : NULL;
        if (!s)
                return op_call_failf(c, DJ_E_NOT_ALLOWED,
                                     "this transport cannot stream events; use the socket");

        if (!topics || json_array_size(topics) == 0)
                r = events_subscriber_add_topic(s, "*");
        else {
                r = 0;
                json_array_foreach (topics, i, t) {
                        r = events_subscriber_add_topic(s, json_string_value(t));
                        if (r < 0)
                                break;
                }
        }
        if (r < 0)
                return op_call_failf(c, DJ_E_INTERNAL, "cannot subscribe: %s", strerror(-r));

        if (since) {
                gap = events_has_gap(c->daemon->events, since_seq);
                c->after_replay = true;
                c->after_subscriber = s;
                c->after_since = since_seq;
        }
        op_call_reply(c, json_pack("{s:o, s:I, s:b, s:I}", "topics", subscriber_topics(s), "seq",
                                   (json_int_t) events_last_seq(c->daemon->events), "gap", gap, "replayed",
                                   (json_int_t) (since ? events_subscriber_count_replay(s, since_seq) : 0)));
        return 0;
}

static int op_unsubscribe(OpCall *c, json_t *params) {
        json_t *topics = json_object_get(params, "topics"), *t;
        EventSubscriber *s;
        size_t i;

        s = c->session && c->session->subscriber ? c->session->subscriber(c->session->session) : NULL;
        if (!s)
                return op_call_failf(c, DJ_E_NOT_ALLOWED,
                                     "this transport cannot stream events; use the socket");
        if (!topics || json_array_size(topics) == 0)
                events_subscriber_clear(s);
        else
                json_array_foreach (topics, i, t)
                        (void) events_subscriber_remove_topic(s, json_string_value(t));
        op_call_reply(c, json_pack("{s:o}", "topics", subscriber_topics(s)));
        return 0;
}

/* ---- the table ---- */

#define PARAMS(...) ((const OpParam[]){ __VA_ARGS__ __VA_OPT__(, ){ NULL } })
/* What workspace.add and workspace.update both take. */
#define WORKSPACE_SETTINGS_PARAMS                                                                           \
        { "name", OP_PARAM_STRING }, { "settings_module", OP_PARAM_STRING }, { "python", OP_PARAM_STRING }, \
                { "port", OP_PARAM_UINT }, { "autostart", OP_PARAM_BOOL }, { "autoreload", OP_PARAM_BOOL }, \
                { "migrate_on_start", OP_PARAM_BOOL }, {                                                    \
                "mode", OP_PARAM_STRING                                                                     \
        }

static const OpDef op_table[] = {
        /* keep sorted by method: looked up with bsearch() */
        { "daemon.info", op_daemon_info, PARAMS(), 0 },
        { "daemon.reload", op_daemon_reload, PARAMS(), OP_MUTATES },
        { "events.publish", op_events_publish,
          PARAMS({ "topic", OP_PARAM_STRING, true }, { "data", OP_PARAM_OBJECT }), OP_MUTATES },
        { "export.create", op_export_create,
          PARAMS({ "workspace", OP_PARAM_STRING, true }, { "template", OP_PARAM_STRING, true },
                 { "note", OP_PARAM_STRING }),
          OP_MUTATES },
        { "export.list", op_export_list, PARAMS({ "workspace", OP_PARAM_STRING, true }), 0 },
        { "export.preview", op_export_preview,
          PARAMS({ "workspace", OP_PARAM_STRING, true }, { "name", OP_PARAM_STRING, true }),
          OP_MUTATES | OP_ASYNC },
        { "export.remove", op_export_remove,
          PARAMS({ "workspace", OP_PARAM_STRING, true }, { "name", OP_PARAM_STRING, true }), OP_MUTATES },
        { "export.templates", op_export_templates, PARAMS(), 0 },
        { "preset.list", op_preset_list, PARAMS({ "workspace", OP_PARAM_STRING }), 0 },
        { "preset.reload", op_preset_reload, PARAMS(), OP_MUTATES },
        { "run.cancel", op_run_cancel, PARAMS({ "id", OP_PARAM_UINT, true }), OP_MUTATES },
        { "run.get", op_run_get, PARAMS({ "id", OP_PARAM_UINT, true }), 0 },
        { "run.list", op_run_list,
          PARAMS({ "workspace", OP_PARAM_STRING }, { "status", OP_PARAM_STRING },
                 { "limit", OP_PARAM_UINT }),
          0 },
        { "run.logs", op_run_logs,
          PARAMS({ "id", OP_PARAM_UINT, true }, { "since", OP_PARAM_UINT }, { "limit", OP_PARAM_UINT }), 0 },
        { "run.start", op_run_start,
          PARAMS({ "workspace", OP_PARAM_STRING, true }, { "preset", OP_PARAM_STRING, true },
                 { "params", OP_PARAM_OBJECT }, { "confirm", OP_PARAM_BOOL }, { "note", OP_PARAM_STRING }),
          OP_MUTATES },
        { "sample.install", op_sample_install, PARAMS({ "name", OP_PARAM_STRING, true }),
          OP_MUTATES | OP_ASYNC },
        { "sample.list", op_sample_list, PARAMS(), 0 },
        { "scan.cancel", op_scan_cancel, PARAMS({ "workspace", OP_PARAM_STRING, true }), OP_MUTATES },
        { "scan.get", op_scan_get, PARAMS({ "id", OP_PARAM_UINT, true }), 0 },
        { "scan.list", op_scan_list, PARAMS({ "workspace", OP_PARAM_STRING, true }), 0 },
        { "scan.result", op_scan_result,
          PARAMS({ "workspace", OP_PARAM_STRING, true }, { "kind", OP_PARAM_STRING, true }), 0 },
        { "scan.start", op_scan_start,
          PARAMS({ "workspace", OP_PARAM_STRING, true }, { "kind", OP_PARAM_STRING }), OP_MUTATES },
        { "server.logs", op_server_logs,
          PARAMS({ "workspace", OP_PARAM_STRING, true }, { "since", OP_PARAM_UINT },
                 { "limit", OP_PARAM_UINT }),
          0 },
        { "server.restart", op_server_restart, PARAMS({ "workspace", OP_PARAM_STRING, true }),
          OP_MUTATES | OP_ASYNC },
        { "server.start", op_server_start, PARAMS({ "workspace", OP_PARAM_STRING, true }),
          OP_MUTATES | OP_ASYNC },
        { "server.status", op_server_status, PARAMS({ "workspace", OP_PARAM_STRING, true }), 0 },
        { "server.stop", op_server_stop, PARAMS({ "workspace", OP_PARAM_STRING, true }),
          OP_MUTATES | OP_ASYNC },
        { "subscribe", op_subscribe, PARAMS({ "topics", OP_PARAM_STRINGS }, { "since", OP_PARAM_UINT }),
          OP_STREAMING },
        { "unsubscribe", op_unsubscribe, PARAMS({ "topics", OP_PARAM_STRINGS }), OP_STREAMING },
        { "workspace.add", op_workspace_add,
          PARAMS({ "path", OP_PARAM_STRING, true }, { "seed_scans", OP_PARAM_BOOL },
                 WORKSPACE_SETTINGS_PARAMS),
          OP_MUTATES | OP_ASYNC },
        { "workspace.get", op_workspace_get, PARAMS({ "workspace", OP_PARAM_STRING, true }), 0 },
        { "workspace.list", op_workspace_list, PARAMS(), 0 },
        { "workspace.remove", op_workspace_remove,
          PARAMS({ "workspace", OP_PARAM_STRING, true }, { "purge", OP_PARAM_BOOL }),
          OP_MUTATES | OP_ASYNC },
        { "workspace.status", op_workspace_status, PARAMS({ "workspace", OP_PARAM_STRING, true }), 0 },
        { "workspace.update", op_workspace_update,
          PARAMS({ "workspace", OP_PARAM_STRING, true }, WORKSPACE_SETTINGS_PARAMS), OP_MUTATES | OP_ASYNC },
};

static const char *const param_type_names[_OP_PARAM_TYPE_MAX] = {
        [OP_PARAM_STRING] = "a string",
        [OP_PARAM_UINT] = "a non-negative integer",
        [OP_PARAM_BOOL] = "a boolean",
        [OP_PARAM_OBJECT] = "an object",
        [OP_PARAM_STRINGS] = "an array of strings",
};

static bool param_type_ok(OpParamType t, json_t *v) {
        size_t i;
        json_t *e;

        switch (t) {
        case OP_PARAM_STRING:
                return json_is_string(v);
        case OP_PARAM_UINT:
                return json_is_integer(v) && json_integer_value(v) >= 0;
        case OP_PARAM_BOOL:
                return json_is_boolean(v);
        case OP_PARAM_OBJECT:
                return json_is_object(v);
        case OP_PARAM_STRINGS:
                if (!json_is_array(v))
                        return false;
                json_array_foreach (v, i, e)
                        if (!json_is_string(e))
                                return false;
                return true;
        default:
                return false;
        }
}

int op_params_check(const OpParam *spec, json_t *params, DjError *reterr) {
        const char *key;
        json_t *v;

        if (!json_is_object(params))
                return dj_error_set(reterr, DJ_E_INVALID, "Invalid params: 'params' must be an object");
        json_object_foreach (params, key, v) {
                const OpParam *p;

                for (p = spec; p->name; p++)
                        if (streq(p->name, key))
                                break;
                if (!p->name)
                        return dj_error_set_value(reterr, DJ_E_INVALID, key,
                                                  "Invalid params: unknown parameter '%s'", key);
                if (!param_type_ok(p->type, v))
                        return dj_error_set_value(reterr, DJ_E_INVALID, key,
                                                  "Invalid params: '%s' must be %s", key,
                                                  param_type_names[p->type]);
        }
        for (const OpParam *p = spec; p->name; p++)
                if (p->required && !json_object_get(params, p->name))
                        return dj_error_set_value(reterr, DJ_E_INVALID, p->name,
                                                  "Invalid params: missing parameter '%s'", p->name);
        return 0;
}

static int op_def_cmp(const void *key, const void *elem) {
        return strcmp(key, ((const OpDef *) elem)->method);
}

const OpDef *ops_lookup(const char *method) {
        return bsearch(method, op_table, ELEMENTSOF(op_table), sizeof(OpDef), op_def_cmp);
}

size_t ops_count(void) {
        return ELEMENTSOF(op_table);
}

const OpDef *ops_nth(size_t i) {
        return i < ELEMENTSOF(op_table) ? &op_table[i] : NULL;
}

void op_call_dispatch(OpCall *c, json_t *params) {
        _cleanup_(op_call_unrefp) _unused_ OpCall *keep = op_call_ref(c); /* the handler may drop its own */
        json_auto_t *empty = NULL;
        DjError err = DJ_ERROR_INIT;

        if (!params)
                params = empty = json_object();
        if (op_params_check(c->def->params, params, &err) < 0) {
                op_call_fail(c, &err);
                dj_error_done(&err);
                return;
        }
        (void) c->def->fn(c, params);
        if (!c->replied && !(c->def->flags & OP_ASYNC)) {
                log_error("BUG: '%s' returned without a reply", c->def->method);
                (void) op_call_failf(c, DJ_E_INTERNAL, "internal error: no reply");
        }
}
