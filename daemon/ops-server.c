/* SPDX-License-Identifier: MIT */
/* server.*: start, stop, restart, status, logs. The first three complete later (OP_ASYNC): the call is
 * kept (a reference) until the server reports. */

#include <errno.h>
#include <string.h>

#include "daemon.h"
#include "dj-log.h"
#include "ops-domain.h"
#include "ops.h"
#include "server.h"
#include "workspace.h"

#define LOGS_DEFAULT_LIMIT 200

static Workspace *op_workspace(OpCall *c, json_t *params) {
        const char *slug = json_string_value(json_object_get(params, "workspace"));
        Workspace *w = slug ? workspace_find(c->daemon, slug) : NULL;

        if (!w) {
                DjError err = DJ_ERROR_INIT;

                (void) dj_error_set_value(&err, DJ_E_NOT_FOUND, slug, "no workspace '%s'", slug ?: "");
                op_call_fail(c, &err);
                dj_error_done(&err);
        }
        return w;
}

static void op_server_done(Server *s, const DjError *err, void *userdata) {
        OpCall *c = userdata;

        if (err)
                op_call_fail(c, err);
        else
                op_call_reply(c, server_to_json(s));
        op_call_unref(c);
}

typedef int (*ServerOpFn)(Server *s, ServerDoneFn done, void *userdata);

static int op_server_async(OpCall *c, json_t *params, ServerOpFn fn, bool refuse_removing) {
        Workspace *w = op_workspace(c, params);
        int r;

        if (!w)
                return -ENOENT;
        if (refuse_removing && w->removing)
                return op_call_failf(c, DJ_E_BUSY, "workspace '%s' is being removed", w->slug);
        op_call_ref(c);
        r = fn(w->server, op_server_done, c);
        if (r < 0) {
                op_call_unref(c);
                return op_call_failf(c, DJ_E_INTERNAL, "cannot do that to the server of '%s': %s", w->slug,
                                     strerror(-r));
        }
        return 0;
}

int op_server_start(OpCall *c, json_t *params) {
        return op_server_async(c, params, server_start, true);
}

int op_server_stop(OpCall *c, json_t *params) {
        return op_server_async(c, params, server_stop, false);
}

int op_server_restart(OpCall *c, json_t *params) {
        return op_server_async(c, params, server_restart, true);
}

int op_server_status(OpCall *c, json_t *params) {
        Workspace *w = op_workspace(c, params);
        json_t *j;

        if (!w)
                return -ENOENT;
        j = server_to_json(w->server);
        if (!j)
                return op_call_failf(c, DJ_E_INTERNAL, "out of memory");
        (void) json_object_set_new(j, "workspace", json_string(w->slug));
        op_call_reply(c, j);
        return 0;
}

int op_server_logs(OpCall *c, json_t *params) {
        json_t *since = json_object_get(params, "since"), *limit = json_object_get(params, "limit");
        DjError err = DJ_ERROR_INIT;
        Workspace *w = op_workspace(c, params);
        json_t *j;

        if (!w)
                return -ENOENT;
        j = server_logs(w->server, since ? (uint64_t) json_integer_value(since) : 0,
                        limit ? (uint64_t) json_integer_value(limit) : LOGS_DEFAULT_LIMIT, &err);
        if (!j) {
                int r = dj_error_is_set(&err) ? -EIO : -ENOMEM;

                if (!dj_error_is_set(&err))
                        (void) dj_error_set(&err, DJ_E_INTERNAL, "out of memory");
                op_call_fail(c, &err);
                dj_error_done(&err);
                return r;
        }
        op_call_reply(c, j);
        return 0;
}
