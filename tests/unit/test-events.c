/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "dj-macro.h"
#include "dj-util.h"
#include "events.h"
#include "rpc-frame.h"

typedef struct Seen {
        uint64_t seqs[64];
        size_t n;
} Seen;

static void sink_cb(EventSubscriber *s, const Event *e, void *userdata) {
        Seen *seen = userdata;

        assert_true(seen->n < 64);
        seen->seqs[seen->n++] = e->seq;
        /* The line is one JSON-RPC notification ending in a newline. */
        assert_int_equal(e->line->bytes[e->line->len - 1], '\n');
        assert_int_equal(strlen(e->line->bytes), e->line->len);
}

static void test_topics(void **state) {
        static const struct {
                const char *pattern, *topic;
                bool match;
        } cases[] = {
                { "*", "run.started", true },           { "run.*", "run.started", true },
                { "run.*", "runner.started", false },   { "run.*", "run", false },
                { "run.started", "run.started", true }, { "run.started", "run.finished", false },
                { "user.*", "user.a.b", true },
        };
        static const struct {
                const char *s;
                bool pattern, topic;
        } syntax[] = {
                { "*", true, false },      { "run.*", true, false }, { "run.started", true, true },
                { "a_b.c-d", true, true }, { "", false, false },     { ".", false, false },
                { "a..b", false, false },  { "a.", false, false },   { "A.b", false, false },
                { "a.*.b", false, false }, { "a b", false, false },  { "*.a", false, false },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                assert_int_equal(events_topic_match(cases[i].pattern, cases[i].topic), cases[i].match);
        for (size_t i = 0; i < sizeof(syntax) / sizeof(syntax[0]); i++) {
                assert_int_equal(events_topic_pattern_valid(syntax[i].s), syntax[i].pattern);
                assert_int_equal(events_topic_valid(syntax[i].s), syntax[i].topic);
        }
}

static void test_ring_and_replay(void **state) {
        Events *ev = NULL;
        EventSubscriber *s = NULL;
        Seen seen = {};
        bool gap;

        assert_int_equal(events_new(4, 1 << 20, 1, &ev), 0);
        for (int i = 0; i < 10; i++)
                assert_int_equal(events_publish(ev, i % 2 ? "run.started" : "server.state", NULL), i + 1);
        assert_int_equal(events_count(ev), 4);
        assert_int_equal(events_oldest_seq(ev), 7);
        assert_int_equal(events_last_seq(ev), 10);

        assert_int_equal(events_subscriber_new(ev, sink_cb, &seen, &s), 0);
        assert_int_equal(events_subscriber_add_topic(s, "*"), 1);
        assert_int_equal(events_subscriber_add_topic(s, "*"), 0); /* once */

        /* since 0: 1..6 are gone. */
        assert_int_equal(events_subscriber_replay(s, 0, &gap), 4);
        assert_true(gap);
        assert_int_equal(seen.seqs[0], 7);
        assert_int_equal(seen.seqs[3], 10);

        /* since 6: exactly what is kept, no gap. */
        seen.n = 0;
        assert_int_equal(events_subscriber_replay(s, 6, &gap), 4);
        assert_false(gap);
        seen.n = 0;
        assert_int_equal(events_subscriber_replay(s, 8, &gap), 2);
        assert_false(gap);
        assert_int_equal(seen.seqs[0], 9);
        seen.n = 0;
        assert_int_equal(events_subscriber_replay(s, 10, &gap), 0);
        assert_false(gap);
        /* A since from the future (another store, a reset): the client must re-read. */
        assert_int_equal(events_subscriber_replay(s, 99, &gap), 0);
        assert_true(gap);

        /* Filters apply to replay and to live events alike. */
        events_subscriber_clear(s);
        assert_int_equal(events_subscriber_add_topic(s, "run.*"), 1);
        seen.n = 0;
        assert_int_equal(events_subscriber_count_replay(s, 6), 2);
        assert_int_equal(events_subscriber_replay(s, 6, NULL), 2);
        assert_int_equal(seen.seqs[0], 8);
        seen.n = 0;
        assert_int_equal(events_publish(ev, "server.state", NULL), 11);
        assert_int_equal(events_publish(ev, "run.finished", json_pack("{s:i}", "id", 1)), 12);
        assert_int_equal(seen.n, 1);
        assert_int_equal(seen.seqs[0], 12);

        assert_int_equal(events_subscriber_remove_topic(s, "run.*"), 1);
        assert_int_equal(events_subscriber_n_topics(s), 0);
        assert_int_equal(events_publish(ev, "run.finished", NULL), 13);
        assert_int_equal(seen.n, 1);

        /* Bad input is refused and consumes no seq. */
        assert_int_equal(events_publish(ev, "Bad Topic", NULL), -EINVAL);
        assert_int_equal(events_publish(ev, "run.x", json_array()), -EINVAL);
        assert_int_equal(events_last_seq(ev), 13);

        assert_int_equal(events_subscriber_count(ev), 1);
        events_subscriber_free(s);
        assert_int_equal(events_subscriber_count(ev), 0);
        events_free(ev);
}

static void test_byte_bound(void **state) {
        Events *ev = NULL;
        char big[2000];

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        /* 64 KiB of lines at most, whatever the count allows. */
        assert_int_equal(events_new(1000, 64 << 10, 1, &ev), 0);
        for (int i = 0; i < 200; i++)
                assert_true(events_publish(ev, "user.big", json_pack("{s:s}", "s", big)) > 0);
        assert_true(events_count(ev) < 40);
        assert_true(events_count(ev) > 20);
        assert_int_equal(events_last_seq(ev), 200);
        assert_int_equal(events_oldest_seq(ev), 200 - events_count(ev) + 1);
        events_free(ev);
}

static uint64_t reserved_calls, reserved_value;

static int reserve_cb(uint64_t until, void *userdata) {
        reserved_calls++;
        reserved_value = until;
        return 0;
}

static void test_seq_reserve(void **state) {
        Events *ev = NULL;

        /* A restarted daemon begins where the stored reservation ended. */
        assert_int_equal(events_new(8, 1 << 20, 4097, &ev), 0);
        events_set_reserve(ev, 4097, reserve_cb, NULL);
        assert_int_equal(events_publish(ev, "a.b", NULL), 4097);
        assert_int_equal(reserved_calls, 1);
        assert_true(reserved_value > 4097);
        for (uint64_t i = 4098; i < reserved_value; i++)
                assert_int_equal(events_publish(ev, "a.b", NULL), (int64_t) i);
        assert_int_equal(reserved_calls, 1); /* one write per block, not per event */
        assert_int_equal(events_publish(ev, "a.b", NULL), (int64_t) reserved_value);
        assert_int_equal(reserved_calls, 2);
        events_free(ev);
}

/* A subscriber that keeps a reference to every line it is handed, as an output buffer does. */
typedef struct Kept {
        EventLine *lines[16];
        uint64_t seqs[16];
        size_t n;
} Kept;

static void keep_sink_cb(EventSubscriber *s, const Event *e, void *userdata) {
        Kept *k = userdata;

        assert_true(k->n < 16);
        k->seqs[k->n] = e->seq;
        k->lines[k->n++] = event_line_ref(e->line);
}

static unsigned released;

/* What rpc-server.c hands to evbuffer_add_reference(). */
static void release_cb(const void *data, size_t len, void *userdata) {
        EventLine *l = userdata;

        assert_ptr_equal(data, l->bytes);
        assert_int_equal(len, l->len);
        released++;
        event_line_unref(l);
}

static void queue(struct evbuffer *b, EventLine *l) {
        event_line_ref(l);
        assert_int_equal(evbuffer_add_reference(b, l->bytes, l->len, release_cb, l), 0);
}

static void test_line_refcount(void **state) {
        _cleanup_(events_freep) Events *ev = NULL;
        EventSubscriber *s = NULL;
        struct evbuffer *a, *b;
        Kept kept = {};
        EventLine *l;
        size_t len;

        /* A ring of two: the third event evicts the first. */
        assert_int_equal(events_new(2, 1 << 20, 1, &ev), 0);
        assert_int_equal(events_subscriber_new(ev, keep_sink_cb, &kept, &s), 0);
        assert_int_equal(events_subscriber_add_topic(s, "*"), 1);
        assert_non_null(a = evbuffer_new());
        assert_non_null(b = evbuffer_new());

        assert_int_equal(events_publish(ev, "run.log", json_pack("{s:i}", "id", 7)), 1);
        assert_int_equal(kept.n, 1);
        l = kept.lines[0];
        assert_int_equal(l->n_ref, 2); /* the ring's and ours */
        assert_non_null(strstr(l->bytes, "\"seq\":1,"));
        assert_int_equal(l->bytes[l->len - 1], '\n');
        assert_int_equal(strlen(l->bytes), l->len);
        len = l->len;

        /* Queued twice without a copy: the buffers count its bytes (client_output_limit sees them). */
        queue(a, l);
        queue(b, l);
        assert_int_equal(l->n_ref, 4);
        assert_int_equal(evbuffer_get_length(a), len);
        assert_ptr_equal(evbuffer_pullup(a, -1), l->bytes);

        /* Evicted from the ring while still queued: it lives on, intact. */
        assert_int_equal(events_publish(ev, "run.log", NULL), 2);
        assert_int_equal(events_publish(ev, "run.log", NULL), 3);
        assert_int_equal(events_oldest_seq(ev), 2);
        assert_int_equal(l->n_ref, 3);
        assert_non_null(strstr(l->bytes, "\"id\":7"));

        /* A partial write keeps the reference; the last byte written drops it, once. */
        assert_int_equal(evbuffer_drain(a, len - 1), 0);
        assert_int_equal(released, 0);
        assert_int_equal(l->n_ref, 3);
        assert_int_equal(evbuffer_drain(a, 1), 0);
        assert_int_equal(released, 1);
        assert_int_equal(l->n_ref, 2);
        assert_int_equal(evbuffer_drain(a, 1), 0); /* nothing left: no second release */
        assert_int_equal(released, 1);

        /* Replay hands out the ring's own line, not a new one. */
        assert_int_equal(events_subscriber_replay(s, 0, NULL), 2);
        assert_int_equal(kept.n, 5);
        assert_ptr_equal(kept.lines[3], kept.lines[1]);
        assert_ptr_equal(kept.lines[4], kept.lines[2]);
        assert_int_equal(kept.lines[1]->n_ref, 3);

        /* Events go first, with lines still queued in b: freeing the buffer drops the last reference
         * but ours. */
        queue(b, kept.lines[2]);
        assert_int_equal(evbuffer_get_length(b), len + kept.lines[2]->len);
        events_subscriber_free(s);
        ev = events_free(ev);
        assert_int_equal(kept.lines[2]->n_ref, 3); /* two of ours and b's */
        assert_int_equal(l->n_ref, 2);
        evbuffer_free(b);
        assert_int_equal(released, 3);
        assert_int_equal(l->n_ref, 1);
        evbuffer_free(a);
        assert_int_equal(released, 3);

        /* Ours last: each line is freed exactly once (ASan tells a double free or a leak). */
        for (size_t i = 0; i < kept.n; i++)
                kept.lines[i] = event_line_unref(kept.lines[i]);
        assert_null(event_line_unref(NULL));
        assert_null(event_line_ref(NULL));
}

static void test_format_line(void **state) {
        static const size_t sizes[] = { 0, 10, 900, 1000, 5000, 70000 };
        _cleanup_free_ char *big = NULL;

        assert_non_null(big = malloc(70001));
        memset(big, 'x', 70000);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                _cleanup_(event_line_unrefp) EventLine *l = NULL;
                _cleanup_free_ char *want = NULL, *time = NULL;
                json_auto_t *data = NULL, *msg = NULL;
                size_t n = 0;

                big[sizes[i]] = '\0';
                data = json_pack("{s:I, s:s}", "resume_since", (json_int_t) 41, "s", big);
                /* Lines for events that are not in the ring too ("lagged"): one reference, the caller's. */
                l = events_format_line("lagged", 42, UINT64_C(1700000000123456), data);
                assert_non_null(l);
                assert_int_equal(l->n_ref, 1);
                assert_int_equal(strlen(l->bytes), l->len);

                /* Byte for byte what rpc_dumps_line() makes of the same notification. */
                assert_non_null(time = format_timestamp_iso(UINT64_C(1700000000123456)));
                msg = rpc_notification_new("event",
                                           json_pack("{s:s, s:I, s:s, s:O}", "topic", "lagged", "seq",
                                                     (json_int_t) 42, "time", time, "data", data));
                assert_non_null(want = rpc_dumps_line(msg, &n));
                assert_int_equal(l->len, n);
                assert_memory_equal(l->bytes, want, n + 1);
                big[sizes[i]] = 'x';
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_topics),        cmocka_unit_test(test_ring_and_replay),
                cmocka_unit_test(test_byte_bound),    cmocka_unit_test(test_seq_reserve),
                cmocka_unit_test(test_line_refcount), cmocka_unit_test(test_format_line),
        };

        return cmocka_run_group_tests_name("events", tests, NULL, NULL);
}
