/* SPDX-License-Identifier: MIT */
/* The workspace objects: /io/djdesk/Desk1/workspace/<sd_bus_path_encode(slug)>, interface
 * io.djdesk.Desk1.Workspace. They are not registered one by one: a fallback vtable below the prefix finds
 * the workspace in the registry by the path's slug, and a node enumerator lists the registry for
 * introspection and the ObjectManager. Properties are read live from the Workspace, its Server and its
 * scans' counts; GetStatus returns the status document's cached text. An event subscriber turns the domain's
 * events into InterfacesAdded/InterfacesRemoved and PropertiesChanged. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus-internal.h"
#include "daemon.h"
#include "dj-log.h"
#include "events.h"
#include "scan.h"
#include "server.h"
#include "status.h"
#include "strv.h"
#include "workspace.h"

/* The interfaces sd_bus_emit_object_added() announces for one of our objects (sd-bus's built-in ones and
 * ours; libsystemd 252), withdrawn by InterfacesRemoved. sd_bus_emit_object_removed() cannot be used: the
 * registry no longer holds the workspace when workspace.removed arrives, so sd-bus would find no object.
 * The integration test checks that both signals list the same interfaces. */
static const char *const workspace_removed_interfaces[] = {
        "org.freedesktop.DBus.Peer",
        "org.freedesktop.DBus.Introspectable",
        "org.freedesktop.DBus.Properties",
        BUS_IFACE_WORKSPACE,
        NULL,
};

int bus_workspace_path(const char *slug, char **ret) {
        int r;

        r = sd_bus_path_encode(BUS_PATH_WORKSPACE_PREFIX, slug, ret);
        return r < 0 ? r : 0;
}

static int workspace_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                                 void **found, sd_bus_error *error) {
        Bus *b = userdata;
        _cleanup_free_ char *slug = NULL;
        Workspace *w;
        int r;

        r = sd_bus_path_decode(path, BUS_PATH_WORKSPACE_PREFIX, &slug);
        if (r <= 0)
                return r;
        w = workspace_find(b->daemon, slug);
        if (!w)
                return 0;
        *found = w;
        return 1;
}

static int workspace_node_enumerator(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes,
                                     sd_bus_error *error) {
        Bus *b = userdata;
        _cleanup_strv_free_ char **l = NULL;
        int r;

        for (Workspace *w = b->daemon->workspaces; w; w = w->next) {
                char *p;

                r = bus_workspace_path(w->slug, &p);
                if (r < 0)
                        return r;
                r = strv_push(&l, p);
                if (r < 0)
                        return r;
        }
        if (!l) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
        }
        *ret_nodes = TAKE_PTR(l);
        return 0;
}

/* ---- properties ---- */

static int append_string(sd_bus_message *reply, const char *s) {
        return sd_bus_message_append(reply, "s", s ?: "");
}

#define WORKSPACE_STRING_PROPERTY(prop, expr)                                                       \
        static int property_get_##prop(sd_bus *bus, const char *path, const char *interface,        \
                                       const char *property, sd_bus_message *reply, void *userdata, \
                                       sd_bus_error *error) {                                       \
                Workspace *w = userdata;                                                            \
                return append_string(reply, (expr));                                                \
        }

WORKSPACE_STRING_PROPERTY(slug, w->slug)
WORKSPACE_STRING_PROPERTY(name, w->name)
WORKSPACE_STRING_PROPERTY(project_path, w->path)
WORKSPACE_STRING_PROPERTY(settings_module, w->settings_module)
WORKSPACE_STRING_PROPERTY(python, w->interpreter)
WORKSPACE_STRING_PROPERTY(django_version, w->django_version)
WORKSPACE_STRING_PROPERTY(server_state, server_state_to_string(server_state(w->server)))
WORKSPACE_STRING_PROPERTY(url, server_url(w->server))
WORKSPACE_STRING_PROPERTY(last_error, server_last_error(w->server))

static int property_get_port(sd_bus *bus, const char *path, const char *interface, const char *property,
                             sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Workspace *w = userdata;
        unsigned port = server_port(w->server);

        if (port == 0)
                port = w->last_port;
        return sd_bus_message_append(reply, "q", (uint16_t) (port <= UINT16_MAX ? port : 0));
}

static int property_get_pid(sd_bus *bus, const char *path, const char *interface, const char *property,
                            sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Workspace *w = userdata;
        pid_t pid = server_pid(w->server);

        return sd_bus_message_append(reply, "u", (uint32_t) (pid > 0 ? pid : 0));
}

static int property_get_restarts(sd_bus *bus, const char *path, const char *interface, const char *property,
                                 sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Workspace *w = userdata;

        return sd_bus_message_append(reply, "u", (uint32_t) server_restarts(w->server));
}

