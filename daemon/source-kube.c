/* The Kubernetes datastore source (source.h): core v1 Nodes and Calico's IPPools,
 * BlockAffinities, IPAMBlocks and FelixConfigurations, read from the Kubernetes API
 * over http.c, the way Calico's own agents read them (client-go's list and watch):
 *
 * - credentials from a kubeconfig (config/kubeconfig.c), with calicoctl's overrides
 *   (k8sAPIEndpoint, k8sCAFile, ...), read again at the start of every round and
 *   whenever the kubeconfig or a file it names changes (inotify, watch.c): a rotated
 *   token is used without a restart, the watches opened again with it;
 * - the API group as libcalico-go/lib/backend/k8s chooses it (UsingV3CRDs):
 *   calicoAPIGroup when set, else projectcalico.org/v3 when /apis lists it and not
 *   crd.projectcalico.org, else crd.projectcalico.org/v1;
 * - each kind listed in pages (limit/continue; an expired continue token lists that
 *   kind again), then watched from its list's resourceVersion with bookmarks; a watch
 *   that ends is resumed from the last version seen; a 410 (Gone/Expired) lists that
 *   kind again (the others go on being watched);
 * - every failure ends the round: the cache (the last model's input) is kept, the
 *   owner is told, and the next round starts after a jittered delay that doubles up to
 *   a cap and starts small again only after a healthy while.
 *
 * It keeps, per object, only what the model needs (kube_trim()), its name and that JSON
 * packed (kube_pack()), so 100k BlockAffinities and 5,000 Nodes stay small (about 60
 * bytes per BlockAffinity) and a Node heartbeat changes nothing. A following source
 * keeps the index of the last model it built (config/kvupdate.c) and the objects the
 * watches changed since, and brings that model up to date in place (source_update()):
 * a BlockAffinity or IPAMBlock event costs its block, not a load of every object.
 * Owns no logging above debug: the loop reports. */
#include "source-kube.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include "files.h"
#include "http.h"
#include "kubeconfig.h"
#include "load.h"
#include "log.h"
#include "source-impl.h"
#include "util.h"
#include "watch.h"

#define RETRY_MIN_USEC (1000 * 1000ULL)
#define RETRY_MAX_USEC (30 * 1000 * 1000ULL)
#define HEALTHY_USEC (60 * 1000 * 1000ULL) /* the back-off starts small again after this */
#define WATCH_MIN_LIFE_USEC (1000 * 1000ULL) /* a shorter watch that brought nothing is a failure */
/* The server ends a watch after this (timeoutSeconds); it is then resumed. One that
 * has not ended a thirtieth later (60 s; at least 30 s, the stream's connect and TLS
 * timeout: the deadline counts from the start of the transfer, and the server may
 * queue a watch a few seconds before its clock starts) is wedged (an API server or a
 * proxy that holds the stream and says nothing, which TCP keepalive does not see
 * through a proxy): the client ends it and resumes. CALICO_UNDERLAY_KUBE_WATCH_TIMEOUT
 * (seconds) sets it. */
#define WATCH_TIMEOUT_S 1800
#define MAX_TOKEN 65536
#define CREDENTIALS_SETTLE_USEC (100 * 1000ULL) /* a burst of writes to the credentials is one change */

static const struct {
        const char *plural, *kind;
        bool core;
} kinds[KUBE_N_KINDS] = {
        [KUBE_NODES] = { "nodes", "Node", true },
        [KUBE_IPPOOLS] = { "ippools", "IPPool", false },
        [KUBE_AFFINITIES] = { "blockaffinities", "BlockAffinity", false },
        [KUBE_BLOCKS] = { "ipamblocks", "IPAMBlock", false },
        [KUBE_FELIX] = { "felixconfigurations", "FelixConfiguration", false },
};

/* ---- what is kept of an object ---- */

