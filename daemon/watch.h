/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdint.h>

#include "dj-macro.h"

typedef struct Loop Loop;
typedef struct Watch Watch;

/* Watches a project tree with inotify for code changes, debounced: the callback runs once, debounce_usec
 * after the last change of a burst, with the first path that changed (relative to the root). Directories
 * that never hold code are skipped: hidden ones (.git, .venv...), __pycache__, node_modules, virtualenvs
 * (any directory with a pyvenv.cfg), media/, static output (staticfiles/, static_root/, collected_static/).
 * Changes that count are to files ending in .py, .mo, .html, .txt, .json, .toml, .cfg, .ini, .env; editor
 * temporaries (hidden files, *~, *.swp) and databases do not count. New directories are watched as they
 * appear; an inotify queue overflow counts as a change. */
typedef void (*WatchFn)(Watch *w, const char *path, void *userdata);

int watch_new(Loop *l, const char *root, uint64_t debounce_usec, WatchFn cb, void *userdata, Watch **ret);
Watch *watch_free(Watch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Watch *, watch_free);

/* How many directories are watched (tests, logs). */
unsigned watch_n_dirs(const Watch *w);
