/*
 * virtio-net (virtio 1.2 §5.1): see net.h. Everything runs on the I/O
 * thread under vdev->lock: queue kicks (through virtio_notify), the
 * backend's fd on the event loop, and, on a vCPU thread, activate/reset.
 *
 * Every frame carries the 12-byte struct virtio_net_hdr_mrg_rxbuf, which
 * the backend reads or writes with the frame in one vectored call, straight
 * from and into the guest's buffers: no bounce copy either way.
 *
 * RX: the device gathers buffers until they can hold the largest frame
 * the backend may deliver (rx_max), reads one frame into them, hands the
 * driver the ones it filled (all at once: §5.1.6.4's num_buffers) and keeps
 * the rest for the next frame; what is left when the backend runs dry goes
 * back to the ring unused (virtq_unpop). Without enough buffers the device
 * stops polling the backend and waits for the driver's next RX kick, so
 * nothing is dropped and nothing spins.
 *
 * TX: each request is a header and a frame; the header is checked against
 * what was negotiated, copied (the guest cannot change it afterwards) and
 * sent with the frame. A full backend (-EAGAIN) parks the request and the
 * device waits for EPOLLOUT; a kick serves at most VIRTIO_NET_TX_BUDGET
 * frames before letting the loop serve others (RX among them).
 */
#include "virtio/net.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "net/net.h"
#include "net/vhost.h"
#include "vmm/event_loop.h"

#define RXQ 0
#define TXQ 1
#define F(bit) (1ULL << (bit))

/* What the device offers whatever the backend; offloads come from the backend. */
#define NET_BASE_FEATURES                                                               \
	(F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS) | F(VIRTIO_NET_F_MTU) |              \
	 F(VIRTIO_NET_F_MRG_RXBUF))
#define NET_GUEST_GSO (F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6))

struct net_rx_buf {
	uint16_t head;
	uint16_t nr_iov; /* its entries in rx_iov, after those of the buffers before it */
	uint32_t len;
};

struct virtio_net {
	struct virtio_device vdev;
	struct net_backend *be;
	struct event_loop *loop;
	char name[16];
	struct virtio_net_config config;
	uint64_t features; /* negotiated (net_features_ok() held) */
	bool active;	   /* DRIVER_OK and the device moves the frames itself */
	bool be_dead;	   /* the backend failed for good: the link is down */
	uint32_t watched;  /* events the loop watches on be->fd; 0: not watched */
	struct event_handler be_handler;

	/* RX: buffers held for the next frame, in the order they were popped. */
	size_t rx_max;	       /* the largest frame the backend may deliver, header included */
	bool rx_stalled;       /* waiting for the driver's kick: be->fd is not polled for input */
	unsigned int rx_nr;    /* buffers held */
	unsigned int rx_stuck; /* leading ones that cannot be unpopped (pushed empty instead) */
	unsigned int rx_niov;
	size_t rx_len; /* bytes they hold */
	struct net_rx_buf rx_bufs[VIRTQ_MAX_SIZE];
	struct iovec rx_iov[VIRTQ_MAX_SIZE];

	/* TX: the frame being sent, parked when the backend was full. */
	bool tx_parked;
	bool tx_more; /* the budget ran out with work left: EPOLLOUT brings us back */
	uint16_t tx_head;
	int tx_niov;
	uint32_t tx_len;
	struct virtio_net_hdr_mrg_rxbuf tx_hdr; /* the checked copy that is sent */
	struct iovec tx_iov[VIRTQ_MAX_SIZE];

	struct virtq_req req; /* scratch for virtq_pop, both queues */
	struct iovec req_iov[VIRTQ_MAX_SIZE];
	struct virtio_net_stats stats;

	/* vhost: the kernel has the queues while vhost_on. */
	struct vhost_net *vhost;
	bool vhost_on;
	struct virtio_net_kicks kicks;
	bool have_kicks;
	int call_fd; /* vhost signals it for either queue; relayed to the guest */
	struct event_handler call_handler;
};

static bool has(const struct virtio_net *net, unsigned int bit)
{
	return net->features & F(bit);
}

/* The device moves frames itself: running (device.h), no vhost, a live backend. */
static bool net_running(const struct virtio_net *net)
{
	return net->active && !net->be_dead && virtio_running(&net->vdev);
}

