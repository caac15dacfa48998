/* The loader: receives the records the feeds (resources.c: YAML resource documents;
 * etcdkv.c: etcd keys) take out of each document, and merges them into one model.
 *
 * Owns: the table of inputs (files, keys) that positions point into, the node table
 * (a Node resource and the blocks naming a node meet in one entry), turning raw block
 * claims into one block per prefix (an IPAMBlock's affinity wins; two claims of the
 * same kind naming different nodes are an error naming both places), cross-resource
 * validation (duplicate pools and FelixConfigurations, overlapping pools), and the
 * final sort that makes the model's lookups binary searches. Reads no file and no
 * folder; no logging: everything the operator should hear goes into diags. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "load.h"
#include "loader.h"
#include "strtab.h"
#include "util.h"

/* The node index holds node numbers + 1 as its entries (nodes move when the array
 * grows; their numbers do not). */
static const char *node_key(const void *entry, const void *ctx)
{
        const struct cfg_model *m = ctx;

        return m->nodes[(uintptr_t)entry - 1].name;
}

int loader_node(struct cfg_loader *l, const char *name, uint32_t *ret)
{
        struct cfg_model *m = l->m;
        void *found = strtab_get(&l->node_index, name, node_key, m), *old;
        int r;

        if (found) {
                *ret = (uint32_t)((uintptr_t)found - 1);
                return 0;
        }
        if (m->n_nodes >= CFG_MAX_NODES)
                return -E2BIG;
        if ((r = GROW(m->nodes, l->cap_nodes, m->n_nodes + 1)) < 0)
                return r;
        m->nodes[m->n_nodes] = (struct cfg_node){ .name = strdup(name) };
        if (!m->nodes[m->n_nodes].name)
                return -ENOMEM;
        if ((r = strtab_put(&l->node_index, (void *)(uintptr_t)(m->n_nodes + 1), node_key, m, &old)) < 0) {
                free(m->nodes[m->n_nodes].name);
                return r;
        }
        *ret = (uint32_t)m->n_nodes++;
        return 0;
}

int loader_add_block(struct cfg_loader *l, const struct cfg_prefix *cidr, uint32_t node, enum block_origin origin,
                     uint32_t line)
{
        const struct raw_block b = {
                .cidr = *cidr,
                .node = node,
                .origin = (uint8_t)origin,
                .src = { .file = l->file, .line = line },
        };
        int part = claims_part(&b), r;

        if (l->n_raw >= CFG_MAX_BLOCKS)
                return cfg_error(l->diags, l->y.file, line, 0, "more than %d blocks", CFG_MAX_BLOCKS);
        if (!l->indexing) {
                if ((r = GROW(l->raw, l->cap_raw, l->n_raw + 1)) < 0)
                        return r;
                l->raw[l->n_raw++] = b;
                return 0;
        }
        if ((r = part == CLAIMS_V4 ? GROW(l->claims.v4, l->claims.cap[part], l->claims.n[part] + 1)
                                   : GROW(l->claims.wide, l->claims.cap[part], l->claims.n[part] + 1)) < 0)
                return r;
        claims_set(&l->claims, part, l->claims.n[part]++, &b);
        l->n_raw++;
        return 0;
}

int loader_add_borrowed(struct cfg_loader *l, const struct cfg_prefix *addr, uint32_t node, uint32_t block_node,
                        uint32_t line)
{
        int r;

        if (l->n_borrowed >= CFG_MAX_BORROWED)
                return cfg_error(l->diags, l->y.file, line, 0, "more than %d borrowed addresses", CFG_MAX_BORROWED);
        if ((r = GROW(l->borrowed, l->cap_borrowed, l->n_borrowed + 1)) < 0)
                return r;
        l->borrowed[l->n_borrowed++] = (struct raw_borrowed){
                .addr = *addr,
                .node = node,
                .block_node = block_node,
                .src = { .file = l->file, .line = line },
        };
        return 0;
}

uint32_t claims_v4_lines = 1u << 24;

int claims_part(const struct raw_block *b)
{
        static const uint8_t zero[12];

        return b->cidr.family == AF_INET && !memcmp(b->cidr.addr + 4, zero, 12) && b->src.line < claims_v4_lines &&
                               b->cidr.len <= 32 && b->origin < 4 ?
                       CLAIMS_V4 :
                       CLAIMS_WIDE;
}