/* The counts of the last completed scans (scan_counts()). */
#define WORKSPACE_SCAN_PROPERTY(prop, type, member)                                                 \
        static int property_get_##prop(sd_bus *bus, const char *path, const char *interface,        \
                                       const char *property, sd_bus_message *reply, void *userdata, \
                                       sd_bus_error *error) {                                       \
                ScanCounts counts = {};                                                             \
                scan_counts(userdata, &counts);                                                     \
                return sd_bus_message_append(reply, type, counts.member);                           \
        }

WORKSPACE_SCAN_PROPERTY(pending_migrations, "u", pending_migrations)
WORKSPACE_SCAN_PROPERTY(model_count, "u", models)
WORKSPACE_SCAN_PROPERTY(check_warnings, "u", check_warnings)
WORKSPACE_SCAN_PROPERTY(check_errors, "u", check_errors)
WORKSPACE_SCAN_PROPERTY(last_scan_at, "t", last_scan_at)

/* ---- methods ---- */

static int format_url(sd_bus_message *reply, json_t *result) {
        return append_string(reply, json_string_value(json_object_get(result, "url")));
}

static int workspace_call(sd_bus_message *m, Workspace *w, const char *method,
                          int (*format)(sd_bus_message *reply, json_t *result), sd_bus_error *error) {
        return bus_call_op(m, w->daemon->bus, method, json_pack("{s:s}", "workspace", w->slug), format,
                           error);
}

static int method_start(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return workspace_call(m, userdata, "server.start", format_url, error);
}

static int method_stop(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return workspace_call(m, userdata, "server.stop", NULL, error);
}

static int method_restart(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return workspace_call(m, userdata, "server.restart", format_url, error);
}

/* The status document, straight from its cache (workspace.status gives the same JSON). */
static int method_get_status(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const char *text = workspace_status_text(userdata);

        if (!text)
                return -ENOMEM;
        return sd_bus_reply_method_return(m, "s", text);
}

/* scan.start's result: the id of its first record (the first kind asked for). */
static int format_scan_id(sd_bus_message *reply, json_t *result) {
        json_t *id = json_object_get(json_array_get(json_object_get(result, "scans"), 0), "id");

        if (!json_is_integer(id) || json_integer_value(id) <= 0)
                return -EBADMSG;
        return sd_bus_message_append(reply, "t", (uint64_t) json_integer_value(id));
}

/* scan.start {workspace, kind}: "" is every kind, like "all" (the operation checks the kind). */
static int method_scan(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Workspace *w = userdata;
        json_t *params;
        const char *kind;
        int r;

        r = sd_bus_message_read(m, "s", &kind);
        if (r < 0)
                return r;
        params = json_pack("{s:s}", "workspace", w->slug);
        if (params && !isempty(kind) && json_object_set_new(params, "kind", json_string(kind)) < 0)
                params = (json_decref(params), NULL);
        if (!params)
                return -ENOMEM;
        return bus_call_op(m, w->daemon->bus, "scan.start", params, format_scan_id, error);
}

/* export.create's result: the run that writes the notebook, and its object. */
static int format_export(sd_bus_message *reply, json_t *result) {
        return bus_append_run_ref(reply, json_object_get(result, "run"));
}

static int method_export(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Workspace *w = userdata;
        const char *template;
        int r;

        r = sd_bus_message_read(m, "s", &template);
        if (r < 0)
                return r;
        return bus_call_op(m, w->daemon->bus, "export.create",
                           json_pack("{s:s,s:s}", "workspace", w->slug, "template", template), format_export,
                           error);
}

static int method_list_exports(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        return workspace_call(m, userdata, "export.list", bus_format_json_string, error);
}

#define EMITS_CHANGE SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE

static const sd_bus_vtable workspace_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Slug", "s", property_get_slug, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("Name", "s", property_get_name, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("ProjectPath", "s", property_get_project_path, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("SettingsModule", "s", property_get_settings_module, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("Python", "s", property_get_python, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("DjangoVersion", "s", property_get_django_version, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("ServerState", "s", property_get_server_state, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("URL", "s", property_get_url, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("Port", "q", property_get_port, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("Pid", "u", property_get_pid, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("Restarts", "u", property_get_restarts, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("LastError", "s", property_get_last_error, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("PendingMigrations", "u", property_get_pending_migrations, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("ModelCount", "u", property_get_model_count, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("CheckWarnings", "u", property_get_check_warnings, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("CheckErrors", "u", property_get_check_errors, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("LastScanAt", "t", property_get_last_scan_at, 0, EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Start", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", url), method_start,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Stop", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_stop,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Restart", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", url), method_restart,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetStatus", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", status_json),
                                method_get_status, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Scan", SD_BUS_ARGS("s", kind), SD_BUS_RESULT("t", id), method_scan,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Export", SD_BUS_ARGS("s", template), SD_BUS_RESULT("t", run, "o", path),
                                method_export, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListExports", SD_BUS_NO_ARGS, SD_BUS_RESULT("s", exports_json),
                                method_list_exports, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* ---- events -> signals ---- */

