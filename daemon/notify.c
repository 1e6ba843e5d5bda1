/* SPDX-License-Identifier: MIT */
/* Desktop notifications. The main thread turns events (server.state, run.finished) into (summary, body,
 * urgency, icon) items and pushes them on a small mutex-guarded queue; the notify thread pops them and
 * shows them with libnotify. libnotify talks to the notification server synchronously (GDBus, which runs
 * its own worker thread under ours), so a slow or missing server only ever blocks this thread. The notify
 * thread never touches the bus, the event base or the store: it sees nothing but the queue.
 *
 * The only file that includes libnotify or GLib. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "dj-log.h"
#include "events.h"
#include "loop.h"
#include "notify.h"
#include "workspace.h"

/* After ours: GLib replaces dj-macro.h's MIN/MAX with its own (same meaning) instead of clashing. */
#include <gio/gio.h>
#include <glib.h>
#include <libnotify/notify.h>

#define NOTIFY_QUEUE_MAX    16
#define NOTIFY_BODY_MAX     1000  /* bytes: a notification is not a log viewer */
#define NOTIFY_TIMEOUT_MSEC 10000 /* how long a notification stays up (the server may differ) */
#define NOTIFY_JOIN_NSEC    (1000 * 1000 * 1000L) /* how long notifier_free waits for the thread */
#define NOTIFY_LINE_MAX     300                   /* bytes of the error line in the notification of a run */
#define NOTIFY_SERVER_ICON  "dialog-error"
#define NOTIFY_RUN_ICON     "system-run" /* a run whose preset names no icon */

/* Finished runs: the first NOTIFY_BURST_SHOWN within NOTIFY_BURST_USEC are shown at once; the others
 * finishing in that window are held and shown as one notification when it closes. */
#define NOTIFY_BURST_SHOWN 3
#define NOTIFY_BURST_USEC  (2 * USEC_PER_SEC)

typedef enum NotifyLevel {
        NOTIFY_LEVEL_NORMAL,
        NOTIFY_LEVEL_CRITICAL,
} NotifyLevel;

typedef struct NotifyItem {
        char *summary;
        char *body;
        char *icon;     /* a themed icon name */
        char *category; /* NULL: none */
        NotifyLevel level;
} NotifyItem;

/* Shared by both threads, and freed by whichever lets go of it last: normally the main thread after
 * joining, but the notify thread itself when notifier_free gave up waiting for it (a stuck show). */
typedef struct NotifyShared {
        pthread_mutex_t lock;
        pthread_cond_t wake;     /* an item was queued, or quit was set */
        pthread_cond_t finished; /* the thread is about to return (CLOCK_MONOTONIC for the timed wait) */
        NotifyItem queue[NOTIFY_QUEUE_MAX];
        size_t head, n;
        bool quit;
        bool done;
        unsigned n_ref;
} NotifyShared;

/* How a terminal status of a run is told. */
typedef struct NotifyRunStatus {
        const char *status; /* as in the run JSON */
        const char *verb;   /* "LABEL <verb>" */
        bool failure;       /* shown in "failures" mode */
        bool critical;      /* critical urgency */
        bool why;           /* the body says why: the last error line, else the error */
        bool why_error;     /* ... the error first (interrupted: the reason, not the run's last words) */
} NotifyRunStatus;

static const NotifyRunStatus notify_run_statuses[] = {
        { .status = "succeeded", .verb = "succeeded" },
        { .status = "failed", .verb = "failed", .failure = true, .critical = true, .why = true },
        { .status = "timed_out", .verb = "timed out", .failure = true, .critical = true, .why = true },
        { .status = "cancelled", .verb = "cancelled" },
        { .status = "interrupted", .verb = "interrupted", .failure = true, .why = true, .why_error = true },
};

struct Notifier {
        Daemon *daemon;
        EventSubscriber *subscriber;
        NotifyShared *shared;
        pthread_t thread;
        bool thread_started;

