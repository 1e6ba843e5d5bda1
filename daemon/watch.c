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
#include "dj-util.h"
#include "loop.h"
#include "watch.h"

#define WATCH_DIRS_MAX    4096u
#define WATCH_FILES_MAX   65536u /* files beyond this are not remembered: any event on them counts */
#define WATCH_CHANGED_MAX 4096u  /* a bigger burst is checked by looking at every file */
#define WATCH_DIR_MASK                                                                      \
        (IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | \
         IN_DELETE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

typedef struct WatchFile WatchFile;
struct WatchFile {
        WatchFile *next;
        uint64_t hash;
        ino_t ino;
        off_t size;
        struct timespec mtime;
        char path[]; /* relative to the root */
};

struct Watch {
        Loop *loop;
        char *root;
        int fd;
        LoopSource *io, *timer;
        uint64_t debounce_usec;
        WatchFn cb;
        WatchFileFn counts; /* which files count, by name */
        unsigned max_depth; /* directories below the root that are watched; 0: all */
        WatchMatchFn match; /* NULL: every change counts */
        void *userdata;

        char **dirs; /* indexed by watch descriptor: the directory relative to the root ("" for the root) */
        size_t n_slots;
        unsigned n_dirs;
        bool capped;

        /* What every file that counts looked like when last seen (a hash table by path): an event is a
         * change only when the file now differs from that. */
        WatchFile **files;
        size_t n_buckets, n_files;

        /* The current burst: the paths events were seen for, in order, checked when it ends. */
        char **changed;
        size_t n_changed, n_changed_alloc;
        bool check_all; /* events were lost (or too many): check every file */
};

static const char *const watch_skip_dirs[] = {
        "__pycache__", "node_modules", "media", "staticfiles", "static_root", "collected_static",
};

static const char *const watch_suffixes[] = {
        ".py", ".mo", ".html", ".txt", ".json", ".toml", ".cfg", ".ini", ".env",
};

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

/* The files that count, as last seen */

static uint64_t watch_hash(const char *s) {
        uint64_t h = UINT64_C(14695981039346656037); /* FNV-1a */

        for (; *s; s++)
                h = (h ^ (uint8_t) *s) * UINT64_C(1099511628211);
        return h;
}

/* The link to path's entry (the entry itself when found, else the NULL at the end of its bucket, where it
 * would go); NULL while there is no table. */
static WatchFile **watch_file_find(Watch *w, const char *path, uint64_t hash) {
        WatchFile **p;

        if (w->n_buckets == 0)
                return NULL;
        for (p = &w->files[hash % w->n_buckets]; *p; p = &(*p)->next)
                if ((*p)->hash == hash && streq((*p)->path, path))
                        break;
        return p;
}

static int watch_files_grow(Watch *w) {
        size_t n = MAX(w->n_buckets * 2, (size_t) 256);
        WatchFile **b = calloc(n, sizeof(WatchFile *));

        if (!b)
                return -ENOMEM;
        for (size_t i = 0; i < w->n_buckets; i++)
                for (WatchFile *f = w->files[i], *next; f; f = next) {
                        next = f->next;
                        f->next = b[f->hash % n];
                        b[f->hash % n] = f;
                }
        free(w->files);
        w->files = b;
        w->n_buckets = n;
        return 0;
}

/* Remembers how path looks (st), or forgets it (st NULL). */
static int watch_file_set(Watch *w, const char *path, const struct stat *st) {
        uint64_t hash = watch_hash(path);
        WatchFile **p = watch_file_find(w, path, hash), *f;
        int r;

        if (!st) {
                if (p && *p) {
                        f = *p;
                        *p = f->next;
                        free(f);
                        w->n_files--;
                }
                return 0;
        }
        if (!p || !*p) {
                if (w->n_files >= WATCH_FILES_MAX)
                        return 0; /* not remembered: any event on it counts */
                if (w->n_files >= w->n_buckets) {
                        r = watch_files_grow(w);
                        if (r < 0)
                                return r;
                        p = watch_file_find(w, path, hash);
                }
                f = malloc(sizeof(WatchFile) + strlen(path) + 1);
                if (!f)
                        return -ENOMEM;
                strcpy(f->path, path);
                f->hash = hash;
                f->next = NULL;
                *p = f;
                w->n_files++;
        }
        (*p)->ino = st->st_ino;
        (*p)->size = st->st_size;
        (*p)->mtime = st->st_mtim;
        return 0;
}

/* Whether path changed since it was last seen (created, deleted, replaced, written or touched); what is
 * remembered follows. A file opened for writing and closed untouched, or created and removed again, did
 * not change. */
static bool watch_file_check(Watch *w, const char *path) {
        _cleanup_free_ char *abs = watch_path(w->root, path);
        WatchFile **p = watch_file_find(w, path, watch_hash(path));
        struct stat st;
        bool exists, changed;

        if (!abs) {
                (void) log_oom();
                return true;
        }
        exists = fstatat(AT_FDCWD, abs, &st, AT_SYMLINK_NOFOLLOW) >= 0 && !S_ISDIR(st.st_mode);
        if (!p || !*p)
                changed = exists;
        else
                changed = !exists || (*p)->ino != st.st_ino || (*p)->size != st.st_size ||
                          (*p)->mtime.tv_sec != st.st_mtim.tv_sec ||
                          (*p)->mtime.tv_nsec != st.st_mtim.tv_nsec;
        if (changed && watch_file_set(w, path, exists ? &st : NULL) < 0)
                (void) log_oom();
        return changed;
}

static bool path_below(const char *path, const char *dir, size_t n) {
        return strneq(path, dir, n) && path[n] == '/';
}

/* The burst */

/* An event for path (stolen): checked when the burst ends. */
static void watch_note_path(Watch *w, char *path /* stolen */) {
        int r;

        if (!path) {
                (void) log_oom();
                w->check_all = true;
        } else if (w->n_changed > 0 && streq(w->changed[w->n_changed - 1], path))
                free(path); /* the same file again (a write after a write) */
        else if (w->check_all || w->n_changed >= WATCH_CHANGED_MAX) {
                free(path);
                w->check_all = true;
        } else {
                if (w->n_changed == w->n_changed_alloc) {
                        size_t n = MAX(w->n_changed_alloc * 2, (size_t) 16);
                        char **c = realloc(w->changed, n * sizeof(char *));

                        if (!c) {
                                free(path);
                                path = NULL;
                                w->check_all = true;
                        } else {
                                w->changed = c;
                                w->n_changed_alloc = n;
                        }
                }
                if (path)
                        w->changed[w->n_changed++] = path;
        }
        r = loop_timer_arm(w->timer, w->debounce_usec);
        if (r < 0)
                log_debug_errno(r, "Failed to arm the debounce timer of '%s': %m", w->root);
}

static void watch_note(Watch *w, const char *rel, const char *name) {
        watch_note_path(w, watch_path(rel, name));
}

/* The directory rel went away (or moved): every file remembered below it is checked. */
static void watch_note_tree(Watch *w, const char *rel) {
        size_t n = strlen(rel);

        for (size_t i = 0; i < w->n_buckets; i++)
                for (WatchFile *f = w->files[i]; f; f = f->next)
                        if (path_below(f->path, rel, n))
                                watch_note_path(w, strdup(f->path));
}

/* The directory rel holds no code after all (a virtualenv): forgets what is below it. */
static void watch_forget_tree(Watch *w, const char *rel) {
        size_t n = strlen(rel), k = 0;

        for (size_t i = 0; i < w->n_buckets; i++)
                for (WatchFile **p = &w->files[i]; *p;)
                        if (path_below((*p)->path, rel, n)) {
                                WatchFile *f = *p;

                                *p = f->next;
                                free(f);
                                w->n_files--;
                        } else
                                p = &(*p)->next;
        for (size_t i = 0; i < w->n_changed; i++)
                if (path_below(w->changed[i], rel, n))
                        free(w->changed[i]);
                else
                        w->changed[k++] = w->changed[i];
        w->n_changed = k;
}

/* Checks one path for the end of a burst; keeps the first that changed (and matches) in *first. */
static void watch_check_one(Watch *w, char *path /* stolen */, char **first) {
        if (watch_file_check(w, path) && !*first && (!w->match || w->match(path)))
                *first = path;
        else
                free(path);
}

/* After lost events: every file remembered (deleted ones show), then every file in the watched
 * directories (new ones show). */
static void watch_check_all(Watch *w, char **first) {
        _cleanup_free_ char **known = NULL;
        size_t n = 0;

        known = calloc(MAX(w->n_files, (size_t) 1), sizeof(char *));
        if (!known) {
                (void) log_oom();
                if (!*first)
                        *first = strdup(""); /* cannot tell: count it as a change */
                return;
        }
        for (size_t i = 0; i < w->n_buckets; i++)
                for (WatchFile *f = w->files[i]; f; f = f->next)
                        known[n++] = strdup(f->path);
        for (size_t i = 0; i < n; i++)
                if (known[i])
                        watch_check_one(w, known[i], first);

        for (size_t wd = 0; wd < w->n_slots; wd++) {
                _cleanup_free_ char *abs = NULL;
                _cleanup_(closedirp) DIR *d = NULL;

                if (!w->dirs[wd])
                        continue;
                abs = isempty(w->dirs[wd]) ? strdup(w->root) : watch_path(w->root, w->dirs[wd]);
                d = abs ? opendir(abs) : NULL;
                if (!d)
                        continue;
                for (struct dirent *de; (de = readdir(d));)
                        if (de->d_type != DT_DIR && w->counts(de->d_name))
                                watch_check_one(w, watch_path(w->dirs[wd], de->d_name), first);
        }
}

/* Ends a burst: the first path, in the order the events came, that did change; NULL when none did. */
static char *watch_burst_end(Watch *w) {
        char **changed = TAKE_PTR(w->changed);
        size_t n = w->n_changed;
        bool all = w->check_all;
        char *first = NULL;

        w->n_changed = w->n_changed_alloc = 0;
        w->check_all = false;
        /* All of them, not only up to the first change: what is remembered must follow every one. */
        for (size_t i = 0; i < n; i++)
                watch_check_one(w, changed[i], &first);
        free(changed);
        if (all)
                watch_check_all(w, &first);
        if (!first)
                log_debug("'%s': %zu event(s)%s, but no file that counts changed", w->root, n,
                          all ? " and lost ones" : "");
        return first;
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

typedef enum WatchScan {
        WATCH_SCAN_RECORD, /* at the start: remember the files found as they are */
        WATCH_SCAN_NOTE,   /* a new directory: its files are checked at the end of the burst (they may have
                            * appeared before its watch did) */
        WATCH_SCAN_QUIET,  /* after lost events: only watch what is missing (every file is checked anyway) */
} WatchScan;

/* "" is the root (0), "a" is 1, "a/b" is 2. */
static unsigned path_depth(const char *rel) {
        unsigned n = 0;

        if (isempty(rel))
                return 0;
        for (const char *p = rel; *p; p++)
                n += *p == '/';
        return n + 1;
}

/* Watches the directory rel and, recursively, its subdirectories (down to max_depth). */
static int watch_add_tree(Watch *w, const char *rel, WatchScan scan) {
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
        if (w->max_depth > 0 && path_depth(rel) > w->max_depth)
                return 0;
        abs = isempty(rel) ? strdup(w->root) : watch_path(w->root, rel);
        if (!abs)
                return -ENOMEM;

        r = opendir_at(AT_FDCWD, abs, O_NOFOLLOW, &d);
        if (r < 0)
                return r;
        fd = dirfd(d);
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
                        if (!w->counts(de->d_name))
                                continue;
                        if (scan == WATCH_SCAN_NOTE)
                                watch_note(w, rel, de->d_name);
                        else if (scan == WATCH_SCAN_RECORD) {
                                _cleanup_free_ char *path = watch_path(rel, de->d_name);
                                struct stat st;

                                if (!path)
                                        return -ENOMEM;
                                if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                                        continue;
                                r = watch_file_set(w, path, &st);
                                if (r < 0)
                                        return r;
                        }
                        continue;
                }
                if (watch_skip_dir_name(de->d_name))
                        continue;
                sub = watch_path(rel, de->d_name);
                if (!sub)
                        return -ENOMEM;
                r = watch_add_tree(w, sub, scan);
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
                /* Events were lost: every file is checked at the end of the burst; catch up on directories
                 * we may have missed. */
                log_debug("'%s': inotify queue overflow", w->root);
                w->check_all = true;
                r = loop_timer_arm(w->timer, w->debounce_usec);
                if (r < 0)
                        log_debug_errno(r, "Failed to arm the debounce timer of '%s': %m", w->root);
                r = watch_add_tree(w, "", WATCH_SCAN_QUIET);
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
                if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
                        watch_note_tree(w, sub); /* its code is gone */
                        watch_drop_tree(w, sub);
                }
                if ((ev->mask & (IN_CREATE | IN_MOVED_TO)) && !watch_skip_dir_name(ev->name)) {
                        r = watch_add_tree(w, sub, WATCH_SCAN_NOTE);
                        if (r < 0)
                                log_debug_errno(r, "Failed to watch '%s/%s', ignoring: %m", w->root, sub);
                }
                return;
        }

        if (streq(ev->name, "pyvenv.cfg") && !isempty(rel) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
                /* A virtualenv is being made here: it is no code of ours. */
                _cleanup_free_ char *dir = strdup(rel);

                if (dir) {
                        watch_drop_tree(w, dir);
                        watch_forget_tree(w, dir);
                }
                return;
        }
        if (!(ev->mask & (IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)))
                return;
        if (w->counts(ev->name))
                watch_note(w, rel, ev->name);
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
        _cleanup_free_ char *path = watch_burst_end(w);

        if (!path)
                return;
        w->cb(w, path, w->userdata); /* may free w */
}

