/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>

#include "dj-error.h"

typedef struct Daemon Daemon;
typedef struct Interp Interp;

/* Finding the Python interpreter for a project: the first candidate that can import Django, in this order:
 * the workspace's own python setting, $DJDESK_PYTHON ([server] python), the project's .venv/bin/python and
 * venv/bin/python, a bundled interpreter under the user data dir ($XDG_DATA_HOME/djdesk/python/bin/python3),
 * python3 and python on PATH. Each candidate is checked by running it (through child.c, never blocking the
 * loop) with `-c 'import django; print(django.get_version())'`; the verdict is cached per (path, mtime).
 *
 * The result is reported through the callback, exactly once, possibly before interp_find returns (when
 * every candidate is cached):
 *  - success: interpreter (absolute path) and django_version;
 *  - failure: reterr of kind DJ_E_INVALID whose message lists every candidate and why it was rejected
 *    ("/root/.pyenv/shims/python3: cannot import django (ModuleNotFoundError: No module named 'django')"),
 *    and err->value the same, structured, as a serialized JSON array
 *    [{"python": ..., "path": ... (when found), "source": ..., "reason": ...}] (DjError values are strings). */
typedef void (*InterpFindFn)(const char *interpreter, const char *django_version, const DjError *err,
                             void *userdata);

/* configured: the workspace's python setting (NULL: none); project: its directory. The returned Interp
 * may be cancelled with interp_cancel (the callback then never runs); it frees itself after reporting.
 * When the verdict was reached without running anything (every candidate cached or missing), the callback
 * has run already when interp_find returns, and *ret is NULL. Fails (-errno, no callback) only on OOM. */
int interp_find(Daemon *d, const char *configured, const char *project, InterpFindFn cb, void *userdata,
                Interp **ret);
void interp_cancel(Interp *i);

/* Forgets every cached verdict (daemon.reload calls it). */
void interp_cache_clear(Daemon *d);
