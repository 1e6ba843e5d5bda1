/* SPDX-License-Identifier: MIT */
/* The client side of the socket: blocking-style JSON-RPC over a non-blocking fd and ppoll(). libevent is
 * only used for its evbuffer (with RpcFramer splitting lines); there is no event loop. */
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "ctl.h"
#include "dj-util.h"
#include "rpc-frame.h"
#include "xdg.h"

struct Ctl {
        int fd;
        char *path;
        struct evbuffer *in;
        struct evbuffer *out;
        RpcFramer framer;
        json_int_t next_id;
        json_t *backlog; /* notifications that arrived while ctl_call() waited, when kept */
        bool keep_notifications;
        bool eof;
        bool interruptible;
};

static volatile sig_atomic_t quit_signal = 0;
static sigset_t wait_mask; /* the signal mask to wait with: the caller's, minus SIGINT and SIGTERM */
static bool wait_mask_set = false;

static void quit_signal_cb(int sig) {
        quit_signal = sig;
}

int ctl_setup_quit_signals(void) {
        struct sigaction sa = { .sa_handler = quit_signal_cb };
        sigset_t block;

        /* Blocked everywhere but inside ppoll(): no race between checking the flag and sleeping. */
        (void) sigemptyset(&block);
        (void) sigaddset(&block, SIGINT);
        (void) sigaddset(&block, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &block, &wait_mask) < 0)
                return -errno;
        (void) sigdelset(&wait_mask, SIGINT);
        (void) sigdelset(&wait_mask, SIGTERM);
        (void) sigemptyset(&sa.sa_mask);
        if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
                return -errno;
        wait_mask_set = true;
        return 0;
}

Ctl *ctl_free(Ctl *c) {
        if (!c)
                return NULL;
        (void) safe_close(c->fd);
        if (c->in)
                evbuffer_free(c->in);
        if (c->out)
                evbuffer_free(c->out);
        json_decref(c->backlog);
        free(c->path);
        free(c);
        return NULL;
}

static void print_start_hint(void) {
        static const char hint[] =
                "is djdeskd running? Start it with 'systemctl --user start djdesk.service' or run 'djdeskd'";

        ctl_message("%s", hint);
}

static int socket_path(char **ret) {
        char *p;
        int r;

        if (arg_socket) {
                p = strdup(arg_socket);
                if (!p) {
                        ctl_message("out of memory");
                        return -ENOMEM;
                }
                *ret = p;
                return 0;
        }
        r = djdesk_socket_path(ret);
        if (r == -ENXIO)
                ctl_message("cannot locate the daemon socket: $XDG_RUNTIME_DIR is not set; "
                            "use --socket PATH or $DJDESK_SOCKET");
        else if (r < 0)
                ctl_message("cannot locate the daemon socket: %s", strerror(-r));
        return r;
}

int ctl_open(bool interruptible, Ctl **ret) {
        _cleanup_(ctl_freep) Ctl *c = NULL;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        /* For AF_UNIX, connect() waits at most SO_SNDTIMEO when the listen backlog is full. */
        struct timeval tv = { .tv_sec = (time_t) (CTL_CALL_TIMEOUT_USEC / USEC_PER_SEC) };
        size_t n;
        int flags, r;

        c = calloc(1, sizeof(*c));
        if (!c) {
                ctl_message("out of memory");
                return -ENOMEM;
        }
        c->fd = -1;
        c->interruptible = interruptible;
        rpc_framer_init(&c->framer, RPC_MAX_MESSAGE);

        r = socket_path(&c->path);
        if (r < 0)
                return r;
        n = strlen(c->path);
        if (n >= sizeof(sa.sun_path)) {
                ctl_message("socket path '%s' is too long", c->path);
                return -ENAMETOOLONG;
        }
        memcpy(sa.sun_path, c->path, n + 1);

        c->in = evbuffer_new();
        c->out = evbuffer_new();
        if (!c->in || !c->out) {
                ctl_message("out of memory");
                return -ENOMEM;
        }

        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
                r = -errno;
                ctl_message("cannot create a socket: %s", strerror(-r));
                return r;
        }
        (void) setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

        while (connect(c->fd, (const struct sockaddr *) &sa, sizeof(sa)) < 0) {
                r = -errno;
                if (r == -EINTR && !(interruptible && quit_signal))
                        continue;
                if (r == -EINTR)
                        return r;
                if (r == -EISCONN)
                        break; /* an interrupted attempt completed after all */
                if (r == -EAGAIN)
                        ctl_message("the daemon at '%s' is not accepting connections", c->path);
                else {
                        ctl_message("cannot connect to the daemon at '%s': %s", c->path, strerror(-r));
                        /* Nothing there, or a stale socket file nobody listens on */
                        if (r == -ENOENT || r == -ECONNREFUSED || r == -ENOTDIR)
                                print_start_hint();
                }
                return r;
        }

        flags = fcntl(c->fd, F_GETFL);
        if (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                r = -errno;
                ctl_message("cannot configure the socket: %s", strerror(-r));
                return r;
        }

        *ret = TAKE_PTR(c);
        return 0;
}