        /* The merge window for finished runs (main thread only): open while burst_timer is armed. */
        LoopSource *burst_timer;
        unsigned burst_shown;  /* shown at once in this window */
        unsigned burst_n_held; /* held for the end of the window */
        unsigned burst_held_count[ELEMENTSOF(notify_run_statuses)];
        NotifyItem burst_held; /* the first held one: shown as it is when no other joins it */
};

static void notify_item_done(NotifyItem *i) {
        free(i->summary);
        free(i->body);
        free(i->icon);
        free(i->category);
        *i = (NotifyItem){};
}

static void notify_shared_free(NotifyShared *sh) {
        while (sh->n > 0) {
                notify_item_done(&sh->queue[sh->head]);
                sh->head = (sh->head + 1) % NOTIFY_QUEUE_MAX;
                sh->n--;
        }
        (void) pthread_cond_destroy(&sh->wake);
        (void) pthread_cond_destroy(&sh->finished);
        (void) pthread_mutex_destroy(&sh->lock);
        free(sh);
}

/* Called with the lock held; unlocks it. */
static void notify_shared_unref_unlock(NotifyShared *sh) {
        bool last = --sh->n_ref == 0;

        (void) pthread_mutex_unlock(&sh->lock);
        if (last)
                notify_shared_free(sh);
}

static int notify_shared_new(NotifyShared **ret) {
        pthread_condattr_t attr;
        NotifyShared *sh;
        int r;

        sh = calloc(1, sizeof(*sh));
        if (!sh)
                return -ENOMEM;
        r = pthread_mutex_init(&sh->lock, NULL);
        if (r != 0) {
                free(sh);
                return -r;
        }
        r = pthread_cond_init(&sh->wake, NULL);
        if (r != 0) {
                (void) pthread_mutex_destroy(&sh->lock);
                free(sh);
                return -r;
        }
        r = pthread_condattr_init(&attr);
        if (r == 0) {
                r = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
                if (r == 0)
                        r = pthread_cond_init(&sh->finished, &attr);
                (void) pthread_condattr_destroy(&attr);
        }
        if (r != 0) {
                (void) pthread_cond_destroy(&sh->wake);
                (void) pthread_mutex_destroy(&sh->lock);
                free(sh);
                return -r;
        }
        sh->n_ref = 1;
        *ret = sh;
        return 0;
}

/* ---- GLib's own messages ---- */

/* libnotify and GIO report through GLib's log ("libnotify-WARNING **: Failed to connect to proxy" on
 * every attempt without a notification server). Ours say the same once, in our format: theirs go to the
 * debug level, except criticals and errors, which are bugs worth seeing. Thread-safe: one fprintf per
 * line, like all our logging. */
static GLogWriterOutput notify_glib_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                                               gpointer userdata) {
        const char *domain = NULL, *message = NULL;

        for (gsize i = 0; i < n_fields; i++) {
                if (streq(fields[i].key, "GLIB_DOMAIN") && fields[i].length < 0)
                        domain = fields[i].value;
                else if (streq(fields[i].key, "MESSAGE") && fields[i].length < 0)
                        message = fields[i].value;
        }
        if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
                log_warning("%s: %s", domain ?: "glib", message ?: "(no message)");
        else
                log_debug("%s: %s", domain ?: "glib", message ?: "(no message)");
        return G_LOG_WRITER_HANDLED;
}

static void notify_glib_log_setup(void) {
        static bool done = false; /* g_log_set_writer_func() may be called once per process */

        if (done)
                return;
        done = true;
        g_log_set_writer_func(notify_glib_log_writer, NULL, NULL);
}

/* ---- the notify thread ---- */

typedef struct NotifyThreadState {
        bool initialized; /* notify_init() succeeded */
        bool caps_known;  /* the server's capabilities were read */
        bool body_markup; /* the server interprets markup in the body, so ours must be escaped */
        bool failing;     /* the last show failed and was logged: stay quiet until one succeeds */
} NotifyThreadState;

