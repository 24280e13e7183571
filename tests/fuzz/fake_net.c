/* The fuzz targets' in-memory virtio-net backend: see fake_net.h. */
#include "fake_net.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <linux/virtio_net.h>

#include "fuzz_support.h"

#define F(bit) (1ULL << (bit))

static ssize_t fake_send(struct net_backend *be, const struct iovec *iov, int n)
{
	struct fake_net *f = (struct fake_net *)be;
	struct virtio_net_hdr h;
	size_t len = 0;
	uint8_t gso;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (len < NET_HDR_LEN + NET_ETH_HLEN || len > NET_MAX_FRAME || iov[0].iov_len != NET_HDR_LEN)
		fuzz_fail("the backend got a frame of a length the device should have refused");
	memcpy(&h, iov[0].iov_base, sizeof(h));
	gso = h.gso_type & ~VIRTIO_NET_HDR_GSO_ECN;
	if ((h.flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM) ||
	    ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !(f->features & F(VIRTIO_NET_F_CSUM))) ||
	    (gso == VIRTIO_NET_HDR_GSO_TCPV4 && !(f->features & F(VIRTIO_NET_F_HOST_TSO4))) ||
	    (gso == VIRTIO_NET_HDR_GSO_TCPV6 && !(f->features & F(VIRTIO_NET_F_HOST_TSO6))) ||
	    (gso != VIRTIO_NET_HDR_GSO_NONE && gso != VIRTIO_NET_HDR_GSO_TCPV4 &&
	     gso != VIRTIO_NET_HDR_GSO_TCPV6))
		fuzz_fail("the backend got a header asking for what was not negotiated");
	if (f->dead)
		return -EBADFD;
	if (f->eagain) {
		f->eagain = false;
		return -EAGAIN;
	}
	return (ssize_t)len;
}

static ssize_t fake_recv(struct net_backend *be, const struct iovec *iov, int n)
{
	struct fake_net *f = (struct fake_net *)be;
	unsigned int slot;
	uint32_t len, at = 0;
	uint64_t count;

	if (f->dead)
		return -EBADFD;
	if (f->head == f->tail)
		return -EAGAIN;
	slot = f->head++ % FAKE_NET_FRAMES;
	len = f->frame_len[slot];
	for (int i = 0; i < n && at < len; i++) {
		uint8_t *p = iov[i].iov_base;

		for (size_t j = 0; j < iov[i].iov_len && at < len; j++, at++)
			p[j] = at < NET_HDR_LEN ? f->frame_hdr[slot][at] : (uint8_t)at;
	}
	if (f->head == f->tail && read(be->fd, &count, sizeof(count)) < 0)
		return (ssize_t)len; /* the eventfd was already clear */
	return (ssize_t)len;
}

static void fake_close(struct net_backend *be)
{
	(void)be;
}

static const struct net_ops fake_ops = {
	.send = fake_send,
	.recv = fake_recv,
	.close = fake_close,
};

void fake_net_init(struct fake_net *f)
{
	memset(f, 0, sizeof(*f));
	f->be = (struct net_backend){
		.ops = &fake_ops, .fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC),
		.features = F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4) |
			    F(VIRTIO_NET_F_HOST_TSO6) | F(VIRTIO_NET_F_HOST_ECN) |
			    F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_GUEST_TSO4) |
			    F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_GUEST_ECN), /* a TAP's */
		.mtu = 1500,
	};
	if (f->be.fd < 0)
		fuzz_fail("eventfd");
	snprintf(f->be.what, sizeof(f->be.what), "the fuzzer's backend");
}

void fake_net_destroy(struct fake_net *f)
{
	close(f->be.fd);
}

void fake_net_deliver(struct fake_net *f, struct input *in)
{
	unsigned int slot = f->tail % FAKE_NET_FRAMES;
	uint32_t len = NET_HDR_LEN + get_n(in, 3) % (NET_MAX_FRAME + 100);

	for (int i = 0; i < NET_HDR_LEN; i++)
		f->frame_hdr[slot][i] = get8(in);
	if (f->tail - f->head == FAKE_NET_FRAMES)
		return;
	f->frame_len[slot] = len;
	f->tail++;
	if (eventfd_write(f->be.fd, 1) < 0)
		fuzz_fail("eventfd_write");
}
