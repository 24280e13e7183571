/*
 * Opening a qcow2 image: the header (qcow2_header.c), the backing chain
 * (every rule a backing name must pass is in backing_open()), then for
 * read-write use: an image marked corrupt falls back to read-only,
 * unknown autoclear bits are cleared, a dirty image has its refcounts
 * repaired. And the teardown.
 */
#include "disk/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "disk/probe.h"
#include "disk/qcow2_internal.h"
#include "vmm/errmsg.h"

struct chain {
	dev_t dev[QCOW2_MAX_CHAIN + 1];
	ino_t ino[QCOW2_MAX_CHAIN + 1];
	unsigned int n; /* images opened so far, the top one included */
};

static struct qcow2 *open_image(struct image_file *file, int lock_fd, const char *path,
				const struct disk_config *cfg, struct chain *chain, char *err,
				size_t err_len);

bool qcow2_probe(const void *header, size_t len)
{
	return len >= 4 && qcow2_get32(header) == QCOW2_MAGIC;
}

void qcow2_destroy(struct qcow2 *q)
{
	if (!q)
		return;
	if (q->backing.qcow2)
		qcow2_destroy(q->backing.qcow2);
	image_file_close(q->backing.raw);
	free(q->backing.path);
	qcow2_cache_destroy(&q->l2_cache);
	qcow2_cache_destroy(&q->rc_cache);
	image_file_close(q->file);
	if (q->zlib_ready)
		inflateEnd(&q->zlib);
	ZSTD_freeDCtx(q->zstd);
	free(q->cbuf);
	free(q->dbuf);
	free(q->cow_buf);
	free(q->l1);
	free(q->reftable);
	free(q->frees);
	free(q->meta);
	free(q->tables);
	free(q->snapshots);
	free(q->features);
	free(q->backing_name);
	free(q->path);
	pthread_mutex_destroy(&q->lock);
	free(q);
}

static char *resolve_backing(const char *image, const char *name)
{
	const char *slash = strrchr(image, '/');
	size_t dir = slash ? (size_t)(slash - image) + 1 : 0;
	char *path;

	if (name[0] == '/' || dir == 0)
		return strdup(name);
	path = malloc(dir + strlen(name) + 1);
	if (path) {
		memcpy(path, image, dir);
		strcpy(path + dir, name);
	}
	return path;
}

/* Is the file on fd already in the chain? Adds it when not. */
static bool chain_add(struct chain *chain, int fd)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return true;
	for (unsigned int i = 0; i < chain->n; i++)
		if (chain->dev[i] == st.st_dev && chain->ino[i] == st.st_ino)
			return false;
	if (chain->n <= QCOW2_MAX_CHAIN) {
		chain->dev[chain->n] = st.st_dev;
		chain->ino[chain->n] = st.st_ino;
	}
	chain->n++;
	return true;
}

static int backing_refused(const struct qcow2 *q, char *err, size_t err_len, const char *fmt,
			   ...) __attribute__((format(printf, 4, 5)));

/* One sentence naming the backing name and the image that names it. */
static int backing_refused(const struct qcow2 *q, char *err, size_t err_len, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return errmsg(err, err_len, "backing file '%s' named by '%s': %s", q->backing_name, q->path,
		      why);
}

static const char *file_kind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	return "not a regular file";
}

/*
 * The backing-name policy, all of it. The name and its format come from
 * the image file, as untrusted as the rest of it:
 *  - a relative name resolves against the directory of the image that
 *    names it, never the current directory; an absolute name stays as it
 *    is (qemu-img writes them);
 *  - it must be a regular file: a device would show the guest whatever it
 *    reads (a host disk, /dev/zero), a FIFO would block the open. The file
 *    is opened non-blocking and judged on that descriptor, so nothing
 *    swapped in after a check gets used;
 *  - at most QCOW2_MAX_CHAIN files below the top image, none of them twice;
 *  - read-only, under a shared lock: nothing below the top image is written;
 *  - its format is the one the image records (raw or qcow2), else probed.
 * Returns the descriptor (O_DIRECT if *direct and the file allows it; *direct
 * says which) with its format, or -errno with err naming the backing name.
 */
static int backing_open(struct qcow2 *q, struct chain *chain, bool *direct,
			enum disk_format *format, char *err, size_t err_len)
{
	struct flock lock = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	const char *recorded = q->backing_format, *path;
	int fd, flags, ret = 0;
	struct stat st;

