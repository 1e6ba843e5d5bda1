/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "dj-error.h"

typedef struct Daemon Daemon;
typedef struct EventSubscriber EventSubscriber;
typedef struct OpCall OpCall;
typedef struct Workspace Workspace;

typedef enum OpFlags {
        OP_MUTATES = 1 << 0,   /* changes state */
        OP_ASYNC = 1 << 1,     /* may complete after the handler returns */
        OP_STREAMING = 1 << 2, /* needs a transport that can push events (the socket) */
} OpFlags;

typedef enum OpParamType {
        OP_PARAM_STRING,
        OP_PARAM_UINT, /* a non-negative integer */
        OP_PARAM_BOOL,
        OP_PARAM_OBJECT,
        OP_PARAM_STRINGS, /* an array of strings */
        _OP_PARAM_TYPE_MAX,
} OpParamType;

/* One named parameter. (jansson's JSON_VALIDATE_ONLY still wants object keys as varargs, so a table of
 * unpack formats cannot describe methods; this can, and names the offending parameter.) */
typedef struct OpParam {
        const char *name;
        OpParamType type;
        bool required;
} OpParam;

typedef struct OpDef {
        const char *method;
        int (*fn)(OpCall *c, json_t *params);
        const OpParam *params; /* terminated by { NULL } */
        unsigned flags;
} OpDef;

/* Checks params against a parameter list: unknown, missing and mistyped parameters are refused. */
int op_params_check(const OpParam *spec, json_t *params, DjError *reterr);

/* How an OpCall finishes: result is borrowed (NULL on error), err is NULL on success. */
typedef void (*OpReplyFn)(OpCall *c, json_t *result, const DjError *err, void *userdata);

/* What a transport offers the operations about its peer. */
typedef struct OpSession {
        EventSubscriber *(*subscriber)(void *session); /* creates on first use; NULL when impossible */
        void *session;
} OpSession;

struct OpCall {
        unsigned n_ref;
        Daemon *daemon;
        const OpDef *def;
        char *requested_by;       /* "cli" (the socket), "dbus::1.42" (the sender), "daemon" */
        uid_t uid;                /* the peer's uid (the socket's SO_PEERCRED, the D-Bus sender's creds) */
        const OpSession *session; /* NULL for transports that cannot stream */
        OpReplyFn reply;
        void *userdata;
        bool replied;
        /* During the reply callback only: the result's compact JSON text, when the operation had it ready
         * (op_call_reply_text); a transport may write it instead of serializing the result again. */
        const char *result_text;
        size_t result_text_len;
        /* Set by subscribe: events to replay once the transport has written the reply. */
        EventSubscriber *after_subscriber;
        uint64_t after_since;
        bool after_replay;
};

/* Looks a method up in the sorted table (bsearch). */
const OpDef *ops_lookup(const char *method);
size_t ops_count(void);
const OpDef *ops_nth(size_t i);

int op_call_new(Daemon *d, const OpDef *def, const char *requested_by, const OpSession *session,
                OpReplyFn reply, void *userdata, OpCall **ret);
OpCall *op_call_ref(OpCall *c);
OpCall *op_call_unref(OpCall *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(OpCall *, op_call_unref);

/* Checks params against the method's signature and runs it. The reply arrives through the call's reply
 * function, exactly once, now or later (OP_ASYNC). params may be NULL (no params). */
void op_call_dispatch(OpCall *c, json_t *params);

void op_call_reply(OpCall *c, json_t *result /* stolen */);
/* The same, for a result whose compact JSON text is at hand (a cached document): text (borrowed) must be
 * exactly json_dumps(result, JSON_COMPACT). */
void op_call_reply_text(OpCall *c, json_t *result /* stolen */, const char *text);
/* Transports call this once the reply is on its way: it runs what must follow it (subscribe's replay). */
void op_call_after_reply(OpCall *c);
void op_call_fail(OpCall *c, const DjError *err);
int op_call_failf(OpCall *c, DjErrKind kind, const char *fmt, ...) _printf_(3, 4);
/* Fails the call with err (an unset err becomes "out of memory"), clears err and returns the kind's
 * -errno: the tail of every handler's error path. */
int op_call_fail_error(OpCall *c, DjError *err);
/* Replies result when it is not NULL, else fails with err as op_call_fail_error() does. */
int op_call_reply_or_fail(OpCall *c, json_t *result /* stolen */, DjError *err);

/* JSON helpers shared by the transports. */
json_t *op_error_data(const DjError *err);
/* The workspace params.workspace names, or NULL with err set (DJ_E_NOT_FOUND, the slug as its value). */
Workspace *op_find_workspace(OpCall *c, json_t *params, DjError *err);
/* The daemon.info object (also D-Bus GetInfo). */
json_t *ops_daemon_info(Daemon *d);
