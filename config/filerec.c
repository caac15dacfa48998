/* What one resource file gives the load, kept between loads (load.h cfg_file_rec_*;
 * issue 16): the files source reads again only the files that changed, and the model
 * is merged from every file's record exactly as the full load merges the files.
 *
 * Owns the record of one file (read alone by the loader itself, resources.c: its
 * Nodes, block claims, borrowed addresses, pools, FelixConfigurations, counts and
 * notices, nothing of the YAML), the merge of records in file order through the
 * loader's own calls (loader.c: the node table, loader_add_block(), the final
 * validation and sort, so IPAMBlock precedence and the errors naming both places are
 * the full load's), and the comparison of two models into the prefixes a change
 * touched. The one rule that depends on the order of files, a Kubernetes Node's
 * address filling a field only while no Calico Node set it, is kept apart while a file
 * is read alone (loader.h split_fills) and applied at the merge. A file whose reading
 * has any error is not recorded: the caller loads every file the usual way and its
 * messages are the full load's. Pure: no I/O, no logging. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "load.h"
#include "loader.h"
#include "util.h"

/* The addresses some prefixes span, first to last (family 0: none; BOX_MIXED: both
 * families, which no box excludes). */
#define BOX_MIXED 255
struct box {
        uint8_t family;
        uint8_t first[16], last[16];
};

static void prefix_span(const struct cfg_prefix *p, uint8_t first[16], uint8_t last[16])
{
        unsigned max = cfg_prefix_maxlen(p) / 8;

        for (unsigned i = 0; i < 16; i++) {
                unsigned bits = i >= max ? 0 : p->len >= (i + 1) * 8 ? 8 : p->len > i * 8 ? p->len - i * 8 : 0;
                uint8_t mask = bits ? (uint8_t)(0xff << (8 - bits)) : 0;

                first[i] = i >= max ? 0 : p->addr[i] & mask;
                last[i] = i >= max ? 0 : (uint8_t)(p->addr[i] | (uint8_t)~mask);
        }
}

static void box_add(struct box *b, const struct cfg_prefix *p)
{
        uint8_t first[16], last[16];

        if (b->family == BOX_MIXED)
                return;
        prefix_span(p, first, last);
        if (!b->family) {
                b->family = p->family;
                memcpy(b->first, first, 16);
                memcpy(b->last, last, 16);
                return;
        }
        if (b->family != p->family) {
                b->family = BOX_MIXED;
                return;
        }
        if (memcmp(first, b->first, 16) < 0)
                memcpy(b->first, first, 16);
        if (memcmp(last, b->last, 16) > 0)
                memcpy(b->last, last, 16);
}

/* An IPv4 block claim as a file's record keeps it: 100k blocks claimed by their
 * BlockAffinities and IPAMBlocks cost 2.4 MB, not 7.2 (issues 15 and 16's memory
 * budget). meta: the node's number << 8 | the length << 2 | the origin. */
struct claim4 {
        uint8_t addr[4];
        uint32_t line, meta;
};

#define CLAIM4_MAX_NODES (1u << 24)

struct cfg_file_rec;
static void claim_at(const struct cfg_file_rec *rec, size_t i, struct raw_block *ret);

/* What a record keeps of its file's load: not the loader's whole cfg_model (336 bytes
 * with its settings, and a malloc for every name and label: 2.5 MB at 5,000 files). */
struct rec_model {
        struct cfg_node *nodes; /* Calico Nodes' fields only; in pack with their names and labels */
        size_t n_nodes;
        struct cfg_pool *pools;
        size_t n_pools;
        struct cfg_felix *felix;
        size_t n_felix;
        size_t n_skipped, n_pod_cidrs_ignored, n_ipam_resources;
};

struct cfg_file_rec {
        struct rec_model m;
        void *pack;               /* m.nodes, their labels' arrays, names, keys and values */
        struct cfg_node *fills;   /* per node: Kubernetes Nodes' first addresses, or NULL */
        struct raw_block *raw;    /* block claims, node numbers into m.nodes... */
        struct claim4 *c4;        /* ...or, when all are IPv4, these (12 bytes, not 36) */
        size_t n_raw;
        struct raw_borrowed *bor;
        size_t n_bor;
        struct cfg_diags notices;
        /* The claims' spans, in at most RUNS_MAX boxes a family: an update in place
         * skips the files none of whose boxes meets a prefix it changes. */
        struct box *runs;
        size_t n_runs;
};

void cfg_file_rec_free(struct cfg_file_rec *r)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->m.n_pools; i++) {
                free(r->m.pools[i].name);
                free(r->m.pools[i].node_selector);
                sel_free(r->m.pools[i].selector);
        }
        free(r->m.pools);
        for (size_t i = 0; i < r->m.n_felix; i++)
                free(r->m.felix[i].name);
        free(r->m.felix);
        free(r->pack);
        free(r->fills);
        free(r->raw);
        free(r->c4);
        free(r->bor);
        free(r->runs);
        cfg_diags_clear(&r->notices);
        free(r);
}

static void rec_freep(struct cfg_file_rec **r)
{
        cfg_file_rec_free(*r);
}

static void loader_freep(struct cfg_loader **l)
{
        cfg_loader_free(*l);
}

static void no_name(const void *ctx, uint32_t file, char *buf, size_t size)
{
        (void)file;
        snprintf(buf, size, "%s", (const char *)ctx);
}

/* An array down to its n entries (NULL when none). */
static void *fit(void *p, size_t n, size_t sz)
{
        void *q;

        if (!n) {
                free(p);
                return NULL;
        }
        q = realloc(p, n * sz);
        return q ? q : p;
}

static int copy_notices(struct cfg_diags *to, const struct cfg_diags *from)
{
        for (size_t i = 0; i < from->n; i++) {
                const struct cfg_diag *g = &from->v[i];

                cfg_notice(to, g->file, g->line, g->column, "%s", g->message);
        }
        to->n_dropped += from->n_dropped;
        return 0;
}

static void claim_at(const struct cfg_file_rec *rec, size_t i, struct raw_block *ret)
{
        const struct claim4 *c;

        if (!rec->c4) {
                *ret = rec->raw[i];
                return;
        }
        c = &rec->c4[i];
        *ret = (struct raw_block){ .cidr = { .family = AF_INET, .len = (uint8_t)((c->meta >> 2) & 0x3f) },
                                   .node = c->meta >> 8, .origin = (uint8_t)(c->meta & 3), .src = { .line = c->line } };
        memcpy(ret->cidr.addr, c->addr, 4);
}

