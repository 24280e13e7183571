/*
 * virtio-rng (virtio 1.2 §5.4): one queue of device-writable buffers that
 * the device fills from getrandom(2). The rate limit is described in rng.h.
 *
 * The bucket counts credit in byte-nanoseconds (elapsed ns x bytes per
 * second), so refills at any frequency add up exactly with no rounding
 * lost; a byte costs NSEC_PER_SEC of credit. A request is served whole
 * whenever the credit is positive, and may leave it negative (a debt the
 * refill pays back before the next one): the spec allows shorter answers,
 * but Linux 6.1.y's driver can leave a reader waiting forever after one.
 *
 * Everything here runs on the I/O thread under vdev->lock: queue_notify,
 * and the timer's wake-up through virtio_notify().
 */
#include "virtio/rng.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "vmm/clock.h"
#include "vmm/event_loop.h"

#define RNG_QUEUE_SIZE 64
#define RNG_WAKEUPS_PER_SEC 10 /* while throttled, the timer fires at most this often */

struct virtio_rng {
	struct virtio_device vdev;
	struct event_loop *loop;
	uint64_t rate;	      /* bytes per second */
	int64_t credit;	      /* byte-nanoseconds: at most rate * NSEC_PER_SEC; < 0: a debt */
	uint64_t refilled_ns; /* CLOCK_MONOTONIC time of the last refill */
	int timer_fd;	      /* wakes a throttled device */
	struct event_handler timer_handler;
	struct virtq_req req; /* the request being served */
	struct iovec iov[VIRTQ_MAX_SIZE]; /* its buffers */
};

/* No overflow: rate * NSEC_PER_SEC < 2^60, and elapsed * rate stays below the room left. */
static void rng_refill(struct virtio_rng *rng)
{
	uint64_t now = clock_now_ns(), elapsed = now - rng->refilled_ns;
	int64_t full = (int64_t)(rng->rate * NSEC_PER_SEC);
	uint64_t room = (uint64_t)(full - rng->credit);

	rng->refilled_ns = now;
	if (elapsed >= room / rng->rate)
		rng->credit = full;
	else
		rng->credit += (int64_t)(elapsed * rng->rate);
}

/* Sleeps until the bucket holds 1/RNG_WAKEUPS_PER_SEC of a second's worth (at least a byte). */
static void rng_arm_timer(struct virtio_rng *rng)
{
	uint64_t target = rng->rate / RNG_WAKEUPS_PER_SEC;
	uint64_t need, delay;
	struct itimerspec when = { 0 };

	target = (target ? target : 1) * NSEC_PER_SEC;
	need = target + (uint64_t)-rng->credit; /* credit <= 0 here */
	delay = (need + rng->rate - 1) / rng->rate; /* ns, at least 1: 0 would disarm */
	when.it_value = clock_timespec(delay);
	timerfd_settime(rng->timer_fd, 0, &when, NULL);
}

static void rng_on_timer(void *opaque, uint32_t events)
{
	struct virtio_rng *rng = opaque;
	uint64_t expirations;

	(void)events;
	if (read(rng->timer_fd, &expirations, sizeof(expirations)) < 0)
		return; /* EAGAIN: re-armed meanwhile, it fires again */
	virtio_notify(&rng->vdev, 0);
}

/*
 * len random bytes. Without GRND_NONBLOCK: only a host whose own pool is
 * not initialized yet (its early boot) blocks here, and a short answer
 * could hang the guest's reader (see the top of this file).
 */
static size_t rng_getrandom(uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = getrandom(buf + got, len - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

/* Fills rng->req's writable buffers, up to the cap, and charges the bucket; returns the bytes. */
static uint32_t rng_fill(struct virtio_rng *rng)
{
	struct virtq_req *req = &rng->req;
	uint32_t want = req->writable_len, done = 0;

	if (want > VIRTIO_RNG_MAX_REQUEST)
		want = VIRTIO_RNG_MAX_REQUEST;
	for (unsigned int i = 0; i < req->nr_writable && done < want; i++) {
		size_t len = req->writable[i].iov_len;
		size_t got;

		if (len > want - done)
			len = want - done;
		got = rng_getrandom(req->writable[i].iov_base, len);
		done += (uint32_t)got;
		if (got < len)
			break; /* getrandom(2) failed: answer what we have */
	}
	rng->credit -= (int64_t)done * (int64_t)NSEC_PER_SEC;
	return done;
}

static void rng_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_rng *rng = vdev->priv;
	struct virtq *vq = &vdev->queues[q];
	int rc;

	rng_refill(rng);
	while (rng->credit > 0 && (rc = virtq_pop_or_enable_notify(vq, &rng->req)) != 0) {
		if (rc == -EINVAL)
			return; /* the ring is broken: the transport resets the device */
		if (rc == 1)
			virtq_push(vq, rng->req.head, rng_fill(rng));
	}
	virtio_queue_interrupt(vdev, q);
	/* Out of credit: requests wait in the ring, unkicked, for the timer. */
	if (rng->credit <= 0)
		rng_arm_timer(rng);
}

static const struct virtio_device_ops rng_ops = {
	.name = "virtio-rng",
	.device_id = VIRTIO_ID_RNG,
	.nr_queues = 1,
	.queue_size = RNG_QUEUE_SIZE,
	.config_size = 0, /* §5.4.4: none */
	.queue_notify = rng_queue_notify,
};

struct virtio_rng *virtio_rng_create(const struct guest_mem *mem, struct event_loop *loop,
				     uint64_t bytes_per_sec)
{
	struct virtio_rng *rng;
	int err;

	if (bytes_per_sec < VIRTIO_RNG_MIN_RATE || bytes_per_sec > VIRTIO_RNG_MAX_RATE) {
		errno = EINVAL;
		return NULL;
	}
	rng = calloc(1, sizeof(*rng));
	if (!rng)
		return NULL;
	rng->loop = loop;
	rng->rate = bytes_per_sec;
	rng->credit = (int64_t)(bytes_per_sec * NSEC_PER_SEC);
	rng->refilled_ns = clock_now_ns();
	rng->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (rng->timer_fd < 0) {
		free(rng);
		return NULL;
	}
	rng->timer_handler = (struct event_handler){ rng_on_timer, rng };
	err = event_loop_add(loop, rng->timer_fd, EPOLLIN, &rng->timer_handler);
	if (err) {
		close(rng->timer_fd);
		free(rng);
		errno = -err;
		return NULL;
	}
	virtq_req_init(&rng->req, rng->iov, VIRTQ_MAX_SIZE);
	virtio_device_init(&rng->vdev, &rng_ops, rng, mem, 0);
	return rng;
}

struct virtio_device *virtio_rng_device(struct virtio_rng *rng)
{
	return &rng->vdev;
}

void virtio_rng_destroy(struct virtio_rng *rng)
{
	event_loop_remove(rng->loop, rng->timer_fd);
	close(rng->timer_fd);
	virtio_device_destroy(&rng->vdev);
	free(rng);
}
