/* SPDX-License-Identifier: MIT */
/* preset.list, preset.reload, run.start, run.cancel, run.get, run.list, run.logs: thin adapters over
 * run.h. run.start answers at once: the run is queued, and dispatched from the loop after the reply. */

#include <errno.h>
#include <string.h>

#include "daemon.h"
#include "dj-log.h"
#include "dj-util.h"
#include "ops-domain.h"
#include "ops.h"
#include "export.h"
#include "preset.h"
#include "run.h"
#include "status.h"
#include "strv.h"
#include "workspace.h"

static uint64_t param_uint(json_t *params, const char *key) {
        json_t *v = json_object_get(params, key);

        return v ? (uint64_t) json_integer_value(v) : 0;
}

static json_t *strv_json(char *const *l) {
        json_t *a = json_array();

        for (char *const *p = l; a && p && *p; p++)
                (void) json_array_append_new(a, json_string(*p));
        return a;
}

/* The argv a preset would run in w, for display: params shown as their default, or "{name}". */
static json_t *preset_command_json(const Preset *p, Workspace *w) {
        _cleanup_free_ char *manage = path_join(w->path, "manage.py");
        json_t *a = json_array();

        for (char **e = p->argv; a && e && *e; e++) {
                const char *v = *e;
                size_t len = strlen(v);

                if (len > 2 && v[0] == '{' && v[len - 1] == '}') {
                        if (streq(v, "{python}"))
                                v = isempty(w->interpreter) ? v : w->interpreter;
                        else if (streq(v, "{manage}"))
                                v = manage ?: v;
                        else
                                for (size_t i = 0; i < p->n_params; i++)
                                        if (strlen(p->params[i].name) == len - 2 &&
                                            strneq(p->params[i].name, v + 1, len - 2)) {
                                                v = p->params[i].def ?: v;
                                                break;
                                        }
                }
                (void) json_array_append_new(a, json_string(v));
        }
        return a;
}

int op_preset_list(OpCall *c, json_t *params) {
        Daemon *d = c->daemon;
        const char *slug = json_string_value(json_object_get(params, "workspace"));
        DjError err = DJ_ERROR_INIT;
        Workspace *w = NULL;
        json_t *list;
        size_t n;

        if (slug) {
                w = workspace_find(d, slug);
                if (!w) {
                        (void) dj_error_set_value(&err, DJ_E_NOT_FOUND, slug, "no workspace '%s'", slug);
                        return op_call_fail_error(c, &err);
                }
        }
        list = json_array();
        n = d->presets ? preset_set_size(d->presets) : 0;
        for (size_t i = 0; list && i < n; i++) {
                const Preset *p = preset_set_nth(d->presets, i);
                json_t *o = preset_to_json(p);

                if (!o)
                        continue;
                (void) json_object_set_new(o, "available", json_true());
                if (w)
                        (void) json_object_set_new(o, "command", preset_command_json(p, w));
                (void) json_array_append_new(list, o);
        }
        if (!list)
                return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        return op_call_reply_or_fail(
                c, json_pack("{s:o, s:o}", "presets", list, "warnings", strv_json(runs_preset_warnings(d))),
                &err);
}

int op_preset_reload(OpCall *c, json_t *params) {
        Daemon *d = c->daemon;
        _cleanup_strv_free_ char **warnings = NULL;
        DjError err = DJ_ERROR_INIT;
        int r;

        r = runs_reload_presets(d, &warnings, &err);
        if (r < 0)
                return op_call_fail_error(c, &err);
        for (char **w = warnings; w && *w; w++)
                log_warning("Preset %s, skipping it.", *w);
        log_info("Presets reloaded: %zu.", preset_set_size(d->presets));
        /* The Data Lab's templates come along (a failure keeps the current ones and is a warning). */
        dj_error_done(&err);
        if (exports_reload_templates(d, &warnings, &err) < 0) {
                if (strv_extendf(&warnings, "Data Lab templates: %s", err.message ?: "error") < 0)
                        return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
                dj_error_done(&err);
        }
        status_changed(d, NULL, STATUS_PART_MASK(STATUS_PART_DOCS)); /* their docs_url */
        return op_call_reply_or_fail(c,
                                     json_pack("{s:I, s:o}", "presets",
                                               (json_int_t) preset_set_size(d->presets), "warnings",
                                               strv_json(warnings)),
                                     &err);
}

int op_run_start(OpCall *c, json_t *params) {
        DjError err = DJ_ERROR_INIT;
        RunRequest req = {
                .workspace = json_string_value(json_object_get(params, "workspace")),
                .preset = json_string_value(json_object_get(params, "preset")),
                .params = json_object_get(params, "params"),
                .confirm = json_is_true(json_object_get(params, "confirm")),
                .note = json_string_value(json_object_get(params, "note")),
                .requested_by = c->requested_by ?: "daemon",
                .uid = c->uid,
        };
        Run *r;
        int k;

        k = run_enqueue(c->daemon, &req, &r, &err);
        if (k < 0)
                return op_call_fail_error(c, &err);
        return op_call_reply_or_fail(c, run_to_json(r), &err);
}

int op_run_cancel(OpCall *c, json_t *params) {
        uint64_t id = param_uint(params, "id");
        DjError err = DJ_ERROR_INIT;
        int k;

        k = run_cancel(c->daemon, id, &err);
        if (k < 0)
                return op_call_fail_error(c, &err);
        return op_call_reply_or_fail(c, run_get_json(c->daemon, id, &err), &err);
}

int op_run_get(OpCall *c, json_t *params) {
        DjError err = DJ_ERROR_INIT;

        return op_call_reply_or_fail(c, run_get_json(c->daemon, param_uint(params, "id"), &err), &err);
}

int op_run_list(OpCall *c, json_t *params) {
        DjError err = DJ_ERROR_INIT;

        return op_call_reply_or_fail(c,
                                     runs_list_json(c->daemon,
                                                    json_string_value(json_object_get(params, "workspace")),
                                                    json_string_value(json_object_get(params, "status")),
                                                    param_uint(params, "limit"), &err),
                                     &err);
}

int op_run_logs(OpCall *c, json_t *params) {
        DjError err = DJ_ERROR_INIT;

        return op_call_reply_or_fail(c,
                                     run_logs_json(c->daemon, param_uint(params, "id"),
                                                   param_uint(params, "since"), param_uint(params, "limit"),
                                                   &err),
                                     &err);
}