/* Claims all IPv4 (the rest of each address zero, as parsed): kept as claim4. */
static void compact_claims(struct cfg_file_rec *rec)
{
        static const uint8_t zero[12];
        struct claim4 *v;

        if (!rec->n_raw)
                return;
        for (size_t i = 0; i < rec->n_raw; i++)
                if (rec->raw[i].cidr.family != AF_INET || memcmp(rec->raw[i].cidr.addr + 4, zero, 12) ||
                    rec->raw[i].cidr.len > 32 || rec->raw[i].origin > 3 || rec->raw[i].node >= CLAIM4_MAX_NODES)
                        return;
        if (!(v = malloc(rec->n_raw * sizeof(*v))))
                return; /* kept as they are */
        for (size_t i = 0; i < rec->n_raw; i++) {
                const struct raw_block *b = &rec->raw[i];

                v[i] = (struct claim4){ .line = b->src.line,
                                        .meta = b->node << 8 | (uint32_t)b->cidr.len << 2 | b->origin };
                memcpy(v[i].addr, b->cidr.addr, 4);
        }
        free(rec->raw);
        rec->raw = NULL;
        rec->c4 = v;
}

/* The loader's nodes copied into one allocation with their names and labels (as set,
 * in order: the merge sets them again). */
static int pack_nodes(struct cfg_file_rec *rec, const struct cfg_model *m)
{
        size_t size = m->n_nodes * sizeof(struct cfg_node), labels = size;
        struct cfg_label *lv;
        char *p;

        for (size_t i = 0; i < m->n_nodes; i++) {
                const struct cfg_labels *l = &m->nodes[i].labels;

                size += strlen(m->nodes[i].name) + 1 + l->n * sizeof(struct cfg_label);
                for (size_t k = 0; k < l->n; k++)
                        size += strlen(l->v[k].key) + strlen(l->v[k].value) + 2;
        }
        if (!m->n_nodes)
                return 0;
        if (!(rec->pack = malloc(size)))
                return -ENOMEM;
        rec->m.nodes = rec->pack;
        rec->m.n_nodes = m->n_nodes;
        lv = (struct cfg_label *)(void *)((char *)rec->pack + labels);
        for (size_t i = 0; i < m->n_nodes; i++)
                lv += m->nodes[i].labels.n;
        p = (char *)lv;
        lv = (struct cfg_label *)(void *)((char *)rec->pack + labels);
        for (size_t i = 0; i < m->n_nodes; i++) {
                const struct cfg_node *n = &m->nodes[i];
                struct cfg_node *c = &rec->m.nodes[i];

                *c = *n;
                c->name = p;
                p = stpcpy(p, n->name) + 1;
                c->labels = (struct cfg_labels){ .v = n->labels.n ? lv : NULL, .n = n->labels.n, .cap = n->labels.n };
                for (size_t k = 0; k < n->labels.n; k++, lv++) {
                        lv->key = p;
                        p = stpcpy(p, n->labels.v[k].key) + 1;
                        lv->value = p;
                        p = stpcpy(p, n->labels.v[k].value) + 1;
                }
        }
        return 0;
}

/* A file's claims are spanned by a few boxes, cut where the gaps between them are
 * widest: a node's file claims blocks in each of its pools (one box over them all
 * would span the other nodes' blocks between). Each family has its own boxes (a
 * dual-stack file's IPv4 gaps, as fractions of the address space, would otherwise
 * always be wider than its IPv6 ones). */
#define RUNS_MAX 4 /* per family */

/* Where a run may end: before claim at, the gap before it (b - a, 16 bytes big-endian). */
struct cut {
        size_t at;
        uint8_t gap[16];
};

static void span_sub(const uint8_t b[16], const uint8_t a[16], uint8_t out[16])
{
        unsigned borrow = 0;

        for (size_t i = 16; i-- > 0;) {
                unsigned d = (unsigned)b[i] - a[i] - borrow;

                out[i] = (uint8_t)d;
                borrow = d >> 8 & 1;
        }
}

/* The RUNS_MAX - 1 widest cuts so far, widest first. */
static void offer_cut(struct cut *top, size_t *n, const struct cut *c)
{
        size_t k = *n < RUNS_MAX - 1 ? (*n)++ : RUNS_MAX - 1;

        if (k == RUNS_MAX - 1 && memcmp(c->gap, top[k - 1].gap, 16) <= 0)
                return;
        if (k == RUNS_MAX - 1)
                k--;
        for (; k > 0 && memcmp(c->gap, top[k - 1].gap, 16) > 0; k--)
                top[k] = top[k - 1];
        top[k] = *c;
}

static int at_cmp(const void *a, const void *b)
{
        size_t x = ((const struct cut *)a)->at, y = ((const struct cut *)b)->at;

        return x < y ? -1 : x > y;
}

/* rec's claims (sorted by family, address, length) into its runs. */
static int make_runs(struct cfg_file_rec *rec)
{
        struct cut top[2 * RUNS_MAX - 1];
        uint8_t first[16], last[16], end[16];
        size_t n_top[2] = {}, n = 0, k = 0, fam = 0;

        if (!rec->n_raw)
                return 0;
        /* end: where the family's claims so far end (the furthest last address). */
        prefix_span(&rec->raw[0].cidr, first, end);
        for (size_t i = 1; i < rec->n_raw; i++) {
                const struct cfg_prefix *p = &rec->raw[i].cidr;
                struct cut c = { .at = i };

                prefix_span(p, first, last);
                if (p->family != rec->raw[i - 1].cidr.family) {
                        /* the one cut between the families, after both families' own */
                        top[2 * (RUNS_MAX - 1)] = c;
                        fam = 1;
                        memcpy(end, last, 16);
                        continue;
                }
                if (memcmp(first, end, 16) > 0) {
                        span_sub(first, end, c.gap);
                        offer_cut(top + fam * (RUNS_MAX - 1), &n_top[fam], &c);
                }
                if (memcmp(last, end, 16) > 0)
                        memcpy(end, last, 16);
        }
        /* Together, in claim order. */
        memmove(top + n_top[0], top + RUNS_MAX - 1, n_top[1] * sizeof(*top));
        n = n_top[0] + n_top[1];
        if (fam)
                top[n++] = top[2 * (RUNS_MAX - 1)];
        qsort(top, n, sizeof(*top), at_cmp);
        if (!(rec->runs = calloc(n + 1, sizeof(*rec->runs))))
                return -ENOMEM;
        rec->n_runs = n + 1;
        for (size_t i = 0; i < rec->n_raw; i++) {
                if (k < n && i == top[k].at)
                        k++;
                box_add(&rec->runs[k], &rec->raw[i].cidr);
        }
        return 0;
}

