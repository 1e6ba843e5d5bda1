/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"
#include "workspace.h"

/* The columns written by insert and update, in bind order (update binds id last). */
#define WORKSPACE_COLUMNS                                                                                 \
        "slug, name, path, settings_module, settings_source, python, interpreter, django_version, port, " \
        "last_port, autostart, autoreload, migrate_on_start, mode, created_at, updated_at"

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s) {
        if (s)
                (void) sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
        else
                (void) sqlite3_bind_null(st, i);
}

static void bind_port(sqlite3_stmt *st, int i, unsigned port) {
        if (port > 0)
                (void) sqlite3_bind_int(st, i, (int) port);
        else
                (void) sqlite3_bind_null(st, i);
}

static void bind_workspace(sqlite3_stmt *st, const Workspace *w) {
        bind_text_or_null(st, 1, w->slug);
        bind_text_or_null(st, 2, w->name);
        bind_text_or_null(st, 3, w->path);
        bind_text_or_null(st, 4, w->settings_module);
        bind_text_or_null(st, 5, settings_source_to_string(w->settings_source));
        bind_text_or_null(st, 6, w->python);
        bind_text_or_null(st, 7, w->interpreter);
        bind_text_or_null(st, 8, w->django_version);
        bind_port(st, 9, w->port);
        bind_port(st, 10, w->last_port);
        (void) sqlite3_bind_int(st, 11, w->autostart);
        (void) sqlite3_bind_int(st, 12, w->autoreload);
        (void) sqlite3_bind_int(st, 13, w->migrate_on_start);
        bind_text_or_null(st, 14, server_mode_to_string(w->mode) ?: "serve");
        (void) sqlite3_bind_int64(st, 15, (sqlite3_int64) w->created_at);
        (void) sqlite3_bind_int64(st, 16, (sqlite3_int64) w->updated_at);
}

int store_workspace_insert(Store *s, Workspace *w, DjError *reterr) {
        sqlite3_stmt *st = NULL;
        int r;

        assert_return(s && w);
        if (sqlite3_prepare_v2(s->db,
                               "INSERT INTO workspaces (" WORKSPACE_COLUMNS
                               ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                               -1, &st, NULL) != SQLITE_OK)
                return store_error(s, reterr, "cannot prepare a workspace insert");
        bind_workspace(st, w);
        r = sqlite3_step(st);
        if (r == SQLITE_DONE) {
                w->id = (int64_t) sqlite3_last_insert_rowid(s->db);
                r = 0;
        } else if ((r & 0xff) == SQLITE_CONSTRAINT) {
                r = dj_error_set_value(reterr, DJ_E_BUSY, w->path,
                                       "'%s' (slug '%s') is already in the store", w->path, w->slug);
                r = -EEXIST;
        } else
                r = store_error(s, reterr, "cannot insert a workspace");
        sqlite3_finalize(st);
        return r;
}

int store_workspace_update(Store *s, const Workspace *w, DjError *reterr) {
        sqlite3_stmt *st = NULL;
        int r;

        assert_return(s && w);
        if (sqlite3_prepare_v2(
                    s->db,
                    "UPDATE workspaces SET slug = ?, name = ?, path = ?, settings_module = ?, "
                    "settings_source = ?, python = ?, interpreter = ?, django_version = ?, "
                    "port = ?, last_port = ?, autostart = ?, autoreload = ?, migrate_on_start = ?, "
                    "mode = ?, created_at = ?, updated_at = ? WHERE id = ?",
                    -1, &st, NULL) != SQLITE_OK)
                return store_error(s, reterr, "cannot prepare a workspace update");
        bind_workspace(st, w);
        (void) sqlite3_bind_int64(st, 17, (sqlite3_int64) w->id);
        r = sqlite3_step(st) == SQLITE_DONE ? 0 : store_error(s, reterr, "cannot update a workspace");
        sqlite3_finalize(st);
        return r;
}

