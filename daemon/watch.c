/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dj-log.h"
#include "loop.h"
#include "watch.h"

#define WATCH_DIRS_MAX 4096u
#define WATCH_DIR_MASK                                                                      \
        (IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
         IN_DELETE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

struct Watch {
        Loop *loop;
        char *root;
        int fd;
        LoopSource *io, *timer;
        uint64_t debounce_usec;
        WatchFn cb;
        void *userdata;

        char **dirs; /* indexed by watch descriptor: the directory relative to the root ("" for the root) */
        size_t n_slots;
        unsigned n_dirs;
        bool capped;

        char *pending; /* the first relevant path of the current burst */
};

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

static const char *const watch_skip_dirs[] = {
        "__pycache__", "node_modules", "media", "staticfiles", "static_root", "collected_static",
};

static const char *const watch_suffixes[] = {
        ".py", ".mo", ".html", ".txt", ".json", ".toml", ".cfg", ".ini", ".env",
};

static bool endswith(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);

        return n >= m && streq(s + n - m, suffix);
}

/* Directories that never hold code, by name. */
static bool watch_skip_dir_name(const char *name) {
        if (name[0] == '.')
                return true;
        for (size_t i = 0; i < ELEMENTSOF(watch_skip_dirs); i++)
                if (streq(name, watch_skip_dirs[i]))
                        return true;
        return false;
}

/* Files whose change counts. ".env" itself does, though hidden: settings often read it. */
static bool watch_file_counts(const char *name) {
        if (name[0] == '#' || endswith(name, "~"))
                return false; /* editor temporaries and locks */
        if (name[0] == '.' && !streq(name, ".env"))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(watch_suffixes); i++)
                if (endswith(name, watch_suffixes[i]))
                        return true;
        return false;
}

static char *watch_path(const char *rel, const char *name) {
        char *p;

        if (isempty(rel))
                return strdup(name);
        return asprintf(&p, "%s/%s", rel, name) < 0 ? NULL : p;
}

static void watch_changed(Watch *w, const char *rel, const char *name) {
        int r;

        if (!w->pending) {
                w->pending = name ? watch_path(rel, name) : strdup(rel);
                if (!w->pending)
                        (void) log_oom();
        }
        r = loop_timer_arm(w->timer, w->debounce_usec);
        if (r < 0)
                log_debug_errno(r, "Failed to arm the debounce timer of '%s': %m", w->root);
}

static int watch_slot_set(Watch *w, int wd, char *rel /* stolen */) {
        if ((size_t) wd >= w->n_slots) {
                size_t n = MAX((size_t) wd + 1, w->n_slots * 2);
                char **d = realloc(w->dirs, n * sizeof(char *));

                if (!d) {
                        free(rel);
                        return -ENOMEM;
                }
                memset(d + w->n_slots, 0, (n - w->n_slots) * sizeof(char *));
                w->dirs = d;
                w->n_slots = n;
        }
        free(w->dirs[wd]);
        w->dirs[wd] = rel;
        return 0;
}

static const char *watch_slot_get(Watch *w, int wd) {
        return wd >= 0 && (size_t) wd < w->n_slots ? w->dirs[wd] : NULL;
}

static void watch_slot_drop(Watch *w, int wd) {
        if (wd < 0 || (size_t) wd >= w->n_slots || !w->dirs[wd])
                return;
        w->dirs[wd] = (free(w->dirs[wd]), NULL);
        w->n_dirs--;
}

/* Stops watching rel and everything below it. */
static void watch_drop_tree(Watch *w, const char *rel) {
        size_t n = strlen(rel);

        for (size_t wd = 0; wd < w->n_slots; wd++) {
                const char *d = w->dirs[wd];

                if (!d || !(streq(d, rel) || (n == 0 || (strneq(d, rel, n) && d[n] == '/'))))
                        continue;
                (void) inotify_rm_watch(w->fd, (int) wd);
                watch_slot_drop(w, (int) wd);
        }
}

/* Watches the directory rel and, recursively, its subdirectories. With report, relevant files found
 * count as changes (they appeared before the watch did). */
static int watch_add_tree(Watch *w, const char *rel, bool report) {
        _cleanup_free_ char *abs = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        int wd, fd, r;

        if (w->n_dirs >= WATCH_DIRS_MAX) {
                if (!w->capped)
                        log_debug("'%s': more than %u directories, not watching '%s' and the rest", w->root,
                                  WATCH_DIRS_MAX, rel);
                w->capped = true;
                return 0;
        }
        abs = isempty(rel) ? strdup(w->root) : watch_path(w->root, rel);
        if (!abs)
                return -ENOMEM;

        fd = open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                r = -errno;
                (void) close(fd);
                return r;
        }
        /* A virtualenv holds no code of the project. */
        if (!isempty(rel) && faccessat(fd, "pyvenv.cfg", F_OK, AT_SYMLINK_NOFOLLOW) >= 0)
                return 0;

        wd = inotify_add_watch(w->fd, abs, WATCH_DIR_MASK);
        if (wd < 0)
                return -errno;
        if (!watch_slot_get(w, wd)) {
                char *copy = strdup(rel);

                if (!copy)
                        return -ENOMEM;
                r = watch_slot_set(w, wd, copy);
                if (r < 0)
                        return r;
                w->n_dirs++;
        } else if (!streq(watch_slot_get(w, wd), rel)) {
                char *copy = strdup(rel); /* the same directory under a new name */

                if (!copy)
                        return -ENOMEM;
                (void) watch_slot_set(w, wd, copy);
        }

        for (struct dirent *de; (de = readdir(d));) {
                _cleanup_free_ char *sub = NULL;
                bool is_dir;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (de->d_type == DT_UNKNOWN) {
                        struct stat st;

                        if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                                continue;
                        is_dir = S_ISDIR(st.st_mode);
                } else
                        is_dir = de->d_type == DT_DIR;

                if (!is_dir) {
                        if (report && watch_file_counts(de->d_name))
                                watch_changed(w, rel, de->d_name);
                        continue;
                }
                if (watch_skip_dir_name(de->d_name))
                        continue;
                sub = watch_path(rel, de->d_name);
                if (!sub)
                        return -ENOMEM;
                r = watch_add_tree(w, sub, report);
                if (r == -ENOMEM || r == -ENOSPC) /* ENOSPC: out of inotify watches */
                        return r;
                if (r < 0)
                        log_debug_errno(r, "Failed to watch '%s/%s', ignoring: %m", w->root, sub);
        }
        return 0;
}

