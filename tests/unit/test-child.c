/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "daemon.h"
#include "dj-util.h"
#include "loop.h"
#include "store.h"

static Daemon daemon_stub;
static Loop *loop;
static char tmpdir[64];

static char *const path_env[] = { (char *) "PATH=/usr/bin:/bin", NULL };

typedef struct Run {
        char *out[64], *err[64], *notes[16];
        size_t n_out, n_err, n_notes;
        bool exited;
        ChildExit e;
        Child *c;
        bool free_on_line; /* child_free() from the first line callback */
} Run;

static void run_done(Run *r) {
        for (size_t i = 0; i < r->n_out; i++)
                free(r->out[i]);
        for (size_t i = 0; i < r->n_err; i++)
                free(r->err[i]);
        for (size_t i = 0; i < r->n_notes; i++)
                free(r->notes[i]);
        r->c = child_free(r->c);
}

static void on_line(Child *c, ChildStream stream, const char *line, size_t len, void *userdata) {
        Run *r = userdata;

        assert_false(r->exited);
        assert_ptr_equal(c, r->c);
        assert_int_equal(strlen(line), len);
        if (stream == CHILD_STDOUT) {
                assert_true(r->n_out < ELEMENTSOF(r->out));
                r->out[r->n_out++] = strdup(line);
        } else {
                assert_int_equal(stream, CHILD_STDERR);
                assert_true(r->n_err < ELEMENTSOF(r->err));
                r->err[r->n_err++] = strdup(line);
        }
        if (r->free_on_line)
                r->c = child_free(c);
}

static void on_notify(Child *c, const char *key, const char *value, void *userdata) {
        Run *r = userdata;

        assert_false(r->exited);
        assert_true(r->n_notes < ELEMENTSOF(r->notes));
        assert_int_equal(asprintf(&r->notes[r->n_notes++], "%s=%s", key, value) > 0, true);
}

static void on_exited(Child *c, const ChildExit *e, void *userdata) {
        Run *r = userdata;

        assert_false(r->exited);
        assert_false(child_running(c));
        assert_int_equal(child_kill(c, 0), -ESRCH);
        r->exited = true;
        r->e = *e;
}

static const ChildOps ops = { .line = on_line, .notify = on_notify, .exited = on_exited };

static void timeout_cb(LoopSource *s, void *userdata) {
        *(bool *) userdata = true;
}

static void run_until(const bool *cond) {
        _cleanup_(loop_source_freep) LoopSource *t = NULL;
        bool timed_out = false;

        assert_int_equal(loop_add_timer(loop, timeout_cb, &timed_out, &t), 0);
        assert_int_equal(loop_timer_arm(t, 10 * USEC_PER_SEC), 0);
        while (!*cond && !timed_out)
                assert_int_equal(loop_run_once(loop), 0);
        assert_false(timed_out);
}

static int spawn(Run *r, const ChildSpec *spec) {
        ChildSpec s = *spec;

        if (!s.envp)
                s.envp = path_env;
        return child_spawn(loop, &s, &ops, r, &r->c);
}

static void run_sh(Run *r, const char *script) {
        char *argv[] = { (char *) "/bin/sh", (char *) "-c", (char *) script, NULL };

        assert_int_equal(spawn(r, &(ChildSpec){ .argv = argv, .listen_fd = -1 }), 0);
        run_until(&r->exited);
}

/* Whether pid is gone or a zombie. */
static bool proc_dead(pid_t pid) {
        char p[64], buf[512], *s;
        FILE *f;

        (void) snprintf(p, sizeof(p), "/proc/%d/stat", (int) pid);
        f = fopen(p, "re");
        if (!f)
                return true;
        s = fgets(buf, sizeof(buf), f);
        fclose(f);
        if (!s || !(s = strrchr(buf, ')')))
                return true;
        return s[2] == 'Z' || s[2] == 'X';
}

