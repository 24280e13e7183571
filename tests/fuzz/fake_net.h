/*
 * A virtio-net backend in memory for the fuzz targets: the peer is the
 * input. Frames it is to deliver wait in a small queue (their header and
 * length from the input, their bytes a pattern), its fd is an eventfd that
 * is readable while one waits, and it can be made full (-EAGAIN once) or
 * dead (-EBADFD from then on). It offers a TAP's offloads.
 *
 * It checks what the device sends: a frame of a length the device should
 * have refused, or a header asking for an offload outside `features` (set
 * it to what was negotiated), aborts.
 */
#ifndef VIREO_FUZZ_FAKE_NET_H
#define VIREO_FUZZ_FAKE_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "net/net.h"
#include "fuzz_input.h"

#define FAKE_NET_FRAMES 8

struct fake_net {
	struct net_backend be;
	uint32_t frame_len[FAKE_NET_FRAMES];
	uint8_t frame_hdr[FAKE_NET_FRAMES][NET_HDR_LEN];
	unsigned int head, tail;
	bool eagain, dead;
	uint64_t features; /* what sent headers may ask for */
};

void fake_net_init(struct fake_net *f);
void fake_net_destroy(struct fake_net *f);

/* A frame from the peer: 3 bytes of length, 12 of header; dropped when the queue is full. */
void fake_net_deliver(struct fake_net *f, struct input *in);

#endif
