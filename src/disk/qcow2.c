/*
 * qcow2 images behind struct disk_ops: reading, writing, discard and
 * write-zeroes, flush, and compressed clusters. Opening is qcow2_open.c;
 * the layout on disk and the order of metadata writes live in the other
 * qcow2_*.c files (see qcow2_internal.h).
 *
 * A read walks the request cluster by cluster, merging runs that map to
 * one contiguous host range (or all to the backing file, or all to
 * zeroes). A write goes in place where the cluster is ours alone (COPIED);
 * anywhere else it takes a new cluster, fills what the guest did not write
 * from the old contents (the backing file, a compressed cluster, a cluster
 * shared with a snapshot), writes it whole, and only then points the L2
 * entry at it. The old cluster is given back after the new entry is on
 * disk (qcow2_writeback()).
 */
#include "disk/qcow2.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "disk/qcow2_internal.h"
#include "vmm/iov.h"

#define FREES_WRITEBACK 4096 /* pending frees that trigger a write-back of their own */
#define QCOW2_RUN_MAX 64     /* new clusters one write may fill */
#define ZSTD_WINDOW_LOG_MAX 23

/* ---- file I/O: every write is noted for the barrier bookkeeping ---- */

int qcow2_sync_if(struct qcow2 *q, unsigned int kinds)
{
	int ret;

	if (!(q->unsynced & kinds))
		return 0;
	ret = q->file->ops->sync(q->file);
	if (ret == 0)
		q->unsynced = 0;
	return ret;
}

/* Bookkeeping for a write to the file, ours or the engine's. */
static void note_write(struct qcow2 *q, uint64_t offset, uint64_t len, unsigned int kind)
{
	q->unsynced |= kind;
	if (offset + len > q->file_end)
		q->file_end = offset + len;
}

static int writev_file(struct qcow2 *q, const struct iovec *iov, int n, uint64_t offset,
		       uint64_t len, unsigned int kind)
{
	int ret;

	if (q->disk.readonly)
		return -EROFS;
	if (offset >= QCOW2_MAX_HOST_OFFSET || len > QCOW2_MAX_HOST_OFFSET - offset)
		return -EIO;
	ret = q->file->ops->writev(q->file, iov, n, offset);
	if (ret < 0)
		return ret;
	note_write(q, offset, len, kind);
	return 0;
}

int qcow2_write_file(struct qcow2 *q, const void *buf, size_t len, uint64_t offset,
		     unsigned int kind)
{
	struct iovec iov = { (void *)buf, len };

	return writev_file(q, &iov, 1, offset, len, kind);
}

/* Reads len bytes; what lies past the end of the file reads as zeroes. */
int qcow2_read_file(struct qcow2 *q, void *buf, size_t len, uint64_t offset)
{
	ssize_t got = image_file_read(q->file, buf, len, offset);

	if (got < 0)
		return (int)got;
	memset((uint8_t *)buf + got, 0, len - (size_t)got);
	return 0;
}

/* ---- iovec helpers ---- */

static uint64_t iov_total(const struct iovec *iov, int n)
{
	uint64_t total = 0;

	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	return total;
}

/* Copies between bytes [skip, skip + len) of iov and buf. */
static void iov_copy(const struct iovec *iov, int n, uint64_t skip, void *buf, uint64_t len,
		     bool to_iov)
{
	uint8_t *p = buf;

	for (int i = 0; i < n && len; i++) {
		uint64_t l = iov[i].iov_len;

		if (skip >= l) {
			skip -= l;
			continue;
		}
		l -= skip;
		if (l > len)
			l = len;
		if (to_iov)
			memcpy((uint8_t *)iov[i].iov_base + skip, p, l);
		else
			memcpy(p, (uint8_t *)iov[i].iov_base + skip, l);
		p += l;
		len -= l;
		skip = 0;
	}
}

/* ---- compressed clusters ---- */