static void test_lines_and_status(void **state) {
        Run r = {};
        char buf[64];

        run_sh(&r, "echo a; echo b >&2; echo c; echo d >&2; printf tail");
        assert_true(child_exit_success(&r.e));
        assert_int_equal(r.n_out, 3);
        assert_string_equal(r.out[0], "a");
        assert_string_equal(r.out[1], "c");
        assert_string_equal(r.out[2], "tail");
        assert_int_equal(r.n_err, 2);
        assert_string_equal(r.err[0], "b");
        assert_string_equal(r.err[1], "d");
        assert_string_equal(child_exit_to_string(&r.e, buf, sizeof(buf)), "exited with status 0");
        run_done(&r);

        /* Many lines, all delivered before the exit. */
        r = (Run){};
        run_sh(&r, "i=0; while [ $i -lt 50 ]; do echo line$i; i=$((i+1)); done; exit 3");
        assert_int_equal(r.n_out, 50);
        assert_string_equal(r.out[49], "line49");
        assert_int_equal(r.e.code, CLD_EXITED);
        assert_int_equal(r.e.status, 3);
        assert_false(child_exit_success(&r.e));
        assert_string_equal(child_exit_to_string(&r.e, buf, sizeof(buf)), "exited with status 3");
        run_done(&r);

        r = (Run){};
        run_sh(&r, "kill -TERM $$");
        assert_int_equal(r.e.code, CLD_KILLED);
        assert_int_equal(r.e.status, SIGTERM);
        assert_string_equal(child_exit_to_string(&r.e, buf, sizeof(buf)), "killed by SIGTERM");
        run_done(&r);

        assert_string_equal(child_exit_to_string(&(ChildExit){ CLD_DUMPED, SIGSEGV }, buf, sizeof(buf)),
                            "dumped core on SIGSEGV");
        assert_string_equal(child_stream_to_string(CHILD_STDOUT), "stdout");
        assert_string_equal(child_stream_to_string(CHILD_STDERR), "stderr");
        assert_null(child_stream_to_string(_CHILD_STREAM_MAX));
}

static void test_spawn_errors(void **state) {
        char *missing[] = { (char *) "djdesk-no-such-program", NULL };
        char *missing_abs[] = { (char *) "/nonexistent/prog", NULL };
        _cleanup_free_ char *plain = path_join(tmpdir, "plain");
        char *noexec[] = { plain, NULL };
        char *sh[] = { (char *) "/bin/sh", (char *) "-c", (char *) "true", NULL };
        Run r = {};
        int fd;

        /* Not executable (root included: no x bit at all). */
        fd = open(plain, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);

        assert_int_equal(spawn(&r, &(ChildSpec){ .argv = missing, .listen_fd = -1 }), -ENOENT);
        assert_int_equal(spawn(&r, &(ChildSpec){ .argv = missing_abs, .listen_fd = -1 }), -ENOENT);
        assert_int_equal(spawn(&r, &(ChildSpec){ .argv = noexec, .listen_fd = -1 }), -EACCES);
        assert_int_equal(spawn(&r, &(ChildSpec){ .argv = sh, .listen_fd = -1, .cwd = "/nonexistent" }),
                         -ENOENT);
        assert_null(r.c);
        /* No child left behind. */
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
}

