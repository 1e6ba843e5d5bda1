/* SPDX-License-Identifier: MIT */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "dj-macro.h"

typedef struct Child Child;
typedef struct Loop Loop;
typedef struct Store Store;

/* Every child of the daemon (Django server, task, probe, interpreter check, Data Lab writer) is spawned
 * here, the same way: argv (never a shell), an explicit environment, its own process group,
 * PR_SET_PDEATHSIG, a pidfd for its exit, stdin from /dev/null (or a file the caller gives), stdout and
 * stderr on pipes read line by line from the loop. */

typedef enum ChildStream {
        CHILD_STDOUT,
        CHILD_STDERR,
        _CHILD_STREAM_MAX,
        _CHILD_STREAM_INVALID = -EINVAL,
} ChildStream;

const char *child_stream_to_string(ChildStream s); /* "stdout", "stderr" */

typedef struct ChildExit {
        int code;   /* CLD_EXITED, CLD_KILLED or CLD_DUMPED */
        int status; /* the exit status, or the signal */
} ChildExit;

/* "exited with status 1", "killed by SIGKILL", "dumped core on SIGSEGV". */
const char *child_exit_to_string(const ChildExit *e, char *buf, size_t size);
static inline bool child_exit_success(const ChildExit *e) {
        return e->code == CLD_EXITED && e->status == 0;
}

typedef struct ChildSpec {
        char *const *argv; /* argv[0] is run as given when it contains '/', else searched in envp's PATH */
        char *const *envp; /* the complete environment: nothing of the daemon's own is inherited */
        const char *cwd;   /* NULL: the daemon's */
        int cwd_fd;        /* > 0: the working directory as an open (O_PATH) fd, wins over cwd: the
                            * directory checked is the one entered, whatever happens to its path */
        int stdin_fd;      /* > 0: the child's stdin, read from the fd's current offset (a memfd holding
                            * the input, say); otherwise /dev/null */
        int listen_fd;     /* >= 0: becomes the child's fd 3, with LISTEN_FDS=1 and LISTEN_PID=<its pid> */
        bool notify;       /* give the child its own NOTIFY_SOCKET and report what it sends there */
        int pdeath_signal; /* 0: SIGTERM */
        const char *owner; /* recorded with the process group in the store ("server:atlas"); NULL: not */
        Store *store;      /* where to record it (required with owner) */
} ChildSpec;

typedef struct ChildOps {
        /* One line of output (NUL-terminated, raw bytes: not necessarily valid UTF-8). */
        void (*line)(Child *c, ChildStream stream, const char *line, size_t len, void *userdata);
        /* One "KEY=VALUE" assignment from a datagram on NOTIFY_SOCKET (READY=1, STATUS=..., ...), sent by
         * a process with our uid. */
        void (*notify)(Child *c, const char *key, const char *value, void *userdata);
        /* The child exited. Runs exactly once, after every line it wrote before exiting has been delivered
         * and after the rest of its process group has been sent SIGKILL (a group outlives nobody). The
         * callback may free the Child. */
        void (*exited)(Child *c, const ChildExit *e, void *userdata);
} ChildOps;

/* Forks and execs. Fails with the exec's errno (-ENOENT for a missing program, -EACCES...) without calling
 * any callback. */
int child_spawn(Loop *l, const ChildSpec *spec, const ChildOps *ops, void *userdata, Child **ret);

pid_t child_pid(const Child *c); /* also its process group */
bool child_running(const Child *c);
uint64_t child_started_at(const Child *c); /* µs, CLOCK_REALTIME */

/* Signals the child's whole process group (-ESRCH once it has been reaped). */
int child_kill(Child *c, int sig);

/* SIGTERM to the child's group, then SIGKILL if it is still running grace_usec later (at once when
 * grace_usec is 0, or when no timer can be set). Calling it again does not move the deadline. */
int child_stop(Child *c, uint64_t grace_usec);

/* Stops watching the child. A child still running is sent SIGKILL (its group) and reaped first, so freeing
 * never leaves a zombie or an orphan. */
Child *child_free(Child *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Child *, child_free);

/* At daemon start: ends the process groups a previous daemon recorded in the store and never saw exit
 * (it crashed or was killed). A group is ended only while it is still provably ours: its leader is alive
 * with the recorded start time, or the leader is gone (or a zombie with the recorded start time, not reaped
 * yet) and members remain in the group. SIGTERM, then SIGKILL after grace_usec. Returns how many groups were ended; their records are removed. */
int child_reap_orphans(Store *store, uint64_t grace_usec);

/* Process start time (field 22 of /proc/PID/stat, clock ticks since boot), 0 when unknown. */
uint64_t child_proc_start_time(pid_t pid);
