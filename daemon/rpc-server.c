/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "dj-list.h"
#include "dj-log.h"
#include "dj-util.h"
#include "events.h"
#include "ops.h"
#include "rpc-frame.h"
#include "rpc-server.h"

/* How long a client that is being closed may take to read what is queued for it (at most
 * client_output_limit plus the final lagged notice): a stalled UI or a suspended terminal still learns
 * that it was cut off. */
#define CLIENT_LINGER_SEC 30
/* Event lines this long or longer are queued by reference rather than copied (client_queue_line()). */
#define EVENT_LINE_SHARE_MIN 1024

typedef struct RpcClient RpcClient;

struct RpcServer {
        Daemon *daemon;
        struct event_base *base;
        struct evconnlistener *listener;
        RpcClient *clients;
        unsigned next_id;
        void (*drained)(void *userdata);
        void *drained_userdata;
        struct event *drain_timer;
};

/* Plain events and evbuffers rather than a bufferevent: replies are written right after the input that
 * asked for them is handled, in one writev, and writability is waited for only when the kernel's buffer
 * is full. (A bufferevent defers every write to another loop iteration: twice the wake-ups.) */
struct RpcClient {
        unsigned n_ref;
        RpcServer *server; /* NULL once disconnected */
        int fd;
        struct event *ev_read, *ev_write, *linger;
        struct evbuffer *in, *out;
        RpcFramer framer;
        unsigned id;
        pid_t pid;
        uid_t uid; /* SO_PEERCRED */
        EventSubscriber *sub;
        OpSession session;
        bool closing;   /* reads nothing more; goes away once its output is written */
        bool throttled; /* reading paused until its output shrinks */
        bool in_input;  /* handling input: replies are written once it is all handled */
        RpcClient *prev, *next;
};

/* The requests of one line: a single request or a batch. The reply is written once all are done. */
typedef struct RpcLine {
        RpcClient *client; /* ref */
        json_t *responses; /* array for a batch */
        json_t *single;
        char *single_line; /* or the single response as its line, when it came serialized */
        size_t single_len;
        bool batch;
        unsigned pending;
        OpCall **after; /* refs: calls with work to do once the reply is written */
        size_t n_after;
} RpcLine;

typedef struct RpcRequest {
        RpcLine *line;
        json_t *id; /* NULL for a notification */
} RpcRequest;

static void client_process_input(RpcClient *c);
static void client_disconnect(RpcClient *c);
static void client_flush(RpcClient *c);

static RpcClient *client_ref(RpcClient *c) {
        c->n_ref++;
        return c;
}

static void client_unref(RpcClient *c) {
        if (!c || --c->n_ref > 0)
                return;
        free(c);
}

static uint64_t client_output_limit(RpcClient *c) {
        return c->server ? c->server->daemon->config->client_output_limit : 0;
}

static void client_linger_cb(evutil_socket_t fd, short what, void *userdata) {
        RpcClient *c = userdata;

        log_debug("client %u: closing", c->id);
        client_disconnect(c);
}

/* Stops reading and lets what is queued be written; the client goes once its output is empty or after
 * CLIENT_LINGER_SEC. */
static void client_start_close(RpcClient *c) {
        if (!c->server || c->closing)
                return;
        c->closing = true;
        (void) event_del(c->ev_read);
        if (evbuffer_get_length(c->out) == 0)
                event_active(c->linger, EV_TIMEOUT, 0);
        else {
                (void) event_add(c->ev_write, NULL);
                (void) evtimer_add(c->linger, &(struct timeval){ .tv_sec = CLIENT_LINGER_SEC });
        }
}

/* Queues a line (taken over) made by rpc_dumps_line() or rpc_result_line(). */
static void client_write_line(RpcClient *c, char *line, size_t len) {
        struct evbuffer *out;

        if (!c->server) {
                free(line);
                return;
        }
        out = c->out;
        if (rpc_write_line(out, line, len) < 0) {
                log_warning("client %u: cannot queue a reply, disconnecting", c->id);
                client_start_close(c);
                return;
        }
        /* Backpressure: a client that sends requests faster than it reads replies is paused. */
        if (!c->closing && !c->throttled && evbuffer_get_length(out) > client_output_limit(c)) {
                c->throttled = true;
                (void) event_del(c->ev_read);
        }
        /* Written once the input that caused it is handled, or at once for a reply that comes later
         * (an asynchronous operation). */
        if (!c->in_input)
                client_flush(c);
}

