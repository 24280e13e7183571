/*
 * What the qcow2 files share: the on-disk constants (from QEMU's
 * docs/interop/qcow2.txt, the format's specification), the in-memory image,
 * and the functions one file calls in another.
 *
 *   qcow2.c           the disk ops: read, write, zeroes, flush; compression
 *   qcow2_open.c      opening: backing chain, corrupt and dirty images; teardown
 *   qcow2_header.c    parsing and validating the header, extensions, snapshots
 *   qcow2_cluster.c   guest cluster -> host mapping: L1, L2, allocating L2 tables
 *   qcow2_refcount.c  refcounts: lookup, allocation, refcount table growth,
 *                     deferred frees, write-back order, repair of dirty images
 *   qcow2_cache.c     the L2 and refcount block caches
 *
 * Crash safety is a matter of order (see qcow2_writeback() in qcow2_refcount.c):
 * a reference on disk never points at something that is not yet on disk.
 */
#ifndef VIREO_DISK_QCOW2_INTERNAL_H
#define VIREO_DISK_QCOW2_INTERNAL_H

#include <endian.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <zlib.h>

#include "disk/disk.h"
#include "disk/image_file.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */
#define QCOW2_V2_HEADER_LEN 72
#define QCOW2_V3_HEADER_LEN 104
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_REFCOUNT_ORDER 6
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_CHAIN 16			/* backing files below the top image */
/* Limits QEMU also has, so that whatever we accept or grow, QEMU opens too. */
#define QCOW2_MAX_L1_BYTES (32ull << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8ull << 20)
#define QCOW2_MAX_SNAPSHOTS 65536u
#define QCOW2_MAX_SNAPSHOT_TABLE (64ull << 20)
#define QCOW2_MAX_SNAPSHOT_EXTRA 1024u
#define QCOW2_MAX_HOST_OFFSET (1ull << 56)	/* L1/L2 entries hold bits 9-55 */
#define QCOW2_IOV_MAX 1024
#define QCOW2_MIN_CACHE_TABLES 4		/* per cache: room for what one op pins */

/* Header fields (byte offsets, big endian). */
#define QH_VERSION 4
#define QH_BACKING_OFFSET 8
#define QH_BACKING_SIZE 16
#define QH_CLUSTER_BITS 20
#define QH_SIZE 24
#define QH_CRYPT_METHOD 32
#define QH_L1_SIZE 36
#define QH_L1_OFFSET 40
#define QH_REFTABLE_OFFSET 48
#define QH_REFTABLE_CLUSTERS 56
#define QH_NB_SNAPSHOTS 60
#define QH_SNAPSHOTS_OFFSET 64
#define QH_INCOMPATIBLE 72
#define QH_COMPATIBLE 80
#define QH_AUTOCLEAR 88
#define QH_REFCOUNT_ORDER 96
#define QH_HEADER_LENGTH 100
#define QH_COMPRESSION_TYPE 104

#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)
#define QCOW2_INCOMPAT_KNOWN (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT | \
			      QCOW2_INCOMPAT_COMPRESSION)
#define QCOW2_COMPAT_LAZY_REFCOUNTS (1ull << 0)

#define QCOW2_COMPRESSION_ZLIB 0
#define QCOW2_COMPRESSION_ZSTD 1

#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_NAMES 0x6803f857u
#define QCOW2_EXT_DATA_FILE 0x44415441u

/* L1 and L2 entries ("Cluster mapping"). */
#define QCOW2_OFLAG_COPIED (1ull << 63)	    /* refcount is exactly one */
#define QCOW2_OFLAG_COMPRESSED (1ull << 62)
#define QCOW2_OFLAG_ZERO (1ull << 0)	    /* v3: reads as zeroes */
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull /* bits 9-55 */
#define QCOW2_L1_RESERVED 0x7f000000000001ffull /* bits 0-8 and 56-62 */
#define QCOW2_L2_RESERVED 0x3f000000000001feull /* bits 1-8 and 56-61 */
#define QCOW2_REFT_RESERVED 0x1ffull		/* bits 0-8 */

/* Kinds of writes since the last barrier; see qcow2_sync_if(). */
#define QCOW2_SYNC_DATA (1u << 0)     /* guest data */
#define QCOW2_SYNC_RC (1u << 1)	      /* refcount blocks */
#define QCOW2_SYNC_REFTABLE (1u << 2) /* refcount table entries */
#define QCOW2_SYNC_L2 (1u << 3)
#define QCOW2_SYNC_L1 (1u << 4)
#define QCOW2_SYNC_HEADER (1u << 5)
#define QCOW2_SYNC_ALL 0x3fu

struct qcow2;

/* A table cache: cluster-sized tables keyed by their offset in the file. */
struct qcow2_table {
	uint64_t offset; /* 0: the slot is empty (cluster 0 is the header, never a table) */
	uint8_t *data;	 /* cluster_size bytes, allocated on first use */
	unsigned int pins;
	bool dirty;
	bool used; /* the clock's second-chance bit */
	int next;  /* hash chain, -1 at the end */
};

