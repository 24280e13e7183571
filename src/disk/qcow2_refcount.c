/*
 * Refcounts (docs/interop/qcow2.txt "Host cluster management"), cluster
 * allocation, and the order in which metadata reaches the disk.
 *
 * Crash safety rests on one rule: nothing on disk points at something that
 * is not yet on disk. With write-back caches that becomes an order for
 * qcow2_writeback(), with a barrier (fdatasync) between dependent steps:
 *
 *   1. refcount blocks (they only ever hold increments, which are safe to
 *      write at any time: too high a refcount is a leak, not corruption),
 *      then, after a barrier, refcount table entries for new blocks;
 *   2. barrier; L2 tables (new entries point at clusters whose refcount and
 *      data are now stable);
 *   3. barrier; L1 entries (pointing at L2 tables now stable);
 *   4. barrier; only now are clusters whose references were dropped in
 *      memory given back: their refcount goes down and they may be reused.
 *
 * So allocation is refcount -> data -> L2 -> L1, freeing is the reverse,
 * and a power cut between any two writes leaves at worst leaked clusters.
 * Decrements wait in q->frees until step 4; until then the clusters stay
 * allocated in memory too, so nothing reuses them early. A refcount block
 * or L2 table the cache must evict is written with the same rules
 * (qcow2_l2_before_write()).
 *
 * New refcount blocks cover themselves: when a cluster's range has no
 * block, that cluster becomes the block. When the refcount table is full,
 * a larger one is built past the end of everything, with new blocks that
 * cover the table and themselves, made stable, and only then does the
 * header point at it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "disk/qcow2_internal.h"

/* Refcounts claimed this far past the end of what we know exist are a hostile image. */
#define SCAN_SLACK (1ull << 20)

uint64_t qcow2_rc_entry_get(const uint8_t *block, uint64_t i, unsigned int order)
{
	switch (order) {
	case 0: case 1: case 2: {
		unsigned int bits = 1u << order, per_byte = 8u >> order;
		unsigned int shift = (unsigned int)(i % per_byte) * bits;

		return (block[i / per_byte] >> shift) & ((1u << bits) - 1);
	}
	case 3: return block[i];
	case 4: return qcow2_get16(block + 2 * i);
	case 5: return qcow2_get32(block + 4 * i);
	default: return qcow2_get64(block + 8 * i);
	}
}

static void rc_entry_set(uint8_t *block, uint64_t i, unsigned int order, uint64_t v)
{
	switch (order) {
	case 0: case 1: case 2: {
		unsigned int bits = 1u << order, per_byte = 8u >> order;
		unsigned int shift = (unsigned int)(i % per_byte) * bits;
		uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
		uint8_t *byte = &block[i / per_byte];

		*byte = (uint8_t)((*byte & ~mask) | ((v << shift) & mask));
		break;
	}
	case 3: block[i] = (uint8_t)v; break;
	case 4: block[2 * i] = (uint8_t)(v >> 8); block[2 * i + 1] = (uint8_t)v; break;
	case 5: qcow2_put32(block + 4 * i, (uint32_t)v); break;
	default: qcow2_put64(block + 8 * i, v); break;
	}
}

static uint64_t rc_max(const struct qcow2 *q)
{
	return q->refcount_order == 6 ? UINT64_MAX : (1ull << (1u << q->refcount_order)) - 1;
}

static uint64_t rc_index(const struct qcow2 *q, uint64_t cluster)
{
	return cluster & ((1ull << q->rcb_bits) - 1);
}

/* The refcount block covering cluster: its offset, or 0 when there is none. */
static int rc_block_offset(const struct qcow2 *q, uint64_t cluster, uint64_t *offset)
{
	uint64_t ti = cluster >> q->rcb_bits, entry;

	*offset = 0;
	if (ti >= q->reftable_entries)
		return 0;
	entry = be64toh(q->reftable[ti]);
	if (entry & QCOW2_REFT_RESERVED || entry & (q->cluster_size - 1))
		return -EIO;
	*offset = entry;
	return 0;
}

static int rc_block_get(struct qcow2 *q, uint64_t offset, struct qcow2_table **t)
{
	if (!qcow2_cache_has(&q->rc_cache, offset)) {
		int ret = qcow2_check_table(q, offset, &q->l2_cache);

		if (ret < 0)
			return ret;
	}
	return qcow2_cache_get(&q->rc_cache, offset, false, t);
}

