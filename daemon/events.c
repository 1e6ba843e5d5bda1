/* SPDX-License-Identifier: MIT */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dj-list.h"
#include "dj-util.h"
#include "events.h"
#include "rpc-frame.h"

struct EventSubscriber {
        Events *events;
        EventSinkFn sink;
        void *userdata;
        char **topics;
        size_t n_topics;
        EventSubscriber *prev, *next;
};

struct Events {
        Event *ring;
        size_t capacity, head, count; /* head: index of the oldest */
        size_t bytes, max_bytes;
        uint64_t last_seq;
        uint64_t reserved_until;
        EventsReserveFn reserve;
        void *reserve_userdata;
        EventSubscriber *subscribers;
        size_t n_subscribers;
        EventSubscriber *dispatch_next; /* the next subscriber of a running fan-out */
};

/* seq is persisted in blocks so it survives restarts without a write per event. */
#define EVENTS_SEQ_BLOCK UINT64_C(4096)

static json_t *json_decref_null(json_t *j) {
        json_decref(j);
        return NULL;
}

EventLine *event_line_ref(EventLine *l) {
        if (l)
                l->n_ref++;
        return l;
}

EventLine *event_line_unref(EventLine *l) {
        if (!l)
                return NULL;
        assert(l->n_ref > 0);
        if (--l->n_ref == 0)
                free(l);
        return NULL;
}

static void event_done(Event *e) {
        free(e->topic);
        json_decref(e->data);
        event_line_unref(e->line);
        *e = (Event){};
}

int events_new(size_t max_events, size_t max_bytes, uint64_t first_seq, Events **ret) {
        _cleanup_(events_freep) Events *ev = NULL;

        assert_return(max_events > 0 && ret && first_seq > 0);
        ev = calloc(1, sizeof(*ev));
        if (!ev)
                return -ENOMEM;
        ev->ring = calloc(max_events, sizeof(Event));
        if (!ev->ring)
                return -ENOMEM;
        ev->capacity = max_events;
        ev->max_bytes = max_bytes;
        ev->last_seq = first_seq - 1;
        ev->reserved_until = UINT64_MAX;
        *ret = TAKE_PTR(ev);
        return 0;
}

Events *events_free(Events *ev) {
        if (!ev)
                return NULL;
        while (ev->subscribers)
                (void) events_subscriber_free(ev->subscribers);
        for (size_t i = 0; i < ev->count; i++)
                event_done(&ev->ring[(ev->head + i) % ev->capacity]);
        free(ev->ring);
        free(ev);
        return NULL;
}

void events_set_reserve(Events *ev, uint64_t reserved_until, EventsReserveFn fn, void *userdata) {
        ev->reserved_until = reserved_until;
        ev->reserve = fn;
        ev->reserve_userdata = userdata;
}

uint64_t events_last_seq(const Events *ev) {
        return ev->last_seq;
}

size_t events_count(const Events *ev) {
        return ev->count;
}

size_t events_subscriber_count(const Events *ev) {
        return ev->n_subscribers;
}

uint64_t events_oldest_seq(const Events *ev) {
        return ev->count > 0 ? ev->ring[ev->head].seq : 0;
}

static bool segment_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* Dotted segments of [a-z0-9_-]; with allow_star, the last segment may be "*". */
static bool topic_syntax_ok(const char *t, bool allow_star) {
        size_t seg = 0;

        if (isempty(t) || strlen(t) > 128)
                return false;
        if (allow_star && streq(t, "*"))
                return true;
        for (const char *p = t;; p++) {
                if (*p == '.' || *p == '\0') {
                        if (seg == 0)
                                return false;
                        if (*p == '\0')
                                return true;
                        seg = 0;
                        if (allow_star && streq(p + 1, "*"))
                                return true;
                        continue;
                }
                if (!segment_char(*p))
                        return false;
                seg++;
        }
}

bool events_topic_pattern_valid(const char *pattern) {
        return topic_syntax_ok(pattern, true);
}

bool events_topic_valid(const char *topic) {
        return topic_syntax_ok(topic, false);
}

bool events_topic_match(const char *pattern, const char *topic) {
        size_t n = strlen(pattern);

        if (streq(pattern, "*"))
                return true;
        if (n >= 2 && pattern[n - 1] == '*' && pattern[n - 2] == '.')
                return strneq(pattern, topic, n - 1); /* "run.*" matches "run.x", not "runner.x" */
        return streq(pattern, topic);
}