static int inflate_zlib(struct qcow2 *q, uint64_t avail)
{
	int ret;

	if (!q->zlib_ready) {
		if (inflateInit2(&q->zlib, -15) != Z_OK) /* raw deflate, any window */
			return -ENOMEM;
		q->zlib_ready = true;
	} else if (inflateReset(&q->zlib) != Z_OK) {
		return -EIO;
	}
	q->zlib.next_in = q->cbuf;
	q->zlib.avail_in = (uInt)avail;
	q->zlib.next_out = q->dbuf;
	q->zlib.avail_out = (uInt)q->cluster_size;
	ret = inflate(&q->zlib, Z_FINISH);
	/* Decompression stops once a cluster is out; trailing bytes are another's. */
	if ((ret == Z_STREAM_END || ret == Z_BUF_ERROR || ret == Z_OK) && q->zlib.avail_out == 0)
		return 0;
	return -EIO;
}

static int inflate_zstd(struct qcow2 *q, uint64_t avail)
{
	ZSTD_inBuffer in = { q->cbuf, avail, 0 };
	ZSTD_outBuffer out = { q->dbuf, q->cluster_size, 0 };

	if (!q->zstd) {
		q->zstd = ZSTD_createDCtx();
		if (!q->zstd)
			return -ENOMEM;
		ZSTD_DCtx_setParameter(q->zstd, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX);
	}
	ZSTD_DCtx_reset(q->zstd, ZSTD_reset_session_only);
	while (out.pos < out.size) {
		size_t in_before = in.pos, out_before = out.pos;
		size_t r = ZSTD_decompressStream(q->zstd, &out, &in);

		if (ZSTD_isError(r))
			return -EIO;
		if (r == 0 || (in.pos == in_before && out.pos == out_before))
			break; /* the frame ended, or no progress is possible */
	}
	return out.pos == out.size ? 0 : -EIO;
}

/* Decompresses the cluster at host (csize bytes at most) into q->dbuf. */
int qcow2_decompress(struct qcow2 *q, uint64_t host, uint64_t csize)
{
	uint64_t avail;
	int ret;

	if (host == q->dbuf_host)
		return 0;
	if (!q->cbuf) {
		q->cbuf = malloc(2 * q->cluster_size);
		q->dbuf = malloc(q->cluster_size);
		if (!q->cbuf || !q->dbuf) {
			free(q->cbuf);
			free(q->dbuf);
			q->cbuf = q->dbuf = NULL;
			return -ENOMEM;
		}
	}
	if (host >= q->file_end || csize > 2 * q->cluster_size)
		return -EIO;
	avail = csize < q->file_end - host ? csize : q->file_end - host;
	ret = qcow2_read_file(q, q->cbuf, avail, host);
	if (ret < 0)
		return ret;
	q->dbuf_host = UINT64_MAX;
	ret = q->compression_type == QCOW2_COMPRESSION_ZSTD ? inflate_zstd(q, avail)
							     : inflate_zlib(q, avail);
	if (ret == 0)
		q->dbuf_host = host;
	return ret;
}

/* ---- reading ---- */

/* Guest bytes [offset, offset + len) that the image leaves to its backing file. */
static int read_backing(struct qcow2 *q, const struct iovec *iov, int n, uint64_t offset,
			uint64_t len)
{
	struct qcow2_backing *b = &q->backing;
	uint64_t avail = offset < b->size ? b->size - offset : 0;
	struct iovec sub[QCOW2_IOV_MAX];
	int k;

	if (avail > len)
		avail = len;
	iov_zero(iov, (unsigned int)n, avail, len - avail); /* past a shorter backing file: zeroes */
	if (avail == 0)
		return 0;
	k = (int)iov_slice(iov, (unsigned int)n, 0, avail, sub, QCOW2_IOV_MAX);
	if (b->qcow2) {
		int ret;

		pthread_mutex_lock(&b->qcow2->lock);
		ret = qcow2_read_locked(b->qcow2, sub, k, offset, avail);
		pthread_mutex_unlock(&b->qcow2->lock);
		return ret;
	}
	ssize_t got = b->raw->ops->readv(b->raw, sub, k, offset);

	if (got < 0)
		return (int)got;
	iov_zero(sub, (unsigned int)k, (uint64_t)got, avail - (uint64_t)got);
	return 0;
}