/* Waits until the socket is ready for events, until deadline (CLOCK_MONOTONIC µs). */
static int ctl_wait(Ctl *c, short events, uint64_t deadline) {
        struct pollfd pfd = { .fd = c->fd, .events = events };
        const sigset_t *mask = c->interruptible && wait_mask_set ? &wait_mask : NULL;

        for (;;) {
                struct timespec ts, *tsp = NULL;
                int n;

                if (c->interruptible && quit_signal)
                        return -EINTR;
                if (deadline != CTL_USEC_INFINITY) {
                        uint64_t now = now_usec(CLOCK_MONOTONIC), left;

                        if (now >= deadline)
                                return -ETIMEDOUT;
                        left = deadline - now;
                        ts.tv_sec = (time_t) (left / USEC_PER_SEC);
                        ts.tv_nsec = (long) ((left % USEC_PER_SEC) * NSEC_PER_USEC);
                        tsp = &ts;
                }
                n = ppoll(&pfd, 1, tsp, mask);
                if (n < 0) {
                        if (errno == EINTR)
                                continue; /* the loop head decides whether to give up */
                        return -errno;
                }
                if (n > 0)
                        return 0; /* ready, or POLLHUP/POLLERR: the next read or write tells */
        }
}

static int ctl_flush(Ctl *c, uint64_t deadline) {
        int r;

        while (evbuffer_get_length(c->out) > 0) {
                int n = evbuffer_write(c->out, c->fd); /* drains what was written: partial writes are fine */

                if (n > 0)
                        continue;
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                        return -errno;
                r = ctl_wait(c, POLLOUT, deadline);
                if (r < 0)
                        return r;
        }
        return 0;
}

void ctl_keep_notifications(Ctl *c, bool keep) {
        c->keep_notifications = keep;
}

/* The next message from the socket itself. */
static int ctl_read_wire(Ctl *c, uint64_t deadline, json_t **ret) {
        int r;

        for (;;) {
                _cleanup_free_ char *line = NULL;
                const char *err = NULL;
                json_t *j = NULL;
                size_t len;
                int n;

                r = rpc_framer_pop(&c->framer, c->in, &line, &len);
                if (r < 0)
                        return r; /* -EMSGSIZE: a line over RPC_MAX_MESSAGE */
                if (r > 0) {
                        if (rpc_parse(line, len, &j, &err) < 0)
                                return -EBADMSG;
                        if (!j)
                                continue; /* blank line */
                        *ret = j;
                        return 0;
                }
                if (c->eof)
                        return -ECONNRESET; /* also when the stream ends in the middle of a line */

                r = ctl_wait(c, POLLIN, deadline);
                if (r < 0)
                        return r;
                n = evbuffer_read(c->in, c->fd, -1);
                if (n == 0)
                        c->eof = true;
                else if (n < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                                continue;
                        if (errno != ECONNRESET)
                                return -errno;
                        c->eof = true;
                }
        }
}

int ctl_read_message(Ctl *c, uint64_t deadline, json_t **ret) {
        if (json_array_size(c->backlog) > 0) {
                *ret = json_incref(json_array_get(c->backlog, 0));
                (void) json_array_remove(c->backlog, 0);
                return 0;
        }
        return ctl_read_wire(c, deadline, ret);
}

static int ctl_keep(Ctl *c, json_t *m) {
        if (!c->backlog) {
                c->backlog = json_array();
                if (!c->backlog)
                        return -ENOMEM;
        }
        return json_array_append(c->backlog, m) < 0 ? -ENOMEM : 0;
}

