/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "dj-log.h"
#include "dj-util.h"
#include "loop.h"
#include "store.h"
#include "strv.h"

#define CHILD_LINE_MAX     ((size_t) 16 * 1024)
#define CHILD_NOTIFY_MAX   4096
#define CHILD_PID_DIGITS   20
#define CHILD_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

struct Child {
        Loop *loop;
        pid_t pid;
        int pidfd;
        int notify_fd;
        bool running;
        uint64_t started_at;
        LoopSource *exit_source, *notify_source;
        LoopSource *streams[_CHILD_STREAM_MAX];
        LoopSource *kill_timer; /* child_stop(): SIGKILL when SIGTERM was not enough */
        ChildOps ops;
        void *userdata;
        Store *store;
        char *owner;
        bool recorded; /* the group is in the store */
        /* While we call out: the dispatcher's flag, set by child_free() so it stops touching us. */
        bool *freed;
};

static const char *const child_stream_table[_CHILD_STREAM_MAX] = {
        [CHILD_STDOUT] = "stdout",
        [CHILD_STDERR] = "stderr",
};

const char *child_stream_to_string(ChildStream s) {
        return s >= 0 && s < _CHILD_STREAM_MAX ? child_stream_table[s] : NULL;
}

const char *child_exit_to_string(const ChildExit *e, char *buf, size_t size) {
        const char *sig;

        if (!e || !buf || size == 0)
                return NULL;
        switch (e->code) {
        case CLD_EXITED:
                (void) snprintf(buf, size, "exited with status %d", e->status);
                break;
        case CLD_KILLED:
        case CLD_DUMPED:
                sig = sigabbrev_np(e->status);
                if (sig)
                        (void) snprintf(buf, size, "%s SIG%s",
                                        e->code == CLD_KILLED ? "killed by" : "dumped core on", sig);
                else
                        (void) snprintf(buf, size, "%s signal %d",
                                        e->code == CLD_KILLED ? "killed by" : "dumped core on", e->status);
                break;
        default:
                (void) snprintf(buf, size, "ended (code %d, status %d)", e->code, e->status);
                break;
        }
        return buf;
}

/* /proc/PID/stat: the state, the process group and the start time (field 22). */
static int proc_stat_read(pid_t pid, char *ret_state, pid_t *ret_pgrp, uint64_t *ret_start) {
        char path[64], buf[1024], *p;
        unsigned long long start = 0;
        int pgrp = 0, fd, field;
        ssize_t n;
        char state = 0;

        (void) snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        (void) close(fd);
        if (n <= 0)
                return n < 0 ? -errno : -EIO;
        buf[n] = '\0';
        p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
        if (!p)
                return -EIO;
        p++;
        /* Fields after comm: 3 state, 4 ppid, 5 pgrp, ..., 22 starttime. */
        for (field = 3; field <= 22; field++) {
                while (*p == ' ')
                        p++;
                if (!*p)
                        return -EIO;
                if (field == 3)
                        state = *p;
                else if (field == 5)
                        pgrp = atoi(p);
                else if (field == 22)
                        start = strtoull(p, NULL, 10);
                while (*p && *p != ' ')
                        p++;
        }
        if (ret_state)
                *ret_state = state;
        if (ret_pgrp)
                *ret_pgrp = pgrp;
        if (ret_start)
                *ret_start = start;
        return 0;
}

uint64_t child_proc_start_time(pid_t pid) {
        uint64_t t;

        if (pid <= 0 || proc_stat_read(pid, NULL, NULL, &t) < 0)
                return 0;
        return t;
}

pid_t child_pid(const Child *c) {
        return c ? c->pid : 0;
}

bool child_running(const Child *c) {
        return c && c->running;
}

uint64_t child_started_at(const Child *c) {
        return c ? c->started_at : 0;
}

int child_kill(Child *c, int sig) {
        assert_return(c);
        if (!c->running)
                return -ESRCH;
        return killpg(c->pid, sig) < 0 ? -errno : 0;
}