static void notify_show(NotifyThreadState *st, const NotifyItem *item) {
        g_autoptr(GError) error = NULL;
        g_autofree char *body = NULL;
        NotifyNotification *n;
        gboolean ok;

        if (!st->initialized) {
                if (!notify_init("djdesk")) {
                        if (!st->failing)
                                log_warning("Cannot initialise libnotify; desktop notifications are off.");
                        st->failing = true;
                        return;
                }
                st->initialized = true;
        }
        if (!st->caps_known) {
                GList *caps = notify_get_server_caps(); /* NULL when there is no server */

                if (caps) {
                        st->caps_known = true;
                        st->body_markup =
                                g_list_find_custom(caps, "body-markup", (GCompareFunc) strcmp) != NULL;
                        g_list_free_full(caps, g_free);
                }
        }
        body = st->body_markup ? g_markup_escape_text(item->body, -1) : g_strdup(item->body);
        n = notify_notification_new(item->summary, body, item->icon);
        if (!n) {
                log_debug("Cannot create a notification.");
                return;
        }
        notify_notification_set_timeout(n, NOTIFY_TIMEOUT_MSEC);
        notify_notification_set_urgency(n, item->level == NOTIFY_LEVEL_CRITICAL ? NOTIFY_URGENCY_CRITICAL
                                                                                : NOTIFY_URGENCY_NORMAL);
        if (item->category)
                notify_notification_set_category(n, item->category);
        ok = notify_notification_show(n, &error);
        g_object_unref(n);
        if (error)
                (void) g_dbus_error_strip_remote_error(error); /* "GDBus.Error:org...: " */
        if (ok) {
                if (st->failing)
                        log_info("Desktop notifications work again.");
                st->failing = false;
                return;
        }
        /* Once, not for every failure: no notification server is a normal way to run. */
        if (!st->failing)
                log_warning("Cannot show a desktop notification (%s); notifications stay off until a "
                            "notification server answers.",
                            error ? error->message : "unknown error");
        else
                log_debug("Cannot show a desktop notification: %s",
                          error ? error->message : "unknown error");
        st->failing = true;
        st->caps_known = false; /* a server that appears later may differ */
}

static void *notify_thread(void *userdata) {
        NotifyShared *sh = userdata;
        NotifyThreadState st = {};
        GMainContext *ctx = g_main_context_new();

        /* libnotify's proxy dispatches its signals (NotificationClosed...) to this context; it is drained
         * after each notification so nothing piles up in it. */
        g_main_context_push_thread_default(ctx);
        for (;;) {
                NotifyItem item;

                (void) pthread_mutex_lock(&sh->lock);
                while (sh->n == 0 && !sh->quit)
                        (void) pthread_cond_wait(&sh->wake, &sh->lock);
                if (sh->n == 0) { /* quit, and nothing left: what was queued before it is still shown */
                        (void) pthread_mutex_unlock(&sh->lock);
                        break;
                }
                item = sh->queue[sh->head];
                sh->queue[sh->head] = (NotifyItem){};
                sh->head = (sh->head + 1) % NOTIFY_QUEUE_MAX;
                sh->n--;
                (void) pthread_mutex_unlock(&sh->lock);

                notify_show(&st, &item);
                notify_item_done(&item);
                while (g_main_context_iteration(ctx, FALSE))
                        ;
        }
        if (st.initialized)
                notify_uninit();
        while (g_main_context_iteration(ctx, FALSE))
                ;
        g_main_context_pop_thread_default(ctx);
        g_main_context_unref(ctx);

        (void) pthread_mutex_lock(&sh->lock);
        sh->done = true;
        (void) pthread_cond_broadcast(&sh->finished);
        notify_shared_unref_unlock(sh);
        return NULL;
}

/* ---- the main thread's side ---- */

/* At most NOTIFY_BODY_MAX bytes of s, keeping the end (the last lines of an error say the most), cut at a
 * UTF-8 character boundary. */