int qcow2_refcount_get(struct qcow2 *q, uint64_t cluster, uint64_t *rc)
{
	struct qcow2_table *t;
	uint64_t offset;
	int ret = rc_block_offset(q, cluster, &offset);

	*rc = 0;
	if (ret < 0 || offset == 0)
		return ret;
	ret = rc_block_get(q, offset, &t);
	if (ret < 0)
		return ret;
	*rc = qcow2_rc_entry_get(t->data, rc_index(q, cluster), q->refcount_order);
	qcow2_cache_put(&q->rc_cache, t);
	return 0;
}

static void reftable_set(struct qcow2 *q, uint64_t ti, uint64_t offset)
{
	q->reftable[ti] = htobe64(offset);
	if (q->reftable_dirty_lo == q->reftable_dirty_hi) {
		q->reftable_dirty_lo = ti;
		q->reftable_dirty_hi = ti + 1;
	} else {
		if (ti < q->reftable_dirty_lo)
			q->reftable_dirty_lo = ti;
		if (ti + 1 > q->reftable_dirty_hi)
			q->reftable_dirty_hi = ti + 1;
	}
}

/* Repair: one more reference to cluster, the array growing as needed. */
static int repair_count(struct qcow2 *q, uint64_t cluster, int delta)
{
	if (!q->repair_refs)
		return 0;
	if (cluster >= q->repair_nb) {
		uint64_t limit = qcow2_cluster_index(q, q->file_end) + SCAN_SLACK;
		uint64_t nb = q->repair_nb;
		uint32_t *refs;

		if (cluster >= limit)
			return -EIO; /* metadata pointing far past the end of the file */
		while (nb <= cluster)
			nb = nb * 2 > limit ? limit : nb * 2 + 1;
		refs = realloc(q->repair_refs, nb * sizeof(*refs));
		if (!refs)
			return -ENOMEM;
		memset(refs + q->repair_nb, 0, (nb - q->repair_nb) * sizeof(*refs));
		q->repair_refs = refs;
		q->repair_nb = nb;
	}
	if (delta < 0 && q->repair_refs[cluster])
		q->repair_refs[cluster]--;
	else if (delta > 0 && q->repair_refs[cluster] < UINT32_MAX)
		q->repair_refs[cluster]++;
	return 0;
}

static bool repair_used(const struct qcow2 *q, uint64_t cluster)
{
	return q->repair_refs && cluster < q->repair_nb && q->repair_refs[cluster];
}

static void note_allocated(struct qcow2 *q, uint64_t cluster)
{
	if (cluster + 1 > q->alloc_end)
		q->alloc_end = cluster + 1;
}

/* Cluster's range has no refcount block: cluster itself becomes it, counting itself. */
static int new_block_at(struct qcow2 *q, uint64_t cluster)
{
	uint64_t offset = cluster << q->cluster_bits;
	struct qcow2_table *t;
	int ret;

	qcow2_cache_forget(&q->l2_cache, offset);
	ret = qcow2_cache_get(&q->rc_cache, offset, true, &t);
	if (ret < 0)
		return ret;
	rc_entry_set(t->data, rc_index(q, cluster), q->refcount_order, 1);
	qcow2_cache_dirty(&q->rc_cache, t);
	qcow2_cache_put(&q->rc_cache, t);
	reftable_set(q, cluster >> q->rcb_bits, offset);
	note_allocated(q, cluster);
	ret = qcow2_tables_add(q, offset);
	return ret < 0 ? ret : repair_count(q, cluster, 1);
}

static uint64_t div_round_up(uint64_t a, uint64_t b)
{
	return (a + b - 1) / b;
}

/* Lowers cluster's refcount by one, now (its last reference is gone from disk). */
static int rc_decrement(struct qcow2 *q, uint64_t cluster)
{
	struct qcow2_table *t;
	uint64_t offset, rc;
	int ret = rc_block_offset(q, cluster, &offset);

	if (ret < 0 || offset == 0)
		return ret; /* no refcount to lower: the image was already inconsistent */
	ret = rc_block_get(q, offset, &t);
	if (ret < 0)
		return ret;
	rc = qcow2_rc_entry_get(t->data, rc_index(q, cluster), q->refcount_order);
	if (rc > 0) {
		rc_entry_set(t->data, rc_index(q, cluster), q->refcount_order, rc - 1);
		qcow2_cache_dirty(&q->rc_cache, t);
	}
	qcow2_cache_put(&q->rc_cache, t);
	if (rc == 1) {
		uint64_t at = cluster << q->cluster_bits;

		if (cluster < q->free_hint)
			q->free_hint = cluster;
		qcow2_cache_forget(&q->l2_cache, at);
		qcow2_cache_forget(&q->rc_cache, at);
		qcow2_tables_remove(q, at);
		if (q->dbuf_host != UINT64_MAX)
			q->dbuf_host = UINT64_MAX; /* it may have held part of this cluster */
	}
	return 0;
}