static void watch_event(Watch *w, const struct inotify_event *ev) {
        const char *rel;
        int r;

        if (ev->mask & IN_Q_OVERFLOW) {
                /* Events were lost: count it as a change, and catch up on directories we may have missed. */
                log_debug("'%s': inotify queue overflow", w->root);
                watch_changed(w, "", NULL);
                r = watch_add_tree(w, "", false);
                if (r < 0)
                        log_debug_errno(r, "Failed to rescan '%s': %m", w->root);
                return;
        }
        rel = watch_slot_get(w, ev->wd);
        if (!rel)
                return; /* a watch we dropped */
        if (ev->mask & IN_IGNORED) {
                watch_slot_drop(w, ev->wd);
                return;
        }
        if (ev->len == 0 || ev->name[0] == '\0')
                return; /* IN_DELETE_SELF and friends: IN_IGNORED follows */

        if (ev->mask & IN_ISDIR) {
                _cleanup_free_ char *sub = watch_path(rel, ev->name);

                if (!sub) {
                        (void) log_oom();
                        return;
                }
                if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
                        watch_drop_tree(w, sub);
                if ((ev->mask & (IN_CREATE | IN_MOVED_TO)) && !watch_skip_dir_name(ev->name)) {
                        r = watch_add_tree(w, sub, true);
                        if (r < 0)
                                log_debug_errno(r, "Failed to watch '%s/%s', ignoring: %m", w->root, sub);
                }
                return;
        }

        if (streq(ev->name, "pyvenv.cfg") && !isempty(rel) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
                /* A virtualenv is being made here: it is no code of ours. */
                _cleanup_free_ char *dir = strdup(rel);

                if (dir)
                        watch_drop_tree(w, dir);
                return;
        }
        if (!(ev->mask & (IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)))
                return;
        if (watch_file_counts(ev->name))
                watch_changed(w, rel, ev->name);
}

static void watch_io_cb(LoopSource *s, int fd, unsigned revents, void *userdata) {
        Watch *w = userdata;

        for (;;) {
                union {
                        struct inotify_event ev;
                        char raw[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)];
                } buf;
                ssize_t n;

                n = read(fd, &buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno != EAGAIN)
                                log_debug_errno(errno, "Failed to read inotify events of '%s': %m", w->root);
                        return;
                }
                if (n == 0)
                        return;
                for (char *p = buf.raw; p < buf.raw + n;) {
                        const struct inotify_event *ev = (const struct inotify_event *) (void *) p;

                        watch_event(w, ev);
                        p += sizeof(struct inotify_event) + ev->len;
                }
        }
}

static void watch_timer_cb(LoopSource *s, void *userdata) {
        Watch *w = userdata;
        _cleanup_free_ char *path = TAKE_PTR(w->pending);

        if (!path)
                return;
        w->cb(w, path, w->userdata); /* may free w */
}

int watch_new(Loop *l, const char *root, uint64_t debounce_usec, WatchFn cb, void *userdata, Watch **ret) {
        _cleanup_(watch_freep) Watch *w = NULL;
        int r;

        assert_return(l && root && cb && ret);

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->loop = l;
        w->fd = -1;
        w->debounce_usec = debounce_usec;
        w->cb = cb;
        w->userdata = userdata;
        w->root = strdup(root);
        if (!w->root)
                return -ENOMEM;
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->fd < 0)
                return -errno;
        r = loop_add_timer(l, watch_timer_cb, w, &w->timer);
        if (r < 0)
                return r;
        r = loop_add_io(l, w->fd, LOOP_IO_READ, watch_io_cb, w, &w->io);
        if (r < 0)
                return r;
        r = watch_add_tree(w, "", false);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(w);
        return 0;
}

Watch *watch_free(Watch *w) {
        if (!w)
                return NULL;
        w->io = loop_source_free(w->io);
        w->timer = loop_source_free(w->timer);
        w->fd = safe_close(w->fd);
        for (size_t i = 0; i < w->n_slots; i++)
                free(w->dirs[i]);
        free(w->dirs);
        free(w->pending);
        free(w->root);
        free(w);
        return NULL;
}

unsigned watch_n_dirs(const Watch *w) {
        return w ? w->n_dirs : 0;
}