static json_object *jget(json_object *o, const char *key)
{
        json_object *v = NULL;

        return o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *jstr(json_object *o)
{
        return o && json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

/* dst[key] = a copy of src[key], when src has it. */
static int copy_key(json_object *dst, json_object *src, const char *key)
{
        json_object *v = jget(src, key), *c = NULL;

        if (!v)
                return 0;
        if (json_object_deep_copy(v, &c, NULL) < 0)
                return -ENOMEM;
        json_object_object_add(dst, key, c);
        return 0;
}

static int trim_node(json_object *obj, json_object *meta, json_object *out)
{
        json_object *ann = jget(jget(obj, "metadata"), "annotations"), *spec, *status, *addrs, *keep;
        int r;

        if ((r = copy_key(meta, jget(obj, "metadata"), "labels")) < 0)
                return r;
        if (ann && json_object_is_type(ann, json_type_object)) {
                json_object *a = json_object_new_object();

                json_object_object_foreach(ann, k, v) if (strncmp(k, "projectcalico.org/", 18) == 0)
                        json_object_object_add(a, k, json_object_get(v));
                json_object_object_add(meta, "annotations", a);
        }
        spec = json_object_new_object();
        if ((r = copy_key(spec, jget(obj, "spec"), "podCIDR")) < 0 || (r = copy_key(spec, jget(obj, "spec"), "podCIDRs")) < 0)
                return r;
        json_object_object_add(out, "spec", spec);
        addrs = jget(jget(obj, "status"), "addresses");
        if (!addrs || !json_object_is_type(addrs, json_type_array))
                return 0;
        keep = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(addrs); i++) {
                json_object *a = json_object_array_get_idx(addrs, i);
                const char *type = jstr(jget(a, "type"));

                if (type && streq(type, "InternalIP"))
                        json_object_array_add(keep, json_object_get(a));
        }
        status = json_object_new_object();
        json_object_object_add(status, "addresses", keep);
        json_object_object_add(out, "status", status);
        return 0;
}

/* An IPAMBlock's spec without what routing does not read: of each attribute, only
 * the node that hosts a borrowed address (secondary.node). */
static int trim_block_spec(json_object *spec, json_object *out)
{
        static const char *const keys[] = { "cidr", "affinity", "deleted", "allocations" };
        json_object *s = json_object_new_object(), *attrs = jget(spec, "attributes");
        int r;

        json_object_object_add(out, "spec", s);
        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                if ((r = copy_key(s, spec, keys[i])) < 0)
                        return r;
        if (!attrs || !json_object_is_type(attrs, json_type_array))
                return copy_key(s, spec, "attributes");
        json_object *a = json_object_new_array();

        json_object_object_add(s, "attributes", a);
        for (size_t i = 0; i < json_object_array_length(attrs); i++) {
                json_object *node = jget(jget(json_object_array_get_idx(attrs, i), "secondary"), "node");
                json_object *one = json_object_new_object();

                if (node) {
                        json_object *sec = json_object_new_object();

                        json_object_object_add(sec, "node", json_object_get(node));
                        json_object_object_add(one, "secondary", sec);
                }
                json_object_array_add(a, one);
        }
        return 0;
}

int kube_trim(enum kube_kind kind, const char *api_version, json_object *obj, char **ret_name, char **ret_json)
{
        const char *name = jstr(jget(jget(obj, "metadata"), "name"));
        json_object *out, *meta;
        char *n, *j;
        int r = 0;

        if (!name || !*name)
                return -EINVAL;
        out = json_object_new_object();
        meta = json_object_new_object();
        if (!out || !meta) {
                json_object_put(out);
                json_object_put(meta);
                return -ENOMEM;
        }
        json_object_object_add(out, "apiVersion", json_object_new_string(api_version));
        json_object_object_add(out, "kind", json_object_new_string(kinds[kind].kind));
        json_object_object_add(meta, "name", json_object_new_string(name));
        json_object_object_add(out, "metadata", meta);
        if (kind == KUBE_NODES)
                r = trim_node(obj, meta, out);
        else if (kind == KUBE_BLOCKS && jget(obj, "spec") && json_object_is_type(jget(obj, "spec"), json_type_object))
                r = trim_block_spec(jget(obj, "spec"), out);
        else
                r = copy_key(out, obj, "spec");
        if (r >= 0) {
                n = strdup(name);
                j = strdup(json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
                if (!n || !j) {
                        free(n);
                        free(j);
                        r = -ENOMEM;
                } else {
                        *ret_name = n;
                        *ret_json = j;
                }
        }
        json_object_put(out);
        return r;
}

/* ---- packing: what every object of a kind repeats, one byte each ---- */

/* json-c escapes every byte below 0x20 in the JSON it writes, so those bytes are free
 * to stand for the fragments the trimmed objects repeat: a BlockAffinity's 85 bytes
 * (after its envelope) become 29. Packing is deterministic (the longest
 * fragment first at each place), so the same JSON packs to the same bytes. */
#define FRAG(s) { s, sizeof(s) - 1 }
static const struct {
        const char *s;
        size_t len;
} frags[] = {
        FRAG("},\"spec\":{"),
        FRAG("\"cidr\":\""),
        FRAG("\"node\":\""),
        FRAG("\"state\":\"confirmed\""),
        FRAG("\"state\":\"pending\""),
        FRAG("\"deleted\":\"false\""),
        FRAG("\"deleted\":false"),
        FRAG("\"deleted\":\"true\""),
        FRAG("\"affinity\":\"host:"),
        FRAG("\"allocations\":["),
        FRAG("\"attributes\":["),
        FRAG("{\"secondary\":{\"node\":\""),
        FRAG(",\"labels\":{"),
        FRAG("\"kubernetes.io/hostname\":\""),
        FRAG("\"kubernetes.io/os\":\"linux\""),
        FRAG("\"kubernetes.io/arch\":\"amd64\""),
        FRAG("\"beta.kubernetes.io/"),
        FRAG("node-role.kubernetes.io/"),
        FRAG("topology.kubernetes.io/"),
        FRAG("},\"annotations\":{\"projectcalico.org/"),
        FRAG("\"projectcalico.org/"),
        FRAG("IPv4Address\":\""),
        FRAG("IPv6Address\":\""),
        FRAG("\"spec\":{\"podCIDR\":\""),
        FRAG("\",\"podCIDRs\":[\""),
        FRAG("\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\""),
        FRAG("{\"type\":\"InternalIP\",\"address\":\""),
        FRAG("\"}]}}"),
        FRAG("\"}}"),
        FRAG("null,"),
};
_Static_assert(ELEMENTSOF(frags) < 0x20, "a fragment's byte is below 0x20");

size_t kube_pack(const char *json, char *out)
{
        size_t j = 0;

        for (const char *p = json; *p;) {
                size_t best = 0, best_len = 0;

                if ((unsigned char)*p < 0x20)
                        return 0; /* not json-c's output: kept as it is */
                for (size_t f = 0; f < ELEMENTSOF(frags); f++)
                        if (frags[f].len > best_len && *p == frags[f].s[0] && strncmp(p, frags[f].s, frags[f].len) == 0) {
                                best = f + 1;
                                best_len = frags[f].len;
                        }
                if (best) {
                        out[j++] = (char)best;
                        p += best_len;
                } else
                        out[j++] = *p++;
        }
        out[j] = '\0';
        return j;
}

size_t kube_unpack(const char *packed, char *out)
{
        size_t j = 0;

        for (const unsigned char *p = (const unsigned char *)packed; *p; p++)
                if (*p < 0x20 && *p - 1u < ELEMENTSOF(frags)) {
                        if (out)
                                memcpy(out + j, frags[*p - 1].s, frags[*p - 1].len);
                        j += frags[*p - 1].len;
                } else {
                        if (out)
                                out[j] = (char)*p;
                        j++;
                }
        if (out)
                out[j] = '\0';
        return j;
}

/* ---- the cache: name -> trimmed JSON, per kind ---- */

/* Per object: its name, then its JSON, packed. When the JSON starts with the
 * envelope every object of its kind has ({"apiVersion":..,"kind":..,"metadata":
 * {"name":NAME), only the rest is kept (bare) and the envelope is written again for
 * the model; the kind (the map) and the model's name for the object
 * ("kubernetes:PLURAL/NAME") are not kept either. Objects are laid end to end in
 * blocks of their map (no malloc header and rounding each): at 100k BlockAffinities
 * about 60 bytes each. A replaced or deleted object's bytes are garbage until there
 * is as much garbage as live objects: the map is then copied into new blocks. */
enum {
        OBJ_BARE = 1 << 0,
        OBJ_PACKED = 1 << 1,
        OBJ_KIND_SHIFT = 4, /* the kind in the high bits */
};

struct obj {
        uint32_t len;      /* of the JSON as kept */
        uint32_t input;    /* its input number in the model (kube_source_update()) */
        uint16_t name_len;
        uint8_t flags;     /* OBJ_*, the kind */
        char name[];       /* NAME "\0" then the JSON (or its rest), packed or not, "\0" */
};

_Static_assert(_Alignof(struct obj) <= 4, "objects are laid out 4-byte aligned");

#define ARENA_BLOCK (64u << 10)
#ifndef ARENA_COMPACT_MIN
#define ARENA_COMPACT_MIN (1u << 20) /* garbage below this is left alone (tests set less) */
#endif

struct arena_block {
        struct arena_block *next;
        size_t used, size;
        _Alignas(8) char data[];
};

struct omap {
        struct obj **slots; /* open addressing, linear probing */
        size_t size, n;
        struct arena_block *blocks; /* the objects; the first has room */
        size_t live, garbage;       /* bytes of objects in use, and no longer */
};

static const char *obj_json(const struct obj *o)
{
        return o->name + o->name_len + 1;
}

static size_t obj_size(const struct obj *o)
{
        return (sizeof(*o) + o->name_len + 1 + o->len + 1 + 3) & ~(size_t)3; /* struct obj's alignment */
}

static void arena_free(struct arena_block *b)
{
        while (b) {
                struct arena_block *next = b->next;

                free(b);
                b = next;
        }
}

/* Room for size bytes (a multiple of 4) in m's blocks: a large object gets a block of
 * its own, behind the current one. */
static void *arena_alloc(struct omap *m, size_t size)
{
        struct arena_block *b = m->blocks, *nb;

        if (b && b->size - b->used >= size) {
                b->used += size;
                return b->data + b->used - size;
        }
        if (!(nb = malloc(sizeof(*nb) + (size > ARENA_BLOCK / 4 ? size : ARENA_BLOCK))))
                return NULL;
        nb->size = size > ARENA_BLOCK / 4 ? size : ARENA_BLOCK;
        nb->used = size;
        if (size > ARENA_BLOCK / 4 && b) {
                nb->next = b->next;
                b->next = nb;
        } else {
                nb->next = b;
                m->blocks = nb;
        }
        return nb->data;
}

static void omap_clear(struct omap *m)
{
        free(m->slots);
        arena_free(m->blocks);
        *m = (struct omap){};
}

/* Every live object copied into new blocks, the old ones freed. On failure nothing
 * changes (the garbage stays). */
static void omap_compact(struct omap *m)
{
        _cleanup_(freep) struct obj **moved = malloc((m->n ? m->n : 1) * sizeof(*moved));
        struct omap c = {};
        size_t n = 0;

        if (!moved)
                return;
        for (size_t i = 0; i < m->size; i++) {
                if (!m->slots[i])
                        continue;
                if (!(moved[n] = arena_alloc(&c, obj_size(m->slots[i])))) {
                        arena_free(c.blocks);
                        return;
                }
                memcpy(moved[n++], m->slots[i], obj_size(m->slots[i]));
        }
        n = 0;
        for (size_t i = 0; i < m->size; i++)
                if (m->slots[i])
                        m->slots[i] = moved[n++];
        arena_free(m->blocks);
        m->blocks = c.blocks;
        m->garbage = 0;
}

static void omap_drop(struct omap *m, const struct obj *o)
{
        m->live -= obj_size(o);
        m->garbage += obj_size(o);
        if (m->garbage >= ARENA_COMPACT_MIN && m->garbage > m->live)
                omap_compact(m);
}

static size_t omap_find(const struct omap *m, const char *key)
{
        size_t i = str_hash(key) & (m->size - 1);

        while (m->slots[i] && !streq(m->slots[i]->name, key))
                i = (i + 1) & (m->size - 1);
        return i;
}

static int omap_grow(struct omap *m)
{
        struct omap g = { .size = m->size ? m->size * 2 : 64 };

        if (!(g.slots = calloc(g.size, sizeof(*g.slots))))
                return -ENOMEM;
        for (size_t i = 0; i < m->size; i++)
                if (m->slots[i])
                        g.slots[omap_find(&g, m->slots[i]->name)] = m->slots[i];
        free(m->slots);
        m->slots = g.slots;
        m->size = g.size;
        return 0;
}

/* Insert or replace with a copy of o. 1 when the map changed, 0 when the same object
 * was there already. */
static int omap_put(struct omap *m, const struct obj *o)
{
        struct obj *old, *c;
        size_t i;
        int r;

        /* Grown at 80% full: 100k objects fit 128Ki slots (1 MiB less than at 75%). */
        if ((m->n + 1) * 5 > m->size * 4 && (r = omap_grow(m)) < 0)
                return r;
        i = omap_find(m, o->name);
        old = m->slots[i];
        if (old && old->flags == o->flags && streq(obj_json(old), obj_json(o)))
                return 0;
        if (!old && m->n >= KUBE_MAX_OBJECTS)
                return -E2BIG;
        if (!(c = arena_alloc(m, obj_size(o))))
                return -ENOMEM;
        memcpy(c, o, obj_size(o));
        m->live += obj_size(o);
        m->slots[i] = c;
        if (old)
                omap_drop(m, old);
        else
                m->n++;
        return 1;
}

/* Remove, shifting the following run back (no tombstones). 1 when it was there. */
static int omap_del(struct omap *m, const char *key)
{
        struct obj *gone;
        size_t i, j;

        if (!m->size || !(gone = m->slots[i = omap_find(m, key)]))
                return 0;
        m->slots[i] = NULL;
        m->n--;
        for (j = (i + 1) & (m->size - 1); m->slots[j]; j = (j + 1) & (m->size - 1)) {
                size_t home = str_hash(m->slots[j]->name) & (m->size - 1);

                /* Move j back to i when its home is not in (i, j]. */
                if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
                        m->slots[i] = m->slots[j];
                        m->slots[j] = NULL;
                        i = j;
                }
        }
        omap_drop(m, gone); /* last: it may move every object */
        return 1;
}

/* ---- the client ---- */

enum state {
        ST_IDLE,
        ST_DISCOVERY,
        ST_LISTING,
        ST_WATCHING,
        ST_WAITING,
        ST_DONE,   /* one-shot: everything listed */
        ST_FAILED, /* one-shot: the round failed */
};

struct kube_source;

struct watch {
        struct kube_source *k;
        enum kube_kind kind;
        struct http_req *h;
        char *buf; /* the current line */
        size_t len, cap;
        uint64_t started;
        bool got_event, relist;
};

struct kube_source {
        struct source base;
        struct cfg_kdd kdd;          /* the settings, kubeconfig path resolved */
        struct cfg_kube conf;        /* this round's credentials */
        char *token;                 /* this round's bearer token */
        char *auth;                  /* "Authorization: Bearer ..." */
        char api_version[64];        /* of the Calico kinds: crd.projectcalico.org/v1 or projectcalico.org/v3 */
        struct http *http;
        struct omap cache[KUBE_N_KINDS], building[KUBE_N_KINDS];
        char rv[KUBE_N_KINDS][32];   /* the version each kind's cache is at */
        char list_rv[KUBE_N_KINDS][32];
        enum state state;
        enum kube_kind listing;
        bool relisting;              /* watching, and listing one kind again after a 410 */
        unsigned relist_pending;     /* kinds (bits) whose watch said 410 while another was listed */
        char *cont;                  /* the continue token of the next page */
        struct http_req *req;        /* discovery or a list page */
        struct watch watch[KUBE_N_KINDS];
        sd_event_source *retry, *deadline;
        struct watch_set *cred_watch;  /* the kubeconfig and the files it names (daemon mode) */
        sd_event_source *cred_io, *cred_settle;
        struct http_failover fo;
        uint64_t synced_at;
        unsigned watch_timeout_s;    /* timeoutSeconds asked of the server */
        bool once, has_data;
        char error[HTTP_WHY_MAX + 64];
        /* In-place updates (issue 16): the index of the last model built (following
         * only), that model, and the objects the watches changed since, each with the
         * input number it has in that model (or a new one past them). */
        struct cfg_kv_index *ix;
        const struct cfg_model *ix_model;
        uint32_t next_input;
        struct kube_change *changes;
        size_t n_changes, cap_changes;
        bool changes_overflow;
};

struct kube_change {
        char *name;
        uint32_t input;
        enum kube_kind kind;
};

/* Changes noted past this ask for a full build (which renumbers): the list stays
 * short, and so does its scan per event. */
#define MAX_CHANGES 4096

static void changes_clear(struct kube_source *k)
{
        for (size_t i = 0; i < k->n_changes; i++)
                free(k->changes[i].name);
        free(k->changes);
        k->changes = NULL;
        k->n_changes = k->cap_changes = 0;
        k->changes_overflow = false;
}

static void drop_index(struct kube_source *k)
{
        cfg_kv_index_free(k->ix);
        k->ix = NULL;
        k->ix_model = NULL;
        changes_clear(k);
}

/* An object a watch event changed (old: the cache's copy before it, NULL when new):
 * noted for the next update, with the number it has in the model. An object deleted
 * and added again keeps its number, so that the update sees one input change. */
static uint32_t note_change(struct kube_source *k, enum kube_kind kind, const char *name, const struct obj *old)
{
        uint32_t input;
        char *copy;

        if (!k->ix)
                return 0;
        for (size_t i = 0; i < k->n_changes; i++)
                if (k->changes[i].kind == kind && streq(k->changes[i].name, name))
                        return k->changes[i].input;
        input = old ? old->input : k->next_input++;
        if (k->n_changes >= MAX_CHANGES || GROW(k->changes, k->cap_changes, k->n_changes + 1) < 0 ||
            !(copy = strdup(name))) {
                k->changes_overflow = true;
                return input;
        }
        k->changes[k->n_changes++] = (struct kube_change){ copy, input, kind };
        return input;
}

static const struct obj *omap_get(const struct omap *m, const char *name)
{
        return m->size ? m->slots[omap_find(m, name)] : NULL;
}

static void start_round(struct kube_source *k);
static void round_failed(struct kube_source *k, const char *fmt, ...) _printf_(2, 3);
static void start_watch(struct kube_source *k, enum kube_kind kind);

static uint64_t kube_now(struct kube_source *k)
{
        uint64_t now = 0;

        sd_event_now(k->base.ev, CLOCK_MONOTONIC, &now);
        return now;
}

static void watch_stop(struct watch *w)
{
        http_req_free(w->h);
        w->h = NULL;
        free(w->buf);
        w->buf = NULL;
        w->len = w->cap = 0;
        w->got_event = w->relist = false;
}

static void cancel_all(struct kube_source *k)
{
        http_req_free(k->req);
        k->req = NULL;
        for (size_t i = 0; i < KUBE_N_KINDS; i++)
                watch_stop(&k->watch[i]);
        for (size_t i = 0; i < KUBE_N_KINDS; i++)
                omap_clear(&k->building[i]);
        free(k->cont);
        k->cont = NULL;
        k->relisting = false;
        k->relist_pending = 0;
}

/* ---- credentials, read at the start of each round ---- */

static void diags_text(const struct cfg_diags *d, char *buf, size_t size)
{
        for (size_t i = 0; i < d->n; i++)
                if (d->v[i].severity == CFG_ERROR) {
                        snprintf(buf, size, "%s:%u:%u: %s", d->v[i].file ? d->v[i].file : "", d->v[i].line,
                                 d->v[i].column, d->v[i].message);
                        return;
                }
        snprintf(buf, size, "invalid");
}

static int read_kubeconfig(struct kube_source *k, struct cfg_kube *ret, char *why, size_t size)
{
        const struct cfg_kdd *c = &k->kdd;
        _cleanup_(freep) char *buf = NULL;
        struct cfg_diags d = {};
        size_t n = 0;
        int r;

        *ret = (struct cfg_kube){};
        if (c->kubeconfig_inline)
                r = cfg_kubeconfig_parse("kubeconfigInline", c->kubeconfig_inline, strlen(c->kubeconfig_inline),
                                         c->context, ret, &d);
        else if ((r = files_read(c->kubeconfig, YDOC_MAX_FILE_SIZE, &buf, &n)) == -ENOENT && c->api_endpoint)
                return 0; /* k8sAPIEndpoint and its files alone */
        else if (r < 0) {
                snprintf(why, size, "kubeconfig %s: %s", c->kubeconfig, strerror(-r));
                return r;
        } else
                r = cfg_kubeconfig_parse(c->kubeconfig, buf, n, c->context, ret, &d);
        if (r < 0)
                diags_text(&d, why, size);
        cfg_diags_clear(&d);
        return r;
}

static int replace(char **dst, const char *v)
{
        char *c;

        if (!v)
                return 0;
        if (!(c = strdup(v)))
                return -ENOMEM;
        free(*dst);
        *dst = c;
        return 0;
}

/* calicoctl's keys over the kubeconfig's values (client-go's overrides). */
static int apply_overrides(const struct cfg_kdd *c, struct cfg_kube *q)
{
        int r;

        if ((r = replace(&q->server, c->api_endpoint)) < 0 || (r = replace(&q->token, c->token)) < 0 ||
            (r = replace(&q->ca_file, c->ca_file)) < 0 || (r = replace(&q->cert_file, c->cert_file)) < 0 ||
            (r = replace(&q->key_file, c->key_file)) < 0)
                return r;
        if (c->ca_file) {
                free(q->ca_pem);
                q->ca_pem = NULL;
        }
        if (c->cert_file) {
                free(q->cert_pem);
                free(q->key_pem);
                q->cert_pem = q->key_pem = NULL;
        }
        q->insecure |= c->insecure;
        return 0;
}

static int load_token(struct kube_source *k, char *why, size_t size)
{
        _cleanup_(freep) char *buf = NULL;
        size_t n = 0;
        int r;

        free(k->token);
        k->token = NULL;
        if (!k->conf.token_file)
                return replace(&k->token, k->conf.token);
        if ((r = files_read(k->conf.token_file, MAX_TOKEN, &buf, &n)) < 0) {
                snprintf(why, size, "token file %s: %s", k->conf.token_file, strerror(-r));
                return r;
        }
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
                buf[--n] = '\0';
        k->token = TAKE_PTR(buf);
        return 0;
}

static int load_credentials(struct kube_source *k, char *why, size_t size)
{
        struct cfg_kube q;
        int r;

        if ((r = read_kubeconfig(k, &q, why, size)) < 0)
                return r;
        if ((r = apply_overrides(&k->kdd, &q)) < 0) {
                cfg_kube_clear(&q);
                return r;
        }
        if (!q.server) {
                cfg_kube_clear(&q);
                snprintf(why, size, "no API server: the kubeconfig names none and k8sAPIEndpoint is not set");
                return -EINVAL;
        }
        if (q.tls_server_name && strncasecmp(q.server, "https://", 8) != 0) {
                snprintf(why, size, "tls-server-name %s: the server %s is not https", q.tls_server_name, q.server);
                cfg_kube_clear(&q);
                return -EINVAL;
        }
        if (q.insecure) {
                cfg_kube_clear(&q);
                snprintf(why, size, "insecure-skip-tls-verify is not supported: give the cluster's CA "
                                    "(certificate-authority) instead");
                return -EINVAL;
        }
        cfg_kube_clear(&k->conf);
        k->conf = q;
        if ((r = load_token(k, why, size)) < 0)
                return r;
        free(k->auth);
        k->auth = NULL;
        if (k->token && asprintf(&k->auth, "Authorization: Bearer %s", k->token) < 0)
                return -ENOMEM;
        return 0;
}

/* ---- the credentials' files, watched ---- */

/* The kubeconfig and every file it names (a token file, certificates), each through
 * its folder (watch.c): a kubelet's or projected token is replaced by a `..data`
 * symlink swap, an editor renames over the file. Set before the files are read, and
 * again after (the files may have changed), so no change is missed. */
static void watch_credentials(struct kube_source *k)
{
        const char *paths[] = { k->kdd.kubeconfig_inline ? NULL : k->kdd.kubeconfig, k->conf.token_file,
                                k->conf.ca_file, k->conf.cert_file, k->conf.key_file };
        const char *v[ELEMENTSOF(paths)];
        size_t n = 0;
        int r;

        if (!k->cred_watch)
                return;
        for (size_t i = 0; i < ELEMENTSOF(paths); i++)
                if (paths[i])
                        v[n++] = paths[i];
        if ((r = watch_set_update(k->cred_watch, v, n, NULL, 0)) < 0)
                log_debug("kubernetes: cannot watch the credentials' files: %s", strerror(-r));
}

static void restart_watches(struct kube_source *k);

/* The same API server, reached and trusted the same way: its resourceVersions still
 * hold (the credentials may differ). */
static bool same_server(const struct cfg_kube *a, const struct cfg_kube *b)
{
        return a->insecure == b->insecure && streq_ptr(a->server, b->server) && streq_ptr(a->ca_file, b->ca_file) &&
               streq_ptr(a->ca_pem, b->ca_pem) && streq_ptr(a->tls_server_name, b->tls_server_name);
}

/* A credentials file changed: read them again. Mid-list, or waiting to retry, a new
 * round starts with them at once; while watching, another server (or trust) lists
 * again, and otherwise (a new token, certificate or user) each watch is opened again with them from the last version it
 * saw (the model and the host stay as they are). Unreadable new credentials leave the
 * healthy watches alone: the next change is read again. */
static void credentials_changed(struct kube_source *k)
{
        struct cfg_kube old = {};
        _cleanup_(freep) char *old_token = NULL, *old_auth = NULL;
        char why[1024];
        int r;

        if (k->state == ST_LISTING || k->state == ST_DISCOVERY || k->state == ST_WAITING || k->relisting) {
                log_debug("kubernetes: the credentials changed; starting again with them");
                sd_event_source_set_enabled(k->retry, SD_EVENT_OFF);
                return start_round(k);
        }
        if (k->state != ST_WATCHING)
                return;
        if (cfg_kube_copy(&k->conf, &old) < 0)
                return start_round(k);
        old_token = TAKE_PTR(k->token);
        old_auth = TAKE_PTR(k->auth);
        r = load_credentials(k, why, sizeof(why));
        watch_credentials(k);
        if (r < 0) {
                log_debug("kubernetes: the credentials changed but cannot be read (%s); the watches keep the old ones",
                          r == -ENOMEM ? strerror(ENOMEM) : why);
                cfg_kube_clear(&k->conf);
                k->conf = old;
                free(k->token);
                free(k->auth);
                k->token = TAKE_PTR(old_token);
                k->auth = TAKE_PTR(old_auth);
                return;
        }
        if (!same_server(&old, &k->conf)) {
                cfg_kube_clear(&old);
                log_debug("kubernetes: the credentials now name another server or trust; listing again");
                return start_round(k);
        }
        cfg_kube_clear(&old);
        log_debug("kubernetes: the credentials changed; watching again with them");
        restart_watches(k);
}

static int on_credentials_settled(sd_event_source *s, uint64_t usec, void *userdata)
{
        (void)s;
        (void)usec;
        credentials_changed(userdata);
        return 0;
}

static int on_credentials_event(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct kube_source *k = userdata;
        int r;

        (void)s;
        (void)fd;
        (void)revents;
        /* A read error: read the credentials again to be sure. */
        if ((r = watch_set_drain(k->cred_watch)) != 0) {
                sd_event_source_set_time(k->cred_settle, kube_now(k) + CREDENTIALS_SETTLE_USEC);
                sd_event_source_set_enabled(k->cred_settle, SD_EVENT_ONESHOT);
        }
        return 0;
}

/* ---- requests ---- */

static void request_done(struct http_req *h, void *userdata);
static void watch_done(struct http_req *h, void *userdata);
static bool watch_data(struct http_req *h, const char *data, size_t n, void *userdata);

/* How long after it started a watch the server should have ended is ended by us. */
static uint64_t watch_deadline_usec(const struct kube_source *k)
{
        uint64_t t = k->watch_timeout_s * 1000000ULL;

        return t + (t / 30 > 30000000ULL ? t / 30 : 30000000ULL);
}

static int send_get(struct kube_source *k, const char *path, struct watch *w, struct http_req **ret)
{
        const struct cfg_kube *c = &k->conf;
        const struct http_tls tls = { c->ca_file, c->ca_pem,  c->cert_file,      c->cert_pem,
                                      c->key_file, c->key_pem, c->tls_server_name };
        const char *headers[] = { "Accept: application/json", k->auth, NULL };
        _cleanup_(freep) char *url = NULL;

        if (asprintf(&url, "%s%s", c->server, path) < 0)
                return -ENOMEM;
        return http_send(k->http,
                         &(const struct http_request){
                                 .url = url,
                                 .headers = headers,
                                 .tls = &tls,
                                 .stream = w != NULL,
                                 .stream_timeout_ms = w ? watch_deadline_usec(k) / 1000 : 0,
                                 .max_body = KUBE_MAX_BODY,
                                 .on_data = watch_data,
                                 .on_done = w ? watch_done : request_done,
                                 .userdata = w ? (void *)w : (void *)k,
                         },
                         ret);
}

static void base_path(const struct kube_source *k, enum kube_kind kind, char *buf, size_t size)
{
        if (kinds[kind].core)
                snprintf(buf, size, "/api/v1/%s", kinds[kind].plural);
        else
                snprintf(buf, size, "/apis/%s/%s", k->api_version, kinds[kind].plural);
}

static const char *kind_api_version(const struct kube_source *k, enum kube_kind kind)
{
        return kinds[kind].core ? "v1" : k->api_version;
}

/* A Kubernetes Status body's message, else the HTTP status. */
static void status_text(struct http_req *h, char *buf, size_t size)
{
        const char *body = http_req_body(h);
        json_object *o = body ? json_tokener_parse(body) : NULL;
        const char *msg = jstr(jget(o, "message"));

        snprintf(buf, size, "HTTP %ld%s%s", http_req_status(h), msg ? ": " : "", msg ? msg : "");
        json_object_put(o);
}

/* ---- listing ---- */

static void list_next_page(struct kube_source *k)
{
        char path[512];
        _cleanup_(freep) char *q = NULL;
        char *esc;
        int r;

        base_path(k, k->listing, path, sizeof(path));
        if (k->cont) {
                /* A continue token is base64: only '+', '/' and '=' need escaping. */
                size_t n = strlen(k->cont);

                if (!(esc = malloc(n * 3 + 1)))
                        return round_failed(k, "%s", strerror(ENOMEM));
                size_t j = 0;

                for (size_t i = 0; i < n; i++) {
                        unsigned char ch = (unsigned char)k->cont[i];

                        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                            ch == '-' || ch == '_' || ch == '.')
                                esc[j++] = (char)ch;
                        else
                                j += (size_t)sprintf(esc + j, "%%%02X", ch);
                }
                esc[j] = '\0';
                r = asprintf(&q, "%s?limit=%d&continue=%s", path, KUBE_PAGE, esc);
                free(esc);
        } else
                r = asprintf(&q, "%s?limit=%d", path, KUBE_PAGE);
        if (r < 0)
                return round_failed(k, "%s", strerror(ENOMEM));
        if ((r = send_get(k, q, NULL, &k->req)) < 0)
                round_failed(k, "%s", strerror(-r));
}

