/*
 * virtio-console, one port (virtio 1.2 §5.3): see console.h. Both queues
 * are served on the I/O thread under vdev->lock: the transmitq when the
 * guest kicks it, the receiveq when the host console offers input.
 */
#include "virtio/console.h"

#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define CONSOLE_QUEUE_SIZE 128
#define CONSOLE_RX 0 /* receiveq: host to guest */
#define CONSOLE_TX 1 /* transmitq: guest to host */

struct virtio_console {
	struct virtio_device vdev;
	int out_fd;
	int room_fd;	      /* eventfd: see console.h */
	bool want_room;	      /* a receive came up short: signal room_fd when buffers come */
	struct virtq_req req; /* the request being served */
	struct iovec iov[VIRTQ_MAX_SIZE]; /* its buffers */
};

static void console_signal_room(struct virtio_console *vcon)
{
	if (!vcon->want_room)
		return;
	vcon->want_room = false;
	eventfd_write(vcon->room_fd, 1);
}

/* Writes all of buf, waiting for room when fd is non-blocking; false on an error. */
static bool write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLOUT };

			poll(&p, 1, -1);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

/* Everything the driver put in the request goes out; device-writable buffers are ignored. */
static void console_transmit(struct virtio_console *vcon)
{
	const struct virtq_req *req = &vcon->req;
	bool ok = vcon->out_fd >= 0;

	for (unsigned int i = 0; ok && i < req->nr_readable; i++)
		ok = write_all(vcon->out_fd, req->readable[i].iov_base, req->readable[i].iov_len);
}

static void console_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_console *vcon = vdev->priv;
	struct virtq *vq = &vdev->queues[q];
	int rc;

	if (q == CONSOLE_RX) {
		/* New receive buffers: the host console comes back and offers its input. */
		console_signal_room(vcon);
		return;
	}
	while ((rc = virtq_pop_or_enable_notify(vq, &vcon->req)) != 0) {
		if (rc == -EINVAL)
			return; /* the ring is broken: the transport resets the device */
		if (rc == 1) {
			console_transmit(vcon);
			virtq_push(vq, vcon->req.head, 0);
		}
	}
	virtio_queue_interrupt(vdev, q);
}

/* DRIVER_OK: buffers the driver posted before may be waiting. */
static int console_activate(struct virtio_device *vdev)
{
	console_signal_room(vdev->priv);
	return 0;
}

static const struct virtio_device_ops console_ops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.nr_queues = 2,
	.queue_size = CONSOLE_QUEUE_SIZE,
	.config_size = 0, /* its fields exist only with features we do not offer (§5.3.4) */
	.queue_notify = console_queue_notify,
	.activate = console_activate,
};

static bool rx_running(const struct virtio_device *vdev)
{
	return virtio_running(vdev) && vdev->queues[CONSOLE_RX].ready;
}

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
	if (vq->broken)
		virtio_set_needs_reset(vdev);
	else if (pushed)
		virtio_queue_interrupt(vdev, CONSOLE_RX);
	return taken;
}

size_t virtio_console_receive(struct virtio_console *vcon, const uint8_t *buf, size_t len)
{
	size_t taken = 0;

	pthread_mutex_lock(&vcon->vdev.lock);
	if (rx_running(&vcon->vdev))
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

struct virtio_console *virtio_console_create(const struct guest_mem *mem, int out_fd)
{
	struct virtio_console *vcon = calloc(1, sizeof(*vcon));

	if (!vcon)
		return NULL;
	vcon->out_fd = out_fd;
	vcon->room_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (vcon->room_fd < 0) {
		free(vcon);
		return NULL;
	}
	virtq_req_init(&vcon->req, vcon->iov, VIRTQ_MAX_SIZE);
	virtio_device_init(&vcon->vdev, &console_ops, vcon, mem, 0);
	return vcon;
}

struct virtio_device *virtio_console_device(struct virtio_console *vcon)
{
	return &vcon->vdev;
}

void virtio_console_destroy(struct virtio_console *vcon)
{
	close(vcon->room_fd);
	virtio_device_destroy(&vcon->vdev);
	free(vcon);
}
