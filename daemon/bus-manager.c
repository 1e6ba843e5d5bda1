/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus-internal.h"
#include "config.h"
#include "daemon.h"
#include "dj-log.h"
#include "ops.h"

/* A D-Bus method served by an operation: the message is kept until the operation replies. */
typedef struct BusCall {
        Bus *bus;
        sd_bus_message *message;
        int (*format)(sd_bus_message *reply, json_t *result);
} BusCall;

static sd_bus_error_map bus_error_map[_DJ_E_MAX + 1];

static void bus_error_map_init(void) {
        for (int k = 0; k < _DJ_E_MAX; k++)
                bus_error_map[k] =
                        (sd_bus_error_map) SD_BUS_ERROR_MAP(dj_err_kind_to_dbus(k), dj_err_kind_to_errno(k));
        bus_error_map[_DJ_E_MAX] = (sd_bus_error_map) SD_BUS_ERROR_MAP_END;
}

static void bus_call_reply_cb(OpCall *c, json_t *result, const DjError *err, void *userdata) {
        BusCall *bc = userdata;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        if (err)
                r = sd_bus_reply_method_errorf(bc->message, dj_err_kind_to_dbus(err->kind), "%s",
                                               err->message ?: "error");
        else {
                r = sd_bus_message_new_method_return(bc->message, &reply);
                if (r >= 0 && bc->format)
                        r = bc->format(reply, result);
                if (r >= 0)
                        r = sd_bus_send(NULL, reply, NULL);
                if (r < 0)
                        r = sd_bus_reply_method_errorf(bc->message, dj_err_kind_to_dbus(DJ_E_INTERNAL),
                                                       "cannot build the reply: %s", strerror(-r));
        }
        if (r < 0)
                log_debug_errno(r, "Cannot reply to a D-Bus call: %m");
        bus_kick(bc->bus);
        sd_bus_message_unref(bc->message);
        free(bc);
}

/* The sender's effective uid, as the bus daemon vouches for it (ours when it cannot tell). */
static uid_t bus_sender_uid(sd_bus_message *m) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;

        if (sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID, &creds) < 0 ||
            sd_bus_creds_get_euid(creds, &uid) < 0)
                return geteuid();
        return uid;
}

int bus_call_op(sd_bus_message *m, Bus *b, const char *method, json_t *params,
                int (*format)(sd_bus_message *reply, json_t *result), sd_bus_error *error) {
        json_auto_t *p = params;
        _cleanup_(op_call_unrefp) OpCall *call = NULL;
        char requested_by[128];
        const OpDef *def = ops_lookup(method);
        BusCall *bc;
        int r;

        if (!def)
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_METHOD, "no operation '%s'", method);
        bc = calloc(1, sizeof(*bc));
        if (!bc)
                return -ENOMEM;
        bc->bus = b;
        bc->message = sd_bus_message_ref(m);
        bc->format = format;
        (void) snprintf(requested_by, sizeof(requested_by), "dbus:%s", sd_bus_message_get_sender(m) ?: "?");
        r = op_call_new(b->daemon, def, requested_by, NULL, bus_call_reply_cb, bc, &call);
        if (r < 0) {
                sd_bus_message_unref(bc->message);
                free(bc);
                return r;
        }
        call->uid = bus_sender_uid(m);
        op_call_dispatch(call, p);
        return 1;
}

int bus_format_json_string(sd_bus_message *reply, json_t *result) {
        _cleanup_free_ char *s = json_dumps(result, JSON_COMPACT | JSON_SORT_KEYS);

        if (!s)
                return -ENOMEM;
        return sd_bus_message_append(reply, "s", s);
}

static int method_get_info(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_call_op(m, userdata, "daemon.info", NULL, bus_format_json_string, error);
}

static int method_reload(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_call_op(m, userdata, "daemon.reload", NULL, NULL, error);
}

/* AddWorkspace's options: the D-Bus types each accepts, and the workspace.add parameter it becomes. */
static const struct {
        const char *name;
        const char *types; /* one signature character per accepted type */
        const char *what;  /* the same, for the error message */
} add_workspace_options[] = {
        { "path", "s", "'s'" },
        { "name", "s", "'s'" },
        { "settings_module", "s", "'s'" },
        { "python", "s", "'s'" },
        { "port", "qu", "'q' or 'u'" },
        { "autostart", "b", "'b'" },
        { "autoreload", "b", "'b'" },
        { "migrate_on_start", "b", "'b'" },
        { "mode", "s", "'s'" },
};