int store_workspace_delete(Store *s, int64_t id, DjError *reterr) {
        sqlite3_stmt *st = NULL;
        int r;

        assert_return(s);
        if (sqlite3_prepare_v2(s->db, "DELETE FROM workspaces WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
                return store_error(s, reterr, "cannot prepare a workspace delete");
        (void) sqlite3_bind_int64(st, 1, (sqlite3_int64) id);
        r = sqlite3_step(st) == SQLITE_DONE ? 0 : store_error(s, reterr, "cannot delete a workspace");
        sqlite3_finalize(st);
        return r;
}

int store_workspace_set_last_port(Store *s, int64_t id, unsigned port) {
        sqlite3_stmt *st = NULL;
        int r;

        assert_return(s);
        if (sqlite3_prepare_v2(s->db, "UPDATE workspaces SET last_port = ? WHERE id = ?", -1, &st, NULL) !=
            SQLITE_OK)
                return -EIO;
        bind_port(st, 1, port);
        (void) sqlite3_bind_int64(st, 2, (sqlite3_int64) id);
        r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;
        sqlite3_finalize(st);
        return r;
}

static int column_strdup(sqlite3_stmt *st, int i, char **ret) {
        const unsigned char *t = sqlite3_column_text(st, i);

        if (!t) {
                *ret = NULL;
                return 0;
        }
        *ret = strdup((const char *) t);
        return *ret ? 0 : -ENOMEM;
}

static unsigned column_port(sqlite3_stmt *st, int i) {
        sqlite3_int64 v = sqlite3_column_int64(st, i);

        return v > 0 && v <= 65535 ? (unsigned) v : 0;
}

int store_workspaces_load(Store *s, StoreWorkspaceFn fn, void *userdata, DjError *reterr) {
        sqlite3_stmt *st = NULL;
        int r;

        assert_return(s && fn);
        if (sqlite3_prepare_v2(s->db, "SELECT id, " WORKSPACE_COLUMNS " FROM workspaces ORDER BY id", -1,
                               &st, NULL) != SQLITE_OK)
                return store_error(s, reterr, "cannot read the workspaces");
        for (;;) {
                _cleanup_(workspace_freep) Workspace *w = NULL;
                _cleanup_free_ char *source = NULL, *mode = NULL;

                r = sqlite3_step(st);
                if (r == SQLITE_DONE) {
                        r = 0;
                        break;
                }
                if (r != SQLITE_ROW) {
                        r = store_error(s, reterr, "cannot read the workspaces");
                        break;
                }
                w = calloc(1, sizeof(*w));
                if (!w) {
                        r = dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
                        break;
                }
                w->id = (int64_t) sqlite3_column_int64(st, 0);
                if (column_strdup(st, 1, &w->slug) < 0 || column_strdup(st, 2, &w->name) < 0 ||
                    column_strdup(st, 3, &w->path) < 0 || column_strdup(st, 4, &w->settings_module) < 0 ||
                    column_strdup(st, 5, &source) < 0 || column_strdup(st, 6, &w->python) < 0 ||
                    column_strdup(st, 7, &w->interpreter) < 0 ||
                    column_strdup(st, 8, &w->django_version) < 0 || column_strdup(st, 14, &mode) < 0) {
                        r = dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
                        break;
                }
                if (!w->slug || !w->name || !w->path) {
                        r = dj_error_set(reterr, DJ_E_INTERNAL,
                                         "%s: workspace row %" PRIi64 " is incomplete", s->path, w->id);
                        break;
                }
                w->port = column_port(st, 9);
                w->last_port = column_port(st, 10);
                w->autostart = sqlite3_column_int(st, 11) != 0;
                w->autoreload = sqlite3_column_int(st, 12) != 0;
                w->migrate_on_start = sqlite3_column_int(st, 13) != 0;
                w->settings_source = settings_source_from_string(source);
                if (w->settings_source < 0)
                        w->settings_source = SETTINGS_SOURCE_GIVEN;
                w->mode = server_mode_from_string(mode);
                if (w->mode < 0)
                        w->mode = SERVER_MODE_SERVE;
                w->created_at = (uint64_t) sqlite3_column_int64(st, 15);
                w->updated_at = (uint64_t) sqlite3_column_int64(st, 16);
                r = fn(TAKE_PTR(w), userdata);
                if (r < 0) {
                        (void) dj_error_set(reterr, DJ_E_INTERNAL, "cannot load a workspace: %s",
                                            strerror(-r));
                        break;
                }
        }
        sqlite3_finalize(st);
        return r;
}
