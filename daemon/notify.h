/* SPDX-License-Identifier: MIT */
#pragma once

#include "dj-macro.h"

typedef struct Daemon Daemon;
typedef struct Notifier Notifier;

/* Desktop notifications (libnotify) from their own thread, so a slow or missing notification server never
 * blocks the loop. The notifier subscribes to events itself (server.state reaching "failed", a reload that
 * failed) and turns them into notifications; nothing calls it directly. A missing notification server is
 * logged once and otherwise ignored. */
int notifier_new(Daemon *d, Notifier **ret);
/* Stops the thread. Notifications queued before are still sent, but it waits at most about a second: a
 * notification server that does not answer does not hold up shutdown (the thread is then detached and
 * ends with the process). */
Notifier *notifier_free(Notifier *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(Notifier *, notifier_free);
