/* The etcd v3 source (source.h) over the etcd client (etcd.c): a following source
 * keeps one client listing and watching on the daemon's loop, and builds each model
 * from its key→value cache; a one-shot source lists once at one revision, bounded in
 * time. A following source keeps the index of the last model it built
 * (config/kvupdate.c) and brings that model up to date in place with the keys the
 * watch changed since (source_update()); anything the index cannot take, or a list
 * since, asks for a full build. Owns only that adaptation: the protocol is etcd.c's,
 * HTTP is http.c's, the model's rules config/'s. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"
#include "load.h"
#include "source-impl.h"

struct etcd_source {
        struct source base;
        struct cfg_etcd conf;
        struct etcd *etcd;
        struct cfg_kv_index *ix;       /* following: of the last model built... */
        const struct cfg_model *ix_model; /* ...this one, while updates keep it exact */
        /* One-shot: the model loads as the list reads (etcd_sink), its diagnostics
         * kept apart until the list is whole (a list that starts over drops them). */
        struct cfg_loader *load;
        struct cfg_diags load_diags;
        char error[2400]; /* one-shot: why the list failed */
};

static void drop_index(struct etcd_source *s)
{
        cfg_kv_index_free(s->ix);
        s->ix = NULL;
        s->ix_model = NULL;
}

static void on_synced(struct etcd *e, void *userdata)
{
        struct source *src = userdata;

        (void)e;
        if (src->ops && src->ops->reachable)
                src->ops->reachable(src, src->userdata);
}

static void on_changed(struct etcd *e, void *userdata)
{
        struct source *src = userdata;

        (void)e;
        if (src->ops && src->ops->changed)
                src->ops->changed(src, src->userdata);
}

static void on_unreachable(struct etcd *e, const char *why, void *userdata)
{
        struct source *src = userdata;

        (void)e;
        if (src->ops && src->ops->unreachable)
                src->ops->unreachable(src, why, src->userdata);
}

static const struct etcd_ops client_ops = {
        .synced = on_synced,
        .changed = on_changed,
        .unreachable = on_unreachable,
};

static int sink_kv(const struct cfg_kv *kv, void *userdata)
{
        struct etcd_source *s = userdata;

        return s->load ? cfg_loader_add_kv(s->load, kv) : -ENOMEM;
}

static void sink_reset(struct etcd *e, void *userdata)
{
        struct etcd_source *s = userdata;

        cfg_loader_free(s->load);
        s->load = NULL;
        cfg_diags_clear(&s->load_diags);
        /* Out of memory: the first key says so (sink_kv() on no loader). Inputs are
         * named by the client's packed keys (13 MB of "etcd:KEY" at 100k blocks). */
        if (cfg_loader_new(s->base.settings, &s->load_diags, &s->load) >= 0)
                cfg_loader_name_on_demand(s->load, etcd_input_name, e);
}

static int etcd_source_start(struct source *src)
{
        struct etcd_source *s = (struct etcd_source *)src;
        char why[2300];
        int r;

        if (src->ev) {
                if ((r = etcd_new(src->ev, &s->conf, &client_ops, src, &s->etcd)) < 0)
                        return r;
                /* A cache kept for the daemon's life: IPAM and Node values as records. */
                etcd_compact(s->etcd);
                return etcd_start(s->etcd);
        }
        r = etcd_list_once(&s->conf, SOURCE_ONCE_TIMEOUT_USEC,
                           src->settings ? &(const struct etcd_sink){ sink_kv, sink_reset, s } : NULL, &s->etcd, why,
                           sizeof(why));
        if (r < 0)
                snprintf(s->error, sizeof(s->error), "datastore unreachable: %s",
                         r == -EHOSTUNREACH ? why : strerror(-r));
        return r;
}

static int add_key(const struct cfg_kv *kv, void *userdata)
{
        return cfg_loader_add_kv(userdata, kv);
}

/* The model of the cache as it is: its keys in order, each named on demand by the
 * cache (no copy of 210k names); a following source keeps the index too. */
static int build(struct etcd_source *s, struct cfg_settings *set, bool indexed, struct cfg_model **ret,
                 struct cfg_diags *d)
{
        struct etcd_cache *c = etcd_cache(s->etcd);
        struct cfg_loader *l;
        int r;

        /* Keys numbered by their place: the numbers the load gives them. */
        if ((r = etcd_cache_compact(c)) < 0)
                return r;
        /* The list's pages (ETCD_PAGE decoded keys each, freed as the cache took them) and
         * the cache's old table leave free pages inside the heap that malloc keeps (its
         * trim threshold only gives back the top): hand them back before the model is
         * built on top (100k blocks: 8 MB of 10), and the loader's arrays after it. */
        malloc_trim(0);
        if ((r = cfg_loader_new(set, d, &l)) < 0)
                return r;
        cfg_loader_name_on_demand(l, etcd_cache_name, c);
        if (indexed)
                cfg_loader_keep_index(l);
        /* A key holds a block claim at most (untouched room is not resident). */
        if ((r = cfg_loader_reserve(l, etcd_cache_n(c), etcd_cache_n(c))) < 0 ||
            (r = etcd_cache_walk(c, add_key, l)) < 0) {
                cfg_loader_free(l);
                return r;
        }
        r = indexed ? cfg_loader_finish_indexed(l, ret, &s->ix) : cfg_loader_finish(l, ret);
        malloc_trim(0);
        return r;
}

static int etcd_source_model(struct source *src, struct cfg_settings *set, struct cfg_model **ret,
                             struct cfg_diags *d)
{
        struct etcd_source *s = (struct etcd_source *)src;
        int r;