static void child_kill_timer_cb(LoopSource *s, void *userdata) {
        Child *c = userdata;

        log_debug("Child process %d did not stop in time, sending SIGKILL to its group", (int) c->pid);
        (void) child_kill(c, SIGKILL);
}

int child_stop(Child *c, uint64_t grace_usec) {
        int r;

        assert_return(c);
        if (!c->running)
                return -ESRCH;
        if (grace_usec == 0)
                return child_kill(c, SIGKILL);
        r = child_kill(c, SIGTERM);
        if (r < 0)
                return r;
        if (!c->kill_timer && loop_add_timer(c->loop, child_kill_timer_cb, c, &c->kill_timer) < 0)
                return child_kill(c, SIGKILL);
        if (!loop_timer_armed(c->kill_timer))
                (void) loop_timer_arm(c->kill_timer, grace_usec);
        return 0;
}

static void child_forget_group(Child *c) {
        int r;

        if (!c->recorded)
                return;
        c->recorded = false;
        r = store_child_group_remove(c->store, c->pid);
        if (r < 0)
                log_debug_errno(r, "Failed to remove the record of process group %d: %m", (int) c->pid);
}

static void child_release(Child *c) {
        c->exit_source = loop_source_free(c->exit_source);
        c->notify_source = loop_source_free(c->notify_source);
        c->kill_timer = loop_source_free(c->kill_timer);
        for (ChildStream s = 0; s < _CHILD_STREAM_MAX; s++)
                c->streams[s] = loop_source_free(c->streams[s]);
        c->pidfd = safe_close(c->pidfd);
        c->notify_fd = safe_close(c->notify_fd);
}

static int child_wait(Child *c, bool block, siginfo_t *ret) {
        siginfo_t si = {};

        for (;;) {
                if (waitid(P_PIDFD, (id_t) c->pidfd, &si, WEXITED | (block ? 0 : WNOHANG)) >= 0)
                        break;
                if (errno != EINTR)
                        return -errno;
        }
        if (si.si_pid == 0)
                return -EAGAIN;
        *ret = si;
        return 0;
}

Child *child_free(Child *c) {
        siginfo_t si = {};

        if (!c)
                return NULL;
        if (c->freed)
                *c->freed = true;
        if (c->running) {
                (void) killpg(c->pid, SIGKILL);
                (void) child_wait(c, true, &si);
                c->running = false;
        }
        child_forget_group(c);
        child_release(c);
        free(c->owner);
        free(c);
        return NULL;
}

/* Calls out; false when the callee freed the child. Nesting-safe. */
#define CHILD_CALL(c, call)                     \
        ({                                      \
                bool _freed = false;            \
                bool *_outer = (c)->freed;      \
                (c)->freed = &_freed;           \
                call;                           \
                if (_freed) {                   \
                        if (_outer)             \
                                *_outer = true; \
                } else                          \
                        (c)->freed = _outer;    \
                !_freed;                        \
        })

static void child_line(Child *c, ChildStream stream, const char *line, size_t len) {
        if (!line || !c->ops.line)
                return; /* end of the stream: the exit tells */
        (void) CHILD_CALL(c, c->ops.line(c, stream, line, len, c->userdata));
}

static void child_stdout_cb(LoopSource *s, const char *line, size_t len, void *userdata) {
        child_line(userdata, CHILD_STDOUT, line, len);
}

static void child_stderr_cb(LoopSource *s, const char *line, size_t len, void *userdata) {
        child_line(userdata, CHILD_STDERR, line, len);
}

