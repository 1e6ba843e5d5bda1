/* SPDX-License-Identifier: MIT */
/* djdeskctl watch: subscribe and print events until interrupted. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "dj-util.h"

typedef struct WatchArgs {
        json_t *topics; /* array of patterns, NULL for the default ["*"] */
        bool have_since;
        uint64_t since;
} WatchArgs;

static void watch_args_done(WatchArgs *a) {
        json_decref(a->topics);
        a->topics = NULL;
}

void help_watch(void) {
        printf("Usage: djdeskctl watch [--topic PATTERN]... [--since SEQ] [--json]\n"
               "\n"
               "Subscribe to the daemon's events and print them as they happen, one per line:\n"
               "  SEQ  HH:MM:SS.mmm  TOPIC  DATA\n"
               "DATA is the event's data as compact JSON, or for run events a summary:\n"
               "  #7 atlas/check queued by cli            (run.queued)\n"
               "  #7 atlas/check started                  (run.started)\n"
               "  #7 atlas: 3 lines, last: TEXT           (run.log)\n"
               "  #7 atlas/check failed (exit 1, 412ms): exited with status 1\n"
               "With --json, one JSON object per line: {\"data\",\"seq\",\"time\",\"topic\"}.\n"
               "Runs until interrupted (exit 0), until the daemon shuts down (exit 0), until the\n"
               "daemon drops a subscriber that reads too slowly (exit 1), or until the connection\n"
               "is lost (exit 3).\n"
               "\n"
               "Options:\n"
               "  -h, --help           Show this help\n"
               "      --topic PATTERN  Only events matching PATTERN: a topic, 'group.*' or '*'\n"
               "                       (repeatable; default '*')\n"
               "      --since SEQ      First replay the retained events after SEQ\n"
               "      --socket PATH    Daemon socket\n"
               "      --json           Print JSON lines\n");
}

/* Same rule as the daemon: "*", "group.*" (prefix up to and including the dot) or an exact topic. */
static bool topic_match(const char *pattern, const char *topic) {
        size_t n = strlen(pattern);

        if (streq(pattern, "*"))
                return true;
        if (n >= 2 && pattern[n - 2] == '.' && pattern[n - 1] == '*')
                return strneq(pattern, topic, n - 1);
        return streq(pattern, topic);
}

static bool topics_match(json_t *patterns, const char *topic) {
        for (size_t i = 0; i < json_array_size(patterns); i++) {
                const char *p = json_string_value(json_array_get(patterns, i));

                if (p && topic_match(p, topic))
                        return true;
        }
        return false;
}

static int parse_argv(int argc, char *argv[], WatchArgs *a) {
        enum {
                ARG_TOPIC = _CTL_ARG_MAX,
                ARG_SINCE,
        };
        static const struct option options[] = {
                CTL_COMMON_OPTIONS,
                { "topic", required_argument, NULL, ARG_TOPIC },
                { "since", required_argument, NULL, ARG_SINCE },
                {},
        };
        bool done = false;
        int c;

        while ((c = ctl_getopt(argc, argv, CTL_COMMON_SHORTOPTS, options, "watch", help_watch, &done)) > 0) {
                switch (c) {
                case ARG_TOPIC:
                        if (isempty(optarg))
                                return ctl_usage_error("watch", "--topic needs a pattern");
                        if (!a->topics) {
                                a->topics = json_array();
                                if (!a->topics)
                                        return -ENOMEM;
                        }
                        if (json_array_append_new(a->topics, json_string(optarg)) < 0)
                                return ctl_usage_error("watch", "invalid --topic '%s'", optarg);
                        break;
                case ARG_SINCE:
                        /* Seqs are JSON integers on the wire: keep them within json_int_t. */
                        if (parse_uint_range(optarg, 0, INT64_MAX, &a->since) < 0)
                                return ctl_usage_error(
                                        "watch", "invalid --since '%s': expected a seq (>= 0)", optarg);
                        a->have_since = true;
                        break;
                default:
                        return ctl_unexpected_option("watch", argv);
                }
        }
        if (c < 0 || done)
                return c;
        if (optind < argc)
                return ctl_usage_error("watch", "unexpected argument '%s'", argv[optind]);
        return 1;
}

static int print_event(const char *topic, json_int_t seq, json_t *params) {
        const char *time = json_string_value(json_object_get(params, "time"));
        json_t *data = json_object_get(params, "data");

        if (arg_json) {
                json_auto_t *o = json_object();

                if (!o || json_object_set_new(o, "topic", json_string(topic)) < 0 ||
                    json_object_set_new(o, "seq", json_integer(seq)) < 0 ||
                    json_object_set_new(o, "time", time ? json_string(time) : json_null()) < 0 ||
                    json_object_set_new(o, "data", data ? json_incref(data) : json_object()) < 0)
                        return -ENOMEM;
                return ctl_print_json(o, false);
        } else {
                _cleanup_free_ char *d = NULL;
                char clock[32];

                /* Run events get a summary (a run object is long); everything else its data as JSON. */
                if (ctl_run_event_summary(topic, data, &d) < 0)
                        return -ENOMEM;
                if (!d)
                        d = data ? json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY)
                                 : strdup("{}");
                if (!d)
                        return -ENOMEM;
                errno = 0;
                printf("%" JSON_INTEGER_FORMAT "  %s  %s  %s\n", seq,
                       ctl_clock(time, true, clock, sizeof(clock)), topic, d);
                return ctl_flush_stdout();
        }
}

