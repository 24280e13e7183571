/*
 * The qcow2 table caches: one for L2 tables, one for refcount blocks. A
 * cache holds whole cluster-sized tables keyed by file offset, found
 * through a small hash table, replaced by the clock algorithm (a second
 * chance for tables used since the hand last passed).
 *
 * Tables are written back lazily: on the guest's FLUSH (qcow2_writeback()),
 * or when a dirty table must make room. Before a dirty table is written the
 * cache calls before_write(), which is where ordering lives: an L2 table
 * goes out only after the refcounts and data it points at are stable.
 * Refcount blocks have no such hook: what they hold is always safe to write
 * (see qcow2_refcount.c).
 *
 * A table in use is pinned (get ... put) and never replaced. All of this
 * runs under the image's lock.
 */
#include <errno.h>
#include <stdlib.h>

#include "disk/qcow2_internal.h"

static unsigned int cache_hash(const struct qcow2_cache *c, uint64_t offset)
{
	uint64_t h = (offset >> c->q->cluster_bits) * 0x9e3779b97f4a7c15ull;

	return (unsigned int)(h >> 32) & (c->nr_buckets - 1);
}

int qcow2_cache_init(struct qcow2_cache *c, struct qcow2 *q, unsigned int nr,
		     unsigned int sync_bit, int (*before_write)(struct qcow2 *q))
{
	memset(c, 0, sizeof(*c));
	c->q = q;
	c->nr = nr < QCOW2_MIN_CACHE_TABLES ? QCOW2_MIN_CACHE_TABLES : nr;
	c->sync_bit = sync_bit;
	c->before_write = before_write;
	c->nr_buckets = 1;
	while (c->nr_buckets < 2 * c->nr)
		c->nr_buckets <<= 1;
	c->tables = calloc(c->nr, sizeof(*c->tables));
	c->buckets = malloc(c->nr_buckets * sizeof(*c->buckets));
	if (!c->tables || !c->buckets) {
		qcow2_cache_destroy(c);
		return -ENOMEM;
	}
	for (unsigned int i = 0; i < c->nr_buckets; i++)
		c->buckets[i] = -1;
	for (unsigned int i = 0; i < c->nr; i++)
		c->tables[i].next = -1;
	return 0;
}

void qcow2_cache_destroy(struct qcow2_cache *c)
{
	if (c->tables)
		for (unsigned int i = 0; i < c->nr; i++)
			free(c->tables[i].data);
	free(c->tables);
	free(c->buckets);
	c->tables = NULL;
	c->buckets = NULL;
}

static int cache_lookup(const struct qcow2_cache *c, uint64_t offset)
{
	if (offset == 0)
		return -1;
	for (int i = c->buckets[cache_hash(c, offset)]; i >= 0; i = c->tables[i].next)
		if (c->tables[i].offset == offset)
			return i;
	return -1;
}

static void cache_unlink(struct qcow2_cache *c, struct qcow2_table *t)
{
	int *link = &c->buckets[cache_hash(c, t->offset)];
	int self = (int)(t - c->tables);

	while (*link >= 0 && *link != self)
		link = &c->tables[*link].next;
	if (*link == self)
		*link = t->next;
	t->next = -1;
	t->offset = 0;
}

static int cache_write(struct qcow2_cache *c, struct qcow2_table *t)
{
	int ret;

	if (!t->dirty)
		return 0;
	if (c->before_write) {
		ret = c->before_write(c->q);
		if (ret < 0)
			return ret;
	}
	ret = qcow2_write_file(c->q, t->data, c->q->cluster_size, t->offset, c->sync_bit);
	if (ret < 0)
		return ret;
	t->dirty = false;
	c->nr_dirty--;
	return 0;
}

/* A slot to reuse: empty, or the clock's victim, written back first if dirty. */
static int cache_victim(struct qcow2_cache *c, struct qcow2_table **victim)
{
	for (unsigned int tries = 0; tries < 2 * c->nr + 1; tries++) {
		struct qcow2_table *t = &c->tables[c->hand];
		int ret;

		c->hand = (c->hand + 1) % c->nr;
		if (t->pins)
			continue;
		if (t->offset && t->used) {
			t->used = false;
			continue;
		}
		if (t->offset) {
			ret = cache_write(c, t);
			if (ret < 0)
				return ret;
			cache_unlink(c, t);
		}
		*victim = t;
		return 0;
	}
	return -EBUSY; /* everything pinned: a bug, not an image problem */
}

int qcow2_cache_get(struct qcow2_cache *c, uint64_t offset, bool fresh, struct qcow2_table **out)
{
	uint64_t size = c->q->cluster_size;
	struct qcow2_table *t;
	int i = cache_lookup(c, offset), ret;

	if (i >= 0) {
		t = &c->tables[i];
		if (fresh)
			memset(t->data, 0, size);
	} else {
		ret = cache_victim(c, &t);
		if (ret < 0)
			return ret;
		if (!t->data && posix_memalign((void **)&t->data, 4096, size))
			return -ENOMEM;
		if (fresh) {
			memset(t->data, 0, size);
		} else {
			ret = qcow2_read_file(c->q, t->data, size, offset);
			if (ret < 0)
				return ret;
		}
		t->offset = offset;
		t->dirty = false;
		t->next = c->buckets[cache_hash(c, offset)];
		c->buckets[cache_hash(c, offset)] = (int)(t - c->tables);
	}
	t->pins++;
	t->used = true;
	*out = t;
	return 0;
}

void qcow2_cache_put(struct qcow2_cache *c, struct qcow2_table *t)
{
	if (t && t->pins)
		t->pins--;
}

void qcow2_cache_dirty(struct qcow2_cache *c, struct qcow2_table *t)
{
	if (t->offset && !t->dirty) {
		t->dirty = true;
		c->nr_dirty++;
	}
}

int qcow2_cache_flush(struct qcow2_cache *c)
{
	for (unsigned int i = 0; i < c->nr && c->nr_dirty; i++) {
		int ret = cache_write(c, &c->tables[i]);

		if (ret < 0)
			return ret;
	}
	return 0;
}

bool qcow2_cache_has(const struct qcow2_cache *c, uint64_t offset)
{
	return cache_lookup(c, offset) >= 0;
}

const uint8_t *qcow2_cache_peek(struct qcow2_cache *c, uint64_t offset)
{
	int i = cache_lookup(c, offset);

	if (i < 0)
		return NULL;
	c->tables[i].used = true;
	return c->tables[i].data;
}

/* The cluster was freed: its table must never be written back. */
void qcow2_cache_forget(struct qcow2_cache *c, uint64_t offset)
{
	int i = cache_lookup(c, offset);
	struct qcow2_table *t;

	if (i < 0)
		return;
	t = &c->tables[i];
	if (t->dirty) {
		t->dirty = false;
		c->nr_dirty--;
	}
	cache_unlink(c, t);
}