/* Reads the datagrams waiting on the notify socket; false when a callback freed the child. */
static bool child_notify_read(Child *c) {
        for (int i = 0; i < 64; i++) {
                char buf[CHILD_NOTIFY_MAX + 1];
                union {
                        struct cmsghdr cmsg;
                        uint8_t buf[CMSG_SPACE(sizeof(struct ucred))];
                } control = {};
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
                struct msghdr mh = {
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = &control,
                        .msg_controllen = sizeof(control),
                };
                const struct ucred *cred = NULL;
                ssize_t n;
                char *p, *save = NULL;

                n = recvmsg(c->notify_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return true; /* EAGAIN, or nothing we can do */
                }
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS &&
                            cm->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
                                cred = (const struct ucred *) (void *) CMSG_DATA(cm);
                        else if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                                /* Nobody passes us file descriptors: close them. */
                                size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                                int fds[16];

                                memcpy(fds, CMSG_DATA(cm), MIN(nfd, ELEMENTSOF(fds)) * sizeof(int));
                                for (size_t k = 0; k < MIN(nfd, ELEMENTSOF(fds)); k++)
                                        (void) close(fds[k]);
                        }
                if (!cred || cred->uid != getuid()) {
                        log_debug("Notification from uid %d ignored", cred ? (int) cred->uid : -1);
                        continue;
                }
                if (mh.msg_flags & MSG_TRUNC) {
                        log_debug("Oversized notification from pid %d ignored", (int) cred->pid);
                        continue;
                }
                buf[n] = '\0';
                for (p = strtok_r(buf, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
                        char *eq = strchr(p, '=');

                        if (!eq || eq == p)
                                continue;
                        *eq = '\0';
                        if (c->ops.notify && !CHILD_CALL(c, c->ops.notify(c, p, eq + 1, c->userdata)))
                                return false;
                }
        }
        return true;
}

static void child_notify_cb(LoopSource *s, int fd, unsigned revents, void *userdata) {
        (void) child_notify_read(userdata);
}

static void child_exit_cb(LoopSource *s, int fd, unsigned revents, void *userdata) {
        Child *c = userdata;
        ChildExit e;
        siginfo_t si = {};
        int r;

        /* The group outlives nobody. The zombie leader keeps the pgid reserved until we reap it. */
        (void) killpg(c->pid, SIGKILL);

        /* Its last words, and its last notifications. */
        for (ChildStream st = 0; st < _CHILD_STREAM_MAX; st++) {
                bool freed = false, *outer = c->freed;

                c->freed = &freed;
                loop_lines_drain(c->streams[st], true);
                if (freed) {
                        if (outer)
                                *outer = true;
                        return;
                }
                c->freed = outer;
        }
        if (c->notify_fd >= 0 && !child_notify_read(c))
                return;

        r = child_wait(c, false, &si);
        if (r == -EAGAIN)
                r = child_wait(c, true, &si); /* readable means exited: this cannot block for long */
        if (r < 0) {
                log_debug_errno(r, "Failed to reap child %d: %m", (int) c->pid);
                e = (ChildExit){ .code = CLD_KILLED, .status = SIGKILL };
        } else
                e = (ChildExit){ .code = si.si_code, .status = si.si_status };
        c->running = false;
        child_forget_group(c);
        child_release(c); /* frees s: we return right after the callback */

        if (c->ops.exited)
                c->ops.exited(c, &e, c->userdata);
}

/* Searches PATH (from the child's environment) for name, like execvpe() but before forking. */
static int child_find_program(const char *name, char *const *envp, char **ret) {
        if (strchr(name, '/')) {
                *ret = strdup(name);
                return *ret ? 0 : -ENOMEM;
        }
        return path_find_executable(name, strv_env_get(envp, "PATH") ?: CHILD_DEFAULT_PATH, ret);
}

/* Moves fd at or above min (keeping O_CLOEXEC), so the dup2() dance in the child never collides. */
static int fd_move_above(int *fd, int min) {
        int n;

        if (*fd >= min)
                return 0;
        n = fcntl(*fd, F_DUPFD_CLOEXEC, min);
        if (n < 0)
                return -errno;
        (void) close(*fd);
        *fd = n;
        return 0;
}