        if (!etcd_has_data(s->etcd))
                return 0;
        if (s->load) {
                r = cfg_loader_finish(TAKE_PTR(s->load), ret);
                /* Only the load's diagnostics name inputs; the client goes first. */
                if (r >= 0)
                        cfg_model_drop_names(*ret);
                /* The list's pages and the loader's arrays, as in build(): 7 MB of free
                 * heap at 100k blocks that the plan (mmap'd) would not reuse. */
                malloc_trim(0);
                for (size_t i = 0; i < s->load_diags.n; i++) {
                        const struct cfg_diag *g = &s->load_diags.v[i];

                        cfg_diag_add(d, g->severity, g->file, g->line, g->column, "%s", g->message);
                }
                if (d)
                        d->n_dropped += s->load_diags.n_dropped;
                cfg_diags_clear(&s->load_diags);
                return r < 0 ? r : 1;
        }
        drop_index(s);
        if (src->ev) {
                /* The model is the cache as it is now: changes before this are in it. */
                etcd_changes_reset(s->etcd);
                r = build(s, set, true, ret, d);
                if (r >= 0)
                        s->ix_model = *ret;
        } else
                r = build(s, set, false, ret, d);
        return r < 0 ? r : 1;
}

/* Changes kept on top of the packed cache past this are packed by a full build (it
 * renumbers the keys): the cache does not grow with churn. At 210k keys that is 6.5k
 * changes (about 0.8 MB on top) for one full build (under a second of CPU). */
static size_t max_changed(const struct etcd_cache *c)
{
        size_t n = etcd_cache_n(c) / 32;

        return n > 4096 ? n : 4096;
}

static int etcd_source_update(struct source *src, struct cfg_model *m, struct cfg_touched *t, struct cfg_diags *d)
{
        struct etcd_source *s = (struct etcd_source *)src;
        _cleanup_(freep) struct cfg_kv *kvs = NULL;
        size_t n;
        int r;

        /* Only the model the index describes, and only while it is exact. */
        if (!s->ix || s->ix_model != m || !s->etcd)
                return -EAGAIN;
        if (etcd_cache_n_changed(etcd_cache(s->etcd)) > max_changed(etcd_cache(s->etcd))) {
                drop_index(s);
                return -EAGAIN;
        }
        if ((r = etcd_changes(s->etcd, &kvs, &n)) < 0) {
                drop_index(s);
                return r;
        }
        if (n == 0)
                return 0;
        r = cfg_model_update_kvs(m, s->ix, kvs, n, t, d);
        etcd_changes_reset(s->etcd);
        /* Refused or half done: the next model is a full build. */
        if (r < 0)
                drop_index(s);
        return r;
}

static void etcd_source_refresh(struct source *src)
{
        struct etcd_source *s = (struct etcd_source *)src;

        if (s->etcd && etcd_has_data(s->etcd))
                etcd_relist(s->etcd);
}

static bool etcd_source_same(const struct source *src, const struct cfg_source *conf)
{
        const struct etcd_source *s = (const struct etcd_source *)src;

        return conf->type == CFG_DATASTORE_ETCDV3 && cfg_etcd_eq(&s->conf, &conf->etcd);
}

static void etcd_source_origin(const struct source *src, struct source_origin *ret)
{
        const struct etcd_source *s = (const struct etcd_source *)src;

        *ret = (struct source_origin){ .type = CFG_DATASTORE_ETCDV3, .unit = "key" };
        if (etcd_has_data(s->etcd)) {
                snprintf(ret->endpoint, sizeof(ret->endpoint), "%s", etcd_endpoint(s->etcd));
                ret->revision = etcd_revision(s->etcd);
                ret->n_keys = etcd_n_keys(s->etcd);
        } else
                cfg_etcd_endpoints_fmt(&s->conf, ret->endpoint, sizeof(ret->endpoint));
}

static bool etcd_source_waiting(const struct source *src, char *buf, size_t size)
{
        const struct etcd_source *s = (const struct etcd_source *)src;
        char eps[512];

        if (etcd_has_data(s->etcd))
                return false;
        cfg_etcd_endpoints_fmt(&s->conf, eps, sizeof(eps));
        snprintf(buf, size, "the datastore (etcdv3 %s)", eps);
        return true;
}

static const char *etcd_source_error(const struct source *src)
{
        const struct etcd_source *s = (const struct etcd_source *)src;

        return s->error[0] ? s->error : NULL;
}

static void etcd_source_free(struct source *src)
{
        struct etcd_source *s = (struct etcd_source *)src;

        drop_index(s);
        etcd_free(s->etcd);
        cfg_loader_free(s->load);
        cfg_diags_clear(&s->load_diags);
        cfg_etcd_clear(&s->conf);
        free(s);
}

static const struct source_impl etcd_impl = {
        .type = CFG_DATASTORE_ETCDV3,
        .start = etcd_source_start,
        .model = etcd_source_model,
        .update = etcd_source_update,
        .refresh = etcd_source_refresh,
        .same = etcd_source_same,
        .origin = etcd_source_origin,
        .waiting = etcd_source_waiting,
        .error = etcd_source_error,
        .free = etcd_source_free,
};

int etcd_source_new(const struct cfg_etcd *conf, struct source **ret)
{
        struct etcd_source *s;
        int r;

        if (!conf->n_endpoints)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->base.impl = &etcd_impl;
        if ((r = cfg_etcd_copy(conf, &s->conf)) < 0) {
                free(s);
                return r;
        }
        *ret = &s->base;
        return 0;
}