void claims_get(const struct claims *c, int part, size_t i, struct raw_block *ret)
{
        const struct claim16 *v;

        if (part == CLAIMS_WIDE) {
                *ret = c->wide[i];
                return;
        }
        v = &c->v4[i];
        *ret = (struct raw_block){
                .cidr = { .family = AF_INET, .len = (uint8_t)(v->line_len_origin >> 2 & 0x3f) },
                .node = v->node,
                .origin = (uint8_t)(v->line_len_origin & 3),
                .src = { .file = v->file, .line = v->line_len_origin >> 8 },
        };
        memcpy(ret->cidr.addr, v->addr, 4);
}

void claims_set(struct claims *c, int part, size_t i, const struct raw_block *b)
{
        struct claim16 *v;

        if (part == CLAIMS_WIDE) {
                c->wide[i] = *b;
                return;
        }
        v = &c->v4[i];
        memcpy(v->addr, b->cidr.addr, 4);
        v->node = b->node;
        v->file = b->src.file;
        v->line_len_origin = b->src.line << 8 | (uint32_t)b->cidr.len << 2 | b->origin;
}

int claims_reserve(struct claims *c, size_t more)
{
        int r;

        if ((r = GROW(c->v4, c->cap[CLAIMS_V4], c->n[CLAIMS_V4] + more)) < 0)
                return r;
        return GROW(c->wide, c->cap[CLAIMS_WIDE], c->n[CLAIMS_WIDE] + more);
}

void claims_clear(struct claims *c)
{
        free(c->v4);
        free(c->wide);
        *c = (struct claims){};
}

/* An array at exactly n (never shrunk; GROW() doubles past n). */
static int reserve(void **array, size_t *cap, size_t n, size_t sz)
{
        void *p;

        if (n <= *cap)
                return 0;
        if (!(p = realloc(*array, n * sz)))
                return -ENOMEM;
        *array = p;
        *cap = n;
        return 0;
}

void cfg_loader_name_on_demand(struct cfg_loader *l, cfg_namer_fn namer, const void *ctx)
{
        l->m->namer = namer;
        l->m->namer_ctx = ctx;
}

int cfg_loader_reserve(struct cfg_loader *l, size_t inputs, size_t blocks)
{
        int r;

        inputs = inputs < CFG_MAX_KEYS ? inputs : CFG_MAX_KEYS;
        blocks = blocks < CFG_MAX_BLOCKS ? blocks : CFG_MAX_BLOCKS;
        if (!l->m->namer && (r = reserve((void **)&l->m->files, &l->cap_files, inputs, sizeof(*l->m->files))) < 0)
                return r;
        if (l->indexing) /* IPv4 claims, most likely */
                return reserve((void **)&l->claims.v4, &l->claims.cap[CLAIMS_V4], blocks, sizeof(*l->claims.v4));
        return reserve((void **)&l->raw, &l->cap_raw, blocks, sizeof(*l->raw));
}

int loader_add_file(struct cfg_loader *l, const char *path, size_t max)
{
        struct cfg_model *m = l->m;
        int r;

        if (m->n_files >= max)
                return cfg_error(l->diags, path, 0, 0, "more than %zu resource %s", max,
                                 max == CFG_MAX_FILES ? "files" : "keys");
        if (m->namer) { /* named on demand: path is the caller's while it is read */
                l->file = (uint32_t)m->n_files++;
                l->y.file = path;
                return 0;
        }
        if ((r = GROW(m->files, l->cap_files, m->n_files + 1)) < 0)
                return r;
        m->files[m->n_files] = cfg_model_name(m, path);
        if (!m->files[m->n_files])
                return -ENOMEM;
        l->file = (uint32_t)m->n_files++;
        l->y.file = m->files[l->file];
        return 0;
}

/* ---- final validation ---- */

static int pool_cmp(const void *a, const void *b)
{
        return cfg_prefix_cmp(&((const struct cfg_pool *)a)->cidr, &((const struct cfg_pool *)b)->cidr);
}

static bool src_before(struct cfg_src a, struct cfg_src b)
{
        return a.file < b.file || (a.file == b.file && a.line < b.line);
}