int cfg_file_rec_read(struct cfg_settings *s, const char *name, ydoc_read_fn read, void *ctx,
                      struct cfg_file_rec **ret)
{
        _cleanup_(rec_freep) struct cfg_file_rec *rec = calloc(1, sizeof(*rec));
        _cleanup_(loader_freep) struct cfg_loader *l = NULL;
        int r;

        if (!rec)
                return -ENOMEM;
        if ((r = cfg_loader_new(s, &rec->notices, &l)) < 0)
                return r;
        l->split_fills = true;
        cfg_loader_name_on_demand(l, no_name, name);
        if ((r = cfg_loader_add_yaml_stream(l, name, read, ctx)) < 0 || l->failed)
                return r < 0 ? r : l->failed;
        if (rec->notices.n_errors)
                return 0;
        rec->raw = fit(TAKE_PTR(l->raw), l->n_raw, sizeof(*rec->raw));
        rec->n_raw = l->n_raw;
        rec->bor = fit(TAKE_PTR(l->borrowed), l->n_borrowed, sizeof(*rec->bor));
        rec->n_bor = l->n_borrowed;
        /* In the order the load sorts them: the merge takes every file's in order. */
        loader_sort_claims(rec->raw, rec->n_raw);
        if ((r = make_runs(rec)) < 0)
                return r;
        compact_claims(rec);
        if (l->fills) {
                rec->fills = fit(TAKE_PTR(l->fills), l->m->n_nodes, sizeof(*rec->fills));
                /* Nodes past the last Kubernetes Node's were never filled. */
                for (size_t i = l->cap_fills; i < l->m->n_nodes; i++)
                        rec->fills[i] = (struct cfg_node){};
        }
        if ((r = pack_nodes(rec, l->m)) < 0)
                return r;
        rec->m.pools = fit(TAKE_PTR(l->m->pools), l->m->n_pools, sizeof(*rec->m.pools));
        rec->m.n_pools = l->m->n_pools;
        l->m->n_pools = 0;
        rec->m.felix = fit(TAKE_PTR(l->m->felix), l->m->n_felix, sizeof(*rec->m.felix));
        rec->m.n_felix = l->m->n_felix;
        l->m->n_felix = 0;
        rec->m.n_skipped = l->m->n_skipped;
        rec->m.n_pod_cidrs_ignored = l->m->n_pod_cidrs_ignored;
        rec->m.n_ipam_resources = l->m->n_ipam_resources;
        *ret = TAKE_PTR(rec);
        return 1;
}

/* ---- the merge ---- */

static int copy_pool(struct cfg_loader *l, const struct cfg_pool *p)
{
        struct cfg_model *m = l->m;
        struct sel_error err = {};
        struct cfg_pool q = *p;

        q.src.file = l->file;
        q.name = strdup(p->name);
        q.node_selector = strdup(p->node_selector);
        q.selector = NULL;
        if (!q.name || !q.node_selector || sel_compile(p->node_selector, &q.selector, &err) < 0 ||
            GROW(m->pools, l->cap_pools, m->n_pools + 1) < 0) {
                free(q.name);
                free(q.node_selector);
                sel_free(q.selector);
                return -ENOMEM; /* it compiled when the file was read */
        }
        m->pools[m->n_pools++] = q;
        return 0;
}

static int copy_felix(struct cfg_loader *l, const struct cfg_felix *f)
{
        struct cfg_model *m = l->m;
        struct cfg_felix g = *f;

        g.src.file = l->file;
        if (!(g.name = strdup(f->name)) || GROW(m->felix, l->cap_felix, m->n_felix + 1) < 0) {
                free(g.name);
                return -ENOMEM;
        }
        m->felix[m->n_felix++] = g;
        return 0;
}

static void take_addr(struct cfg_prefix *to, const struct cfg_prefix *from)
{
        if (from->family)
                *to = *from;
}

static void fill_addr(struct cfg_prefix *to, const struct cfg_prefix *from)
{
        if (!to->family)
                *to = *from;
}

/* One file's node entry into the merged one: what load_calico_node() and
 * begin_node() did to it, in order (labels set one by one, later ones win at the
 * seal; the first resource's position; a Calico Node's addresses replace). */
static int merge_node(struct cfg_loader *l, const struct cfg_node *v, const struct cfg_node *fill,
                      struct cfg_node **fills, size_t *cap_fills, uint32_t *ret)
{
        struct cfg_node *n;
        size_t had = *cap_fills;
        int r;

        if ((r = loader_node(l, v->name, ret)) < 0)
                return r;
        /* Room for fills only when a file has any (a Kubernetes Node's): 1 MB at 5,000
         * nodes otherwise, at the merge's peak. */
        if (fill && (r = GROW(*fills, *cap_fills, l->m->n_nodes)) < 0)
                return r;
        if (*cap_fills > had)
                memset(*fills + had, 0, (*cap_fills - had) * sizeof(**fills));
        n = &l->m->nodes[*ret];
        if (v->has_resource && !n->has_resource) {
                n->has_resource = true;
                n->src = (struct cfg_src){ .file = l->file, .line = v->src.line };
        }
        for (size_t i = 0; i < v->labels.n; i++)
                if ((r = cfg_labels_set(&n->labels, v->labels.v[i].key, v->labels.v[i].value)) < 0)
                        return r;
        n->has_labels = n->has_labels || v->has_labels;
        take_addr(&n->addr, &v->addr);
        take_addr(&n->addr6, &v->addr6);
        take_addr(&n->ipip_tunnel_addr, &v->ipip_tunnel_addr);
        take_addr(&n->vxlan_tunnel_addr, &v->vxlan_tunnel_addr);
        if (fill) {
                struct cfg_node *f = &(*fills)[*ret];

                fill_addr(&f->addr, &fill->addr);
                fill_addr(&f->addr6, &fill->addr6);
                fill_addr(&f->ipip_tunnel_addr, &fill->ipip_tunnel_addr);
                fill_addr(&f->vxlan_tunnel_addr, &fill->vxlan_tunnel_addr);
        }
        return 0;
}

