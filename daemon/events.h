/* SPDX-License-Identifier: MIT */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dj-macro.h"

/* The daemon-wide event stream: every state change is published once, gets the next seq, is kept in a
 * bounded ring (by count and by serialized bytes) for replay, and is handed to every subscriber whose
 * topic filter matches. Transports and notifications are subscribers; none of them polls. */

/* An event's JSON-RPC notification, serialized once (with its "\n", NUL-terminated) and shared: the ring
 * holds one reference, and so does every output buffer it was queued in without a copy, so that an event
 * evicted from the ring stays alive until the last subscriber has been sent it. Main thread only. */
typedef struct EventLine {
        unsigned n_ref;
        size_t len; /* with the "\n", without the NUL */
        char bytes[];
} EventLine;

EventLine *event_line_ref(EventLine *l);
EventLine *event_line_unref(EventLine *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(EventLine *, event_line_unref);

typedef struct Event {
        uint64_t seq;
        uint64_t timestamp; /* µs, CLOCK_REALTIME */
        char *topic;
        json_t *data;    /* during the live fan-out only; replayed events carry just the line */
        EventLine *line; /* a reference: take your own with event_line_ref() to keep it past the sink */
} Event;

typedef struct Events Events;
typedef struct EventSubscriber EventSubscriber;

/* Called for each matching event; the event is borrowed. */
typedef void (*EventSinkFn)(EventSubscriber *s, const Event *e, void *userdata);
/* Asked for a seq to persist before handing out numbers past it (seq survives restarts). */
typedef int (*EventsReserveFn)(uint64_t reserve_until, void *userdata);

int events_new(size_t max_events, size_t max_bytes, uint64_t first_seq, Events **ret);
Events *events_free(Events *ev);
DEFINE_TRIVIAL_CLEANUP_FUNC(Events *, events_free);

void events_set_reserve(Events *ev, uint64_t reserved_until, EventsReserveFn fn, void *userdata);

/* Publishes an event. data is stolen (NULL means an empty object). Returns the seq (> 0) or -errno. */
int64_t events_publish(Events *ev, const char *topic, json_t *data /* stolen */);

uint64_t events_last_seq(const Events *ev);
size_t events_count(const Events *ev);
size_t events_subscriber_count(const Events *ev);
uint64_t events_oldest_seq(const Events *ev); /* 0 when empty */

/* Topic patterns: "*", "group.*", or an exact dotted topic of [a-z0-9_] segments. */
bool events_topic_pattern_valid(const char *pattern);
bool events_topic_valid(const char *topic);
bool events_topic_match(const char *pattern, const char *topic);

int events_subscriber_new(Events *ev, EventSinkFn sink, void *userdata, EventSubscriber **ret);
EventSubscriber *events_subscriber_free(EventSubscriber *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(EventSubscriber *, events_subscriber_free);

/* Adds (or removes) topic patterns. Patterns must be valid. */
int events_subscriber_add_topic(EventSubscriber *s, const char *pattern);
int events_subscriber_remove_topic(EventSubscriber *s, const char *pattern);
void events_subscriber_clear(EventSubscriber *s);
size_t events_subscriber_n_topics(const EventSubscriber *s);
const char *events_subscriber_topic(const EventSubscriber *s, size_t i);

/* Hands the ring's events with seq > since that match s to its sink, oldest first. *ret_gap is set when
 * events after since are no longer in the ring (or since lies in the future). Returns how many. */
size_t events_subscriber_replay(EventSubscriber *s, uint64_t since, bool *ret_gap);

/* Serializes an event notification line (also for events that are not in the ring, like "lagged"). Returns
 * a new line with one reference, or NULL when out of memory. */
EventLine *events_format_line(const char *topic, uint64_t seq, uint64_t timestamp, json_t *data);

/* Whether a client that saw everything up to since has missed events the ring no longer holds. */
bool events_has_gap(const Events *ev, uint64_t since);
/* How many ring events after since match s. */
size_t events_subscriber_count_replay(const EventSubscriber *s, uint64_t since);