static void test_env_and_group(void **state) {
        char *env_argv[] = { (char *) "env", NULL };
        char *const envp[] = { (char *) "PATH=/usr/bin:/bin", (char *) "FOO=bar baz", (char *) "X=", NULL };
        Run r = {};

        /* argv[0] is searched in envp's PATH; the environment is exactly envp. */
        assert_int_equal(spawn(&r, &(ChildSpec){ .argv = env_argv, .envp = envp, .listen_fd = -1 }), 0);
        run_until(&r.exited);
        assert_true(child_exit_success(&r.e));
        assert_int_equal(r.n_out, 3);
        assert_string_equal(r.out[0], "PATH=/usr/bin:/bin");
        assert_string_equal(r.out[1], "FOO=bar baz");
        assert_string_equal(r.out[2], "X=");
        run_done(&r);

        /* Its own process group, stdin from /dev/null, cwd as asked. */
        r = (Run){};
        {
                char *argv[] = {
                        (char *) "/bin/sh", (char *) "-c",
                        (char *) "echo $$; cut -d' ' -f5 /proc/$$/stat; readlink /proc/$$/fd/0; pwd", NULL
                };
                pid_t pid;

                assert_int_equal(spawn(&r, &(ChildSpec){ .argv = argv, .listen_fd = -1, .cwd = "/tmp" }), 0);
                pid = child_pid(r.c);
                assert_true(child_running(r.c));
                assert_true(child_started_at(r.c) > 0);
                run_until(&r.exited);
                assert_int_equal(r.n_out, 4);
                assert_int_equal(atoi(r.out[0]), pid);
                assert_int_equal(atoi(r.out[1]), pid);
                assert_string_equal(r.out[2], "/dev/null");
                assert_string_equal(r.out[3], "/tmp");
                run_done(&r);
        }

        /* cwd_fd wins over cwd: the child enters the directory that was opened (and checked), even when
         * the path now names another one. */
        r = (Run){};
        {
                char *argv[] = { (char *) "/bin/pwd", NULL };
                int dfd = open("/usr", O_PATH | O_DIRECTORY | O_CLOEXEC);

                assert_true(dfd > 0);
                assert_int_equal(
                        spawn(&r,
                              &(ChildSpec){ .argv = argv, .listen_fd = -1, .cwd = "/tmp", .cwd_fd = dfd }),
                        0);
                run_until(&r.exited);
                assert_true(child_exit_success(&r.e));
                assert_int_equal(r.n_out, 1);
                assert_string_equal(r.out[0], "/usr");
                run_done(&r);
                (void) close(dfd);
        }
}

static void test_group_killed(void **state) {
        Run r = {};
        pid_t grandchild;
        int status;

        /* The grandchild keeps stdout open and stays in the group: it is killed when the leader exits,
         * and the lines written before are all there. */
        run_sh(&r, "sleep 1000 & echo $!; echo bye");
        assert_true(child_exit_success(&r.e));
        assert_int_equal(r.n_out, 2);
        assert_string_equal(r.out[1], "bye");
        grandchild = atoi(r.out[0]);
        assert_true(grandchild > 0);
        /* We are the subreaper: it is ours to reap, and SIGKILL ended it. */
        assert_int_equal(waitpid(grandchild, &status, 0), grandchild);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
        run_done(&r);
}

/* Starts script and runs the loop until its first line: whatever it set up before is in place. */
static void start_sh(Run *r, const char *script) {
        char *argv[] = { (char *) "/bin/sh", (char *) "-c", (char *) script, NULL };
        _cleanup_(loop_source_freep) LoopSource *t = NULL;
        bool timed_out = false;

        assert_int_equal(spawn(r, &(ChildSpec){ .argv = argv, .listen_fd = -1 }), 0);
        assert_int_equal(loop_add_timer(loop, timeout_cb, &timed_out, &t), 0);
        assert_int_equal(loop_timer_arm(t, 10 * USEC_PER_SEC), 0);
        while (r->n_out == 0 && !timed_out)
                assert_int_equal(loop_run_once(loop), 0);
        assert_false(timed_out);
}

