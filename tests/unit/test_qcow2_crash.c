/*
 * Power loss, simulated. The qcow2 code does all its file I/O through a
 * struct image_file; here a recorder sits in that seat and logs every write
 * (offset and bytes) and every barrier (fdatasync), in order, while a
 * workload of guest writes, discards, write-zeroes and flushes runs.
 *
 * Then many power cuts are replayed: a cut at any point of the log keeps
 * every write before the last barrier before it, and of the writes after
 * that barrier an arbitrary subset (whole, or torn into 512-byte sectors,
 * in any combination): what a disk with a volatile cache may hold after
 * power comes back. Each such image must pass `qemu-img check` (leaked
 * clusters allowed, nothing else), and every sector must read what it held
 * at the last FLUSH the guest saw complete, or what a later request wrote
 * (read by qemu-img for a quarter of the cuts, by our own reader for the rest).
 *
 * Injecting a missing barrier (before L2 writes, before L1 writes, before
 * giving clusters back, before refcount table entries) makes these fail.
 */
#include "test_qcow2_util.h"

#include "disk/image_file.h"

enum rec_kind { REC_WRITE, REC_SYNC, REC_OP_START, REC_FLUSHED };

struct rec {
	enum rec_kind kind;
	uint64_t offset;
	size_t len;
	uint8_t *data;
	int op; /* REC_OP_START, REC_FLUSHED: the guest op's index */
};

struct recorder {
	struct image_file file;
	struct image_file *inner;
	struct rec *log;
	size_t n, cap;
};

static void rec_add(struct recorder *r, struct rec e)
{
	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1024;
		r->log = realloc(r->log, r->cap * sizeof(*r->log));
		assert_non_null(r->log);
	}
	r->log[r->n++] = e;
}

static ssize_t rec_readv(struct image_file *f, const struct iovec *iov, int n, uint64_t offset)
{
	struct recorder *r = (struct recorder *)f;

	return r->inner->ops->readv(r->inner, iov, n, offset);
}

