/*
 * The qcow2 header (docs/interop/qcow2.txt "Header", "Header extensions",
 * "Feature name table", "Snapshots"): everything in it is checked before
 * use, with one sentence for what is wrong. Nothing here trusts a length or
 * an offset from the file: sizes are bounded by QEMU's own limits and by the
 * file's size, offsets must be aligned and inside the file.
 *
 * The header is never rewritten whole: the few fields we change (the dirty
 * bit, autoclear bits, the refcount table's place) are written alone, so
 * unknown fields, compatible bits and header extensions stay byte for byte.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "disk/qcow2_internal.h"
#include "vmm/errmsg.h"

/* Is [offset, offset + len) inside the file, without overflow? */
static bool in_file(const struct qcow2 *q, uint64_t offset, uint64_t len)
{
	return offset <= q->file_end && len <= q->file_end - offset;
}

static uint64_t round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) & ~(to - 1);
}

static const char *feature_name(const struct qcow2 *q, unsigned int type, unsigned int bit,
				char *buf, size_t len)
{
	static const char *const known[] = {
		[2] = "external data file",
		[4] = "extended L2 entries",
	};

	for (unsigned int i = 0; i < q->nr_features; i++)
		if (q->features[i].type == type && q->features[i].bit == bit &&
		    q->features[i].name[0])
			return q->features[i].name;
	if (type == 0 && bit < sizeof(known) / sizeof(known[0]) && known[bit])
		return known[bit];
	snprintf(buf, len, "bit %u", bit);
	return buf;
}

/* Refuses incompatible features we do not implement, naming each. */
static int check_incompatible(const struct qcow2 *q, char *err, size_t err_len)
{
	uint64_t unknown = q->incompatible & ~QCOW2_INCOMPAT_KNOWN;
	char names[512] = "", buf[16];
	size_t used = 0;
	int count = 0;

	if (!unknown)
		return 0;
	for (unsigned int bit = 0; bit < 64; bit++) {
		const char *name;

		if (!(unknown & (1ull << bit)))
			continue;
		name = feature_name(q, 0, bit, buf, sizeof(buf));
		used += (size_t)snprintf(names + used, sizeof(names) - used, "%s'%s'",
					 count ? ", " : "", name);
		if (used >= sizeof(names))
			used = sizeof(names) - 1;
		count++;
	}
	return errmsg(err, err_len, "unknown incompatible feature%s %s", count > 1 ? "s" : "",
		      names);
}

static int read_extensions(struct qcow2 *q, const uint8_t *hdr, uint64_t start, uint64_t end,
			   char *err, size_t err_len)
{
	uint64_t pos = start;

	while (end >= 8 && pos <= end - 8) {
		uint32_t type = qcow2_get32(hdr + pos), len = qcow2_get32(hdr + pos + 4);
		const uint8_t *data = hdr + pos + 8;

		if (type == QCOW2_EXT_END)
			break;
		if (len > end - pos - 8)
			return errmsg(err, err_len,
				      "header extension 0x%08x is longer than the space "
				      "for it",
				      type);
		if (type == QCOW2_EXT_BACKING_FORMAT) {
			if (len >= sizeof(q->backing_format))
				return errmsg(err, err_len,
					      "the backing file format name is too "
					      "long");
			memcpy(q->backing_format, data, len);
			q->backing_format[len] = '\0';
		} else if (type == QCOW2_EXT_FEATURE_NAMES) {
			unsigned int n = len / 48;

			free(q->features);
			q->features = calloc(n ? n : 1, sizeof(*q->features));
			if (!q->features)
				return -ENOMEM;
			for (unsigned int i = 0; i < n; i++) {
				q->features[i].type = data[48 * i];
				q->features[i].bit = data[48 * i + 1];
				memcpy(q->features[i].name, data + 48 * i + 2, 46);
				for (char *c = q->features[i].name; *c; c++)
					if (*c < 0x20 || *c > 0x7e)
						*c = '?'; /* it goes to a terminal */
			}
			q->nr_features = n;
		}
		/* Anything else is kept as it is: we never rewrite this area. */
		pos += 8 + round_up(len, 8);
	}
	return 0;
}