static int check_pools(struct cfg_loader *l, size_t errors_before)
{
        struct cfg_model *m = l->m;
        char a[CFG_PREFIX_STRLEN], b[CFG_PREFIX_STRLEN];
        const struct cfg_pool *outer = NULL;
        int ret = 0;

        /* Duplicate names: pools are few (capped), a quadratic scan is fine. */
        for (size_t i = 0; i < m->n_pools; i++)
                for (size_t j = 0; j < i; j++)
                        if (streq(m->pools[i].name, m->pools[j].name))
                                ret = cfg_error(l->diags, cfg_model_file(m, m->pools[i].src), m->pools[i].src.line,
                                                m->pools[i].col, "duplicate pool name \"%s\" (also at %s:%u)", m->pools[i].name,
                                                cfg_model_file(m, m->pools[j].src), m->pools[j].src.line);
        if (m->n_pools > 1)
                qsort(m->pools, m->n_pools, sizeof(*m->pools), pool_cmp);
        /* Prefixes either nest or are disjoint. Sorted by address, then length, a pool
         * that overlaps any earlier one overlaps the widest pool seen since the last
         * disjoint one (`outer`): comparing with the previous pool alone would miss
         * 10.2/16 after 10.1/16 inside 10/8. Blame the one that comes later in the
         * input. */
        for (size_t i = 0; i < m->n_pools; i++) {
                const struct cfg_pool *p = outer, *q = &m->pools[i];

                if (!p || !cfg_prefix_overlaps(&p->cidr, &q->cidr)) {
                        outer = q;
                        continue;
                }
                if (src_before(q->src, p->src)) {
                        const struct cfg_pool *t = p;
                        p = q;
                        q = t;
                }
                cfg_prefix_fmt(&q->cidr, a, sizeof(a));
                cfg_prefix_fmt(&p->cidr, b, sizeof(b));
                ret = cfg_error(l->diags, cfg_model_file(m, q->src), q->src.line, q->col,
                                "pool %s (%s, line %u) overlaps pool %s (%s, line %u of %s)", q->name, a,
                                q->src.line, p->name, b, p->src.line, cfg_model_file(m, p->src));
        }
        /* Not when something was rejected already: a pool with an error is no pool,
         * and "no IPPool found" would only hide the real message. */
        if (m->n_pools == 0 && ret == 0 && l->diags->n_errors == errors_before)
                ret = cfg_error(l->diags, NULL, 0, 0,
                                "no IPPool found in the resources (an empty set is refused rather than read as "
                                "\"no pools\"; use --cleanup to withdraw)");
        return ret;
}

/* Claims by prefix; at the same prefix an IPAMBlock's first (its affinity is Calico's
 * authority and wins), then by file and line. Claims equal in all of that are the same
 * resource's, alike in everything: their order does not matter. */
static inline bool raw_before(const struct raw_block *x, const struct raw_block *y)
{
        int c;

        if (x->cidr.family != y->cidr.family)
                return x->cidr.family < y->cidr.family;
        if ((c = memcmp(x->cidr.addr, y->cidr.addr, sizeof(x->cidr.addr))))
                return c < 0;
        if (x->cidr.len != y->cidr.len)
                return x->cidr.len < y->cidr.len;
        if ((x->origin == BLOCK_FROM_IPAMBLOCK) != (y->origin == BLOCK_FROM_IPAMBLOCK))
                return x->origin == BLOCK_FROM_IPAMBLOCK;
        if (x->src.file != y->src.file || x->src.line != y->src.line)
                return src_before(x->src, y->src);
        /* Claims on one line (a one-line JSON List): a total order, so the full load and
         * the files cache's merge of sorted records (whose in-place sorts are not stable)
         * put them alike; nodes are numbered in first-seen order in both. */
        if (x->node != y->node)
                return x->node < y->node;
        return x->origin < y->origin;
}

/* An IPv4 claim of 16 bytes (struct claim16) before another, as raw_before() puts them
 * decoded (the address's other 12 bytes are zero in both). */
static inline bool c16_before(const struct claim16 *x, const struct claim16 *y)
{
        uint32_t lx = x->line_len_origin >> 2 & 0x3f, ly = y->line_len_origin >> 2 & 0x3f;
        uint32_t ox = x->line_len_origin & 3, oy = y->line_len_origin & 3;
        int c;

        if ((c = memcmp(x->addr, y->addr, sizeof(x->addr))))
                return c < 0;
        if (lx != ly)
                return lx < ly;
        if ((ox == BLOCK_FROM_IPAMBLOCK) != (oy == BLOCK_FROM_IPAMBLOCK))
                return ox == BLOCK_FROM_IPAMBLOCK;
        if (x->file != y->file)
                return x->file < y->file;
        if (x->line_len_origin >> 8 != y->line_len_origin >> 8)
                return x->line_len_origin >> 8 < y->line_len_origin >> 8;
        if (x->node != y->node)
                return x->node < y->node;
        return ox < oy;
}

/* In place, with no allocation (qsort() takes a copy of 16 bytes a claim: 3 MB at 100k
 * blocks with their IPAMBlocks, at the load's peak; issue 16's memory budget) and the
 * comparison inlined: quicksort on a median of three, insertion sort for short runs, a
 * heap sort where the input defeats the pivots (depth past twice log2 n). One for each
 * kind of claim array (raw_block, claim16), alike but for the type and the order. */