static void test_stop(void **state) {
        Run r = {};
        uint64_t t0;

        /* A group that honours SIGTERM ends by it, long before the grace period. */
        start_sh(&r, "sleep 1000 & echo started; wait");
        t0 = now_usec(CLOCK_MONOTONIC);
        assert_int_equal(child_stop(r.c, 30 * USEC_PER_SEC), 0);
        run_until(&r.exited);
        assert_int_equal(r.e.code, CLD_KILLED);
        assert_int_equal(r.e.status, SIGTERM);
        assert_true(now_usec(CLOCK_MONOTONIC) - t0 < 5 * USEC_PER_SEC);
        assert_int_equal(child_stop(r.c, USEC_PER_SEC), -ESRCH);
        run_done(&r);

        /* One that ignores it gets SIGKILL once the grace period is over; asking again does not move the
         * deadline. */
        r = (Run){};
        start_sh(&r, "trap '' TERM; echo started; while :; do sleep 0.05; done");
        t0 = now_usec(CLOCK_MONOTONIC);
        assert_int_equal(child_stop(r.c, 300 * USEC_PER_MSEC), 0);
        assert_int_equal(child_stop(r.c, 30 * USEC_PER_SEC), 0);
        run_until(&r.exited);
        assert_int_equal(r.e.code, CLD_KILLED);
        assert_int_equal(r.e.status, SIGKILL);
        assert_true(now_usec(CLOCK_MONOTONIC) - t0 >= 300 * USEC_PER_MSEC);
        assert_true(now_usec(CLOCK_MONOTONIC) - t0 < 5 * USEC_PER_SEC);
        run_done(&r);

        /* No grace: SIGKILL at once. */
        r = (Run){};
        start_sh(&r, "trap '' TERM; echo started; while :; do sleep 0.05; done");
        assert_int_equal(child_stop(r.c, 0), 0);
        run_until(&r.exited);
        assert_int_equal(r.e.code, CLD_KILLED);
        assert_int_equal(r.e.status, SIGKILL);
        run_done(&r);

        /* Freed while its SIGKILL is pending: the timer goes with it. */
        r = (Run){};
        start_sh(&r, "trap '' TERM; echo started; while :; do sleep 0.05; done");
        assert_int_equal(child_stop(r.c, 30 * USEC_PER_SEC), 0);
        run_done(&r);
}

static void test_listen_fd(void **state) {
        /* Inspected once it said so: its startup (the dynamic loader) opens files for a moment. */
        char *argv[] = { (char *) "python3",
                         (char *) "-I",
                         (char *) "-S",
                         (char *) "-c",
                         (char *) "import time; print('ready', flush=True); time.sleep(1000)",
                         NULL };
        char *const envp[] = { (char *) "PATH=/usr/bin:/bin", (char *) "LISTEN_PID=1", NULL };
        char p[64], buf[4096], want[64];
        struct stat a, b;
        Run r = {};
        int sp[2], leak, fd;
        ssize_t n;
        pid_t pid;
        DIR *d;
        unsigned mask = 0, count = 0;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        leak = dup(sp[1]); /* not O_CLOEXEC: must not be inherited anyway */
        assert_true(leak >= 0);

        assert_int_equal(spawn(&r, &(ChildSpec){ .argv = argv, .envp = envp, .listen_fd = sp[0] }), 0);
        pid = child_pid(r.c);
        while (r.n_out == 0)
                assert_int_equal(loop_run_once(loop), 0);
        assert_string_equal(r.out[0], "ready");

        /* Exactly 0, 1, 2 and 3, and 3 is our socket. */
        (void) snprintf(p, sizeof(p), "/proc/%d/fd", (int) pid);
        d = opendir(p);
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));) {
                if (de->d_name[0] == '.')
                        continue;
                fd = atoi(de->d_name);
                assert_true(fd >= 0 && fd <= 3);
                mask |= 1u << fd;
                count++;
        }
        closedir(d);
        assert_int_equal(mask, 0xf);
        assert_int_equal(count, 4);
        (void) snprintf(p, sizeof(p), "/proc/%d/fd/3", (int) pid);
        assert_int_equal(stat(p, &a), 0);
        assert_int_equal(fstat(sp[0], &b), 0);
        assert_int_equal(a.st_ino, b.st_ino);

        /* LISTEN_FDS=1 and LISTEN_PID=<its pid>, replacing the one in envp. */
        (void) snprintf(p, sizeof(p), "/proc/%d/environ", (int) pid);
        fd = open(p, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        assert_true(n > 0);
        buf[n] = '\0';
        for (ssize_t i = 0; i < n; i++)
                if (buf[i] == '\0')
                        buf[i] = '\n';
        (void) snprintf(want, sizeof(want), "PATH=/usr/bin:/bin\nLISTEN_FDS=1\nLISTEN_PID=%d\n", (int) pid);
        assert_string_equal(buf, want);

        /* Freeing a running child kills and reaps it: no zombie. */
        r.c = child_free(r.c);
        assert_true(proc_dead(pid));
        assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
        assert_int_equal(errno, ECHILD);
        assert_false(r.exited);
        run_done(&r);
        close(sp[0]);
        close(sp[1]);
        close(leak);
}