static int read_compression_type(struct qcow2 *q, const uint8_t *hdr, char *err, size_t err_len)
{
	unsigned int type = q->header_length > QH_COMPRESSION_TYPE ? hdr[QH_COMPRESSION_TYPE] : 0;

	if (!(q->incompatible & QCOW2_INCOMPAT_COMPRESSION)) {
		if (type != 0)
			return errmsg(err, err_len,
				      "compression type %u is set without its "
				      "incompatible feature bit",
				      type);
		q->compression_type = QCOW2_COMPRESSION_ZLIB;
		return 0;
	}
	if (type != QCOW2_COMPRESSION_ZSTD)
		return errmsg(err, err_len, "unknown compression type %u", type);
	q->compression_type = QCOW2_COMPRESSION_ZSTD;
	return 0;
}

static int read_backing_name(struct qcow2 *q, const uint8_t *hdr, uint64_t offset,
			     uint32_t len, char *err, size_t err_len)
{
	if (offset == 0 || len == 0)
		return 0;
	if (len > QCOW2_MAX_BACKING_NAME)
		return errmsg(err, err_len, "the backing file name is longer than %d bytes",
			      QCOW2_MAX_BACKING_NAME);
	if (offset > q->cluster_size || len > q->cluster_size - offset)
		return errmsg(err, err_len, "the backing file name lies outside the first cluster");
	if (memchr(hdr + offset, '\0', len))
		return errmsg(err, err_len, "the backing file name holds a NUL byte");
	q->backing_name = malloc(len + 1);
	if (!q->backing_name)
		return -ENOMEM;
	memcpy(q->backing_name, hdr + offset, len);
	q->backing_name[len] = '\0';
	return 0;
}

static int read_tables(struct qcow2 *q, const uint8_t *hdr, char *err, size_t err_len)
{
	uint64_t per_l2 = q->cluster_size << q->l2_bits; /* guest bytes one L1 entry maps */
	uint64_t need = (q->virtual_size + per_l2 - 1) / per_l2;
	uint64_t l1_bytes = (uint64_t)q->l1_size * 8;
	uint64_t rt_bytes;

	if (q->l1_size < need)
		return errmsg(err, err_len,
			      "the L1 table (%u entries) is too small for the virtual "
			      "size",
			      q->l1_size);
	if (l1_bytes > QCOW2_MAX_L1_BYTES)
		return errmsg(err, err_len, "the L1 table (%u entries) is larger than %llu MiB",
			      q->l1_size, QCOW2_MAX_L1_BYTES >> 20);
	if (q->l1_size && (q->l1_offset == 0 || q->l1_offset & (q->cluster_size - 1) ||
			   !in_file(q, q->l1_offset, l1_bytes)))
		return errmsg(err, err_len,
			      "the L1 table offset 0x%llx is unaligned or outside the "
			      "file",
			      (unsigned long long)q->l1_offset);
	if (q->reftable_clusters == 0 ||
	    (uint64_t)q->reftable_clusters * q->cluster_size > QCOW2_MAX_REFTABLE_BYTES)
		return errmsg(err, err_len, "the refcount table size (%u clusters) is out of range",
			      q->reftable_clusters);
	rt_bytes = (uint64_t)q->reftable_clusters * q->cluster_size;
	if (q->reftable_offset == 0 || q->reftable_offset & (q->cluster_size - 1) ||
	    !in_file(q, q->reftable_offset, rt_bytes))
		return errmsg(err, err_len,
			      "the refcount table offset 0x%llx is unaligned or outside "
			      "the file",
			      (unsigned long long)q->reftable_offset);
	q->l1 = calloc(q->l1_size ? q->l1_size : 1, 8);
	q->reftable = malloc(rt_bytes);
	if (!q->l1 || !q->reftable)
		return -ENOMEM;
	q->reftable_entries = rt_bytes / 8;
	if (q->l1_size && qcow2_read_file(q, q->l1, l1_bytes, q->l1_offset) < 0)
		return errmsg(err, err_len, "cannot read the L1 table");
	if (qcow2_read_file(q, q->reftable, rt_bytes, q->reftable_offset) < 0)
		return errmsg(err, err_len, "cannot read the refcount table");
	(void)hdr;
	return 0;
}

