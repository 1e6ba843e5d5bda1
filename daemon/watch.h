/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "dj-macro.h"

typedef struct Loop Loop;
typedef struct Watch Watch;

/* Watches a project tree with inotify for code changes, debounced: the callback runs once, debounce_usec
 * after the last event of a burst, with the first path that changed (relative to the root). Directories
 * that never hold code are skipped: hidden ones (.git, .venv...), __pycache__, node_modules, virtualenvs
 * (any directory with a pyvenv.cfg), media/, static output (staticfiles/, static_root/, collected_static/).
 * Changes that count are to files ending in .py, .mo, .html, .txt, .json, .toml, .cfg, .ini, .env; editor
 * temporaries (hidden files, *~, *.swp) and databases do not count. New directories are watched as they
 * appear.
 *
 * A change is a file that differs, at the end of the burst, from what the watch last saw of it (its inode,
 * size or mtime; created or deleted): events that change nothing do not fire (a file opened for writing
 * and closed untouched, one created and removed again within the burst, an inotify queue overflow after
 * which every file is found as it was). */
typedef void (*WatchFn)(Watch *w, const char *path, void *userdata);

int watch_new(Loop *l, const char *root, uint64_t debounce_usec, WatchFn cb, void *userdata, Watch **ret);
/* The same, for other files than code: a file counts when counts(its name) says so (NULL: the code files
 * above). Directories are skipped as above, and so are those more than max_depth levels below the root
 * (0: none; 1: the root's own subdirectories are watched, not theirs). */
typedef bool (*WatchFileFn)(const char *name);
int watch_new_files(Loop *l, const char *root, WatchFileFn counts, unsigned max_depth,
                    uint64_t debounce_usec, WatchFn cb, void *userdata, Watch **ret);
/* Only changes to paths (relative to the root) that match count: the callback gets the first changed
 * path that matches, and runs for no burst without one. After lost events, when a change cannot be told
 * apart, it still runs, with "". NULL: every file that counts (the default). */
typedef bool (*WatchMatchFn)(const char *path);
void watch_set_match(Watch *w, WatchMatchFn match);
Watch *watch_free(Watch *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(Watch *, watch_free);

/* How many directories are watched (tests, logs). */
unsigned watch_n_dirs(const Watch *w);
/* How many files that count are remembered (tests, logs). */
unsigned watch_n_files(const Watch *w);
