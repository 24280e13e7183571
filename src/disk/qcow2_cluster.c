/*
 * Guest clusters to host clusters (docs/interop/qcow2.txt "Cluster
 * mapping"): the L1 table lives in memory, L2 tables in the L2 cache.
 * Every entry is checked when it is used: reserved bits clear, offsets
 * aligned, flags that make sense together. A bad entry fails the request
 * with -EIO; it never sends I/O somewhere unchecked.
 *
 * Writes need an L2 table of their own (COPIED set in its L1 entry):
 * a missing one is allocated, a shared one (an internal snapshot also
 * points at it) is copied first. Either way the new L1 entry stays in
 * memory until qcow2_writeback() writes it, after the table itself.
 */
#include <errno.h>

#include "disk/qcow2_internal.h"

int qcow2_l1_entry_offset(const struct qcow2 *q, uint64_t entry, uint64_t *offset)
{
	uint64_t off = entry & QCOW2_OFFSET_MASK;

	if (entry & QCOW2_L1_RESERVED || off & (q->cluster_size - 1))
		return -EIO;
	*offset = off;
	return 0;
}

int qcow2_parse_l2(const struct qcow2 *q, uint64_t entry, struct qcow2_map *m)
{
	memset(m, 0, sizeof(*m));
	if (entry & QCOW2_OFLAG_COMPRESSED) {
		uint64_t sectors = ((entry >> q->csize_shift) & q->csize_mask) + 1;

		if (entry & QCOW2_OFLAG_COPIED)
			return -EIO;
		m->kind = QCOW2_COMPRESSED;
		m->host = entry & q->coffset_mask;
		if (m->host == 0 || m->host >= QCOW2_MAX_HOST_OFFSET)
			return -EIO;
		m->csize = sectors * 512 - (m->host & 511);
		return 0;
	}
	if (entry & QCOW2_L2_RESERVED)
		return -EIO;
	m->host = entry & QCOW2_OFFSET_MASK;
	m->copied = entry & QCOW2_OFLAG_COPIED;
	if (m->host & (q->cluster_size - 1))
		return -EIO;
	if (m->copied && m->host == 0)
		return -EIO; /* offset 0 with COPIED only means something with a data file */
	if (entry & QCOW2_OFLAG_ZERO) {
		if (q->version < 3)
			return -EIO;
		m->kind = QCOW2_ZERO;
	} else {
		m->kind = m->host ? QCOW2_NORMAL : QCOW2_UNALLOCATED;
	}
	return 0;
}

/*
 * May a table be read from offset? It must start inside the file, keep clear
 * of the fixed metadata, and not already be a table of the other kind.
 */
int qcow2_check_table(const struct qcow2 *q, uint64_t offset, const struct qcow2_cache *other)
{
	if (offset == 0 || offset >= q->file_end ||
	    qcow2_overlaps_meta(q, offset, q->cluster_size) || qcow2_cache_has(other, offset))
		return -EIO;
	return 0;
}

static int get_l2(struct qcow2 *q, uint64_t offset, struct qcow2_table **t)
{
	if (!qcow2_cache_has(&q->l2_cache, offset)) {
		int ret = qcow2_check_table(q, offset, &q->rc_cache);

		if (ret < 0)
			return ret;
	}
	return qcow2_cache_get(&q->l2_cache, offset, false, t);
}

static uint64_t l1_index(const struct qcow2 *q, uint64_t guest)
{
	return guest >> (q->cluster_bits + q->l2_bits);
}

static uint64_t l2_index(const struct qcow2 *q, uint64_t guest)
{
	return (guest >> q->cluster_bits) & ((1ull << q->l2_bits) - 1);
}

/* The offset of guest's L2 table, or 0: none (or past the L1 table, the last cluster's tail). */
static int l2_offset_of(const struct qcow2 *q, uint64_t guest, uint64_t *offset)
{
	uint64_t i = l1_index(q, guest);

	*offset = 0;
	if (i >= q->l1_size)
		return 0;
	return qcow2_l1_entry_offset(q, be64toh(q->l1[i]), offset);
}

int qcow2_map(struct qcow2 *q, uint64_t guest, struct qcow2_map *m)
{
	struct qcow2_table *t;
	uint64_t l2_offset, entry;
	int ret;

	memset(m, 0, sizeof(*m));
	ret = l2_offset_of(q, guest, &l2_offset);
	if (ret < 0 || l2_offset == 0)
		return ret;
	ret = get_l2(q, l2_offset, &t);
	if (ret < 0)
		return ret;
	entry = qcow2_get64(t->data + 8 * l2_index(q, guest));
	qcow2_cache_put(&q->l2_cache, t);
	return qcow2_parse_l2(q, entry, m);
}

/*
 * qcow2_map() from what is in memory alone: false where that needs a table
 * not in the cache (or finds a bad entry). Never does I/O, so never writes
 * a table back: safe while the engine has requests in flight.
 */
