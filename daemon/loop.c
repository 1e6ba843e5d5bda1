/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "daemon.h"
#include "dj-log.h"
#include "loop.h"

struct Loop {
        Daemon *daemon;
        struct event_base *base;
        struct event *sigterm, *sigint, *sighup, *watchdog;
};

static void signal_cb(evutil_socket_t sig, short what, void *userdata) {
        Loop *l = userdata;

        switch (sig) {
        case SIGTERM:
                daemon_shutdown(l->daemon, "SIGTERM");
                break;
        case SIGINT:
                daemon_shutdown(l->daemon, "SIGINT");
                break;
        case SIGHUP:
                log_info("SIGHUP: reloading the configuration.");
                (void) daemon_reload(l->daemon, NULL);
                break;
        }
}

static void watchdog_cb(evutil_socket_t fd, short what, void *userdata) {
        (void) sd_notify(0, "WATCHDOG=1");
}

int loop_new(Daemon *d, Loop **ret) {
        _cleanup_(loop_freep) Loop *l = NULL;
        struct event_config *cfg;
        uint64_t wd = 0;

        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->daemon = d;
        cfg = event_config_new();
        if (!cfg)
                return -ENOMEM;
        /* No EVENT_BASE_FLAG_PRECISE_TIMER: on Linux it re-arms a timerfd on every loop iteration (two
         * syscalls per request in bench/ipc), and nothing here needs timers finer than a millisecond. */
        l->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
        if (!l->base)
                return -ENOMEM;

        l->sigterm = evsignal_new(l->base, SIGTERM, signal_cb, l);
        l->sigint = evsignal_new(l->base, SIGINT, signal_cb, l);
        l->sighup = evsignal_new(l->base, SIGHUP, signal_cb, l);
        if (!l->sigterm || !l->sigint || !l->sighup || evsignal_add(l->sigterm, NULL) < 0 ||
            evsignal_add(l->sigint, NULL) < 0 || evsignal_add(l->sighup, NULL) < 0)
                return -ENOMEM;

        /* Half the interval systemd gave us, as sd_watchdog_enabled(3) recommends. */
        if (sd_watchdog_enabled(0, &wd) > 0 && wd > 0) {
                uint64_t half = wd / 2;

                l->watchdog = event_new(l->base, -1, EV_PERSIST, watchdog_cb, l);
                if (!l->watchdog ||
                    event_add(l->watchdog, &(struct timeval){ .tv_sec = (time_t) (half / 1000000),
                                                              .tv_usec = (suseconds_t) (half % 1000000) }) <
                            0)
                        return -ENOMEM;
                log_debug("Watchdog: pinging every %" PRIu64 " ms", half / 1000);
        }
        *ret = TAKE_PTR(l);
        return 0;
}

Loop *loop_free(Loop *l) {
        if (!l)
                return NULL;
        if (l->sigterm)
                event_free(l->sigterm);
        if (l->sigint)
                event_free(l->sigint);
        if (l->sighup)
                event_free(l->sighup);
        if (l->watchdog)
                event_free(l->watchdog);
        if (l->base)
                event_base_free(l->base);
        free(l);
        return NULL;
}

struct event_base *loop_base(Loop *l) {
        return l->base;
}

int loop_run(Loop *l) {
        return event_base_dispatch(l->base) < 0 ? -EIO : 0;
}

void loop_exit(Loop *l) {
        (void) event_base_loopexit(l->base, NULL);
}

int loop_run_once(Loop *l) {
        return event_base_loop(l->base, EVLOOP_ONCE) < 0 ? -EIO : 0;
}

/* Sources */

#define LOOP_LINES_DEFAULT_MAX ((size_t) 64 * 1024)
/* One read per wake-up: a child flooding its pipe costs the loop a few ms at a time, then every other
 * source gets its turn (the pipe fills up and slows the child down instead). */
#define LOOP_LINES_READ_CHUNK ((int) 16 * 1024)

typedef enum LoopSourceType {
        LOOP_SOURCE_IO,
        LOOP_SOURCE_TIMER,
        LOOP_SOURCE_LINES,
} LoopSourceType;

struct LoopSource {
        Loop *loop;
        LoopSourceType type;
        struct event *ev;
        void *userdata;
        LoopIoFn io_cb;
        LoopTimerFn timer_cb;
        LoopLineFn line_cb;

