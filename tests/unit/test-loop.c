/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon.h"
#include "dj-util.h"
#include "loop.h"

static Daemon daemon_stub;

typedef struct Lines {
        char *got[64];
        size_t n;
        unsigned eofs;
        size_t free_after; /* free the source from the callback after this many lines (0: never) */
        LoopSource **self;
} Lines;

static void lines_done(Lines *t) {
        for (size_t i = 0; i < t->n; i++)
                free(t->got[i]);
}

static void lines_cb(LoopSource *s, const char *line, size_t len, void *userdata) {
        Lines *t = userdata;

        if (!line) {
                t->eofs++;
                return;
        }
        assert_int_equal(strlen(line), len);
        assert_true(t->n < ELEMENTSOF(t->got));
        t->got[t->n++] = strdup(line);
        if (t->free_after > 0 && t->n == t->free_after)
                *t->self = loop_source_free(s);
}

static void timeout_cb(LoopSource *s, void *userdata) {
        *(bool *) userdata = true;
}

/* Runs the loop until *cond or 5 s (fails then). */
static void run_until(Loop *l, const bool *cond) {
        _cleanup_(loop_source_freep) LoopSource *t = NULL;
        bool timed_out = false;

        assert_int_equal(loop_add_timer(l, timeout_cb, &timed_out, &t), 0);
        assert_int_equal(loop_timer_arm(t, 5 * USEC_PER_SEC), 0);
        while (!*cond && !timed_out)
                assert_int_equal(loop_run_once(l), 0);
        assert_false(timed_out);
}

static void write_all(int fd, const char *s) {
        size_t n = strlen(s);

        assert_int_equal(write(fd, s, n), (ssize_t) n);
}

/* A new pipe whose read end feeds lines of at most max bytes (0: no limit) to lines_cb with t; p[1] is
 * the writer. */
static void add_lines(Loop *l, int p[2], size_t max, Lines *t, LoopSource **ret) {
        assert_int_equal(pipe2(p, O_CLOEXEC), 0);
        assert_int_equal(loop_add_lines(l, p[0], max, lines_cb, t, ret), 0);
}

static bool lines_reached(Lines *t, size_t n) {
        return t->n >= n;
}

static void test_lines(void **state) {
        _cleanup_(loop_freep) Loop *l = NULL;
        LoopSource *s = NULL;
        Lines t = {};
        int p[2];

        assert_int_equal(loop_new(&daemon_stub, &l), 0);
        add_lines(l, p, 8, &t, &s);

        write_all(p[1], "one\ntwo\n\nthree-is-a-long-line\nexactly8\n");
        while (!lines_reached(&t, 7))
                assert_int_equal(loop_run_once(l), 0);
        assert_string_equal(t.got[0], "one");
        assert_string_equal(t.got[1], "two");
        assert_string_equal(t.got[2], "");
        assert_string_equal(t.got[3], "three-is");
        assert_string_equal(t.got[4], "-a-long-");
        assert_string_equal(t.got[5], "line");
        assert_string_equal(t.got[6], "exactly8");
        assert_int_equal(t.eofs, 0);

        /* A partial line waits for its end... */
        write_all(p[1], "part");
        assert_int_equal(loop_run_once(l), 0);
        assert_int_equal(t.n, 7);
        write_all(p[1], "ial\nlast");
        while (!lines_reached(&t, 8))
                assert_int_equal(loop_run_once(l), 0);
        assert_string_equal(t.got[7], "partial");

        /* ...and the unterminated one is delivered at EOF, then NULL once. */
        assert_int_equal(close(p[1]), 0);
        while (t.eofs == 0)
                assert_int_equal(loop_run_once(l), 0);
        assert_int_equal(t.n, 9);
        assert_string_equal(t.got[8], "last");
        assert_int_equal(t.eofs, 1);

        /* Idle now: draining again delivers nothing. */
        loop_lines_drain(s, true);
        assert_int_equal(t.eofs, 1);
        loop_source_free(s);
        lines_done(&t);
}

static void test_lines_drain(void **state) {
        _cleanup_(loop_freep) Loop *l = NULL;
        LoopSource *s = NULL;
        Lines t = {};
        int p[2];

        assert_int_equal(loop_new(&daemon_stub, &l), 0);
        add_lines(l, p, 0, &t, &s);

        /* The writer is still open: drain(false) takes the complete lines only. */
        write_all(p[1], "a\nb\nc");
        loop_lines_drain(s, false);
        assert_int_equal(t.n, 2);
        assert_int_equal(t.eofs, 0);
        /* drain(true) ends the stream without waiting for EOF. */
        loop_lines_drain(s, true);
        assert_int_equal(t.n, 3);
        assert_string_equal(t.got[2], "c");
        assert_int_equal(t.eofs, 1);
        loop_lines_drain(s, true);
        assert_int_equal(t.eofs, 1);
        assert_int_equal(close(p[1]), 0);
        loop_source_free(s);
        lines_done(&t);
}