static char *notify_body_truncate(const char *s) {
        size_t n = strlen(s);
        const char *p;
        char *b;

        if (n <= NOTIFY_BODY_MAX)
                return strdup(s);
        p = s + n - NOTIFY_BODY_MAX;
        while (*p && ((unsigned char) *p & 0xC0) == 0x80)
                p++;
        if (asprintf(&b, "…%s", p) < 0)
                return NULL;
        return b;
}

/* At most NOTIFY_LINE_MAX bytes of one line, keeping the start (where an exception names itself), cut at
 * a UTF-8 character boundary. */
static char *notify_line_truncate(const char *s) {
        size_t n = strlen(s);
        char *b;

        if (n <= NOTIFY_LINE_MAX)
                return strdup(s);
        n = NOTIFY_LINE_MAX;
        while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
                n--;
        if (asprintf(&b, "%.*s…", (int) n, s) < 0)
                return NULL;
        return b;
}

/* Queues a notification (stolen, also on failure); when the queue is full the oldest waiting one is
 * dropped. */
static void notifier_queue(Notifier *nt, NotifyItem *item /* stolen */) {
        NotifyShared *sh = nt->shared;
        char *body;

        if (!item->summary || !item->body) { /* an item that could not be made */
                notify_item_done(item);
                return;
        }
        body = notify_body_truncate(item->body);
        if (!body) {
                notify_item_done(item);
                (void) log_oom();
                return;
        }
        free(item->body);
        item->body = body;
        log_debug("Queueing a desktop notification: %s", item->summary);

        (void) pthread_mutex_lock(&sh->lock);
        if (sh->n == NOTIFY_QUEUE_MAX) {
                log_debug("The notification queue is full; dropping the oldest.");
                notify_item_done(&sh->queue[sh->head]);
                sh->head = (sh->head + 1) % NOTIFY_QUEUE_MAX;
                sh->n--;
        }
        sh->queue[(sh->head + sh->n) % NOTIFY_QUEUE_MAX] = *item;
        sh->n++;
        *item = (NotifyItem){};
        (void) pthread_cond_signal(&sh->wake);
        (void) pthread_mutex_unlock(&sh->lock);
}

/* Fills item (summary from fmt, the rest copied); on failure it is left empty and -ENOMEM returned. */
static int notify_item_make(NotifyItem *item, NotifyLevel level, const char *icon, const char *category,
                            const char *body, const char *fmt, ...) _printf_(6, 7);
static int notify_item_make(NotifyItem *item, NotifyLevel level, const char *icon, const char *category,
                            const char *body, const char *fmt, ...) {
        va_list ap;
        int r;

        *item = (NotifyItem){ .level = level };
        va_start(ap, fmt);
        r = vasprintf(&item->summary, fmt, ap);
        va_end(ap);
        if (r < 0) {
                item->summary = NULL;
                return -ENOMEM;
        }
        item->body = strdup(body);
        item->icon = strdup(icon);
        item->category = category ? strdup(category) : NULL;
        if (!item->body || !item->icon || (category && !item->category)) {
                notify_item_done(item);
                return -ENOMEM;
        }
        return 0;
}

static const char *json_string_nonempty(json_t *o, const char *key) {
        const char *s = json_string_value(json_object_get(o, key));

        return isempty(s) ? NULL : s;
}

/* The name of a workspace when it is still registered and has one, else the slug. */
static const char *notifier_workspace_label(Notifier *nt, const char *slug) {
        Workspace *w = workspace_find(nt->daemon, slug);

        return w && !isempty(w->name) ? w->name : slug;
}

