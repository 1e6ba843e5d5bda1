/* SPDX-License-Identifier: MIT */
/* scan.start, scan.list, scan.get, scan.result, scan.cancel: thin adapters over scan.h. scan.start answers
 * at once with the pending records: probes are dispatched from the loop after the reply. */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "dj-util.h"
#include "ops-domain.h"
#include "ops.h"
#include "scan.h"
#include "workspace.h"

/* kind: absent or "all" is every kind. */
static int parse_kinds(json_t *params, unsigned *ret, DjError *err) {
        const char *kind = json_string_value(json_object_get(params, "kind"));
        ScanKind k;

        if (!kind || streq(kind, "all")) {
                *ret = SCAN_ALL;
                return 0;
        }
        k = scan_kind_from_string(kind);
        if (k < 0)
                return dj_error_set_value(err, DJ_E_INVALID, kind,
                                          "unknown scan kind '%s' (schema, migrations, checks or all)",
                                          kind);
        *ret = SCAN_KIND_MASK(k);
        return 0;
}

static json_t *workspace_scans_json(Workspace *w, json_t *scans /* stolen */) {
        return scans ? json_pack("{s:s, s:o}", "workspace", w->slug, "scans", scans) : NULL;
}

int op_scan_start(OpCall *c, json_t *params) {
        DjError err = DJ_ERROR_INIT;
        uint64_t ids[_SCAN_KIND_MAX];
        unsigned mask = 0;
        json_t *scans;
        Workspace *w;

        w = op_find_workspace(c, params, &err);
        if (!w || parse_kinds(params, &mask, &err) < 0)
                return op_call_fail_error(c, &err);
        if (scan_request(c->daemon, w, mask, "request", ids, &err) < 0)
                return op_call_fail_error(c, &err);

        scans = json_array();
        for (ScanKind k = 0; scans && k < _SCAN_KIND_MAX; k++) {
                const ScanRecord *r = NULL;

                if (!(mask & SCAN_KIND_MASK(k)))
                        continue;
                r = scan_find(c->daemon, ids[k], NULL);
                if (r)
                        (void) json_array_append_new(scans, scan_record_to_json(w, r));
        }
        return op_call_reply_or_fail(c, workspace_scans_json(w, scans), &err);
}

int op_scan_list(OpCall *c, json_t *params) {
        DjError err = DJ_ERROR_INIT;
        Workspace *w = op_find_workspace(c, params, &err);

        if (!w)
                return op_call_fail_error(c, &err);
        return op_call_reply_or_fail(c, workspace_scans_json(w, scans_to_json(w)), &err);
}

int op_scan_get(OpCall *c, json_t *params) {
        uint64_t id = (uint64_t) json_integer_value(json_object_get(params, "id"));
        DjError err = DJ_ERROR_INIT;
        Workspace *w = NULL;
        const ScanRecord *r;
        char value[32];

        r = scan_find(c->daemon, id, &w);
        if (!r) {
                (void) snprintf(value, sizeof(value), "%" PRIu64, id);
                (void) dj_error_set_value(&err, DJ_E_NOT_FOUND, value,
                                          "no scan %" PRIu64 " (only the newest scan of each kind is kept)",
                                          id);
                return op_call_fail_error(c, &err);
        }
        return op_call_reply_or_fail(c, scan_record_to_json(w, r), &err);
}

int op_scan_result(OpCall *c, json_t *params) {
        const char *kind = json_string_value(json_object_get(params, "kind"));
        DjError err = DJ_ERROR_INIT;
        const ScanRecord *r = NULL;
        json_t *result;
        ScanKind k;
        Workspace *w;

        w = op_find_workspace(c, params, &err);
        if (!w)
                return op_call_fail_error(c, &err);
        k = scan_kind_from_string(kind);
        if (k < 0) {
                (void) dj_error_set_value(&err, DJ_E_INVALID, kind ?: "",
                                          "unknown scan kind '%s' (schema, migrations or checks)",
                                          kind ?: "");
                return op_call_fail_error(c, &err);
        }
        result = scan_result(w, k);
        /* The record that produced the result: the current one once it completed. */
        r = scan_current(w, k);
        return op_call_reply_or_fail(
                c,
                json_pack("{s:s, s:s, s:o, s:O?}", "workspace", w->slug, "kind", scan_kind_to_string(k),
                          "scan", r ? scan_record_to_json(w, r) : json_null(), "result", result),
                &err);
}

int op_scan_cancel(OpCall *c, json_t *params) {
        DjError err = DJ_ERROR_INIT;
        Workspace *w = op_find_workspace(c, params, &err);
        int n;

        if (!w)
                return op_call_fail_error(c, &err);
        n = scan_cancel(c->daemon, w, &err);
        if (n < 0)
                return op_call_fail_error(c, &err);
        return op_call_reply_or_fail(c, json_pack("{s:s, s:i}", "workspace", w->slug, "cancelled", n), &err);
}
