/* SPDX-License-Identifier: MIT */
/* The run objects: /io/djdesk/Desk1/run/<id> (the decimal id), interface io.djdesk.Desk1.Run, one per run
 * the queue keeps in memory (queued, running, and the newest finished ones). Like the workspace objects
 * they are not registered one by one: a fallback vtable below the prefix finds the run by the path's id,
 * and a node enumerator lists the queue for introspection and the ObjectManager. Properties are read live
 * from the Run; an event subscriber turns run.* into InterfacesAdded, PropertiesChanged (one signal per
 * event) and Manager.RunFinished, and withdraws (InterfacesRemoved) the objects of runs the queue has
 * dropped from memory. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus-internal.h"
#include "daemon.h"
#include "dj-log.h"
#include "events.h"
#include "loop.h"
#include "run.h"
#include "strv.h"

struct BusRunObjects {
        EventSubscriber *events;
        LoopSource *sweep; /* zero-delay timer: withdraws the objects of runs no longer in memory */
        unsigned sweep_retries;
        uint64_t *ids; /* sorted: the run objects clients may know (announced or listed since) */
        size_t n_ids, n_alloc;
};

/* What sd_bus_emit_object_added() announces for a run object (see bus-workspace.c), withdrawn by
 * InterfacesRemoved once the run is gone from memory, when sd-bus can no longer find the object. */
static const char *const run_removed_interfaces[] = {
        "org.freedesktop.DBus.Peer",
        "org.freedesktop.DBus.Introspectable",
        "org.freedesktop.DBus.Properties",
        BUS_IFACE_RUN,
        NULL,
};