	if (chain->n > QCOW2_MAX_CHAIN)
		return backing_refused(q, err, err_len, "the backing chain is deeper than %d files",
				       QCOW2_MAX_CHAIN);
	if (recorded[0] && strcmp(recorded, "raw") != 0 && strcmp(recorded, "qcow2") != 0)
		return backing_refused(q, err, err_len,
				       "format '%s' is not supported (raw and qcow2 are)", recorded);
	q->backing.path = resolve_backing(q->path, q->backing_name);
	if (!q->backing.path)
		return -ENOMEM;
	path = q->backing.path;
	flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK;
	fd = open(path, flags | (*direct ? O_DIRECT : 0));
	if (fd < 0 && errno == EINVAL && *direct) { /* no O_DIRECT there: reading is fine without */
		*direct = false;
		fd = open(path, flags);
	}
	if (fd < 0) {
		int error = errno;

		/* A socket cannot be opened at all: say what it is rather than ENXIO. */
		if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
			return backing_refused(q, err, err_len,
					       "'%s' is %s; backing files must be regular files",
					       path, file_kind(st.st_mode));
		return backing_refused(q, err, err_len, "cannot open '%s': %s", path,
				       strerror(error));
	}
	if (fstat(fd, &st) < 0)
		ret = backing_refused(q, err, err_len, "'%s': %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		ret = backing_refused(q, err, err_len,
				      "'%s' is %s; backing files must be regular files", path,
				      file_kind(st.st_mode));
	else if (!chain_add(chain, fd))
		ret = backing_refused(q, err, err_len, "the backing chain loops back to it");
	else if (fcntl(fd, F_OFD_SETLK, &lock) < 0)
		ret = backing_refused(q, err, err_len, "another process is writing it");
	/* Blocking again: io_uring fails non-blocking reads that would wait (-EAGAIN). */
	else if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0)
		ret = backing_refused(q, err, err_len, "'%s': %s", path, strerror(errno));
	else if (recorded[0])
		*format = strcmp(recorded, "raw") == 0 ? DISK_FORMAT_RAW : DISK_FORMAT_QCOW2;
	else if ((ret = disk_probe_fd(fd, format)) < 0)
		ret = backing_refused(q, err, err_len, "reading '%s': %s", path, strerror(-ret));
	if (ret < 0) {
		close(fd);
		return ret;
	}
	return fd;
}

static int open_backing(struct qcow2 *q, const struct disk_config *cfg, struct chain *chain,
			char *err, size_t err_len)
{
	struct qcow2_backing *b = &q->backing;
	bool direct = cfg->cache == DISK_CACHE_NONE;
	struct disk_config sub = *cfg;
	enum disk_format format;
	struct image_file *file;
	char reason[512];
	int fd;

	if (!q->backing_name)
		return 0;
	fd = backing_open(q, chain, &direct, &format, err, err_len);
	if (fd < 0)
		return fd;
	file = image_file_from_fd(fd, direct);
	if (!file) {
		close(fd);
		return -ENOMEM;
	}
	if (format == DISK_FORMAT_RAW) {
		b->raw = file;
		return file->ops->size(file, &b->size);
	}
	sub.readonly = true;
	sub.path = b->path;
	sub.cache = direct ? DISK_CACHE_NONE : DISK_CACHE_WRITEBACK;
	b->qcow2 = open_image(file, fd, b->path, &sub, chain, reason, sizeof(reason));
	/* Name the deepest file at fault, not every file above it. */
	if (!b->qcow2 && strncmp(reason, "backing file '", 14) == 0)
		return errmsg(err, err_len, "%s", reason);
	if (!b->qcow2)
		return backing_refused(q, err, err_len, "%s", reason);
	b->size = b->qcow2->virtual_size;
	return 0;
}

/* Read-write open of an image marked corrupt: fall back to read-only and say so. */
static void open_corrupt(struct qcow2 *q)
{
	struct flock lock = { .l_type = F_RDLCK, .l_whence = SEEK_SET };

	fprintf(stderr, "vireo: disk '%s': the image is marked corrupt; using it read-only "
			"('qemu-img check -r all' repairs it)\n", q->path);
	q->disk.readonly = true;
	if (q->lock_fd >= 0)
		fcntl(q->lock_fd, F_OFD_SETLK, &lock);
}

