/* In-place updates of a model built from etcd keys or Kubernetes objects (load.h
 * cfg_model_update_kvs(); issue 16): one BlockAffinity or IPAMBlock key (or object) put
 * or deleted changes its block, the
 * borrowed addresses in it and the node table, and nothing else, so that a change costs
 * in proportion to itself and not to the cluster.
 *
 * Owns the index (what the full load knew and the model forgets: every block claim,
 * the ones that lost or lie in no pool included, every borrowed address as read, with
 * the key each came from, and how many of them name each node; a claim that a block
 * of the model is made of is that block, not a copy) and the editing of the model's
 * sorted arrays. The rules are not repeated here: a new value is read by the
 * loader itself (resources.c, etcdkv.c), alone, into a loader of its own; what it
 * claims is then merged at its block exactly as loader.c's build_blocks() and
 * build_borrowed() merge every block (an IPAMBlock's affinity first, then key order;
 * one borrowed entry per address, the first key's). Whatever a full load would report
 * as an error between keys (two claims naming different nodes, overlapping blocks), or
 * anything beyond one block (a pool, a FelixConfiguration, this node's entry, a block
 * in no pool), is left to the full load: -EAGAIN. Another node's Node whose labels stay
 * the same changes that node's addresses in place and touches its blocks and the
 * addresses it hosts. Pure: no I/O, no logging. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "datastore.h"
#include "load.h"
#include "loader.h"
#include "util.h"
#include "yamltree.h"

/* Every block claim, in three parts: each of the model's blocks stands for the claim it
 * is made of (its cidr, node and source; won[] the claim's origin), shadow[] holds the
 * input and line of one more per block when it is an affinity on line 0 or 1 naming the
 * block's node (claim_shadows(): an etcd block's BlockAffinity behind its IPAMBlock),
 * and extra the others (a claim for another node, a duplicate, the claims in no pool),
 * IPv4 ones in 16 bytes. A BlockAffinity alone, the Kubernetes datastore's common case,
 * costs nothing beyond its block (no shadow[] then), and an etcd block with its
 * affinity 5 bytes: 100k blocks' claims were 200k of 36 bytes in the index (7.2 MB),
 * now 0.5 MB (issue 16's memory budget). */
struct cfg_kv_index {
        uint8_t *won;             /* per model block: its claim's origin (enum block_origin) */
        size_t cap_won;
        uint32_t *shadow;         /* per model block, or NULL: its shadow (shadow_of()), 0: none */
        size_t cap_shadow;
        struct claims extra;      /* the other claims: each part by cidr */
        struct raw_borrowed *bor; /* every borrowed address read: by address, then key */
        size_t n_bor, cap_bor;
        uint32_t *refs; /* per model node: claims and borrowed entries naming it */
        size_t cap_refs;
        uint8_t *counted; /* per model file: the key counted in n_ipam_resources */
        size_t cap_counted;
        size_t cap_files, cap_nodes, cap_blocks, cap_borrowed; /* of the model's arrays */
};

static void kv_index_freep(struct cfg_kv_index **ix)
{
        cfg_kv_index_free(*ix);
}

void cfg_kv_index_free(struct cfg_kv_index *ix)
{
        if (!ix)
                return;
        free(ix->won);
        free(ix->shadow);
        claims_clear(&ix->extra);
        free(ix->bor);
        free(ix->refs);
        free(ix->counted);
        free(ix);
}

/* Per node of m: the claims and borrowed entries of the index naming it. */
static void count_refs(const struct cfg_kv_index *ix, const struct cfg_model *m, uint32_t *refs)
{
        memset(refs, 0, (m->n_nodes ? m->n_nodes : 1) * sizeof(*refs));
        for (size_t i = 0; i < m->n_blocks; i++)
                refs[m->blocks[i].node] += 1 + (ix->shadow && ix->shadow[i]);
        for (size_t i = 0; i < ix->extra.n[CLAIMS_V4]; i++)
                refs[ix->extra.v4[i].node]++;
        for (size_t i = 0; i < ix->extra.n[CLAIMS_WIDE]; i++)
                refs[ix->extra.wide[i].node]++;
        for (size_t i = 0; i < ix->n_bor; i++) {
                refs[ix->bor[i].node]++;
                if (ix->bor[i].block_node != UINT32_MAX)
                        refs[ix->bor[i].block_node]++;
        }
}

int kv_index_take(struct cfg_loader *l, struct cfg_model *m, struct cfg_kv_index **ret)
{
        _cleanup_(kv_index_freep) struct cfg_kv_index *ix = calloc(1, sizeof(*ix));
        int r;

        if (!ix)
                return -ENOMEM;
        if (!l->indexing) /* cfg_loader_keep_index() forgotten: no claims were kept */
                return -EINVAL;
        if ((r = GROW(l->file_ipam, l->cap_file_ipam, m->n_files)) < 0)
                return r;
        /* A key that failed before its count was noted counts nothing (the load failed
         * then anyway). */
        ix->refs = calloc(m->n_nodes ? m->n_nodes : 1, sizeof(*ix->refs));
        if (!ix->refs)
                return -ENOMEM;
        ix->cap_refs = m->n_nodes ? m->n_nodes : 1;
        ix->won = TAKE_PTR(l->won);
        ix->cap_won = m->n_blocks ? m->n_blocks : 1; /* build_blocks() */
        ix->shadow = TAKE_PTR(l->shadow);
        ix->cap_shadow = ix->shadow ? ix->cap_won : 0;
        ix->extra = l->extra; /* build_blocks() */
        l->extra = (struct claims){};
        ix->bor = TAKE_PTR(l->borrowed);
        ix->n_bor = l->n_borrowed;
        ix->cap_bor = l->cap_borrowed;
        ix->counted = TAKE_PTR(l->file_ipam);
        ix->cap_counted = l->cap_file_ipam;
        ix->cap_files = l->cap_files;
        ix->cap_nodes = m->n_nodes ? m->n_nodes : 1;      /* sort_nodes() */
        ix->cap_blocks = m->n_blocks ? m->n_blocks : 1;       /* build_blocks() */
        ix->cap_borrowed = m->n_borrowed ? m->n_borrowed : 1; /* build_borrowed() */
        count_refs(ix, m, ix->refs);
        *ret = TAKE_PTR(ix);
        return 0;
}

/* The claim block i of m is made of, and its shadow (claim_shadows()). */
static struct raw_block own_at(const struct cfg_model *m, const struct cfg_kv_index *ix, size_t i)
{
        const struct cfg_block *b = &m->blocks[i];

        return (struct raw_block){ .cidr = b->cidr, .node = b->node, .origin = ix->won[i], .src = b->src };
}

static struct raw_block shadow_at(const struct cfg_model *m, const struct cfg_kv_index *ix, size_t i)
{
        const struct cfg_block *b = &m->blocks[i];

        return (struct raw_block){ .cidr = b->cidr, .node = b->node, .origin = BLOCK_FROM_AFFINITY,
                                   .src = shadow_src(ix->shadow[i]) };
}

int kv_index_claims(const struct cfg_model *m, const struct cfg_kv_index *ix, struct raw_block **ret,
                    size_t *ret_n)
{
        size_t n = 2 * m->n_blocks + ix->extra.n[CLAIMS_V4] + ix->extra.n[CLAIMS_WIDE], k = 0;
        struct raw_block *v = calloc(n ? n : 1, sizeof(*v));

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_blocks; i++) {
                v[k++] = own_at(m, ix, i);
                if (ix->shadow && ix->shadow[i])
                        v[k++] = shadow_at(m, ix, i);
        }
        for (int part = 0; part < 2; part++)
                for (size_t i = 0; i < ix->extra.n[part]; i++)
                        claims_get(&ix->extra, part, i, &v[k++]);
        *ret = v;
        *ret_n = k;
        return 0;
}

bool kv_index_counts_agree(const struct cfg_model *m, const struct cfg_kv_index *ix)
{
        _cleanup_(freep) uint32_t *refs = malloc((m->n_nodes ? m->n_nodes : 1) * sizeof(*refs));

        if (!refs)
                return false;
        count_refs(ix, m, refs);
        return !memcmp(refs, ix->refs, m->n_nodes * sizeof(*refs));
}

/* ---- one change, read and checked before anything moves ---- */

struct change {
        const struct cfg_kv *kv;
        struct cfg_prefix cidr;    /* the key's block */
        uint32_t pool;
        struct cfg_loader *mini;   /* the new value read alone; NULL: deleted */
        uint32_t file;             /* the key's model file, UINT32_MAX when it has none */
        char *name;                /* "etcd:KEY" */
        bool new_file;             /* the commit adds the key to the model's inputs... */
        char *model_name;          /* ...this copy in the model's names, when it keeps them */
};

/* A claim or borrowed entry while one block is merged: nodes and keys by name, as a
 * full load orders them (it reads keys in order, so file numbers follow names there). */
