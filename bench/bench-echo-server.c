/* SPDX-License-Identifier: MIT */
/*
 * bench-echo-server: the floor for bench/ipc.
 *
 * A single-threaded epoll server on a Unix stream socket that reads lines and writes each complete line
 * back, unchanged. It does what any line-oriented IPC server must do (accept, read, find the newline,
 * write) and nothing else, so the difference between djdeskd and this program is the cost of the
 * daemon's own work: libevent, framing, JSON parsing, dispatch and serialisation.
 *
 * Usage: bench-echo-server SOCKET_PATH [RESULT_FILE]
 * With RESULT_FILE (bench/status's floor) it answers every line instead with one canned JSON-RPC reply,
 * {"jsonrpc":"2.0","id":N,"result":<the file's bytes>}, N copied from the request's "id": what a server
 * that keeps the reply's text ready costs (find the id, copy the bytes, write), and nothing else.
 * Sends READY=1 to $NOTIFY_SOCKET (if set) once listening. SIGTERM/SIGINT: unlink the socket, exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dj-macro.h"

#define LINE_MAX_BYTES (1024 * 1024)

static char *canned = NULL; /* RESULT_FILE's bytes, or NULL: echo */
static size_t n_canned = 0;

typedef struct Conn {
        int fd;
        char *in; /* bytes read, not yet a complete line */
        size_t n_in;
        char *out; /* bytes to write back (complete lines) */
        size_t n_out, out_pos;
        bool want_out; /* EPOLLOUT is armed */
} Conn;

static Conn *conn_free(Conn *c) {
        if (!c)
                return NULL;
        (void) safe_close(c->fd);
        free(c->in);
        free(c->out);
        free(c);
        return NULL;
}

static int notify_ready(void) {
        const char *e = getenv("NOTIFY_SOCKET");
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        socklen_t len;

        if (isempty(e))
                return 0;
        if (strlen(e) >= sizeof(sa.sun_path))
                return -EINVAL;
        strcpy(sa.sun_path, e);
        if (sa.sun_path[0] == '@')
                sa.sun_path[0] = '\0';
        len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + strlen(e));
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (sendto(fd, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr *) &sa, len) < 0)
                return -errno;
        return 0;
}

/* Try to flush pending output; returns 1 if all written, 0 if it would block, <0 on error. */
static int conn_flush(Conn *c) {
        while (c->out_pos < c->n_out) {
                ssize_t k = send(c->fd, c->out + c->out_pos, c->n_out - c->out_pos, MSG_NOSIGNAL);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                c->out_pos += (size_t) k;
        }
        c->n_out = c->out_pos = 0;
        return 1;
}

/* Read what is available; move complete lines to the output buffer. Returns <0 to close. */
static int conn_read(Conn *c) {
        char *nl;
        ssize_t k;
        size_t n_lines;

        k = read(c->fd, c->in + c->n_in, LINE_MAX_BYTES - c->n_in);
        if (k < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (k == 0)
                return -ECONNRESET;
        c->n_in += (size_t) k;

        nl = memrchr(c->in, '\n', c->n_in);
        if (!nl) {
                if (c->n_in >= LINE_MAX_BYTES)
                        return -EMSGSIZE;
                return 0;
        }
        n_lines = (size_t) (nl - c->in) + 1;
        if (canned) {
                for (char *p = c->in, *eol; p < c->in + n_lines; p = eol + 1) {
                        const char *id;
                        int h;

                        eol = memchr(p, '\n', (size_t) (c->in + n_lines - p));
                        *eol = '\0';
                        id = strstr(p, "\"id\":");
                        if (c->n_out + n_canned + 64 > LINE_MAX_BYTES)
                                return -ENOBUFS;
                        h = snprintf(c->out + c->n_out, 64, "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"result\":",
                                     id ? strtoull(id + 5, NULL, 10) : 0ULL);
                        memcpy(c->out + c->n_out + h, canned, n_canned);
                        memcpy(c->out + c->n_out + h + n_canned, "}\n", 2);
                        c->n_out += (size_t) h + n_canned + 2;
                }
        } else {
                if (c->n_out + n_lines > LINE_MAX_BYTES)
                        return -ENOBUFS;
                memcpy(c->out + c->n_out, c->in, n_lines);
                c->n_out += n_lines;
        }
        memmove(c->in, c->in + n_lines, c->n_in - n_lines);
        c->n_in -= n_lines;
        return 0;
}

/* Arm EPOLLOUT only while output is pending, so the common path costs no epoll_ctl(). */
static int conn_want_out(int ep, Conn *c, bool want) {
        struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c };

        if (c->want_out == want)
                return 0;
        c->want_out = want;
        return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0 ? -errno : 0;
}

