/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dj-macro.h"

struct event_base;
typedef struct Daemon Daemon;
typedef struct Loop Loop;

/* The one event loop: a libevent base with precise timers, SIGTERM/SIGINT (shutdown), SIGHUP (reload),
 * and the systemd watchdog when $WATCHDOG_USEC asks for it. */
int loop_new(Daemon *d, Loop **ret);
Loop *loop_free(Loop *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(Loop *, loop_free);

struct event_base *loop_base(Loop *l);
int loop_run(Loop *l);
void loop_exit(Loop *l);

/* Event sources for domain code, which never includes libevent (STYLE.md). Every source is freed with
 * loop_source_free(), which is safe to call from the source's own callback. */
typedef struct LoopSource LoopSource;

enum {
        LOOP_IO_READ = 1 << 0,
        LOOP_IO_WRITE = 1 << 1,
};

/* fd is ready: revents is a mask of LOOP_IO_*. The source does not own fd. */
typedef void (*LoopIoFn)(LoopSource *s, int fd, unsigned revents, void *userdata);
/* A timer fired (it is one-shot: re-arm it to fire again). */
typedef void (*LoopTimerFn)(LoopSource *s, void *userdata);
/* One line, without its '\n' and NUL-terminated (len excludes the NUL). A line longer than max_line is
 * delivered in pieces of max_line bytes; the final unterminated line before EOF is delivered too. At EOF
 * or on a read error the callback runs once more with line == NULL, and the source is then idle. */
typedef void (*LoopLineFn)(LoopSource *s, const char *line, size_t len, void *userdata);

int loop_add_io(Loop *l, int fd, unsigned events, LoopIoFn cb, void *userdata, LoopSource **ret);
/* A one-shot timer, created disarmed. */
int loop_add_timer(Loop *l, LoopTimerFn cb, void *userdata, LoopSource **ret);
int loop_timer_arm(LoopSource *s, uint64_t usec); /* relative; re-arming replaces the deadline */
void loop_timer_disarm(LoopSource *s);
bool loop_timer_armed(LoopSource *s);
/* Reads fd (made non-blocking; the source owns it and closes it) into a buffer and splits it into lines. */
int loop_add_lines(Loop *l, int fd, size_t max_line, LoopLineFn cb, void *userdata, LoopSource **ret);
/* Reads whatever fd holds right now without waiting, delivers the complete lines (and, when final, the
 * rest as a last line), then returns. Used when a child has exited to collect its last words. */
void loop_lines_drain(LoopSource *s, bool final);
LoopSource *loop_source_free(LoopSource *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(LoopSource *, loop_source_free);

/* Runs one iteration of the loop: waits until at least one event is active and dispatches the active ones
 * (tests drive the loop with it). */
int loop_run_once(Loop *l);