static void notifier_server_state(Notifier *nt, json_t *data) {
        const char *slug, *state, *previous, *label;
        NotifyItem item;

        slug = json_string_nonempty(data, "workspace");
        state = json_string_nonempty(data, "state");
        if (!slug || !state)
                return;
        previous = json_string_nonempty(data, "previous");
        label = notifier_workspace_label(nt, slug);

        if (streq(state, "failed") && !(previous && streq(previous, "failed"))) {
                const char *why = json_string_nonempty(data, "reason")
                                          ?: json_string_nonempty(data, "last_error")
                                                     ?: "The server stopped and djdesk gave up restarting it.";

                if (notify_item_make(&item, NOTIFY_LEVEL_CRITICAL, NOTIFY_SERVER_ICON, "device.error", why,
                                     "djdesk: %s failed", label) < 0) {
                        (void) log_oom();
                        return;
                }
                notifier_queue(nt, &item);
        } else if (json_is_true(json_object_get(data, "reload_failed"))) {
                _cleanup_free_ char *body = NULL;
                const char *why = json_string_nonempty(data, "last_error") ?: "The new code did not load.";

                if (asprintf(&body, "%s\nThe server keeps serving the previous code.", why) < 0 ||
                    notify_item_make(&item, NOTIFY_LEVEL_NORMAL, NOTIFY_SERVER_ICON, "device.error", body,
                                     "djdesk: %s reload failed", label) < 0) {
                        (void) log_oom();
                        return;
                }
                notifier_queue(nt, &item);
        }
}

/* "0.4 s", "59.9 s", "2 min 3 s", "5 min", "1 h 2 min" into buf; NULL when there is no duration. */
static const char *notify_format_duration(json_t *v, char *buf, size_t size) {
        double sec;
        unsigned t;

        if (!json_is_number(v))
                return NULL;
        sec = json_number_value(v);
        if (!isfinite(sec) || sec < 0)
                return NULL;
        if (sec < 59.95) {
                (void) snprintf(buf, size, "%.1f s", sec);
                return buf;
        }
        t = sec >= (double) UINT_MAX ? UINT_MAX : (unsigned) (sec + 0.5);
        if (t < 3600) {
                if (t % 60 != 0)
                        (void) snprintf(buf, size, "%u min %u s", t / 60, t % 60);
                else
                        (void) snprintf(buf, size, "%u min", t / 60);
        } else if ((t % 3600) / 60 != 0)
                (void) snprintf(buf, size, "%u h %u min", t / 3600, (t % 3600) / 60);
        else
                (void) snprintf(buf, size, "%u h", t / 3600);
        return buf;
}

/* The notification of one finished run: "LABEL failed", "WORKSPACE · DURATION" and, for a failure, why. */
static int notify_item_for_run(Notifier *nt, json_t *run, const NotifyRunStatus *st, NotifyItem *ret) {
        _cleanup_free_ char *why = NULL, *body = NULL;
        const char *label, *slug, *workspace, *duration, *reason = NULL;
        char dbuf[64];
        int r;

        label = json_string_nonempty(run, "label") ?: json_string_nonempty(run, "preset") ?: "A run";
        slug = json_string_nonempty(run, "workspace");
        workspace = slug ? notifier_workspace_label(nt, slug) : NULL;
        duration = notify_format_duration(json_object_get(run, "duration_seconds"), dbuf, sizeof(dbuf));
        if (st->why) {
                const char *line = json_string_nonempty(run, "last_error_line");
                const char *error = json_string_nonempty(run, "error");

                reason = st->why_error ? error ?: line : line ?: error;
        }
        if (reason) {
                why = notify_line_truncate(reason);
                if (!why)
                        return -ENOMEM;
        }
        r = asprintf(&body, "%s%s%s%s%s", workspace ?: "", workspace && duration ? " · " : "",
                     duration ?: "", why && (workspace || duration) ? "\n" : "", why ?: "");
        if (r < 0) {
                body = NULL;
                return -ENOMEM;
        }
        return notify_item_make(ret, st->critical ? NOTIFY_LEVEL_CRITICAL : NOTIFY_LEVEL_NORMAL,
                                json_string_nonempty(run, "icon") ?: NOTIFY_RUN_ICON, NULL, body, "%s %s",
                                label, st->verb);
}

