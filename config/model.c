/* The configuration model (model.h): freeing it and its lookups.
 *
 * Owns: the model once the loader (loader.c) has built it, which nothing but the
 * in-place updates (kvupdate.c) changes any more, and they keep the loader's sort:
 * every lookup here is a binary search over it. No I/O, no
 * logging. */
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>

#include "model.h"
#include "util.h"

struct cfg_name_chunk {
        struct cfg_name_chunk *next;
        size_t used, size;
        char data[];
};

void cfg_model_free(struct cfg_model *m)
{
        if (!m)
                return;
        cfg_settings_clear(&m->settings);
        cfg_model_drop_names(m);
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

/* ---- names ---- */

void cfg_model_drop_names(struct cfg_model *m)
{
        while (m->names) {
                struct cfg_name_chunk *c = m->names;

                m->names = c->next;
                free(c);
        }
        free(m->files);
        m->files = NULL;
        m->namer = NULL;
        m->namer_ctx = NULL;
}

#define NAME_CHUNK (64u << 10)

char *cfg_model_name(struct cfg_model *m, const char *s)
{
        size_t n = strlen(s) + 1;
        struct cfg_name_chunk *c = m->names;
        char *p;

        if (!c || c->size - c->used < n) {
                size_t size = n > NAME_CHUNK ? n : NAME_CHUNK;

                /* A long name gets a chunk of its own, behind the current one. */
                if (!(c = malloc(sizeof(*c) + size)))
                        return NULL;
                *c = (struct cfg_name_chunk){ .size = size };
                if (size > NAME_CHUNK && m->names) {
                        c->next = m->names->next;
                        m->names->next = c;
                } else {
                        c->next = m->names;
                        m->names = c;
                }
        }
        p = c->data + c->used;
        memcpy(p, s, n);
        c->used += n;
        return p;
}

/* ---- touched prefixes ---- */

int cfg_touched_add(struct cfg_touched *t, const struct cfg_prefix *p)
{
        int r;

        if ((r = GROW(t->v, t->cap, t->n + 1)) < 0)
                return r;
        t->v[t->n++] = *p;
        return 0;
}

static int touched_cmp(const void *a, const void *b)
{
        return cfg_prefix_cmp(a, b);
}

void cfg_touched_done(struct cfg_touched *t)
{
        size_t k = 0;

        if (t->n < 2)
                return;
        qsort(t->v, t->n, sizeof(*t->v), touched_cmp);
        for (size_t i = 1; i < t->n; i++)
                if (!cfg_prefix_eq(&t->v[i], &t->v[k]))
                        t->v[++k] = t->v[i];
        t->n = k + 1;
}

void cfg_touched_clear(struct cfg_touched *t)
{
        free(t->v);
        *t = (struct cfg_touched){};
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
        if (src->vxlan_enabled_v6 != CFG_UNSET)
                f->vxlan_enabled_v6 = src->vxlan_enabled_v6;
        if (src->device_route_protocol >= 0)
                f->device_route_protocol = src->device_route_protocol;
}

struct cfg_felix cfg_model_felix(const struct cfg_model *m, const char *node_name)
{
        struct cfg_felix f = { .ipip_enabled = CFG_UNSET,
                               .vxlan_enabled = CFG_UNSET,
                               .vxlan_enabled_v6 = CFG_UNSET,
                               .device_route_protocol = -1 };
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
        /* Names made on demand last four calls: a diagnostic names two at most and
         * copies them (diag.c). */
        static _Thread_local char made[4][512];
        static _Thread_local unsigned next;
        char *buf;

        if (src.file >= m->n_files)
                return "?";
        if (!m->namer)
                return m->files ? m->files[src.file] : "?";
        buf = made[next++ % 4];
        m->namer(m->namer_ctx, src.file, buf, sizeof(made[0]));
        return buf;
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