/* Read-write open: clear autoclear bits we do not know (all of them), repair if dirty. */
static int open_writable(struct qcow2 *q, char *err, size_t err_len)
{
	int ret = 0;

	if (q->version < 3)
		return 0;
	if (q->autoclear) {
		ret = qcow2_write_header_field(q, QH_AUTOCLEAR, 0, 8);
		if (ret == 0)
			ret = qcow2_sync_if(q, QCOW2_SYNC_ALL);
		if (ret < 0)
			return errmsg(err, err_len,
				      "clearing its autoclear feature bits failed: %s",
				      strerror(-ret));
		q->autoclear = 0;
	}
	if (q->incompatible & QCOW2_INCOMPAT_DIRTY) {
		ret = qcow2_repair(q);
		if (ret == 0)
			ret = qcow2_write_header_field(q, QH_INCOMPATIBLE,
						       q->incompatible & ~QCOW2_INCOMPAT_DIRTY, 8);
		if (ret == 0)
			ret = qcow2_sync_if(q, QCOW2_SYNC_ALL);
		if (ret < 0)
			return errmsg(err, err_len,
				      "the image is dirty and repairing its refcounts "
				      "failed (%s); try 'qemu-img check -r all'",
				      strerror(-ret));
		q->incompatible &= ~QCOW2_INCOMPAT_DIRTY;
	}
	return 0;
}

static struct qcow2 *open_image(struct image_file *file, int lock_fd, const char *path,
				const struct disk_config *cfg, struct chain *chain, char *err,
				size_t err_len)
{
	uint64_t cache = cfg->cache_size ? cfg->cache_size : QCOW2_DEFAULT_CACHE_SIZE;
	struct qcow2 *q = calloc(1, sizeof(*q));
	int ret;

	if (!q) {
		image_file_close(file);
		errmsg(err, err_len, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&q->lock, NULL);
	q->file = file;
	q->lock_fd = lock_fd;
	q->dbuf_host = UINT64_MAX;
	q->path = strdup(path);
	q->disk.ops = &qcow2_disk_ops;
	q->disk.readonly = cfg->readonly;
	q->disk.fd = lock_fd;
	q->disk.path = q->path;
	if (!q->path) {
		ret = -ENOMEM;
		goto failed;
	}
	ret = qcow2_read_header(q, err, err_len);
	if (ret == 0)
		ret = qcow2_read_snapshots(q, err, err_len);
	if (ret == 0)
		ret = qcow2_build_meta(q);
	if (ret == 0)
		ret = qcow2_tables_build(q);
	if (ret == 0)
		ret = qcow2_cache_init(&q->l2_cache, q, (unsigned int)((cache - cache / 4) >>
					 q->cluster_bits), QCOW2_SYNC_L2, qcow2_l2_before_write);
	if (ret == 0)
		ret = qcow2_cache_init(&q->rc_cache, q,
				       (unsigned int)((cache / 4) >> q->cluster_bits),
				       QCOW2_SYNC_RC, NULL);
	if (ret == 0 && posix_memalign((void **)&q->cow_buf, 4096, q->cluster_size))
		ret = -ENOMEM;
	if (ret < 0)
		goto failed;
	q->disk.size = (q->virtual_size + DISK_SECTOR_SIZE - 1) & ~(uint64_t)(DISK_SECTOR_SIZE - 1);
	ret = open_backing(q, cfg, chain, err, err_len);
	if (ret < 0)
		goto failed;
	if (!q->disk.readonly && (q->incompatible & QCOW2_INCOMPAT_CORRUPT))
		open_corrupt(q);
	if (!q->disk.readonly) {
		ret = open_writable(q, err, err_len);
		if (ret < 0)
			goto failed;
	}
	return q;
failed:
	if (ret == -ENOMEM)
		errmsg(err, err_len, "out of memory");
	qcow2_destroy(q);
	return NULL;
}

static struct disk *open_top(struct image_file *file, int fd, const struct disk_config *cfg,
			     char *err, size_t err_len)
{
	struct chain chain = { .n = 0 };
	char reason[768];
	struct qcow2 *q;

	if (!file) {
		if (fd >= 0)
			close(fd);
		snprintf(err, err_len, "disk '%s': out of memory", cfg->path);
		return NULL;
	}
	chain_add(&chain, fd);
	if (fd < 0)
		chain.n = 1;
	q = open_image(file, fd, cfg->path, cfg, &chain, reason, sizeof(reason));
	if (!q) {
		snprintf(err, err_len, "disk '%s': %s", cfg->path, reason);
		return NULL;
	}
	return &q->disk;
}

struct disk *qcow2_open(int fd, const struct disk_config *cfg, char *err, size_t err_len)
{
	return open_top(image_file_from_fd(fd, cfg->cache == DISK_CACHE_NONE), fd, cfg, err,
			err_len);
}

struct disk *qcow2_open_file(struct image_file *file, const struct disk_config *cfg, char *err,
			     size_t err_len)
{
	return open_top(file, -1, cfg, err, err_len);
}
