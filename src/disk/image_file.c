/*
 * image_file over a file descriptor (with an O_DIRECT bounce path) and over
 * memory. See image_file.h.
 */
#include "disk/image_file.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/iov.h"

#define DIRECT_ALIGN 4096u /* covers every logical block size O_DIRECT may want */

struct fd_file {
	struct image_file file;
	int fd;
	bool direct;
};

static size_t iov_total(const struct iovec *iov, int n)
{
	size_t total = 0;

	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	return total;
}

ssize_t fd_transfer(int fd, const struct iovec *iov, int n, uint64_t offset, bool write)
{
	struct iovec rest[IOV_MAX];
	size_t want = iov_total(iov, n), total = 0;

	if (n <= 0 || n > IOV_MAX)
		return n == 0 ? 0 : -EINVAL;
	if (offset > (uint64_t)INT64_MAX || want > (uint64_t)INT64_MAX - offset)
		return -EINVAL;
	memcpy(rest, iov, (size_t)n * sizeof(*iov));
	while (total < want) {
		ssize_t done = write ? pwritev(fd, rest, n, (off_t)(offset + total))
				     : preadv(fd, rest, n, (off_t)(offset + total));
		int skip = 0;

		if (done < 0 && errno == EINTR)
			continue;
		if (done < 0)
			return -errno;
		if (done == 0)
			return write ? -EIO : (ssize_t)total;
		total += (size_t)done;
		while (skip < n && (size_t)done >= rest[skip].iov_len)
			done -= (ssize_t)rest[skip++].iov_len;
		if (skip < n) {
			rest[skip].iov_base = (uint8_t *)rest[skip].iov_base + done;
			rest[skip].iov_len -= (size_t)done;
		}
		memmove(rest, rest + skip, (size_t)(n - skip) * sizeof(*rest));
		n -= skip;
	}
	return (ssize_t)total;
}

static bool direct_aligned(const struct iovec *iov, int n, uint64_t offset)
{
	if (offset % DIRECT_ALIGN)
		return false;
	for (int i = 0; i < n; i++)
		if ((uintptr_t)iov[i].iov_base % DIRECT_ALIGN || iov[i].iov_len % DIRECT_ALIGN)
			return false;
	return true;
}

/*
 * One chunk of an unaligned O_DIRECT transfer: bytes [done, done + part) of
 * the request, at file offset at, through the aligned blocks that cover
 * them in buf. A write reads those blocks first when it covers them only in
 * part (read-modify-write). Returns the request's bytes moved or -errno; a
 * read moves fewer only at the end of the file.
 */
static ssize_t bounce_chunk(struct fd_file *f, const struct iovec *iov, int n, size_t done,
			    size_t part, uint64_t at, uint8_t *buf, bool write)
{
	uint64_t start = at & ~(uint64_t)(DIRECT_ALIGN - 1);
	size_t head = (size_t)(at - start);
	size_t span = (head + part + DIRECT_ALIGN - 1) & ~(size_t)(DIRECT_ALIGN - 1);
	struct iovec whole = { buf, span };
	ssize_t got = 0;

	if (!write || head || (head + part) % DIRECT_ALIGN) {
		got = fd_transfer(f->fd, &whole, 1, start, false);
		if (got < 0)
			return got;
		memset(buf + got, 0, span - (size_t)got);
	}
	if (write) {
		iov_read(iov, (unsigned int)n, done, buf + head, part);
		got = fd_transfer(f->fd, &whole, 1, start, true);
		return got < 0 ? got : (ssize_t)part;
	}
	/* What the file held of the request's bytes: fewer past its end. */
	got = (size_t)got > head ? got - (ssize_t)head : 0;
	if ((size_t)got > part)
		got = (ssize_t)part;
	iov_write(iov, (unsigned int)n, done, buf + head, (size_t)got);
	return got;
}

/*
 * O_DIRECT with an unaligned request: through an aligned bounce buffer of
 * at most IMAGE_FILE_BOUNCE_MAX bytes, chunk by chunk, so that a request
 * costs that much memory whatever its length.
 */
static ssize_t fd_bounce(struct fd_file *f, const struct iovec *iov, int n, uint64_t offset,
			 bool write)
{
	size_t len = iov_total(iov, n), done = 0, buf_len;
	uint64_t span;
	uint8_t *buf;

	if (offset > (uint64_t)INT64_MAX || len > (uint64_t)INT64_MAX - offset)
		return -EINVAL;
	span = ((offset + len + DIRECT_ALIGN - 1) & ~(uint64_t)(DIRECT_ALIGN - 1)) -
	       (offset & ~(uint64_t)(DIRECT_ALIGN - 1));
	buf_len = span < IMAGE_FILE_BOUNCE_MAX ? (size_t)span : IMAGE_FILE_BOUNCE_MAX;
	if (posix_memalign((void **)&buf, DIRECT_ALIGN, buf_len))
		return -ENOMEM;
	while (done < len) {
		uint64_t at = offset + done;
		size_t room = buf_len - (size_t)(at % DIRECT_ALIGN);
		size_t part = len - done < room ? len - done : room;
		ssize_t moved = bounce_chunk(f, iov, n, done, part, at, buf, write);

		if (moved < 0) {
			free(buf);
			return moved;
		}
		done += (size_t)moved;
		if ((size_t)moved < part)
			break; /* a read that met the end of the file */
	}
	free(buf);
	return (ssize_t)done;
}

