/*
 * Raw images: guest offset = file offset. Opening (shared by every format)
 * takes an OFD lock so that two VMs cannot write one image at once, then
 * hands qcow2 images (stated, or found by their magic) to qcow2_open().
 * A raw image found by probing keeps its first bytes raw (disk/probe.h):
 * every write, discard and write-zeroes passes disk_probe_keeps_raw().
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/disk.h"
#include "disk/image_file.h"
#include "disk/probe.h"
#include "disk/qcow2.h"

/* The whole iovec, or -errno: a read that meets the end of the file fails. */
static ssize_t raw_transfer(struct disk *disk, const struct iovec *iov, int n, uint64_t offset,
			    bool write)
{
	size_t want = 0;
	ssize_t done;

	for (int i = 0; i < n; i++)
		want += iov[i].iov_len;
	if (write) {
		int ret = disk_probe_keeps_raw(disk, iov, n, offset, want);

		if (ret < 0)
			return ret;
	}
	done = fd_transfer(disk->fd, iov, n, offset, write);
	return done < 0 || (size_t)done == want ? done : -EIO; /* the file ended under us */
}

static ssize_t raw_readv(struct disk *disk, const struct iovec *iov, int n, uint64_t offset)
{
	return raw_transfer(disk, iov, n, offset, false);
}

static ssize_t raw_writev(struct disk *disk, const struct iovec *iov, int n, uint64_t offset)
{
	return raw_transfer(disk, iov, n, offset, true);
}

static int raw_flush(struct disk *disk)
{
	return fdatasync(disk->fd) < 0 ? -errno : 0;
}

static int raw_discard(struct disk *disk, uint64_t offset, uint64_t len)
{
	int ret = disk_probe_keeps_raw(disk, NULL, 0, offset, len);

	if (ret < 0)
		return ret;
	if (fallocate(disk->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
		      (off_t)len) < 0)
		return -errno;
	return 0;
}

static int raw_write_zeroes(struct disk *disk, uint64_t offset, uint64_t len, bool may_unmap)
{
	int mode = may_unmap ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
			     : FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
	int ret = disk_probe_keeps_raw(disk, NULL, 0, offset, len);

	if (ret < 0)
		return ret;
	if (fallocate(disk->fd, mode, (off_t)offset, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	/* The filesystem cannot do it in place: write the zeroes. */
	for (uint64_t done = 0; done < len;) {
		static const uint8_t zeroes[64 * 1024];
		size_t chunk = len - done < sizeof(zeroes) ? (size_t)(len - done) : sizeof(zeroes);
		struct iovec iov = { (void *)zeroes, chunk };
		ssize_t n = raw_transfer(disk, &iov, 1, offset + done, true);

		if (n < 0)
			return (int)n;
		done += chunk;
	}
	return 0;
}

static void raw_close(struct disk *disk)
{
	close(disk->fd);
	free(disk);
}

static const struct disk_ops raw_ops = {
	.readv = raw_readv,
	.writev = raw_writev,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.close = raw_close,
};

static struct disk *open_failed(int fd, char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* Whole-file OFD lock: shared for readers, exclusive for a writer. */
static int lock_image(int fd, bool readonly)
{
	struct flock lock = {
		.l_type = readonly ? F_RDLCK : F_WRLCK,
		.l_whence = SEEK_SET,
	};

	return fcntl(fd, F_OFD_SETLK, &lock) < 0 ? -errno : 0;
}

struct disk *disk_open(const struct disk_config *cfg, char *err, size_t err_len)
{
	int flags = (cfg->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC;
	enum disk_format format = DISK_FORMAT_RAW;
	struct disk *disk;
	struct stat st;
	int fd;

	if (cfg->cache == DISK_CACHE_NONE)
		flags |= O_DIRECT;
	fd = open(cfg->path, flags);
	if (fd < 0 && errno == EINVAL && cfg->cache == DISK_CACHE_NONE)
		return open_failed(-1, err, err_len,
				   "disk '%s': its filesystem does not support cache=none (O_DIRECT)",
				   cfg->path);
	if (fd < 0 && errno == EISDIR)
		return open_failed(-1, err, err_len, "disk '%s': not a file or block device",
				   cfg->path);
	if (fd < 0)
		return open_failed(-1, err, err_len, "disk '%s': %s", cfg->path, strerror(errno));
	if (fstat(fd, &st) < 0)
		return open_failed(fd, err, err_len, "disk '%s': %s", cfg->path, strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return open_failed(fd, err, err_len, "disk '%s': not a file or block device",
				   cfg->path);
	if (lock_image(fd, cfg->readonly) < 0)
		return open_failed(fd, err, err_len,
				   "disk '%s': the image is in use by another process (it holds a "
				   "%s lock)", cfg->path, cfg->readonly ? "write" : "conflicting");
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(fd, 0, SEEK_END);

		st.st_size = end < 0 ? 0 : end;
	}
	if (cfg->format != DISK_FORMAT_RAW) { /* a stated format is never guessed */
		int ret = disk_probe_fd(fd, &format);

		if (ret < 0)
			return open_failed(fd, err, err_len, "disk '%s': %s", cfg->path,
					   strerror(-ret));
		if (cfg->format == DISK_FORMAT_QCOW2 && format != DISK_FORMAT_QCOW2)
			return open_failed(fd, err, err_len, "disk '%s': not a qcow2 image",
					   cfg->path);
		if (format == DISK_FORMAT_QCOW2)
			return qcow2_open(fd, cfg, err, err_len);
	}
	if (st.st_size % DISK_SECTOR_SIZE)
		return open_failed(fd, err, err_len,
				   "disk '%s': its size (%lld bytes) is not a multiple of %d",
				   cfg->path, (long long)st.st_size, DISK_SECTOR_SIZE);
	disk = calloc(1, sizeof(*disk));
	if (!disk)
		return open_failed(fd, err, err_len, "disk '%s': out of memory", cfg->path);
	disk->ops = &raw_ops;
	disk->passthrough = true;
	disk->size = (uint64_t)st.st_size;
	disk->readonly = cfg->readonly;
	disk->fd = fd;
	disk->path = cfg->path;
	disk->probed_raw = cfg->format == DISK_FORMAT_AUTO && !cfg->readonly;
	if (disk->probed_raw)
		fprintf(stderr, "vireo: disk '%s': no format given and the image looks raw; the "
				"guest may not write another format's header to it (give format=raw "
				"to lift that)\n", cfg->path);
	return disk;
}

void disk_close(struct disk *disk)
{
	if (!disk)
		return;
	disk_engine_stop(disk);
	disk->ops->close(disk);
}