static void list_kind(struct kube_source *k, enum kube_kind kind)
{
        if (!k->relisting)
                k->state = ST_LISTING;
        k->listing = kind;
        free(k->cont);
        k->cont = NULL;
        omap_clear(&k->building[kind]);
        list_next_page(k);
}

/* The envelope of an object of kind named name, as kube_trim() writes it. */
static int envelope(const struct kube_source *k, enum kube_kind kind, const char *name, char *buf, size_t size)
{
        return snprintf(buf, size, "{\"apiVersion\":\"%s\",\"kind\":\"%s\",\"metadata\":{\"name\":\"%s\"",
                        kind_api_version(k, kind), kinds[kind].kind, name);
}

static int add_object(struct kube_source *k, struct omap *m, enum kube_kind kind, json_object *item)
{
        _cleanup_(freep) char *name = NULL, *json = NULL;
        _cleanup_(freep) struct obj *o = NULL;
        char env[512];
        const char *rest;
        size_t name_len, rest_len, len;
        int r, n;

        r = kube_trim(kind, kind_api_version(k, kind), item, &name, &json);
        if (r == -EINVAL) {
                log_debug("kubernetes: a %s without a name, skipped", kinds[kind].kind);
                return 0;
        }
        if (r < 0)
                return r;
        n = envelope(k, kind, name, env, sizeof(env));
        rest = json;
        if (n > 0 && (size_t)n < sizeof(env) && strncmp(json, env, (size_t)n) == 0)
                rest = json + n;
        name_len = strlen(name);
        rest_len = strlen(rest);
        if (name_len > UINT16_MAX || rest_len + 2 > UINT32_MAX || !(o = malloc(sizeof(*o) + name_len + rest_len + 2 + 8)))
                return -ENOMEM;
        memcpy(o->name, name, name_len + 1);
        o->name_len = (uint16_t)name_len;
        o->flags = (uint8_t)(kind << OBJ_KIND_SHIFT | (rest != json ? OBJ_BARE : 0));
        /* Packing never makes it longer. */
        if ((len = kube_pack(rest, o->name + name_len + 1)) > 0)
                o->flags |= OBJ_PACKED;
        else
                memcpy(o->name + name_len + 1, rest, (len = rest_len) + 1);
        o->len = (uint32_t)len;
        o->input = 0;
        if (m != &k->cache[kind])
                return omap_put(m, o);
        /* A watch event: noted only when it changes what is kept (a Node's heartbeat
         * does not). */
        const struct obj *old = omap_get(m, name);
        struct obj before = old ? *old : (struct obj){};

        if ((r = omap_put(m, o)) > 0)
                ((struct obj *)omap_get(m, name))->input = note_change(k, kind, name, old ? &before : NULL);
        return r;
}