/* Would cluster `next` (k clusters after m's) continue m's run? */
static bool same_run(const struct qcow2_map *m, const struct qcow2_map *next, uint64_t k,
		     uint64_t cluster_size)
{
	if (m->kind != next->kind)
		return false;
	switch (m->kind) {
	case QCOW2_UNALLOCATED:
	case QCOW2_ZERO: return true;
	case QCOW2_NORMAL: return next->host == m->host + k * cluster_size;
	default: return false;
	}
}

int qcow2_read_locked(struct qcow2 *q, const struct iovec *iov, int n, uint64_t offset,
		       uint64_t len)
{
	uint64_t cs = q->cluster_size;

	for (uint64_t pos = 0; pos < len;) {
		uint64_t guest = offset + pos, in = guest & (cs - 1);
		uint64_t run = len - pos < cs - in ? len - pos : cs - in, k = 1;
		struct qcow2_map m, next;
		int ret = qcow2_map(q, guest, &m), nr;

		if (ret < 0)
			return ret;
		while (pos + run < len && m.kind != QCOW2_COMPRESSED) {
			ret = qcow2_map(q, guest + run, &next);
			if (ret < 0 || !same_run(&m, &next, k, cs))
				break;
			run += len - pos - run < cs ? len - pos - run : cs;
			k++;
		}
		nr = (int)iov_slice(iov, (unsigned int)n, pos, run, q->iov, QCOW2_IOV_MAX);
		switch (m.kind) {
		case QCOW2_UNALLOCATED:
			ret = read_backing(q, q->iov, nr, guest, run);
			break;
		case QCOW2_ZERO:
			iov_zero(q->iov, (unsigned int)nr, 0, run);
			break;
		case QCOW2_NORMAL: {
			ssize_t got = q->file->ops->readv(q->file, q->iov, nr, m.host + in);

			if (got < 0)
				ret = (int)got;
			else
				iov_zero(q->iov, (unsigned int)nr, (uint64_t)got, run - (uint64_t)got);
			break;
		}
		case QCOW2_COMPRESSED:
			ret = qcow2_decompress(q, m.host, m.csize);
			if (ret == 0)
				iov_copy(q->iov, nr, 0, q->dbuf + in, run, true);
			break;
		}
		if (ret < 0)
			return ret;
		pos += run;
	}
	return 0;
}

/* ---- writing ---- */

/* The whole guest cluster at guest, as it reads now, into q->cow_buf. */
static int read_old_cluster(struct qcow2 *q, uint64_t guest, const struct qcow2_map *m)
{
	struct iovec iov = { q->cow_buf, q->cluster_size };

	switch (m->kind) {
	case QCOW2_NORMAL:
		return qcow2_read_file(q, q->cow_buf, q->cluster_size, m->host);
	case QCOW2_COMPRESSED: {
		int ret = qcow2_decompress(q, m->host, m->csize);

		if (ret == 0)
			memcpy(q->cow_buf, q->dbuf, q->cluster_size);
		return ret;
	}
	case QCOW2_UNALLOCATED:
		return read_backing(q, &iov, 1, guest, q->cluster_size);
	default:
		memset(q->cow_buf, 0, q->cluster_size);
		return 0;
	}
}

/*
 * May guest data go in place to [host, host + len)? Not past the end of the
 * file (a cluster starting inside it may be finished), never on metadata.
 */
static bool in_place_ok(struct qcow2 *q, uint64_t host, uint64_t len)
{
	uint64_t cs = q->cluster_size;

	if (host + len - 1 >= q->file_end + cs || qcow2_overlaps_meta(q, host, len))
		return false;
	for (uint64_t at = host & ~(cs - 1); at < host + len; at += cs)
		if (qcow2_is_table(q, at) || qcow2_cache_has(&q->l2_cache, at) ||
		    qcow2_cache_has(&q->rc_cache, at))
			return false;
	return true;
}

static uint64_t l2_entry(const struct qcow2_table *t, uint64_t i)
{
	return qcow2_get64(t->data + 8 * i);
}

/* Does the guest cluster at guest read as zeroes as it stands (m: its mapping)? */
static bool reads_zero_whole(const struct qcow2 *q, uint64_t guest, const struct qcow2_map *m)
{
	return m->kind == QCOW2_ZERO || (m->kind == QCOW2_UNALLOCATED && guest >= q->backing.size);
}