struct qcow2_cache {
	struct qcow2 *q;
	struct qcow2_table *tables;
	unsigned int nr, hand, nr_dirty;
	int *buckets;
	unsigned int nr_buckets; /* a power of two */
	unsigned int sync_bit;	 /* QCOW2_SYNC_L2 or QCOW2_SYNC_RC */
	/* Runs before a dirty table is written: orders it after what it depends on. */
	int (*before_write)(struct qcow2 *q);
};

/* What a guest cluster maps to, from its L2 entry. */
enum qcow2_kind {
	QCOW2_UNALLOCATED, /* the backing file, or zeroes */
	QCOW2_ZERO,	   /* zeroes; host may still hold a preallocated cluster */
	QCOW2_NORMAL,
	QCOW2_COMPRESSED,
};

struct qcow2_map {
	enum qcow2_kind kind;
	uint64_t host;	/* NORMAL, ZERO: cluster offset (0: none); COMPRESSED: byte offset */
	uint64_t csize; /* COMPRESSED: bytes from host that may hold the data */
	bool copied;
};

struct qcow2_snapshot {
	uint64_t l1_offset;
	uint32_t l1_size;
};

struct qcow2_range {
	uint64_t start, end; /* bytes, [start, end) */
};

struct qcow2_feature_name {
	uint8_t type, bit;
	char name[47]; /* NUL-terminated */
};

/* A backing file: read-only, raw or qcow2. */
struct qcow2_backing {
	struct image_file *raw; /* raw: the file itself */
	struct qcow2 *qcow2;	/* qcow2: its own image, with its own lock */
	uint64_t size;
	char *path;
};

struct qcow2 {
	struct disk disk; /* first: the disk ops are handed &disk */
	/*
	 * One lock per image: it protects everything below and the file's
	 * contents. Every disk op holds it from start to finish (metadata,
	 * caches, data I/O), so requests to one image are serialized; in
	 * particular two writes to one unallocated cluster never race. A
	 * backing image has its own lock, taken inside ours.
	 */
	pthread_mutex_t lock;
	struct image_file *file;
	int lock_fd; /* the OFD-locked descriptor, or -1 */
	char *path;

	/* Geometry. */
	uint32_t version;
	unsigned int cluster_bits;
	uint64_t cluster_size;
	unsigned int l2_bits;	    /* log2 of entries per L2 table */
	unsigned int refcount_order;
	unsigned int rcb_bits;	    /* log2 of entries per refcount block */
	uint64_t virtual_size;
	unsigned int csize_shift;   /* compressed entries: where the sector count starts */
	uint64_t csize_mask, coffset_mask;
	uint32_t header_length;

	uint64_t incompatible, compatible, autoclear;
	int compression_type;
	struct qcow2_feature_name *features;
	unsigned int nr_features;
	char backing_format[16];    /* from its header extension, or "" */
	char *backing_name;	    /* as written in the header, or NULL */

	/* Active L1 table, big endian as on disk; entries [lo, hi) differ from the file. */
	uint64_t *l1;
	uint32_t l1_size;
	uint64_t l1_offset;
	uint32_t l1_dirty_lo, l1_dirty_hi;

	/* Refcount table, big endian as on disk; same dirty range idea. */
	uint64_t *reftable;
	uint64_t reftable_offset, reftable_entries;
	uint32_t reftable_clusters;
	uint64_t reftable_dirty_lo, reftable_dirty_hi;

	struct qcow2_cache l2_cache, rc_cache;

	/* Allocation. */
	uint64_t free_hint; /* no free cluster below this index */
	uint64_t alloc_end; /* one past the highest cluster index ever allocated */
	uint64_t file_end;  /* bytes: the file's size as we left it */
	/* Clusters whose references are gone in memory: freed once that is on disk. */
	struct qcow2_range *frees;
	size_t nr_frees, cap_frees;
	unsigned int unsynced; /* QCOW2_SYNC_* written since the last barrier */

	/* Where fixed metadata lives: sorted, merged. No data or table goes there. */
	struct qcow2_range *meta;
	size_t nr_meta;
	/* Offsets of the active L2 tables and the refcount blocks, sorted: no guest data there. */
	uint64_t *tables;
	size_t nr_tables, cap_tables;

	struct qcow2_snapshot *snapshots;
	uint32_t nr_snapshots;
	uint64_t snapshots_offset, snapshots_size;

	struct qcow2_backing backing;

	/* Compressed clusters: the last one decompressed stays in dbuf. */
	z_stream zlib;
	bool zlib_ready;
	void *zstd; /* ZSTD_DCtx */
	uint8_t *cbuf, *dbuf;
	uint64_t dbuf_host; /* UINT64_MAX: dbuf holds nothing */

	uint8_t *cow_buf; /* one cluster: building a partially written new cluster */
	struct iovec iov[QCOW2_IOV_MAX];

	/* During repair: references counted per cluster, else NULL. */
	uint32_t *repair_refs;
	uint64_t repair_nb;
};

