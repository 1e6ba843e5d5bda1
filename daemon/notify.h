/* SPDX-License-Identifier: MIT */
#pragma once

#include "dj-macro.h"

typedef struct Daemon Daemon;
typedef struct Notifier Notifier;

/* Desktop notifications (libnotify) from their own thread, so a slow or missing notification server never
 * blocks the loop. The notifier subscribes to events itself (server.state reaching "failed", a reload that
 * failed, run.finished) and turns them into notifications; nothing calls it directly. A missing
 * notification server is logged once and otherwise ignored.
 *
 * Finished runs: one notification each ("LABEL failed", the workspace, the duration, why it failed; the
 * preset's icon; critical for failed and timed_out), except in a burst: of the runs finishing within 2 s
 * of the first, 3 are shown at once and the others as one "N more runs finished" when the 2 s are over
 * (and as long as runs keep finishing, every 2 s). Config notifications (read at each event): all,
 * failures (failed, timed_out and interrupted runs, and server failures), off (nothing). */
int notifier_new(Daemon *d, Notifier **ret);
/* Stops the thread. Notifications queued before (and runs held for a merge) are still sent, but it waits
 * at most about a second: a notification server that does not answer does not hold up shutdown (the
 * thread is then detached and ends with the process). */
Notifier *notifier_free(Notifier *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(Notifier *, notifier_free);