static int child_notify_socket(char **ret_env, int *ret_fd) {
        static unsigned counter = 0;
        _cleanup_close_ int fd = -1;
        int one = 1;

        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
                return -errno;
        for (int attempt = 0;; attempt++) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                char name[96];
                int n;

                n = snprintf(name, sizeof(name), "djdesk/notify/%d/%u", (int) getpid_cached(), ++counter);
                memcpy(sa.sun_path + 1, name, (size_t) n);
                if (bind(fd, (struct sockaddr *) &sa,
                         (socklen_t) (offsetof(struct sockaddr_un, sun_path) + 1 + n)) >= 0) {
                        if (asprintf(ret_env, "NOTIFY_SOCKET=@%s", name) < 0)
                                return -ENOMEM;
                        break;
                }
                if (errno != EADDRINUSE || attempt >= 16)
                        return -errno;
        }
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* The child runs on a stack of its own, in our memory (CLONE_VM): what it needs, with a guard page below
 * (the stack grows down). The sanitizers' runtime, reached through libc's intercepted calls, takes more. */
#if defined(__SANITIZE_ADDRESS__)
#define CHILD_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHILD_SANITIZED 1
#endif
#endif
#ifdef CHILD_SANITIZED
#define CHILD_STACK_SIZE ((size_t) 256 * 1024)
#else
#define CHILD_STACK_SIZE ((size_t) 64 * 1024)
#endif

typedef struct ChildExec {
        const char *path;
        char *const *argv;
        char **envp;
        char *listen_pid; /* inside envp: "LISTEN_PID=" and room for the digits */
        const char *cwd;
        int cwd_fd;
        int in_fd, out_fd, err_fd, listen_fd;
        int pdeath_signal;
        pid_t parent;
        int exec_errno; /* written by the child when it fails before or at execve() */
} ChildExec;

/* In the child, between clone() and execve(). It shares our memory (CLONE_VM) and runs while the calling
 * thread is suspended (CLONE_VFORK), on its own stack: no malloc, no stdio, no locks, only system calls
 * (async-signal-safe functions), and no write to our memory but x->exec_errno and the digits after
 * "LISTEN_PID=" (in the environment built for this child alone). errno is our thread's too: the caller
 * does not look at it after a successful clone(). Every signal is blocked on entry: no handler of ours
 * can run here, and they are all reset before the mask is lifted. Not instrumented by the sanitizers:
 * their bookkeeping (stack poisoning of a frame that never returns, fake stacks, reports) would land
 * in the memory we share. */
__attribute__((no_sanitize("address", "undefined"))) static int child_exec(void *userdata) {
        ChildExec *x = userdata;
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t none;
        int first;

        (void) setpgid(0, 0);
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) sigaction(sig, &sa, NULL);

        if (prctl(PR_SET_PDEATHSIG, x->pdeath_signal) < 0)
                goto fail;
        if (getppid() != x->parent)
                return EXIT_FAILURE; /* the daemon is already gone */

        /* First, before any dup2() can land on it. */
        if (x->cwd_fd > 0 && fchdir(x->cwd_fd) < 0)
                goto fail;

        if (dup2(x->in_fd, STDIN_FILENO) < 0 || dup2(x->out_fd, STDOUT_FILENO) < 0 ||
            dup2(x->err_fd, STDERR_FILENO) < 0)
                goto fail;
        if (x->listen_fd == 3) {
                if (fcntl(3, F_SETFD, 0) < 0)
                        goto fail;
        } else if (x->listen_fd >= 0 && dup2(x->listen_fd, 3) < 0)
                goto fail;

        /* Nothing else is inherited (our fd table is not shared: no CLONE_FILES). */
        first = x->listen_fd >= 0 ? 4 : 3;
        if (close_range((unsigned) first, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
                struct rlimit rl;
                int max = 65536;

                if (getrlimit(RLIMIT_NOFILE, &rl) >= 0 && rl.rlim_cur != RLIM_INFINITY)
                        max = (int) MIN(rl.rlim_cur, (rlim_t) INT_MAX);
                for (int fd = first; fd < max; fd++)
                        (void) close(fd);
        }

        if (x->cwd_fd <= 0 && x->cwd && chdir(x->cwd) < 0)
                goto fail;

        if (x->listen_pid) {
                char digits[CHILD_PID_DIGITS];
                char *p = x->listen_pid + (sizeof("LISTEN_PID=") - 1);
                pid_t pid = (pid_t) syscall(SYS_getpid); /* never a pid cached in the memory we share */
                int n = 0;

                do {
                        digits[n++] = (char) ('0' + pid % 10);
                        pid /= 10;
                } while (pid > 0 && n < CHILD_PID_DIGITS);
                while (n > 0)
                        *p++ = digits[--n];
                *p = '\0';
        }

        (void) sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);

        execve(x->path, x->argv, x->envp);
