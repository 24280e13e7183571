/*
 * Scatter-gather lists (struct iovec) read, written, zeroed and sliced by
 * byte offset: shared by virtio devices (guest buffers) and disk formats.
 */
#ifndef VIREO_VMM_IOV_H
#define VIREO_VMM_IOV_H

#include <stddef.h>
#include <sys/uio.h>

/* Reads or writes bytes at offset of the list, whatever its layout; returns bytes moved. */
size_t iov_read(const struct iovec *iov, unsigned int n, size_t offset, void *dst, size_t len);
size_t iov_write(const struct iovec *iov, unsigned int n, size_t offset, const void *src,
		 size_t len);

/*
 * Makes dst[] the sub-range [offset, offset + len) of iov[]; returns how
 * many entries dst[] got (at most max). dst may be iov itself (slicing in place).
 */
unsigned int iov_slice(const struct iovec *iov, unsigned int n, size_t offset, size_t len,
		       struct iovec *dst, unsigned int max);

/* Zeroes [offset, offset + len) of the list; returns bytes zeroed. */
size_t iov_zero(const struct iovec *iov, unsigned int n, size_t offset, size_t len);

#endif