static void lists_complete(struct kube_source *k)
{
        drop_index(k); /* new objects, no numbers */
        for (size_t i = 0; i < KUBE_N_KINDS; i++) {
                omap_clear(&k->cache[i]);
                k->cache[i] = k->building[i];
                k->building[i] = (struct omap){};
                memcpy(k->rv[i], k->list_rv[i], sizeof(k->rv[i]));
        }
        k->has_data = true;
        k->synced_at = kube_now(k);
        log_debug("kubernetes: listed %zu nodes, %zu pools, %zu affinities, %zu blocks, %zu felix from %s",
                  k->cache[KUBE_NODES].n, k->cache[KUBE_IPPOOLS].n, k->cache[KUBE_AFFINITIES].n,
                  k->cache[KUBE_BLOCKS].n, k->cache[KUBE_FELIX].n, k->conf.server);
        if (k->once) {
                k->state = ST_DONE;
                sd_event_exit(k->base.ev, 0);
                return;
        }
        k->state = ST_WATCHING;
        for (size_t i = 0; i < KUBE_N_KINDS; i++)
                start_watch(k, (enum kube_kind)i);
        if (k->base.ops && k->base.ops->reachable)
                k->base.ops->reachable(&k->base, k->base.userdata);
}

static void start_watch(struct kube_source *k, enum kube_kind kind);