fail:
        x->exec_errno = errno > 0 ? errno : EIO;
        return 127; /* clone()'s exit: no noreturn _exit() for the sanitizers to unwind our stack on */
}

/* Starts x in a child sharing our memory, suspended until it has called execve() or exited (what
 * posix_spawn() does): no copy of the address space, no copy-on-write faults afterwards. Every signal
 * is blocked by the caller. Returns the pid, with a pidfd for it. */
static int child_clone(ChildExec *x, int *ret_pidfd) {
        size_t page = (size_t) sysconf(_SC_PAGESIZE), size = CHILD_STACK_SIZE + page;
        int pidfd = -1;
        void *stack;
        pid_t pid;
        int r;

        stack = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (stack == MAP_FAILED)
                return -errno;
        if (mprotect(stack, page, PROT_NONE) < 0) { /* the guard */
                r = -errno;
                (void) munmap(stack, size);
                return r;
        }
        pid = clone(child_exec, (uint8_t *) stack + size, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, x,
                    &pidfd);
        r = pid < 0 ? -errno : 0;
        (void) munmap(stack, size); /* the child has execve()d or exited: its stack is ours again */
        if (r < 0)
                return r;
        *ret_pidfd = pidfd;
        return (int) pid;
}

int child_spawn(Loop *l, const ChildSpec *spec, const ChildOps *ops, void *userdata, Child **ret) {
        _cleanup_close_ int in_fd = -1, listen_fd = -1, notify_fd = -1, pidfd = -1;
        int out[2] = { -1, -1 }, err[2] = { -1, -1 };
        _cleanup_strv_free_ char **envp = NULL;
        _cleanup_free_ char *path = NULL, *notify_env = NULL;
        _cleanup_(child_freep) Child *c = NULL;
        char *listen_pid = NULL;
        sigset_t all, saved;
        ChildExec x;
        pid_t pid;
        int r;

        assert_return(l && spec && ops && ret);
        assert_return(spec->argv && spec->argv[0]);
        assert_return(!spec->owner || spec->store);

        r = child_find_program(spec->argv[0], spec->envp, &path);
        if (r < 0)
                return r;

        /* The environment, complete before forking: the child only fills in its pid. */
        for (char *const *e = spec->envp; e && *e; e++) {
                r = strv_extend(&envp, *e);
                if (r < 0)
                        return r;
        }
        if (!envp) {
                envp = calloc(1, sizeof(char *));
                if (!envp)
                        return -ENOMEM;
        }
        if (spec->listen_fd >= 0) {
                strv_env_unset(envp, "LISTEN_FDS");
                strv_env_unset(envp, "LISTEN_PID");
                strv_env_unset(envp, "LISTEN_FDNAMES");
                r = strv_extend(&envp, "LISTEN_FDS=1");
                if (r < 0)
                        return r;
                r = strv_extendf(&envp, "LISTEN_PID=%0*d", CHILD_PID_DIGITS, 0);
                if (r < 0)
                        return r;
                listen_pid = envp[strv_length(envp) - 1];
                listen_fd = fcntl(spec->listen_fd, F_DUPFD_CLOEXEC, 3);
                if (listen_fd < 0)
                        return -errno;
        }
        if (spec->notify) {
                r = child_notify_socket(&notify_env, &notify_fd);
                if (r < 0)
                        return r;
                strv_env_unset(envp, "NOTIFY_SOCKET");
                r = strv_push(&envp, TAKE_PTR(notify_env));
                if (r < 0)
                        return r;
        }

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->loop = l;
        c->pidfd = c->notify_fd = -1;
        c->ops = *ops;
        c->userdata = userdata;
        if (spec->owner) {
                c->owner = strdup(spec->owner);
                if (!c->owner)
                        return -ENOMEM;
                c->store = spec->store;
        }

        in_fd = spec->stdin_fd > 0 ? fcntl(spec->stdin_fd, F_DUPFD_CLOEXEC, 4)
                                   : open("/dev/null", O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (in_fd < 0)
                return -errno;
        if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
                r = -errno;
                goto fail_fds;
        }
        /* The child's sources land on 0..3: keep every fd it needs above them. */
        if ((r = fd_move_above(&in_fd, 4)) < 0 || (r = fd_move_above(&out[1], 4)) < 0 ||
            (r = fd_move_above(&err[1], 4)) < 0 ||
            (listen_fd >= 0 && listen_fd != 3 && (r = fd_move_above(&listen_fd, 4)) < 0))
                goto fail_fds;

        x = (ChildExec){
                .path = path,
                .argv = spec->argv,
                .envp = envp,
                .listen_pid = listen_pid,
                .cwd = spec->cwd,
                .cwd_fd = spec->cwd_fd,
                .in_fd = in_fd,
                .out_fd = out[1],
                .err_fd = err[1],
                .listen_fd = listen_fd,
                .pdeath_signal = spec->pdeath_signal > 0 ? spec->pdeath_signal : SIGTERM,
                .parent = getpid(),
        };

        /* No signal handler of ours may run in the child before it resets them (it would run in our memory). */
        (void) sigfillset(&all);
        (void) pthread_sigmask(SIG_SETMASK, &all, &saved);
        c->started_at = now_usec(CLOCK_REALTIME);
        r = child_clone(&x, &pidfd);
        (void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0)
                goto fail_fds;
        pid = (pid_t) r;

        (void) setpgid(pid, pid); /* also here: killpg() works as soon as we return (fails after exec) */
        out[1] = safe_close(out[1]);
        err[1] = safe_close(err[1]);
        in_fd = safe_close(in_fd);
        listen_fd = safe_close(listen_fd);

        /* We are back: the child has execve()d, or failed and exited. */
        if (x.exec_errno != 0) {
                (void) waitpid(pid, NULL, 0);
                r = -x.exec_errno;
                goto fail_fds;
        }

        c->pid = pid;
        c->running = true;
        c->pidfd = TAKE_FD(pidfd);

        /* From here on child_free() (through the cleanup) kills and reaps it on failure. */
        r = loop_add_lines(l, out[0], CHILD_LINE_MAX, child_stdout_cb, c, &c->streams[CHILD_STDOUT]);
        if (r < 0)
                goto fail_fds;
        out[0] = -1;
        r = loop_add_lines(l, err[0], CHILD_LINE_MAX, child_stderr_cb, c, &c->streams[CHILD_STDERR]);
        if (r < 0)
                goto fail_fds;
        err[0] = -1;
        if (notify_fd >= 0) {
                r = loop_add_io(l, notify_fd, LOOP_IO_READ, child_notify_cb, c, &c->notify_source);
                if (r < 0)
                        return r;
                c->notify_fd = TAKE_FD(notify_fd);
        }
        r = loop_add_io(l, c->pidfd, LOOP_IO_READ, child_exit_cb, c, &c->exit_source);
        if (r < 0)
                return r;

        if (c->owner) {
                r = store_child_group_add(c->store, pid, pid, child_proc_start_time(pid), c->owner,
                                          c->started_at);
                if (r < 0) /* not fatal: the child runs, only orphan reaping after a crash would miss it */
                        log_debug_errno(r, "Failed to record process group %d: %m", (int) pid);
                else
                        c->recorded = true;
        }

        log_debug("Spawned %s as %d", path, (int) pid);
        *ret = TAKE_PTR(c);
        return 0;

fail_fds:
        (void) safe_close(out[0]);
        (void) safe_close(out[1]);
        (void) safe_close(err[0]);
        (void) safe_close(err[1]);
        return r;
}