#define DEFINE_CLAIM_SORT(name, T, before)                                                                     \
        static void name##_swap(T *a, T *b)                                                                    \
        {                                                                                                      \
                T t = *a;                                                                                      \
                                                                                                               \
                *a = *b;                                                                                       \
                *b = t;                                                                                        \
        }                                                                                                      \
                                                                                                               \
        static void name##_sift(T *v, size_t i, size_t n)                                                      \
        {                                                                                                      \
                for (size_t c; (c = 2 * i + 1) < n; i = c) {                                                   \
                        if (c + 1 < n && before(&v[c], &v[c + 1]))                                             \
                                c++;                                                                           \
                        if (!before(&v[i], &v[c]))                                                             \
                                return;                                                                        \
                        name##_swap(&v[i], &v[c]);                                                             \
                }                                                                                              \
        }                                                                                                      \
                                                                                                               \
        static void name(T *v, size_t n, unsigned depth)                                                       \
        {                                                                                                      \
                while (n > 16) {                                                                               \
                        T *lo = &v[n / 4], *mid = &v[n / 2], *hi = &v[n - n / 4];                              \
                        size_t i = 0, j = n;                                                                   \
                                                                                                               \
                        if (depth-- == 0) {                                                                    \
                                for (size_t k = n / 2; k-- > 0;)                                               \
                                        name##_sift(v, k, n);                                                  \
                                for (size_t k = n - 1; k > 0; k--) {                                           \
                                        name##_swap(&v[0], &v[k]);                                             \
                                        name##_sift(v, 0, k);                                                  \
                                }                                                                              \
                                return;                                                                        \
                        }                                                                                      \
                        /* The median of three inner ones, kept at v[0] (not the first and last:   \
                         * the claims come in sorted runs, IPAMBlocks after their affinities,      \
                         * whose first and middle would make it the smallest but one). */          \
                        if (before(mid, lo))                                                                   \
                                name##_swap(mid, lo);                                                          \
                        if (before(hi, mid)) {                                                                 \
                                name##_swap(hi, mid);                                                          \
                                if (before(mid, lo))                                                           \
                                        name##_swap(mid, lo);                                                  \
                        }                                                                                      \
                        name##_swap(v, mid);                                                                   \
                        for (;;) { /* Hoare: hi, then what is swapped, stops i; v[0] stops j */                \
                                do                                                                             \
                                        i++;                                                                   \
                                while (before(&v[i], v));                                                      \
                                do                                                                             \
                                        j--;                                                                   \
                                while (before(v, &v[j]));                                                      \
                                if (i >= j)                                                                    \
                                        break;                                                                 \
                                name##_swap(&v[i], &v[j]);                                                     \
                        }                                                                                      \
                        name##_swap(v, &v[j]);                                                                 \
                        /* The smaller side by recursion, the larger by the loop. */                           \
                        if (j < n - j - 1) {                                                                   \
                                name(v, j, depth);                                                             \
                                v += j + 1;                                                                    \
                                n -= j + 1;                                                                    \
                        } else {                                                                               \
                                name(v + j + 1, n - j - 1, depth);                                             \
                                n = j;                                                                         \
                        }                                                                                      \
                }                                                                                              \
                for (size_t i = 1; i < n; i++)                                                                 \
                        for (size_t k = i; k > 0 && before(&v[k], &v[k - 1]); k--)                             \
                                name##_swap(&v[k], &v[k - 1]);                                                 \
        }

DEFINE_CLAIM_SORT(sort_raw, struct raw_block, raw_before)
DEFINE_CLAIM_SORT(sort_c16, struct claim16, c16_before)

static unsigned sort_depth(size_t n)
{
        unsigned depth = 0;

        for (size_t k = n; k > 1; k >>= 1)
                depth += 2;
        return depth;
}

bool loader_claim_before(const struct raw_block *x, const struct raw_block *y)
{
        return raw_before(x, y);
}

void loader_sort_claims(struct raw_block *v, size_t n)
{
        size_t i = 1;

        while (i < n && !raw_before(&v[i], &v[i - 1]))
                i++;
        if (i < n)
                sort_raw(v, n, sort_depth(n));
}

/* Both parts of c, each in the order of raw_before(). */
static void sort_claims(struct claims *c)
{
        size_t i = 1, n = c->n[CLAIMS_V4];

        while (i < n && !c16_before(&c->v4[i], &c->v4[i - 1]))
                i++;
        if (i < n)
                sort_c16(c->v4, n, sort_depth(n));
        loader_sort_claims(c->wide, c->n[CLAIMS_WIDE]);
}