static void client_write(RpcClient *c, json_t *msg) {
        size_t n = 0;
        char *line;

        if (!c->server || !msg)
                return;
        line = rpc_dumps_line(msg, &n);
        client_write_line(c, line, n);
}

static void event_line_release_cb(const void *data, size_t len, void *userdata) {
        event_line_unref(userdata);
}

/* Queues an event line. A long one is shared, not copied: the buffer holds a reference until the line is
 * written out (drained) or the buffer is freed, whichever comes first. A short one is copied: a reference
 * costs a buffer chain allocated and freed per line and subscriber, and an iovec of its own in writev()
 * (at most 128 per call); with libevent 2.1 copying wins below about 1 KiB. */
static int client_queue_line(RpcClient *c, EventLine *l) {
        if (l->len < EVENT_LINE_SHARE_MIN)
                return evbuffer_add(c->out, l->bytes, l->len) < 0 ? -ENOMEM : 0;
        event_line_ref(l);
        if (evbuffer_add_reference(c->out, l->bytes, l->len, event_line_release_cb, l) < 0) {
                event_line_unref(l); /* libevent calls no cleanup for what it refused */
                return -ENOMEM;
        }
        return 0;
}

static void event_sink_cb(EventSubscriber *s, const Event *e, void *userdata) {
        RpcClient *c = userdata;
        uint64_t limit;

        if (!c->server || c->closing)
                return;
        limit = client_output_limit(c);
        /* Referenced lines count in the buffer's length like copied ones: the limit is per client. */
        if (evbuffer_get_length(c->out) + e->line->len > limit) {
                /* sway's rule: a subscriber that cannot keep up is told so once and let go. */
                json_auto_t *data = json_pack("{s:I, s:I}", "resume_since", (json_int_t) (e->seq - 1),
                                              "limit", (json_int_t) limit);
                _cleanup_(event_line_unrefp) EventLine *line = NULL;

                line = events_format_line("lagged", e->seq, now_usec(CLOCK_REALTIME), data);
                if (line)
                        (void) client_queue_line(c, line);
                log_warning("client %u: subscriber fell %zu bytes behind, disconnecting it", c->id,
                            evbuffer_get_length(c->out));
                client_start_close(c);
                return;
        }
        if (client_queue_line(c, e->line) < 0) {
                client_start_close(c);
                return;
        }
        /* Events go out on the next loop iteration: all that piled up, in one write. */
        (void) event_add(c->ev_write, NULL);
}

static EventSubscriber *session_subscriber(void *userdata) {
        RpcClient *c = userdata;

        if (!c->server)
                return NULL;
        if (!c->sub) {
                if (events_subscriber_new(c->server->daemon->events, event_sink_cb, c, &c->sub) < 0)
                        return NULL;
                c->server->daemon->n_subscribers++;
        }
        return c->sub;
}

static void client_disconnect(RpcClient *c) {
        RpcServer *s = c->server;

        if (!s)
                return;
        log_debug("client %u: disconnected", c->id);
        if (c->sub) {
                c->sub = events_subscriber_free(c->sub);
                s->daemon->n_subscribers--;
        }
        event_free(c->ev_read);
        event_free(c->ev_write);
        event_free(c->linger);
        c->ev_read = c->ev_write = c->linger = NULL;
        evbuffer_free(c->in);
        evbuffer_free(c->out);
        c->in = c->out = NULL;
        c->fd = safe_close(c->fd);
        LIST_REMOVE(s->clients, c);
        s->daemon->n_clients--;
        c->server = NULL;
        client_unref(c);

        if (s->drained && !s->clients) {
                void (*done)(void *) = TAKE_PTR(s->drained);
                done(s->drained_userdata);
        }
}