int qcow2_read_header(struct qcow2 *q, char *err, size_t err_len)
{
	uint8_t first[512];
	uint8_t *hdr;
	uint64_t backing_offset, ext_end;
	uint32_t backing_len, crypt;
	int ret;

	ret = q->file->ops->size(q->file, &q->file_end);
	if (ret < 0)
		return errmsg(err, err_len, "%s", strerror(-ret));
	if (qcow2_read_file(q, first, sizeof(first), 0) < 0)
		return errmsg(err, err_len, "cannot read the header");
	if (qcow2_get32(first) != QCOW2_MAGIC)
		return errmsg(err, err_len, "not a qcow2 image");
	q->version = qcow2_get32(first + QH_VERSION);
	if (q->version != 2 && q->version != 3)
		return errmsg(err, err_len, "qcow2 version %u is not supported (2 and 3 are)",
			      q->version);
	q->cluster_bits = qcow2_get32(first + QH_CLUSTER_BITS);
	if (q->cluster_bits < QCOW2_MIN_CLUSTER_BITS || q->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
		return errmsg(err, err_len,
			      "cluster bits %u are out of range (9 to 21: 512 bytes to "
			      "2 MiB)",
			      q->cluster_bits);
	q->cluster_size = 1ull << q->cluster_bits;
	hdr = calloc(1, q->cluster_size);
	if (!hdr)
		return -ENOMEM;
	ret = qcow2_read_file(q, hdr, q->cluster_size, 0);
	if (ret < 0) {
		free(hdr);
		return errmsg(err, err_len, "cannot read the header");
	}

	backing_offset = qcow2_get64(hdr + QH_BACKING_OFFSET);
	backing_len = qcow2_get32(hdr + QH_BACKING_SIZE);
	q->virtual_size = qcow2_get64(hdr + QH_SIZE);
	crypt = qcow2_get32(hdr + QH_CRYPT_METHOD);
	q->l1_size = qcow2_get32(hdr + QH_L1_SIZE);
	q->l1_offset = qcow2_get64(hdr + QH_L1_OFFSET);
	q->reftable_offset = qcow2_get64(hdr + QH_REFTABLE_OFFSET);
	q->reftable_clusters = qcow2_get32(hdr + QH_REFTABLE_CLUSTERS);
	q->nr_snapshots = qcow2_get32(hdr + QH_NB_SNAPSHOTS);
	q->snapshots_offset = qcow2_get64(hdr + QH_SNAPSHOTS_OFFSET);
	if (q->version == 2) {
		q->header_length = QCOW2_V2_HEADER_LEN;
		q->refcount_order = 4;
	} else {
		q->incompatible = qcow2_get64(hdr + QH_INCOMPATIBLE);
		q->compatible = qcow2_get64(hdr + QH_COMPATIBLE);
		q->autoclear = qcow2_get64(hdr + QH_AUTOCLEAR);
		q->refcount_order = qcow2_get32(hdr + QH_REFCOUNT_ORDER);
		q->header_length = qcow2_get32(hdr + QH_HEADER_LENGTH);
		if (q->header_length < QCOW2_V3_HEADER_LEN || q->header_length % 8 ||
		    q->header_length > q->cluster_size) {
			ret = errmsg(err, err_len, "the header length %u is invalid",
				     q->header_length);
			goto out;
		}
	}
	if (q->refcount_order > QCOW2_MAX_REFCOUNT_ORDER) {
		ret = errmsg(err, err_len, "refcount order %u is more than %d", q->refcount_order,
			     QCOW2_MAX_REFCOUNT_ORDER);
		goto out;
	}
	if (backing_offset > q->cluster_size) {
		ret = errmsg(err, err_len, "the backing file name lies outside the first cluster");
		goto out;
	}
	ext_end = backing_offset && backing_offset > q->header_length ? backing_offset
								      : q->cluster_size;
	ret = read_extensions(q, hdr, q->header_length, ext_end, err, err_len);
	if (ret < 0)
		goto out;
	ret = check_incompatible(q, err, err_len);
	if (ret < 0)
		goto out;
	if (crypt != 0) {
		ret = errmsg(err, err_len, "encrypted images (method %u) are not supported", crypt);
		goto out;
	}
	ret = read_compression_type(q, hdr, err, err_len);
	if (ret < 0)
		goto out;
	ret = read_backing_name(q, hdr, backing_offset, backing_len, err, err_len);
	if (ret < 0)
		goto out;

	q->l2_bits = q->cluster_bits - 3;
	q->rcb_bits = q->cluster_bits + 3 - q->refcount_order;
	q->csize_shift = 62 - (q->cluster_bits - 8);
	q->csize_mask = (1ull << (q->cluster_bits - 8)) - 1;
	q->coffset_mask = (1ull << q->csize_shift) - 1;
	if (q->virtual_size > (1ull << 61)) {
		ret = errmsg(err, err_len, "the virtual size (%llu bytes) is too large",
			     (unsigned long long)q->virtual_size);
		goto out;
	}
	ret = read_tables(q, hdr, err, err_len);
out:
	free(hdr);
	return ret;
}

int qcow2_read_snapshots(struct qcow2 *q, char *err, size_t err_len)
{
	uint64_t pos = q->snapshots_offset;

	if (q->nr_snapshots == 0)
		return 0;
	if (q->nr_snapshots > QCOW2_MAX_SNAPSHOTS)
		return errmsg(err, err_len, "%u snapshots are more than %u", q->nr_snapshots,
			      QCOW2_MAX_SNAPSHOTS);
	if (pos == 0 || pos & (q->cluster_size - 1) || pos >= q->file_end)
		return errmsg(err, err_len,
			      "the snapshot table offset 0x%llx is unaligned or outside "
			      "the file",
			      (unsigned long long)pos);
	q->snapshots = calloc(q->nr_snapshots, sizeof(*q->snapshots));
	if (!q->snapshots)
		return -ENOMEM;
	for (uint32_t i = 0; i < q->nr_snapshots; i++) {
		struct qcow2_snapshot *s = &q->snapshots[i];
		uint8_t e[40];
		uint32_t extra;
		uint64_t len;

		if (!in_file(q, pos, sizeof(e)) ||
		    pos - q->snapshots_offset + sizeof(e) > QCOW2_MAX_SNAPSHOT_TABLE ||
		    qcow2_read_file(q, e, sizeof(e), pos) < 0)
			return errmsg(err, err_len, "snapshot %u lies outside the file", i);
		s->l1_offset = qcow2_get64(e);
		s->l1_size = qcow2_get32(e + 8);
		extra = qcow2_get32(e + 36);
		if (extra > QCOW2_MAX_SNAPSHOT_EXTRA)
			return errmsg(err, err_len, "snapshot %u has too much extra data", i);
		len = round_up(sizeof(e) + extra + qcow2_get16(e + 12) + qcow2_get16(e + 14), 8);
		if ((uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_BYTES ||
		    (s->l1_size && (s->l1_offset == 0 || s->l1_offset & (q->cluster_size - 1) ||
				    !in_file(q, s->l1_offset, (uint64_t)s->l1_size * 8))))
			return errmsg(err, err_len,
				      "snapshot %u's L1 table is unaligned, too "
				      "large or outside the file",
				      i);
		pos += len;
	}
	/* The last entry's name and padding may end past the file: nothing reads them. */
	q->snapshots_size = pos - q->snapshots_offset;
	if (q->snapshots_size > QCOW2_MAX_SNAPSHOT_TABLE)
		return errmsg(err, err_len, "the snapshot table is larger than %llu MiB",
			      QCOW2_MAX_SNAPSHOT_TABLE >> 20);
	return 0;
}

static int range_cmp(const void *a, const void *b)
{
	const struct qcow2_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Collects where the fixed metadata lives, sorted and merged, for overlap checks. */
int qcow2_build_meta(struct qcow2 *q)
{
	size_t n = 0, max = 4 + q->nr_snapshots;
	struct qcow2_range *r = calloc(max, sizeof(*r));
	uint64_t cs = q->cluster_size;

	if (!r)
		return -ENOMEM;
	r[n++] = (struct qcow2_range){ 0, cs };
	if (q->l1_size)
		r[n++] = (struct qcow2_range){
			q->l1_offset, q->l1_offset + round_up((uint64_t)q->l1_size * 8, cs) };
	r[n++] = (struct qcow2_range){ q->reftable_offset,
				       q->reftable_offset + (uint64_t)q->reftable_clusters * cs };
	if (q->nr_snapshots)
		r[n++] = (struct qcow2_range){
			q->snapshots_offset,
			q->snapshots_offset + round_up(q->snapshots_size, cs) };
	for (uint32_t i = 0; q->snapshots && i < q->nr_snapshots; i++)
		if (q->snapshots[i].l1_size)
			r[n++] = (struct qcow2_range){
				q->snapshots[i].l1_offset,
				q->snapshots[i].l1_offset +
					round_up((uint64_t)q->snapshots[i].l1_size * 8, cs) };
	qsort(r, n, sizeof(*r), range_cmp);
	size_t out = 0;
	for (size_t i = 0; i < n; i++) {
		if (out && r[i].start <= r[out - 1].end) {
			if (r[i].end > r[out - 1].end)
				r[out - 1].end = r[i].end;
		} else {
			r[out++] = r[i];
		}
	}
	free(q->meta);
	q->meta = r;
	q->nr_meta = out;
	return 0;
}

bool qcow2_overlaps_meta(const struct qcow2 *q, uint64_t offset, uint64_t len)
{
	size_t lo = 0, hi = q->nr_meta;

	/* The last range starting before offset + len is the only candidate. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (q->meta[mid].start < offset + len)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && q->meta[lo - 1].end > offset;
}

/* ---- where the L2 tables and refcount blocks are ---- */

static size_t tables_find(const struct qcow2 *q, uint64_t offset)
{
	size_t lo = 0, hi = q->nr_tables;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (q->tables[mid] < offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool qcow2_is_table(const struct qcow2 *q, uint64_t offset)
{
	size_t i = tables_find(q, offset);

	return i < q->nr_tables && q->tables[i] == offset;
}

int qcow2_tables_add(struct qcow2 *q, uint64_t offset)
{
	size_t i = tables_find(q, offset);

	if (i < q->nr_tables && q->tables[i] == offset)
		return 0;
	if (q->nr_tables == q->cap_tables) {
		size_t cap = q->cap_tables ? q->cap_tables * 2 : 64;
		uint64_t *t = realloc(q->tables, cap * sizeof(*t));

		if (!t)
			return -ENOMEM;
		q->tables = t;
		q->cap_tables = cap;
	}
	memmove(q->tables + i + 1, q->tables + i, (q->nr_tables - i) * sizeof(*q->tables));
	q->tables[i] = offset;
	q->nr_tables++;
	return 0;
}

void qcow2_tables_remove(struct qcow2 *q, uint64_t offset)
{
	size_t i = tables_find(q, offset);

	if (i < q->nr_tables && q->tables[i] == offset) {
		memmove(q->tables + i, q->tables + i + 1,
			(q->nr_tables - i - 1) * sizeof(*q->tables));
		q->nr_tables--;
	}
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* From the active L1 table and the refcount table (bad entries are skipped here). */
int qcow2_tables_build(struct qcow2 *q)
{
	size_t n = 0, cap = q->l1_size + q->reftable_entries;
	uint64_t *t = malloc((cap ? cap : 1) * sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; i < q->l1_size; i++) {
		uint64_t off = be64toh(q->l1[i]) & QCOW2_OFFSET_MASK;

		if (off && !(off & (q->cluster_size - 1)))
			t[n++] = off;
	}
	for (uint64_t i = 0; i < q->reftable_entries; i++) {
		uint64_t off = be64toh(q->reftable[i]);

		if (off && !(off & (q->cluster_size - 1)))
			t[n++] = off;
	}
	qsort(t, n, sizeof(*t), u64_cmp);
	q->nr_tables = 0;
	for (size_t i = 0; i < n; i++)
		if (q->nr_tables == 0 || t[i] != t[q->nr_tables - 1])
			t[q->nr_tables++] = t[i];
	free(q->tables);
	q->tables = t;
	q->cap_tables = cap ? cap : 1;
	return 0;
}

int qcow2_write_header_field(struct qcow2 *q, unsigned int field, uint64_t value,
			     unsigned int size)
{
	uint8_t buf[8];

	if (size == 8)
		qcow2_put64(buf, value);
	else
		qcow2_put32(buf, (uint32_t)value);
	return qcow2_write_file(q, buf, size, field, QCOW2_SYNC_HEADER);
}