/*
 * A bigger refcount table, able to hold entry need. It goes past the end of
 * everything (clusters nothing covers yet), followed by the refcount blocks
 * that cover it and themselves. Stable before the header points at it;
 * the old table is freed after.
 */
static int grow_reftable(struct qcow2 *q, uint64_t need)
{
	uint64_t cs = q->cluster_size, per_block = 1ull << q->rcb_bits;
	uint64_t old_entries = q->reftable_entries, old_offset = q->reftable_offset;
	uint64_t old_clusters = q->reftable_clusters;
	uint64_t start, entries, n = 0, m = 0, end = 0, first_ti = 0;
	uint8_t *table, *block;
	uint8_t hdr[12];
	int ret;

	ret = qcow2_writeback(q); /* what the new table copies must be on disk */
	if (ret < 0)
		return ret;
	start = div_round_up(q->file_end, cs);
	if (start < q->alloc_end)
		start = q->alloc_end;
	if (start < old_entries * per_block)
		start = old_entries * per_block;
	entries = old_entries + old_entries / 2;
	if (entries < need + 1)
		entries = need + 1;
	for (int round = 0; round < 64; round++) {
		uint64_t last_ti, blocks;

		n = div_round_up(entries * 8, cs);
		end = start + n + m;
		first_ti = start / per_block;
		last_ti = (end - 1) / per_block;
		blocks = last_ti - first_ti + 1;
		if (last_ti >= entries) {
			entries = last_ti + 1;
			continue;
		}
		if (blocks != m) {
			m = blocks;
			continue;
		}
		break;
	}
	if (n * cs > QCOW2_MAX_REFTABLE_BYTES || end > (QCOW2_MAX_HOST_OFFSET >> q->cluster_bits))
		return -ENOSPC;
	entries = n * cs / 8;
	table = calloc(1, n * cs);
	block = malloc(cs);
	if (!table || !block) {
		free(table);
		free(block);
		return -ENOMEM;
	}
	memcpy(table, q->reftable, old_entries * 8);
	for (uint64_t k = 0; k < m && ret == 0; k++) {
		uint64_t ti = first_ti + k, at = (start + n + k) * cs;
		uint64_t lo = ti * per_block, hi = lo + per_block;

		qcow2_put64(table + 8 * ti, at);
		qcow2_cache_forget(&q->l2_cache, at);
		qcow2_cache_forget(&q->rc_cache, at);
		if (qcow2_tables_add(q, at) < 0) {
			ret = -ENOMEM;
			break;
		}
		memset(block, 0, cs);
		for (uint64_t c = lo < start ? start : lo; c < (hi < end ? hi : end); c++)
			rc_entry_set(block, c - lo, q->refcount_order, 1);
		ret = qcow2_write_file(q, block, cs, at, QCOW2_SYNC_RC);
	}
	free(block);
	if (ret == 0)
		ret = qcow2_write_file(q, table, n * cs, start * cs, QCOW2_SYNC_RC);
	if (ret == 0)
		ret = qcow2_sync_if(q, QCOW2_SYNC_ALL);
	if (ret == 0) {
		qcow2_put64(hdr, start * cs);
		qcow2_put32(hdr + 8, (uint32_t)n);
		ret = qcow2_write_file(q, hdr, sizeof(hdr), QH_REFTABLE_OFFSET, QCOW2_SYNC_HEADER);
	}
	if (ret == 0)
		ret = qcow2_sync_if(q, QCOW2_SYNC_ALL);
	if (ret < 0) {
		for (uint64_t k = 0; k < m; k++)
			qcow2_tables_remove(q, (start + n + k) * cs);
		free(table);
		return ret;
	}
	free(q->reftable);
	q->reftable = (uint64_t *)table;
	q->reftable_entries = entries;
	q->reftable_offset = start * cs;
	q->reftable_clusters = (uint32_t)n;
	q->reftable_dirty_lo = q->reftable_dirty_hi = 0;
	note_allocated(q, end - 1);
	for (uint64_t c = start; c < end && ret == 0; c++)
		ret = repair_count(q, c, 1);
	if (ret == 0)
		ret = qcow2_build_meta(q);
	/* The header no longer points at the old table: give it back. */
	for (uint64_t c = 0; c < old_clusters && ret == 0; c++) {
		ret = rc_decrement(q, qcow2_cluster_index(q, old_offset) + c);
		if (ret == 0)
			ret = repair_count(q, qcow2_cluster_index(q, old_offset) + c, -1);
	}
	return ret;
}