/* ---- requests ---- */

static void line_free(RpcLine *l) {
        for (size_t i = 0; i < l->n_after; i++)
                op_call_unref(l->after[i]);
        free(l->after);
        client_unref(l->client);
        json_decref(l->responses);
        json_decref(l->single);
        free(l->single_line);
        free(l);
}

static void line_add_response(RpcLine *l, json_t *response /* stolen */) {
        if (!response)
                return;
        if (l->batch)
                (void) json_array_append_new(l->responses, response);
        else {
                json_decref(l->single);
                l->single = response;
                l->single_line = mfree(l->single_line);
        }
}

static void line_finish_one(RpcLine *l) {
        if (--l->pending > 0)
                return;
        if (l->batch) {
                if (json_array_size(l->responses) > 0)
                        client_write(l->client, l->responses);
        } else if (l->single_line) {
                client_write_line(l->client, TAKE_PTR(l->single_line), l->single_len);
        } else if (l->single)
                client_write(l->client, l->single);
        /* Only now: a subscriber's replay follows the reply that acknowledges its subscription. */
        for (size_t i = 0; i < l->n_after; i++)
                if (l->client->server)
                        op_call_after_reply(l->after[i]);
        line_free(l);
}

static void request_reply_cb(OpCall *call, json_t *result, const DjError *err, void *userdata) {
        RpcRequest *req = userdata;
        RpcLine *l = req->line;

        if (call->after_replay) {
                OpCall **a = realloc(l->after, (l->n_after + 1) * sizeof(OpCall *));

                if (a) {
                        l->after = a;
                        l->after[l->n_after++] = op_call_ref(call);
                }
        }

        if (req->id) {
                if (err)
                        line_add_response(l, rpc_error_new(req->id, dj_err_kind_to_rpc(err->kind),
                                                           err->message ?: "error", op_error_data(err)));
                else if (call->result_text && !l->batch) {
                        size_t n = 0;
                        char *line = rpc_result_line(req->id, call->result_text, call->result_text_len, &n);

                        if (line) {
                                json_decref(l->single);
                                l->single = NULL;
                                free(l->single_line);
                                l->single_line = line;
                                l->single_len = n;
                        } else
                                line_add_response(l, rpc_result_new(req->id, json_incref(result)));
                } else
                        line_add_response(l, rpc_result_new(req->id, json_incref(result)));
        }
        json_decref(req->id);
        free(req);
        line_finish_one(l);
}

static void line_handle_request(RpcLine *l, json_t *msg) {
        RpcClient *c = l->client;
        const char *method = NULL, *why = NULL;
        json_t *id = NULL, *params = NULL;
        _cleanup_(op_call_unrefp) OpCall *call = NULL;
        const OpDef *def;
        RpcRequest *req;
        int r;

        l->pending++;
        r = rpc_request_check(msg, &method, &id, &params, &why);
        if (r < 0) {
                /* An invalid request gets a reply even without an id: we cannot tell it was a notification. */
                json_t *rid = json_is_object(msg) ? json_object_get(msg, "id") : NULL;
                if (rid && !json_is_string(rid) && !json_is_integer(rid))
                        rid = NULL;
                line_add_response(l, rpc_error_new(rid, r, why, NULL));
                line_finish_one(l);
                return;
        }
        def = ops_lookup(method);
        if (!def) {
                if (id) {
                        char m[256];

                        (void) snprintf(m, sizeof(m), "Method not found: '%.200s'", method);
                        line_add_response(l, rpc_error_new(id, RPC_METHOD_NOT_FOUND, m,
                                                           json_pack("{s:s, s:s}", "kind", "invalid",
                                                                     "value", method)));
                }
                line_finish_one(l);
                return;
        }
        req = calloc(1, sizeof(*req));
        if (!req) {
                line_add_response(l, rpc_error_new(id, RPC_INTERNAL_ERROR, "out of memory", NULL));
                line_finish_one(l);
                return;
        }
        req->line = l;
        req->id = id ? json_incref(id) : NULL;
        r = op_call_new(c->server->daemon, def, "cli", &c->session, request_reply_cb, req, &call);
        if (r < 0) {
                json_decref(req->id);
                free(req);
                line_add_response(l, rpc_error_new(id, RPC_INTERNAL_ERROR, "out of memory", NULL));
                line_finish_one(l);
                return;
        }
        call->uid = c->uid;
        op_call_dispatch(call, params);
}

