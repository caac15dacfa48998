/* Model loading and lookups.
 *
 * Owns: the order files are read in, the node table, turning raw block claims into one
 * block per prefix, cross-resource validation (duplicate pools, overlaps), and the
 * final sort that makes lookups binary searches. Reads only the configured files; no
 * logging: everything the operator should hear goes into diags. */
#include <dirent.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loader.h"
#include "util.h"

static int node_index_grow(struct loader *l)
{
        size_t size = l->node_index_size ? l->node_index_size * 2 : 256;
        uint32_t *t = calloc(size, sizeof(*t));

        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < l->m->n_nodes; i++) {
                size_t h = str_hash(l->m->nodes[i].name) & (size - 1);

                while (t[h])
                        h = (h + 1) & (size - 1);
                t[h] = (uint32_t)i + 1;
        }
        free(l->node_index);
        l->node_index = t;
        l->node_index_size = size;
        return 0;
}

int loader_node(struct loader *l, const char *name, uint32_t *ret)
{
        struct cfg_model *m = l->m;
        size_t h;
        int r;

        if (l->node_index_size) {
                for (h = str_hash(name) & (l->node_index_size - 1); l->node_index[h];
                     h = (h + 1) & (l->node_index_size - 1))
                        if (streq(m->nodes[l->node_index[h] - 1].name, name)) {
                                *ret = l->node_index[h] - 1;
                                return 0;
                        }
        }
        if (m->n_nodes >= CFG_MAX_NODES)
                return -E2BIG;
        if ((m->n_nodes + 1) * 2 > l->node_index_size && (r = node_index_grow(l)) < 0)
                return r;
        if ((r = GROW(m->nodes, l->cap_nodes, m->n_nodes + 1)) < 0)
                return r;
        m->nodes[m->n_nodes] = (struct cfg_node){ .name = strdup(name) };
        if (!m->nodes[m->n_nodes].name)
                return -ENOMEM;
        for (h = str_hash(name) & (l->node_index_size - 1); l->node_index[h]; h = (h + 1) & (l->node_index_size - 1))
                ;
        l->node_index[h] = (uint32_t)m->n_nodes + 1;
        *ret = (uint32_t)m->n_nodes++;
        return 0;
}

int loader_add_block(struct loader *l, const struct cfg_prefix *cidr, uint32_t node, enum block_origin origin,
                     uint32_t line)
{
        int r;

        if (l->n_raw >= CFG_MAX_BLOCKS)
                return cfg_error(l->diags, l->y.file, line, 0, "more than %d blocks", CFG_MAX_BLOCKS);
        if ((r = GROW(l->raw, l->cap_raw, l->n_raw + 1)) < 0)
                return r;
        l->raw[l->n_raw++] = (struct raw_block){
                .cidr = *cidr,
                .node = node,
                .origin = (uint8_t)origin,
                .src = { .file = l->file, .line = line },
        };
        return 0;
}