/* One file's record into the load, but its claims (merge_claims()); map: its node
 * numbers in the load. */
static int merge_one(struct cfg_loader *l, const char *name, const struct cfg_file_rec *rec,
                     struct cfg_node **fills, size_t *cap_fills, uint32_t *map)
{
        const struct rec_model *v = &rec->m;
        int r;

        if ((r = loader_add_file(l, name, CFG_MAX_FILES)) < 0 || l->diags->n_errors > l->errors_before)
                return r < 0 && r != -EINVAL ? r : -E2BIG;
        copy_notices(l->diags, &rec->notices);
        for (size_t i = 0; i < v->n_pools; i++)
                if ((r = copy_pool(l, &v->pools[i])) < 0)
                        return r;
        for (size_t i = 0; i < v->n_felix; i++)
                if ((r = copy_felix(l, &v->felix[i])) < 0)
                        return r;
        for (size_t i = 0; i < v->n_nodes; i++)
                if ((r = merge_node(l, &v->nodes[i], rec->fills ? &rec->fills[i] : NULL, fills, cap_fills,
                                    &map[i])) < 0)
                        return r;
        for (size_t i = 0; i < rec->n_bor; i++) {
                const struct raw_borrowed *b = &rec->bor[i];

                if ((r = loader_add_borrowed(l, &b->addr, map[b->node],
                                             b->block_node == UINT32_MAX ? UINT32_MAX : map[b->block_node],
                                             b->src.line)) < 0)
                        return r;
        }
        l->m->n_skipped += v->n_skipped;
        l->m->n_pod_cidrs_ignored += v->n_pod_cidrs_ignored;
        l->m->n_ipam_resources += v->n_ipam_resources;
        return 0;
}

/* A file's next claim in the merge of every file's (in the load's numbers). */
struct cursor {
        const struct cfg_file_rec *rec;
        const uint32_t *map;
        uint32_t file;
        size_t k;
        struct raw_block c;
};

static bool cursor_before(const struct cursor *a, const struct cursor *b)
{
        return loader_claim_before(&a->c, &b->c);
}

static void cursor_load(struct cursor *u)
{
        claim_at(u->rec, u->k, &u->c);
        u->c.node = u->map[u->c.node];
        u->c.src.file = u->file;
}

static void cursor_swap(struct cursor *a, struct cursor *b)
{
        struct cursor t = *a;

        *a = *b;
        *b = t;
}

static void heap_down(struct cursor *h, size_t i, size_t n)
{
        for (size_t c; (c = 2 * i + 1) < n; i = c) {
                if (c + 1 < n && cursor_before(&h[c + 1], &h[c]))
                        c++;
                if (!cursor_before(&h[c], &h[i]))
                        return;
                cursor_swap(&h[i], &h[c]);
        }
}

/* Every file's claims (each record's sorted) merged into the load in the order
 * build_blocks() sorts them, which then finds them sorted: a change of a big export
 * sorts only that file's claims (when they are not in order already), not every file's
 * (30 ms at 100k blocks with their IPAMBlocks). */
static int merge_claims(struct cfg_loader *l, struct cfg_file_rec *const *recs, size_t n, const uint32_t *files,
                        uint32_t *const *maps)
{
        _cleanup_(freep) struct cursor *h = malloc((n ? n : 1) * sizeof(*h));
        uint32_t file = l->file;
        size_t k = 0;
        int r = 0;

        if (!h)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (recs[i]->n_raw) {
                        h[k] = (struct cursor){ .rec = recs[i], .map = maps[i], .file = files[i] };
                        cursor_load(&h[k++]);
                }
        for (size_t i = k / 2; i-- > 0;)
                heap_down(h, i, k);
        while (k && r == 0) {
                l->file = h[0].file;
                r = loader_add_block(l, &h[0].c.cidr, h[0].c.node, (enum block_origin)h[0].c.origin, h[0].c.src.line);
                if (++h[0].k < h[0].rec->n_raw)
                        cursor_load(&h[0]);
                else
                        h[0] = h[--k];
                heap_down(h, 0, k);
        }
        l->file = file;
        return r;
}

/* Caps that only the whole set of files can pass: the full load says where. */
static bool over_caps(struct cfg_file_rec *const *recs, size_t n)
{
        size_t pools = 0, raw = 0, bor = 0, nodes = 0;

        for (size_t i = 0; i < n; i++) {
                pools += recs[i]->m.n_pools;
                nodes += recs[i]->m.n_nodes;
                raw += recs[i]->n_raw;
                bor += recs[i]->n_bor;
        }
        return n > CFG_MAX_FILES || pools > CFG_MAX_POOLS || raw > CFG_MAX_BLOCKS || bor > CFG_MAX_BORROWED ||
               nodes > CFG_MAX_NODES;
}

int cfg_model_from_file_recs(struct cfg_settings *s, const char *const *names, struct cfg_file_rec *const *recs,
                             size_t n, struct cfg_model **ret, struct cfg_diags *d)
{
        _cleanup_(freep) struct cfg_node *fills = NULL;
        _cleanup_(freep) uint32_t *files = malloc((n ? n : 1) * sizeof(*files)), *map_space = NULL;
        _cleanup_(freep) uint32_t **maps = calloc(n ? n : 1, sizeof(*maps));
        size_t cap_fills = 0, raw = 0, bor = 0, nodes = 0;
        struct cfg_loader *l;
        int r = 0;

        if (over_caps(recs, n))
                return -E2BIG;
        for (size_t i = 0; i < n; i++) {
                raw += recs[i]->n_raw;
                bor += recs[i]->n_bor;
                nodes += recs[i]->m.n_nodes;
        }
        if (!files || !maps || !(map_space = malloc((nodes ? nodes : 1) * sizeof(*map_space))))
                return -ENOMEM;
        if ((r = cfg_loader_new(s, d, &l)) < 0)
                return r;
        if ((r = cfg_loader_reserve(l, n, raw)) < 0 || (r = GROW(l->borrowed, l->cap_borrowed, bor)) < 0) {
                cfg_loader_free(l);
                return r;
        }
        nodes = 0;
        for (size_t i = 0; i < n && r >= 0; i++) {
                maps[i] = map_space + nodes;
                nodes += recs[i]->m.n_nodes;
                r = merge_one(l, names[i], recs[i], &fills, &cap_fills, maps[i]);
                files[i] = l->file;
        }
        if (r >= 0)
                r = merge_claims(l, recs, n, files, maps);
        if (r < 0) {
                cfg_loader_free(l);
                return r;
        }
        for (size_t i = 0; i < l->m->n_nodes && i < cap_fills; i++) {
                struct cfg_node *v = &l->m->nodes[i];

                fill_addr(&v->addr, &fills[i].addr);
                fill_addr(&v->addr6, &fills[i].addr6);
                fill_addr(&v->ipip_tunnel_addr, &fills[i].ipip_tunnel_addr);
                fill_addr(&v->vxlan_tunnel_addr, &fills[i].vxlan_tunnel_addr);
        }
        return cfg_loader_finish(l, ret);
}