int ctl_send(Ctl *c, const char *method, json_t *params, uint64_t deadline, json_int_t *ret_id) {
        json_int_t id = ++c->next_id;
        json_auto_t *req = NULL;
        int r;

        req = rpc_request_new(id, method, params);
        if (!req)
                return -ENOMEM;
        r = rpc_write(c->out, req);
        if (r < 0)
                return r;
        r = ctl_flush(c, deadline);
        /* When the daemon hung up on us, it may have said why first (too many clients): read on. */
        if (r < 0 && r != -EPIPE && r != -ECONNRESET)
                return r;
        if (ret_id)
                *ret_id = id;
        return 0;
}

int ctl_read_response(Ctl *c, uint64_t deadline, json_int_t *ret_id, json_t **ret_result,
                      json_t **ret_error) {
        int r;

        for (;;) {
                json_auto_t *m = NULL;
                json_t *mid, *v;

                r = ctl_read_wire(c, deadline, &m);
                if (r < 0)
                        return r;
                if (!json_is_object(m))
                        continue; /* batches: we never send any */
                if (json_object_get(m, "method")) {
                        /* Event notifications: skipped, or kept for ctl_read_message() */
                        if (c->keep_notifications) {
                                r = ctl_keep(c, m);
                                if (r < 0)
                                        return r;
                        }
                        continue;
                }
                mid = json_object_get(m, "id");
                v = json_object_get(m, "error");
                if (!json_is_integer(mid) && !(json_is_null(mid) && v))
                        continue; /* not ours; an error with a null id is about the connection */
                *ret_id = json_is_integer(mid) ? json_integer_value(mid) : 0;
                if (v) {
                        if (!json_is_object(v))
                                return -EBADMSG;
                        *ret_error = json_incref(v);
                        return 1;
                }
                v = json_object_get(m, "result");
                if (!v)
                        return -EBADMSG;
                *ret_result = json_incref(v);
                return 0;
        }
}

int ctl_call(Ctl *c, const char *method, json_t *params, uint64_t timeout_usec, json_t **ret_result,
             json_t **ret_error) {
        uint64_t deadline = timeout_usec == CTL_USEC_INFINITY ? CTL_USEC_INFINITY
                                                              : now_usec(CLOCK_MONOTONIC) + timeout_usec;
        json_int_t id;
        int r;

        r = ctl_send(c, method, params, deadline, &id);
        if (r < 0)
                return r;

        for (;;) {
                json_auto_t *result = NULL, *error = NULL;
                json_int_t got;

                r = ctl_read_response(c, deadline, &got, &result, &error);
                if (r < 0)
                        return r;
                if (got != id && !(got == 0 && error))
                        continue; /* a reply to an earlier request nobody waits for */
                if (r > 0)
                        *ret_error = TAKE_PTR(error);
                else
                        *ret_result = TAKE_PTR(result);
                return r;
        }
}

int ctl_report_daemon_error(json_t *error) {
        const char *msg = json_string_value(json_object_get(error, "message"));
        const char *kind = json_string_value(json_object_get(json_object_get(error, "data"), "kind"));
        json_t *code = json_object_get(error, "code");

        if (isempty(msg))
                msg = "the daemon reported an error";
        if (kind)
                ctl_message("%s (%s)", msg, kind);
        else if (json_is_integer(code))
                ctl_message("%s (%" JSON_INTEGER_FORMAT ")", msg, json_integer_value(code));
        else
                ctl_message("%s", msg);
        return CTL_EXIT_FAILURE;
}

int ctl_report_transport_error(Ctl *c, int r) {
        switch (r) {
        case -ECONNRESET:
        case -EPIPE:
                ctl_message("the daemon closed the connection");
                return CTL_EXIT_UNREACHABLE;
        case -ETIMEDOUT:
                ctl_message("timed out waiting for the daemon at '%s'", c->path);
                return CTL_EXIT_UNREACHABLE;
        case -EMSGSIZE:
                ctl_message("the daemon sent a message larger than %zu bytes", RPC_MAX_MESSAGE);
                return CTL_EXIT_FAILURE;
        case -EBADMSG:
                ctl_message("the daemon sent a malformed message");
                return CTL_EXIT_FAILURE;
        case -ENOMEM:
                ctl_message("out of memory");
                return CTL_EXIT_FAILURE;
        default:
                ctl_message("communication with the daemon at '%s' failed: %s", c->path, strerror(-r));
                return CTL_EXIT_UNREACHABLE;
        }
}