/* Orphans */

/* Processes of group pgid that are not zombies (zombies are only waiting for their reaper). */
static unsigned proc_count_group(pid_t pgid) {
        _cleanup_(closedirp) DIR *d = NULL;
        unsigned n = 0;

        d = opendir("/proc");
        if (!d)
                return 0;
        for (struct dirent *de; (de = readdir(d));) {
                char state;
                pid_t pgrp;
                char *end;
                long pid;

                pid = strtol(de->d_name, &end, 10);
                if (*end || pid <= 0)
                        continue;
                if (proc_stat_read((pid_t) pid, &state, &pgrp, NULL) < 0)
                        continue;
                if (pgrp == pgid && state != 'Z' && state != 'X')
                        n++;
        }
        return n;
}

/* Whether the recorded group is still provably the one we started. */
static bool child_group_is_ours(const StoreChildGroup *g) {
        uint64_t start;
        pid_t pgrp;
        char state;

        if (proc_stat_read(g->pid, &state, &pgrp, &start) >= 0) {
                /* The leader's pid exists: it is ours only with the recorded start time (a reused pid
                 * cannot be: the kernel never hands out a pid still used as a process group id). */
                if (start != g->start_time || pgrp != g->pgid)
                        return false;
                if (state != 'Z' && state != 'X')
                        return true;
                /* Our leader, dead but not reaped yet (right after the previous daemon was killed, init
                 * reaps it when it gets to it): the group is ours while members remain in it. */
        }
        /* The leader is gone: the members still in its group are ours. */
        return proc_count_group(g->pgid) > 0;
}