/* Whether two maps hold the same objects. */
static bool omap_same(const struct omap *a, const struct omap *b)
{
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->size; i++) {
                const struct obj *o = a->slots[i], *p;

                if (!o)
                        continue;
                if (!b->size || !(p = b->slots[omap_find(b, o->name)]) || p->flags != o->flags ||
                    !streq(obj_json(p), obj_json(o)))
                        return false;
        }
        return true;
}

/* A 410 on one kind's watch (its version compacted away): that kind alone is listed
 * again, its list replacing its objects, while the other kinds go on being watched
 * (client-go's reflector relists only its own kind too). One at a time. */
static void relist_one(struct kube_source *k, enum kube_kind kind)
{
        if (k->relisting) {
                k->relist_pending |= 1u << kind;
                return;
        }
        k->relisting = true;
        list_kind(k, kind);
}

static void relist_complete(struct kube_source *k)
{
        enum kube_kind kind = k->listing;
        bool changed = !omap_same(&k->cache[kind], &k->building[kind]);

        drop_index(k); /* new objects, no numbers */

        omap_clear(&k->cache[kind]);
        k->cache[kind] = k->building[kind];
        k->building[kind] = (struct omap){};
        memcpy(k->rv[kind], k->list_rv[kind], sizeof(k->rv[kind]));
        k->relisting = false;
        log_debug("kubernetes: listed %zu %s again at %s", k->cache[kind].n, kinds[kind].plural, k->rv[kind]);
        start_watch(k, kind);
        for (size_t i = 0; i < KUBE_N_KINDS && k->state == ST_WATCHING && !k->relisting; i++)
                if (k->relist_pending & (1u << i)) {
                        k->relist_pending &= ~(1u << i);
                        relist_one(k, (enum kube_kind)i);
                }
        if (changed && k->base.ops && k->base.ops->changed)
                k->base.ops->changed(&k->base, k->base.userdata);
}

static void list_page_done(struct kube_source *k, json_object *o)
{
        json_object *items = jget(o, "items"), *meta = jget(o, "metadata");
        const char *rv = jstr(jget(meta, "resourceVersion")), *cont = jstr(jget(meta, "continue"));
        int r;

        if (!items || !json_object_is_type(items, json_type_array) || !rv)
                return round_failed(k, "listing %s: not a list", kinds[k->listing].plural);
        for (size_t i = 0; i < json_object_array_length(items); i++)
                if ((r = add_object(k, &k->building[k->listing], k->listing, json_object_array_get_idx(items, i))) < 0)
                        return round_failed(k, "listing %s: %s", kinds[k->listing].plural,
                                            r == -E2BIG ? "more objects than the cap" : strerror(-r));
        free(k->cont);
        k->cont = NULL;
        if (cont && *cont) {
                if (!(k->cont = strdup(cont)))
                        return round_failed(k, "%s", strerror(ENOMEM));
                return list_next_page(k);
        }
        snprintf(k->list_rv[k->listing], sizeof(k->list_rv[0]), "%s", rv);
        if (k->relisting)
                return relist_complete(k);
        if (k->listing + 1 < KUBE_N_KINDS)
                return list_kind(k, k->listing + 1);
        lists_complete(k);
}

/* /apis: projectcalico.org/v3 when it is listed and crd.projectcalico.org is not
 * (libcalico-go/lib/backend/k8s: UsingV3CRDs). */
static void discovery_done(struct kube_source *k, json_object *o)
{
        json_object *groups = jget(o, "groups");
        bool v3 = false, v1 = false;

        if (!groups || !json_object_is_type(groups, json_type_array))
                return round_failed(k, "/apis: not an APIGroupList");
        for (size_t i = 0; i < json_object_array_length(groups); i++) {
                const char *name = jstr(jget(json_object_array_get_idx(groups, i), "name"));

                v3 |= name && streq(name, "projectcalico.org");
                v1 |= name && streq(name, "crd.projectcalico.org");
        }
        snprintf(k->api_version, sizeof(k->api_version), "%s",
                 v3 && !v1 ? "projectcalico.org/v3" : "crd.projectcalico.org/v1");
        list_kind(k, 0);
}