int ctl_call_checked(Ctl *c, const char *method, json_t *params, uint64_t timeout_usec, bool quit_ok,
                     json_t **ret_result) {
        json_auto_t *error = NULL;
        int r;

        r = ctl_call(c, method, params, timeout_usec, ret_result, &error);
        if (r == -EINTR && quit_ok)
                return CTL_EXIT_OK; /* SIGINT/SIGTERM: *ret_result stays NULL */
        if (r < 0)
                return ctl_report_transport_error(c, r);
        if (r > 0)
                return ctl_report_daemon_error(error);
        return CTL_EXIT_OK;
}

int ctl_call_interruptible(Ctl *c, const char *method, json_t *params, uint64_t timeout_usec,
                           json_t **ret_result) {
        int r;

        r = ctl_call_checked(c, method, params, timeout_usec, true, ret_result);
        if (r != CTL_EXIT_OK)
                return r;
        if (!*ret_result) {
                ctl_message("interrupted");
                return CTL_EXIT_FAILURE;
        }
        return CTL_EXIT_OK;
}

int ctl_simple_call(const char *method, json_t *params, json_t **ret_result) {
        _cleanup_(ctl_freep) Ctl *c = NULL;
        int r;

        r = ctl_connect(false, &c);
        if (r != CTL_EXIT_OK) {
                json_decref(params);
                return r;
        }
        return ctl_call_checked(c, method, params, CTL_CALL_TIMEOUT_USEC, false, ret_result);
}

/* Reads the next event notification with a string "topic", skipping other messages, until deadline.
 * Returns 0 with *ret_params (a new reference), or the -errno of ctl_read_message(). */
static int ctl_read_event(Ctl *c, uint64_t deadline, json_t **ret_params) {
        int r;

        for (;;) {
                json_auto_t *m = NULL;
                json_t *p;

                r = ctl_read_message(c, deadline, &m);
                if (r < 0)
                        return r;
                if (!streq(ctl_str(m, "method", ""), "event"))
                        continue;
                p = json_object_get(m, "params");
                if (!json_is_string(json_object_get(p, "topic")))
                        continue; /* malformed: nothing to go by */
                *ret_params = json_incref(p);
                return 0;
        }
}

int ctl_next_event(Ctl *c, json_t **ret_params) {
        int r;

        r = ctl_read_event(c, CTL_USEC_INFINITY, ret_params);
        if (r == -EINTR)
                return CTL_EXIT_OK; /* SIGINT/SIGTERM: *ret_params stays NULL */
        if (r < 0)
                return ctl_report_transport_error(c, r);
        return CTL_EXIT_OK;
}

int ctl_wait_event(Ctl *c, uint64_t deadline, bool *shutdown, json_t **ret_params, const char **ret_topic,
                   json_t **ret_data) {
        int r;

        for (;;) {
                json_auto_t *p = NULL;
                const char *topic;

                r = ctl_read_event(c, deadline, &p);
                if (r < 0)
                        return r;
                topic = ctl_str(p, "topic", "");
                if (streq(topic, CTL_TOPIC_SHUTDOWN)) {
                        *shutdown = true; /* the connection closes soon: ctl_wait_failed() says why */
                        continue;
                }
                *ret_topic = topic;
                *ret_data = json_object_get(p, "data");
                *ret_params = TAKE_PTR(p);
                return 0;
        }
}

int ctl_wait_failed(Ctl *c, int r, bool shutdown, const char *fmt, ...) {
        char what[64];
        va_list ap;

        if ((r != -ECONNRESET && r != -EPIPE) || !shutdown)
                return ctl_report_transport_error(c, r);
        va_start(ap, fmt);
        (void) vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        ctl_message("the daemon shut down before %s finished", what);
        return CTL_EXIT_FAILURE;
}

int ctl_connect(bool interruptible, Ctl **ret) {
        int r;

        if (interruptible) {
                r = ctl_setup_quit_signals();
                if (r < 0) {
                        ctl_message("cannot set up signal handling: %s", strerror(-r));
                        return CTL_EXIT_FAILURE;
                }
        }
        r = ctl_open(interruptible, ret);
        if (r == -EINTR) {
                ctl_message("interrupted");
                return CTL_EXIT_FAILURE;
        }
        if (r == -ENOMEM)
                return CTL_EXIT_FAILURE;
        if (r < 0)
                return CTL_EXIT_UNREACHABLE;
        return CTL_EXIT_OK;
}