/* ---- what changed between two models ---- */

static bool pools_eq(const struct cfg_pool *a, const struct cfg_pool *b)
{
        return streq(a->name, b->name) && cfg_prefix_eq(&a->cidr, &b->cidr) && a->block_size == b->block_size &&
               a->ipip == b->ipip && a->vxlan == b->vxlan && a->nat_outgoing == b->nat_outgoing &&
               a->disabled == b->disabled && a->workload == b->workload &&
               a->legacy_disagrees == b->legacy_disagrees && streq(a->node_selector, b->node_selector);
}

static bool felix_eq(const struct cfg_felix *a, const struct cfg_felix *b)
{
        return streq(a->name, b->name) && a->ipip_enabled == b->ipip_enabled && a->vxlan_enabled == b->vxlan_enabled &&
               a->vxlan_enabled_v6 == b->vxlan_enabled_v6 && a->device_route_protocol == b->device_route_protocol;
}

static bool addrs_eq(const struct cfg_node *a, const struct cfg_node *b)
{
        return cfg_prefix_eq(&a->addr, &b->addr) && cfg_prefix_eq(&a->addr6, &b->addr6) &&
               cfg_prefix_eq(&a->ipip_tunnel_addr, &b->ipip_tunnel_addr) &&
               cfg_prefix_eq(&a->vxlan_tunnel_addr, &b->vxlan_tunnel_addr);
}

/* Anything beyond blocks, borrowed addresses and other nodes' addresses. */
static bool global_differs(const struct cfg_model *a, const struct cfg_model *b)
{
        const struct cfg_node *sa = cfg_model_self(a), *sb = cfg_model_self(b);

        if (a->n_pools != b->n_pools || a->n_felix != b->n_felix || a->n_nodes != b->n_nodes ||
            a->n_pod_cidrs_ignored != b->n_pod_cidrs_ignored || !a->n_ipam_resources != !b->n_ipam_resources ||
            !sa != !sb)
                return true;
        for (size_t i = 0; i < a->n_pools; i++)
                if (!pools_eq(&a->pools[i], &b->pools[i]))
                        return true;
        for (size_t i = 0; i < a->n_felix; i++)
                if (!felix_eq(&a->felix[i], &b->felix[i]))
                        return true;
        if (sa && (sa->has_resource != sb->has_resource || !addrs_eq(sa, sb)))
                return true;
        /* Nodes came, went or were relabelled: every prefix (a selector may read labels). */
        for (size_t i = 0; i < a->n_nodes; i++)
                if (!streq(a->nodes[i].name, b->nodes[i].name) || a->nodes[i].has_labels != b->nodes[i].has_labels ||
                    a->nodes[i].has_resource != b->nodes[i].has_resource ||
                    !cfg_labels_eq(&a->nodes[i].labels, &b->nodes[i].labels))
                        return true;
        return false;
}

static int touch_node(const struct cfg_model *m, uint32_t node, struct cfg_touched *t)
{
        int r = 0;

        for (size_t i = 0; i < m->n_blocks && r == 0; i++)
                if (m->blocks[i].node == node)
                        r = cfg_touched_add(t, &m->blocks[i].cidr);
        for (size_t i = 0; i < m->n_borrowed && r == 0; i++)
                if (m->borrowed[i].node == node || m->borrowed[i].block_node == node)
                        r = cfg_touched_add(t, &m->borrowed[i].addr);
        return r;
}

static const char *node_name(const struct cfg_model *m, uint32_t i)
{
        return i == UINT32_MAX ? "" : m->nodes[i].name;
}

static bool block_eq(const struct cfg_model *a, const struct cfg_block *x, const struct cfg_model *b,
                     const struct cfg_block *y)
{
        return x->pool == y->pool && streq(node_name(a, x->node), node_name(b, y->node));
}

static bool borrowed_eq(const struct cfg_model *a, const struct cfg_borrowed *x, const struct cfg_model *b,
                        const struct cfg_borrowed *y)
{
        return x->pool == y->pool && streq(node_name(a, x->node), node_name(b, y->node)) &&
               streq(node_name(a, x->block_node), node_name(b, y->block_node));
}

/* The two sorted arrays side by side: every prefix in one only, or in both but not the
 * same. */
#define DIFF_SORTED(A, NA, B, NB, KEY, EQ)                                                                     \
        for (size_t i = 0, j = 0; (i < (NA) || j < (NB)) && r == 0;) {                                         \
                int k = i == (NA) ? 1 : j == (NB) ? -1 : cfg_prefix_cmp(&(A)[i].KEY, &(B)[j].KEY);             \
                if (k == 0 && EQ(a, &(A)[i], b, &(B)[j])) {                                                    \
                        i++, j++;                                                                              \
                        continue;                                                                              \
                }                                                                                              \
                r = cfg_touched_add(t, k <= 0 ? &(A)[i].KEY : &(B)[j].KEY);                                    \
                i += k <= 0;                                                                                   \
                j += k >= 0;                                                                                   \
        }

int cfg_model_diff(const struct cfg_model *a, const struct cfg_model *b, struct cfg_touched *t)
{
        int r = 0;

        if (global_differs(a, b)) {
                t->all = true;
                return 1;
        }
        /* The same nodes, by name and number: another node's addresses moved. */
        for (size_t i = 0; i < a->n_nodes && r == 0; i++) {
                if (addrs_eq(&a->nodes[i], &b->nodes[i]))
                        continue;
                t->nodes = true;
                if ((r = touch_node(a, (uint32_t)i, t)) == 0)
                        r = touch_node(b, (uint32_t)i, t);
        }
        DIFF_SORTED(a->blocks, a->n_blocks, b->blocks, b->n_blocks, cidr, block_eq)
        DIFF_SORTED(a->borrowed, a->n_borrowed, b->borrowed, b->n_borrowed, addr, borrowed_eq)
        if (r < 0)
                return r;
        /* A node that holds no block moved: no prefix, but the planner's guarded
         * addresses (a block may come to cover its new address). */
        return t->n > 0 || t->nodes || a->n_skipped != b->n_skipped || a->n_ipam_resources != b->n_ipam_resources;
}