struct claim {
        struct raw_block rb;
        const char *node;
        const struct change *fresh; /* the change it comes with, NULL: already indexed */
};

struct lent {
        struct raw_borrowed rb;
        const char *node, *block_node;
        const struct change *fresh;
};

static const char *mini_node(const struct cfg_loader *mini, uint32_t i)
{
        return i == UINT32_MAX ? NULL : mini->m->nodes[i].name;
}

static bool names_self(const struct cfg_model *m, const char *name)
{
        return name && m->settings.node_name && streq(name, m->settings.node_name);
}

/* The changed key's value read by a loader of its own (the full load's reading and
 * messages): 0, -EINVAL with its errors in d, or -ENOMEM. */
static int read_alone(struct cfg_model *m, struct change *c, struct cfg_diags *d)
{
        size_t errors;
        int r;

        if ((r = cfg_loader_new(&m->settings, d, &c->mini)) < 0)
                return r;
        errors = c->mini->diags->n_errors;
        r = c->kv->object ? cfg_loader_add_object(c->mini, c->kv->key, c->kv->value, c->kv->value_len)
                          : cfg_loader_add_kv(c->mini, c->kv);
        if (r < 0)
                return r;
        return c->mini->diags->n_errors > errors ? -EINVAL : 0;
}

/* A Node key: in place only when it is another node's Node resource before and after,
 * with the same labels (a selector may read them): only its addresses and position may
 * change. 1 (c->mini holds it), -EAGAIN, -EINVAL (refused: errors in d), -ENOMEM. */
static int read_node_change(struct cfg_model *m, struct change *c, const char *name, struct cfg_diags *d)
{
        const struct cfg_node *old = cfg_model_node(m, name);
        struct cfg_node *new;
        int r;

        if (!*name || strchr(name, '/') || !c->kv->value || !old || !old->has_resource || names_self(m, name))
                return -EAGAIN;
        if ((r = read_alone(m, c, d)) < 0)
                return r;
        const struct cfg_model *v = c->mini->m;
        if (v->n_skipped || v->n_pools || v->n_felix || c->mini->n_raw || c->mini->n_borrowed || v->n_nodes != 1 ||
            !v->nodes[0].has_resource || !streq(v->nodes[0].name, name))
                return -EAGAIN;
        new = &c->mini->m->nodes[0];
        if ((r = cfg_labels_seal(&new->labels)) < 0)
                return r;
        if (new->has_labels != old->has_labels || !cfg_labels_eq(&new->labels, &old->labels))
                return -EAGAIN;
        return 1;
}

/* The node's new addresses and position; its blocks and the addresses it hosts are
 * touched when anything changed. */
static int apply_node_change(struct cfg_model *m, const struct change *c, struct cfg_touched *t, bool *changed)
{
        const struct cfg_node *v = &c->mini->m->nodes[0];
        struct cfg_node *n = (struct cfg_node *)cfg_model_node(m, v->name); /* read_node_change() found it */
        uint32_t idx = (uint32_t)(n - m->nodes);
        int r = 0;

        if (cfg_prefix_eq(&n->addr, &v->addr) && cfg_prefix_eq(&n->addr6, &v->addr6) &&
            cfg_prefix_eq(&n->ipip_tunnel_addr, &v->ipip_tunnel_addr) &&
            cfg_prefix_eq(&n->vxlan_tunnel_addr, &v->vxlan_tunnel_addr) && n->src.line == v->src.line)
                return 0;
        n->addr = v->addr;
        n->addr6 = v->addr6;
        n->ipip_tunnel_addr = v->ipip_tunnel_addr;
        n->vxlan_tunnel_addr = v->vxlan_tunnel_addr;
        n->src.line = v->src.line; /* the same key: the same file */
        *changed = true;
        t->nodes = true;
        for (size_t i = 0; i < m->n_blocks && r == 0; i++)
                if (m->blocks[i].node == idx)
                        r = cfg_touched_add(t, &m->blocks[i].cidr);
        for (size_t i = 0; i < m->n_borrowed && r == 0; i++)
                if (m->borrowed[i].node == idx)
                        r = cfg_touched_add(t, &m->borrowed[i].addr);
        return r;
}

#define KUBE_NODES_PREFIX "kubernetes:nodes/"

static bool has_prefix(const char *s, const char *prefix)
{
        return !strncmp(s, prefix, strlen(prefix));
}

/* The block a Kubernetes BlockAffinity or IPAMBlock claimed before the change, from
 * the index (its name says nothing of it, unlike an etcd key): 1 with *ret, 0 when it
 * claimed nothing, -EAGAIN when it claimed more than one block, or lent addresses
 * outside its claim. A scan: a few hundred microseconds at 100k claims. */
static int indexed_cidr(const struct cfg_model *m, const struct cfg_kv_index *ix, const struct change *c,
                        struct cfg_prefix *ret)
{
        uint32_t file = c->kv->input - 1;
        bool found = false;

        if (!c->kv->input || file >= m->n_files)
                return 0;
        for (size_t i = 0; i < m->n_blocks; i++) {
                const struct cfg_block *b = &m->blocks[i];

                if (b->src.file != file && !(ix->shadow && ix->shadow[i] && shadow_src(ix->shadow[i]).file == file))
                        continue;
                if (found && !cfg_prefix_eq(ret, &b->cidr))
                        return -EAGAIN;
                *ret = b->cidr;
                found = true;
        }
        for (int part = 0; part < 2; part++)
                for (size_t i = 0; i < ix->extra.n[part]; i++) {
                        struct raw_block b;

                        if ((part == CLAIMS_V4 ? ix->extra.v4[i].file : ix->extra.wide[i].src.file) != file)
                                continue;
                        claims_get(&ix->extra, part, i, &b);
                        if (found && !cfg_prefix_eq(ret, &b.cidr))
                                return -EAGAIN;
                        *ret = b.cidr;
                        found = true;
                }
        for (size_t i = 0; i < ix->n_bor; i++)
                if (ix->bor[i].src.file == file && (!found || !cfg_prefix_contains(ret, &ix->bor[i].addr)))
                        return -EAGAIN;
        return found;
}

/* A Kubernetes object's block: the one it claimed before (the index) and claims now
 * (read alone) must be the same, or one of them none. 1: it claims nothing before or
 * after and lends no address (a pending affinity, which Calico writes before it
 * confirms one: StatePending in libcalico-go/lib/backend/model/block_affinity.go, set
 * and then confirmed by libcalico-go/lib/ipam/ipam_block_reader_writer.go): only the
 * IPAM count may change, and c->cidr is the empty prefix (no family: it meets no
 * block). */
static int object_cidr(struct cfg_model *m, const struct cfg_kv_index *ix, struct change *c, struct cfg_diags *d)
{
        struct cfg_prefix old;
        int had, r;

        if (!has_prefix(c->kv->key, "kubernetes:blockaffinities/") && !has_prefix(c->kv->key, "kubernetes:ipamblocks/"))
                return -EAGAIN;
        if ((had = indexed_cidr(m, ix, c, &old)) < 0)
                return had;
        if (c->kv->value && (r = read_alone(m, c, d)) < 0)
                return r;
        if (c->mini && c->mini->n_raw) {
                c->cidr = c->mini->raw[0].cidr;
                if (had && !cfg_prefix_eq(&old, &c->cidr))
                        return -EAGAIN;
        } else if (had)
                c->cidr = old;
        else if (c->mini && c->mini->n_borrowed)
                return -EAGAIN;
        else {
                c->cidr = (struct cfg_prefix){};
                return 1;
        }
        return 0;
}

/* The value read alone, or -EAGAIN when it claims more than one block's worth; 1 for
 * a Node (read_node_change()). */
