/*
 * Opening a qcow2 image: the header (qcow2_header.c), the backing chain
 * (raw or qcow2 files, read-only under a shared lock, relative names from
 * the image's directory, at most QCOW2_MAX_CHAIN deep, loops refused),
 * then for read-write use: an image marked corrupt falls back to
 * read-only, unknown autoclear bits are cleared, a dirty image has its
 * refcounts repaired. And the teardown.
 */
#include "disk/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

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

static int open_backing(struct qcow2 *q, const struct disk_config *cfg, struct chain *chain,
			char *err, size_t err_len)
{
	struct qcow2_backing *b = &q->backing;
	struct flock lock = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	bool direct = cfg->cache == DISK_CACHE_NONE;
	const char *format = q->backing_format;
	struct disk_config sub = *cfg;
	struct image_file *file;
	char reason[512], *path;
	uint8_t *magic;
	struct stat st;
	ssize_t got;
	int fd;

	if (!q->backing_name)
		return 0;
	if (chain->n > QCOW2_MAX_CHAIN)
		return errmsg(err, err_len,
			      "backing file '%s': the backing chain is deeper than %d "
			      "files",
			      q->backing_name, QCOW2_MAX_CHAIN);
	if (format[0] && strcmp(format, "raw") != 0 && strcmp(format, "qcow2") != 0)
		return errmsg(err, err_len,
			      "backing file '%s': format '%s' is not supported "
			      "(raw and qcow2 are)",
			      q->backing_name, format);
	path = resolve_backing(q->path, q->backing_name);
	if (!path)
		return -ENOMEM;
	b->path = path;
	fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (fd < 0 && errno == EINVAL && direct) { /* no O_DIRECT there: reading is fine without */
		direct = false;
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (fd < 0)
		return errmsg(err, err_len, "backing file '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
		close(fd);
		return errmsg(err, err_len, "backing file '%s': not a file or block device", path);
	}
	if (!chain_add(chain, fd)) {
		close(fd);
		return errmsg(err, err_len, "backing file '%s': the backing chain loops back to it",
			      path);
	}
	if (fcntl(fd, F_OFD_SETLK, &lock) < 0) {
		close(fd);
		return errmsg(err, err_len, "backing file '%s': another process is writing it",
			      path);
	}
	if (!format[0]) { /* no format recorded: look at the header */
		if (posix_memalign((void **)&magic, 4096, 4096)) {
			close(fd);
			return -ENOMEM;
		}
		got = pread(fd, magic, 4096, 0);
		format = got >= 4 && qcow2_probe(magic, (size_t)got) ? "qcow2" : "raw";
		free(magic);
	}
	if (strcmp(format, "raw") == 0) {
		b->raw = image_file_from_fd(fd, direct);
		if (!b->raw) {
			close(fd);
			return -ENOMEM;
		}
		return b->raw->ops->size(b->raw, &b->size);
	}
	file = image_file_from_fd(fd, direct);
	if (!file) {
		close(fd);
		return -ENOMEM;
	}
	sub.readonly = true;
	sub.path = path;
	sub.cache = direct ? DISK_CACHE_NONE : DISK_CACHE_WRITEBACK;
	b->qcow2 = open_image(file, fd, path, &sub, chain, reason, sizeof(reason));
	/* Name the deepest file at fault, not every file above it. */
	if (!b->qcow2 && strncmp(reason, "backing file '", 14) == 0)
		return errmsg(err, err_len, "%s", reason);
	if (!b->qcow2)
		return errmsg(err, err_len, "backing file '%s': %s", path, reason);
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