/* ---- in place: block claims and borrowed addresses that moved ----
 *
 * The common change (a node's file rewritten with a block more or less) changes no
 * node, pool or FelixConfiguration: the files' node entries are the same before and
 * after, only their claims and borrowed addresses differ. Then only the prefixes those
 * name can differ, and each is merged again from every file's claims for it alone,
 * with build_blocks()'s and build_borrowed()'s rules (an IPAMBlock's affinity first,
 * then file and line; one borrowed entry per address, the first file's). Anything the
 * rules would report or that reaches past those prefixes (a conflict, an overlap with
 * another claim, a block in no pool, a node that is not in the model) is -EAGAIN: the
 * merge of everything decides, with its messages. */

static bool labels_same_seq(const struct cfg_labels *a, const struct cfg_labels *b)
{
        return cfg_labels_eq(a, b);
}

static bool same_notices(const struct cfg_diags *a, const struct cfg_diags *b)
{
        if (a->n != b->n || a->n_dropped || b->n_dropped)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (a->v[i].line != b->v[i].line || a->v[i].column != b->v[i].column ||
                    !streq(a->v[i].message, b->v[i].message))
                        return false;
        return true;
}

/* The same node entries, notices and counts but IPAM's, and no pool or
 * FelixConfiguration. */
static bool same_but_claims(const struct cfg_file_rec *a, const struct cfg_file_rec *b)
{
        const struct rec_model *x = &a->m, *y = &b->m;

        if (x->n_pools || y->n_pools || x->n_felix || y->n_felix || !same_notices(&a->notices, &b->notices) ||
            x->n_skipped != y->n_skipped || x->n_pod_cidrs_ignored != y->n_pod_cidrs_ignored ||
            x->n_nodes != y->n_nodes || !a->fills != !b->fills)
                return false;
        for (size_t i = 0; i < x->n_nodes; i++) {
                const struct cfg_node *p = &x->nodes[i], *q = &y->nodes[i];

                if (!streq(p->name, q->name) || p->has_resource != q->has_resource || p->has_labels != q->has_labels ||
                    p->src.line != q->src.line || !labels_same_seq(&p->labels, &q->labels) || !addrs_eq(p, q) ||
                    (a->fills && !addrs_eq(&a->fills[i], &b->fills[i])))
                        return false;
        }
        return true;
}

struct pset {
        struct cfg_prefix *v;
        size_t n, cap;
};

static int pset_add(struct pset *s, const struct cfg_prefix *p)
{
        int r = GROW(s->v, s->cap, s->n + 1);

        if (r == 0)
                s->v[s->n++] = *p;
        return r;
}

static int prefix_cmp_v(const void *a, const void *b)
{
        return cfg_prefix_cmp(a, b);
}

/* Sorted, each once; false when two of them overlap. */
static bool pset_done(struct pset *s)
{
        size_t k = 0;

        if (s->n > 1)
                qsort(s->v, s->n, sizeof(*s->v), prefix_cmp_v);
        for (size_t i = 0; i < s->n; i++) {
                if (k && cfg_prefix_eq(&s->v[k - 1], &s->v[i]))
                        continue;
                if (k && cfg_prefix_overlaps(&s->v[k - 1], &s->v[i]))
                        return false;
                s->v[k++] = s->v[i];
        }
        s->n = k;
        return true;
}

/* The member of s equal to p (1, *ret its index), overlapping it (-1), or none (0).
 * The members are disjoint and sorted: only the two around p's place can overlap it. */
static int pset_find(const struct pset *s, const struct cfg_prefix *p, size_t *ret)
{
        size_t lo = 0, hi = s->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (cfg_prefix_cmp(&s->v[mid], p) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo < s->n && cfg_prefix_eq(&s->v[lo], p)) {
                *ret = lo;
                return 1;
        }
        if ((lo < s->n && cfg_prefix_overlaps(&s->v[lo], p)) || (lo > 0 && cfg_prefix_overlaps(&s->v[lo - 1], p)))
                return -1;
        return 0;
}

/* The winning claim at each prefix of s so far (NULL: none). */
struct win {
        struct raw_block rb;
        bool has;
        const char *node;
        uint32_t file;
};

/* raw_cmp() in loader.c: an IPAMBlock's affinity first, then file and line. */
static bool claim_before(const struct raw_block *a, uint32_t fa, const struct raw_block *b, uint32_t fb)
{
        if ((a->origin == BLOCK_FROM_IPAMBLOCK) != (b->origin == BLOCK_FROM_IPAMBLOCK))
                return a->origin == BLOCK_FROM_IPAMBLOCK;
        return fa < fb || (fa == fb && a->src.line < b->src.line);
}

/* Every claim of every file at the prefixes of s: the winner of each; -EAGAIN for
 * anything the full merge must decide (another claim overlapping one of them; a
 * claim losing to one for another node, which is a conflict unless an IPAMBlock
 * overrules it: that case too, to keep this short). Each loser is compared with the
 * winner of the moment, and a winner that loses with its successor: all are equal. */
/* Whether any prefix of s (sorted, disjoint: their spans are sorted too) meets the box:
 * the first whose span ends at or past the box's start must begin by its end. */
static bool set_meets(const struct pset *s, const struct box *spans, const struct box *b)
{
        size_t lo = 0, hi = s->n;

        if (!b->family)
                return false;
        if (b->family == BOX_MIXED)
                return true;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct box *m = &spans[mid];

                if (m->family < b->family || (m->family == b->family && memcmp(m->last, b->first, 16) < 0))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < s->n && spans[lo].family == b->family && memcmp(spans[lo].first, b->last, 16) <= 0;
}

static bool runs_meet(const struct cfg_file_rec *rec, const struct pset *s, const struct box *spans)
{
        for (size_t i = 0; i < rec->n_runs; i++)
                if (set_meets(s, spans, &rec->runs[i]))
                        return true;
        return false;
}

