/*
 * The file under an image format: positioned vectored reads and writes, a
 * barrier (fdatasync), and the size. qcow2 does all of its file I/O through
 * this table, so a test can put a recorder in the way (every write and
 * every barrier, in order: a power cut replayed at any point) and the
 * fuzzer can run images that live in memory.
 *
 * Reads return the bytes that exist (short only at the end of the file);
 * writes move everything or fail. Offsets and lengths are the caller's to
 * validate: this layer adds no checks of its own beyond overflow.
 */
#ifndef VIREO_DISK_IMAGE_FILE_H
#define VIREO_DISK_IMAGE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct image_file;

struct image_file_ops {
	/* Bytes read (fewer only at the end of the file), or -errno. */
	ssize_t (*readv)(struct image_file *f, const struct iovec *iov, int n, uint64_t offset);
	/* 0 once every byte is written, or -errno. */
	int (*writev)(struct image_file *f, const struct iovec *iov, int n, uint64_t offset);
	/* Everything written so far reaches stable storage before this returns 0. */
	int (*sync)(struct image_file *f);
	int (*size)(struct image_file *f, uint64_t *size);
	void (*close)(struct image_file *f);
};

struct image_file {
	const struct image_file_ops *ops;
};

/*
 * The most memory an O_DIRECT transfer that is not aligned takes for its
 * bounce buffer, whatever its length: it goes through in chunks of this
 * size. Aligned transfers take none (they move straight from the caller's
 * buffers).
 */
#define IMAGE_FILE_BOUNCE_MAX (1u << 20)

/*
 * A file descriptor (owned from now on). direct: it was opened O_DIRECT, so
 * transfers that are not 4 KiB-aligned in memory, offset or length go
 * through an aligned bounce buffer, IMAGE_FILE_BOUNCE_MAX bytes at a time
 * (read-modify-write for the partial blocks of a write).
 */
struct image_file *image_file_from_fd(int fd, bool direct);

/*
 * The descriptor behind f, for a caller that moves this one transfer itself
 * (an io_uring engine); or -1: f is not a descriptor, or it is O_DIRECT and
 * the transfer is not aligned for that.
 */
int image_file_fd_for(const struct image_file *f, const struct iovec *iov, int n,
		      uint64_t offset);

/*
 * Moves the whole iovec at offset of fd, resuming after short transfers; a
 * read stops early only at the end of the file (a write that moves nothing
 * is -EIO). Returns the bytes moved or -errno.
 */
ssize_t fd_transfer(int fd, const struct iovec *iov, int n, uint64_t offset, bool write);

/*
 * A file in memory, initially a copy of data; it may grow up to max_size
 * bytes (writes past that fail with -EFBIG). For tests and the fuzzer.
 */
struct image_file *image_file_memory(const void *data, size_t len, size_t max_size);
/* The memory file's current contents and length (not a copy). */
const uint8_t *image_file_memory_data(struct image_file *f, size_t *len);

static inline ssize_t image_file_read(struct image_file *f, void *buf, size_t len,
				      uint64_t offset)
{
	struct iovec iov = { buf, len };

	return f->ops->readv(f, &iov, 1, offset);
}

static inline int image_file_write(struct image_file *f, const void *buf, size_t len,
				   uint64_t offset)
{
	struct iovec iov = { (void *)buf, len };

	return f->ops->writev(f, &iov, 1, offset);
}

static inline void image_file_close(struct image_file *f)
{
	if (f)
		f->ops->close(f);
}

#endif
