/*
 * virtio-console, one port (virtio 1.2 §5.3): see console.h. Both queues
 * are served on the I/O thread under vdev->lock: the transmitq when the
 * guest kicks it or out_fd has room again, the receiveq when the host
 * console offers input.
 *
 * out_fd is non-blocking: a write it cannot take whole (EAGAIN) leaves the
 * request held, its buffers trimmed by what went out, and the device
 * watches out_fd for EPOLLOUT and goes on where it stopped. The guest's
 * buffers are not copied: they stay the request's until it is pushed.
 *
 * A turn serves at most VIRTIO_CONSOLE_TX_BYTES or _REQUESTS, so a guest
 * printing gigabytes to a fast file holds the thread no longer than that:
 * then the device signals wake_fd, an eventfd of its own on the loop, and
 * goes on after the other devices and the signals had their turn.
 */
#include "virtio/console.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/event_loop.h"

#define CONSOLE_QUEUE_SIZE 128
#define CONSOLE_RX 0 /* receiveq: host to guest */
#define CONSOLE_TX 1 /* transmitq: guest to host */

struct virtio_console {
	struct virtio_device vdev;
	struct event_loop *loop;
	int out_fd;
	int out_flags;	      /* out_fd's flags before O_NONBLOCK was added; -1: untouched */
	bool out_watched;     /* the loop watches out_fd for EPOLLOUT */
	struct event_handler out_handler;
	int wake_fd;	      /* eventfd on the loop: the transmitq's budget ran out */
	struct event_handler wake_handler;
	int room_fd;	      /* eventfd: see console.h */
	bool want_room;	      /* a receive came up short: signal room_fd when buffers come */
	struct virtq_req req; /* the receive request being filled */
	struct iovec iov[VIRTQ_MAX_SIZE]; /* its buffers */

	/* TX: the request being written out, held while out_fd is full. */
	bool tx_held;
	unsigned int tx_next; /* its first readable buffer not all written yet */
	struct virtq_req tx;
	struct iovec tx_iov[VIRTQ_MAX_SIZE];
};

static void console_signal_room(struct virtio_console *vcon)
{
	if (!vcon->want_room)
		return;
	vcon->want_room = false;
	eventfd_write(vcon->room_fd, 1);
}

/* Watches out_fd for room while a write waits for it; only changes reach epoll. */
static int console_watch_out(struct virtio_console *vcon, bool want)
{
	int err;

	if (want == vcon->out_watched)
		return 0;
	if (want)
		err = event_loop_add(vcon->loop, vcon->out_fd, EPOLLOUT, &vcon->out_handler);
	else
		err = event_loop_remove(vcon->loop, vcon->out_fd);
	if (!err)
		vcon->out_watched = want;
	return err;
}

/* After serving queue q: a broken ring needs a reset, pushed requests an interrupt. */
static void console_queue_done(struct virtio_device *vdev, unsigned int q, bool pushed)
{
	virtio_check_rings(vdev);
	if (!vdev->queues[q].broken && pushed)
		virtio_queue_interrupt(vdev, q);
}

/*
 * Writes the rest of the held request, at most *budget bytes of it; each
 * buffer is trimmed by what went out, so the next call resumes there.
 * Returns 1 when all of it is out (or dropped: a write error means the
 * reader went away), 0 when the budget ran out first, -EAGAIN when out_fd
 * is full. Device-writable buffers are ignored.
 */
static int console_write_held(struct virtio_console *vcon, size_t *budget)
{
	struct virtq_req *req = &vcon->tx;

	while (vcon->out_fd >= 0 && vcon->tx_next < req->nr_readable) {
		struct iovec *iov = &req->readable[vcon->tx_next];
		ssize_t n;

		if (iov->iov_len == 0) {
			vcon->tx_next++;
			continue;
		}
		if (*budget == 0)
			return 0;
		n = write(vcon->out_fd, iov->iov_base, iov->iov_len < *budget ? iov->iov_len : *budget);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return -EAGAIN;
		if (n <= 0)
			break;
		iov->iov_base = (uint8_t *)iov->iov_base + n;
		iov->iov_len -= (size_t)n;
		*budget -= (size_t)n;
	}
	return 1;
}