/* "N more runs finished", with the count of each status in the body: "2 succeeded, 1 failed". */
static int notify_item_for_burst(Notifier *nt, NotifyItem *ret) {
        char body[ELEMENTSOF(notify_run_statuses) * 32] = "";
        bool critical = false;
        size_t len = 0;

        for (size_t i = 0; i < ELEMENTSOF(notify_run_statuses); i++) {
                unsigned n = nt->burst_held_count[i];
                int k;

                if (n == 0)
                        continue;
                k = snprintf(body + len, sizeof(body) - len, "%s%u %s", len > 0 ? ", " : "", n,
                             notify_run_statuses[i].verb);
                if (k < 0 || (size_t) k >= sizeof(body) - len)
                        break;
                len += (size_t) k;
                critical = critical || notify_run_statuses[i].critical;
        }
        return notify_item_make(ret, critical ? NOTIFY_LEVEL_CRITICAL : NOTIFY_LEVEL_NORMAL, NOTIFY_RUN_ICON,
                                NULL, body, "%u more runs finished", nt->burst_n_held);
}

/* The end of a merge window: what was held is shown (the one run as it is, several as one). When something
 * was, the burst may still be going on: a new window opens in which every finished run is held. */
static void notifier_burst_flush(Notifier *nt, bool reopen) {
        NotifyItem item = {};

        if (nt->burst_n_held == 0)
                return;
        if (nt->daemon->config->notifications == NOTIFY_MODE_OFF)
                log_debug("Notifications are off: dropping %u held notification(s).", nt->burst_n_held);
        else if (nt->burst_n_held == 1)
                notifier_queue(nt, &nt->burst_held);
        else if (notify_item_for_burst(nt, &item) < 0)
                (void) log_oom();
        else
                notifier_queue(nt, &item);

        notify_item_done(&nt->burst_held);
        nt->burst_n_held = 0;
        memset(nt->burst_held_count, 0, sizeof(nt->burst_held_count));
        if (reopen && nt->burst_timer && loop_timer_arm(nt->burst_timer, NOTIFY_BURST_USEC) >= 0)
                nt->burst_shown = NOTIFY_BURST_SHOWN;
}

static void notifier_burst_timer_cb(LoopSource *s, void *userdata) {
        notifier_burst_flush(userdata, true);
}

static void notifier_run_finished(Notifier *nt, json_t *run) {
        const NotifyRunStatus *st = NULL;
        const char *status;
        NotifyItem item;
        size_t i;

        status = json_string_nonempty(run, "status");
        for (i = 0; status && i < ELEMENTSOF(notify_run_statuses); i++)
                if (streq(status, notify_run_statuses[i].status)) {
                        st = &notify_run_statuses[i];
                        break;
                }
        if (!st) {
                log_debug("run.finished with status '%s': no notification.", status ?: "(none)");
                return;
        }
        if (nt->daemon->config->notifications == NOTIFY_MODE_FAILURES && !st->failure)
                return;

        /* The first finished run opens a window; a timer that cannot be armed only means no merging. */
        if (nt->burst_timer && !loop_timer_armed(nt->burst_timer)) {
                nt->burst_shown = 0;
                if (loop_timer_arm(nt->burst_timer, NOTIFY_BURST_USEC) < 0)
                        log_debug("Cannot arm the notification merge timer; not merging.");
        }
        if (nt->burst_shown >= NOTIFY_BURST_SHOWN && loop_timer_armed(nt->burst_timer)) {
                nt->burst_held_count[i]++;
                if (nt->burst_n_held++ > 0)
                        return; /* only the count is needed from now on */
                if (notify_item_for_run(nt, run, st, &nt->burst_held) < 0) {
                        nt->burst_held = (NotifyItem){};
                        (void) log_oom();
                }
                return;
        }
        nt->burst_shown++;
        if (notify_item_for_run(nt, run, st, &item) < 0) {
                (void) log_oom();
                return;
        }
        notifier_queue(nt, &item);
}