/* A write request being served: the guest's bytes (no iov: zeroes), and how far along. */
struct write_req {
	const struct iovec *iov;
	int n;
	uint64_t offset, len; /* guest bytes */
	uint64_t pos;	      /* bytes done */
};

/* len bytes of the request from w->pos to host (zeroes: at most a cluster). */
static int write_data(struct qcow2 *q, const struct write_req *w, uint64_t len, uint64_t host)
{
	int nr;

	if (!w->iov) {
		memset(q->cow_buf, 0, len);
		return qcow2_write_file(q, q->cow_buf, len, host, QCOW2_SYNC_DATA);
	}
	nr = (int)iov_slice(w->iov, (unsigned int)w->n, w->pos, len, q->iov, QCOW2_IOV_MAX);
	return writev_file(q, q->iov, nr, host, len, QCOW2_SYNC_DATA);
}

/*
 * In place into the cluster of L2 entry idx (m: ours alone), and on through
 * the clusters after it while they are ours and contiguous in the file
 * (zeroes: that cluster only). *done: the bytes written.
 */
static int write_in_place(struct qcow2 *q, const struct write_req *w, const struct qcow2_table *t,
			  uint64_t idx, const struct qcow2_map *m, uint64_t *done)
{
	uint64_t cs = q->cluster_size, entries = 1ull << q->l2_bits;
	uint64_t in = (w->offset + w->pos) & (cs - 1), left = w->len - w->pos;
	uint64_t run = left < cs - in ? left : cs - in, k = 1;
	struct qcow2_map next;

	while (w->iov && run < left && idx + k < entries &&
	       qcow2_parse_l2(q, l2_entry(t, idx + k), &next) == 0 && same_run(m, &next, k, cs) &&
	       next.copied) {
		run += left - run < cs ? left - run : cs;
		k++;
	}
	if (!in_place_ok(q, m->host + in, run))
		return -EIO;
	*done = run;
	return write_data(q, w, run, m->host + in);
}

/*
 * A new cluster at host for part of the guest cluster at guest (m: what it
 * maps to now): the rest from its old contents, then all of it to host.
 */
static int write_cow(struct qcow2 *q, const struct write_req *w, uint64_t guest,
		     const struct qcow2_map *m, uint64_t chunk, uint64_t host)
{
	uint64_t in = (w->offset + w->pos) - guest;
	int ret = 0;

	if (chunk < q->cluster_size)
		ret = read_old_cluster(q, guest, m);
	if (ret < 0)
		return ret;
	if (w->iov)
		iov_copy(w->iov, w->n, w->pos, q->cow_buf + in, chunk, false);
	else
		memset(q->cow_buf + in, 0, chunk);
	return qcow2_write_file(q, q->cow_buf, q->cluster_size, host, QCOW2_SYNC_DATA);
}

/*
 * How many clusters from L2 entry idx a run of new clusters at host spans:
 * the next ones join while the request covers them whole (left: its bytes
 * after the first), they need new clusters too, and the host cluster that
 * follows is free. old[]: what each mapped to.
 */
static uint64_t grow_run(struct qcow2 *q, const struct qcow2_table *t, uint64_t idx, uint64_t left,
			 uint64_t host, struct qcow2_map *old)
{
	uint64_t cs = q->cluster_size, entries = 1ull << q->l2_bits, k = 1;

	while (k < QCOW2_RUN_MAX && idx + k < entries && left >= cs &&
	       qcow2_parse_l2(q, l2_entry(t, idx + k), &old[k]) == 0 &&
	       !(old[k].kind == QCOW2_NORMAL && old[k].copied) &&
	       qcow2_alloc_cluster_at(q, host + k * cs)) {
		left -= cs;
		k++;
	}
	return k;
}

/*
 * The cluster of L2 entry idx (m: its mapping, not ours alone) gets a new
 * one, written before its L2 entry points at it; so do the whole clusters
 * after it that can join it in one write (grow_run()). The old clusters are
 * given back once the new entries are on disk. *done: the bytes written.
 */