/* May cluster c become a data cluster or a table, as far as what else lives there goes? */
static bool spot_free(const struct qcow2 *q, uint64_t c)
{
	return !qcow2_overlaps_meta(q, c << q->cluster_bits, q->cluster_size) &&
	       !qcow2_is_table(q, c << q->cluster_bits) && !repair_used(q, c);
}

/* Entry i of refcount block t, cluster c, is 0: c is ours now. Unpins t. */
static int claim(struct qcow2 *q, struct qcow2_table *t, uint64_t i, uint64_t c)
{
	rc_entry_set(t->data, i, q->refcount_order, 1);
	qcow2_cache_dirty(&q->rc_cache, t);
	qcow2_cache_put(&q->rc_cache, t);
	note_allocated(q, c);
	/* A stale table of a cluster freed earlier must not come back. */
	qcow2_cache_forget(&q->l2_cache, c << q->cluster_bits);
	if (q->dbuf_host != UINT64_MAX)
		q->dbuf_host = UINT64_MAX;
	return repair_count(q, c, 1);
}

/* The clusters past this index are a hostile image's vast claims, or past what qcow2 can address. */
static uint64_t alloc_limit(const struct qcow2 *q)
{
	uint64_t known = div_round_up(q->file_end, q->cluster_size);
	uint64_t limit = QCOW2_MAX_HOST_OFFSET >> q->cluster_bits;

	if (known < q->alloc_end)
		known = q->alloc_end;
	return known + SCAN_SLACK < limit ? known + SCAN_SLACK + 1 : limit;
}

int qcow2_alloc_cluster(struct qcow2 *q, uint64_t *offset)
{
	uint64_t limit = alloc_limit(q), c = q->free_hint;
	int ret;

	while (c < limit) {
		struct qcow2_table *t;
		uint64_t block, ti = c >> q->rcb_bits, i;

		if (!spot_free(q, c)) {
			c++;
			continue;
		}
		if (ti >= q->reftable_entries) {
			ret = grow_reftable(q, ti);
			if (ret < 0)
				return ret;
			limit = alloc_limit(q);
			continue; /* look at c again: the new table may have taken it */
		}
		ret = rc_block_offset(q, c, &block);
		if (ret < 0)
			return ret;
		if (block == 0) {
			ret = new_block_at(q, c);
			if (ret < 0)
				return ret;
			c++;
			continue;
		}
		ret = rc_block_get(q, block, &t);
		if (ret < 0)
			return ret;
		for (i = rc_index(q, c); i < (1ull << q->rcb_bits) && c < limit; i++, c++) {
			if (spot_free(q, c) && qcow2_rc_entry_get(t->data, i, q->refcount_order) == 0) {
				q->free_hint = c + 1; /* nothing below c was free */
				*offset = c << q->cluster_bits;
				return claim(q, t, i, c);
			}
		}
		qcow2_cache_put(&q->rc_cache, t);
	}
	return c >= QCOW2_MAX_HOST_OFFSET >> q->cluster_bits ? -ENOSPC : -EIO;
}

/*
 * Takes the cluster at offset if it is free and its refcount block exists
 * already: a run of new clusters grows by one. False when it cannot, which
 * is no error: the caller allocates elsewhere (a failed repair count, after
 * the cluster was taken, leaks it: too high a refcount, never corruption).
 */
bool qcow2_alloc_cluster_at(struct qcow2 *q, uint64_t offset)
{
	uint64_t c = offset >> q->cluster_bits, block;
	struct qcow2_table *t;

	if (c >= alloc_limit(q) || !spot_free(q, c) || rc_block_offset(q, c, &block) < 0 ||
	    block == 0 || rc_block_get(q, block, &t) < 0)
		return false;
	if (qcow2_rc_entry_get(t->data, rc_index(q, c), q->refcount_order) != 0) {
		qcow2_cache_put(&q->rc_cache, t);
		return false;
	}
	if (c == q->free_hint)
		q->free_hint = c + 1;
	return claim(q, t, rc_index(q, c), c) == 0;
}

