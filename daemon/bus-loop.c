/* SPDX-License-Identifier: MIT */
/* The only file that knows both libevent and sd-bus. */
#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "bus-internal.h"
#include "config.h"
#include "daemon.h"
#include "dj-log.h"
#include "dj-util.h"

struct BusLoop {
        sd_bus *bus;
        struct event_base *base;
        struct event *io, *out, *timer, *kick;
};

static void bus_loop_rearm(BusLoop *bl) {
        uint64_t until, now, rel;
        int ev = sd_bus_get_events(bl->bus);

        if (ev > 0 && (ev & POLLOUT))
                (void) event_add(bl->out, NULL);
        else
                (void) event_del(bl->out);
        if (sd_bus_get_timeout(bl->bus, &until) <= 0 || until == UINT64_MAX) {
                (void) event_del(bl->timer);
                return;
        }
        now = now_usec(CLOCK_MONOTONIC); /* until is ABSOLUTE monotonic µs */
        rel = until > now ? until - now : 0;
        struct timeval tv = { .tv_sec = (time_t) (rel / USEC_PER_SEC),
                              .tv_usec = (suseconds_t) (rel % USEC_PER_SEC) };
        (void) evtimer_add(bl->timer, &tv);
}

static void bus_loop_dispatch_cb(evutil_socket_t fd, short what, void *userdata) {
        BusLoop *bl = userdata;
        int r, n = 0;

        do
                r = sd_bus_process(bl->bus, NULL);
        while (r > 0 && ++n < 64);
        if (r < 0) {
                log_error_errno(r, "D-Bus connection failed: %m");
                (void) event_base_loopexit(bl->base, NULL);
                return;
        }
        if (r > 0)
                event_active(bl->kick, EV_TIMEOUT, 0); /* still busy: be fair, come back */
        bus_loop_rearm(bl);
}

static BusLoop *bus_loop_free(BusLoop *bl) {
        if (!bl)
                return NULL;
        if (bl->io)
                event_free(bl->io);
        if (bl->out)
                event_free(bl->out);
        if (bl->timer)
                event_free(bl->timer);
        if (bl->kick)
                event_free(bl->kick);
        free(bl);
        return NULL;
}

static int bus_loop_new(sd_bus *bus, struct event_base *base, BusLoop **ret) {
        BusLoop *bl;
        int fd;

        fd = sd_bus_get_fd(bus);
        if (fd < 0)
                return fd;
        bl = calloc(1, sizeof(*bl));
        if (!bl)
                return -ENOMEM;
        bl->bus = bus;
        bl->base = base;
        bl->io = event_new(base, fd, EV_READ | EV_PERSIST, bus_loop_dispatch_cb, bl);
        bl->out = event_new(base, fd, EV_WRITE | EV_PERSIST, bus_loop_dispatch_cb, bl);
        bl->timer = evtimer_new(base, bus_loop_dispatch_cb, bl);
        bl->kick = evtimer_new(base, bus_loop_dispatch_cb, bl);
        if (!bl->io || !bl->out || !bl->timer || !bl->kick || event_add(bl->io, NULL) < 0) {
                bus_loop_free(bl);
                return -ENOMEM;
        }
        *ret = bl;
        return 0;
}

void bus_kick(Bus *b) {
        if (b && b->loop)
                event_active(b->loop->kick, EV_TIMEOUT, 0);
}

int bus_open(Daemon *d, struct event_base *base, Bus **ret, DjError *reterr) {
        _cleanup_(bus_freep) Bus *b = NULL;
        int r;

        b = calloc(1, sizeof(*b));
        if (!b)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        b->daemon = d;

        r = sd_bus_open_user_with_description(&b->bus, "djdeskd");
        if (r < 0) {
                (void) dj_error_set(reterr, DJ_E_INTERNAL, "cannot connect to the D-Bus session bus: %s",
                                    strerror(-r));
                return r;
        }
        r = bus_manager_register(b);
        if (r >= 0)
                r = bus_workspace_register(b);
        if (r >= 0)
                r = bus_run_register(b);
        if (r < 0) {
                (void) dj_error_set(reterr, DJ_E_INTERNAL, "cannot register D-Bus objects: %s",
                                    strerror(-r));
                return r;
        }
        r = sd_bus_request_name(b->bus, DJDESK_BUS_NAME, 0);
        if (r == -EEXIST) {
                (void) dj_error_set(
                        reterr, DJ_E_BUSY,
                        "the D-Bus name %s is already owned by another process (another djdeskd?)",
                        DJDESK_BUS_NAME);
                return r;
        }
        if (r < 0) {
                (void) dj_error_set(reterr, DJ_E_INTERNAL, "cannot acquire the D-Bus name %s: %s",
                                    DJDESK_BUS_NAME, strerror(-r));
                return r;
        }
        b->name_acquired = true;
        r = bus_loop_new(b->bus, base, &b->loop);
        if (r < 0) {
                (void) dj_error_set(reterr, DJ_E_INTERNAL, "cannot watch the D-Bus connection: %s",
                                    strerror(-r));
                return r;
        }
        bus_kick(b);
        *ret = TAKE_PTR(b);
        return 0;
}

void bus_release(Bus *b) {
        if (!b || !b->bus)
                return;
        if (b->name_acquired) {
                (void) sd_bus_release_name(b->bus, DJDESK_BUS_NAME);
                b->name_acquired = false;
        }
        (void) sd_bus_flush(b->bus);
}

Bus *bus_free(Bus *b) {
        if (!b)
                return NULL;
        bus_workspace_unregister(b);
        bus_run_unregister(b);
        b->loop = bus_loop_free(b->loop);
        if (b->bus) {
                (void) sd_bus_flush(b->bus);
                b->bus = sd_bus_flush_close_unref(b->bus);
        }
        free(b);
        return NULL;
}