static int find_winners(struct cfg_file_rec *const *recs, size_t n, const struct pset *s, struct win *w)
{
        _cleanup_(freep) struct box *spans = calloc(s->n + 1, sizeof(*spans));

        if (!spans)
                return -ENOMEM;
        for (size_t i = 0; i < s->n; i++) {
                w[i] = (struct win){};
                box_add(&spans[i], &s->v[i]);
        }
        for (size_t f = 0; f < n; f++) {
                const struct cfg_file_rec *rec = recs[f];

                /* A node's file claims its own blocks: the others' lie apart. */
                if (!runs_meet(rec, s, spans))
                        continue;

                for (size_t k = 0; k < rec->n_raw; k++) {
                        struct raw_block c;
                        const char *node;
                        size_t at;
                        int q;

                        claim_at(rec, k, &c);
                        if ((q = pset_find(s, &c.cidr, &at)) < 0)
                                return -EAGAIN;
                        if (q == 0)
                                continue;
                        node = rec->m.nodes[c.node].name;
                        if (w[at].has && !streq(w[at].node, node))
                                return -EAGAIN;
                        if (!w[at].has || claim_before(&c, (uint32_t)f, &w[at].rb, w[at].file))
                                w[at] = (struct win){ c, true, node, (uint32_t)f };
                }
        }
        return 0;
}

struct bwin {
        const struct raw_borrowed *rb;
        const struct cfg_file_rec *rec;
        uint32_t file;
};

static void find_borrowed_winners(struct cfg_file_rec *const *recs, size_t n, const struct pset *s,
                                  struct bwin *w)
{
        for (size_t i = 0; i < s->n; i++)
                w[i] = (struct bwin){};
        for (size_t f = 0; f < n; f++)
                for (size_t k = 0; k < recs[f]->n_bor; k++) {
                        const struct raw_borrowed *b = &recs[f]->bor[k];
                        size_t at;

                        if (pset_find(s, &b->addr, &at) != 1)
                                continue;
                        /* build_borrowed(): the first by file and line. */
                        if (!w[at].rb || (uint32_t)f < w[at].file ||
                            ((uint32_t)f == w[at].file && b->src.line < w[at].rb->src.line))
                                w[at] = (struct bwin){ b, recs[f], (uint32_t)f };
                }
}

/* A node of the model by name: its number, or UINT32_MAX. */
static uint32_t model_node(const struct cfg_model *m, const char *name)
{
        const struct cfg_node *n = cfg_model_node(m, name);

        return n ? (uint32_t)(n - m->nodes) : UINT32_MAX;
}