/* The events be->fd is watched for follow from the state; only changes reach epoll. */
static void net_watch(struct virtio_net *net)
{
	uint32_t want = 0;
	int err;

	if (net_running(net)) {
		if (!net->rx_stalled)
			want |= EPOLLIN;
		if (net->tx_parked || net->tx_more)
			want |= EPOLLOUT;
	}
	if (want == net->watched)
		return;
	if (!want)
		err = event_loop_remove(net->loop, net->be->fd);
	else if (!net->watched)
		err = event_loop_add(net->loop, net->be->fd, want, &net->be_handler);
	else
		err = event_loop_modify(net->loop, net->be->fd, want, &net->be_handler);
	if (err)
		fprintf(stderr, "vireo: %s: cannot watch %s: %s\n", net->name, net->be->what,
			strerror(-err));
	else
		net->watched = want;
}

/* The backend is gone (a TAP deleted under us): link down, the device stays. */
static void net_backend_failed(struct virtio_net *net, int err)
{
	if (net->be_dead)
		return;
	fprintf(stderr, "vireo: %s: %s failed (%s); the link is down\n", net->name,
		net->be->what, strerror(-err));
	net->be_dead = true;
	net->config.status = 0;
	virtio_config_changed(&net->vdev);
}

/* --- RX ---------------------------------------------------------------------------- */

/* Returns the held buffers to the driver's ring; true if some had to be pushed empty. */
static bool rx_release(struct virtio_net *net)
{
	struct virtq *vq = &net->vdev.queues[RXQ];
	bool pushed = net->rx_stuck > 0;

	for (unsigned int i = 0; i < net->rx_stuck; i++)
		virtq_push(vq, net->rx_bufs[i].head, 0);
	virtq_unpop(vq, (uint16_t)(net->rx_nr - net->rx_stuck));
	net->rx_nr = net->rx_stuck = net->rx_niov = 0;
	net->rx_len = 0;
	return pushed;
}

/* A chain virtq_pop() pushed back itself: what is held before it can no longer be unpopped. */
static void rx_note_consumed(struct virtio_net *net)
{
	net->rx_stuck = net->rx_nr;
	net->stats.bad_chains++;
}

static bool rx_enough(const struct virtio_net *net)
{
	if (!has(net, VIRTIO_NET_F_MRG_RXBUF))
		return net->rx_nr >= 1; /* one chain per frame, as large as the driver made it */
	return net->rx_len >= net->rx_max;
}

/*
 * Holds buffers until a frame of rx_max fits. Returns 1 when it does (or
 * nothing more can be held), 0 when the ring ran out first (the driver
 * notifies when it adds more), -1 when the ring is broken.
 */
static int rx_gather(struct virtio_net *net, bool *pushed)
{
	struct virtq *vq = &net->vdev.queues[RXQ];
	struct virtq_req *req = &net->req;

	while (!rx_enough(net)) {
		int rc = virtq_pop_or_enable_notify(vq, req);

		if (rc == 0)
			return 0;
		if (rc == -EINVAL)
			return -1;
		if (rc < 0) {
			rx_note_consumed(net);
			*pushed = true;
			continue;
		}
		if (req->nr_writable == 0 || req->writable_len < NET_HDR_LEN) {
			virtq_push(vq, req->head, 0); /* no room for even a header */
			rx_note_consumed(net);
			*pushed = true;
			continue;
		}
		if (net->rx_niov + req->nr_writable > VIRTQ_MAX_SIZE) {
			virtq_unpop(vq, 1); /* it was the last popped */
			return 1;
		}
		memcpy(&net->rx_iov[net->rx_niov], req->writable,
		       req->nr_writable * sizeof(struct iovec));
		net->rx_bufs[net->rx_nr++] = (struct net_rx_buf){
			.head = req->head, .nr_iov = req->nr_writable, .len = req->writable_len,
		};
		net->rx_niov += req->nr_writable;
		net->rx_len += req->writable_len;
	}
	return 1;
}