        /* lines */
        int fd;
        struct evbuffer *buf;
        char *line; /* max_line + 1 bytes, where each line is copied out for the callback */
        size_t max_line;
        bool done; /* EOF (or error) reached and cb(NULL) delivered: idle */

        /* While a callback runs: points to the dispatcher's flag, which loop_source_free() sets so the
         * dispatcher stops touching the source. */
        bool *freed;
};

static int loop_source_new(Loop *l, LoopSourceType type, void *userdata, LoopSource **ret) {
        LoopSource *s;

        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->loop = l;
        s->type = type;
        s->userdata = userdata;
        s->fd = -1;
        *ret = s;
        return 0;
}

LoopSource *loop_source_free(LoopSource *s) {
        if (!s)
                return NULL;
        if (s->freed)
                *s->freed = true;
        if (s->ev)
                event_free(s->ev);
        if (s->buf)
                evbuffer_free(s->buf);
        free(s->line);
        s->fd = safe_close(s->fd);
        free(s);
        return NULL;
}

static void loop_io_cb(evutil_socket_t fd, short what, void *userdata) {
        LoopSource *s = userdata;
        unsigned revents = 0;

        if (what & EV_READ)
                revents |= LOOP_IO_READ;
        if (what & EV_WRITE)
                revents |= LOOP_IO_WRITE;
        s->io_cb(s, fd, revents, s->userdata); /* may free s */
}

int loop_add_io(Loop *l, int fd, unsigned events, LoopIoFn cb, void *userdata, LoopSource **ret) {
        _cleanup_(loop_source_freep) LoopSource *s = NULL;
        short what = EV_PERSIST;
        int r;

        assert_return(l && fd >= 0 && cb && ret);
        assert_return(events & (LOOP_IO_READ | LOOP_IO_WRITE));

        if (events & LOOP_IO_READ)
                what |= EV_READ;
        if (events & LOOP_IO_WRITE)
                what |= EV_WRITE;
        r = loop_source_new(l, LOOP_SOURCE_IO, userdata, &s);
        if (r < 0)
                return r;
        s->io_cb = cb;
        s->ev = event_new(l->base, fd, what, loop_io_cb, s);
        if (!s->ev)
                return -ENOMEM;
        if (event_add(s->ev, NULL) < 0)
                return -EIO;
        *ret = TAKE_PTR(s);
        return 0;
}

static void loop_timer_cb(evutil_socket_t fd, short what, void *userdata) {
        LoopSource *s = userdata;

        s->timer_cb(s, s->userdata); /* may free s */
}

int loop_add_timer(Loop *l, LoopTimerFn cb, void *userdata, LoopSource **ret) {
        _cleanup_(loop_source_freep) LoopSource *s = NULL;
        int r;

        assert_return(l && cb && ret);

        r = loop_source_new(l, LOOP_SOURCE_TIMER, userdata, &s);
        if (r < 0)
                return r;
        s->timer_cb = cb;
        s->ev = evtimer_new(l->base, loop_timer_cb, s);
        if (!s->ev)
                return -ENOMEM;
        *ret = TAKE_PTR(s);
        return 0;
}

int loop_timer_arm(LoopSource *s, uint64_t usec) {
        struct timeval tv = {
                .tv_sec = (time_t) (usec / USEC_PER_SEC),
                .tv_usec = (suseconds_t) (usec % USEC_PER_SEC),
        };

        assert_return(s && s->type == LOOP_SOURCE_TIMER);
        return evtimer_add(s->ev, &tv) < 0 ? -EIO : 0;
}

void loop_timer_disarm(LoopSource *s) {
        if (s && s->type == LOOP_SOURCE_TIMER)
                (void) evtimer_del(s->ev);
}

bool loop_timer_armed(LoopSource *s) {
        return s && s->type == LOOP_SOURCE_TIMER && evtimer_pending(s->ev, NULL);
}

/* Calls the line callback; returns false when the callback freed the source. Nesting-safe: an inner
 * dispatch that sees the source freed tells the outer one too. */
static bool loop_lines_deliver(LoopSource *s, const char *line, size_t len) {
        bool freed = false, *outer = s->freed;

        s->freed = &freed;
        s->line_cb(s, line, len, s->userdata);
        if (freed) {
                if (outer)
                        *outer = true;
                return false;
        }
        s->freed = outer;
        return true;
}