bool qcow2_map_cached(struct qcow2 *q, uint64_t guest, struct qcow2_map *m)
{
	const uint8_t *l2;
	uint64_t l2_offset;

	memset(m, 0, sizeof(*m));
	if (l2_offset_of(q, guest, &l2_offset) < 0)
		return false;
	if (l2_offset == 0)
		return true;
	l2 = qcow2_cache_peek(&q->l2_cache, l2_offset);
	return l2 && qcow2_parse_l2(q, qcow2_get64(l2 + 8 * l2_index(q, guest)), m) == 0;
}

static void l1_set(struct qcow2 *q, uint64_t i, uint64_t entry)
{
	q->l1[i] = htobe64(entry);
	if (q->l1_dirty_lo == q->l1_dirty_hi) {
		q->l1_dirty_lo = (uint32_t)i;
		q->l1_dirty_hi = (uint32_t)i + 1;
	} else {
		if (i < q->l1_dirty_lo)
			q->l1_dirty_lo = (uint32_t)i;
		if (i + 1 > q->l1_dirty_hi)
			q->l1_dirty_hi = (uint32_t)i + 1;
	}
}

int qcow2_l2_for_write(struct qcow2 *q, uint64_t guest, struct qcow2_table **out)
{
	uint64_t i = l1_index(q, guest), entry, old, fresh;
	struct qcow2_table *src, *t;
	int ret;

	if (i >= q->l1_size)
		return -EIO;
	entry = be64toh(q->l1[i]);
	ret = qcow2_l1_entry_offset(q, entry, &old);
	if (ret < 0)
		return ret;
	if (old && (entry & QCOW2_OFLAG_COPIED))
		return get_l2(q, old, out);
	if (old) {
		uint64_t rc;

		/* Not marked ours, but nothing else holds it: make the flag exact. */
		ret = qcow2_refcount_get(q, qcow2_cluster_index(q, old), &rc);
		if (ret < 0)
			return ret;
		if (rc == 1) {
			ret = get_l2(q, old, out);
			if (ret == 0)
				l1_set(q, i, entry | QCOW2_OFLAG_COPIED);
			return ret;
		}
	}

	ret = qcow2_alloc_cluster(q, &fresh);
	if (ret < 0)
		return ret;
	if (old == 0) {
		ret = qcow2_cache_get(&q->l2_cache, fresh, true, &t);
		if (ret < 0)
			return ret;
	} else {
		/* Shared with a snapshot: copy it. Its clusters keep their refcounts
		 * (they now have one reference from each table), so none is COPIED. */
		ret = get_l2(q, old, &src);
		if (ret < 0)
			return ret;
		ret = qcow2_cache_get(&q->l2_cache, fresh, true, &t);
		if (ret < 0) {
			qcow2_cache_put(&q->l2_cache, src);
			return ret;
		}
		memcpy(t->data, src->data, q->cluster_size);
		qcow2_cache_put(&q->l2_cache, src);
		for (uint64_t e = 0; e < (1ull << q->l2_bits); e++) {
			uint64_t v = qcow2_get64(t->data + 8 * e);

			if (v & QCOW2_OFLAG_COPIED && !(v & QCOW2_OFLAG_COMPRESSED))
				qcow2_put64(t->data + 8 * e, v & ~QCOW2_OFLAG_COPIED);
		}
		ret = qcow2_free_later(q, old, q->cluster_size);
		if (ret < 0) {
			qcow2_cache_put(&q->l2_cache, t);
			return ret;
		}
	}
	ret = qcow2_tables_add(q, fresh);
	if (ret < 0) {
		qcow2_cache_put(&q->l2_cache, t);
		return ret;
	}
	qcow2_cache_dirty(&q->l2_cache, t);
	l1_set(q, i, fresh | QCOW2_OFLAG_COPIED);
	*out = t;
	return 0;
}

int qcow2_write_l1(struct qcow2 *q)
{
	uint32_t lo = q->l1_dirty_lo, hi = q->l1_dirty_hi;
	int ret;

	if (lo >= hi)
		return 0;
	ret = qcow2_write_file(q, q->l1 + lo, (size_t)(hi - lo) * 8,
			       q->l1_offset + (uint64_t)lo * 8, QCOW2_SYNC_L1);
	if (ret < 0)
		return ret;
	q->l1_dirty_lo = q->l1_dirty_hi = 0;
	return 0;
}

/* An L2 table goes to disk only once what its entries point at is stable. */
int qcow2_l2_before_write(struct qcow2 *q)
{
	int ret = qcow2_refcount_flush(q);

	if (ret < 0)
		return ret;
	return qcow2_sync_if(q, QCOW2_SYNC_DATA | QCOW2_SYNC_RC | QCOW2_SYNC_REFTABLE);
}