static size_t lower(const void *base, size_t n, size_t stride, size_t off, const struct cfg_prefix *key)
{
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (cfg_prefix_cmp((const void *)((const char *)base + mid * stride + off), key) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

static void splice(void *array, size_t *n, size_t sz, size_t pos, size_t n_old, const void *src, size_t n_new)
{
        char *a = array;

        if (n_old != n_new && *n - pos - n_old)
                memmove(a + (pos + n_new) * sz, a + (pos + n_old) * sz, (*n - pos - n_old) * sz);
        if (n_new)
                memcpy(a + pos * sz, src, n_new * sz);
        *n = *n - n_old + n_new;
}

/* The new entries, computed before anything changes (all or nothing). */
static int plan_blocks(const struct cfg_model *m, const struct pset *s, const struct win *w,
                       struct cfg_block *nb, bool *has)
{
        for (size_t i = 0; i < s->n; i++) {
                const struct cfg_pool *pool = cfg_model_pool_for(m, &s->v[i]);

                /* In no pool, before or after: counted as skipped, with a notice. */
                if (!pool)
                        return -EAGAIN;
                has[i] = w[i].has;
                if (!has[i])
                        continue;
                nb[i] = (struct cfg_block){ .cidr = s->v[i], .node = model_node(m, w[i].node),
                                            .pool = (uint32_t)(pool - m->pools),
                                            .src = { .file = w[i].file, .line = w[i].rb.src.line } };
                if (nb[i].node == UINT32_MAX)
                        return -EAGAIN;
        }
        return 0;
}

static int plan_borrowed(const struct cfg_model *m, const struct pset *s, const struct bwin *w,
                         struct cfg_borrowed *nb, bool *has)
{
        for (size_t i = 0; i < s->n; i++) {
                const struct cfg_pool *pool = w[i].rb ? cfg_model_pool_for(m, &s->v[i]) : NULL;
                const struct raw_borrowed *b = w[i].rb;

                has[i] = pool != NULL; /* in no pool: dropped, as build_borrowed() drops it */
                if (!has[i])
                        continue;
                nb[i] = (struct cfg_borrowed){ .addr = s->v[i], .node = model_node(m, w[i].rec->m.nodes[b->node].name),
                                               .block_node = b->block_node == UINT32_MAX ? UINT32_MAX :
                                                       model_node(m, w[i].rec->m.nodes[b->block_node].name),
                                               .pool = (uint32_t)(pool - m->pools),
                                               .src = { .file = w[i].file, .line = b->src.line } };
                if (nb[i].node == UINT32_MAX || (b->block_node != UINT32_MAX && nb[i].block_node == UINT32_MAX))
                        return -EAGAIN;
        }
        return 0;
}

static bool block_same(const struct cfg_block *a, const struct cfg_block *b)
{
        return a->node == b->node && a->pool == b->pool && a->src.file == b->src.file && a->src.line == b->src.line;
}

static bool bor_same(const struct cfg_borrowed *a, const struct cfg_borrowed *b)
{
        return a->node == b->node && a->block_node == b->block_node && a->pool == b->pool &&
               a->src.file == b->src.file && a->src.line == b->src.line;
}

/* Highest first: a splice moves nothing below it. Touched: the route may differ (its
 * presence, node or pool), not a new line alone. */
static int commit_blocks(struct cfg_model *m, const struct pset *s, const struct cfg_block *nb, const bool *has,
                         struct cfg_touched *t, bool *changed)
{
        int r = 0;

        for (size_t i = s->n; i-- > 0;) {
                size_t pos = lower(m->blocks, m->n_blocks, sizeof(*m->blocks), offsetof(struct cfg_block, cidr),
                                   &s->v[i]);
                bool had = pos < m->n_blocks && cfg_prefix_eq(&m->blocks[pos].cidr, &s->v[i]);

                if (had && has[i] && block_same(&m->blocks[pos], &nb[i]))
                        continue;
                if (!had && !has[i])
                        continue;
                *changed = true;
                if (r == 0 && (!had || !has[i] || m->blocks[pos].node != nb[i].node || m->blocks[pos].pool != nb[i].pool))
                        r = cfg_touched_add(t, &s->v[i]);
                splice(m->blocks, &m->n_blocks, sizeof(*m->blocks), pos, had, &nb[i], has[i]);
        }
        return r;
}

static int commit_borrowed(struct cfg_model *m, const struct pset *s, const struct cfg_borrowed *nb,
                           const bool *has, struct cfg_touched *t, bool *changed)
{
        int r = 0;

        for (size_t i = s->n; i-- > 0;) {
                size_t pos = lower(m->borrowed, m->n_borrowed, sizeof(*m->borrowed),
                                   offsetof(struct cfg_borrowed, addr), &s->v[i]);
                bool had = pos < m->n_borrowed && cfg_prefix_eq(&m->borrowed[pos].addr, &s->v[i]);

                if (had && has[i] && bor_same(&m->borrowed[pos], &nb[i]))
                        continue;
                if (!had && !has[i])
                        continue;
                *changed = true;
                if (r == 0 && (!had || !has[i] || m->borrowed[pos].node != nb[i].node ||
                               m->borrowed[pos].block_node != nb[i].block_node || m->borrowed[pos].pool != nb[i].pool))
                        r = cfg_touched_add(t, &s->v[i]);
                splice(m->borrowed, &m->n_borrowed, sizeof(*m->borrowed), pos, had, &nb[i], has[i]);
        }
        return r;
}

struct fast {
        struct pset blocks, addrs;
        struct win *w;
        struct bwin *bw;
        struct cfg_block *nb;
        struct cfg_borrowed *nbor;
        bool *has, *bhas;
};

static void fast_clear(struct fast *x)
{
        free(x->blocks.v);
        free(x->addrs.v);
        free(x->w);
        free(x->bw);
        free(x->nb);
        free(x->nbor);
        free(x->has);
        free(x->bhas);
}

/* The prefixes the changed files' claims and borrowed addresses name, before and after. */
static int collect(struct fast *x, struct cfg_file_rec *const *recs, const size_t *changed,
                   struct cfg_file_rec *const *old, size_t n_changed)
{
        int r = 0;

        for (size_t k = 0; k < n_changed && r == 0; k++)
                for (int side = 0; side < 2 && r == 0; side++) {
                        const struct cfg_file_rec *rec = side ? recs[changed[k]] : old[k];

                        for (size_t i = 0; i < rec->n_raw && r == 0; i++) {
                                struct raw_block b;

                                claim_at(rec, i, &b);
                                r = pset_add(&x->blocks, &b.cidr);
                        }
                        for (size_t i = 0; i < rec->n_bor && r == 0; i++)
                                r = pset_add(&x->addrs, &rec->bor[i].addr);
                }
        if (r < 0)
                return r;
        if (!pset_done(&x->blocks) || !pset_done(&x->addrs))
                return -EAGAIN;
        x->w = calloc(x->blocks.n + 1, sizeof(*x->w));
        x->nb = calloc(x->blocks.n + 1, sizeof(*x->nb));
        x->has = calloc(x->blocks.n + 1, sizeof(*x->has));
        x->bw = calloc(x->addrs.n + 1, sizeof(*x->bw));
        x->nbor = calloc(x->addrs.n + 1, sizeof(*x->nbor));
        x->bhas = calloc(x->addrs.n + 1, sizeof(*x->bhas));
        return x->w && x->nb && x->has && x->bw && x->nbor && x->bhas ? 0 : -ENOMEM;
}

/* Room for every prefix to arrive (the model's arrays are sized to their entries). */
static int make_room(struct cfg_model *m, size_t blocks, size_t addrs)
{
        void *p;

        if (!(p = realloc(m->blocks, (m->n_blocks + blocks + 1) * sizeof(*m->blocks))))
                return -ENOMEM;
        m->blocks = p;
        if (!(p = realloc(m->borrowed, (m->n_borrowed + addrs + 1) * sizeof(*m->borrowed))))
                return -ENOMEM;
        m->borrowed = p;
        return 0;
}

int cfg_model_update_file_recs(struct cfg_model *m, struct cfg_file_rec *const *recs, size_t n,
                               const size_t *changed, struct cfg_file_rec *const *old, size_t n_changed,
                               struct cfg_touched *t)
{
        _cleanup_(fast_clear) struct fast x = {};
        bool any = false;
        int64_t ipam = 0;
        int r;

        size_t claims = 0;

        if (n != m->n_files || n_changed == 0)
                return -EAGAIN;
        /* A big file rewritten (an export of every block) moves the lines of most blocks:
         * merging everything costs less than merging most prefixes one by one. */
        for (size_t k = 0; k < n_changed; k++)
                claims += old[k]->n_raw + recs[changed[k]]->n_raw;
        if (claims > m->n_blocks / 4 + 64)
                return -EAGAIN;
        for (size_t k = 0; k < n_changed; k++) {
                if (!same_but_claims(old[k], recs[changed[k]]))
                        return -EAGAIN;
                ipam += (int64_t)recs[changed[k]]->m.n_ipam_resources - (int64_t)old[k]->m.n_ipam_resources;
        }
        if ((r = collect(&x, recs, changed, old, n_changed)) < 0 || (r = find_winners(recs, n, &x.blocks, x.w)) < 0)
                return r;
        find_borrowed_winners(recs, n, &x.addrs, x.bw);
        if ((r = plan_blocks(m, &x.blocks, x.w, x.nb, x.has)) < 0 ||
            (r = plan_borrowed(m, &x.addrs, x.bw, x.nbor, x.bhas)) < 0 ||
            (r = make_room(m, x.blocks.n, x.addrs.n)) < 0)
                return r;
        /* Nothing fails past here but adding to t (the model is whole then). */
        r = commit_blocks(m, &x.blocks, x.nb, x.has, t, &any);
        if (r == 0)
                r = commit_borrowed(m, &x.addrs, x.nbor, x.bhas, t, &any);
        if (ipam) {
                size_t was = m->n_ipam_resources;

                m->n_ipam_resources = (size_t)((int64_t)m->n_ipam_resources + ipam);
                if (!was != !m->n_ipam_resources)
                        t->all = true; /* global_differs()'s rule: the pod-cidrs-ignored finding */
                any = true;
        }
        if (r < 0)
                return r;
        return any;
}