/* Reads one variant value of type t (already checked) into JSON. */
static int read_option_value(sd_bus_message *m, char t, json_t **ret) {
        const char *s;
        uint16_t q;
        uint32_t u;
        int b, r;

        switch (t) {
        case 's':
                r = sd_bus_message_read_basic(m, 's', &s);
                *ret = r < 0 ? NULL : json_string(s);
                break;
        case 'q':
                r = sd_bus_message_read_basic(m, 'q', &q);
                *ret = r < 0 ? NULL : json_integer(q);
                break;
        case 'u':
                r = sd_bus_message_read_basic(m, 'u', &u);
                *ret = r < 0 ? NULL : json_integer(u);
                break;
        case 'b':
                r = sd_bus_message_read_basic(m, 'b', &b);
                *ret = r < 0 ? NULL : json_boolean(b);
                break;
        default:
                return -EINVAL;
        }
        if (r < 0)
                return r;
        return *ret ? 0 : -ENOMEM;
}

/* a{sv} -> the params object of workspace.add. Unknown or repeated keys and wrong types are InvalidArgs. */
static int read_add_workspace_options(sd_bus_message *m, json_t **ret, sd_bus_error *error) {
        json_auto_t *params = json_object();
        int r;

        if (!params)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                const char *key, *contents;
                json_t *v = NULL;
                size_t i;

                r = sd_bus_message_read_basic(m, 's', &key);
                if (r < 0)
                        return r;
                for (i = 0; i < ELEMENTSOF(add_workspace_options); i++)
                        if (streq(add_workspace_options[i].name, key))
                                break;
                if (i >= ELEMENTSOF(add_workspace_options))
                        return sd_bus_error_setf(error, dj_err_kind_to_dbus(DJ_E_INVALID),
                                                 "unknown option '%s'", key);
                if (json_object_get(params, key))
                        return sd_bus_error_setf(error, dj_err_kind_to_dbus(DJ_E_INVALID),
                                                 "option '%s' given twice", key);
                r = sd_bus_message_peek_type(m, NULL, &contents);
                if (r < 0)
                        return r;
                if (!contents || strlen(contents) != 1 ||
                    !strchr(add_workspace_options[i].types, contents[0]))
                        return sd_bus_error_setf(error, dj_err_kind_to_dbus(DJ_E_INVALID),
                                                 "option '%s' must be of type %s, not '%s'", key,
                                                 add_workspace_options[i].what, contents ?: "");
                r = sd_bus_message_enter_container(m, 'v', contents);
                if (r < 0)
                        return r;
                r = read_option_value(m, contents[0], &v);
                if (r < 0)
                        return r;
                r = json_object_set_new(params, key, v);
                if (r < 0)
                        return -ENOMEM;
                r = sd_bus_message_exit_container(m); /* v */
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m); /* e */
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(params);
        return 0;
}

static int format_workspace_path(sd_bus_message *reply, json_t *result) {
        _cleanup_free_ char *path = NULL;
        const char *slug = json_string_value(json_object_get(result, "slug"));
        int r;

        if (!slug)
                return -EBADMSG;
        r = bus_workspace_path(slug, &path);
        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "o", path);
}

static int method_add_workspace(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        json_t *params = NULL;
        int r;

        r = read_add_workspace_options(m, &params, error);
        if (r < 0)
                return r;
        return bus_call_op(m, userdata, "workspace.add", params, format_workspace_path, error);
}

static int method_remove_workspace(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *slug;
        int purge, r;

        r = sd_bus_message_read(m, "sb", &slug, &purge);
        if (r < 0)
                return r;
        return bus_call_op(m, userdata, "workspace.remove",
                           json_pack("{s:s, s:b}", "workspace", slug, "purge", purge), NULL, error);
}