void watch_set_match(Watch *w, WatchMatchFn match) {
        if (w)
                w->match = match;
}

int watch_new(Loop *l, const char *root, uint64_t debounce_usec, WatchFn cb, void *userdata, Watch **ret) {
        return watch_new_files(l, root, NULL, 0, debounce_usec, cb, userdata, ret);
}

int watch_new_files(Loop *l, const char *root, WatchFileFn counts, unsigned max_depth,
                    uint64_t debounce_usec, WatchFn cb, void *userdata, Watch **ret) {
        _cleanup_(watch_freep) Watch *w = NULL;
        int r;

        assert_return(l && root && cb && ret);

        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->loop = l;
        w->fd = -1;
        w->debounce_usec = debounce_usec;
        w->counts = counts ?: watch_file_counts;
        w->max_depth = max_depth;
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
        r = watch_add_tree(w, "", WATCH_SCAN_RECORD);
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
        for (size_t i = 0; i < w->n_buckets; i++)
                for (WatchFile *f = w->files[i], *next; f; f = next) {
                        next = f->next;
                        free(f);
                }
        free(w->files);
        for (size_t i = 0; i < w->n_changed; i++)
                free(w->changed[i]);
        free(w->changed);
        free(w->root);
        free(w);
        return NULL;
}

unsigned watch_n_dirs(const Watch *w) {
        return w ? w->n_dirs : 0;
}

unsigned watch_n_files(const Watch *w) {
        return w ? (unsigned) w->n_files : 0;
}