/* The slug an event is about: data.workspace is the slug (server.state, workspace.changed) or the workspace
 * JSON (workspace.added); workspace.removed says data.slug. */
static const char *event_slug(const Event *e) {
        json_t *w;

        if (!e->data)
                return NULL;
        w = json_object_get(e->data, "workspace");
        if (json_is_string(w))
                return json_string_value(w);
        if (json_is_object(w))
                return json_string_value(json_object_get(w, "slug"));
        return json_string_value(json_object_get(e->data, "slug"));
}

/* The properties a workspace.changed {workspace, seq, parts} changes, by the parts of the status document
 * it names: "workspace" (workspace.update, a new Django version) and "scans"/"insights" (a scan finished).
 * The server's properties follow server.state instead. An event without parts is taken as the workspace
 * part (the shape before the status document). */
static const char *const workspace_part_properties[] = {
        "Name", "SettingsModule", "Python", "DjangoVersion", "Port", NULL,
};
static const char *const scan_part_properties[] = {
        "PendingMigrations", "ModelCount", "CheckWarnings", "CheckErrors", "LastScanAt", NULL,
};

static bool event_has_part(const Event *e, const char *part) {
        json_t *parts = json_object_get(e->data, "parts"), *p;
        size_t i;

        json_array_foreach (parts, i, p)
                if (json_is_string(p) && streq(json_string_value(p), part))
                        return true;
        return false;
}

static int emit_workspace_changed(Bus *b, const char *path, const Event *e) {
        const char *names[ELEMENTSOF(workspace_part_properties) + ELEMENTSOF(scan_part_properties) - 1];
        size_t n = 0;

        if (!json_is_array(json_object_get(e->data, "parts")) || event_has_part(e, "workspace"))
                for (size_t i = 0; workspace_part_properties[i]; i++)
                        names[n++] = workspace_part_properties[i];
        if (event_has_part(e, "scans") || event_has_part(e, "insights"))
                for (size_t i = 0; scan_part_properties[i]; i++)
                        names[n++] = scan_part_properties[i];
        if (n == 0)
                return 0;
        names[n] = NULL;
        return sd_bus_emit_properties_changed_strv(b->bus, path, BUS_IFACE_WORKSPACE, (char **) names);
}

static void workspace_events_cb(EventSubscriber *s, const Event *e, void *userdata) {
        Bus *b = userdata;
        _cleanup_free_ char *path = NULL;
        const char *slug = event_slug(e);
        int r;

        if (!slug || !b->bus)
                return;
        r = bus_workspace_path(slug, &path);
        if (r < 0) {
                log_debug_errno(r, "Cannot build the object path of workspace '%s': %m", slug);
                return;
        }
        if (streq(e->topic, "workspace.added"))
                r = sd_bus_emit_object_added(b->bus, path);
        else if (streq(e->topic, "workspace.removed"))
                r = sd_bus_emit_interfaces_removed_strv(b->bus, path,
                                                        (char **) workspace_removed_interfaces);
        else if (streq(e->topic, "workspace.changed"))
                r = emit_workspace_changed(b, path, e);
        else if (streq(e->topic, "server.state"))
                r = sd_bus_emit_properties_changed(b->bus, path, BUS_IFACE_WORKSPACE, "ServerState", "URL",
                                                   "Port", "Pid", "Restarts", "LastError", NULL);
        else
                return;
        /* -ENOENT: the workspace is not (or no longer) in the registry; -ENOTCONN: the bus is gone. */
        if (r < 0)
                log_debug_errno(r, "Cannot signal %s for '%s' on the bus: %m", e->topic, path);
        bus_kick(b);
}

int bus_workspace_register(Bus *b) {
        int r;

        r = sd_bus_add_fallback_vtable(b->bus, NULL, BUS_PATH_WORKSPACE_PREFIX, BUS_IFACE_WORKSPACE,
                                       workspace_vtable, workspace_object_find, b);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(b->bus, NULL, BUS_PATH_WORKSPACE_PREFIX, workspace_node_enumerator,
                                       b);
        if (r < 0)
                return r;
        r = events_subscriber_new(b->daemon->events, workspace_events_cb, b, &b->workspace_events);
        if (r < 0)
                return r;
        r = events_subscriber_add_topic(b->workspace_events, "workspace.*");
        if (r < 0)
                return r;
        r = events_subscriber_add_topic(b->workspace_events, "server.state");
        return r < 0 ? r : 0;
}

void bus_workspace_unregister(Bus *b) {
        b->workspace_events = events_subscriber_free(b->workspace_events);
}