static void client_handle_line(RpcClient *c, const char *text, size_t len) {
        json_auto_t *msg = NULL;
        const char *why = NULL;
        RpcLine *l;
        int r;

        r = rpc_parse(text, len, &msg, &why);
        if (r < 0) {
                json_auto_t *e = rpc_error_new(NULL, r, why, NULL);
                client_write(c, e);
                return;
        }
        if (!msg)
                return; /* a blank line */

        l = calloc(1, sizeof(*l));
        if (!l) {
                json_auto_t *e = rpc_error_new(NULL, RPC_INTERNAL_ERROR, "out of memory", NULL);
                client_write(c, e);
                return;
        }
        l->client = client_ref(c);
        l->pending = 1; /* held until every request of the line is dispatched */
        if (json_is_array(msg)) {
                size_t i;
                json_t *m;

                l->batch = true;
                l->responses = json_array();
                json_array_foreach (msg, i, m) {
                        line_handle_request(l, m);
                        if (!c->server)
                                break;
                }
        } else
                line_handle_request(l, msg);
        line_finish_one(l);
}

static void client_process_input(RpcClient *c) {
        struct evbuffer *in;

        client_ref(c);
        c->in_input = true;
        while (c->server && !c->closing && !c->throttled) {
                _cleanup_free_ char *line = NULL;
                size_t len = 0;
                int r;

                in = c->in;
                r = rpc_framer_pop(&c->framer, in, &line, &len);
                if (r == 0)
                        break;
                if (r == -EMSGSIZE) {
                        char m[128];
                        json_auto_t *e = NULL;

                        (void) snprintf(m, sizeof(m),
                                        "Invalid Request: message too large (at most %zu bytes)",
                                        RPC_MAX_MESSAGE);
                        e = rpc_error_new(NULL, RPC_INVALID_REQUEST, m, NULL);
                        log_warning("client %u: message over %zu bytes, disconnecting", c->id,
                                    RPC_MAX_MESSAGE);
                        client_write(c, e);
                        client_start_close(c);
                        break;
                }
                if (r < 0) {
                        log_warning_errno(r, "client %u: cannot read a message, disconnecting: %m", c->id);
                        client_start_close(c);
                        break;
                }
                client_handle_line(c, line, len);
        }
        c->in_input = false;
        if (c->server)
                client_flush(c);
        client_unref(c);
}

/* Writes what is queued. Waits for writability only when the kernel's buffer is full. */
static void client_flush(RpcClient *c) {
        while (c->server && evbuffer_get_length(c->out) > 0) {
                int n = evbuffer_write(c->out, c->fd);

                if (n < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                                (void) event_add(c->ev_write, NULL);
                                return;
                        }
                        log_debug_errno(errno, "client %u: write failed: %m", c->id);
                        client_disconnect(c);
                        return;
                }
        }
        if (!c->server)
                return;
        (void) event_del(c->ev_write);
        if (c->closing) {
                client_disconnect(c);
                return;
        }
        if (c->throttled && !c->in_input) {
                /* Caught up: go on with the input already buffered, from the loop (no recursion). */
                c->throttled = false;
                (void) event_add(c->ev_read, NULL);
                event_active(c->ev_read, EV_READ, 0);
        }
}