int main(int argc, char *argv[]) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int lfd = -1, ep = -1, sfd = -1;
        struct epoll_event ev, events[64];
        sigset_t mask;
        bool quit = false;
        int r;

        if (argc < 2 || argc > 3 || strlen(argv[1]) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "usage: %s SOCKET_PATH [RESULT_FILE]\n", argv[0]);
                return 2;
        }
        strcpy(sa.sun_path, argv[1]);
        if (argc == 3) {
                FILE *f = fopen(argv[2], "re");
                long size = -1;

                if (f && fseek(f, 0, SEEK_END) == 0)
                        size = ftell(f);
                if (size > 0 && size <= LINE_MAX_BYTES / 2 && fseek(f, 0, SEEK_SET) == 0)
                        canned = malloc((size_t) size);
                if (canned && fread(canned, 1, (size_t) size, f) == (size_t) size)
                        n_canned = (size_t) size;
                if (f)
                        (void) fclose(f);
                if (n_canned == 0) {
                        fprintf(stderr, "bench-echo-server: cannot read '%s'\n", argv[2]);
                        return 1;
                }
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        (void) sigprocmask(SIG_BLOCK, &mask, NULL);
        (void) signal(SIGPIPE, SIG_IGN);

        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ep = epoll_create1(EPOLL_CLOEXEC);
        if (sfd < 0 || lfd < 0 || ep < 0) {
                perror("bench-echo-server: setup");
                return 1;
        }
        (void) unlink(sa.sun_path);
        if (bind(lfd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(lfd, SOMAXCONN) < 0) {
                fprintf(stderr, "bench-echo-server: bind/listen '%s': %m\n", sa.sun_path);
                return 1;
        }
        ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = NULL };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
                perror("bench-echo-server: epoll_ctl");
                return 1;
        }
        ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &sfd };
        if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) < 0) {
                perror("bench-echo-server: epoll_ctl");
                return 1;
        }
        r = notify_ready();
        if (r < 0)
                fprintf(stderr, "bench-echo-server: sd_notify failed, ignoring: %s\n", strerror(-r));

        while (!quit) {
                int n = epoll_wait(ep, events, (int) ELEMENTSOF(events), -1);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("bench-echo-server: epoll_wait");
                        return 1;
                }
                for (int i = 0; i < n; i++) {
                        Conn *c = events[i].data.ptr;

                        if (events[i].data.ptr == &sfd) {
                                quit = true;
                                continue;
                        }
                        if (!c) {
                                int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

                                if (cfd < 0)
                                        continue;
                                c = calloc(1, sizeof(*c));
                                if (c) {
                                        c->fd = cfd;
                                        c->in = malloc(LINE_MAX_BYTES);
                                        c->out = malloc(LINE_MAX_BYTES);
                                }
                                if (!c || !c->in || !c->out) {
                                        if (c)
                                                (void) conn_free(c);
                                        else
                                                (void) close(cfd);
                                        continue;
                                }
                                ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = c };
                                if (epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev) < 0)
                                        (void) conn_free(c);
                                continue;
                        }

                        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                                r = conn_read(c);
                                if (r < 0) {
                                        (void) conn_free(c); /* close() removes it from the epoll set */
                                        continue;
                                }
                        }
                        r = conn_flush(c);
                        if (r < 0)
                                (void) conn_free(c);
                        else
                                (void) conn_want_out(ep, c, r == 0);
                }
        }

        (void) unlink(sa.sun_path);
        free(canned);
        return 0;
}