int loader_add_borrowed(struct loader *l, const struct cfg_prefix *addr, uint32_t node, uint32_t block_node,
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

/* ---- reading files ---- */

static int add_file(struct loader *l, const char *path, size_t max)
{
        struct cfg_model *m = l->m;
        int r;

        if (m->n_files >= max)
                return cfg_error(l->diags, path, 0, 0, "more than %zu resource %s", max,
                                 max == CFG_MAX_FILES ? "files" : "keys");
        if ((r = GROW(m->files, l->cap_files, m->n_files + 1)) < 0)
                return r;
        m->files[m->n_files] = strdup(path);
        if (!m->files[m->n_files])
                return -ENOMEM;
        l->file = (uint32_t)m->n_files++;
        l->y.file = m->files[l->file];
        return 0;
}

/* A failed resource is reported and the next one read, so that one run names every
 * problem; only running out of memory stops at once. */
static int load_resource_go_on(const struct ynode *n, void *userdata)
{
        int r = load_resource(n, userdata);

        return r == -ENOMEM ? r : 0;
}

static int load_path_file(struct loader *l, const char *path)
{
        int r = add_file(l, path, CFG_MAX_FILES);

        if (r < 0)
                return r;
        r = ydoc_load_file(path, YDOC_LIST_ITEMS, load_resource_go_on, l, l->diags);
        return r == -ENOMEM ? r : 0;
}

static bool yaml_name(const char *n)
{
        size_t len = strlen(n);

        if (n[0] == '.')
                return false; /* hidden: editors' temp files, ConfigMap's ..data */
        return (len > 5 && streq(n + len - 5, ".yaml")) || (len > 4 && streq(n + len - 4, ".yml"));
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One resource file. Symlinks are followed (ConfigMap volumes are made of them). An
 * entry that cannot be read as a file must not silently drop its resources (their
 * routes would be withdrawn): it is an error. So is an empty file: calicoctl and
 * kubectl never print one, and a file caught half-written must not withdraw anything.
 * Only an entry deleted since the folder was listed is a real change (in_dir). */
static int load_entry(struct loader *l, const char *path, bool in_dir)
{
        struct stat st;

        if (stat(path, &st) < 0) {
                int e = errno;

                if (e == ENOENT && lstat(path, &st) == 0)
                        cfg_error(l->diags, path, 0, 0, "broken symbolic link: its target is missing");
                else if (!(in_dir && e == ENOENT))
                        cfg_error(l->diags, path, 0, 0, "cannot read resources: %s", strerror(e));
                return 0;
        }
        if (!S_ISREG(st.st_mode)) {
                cfg_error(l->diags, path, 0, 0, "not a regular file (%s)",
                          S_ISDIR(st.st_mode) ? "a directory: only one folder level is read" : "a special file");
                return 0;
        }
        if (st.st_size == 0) {
                cfg_error(l->diags, path, 0, 0, "empty file refused (a half-written file must not withdraw routes)");
                return 0;
        }
        return load_path_file(l, path);
}

static int load_dir(struct loader *l, const char *dir)
{
        _cleanup_(freep) char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        DIR *d;
        int r = 0;

        d = opendir(dir);
        if (!d)
                return cfg_error(l->diags, dir, 0, 0, "cannot read directory: %s", strerror(errno));
        while ((de = readdir(d))) {
                if (!yaml_name(de->d_name))
                        continue;
                if (n >= CFG_MAX_FILES) {
                        r = cfg_error(l->diags, dir, 0, 0, "more than %d files", CFG_MAX_FILES);
                        break;
                }
                if ((r = GROW(names, cap, n + 1)) < 0 || asprintf(&names[n], "%s/%s", dir, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        closedir(d);
        if (n > 1)
                qsort(names, n, sizeof(*names), name_cmp);
        for (size_t i = 0; i < n && r >= 0; i++)
                r = load_entry(l, names[i], true);
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        return r;
}

static int load_path(struct loader *l, const char *path)
{
        struct stat st;

        if (stat(path, &st) < 0)
                return cfg_error(l->diags, path, 0, 0, "cannot read resources: %s", strerror(errno));
        if (S_ISDIR(st.st_mode))
                return load_dir(l, path);
        return load_entry(l, path, false);
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

static int check_pools(struct loader *l, size_t errors_before)
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

static int raw_cmp(const void *a, const void *b)
{
        const struct raw_block *x = a, *y = b;
        int c = cfg_prefix_cmp(&x->cidr, &y->cidr);

        if (c)
                return c;
        /* IPAMBlock affinity is Calico's authority; it sorts first and wins. */
        if (x->origin != y->origin)
                return x->origin == BLOCK_FROM_IPAMBLOCK ? -1 : (y->origin == BLOCK_FROM_IPAMBLOCK ? 1 : 0);
        return src_before(x->src, y->src) ? -1 : (src_before(y->src, x->src) ? 1 : 0);
}

static int block_conflict(struct loader *l, const struct raw_block *a, const struct raw_block *b, const char *what)
{
        struct cfg_model *m = l->m;
        char p[CFG_PREFIX_STRLEN], q[CFG_PREFIX_STRLEN];

        cfg_prefix_fmt(&a->cidr, p, sizeof(p));
        cfg_prefix_fmt(&b->cidr, q, sizeof(q));
        return cfg_error(l->diags, cfg_model_file(m, b->src), b->src.line, 0,
                         "block %s of node %s %s block %s of node %s (%s:%u)", q, m->nodes[b->node].name, what, p,
                         m->nodes[a->node].name, cfg_model_file(m, a->src), a->src.line);
}

static int build_blocks(struct loader *l)
{
        struct cfg_model *m = l->m;
        size_t outside = 0, kept = 0;
        const struct raw_block *prev = NULL;
        int ret = 0;

        if (l->n_raw > 1)
                qsort(l->raw, l->n_raw, sizeof(*l->raw), raw_cmp);
        m->blocks = calloc(l->n_raw ? l->n_raw : 1, sizeof(*m->blocks));
        if (!m->blocks)
                return -ENOMEM;
        for (size_t i = 0; i < l->n_raw; i++) {
                const struct raw_block *rb = &l->raw[i];
                const struct cfg_pool *pool;
                char buf[CFG_PREFIX_STRLEN];

                if (prev && cfg_prefix_eq(&prev->cidr, &rb->cidr)) {
                        /* An IPAMBlock's affinity overrules affinities and podCIDRs
                         * (IPAMBlocks sort first); two IPAMBlocks, or two of the others,
                         * naming different nodes are a conflict. */
                        bool overruled = prev->origin == BLOCK_FROM_IPAMBLOCK && rb->origin != BLOCK_FROM_IPAMBLOCK;

                        if (prev->node != rb->node && !overruled)
                                ret = block_conflict(l, prev, rb, "is also claimed as");
                        continue; /* the same block again, or overruled by its IPAMBlock */
                }
                if (prev && cfg_prefix_overlaps(&prev->cidr, &rb->cidr)) {
                        ret = block_conflict(l, prev, rb, "overlaps");
                        continue;
                }
                prev = rb;
                pool = cfg_model_pool_for(m, &rb->cidr);
                if (!pool) {
                        m->n_skipped++;
                        if (++outside <= 10) {
                                cfg_prefix_fmt(&rb->cidr, buf, sizeof(buf));
                                cfg_notice(l->diags, cfg_model_file(m, rb->src), rb->src.line, 0,
                                           "skipping block %s of node %s: it lies in no pool", buf,
                                           m->nodes[rb->node].name);
                        }
                        continue;
                }
                m->blocks[kept++] = (struct cfg_block){
                        .cidr = rb->cidr,
                        .node = rb->node,
                        .pool = (uint32_t)(pool - m->pools),
                        .src = rb->src,
                };
        }
        if (outside > 10)
                cfg_notice(l->diags, NULL, 0, 0, "skipped %zu more blocks that lie in no pool", outside - 10);
        m->n_blocks = kept;
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
static int build_borrowed(struct loader *l)
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

/* Sort nodes by name for binary search and renumber the blocks' references. */
static int sort_nodes(struct cfg_model *m)
{
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
        free(m->nodes);
        m->nodes = sorted;
        return 0;
}

static int check_felix(struct loader *l)
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

static void loader_done(struct loader *l)
{
        free(l->raw);
        free(l->borrowed);
        free(l->node_index);
}

static int finish(struct loader *l, size_t errors_before)
{
        int r;

        if ((r = check_pools(l, errors_before)) == -ENOMEM || (r = check_felix(l)) == -ENOMEM)
                return r;
        if ((r = build_blocks(l)) == -ENOMEM || (r = build_borrowed(l)) < 0)
                return r;
        if ((r = sort_nodes(l->m)) < 0)
                return r;
        return l->diags->n_errors > errors_before ? -EINVAL : 0;
}

static int model_new(struct cfg_settings *settings, struct cfg_model **ret)
{
        struct cfg_model *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        m->settings = *settings;
        *ret = m;
        return 0;
}

/* The part every source shares: a loader over a new model, the source's feed (files,
 * buffers or etcd keys), the final validation; on failure the settings are handed back
 * untouched, on success the model owns them. */
static int model_build(struct cfg_settings *settings, int (*feed)(struct loader *l, const void *ctx),
                       const void *ctx, struct cfg_model **ret, struct cfg_diags *diags)
{
        struct cfg_diags local = {};
        struct loader l = { .diags = diags ? diags : &local };
        size_t errors_before = l.diags->n_errors;
        int r;

        if ((r = model_new(settings, &l.m)) < 0)
                return r;
        l.y.diags = l.diags;
        r = feed(&l, ctx);
        if (r >= 0 || r == -EINVAL)
                r = finish(&l, errors_before);
        loader_done(&l);
        cfg_diags_clear(&local);
        if (r < 0) {
                l.m->settings = (struct cfg_settings){};
                cfg_model_free(l.m);
                return r;
        }
        *settings = (struct cfg_settings){};
        *ret = l.m;
        return 0;
}

static int feed_settings(struct loader *l, const void *ctx)
{
        const struct cfg_settings *s = ctx;
        int r = 0;

        for (size_t i = 0; i < s->n_resources && r >= 0; i++)
                r = load_path(l, s->resources[i]);
        return r;
}

int cfg_model_from_settings(struct cfg_settings *settings, struct cfg_model **ret, struct cfg_diags *diags)
{
        return model_build(settings, feed_settings, settings, ret, diags);
}

struct buffers {
        const char *const *names, *const *bufs;
        const size_t *sizes;
        size_t n;
};

static int feed_buffers(struct loader *l, const void *ctx)
{
        const struct buffers *b = ctx;
        int r = 0;

        for (size_t i = 0; i < b->n && r >= 0; i++) {
                r = add_file(l, b->names[i], CFG_MAX_FILES);
                if (r >= 0)
                        r = ydoc_load_buffer(b->names[i], b->bufs[i], b->sizes[i], YDOC_LIST_ITEMS, load_resource_go_on,
                                             l, l->diags);
                if (r == -EINVAL)
                        r = 0;
        }
        return r;
}

int cfg_model_from_buffers(struct cfg_settings *settings, const char *const *names, const char *const *bufs,
                           const size_t *sizes, size_t n, struct cfg_model **ret, struct cfg_diags *diags)
{
        const struct buffers b = { names, bufs, sizes, n };

        return model_build(settings, feed_buffers, &b, ret, diags);
}

struct kvs {
        const struct cfg_kv *v;
        size_t n;
};

static int feed_kvs(struct loader *l, const void *ctx)
{
        const struct kvs *k = ctx;
        char *name = NULL;
        int r = 0;

        for (size_t i = 0; i < k->n && r >= 0; i++) {
                /* Each key stands for a file in diagnostics: "etcd:/calico/...". */
                if (asprintf(&name, "etcd:%s", k->v[i].key) < 0)
                        return -ENOMEM;
                r = add_file(l, name, CFG_MAX_KEYS);
                free(name);
                if (r >= 0)
                        r = load_etcd_kv(l, &k->v[i]);
                if (r == -EINVAL)
                        r = 0;
        }
        return r;
}

int cfg_model_from_kvs(struct cfg_settings *settings, const struct cfg_kv *kvs, size_t n, struct cfg_model **ret,
                       struct cfg_diags *diags)
{
        const struct kvs k = { kvs, n };

        return model_build(settings, feed_kvs, &k, ret, diags);
}

int cfg_model_load(const struct cfg_load_opts *opts, struct cfg_model **ret, struct cfg_diags *diags)
{
        struct cfg_settings s;
        const char *path = opts && opts->config_path ? opts->config_path : CFG_DEFAULT_CONFIG;
        bool explicit = opts && opts->config_path;
        int r;

        r = cfg_settings_load(path, explicit, opts ? opts->host_name : NULL, &s, diags);
        if (r < 0)
                return r;
        r = cfg_model_from_settings(&s, ret, diags);
        cfg_settings_clear(&s);
        return r;
}

void cfg_model_free(struct cfg_model *m)
{
        if (!m)
                return;
        cfg_settings_clear(&m->settings);
        for (size_t i = 0; i < m->n_files; i++)
                free(m->files[i]);
        free(m->files);
        for (size_t i = 0; i < m->n_pools; i++) {
                free(m->pools[i].name);
                free(m->pools[i].node_selector);
                sel_free(m->pools[i].selector);
        }
        free(m->pools);
        for (size_t i = 0; i < m->n_nodes; i++) {
                free(m->nodes[i].name);
                cfg_labels_clear(&m->nodes[i].labels);
        }
        free(m->nodes);
        free(m->blocks);
        free(m->borrowed);
        for (size_t i = 0; i < m->n_felix; i++)
                free(m->felix[i].name);
        free(m->felix);
        free(m);
}

/* ---- lookups ---- */

const struct cfg_prefix *cfg_node_addr(const struct cfg_node *n, int family)
{
        const struct cfg_prefix *a = family == AF_INET6 ? &n->addr6 : &n->addr;

        return a->family == family ? a : NULL;
}

const struct cfg_node *cfg_model_node(const struct cfg_model *m, const char *name)
{
        size_t lo = 0, hi = m->n_nodes;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(name, m->nodes[mid].name);

                if (c == 0)
                        return &m->nodes[mid];
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return NULL;
}

const struct cfg_node *cfg_model_self(const struct cfg_model *m)
{
        return cfg_model_node(m, m->settings.node_name);
}

const struct cfg_pool *cfg_model_pool_for(const struct cfg_model *m, const struct cfg_prefix *p)
{
        /* Pools are sorted and disjoint: the candidate is the last pool that starts at
         * or before p. */
        size_t lo = 0, hi = m->n_pools;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (cfg_prefix_cmp(&m->pools[mid].cidr, p) <= 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo == 0 || !cfg_prefix_contains(&m->pools[lo - 1].cidr, p))
                return NULL;
        return &m->pools[lo - 1];
}

const struct cfg_labels *cfg_model_self_labels(const struct cfg_model *m)
{
        static const struct cfg_labels none;
        const struct cfg_node *self = cfg_model_self(m);

        if (self && self->has_labels)
                return &self->labels;
        if (m->settings.has_node_labels)
                return &m->settings.node_labels;
        return &none;
}

static void felix_apply(struct cfg_felix *f, const struct cfg_felix *src)
{
        if (!src)
                return;
        if (src->ipip_enabled != CFG_UNSET)
                f->ipip_enabled = src->ipip_enabled;
        if (src->vxlan_enabled != CFG_UNSET)
                f->vxlan_enabled = src->vxlan_enabled;
        if (src->device_route_protocol >= 0)
                f->device_route_protocol = src->device_route_protocol;
}

struct cfg_felix cfg_model_felix(const struct cfg_model *m, const char *node_name)
{
        struct cfg_felix f = { .ipip_enabled = CFG_UNSET, .vxlan_enabled = CFG_UNSET, .device_route_protocol = -1 };
        const struct cfg_felix *def = NULL, *node = NULL;

        for (size_t i = 0; i < m->n_felix; i++) {
                const char *n = m->felix[i].name;

                if (streq(n, "default"))
                        def = &m->felix[i];
                else if (node_name && strncmp(n, "node.", 5) == 0 && streq(n + 5, node_name))
                        node = &m->felix[i];
        }
        felix_apply(&f, def);
        felix_apply(&f, node);
        return f;
}

const char *cfg_model_file(const struct cfg_model *m, struct cfg_src src)
{
        return src.file < m->n_files ? m->files[src.file] : "?";
}

const char *cfg_encap_name(enum cfg_encap e)
{
        switch (e) {
        case CFG_ENCAP_ALWAYS:
                return "Always";
        case CFG_ENCAP_CROSS_SUBNET:
                return "CrossSubnet";
        default:
                return "Never";
        }
}