/*
 * Serves the transmitq for one turn: the held request first, then new
 * ones, until the ring is empty, out_fd is full (EPOLLOUT brings us back)
 * or the budget is spent (wake_fd does). vdev->lock held, the device running.
 */
static void console_tx_run(struct virtio_console *vcon)
{
	struct virtio_device *vdev = &vcon->vdev;
	struct virtq *vq = &vdev->queues[CONSOLE_TX];
	size_t bytes = VIRTIO_CONSOLE_TX_BYTES;
	unsigned int requests = VIRTIO_CONSOLE_TX_REQUESTS;
	bool pushed = false, full = false;
	int rc;

	for (;;) {
		if (bytes == 0 || requests == 0) {
			eventfd_write(vcon->wake_fd, 1);
			break;
		}
		if (!vcon->tx_held) {
			rc = virtq_pop_or_enable_notify(vq, &vcon->tx);
			if (rc == 0 || rc == -EINVAL)
				break;
			requests--;
			if (rc < 0) {
				pushed = true; /* malformed (-EBADMSG): already pushed back */
				continue;
			}
			vcon->tx_held = true;
			vcon->tx_next = 0;
		}
		rc = console_write_held(vcon, &bytes);
		if (rc == 0)
			continue; /* the budget ran out inside it */
		/* A full out_fd that cannot be waited for drops the rest, as a write error does. */
		if (rc == -EAGAIN && console_watch_out(vcon, true) == 0) {
			full = true;
			break;
		}
		virtq_push(vq, vcon->tx.head, 0);
		vcon->tx_held = false;
		pushed = true;
	}
	if (!full)
		console_watch_out(vcon, false);
	console_queue_done(vdev, CONSOLE_TX, pushed);
}

/* out_fd has room again, or the turn came back: the transmitq goes on where it stopped. */
static void console_on_out(void *opaque, uint32_t events)
{
	struct virtio_console *vcon = opaque;

	(void)events;
	pthread_mutex_lock(&vcon->vdev.lock);
	if (virtio_queue_running(&vcon->vdev, CONSOLE_TX))
		console_tx_run(vcon);
	else
		console_watch_out(vcon, false); /* NEEDS_RESET: the reset drops the request */
	pthread_mutex_unlock(&vcon->vdev.lock);
}

/* wake_fd: console_tx_run() spent its budget with output left. */
static void console_on_wake(void *opaque, uint32_t events)
{
	struct virtio_console *vcon = opaque;
	eventfd_t count;

	if (eventfd_read(vcon->wake_fd, &count) == 0)
		console_on_out(vcon, events);
}

static void console_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_console *vcon = vdev->priv;

	if (q == CONSOLE_RX)
		console_signal_room(vcon); /* the host console comes back and offers its input */
	else
		console_tx_run(vcon);
}

/* DRIVER_OK: buffers the driver posted before may be waiting. */
static int console_activate(struct virtio_device *vdev)
{
	console_signal_room(vdev->priv);
	return 0;
}

/* The queues are forgotten whole: the held request goes with them. */
static void console_reset(struct virtio_device *vdev)
{
	struct virtio_console *vcon = vdev->priv;

	vcon->tx_held = false;
	console_watch_out(vcon, false);
}

static const struct virtio_device_ops console_ops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.nr_queues = 2,
	.queue_size = CONSOLE_QUEUE_SIZE,
	.config_size = 0, /* its fields exist only with features we do not offer (§5.3.4) */
	.queue_notify = console_queue_notify,
	.activate = console_activate,
	.reset = console_reset,
};