int bus_run_path(uint64_t id, char **ret) {
        if (asprintf(ret, BUS_PATH_RUN_PREFIX "/%" PRIu64, id) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

int bus_append_run_ref(sd_bus_message *reply, json_t *run) {
        _cleanup_free_ char *path = NULL;
        json_t *id = json_object_get(run, "id");
        int r;

        if (!json_is_integer(id) || json_integer_value(id) <= 0)
                return -EBADMSG;
        r = bus_run_path((uint64_t) json_integer_value(id), &path);
        if (r < 0)
                return r;
        return sd_bus_message_append(reply, "to", (uint64_t) json_integer_value(id), path);
}

/* The id of a run object path: the canonical decimal form only ("7", never "07" or "+7"). 0 when path is
 * not one. */
static uint64_t run_path_id(const char *path) {
        const char *s;
        uint64_t id = 0;

        if (!path || !strneq(path, BUS_PATH_RUN_PREFIX "/", strlen(BUS_PATH_RUN_PREFIX "/")))
                return 0;
        s = path + strlen(BUS_PATH_RUN_PREFIX "/");
        if (*s < '1' || *s > '9')
                return 0;
        for (; *s; s++) {
                unsigned digit = (unsigned) (*s - '0');

                if (*s < '0' || *s > '9' || id > (UINT64_MAX - digit) / 10)
                        return 0;
                id = id * 10 + digit;
        }
        return id;
}

/* The object's userdata is the Bus (the methods need it), so every callback finds its run by the path. */
static Run *run_of_path(Bus *b, const char *path) {
        uint64_t id = run_path_id(path);

        return id > 0 ? run_find(b->daemon, id) : NULL;
}

static int run_object_find(sd_bus *bus, const char *path, const char *interface, void *userdata,
                           void **found, sd_bus_error *error) {
        if (!run_of_path(userdata, path))
                return 0;
        *found = userdata;
        return 1;
}

static int run_node_enumerator(sd_bus *bus, const char *prefix, void *userdata, char ***ret_nodes,
                               sd_bus_error *error) {
        Bus *b = userdata;
        _cleanup_strv_free_ char **l = NULL;
        int r;

        for (Run *run = runs_first(b->daemon); run; run = run->next) {
                char *p;

                r = bus_run_path(run->rec.id, &p);
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

#define RUN_PROPERTY(prop, type, expr)                                                                 \
        static int property_get_##prop(sd_bus *bus, const char *path, const char *interface,           \
                                       const char *property, sd_bus_message *reply, void *userdata,    \
                                       sd_bus_error *error) {                                          \
                const Run *run = run_of_path(userdata, path);                                          \
                if (!run)                                                                              \
                        return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_OBJECT, "no run at '%s'", \
                                                 path);                                                \
                return sd_bus_message_append(reply, type, (expr));                                     \
        }

RUN_PROPERTY(id, "t", (uint64_t) run->rec.id)
RUN_PROPERTY(workspace, "s", run->rec.workspace ?: "")
RUN_PROPERTY(preset, "s", run->rec.preset ?: "")
RUN_PROPERTY(label, "s", run->rec.label ?: "")
RUN_PROPERTY(status, "s", run_status_to_string(run->status) ?: run->rec.status)
RUN_PROPERTY(progress, "u", (uint32_t) run->rec.progress)
RUN_PROPERTY(exit_code, "i", (int32_t) (run->rec.has_exit_code ? run->rec.exit_code : -1))
RUN_PROPERTY(queued_at, "t", (uint64_t) run->rec.queued_at)
RUN_PROPERTY(started_at, "t", (uint64_t) run->rec.started_at)
RUN_PROPERTY(finished_at, "t", (uint64_t) run->rec.finished_at)
RUN_PROPERTY(output_lines, "t", (uint64_t) run->rec.output_lines)

/* ---- methods ---- */

static int method_cancel(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const Run *run = run_of_path(userdata, sd_bus_message_get_path(m));

        if (!run)
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_OBJECT, "no run at '%s'",
                                         sd_bus_message_get_path(m));
        return bus_call_op(m, userdata, "run.cancel", json_pack("{s:I}", "id", (json_int_t) run->rec.id),
                           NULL, error);
}

static int method_get_log(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const Run *run = run_of_path(userdata, sd_bus_message_get_path(m));
        json_t *params;
        uint64_t since;
        uint32_t limit;
        int r;

        r = sd_bus_message_read(m, "tu", &since, &limit);
        if (r < 0)
                return r;
        if (!run)
                return sd_bus_error_setf(error, SD_BUS_ERROR_UNKNOWN_OBJECT, "no run at '%s'",
                                         sd_bus_message_get_path(m));
        /* Line numbers beyond INT64_MAX do not exist: asking for what follows one is asking for nothing. */
        params = json_pack("{s:I, s:I}", "id", (json_int_t) run->rec.id, "since",
                           (json_int_t) MIN(since, (uint64_t) INT64_MAX));
        if (params && limit > 0 && json_object_set_new(params, "limit", json_integer(limit)) < 0)
                params = (json_decref(params), NULL);
        if (!params)
                return -ENOMEM;
        return bus_call_op(m, userdata, "run.logs", params, bus_format_json_string, error);
}

#define EMITS_CHANGE SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE
#define EMITS_CONST  SD_BUS_VTABLE_PROPERTY_CONST

static const sd_bus_vtable run_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "t", property_get_id, 0, EMITS_CONST),
        SD_BUS_PROPERTY("Workspace", "s", property_get_workspace, 0, EMITS_CONST),
        SD_BUS_PROPERTY("Preset", "s", property_get_preset, 0, EMITS_CONST),
        SD_BUS_PROPERTY("Label", "s", property_get_label, 0, EMITS_CONST),
        SD_BUS_PROPERTY("Status", "s", property_get_status, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("Progress", "u", property_get_progress, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("ExitCode", "i", property_get_exit_code, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("QueuedAt", "t", property_get_queued_at, 0, EMITS_CONST),
        SD_BUS_PROPERTY("StartedAt", "t", property_get_started_at, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("FinishedAt", "t", property_get_finished_at, 0, EMITS_CHANGE),
        SD_BUS_PROPERTY("OutputLines", "t", property_get_output_lines, 0, EMITS_CHANGE),
        SD_BUS_METHOD_WITH_ARGS("Cancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_cancel,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetLog", SD_BUS_ARGS("t", since, "u", limit), SD_BUS_RESULT("s", log_json),
                                method_get_log, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};

/* ---- the objects clients may know, and their withdrawal ---- */

static int id_cmp(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static int ids_add(BusRunObjects *o, uint64_t id) {
        size_t i = o->n_ids;

        if (o->n_ids >= o->n_alloc) {
                size_t n = MAX(o->n_alloc * 2, (size_t) 64);
                uint64_t *ids = reallocarray(o->ids, n, sizeof(*ids));

                if (!ids)
                        return -ENOMEM;
                o->ids = ids;
                o->n_alloc = n;
        }
        /* Ids grow, so this is an append but for runs loaded before the bus came up. */
        while (i > 0 && o->ids[i - 1] >= id) {
                if (o->ids[i - 1] == id)
                        return 0;
                i--;
        }
        memmove(o->ids + i + 1, o->ids + i, (o->n_ids - i) * sizeof(*o->ids));
        o->ids[i] = id;
        o->n_ids++;
        return 0;
}

/* Replaces the set with the runs in memory now, and emits InterfacesRemoved for every object that was in
 * the set and is no longer in memory (a finished run pushed out by newer ones, or the runs of a removed
 * workspace). */
static void run_objects_sweep(Bus *b) {
        BusRunObjects *o = b->runs;
        _cleanup_free_ uint64_t *now = NULL;
        size_t n = 0, alloc = 0, i = 0, j = 0, n_finished = 0;
        int r;

        for (Run *run = runs_first(b->daemon); run; run = run->next) {
                if (run_status_finished(run->status))
                        n_finished++;
                if (n >= alloc) {
                        size_t a = MAX(alloc * 2, (size_t) 64);
                        uint64_t *p = reallocarray(now, a, sizeof(*p));

                        if (!p) {
                                log_debug("Out of memory while listing the run objects; keeping the old "
                                          "list.");
                                return;
                        }
                        now = p;
                        alloc = a;
                }
                now[n++] = run->rec.id;
        }
        if (n > 1)
                qsort(now, n, sizeof(*now), id_cmp);

        for (; i < o->n_ids; i++) {
                _cleanup_free_ char *path = NULL;

                while (j < n && now[j] < o->ids[i])
                        j++;
                if (j < n && now[j] == o->ids[i])
                        continue;
                r = bus_run_path(o->ids[i], &path);
                if (r >= 0)
                        r = sd_bus_emit_interfaces_removed_strv(b->bus, path,
                                                                (char **) run_removed_interfaces);
                if (r < 0)
                        log_debug_errno(r, "Cannot signal the removal of run object %" PRIu64 ": %m",
                                        o->ids[i]);
        }
        free(o->ids);
        o->ids = TAKE_PTR(now);
        o->n_ids = n;
        o->n_alloc = alloc;
        bus_kick(b);
        /* The queue trims its finished runs from its own zero-delay timer, armed after run.finished, which
         * may not have fired yet: come back once it has (a few times at most, should it never). */
        if (n_finished > RUN_KEEP_FINISHED && o->sweep_retries < 8) {
                o->sweep_retries++;
                (void) loop_timer_arm(o->sweep, 0);
        } else
                o->sweep_retries = 0;
}

static void run_objects_sweep_cb(LoopSource *s, void *userdata) {
        Bus *b = userdata;

        if (b->bus)
                run_objects_sweep(b);
}

/* ---- events -> signals ---- */

static void emit_run_finished(Bus *b, const Event *e, uint64_t id) {
        json_t *exit_code = json_object_get(e->data, "exit_code");
        json_int_t code = json_is_integer(exit_code) ? json_integer_value(exit_code) : -1;
        int r;

        if (code < INT32_MIN || code > INT32_MAX)
                code = -1;
        r = sd_bus_emit_signal(b->bus, BUS_PATH_MANAGER, BUS_IFACE_MANAGER, "RunFinished", "tsssi", id,
                               json_string_value(json_object_get(e->data, "workspace")) ?: "",
                               json_string_value(json_object_get(e->data, "preset")) ?: "",
                               json_string_value(json_object_get(e->data, "status")) ?: "", (int32_t) code);
        if (r < 0)
                log_debug_errno(r, "Cannot signal RunFinished for run %" PRIu64 ": %m", id);
}

static void run_events_cb(EventSubscriber *s, const Event *e, void *userdata) {
        Bus *b = userdata;
        _cleanup_free_ char *path = NULL;
        json_t *jid;
        uint64_t id;
        int r;

        if (!b->bus || !e->data)
                return;
        if (streq(e->topic, "workspace.removed")) {
                /* Its runs are forgotten: withdraw their objects once the queue is done with them. */
                (void) loop_timer_arm(b->runs->sweep, 0);
                return;
        }
        jid = json_object_get(e->data, "id");
        if (!json_is_integer(jid) || json_integer_value(jid) <= 0)
                return;
        id = (uint64_t) json_integer_value(jid);
        r = bus_run_path(id, &path);
        if (r < 0) {
                log_debug_errno(r, "Cannot build the object path of run %" PRIu64 ": %m", id);
                return;
        }
        if (streq(e->topic, "run.queued")) {
                r = sd_bus_emit_object_added(b->bus, path);
                if (r >= 0 && ids_add(b->runs, id) < 0)
                        log_debug("Out of memory while recording run object %" PRIu64 ".", id);
        } else if (streq(e->topic, "run.started"))
                r = sd_bus_emit_properties_changed(b->bus, path, BUS_IFACE_RUN, "Status", "Progress",
                                                   "StartedAt", NULL);
        else if (streq(e->topic, "run.log"))
                r = sd_bus_emit_properties_changed(b->bus, path, BUS_IFACE_RUN, "Progress", "OutputLines",
                                                   NULL);
        else if (streq(e->topic, "run.finished")) {
                r = sd_bus_emit_properties_changed(b->bus, path, BUS_IFACE_RUN, "Status", "Progress",
                                                   "ExitCode", "StartedAt", "FinishedAt", "OutputLines",
                                                   NULL);
                emit_run_finished(b, e, id);
                /* A finished run may push the oldest finished one out of memory. */
                (void) loop_timer_arm(b->runs->sweep, 0);
        } else
                return;
        /* -ENOENT: the run is not (or no longer) in memory; -ENOTCONN: the bus is gone. */
        if (r < 0)
                log_debug_errno(r, "Cannot signal %s for '%s' on the bus: %m", e->topic, path);
        bus_kick(b);
}

int bus_run_register(Bus *b) {
        BusRunObjects *o;
        int r;

        o = calloc(1, sizeof(*o));
        if (!o)
                return -ENOMEM;
        b->runs = o;
        r = sd_bus_add_fallback_vtable(b->bus, NULL, BUS_PATH_RUN_PREFIX, BUS_IFACE_RUN, run_vtable,
                                       run_object_find, b);
        if (r < 0)
                return r;
        r = sd_bus_add_node_enumerator(b->bus, NULL, BUS_PATH_RUN_PREFIX, run_node_enumerator, b);
        if (r < 0)
                return r;
        r = loop_add_timer(b->daemon->loop, run_objects_sweep_cb, b, &o->sweep);
        if (r < 0)
                return r;
        r = events_subscriber_new(b->daemon->events, run_events_cb, b, &o->events);
        if (r < 0)
                return r;
        r = events_subscriber_add_topic(o->events, "run.*");
        if (r < 0)
                return r;
        r = events_subscriber_add_topic(o->events, "workspace.removed");
        if (r < 0)
                return r;
        /* The runs already in memory (loaded from the store): clients may list them from now on. */
        for (Run *run = runs_first(b->daemon); run; run = run->next) {
                r = ids_add(o, run->rec.id);
                if (r < 0)
                        return r;
        }
        return 0;
}

void bus_run_unregister(Bus *b) {
        BusRunObjects *o = b->runs;

        if (!o)
                return;
        o->events = events_subscriber_free(o->events);
        o->sweep = loop_source_free(o->sweep);
        free(o->ids);
        free(o);
        b->runs = NULL;
}