static void request_done(struct http_req *h, void *userdata)
{
        struct kube_source *k = userdata;
        const char *err = http_req_error(h);
        long status = http_req_status(h);
        json_object *o;
        char text[1024];

        k->req = NULL;
        if (err) {
                snprintf(text, sizeof(text), "%s", err); /* err lives in h */
                http_req_free(h);
                return round_failed(k, "%s", text);
        }
        if (status == 410 && (k->state == ST_LISTING || k->relisting) && k->cont) {
                /* The continue token expired (compaction): this kind from the start. */
                http_req_free(h);
                log_debug("kubernetes: continue token of %s expired, listing it again", kinds[k->listing].plural);
                return list_kind(k, k->listing);
        }
        if (status != 200) {
                status_text(h, text, sizeof(text));
                http_req_free(h);
                return round_failed(k, "%s %s", k->state == ST_DISCOVERY ? "/apis" : kinds[k->listing].plural, text);
        }
        o = http_req_body(h) ? json_tokener_parse(http_req_body(h)) : NULL;
        http_req_free(h);
        if (!o)
                return round_failed(k, "an answer that is not JSON");
        if (k->state == ST_DISCOVERY)
                discovery_done(k, o);
        else
                list_page_done(k, o);
        json_object_put(o);
}

/* ---- watching ---- */

static void start_watch(struct kube_source *k, enum kube_kind kind)
{
        struct watch *w = &k->watch[kind];
        char base[512];
        _cleanup_(freep) char *path = NULL;
        int r;

        watch_stop(w);
        *w = (struct watch){ .k = k, .kind = kind, .started = kube_now(k) };
        base_path(k, kind, base, sizeof(base));
        if (asprintf(&path, "%s?watch=1&allowWatchBookmarks=true&timeoutSeconds=%u&resourceVersion=%s", base,
                     k->watch_timeout_s, k->rv[kind]) < 0)
                return round_failed(k, "%s", strerror(ENOMEM));
        if ((r = send_get(k, path, w, &w->h)) < 0)
                round_failed(k, "%s", strerror(-r));
}

/* Every watch opened again, from the last version each saw (new credentials). */
static void restart_watches(struct kube_source *k)
{
        for (size_t i = 0; i < KUBE_N_KINDS && k->state == ST_WATCHING; i++)
                start_watch(k, (enum kube_kind)i);
}

/* One event: the cache follows it. 1 when the cache changed. */
static int watch_event(struct kube_source *k, struct watch *w, json_object *ev)
{
        const char *type = jstr(jget(ev, "type"));
        json_object *obj = jget(ev, "object");
        const char *rv = jstr(jget(jget(obj, "metadata"), "resourceVersion"));
        const char *name;
        int r = 0;

        if (!type || !obj)
                return http_req_fail(w->h, "a watch event without type or object"), -EINVAL;
        if (streq(type, "ERROR")) {
                json_object *code = jget(obj, "code");

                if (code && json_object_get_int(code) == 410)
                        w->relist = true;
                http_req_fail(w->h, "%s: %s", jstr(jget(obj, "reason")) ?: "error",
                              jstr(jget(obj, "message")) ?: "(no message)");
                return -EINVAL;
        }
        if (streq(type, "ADDED") || streq(type, "MODIFIED"))
                r = add_object(k, &k->cache[w->kind], w->kind, obj);
        else if (streq(type, "DELETED")) {
                name = jstr(jget(jget(obj, "metadata"), "name"));
                if (name && omap_get(&k->cache[w->kind], name))
                        note_change(k, w->kind, name, omap_get(&k->cache[w->kind], name));
                if (name)
                        r = omap_del(&k->cache[w->kind], name);
        } else if (!streq(type, "BOOKMARK"))
                log_debug("kubernetes: watch event %s ignored", type);
        if (r < 0)
                return http_req_fail(w->h, "%s", r == -E2BIG ? "more objects than the cap" : strerror(-r)), r;
        if (rv && strlen(rv) < sizeof(k->rv[0]))
                snprintf(k->rv[w->kind], sizeof(k->rv[0]), "%s", rv);
        w->got_event = true;
        return r;
}

/* The stream: one JSON event per line. */
static bool watch_data(struct http_req *h, const char *data, size_t n, void *userdata)
{
        struct watch *w = userdata;
        struct kube_source *k = w->k;
        bool changed = false;

        for (size_t i = 0; i < n && !http_req_failed(h); i++) {
                if (data[i] != '\n') {
                        if (w->len + 2 > w->cap && GROW(w->buf, w->cap, w->len + 2) < 0) {
                                http_req_fail(h, "%s", strerror(ENOMEM));
                                break;
                        }
                        w->buf[w->len++] = data[i];
                        if (w->len > KUBE_MAX_EVENT)
                                http_req_fail(h, "a watch event over %u MiB", KUBE_MAX_EVENT >> 20);
                        continue;
                }
                if (!w->len)
                        continue;
                w->buf[w->len] = '\0';
                json_object *ev = json_tokener_parse(w->buf);

                w->len = 0;
                if (!ev) {
                        http_req_fail(h, "a watch event that is not JSON");
                        break;
                }
                changed |= watch_event(k, w, ev) > 0;
                json_object_put(ev);
        }
        if (changed && k->base.ops && k->base.ops->changed)
                k->base.ops->changed(&k->base, k->base.userdata);
        return !http_req_failed(h);
}

static void watch_done(struct http_req *h, void *userdata)
{
        struct watch *w = userdata;
        struct kube_source *k = w->k;
        long status = http_req_status(h);
        const char *err = http_req_error(h);
        char text[1024];
        bool relist = w->relist || status == 410, alive, timed_out = http_req_timed_out(h);

        alive = w->got_event || kube_now(k) - w->started >= WATCH_MIN_LIFE_USEC;
        if (status != 200 && status)
                status_text(h, text, sizeof(text));
        else
                snprintf(text, sizeof(text), "%s", err ? err : "the server ended it");
        w->h = NULL;
        http_req_free(h);
        watch_stop(w);
        if (relist) {
                log_debug("kubernetes: %s: %s; listing %s again", kinds[w->kind].plural, text, kinds[w->kind].plural);
                return relist_one(k, w->kind);
        }
        if (timed_out && status == 200) {
                /* Ours (stream_timeout_ms): the server should have ended it by now. */
                log_notice("kubernetes: the watch of %s was not ended by the server %u s after it was asked to "
                           "(%s); resuming at %s",
                           kinds[w->kind].plural, k->watch_timeout_s, text, k->rv[w->kind]);
                return start_watch(k, w->kind);
        }
        if (timed_out && !status) /* no answer (connect, TLS or headers) in time */
                return round_failed(k, "watching %s: %s", kinds[w->kind].plural, text);
        if ((status == 200 || !status) && alive) {
                /* Ended, or dropped after it worked: resume from the last version seen. */
                log_debug("kubernetes: watch of %s ended (%s); resuming at %s", kinds[w->kind].plural, text,
                          k->rv[w->kind]);
                return start_watch(k, w->kind);
        }
        round_failed(k, "watching %s: %s", kinds[w->kind].plural, text);
}

/* ---- rounds and back-off ---- */

static void round_failed(struct kube_source *k, const char *fmt, ...)
{
        char reason[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(reason, sizeof(reason), fmt, ap);
        va_end(ap);
        cancel_all(k);
        /* A failure after a healthy while starts the back-off small again. */
        if (k->synced_at && kube_now(k) - k->synced_at >= HEALTHY_USEC)
                http_failover_ok(&k->fo);
        k->synced_at = 0;
        http_failover_next(&k->fo, k->conf.server ? k->conf.server : "kubernetes", "%s", reason);
        log_debug("kubernetes: %s", k->fo.why);
        if (k->once) {
                k->state = ST_FAILED;
                sd_event_exit(k->base.ev, 0);
                return;
        }
        k->state = ST_WAITING;
        sd_event_source_set_time(k->retry, kube_now(k) + http_failover_backoff(&k->fo));
        sd_event_source_set_enabled(k->retry, SD_EVENT_ONESHOT);
        if (k->base.ops && k->base.ops->unreachable)
                k->base.ops->unreachable(&k->base, k->fo.why, k->base.userdata);
}

static void start_round(struct kube_source *k)
{
        char why[1024];
        int r;

        cancel_all(k);
        http_failover_round(&k->fo);
        watch_credentials(k);
        r = load_credentials(k, why, sizeof(why));
        watch_credentials(k);
        if (r < 0)
                return round_failed(k, "%s", r == -ENOMEM ? strerror(ENOMEM) : why);
        if (http_start(k->http, why, sizeof(why)) < 0)
                return round_failed(k, "%s", why);
        if (k->kdd.api_group != CFG_API_GROUP_AUTO) {
                snprintf(k->api_version, sizeof(k->api_version), "%s",
                         k->kdd.api_group == CFG_API_GROUP_V3 ? "projectcalico.org/v3" : "crd.projectcalico.org/v1");
                return list_kind(k, 0);
        }
        k->state = ST_DISCOVERY;
        if ((r = send_get(k, "/apis", NULL, &k->req)) < 0)
                round_failed(k, "%s", strerror(-r));
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
        (void)s;
        (void)usec;
        start_round(userdata);
        return 0;
}

static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct kube_source *k = userdata;

        (void)s;
        (void)usec;
        round_failed(k, "no complete answer within %llu s", (unsigned long long)(SOURCE_ONCE_TIMEOUT_USEC / 1000000));
        return 0;
}