static int format_workspace_list(sd_bus_message *reply, json_t *result) {
        json_t *list = json_object_get(result, "workspaces"), *w;
        size_t i;
        int r;

        r = sd_bus_message_open_container(reply, 'a', "(sso)");
        if (r < 0)
                return r;
        json_array_foreach (list, i, w) {
                _cleanup_free_ char *path = NULL;
                const char *slug = json_string_value(json_object_get(w, "slug"));
                const char *name = json_string_value(json_object_get(w, "name"));

                if (!slug)
                        return -EBADMSG;
                r = bus_workspace_path(slug, &path);
                if (r < 0)
                        return r;
                r = sd_bus_message_append(reply, "(sso)", slug, name ?: slug, path);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(reply);
}

static int method_list_workspaces(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_call_op(m, userdata, "workspace.list", NULL, format_workspace_list, error);
}

static int method_list_presets(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return bus_call_op(m, userdata, "preset.list", NULL, bus_format_json_string, error);
}

/* a{ss} -> the params object of run.start. A repeated key is InvalidArgs (the operation checks the rest). */
static int read_run_params(sd_bus_message *m, json_t **ret, sd_bus_error *error) {
        json_auto_t *params = json_object();
        const char *key, *value;
        int r;

        if (!params)
                return -ENOMEM;
        r = sd_bus_message_enter_container(m, 'a', "{ss}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(m, "{ss}", &key, &value)) > 0) {
                if (json_object_get(params, key))
                        return sd_bus_error_setf(error, dj_err_kind_to_dbus(DJ_E_INVALID),
                                                 "param '%s' given twice", key);
                if (json_object_set_new(params, key, json_string(value)) < 0)
                        return -ENOMEM;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(params);
        return 0;
}

static int method_start_run(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        json_auto_t *params = NULL;
        json_t *run_params = NULL;
        const char *workspace, *preset, *note;
        int confirm, r;

        r = sd_bus_message_read(m, "ss", &workspace, &preset);
        if (r < 0)
                return r;
        r = read_run_params(m, &run_params, error);
        if (r < 0)
                return r;
        r = sd_bus_message_read(m, "bs", &confirm, &note);
        if (r < 0) {
                json_decref(run_params);
                return r;
        }
        params = json_pack("{s:s, s:s, s:o, s:b}", "workspace", workspace, "preset", preset, "params",
                           run_params, "confirm", confirm);
        if (!params)
                return -ENOMEM;
        /* D-Bus has no null: an empty note is no note. */
        if (!isempty(note) && json_object_set_new(params, "note", json_string(note)) < 0)
                return -ENOMEM;
        return bus_call_op(m, userdata, "run.start", TAKE_PTR(params), bus_append_run_ref, error);
}

static int method_cancel_run(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        uint64_t id;
        int r;

        r = sd_bus_message_read(m, "t", &id);
        if (r < 0)
                return r;
        /* Ids are JSON integers: one that does not fit was never given out. */
        if (id == 0 || id > INT64_MAX)
                return sd_bus_error_setf(error, dj_err_kind_to_dbus(DJ_E_NOT_FOUND), "no run %" PRIu64, id);
        return bus_call_op(m, userdata, "run.cancel", json_pack("{s:I}", "id", (json_int_t) id), NULL,
                           error);
}

static int property_get_version(sd_bus *bus, const char *path, const char *interface, const char *property,
                                sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        return sd_bus_message_append(reply, "s", DJDESK_VERSION);
}

static int property_get_started_at(sd_bus *bus, const char *path, const char *interface,
                                   const char *property, sd_bus_message *reply, void *userdata,
                                   sd_bus_error *error) {
        Bus *b = userdata;

        return sd_bus_message_append(reply, "t", b->daemon->started_at);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Version", "s", property_get_version, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_PROPERTY("StartedAt", "t", property_get_started_at, 0, SD_BUS_VTABLE_PROPERTY_CONST),
        SD_BUS_METHOD_WITH_ARGS("GetInfo", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", info_json), method_get_info,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_reload,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("AddWorkspace", SD_BUS_ARGS("a{sv}", options), SD_BUS_RESULT("o", workspace),
                                method_add_workspace, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("RemoveWorkspace", SD_BUS_ARGS("s", slug, "b", purge), SD_BUS_NO_RESULT,
                                method_remove_workspace, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListWorkspaces", SD_BUS_NO_ARGS, SD_BUS_RESULT("a(sso)", workspaces),
                                method_list_workspaces, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListPresets", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", presets_json),
                                method_list_presets, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS(
                "StartRun",
                SD_BUS_ARGS("s", workspace, "s", preset, "a{ss}", params, "b", confirm, "s", note),
                SD_BUS_RESULT("t", id, "o", run), method_start_run, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("CancelRun", SD_BUS_ARGS("t", id), SD_BUS_NO_RESULT, method_cancel_run,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS(
                "RunFinished",
                SD_BUS_ARGS("t", id, "s", workspace, "s", preset, "s", status, "i", exit_code), 0),
        SD_BUS_VTABLE_END,
};

int bus_manager_register(Bus *b) {
        int r;

        bus_error_map_init();
        r = sd_bus_error_add_map(bus_error_map);
        if (r < 0)
                return r;
        r = sd_bus_add_object_vtable(b->bus, NULL, BUS_PATH_MANAGER, BUS_IFACE_MANAGER, manager_vtable, b);
        if (r < 0)
                return r;
        return sd_bus_add_object_manager(b->bus, NULL, BUS_PATH_MANAGER);
}