static void test_notify(void **state) {
        char *argv[] = { (char *) "/usr/bin/python3", (char *) "-c",
                         (char *) "import os, socket\n"
                                  "a = os.environ['NOTIFY_SOCKET']\n"
                                  "assert a.startswith('@')\n"
                                  "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
                                  "s.sendto(b'READY=1\\nSTATUS=hello there', '\\0' + a[1:])\n"
                                  "s.sendto(b'garbage\\nMAINPID=7', '\\0' + a[1:])\n"
                                  "print('sent', flush=True)\n",
                         NULL };
        Run r = {};

        if (access("/usr/bin/python3", X_OK) < 0)
                skip();
        assert_int_equal(spawn(&r, &(ChildSpec){ .argv = argv, .listen_fd = -1, .notify = true }), 0);
        run_until(&r.exited);
        assert_true(child_exit_success(&r.e));
        assert_int_equal(r.n_out, 1);
        assert_int_equal(r.n_notes, 3);
        assert_string_equal(r.notes[0], "READY=1");
        assert_string_equal(r.notes[1], "STATUS=hello there");
        assert_string_equal(r.notes[2], "MAINPID=7");
        run_done(&r);
}

static void test_free_from_line(void **state) {
        Run r = { .free_on_line = true };
        char *argv[] = { (char *) "/bin/sh", (char *) "-c", (char *) "echo one; echo two; exec sleep 1000",
                         NULL };
        pid_t pid;

        assert_int_equal(spawn(&r, &(ChildSpec){ .argv = argv, .listen_fd = -1 }), 0);
        pid = child_pid(r.c);
        while (r.c)
                assert_int_equal(loop_run_once(loop), 0);
        assert_int_equal(r.n_out, 1);
        assert_true(proc_dead(pid));
        assert_false(r.exited);
        run_done(&r);
}

static size_t n_groups(Store *s) {
        StoreChildGroup *g = NULL;
        size_t n = 0;

        assert_int_equal(store_child_group_list(s, &g, &n), 0);
        store_child_group_free_many(g, n);
        return n;
}

