/* Byte-wise access to scatter-gather lists: see iov.h. */
#include "vmm/iov.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/*
 * Copies between a flat buffer and [offset, offset + len) of an iovec array;
 * buf NULL with to_iov writes zeroes.
 */
static size_t iov_copy(const struct iovec *iov, unsigned int n, size_t offset, void *buf,
		       size_t len, bool to_iov)
{
	size_t done = 0;

	for (unsigned int i = 0; i < n && done < len; i++) {
		uint8_t *base = iov[i].iov_base;
		size_t chunk;

		if (offset >= iov[i].iov_len) {
			offset -= iov[i].iov_len;
			continue;
		}
		chunk = iov[i].iov_len - offset;
		if (chunk > len - done)
			chunk = len - done;
		if (to_iov && !buf)
			memset(base + offset, 0, chunk);
		else if (to_iov)
			memcpy(base + offset, (uint8_t *)buf + done, chunk);
		else
			memcpy((uint8_t *)buf + done, base + offset, chunk);
		done += chunk;
		offset = 0;
	}
	return done;
}

size_t iov_read(const struct iovec *iov, unsigned int n, size_t offset, void *dst, size_t len)
{
	return iov_copy(iov, n, offset, dst, len, false);
}

size_t iov_write(const struct iovec *iov, unsigned int n, size_t offset, const void *src,
		 size_t len)
{
	return iov_copy(iov, n, offset, (void *)src, len, true);
}

size_t iov_zero(const struct iovec *iov, unsigned int n, size_t offset, size_t len)
{
	return iov_copy(iov, n, offset, NULL, len, true);
}

unsigned int iov_slice(const struct iovec *iov, unsigned int n, size_t offset, size_t len,
		       struct iovec *dst, unsigned int max)
{
	unsigned int out = 0;

	for (unsigned int i = 0; i < n && len > 0 && out < max; i++) {
		size_t chunk;

		if (offset >= iov[i].iov_len) {
			offset -= iov[i].iov_len;
			continue;
		}
		chunk = iov[i].iov_len - offset;
		if (chunk > len)
			chunk = len;
		dst[out++] = (struct iovec){ (uint8_t *)iov[i].iov_base + offset, chunk };
		len -= chunk;
		offset = 0;
	}
	return out;
}