/* Drops the first k held buffers (used by a frame) from the hold. */
static void rx_consume(struct virtio_net *net, unsigned int k)
{
	unsigned int iovs = 0;

	for (unsigned int i = 0; i < k; i++) {
		iovs += net->rx_bufs[i].nr_iov;
		net->rx_len -= net->rx_bufs[i].len;
	}
	memmove(net->rx_bufs, net->rx_bufs + k, (net->rx_nr - k) * sizeof(net->rx_bufs[0]));
	memmove(net->rx_iov, net->rx_iov + iovs, (net->rx_niov - iovs) * sizeof(struct iovec));
	net->rx_nr -= k;
	net->rx_niov -= iovs;
	net->rx_stuck = net->rx_stuck > k ? net->rx_stuck - k : 0;
}

/* A frame of len bytes (header included) is in the held buffers: hand it over. */
static void rx_deliver(struct virtio_net *net, size_t len)
{
	struct virtq *vq = &net->vdev.queues[RXQ];
	size_t left = len;
	unsigned int k = 0;
	uint16_t num_buffers;

	do {
		uint32_t chunk = net->rx_bufs[k].len < left ? net->rx_bufs[k].len : (uint32_t)left;

		virtq_fill(vq, k, net->rx_bufs[k].head, chunk);
		left -= chunk;
		k++;
	} while (left > 0);
	num_buffers = htole16((uint16_t)k);
	iov_write(net->rx_iov, net->rx_niov, offsetof(struct virtio_net_hdr_mrg_rxbuf, num_buffers),
		  &num_buffers, sizeof(num_buffers));
	if (!has(net, VIRTIO_NET_F_GUEST_CSUM)) {
		/* §5.1.6.4.1: no flags (not even DATA_VALID) unless GUEST_CSUM was agreed. */
		uint8_t flags = 0;

		iov_write(net->rx_iov, net->rx_niov, 0, &flags, 1);
	}
	virtq_flush(vq, k); /* all k at once: the driver reads num_buffers from the first */
	rx_consume(net, k);
	net->stats.rx_frames++;
	net->stats.rx_bytes += len;
}

static void rx_run(struct virtio_net *net)
{
	bool pushed = false;

	for (unsigned int tries = 0; tries < VIRTIO_NET_RX_BUDGET; tries++) {
		unsigned int niov;
		size_t room;
		ssize_t n;
		int rc = rx_gather(net, &pushed);

		if (rc < 0)
			break;
		if (rc == 0) {
			net->rx_stalled = true; /* the driver's kick resumes us */
			net->stats.rx_stalls++;
			break;
		}
		niov = has(net, VIRTIO_NET_F_MRG_RXBUF) ? net->rx_niov : net->rx_bufs[0].nr_iov;
		room = has(net, VIRTIO_NET_F_MRG_RXBUF) ? net->rx_len : net->rx_bufs[0].len;
		n = net->be->ops->recv(net->be, net->rx_iov, (int)niov);
		if (n == -EAGAIN)
			break;
		if (n == -EBADFD) {
			net_backend_failed(net, (int)n);
			break;
		}
		if (n < 0 || (size_t)n > room || n < NET_HDR_LEN) {
			net->stats.rx_dropped++; /* lost or cut short: the buffers stay held */
			continue;
		}
		rx_deliver(net, (size_t)n);
		pushed = true;
	}
	pushed |= rx_release(net);
	if (pushed)
		virtio_queue_interrupt(&net->vdev, RXQ);
}

/* --- TX ---------------------------------------------------------------------------- */

/* Is the driver's header one that the negotiated features allow (§5.1.6.2.1)? */
static bool tx_header_ok(const struct virtio_net *net, const struct virtio_net_hdr *h,
			 uint32_t frame_len)
{
	uint8_t gso = h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
	bool csum = h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM;

	if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		return false; /* DATA_VALID and RSC_INFO are the device's to set */
	if (le16toh(h->hdr_len) > frame_len)
		return false;
	if (csum && (!has(net, VIRTIO_NET_F_CSUM) ||
		     (uint32_t)le16toh(h->csum_start) + le16toh(h->csum_offset) + 2 > frame_len))
		return false;
	if (gso == VIRTIO_NET_HDR_GSO_NONE)
		return !(h->gso_type & VIRTIO_NET_HDR_GSO_ECN);
	if (gso == VIRTIO_NET_HDR_GSO_TCPV4 && !has(net, VIRTIO_NET_F_HOST_TSO4))
		return false;
	if (gso == VIRTIO_NET_HDR_GSO_TCPV6 && !has(net, VIRTIO_NET_F_HOST_TSO6))
		return false;
	if (gso != VIRTIO_NET_HDR_GSO_TCPV4 && gso != VIRTIO_NET_HDR_GSO_TCPV6)
		return false; /* UFO, USO: never offered */
	if ((h->gso_type & VIRTIO_NET_HDR_GSO_ECN) && !has(net, VIRTIO_NET_F_HOST_ECN))
		return false;
	return csum && le16toh(h->gso_size) != 0;
}