/* Delivers the complete lines in the buffer (and pieces of max_line bytes of an overlong one). With
 * final, also the rest as a last line. Returns false when a callback freed the source. */
static bool loop_lines_split(LoopSource *s, bool final) {
        for (;;) {
                size_t avail = evbuffer_get_length(s->buf), n, skip;
                struct evbuffer_ptr eol;

                if (avail == 0)
                        return true;
                eol = evbuffer_search_eol(s->buf, NULL, NULL, EVBUFFER_EOL_LF);
                if (eol.pos >= 0 && (size_t) eol.pos <= s->max_line) {
                        n = (size_t) eol.pos;
                        skip = 1;
                } else if (avail > s->max_line) {
                        /* Too long (the newline, if any, is beyond max_line bytes): cut a piece. */
                        n = s->max_line;
                        skip = 0;
                } else if (final) {
                        n = avail;
                        skip = 0;
                } else
                        return true;

                if (evbuffer_remove(s->buf, s->line, n) != (int) n)
                        return true; /* cannot happen: the bytes are there */
                s->line[n] = '\0';
                if (skip > 0)
                        (void) evbuffer_drain(s->buf, skip);
                if (!loop_lines_deliver(s, s->line, n))
                        return false;
                if (s->done)
                        return true; /* drained from within the callback */
        }
}

/* End of input: the rest, then cb(NULL) once, then idle. Returns false when a callback freed the source. */
static bool loop_lines_finish(LoopSource *s) {
        if (s->done)
                return true;
        if (!loop_lines_split(s, true))
                return false;
        if (s->done)
                return true;
        s->done = true;
        (void) event_del(s->ev);
        (void) evbuffer_drain(s->buf, evbuffer_get_length(s->buf));
        s->fd = safe_close(s->fd);
        return loop_lines_deliver(s, NULL, 0);
}

/* One read. Returns > 0 when bytes were read, 0 at EOF or on an error, -EAGAIN when nothing is there. */
static int loop_lines_read(LoopSource *s) {
        int n;

        for (;;) {
                n = evbuffer_read(s->buf, s->fd, LOOP_LINES_READ_CHUNK);
                if (n > 0)
                        return n;
                if (n == 0)
                        return 0;
                if (errno == EINTR)
                        continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK)
                        return -EAGAIN;
                return 0; /* a read error ends the stream like EOF */
        }
}

static void loop_lines_cb(evutil_socket_t fd, short what, void *userdata) {
        LoopSource *s = userdata;
        int n;

        if (s->done)
                return;
        n = loop_lines_read(s);
        if (n == -EAGAIN)
                return;
        if (n == 0) {
                (void) loop_lines_finish(s);
                return;
        }
        (void) loop_lines_split(s, false);
}

int loop_add_lines(Loop *l, int fd, size_t max_line, LoopLineFn cb, void *userdata, LoopSource **ret) {
        _cleanup_(loop_source_freep) LoopSource *s = NULL;
        int flags, r;

        assert_return(l && fd >= 0 && cb && ret);

        r = loop_source_new(l, LOOP_SOURCE_LINES, userdata, &s);
        if (r < 0)
                return r;
        s->line_cb = cb;
        s->max_line = max_line > 0 ? max_line : LOOP_LINES_DEFAULT_MAX;
        s->line = malloc(s->max_line + 1);
        s->buf = evbuffer_new();
        if (!s->line || !s->buf)
                return -ENOMEM;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        s->ev = event_new(l->base, fd, EV_READ | EV_PERSIST, loop_lines_cb, s);
        if (!s->ev)
                return -ENOMEM;
        if (event_add(s->ev, NULL) < 0)
                return -EIO;
        s->fd = fd; /* ours from here on: closed with the source */
        *ret = TAKE_PTR(s);
        return 0;
}

void loop_lines_drain(LoopSource *s, bool final) {
        if (!s || s->type != LOOP_SOURCE_LINES || s->done)
                return;
        for (;;) {
                int n = loop_lines_read(s);

                if (n == -EAGAIN)
                        break;
                if (n == 0) {
                        (void) loop_lines_finish(s);
                        return;
                }
                if (!loop_lines_split(s, false) || s->done)
                        return;
        }
        if (final)
                (void) loop_lines_finish(s);
}