static void client_read_cb(evutil_socket_t fd, short what, void *userdata) {
        RpcClient *c = userdata;
        struct evbuffer_iovec v;
        size_t have = evbuffer_get_length(c->in), room;
        ssize_t n;

        /* Never buffer more than one maximal message (and its "\r\n") of input. */
        room = RPC_MAX_MESSAGE + 2 > have ? RPC_MAX_MESSAGE + 2 - have : 0;
        if (room == 0) {
                client_process_input(c);
                return;
        }
        if (evbuffer_reserve_space(c->in, (ev_ssize_t) MIN(room, (size_t) 65536), &v, 1) < 1) {
                log_oom();
                client_disconnect(c);
                return;
        }
        n = read(c->fd, v.iov_base, MIN(v.iov_len, room));
        if (n < 0) {
                (void) evbuffer_commit_space(c->in, &v, 0);
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                        client_process_input(c); /* woken to go on with buffered input */
                        return;
                }
                log_debug_errno(errno, "client %u: read failed: %m", c->id);
                client_disconnect(c);
                return;
        }
        v.iov_len = (size_t) n;
        (void) evbuffer_commit_space(c->in, &v, 1);
        client_ref(c);
        client_process_input(c);
        /* EOF: what came with it was answered above; go once that is written (if the peer still reads). */
        if (n == 0 && c->server)
                client_start_close(c);
        client_unref(c);
}

static void client_write_cb(evutil_socket_t fd, short what, void *userdata) {
        client_flush(userdata);
}

/* ---- accepting ---- */

static void refuse(int fd, const char *message) {
        json_auto_t *e = rpc_error_new(NULL, dj_err_kind_to_rpc(DJ_E_BUSY), message,
                                       json_pack("{s:s}", "kind", dj_err_kind_to_string(DJ_E_BUSY)));
        _cleanup_free_ char *s = e ? json_dumps(e, JSON_COMPACT) : NULL;

        if (s) {
                size_t n = strlen(s);
                s[n] = '\n';
                (void) send(fd, s, n + 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
}

static void accept_cb(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *addr, int len,
                      void *userdata) {
        RpcServer *s = userdata;
        _cleanup_close_ int cfd = fd;
        struct ucred cred = {};
        socklen_t sl = sizeof(cred);
        RpcClient *c;

        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &sl) < 0) {
                log_warning_errno(errno, "Cannot read a client's credentials, refusing it: %m");
                return;
        }
        if (cred.uid != geteuid()) {
                log_warning("Refusing a connection from uid %u (pid %d): only uid %u may use this daemon.",
                            (unsigned) cred.uid, (int) cred.pid, (unsigned) geteuid());
                return;
        }
        if (s->drained) {
                refuse(cfd, "the daemon is shutting down");
                return;
        }
        if (s->daemon->n_clients >= s->daemon->config->max_clients) {
                log_warning("Refusing a client (pid %d): %zu clients already connected (max_clients).",
                            (int) cred.pid, s->daemon->n_clients);
                refuse(cfd, "too many clients");
                return;
        }

        c = calloc(1, sizeof(*c));
        if (!c) {
                log_oom();
                return;
        }
        c->n_ref = 1;
        c->server = s;
        c->id = ++s->next_id;
        c->pid = cred.pid;
        c->uid = cred.uid;
        c->session = (OpSession){ .subscriber = session_subscriber, .session = c };
        rpc_framer_init(&c->framer, RPC_MAX_MESSAGE);
        c->fd = TAKE_FD(cfd);
        c->in = evbuffer_new();
        c->out = evbuffer_new();
        c->ev_read = event_new(s->base, c->fd, EV_READ | EV_PERSIST, client_read_cb, c);
        c->ev_write = event_new(s->base, c->fd, EV_WRITE | EV_PERSIST, client_write_cb, c);
        c->linger = evtimer_new(s->base, client_linger_cb, c);
        if (!c->in || !c->out || !c->ev_read || !c->ev_write || !c->linger ||
            event_add(c->ev_read, NULL) < 0) {
                if (c->ev_read)
                        event_free(c->ev_read);
                if (c->ev_write)
                        event_free(c->ev_write);
                if (c->linger)
                        event_free(c->linger);
                if (c->in)
                        evbuffer_free(c->in);
                if (c->out)
                        evbuffer_free(c->out);
                (void) close(c->fd);
                free(c);
                log_oom();
                return;
        }

        LIST_PREPEND(s->clients, c);
        s->daemon->n_clients++;
        log_debug("client %u: connected (pid %d)", c->id, (int) cred.pid);
}

