/*
 * What the fuzz targets share besides their input: how they stop on a
 * finding, and how they turn the event loop by hand (the unit tests' pump).
 */
#ifndef VIREO_FUZZ_SUPPORT_H
#define VIREO_FUZZ_SUPPORT_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "vmm/event_loop.h"

/* A broken invariant: abort, so libFuzzer keeps the input. */
static inline void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz: %s\n", what);
	abort();
}

/*
 * Runs the handlers of what is ready on loop, until nothing is (bounded):
 * completions, backend readiness, timers. The first wait lasts up to
 * timeout_ms, for events that come by themselves (an engine's completion
 * on another thread, a timer).
 */
static inline void fuzz_pump(struct event_loop *loop, int timeout_ms)
{
	struct epoll_event ev[8];

	for (int round = 0; round < 8; round++) {
		int n = epoll_wait(loop->epoll_fd, ev, 8, round ? 0 : timeout_ms);

		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			struct event_handler *h = ev[i].data.ptr;

			h->fn(h->opaque, ev[i].events);
		}
	}
}

#endif
