/*
 * User-mode networking through libslirp (the library QEMU uses): the guest
 * sees a NAT router on 10.0.2.0/24 that answers DHCP (10.0.2.15 for the
 * guest), forwards DNS (10.0.2.3), makes the guest's connections from the
 * host's sockets, and forwards host ports to the guest (hostfwd). No
 * privileges needed. 10.0.2.2 reaches the host's loopback only with
 * host-loopback=on: services listening on 127.0.0.1 trust local users, and
 * the guest is not one. restrict=on is libslirp's restricted mode: DHCP
 * (without a router or DNS server) and hostfwd, no connection and no
 * datagram out.
 *
 * libslirp is single-threaded and wants its own poll loop with timers, so
 * it runs on a thread of its own here. Frames cross between that thread
 * and the device over a SOCK_DGRAM socketpair, each datagram a 12-byte
 * virtio-net header and one frame, so the device sees the same kind of fd
 * as a TAP's: readable when a frame waits, writable when there is room.
 * libslirp takes no offloads (no GSO, no partial checksums): the backend
 * offers none, every header the device sends is plain and every header
 * this side writes is zero.
 */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libslirp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox/seccomp.h"
#include "vmm/clock.h"

#define USER_NET "10.0.2.0"
#define USER_MASK "255.255.255.0"
#define USER_HOST "10.0.2.2"
#define USER_DHCP_START "10.0.2.15"
#define USER_DNS "10.0.2.3"
#define USER_MAX_POLLFDS 256
#define USER_MAX_TIMERS 16
#define USER_SOCKBUF (1 << 20)
#define USER_FRAMES_PER_WAKE 64
#define USER_SEND_WAIT_MS 500 /* how long a frame for the guest waits for room */

struct user_timer {
	bool used, armed;
	int64_t expire_ms;
	SlirpTimerCb cb;
	void *cb_opaque;
};

struct user {
	struct net_backend be; /* be.fd: the device's end of the socketpair */
	int peer_fd;	       /* the slirp thread's end */
	int wake_fd;	       /* eventfd: stop */
	bool stopping;	       /* set before wake_fd is written; read by the thread */
	Slirp *slirp;
	pthread_t thread;
	bool thread_started;
	struct pollfd pfds[USER_MAX_POLLFDS];
	int nr_pfds;
	struct user_timer timers[USER_MAX_TIMERS];
	unsigned long dropped; /* frames for the guest that found no room */
	uint8_t frame[NET_MAX_FRAME];
};

/* --- libslirp's callbacks, all on the slirp thread ----------------------------------- */

/* A frame for the guest: header + frame in one datagram; waits a little for room. */
static ssize_t user_send_packet(const void *buf, size_t len, void *opaque)
{
	struct user *u = opaque;
	uint8_t hdr[NET_HDR_LEN] = { 0 };
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)buf, len } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };

	for (int tries = 0; tries < 2; tries++) {
		struct pollfd p[2] = { { u->peer_fd, POLLOUT, 0 }, { u->wake_fd, POLLIN, 0 } };

		if (sendmsg(u->peer_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
			return (ssize_t)len;
		if (errno != EAGAIN && errno != ENOBUFS)
			break;
		if (poll(p, 2, USER_SEND_WAIT_MS) <= 0 || p[1].revents)
			break;
	}
	u->dropped++; /* TCP retransmits; slirp's API allows the drop */
	return (ssize_t)len;
}

static void user_guest_error(const char *msg, void *opaque)
{
	(void)opaque;
	fprintf(stderr, "vireo: user networking: %s\n", msg);
}

static int64_t user_clock_get_ns(void *opaque)
{
	(void)opaque;
	return (int64_t)clock_now_ns();
}

static void *user_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct user *u = opaque;

	for (int i = 0; i < USER_MAX_TIMERS; i++) {
		if (!u->timers[i].used) {
			u->timers[i] = (struct user_timer){ .used = true, .cb = cb,
							    .cb_opaque = cb_opaque };
			return &u->timers[i];
		}
	}
	fprintf(stderr, "vireo: user networking: more than %d timers\n", USER_MAX_TIMERS);
	abort(); /* libslirp makes one or two; more is a bug here, not the guest's doing */
}

static void user_timer_free(void *timer, void *opaque)
{
	(void)opaque;
	memset(timer, 0, sizeof(struct user_timer));
}

static void user_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct user_timer *t = timer;

	(void)opaque;
	t->expire_ms = expire_ms;
	t->armed = true;
}

static void user_nop_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void user_notify(void *opaque)
{
	(void)opaque; /* the thread polls again after every pass anyway */
}