/* ---- byte order ---- */
static inline uint16_t qcow2_get16(const void *p)
{
	uint8_t b[2];

	memcpy(b, p, 2);
	return (uint16_t)(b[0] << 8 | b[1]);
}

static inline uint32_t qcow2_get32(const void *p)
{
	uint8_t b[4];

	memcpy(b, p, 4);
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static inline uint64_t qcow2_get64(const void *p)
{
	return (uint64_t)qcow2_get32(p) << 32 | qcow2_get32((const uint8_t *)p + 4);
}

static inline void qcow2_put32(void *p, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	memcpy(p, b, 4);
}

static inline void qcow2_put64(void *p, uint64_t v)
{
	qcow2_put32(p, (uint32_t)(v >> 32));
	qcow2_put32((uint8_t *)p + 4, (uint32_t)v);
}

static inline uint64_t qcow2_cluster_index(const struct qcow2 *q, uint64_t offset)
{
	return offset >> q->cluster_bits;
}

/* ---- qcow2.c ---- */
extern const struct disk_ops qcow2_disk_ops;
int qcow2_read_locked(struct qcow2 *q, const struct iovec *iov, int n, uint64_t offset,
		      uint64_t len);
int qcow2_sync_if(struct qcow2 *q, unsigned int kinds);
int qcow2_write_file(struct qcow2 *q, const void *buf, size_t len, uint64_t offset,
		     unsigned int kind);
int qcow2_read_file(struct qcow2 *q, void *buf, size_t len, uint64_t offset);
int qcow2_decompress(struct qcow2 *q, uint64_t host, uint64_t csize);

/* ---- qcow2_open.c ---- */
void qcow2_destroy(struct qcow2 *q);

/* ---- qcow2_header.c ---- */
int qcow2_read_header(struct qcow2 *q, char *err, size_t err_len);
int qcow2_read_snapshots(struct qcow2 *q, char *err, size_t err_len);
int qcow2_build_meta(struct qcow2 *q);
bool qcow2_overlaps_meta(const struct qcow2 *q, uint64_t offset, uint64_t len);
int qcow2_tables_build(struct qcow2 *q);
int qcow2_tables_add(struct qcow2 *q, uint64_t offset);
void qcow2_tables_remove(struct qcow2 *q, uint64_t offset);
bool qcow2_is_table(const struct qcow2 *q, uint64_t offset);
int qcow2_write_header_field(struct qcow2 *q, unsigned int field, uint64_t value,
			     unsigned int size);

/* ---- qcow2_cache.c ---- */
int qcow2_cache_init(struct qcow2_cache *c, struct qcow2 *q, unsigned int nr,
		     unsigned int sync_bit, int (*before_write)(struct qcow2 *q));
void qcow2_cache_destroy(struct qcow2_cache *c);
/* Pins the table at offset; read from the file, or zeroes when fresh. */
int qcow2_cache_get(struct qcow2_cache *c, uint64_t offset, bool fresh, struct qcow2_table **t);
void qcow2_cache_put(struct qcow2_cache *c, struct qcow2_table *t);
void qcow2_cache_dirty(struct qcow2_cache *c, struct qcow2_table *t);
int qcow2_cache_flush(struct qcow2_cache *c);
bool qcow2_cache_has(const struct qcow2_cache *c, uint64_t offset);
/* The cached table at offset (not pinned: use it before the next get), or NULL. No I/O. */
const uint8_t *qcow2_cache_peek(struct qcow2_cache *c, uint64_t offset);
void qcow2_cache_forget(struct qcow2_cache *c, uint64_t offset);

/* ---- qcow2_cluster.c ---- */
int qcow2_parse_l2(const struct qcow2 *q, uint64_t entry, struct qcow2_map *m);
int qcow2_l1_entry_offset(const struct qcow2 *q, uint64_t entry, uint64_t *offset);
int qcow2_map(struct qcow2 *q, uint64_t guest, struct qcow2_map *m);
bool qcow2_map_cached(struct qcow2 *q, uint64_t guest, struct qcow2_map *m);
int qcow2_l2_for_write(struct qcow2 *q, uint64_t guest, struct qcow2_table **t);
int qcow2_check_table(const struct qcow2 *q, uint64_t offset, const struct qcow2_cache *other);
int qcow2_write_l1(struct qcow2 *q);
int qcow2_l2_before_write(struct qcow2 *q);

/* ---- qcow2_refcount.c ---- */
int qcow2_refcount_get(struct qcow2 *q, uint64_t cluster, uint64_t *rc);
int qcow2_alloc_cluster(struct qcow2 *q, uint64_t *offset);
bool qcow2_alloc_cluster_at(struct qcow2 *q, uint64_t offset);
int qcow2_free_later(struct qcow2 *q, uint64_t offset, uint64_t len);
void qcow2_free_map_later(struct qcow2 *q, const struct qcow2_map *m);
int qcow2_refcount_flush(struct qcow2 *q);
int qcow2_writeback(struct qcow2 *q);
int qcow2_repair(struct qcow2 *q);
uint64_t qcow2_rc_entry_get(const uint8_t *block, uint64_t i, unsigned int order);

#endif