static int rec_writev(struct image_file *f, const struct iovec *iov, int n, uint64_t offset)
{
	struct recorder *r = (struct recorder *)f;
	struct rec e = { .kind = REC_WRITE, .offset = offset };
	size_t at = 0;

	for (int i = 0; i < n; i++)
		e.len += iov[i].iov_len;
	e.data = malloc(e.len ? e.len : 1);
	assert_non_null(e.data);
	for (int i = 0; i < n; i++) {
		memcpy(e.data + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	rec_add(r, e);
	return r->inner->ops->writev(r->inner, iov, n, offset);
}

static int rec_sync(struct image_file *f)
{
	struct recorder *r = (struct recorder *)f;

	rec_add(r, (struct rec){ .kind = REC_SYNC });
	return r->inner->ops->sync(r->inner);
}

static int rec_size(struct image_file *f, uint64_t *size)
{
	struct recorder *r = (struct recorder *)f;

	return r->inner->ops->size(r->inner, size);
}

static void rec_close(struct image_file *f)
{
	struct recorder *r = (struct recorder *)f;

	image_file_close(r->inner);
	r->inner = NULL; /* the log outlives the file */
}

static const struct image_file_ops rec_ops = {
	.readv = rec_readv,
	.writev = rec_writev,
	.sync = rec_sync,
	.size = rec_size,
	.close = rec_close,
};

enum op_kind { OP_WRITE, OP_DISCARD, OP_ZEROES, OP_FLUSH };

struct op {
	enum op_kind kind;
	uint64_t offset, len, seed;
};

struct scenario {
	const char *name;
	const char *setup;	/* shell commands making img.qcow2 */
	uint64_t size;		/* virtual size */
	uint64_t cache_size;	/* 1: the minimum */
	int nr_ops;
	uint64_t max_len;
	int replays; /* cuts anywhere, besides one before each barrier after 2+ writes */
};

static const struct scenario scenarios[] = {
	{ "fresh image, 4 KiB clusters, tiny cache",
	  "qemu-img create -q -f qcow2 -o cluster_size=4096 img.qcow2 8M", 8u << 20, 1, 160,
	  96 * 1024, 10 },
	{ "512-byte clusters, 64-bit refcounts: new refcount blocks, refcount table growth",
	  "qemu-img create -q -f qcow2 -o cluster_size=512,refcount_bits=64 img.qcow2 4M && "
	  "qemu-io -c 'write -P 0x21 0 1800k' img.qcow2",
	  4u << 20, 0, 100, 64 * 1024, 10 },
	{ "compressed clusters and two internal snapshots",
	  "head -c 2M /dev/zero | tr '\\0' 'x' > src.raw && "
	  "qemu-img convert -c -f raw -O qcow2 -o cluster_size=16384 src.raw img.qcow2 && "
	  "qemu-img snapshot -c one img.qcow2 && "
	  "qemu-io -c 'write -P 0x44 100k 300k' img.qcow2 && qemu-img snapshot -c two img.qcow2",
	  2u << 20, 1, 120, 128 * 1024, 16 },
	{ "version 2 over a raw backing file",
	  "head -c 1M /dev/zero | tr '\\0' 'b' > base.raw && "
	  "qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=8192 -b base.raw -F raw "
	  "img.qcow2 2M",
	  2u << 20, 1, 100, 64 * 1024, 12 },
};

/* The guest op's bytes (writes) into buf. */
static void op_data(const struct op *op, uint8_t *buf)
{
	if (op->kind == OP_WRITE)
		qt_fill(buf, op->len, op->seed);
	else
		memset(buf, 0, op->len);
}

struct run {
	struct qt *t;
	const struct scenario *sc;
	uint8_t *initial_file; /* the image file before the workload */
	size_t initial_len;
	struct recorder rec;
	struct op *ops;
	uint8_t **committed; /* committed[k]: guest contents after flush op k completed */
	uint8_t *start_contents;
};

static void run_workload(struct run *r, uint64_t seed)
{
	const struct scenario *sc = r->sc;
	uint8_t *expect = malloc(sc->size), *buf = malloc(sc->max_len);
	struct disk_config cfg = {
		.path = qt_path(r->t, "img.qcow2"),
		.cache = DISK_CACHE_WRITEBACK,
		.engine = DISK_ENGINE_SYNC,
		.cache_size = sc->cache_size,
	};
	char err[512] = "";
	uint64_t s = seed;
	struct disk *d;
	int fd;

	memcpy(expect, r->start_contents, sc->size);
	fd = open(cfg.path, O_RDWR);
	assert_true(fd >= 0);
	r->rec.file.ops = &rec_ops;
	r->rec.inner = image_file_from_fd(fd, false);
	d = qcow2_open_file(&r->rec.file, &cfg, err, sizeof(err));
	if (!d)
		fprintf(stderr, "%s\n", err);
	assert_non_null(d);
	r->ops = calloc((size_t)sc->nr_ops + 1, sizeof(*r->ops));
	r->committed = calloc((size_t)sc->nr_ops + 1, sizeof(*r->committed));
	for (int i = 0; i < sc->nr_ops; i++) {
		struct op *op = &r->ops[i];
		uint64_t k = qt_rand(&s) % 100;

		op->offset = (qt_rand(&s) % (sc->size / 512)) * 512;
		op->len = (1 + qt_rand(&s) % (sc->max_len / 512)) * 512;
		if (op->len > sc->size - op->offset)
			op->len = sc->size - op->offset;
		op->seed = seed * 1000 + (uint64_t)i;
		op->kind = k < 65 ? OP_WRITE : k < 75 ? OP_DISCARD : k < 85 ? OP_ZEROES : OP_FLUSH;
		if (i == sc->nr_ops - 1)
			op->kind = OP_FLUSH; /* end on a completed flush */
		rec_add(&r->rec, (struct rec){ .kind = REC_OP_START, .op = i });
		switch (op->kind) {
		case OP_WRITE: {
			struct iovec iov = { buf, op->len };

			op_data(op, buf);
			assert_int_equal(d->ops->writev(d, &iov, 1, op->offset), (ssize_t)op->len);
			memcpy(expect + op->offset, buf, op->len);
			break;
		}
		case OP_DISCARD:
			assert_int_equal(d->ops->discard(d, op->offset, op->len), 0);
			memset(expect + op->offset, 0, op->len);
			break;
		case OP_ZEROES:
			assert_int_equal(d->ops->write_zeroes(d, op->offset, op->len, true), 0);
			memset(expect + op->offset, 0, op->len);
			break;
		case OP_FLUSH:
			assert_int_equal(d->ops->flush(d), 0);
			r->committed[i] = malloc(sc->size);
			memcpy(r->committed[i], expect, sc->size);
			rec_add(&r->rec, (struct rec){ .kind = REC_FLUSHED, .op = i });
			break;
		}
	}
	disk_close(d);
	free(expect);
	free(buf);
}

/*
 * The file as it would be after a power cut at log position cut. Of the
 * writes after the last barrier: each kept or lost as a whole (SUBSET);
 * each sector kept or lost (TORN); the older ones lost and the newer kept
 * from a random point on (NEWER), or only the newest (LAST_ONLY): the
 * orders that break a missing barrier most surely.
 */
enum { MODE_SUBSET, MODE_TORN, MODE_NEWER, MODE_LAST_ONLY };

static uint8_t *replay(struct run *r, size_t cut, int mode, uint64_t *state, size_t *out_len)
{
	size_t last_sync = 0, len = r->initial_len, cap = r->initial_len + (64u << 20), split;
	uint8_t *img = malloc(cap);

	assert_non_null(img);
	memcpy(img, r->initial_file, r->initial_len);
	for (size_t i = 0; i < cut; i++)
		if (r->rec.log[i].kind == REC_SYNC)
			last_sync = i + 1;
	split = last_sync + (size_t)(qt_rand(state) % (cut - last_sync + 1));
	if (mode == MODE_LAST_ONLY) /* only the newest write of the window */
		for (split = cut; split > last_sync && r->rec.log[split - 1].kind != REC_WRITE;)
			split--;
	if (mode == MODE_LAST_ONLY && split > last_sync)
		split--;
	for (size_t i = 0; i < cut; i++) {
		struct rec *e = &r->rec.log[i];
		bool keep = i < last_sync || (mode == MODE_SUBSET && qt_rand(state) & 1) ||
			    mode == MODE_TORN || (mode >= MODE_NEWER && i >= split);

		if (e->kind != REC_WRITE || !keep)
			continue;
		assert_true(e->offset + e->len <= cap);
		for (size_t at = 0; at < e->len; at += 512) {
			size_t n = e->len - at < 512 ? e->len - at : 512;

			if (i >= last_sync && mode == MODE_TORN && qt_rand(state) & 1)
				continue;
			if (e->offset + at > len)
				memset(img + len, 0, e->offset + at - len);
			memcpy(img + e->offset + at, e->data + at, n);
			if (e->offset + at + n > len)
				len = e->offset + at + n;
		}
	}
	*out_len = len;
	return img;
}

/* Every sector holds its value at the last completed flush, or a later op's. */
static void check_contents(struct run *r, size_t cut, const uint8_t *got)
{
	const struct scenario *sc = r->sc;
	int flushed = -1, started = -1;
	const uint8_t *base;
	uint8_t *buf = malloc(sc->max_len);

	for (size_t i = 0; i < cut; i++) {
		if (r->rec.log[i].kind == REC_FLUSHED)
			flushed = r->rec.log[i].op;
		if (r->rec.log[i].kind == REC_OP_START)
			started = r->rec.log[i].op;
	}
	base = flushed >= 0 ? r->committed[flushed] : r->start_contents;
	for (uint64_t s = 0; s < sc->size; s += 512) {
		bool ok = memcmp(got + s, base + s, 512) == 0;

		for (int i = flushed + 1; !ok && i <= started; i++) {
			const struct op *op = &r->ops[i];

			if (op->kind == OP_FLUSH || s < op->offset || s >= op->offset + op->len)
				continue;
			op_data(op, buf);
			ok = memcmp(got + s, buf + (s - op->offset), 512) == 0;
		}
		if (!ok)
			fprintf(stderr, "%s: cut at %zu of %zu: sector %llu holds neither its "
				"flushed value (op %d) nor a later write's\n", sc->name, cut,
				r->rec.n, (unsigned long long)(s / 512), flushed);
		assert_true(ok);
	}
	free(buf);
}

/* qemu_view: read the contents with qemu-img, else with our own reader (faster). */
static void check_replay(struct run *r, size_t cut, int mode, uint64_t *state, bool qemu_view)
{
	size_t len, view_len = r->sc->size;
	uint8_t *img = replay(r, cut, mode, state, &len), *view;
	int rc;

	qt_spit(qt_path(r->t, "cut.qcow2"), img, len);
	free(img);
	rc = qt_sh_rc(r->t, "qemu-img check cut.qcow2");
	if (rc != 0 && rc != 3) { /* 3: leaked clusters only */
		fprintf(stderr, "%s: cut at %zu of %zu: qemu-img check says (%d):\n", r->sc->name,
			cut, r->rec.n, rc);
		qt_show_log(r->t);
		fail();
	}
	if (qemu_view) {
		view = qt_qemu_raw(r->t, "cut.qcow2", &view_len);
	} else {
		struct disk *d = qt_open(qt_path(r->t, "cut.qcow2"), true);

		view = qt_read_all(d);
		disk_close(d);
	}
	assert_int_equal(view_len, r->sc->size);
	check_contents(r, cut, view);
	free(view);
}

static void run_scenario(const struct scenario *sc, uint64_t seed)
{
	struct qt t;
	struct run r = { .t = &t, .sc = sc };
	uint64_t state = seed + 17;
	size_t syncs = 0, len, tried = 0, *edges, nr_edges = 0, writes = 0;

	qt_init(&t);
	qt_sh(&t, "%s", sc->setup);
	r.initial_file = qt_slurp(qt_path(&t, "img.qcow2"), &r.initial_len);
	r.start_contents = qt_qemu_raw(&t, "img.qcow2", &len);
	assert_int_equal(len, sc->size);
	run_workload(&r, seed);
	/* Barriers with two or more writes before them: where a missing one would show. */
	edges = calloc(r.rec.n + 1, sizeof(*edges));
	for (size_t i = 0; i < r.rec.n; i++) {
		if (r.rec.log[i].kind == REC_WRITE)
			writes++;
		if (r.rec.log[i].kind != REC_SYNC)
			continue;
		syncs++;
		if (writes >= 2)
			edges[nr_edges++] = i;
		writes = 0;
	}
	fprintf(stderr, "  %s: %d guest ops, %zu log entries, %zu barriers (%zu after 2+ writes), "
		"%zu cuts\n", sc->name, sc->nr_ops, r.rec.n, syncs, nr_edges,
		nr_edges + (size_t)sc->replays + 1);
	assert_true(syncs > 0);
	/* The whole log: the image as closed. */
	check_replay(&r, r.rec.n, MODE_SUBSET, &state, true);
	/* Cuts just before every such barrier, where the most writes are in flight... */
	for (size_t i = 0; i < nr_edges; i++)
		check_replay(&r, edges[i], i % 2 ? MODE_NEWER : MODE_LAST_ONLY, &state,
			     tried++ % 4 == 0);
	/* ...and more anywhere at all. */
	for (int i = 0; i < sc->replays; i++)
		check_replay(&r, (size_t)(qt_rand(&state) % (r.rec.n + 1)),
			     i % 2 ? MODE_TORN : MODE_SUBSET, &state, tried++ % 4 == 0);
	for (size_t i = 0; i < r.rec.n; i++)
		free(r.rec.log[i].data);
	for (int i = 0; i < sc->nr_ops; i++)
		free(r.committed[i]);
	free(edges);
	free(r.rec.log);
	free(r.committed);
	free(r.ops);
	free(r.initial_file);
	free(r.start_contents);
	qt_fini(&t);
}

static void test_qcow2_power_cut_fresh_image(void **state)
{
	run_scenario(&scenarios[0], 1);
}

static void test_qcow2_power_cut_growing_refcounts(void **state)
{
	run_scenario(&scenarios[1], 2);
}

static void test_qcow2_power_cut_snapshots_and_compression(void **state)
{
	run_scenario(&scenarios[2], 3);
}

static void test_qcow2_power_cut_v2_over_backing_file(void **state)
{
	run_scenario(&scenarios[3], 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_qcow2_power_cut_fresh_image),
		cmocka_unit_test(test_qcow2_power_cut_growing_refcounts),
		cmocka_unit_test(test_qcow2_power_cut_snapshots_and_compression),
		cmocka_unit_test(test_qcow2_power_cut_v2_over_backing_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