static int read_change(struct cfg_model *m, const struct cfg_kv_index *ix, struct change *c, struct cfg_diags *d)
{
        const struct cfg_pool *pool;
        bool unclaimed = false;
        int r;

        if (c->kv->object) {
                if (has_prefix(c->kv->key, KUBE_NODES_PREFIX))
                        return read_node_change(m, c, c->kv->key + strlen(KUBE_NODES_PREFIX), d);
                if ((r = object_cidr(m, ix, c, d)) < 0)
                        return r;
                unclaimed = r == 1;
        } else if (has_prefix(c->kv->key, CFG_ETCD_RESOURCES_PREFIX "nodes/"))
                return read_node_change(m, c, c->kv->key + strlen(CFG_ETCD_RESOURCES_PREFIX "nodes/"), d);
        else if (etcd_ipam_key_cidr(c->kv->key, &c->cidr) != 1)
                return -EAGAIN;
        /* A block in no pool counts as skipped and may overlap anything: the full load. */
        if (!unclaimed && !(pool = cfg_model_pool_for(m, &c->cidr)))
                return -EAGAIN;
        c->pool = unclaimed ? 0 : (uint32_t)(pool - m->pools);
        if (!c->kv->value)
                return 0;
        if (!c->mini && (r = read_alone(m, c, d)) < 0)
                return r;
        const struct cfg_model *v = c->mini->m;
        if (v->n_skipped || v->n_pools || v->n_felix || c->mini->n_raw > 1)
                return -EAGAIN;
        for (size_t i = 0; i < v->n_nodes; i++) {
                if (v->nodes[i].has_resource)
                        return -EAGAIN;
                /* This node's own entry appearing changes more than a block. */
                if (names_self(m, v->nodes[i].name) && !cfg_model_node(m, v->nodes[i].name))
                        return -EAGAIN;
        }
        if (c->mini->n_raw && !cfg_prefix_eq(&c->mini->raw[0].cidr, &c->cidr))
                return -EAGAIN;
        for (size_t i = 0; i < c->mini->n_borrowed; i++)
                if (!cfg_prefix_contains(&c->cidr, &c->mini->borrowed[i].addr))
                        return -EAGAIN;
        return 0;
}

/* ---- the merge at one block ---- */

/* Input order as a full load has it: key order (it reads the keys in order), so by
 * name (input numbers given since do not follow it). Names are asked for only here,
 * when two claims tie: a model named on demand makes them (cfg_model_file()). */
static int input_cmp(const struct cfg_model *m, struct cfg_src a, const struct change *fa, struct cfg_src b,
                     const struct change *fb)
{
        const char *x, *y;

        if (!fa && !fb && a.file == b.file)
                return 0;
        x = fa ? fa->name : cfg_model_file(m, a);
        y = fb ? fb->name : cfg_model_file(m, b);
        return strcmp(x, y);
}

static int claim_cmp(const void *a, const void *b, void *ctx)
{
        const struct claim *x = a, *y = b;

        /* raw_cmp() in loader.c: an IPAMBlock's affinity first, then input order. */
        if ((x->rb.origin == BLOCK_FROM_IPAMBLOCK) != (y->rb.origin == BLOCK_FROM_IPAMBLOCK))
                return x->rb.origin == BLOCK_FROM_IPAMBLOCK ? -1 : 1;
        return input_cmp(ctx, x->rb.src, x->fresh, y->rb.src, y->fresh);
}

static int lent_cmp(const void *a, const void *b, void *ctx)
{
        const struct lent *x = a, *y = b;
        int c = cfg_prefix_cmp(&x->rb.addr, &y->rb.addr);

        return c ? c : input_cmp(ctx, x->rb.src, x->fresh, y->rb.src, y->fresh);
}

/* The first host address of block p, as a host prefix (the borrowed arrays' order). */
static struct cfg_prefix first_addr(const struct cfg_prefix *p)
{
        struct cfg_prefix a = *p;

        a.len = (uint8_t)cfg_prefix_maxlen(p);
        return a;
}

/* The first of n elements (stride bytes apart, sorted by the prefix at offset off)
 * whose prefix is not below key: one binary search for the index's and the model's
 * arrays of borrowed addresses and the model's blocks. */
