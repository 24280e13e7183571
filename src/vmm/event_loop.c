/* The epoll loop: see event_loop.h. */
#include "vmm/event_loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EVENT_BATCH 32

int event_loop_init(struct event_loop *loop)
{
	loop->stop = false;
	loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	return loop->epoll_fd < 0 ? -errno : 0;
}

void event_loop_destroy(struct event_loop *loop)
{
	if (loop->epoll_fd >= 0)
		close(loop->epoll_fd);
	loop->epoll_fd = -1;
}

int event_loop_add(struct event_loop *loop, int fd, uint32_t events,
		   struct event_handler *handler)
{
	struct epoll_event ev = { .events = events, .data.ptr = handler };

	return epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int event_loop_remove(struct event_loop *loop, int fd)
{
	return epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
}

int event_loop_modify(struct event_loop *loop, int fd, uint32_t events,
		      struct event_handler *handler)
{
	struct epoll_event ev = { .events = events, .data.ptr = handler };

	return epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

int event_loop_run(struct event_loop *loop)
{
	struct epoll_event events[EVENT_BATCH];

	while (!loop->stop) {
		int n = epoll_wait(loop->epoll_fd, events, EVENT_BATCH, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n && !loop->stop; i++) {
			struct event_handler *h = events[i].data.ptr;

			h->fn(h->opaque, events[i].events);
		}
	}
	return 0;
}
