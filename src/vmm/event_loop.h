/*
 * The I/O thread's epoll loop. Each watched fd carries a handler; handlers
 * run on the loop's thread, one at a time.
 */
#ifndef VIREO_VMM_EVENT_LOOP_H
#define VIREO_VMM_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct event_handler {
	void (*fn)(void *opaque, uint32_t events);
	void *opaque;
};

struct event_loop {
	int epoll_fd;
	bool stop; /* set by a handler to end event_loop_run() */
};

int event_loop_init(struct event_loop *loop);
void event_loop_destroy(struct event_loop *loop);

/* handler must stay valid while fd is watched. */
int event_loop_add(struct event_loop *loop, int fd, uint32_t events,
		   struct event_handler *handler);
int event_loop_remove(struct event_loop *loop, int fd);
/* Changes the events watched on fd (which must be watched). */
int event_loop_modify(struct event_loop *loop, int fd, uint32_t events,
		      struct event_handler *handler);

/* Dispatches events until a handler sets loop->stop. */
int event_loop_run(struct event_loop *loop);

#endif