static void test_store_record(void **state) {
        _cleanup_free_ char *p = path_join(tmpdir, "record.db");
        char *argv[] = { (char *) "/bin/sh", (char *) "-c", (char *) "read x <&0; echo done", NULL };
        StoreChildGroup *g = NULL;
        Store *s = NULL;
        size_t n = 0;
        Run r = {};

        assert_int_equal(store_open(p, &s, NULL), 0);
        assert_int_equal(
                spawn(&r,
                      &(ChildSpec){ .argv = argv, .listen_fd = -1, .owner = "server:atlas", .store = s }),
                0);
        assert_int_equal(store_child_group_list(s, &g, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(g[0].pgid, child_pid(r.c));
        assert_int_equal(g[0].pid, child_pid(r.c));
        assert_int_equal(g[0].start_time, child_proc_start_time(child_pid(r.c)));
        assert_true(g[0].start_time > 0);
        assert_string_equal(g[0].owner, "server:atlas");
        assert_int_equal(g[0].started_at, child_started_at(r.c));
        store_child_group_free_many(g, n);
        run_until(&r.exited);
        assert_int_equal(n_groups(s), 0);
        run_done(&r);
        store_free(s);
}

/* A process group of our own making, as a crashed daemon would have left it. The script gets ready_fd as
 * fd 9. */
static pid_t fork_group(const char *script, int ready_fd) {
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
                (void) setpgid(0, 0);
                if (dup2(ready_fd, 9) < 0)
                        _exit(127);
                execl("/bin/sh", "sh", "-c", script, (char *) NULL);
                _exit(127);
        }
        (void) setpgid(pid, pid);
        return pid;
}

static void test_reap_orphans(void **state) {
        _cleanup_free_ char *p = path_join(tmpdir, "orphans.db");
        Store *s = NULL;
        pid_t a, b, c, stranger;
        int status, ready[2];
        uint64_t t0;
        char buf[3];

        assert_int_equal(store_open(p, &s, NULL), 0);
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);

        /* a: leader alive with its start time (exec keeps it); it exits on SIGTERM. */
        a = fork_group("exec sleep 1000", ready[1]);
        /* b: ignores SIGTERM (and so does its sleep): SIGKILL after the grace. */
        b = fork_group("trap '' TERM; echo >&9; sleep 1000; sleep 1000", ready[1]);
        /* c: the leader is gone, a member remains in the group. */
        c = fork_group("sleep 1000 9>&- & echo >&9; exit 0", ready[1]);
        /* A stranger with a recorded pid but another start time: never touched. */
        stranger = fork_group("echo >&9; exec sleep 1000", ready[1]);
        for (size_t got = 0; got < 3;) { /* three lines: three scripts ready */
                ssize_t n = read(ready[0], buf, 3 - got);

                assert_true(n > 0);
                got += (size_t) n;
        }
        assert_int_equal(waitpid(c, &status, 0), c);
        close(ready[0]);
        close(ready[1]);

        assert_int_equal(store_child_group_add(s, a, a, child_proc_start_time(a), "server:a", 1), 0);
        assert_int_equal(store_child_group_add(s, b, b, child_proc_start_time(b), "server:b", 2), 0);
        assert_int_equal(store_child_group_add(s, c, c, 12345, "server:c", 3), 0);
        assert_int_equal(store_child_group_add(s, stranger, stranger, 1, "server:x", 4), 0);
        /* A record of a group long gone. */
        assert_int_equal(store_child_group_add(s, 999999999, 999999999, 1, "server:gone", 5), 0);
        assert_int_equal(n_groups(s), 5);

        t0 = now_usec(CLOCK_MONOTONIC);
        assert_int_equal(child_reap_orphans(s, 300 * USEC_PER_MSEC), 3);
        assert_true(now_usec(CLOCK_MONOTONIC) - t0 >= 300 * USEC_PER_MSEC); /* b made it wait */
        assert_int_equal(n_groups(s), 0);

        assert_int_equal(waitpid(a, &status, 0), a);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGTERM);
        assert_int_equal(waitpid(b, &status, 0), b);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
        /* c's member was reparented to us (the subreaper) and ended by SIGTERM. */
        assert_int_equal(waitpid(-c, &status, 0) > 0, true);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGTERM);
        /* The stranger lives on. */
        assert_int_equal(waitpid(stranger, &status, WNOHANG), 0);
        assert_int_equal(kill(stranger, SIGKILL), 0);
        assert_int_equal(waitpid(stranger, &status, 0), stranger);

        assert_int_equal(child_reap_orphans(s, 0), 0);
        store_free(s);
}

/* The state letter of pid ('R', 'S', 'Z'...), 0 when it is gone. */
static char proc_state(pid_t pid) {
        char p[64], buf[512], *s;
        FILE *f;

        (void) snprintf(p, sizeof(p), "/proc/%d/stat", (int) pid);
        f = fopen(p, "re");
        if (!f)
                return 0;
        s = fgets(buf, sizeof(buf), f);
        fclose(f);
        if (!s || !(s = strrchr(buf, ')')) || !s[1] || !s[2])
                return 0;
        return s[2];
}

