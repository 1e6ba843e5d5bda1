/* SPDX-License-Identifier: MIT */
/* export.templates, export.create, export.list, export.remove, export.preview: thin adapters over export.h.
 * export.create answers at once with the queued run (the notebook is written by the run); export.preview
 * answers once the helper wrote the page (OP_ASYNC). */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "daemon.h"
#include "dj-util.h"
#include "export.h"
#include "ops-domain.h"
#include "ops.h"
#include "run.h"
#include "workspace.h"

int op_export_templates(OpCall *c, json_t *params) {
        DjError err = DJ_ERROR_INIT;

        return op_call_reply_or_fail(c, json_pack("{s:o}", "templates", exports_templates_json(c->daemon)),
                                     &err);
}

int op_export_create(OpCall *c, json_t *params) {
        DjError err = DJ_ERROR_INIT;
        const char *template = json_string_value(json_object_get(params, "template"));
        RunRequest req = {
                .kind = "export",
                .workspace = json_string_value(json_object_get(params, "workspace")),
                .preset = template,
                .note = json_string_value(json_object_get(params, "note")),
                .requested_by = c->requested_by ?: "daemon",
                .uid = c->uid,
        };
        _cleanup_free_ char *dir = NULL, *file = NULL;
        Run *r;

        if (run_enqueue(c->daemon, &req, &r, &err) < 0)
                return op_call_fail_error(c, &err);
        dir = r->w ? exports_dir(c->daemon, r->w) : NULL;
        if (!dir || asprintf(&file, "%s/%s.ipynb", dir, template) < 0)
                return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        return op_call_reply_or_fail(c, json_pack("{s:o,s:s}", "run", run_to_json(r), "file", file), &err);
}

int op_export_list(OpCall *c, json_t *params) {
        DjError err = DJ_ERROR_INIT;
        _cleanup_free_ char *dir = NULL;
        Workspace *w = op_find_workspace(c, params, &err);
        json_t *list;

        if (!w)
                return op_call_fail_error(c, &err);
        list = exports_list(c->daemon, w, &err);
        if (!list)
                return op_call_fail_error(c, &err);
        dir = exports_dir(c->daemon, w);
        return op_call_reply_or_fail(
                c, json_pack("{s:s,s:s?,s:o}", "workspace", w->slug, "directory", dir, "notebooks", list),
                &err);
}

int op_export_remove(OpCall *c, json_t *params) {
        DjError err = DJ_ERROR_INIT;
        const char *name = json_string_value(json_object_get(params, "name"));
        Workspace *w = op_find_workspace(c, params, &err);

        if (!w || export_remove(c->daemon, w, name, &err) < 0)
                return op_call_fail_error(c, &err);
        return op_call_reply_or_fail(c, json_pack("{s:s,s:s}", "workspace", w->slug, "removed", name), &err);
}

int op_export_preview(OpCall *c, json_t *params) {
        DjError err = DJ_ERROR_INIT;
        const char *name = json_string_value(json_object_get(params, "name"));
        Workspace *w = op_find_workspace(c, params, &err);

        if (!w || export_preview(c->daemon, w, name, c, &err) < 0)
                return op_call_fail_error(c, &err);
        return 0; /* answered when the helper is done */
}