/* Fills posted receive buffers from buf; returns the bytes taken (vdev->lock held). */
static size_t console_fill_rx(struct virtio_console *vcon, const uint8_t *buf, size_t len)
{
	struct virtio_device *vdev = &vcon->vdev;
	struct virtq *vq = &vdev->queues[CONSOLE_RX];
	unsigned int budget = vq->size; /* pops per call: empty buffers cannot hold the thread */
	size_t taken = 0;
	bool pushed = false;
	int rc;

	while (taken < len) {
		if (budget-- == 0) {
			eventfd_write(vcon->room_fd, 1); /* more later, after other events */
			break;
		}
		rc = virtq_pop_or_enable_notify(vq, &vcon->req);
		if (rc == 0 || rc == -EINVAL)
			break;
		pushed = true; /* a malformed chain (-EBADMSG) was pushed back too */
		if (rc == 1) {
			size_t n = iov_write(vcon->req.writable, vcon->req.nr_writable, 0,
					     buf + taken, len - taken);

			virtq_push(vq, vcon->req.head, (uint32_t)n);
			taken += n;
		}
	}
	console_queue_done(vdev, CONSOLE_RX, pushed);
	return taken;
}

size_t virtio_console_receive(struct virtio_console *vcon, const uint8_t *buf, size_t len)
{
	size_t taken = 0;

	pthread_mutex_lock(&vcon->vdev.lock);
	if (virtio_queue_running(&vcon->vdev, CONSOLE_RX))
		taken = console_fill_rx(vcon, buf, len);
	if (taken < len)
		vcon->want_room = true;
	pthread_mutex_unlock(&vcon->vdev.lock);
	return taken;
}

int virtio_console_room_fd(const struct virtio_console *vcon)
{
	return vcon->room_fd;
}

/*
 * A terminal or pipe is made non-blocking (the flags live in the open file,
 * which the user's shell shares: destroy puts them back). A regular file
 * never blocks that way, and out_fd may be non-blocking already.
 */
static int console_out_nonblock(struct virtio_console *vcon)
{
	struct stat st;
	int flags;

	if (vcon->out_fd < 0)
		return 0;
	flags = fcntl(vcon->out_fd, F_GETFL);
	if (flags < 0 || fstat(vcon->out_fd, &st) < 0)
		return -errno;
	if ((flags & O_NONBLOCK) || S_ISREG(st.st_mode))
		return 0;
	if (fcntl(vcon->out_fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	vcon->out_flags = flags;
	return 0;
}

/* Frees what create made, however far it got, and gives out_fd its flags back. */
static void console_free(struct virtio_console *vcon)
{
	if (vcon->out_flags >= 0)
		fcntl(vcon->out_fd, F_SETFL, vcon->out_flags);
	if (vcon->wake_fd >= 0)
		close(vcon->wake_fd);
	if (vcon->room_fd >= 0)
		close(vcon->room_fd);
	virtio_device_destroy(&vcon->vdev);
	free(vcon);
}

struct virtio_console *virtio_console_create(const struct guest_mem *mem,
					     struct event_loop *loop, int out_fd)
{
	struct virtio_console *vcon = calloc(1, sizeof(*vcon));
	int err;

	if (!vcon)
		return NULL;
	virtio_device_init(&vcon->vdev, &console_ops, vcon, mem, 0);
	virtq_req_init(&vcon->req, vcon->iov, VIRTQ_MAX_SIZE);
	virtq_req_init(&vcon->tx, vcon->tx_iov, VIRTQ_MAX_SIZE);
	vcon->loop = loop;
	vcon->out_fd = out_fd;
	vcon->out_flags = -1;
	vcon->out_handler = (struct event_handler){ console_on_out, vcon };
	vcon->wake_handler = (struct event_handler){ console_on_wake, vcon };
	vcon->room_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	vcon->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (vcon->room_fd < 0 || vcon->wake_fd < 0)
		err = -errno;
	else
		err = console_out_nonblock(vcon);
	if (!err)
		err = event_loop_add(loop, vcon->wake_fd, EPOLLIN, &vcon->wake_handler);
	if (err) {
		console_free(vcon);
		errno = -err;
		return NULL;
	}
	return vcon;
}

struct virtio_device *virtio_console_device(struct virtio_console *vcon)
{
	return &vcon->vdev;
}

void virtio_console_destroy(struct virtio_console *vcon)
{
	console_watch_out(vcon, false);
	event_loop_remove(vcon->loop, vcon->wake_fd);
	console_free(vcon);
}