static void accept_error_cb(struct evconnlistener *listener, void *userdata) {
        int e = EVUTIL_SOCKET_ERROR();

        /* EMFILE and friends: keep running, the next accept may succeed once a client has gone. */
        log_warning_errno(e, "Cannot accept a connection: %m");
}

int rpc_server_new(Daemon *d, struct event_base *base, int fd, RpcServer **ret) {
        _cleanup_close_ int lfd = fd;
        RpcServer *s;

        assert_return(d && base && fd >= 0 && ret);
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->daemon = d;
        s->base = base;
        if (evutil_make_socket_nonblocking(lfd) < 0 || evutil_make_socket_closeonexec(lfd) < 0) {
                free(s);
                return -errno;
        }
        s->listener = evconnlistener_new(base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                         0, lfd);
        if (!s->listener) {
                free(s);
                return -ENOMEM;
        }
        lfd = -1;
        evconnlistener_set_error_cb(s->listener, accept_error_cb);
        *ret = s;
        return 0;
}

RpcServer *rpc_server_free(RpcServer *s) {
        if (!s)
                return NULL;
        s->drained = NULL;
        while (s->clients)
                client_disconnect(s->clients);
        if (s->listener)
                evconnlistener_free(s->listener);
        if (s->drain_timer)
                event_free(s->drain_timer);
        free(s);
        return NULL;
}

static void drain_timeout_cb(evutil_socket_t fd, short what, void *userdata) {
        RpcServer *s = userdata;

        log_debug("Shutdown: dropping clients that did not read their last replies");
        while (s->clients)
                client_disconnect(s->clients); /* the last one calls drained */
}

void rpc_server_drain(RpcServer *s, void (*done)(void *userdata), void *userdata) {
        if (s->listener) {
                evconnlistener_free(s->listener);
                s->listener = NULL;
        }
        if (!s->clients) {
                done(userdata);
                return;
        }
        s->drained = done;
        s->drained_userdata = userdata;
        for (RpcClient *c = s->clients; c; c = c->next)
                client_start_close(c);
        s->drain_timer = evtimer_new(s->base, drain_timeout_cb, s);
        if (s->drain_timer)
                (void) evtimer_add(s->drain_timer, &(struct timeval){ .tv_sec = 2 });
}

/* ---- the socket file ---- */

int rpc_socket_bind(const char *path, int *ret_fd, DjError *reterr) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int fd = -1;
        char *slash;
        mode_t old;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return dj_error_set(reterr, DJ_E_INVALID, "socket path '%s' is too long", path);
        memcpy(sa.sun_path, path, strlen(path));

        dir = strdup(path);
        if (!dir)
                return dj_error_set(reterr, DJ_E_INTERNAL, "out of memory");
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
                *slash = '\0';
                r = mkdir_parents(dir, 0700);
                if (r < 0)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "cannot create '%s': %s", dir,
                                            strerror(-r));
        }

        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot create a socket: %s", strerror(errno));

        /* Somebody answering on the path is a live daemon; a refusal means a stale file. */
        if (access(path, F_OK) == 0) {
                _cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof(sa)) == 0) {
                        (void) dj_error_set(reterr, DJ_E_BUSY,
                                            "another djdeskd is already running on '%s'; stop it first "
                                            "(systemctl --user stop djdesk.service)",
                                            path);
                        return -EADDRINUSE;
                }
                log_info("Replacing stale socket '%s'.", path);
                if (unlink(path) < 0 && errno != ENOENT)
                        return dj_error_set(reterr, DJ_E_INTERNAL, "cannot remove stale socket '%s': %s",
                                            path, strerror(errno));
        }

        old = umask(0177);
        r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
        (void) umask(old);
        if (r < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot bind '%s': %s", path, strerror(errno));
        if (listen(fd, SOMAXCONN) < 0)
                return dj_error_set(reterr, DJ_E_INTERNAL, "cannot listen on '%s': %s", path,
                                    strerror(errno));
        *ret_fd = TAKE_FD(fd);
        return 0;
}