static const SlirpCb user_callbacks = {
	.send_packet = user_send_packet,
	.guest_error = user_guest_error,
	.clock_get_ns = user_clock_get_ns,
	.timer_new = user_timer_new,
	.timer_free = user_timer_free,
	.timer_mod = user_timer_mod,
	.register_poll_fd = user_nop_fd,
	.unregister_poll_fd = user_nop_fd,
	.notify = user_notify,
};

static short to_poll(int slirp_events)
{
	return (short)(((slirp_events & SLIRP_POLL_IN) ? POLLIN : 0) |
		       ((slirp_events & SLIRP_POLL_OUT) ? POLLOUT : 0) |
		       ((slirp_events & SLIRP_POLL_PRI) ? POLLPRI : 0));
}

static int user_add_poll(int fd, int events, void *opaque)
{
	struct user *u = opaque;

	if (u->nr_pfds == USER_MAX_POLLFDS)
		return -1; /* libslirp skips the socket this pass */
	u->pfds[u->nr_pfds] = (struct pollfd){ .fd = fd, .events = to_poll(events) };
	return u->nr_pfds++;
}

static int user_get_revents(int idx, void *opaque)
{
	struct user *u = opaque;
	short r;

	if (idx < 0 || idx >= u->nr_pfds)
		return 0;
	r = u->pfds[idx].revents;
	return ((r & POLLIN) ? SLIRP_POLL_IN : 0) | ((r & POLLOUT) ? SLIRP_POLL_OUT : 0) |
	       ((r & POLLPRI) ? SLIRP_POLL_PRI : 0) | ((r & POLLERR) ? SLIRP_POLL_ERR : 0) |
	       ((r & POLLHUP) ? SLIRP_POLL_HUP : 0);
}

/* --- the slirp thread ------------------------------------------------------------------ */

/* Milliseconds until the next timer, at most cap. */
static uint32_t user_timer_wait(struct user *u, uint32_t cap)
{
	int64_t now = (int64_t)clock_now_ns() / 1000000;

	for (int i = 0; i < USER_MAX_TIMERS; i++) {
		struct user_timer *t = &u->timers[i];

		if (t->used && t->armed)
			cap = t->expire_ms <= now ? 0
			      : (uint32_t)(t->expire_ms - now) < cap ? (uint32_t)(t->expire_ms - now)
								       : cap;
	}
	return cap;
}

static void user_run_timers(struct user *u)
{
	int64_t now = (int64_t)clock_now_ns() / 1000000;

	for (int i = 0; i < USER_MAX_TIMERS; i++) {
		struct user_timer *t = &u->timers[i];

		if (t->used && t->armed && t->expire_ms <= now) {
			t->armed = false;
			t->cb(t->cb_opaque);
		}
	}
}

/* Frames from the device: strip the (plain) header, hand the frame to libslirp. */
static void user_take_frames(struct user *u)
{
	for (int i = 0; i < USER_FRAMES_PER_WAKE; i++) {
		ssize_t n = recv(u->peer_fd, u->frame, sizeof(u->frame), MSG_DONTWAIT);

		if (n < 0)
			return;
		if (n > NET_HDR_LEN)
			slirp_input(u->slirp, u->frame + NET_HDR_LEN, (int)(n - NET_HDR_LEN));
	}
}

static void *user_thread(void *opaque)
{
	struct user *u = opaque;
	int err = sandbox_enter(SANDBOX_SLIRP);

	if (err) { /* no frames cross: the guest sees a dead link */
		fprintf(stderr, "vireo: user networking: cannot install its seccomp filter: %s\n",
			strerror(-err));
		return NULL;
	}
	while (!__atomic_load_n(&u->stopping, __ATOMIC_ACQUIRE)) {
		uint32_t timeout = 1000;
		int n;

		u->nr_pfds = 2;
		u->pfds[0] = (struct pollfd){ .fd = u->wake_fd, .events = POLLIN };
		u->pfds[1] = (struct pollfd){ .fd = u->peer_fd, .events = POLLIN };
		slirp_pollfds_fill(u->slirp, &timeout, user_add_poll, u);
		n = poll(u->pfds, (nfds_t)u->nr_pfds, (int)user_timer_wait(u, timeout));
		if (n > 0 && (u->pfds[1].revents & POLLIN))
			user_take_frames(u);
		slirp_pollfds_poll(u->slirp, n < 0, user_get_revents, u);
		user_run_timers(u);
	}
	return NULL;
}

/* --- the backend ----------------------------------------------------------------------- */

static ssize_t user_send(struct net_backend *be, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	ssize_t n = sendmsg(be->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n < 0 && errno == ENOBUFS)
		return -EAGAIN;
	if (n < 0 && errno == EPIPE)
		return -EBADFD;
	return n < 0 ? -errno : n;
}

