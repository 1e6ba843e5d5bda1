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
/* Stops the thread (waits at most a moment for a notification being sent). */
Notifier *notifier_free(Notifier *n);
DEFINE_TRIVIAL_CLEANUP_FUNC(Notifier *, notifier_free);