static int write_new(struct qcow2 *q, const struct write_req *w, struct qcow2_table *t,
		     uint64_t idx, const struct qcow2_map *m, uint64_t *done)
{
	uint64_t cs = q->cluster_size, guest = w->offset + w->pos, in = guest & (cs - 1);
	uint64_t left = w->len - w->pos, chunk = left < cs - in ? left : cs - in, host, k = 1;
	struct qcow2_map old[QCOW2_RUN_MAX];
	int ret = qcow2_alloc_cluster(q, &host);

	if (ret < 0)
		return ret;
	old[0] = *m;
	/* Whole, or past the end of the file where the rest reads as zeroes already. */
	if (w->iov && (chunk == cs || (host >= q->file_end && reads_zero_whole(q, guest - in, m)))) {
		k = grow_run(q, t, idx, left - chunk, host, old);
		ret = write_data(q, w, chunk + (k - 1) * cs, host + in);
	} else {
		ret = write_cow(q, w, guest - in, m, chunk, host);
	}
	if (ret < 0)
		return ret;
	for (uint64_t i = 0; i < k; i++) {
		qcow2_put64(t->data + 8 * (idx + i), (host + i * cs) | QCOW2_OFLAG_COPIED);
		qcow2_free_map_later(q, &old[i]);
	}
	qcow2_cache_dirty(&q->l2_cache, t);
	*done = chunk + (k - 1) * cs;
	return 0;
}

/* Writes [offset, offset + len) from iov (NULL: zeroes), cluster run by cluster run. */
static int write_locked(struct qcow2 *q, const struct iovec *iov, int n, uint64_t offset,
			uint64_t len)
{
	struct write_req w = { iov, n, offset, len, 0 };

	while (w.pos < w.len) {
		uint64_t guest = w.offset + w.pos, done = 0;
		uint64_t idx = (guest >> q->cluster_bits) & ((1ull << q->l2_bits) - 1);
		struct qcow2_table *t;
		struct qcow2_map m;
		int ret = qcow2_l2_for_write(q, guest, &t);

		if (ret < 0)
			return ret;
		ret = qcow2_parse_l2(q, l2_entry(t, idx), &m);
		if (ret == 0 && m.kind == QCOW2_NORMAL && m.copied)
			ret = write_in_place(q, &w, t, idx, &m, &done);
		else if (ret == 0)
			ret = write_new(q, &w, t, idx, &m, &done);
		qcow2_cache_put(&q->l2_cache, t);
		if (ret < 0)
			return ret;
		w.pos += done;
	}
	return 0;
}

/* Does the guest range (inside one cluster) read as zeroes already? */
static int reads_zero(struct qcow2 *q, uint64_t guest, uint64_t len, bool *zero)
{
	struct qcow2_map m;
	int ret = qcow2_map(q, guest, &m);

	*zero = m.kind == QCOW2_ZERO ||
		(m.kind == QCOW2_UNALLOCATED && (!q->backing.size || guest >= q->backing.size));
	(void)len;
	return ret;
}

/*
 * Discard and write-zeroes: whole clusters become unallocated (nothing
 * below them) or zero clusters (v3 over a backing file); partial clusters,
 * and everything in a v2 image over a backing file, get zeroes written.
 */