static int block_conflict(struct cfg_loader *l, const struct raw_block *a, const struct raw_block *b, const char *what)
{
        struct cfg_model *m = l->m;
        char p[CFG_PREFIX_STRLEN], q[CFG_PREFIX_STRLEN];

        cfg_prefix_fmt(&a->cidr, p, sizeof(p));
        cfg_prefix_fmt(&b->cidr, q, sizeof(q));
        return cfg_error(l->diags, cfg_model_file(m, b->src), b->src.line, 0,
                         "block %s of node %s %s block %s of node %s (%s:%u)", q, m->nodes[b->node].name, what, p,
                         m->nodes[a->node].name, cfg_model_file(m, a->src), a->src.line);
}

/* An array allocated for every raw record down to the n kept (at least one, as
 * allocated): an etcd cluster has two claims per block, an affinity and an IPAMBlock. */
static void shrink(void *array, size_t n, size_t sz)
{
        void *p = realloc(*(void **)array, (n ? n : 1) * sz);

        if (p)
                *(void **)array = p;
}

/* The claims of a load in order: an indexed load's two parts (l->claims) merged, or
 * the raw array of the others, as one. */
struct claim_reader {
        struct claims c; /* a view; c.wide is l->raw in a load that is not indexed */
        size_t i[2];
        uintptr_t released[2]; /* indexed: up to where the pages read were given back */
};

static void reader_init(struct claim_reader *k, const struct cfg_loader *l)
{
        *k = (struct claim_reader){ .c = l->claims };
        if (!l->indexing)
                k->c = (struct claims){ .wide = l->raw, .n = { 0, l->n_raw } };
}

static bool reader_next(struct claim_reader *k, struct raw_block *ret)
{
        bool v4 = k->i[CLAIMS_V4] < k->c.n[CLAIMS_V4], wide = k->i[CLAIMS_WIDE] < k->c.n[CLAIMS_WIDE];

        if (v4)
                claims_get(&k->c, CLAIMS_V4, k->i[CLAIMS_V4], ret);
        if (wide && (!v4 || raw_before(&k->c.wide[k->i[CLAIMS_WIDE]], ret))) {
                *ret = k->c.wide[k->i[CLAIMS_WIDE]++];
                return true;
        }
        if (v4)
                k->i[CLAIMS_V4]++;
        return v4;
}

/* Gives back the pages of the claims read so far (64 kB at a time, whole pages inside
 * the array only): the blocks are written meanwhile, and the claims and the blocks are
 * never both whole (100k etcd blocks: 3.2 MB of claims, 3.6 of blocks). */