static int kube_setup(struct kube_source *k, sd_event *ev)
{
        int r;

        k->fo = (struct http_failover){ .n = 1, .min_usec = RETRY_MIN_USEC, .max_usec = RETRY_MAX_USEC };
        if ((r = http_new(ev, &k->http)) < 0)
                return r;
        return sd_event_add_time(ev, &k->retry, CLOCK_MONOTONIC, UINT64_MAX, 100000, on_retry, k);
}

/* ---- the source ---- */

static int kube_source_start(struct source *src)
{
        struct kube_source *k = (struct kube_source *)src;
        sd_event *ev = NULL;
        int r;

        if (src->ev) {
                if ((r = kube_setup(k, src->ev)) < 0 || (r = watch_set_new(&k->cred_watch)) < 0 ||
                    (r = sd_event_add_io(src->ev, &k->cred_io, watch_set_fd(k->cred_watch), EPOLLIN,
                                         on_credentials_event, k)) < 0 ||
                    (r = sd_event_add_time(src->ev, &k->cred_settle, CLOCK_MONOTONIC, UINT64_MAX, 10000,
                                           on_credentials_settled, k)) < 0)
                        return r;
                sd_event_source_set_enabled(k->cred_settle, SD_EVENT_OFF);
                start_round(k);
                return 0;
        }
        /* One-shot: a loop of its own, bounded in time. */
        if ((r = sd_event_new(&ev)) < 0)
                return r;
        src->ev = ev;
        k->once = true;
        if ((r = kube_setup(k, ev)) < 0 ||
            (r = sd_event_add_time_relative(ev, &k->deadline, CLOCK_MONOTONIC, SOURCE_ONCE_TIMEOUT_USEC, 10000,
                                            on_deadline, k)) < 0)
                return r;
        start_round(k);
        if (k->state != ST_FAILED && k->state != ST_DONE && (r = sd_event_loop(ev)) < 0)
                return r;
        if (k->state != ST_DONE) {
                snprintf(k->error, sizeof(k->error), "datastore unreachable: %s", k->fo.why);
                return -EHOSTUNREACH;
        }
        return 0;
}

/* The model's order: by "kubernetes:PLURAL/NAME" (stable messages). */
static int obj_cmp(const void *a, const void *b)
{
        const struct obj *x = *(const struct obj *const *)a, *y = *(const struct obj *const *)b;
        int c = strcmp(kinds[x->flags >> OBJ_KIND_SHIFT].plural, kinds[y->flags >> OBJ_KIND_SHIFT].plural);

        return c ? c : strcmp(x->name, y->name);
}

/* The name of input number file of the load: all[file] (cfg_loader_name_on_demand()). */
static void name_object(const void *ctx, uint32_t file, char *buf, size_t size)
{
        const struct obj *o = ((const struct obj *const *)ctx)[file];

        snprintf(buf, size, "kubernetes:%s/%s", kinds[o->flags >> OBJ_KIND_SHIFT].plural, o->name);
}

/* The model's input number file, after the load: the cached object that has it (a
 * scan; only the in-place updates ask, when two claims on one block tie, and
 * diagnostics). A deleted object's number names nothing: "kubernetes:?". */
static void name_input(const void *ctx, uint32_t file, char *buf, size_t size)
{
        const struct kube_source *k = ctx;

        for (size_t i = 0; i < KUBE_N_KINDS; i++)
                for (size_t j = 0; j < k->cache[i].size; j++) {
                        const struct obj *o = k->cache[i].slots[j];

                        if (o && o->input == file) {
                                snprintf(buf, size, "kubernetes:%s/%s", kinds[i].plural, o->name);
                                return;
                        }
                }
        snprintf(buf, size, "kubernetes:?");
}

/* An object's JSON as the model reads it, its envelope written again, into *buf:
 * its length. */
static int object_json(const struct kube_source *k, const struct obj *o, char **buf, size_t *cap, size_t *ret_len)
{
        enum kube_kind kind = (enum kube_kind)(o->flags >> OBJ_KIND_SHIFT);
        char env[512];
        size_t n = 0, len;

        if (o->flags & OBJ_BARE)
                n = (size_t)envelope(k, kind, o->name, env, sizeof(env));
        len = o->flags & OBJ_PACKED ? kube_unpack(obj_json(o), NULL) : o->len;
        if (GROW(*buf, *cap, n + len + 1) < 0)
                return -ENOMEM;
        memcpy(*buf, env, n);
        if (o->flags & OBJ_PACKED)
                kube_unpack(obj_json(o), *buf + n);
        else
                memcpy(*buf + n, obj_json(o), len + 1);
        *ret_len = n + len;
        return 0;
}

/* One object into the load, named and its envelope written again. */
static int add_to_model(const struct kube_source *k, struct cfg_loader *l, const struct obj *o, char **buf,
                        size_t *cap)
{
        char key[sizeof("kubernetes:/") + 32 + UINT16_MAX];
        size_t len;
        int r;

        snprintf(key, sizeof(key), "kubernetes:%s/%s", kinds[o->flags >> OBJ_KIND_SHIFT].plural, o->name);
        if ((r = object_json(k, o, buf, cap, &len)) < 0)
                return r;
        return cfg_loader_add_object(l, key, *buf, len);
}

static int kube_source_model(struct source *src, struct cfg_settings *set, struct cfg_model **ret,
                             struct cfg_diags *d)
{
        struct kube_source *k = (struct kube_source *)src;
        _cleanup_(freep) struct obj **all = NULL;
        _cleanup_(freep) char *scratch = NULL;
        size_t scratch_cap = 0;
        struct cfg_loader *l;
        size_t n = 0, total = 0;
        int r;

        if (!k->has_data)
                return 0;
        for (size_t i = 0; i < KUBE_N_KINDS; i++)
                total += k->cache[i].n;
        if (!(all = malloc((total ? total : 1) * sizeof(*all))))
                return -ENOMEM;
        for (size_t i = 0; i < KUBE_N_KINDS; i++)
                for (size_t j = 0; j < k->cache[i].size; j++)
                        if (k->cache[i].slots[j])
                                all[n++] = k->cache[i].slots[j];
        qsort(all, n, sizeof(*all), obj_cmp); /* stable messages */
        /* The numbers the load gives them; objects new since take the next ones. */
        for (size_t i = 0; i < n; i++)
                all[i]->input = (uint32_t)i;
        drop_index(k);
        if ((r = cfg_loader_new(set, d, &l)) < 0)
                return r;
        /* Following: kept for the in-place updates (a one-shot load has its own loop). */
        if (!k->once)
                cfg_loader_keep_index(l);
        /* Named from the cache (all[] stays until the load ends), not copied: every
         * add is one input while the loader's cap on inputs is not reached. */
        if (n <= CFG_MAX_KEYS)
                cfg_loader_name_on_demand(l, name_object, all);
        /* One input per object, a block claim per affinity and IPAMBlock (and per
         * podCIDR, a Node has two at most): sized once, not doubled past 100k. */
        r = cfg_loader_reserve(l, n,
                               k->cache[KUBE_AFFINITIES].n + k->cache[KUBE_BLOCKS].n +
                                       (set->use_pod_cidr ? 2 * k->cache[KUBE_NODES].n : 0));
        for (size_t i = 0; i < n && r >= 0; i++)
                r = add_to_model(k, l, all[i], &scratch, &scratch_cap);
        /* Not held while the model is built. */
        free(TAKE_PTR(scratch));
        if (r < 0) {
                cfg_loader_free(l);
                return r;
        }
        if ((r = !k->once ? cfg_loader_finish_indexed(l, ret, &k->ix) : cfg_loader_finish(l, ret)) < 0)
                return r;
        /* The names served this load's diagnostics (all[] goes now); the in-place
         * updates name the inputs they compare from the cache. */
        cfg_model_drop_names(*ret);
        if (k->ix && n <= CFG_MAX_KEYS) {
                (*ret)->namer = name_input;
                (*ret)->namer_ctx = k;
                k->ix_model = *ret;
                k->next_input = (uint32_t)n;
        } else
                drop_index(k);
        /* The names, the loader's arrays and the list pages' parse leave free pages
         * inside the heap that the plan's one large array (mmap'd) cannot reuse: hand
         * them back before it is built (100k affinities: the daemon's RSS once
         * converged 33.3 -> 29.1 MB). */
        malloc_trim(0);
        return 1;
}