static void notifier_event_cb(EventSubscriber *s, const Event *e, void *userdata) {
        Notifier *nt = userdata;

        if (!json_is_object(e->data) || nt->daemon->config->notifications == NOTIFY_MODE_OFF)
                return;
        if (streq(e->topic, "server.state"))
                notifier_server_state(nt, e->data);
        else if (streq(e->topic, "run.finished"))
                notifier_run_finished(nt, e->data);
}

int notifier_new(Daemon *d, Notifier **ret) {
        _cleanup_(notifier_freep) Notifier *nt = NULL;
        sigset_t all, saved;
        int r;

        assert_return(d && d->events && d->loop && ret);
        nt = calloc(1, sizeof(*nt));
        if (!nt)
                return -ENOMEM;
        nt->daemon = d;
        notify_glib_log_setup();
        r = loop_add_timer(d->loop, notifier_burst_timer_cb, nt, &nt->burst_timer);
        if (r < 0)
                return r;
        r = notify_shared_new(&nt->shared);
        if (r < 0)
                return r;

        /* The thread (and the GDBus worker it starts) takes no signals: they belong to the main loop. */
        (void) sigfillset(&all);
        (void) pthread_sigmask(SIG_BLOCK, &all, &saved);
        nt->shared->n_ref++; /* the thread's reference */
        r = pthread_create(&nt->thread, NULL, notify_thread, nt->shared);
        (void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r != 0) {
                nt->shared->n_ref--;
                return -r;
        }
        nt->thread_started = true;
        (void) pthread_setname_np(nt->thread, "djdeskd-notify");

        r = events_subscriber_new(d->events, notifier_event_cb, nt, &nt->subscriber);
        if (r < 0)
                return r;
        r = events_subscriber_add_topic(nt->subscriber, "server.state");
        if (r < 0)
                return r;
        r = events_subscriber_add_topic(nt->subscriber, "run.finished");
        if (r < 0)
                return r;
        *ret = TAKE_PTR(nt);
        return 0;
}

Notifier *notifier_free(Notifier *nt) {
        NotifyShared *sh;

        if (!nt)
                return NULL;
        nt->subscriber = events_subscriber_free(nt->subscriber);
        /* Runs held for a merge window are shown now, not lost. */
        if (nt->shared)
                notifier_burst_flush(nt, false);
        notify_item_done(&nt->burst_held);
        nt->burst_timer = loop_source_free(nt->burst_timer);
        sh = nt->shared;
        if (sh && nt->thread_started) {
                struct timespec deadline;
                bool done;

                (void) clock_gettime(CLOCK_MONOTONIC, &deadline);
                deadline.tv_nsec += NOTIFY_JOIN_NSEC % 1000000000L;
                deadline.tv_sec += NOTIFY_JOIN_NSEC / 1000000000L + deadline.tv_nsec / 1000000000L;
                deadline.tv_nsec %= 1000000000L;

                (void) pthread_mutex_lock(&sh->lock);
                sh->quit = true;
                (void) pthread_cond_signal(&sh->wake);
                while (!sh->done)
                        if (pthread_cond_timedwait(&sh->finished, &sh->lock, &deadline) == ETIMEDOUT)
                                break;
                done = sh->done;
                (void) pthread_mutex_unlock(&sh->lock);

                if (done)
                        (void) pthread_join(nt->thread, NULL);
                else {
                        /* A show is stuck on an unresponsive notification server (libnotify's call has
                         * no timeout of ours). Shutdown does not wait for it: the thread is detached and
                         * frees the shared state itself if it ever returns; the process exit ends it. */
                        log_warning("A desktop notification is still being sent; not waiting for it.");
                        (void) pthread_detach(nt->thread);
                }
        }
        if (sh) {
                (void) pthread_mutex_lock(&sh->lock);
                notify_shared_unref_unlock(sh);
        }
        free(nt);
        return NULL;
}