static size_t lower_prefix(const void *base, size_t n, size_t stride, size_t off, const struct cfg_prefix *key)
{
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const struct cfg_prefix *at = (const void *)((const char *)base + mid * stride + off);

                if (cfg_prefix_cmp(at, key) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* The extra claims of a part at cidr p: [*lo, *hi). */
static void extra_range(const struct cfg_kv_index *ix, int part, const struct cfg_prefix *p, size_t *lo,
                        size_t *hi)
{
        size_t a = 0, b = ix->extra.n[part];
        struct raw_block at;

        while (a < b) {
                size_t mid = a + (b - a) / 2;

                claims_get(&ix->extra, part, mid, &at);
                if (cfg_prefix_cmp(&at.cidr, p) < 0)
                        a = mid + 1;
                else
                        b = mid;
        }
        *lo = a;
        while (b < ix->extra.n[part] && (claims_get(&ix->extra, part, b, &at), cfg_prefix_eq(&at.cidr, p)))
                b++;
        *hi = b;
}

/* Whether extra claim i of a part (if there is one) overlaps p. */
static bool extra_overlaps(const struct cfg_kv_index *ix, int part, size_t i, const struct cfg_prefix *p)
{
        struct raw_block at;

        if (i >= ix->extra.n[part])
                return false;
        claims_get(&ix->extra, part, i, &at);
        return cfg_prefix_overlaps(&at.cidr, p);
}

static size_t bor_lower(const struct cfg_kv_index *ix, const struct cfg_prefix *p)
{
        struct cfg_prefix a = first_addr(p);

        return lower_prefix(ix->bor, ix->n_bor, sizeof(*ix->bor), offsetof(struct raw_borrowed, addr), &a);
}

static size_t model_bor_lower(const struct cfg_model *m, const struct cfg_prefix *p)
{
        struct cfg_prefix a = first_addr(p);

        return lower_prefix(m->borrowed, m->n_borrowed, sizeof(*m->borrowed), offsetof(struct cfg_borrowed, addr),
                            &a);
}

static size_t block_lower(const struct cfg_model *m, const struct cfg_prefix *p)
{
        return lower_prefix(m->blocks, m->n_blocks, sizeof(*m->blocks), offsetof(struct cfg_block, cidr), p);
}

/* The model's block at p as the claim it is made of: true with *ret; *ret_pos where
 * it is or would go. */
static bool own_claim(const struct cfg_model *m, const struct cfg_kv_index *ix, const struct cfg_prefix *p,
                      size_t *ret_pos, struct raw_block *ret)
{
        size_t pos = block_lower(m, p);
        const struct cfg_block *b = &m->blocks[pos];

        *ret_pos = pos;
        if (pos >= m->n_blocks || !cfg_prefix_eq(&b->cidr, p))
                return false;
        *ret = own_at(m, ix, pos);
        return true;
}

/* Node position by name: found (*found) or where it would go. */
static size_t node_pos(const struct cfg_model *m, const char *name, bool *found)
{
        size_t lo = 0, hi = m->n_nodes;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(m->nodes[mid].name, name);

                if (c == 0) {
                        *found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = false;
        return lo;
}

/* Every node number at or past `from` moves by delta (a node inserted or removed). */
static void renumber(struct cfg_model *m, struct cfg_kv_index *ix, uint32_t from, int delta)
{
#define MOVE(x) do { if ((x) != UINT32_MAX && (x) >= from) (x) = (uint32_t)((int64_t)(x) + delta); } while (0)
        for (size_t i = 0; i < m->n_blocks; i++)
                MOVE(m->blocks[i].node);
        for (size_t i = 0; i < m->n_borrowed; i++) {
                MOVE(m->borrowed[i].node);
                MOVE(m->borrowed[i].block_node);
        }
        for (size_t i = 0; i < ix->extra.n[CLAIMS_V4]; i++)
                MOVE(ix->extra.v4[i].node);
        for (size_t i = 0; i < ix->extra.n[CLAIMS_WIDE]; i++)
                MOVE(ix->extra.wide[i].node);
        for (size_t i = 0; i < ix->n_bor; i++) {
                MOVE(ix->bor[i].node);
                MOVE(ix->bor[i].block_node);
        }
#undef MOVE
}

/* Takes name (already allocated; room reserved). */
static uint32_t node_insert(struct cfg_model *m, struct cfg_kv_index *ix, char *name)
{
        bool found;
        size_t pos = node_pos(m, name, &found);

        memmove(&m->nodes[pos + 1], &m->nodes[pos], (m->n_nodes - pos) * sizeof(*m->nodes));
        memmove(&ix->refs[pos + 1], &ix->refs[pos], (m->n_nodes - pos) * sizeof(*ix->refs));
        m->nodes[pos] = (struct cfg_node){ .name = name };
        ix->refs[pos] = 0;
        m->n_nodes++;
        renumber(m, ix, (uint32_t)pos, 1);
        return (uint32_t)pos;
}

static void node_remove(struct cfg_model *m, struct cfg_kv_index *ix, uint32_t pos)
{
        free(m->nodes[pos].name);
        cfg_labels_clear(&m->nodes[pos].labels);
        memmove(&m->nodes[pos], &m->nodes[pos + 1], (m->n_nodes - pos - 1) * sizeof(*m->nodes));
        memmove(&ix->refs[pos], &ix->refs[pos + 1], (m->n_nodes - pos - 1) * sizeof(*ix->refs));
        m->n_nodes--;
        renumber(m, ix, pos + 1, -1);
}

static uint32_t node_of(const struct cfg_model *m, const char *name)
{
        bool found;
        size_t pos;

        if (!name)
                return UINT32_MAX;
        pos = node_pos(m, name, &found);
        return found ? (uint32_t)pos : UINT32_MAX;
}

/* Replace n_old elements at pos of an array of n (room reserved) by n_new from src. */
static void splice(void *array, size_t *n, size_t sz, size_t pos, size_t n_old, const void *src, size_t n_new)
{
        char *a = array;

        if (*n - pos - n_old)
                memmove(a + (pos + n_new) * sz, a + (pos + n_old) * sz, (*n - pos - n_old) * sz);
        if (n_new)
                memcpy(a + pos * sz, src, n_new * sz);
        *n = *n - n_old + n_new;
}

/* The changes at one block, merged. */
struct group {
        struct change *cs;    /* in key order */
        size_t n_cs;
        size_t lo[2], hi[2];  /* the block's claims in each part of ix->extra (besides its own) */
        size_t blo, bhi;      /* its borrowed entries in ix->bor */
        struct claim *claims; /* the claims after the changes, merged order */
        size_t n_claims;
        struct lent *lents;   /* the borrowed entries after the changes, merged order */
        size_t n_lents;
        /* scratch for the commit, allocated before it begins */
        struct raw_block *rv;
        struct raw_block *xv[2]; /* the extra claims after, by part */
        uint32_t shadow;         /* the block's shadow after (shadow_of()), 0: none */
        struct raw_borrowed *bv;
        struct cfg_borrowed *mv;
};

static void group_clear(struct group *g)
{
        free(g->claims);
        free(g->lents);
        free(g->rv);
        free(g->xv[0]);
        free(g->xv[1]);
        free(g->bv);
        free(g->mv);
}

static bool group_has_file(const struct group *g, uint32_t file)
{
        for (size_t i = 0; i < g->n_cs; i++)
                if (g->cs[i].file == file)
                        return true;
        return false;
}

/* The block's claims and borrowed entries after its changes, in a full load's order;
 * -EAGAIN when the full load would report an error between keys. Changes nothing. */
static int plan_group(const struct cfg_model *m, const struct cfg_kv_index *ix, struct group *g)
{
        const struct cfg_prefix *cidr = &g->cs[0].cidr;
        size_t n_new = 0, nb_new = 0, pos;
        struct raw_block own;
        bool had = own_claim(m, ix, cidr, &pos, &own);

        for (size_t i = 0; i < g->n_cs; i++)
                if (g->cs[i].mini) {
                        n_new += g->cs[i].mini->n_raw;
                        nb_new += g->cs[i].mini->n_borrowed;
                }
        for (int part = 0; part < 2; part++)
                extra_range(ix, part, cidr, &g->lo[part], &g->hi[part]);
        g->blo = bor_lower(ix, cidr);
        for (g->bhi = g->blo; g->bhi < ix->n_bor && cfg_prefix_contains(cidr, &ix->bor[g->bhi].addr); g->bhi++)
                ;
        g->claims = calloc(2 * had + g->hi[0] - g->lo[0] + g->hi[1] - g->lo[1] + n_new + 1, sizeof(*g->claims));
        g->lents = calloc(g->bhi - g->blo + nb_new + 1, sizeof(*g->lents));
        if (!g->claims || !g->lents)
                return -ENOMEM;
        if (had && !group_has_file(g, own.src.file))
                g->claims[g->n_claims++] = (struct claim){ own, m->nodes[own.node].name, NULL };
        if (had && ix->shadow && ix->shadow[pos] && !group_has_file(g, shadow_src(ix->shadow[pos]).file))
                g->claims[g->n_claims++] = (struct claim){ shadow_at(m, ix, pos), m->nodes[own.node].name, NULL };
        for (int part = 0; part < 2; part++)
                for (size_t i = g->lo[part]; i < g->hi[part]; i++) {
                        struct raw_block x;

                        claims_get(&ix->extra, part, i, &x);
                        if (!group_has_file(g, x.src.file))
                                g->claims[g->n_claims++] = (struct claim){ x, m->nodes[x.node].name, NULL };
                }
        for (size_t i = g->blo; i < g->bhi; i++) {
                const struct raw_borrowed *b = &ix->bor[i];

                if (!group_has_file(g, b->src.file))
                        g->lents[g->n_lents++] = (struct lent){
                                *b, m->nodes[b->node].name,
                                b->block_node == UINT32_MAX ? NULL : m->nodes[b->block_node].name, NULL
                        };
        }
        for (size_t k = 0; k < g->n_cs; k++) {
                const struct change *c = &g->cs[k];
                const struct cfg_loader *mini = c->mini;

                for (size_t i = 0; mini && i < mini->n_raw; i++)
                        g->claims[g->n_claims++] = (struct claim){ mini->raw[i], mini_node(mini, mini->raw[i].node),
                                                                   c };
                for (size_t i = 0; mini && i < mini->n_borrowed; i++) {
                        const struct raw_borrowed *b = &mini->borrowed[i];

                        g->lents[g->n_lents++] = (struct lent){ *b, mini_node(mini, b->node),
                                                                mini_node(mini, b->block_node), c };
                }
        }
        qsort_r(g->claims, g->n_claims, sizeof(*g->claims), claim_cmp, (void *)m);
        qsort_r(g->lents, g->n_lents, sizeof(*g->lents), lent_cmp, (void *)m);

        /* build_blocks(): the first claim is the block's; another naming a different
         * node is an error unless an IPAMBlock overrules it. */
        for (size_t i = 1; i < g->n_claims; i++)
                if (!streq(g->claims[0].node, g->claims[i].node) &&
                    !(g->claims[0].rb.origin == BLOCK_FROM_IPAMBLOCK && g->claims[i].rb.origin != BLOCK_FROM_IPAMBLOCK))
                        return -EAGAIN;
        /* The claims of a model that loaded lie in disjoint blocks: only the neighbours
         * can overlap this one, in the blocks and in the other claims (each sorted and
         * disjoint on its own). */
        for (int part = 0; part < 2 && g->n_claims; part++)
                if ((g->lo[part] > 0 && extra_overlaps(ix, part, g->lo[part] - 1, cidr)) ||
                    extra_overlaps(ix, part, g->hi[part], cidr))
                        return -EAGAIN;
        if (g->n_claims && ((pos > 0 && cfg_prefix_overlaps(&m->blocks[pos - 1].cidr, cidr)) ||
                            (pos + had < m->n_blocks && cfg_prefix_overlaps(&m->blocks[pos + had].cidr, cidr))))
                return -EAGAIN;
        return 0;
}

/* How the references to node s change with the group. */
static int64_t self_delta(const struct cfg_model *m, const struct cfg_kv_index *ix, const struct group *g,
                          uint32_t s, const char *self)
{
        struct raw_block own;
        int64_t d = 0;
        size_t pos;

        if (own_claim(m, ix, &g->cs[0].cidr, &pos, &own))
                d -= (own.node == s) * (1 + (ix->shadow && ix->shadow[pos]));
        for (int part = 0; part < 2; part++)
                for (size_t i = g->lo[part]; i < g->hi[part]; i++) {
                        struct raw_block x;

                        claims_get(&ix->extra, part, i, &x);
                        d -= x.node == s;
                }
        for (size_t i = g->blo; i < g->bhi; i++)
                d -= (ix->bor[i].node == s) + (ix->bor[i].block_node == s);
        for (size_t i = 0; i < g->n_claims; i++)
                d += streq(g->claims[i].node, self);
        for (size_t i = 0; i < g->n_lents; i++)
                d += streq(g->lents[i].node, self) + streq_ptr(g->lents[i].block_node, self);
        return d;
}

struct batch {
        struct change *cs;
        size_t n;
        struct group *groups;
        size_t n_groups;
        char **new_nodes; /* names the model lacks, sorted */
        size_t n_new_nodes, cap_new_nodes;
        size_t n_new_files;
        size_t n_files;   /* the model's inputs after the commit */
        uint32_t *gone;   /* node numbers that lost a reference */
        size_t n_gone;
};

static void batch_clear(struct batch *b)
{
        for (size_t i = 0; i < b->n; i++) {
                cfg_loader_free(b->cs[i].mini);
                free(b->cs[i].name);
        }
        free(b->cs);
        for (size_t i = 0; i < b->n_groups; i++)
                group_clear(&b->groups[i]);
        free(b->groups);
        for (size_t i = 0; i < b->n_new_nodes; i++)
                free(b->new_nodes[i]);
        free(b->new_nodes);
        free(b->gone);
}

static int want_node(const struct cfg_model *m, struct batch *b, const char *name)
{
        if (!name || node_of(m, name) != UINT32_MAX)
                return 0;
        for (size_t i = 0; i < b->n_new_nodes; i++)
                if (streq(b->new_nodes[i], name))
                        return 0;
        if (GROW(b->new_nodes, b->cap_new_nodes, b->n_new_nodes + 1) < 0 ||
            !(b->new_nodes[b->n_new_nodes] = strdup(name)))
                return -ENOMEM;
        b->n_new_nodes++;
        return 0;
}

static int change_cmp(const void *x, const void *y)
{
        const struct change *a = x, *b = y;
        int c = cfg_prefix_cmp(&a->cidr, &b->cidr);

        return c ? c : strcmp(a->kv->key, b->kv->key);
}

/* The change's input in the model: the number the source told (a number past the
 * model's inputs: the one the key is to have; the numbers between have no key), else
 * by name (a caller that keeps no numbers; a scan). *n_files: the inputs after. */
static int find_input(const struct cfg_model *m, struct change *c, size_t *n_files)
{
        uint32_t told = c->kv->input;

        c->file = UINT32_MAX;
        if (told) {
                /* Numbers only for a model named on demand, and a few past its inputs. */
                if (!m->namer || told - 1 >= CFG_MAX_KEYS)
                        return -EAGAIN;
                if (told - 1 < m->n_files)
                        c->file = told - 1;
                else if (c->mini) {
                        c->file = told - 1;
                        c->new_file = true;
                        *n_files = *n_files > told ? *n_files : told;
                }
                return 0;
        }
        /* Named on demand, a key the source does not know is not in the model. */
        if (m->namer)
                return c->mini ? -EAGAIN : 0;
        for (size_t i = 0; i < m->n_files && m->files; i++)
                if (streq(m->files[i], c->name)) {
                        c->file = (uint32_t)i;
                        return 0;
                }
        if (c->mini) {
                c->new_file = true;
                (*n_files)++;
        }
        return 0;
}

/* Every group planned and checked against the others; nothing changed yet. */
static int plan_batch(const struct cfg_model *m, const struct cfg_kv_index *ix, struct batch *b)
{
        const char *self = m->settings.node_name;
        uint32_t s = node_of(m, self);
        const struct cfg_prefix *outer = NULL;
        int64_t self_refs = s == UINT32_MAX ? 0 : ix->refs[s];
        size_t gone = 0;
        int r;

        qsort(b->cs, b->n, sizeof(*b->cs), change_cmp);
        b->groups = calloc(b->n ? b->n : 1, sizeof(*b->groups));
        if (!b->groups)
                return -ENOMEM;
        b->n_files = m->n_files;
        for (size_t i = 0; i < b->n; i++) {
                struct change *c = &b->cs[i];

                if (c->kv->object ? !(c->name = strdup(c->kv->key)) : asprintf(&c->name, "etcd:%s", c->kv->key) < 0) {
                        c->name = NULL;
                        return -ENOMEM;
                }
                /* Each key once (a caller's slip: the full load decides). */
                if (i && streq(c->kv->key, b->cs[i - 1].kv->key))
                        return -EAGAIN;
                if ((r = find_input(m, c, &b->n_files)) < 0)
                        return r;
                b->n_new_files += c->new_file;
                if (i && cfg_prefix_eq(&c->cidr, &b->cs[i - 1].cidr))
                        b->groups[b->n_groups - 1].n_cs++;
                else
                        b->groups[b->n_groups++] = (struct group){ .cs = c, .n_cs = 1 };
        }
        for (size_t i = 0; i < b->n_groups; i++) {
                struct group *g = &b->groups[i];
                const struct cfg_prefix *cidr = &g->cs[0].cidr;

                if ((r = plan_group(m, ix, g)) < 0)
                        return r;
                /* Blocks of the batch overlapping each other: the full load. */
                if (outer && cfg_prefix_overlaps(outer, cidr))
                        return -EAGAIN;
                if (!outer || !cfg_prefix_overlaps(outer, cidr))
                        outer = cidr;
                for (size_t k = 0; k < g->n_claims; k++)
                        if (g->claims[k].fresh && (r = want_node(m, b, g->claims[k].node)) < 0)
                                return r;
                for (size_t k = 0; k < g->n_lents; k++)
                        if (g->lents[k].fresh && ((r = want_node(m, b, g->lents[k].node)) < 0 ||
                                                  (r = want_node(m, b, g->lents[k].block_node)) < 0))
                                return r;
                if (s != UINT32_MAX)
                        self_refs += self_delta(m, ix, g, s, self);
                gone += 2 + (g->hi[0] - g->lo[0]) + (g->hi[1] - g->lo[1]) + 2 * (g->bhi - g->blo);
        }
        /* This node's entry going (its last claim without a Node resource) changes more
         * than blocks. */
        if (s != UINT32_MAX && !m->nodes[s].has_resource && self_refs == 0)
                return -EAGAIN;
        b->gone = calloc(gone + 1, sizeof(*b->gone));
        return b->gone ? 0 : -ENOMEM;
}

/* Room for everything the commit adds, so that it cannot fail half way. */
static int reserve(struct cfg_model *m, struct cfg_kv_index *ix, struct batch *b)
{
        size_t nf = b->n_files, nn = m->n_nodes + b->n_new_nodes, nc = 0, nl = 0;
        int r;

        for (size_t i = 0; i < b->n_groups; i++) {
                struct group *g = &b->groups[i];

                nc += g->n_claims;
                nl += g->n_lents;
                g->rv = calloc(g->n_claims + 1, sizeof(*g->rv));
                g->xv[0] = calloc(g->n_claims + 1, sizeof(*g->xv[0]));
                g->xv[1] = calloc(g->n_claims + 1, sizeof(*g->xv[1]));
                g->bv = calloc(g->n_lents + 1, sizeof(*g->bv));
                g->mv = calloc(g->n_lents + 1, sizeof(*g->mv));
                if (!g->rv || !g->xv[0] || !g->xv[1] || !g->bv || !g->mv)
                        return -ENOMEM;
        }
        if ((!m->namer && (r = GROW(m->files, ix->cap_files, nf)) < 0) ||
            (r = GROW(ix->counted, ix->cap_counted, nf)) < 0 ||
            (r = GROW(m->nodes, ix->cap_nodes, nn)) < 0 || (r = GROW(ix->refs, ix->cap_refs, nn)) < 0 ||
            (r = claims_reserve(&ix->extra, nc)) < 0 ||
            (r = GROW(ix->bor, ix->cap_bor, ix->n_bor + nl)) < 0 ||
            (r = GROW(m->blocks, ix->cap_blocks, m->n_blocks + b->n_groups)) < 0 ||
            (r = GROW(ix->won, ix->cap_won, m->n_blocks + b->n_groups)) < 0 ||
            (ix->shadow && (r = GROW(ix->shadow, ix->cap_shadow, m->n_blocks + b->n_groups)) < 0) ||
            (r = GROW(m->borrowed, ix->cap_borrowed, m->n_borrowed + nl)) < 0)
                return r;
        /* A name that the commit then does not use stays in the model's chunks, unseen. */
        for (size_t i = 0; i < b->n && !m->namer; i++)
                if (b->cs[i].new_file && !(b->cs[i].model_name = cfg_model_name(m, b->cs[i].name)))
                        return -ENOMEM;
        return 0;
}

static bool block_same(const struct cfg_block *a, const struct cfg_block *b)
{
        return cfg_prefix_eq(&a->cidr, &b->cidr) && a->node == b->node && a->pool == b->pool &&
               a->src.file == b->src.file && a->src.line == b->src.line;
}

static bool borrowed_same(const struct cfg_borrowed *a, const struct cfg_borrowed *b)
{
        return cfg_prefix_eq(&a->addr, &b->addr) && a->node == b->node && a->block_node == b->block_node &&
               a->pool == b->pool && a->src.file == b->src.file && a->src.line == b->src.line;
}

/* Room for n_new claims at pos of a part, where n_old were. */
static void extra_room(struct claims *c, int part, size_t pos, size_t n_old, size_t n_new)
{
        size_t sz = part == CLAIMS_V4 ? sizeof(*c->v4) : sizeof(*c->wide);
        char *a = part == CLAIMS_V4 ? (char *)c->v4 : (char *)c->wide;

        if (c->n[part] - pos - n_old)
                memmove(a + (pos + n_new) * sz, a + (pos + n_old) * sz, (c->n[part] - pos - n_old) * sz);
        c->n[part] = c->n[part] - n_old + n_new;
}

/* The group's claims but the first (the block's own: commit_block()) replace its
 * extra claims, each in its part. */
static void splice_extra(struct cfg_kv_index *ix, struct group *g)
{
        size_t n[2] = {};

        g->shadow = 0;
        for (size_t i = 1; i < g->n_claims; i++) {
                int part = claims_part(&g->rv[i]);

                /* A model whose load made shadows keeps them (claim_shadows()). */
                if (ix->shadow && !g->shadow && claim_shadows(&g->rv[0], &g->rv[i])) {
                        g->shadow = shadow_of(&g->rv[i]);
                        continue;
                }
                g->xv[part][n[part]++] = g->rv[i];
        }
        for (int part = 0; part < 2; part++) {
                extra_room(&ix->extra, part, g->lo[part], g->hi[part] - g->lo[part], n[part]);
                for (size_t i = 0; i < n[part]; i++)
                        claims_set(&ix->extra, part, g->lo[part] + i, &g->xv[part][i]);
        }
}

/* The group's old entries leave the index and the new ones arrive, with this model's
 * node and file numbers; the nodes that lost a reference go into b->gone. */
static void commit_index(struct cfg_model *m, struct cfg_kv_index *ix, struct batch *b, struct group *g)
{
        struct raw_block own;
        size_t pos;

        /* Read now: the nodes added before the commit renumbered the model. */
        if (own_claim(m, ix, &g->cs[0].cidr, &pos, &own)) {
                if (group_has_file(g, own.src.file))
                        ix->refs[b->gone[b->n_gone++] = own.node]--;
                if (ix->shadow && ix->shadow[pos] && group_has_file(g, shadow_src(ix->shadow[pos]).file))
                        ix->refs[b->gone[b->n_gone++] = own.node]--;
        }
        for (int part = 0; part < 2; part++)
                for (size_t i = g->lo[part]; i < g->hi[part]; i++) {
                        struct raw_block x;

                        claims_get(&ix->extra, part, i, &x);
                        if (group_has_file(g, x.src.file))
                                ix->refs[b->gone[b->n_gone++] = x.node]--;
                }
        for (size_t i = g->blo; i < g->bhi; i++)
                if (group_has_file(g, ix->bor[i].src.file)) {
                        ix->refs[b->gone[b->n_gone++] = ix->bor[i].node]--;
                        if (ix->bor[i].block_node != UINT32_MAX)
                                ix->refs[b->gone[b->n_gone++] = ix->bor[i].block_node]--;
                }
        for (size_t i = 0; i < g->n_claims; i++) {
                struct raw_block *rb = &g->claims[i].rb;

                rb->node = node_of(m, g->claims[i].node);
                if (g->claims[i].fresh) {
                        rb->src.file = g->claims[i].fresh->file;
                        ix->refs[rb->node]++;
                }
                g->rv[i] = *rb;
        }
        for (size_t i = 0; i < g->n_lents; i++) {
                struct raw_borrowed *rb = &g->lents[i].rb;

                rb->node = node_of(m, g->lents[i].node);
                rb->block_node = node_of(m, g->lents[i].block_node);
                if (g->lents[i].fresh) {
                        rb->src.file = g->lents[i].fresh->file;
                        ix->refs[rb->node]++;
                        if (rb->block_node != UINT32_MAX)
                                ix->refs[rb->block_node]++;
                }
                g->bv[i] = *rb;
        }
        splice_extra(ix, g);
        splice(ix->bor, &ix->n_bor, sizeof(*ix->bor), g->blo, g->bhi - g->blo, g->bv, g->n_lents);
}

/* The model's block at the group's cidr after the merge (and its origin in the index). */
static int commit_block(struct cfg_model *m, struct cfg_kv_index *ix, const struct group *g, struct cfg_touched *t,
                        bool *changed)
{
        const struct change *c = &g->cs[0];
        size_t pos = block_lower(m, &c->cidr), n = m->n_blocks;
        bool had = pos < m->n_blocks && cfg_prefix_eq(&m->blocks[pos].cidr, &c->cidr);
        struct cfg_block nb;

        if (g->n_claims) {
                const struct raw_block *w = &g->claims[0].rb;

                nb = (struct cfg_block){ .cidr = c->cidr, .node = w->node, .pool = c->pool, .src = w->src };
                if (had && block_same(&m->blocks[pos], &nb)) {
                        ix->won[pos] = w->origin;
                        if (ix->shadow)
                                ix->shadow[pos] = g->shadow;
                        return 0;
                }
                splice(m->blocks, &m->n_blocks, sizeof(*m->blocks), pos, had, &nb, 1);
                if (ix->shadow) {
                        size_t k = n;

                        splice(ix->shadow, &k, sizeof(*ix->shadow), pos, had, &g->shadow, 1);
                }
                splice(ix->won, &n, sizeof(*ix->won), pos, had, &w->origin, 1);
        } else if (had) {
                splice(m->blocks, &m->n_blocks, sizeof(*m->blocks), pos, 1, NULL, 0);
                if (ix->shadow) {
                        size_t k = n;

                        splice(ix->shadow, &k, sizeof(*ix->shadow), pos, 1, NULL, 0);
                }
                splice(ix->won, &n, sizeof(*ix->won), pos, 1, NULL, 0);
        } else
                return 0;
        *changed = true;
        return cfg_touched_add(t, &c->cidr);
}

/* The model's borrowed addresses in the block after the merge: one per address, the
 * first key's (build_borrowed()). */
static int commit_borrowed(struct cfg_model *m, const struct group *g, struct cfg_touched *t, bool *changed)
{
        const struct change *c = &g->cs[0];
        size_t lo = model_bor_lower(m, &c->cidr), hi = lo, n = 0;
        struct cfg_borrowed *v = g->mv;
        int r = 0;

        while (hi < m->n_borrowed && cfg_prefix_contains(&c->cidr, &m->borrowed[hi].addr))
                hi++;
        for (size_t i = 0; i < g->n_lents; i++) {
                const struct raw_borrowed *b = &g->lents[i].rb;

                if (n && cfg_prefix_eq(&v[n - 1].addr, &b->addr))
                        continue;
                v[n++] = (struct cfg_borrowed){
                        .addr = b->addr, .node = b->node, .block_node = b->block_node, .pool = c->pool, .src = b->src
                };
        }
        /* Touched: every address whose entry is not the same before and after. */
        for (size_t i = lo, j = 0; i < hi || j < n;) {
                int k = i == hi ? 1 : j == n ? -1 : cfg_prefix_cmp(&m->borrowed[i].addr, &v[j].addr);

                if (k == 0 && borrowed_same(&m->borrowed[i], &v[j])) {
                        i++, j++;
                        continue;
                }
                *changed = true;
                if (r == 0)
                        r = cfg_touched_add(t, k <= 0 ? &m->borrowed[i].addr : &v[j].addr);
                if (k <= 0)
                        i++;
                if (k >= 0)
                        j++;
        }
        splice(m->borrowed, &m->n_borrowed, sizeof(*m->borrowed), lo, hi - lo, v, n);
        return r;
}

static void sort_desc(uint32_t *v, size_t n)
{
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && v[j - 1] < v[j]; j--) {
                        uint32_t x = v[j - 1];
                        v[j - 1] = v[j];
                        v[j] = x;
                }
}

/* Everything planned and reserved: nothing fails here but adding to t (the model is
 * whole then, t short: -ENOMEM). */
static int commit_batch(struct cfg_model *m, struct cfg_kv_index *ix, struct batch *b, struct cfg_touched *t,
                        bool *changed)
{
        int r = 0, q;

        for (size_t i = 0; i < b->n && !m->namer; i++) {
                struct change *c = &b->cs[i];

                if (!c->new_file)
                        continue;
                c->file = (uint32_t)m->n_files;
                m->files[m->n_files++] = c->model_name;
                ix->counted[c->file] = 0;
        }
        /* Named on demand: the inputs the source numbered, none counted yet. */
        for (; m->namer && m->n_files < b->n_files; m->n_files++)
                ix->counted[m->n_files] = 0;
        for (size_t i = 0; i < b->n_new_nodes; i++) {
                node_insert(m, ix, TAKE_PTR(b->new_nodes[i]));
                *changed = true;
                t->nodes = true;
        }
        /* Highest block first: splicing one moves none of those before it. */
        for (size_t i = b->n_groups; i-- > 0;) {
                struct group *g = &b->groups[i];

                commit_index(m, ix, b, g);
                if ((q = commit_block(m, ix, g, t, changed)) < 0 && r == 0)
                        r = q;
                if ((q = commit_borrowed(m, g, t, changed)) < 0 && r == 0)
                        r = q;
        }
        size_t ipam_was = m->n_ipam_resources;

        for (size_t i = 0; i < b->n; i++) {
                const struct change *c = &b->cs[i];
                uint8_t n_ipam = c->mini ? (uint8_t)c->mini->m->n_ipam_resources : 0;

                if (c->file == UINT32_MAX || ix->counted[c->file] == n_ipam)
                        continue;
                m->n_ipam_resources = m->n_ipam_resources - ix->counted[c->file] + n_ipam;
                ix->counted[c->file] = n_ipam;
                *changed = true;
        }
        /* The first Calico IPAM resource, or the last gone: whether podCIDRs count
         * changes, and with it a finding of the whole plan (cfg_model_diff() does the
         * same). */
        if (!ipam_was != !m->n_ipam_resources)
                t->all = true;
        /* Nodes that nothing names any more and no Node resource made go, highest
         * first (removing one renumbers those after it). */
        sort_desc(b->gone, b->n_gone);
        for (size_t i = 0; i < b->n_gone; i++) {
                if (i && b->gone[i] == b->gone[i - 1])
                        continue;
                if (ix->refs[b->gone[i]] == 0 && !m->nodes[b->gone[i]].has_resource) {
                        node_remove(m, ix, b->gone[i]);
                        *changed = true;
                        t->nodes = true;
                }
        }
        return r;
}

int cfg_model_update_kvs(struct cfg_model *m, struct cfg_kv_index *ix, const struct cfg_kv *changes, size_t n,
                         struct cfg_touched *t, struct cfg_diags *d)
{
        struct batch b = {};
        _cleanup_(freep) struct change *nodes = calloc(n ? n : 1, sizeof(*nodes));
        size_t n_nodes = 0;
        bool again = false, changed = false;
        int r = 0;

        b.cs = calloc(n ? n : 1, sizeof(*b.cs));
        if (!b.cs || !nodes) {
                free(b.cs);
                return -ENOMEM;
        }
        /* Every new value is read first: one the full load refuses changes nothing. */
        b.n = 0;
        for (size_t i = 0; i < n && r != -ENOMEM; i++) {
                struct change c = { .kv = &changes[i] };
                int q = read_change(m, ix, &c, d);

                if (q == 1)
                        nodes[n_nodes++] = c;
                else
                        b.cs[b.n++] = c;
                if (q == -EAGAIN)
                        again = true;
                else if (q < 0 && (r == 0 || q == -ENOMEM))
                        r = q;
        }
        if (r == 0 && again)
                r = -EAGAIN;
        if (r == 0)
                r = plan_batch(m, ix, &b);
        if (r == 0)
                r = reserve(m, ix, &b);
        if (r == 0) {
                r = commit_batch(m, ix, &b, t, &changed);
                /* Nodes by name: the blocks' renumbering above does not move them. */
                for (size_t i = 0; i < n_nodes; i++) {
                        int q = apply_node_change(m, &nodes[i], t, &changed);

                        if (q < 0 && r == 0)
                                r = q;
                }
        }
        for (size_t i = 0; i < n_nodes; i++)
                cfg_loader_free(nodes[i].mini);
        batch_clear(&b);
        if (r < 0)
                return r;
        return changed;
}

/* ---- records: an IPAM value as the load takes it ----
 *
 * Bytes: a version byte, the count flag, the number of claims, the claims (origin,
 * with KEY_HOST set when the node is the key's own host, as a BlockAffinity's always
 * is; line; the node name with its NUL unless KEY_HOST; the cidr is the key's, as the
 * reading checked), the number of borrowed addresses, each (line, family, length, the
 * address's 4 or 16 bytes, node and block node names, "" for none). Numbers as LEB128
 * varints: a record is held for each of 200k keys (issue 16's memory budget), 12 bytes
 * for a BlockAffinity. Made from the loader's own reading of the value (so the record
 * holds what the rules made of it, never a second reading of the JSON), replayed
 * through the same loader calls. */

#define RECORD_VERSION 2
#define KEY_HOST 0x80

struct wbuf {
        char *p;
        size_t n, cap;
        int r;
};

static void put(struct wbuf *w, const void *data, size_t n)
{
        if (w->r < 0 || (w->r = GROW(w->p, w->cap, w->n + n)) < 0)
                return;
        memcpy(w->p + w->n, data, n);
        w->n += n;
}

static void put_num(struct wbuf *w, uint32_t v)
{
        do {
                uint8_t b = v & 0x7f;

                v >>= 7;
                b |= v ? 0x80 : 0;
                put(w, &b, 1);
        } while (v);
}

static void put_str(struct wbuf *w, const char *s)
{
        put(w, s ? s : "", strlen(s ? s : "") + 1);
}

/* The host of an affinity key (CFG_ETCD_AFFINITY_PREFIX HOST/...), length 0 for any
 * other key. */
static size_t key_host(const char *key, const char **ret)
{
        const char *slash;

        if (strncmp(key, CFG_ETCD_AFFINITY_PREFIX, strlen(CFG_ETCD_AFFINITY_PREFIX)))
                return 0;
        *ret = key + strlen(CFG_ETCD_AFFINITY_PREFIX);
        slash = strchr(*ret, '/');
        return slash ? (size_t)(slash - *ret) : 0;
}

static bool is_key_host(const char *key, const char *name)
{
        const char *host;
        size_t n = key_host(key, &host);

        return n && name && strlen(name) == n && !memcmp(name, host, n);
}

/* ---- Node records ----
 *
 * A Calico Node's value (5,000 Nodes: 2.3 MB of JSON at 100k blocks, most of it what
 * the model never reads: uid, timestamps, orchRefs, status) as what its reading made:
 * a version byte, flags (NODE_LABELS: metadata.labels was there; NODE_ADDR << i: the
 * i-th address field was set), the name with its NUL, the labels in the order read
 * (count, then key and value each with its NUL), then each address set (family,
 * length, 4 or 16 bytes). Only for a value that opens at its first byte (line 1,
 * column 1: where a replayed "more than N nodes" points) and whose reading has
 * nothing to say; any other stays JSON, its diagnostics its own. */

#define NODE_RECORD_VERSION 3
#define NODE_LABELS 0x01
#define NODE_ADDR 0x02 /* << 0..3: addr, addr6, ipip_tunnel_addr, vxlan_tunnel_addr */

static struct cfg_prefix *node_addr(struct cfg_node *n, unsigned i)
{
        struct cfg_prefix *v[] = { &n->addr, &n->addr6, &n->ipip_tunnel_addr, &n->vxlan_tunnel_addr };

        return v[i];
}

/* Counts the value's documents, and whether the one is a projectcalico.org/v3 Node
 * without items: only that is recorded (a Kubernetes Node's reading depends on the
 * settings; a list or a second document is refused, its message its own). */
struct node_doc {
        unsigned docs;
        bool calico;
};

static int note_api(const struct ynode *n, void *userdata)
{
        struct node_doc *d = userdata;
        const char *api = n->kind == YN_MAP ? ynode_str(ynode_get(n, "apiVersion")) : NULL;
        const char *kind = n->kind == YN_MAP ? ynode_str(ynode_get(n, "kind")) : NULL;
        const struct ynode *items = n->kind == YN_MAP ? ynode_get(n, "items") : NULL;

        d->docs++;
        d->calico = api && streq(api, "projectcalico.org/v3") && kind && streq(kind, "Node") &&
                    (!items || ynode_is_null(items));
        return 0;
}

static bool is_node_key(const char *key)
{
        return !strncmp(key, CFG_ETCD_RESOURCES_PREFIX "nodes/", strlen(CFG_ETCD_RESOURCES_PREFIX "nodes/"));
}

static int compact_node(const struct cfg_kv *kv, char **ret, size_t *ret_len)
{
        struct cfg_settings none = {};
        struct cfg_diags d = {};
        struct cfg_loader *l = NULL;
        struct cfg_node *n;
        struct wbuf w = {};
        struct node_doc doc = {};
        uint8_t b;
        int r;

        if (!kv->value_len || kv->value[0] != '{' ||
            ydoc_load_buffer("", kv->value, kv->value_len, 0, note_api, &doc, &d) < 0 || d.n || doc.docs != 1 ||
            !doc.calico) {
                cfg_diags_clear(&d);
                return 0;
        }
        if ((r = cfg_loader_new(&none, &d, &l)) < 0)
                return r;
        r = cfg_loader_add_kv(l, kv);
        n = l->m->n_nodes == 1 ? &l->m->nodes[0] : NULL;
        if (r < 0 || d.n || !n || !n->has_resource || n->src.line != 1 || l->m->n_skipped || l->m->n_pools ||
            l->m->n_felix || l->n_raw || l->n_borrowed || l->m->n_ipam_resources || l->m->n_pod_cidrs_ignored ||
            !n->name || !streq(n->name, kv->key + strlen(CFG_ETCD_RESOURCES_PREFIX "nodes/"))) {
                cfg_loader_free(l);
                cfg_diags_clear(&d);
                return r == -ENOMEM ? r : 0;
        }
        b = NODE_RECORD_VERSION;
        put(&w, &b, 1);
        b = n->has_labels ? NODE_LABELS : 0;
        for (unsigned i = 0; i < 4; i++)
                b |= node_addr(n, i)->family ? (uint8_t)(NODE_ADDR << i) : 0;
        put(&w, &b, 1);
        put_str(&w, n->name);
        put_num(&w, (uint32_t)n->labels.n);
        for (size_t i = 0; i < n->labels.n; i++) {
                put_str(&w, n->labels.v[i].key);
                put_str(&w, n->labels.v[i].value);
        }
        for (unsigned i = 0; i < 4; i++) {
                const struct cfg_prefix *a = node_addr(n, i);

                if (a->family) {
                        put(&w, &a->family, 1);
                        put(&w, &a->len, 1);
                        put(&w, a->addr, a->family == AF_INET6 ? 16 : 4);
                }
        }
        cfg_loader_free(l);
        if (w.r < 0) {
                free(w.p);
                return w.r;
        }
        *ret = w.p;
        *ret_len = w.n;
        return 1;
}

int cfg_kv_compact(const struct cfg_kv *kv, char **ret, size_t *ret_len)
{
        struct cfg_settings none = {};
        struct cfg_diags d = {};
        struct cfg_loader *l = NULL;
        struct cfg_prefix cidr;
        struct wbuf w = {};
        uint8_t b;
        int r;

        if (!kv->record && is_node_key(kv->key))
                return compact_node(kv, ret, ret_len);
        if (kv->record || etcd_ipam_key_cidr(kv->key, &cidr) != 1)
                return 0;
        if ((r = cfg_loader_new(&none, &d, &l)) < 0)
                return r;
        r = cfg_loader_add_kv(l, kv);
        /* Anything to say (an error, a notice), or more than the layout gives: as it is. */
        if (r < 0 || d.n || l->m->n_skipped || l->m->n_pools || l->m->n_felix || l->n_raw > 1 ||
            (l->n_raw && !cfg_prefix_eq(&l->raw[0].cidr, &cidr))) {
                cfg_loader_free(l);
                cfg_diags_clear(&d);
                return r == -ENOMEM ? r : 0;
        }
        for (size_t i = 0; i < l->m->n_nodes; i++)
                if (l->m->nodes[i].has_resource) {
                        cfg_loader_free(l);
                        cfg_diags_clear(&d);
                        return 0;
                }
        b = RECORD_VERSION;
        put(&w, &b, 1);
        b = (uint8_t)l->m->n_ipam_resources;
        put(&w, &b, 1);
        b = (uint8_t)l->n_raw;
        put(&w, &b, 1);
        for (size_t i = 0; i < l->n_raw; i++) {
                const char *node = mini_node(l, l->raw[i].node);
                bool host = is_key_host(kv->key, node);

                b = (uint8_t)(l->raw[i].origin | (host ? KEY_HOST : 0));
                put(&w, &b, 1);
                put_num(&w, l->raw[i].src.line);
                if (!host)
                        put_str(&w, node);
        }
        put_num(&w, (uint32_t)l->n_borrowed);
        for (size_t i = 0; i < l->n_borrowed; i++) {
                const struct cfg_prefix *a = &l->borrowed[i].addr;

                put_num(&w, l->borrowed[i].src.line);
                put(&w, &a->family, 1);
                put(&w, &a->len, 1);
                put(&w, a->addr, a->family == AF_INET6 ? 16 : 4);
                put_str(&w, mini_node(l, l->borrowed[i].node));
                put_str(&w, mini_node(l, l->borrowed[i].block_node));
        }
        cfg_loader_free(l);
        if (w.r < 0) {
                free(w.p);
                return w.r;
        }
        *ret = w.p;
        *ret_len = w.n;
        return 1;
}

struct rbuf {
        const char *p;
        size_t n;
        bool bad;
};

static void get(struct rbuf *r, void *data, size_t n)
{
        if (r->bad || r->n < n) {
                r->bad = true;
                memset(data, 0, n);
                return;
        }
        memcpy(data, r->p, n);
        r->p += n;
        r->n -= n;
}

static uint32_t get_num(struct rbuf *r)
{
        uint32_t v = 0;

        for (unsigned shift = 0; shift < 35; shift += 7) {
                uint8_t b;

                get(r, &b, 1);
                v |= (uint32_t)(b & 0x7f) << shift;
                if (!(b & 0x80))
                        return v;
        }
        r->bad = true;
        return 0;
}

static const char *get_str(struct rbuf *r)
{
        const char *s = r->p, *end = r->bad ? NULL : memchr(r->p, 0, r->n);

        if (!end) {
                r->bad = true;
                return "";
        }
        r->p = end + 1;
        r->n -= (size_t)(end + 1 - s);
        return s;
}

static int replay_claim(struct cfg_loader *l, const struct cfg_kv *kv, const struct cfg_prefix *cidr,
                        struct rbuf *rb)
{
        char host[CFG_MAX_NAME + 1];
        const char *name, *h;
        uint8_t origin;
        uint32_t line, node;
        size_t n;
        int r;

        get(rb, &origin, 1);
        line = get_num(rb);
        if (origin & KEY_HOST) {
                n = key_host(kv->key, &h);
                if (!n || n > CFG_MAX_NAME)
                        return -EINVAL;
                memcpy(host, h, n);
                host[n] = '\0';
                name = host;
        } else
                name = get_str(rb);
        if (rb->bad)
                return -EINVAL;
        if ((r = loader_node(l, name, &node)) < 0 ||
            (r = loader_add_block(l, cidr, node, (enum block_origin)(origin & ~KEY_HOST), line)) < 0)
                return r;
        return 0;
}

static int replay_borrowed(struct cfg_loader *l, struct rbuf *rb)
{
        struct cfg_prefix p = {};
        uint32_t line = get_num(rb), node, block_node = UINT32_MAX;
        const char *name, *bname;
        int r;

        get(rb, &p.family, 1);
        get(rb, &p.len, 1);
        if (p.family != AF_INET && p.family != AF_INET6)
                return -EINVAL;
        get(rb, p.addr, p.family == AF_INET6 ? 16 : 4);
        name = get_str(rb);
        bname = get_str(rb);
        if (rb->bad)
                return -EINVAL;
        if ((*bname && (r = loader_node(l, bname, &block_node)) < 0) || (r = loader_node(l, name, &node)) < 0 ||
            (r = loader_add_borrowed(l, &p, node, block_node, line)) < 0)
                return r;
        return 0;
}

/* As load_calico_node() would read the value compact_node() recorded. */
static int replay_node(struct cfg_loader *l, struct rbuf *rb)
{
        const char *name, *key, *value;
        struct cfg_node *n;
        uint8_t flags;
        uint32_t idx, n_labels;
        int r;

        get(rb, &flags, 1);
        name = get_str(rb);
        if (rb->bad)
                return -EINVAL;
        /* Reported, and the key read (as begin_node() and on_resource_value() do). */
        if ((r = loader_node(l, name, &idx)) == -E2BIG) {
                cfg_error(l->diags, l->y.file, 1, 1, "more than %d nodes", CFG_MAX_NODES);
                return 0;
        }
        if (r < 0)
                return r;
        n = &l->m->nodes[idx];
        if (!n->has_resource) {
                n->has_resource = true;
                n->src = (struct cfg_src){ .file = l->file, .line = 1 };
        }
        n_labels = get_num(rb);
        for (uint32_t i = 0; i < n_labels && !rb->bad; i++) {
                key = get_str(rb);
                value = get_str(rb);
                if (!rb->bad && (r = cfg_labels_set(&n->labels, key, value)) < 0)
                        return r;
        }
        if (flags & NODE_LABELS)
                n->has_labels = true;
        for (unsigned i = 0; i < 4; i++) {
                struct cfg_prefix p = {};

                if (!(flags & (NODE_ADDR << i)))
                        continue;
                get(rb, &p.family, 1);
                get(rb, &p.len, 1);
                if (p.family != AF_INET && p.family != AF_INET6)
                        return -EINVAL;
                get(rb, p.addr, p.family == AF_INET6 ? 16 : 4);
                *node_addr(n, i) = p;
        }
        return rb->bad || rb->n ? -EINVAL : 0;
}

int loader_replay_record(struct cfg_loader *l, const struct cfg_kv *kv)
{
        struct rbuf rb = { kv->value, kv->value_len, false };
        uint8_t version, counted, n_claims;
        struct cfg_prefix cidr;
        uint32_t n;
        int r;

        if (kv->value_len && (uint8_t)kv->value[0] == NODE_RECORD_VERSION && is_node_key(kv->key)) {
                rb.p++;
                rb.n--;
                return replay_node(l, &rb);
        }
        get(&rb, &version, 1);
        get(&rb, &counted, 1);
        get(&rb, &n_claims, 1);
        if (rb.bad || version != RECORD_VERSION || etcd_ipam_key_cidr(kv->key, &cidr) != 1)
                return -EINVAL;
        l->m->n_ipam_resources += counted;
        for (uint8_t i = 0; i < n_claims; i++)
                if ((r = replay_claim(l, kv, &cidr, &rb)) < 0)
                        return r;
        n = get_num(&rb);
        for (uint32_t i = 0; i < n && !rb.bad; i++)
                if ((r = replay_borrowed(l, &rb)) < 0)
                        return r;
        return rb.bad ? -EINVAL : 0;
}