int child_reap_orphans(Store *store, uint64_t grace_usec) {
        StoreChildGroup *g = NULL;
        bool *ended = NULL;
        size_t n = 0;
        unsigned count = 0;
        uint64_t deadline;
        int r;

        assert_return(store);

        r = store_child_group_list(store, &g, &n);
        if (r < 0)
                return r;
        if (n == 0) {
                store_child_group_free_many(g, n);
                return 0;
        }
        ended = calloc(n, sizeof(bool));
        if (!ended) {
                store_child_group_free_many(g, n);
                return -ENOMEM;
        }

        for (size_t i = 0; i < n; i++) {
                if (g[i].pgid <= 1 || !child_group_is_ours(&g[i])) {
                        log_debug("Process group %d (%s) is gone", g[i].pgid, g[i].owner);
                        continue;
                }
                log_debug("Ending orphaned process group %d (%s)", g[i].pgid, g[i].owner);
                if (killpg(g[i].pgid, SIGTERM) >= 0) {
                        ended[i] = true;
                        count++;
                }
        }

        deadline = now_usec(CLOCK_MONOTONIC) + grace_usec;
        for (;;) {
                bool alive = false;

                for (size_t i = 0; i < n && !alive; i++)
                        if (ended[i] && proc_count_group(g[i].pgid) > 0)
                                alive = true;
                if (!alive || now_usec(CLOCK_MONOTONIC) >= deadline)
                        break;
                (void) nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
        for (size_t i = 0; i < n; i++) {
                if (ended[i] && proc_count_group(g[i].pgid) > 0) {
                        log_debug("Process group %d (%s) outlived SIGTERM: SIGKILL", g[i].pgid, g[i].owner);
                        (void) killpg(g[i].pgid, SIGKILL);
                }
                r = store_child_group_remove(store, g[i].pgid);
                if (r < 0)
                        log_debug_errno(r, "Failed to remove the record of process group %d: %m", g[i].pgid);
        }

        free(ended);
        store_child_group_free_many(g, n);
        return (int) count;
}