/* Turns the popped request into tx_iov (checked header copy + frame); false: malformed. */
static bool tx_prepare(struct virtio_net *net)
{
	struct virtq_req *req = &net->req;
	uint32_t frame_len;

	net->tx_head = req->head;
	if (req->readable_len < NET_HDR_LEN + NET_ETH_HLEN || req->readable_len > NET_MAX_FRAME)
		return false;
	frame_len = req->readable_len - NET_HDR_LEN;
	iov_read(req->readable, req->nr_readable, 0, &net->tx_hdr, NET_HDR_LEN);
	if (!tx_header_ok(net, &net->tx_hdr.hdr, frame_len))
		return false;
	net->tx_hdr.num_buffers = 0;
	net->tx_iov[0] = (struct iovec){ &net->tx_hdr, NET_HDR_LEN };
	net->tx_niov = 1 + (int)iov_slice(req->readable, req->nr_readable, NET_HDR_LEN, frame_len,
					 net->tx_iov + 1, VIRTQ_MAX_SIZE - 1);
	net->tx_len = req->readable_len;
	/* More pieces than one writev takes (IOV_MAX): only a hostile chain is that scattered. */
	for (int i = 1; i < net->tx_niov; i++)
		frame_len -= (uint32_t)net->tx_iov[i].iov_len;
	return frame_len == 0;
}

