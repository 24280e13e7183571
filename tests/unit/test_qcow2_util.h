/*
 * Helpers shared by the qcow2 tests: a scratch directory, running qemu-img
 * and qemu-io, whole files in and out, deterministic patterns, and
 * opening images through disk_open(). Header-only (static inline), so each
 * test_qcow2*.c links nothing extra.
 */
#ifndef VIREO_TEST_QCOW2_UTIL_H
#define VIREO_TEST_QCOW2_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "disk/disk.h"
#include "disk/qcow2.h"

struct qt {
	char dir[128];
	char log[160];
};

static inline void qt_init(struct qt *t)
{
	/* tmpfs when there is one: fdatasync there costs nothing, on a disk it may cost 25 ms */
	struct stat st;
	const char *base = stat("/dev/shm", &st) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm"
										      : "/tmp";

	snprintf(t->dir, sizeof(t->dir), "%s/vireo-qcow2-XXXXXX", base);
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->log, sizeof(t->log), "%s/cmd.log", t->dir);
}

static inline void qt_fini(struct qt *t)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", t->dir);
}

/* A path inside the scratch directory (a rotating static buffer). */
static inline const char *qt_path(struct qt *t, const char *name)
{
	static char bufs[8][256];
	static int next;
	char *p = bufs[next++ % 8];

	snprintf(p, sizeof(bufs[0]), "%s/%s", t->dir, name);
	return p;
}

/* Runs a shell command in the scratch directory; returns its exit status. */
static inline int qt_sh_rc(struct qt *t, const char *fmt, ...)
{
	char cmd[2048], full[2400];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(full, sizeof(full), "cd '%s' && exec >'%s' 2>&1 && ( %s )", t->dir, t->log, cmd);
	rc = system(full);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static inline void qt_show_log(struct qt *t)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "head -c 3000 '%s' >&2", t->log);
	if (system(cmd) != 0)
		fprintf(stderr, "(no log)\n");
}

#define qt_sh(t, ...)                                                                           \
	do {                                                                                    \
		int rc_ = qt_sh_rc((t), __VA_ARGS__);                                           \
		if (rc_ != 0) {                                                                 \
			fprintf(stderr, "command failed (%d): ", rc_);                          \
			fprintf(stderr, __VA_ARGS__);                                           \
			fprintf(stderr, "\n");                                                  \
			qt_show_log(t);                                                         \
		}                                                                               \
		assert_int_equal(rc_, 0);                                                       \
	} while (0)

static inline uint8_t *qt_slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long size;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc(size ? (size_t)size : 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	*len = (size_t)size;
	return buf;
}

static inline void qt_spit(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static inline uint64_t qt_rand(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

static inline void qt_fill(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;

	for (size_t i = 0; i < len; i += 8) {
		uint64_t v = qt_rand(&s);

		memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
	}
}

/* A raw image of size bytes: data, zero runs and partial blocks, from seed. */
static inline uint8_t *qt_mixed_image(size_t size, uint64_t seed)
{
	uint8_t *buf = calloc(1, size);
	uint64_t s = seed + 7;

	assert_non_null(buf);
	for (size_t at = 0; at < size; at += 16384) {
		uint64_t r = qt_rand(&s) % 8;
		size_t len = size - at < 16384 ? size - at : 16384;

		if (r < 3)
			continue; /* zeroes */
		if (r == 3)
			len = 512 * (1 + qt_rand(&s) % (len / 512));
		qt_fill(buf + at, len, seed ^ at);
	}
	return buf;
}

static inline struct disk *qt_open_cfg(const char *path, bool readonly, enum disk_format format,
				       uint64_t cache_size, char *err, size_t err_len)
{
	struct disk_config cfg = {
		.path = path,
		.readonly = readonly,
		.format = format,
		.cache = DISK_CACHE_WRITEBACK,
		.engine = DISK_ENGINE_SYNC,
		.cache_size = cache_size,
	};

	return disk_open(&cfg, err, err_len);
}

static inline struct disk *qt_open_as(const char *path, bool readonly, enum disk_format format)
{
	char err[512] = "";
	struct disk *d = qt_open_cfg(path, readonly, format, 0, err, sizeof(err));

	if (!d)
		fprintf(stderr, "open failed: %s\n", err);
	assert_non_null(d);
	return d;
}

static inline struct disk *qt_open(const char *path, bool readonly)
{
	return qt_open_as(path, readonly, DISK_FORMAT_AUTO);
}

static inline void qt_read(struct disk *d, uint8_t *buf, uint64_t offset, uint64_t len)
{
	struct iovec iov = { buf, len };

	assert_int_equal(d->ops->readv(d, &iov, 1, offset), (ssize_t)len);
}

/* Reads the whole disk in uneven pieces, split across iovecs. */
static inline uint8_t *qt_read_all(struct disk *d)
{
	uint8_t *buf = malloc(d->size ? d->size : 1);
	uint64_t step = 192 * 1024 + 512;

	assert_non_null(buf);
	for (uint64_t at = 0; at < d->size; at += step) {
		uint64_t len = d->size - at < step ? d->size - at : step;
		struct iovec iov[3] = {
			{ buf + at, 1000 < len ? 1000 : len },
			{ buf + at + (1000 < len ? 1000 : len), 0 },
			{ NULL, 0 },
		};

		if (len > 1000) {
			iov[1].iov_len = (len - 1000) / 2;
			iov[2].iov_base = buf + at + 1000 + iov[1].iov_len;
			iov[2].iov_len = len - 1000 - iov[1].iov_len;
		}
		assert_int_equal(d->ops->readv(d, iov, 3, at), (ssize_t)len);
	}
	return buf;
}

/* What qemu-img reads from img, as raw bytes. */
static inline uint8_t *qt_qemu_raw(struct qt *t, const char *img, size_t *len)
{
	qt_sh(t, "rm -f qemu-view.raw && qemu-img convert -O raw '%s' qemu-view.raw", img);
	return qt_slurp(qt_path(t, "qemu-view.raw"), len);
}

/* The first byte where a and b differ, or -1. */
static inline long qt_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (a[i] != b[i])
			return (long)i;
	return -1;
}

#define qt_assert_same(a, b, len)                                                              \
	do {                                                                                   \
		long at_ = qt_diff((a), (b), (len));                                           \
		if (at_ >= 0)                                                                  \
			fprintf(stderr, "first difference at byte %ld (0x%lx)\n", at_,         \
				(unsigned long)at_);                                           \
		assert_int_equal(at_, -1);                                                     \
	} while (0)

#endif