static void test_lines_free_from_callback(void **state) {
        _cleanup_(loop_freep) Loop *l = NULL;
        LoopSource *s = NULL;
        Lines t = { .free_after = 2 };
        int p[2];

        assert_int_equal(loop_new(&daemon_stub, &l), 0);
        add_lines(l, p, 0, &t, &s);
        t.self = &s;

        /* Three lines in one read: the loop must stop after the callback freed the source. */
        write_all(p[1], "1\n2\n3\n");
        while (s)
                assert_int_equal(loop_run_once(l), 0);
        assert_int_equal(t.n, 2);
        assert_int_equal(t.eofs, 0);

        /* The same from within a drain. */
        assert_int_equal(close(p[1]), 0);
        lines_done(&t);
        t = (Lines){ .free_after = 1, .self = &s };
        add_lines(l, p, 0, &t, &s);
        write_all(p[1], "x\ny\nz");
        loop_lines_drain(s, true);
        assert_null(s);
        assert_int_equal(t.n, 1);
        assert_int_equal(t.eofs, 0);
        lines_done(&t);
        assert_int_equal(close(p[1]), 0);
}

typedef struct Ticks {
        unsigned n;
        uint64_t at[4];
        bool rearm;
        bool free_self;
        LoopSource **self;
} Ticks;

static void tick_cb(LoopSource *s, void *userdata) {
        Ticks *t = userdata;

        assert_false(loop_timer_armed(s));
        t->at[t->n++] = now_usec(CLOCK_MONOTONIC);
        if (t->rearm && t->n < 3)
                assert_int_equal(loop_timer_arm(s, 10 * USEC_PER_MSEC), 0);
        if (t->free_self)
                *t->self = loop_source_free(s);
}

static void test_timer(void **state) {
        _cleanup_(loop_freep) Loop *l = NULL;
        _cleanup_(loop_source_freep) LoopSource *s = NULL, *guard = NULL;
        Ticks t = {};
        bool done = false;
        uint64_t start;

        assert_int_equal(loop_new(&daemon_stub, &l), 0);
        assert_int_equal(loop_add_timer(l, tick_cb, &t, &s), 0);
        assert_false(loop_timer_armed(s));

        /* One-shot: it fires once, then stays quiet. */
        start = now_usec(CLOCK_MONOTONIC);
        assert_int_equal(loop_timer_arm(s, 20 * USEC_PER_MSEC), 0);
        assert_true(loop_timer_armed(s));
        while (t.n == 0)
                assert_int_equal(loop_run_once(l), 0);
        assert_true(t.at[0] - start >= 20 * USEC_PER_MSEC);
        assert_false(loop_timer_armed(s));
        assert_int_equal(loop_add_timer(l, timeout_cb, &done, &guard), 0);
        assert_int_equal(loop_timer_arm(guard, 50 * USEC_PER_MSEC), 0);
        run_until(l, &done);
        assert_int_equal(t.n, 1);

        /* Re-arming replaces the deadline; disarming cancels it. */
        assert_int_equal(loop_timer_arm(s, 5 * USEC_PER_SEC), 0);
        assert_int_equal(loop_timer_arm(s, 10 * USEC_PER_MSEC), 0);
        while (t.n == 1)
                assert_int_equal(loop_run_once(l), 0);
        assert_int_equal(loop_timer_arm(s, 10 * USEC_PER_MSEC), 0);
        loop_timer_disarm(s);
        assert_false(loop_timer_armed(s));
        done = false;
        assert_int_equal(loop_timer_arm(guard, 50 * USEC_PER_MSEC), 0);
        run_until(l, &done);
        assert_int_equal(t.n, 2);

        /* Re-armed from its own callback: fires again. */
        t = (Ticks){ .rearm = true };
        assert_int_equal(loop_timer_arm(s, 10 * USEC_PER_MSEC), 0);
        while (t.n < 3)
                assert_int_equal(loop_run_once(l), 0);
        assert_false(loop_timer_armed(s));

        /* Freed from its own callback. */
        t = (Ticks){ .free_self = true, .self = &s };
        assert_int_equal(loop_timer_arm(s, 1), 0);
        while (s)
                assert_int_equal(loop_run_once(l), 0);
        assert_int_equal(t.n, 1);
}

typedef struct Io {
        unsigned n;
        unsigned revents;
        LoopSource **self;
} Io;

static void io_cb(LoopSource *s, int fd, unsigned revents, void *userdata) {
        Io *t = userdata;
        char c;

        t->n++;
        t->revents = revents;
        assert_int_equal(read(fd, &c, 1), 1);
        if (t->n == 2)
                *t->self = loop_source_free(s);
}

static void test_io(void **state) {
        _cleanup_(loop_freep) Loop *l = NULL;
        LoopSource *s = NULL;
        Io t = { .self = &s };
        int p[2];

        assert_int_equal(loop_new(&daemon_stub, &l), 0);
        assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
        assert_int_equal(loop_add_io(l, p[0], LOOP_IO_READ, io_cb, &t, &s), 0);
        write_all(p[1], "ab");
        while (s)
                assert_int_equal(loop_run_once(l), 0);
        assert_int_equal(t.n, 2);
        assert_int_equal(t.revents, LOOP_IO_READ);
        /* The source did not own the fd. */
        assert_int_equal(close(p[0]), 0);
        assert_int_equal(close(p[1]), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lines),
                cmocka_unit_test(test_lines_drain),
                cmocka_unit_test(test_lines_free_from_callback),
                cmocka_unit_test(test_timer),
                cmocka_unit_test(test_io),
        };

        return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