static void release_read(const void *v, size_t bytes, uintptr_t *done)
{
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t lo = ((uintptr_t)v + page - 1) & ~(page - 1), hi = ((uintptr_t)v + bytes) & ~(page - 1);

        if (*done > lo)
                lo = *done;
        if (hi < lo + 16 * page)
                return;
        (void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
        *done = hi;
}

static void reader_release(struct claim_reader *k)
{
        release_read(k->c.v4, k->i[CLAIMS_V4] * sizeof(*k->c.v4), &k->released[CLAIMS_V4]);
        release_read(k->c.wide, k->i[CLAIMS_WIDE] * sizeof(*k->c.wide), &k->released[CLAIMS_WIDE]);
}

/* The array the blocks go into. Not indexed: the sorted claims they come from, written
 * over (never ahead of the one being read: a block is no larger than a claim), so that
 * 100k blocks cost one array at the load's peak, not two (issue 15's memory budget).
 * Indexed: the own blocks counted (index_room()), as the compact claims are read and
 * given back. */
static struct cfg_block *blocks_array(struct cfg_loader *l, size_t own)
{
        static_assert(sizeof(struct cfg_block) <= sizeof(struct raw_block), "blocks are written over raw claims");
        static_assert(_Alignof(struct cfg_block) <= _Alignof(struct raw_block), "blocks are written over raw claims");

        if (l->indexing)
                return malloc((own ? own : 1) * sizeof(struct cfg_block));
        if (!l->raw)
                return calloc(1, sizeof(struct cfg_block));
        l->cap_raw = 0;
        return (struct cfg_block *)(void *)TAKE_PTR(l->raw);
}

/* An indexed load (kvupdate.c) keeps every claim: a block stands for its first claim,
 * its etcd BlockAffinity (claim_shadows()) is the input in l->shadow, and the others (a
 * duplicate, a claim for another node, those in no pool) go to l->extra. All sized
 * from one pass over the sorted claims (the first of each prefix in a pool makes a
 * block, *ret_own of them; the extra room is untouched where a shadow takes a claim),
 * not doubled as they come: the index costs what it holds at the load's peak. */
static int index_room(struct cfg_loader *l, size_t *ret_own)
{
        struct claim_reader k;
        struct raw_block rb, prev = {};
        size_t own = 0, n[2] = {};

        *ret_own = 0;
        if (!l->indexing)
                return 0;
        reader_init(&k, l);
        for (bool first = true; reader_next(&k, &rb); prev = rb, first = false) {
                if ((first || !cfg_prefix_eq(&prev.cidr, &rb.cidr)) && cfg_model_pool_for(l->m, &rb.cidr))
                        own++;
                else
                        n[claims_part(&rb)]++;
        }
        l->extra.v4 = malloc((n[CLAIMS_V4] ? n[CLAIMS_V4] : 1) * sizeof(*l->extra.v4));
        l->extra.wide = malloc((n[CLAIMS_WIDE] ? n[CLAIMS_WIDE] : 1) * sizeof(*l->extra.wide));
        l->extra.cap[CLAIMS_V4] = n[CLAIMS_V4] ? n[CLAIMS_V4] : 1;
        l->extra.cap[CLAIMS_WIDE] = n[CLAIMS_WIDE] ? n[CLAIMS_WIDE] : 1;
        l->won = malloc(own ? own : 1);
        l->shadow = calloc(own ? own : 1, sizeof(*l->shadow));
        *ret_own = own;
        return l->extra.v4 && l->extra.wide && l->won && l->shadow ? 0 : -ENOMEM;
}

/* A claim that is not block's own (own: the claim block is made of, NULL when the
 * prefix makes no block). */
static void keep_other(struct cfg_loader *l, const struct raw_block *rb, const struct raw_block *own, size_t block)
{
        int part = claims_part(rb);

        if (!l->indexing)
                return;
        if (own && !l->shadow[block] && claim_shadows(own, rb)) {
                l->shadow[block] = shadow_of(rb);
                l->has_shadow = true;
                return;
        }
        claims_set(&l->extra, part, l->extra.n[part]++, rb);
}

static int build_blocks(struct cfg_loader *l)
{
        struct cfg_model *m = l->m;
        size_t outside = 0, kept = 0, own;
        struct claim_reader k;
        struct raw_block prev, rb; /* a copy: blocks[kept] may lie over the claim */
        bool have_prev = false, prev_kept = false;
        int ret = 0;

        if (l->indexing)
                sort_claims(&l->claims);
        else
                loader_sort_claims(l->raw, l->n_raw);
        reader_init(&k, l);
        if (index_room(l, &own) < 0 || !(m->blocks = blocks_array(l, own)))
                return -ENOMEM;
        l->n_raw = 0;
        for (size_t i = 0; reader_next(&k, &rb); i++) {
                const struct cfg_pool *pool;
                char buf[CFG_PREFIX_STRLEN];

                if (l->indexing && i % 1024 == 0)
                        reader_release(&k);
                if (have_prev && cfg_prefix_eq(&prev.cidr, &rb.cidr)) {
                        /* An IPAMBlock's affinity overrules affinities and podCIDRs
                         * (IPAMBlocks sort first); two IPAMBlocks, or two of the others,
                         * naming different nodes are a conflict. */
                        bool overruled = prev.origin == BLOCK_FROM_IPAMBLOCK && rb.origin != BLOCK_FROM_IPAMBLOCK;

                        if (prev.node != rb.node && !overruled)
                                ret = block_conflict(l, &prev, &rb, "is also claimed as");
                        keep_other(l, &rb, prev_kept ? &prev : NULL, kept - 1);
                        continue; /* the same block again, or overruled by its IPAMBlock */
                }
                if (have_prev && cfg_prefix_overlaps(&prev.cidr, &rb.cidr)) {
                        ret = block_conflict(l, &prev, &rb, "overlaps");
                        continue;
                }
                prev = rb;
                have_prev = true;
                prev_kept = false;
                pool = cfg_model_pool_for(m, &rb.cidr);
                if (!pool) {
                        m->n_skipped++;
                        if (++outside <= 10) {
                                cfg_prefix_fmt(&rb.cidr, buf, sizeof(buf));
                                cfg_notice(l->diags, cfg_model_file(m, rb.src), rb.src.line, 0,
                                           "skipping block %s of node %s: it lies in no pool", buf,
                                           m->nodes[rb.node].name);
                        }
                        keep_other(l, &rb, NULL, 0);
                        continue;
                }
                if (l->indexing)
                        l->won[kept] = rb.origin;
                prev_kept = true;
                m->blocks[kept++] = (struct cfg_block){
                        .cidr = rb.cidr,
                        .node = rb.node,
                        .pool = (uint32_t)(pool - m->pools),
                        .src = rb.src,
                };
        }
        if (outside > 10)
                cfg_notice(l->diags, NULL, 0, 0, "skipped %zu more blocks that lie in no pool", outside - 10);
        m->n_blocks = kept;
        claims_clear(&l->claims);
        shrink(&m->blocks, kept, sizeof(*m->blocks));
        if (l->indexing) {
                shrink(&l->extra.v4, l->extra.n[CLAIMS_V4], sizeof(*l->extra.v4));
                shrink(&l->extra.wide, l->extra.n[CLAIMS_WIDE], sizeof(*l->extra.wide));
                l->extra.cap[CLAIMS_V4] = l->extra.n[CLAIMS_V4] ? l->extra.n[CLAIMS_V4] : 1;
                l->extra.cap[CLAIMS_WIDE] = l->extra.n[CLAIMS_WIDE] ? l->extra.n[CLAIMS_WIDE] : 1;
                shrink(&l->won, kept, sizeof(*l->won));
                if (l->has_shadow)
                        shrink(&l->shadow, kept, sizeof(*l->shadow));
                else { /* the Kubernetes datastore's: no IPAMBlocks */
                        free(l->shadow);
                        l->shadow = NULL;
                }
        }
        return ret;
}

static int raw_borrowed_cmp(const void *a, const void *b)
{
        const struct raw_borrowed *x = a, *y = b;
        int c = cfg_prefix_cmp(&x->addr, &y->addr);

        if (c)
                return c;
        return src_before(x->src, y->src) ? -1 : (src_before(y->src, x->src) ? 1 : 0);
}

/* Borrowed addresses in address order, one per address (the same IPAMBlock read twice
 * gives the same entries; the first is kept), each in its pool; those in no pool are
 * dropped like blocks in no pool. */
static int build_borrowed(struct cfg_loader *l)
{
        struct cfg_model *m = l->m;
        size_t kept = 0;

        if (l->n_borrowed > 1)
                qsort(l->borrowed, l->n_borrowed, sizeof(*l->borrowed), raw_borrowed_cmp);
        m->borrowed = calloc(l->n_borrowed ? l->n_borrowed : 1, sizeof(*m->borrowed));
        if (!m->borrowed)
                return -ENOMEM;
        for (size_t i = 0; i < l->n_borrowed; i++) {
                const struct raw_borrowed *rb = &l->borrowed[i];
                const struct cfg_pool *pool;

                if (kept && cfg_prefix_eq(&m->borrowed[kept - 1].addr, &rb->addr))
                        continue;
                pool = cfg_model_pool_for(m, &rb->addr);
                if (!pool)
                        continue;
                m->borrowed[kept++] = (struct cfg_borrowed){
                        .addr = rb->addr,
                        .node = rb->node,
                        .block_node = rb->block_node,
                        .pool = (uint32_t)(pool - m->pools),
                        .src = rb->src,
                };
        }
        m->n_borrowed = kept;
        shrink(&m->borrowed, kept, sizeof(*m->borrowed));
        return 0;
}

struct name_idx {
        const char *name;
        uint32_t idx;
};

static int name_idx_cmp(const void *a, const void *b)
{
        return strcmp(((const struct name_idx *)a)->name, ((const struct name_idx *)b)->name);
}

/* Sort nodes by name for binary search and renumber the blocks' references (and the
 * other claims', when they are kept for an index). */
static int sort_nodes(struct cfg_loader *l)
{
        struct cfg_model *m = l->m;
        size_t n = m->n_nodes;
        _cleanup_(freep) struct name_idx *order = malloc((n ? n : 1) * sizeof(*order));
        _cleanup_(freep) uint32_t *new_idx = malloc((n ? n : 1) * sizeof(*new_idx));
        struct cfg_node *sorted = malloc((n ? n : 1) * sizeof(*sorted));

        if (!order || !new_idx || !sorted) {
                free(sorted);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                if (cfg_labels_seal(&m->nodes[i].labels) < 0) {
                        free(sorted);
                        return -ENOMEM;
                }
                order[i] = (struct name_idx){ m->nodes[i].name, (uint32_t)i };
        }
        qsort(order, n, sizeof(*order), name_idx_cmp);
        for (size_t k = 0; k < n; k++) {
                sorted[k] = m->nodes[order[k].idx];
                new_idx[order[k].idx] = (uint32_t)k;
        }
        for (size_t i = 0; i < m->n_blocks; i++)
                m->blocks[i].node = new_idx[m->blocks[i].node];
        for (size_t i = 0; i < m->n_borrowed; i++) {
                struct cfg_borrowed *b = &m->borrowed[i];

                b->node = new_idx[b->node];
                if (b->block_node != UINT32_MAX)
                        b->block_node = new_idx[b->block_node];
        }
        for (size_t i = 0; l->indexing && i < l->extra.n[CLAIMS_V4]; i++)
                l->extra.v4[i].node = new_idx[l->extra.v4[i].node];
        for (size_t i = 0; l->indexing && i < l->extra.n[CLAIMS_WIDE]; i++)
                l->extra.wide[i].node = new_idx[l->extra.wide[i].node];
        for (size_t i = 0; l->indexing && i < l->n_borrowed; i++) {
                struct raw_borrowed *b = &l->borrowed[i];

                b->node = new_idx[b->node];
                if (b->block_node != UINT32_MAX)
                        b->block_node = new_idx[b->block_node];
        }
        free(m->nodes);
        m->nodes = sorted;
        return 0;
}

static int check_felix(struct cfg_loader *l)
{
        struct cfg_model *m = l->m;
        int ret = 0;

        for (size_t i = 0; i < m->n_felix; i++)
                for (size_t j = 0; j < i; j++)
                        if (streq(m->felix[i].name, m->felix[j].name))
                                ret = cfg_error(l->diags, cfg_model_file(m, m->felix[i].src), m->felix[i].src.line,
                                                0, "duplicate FelixConfiguration \"%s\"", m->felix[i].name);
        return ret;
}

static int finish(struct cfg_loader *l, size_t errors_before)
{
        int r;

        if ((r = check_pools(l, errors_before)) == -ENOMEM || (r = check_felix(l)) == -ENOMEM)
                return r;
        if ((r = build_blocks(l)) == -ENOMEM)
                return r;
        if ((r = build_borrowed(l)) < 0)
                return r;
        if ((r = sort_nodes(l)) < 0)
                return r;
        return l->diags->n_errors > errors_before ? -EINVAL : 0;
}

int cfg_loader_new(struct cfg_settings *settings, struct cfg_diags *diags, struct cfg_loader **ret)
{
        struct cfg_loader *l = calloc(1, sizeof(*l));

        if (!l)
                return -ENOMEM;
        l->m = calloc(1, sizeof(*l->m));
        if (!l->m) {
                free(l);
                return -ENOMEM;
        }
        /* Borrowed until cfg_loader_finish() succeeds: the feeds read them. */
        l->m->settings = *settings;
        l->settings = settings;
        l->diags = diags ? diags : &l->own_diags;
        l->errors_before = l->diags->n_errors;
        l->y.diags = l->diags;
        *ret = l;
        return 0;
}

void cfg_loader_free(struct cfg_loader *cl)
{
        struct cfg_loader *l = cl;

        if (!l)
                return;
        if (l->m) {
                l->m->settings = (struct cfg_settings){}; /* the caller's, still */
                cfg_model_free(l->m);
        }
        free(l->raw);
        claims_clear(&l->claims);
        claims_clear(&l->extra);
        free(l->won);
        free(l->shadow);
        free(l->borrowed);
        free(l->file_ipam);
        free(l->fills);
        strtab_clear(&l->node_index);
        cfg_diags_clear(&l->own_diags);
        free(l);
}

static int finish_load(struct cfg_loader *l, struct cfg_model **ret, struct cfg_kv_index **ret_ix)
{
        int r;

        if (l->failed)
                r = l->failed;
        else
                r = finish(l, l->errors_before);
        if (r >= 0 && ret_ix)
                r = kv_index_take(l, l->m, ret_ix);
        if (r < 0) {
                cfg_loader_free(l);
                return r;
        }
        *l->settings = (struct cfg_settings){};
        *ret = TAKE_PTR(l->m);
        cfg_loader_free(l);
        return 0;
}

int cfg_loader_finish(struct cfg_loader *l, struct cfg_model **ret)
{
        return finish_load(l, ret, NULL);
}

void cfg_loader_keep_index(struct cfg_loader *l)
{
        l->indexing = true;
}

int cfg_loader_finish_indexed(struct cfg_loader *l, struct cfg_model **ret, struct cfg_kv_index **ret_ix)
{
        return finish_load(l, ret, ret_ix);
}

int cfg_model_from_kvs_indexed(struct cfg_settings *settings, const struct cfg_kv *kvs, size_t n,
                               struct cfg_model **ret, struct cfg_kv_index **ret_ix, struct cfg_diags *diags)
{
        struct cfg_loader *l;
        int r;

        if ((r = cfg_loader_new(settings, diags, &l)) < 0)
                return r;
        l->indexing = true;
        for (size_t i = 0; i < n && r >= 0; i++)
                r = cfg_loader_add_kv(l, &kvs[i]);
        return finish_load(l, ret, ret_ix);
}
