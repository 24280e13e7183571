/*
 * virtio-rng (virtio 1.2 §5.4): the guest's /dev/hwrng, filled from the
 * host's getrandom(2).
 *
 * Rate limit: a token bucket of bytes_per_sec (VIRTIO_RNG_DEFAULT_RATE,
 * 1 MiB/s, unless the user chose another) holding at most one second's
 * worth, so a guest cannot burn host entropy or CPU without bound: over
 * any interval of T seconds it gets at most bytes_per_sec * (T + 1) bytes
 * plus one request. When the bucket is empty the device leaves requests in
 * the ring and a timerfd on the event loop wakes it when a tenth of a
 * second's worth has come back; no request is dropped and nothing spins.
 * Each request is answered whole, up to VIRTIO_RNG_MAX_REQUEST bytes.
 */
#ifndef VIREO_VIRTIO_RNG_H
#define VIREO_VIRTIO_RNG_H

#include <stdint.h>

#include "virtio/device.h"

struct event_loop;

#define VIRTIO_RNG_DEFAULT_RATE (1ULL << 20) /* bytes per second */
#define VIRTIO_RNG_MIN_RATE 1ULL
#define VIRTIO_RNG_MAX_RATE (1ULL << 30)
#define VIRTIO_RNG_MAX_REQUEST (64u << 10)

/*
 * bytes_per_sec must be within [VIRTIO_RNG_MIN_RATE, VIRTIO_RNG_MAX_RATE].
 * The device's timer is watched on loop (the I/O thread). NULL with errno
 * set on failure.
 */
struct virtio_rng *virtio_rng_create(const struct guest_mem *mem, struct event_loop *loop,
				     uint64_t bytes_per_sec);
struct virtio_device *virtio_rng_device(struct virtio_rng *rng);

void virtio_rng_destroy(struct virtio_rng *rng);

#endif