static int zero_locked(struct qcow2 *q, uint64_t offset, uint64_t len)
{
	uint64_t cs = q->cluster_size, entries = 1ull << q->l2_bits;
	bool has_backing = q->backing.size > 0;
	uint64_t target = has_backing ? QCOW2_OFLAG_ZERO : 0;

	if (has_backing && q->version < 3)
		return write_locked(q, NULL, 0, offset, len);
	for (uint64_t pos = 0; pos < len;) {
		uint64_t guest = offset + pos, in = guest & (cs - 1);
		uint64_t chunk = len - pos < cs - in ? len - pos : cs - in;
		uint64_t idx = (guest >> q->cluster_bits) & (entries - 1);
		uint64_t l1i = guest >> (q->cluster_bits + q->l2_bits);
		struct qcow2_table *t;
		int ret;

		if (chunk < cs) {
			bool zero;

			ret = reads_zero(q, guest, chunk, &zero);
			if (ret == 0 && !zero)
				ret = write_locked(q, NULL, 0, guest, chunk);
			if (ret < 0)
				return ret;
			pos += chunk;
			continue;
		}
		if (target == 0 && l1i < q->l1_size &&
		    (be64toh(q->l1[l1i]) & QCOW2_OFFSET_MASK) == 0) {
			/* No L2 table: all of it is unallocated already. */
			uint64_t next = (l1i + 1) << (q->cluster_bits + q->l2_bits);
			uint64_t skip = next - guest;

			/* ...except a partial cluster at the end, which the loop handles. */
			skip = skip < len - pos ? skip : (len - pos) & ~(cs - 1);
			pos += skip;
			continue;
		}
		ret = qcow2_l2_for_write(q, guest, &t);
		if (ret < 0)
			return ret;
		for (; idx < entries && len - pos >= cs; idx++, pos += cs) {
			uint64_t v = qcow2_get64(t->data + 8 * idx);
			struct qcow2_map m;

			if (v == target)
				continue;
			ret = qcow2_parse_l2(q, v, &m);
			if (ret < 0)
				break;
			qcow2_put64(t->data + 8 * idx, target);
			qcow2_cache_dirty(&q->l2_cache, t);
			qcow2_free_map_later(q, &m);
		}
		qcow2_cache_put(&q->l2_cache, t);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* ---- the disk ops ---- */

static struct qcow2 *to_qcow2(struct disk *disk)
{
	return (struct qcow2 *)disk;
}

static bool request_ok(const struct disk *disk, int n, uint64_t offset, uint64_t len)
{
	return n >= 0 && n <= QCOW2_IOV_MAX && offset <= disk->size && len <= disk->size - offset;
}

/* Transfers the engine may do itself. */

static bool direct_run(struct qcow2 *q, bool write, uint64_t offset, uint64_t len,
		       struct image_file **file, uint64_t *host);

/* A read of guest bytes the image leaves to its backing file, wholly inside it. */
static bool backing_run(struct qcow2 *q, uint64_t offset, uint64_t len, struct image_file **file,
			uint64_t *host)
{
	struct qcow2_backing *b = &q->backing;
	bool ok;

	if (offset >= b->size || len > b->size - offset)
		return false; /* no backing file, or zeroes past its end */
	if (b->raw) {
		*file = b->raw;
		*host = offset;
		return true;
	}
	pthread_mutex_lock(&b->qcow2->lock);
	ok = direct_run(b->qcow2, false, offset, len, file, host);
	pthread_mutex_unlock(&b->qcow2->lock);
	return ok;
}

/*
 * Do guest bytes [offset, offset + len) lie as one run in one file, known from
 * memory alone? For a write the clusters must be ours (COPIED) and fit to
 * write in place; a read may also go to the backing chain.
 */
static bool direct_run(struct qcow2 *q, bool write, uint64_t offset, uint64_t len,
		       struct image_file **file, uint64_t *host)
{
	uint64_t cs = q->cluster_size, in = offset & (cs - 1);
	struct qcow2_map first, m;

	if (!qcow2_map_cached(q, offset, &first))
		return false;
	for (uint64_t k = 1; k * cs < in + len; k++)
		if (!qcow2_map_cached(q, offset - in + k * cs, &m) || !same_run(&first, &m, k, cs) ||
		    (write && !m.copied))
			return false;
	if (first.kind == QCOW2_UNALLOCATED && !write)
		return backing_run(q, offset, len, file, host);
	if (first.kind != QCOW2_NORMAL || (write && !first.copied))
		return false;
	if (write && !in_place_ok(q, first.host + in, len))
		return false;
	*file = q->file;
	*host = first.host + in;
	return true;
}

static bool qcow2_map_io(struct disk *disk, const struct disk_io *io, struct disk_extent *where)
{
	struct qcow2 *q = to_qcow2(disk);
	bool write = io->op == DISK_IO_WRITE;
	uint64_t len = iov_total(io->iov, io->nr_iov);
	struct image_file *file;
	bool ok;

	if ((write && disk->readonly) || len == 0 || !request_ok(disk, io->nr_iov, io->offset, len))
		return false;
	pthread_mutex_lock(&q->lock);
	ok = direct_run(q, write, io->offset, len, &file, &where->offset);
	if (ok)
		where->fd = image_file_fd_for(file, io->iov, io->nr_iov, where->offset);
	ok = ok && where->fd >= 0;
	if (ok && write)
		note_write(q, where->offset, len, QCOW2_SYNC_DATA); /* the next FLUSH syncs it */
	pthread_mutex_unlock(&q->lock);
	return ok;
}

static ssize_t qcow2_readv(struct disk *disk, const struct iovec *iov, int n, uint64_t offset)
{
	struct qcow2 *q = to_qcow2(disk);
	uint64_t len = iov_total(iov, n);
	int ret;

	if (!request_ok(disk, n, offset, len))
		return -EINVAL;
	pthread_mutex_lock(&q->lock);
	ret = qcow2_read_locked(q, iov, n, offset, len);
	pthread_mutex_unlock(&q->lock);
	return ret < 0 ? ret : (ssize_t)len;
}

static int after_update(struct qcow2 *q, int ret)
{
	if (ret == 0 && q->nr_frees > FREES_WRITEBACK)
		ret = qcow2_writeback(q);
	return ret;
}

static ssize_t qcow2_writev(struct disk *disk, const struct iovec *iov, int n, uint64_t offset)
{
	struct qcow2 *q = to_qcow2(disk);
	uint64_t len = iov_total(iov, n);
	int ret;

	if (disk->readonly)
		return -EROFS;
	if (!request_ok(disk, n, offset, len))
		return -EINVAL;
	pthread_mutex_lock(&q->lock);
	ret = after_update(q, write_locked(q, iov, n, offset, len));
	pthread_mutex_unlock(&q->lock);
	return ret < 0 ? ret : (ssize_t)len;
}

static int qcow2_flush(struct disk *disk)
{
	struct qcow2 *q = to_qcow2(disk);
	int ret;

	if (disk->readonly)
		return 0;
	pthread_mutex_lock(&q->lock);
	ret = qcow2_writeback(q);
	if (ret == 0)
		ret = qcow2_sync_if(q, QCOW2_SYNC_ALL);
	pthread_mutex_unlock(&q->lock);
	return ret;
}

static int qcow2_zero(struct disk *disk, uint64_t offset, uint64_t len)
{
	struct qcow2 *q = to_qcow2(disk);
	int ret;

	if (disk->readonly)
		return -EROFS;
	if (!request_ok(disk, 0, offset, len))
		return -EINVAL;
	pthread_mutex_lock(&q->lock);
	ret = after_update(q, zero_locked(q, offset, len));
	pthread_mutex_unlock(&q->lock);
	return ret;
}

static int qcow2_discard(struct disk *disk, uint64_t offset, uint64_t len)
{
	return qcow2_zero(disk, offset, len);
}

static int qcow2_write_zeroes(struct disk *disk, uint64_t offset, uint64_t len, bool may_unmap)
{
	/* Without unmap too the clusters become zero clusters: qcow2 keeps no promise of space. */
	return qcow2_zero(disk, offset, len);
}

static void qcow2_close(struct disk *disk)
{
	struct qcow2 *q = to_qcow2(disk);
	int ret = 0;

	if (!disk->readonly) {
		pthread_mutex_lock(&q->lock);
		ret = qcow2_writeback(q);
		if (ret == 0)
			ret = qcow2_sync_if(q, QCOW2_SYNC_ALL);
		pthread_mutex_unlock(&q->lock);
	}
	if (ret < 0)
		fprintf(stderr, "vireo: disk '%s': writing its metadata back failed: %s\n", q->path,
			strerror(-ret));
	qcow2_destroy(q);
}

const struct disk_ops qcow2_disk_ops = {
	.readv = qcow2_readv,
	.writev = qcow2_writev,
	.flush = qcow2_flush,
	.discard = qcow2_discard,
	.write_zeroes = qcow2_write_zeroes,
	.close = qcow2_close,
	.map = qcow2_map_io,
};