static void wait_zombie(pid_t pid) {
        uint64_t deadline = now_usec(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;

        while (proc_state(pid) != 'Z') {
                assert_true(now_usec(CLOCK_MONOTONIC) < deadline);
                (void) nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
        }
}

/* Right after a daemon was killed, its server's leader may be a zombie that init has not reaped yet while
 * other members of the group live on: the group is still ours. A zombie leader alone is not. */
static void test_reap_orphans_zombie_leader(void **state) {
        _cleanup_free_ char *p = path_join(tmpdir, "zombie.db");
        Store *s = NULL;
        pid_t a, b, member;
        int status, ready[2], ended;
        bool member_alive;
        uint64_t t0, elapsed;
        char buf[32] = {};
        size_t got = 0;

        assert_int_equal(store_open(p, &s, NULL), 0);
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);

        /* a: the leader exits and stays a zombie (we do not reap it yet); its member ignores SIGTERM. */
        a = fork_group("trap '' TERM; sleep 1000 9>&- >/dev/null 2>&1 & echo $! >&9; exit 0", ready[1]);
        /* b: a zombie leader and nobody left in its group. */
        b = fork_group("exit 0", ready[1]);
        close(ready[1]);
        while (!memchr(buf, '\n', got)) {
                ssize_t n = read(ready[0], buf + got, sizeof(buf) - 1 - got);

                assert_true(n > 0);
                got += (size_t) n;
        }
        close(ready[0]);
        member = atoi(buf);
        assert_true(member > 0);
        wait_zombie(a);
        wait_zombie(b);

        assert_int_equal(store_child_group_add(s, a, a, child_proc_start_time(a), "server:a", 1), 0);
        assert_int_equal(store_child_group_add(s, b, b, child_proc_start_time(b), "server:b", 2), 0);
        assert_true(child_proc_start_time(a) > 0);
        /* A zombie with another start time is not our leader. */
        assert_int_equal(store_child_group_add(s, 999999998, 999999998, 1, "server:gone", 3), 0);

        t0 = now_usec(CLOCK_MONOTONIC);
        ended = child_reap_orphans(s, 200 * USEC_PER_MSEC);
        elapsed = now_usec(CLOCK_MONOTONIC) - t0;
        /* SIGKILL was sent last: give it a moment to land. */
        t0 = now_usec(CLOCK_MONOTONIC);
        while ((member_alive = waitpid(member, &status, WNOHANG) == 0) &&
               now_usec(CLOCK_MONOTONIC) - t0 < 2 * USEC_PER_SEC)
                (void) nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
        if (member_alive) { /* do not leave it behind when the test fails */
                (void) kill(member, SIGKILL);
                (void) waitpid(member, &status, 0);
        }
        assert_int_equal(ended, 1);
        assert_true(elapsed >= 200 * USEC_PER_MSEC); /* the member ignored SIGTERM */
        assert_false(member_alive);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGKILL);
        assert_int_equal(n_groups(s), 0);

        assert_int_equal(waitpid(a, &status, 0), a);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(waitpid(b, &status, 0), b);
        store_free(s);
}

static int setup(void **state) {
        strcpy(tmpdir, "/tmp/djdesk-test-child-XXXXXX");
        assert_non_null(mkdtemp(tmpdir));
        assert_int_equal(loop_new(&daemon_stub, &loop), 0);
        return 0;
}

static int teardown(void **state) {
        char cmd[128];

        loop = loop_free(loop);
        (void) snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        assert_int_equal(system(cmd), 0);
        return 0;
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lines_and_status),
                cmocka_unit_test(test_spawn_errors),
                cmocka_unit_test(test_env_and_group),
                cmocka_unit_test(test_group_killed),
                cmocka_unit_test(test_listen_fd),
                cmocka_unit_test(test_notify),
                cmocka_unit_test(test_free_from_line),
                cmocka_unit_test(test_store_record),
                cmocka_unit_test(test_reap_orphans),
                cmocka_unit_test(test_reap_orphans_zombie_leader),
                cmocka_unit_test(test_stop),
        };

        /* Orphaned grandchildren come to us, so the tests can reap them and check how they ended. */
        (void) prctl(PR_SET_CHILD_SUBREAPER, 1);
        return cmocka_run_group_tests_name("child", tests, setup, teardown);
}