static ssize_t user_recv(struct net_backend *be, const struct iovec *iov, int iovcnt)
{
	struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	/* MSG_TRUNC: the datagram's whole length, as a TAP reports a frame that did not fit. */
	ssize_t n = recvmsg(be->fd, &msg, MSG_DONTWAIT | MSG_TRUNC);

	if (n == 0)
		return -EBADFD; /* the slirp thread is gone */
	return n < 0 ? -errno : n;
}

static void user_close(struct net_backend *be)
{
	struct user *u = (struct user *)be;

	if (u->thread_started) {
		__atomic_store_n(&u->stopping, true, __ATOMIC_RELEASE);
		eventfd_write(u->wake_fd, 1);
		pthread_join(u->thread, NULL);
	}
	if (u->slirp)
		slirp_cleanup(u->slirp);
	if (u->dropped)
		fprintf(stderr, "vireo: user networking: %lu frames for the guest found no room\n",
			u->dropped);
	if (u->be.fd >= 0)
		close(u->be.fd);
	if (u->peer_fd >= 0)
		close(u->peer_fd);
	if (u->wake_fd >= 0)
		close(u->wake_fd);
	free(u);
}

static int user_start(struct net_backend *be, char *err, size_t err_len)
{
	struct user *u = (struct user *)be;

	if (pthread_create(&u->thread, NULL, user_thread, u) != 0) {
		snprintf(err, err_len, "--net user: cannot start its thread");
		return -1;
	}
	u->thread_started = true;
	return 0;
}

static const struct net_ops user_ops = {
	.send = user_send,
	.recv = user_recv,
	.start = user_start,
	.close = user_close,
};

static int user_hostfwds(struct user *u, const struct net_config *cfg, char *err,
			 size_t err_len)
{
	for (int i = 0; i < cfg->nr_hostfwd; i++) {
		const struct net_hostfwd *f = &cfg->hostfwd[i];
		char host[INET_ADDRSTRLEN];

		if (slirp_add_hostfwd(u->slirp, f->udp, f->host_addr, f->host_port, f->guest_addr,
				      f->guest_port) < 0) {
			inet_ntop(AF_INET, &f->host_addr, host, sizeof(host));
			snprintf(err, err_len, "--net user: hostfwd %s:%s:%u: cannot listen there "
				 "(the port is taken, or the address is not this host's)",
				 f->udp ? "udp" : "tcp", host, f->host_port);
			return -1;
		}
	}
	return 0;
}

/* libslirp and its host forwards (their listening sockets); the thread starts later. */
static int user_new_slirp(struct user *u, const struct net_config *cfg, char *err,
			    size_t err_len)
{
	SlirpConfig sc = {
		.version = 4,
		.restricted = cfg->restricted,
		.disable_host_loopback = !cfg->host_loopback,
		.in_enabled = true,
		.vhostname = "vireo",
		.if_mtu = u->be.mtu,
		.if_mru = u->be.mtu,
	};

	inet_pton(AF_INET, USER_NET, &sc.vnetwork);
	inet_pton(AF_INET, USER_MASK, &sc.vnetmask);
	inet_pton(AF_INET, USER_HOST, &sc.vhost);
	inet_pton(AF_INET, USER_DHCP_START, &sc.vdhcp_start);
	inet_pton(AF_INET, USER_DNS, &sc.vnameserver);
	u->slirp = slirp_new(&sc, &user_callbacks, u);
	if (!u->slirp) {
		snprintf(err, err_len, "--net user: libslirp could not start");
		return -1;
	}
	return user_hostfwds(u, cfg, err, err_len);
}

struct net_backend *user_open(const struct net_config *cfg, char *err, size_t err_len)
{
	struct user *u = calloc(1, sizeof(*u));
	int sv[2], size = USER_SOCKBUF;

	if (!u) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	u->be = (struct net_backend){ .ops = &user_ops, .fd = -1, .mtu = NET_DEFAULT_MTU };
	u->peer_fd = -1;
	snprintf(u->be.what, sizeof(u->be.what), "user networking");
	if (cfg->mtu)
		u->be.mtu = cfg->mtu;
	u->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (u->wake_fd < 0 || socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, err_len, "--net user: %s", strerror(errno));
		user_close(&u->be);
		return NULL;
	}
	u->be.fd = sv[0];
	u->peer_fd = sv[1];
	for (int i = 0; i < 2; i++) {
		setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	}
	if (user_new_slirp(u, cfg, err, err_len) < 0) {
		user_close(&u->be);
		return NULL;
	}
	return &u->be;
}