/* The clusters [offset, offset + len) touches lose one reference, once that is on disk. */
int qcow2_free_later(struct qcow2 *q, uint64_t offset, uint64_t len)
{
	uint64_t first = offset >> q->cluster_bits;
	uint64_t last = (offset + len - 1) >> q->cluster_bits;
	struct qcow2_range *r;

	if (len == 0)
		return 0;
	if (q->nr_frees && q->frees[q->nr_frees - 1].end == first) {
		q->frees[q->nr_frees - 1].end = last + 1;
		return 0;
	}
	if (q->nr_frees == q->cap_frees) {
		size_t cap = q->cap_frees ? q->cap_frees * 2 : 64;

		r = realloc(q->frees, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		q->frees = r;
		q->cap_frees = cap;
	}
	q->frees[q->nr_frees++] = (struct qcow2_range){ first, last + 1 };
	return 0;
}

void qcow2_free_map_later(struct qcow2 *q, const struct qcow2_map *m)
{
	int ret = 0;

	if (m->kind == QCOW2_COMPRESSED)
		ret = qcow2_free_later(q, m->host, m->csize);
	else if ((m->kind == QCOW2_NORMAL || m->kind == QCOW2_ZERO) && m->host)
		ret = qcow2_free_later(q, m->host, q->cluster_size);
	if (ret < 0)
		fprintf(stderr, "vireo: disk '%s': out of memory: a cluster leaks\n", q->path);
}

int qcow2_refcount_flush(struct qcow2 *q)
{
	uint64_t lo = q->reftable_dirty_lo, hi = q->reftable_dirty_hi;
	int ret = qcow2_cache_flush(&q->rc_cache);

	if (ret < 0 || lo >= hi)
		return ret;
	/* A table entry may point at a new block only once the block is stable. */
	ret = qcow2_sync_if(q, QCOW2_SYNC_RC);
	if (ret == 0)
		ret = qcow2_write_file(q, q->reftable + lo, (size_t)(hi - lo) * 8,
				       q->reftable_offset + lo * 8, QCOW2_SYNC_REFTABLE);
	if (ret == 0)
		q->reftable_dirty_lo = q->reftable_dirty_hi = 0;
	return ret;
}

/*
 * Gives back what q->frees holds. A refcount that cannot be lowered (its
 * block unreadable or bad) stays as it is: a leaked cluster, which is safe,
 * rather than a write-back that fails forever.
 */
static void apply_frees(struct qcow2 *q)
{
	uint64_t leaked = 0;

	for (size_t i = 0; i < q->nr_frees; i++)
		for (uint64_t c = q->frees[i].start; c < q->frees[i].end; c++)
			leaked += rc_decrement(q, c) < 0;
	q->nr_frees = 0;
	if (leaked)
		fprintf(stderr, "vireo: disk '%s': %llu clusters could not be freed (their "
			"refcounts are unreadable); they leak\n", q->path,
			(unsigned long long)leaked);
}

int qcow2_writeback(struct qcow2 *q)
{
	int ret;

	if (!q->rc_cache.nr_dirty && !q->l2_cache.nr_dirty && q->l1_dirty_lo >= q->l1_dirty_hi &&
	    q->reftable_dirty_lo >= q->reftable_dirty_hi && !q->nr_frees)
		return 0;
	ret = qcow2_refcount_flush(q);				/* 1 */
	if (ret == 0)
		ret = qcow2_cache_flush(&q->l2_cache);		/* 2: the hook syncs first */
	if (ret == 0 && q->l1_dirty_lo < q->l1_dirty_hi) {	/* 3 */
		ret = qcow2_sync_if(q, QCOW2_SYNC_ALL & ~QCOW2_SYNC_HEADER);
		if (ret == 0)
			ret = qcow2_write_l1(q);
	}
	if (ret == 0 && q->nr_frees) {				/* 4 */
		ret = qcow2_sync_if(q, QCOW2_SYNC_ALL);
		if (ret == 0) {
			apply_frees(q);
			ret = qcow2_refcount_flush(q);
		}
	}
	return ret;
}

/* ---- repair of a dirty image: what qemu-img check -r all does to refcounts ---- */

static int count_range(struct qcow2 *q, uint64_t offset, uint64_t len)
{
	int ret = 0;

	if (len == 0)
		return 0;
	for (uint64_t c = offset >> q->cluster_bits; c <= (offset + len - 1) >> q->cluster_bits &&
						     ret == 0; c++)
		ret = repair_count(q, c, 1);
	return ret;
}

static int count_l1(struct qcow2 *q, const uint64_t *l1, uint32_t size)
{
	for (uint32_t i = 0; i < size; i++) {
		uint64_t l2;
		struct qcow2_table *t;
		int ret = qcow2_l1_entry_offset(q, be64toh(l1[i]), &l2);

		if (ret < 0)
			return ret;
		if (l2 == 0)
			continue;
		ret = count_range(q, l2, q->cluster_size);
		if (ret == 0 && !qcow2_cache_has(&q->l2_cache, l2))
			ret = qcow2_check_table(q, l2, &q->rc_cache);
		if (ret == 0)
			ret = qcow2_cache_get(&q->l2_cache, l2, false, &t);
		if (ret < 0)
			return ret;
		for (uint64_t e = 0; e < (1ull << q->l2_bits) && ret == 0; e++) {
			struct qcow2_map m;

			ret = qcow2_parse_l2(q, qcow2_get64(t->data + 8 * e), &m);
			if (ret == 0 && m.kind == QCOW2_COMPRESSED)
				ret = count_range(q, m.host, m.csize);
			else if (ret == 0 && m.host)
				ret = count_range(q, m.host, q->cluster_size);
		}
		qcow2_cache_put(&q->l2_cache, t);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int count_references(struct qcow2 *q)
{
	uint64_t cs = q->cluster_size;
	int ret = count_range(q, 0, cs);

	if (ret == 0)
		ret = count_range(q, q->l1_offset, (uint64_t)q->l1_size * 8);
	if (ret == 0)
		ret = count_range(q, q->reftable_offset, (uint64_t)q->reftable_clusters * cs);
	for (uint64_t ti = 0; ti < q->reftable_entries && ret == 0; ti++) {
		uint64_t block;

		ret = rc_block_offset(q, ti << q->rcb_bits, &block);
		if (ret == 0 && block)
			ret = count_range(q, block, cs);
	}
	if (ret == 0 && q->nr_snapshots)
		ret = count_range(q, q->snapshots_offset, q->snapshots_size);
	if (ret == 0)
		ret = count_l1(q, q->l1, q->l1_size);
	for (uint32_t s = 0; s < q->nr_snapshots && ret == 0; s++) {
		struct qcow2_snapshot *snap = &q->snapshots[s];
		uint64_t *l1;

		if (!snap->l1_size)
			continue;
		ret = count_range(q, snap->l1_offset, (uint64_t)snap->l1_size * 8);
		l1 = malloc((size_t)snap->l1_size * 8);
		if (!l1)
			return -ENOMEM;
		if (ret == 0)
			ret = qcow2_read_file(q, l1, (size_t)snap->l1_size * 8, snap->l1_offset);
		if (ret == 0)
			ret = count_l1(q, l1, snap->l1_size);
		free(l1);
	}
	return ret;
}

/* Sets cluster's refcount to value, making a refcount block for it if there is none. */
static int rc_set(struct qcow2 *q, uint64_t cluster, uint64_t value)
{
	struct qcow2_table *t;
	uint64_t offset;
	int ret = rc_block_offset(q, cluster, &offset);

	if (ret < 0)
		return ret;
	if (offset == 0) {
		uint64_t ti = cluster >> q->rcb_bits, at;

		if (value == 0)
			return 0;
		if (ti >= q->reftable_entries) {
			ret = grow_reftable(q, ti);
			if (ret < 0)
				return ret;
			return rc_set(q, cluster, value);
		}
		ret = qcow2_alloc_cluster(q, &at);
		if (ret < 0)
			return ret;
		ret = rc_block_offset(q, cluster, &offset);
		if (ret < 0)
			return ret;
		if (offset == 0) { /* at is elsewhere: it becomes this range's block */
			ret = qcow2_cache_get(&q->rc_cache, at, true, &t);
			if (ret < 0)
				return ret;
			qcow2_cache_dirty(&q->rc_cache, t);
			qcow2_cache_put(&q->rc_cache, t);
			reftable_set(q, ti, at);
			offset = at;
			ret = qcow2_tables_add(q, at);
			if (ret < 0)
				return ret;
		} else {
			/* Allocating at made this range's block on the way: give at back. */
			ret = rc_decrement(q, qcow2_cluster_index(q, at));
			if (ret == 0)
				ret = repair_count(q, qcow2_cluster_index(q, at), -1);
			if (ret < 0)
				return ret;
		}
	}
	ret = rc_block_get(q, offset, &t);
	if (ret < 0)
		return ret;
	rc_entry_set(t->data, rc_index(q, cluster), q->refcount_order, value);
	qcow2_cache_dirty(&q->rc_cache, t);
	qcow2_cache_put(&q->rc_cache, t);
	return 0;
}

static int fix_copied(struct qcow2 *q)
{
	for (uint32_t i = 0; i < q->l1_size; i++) {
		uint64_t entry = be64toh(q->l1[i]), l2;
		struct qcow2_table *t;
		bool want;
		int ret = qcow2_l1_entry_offset(q, entry, &l2);

		if (ret < 0)
			return ret;
		if (l2 == 0)
			continue;
		want = q->repair_refs[qcow2_cluster_index(q, l2)] == 1;
		if (want != !!(entry & QCOW2_OFLAG_COPIED)) {
			entry = want ? entry | QCOW2_OFLAG_COPIED : entry & ~QCOW2_OFLAG_COPIED;
			q->l1[i] = htobe64(entry);
			if (q->l1_dirty_lo >= q->l1_dirty_hi)
				q->l1_dirty_lo = i;
			q->l1_dirty_hi = i + 1;
		}
		ret = qcow2_cache_get(&q->l2_cache, l2, false, &t);
		if (ret < 0)
			return ret;
		for (uint64_t e = 0; e < (1ull << q->l2_bits); e++) {
			uint64_t v = qcow2_get64(t->data + 8 * e);
			struct qcow2_map m;

			if (qcow2_parse_l2(q, v, &m) < 0 || m.kind == QCOW2_COMPRESSED || !m.host)
				continue;
			want = q->repair_refs[qcow2_cluster_index(q, m.host)] == 1;
			if (want != m.copied) {
				qcow2_put64(t->data + 8 * e, want ? v | QCOW2_OFLAG_COPIED
								  : v & ~QCOW2_OFLAG_COPIED);
				qcow2_cache_dirty(&q->l2_cache, t);
			}
		}
		qcow2_cache_put(&q->l2_cache, t);
	}
	return 0;
}

/*
 * The image is marked dirty (lazy refcounts, or a crash): count every
 * reference from the metadata, then raise refcounts that are too low, set
 * COPIED exactly, lower refcounts that are too high, and clear the bit.
 * Until the bit is cleared at the very end, a crash leaves it dirty.
 */
int qcow2_repair(struct qcow2 *q)
{
	uint64_t nb = div_round_up(q->file_end, q->cluster_size) + 1;
	int ret;

	q->repair_refs = calloc(nb, sizeof(*q->repair_refs));
	if (!q->repair_refs)
		return -ENOMEM;
	q->repair_nb = nb;
	ret = count_references(q);
	for (uint64_t c = 0; c < q->repair_nb && ret == 0; c++) {
		uint64_t rc;

		ret = qcow2_refcount_get(q, c, &rc);
		if (ret == 0 && q->repair_refs[c] > rc_max(q))
			ret = -ERANGE;
		else if (ret == 0 && q->repair_refs[c] > rc)
			ret = rc_set(q, c, q->repair_refs[c]);
	}
	if (ret == 0)
		ret = qcow2_writeback(q);
	if (ret == 0)
		ret = fix_copied(q);
	if (ret == 0)
		ret = qcow2_writeback(q);
	for (uint64_t c = 0; c < q->repair_nb && ret == 0; c++) {
		uint64_t rc;

		ret = qcow2_refcount_get(q, c, &rc);
		if (ret == 0 && rc > q->repair_refs[c]) {
			ret = rc_set(q, c, q->repair_refs[c]);
			if (q->repair_refs[c] == 0 && c < q->free_hint)
				q->free_hint = c;
		}
	}
	if (ret == 0)
		ret = qcow2_writeback(q);
	if (ret == 0)
		ret = qcow2_sync_if(q, QCOW2_SYNC_ALL);
	free(q->repair_refs);
	q->repair_refs = NULL;
	q->repair_nb = 0;
	return ret;
}