static ssize_t fd_readv(struct image_file *file, const struct iovec *iov, int n, uint64_t offset)
{
	struct fd_file *f = (struct fd_file *)file;

	if (f->direct && !direct_aligned(iov, n, offset))
		return fd_bounce(f, iov, n, offset, false);
	return fd_transfer(f->fd, iov, n, offset, false);
}

static int fd_writev(struct image_file *file, const struct iovec *iov, int n, uint64_t offset)
{
	struct fd_file *f = (struct fd_file *)file;
	ssize_t done;

	if (f->direct && !direct_aligned(iov, n, offset))
		done = fd_bounce(f, iov, n, offset, true);
	else
		done = fd_transfer(f->fd, iov, n, offset, true);
	return done < 0 ? (int)done : 0;
}

static int fd_sync(struct image_file *file)
{
	struct fd_file *f = (struct fd_file *)file;

	return fdatasync(f->fd) < 0 ? -errno : 0;
}

static int fd_size(struct image_file *file, uint64_t *size)
{
	struct fd_file *f = (struct fd_file *)file;
	struct stat st;

	if (fstat(f->fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(f->fd, 0, SEEK_END);

		if (end < 0)
			return -errno;
		st.st_size = end;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

static void fd_close(struct image_file *file)
{
	struct fd_file *f = (struct fd_file *)file;

	close(f->fd);
	free(f);
}

static const struct image_file_ops fd_ops = {
	.readv = fd_readv,
	.writev = fd_writev,
	.sync = fd_sync,
	.size = fd_size,
	.close = fd_close,
};

struct image_file *image_file_from_fd(int fd, bool direct)
{
	struct fd_file *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->file.ops = &fd_ops;
	f->fd = fd;
	f->direct = direct;
	return &f->file;
}

int image_file_fd_for(const struct image_file *file, const struct iovec *iov, int n,
		      uint64_t offset)
{
	const struct fd_file *f = (const struct fd_file *)file;

	if (file->ops != &fd_ops || (f->direct && !direct_aligned(iov, n, offset)))
		return -1;
	return f->fd;
}

/* ---- memory ---- */

struct mem_file {
	struct image_file file;
	uint8_t *data;
	size_t len, cap, max;
};

static ssize_t mem_readv(struct image_file *file, const struct iovec *iov, int n, uint64_t offset)
{
	struct mem_file *m = (struct mem_file *)file;
	size_t done = 0;

	for (int i = 0; i < n; i++) {
		size_t chunk = iov[i].iov_len;

		if (offset + done >= m->len)
			break;
		if (chunk > m->len - (offset + done))
			chunk = m->len - (size_t)(offset + done);
		memcpy(iov[i].iov_base, m->data + offset + done, chunk);
		done += chunk;
		if (chunk < iov[i].iov_len)
			break;
	}
	return (ssize_t)done;
}

static int mem_writev(struct image_file *file, const struct iovec *iov, int n, uint64_t offset)
{
	struct mem_file *m = (struct mem_file *)file;
	size_t len = iov_total(iov, n);

	if (offset > m->max || len > m->max - offset)
		return -EFBIG;
	if (offset + len > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		uint8_t *data;

		while (cap < offset + len)
			cap = cap > m->max / 2 ? m->max : cap * 2;
		data = realloc(m->data, cap);
		if (!data)
			return -ENOMEM;
		m->data = data;
		m->cap = cap;
	}
	if (offset > m->len)
		memset(m->data + m->len, 0, (size_t)offset - m->len);
	for (int i = 0; i < n; i++) {
		memcpy(m->data + offset, iov[i].iov_base, iov[i].iov_len);
		offset += iov[i].iov_len;
	}
	if (offset > m->len)
		m->len = (size_t)offset;
	return 0;
}

static int mem_sync(struct image_file *file)
{
	return 0;
}

static int mem_size(struct image_file *file, uint64_t *size)
{
	*size = ((struct mem_file *)file)->len;
	return 0;
}

static void mem_close(struct image_file *file)
{
	struct mem_file *m = (struct mem_file *)file;

	free(m->data);
	free(m);
}

static const struct image_file_ops mem_ops = {
	.readv = mem_readv,
	.writev = mem_writev,
	.sync = mem_sync,
	.size = mem_size,
	.close = mem_close,
};

struct image_file *image_file_memory(const void *data, size_t len, size_t max_size)
{
	struct mem_file *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->file.ops = &mem_ops;
	m->max = max_size < len ? len : max_size;
	if (len) {
		m->data = malloc(len);
		if (!m->data) {
			free(m);
			return NULL;
		}
		memcpy(m->data, data, len);
	}
	m->len = m->cap = len;
	return &m->file;
}

const uint8_t *image_file_memory_data(struct image_file *f, size_t *len)
{
	struct mem_file *m = (struct mem_file *)f;

	*len = m->len;
	return m->data;
}