static void tx_run(struct virtio_net *net)
{
	struct virtq *vq = &net->vdev.queues[TXQ];
	unsigned int frames = 0;
	bool pushed = false;

	net->tx_more = false;
	for (;;) {
		ssize_t n;

		if (!net->tx_parked) {
			int rc;

			if (frames == VIRTIO_NET_TX_BUDGET && !net->be_dead) {
				net->tx_more = true; /* come back after the others had a turn */
				break;
			}
			rc = virtq_pop_or_enable_notify(vq, &net->req);
			if (rc == 0 || rc == -EINVAL)
				break;
			frames++;
			if (rc < 0) {
				net->stats.bad_chains++;
				pushed = true;
				continue;
			}
			if (!tx_prepare(net)) {
				net->stats.tx_malformed++;
				virtq_push(vq, net->tx_head, 0);
				pushed = true;
				continue;
			}
		}
		/* A dead backend drains the ring, so the driver's queue never stalls. */
		n = net->be_dead ? -EBADFD : net->be->ops->send(net->be, net->tx_iov, net->tx_niov);
		if (n == -EAGAIN) {
			net->tx_parked = true; /* EPOLLOUT brings us back to this frame */
			break;
		}
		net->tx_parked = false;
		if (n == -EBADFD)
			net_backend_failed(net, (int)n);
		if (n < 0) {
			net->stats.tx_dropped++;
		} else {
			net->stats.tx_frames++;
			net->stats.tx_bytes += net->tx_len;
		}
		virtq_push(vq, net->tx_head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_queue_interrupt(&net->vdev, TXQ);
}

/* --- events ------------------------------------------------------------------------ */

static void net_on_backend(void *opaque, uint32_t events)
{
	struct virtio_net *net = opaque;

	pthread_mutex_lock(&net->vdev.lock);
	if (net_running(net) && (events & (EPOLLERR | EPOLLHUP)))
		net_backend_failed(net, -EBADFD);
	if (net_running(net) && (events & EPOLLOUT))
		tx_run(net);
	if (net_running(net) && (events & EPOLLIN) && !net->rx_stalled)
		rx_run(net);
	virtio_check_rings(&net->vdev);
	net_watch(net);
	pthread_mutex_unlock(&net->vdev.lock);
}

static void net_queue_notify(struct virtio_device *vdev, unsigned int q)
{
	struct virtio_net *net = vdev->priv;

	if (!net->active)
		return; /* vhost-net has the queues; virtio_notify() checked the rest */
	if (q == TXQ && !net->tx_parked) {
		tx_run(net);
	} else if (q == RXQ && net->rx_stalled && !net->be_dead) {
		net->rx_stalled = false; /* buffers came: the backend may deliver again */
		rx_run(net);
	}
	virtio_check_rings(&net->vdev);
	net_watch(net);
}

/* --- vhost ------------------------------------------------------------------------- */

/* vhost used a ring: the interrupt status first, then the interrupt (virtio-mmio). */
static void net_on_vhost_call(void *opaque, uint32_t events)
{
	struct virtio_net *net = opaque;
	uint64_t count;

	(void)events;
	if (read(net->call_fd, &count, sizeof(count)) < 0)
		return;
	atomic_fetch_or(&net->vdev.interrupt_status, VIRTIO_MMIO_INT_VRING);
	irq_line_pulse(&net->vdev.irq);
}

static int net_vhost_start(struct virtio_net *net)
{
	struct vhost_net_ring rings[VHOST_NET_RINGS];
	uint64_t one = 1;
	int err;

	if (net->vhost_on)
		return 0; /* the kernel has the rings already: adding its call fd twice fails */
	for (unsigned int q = 0; q < VHOST_NET_RINGS; q++) {
		struct virtq_rings vr;

		if (!net->vdev.queues[q].ready)
			return -EINVAL;
		virtq_get_rings(&net->vdev.queues[q], &vr);
		rings[q] = (struct vhost_net_ring){
			.num = vr.size, .base = vr.next_avail,
			.desc = vr.desc, .avail = vr.avail, .used = vr.used,
			.kick_fd = net->kicks.kick_fds[q], .call_fd = net->call_fd,
		};
	}
	err = event_loop_add(net->loop, net->call_fd, EPOLLIN, &net->call_handler);
	if (err)
		return err;
	err = vhost_net_start(net->vhost, net->vdev.mem,
			      net->vdev.driver_features & vhost_net_features(net->vhost), rings,
			      net->be->fd);
	if (err) {
		event_loop_remove(net->loop, net->call_fd);
		return err;
	}
	for (unsigned int q = 0; q < VHOST_NET_RINGS; q++) {
		net->kicks.watch(net->kicks.opaque, q, false);
		/* Kicks the transport ate before the hand-over: vhost looks at the rings now. */
		if (write(net->kicks.kick_fds[q], &one, sizeof(one)) < 0)
			break;
	}
	net->vhost_on = true;
	return 0;
}

/* rewatch: the transport reads the kicks again (not when the VM is being torn down). */
static void net_vhost_stop(struct virtio_net *net, bool rewatch)
{
	if (!net->vhost_on)
		return;
	vhost_net_stop(net->vhost);
	event_loop_remove(net->loop, net->call_fd);
	for (unsigned int q = 0; rewatch && q < VHOST_NET_RINGS; q++)
		net->kicks.watch(net->kicks.opaque, q, true);
	net->vhost_on = false;
}

/* --- device ------------------------------------------------------------------------ */

/*
 * §5.1.3.1: each offload needs its prerequisite (TSO the matching checksum
 * offload, ECN some TSO). A driver that accepts one without the other has
 * misread the device, and gets no FEATURES_OK rather than a guess.
 */
static bool net_features_ok(const struct virtio_device *vdev)
{
	uint64_t f = vdev->driver_features;
	uint64_t host_tso = F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6);

	if ((f & host_tso) && !(f & F(VIRTIO_NET_F_CSUM)))
		return false;
	if ((f & F(VIRTIO_NET_F_HOST_ECN)) && !(f & host_tso))
		return false;
	if ((f & NET_GUEST_GSO) && !(f & F(VIRTIO_NET_F_GUEST_CSUM)))
		return false;
	return !(f & F(VIRTIO_NET_F_GUEST_ECN)) || (f & NET_GUEST_GSO);
}

static int net_activate(struct virtio_device *vdev)
{
	struct virtio_net *net = vdev->priv;
	int err;

	net->features = vdev->driver_features;
	if (net->features & NET_GUEST_GSO)
		net->rx_max = NET_MAX_FRAME;
	else
		net->rx_max = NET_HDR_LEN + NET_ETH_HLEN + NET_VLAN_HLEN + net->be->mtu;
	if (net->be->ops->set_offload) {
		err = net->be->ops->set_offload(net->be, net->features);
		if (err)
			fprintf(stderr, "vireo: %s: %s: cannot set offloads: %s\n", net->name,
				net->be->what, strerror(-err));
	}
	if (net->vhost && net->have_kicks && !net->be_dead) {
		err = net_vhost_start(net);
		if (!err)
			return 0;
		fprintf(stderr, "vireo: %s: vhost-net did not start (%s); Vireo moves the frames "
				"itself until the next reset\n", net->name, strerror(-err));
	}
	net->active = true;
	net->rx_stalled = false;
	net_watch(net);
	return 0;
}

/* NEEDS_RESET or FAILED: vhost-net gives the rings back, which nobody serves until the reset. */
static void net_stop(struct virtio_device *vdev)
{
	net_vhost_stop(vdev->priv, true);
}

static void net_reset(struct virtio_device *vdev)
{
	struct virtio_net *net = vdev->priv;

	net_vhost_stop(net, true);
	net->active = false;
	net->rx_stalled = net->tx_parked = net->tx_more = false;
	net->rx_nr = net->rx_stuck = net->rx_niov = 0; /* the queues are forgotten whole */
	net->rx_len = 0;
	net->features = 0;
	net_watch(net);
}

static void net_config_read(struct virtio_device *vdev, uint32_t offset, void *data,
			    uint32_t size)
{
	struct virtio_net *net = vdev->priv;

	memcpy(data, (uint8_t *)&net->config + offset, size);
}

static const struct virtio_device_ops net_ops = {
	.name = "virtio-net",
	.device_id = VIRTIO_ID_NET,
	.nr_queues = 2,
	.queue_size = VIRTIO_NET_QUEUE_SIZE,
	.config_size = sizeof(struct virtio_net_config),
	.config_read = net_config_read,
	.queue_notify = net_queue_notify,
	.features_ok = net_features_ok,
	.activate = net_activate,
	.stop = net_stop,
	.reset = net_reset,
};

struct virtio_net *virtio_net_create(struct net_backend *be, const uint8_t mac[6],
				     const char *name, const struct guest_mem *mem,
				     struct event_loop *loop)
{
	struct virtio_net *net = calloc(1, sizeof(*net));
	uint64_t features = NET_BASE_FEATURES | be->features;

	if (!net)
		return NULL;
	net->be = be;
	net->loop = loop;
	net->call_fd = -1;
	snprintf(net->name, sizeof(net->name), "%s", name);
	memcpy(net->config.mac, mac, sizeof(net->config.mac));
	net->config.status = htole16(VIRTIO_NET_S_LINK_UP);
	net->config.max_virtqueue_pairs = htole16(1);
	net->config.mtu = htole16((uint16_t)be->mtu);
	net->be_handler = (struct event_handler){ net_on_backend, net };
	net->call_handler = (struct event_handler){ net_on_vhost_call, net };
	virtq_req_init(&net->req, net->req_iov, VIRTQ_MAX_SIZE);
	net->vhost = be->vhost;
	if (net->vhost) {
		net->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (net->call_fd < 0) {
			virtio_net_destroy(net);
			return NULL;
		}
	}
	virtio_device_init(&net->vdev, &net_ops, net, mem, features);
	return net;
}

struct virtio_device *virtio_net_device(struct virtio_net *net)
{
	return &net->vdev;
}

void virtio_net_set_kicks(struct virtio_net *net, const struct virtio_net_kicks *kicks)
{
	net->kicks = *kicks;
	net->have_kicks = true;
}

const struct virtio_net_stats *virtio_net_stats(const struct virtio_net *net)
{
	return &net->stats;
}

bool virtio_net_vhost_active(const struct virtio_net *net)
{
	return net->vhost_on;
}

void virtio_net_destroy(struct virtio_net *net)
{
	net_vhost_stop(net, false);
	net->active = false;
	net_watch(net);
	if (net->call_fd >= 0)
		close(net->call_fd);
	virtio_device_destroy(&net->vdev);
	free(net);
}