static bool subscriber_matches(const EventSubscriber *s, const char *topic) {
        for (size_t i = 0; i < s->n_topics; i++)
                if (events_topic_match(s->topics[i], topic))
                        return true;
        return false;
}

typedef struct LineBuilder {
        EventLine *line;
        size_t alloc; /* bytes[] room */
} LineBuilder;

static int line_builder_reserve(LineBuilder *b, size_t more) {
        EventLine *l;
        size_t need, a;

        if (more > SIZE_MAX / 2 - offsetof(EventLine, bytes) - b->line->len)
                return -ENOMEM;
        need = b->line->len + more;
        if (need <= b->alloc)
                return 0;
        a = MAX(b->alloc * 2, need);
        l = realloc(b->line, offsetof(EventLine, bytes) + a);
        if (!l)
                return -ENOMEM;
        b->line = l;
        b->alloc = a;
        return 0;
}

static int line_builder_append_cb(const char *buf, size_t size, void *userdata) {
        LineBuilder *b = userdata;

        if (line_builder_reserve(b, size) < 0)
                return -1;
        memcpy(b->line->bytes + b->line->len, buf, size);
        b->line->len += size;
        return 0;
}

/* The same bytes as rpc_dumps_line(), dumped straight into the line's own allocation (json_dumps() would
 * copy them once more). */
static EventLine *line_dump(json_t *msg) {
        LineBuilder b = { .alloc = 1024 };
        EventLine *l;

        if (!msg)
                return NULL;
        b.line = malloc(offsetof(EventLine, bytes) + b.alloc);
        if (!b.line)
                return NULL;
        *b.line = (EventLine){ .n_ref = 1 };
        if (json_dump_callback(msg, line_builder_append_cb, &b, JSON_COMPACT) < 0 ||
            line_builder_reserve(&b, 2) < 0) {
                free(b.line);
                return NULL;
        }
        b.line->bytes[b.line->len++] = '\n';
        b.line->bytes[b.line->len] = '\0';
        /* Give back what doubling left over: the line may live long, in the ring. */
        l = realloc(b.line, offsetof(EventLine, bytes) + b.line->len + 1);
        return l ?: b.line;
}

EventLine *events_format_line(const char *topic, uint64_t seq, uint64_t timestamp, json_t *data) {
        _cleanup_free_ char *time = format_timestamp_iso(timestamp);
        json_auto_t *msg = NULL;

        if (!time)
                return NULL;
        msg = rpc_notification_new("event", json_pack("{s:s, s:I, s:s, s:O}", "topic", topic, "seq",
                                                      (json_int_t) seq, "time", time, "data", data));
        return line_dump(msg);
}

static void events_evict_oldest(Events *ev) {
        Event *e = &ev->ring[ev->head];

        /* Subscribers that still have the line queued keep it alive. */
        ev->bytes -= e->line->len;
        event_done(e);
        ev->head = (ev->head + 1) % ev->capacity;
        ev->count--;
}

int64_t events_publish(Events *ev, const char *topic, json_t *data) {
        json_t *d = data ?: json_object();
        Event e = {};
        int r;

        if (!d)
                return -ENOMEM;
        if (!json_is_object(d) || !events_topic_valid(topic)) {
                json_decref(d);
                return -EINVAL;
        }
        if (ev->last_seq + 1 >= ev->reserved_until && ev->reserve) {
                r = ev->reserve(ev->last_seq + 1 + EVENTS_SEQ_BLOCK, ev->reserve_userdata);
                if (r < 0) {
                        json_decref(d);
                        return r;
                }
                ev->reserved_until = ev->last_seq + 1 + EVENTS_SEQ_BLOCK;
        }

        e.seq = ev->last_seq + 1;
        e.timestamp = now_usec(CLOCK_REALTIME);
        e.topic = strdup(topic);
        e.data = d;
        e.line = e.topic ? events_format_line(topic, e.seq, e.timestamp, d) : NULL;
        if (!e.line) {
                event_done(&e);
                return -ENOMEM;
        }
        ev->last_seq = e.seq;

        while (ev->count > 0 && (ev->count == ev->capacity || ev->bytes + e.line->len > ev->max_bytes))
                events_evict_oldest(ev);
        ev->ring[(ev->head + ev->count) % ev->capacity] = e;
        ev->count++;
        ev->bytes += e.line->len;

        /* A sink may free its own subscriber (a client cut off for lagging); keep the next one in the
         * Events object so that freeing it, too, is noticed. */
        Event *stored = &ev->ring[(ev->head + ev->count - 1) % ev->capacity];
        for (EventSubscriber *s = ev->subscribers; s; s = ev->dispatch_next) {
                ev->dispatch_next = s->next;
                if (subscriber_matches(s, stored->topic))
                        s->sink(s, stored, s->userdata);
        }
        ev->dispatch_next = NULL;
        /* The ring keeps the serialized line only: event_ring_bytes bounds what it really holds. Sinks
         * must not publish, so stored is still this event. */
        stored->data = json_decref_null(stored->data);
        return (int64_t) e.seq;
}