/* The changed objects as kvupdate.c takes them: key, JSON (NULL: deleted) and
 * number. */
static int change_kvs(const struct kube_source *k, struct cfg_kv *kvs)
{
        size_t cap = 0;
        int r;

        for (size_t i = 0; i < k->n_changes; i++) {
                const struct kube_change *c = &k->changes[i];
                const struct obj *o = omap_get(&k->cache[c->kind], c->name);
                char *key, *json = NULL;
                size_t len = 0;

                if (asprintf(&key, "kubernetes:%s/%s", kinds[c->kind].plural, c->name) < 0)
                        return -ENOMEM;
                kvs[i] = (struct cfg_kv){ .key = key, .input = c->input + 1, .object = true };
                if (o && (r = object_json(k, o, &json, &cap, &len)) < 0)
                        return r;
                kvs[i].value = json;
                kvs[i].value_len = len;
                cap = 0;
        }
        return 0;
}

static void kvs_free(struct cfg_kv *kvs, size_t n)
{
        for (size_t i = 0; kvs && i < n; i++) {
                free((char *)kvs[i].key);
                free((char *)kvs[i].value);
        }
        free(kvs);
}

/* The watch events since the model, applied to it in place (config/kvupdate.c): a
 * BlockAffinity or IPAMBlock changes its block, another node's Node whose labels stay
 * its addresses; anything else, or a relist since, asks for a full build (-EAGAIN). */
static int kube_source_update(struct source *src, struct cfg_model *m, struct cfg_touched *t, struct cfg_diags *d)
{
        struct kube_source *k = (struct kube_source *)src;
        struct cfg_kv *kvs;
        size_t n = k->n_changes;
        int r;

        if (!k->ix || k->ix_model != m || k->changes_overflow) {
                drop_index(k);
                return -EAGAIN;
        }
        if (n == 0)
                return 0;
        if (!(kvs = calloc(n, sizeof(*kvs))))
                r = -ENOMEM;
        else if ((r = change_kvs(k, kvs)) >= 0)
                r = cfg_model_update_kvs(m, k->ix, kvs, n, t, d);
        kvs_free(kvs, n);
        changes_clear(k);
        /* Refused or half done: the next model is a full build. */
        if (r < 0)
                drop_index(k);
        else
                log_debug("kubernetes: %zu object%s updated in the model in place", n, n == 1 ? "" : "s");
        return r;
}

static void kube_source_refresh(struct source *src)
{
        struct kube_source *k = (struct kube_source *)src;

        if (k->http && k->state != ST_LISTING && k->state != ST_DISCOVERY)
                start_round(k);
}

static bool kube_source_same(const struct source *src, const struct cfg_source *conf)
{
        const struct kube_source *k = (const struct kube_source *)src;
        const struct cfg_kdd *a = &k->kdd, *b = &conf->kdd;

        return conf->type == CFG_DATASTORE_KUBERNETES && streq_ptr(a->kubeconfig, b->kubeconfig) &&
               streq_ptr(a->kubeconfig_inline, b->kubeconfig_inline) && streq_ptr(a->api_endpoint, b->api_endpoint) &&
               streq_ptr(a->ca_file, b->ca_file) && streq_ptr(a->cert_file, b->cert_file) &&
               streq_ptr(a->key_file, b->key_file) && streq_ptr(a->token, b->token) &&
               streq_ptr(a->context, b->context) && a->insecure == b->insecure && a->api_group == b->api_group;
}

/* The highest resourceVersion of the kinds (an etcd revision on every real API server). */
static int64_t kube_revision(const struct kube_source *k)
{
        int64_t best = 0;

        for (size_t i = 0; i < KUBE_N_KINDS; i++) {
                int64_t v = strtoll(k->rv[i], NULL, 10);

                if (v > best)
                        best = v;
        }
        return best;
}

static void kube_source_origin(const struct source *src, struct source_origin *ret)
{
        const struct kube_source *k = (const struct kube_source *)src;
        size_t n = 0;

        for (size_t i = 0; i < KUBE_N_KINDS; i++)
                n += k->cache[i].n;
        *ret = (struct source_origin){ .type = CFG_DATASTORE_KUBERNETES, .unit = "object", .n_keys = n };
        snprintf(ret->endpoint, sizeof(ret->endpoint), "%s",
                 k->conf.server ? k->conf.server : k->kdd.api_endpoint ? k->kdd.api_endpoint : "");
        if (k->has_data)
                ret->revision = kube_revision(k);
}

static bool kube_source_waiting(const struct source *src, char *buf, size_t size)
{
        const struct kube_source *k = (const struct kube_source *)src;

        if (k->has_data)
                return false;
        snprintf(buf, size, "the datastore (kubernetes %s)",
                 k->conf.server ? k->conf.server : k->kdd.kubeconfig ? k->kdd.kubeconfig : "");
        return true;
}

static const char *kube_source_error(const struct source *src)
{
        const struct kube_source *k = (const struct kube_source *)src;

        return k->error[0] ? k->error : NULL;
}

static void kube_source_free(struct source *src)
{
        struct kube_source *k = (struct kube_source *)src;

        cancel_all(k);
        drop_index(k);
        for (size_t i = 0; i < KUBE_N_KINDS; i++)
                omap_clear(&k->cache[i]);
        http_free(k->http);
        sd_event_source_unref(k->retry);
        sd_event_source_unref(k->deadline);
        sd_event_source_unref(k->cred_io);
        sd_event_source_unref(k->cred_settle);
        watch_set_free(k->cred_watch);
        if (k->once)
                sd_event_unref(src->ev);
        cfg_kdd_clear(&k->kdd);
        cfg_kube_clear(&k->conf);
        if (k->token)
                explicit_bzero(k->token, strlen(k->token));
        free(k->token);
        if (k->auth)
                explicit_bzero(k->auth, strlen(k->auth));
        free(k->auth);
        free(k);
}

static const struct source_impl kube_impl = {
        .type = CFG_DATASTORE_KUBERNETES,
        .start = kube_source_start,
        .model = kube_source_model,
        .update = kube_source_update,
        .refresh = kube_source_refresh,
        .same = kube_source_same,
        .origin = kube_source_origin,
        .waiting = kube_source_waiting,
        .error = kube_source_error,
        .free = kube_source_free,
};

static int kdd_copy(const struct cfg_kdd *src, struct cfg_kdd *k)
{
        const char *from[] = { src->origin, src->kubeconfig, src->kubeconfig_inline, src->api_endpoint,
                               src->ca_file, src->cert_file, src->key_file, src->token, src->context };
        char **to[] = { &k->origin, &k->kubeconfig, &k->kubeconfig_inline, &k->api_endpoint,
                        &k->ca_file, &k->cert_file, &k->key_file, &k->token, &k->context };

        *k = (struct cfg_kdd){ .insecure = src->insecure, .use_pod_cidr = src->use_pod_cidr,
                               .api_group = src->api_group };
        for (size_t i = 0; i < ELEMENTSOF(from); i++)
                if (from[i] && !(*to[i] = strdup(from[i]))) {
                        cfg_kdd_clear(k);
                        return -ENOMEM;
                }
        return 0;
}

/* CALICO_UNDERLAY_KUBE_WATCH_TIMEOUT=SECONDS: the watches' timeoutSeconds (1 s to a
 * day); WATCH_TIMEOUT_S otherwise. */
static unsigned watch_timeout(void)
{
        const char *v = getenv("CALICO_UNDERLAY_KUBE_WATCH_TIMEOUT");
        unsigned long s;
        char *end;

        if (!v || !*v)
                return WATCH_TIMEOUT_S;
        errno = 0;
        s = strtoul(v, &end, 10);
        if (errno || *end || *v == '-' || s < 1 || s > 86400) {
                log_warning("kubernetes: CALICO_UNDERLAY_KUBE_WATCH_TIMEOUT=%.40s is not 1 to 86400 seconds; using %d",
                            v, WATCH_TIMEOUT_S);
                return WATCH_TIMEOUT_S;
        }
        return (unsigned)s;
}

int kube_source_new(const struct cfg_kdd *conf, struct source **ret)
{
        struct kube_source *k = calloc(1, sizeof(*k));
        int r;

        if (!k)
                return -ENOMEM;
        k->base.impl = &kube_impl;
        k->watch_timeout_s = watch_timeout();
        if ((r = kdd_copy(conf, &k->kdd)) < 0) {
                free(k);
                return r;
        }
        *ret = &k->base;
        return 0;
}