static void warn_gap(json_int_t seq) {
        ctl_message("events before seq %" JSON_INTEGER_FORMAT " were dropped; re-read state", seq);
}

int verb_watch(int argc, char *argv[]) {
        _cleanup_(watch_args_done) WatchArgs a = {};
        _cleanup_(ctl_freep) Ctl *c = NULL;
        json_auto_t *topics = NULL, *params = NULL, *result = NULL;
        json_int_t last_seq, replayed;
        bool hide_shutdown, gap_pending;
        int r;

        r = parse_argv(argc, argv, &a);
        if (r == -ENOMEM)
                return ctl_oom();
        if (r <= 0)
                return r < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;

        /* Also subscribe to daemon.shutdown (without printing it unless asked for), so that a graceful
         * daemon stop ends a filtered watch with 0 rather than as a lost connection. */
        topics = a.topics ? json_deep_copy(a.topics) : json_pack("[s]", "*");
        if (!topics)
                return ctl_oom();
        hide_shutdown = !topics_match(topics, CTL_TOPIC_SHUTDOWN);
        if (hide_shutdown && json_array_append_new(topics, json_string(CTL_TOPIC_SHUTDOWN)) < 0)
                return ctl_oom();
        params = json_pack("{s:O}", "topics", topics);
        if (!params ||
            (a.have_since && json_object_set_new(params, "since", json_integer((json_int_t) a.since)) < 0))
                return ctl_oom();

        /* Events must reach a pipe as they happen, not when a buffer fills. */
        (void) setvbuf(stdout, NULL, _IOLBF, 0);

        r = ctl_setup_quit_signals();
        if (r < 0) {
                ctl_message("cannot set up signal handling: %s", strerror(-r));
                return CTL_EXIT_FAILURE;
        }

        r = ctl_open(true, &c);
        if (r == -EINTR)
                return CTL_EXIT_OK;
        if (r < 0)
                return r == -ENOMEM ? CTL_EXIT_FAILURE : CTL_EXIT_UNREACHABLE;

        /* Events may come before the reply (the replay): keep them, print them after it. */
        ctl_keep_notifications(c, true);
        r = ctl_call_checked(c, "subscribe", TAKE_PTR(params), CTL_CALL_TIMEOUT_USEC, true, &result);
        if (r != CTL_EXIT_OK || !result)
                return r;

        last_seq = json_integer_value(json_object_get(result, "seq"));
        replayed = json_integer_value(json_object_get(result, "replayed"));
        gap_pending = false;
        if (json_is_true(json_object_get(result, "gap"))) {
                /* The replay (if any) starts at the oldest retained event: name it when it arrives. */
                if (replayed > 0)
                        gap_pending = true;
                else
                        warn_gap(last_seq + 1);
        }

        for (;;) {
                json_auto_t *p = NULL;
                json_t *seqv;
                const char *topic;
                json_int_t seq;

                r = ctl_next_event(c, &p);
                if (r != CTL_EXIT_OK || !p)
                        return r; /* interrupted (SIGINT/SIGTERM): CTL_EXIT_OK */
                topic = ctl_str(p, "topic", "");
                seqv = json_object_get(p, "seq");
                if (!json_is_integer(seqv))
                        continue; /* malformed: nothing sensible to print */
                seq = json_integer_value(seqv);

                if (gap_pending) {
                        warn_gap(seq);
                        gap_pending = false;
                }

                if (streq(topic, CTL_TOPIC_LAGGED)) {
                        json_t *resume = json_object_get(json_object_get(p, "data"), "resume_since");

                        if (arg_json)
                                (void) print_event(topic, seq, p);
                        ctl_message(
                                "the daemon dropped this subscription: events were not read fast enough");
                        if (json_is_integer(resume))
                                ctl_message("resume with 'djdeskctl watch --since %" JSON_INTEGER_FORMAT "'",
                                            json_integer_value(resume));
                        return CTL_EXIT_FAILURE;
                }

                if (!(hide_shutdown && streq(topic, CTL_TOPIC_SHUTDOWN))) {
                        r = print_event(topic, seq, p);
                        if (r < 0)
                                return ctl_output_failed(r);
                }
                /* Replayed events (seq <= last_seq) may include the shutdown of an earlier daemon. */
                if (streq(topic, CTL_TOPIC_SHUTDOWN) && seq > last_seq)
                        return CTL_EXIT_OK;
        }
}