int events_subscriber_new(Events *ev, EventSinkFn sink, void *userdata, EventSubscriber **ret) {
        EventSubscriber *s;

        assert_return(ev && sink && ret);
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->events = ev;
        s->sink = sink;
        s->userdata = userdata;
        LIST_PREPEND(ev->subscribers, s);
        ev->n_subscribers++;
        *ret = s;
        return 0;
}

EventSubscriber *events_subscriber_free(EventSubscriber *s) {
        Events *ev;

        if (!s)
                return NULL;
        ev = s->events;
        if (ev->dispatch_next == s)
                ev->dispatch_next = s->next;
        LIST_REMOVE(ev->subscribers, s);
        ev->n_subscribers--;
        events_subscriber_clear(s);
        free(s);
        return NULL;
}

int events_subscriber_add_topic(EventSubscriber *s, const char *pattern) {
        char **t, *p;

        if (!events_topic_pattern_valid(pattern))
                return -EINVAL;
        for (size_t i = 0; i < s->n_topics; i++)
                if (streq(s->topics[i], pattern))
                        return 0;
        p = strdup(pattern);
        if (!p)
                return -ENOMEM;
        t = realloc(s->topics, (s->n_topics + 1) * sizeof(char *));
        if (!t) {
                free(p);
                return -ENOMEM;
        }
        t[s->n_topics++] = p;
        s->topics = t;
        return 1;
}

int events_subscriber_remove_topic(EventSubscriber *s, const char *pattern) {
        for (size_t i = 0; i < s->n_topics; i++)
                if (streq(s->topics[i], pattern)) {
                        free(s->topics[i]);
                        memmove(s->topics + i, s->topics + i + 1, (s->n_topics - i - 1) * sizeof(char *));
                        s->n_topics--;
                        return 1;
                }
        return 0;
}

void events_subscriber_clear(EventSubscriber *s) {
        for (size_t i = 0; i < s->n_topics; i++)
                free(s->topics[i]);
        free(s->topics);
        s->topics = NULL;
        s->n_topics = 0;
}

size_t events_subscriber_n_topics(const EventSubscriber *s) {
        return s->n_topics;
}

const char *events_subscriber_topic(const EventSubscriber *s, size_t i) {
        return i < s->n_topics ? s->topics[i] : NULL;
}

bool events_has_gap(const Events *ev, uint64_t since) {
        uint64_t last = ev->last_seq;

        /* Lost: anything between since and the oldest kept event, or a since we never handed out. */
        return since > last || (since < last && (ev->count == 0 || events_oldest_seq(ev) > since + 1));
}

size_t events_subscriber_count_replay(const EventSubscriber *s, uint64_t since) {
        const Events *ev = s->events;
        size_t n = 0;

        for (size_t i = 0; i < ev->count; i++) {
                const Event *e = &ev->ring[(ev->head + i) % ev->capacity];

                if (e->seq > since && subscriber_matches(s, e->topic))
                        n++;
        }
        return n;
}

size_t events_subscriber_replay(EventSubscriber *s, uint64_t since, bool *ret_gap) {
        Events *ev = s->events;
        size_t n = 0;

        if (ret_gap)
                *ret_gap = events_has_gap(ev, since);
        for (size_t i = 0; i < ev->count; i++) {
                const Event *e = &ev->ring[(ev->head + i) % ev->capacity];

                if (e->seq <= since || !subscriber_matches(s, e->topic))
                        continue;
                s->sink(s, e, s->userdata);
                n++;
        }
        return n;
}
