/* Unit tests for the in-place updates of a model built from etcd keys or Kubernetes
 * objects (config/kvupdate.c, issue 16), by property: random sequences of key (object)
 * puts and deletes (BlockAffinities in every state, IPAMBlocks with and without
 * affinity, borrowed addresses, bad values, conflicting and overlapping claims, blocks
 * in no pool, a key outside the layout; for Kubernetes, affinities of one block under
 * several names and one name whose block moves, core Nodes) applied in place must leave
 * exactly the model a full load of the same keys builds, field by field; a refused
 * update must refuse what the full load refuses, with the same message, and leave the
 * model as it was. The index keeps IPv4 claims in a compact part and the others
 * (IPv6, lines past what the compact form holds) apart: a third run lowers that line
 * limit and starts some values on line 2, so one block's claims lie in both parts.
 * An indexed full load, whose loader keeps the claims in that compact form too, builds
 * the plain load's model with the plain load's diagnostics, on thousands of claims. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "load.h"
#include "loader.h"
#include "model-check.h"
#include "model.h"
#include "util.h"

#define RES "/calico/resources/v3/projectcalico.org/"
#define AFF "/calico/ipam/v2/host/"
#define BLK "/calico/ipam/v2/assignment/"
#define KUB "kubernetes:"
#define CRD "\"apiVersion\":\"crd.projectcalico.org/v1\""

/* ---- the key set: a small sorted map ---- */

#define MAX_KEYS 128

struct keyset {
        char *key[MAX_KEYS], *value[MAX_KEYS];
        size_t n;
};

static void ks_put(struct keyset *s, const char *key, const char *value)
{
        size_t i = 0;

        while (i < s->n && strcmp(s->key[i], key) < 0)
                i++;
        if (i < s->n && streq(s->key[i], key)) {
                free(s->value[i]);
                s->value[i] = strdup(value);
                return;
        }
        assert_true(s->n < MAX_KEYS);
        memmove(&s->key[i + 1], &s->key[i], (s->n - i) * sizeof(char *));
        memmove(&s->value[i + 1], &s->value[i], (s->n - i) * sizeof(char *));
        s->key[i] = strdup(key);
        s->value[i] = strdup(value);
        s->n++;
}

static bool ks_del(struct keyset *s, const char *key)
{
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->key[i], key)) {
                        free(s->key[i]);
                        free(s->value[i]);
                        memmove(&s->key[i], &s->key[i + 1], (s->n - i - 1) * sizeof(char *));
                        memmove(&s->value[i], &s->value[i + 1], (s->n - i - 1) * sizeof(char *));
                        s->n--;
                        return true;
                }
        return false;
}

static void ks_clear(struct keyset *s)
{
        for (size_t i = 0; i < s->n; i++) {
                free(s->key[i]);
                free(s->value[i]);
        }
        s->n = 0;
}

/* A value, or (records) its cfg_kv_compact() record when it has one, as an etcd cache
 * keeps it. */
static struct cfg_kv kv_of(const char *key, const char *value, bool records, char **rec)
{
        struct cfg_kv kv = { key, value, value ? strlen(value) : 0, false };
        size_t n;

        *rec = NULL;
        if (records && value && cfg_kv_compact(&kv, rec, &n) == 1) {
                kv.value = *rec;
                kv.value_len = n;
                kv.record = true;
        }
        return kv;
}

/* The input numbers a source that keeps the keys tells (the etcd cache's contract,
 * daemon/etcd-cache.h): a full load numbers the keys by their place; a key new since
 * gets the next number and keeps it, deleted or not, until the next full load. The
 * model is named on demand from them. */
struct numbering {
        char *key[8 * MAX_KEYS]; /* by number */
        uint32_t n;
};

static void num_clear(struct numbering *nb)
{
        for (uint32_t i = 0; i < nb->n; i++)
                free(nb->key[i]);
        nb->n = 0;
}

/* The key's number + 1 (a new one when add), 0: none. */
static uint32_t num_of(struct numbering *nb, const char *key, bool add)
{
        for (uint32_t i = 0; i < nb->n; i++)
                if (streq(nb->key[i], key))
                        return i + 1;
        if (!add)
                return 0;
        assert_true(nb->n < ELEMENTSOF(nb->key));
        nb->key[nb->n++] = strdup(key);
        return nb->n;
}

static void num_namer(const void *ctx, uint32_t input, char *buf, size_t size)
{
        const struct numbering *nb = ctx;

        snprintf(buf, size, "etcd:%s", input < nb->n ? nb->key[input] : "?");
}

/* Kubernetes: the keys are the inputs' names ("kubernetes:PLURAL/NAME"). */
static void kube_namer(const void *ctx, uint32_t input, char *buf, size_t size)
{
        const struct numbering *nb = ctx;

        snprintf(buf, size, "%s", input < nb->n ? nb->key[input] : "kubernetes:?");
}

static int add_input(struct cfg_loader *l, const struct cfg_kv *kv, bool kube)
{
        return kube ? cfg_loader_add_object(l, kv->key, kv->value, kv->value_len) : cfg_loader_add_kv(l, kv);
}

/* The model side's full load through the loader, named on demand (nb), or in one call
 * with its names. */
static int load_numbered(struct cfg_settings *set, const struct cfg_kv *kvs, size_t n, struct numbering *nb,
                         struct cfg_model **ret, struct cfg_kv_index **ret_ix, struct cfg_diags *d, bool kube)
{
        struct cfg_loader *l;
        int r;

        num_clear(nb);
        for (size_t i = 0; i < n; i++)
                num_of(nb, kvs[i].key, true);
        if ((r = cfg_loader_new(set, d, &l)) < 0)
                return r;
        cfg_loader_name_on_demand(l, kube ? kube_namer : num_namer, nb);
        cfg_loader_keep_index(l);
        for (size_t i = 0; i < n && r >= 0; i++)
                r = add_input(l, &kvs[i], kube);
        return cfg_loader_finish_indexed(l, ret, ret_ix);
}

/* Kubernetes objects in key order (the source's order), names kept. */
static int load_objects(struct cfg_settings *set, const struct cfg_kv *kvs, size_t n, struct cfg_model **ret,
                        struct cfg_diags *d)
{
        struct cfg_loader *l;
        int r;

        if ((r = cfg_loader_new(set, d, &l)) < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++)
                r = add_input(l, &kvs[i], true);
        return cfg_loader_finish(l, ret);
}

static int full_load(const struct keyset *s, struct cfg_model **ret, struct cfg_kv_index **ret_ix,
                     struct cfg_diags *d, bool records, struct numbering *nb, bool kube)
{
        struct cfg_settings set = mc_settings();
        struct cfg_kv kvs[MAX_KEYS];
        char *recs[MAX_KEYS];
        int r;

        for (size_t i = 0; i < s->n; i++)
                kvs[i] = kv_of(s->key[i], s->value[i], records, &recs[i]);
        if (ret_ix && nb)
                r = load_numbered(&set, kvs, s->n, nb, ret, ret_ix, d, kube);
        else if (kube)
                r = load_objects(&set, kvs, s->n, ret, d);
        else
                r = ret_ix ? cfg_model_from_kvs_indexed(&set, kvs, s->n, ret, ret_ix, d)
                           : cfg_model_from_kvs(&set, kvs, s->n, ret, d);
        for (size_t i = 0; i < s->n; i++)
                free(recs[i]);
        cfg_settings_clear(&set);
        return r;
}

/* ---- the index against a fresh load's ---- */

static int text_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The index's claims as text, sorted: by names, since input numbers differ between a
 * model updated in place and a fresh load. */
static char **claim_texts(const struct cfg_model *m, const struct cfg_kv_index *ix, size_t *ret_n)
{
        struct raw_block *v;
        char **t;
        size_t n;

        assert_int_equal(kv_index_claims(m, ix, &v, &n), 0);
        t = calloc(n + 1, sizeof(*t));
        assert_non_null(t);
        for (size_t i = 0; i < n; i++) {
                char p[CFG_PREFIX_STRLEN];

                cfg_prefix_fmt(&v[i].cidr, p, sizeof(p));
                assert_true(asprintf(&t[i], "%s origin %u node %s at %s:%u", p, v[i].origin,
                                     m->nodes[v[i].node].name, cfg_model_file(m, v[i].src), v[i].src.line) > 0);
        }
        qsort(t, n, sizeof(*t), text_cmp);
        free(v);
        *ret_n = n;
        return t;
}

/* An index updated in place holds the claims a fresh load's index holds (the blocks'
 * own and the others, each where its form puts it), and its counts of references agree
 * with them. */
static void check_index(const struct cfg_model *m, const struct cfg_kv_index *ix, const struct keyset *s, bool kube)
{
        struct cfg_settings set = mc_settings();
        struct cfg_model *fm = NULL;
        struct cfg_kv_index *fix = NULL;
        struct cfg_diags d = {};
        struct cfg_loader *l;
        char **a, **b;
        size_t na, nb;

        assert_int_equal(cfg_loader_new(&set, &d, &l), 0);
        cfg_loader_keep_index(l);
        for (size_t i = 0; i < s->n; i++) {
                struct cfg_kv kv = { s->key[i], s->value[i], strlen(s->value[i]) };

                assert_int_equal(add_input(l, &kv, kube), 0);
        }
        assert_int_equal(cfg_loader_finish_indexed(l, &fm, &fix), 0);
        a = claim_texts(m, ix, &na);
        b = claim_texts(fm, fix, &nb);
        for (size_t i = 0; i < na && i < nb; i++)
                assert_string_equal(a[i], b[i]);
        assert_int_equal(na, nb);
        assert_true(kv_index_counts_agree(m, ix));
        for (size_t i = 0; i < na; i++)
                free(a[i]);
        for (size_t i = 0; i < nb; i++)
                free(b[i]);
        free(a);
        free(b);
        cfg_kv_index_free(fix);
        cfg_model_free(fm);
        cfg_diags_clear(&d);
        cfg_settings_clear(&set);
}

/* ---- random keys ---- */

static const char *const nodes[] = { "n1", "n2", "n3", "n4", "n5" };
/* four blocks of the IPv4 pool, one of the IPv6 pool, one overlapping the first two,
 * one in no pool */
static const char *const cidrs[] = { "10.0.0.0/28", "10.0.0.16/28", "10.0.0.32/28", "10.0.0.48/28",
                                     "fd00:10::/124", "10.0.0.0/27", "10.9.0.0/28" };

static void key_of(char *buf, size_t size, const char *prefix, const char *node, const char *cidr)
{
        char c[64];
        bool v6 = strchr(cidr, ':');

        snprintf(c, sizeof(c), "%s", cidr);
        *strchr(c, '/') = '-';
        if (node)
                snprintf(buf, size, "%s%s/%s/block/%s", prefix, node, v6 ? "ipv6" : "ipv4", c);
        else
                snprintf(buf, size, "%s%s/block/%s", prefix, v6 ? "ipv6" : "ipv4", c);
}

static const char *affinity_value(unsigned r)
{
        static const char *const v[] = {
                "{\"state\":\"confirmed\",\"deleted\":false}",
                "",
                "{}",
                "{\"state\":\"pending\"}",
                "{\"state\":\"pendingDeletion\"}",
                "{\"state\":\"confirmed\",\"deleted\":true}",
                "[1]",                                                 /* refused */
                "{\"state\":\"confirmed\",\"deleted\":\"maybe\"}",     /* refused */
        };
        /* mostly good ones */
        return v[r % 16 < 6 ? r % 6 : r % 16 < 14 ? 0 : 6 + r % 2];
}

/* An IPAMBlock value: affinity (or none; mostly the node that usually claims the block,
 * so that its BlockAffinity is often the same node's: the index's shadow), some
 * addresses borrowed by other nodes. */
static void block_value(char *buf, size_t size, const char *cidr, unsigned c, unsigned r)
{
        const char *host = r % 5 == 0              ? NULL :
                           (r / 5) % 3 == 0        ? nodes[(r / 15) % ELEMENTSOF(nodes)] :
                                                     nodes[c % ELEMENTSOF(nodes)];
        char allocs[256] = "", attrs[512] = "";
        unsigned n = 1 + (r / 25) % 4;

        if (r % 31 == 0) {
                snprintf(buf, size, "{\"cidr\":\"%s\",\"affinity\":7}", cidr); /* refused */
                return;
        }
        for (unsigned i = 0; i < n; i++) {
                const char *who = nodes[(r / 7 + i * 3) % ELEMENTSOF(nodes)];
                size_t k = strlen(allocs), a = strlen(attrs);

                /* ordinal 1 + (i + r) % 5 holds attribute i; others free */
                snprintf(allocs + k, sizeof(allocs) - k, "%s%u", k ? "," : "", i);
                snprintf(attrs + a, sizeof(attrs) - a, "%s{\"secondary\":{\"node\":\"%s\"}}", a ? "," : "", who);
        }
        snprintf(buf, size,
                 "{\"cidr\":\"%s\",\"affinity\":%s%s%s,\"allocations\":[null,%s],\"attributes\":[%s],"
                 "\"deleted\":%s}",
                 cidr, host ? "\"host:" : "null", host ? host : "", host ? "\"" : "", allocs, attrs,
                 r % 11 == 0 ? "true" : "false");
}

/* One random change: the key and its new value (NULL: delete); *bad when the key set
 * is likely refused after it (the next step repairs it, as an operator would). */
static void random_change(unsigned *seed, char *key, size_t ksize, char *val, size_t vsize, bool *del, bool *bad)
{
        unsigned r = (unsigned)rand_r(seed), c = r % 5;
        const char *node;

        *bad = false;
        /* mostly a block of the pools; now and then one overlapping two, or in no pool */
        if ((r / 5) % 24 == 0) {
                c = 5 + (r / 120) % 2;
                *bad = c == 5;
        }
        *del = (r / 3) % 4 == 0;
        r = (unsigned)rand_r(seed);
        /* each block mostly claimed by one node; now and then by another (a conflict,
         * unless an IPAMBlock overrules it) */
        node = nodes[(r / 9) % 8 == 0 ? (r / 72) % ELEMENTSOF(nodes) : c % ELEMENTSOF(nodes)];
        switch (r % 11) {
        case 9:
        case 10: {
                /* A Node: mostly another node's address moving (in place); now and then
                 * its labels, this node's own, a new node's or a bad address. */
                static const char *const addrs[] = { "192.168.1.2/24", "192.168.1.22/24", "192.168.1.23/24",
                                                     "10.5.0.1/16", "192.168.1.2" };
                unsigned q = (unsigned)rand_r(seed);
                const char *who = q % 13 == 0 ? "n1" : q % 17 == 0 ? "n3" : "n2";
                const char *addr = addrs[(q / 17) % ELEMENTSOF(addrs)];

                snprintf(key, ksize, RES "nodes/%s", who);
                if (q % 19 == 0)
                        addr = "192.168.1.999/24"; /* refused */
                snprintf(val, vsize,
                         "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"%s\"%s},"
                         "\"spec\":{\"bgp\":{\"ipv4Address\":\"%s\"%s}}}",
                         who, q % 11 == 0 ? ",\"labels\":{\"a\":\"b\"}" : "", addr,
                         q % 3 == 0 ? ",\"ipv4IPIPTunnelAddr\":\"10.0.0.1\"" : "");
                *bad = *bad || q % 19 == 0;
                /* n1 and n2 stay (a pool-less, Node-less cluster is another test) */
                if (streq(who, "n1") || streq(who, "n2"))
                        *del = false;
                break;
        }
        case 0:
                snprintf(key, ksize, "%s", AFF "n3/ipv4/block/nonsense");
                snprintf(val, vsize, "{}");
                break;
        case 1:
        case 2:
        case 3:
                key_of(key, ksize, BLK, NULL, cidrs[c]);
                block_value(val, vsize, cidrs[c], c, (unsigned)rand_r(seed));
                *bad = *bad || strstr(val, ":7}");
                break;
        default:
                key_of(key, ksize, AFF, node, cidrs[c]);
                snprintf(val, vsize, "%s", affinity_value((unsigned)rand_r(seed)));
                *bad = *bad || *val == '[' || strstr(val, "maybe") || !streq(node, nodes[c % ELEMENTSOF(nodes)]);
                break;
        }
}

static void base_keys(struct keyset *s)
{
        ks_put(s, RES "ippools/v4",
               "{\"kind\":\"IPPool\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"v4\"},"
               "\"spec\":{\"cidr\":\"10.0.0.0/24\",\"blockSize\":28}}");
        ks_put(s, RES "ippools/v6",
               "{\"kind\":\"IPPool\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"v6\"},"
               "\"spec\":{\"cidr\":\"fd00:10::/64\",\"blockSize\":124}}");
        ks_put(s, RES "nodes/n1",
               "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"n1\"},"
               "\"spec\":{\"bgp\":{\"ipv4Address\":\"192.168.1.1/24\"}}}");
        ks_put(s, RES "nodes/n2",
               "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"n2\"},"
               "\"spec\":{\"bgp\":{\"ipv4Address\":\"192.168.1.2/24\"}}}");
}

/* A Kubernetes BlockAffinity (the CRD's form: deleted a string). */
static void kube_affinity(char *val, size_t vsize, const char *name, const char *node, const char *cidr, unsigned r)
{
        static const char *const states[] = { "confirmed", "confirmed", "confirmed", "pending", "pendingDeletion" };
        const char *deleted = r % 13 == 0 ? "true" : r % 29 == 0 ? "maybe" /* refused */ : "false";

        snprintf(val, vsize,
                 "{" CRD ",\"kind\":\"BlockAffinity\",\"metadata\":{\"name\":\"%s\"},\"spec\":{\"cidr\":\"%s\","
                 "\"deleted\":\"%s\",\"node\":\"%s\",\"state\":\"%s\"}}",
                 name, r % 37 == 0 ? "10.0.0.0/99" /* refused */ : cidr, deleted, node,
                 states[(r / 3) % ELEMENTSOF(states)]);
}

static void dashed(char *buf, size_t size, const char *cidr)
{
        snprintf(buf, size, "%s", cidr);
        for (char *p = buf; *p; p++)
                if (*p == '.' || *p == '/' || *p == ':')
                        *p = '-';
}

/* random_change() for the Kubernetes datastore: the same blocks, as objects. */
static void random_kube_change(unsigned *seed, char *key, size_t ksize, char *val, size_t vsize, bool *del,
                               bool *bad)
{
        unsigned r = (unsigned)rand_r(seed), c = r % 5;
        char name[128], d[64], spec[512];
        const char *node;

        *bad = false;
        if ((r / 5) % 24 == 0) {
                c = 5 + (r / 120) % 2;
                *bad = c == 5;
        }
        *del = (r / 3) % 4 == 0;
        r = (unsigned)rand_r(seed);
        node = nodes[(r / 9) % 8 == 0 ? (r / 72) % ELEMENTSOF(nodes) : c % ELEMENTSOF(nodes)];
        dashed(d, sizeof(d), cidrs[c]);
        switch (r % 11) {
        case 9:
        case 10: {
                /* A core Node: its address moving, now and then its labels, this
                 * node's own, a new node's or a bad address. */
                static const char *const addrs[] = { "192.168.1.2/24", "192.168.1.22/24", "192.168.1.23/24",
                                                     "10.5.0.1/16", "192.168.1.2" };
                unsigned q = (unsigned)rand_r(seed);
                const char *who = q % 13 == 0 ? "n1" : q % 17 == 0 ? "n3" : "n2";
                const char *addr = q % 19 == 0 ? "192.168.1.999/24" : addrs[(q / 17) % ELEMENTSOF(addrs)];

                snprintf(key, ksize, KUB "nodes/%s", who);
                snprintf(val, vsize,
                         "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"%s\"%s,"
                         "\"annotations\":{\"projectcalico.org/IPv4Address\":\"%s\"%s}},\"spec\":{},"
                         "\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"192.168.1.%u\"}]}}",
                         who, q % 11 == 0 ? ",\"labels\":{\"a\":\"b\"}" : "", addr,
                         q % 3 == 0 ? ",\"projectcalico.org/IPv4IPIPTunnelAddr\":\"10.0.0.1\"" : "", 2 + q % 3);
                *bad = *bad || q % 19 == 0;
                if (streq(who, "n1") || streq(who, "n2"))
                        *del = false;
                break;
        }
        case 0:
                /* One name whose block moves (the full load decides). */
                snprintf(key, ksize, KUB "blockaffinities/moving");
                kube_affinity(val, vsize, "moving", node, cidrs[c], (unsigned)rand_r(seed));
                *bad = *bad || strstr(val, "maybe") || strstr(val, "/99");
                break;
        case 1:
        case 2:
        case 3:
                snprintf(key, ksize, KUB "ipamblocks/%s", d);
                block_value(spec, sizeof(spec), cidrs[c], c, (unsigned)rand_r(seed));
                snprintf(val, vsize, "{" CRD ",\"kind\":\"IPAMBlock\",\"metadata\":{\"name\":\"%s\"},\"spec\":%s}",
                         d, spec);
                *bad = *bad || strstr(val, ":7}");
                break;
        default:
                /* Mostly Calico's name for it; now and then another name for the same
                 * claim (the tie between them goes by name). */
                snprintf(name, sizeof(name), "%s%s-%s", (r / 11) % 5 == 0 ? "alt-" : "", node, d);
                snprintf(key, ksize, KUB "blockaffinities/%s", name);
                kube_affinity(val, vsize, name, node, cidrs[c], (unsigned)rand_r(seed));
                *bad = *bad || strstr(val, "maybe") || strstr(val, "/99") || !streq(node, nodes[c % ELEMENTSOF(nodes)]);
                break;
        }
}

static void kube_base_keys(struct keyset *s)
{
        ks_put(s, KUB "ippools/v4",
               "{" CRD ",\"kind\":\"IPPool\",\"metadata\":{\"name\":\"v4\"},"
               "\"spec\":{\"cidr\":\"10.0.0.0/24\",\"blockSize\":28}}");
        ks_put(s, KUB "ippools/v6",
               "{" CRD ",\"kind\":\"IPPool\",\"metadata\":{\"name\":\"v6\"},"
               "\"spec\":{\"cidr\":\"fd00:10::/64\",\"blockSize\":124}}");
        for (unsigned i = 1; i <= 2; i++) {
                char key[64], val[512];

                snprintf(key, sizeof(key), KUB "nodes/n%u", i);
                snprintf(val, sizeof(val),
                         "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"n%u\","
                         "\"annotations\":{\"projectcalico.org/IPv4Address\":\"192.168.1.%u/24\"}},\"spec\":{},"
                         "\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"192.168.1.%u\"}]}}",
                         i, i, i);
                ks_put(s, key, val);
        }
}

/* The first error's text, or "". */
static void first_error(const struct cfg_diags *d, char *buf, size_t size)
{
        *buf = 0;
        for (size_t i = 0; i < d->n; i++)
                if (d->v[i].severity == CFG_ERROR) {
                        cfg_diag_fmt(&d->v[i], buf, size);
                        return;
                }
}

static bool has_error(const struct cfg_diags *d, const char *text)
{
        char buf[1024];

        for (size_t i = 0; i < d->n; i++)
                if (d->v[i].severity == CFG_ERROR) {
                        cfg_diag_fmt(&d->v[i], buf, sizeof(buf));
                        if (streq(buf, text))
                                return true;
                }
        return false;
}

struct stats {
        unsigned updated, unchanged, again, refused, full_failed;
};

/* records: the model side reads records where cfg_kv_compact() gives them, the
 * reference always the values; numbered: the model side is named on demand and told
 * each changed key's input number, as the etcd source does. */
static bool second_lines; /* some values start on line 2 */

static void run_sequence(unsigned seed, unsigned steps, bool kube, struct stats *st)
{
        unsigned line_seed = seed * 7919;
        bool records = !kube && seed % 2 == 0;
        /* The Kubernetes source always numbers its objects and names them on demand. */
        struct numbering numbers = {}, *nb = kube || seed % 4 < 2 ? &numbers : NULL;
        struct keyset s = {};
        struct cfg_model *m = NULL;
        struct cfg_kv_index *ix = NULL;
        struct cfg_diags d = {};
        char repair[160] = "", old_repair[160] = "";

        kube ? kube_base_keys(&s) : base_keys(&s);
        assert_int_equal(full_load(&s, &m, &ix, &d, records, nb, kube), 0);
        cfg_diags_clear(&d);
        for (unsigned step = 0; step < steps; step++) {
                unsigned n = 1 + (unsigned)rand_r(&seed) % 3;
                char keys[4][160], vals[4][640];
                struct cfg_kv ch[4];
                struct cfg_touched t = {};
                struct cfg_model *want = NULL, *before = NULL;
                int r, w;

                /* The model m stands for, to compare with after a refusal. */
                if (ix) {
                        assert_int_equal(full_load(&s, &before, NULL, &d, false, NULL, kube), 0);
                        cfg_diags_clear(&d);
                }
                for (unsigned i = 0; i < n; i++) {
                        bool del, bad;

                        (kube ? random_kube_change : random_change)(&seed, keys[i], sizeof(keys[i]), vals[i],
                                                                    sizeof(vals[i]) - 1, &del, &bad);
                        if (second_lines && *vals[i] == '{' && rand_r(&line_seed) % 2) {
                                memmove(vals[i] + 1, vals[i], strlen(vals[i]) + 1);
                                vals[i][0] = '\n';
                        }
                        if (bad && !del)
                                snprintf(repair, sizeof(repair), "%.159s", keys[i]);
                        if (del) {
                                ks_del(&s, keys[i]);
                                ch[i] = (struct cfg_kv){ keys[i], NULL, 0 };
                        } else {
                                ks_put(&s, keys[i], vals[i]);
                                ch[i] = (struct cfg_kv){ keys[i], vals[i], strlen(vals[i]) };
                        }
                }
                /* The last step's bad key goes again. */
                if (*old_repair) {
                        snprintf(keys[n], sizeof(keys[n]), "%.159s", old_repair);
                        ks_del(&s, old_repair);
                        ch[n] = (struct cfg_kv){ keys[n], NULL, 0 };
                        n++;
                }
                snprintf(old_repair, sizeof(old_repair), "%.159s", repair);
                *repair = 0;
                /* A later change of the same key is the one that counts (the source
                 * hands each changed key once, with its value now). */
                for (unsigned i = 0; i < n; i++)
                        for (unsigned j = i + 1; j < n; j++)
                                if (streq(ch[i].key, ch[j].key)) {
                                        memmove(&ch[i], &ch[i + 1], (n - i - 1) * sizeof(ch[0]));
                                        n--;
                                        i--;
                                        break;
                                }
                w = full_load(&s, &want, NULL, &d, false, NULL, kube);
                struct cfg_diags wd = d;
                d = (struct cfg_diags){};
                if (!ix) {
                        /* The last change was refused or needed a full load that failed:
                         * the daemon loads fully until one succeeds. */
                        if (w == 0) {
                                cfg_model_free(m);
                                m = NULL;
                                assert_int_equal(full_load(&s, &m, &ix, &d, records, nb, kube), 0);
                                cfg_diags_clear(&d);
                        }
                        cfg_model_free(want);
                        cfg_diags_clear(&wd);
                        st->full_failed++;
                        continue;
                }
                char *recs[4] = {};
                for (unsigned i = 0; i < n; i++) {
                        ch[i] = kv_of(ch[i].key, ch[i].value, records, &recs[i]);
                        ch[i].object = kube;
                        if (nb)
                                ch[i].input = num_of(nb, ch[i].key, ch[i].value != NULL);
                }
                r = cfg_model_update_kvs(m, ix, ch, n, &t, &d);
                for (unsigned i = 0; i < n; i++)
                        free(recs[i]);
                if (r >= 0) {
                        /* Accepted: the full load must accept and agree. */
                        if (w != 0) {
                                char e[1024];

                                first_error(&wd, e, sizeof(e));
                                fail_msg("seed %u step %u: updated in place, the full load refuses: %s", seed, step, e);
                        }
                        mc_same_model(m, want);
                        if (step % 2 == 0) /* every other: the valgrind run's time */
                                check_index(m, ix, &s, kube);
                        cfg_touched_done(&t);
                        mc_touched_covers(before, want, &t);
                        /* Everything only when the IPAM count crosses zero (podCIDRs). */
                        assert_int_equal(t.all, !before->n_ipam_resources != !want->n_ipam_resources);
                        if (r == 0)
                                assert_int_equal(t.n, 0);
                        r ? st->updated++ : st->unchanged++;
                } else if (r == -EAGAIN) {
                        mc_same_model(m, before); /* all or nothing */
                        st->again++;
                        cfg_kv_index_free(ix);
                        ix = NULL;
                        if (w == 0) {
                                cfg_model_free(m);
                                m = NULL;
                                assert_int_equal(full_load(&s, &m, &ix, &d, records, nb, kube), 0);
                        }
                } else {
                        /* Refused: the full load refuses too, with each same message. */
                        assert_int_equal(r, -EINVAL);
                        assert_int_equal(w, -EINVAL);
                        for (size_t i = 0; i < d.n; i++)
                                if (d.v[i].severity == CFG_ERROR) {
                                        char e[1024];

                                        cfg_diag_fmt(&d.v[i], e, sizeof(e));
                                        if (!has_error(&wd, e))
                                                fail_msg("seed %u step %u: '%s' is not the full load's", seed, step, e);
                                }
                        assert_true(d.n_errors > 0);
                        mc_same_model(m, before); /* as it was */
                        st->refused++;
                        cfg_kv_index_free(ix);
                        ix = NULL;
                }
                cfg_touched_clear(&t);
                cfg_diags_clear(&d);
                cfg_diags_clear(&wd);
                cfg_model_free(want);
                cfg_model_free(before);
        }
        cfg_kv_index_free(ix);
        cfg_model_free(m);
        ks_clear(&s);
        num_clear(&numbers);
}

/* Sequences of 120 steps from one source (etcd keys or Kubernetes objects); they
 * reach every outcome. */
static void sequences(bool kube, unsigned seeds)
{
        struct stats st = {};

        for (unsigned seed = 1; seed <= seeds; seed++)
                run_sequence(seed, 120, kube, &st);
        printf("%s: in place %u, unchanged %u, full load %u, refused %u, waiting for a good full load %u\n",
               kube ? "kubernetes" : "etcd", st.updated, st.unchanged, st.again, st.refused, st.full_failed);
        assert_true(st.updated > 1000);
        assert_true(st.unchanged > 10);
        assert_true(st.again > 10);
        assert_true(st.refused > 10);
}

static void random_sequences(void **state)
{
        (void)state;
        sequences(false, 60);
}

static void random_kube_sequences(void **state)
{
        (void)state;
        sequences(true, 60);
}

/* IPv4 claims on line 2 go to the index's wide part, those on line 1 stay compact. */
static void random_sequences_both_parts(void **state)
{
        (void)state;
        claims_v4_lines = 2;
        second_lines = true;
        sequences(false, 30);
        sequences(true, 30);
        claims_v4_lines = 1u << 24;
        second_lines = false;
}

/* ---- the indexed load against the plain one ---- */

/* A large key set in a random order: 3,000 blocks' claims (affinities, IPAMBlocks with
 * or without affinity, some in no pool, IPv6 ones, some values starting on line 2),
 * with (bad) conflicting claims and refused values too. */
static size_t big_keys(unsigned seed, bool bad, struct cfg_kv *kvs, size_t max)
{
        size_t n = 0;

        kvs[n++] = (struct cfg_kv){ RES "ippools/v4",
                                    "{\"kind\":\"IPPool\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":"
                                    "\"v4\"},\"spec\":{\"cidr\":\"10.0.0.0/16\",\"blockSize\":28}}" };
        kvs[n++] = (struct cfg_kv){ RES "ippools/v6",
                                    "{\"kind\":\"IPPool\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":"
                                    "\"v6\"},\"spec\":{\"cidr\":\"fd00:10::/64\",\"blockSize\":124}}" };
        kvs[0].value_len = strlen(kvs[0].value);
        kvs[1].value_len = strlen(kvs[1].value);
        while (n + 2 <= max) {
                unsigned r = (unsigned)rand_r(&seed), b = r % 4096, kind = (r >> 12) % 16;
                char cidr[64], key[160], val[640];
                /* Bad: some of each kind of error, few enough that the diagnostics kept
                 * (CFG_DIAGS_MAX) hold the blocks' conflicts. */
                bool odd = bad && (r >> 25) % 8 == 0;
                const char *node = nodes[odd ? (r >> 16) % ELEMENTSOF(nodes) : b % ELEMENTSOF(nodes)];

                if (kind == 0)
                        snprintf(cidr, sizeof(cidr), "10.9.%u.%u/28", b / 16, b % 16 * 16); /* no pool */
                else if (kind < 3)
                        snprintf(cidr, sizeof(cidr), "fd00:10::%x0/124", b);
                else
                        snprintf(cidr, sizeof(cidr), "10.0.%u.%u/28", b / 16, b % 16 * 16);
                if (odd && kind == 3)
                        snprintf(cidr, sizeof(cidr), "10.0.%u.0/27", b / 16); /* overlaps */
                if ((r >> 20) % 2) {
                        key_of(key, sizeof(key), AFF, node, cidr);
                        snprintf(val, sizeof(val), "%s%s", (r >> 21) % 3 ? "" : "\n",
                                 odd ? affinity_value(r >> 22) : "{\"state\":\"confirmed\",\"deleted\":false}");
                } else {
                        /* Good: affine to the affinities' node, never refused (block_value()). */
                        unsigned v = odd ? r >> 22 : 5 * (3 * (r >> 24) + 1) + 1;

                        if (!odd && v % 31 == 0)
                                v += 15;

                        key_of(key, sizeof(key), BLK, NULL, cidr);
                        val[0] = '\n';
                        block_value(val + 1, sizeof(val) - 1, cidr, b, v);
                }
                kvs[n].key = strdup(key);
                kvs[n].value = strdup(val + ((r >> 21) % 3 && *val == '\n'));
                assert_non_null(kvs[n].key);
                assert_non_null(kvs[n].value);
                kvs[n].value_len = strlen(kvs[n].value);
                n++;
        }
        return n;
}

/* An indexed load keeps its claims in the compact form and reads them back merged from
 * both parts (loader.c): the model and every diagnostic are the plain load's. */
static void indexed_load_is_plain_load(void **state)
{
        static struct cfg_kv kvs[6000];

        (void)state;
        for (unsigned round = 0; round < 8; round++) {
                bool bad = round % 2;
                size_t n;
                struct cfg_settings set = mc_settings();
                struct cfg_model *a = NULL, *b = NULL;
                struct cfg_kv_index *ix = NULL;
                struct cfg_diags da = {}, db = {};
                int ra, rb;

                claims_v4_lines = round >= 4 ? 2 : 1u << 24; /* line 2: the wide part too */
                n = big_keys(round, bad, kvs, ELEMENTSOF(kvs));
                ra = cfg_model_from_kvs(&set, kvs, n, &a, &da);
                cfg_settings_clear(&set);
                set = mc_settings();
                rb = cfg_model_from_kvs_indexed(&set, kvs, n, &b, &ix, &db);
                assert_int_equal(ra, rb);
                assert_int_equal(ra, bad ? -EINVAL : 0);
                if (ra == 0) {
                        mc_same_model(a, b);
                        assert_true(b->n_blocks > 1000);
                        assert_true(kv_index_counts_agree(b, ix));
                }
                assert_int_equal(da.n, db.n);
                assert_int_equal(da.n_errors, db.n_errors);
                assert_int_equal(da.n_dropped, db.n_dropped);
                assert_true(bad ? da.n_errors > 10 : da.n > 0); /* the blocks in no pool */
                for (size_t i = 0; i < da.n; i++) {
                        char x[1024], y[1024];

                        cfg_diag_fmt(&da.v[i], x, sizeof(x));
                        cfg_diag_fmt(&db.v[i], y, sizeof(y));
                        assert_string_equal(x, y);
                }
                for (size_t i = 2; i < n; i++) {
                        free((char *)kvs[i].key);
                        free((char *)kvs[i].value);
                }
                cfg_kv_index_free(ix);
                cfg_model_free(a);
                cfg_model_free(b);
                cfg_diags_clear(&da);
                cfg_diags_clear(&db);
                cfg_settings_clear(&set);
        }
        claims_v4_lines = 1u << 24;
}

/* ---- Node records ---- */

/* A Calico Node's value read from its record (cfg_kv_compact()) gives the model and
 * diagnostics the JSON gives, before or after another key naming the node; a value
 * whose reading has anything to say, that does not open at its first byte, or that is
 * not projectcalico.org/v3's stays JSON. */
static void node_records(void **state)
{
        static const struct {
                const char *value;
                bool recorded;
        } cases[] = {
                { "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"n1\","
                  "\"uid\":\"00000001-fec1-11e9-a1d8-52540045a0c1\",\"creationTimestamp\":\"2024-03-01T10:00:00Z\","
                  "\"labels\":{\"kubernetes.io/hostname\":\"n1\",\"zone\":\"az1\"}},"
                  "\"spec\":{\"bgp\":{\"ipv4Address\":\"192.168.1.1/24\",\"ipv6Address\":\"fd00::1/64\","
                  "\"ipv4IPIPTunnelAddr\":\"10.0.0.1\"},\"ipv4VXLANTunnelAddr\":\"10.0.0.2\","
                  "\"orchRefs\":[{\"nodeName\":\"n1\",\"orchestrator\":\"k8s\"}]},\"status\":{}}",
                  true },
                { "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"n1\","
                  "\"labels\":null}}",
                  true },
                { "{\"apiVersion\":\"projectcalico.org/v3\",\"kind\":\"Node\",\"metadata\":{\"name\":\"n1\"},"
                  "\"spec\":{\"bgp\":{\"ipv6Address\":\"fd00::1/64\"}}}",
                  true },
                { "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"n1\"},"
                  "\"spec\":{\"bgp\":{\"ipv4Address\":\"192.168.1.999/24\"}}}", /* refused */
                  false },
                { "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"n9\"}}",
                  false }, /* another name than the key's */
                { "\n {\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"n1\"}}",
                  false }, /* not at line 1, column 1 */
                { "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"n1\"},"
                  "\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"192.168.1.1\"}]}}",
                  false }, /* a Kubernetes Node */
                { "{\"kind\":\"IPPool\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"n1\"}}",
                  false },
                { "[1]", false },
                { "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"n1\","
                  "\"labels\":{\"zone\":\"az1\",\"zone\":\"az2\"}}}", /* refused: a key twice */
                  false },
                /* a list or a second document: refused (etcdkv.c), never recorded */
                { "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"n1\"},"
                  "\"items\":[{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"n1\"},"
                  "\"spec\":{\"podCIDR\":\"10.0.0.32/28\"}}]}",
                  false },
                { "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"n1\"},"
                  "\"items\":null}",
                  true },
                { "{\"kind\":\"Node\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"n1\"}}\n---\n"
                  "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"n1\"}}",
                  false },
        };
        /* Another key naming n1 first (its affinity) or after (an IPAMBlock's host). */
        static const char *const aff_key = AFF "n1/ipv4/block/10.0.0.0-28", *blk_key = BLK "ipv4/block/10.0.0.16-28";
        char blk[640];

        (void)state;
        block_value(blk, sizeof(blk), "10.0.0.16/28", 0, 1);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct cfg_kv json = { RES "nodes/n1", cases[i].value, strlen(cases[i].value) }, rec = json;
                char *p = NULL;
                size_t n = 0;
                int r = cfg_kv_compact(&json, &p, &n);

                assert_int_equal(r, cases[i].recorded);
                if (r == 1) {
                        assert_true(n < json.value_len / 2);
                        rec = (struct cfg_kv){ json.key, p, n, true };
                }
                for (unsigned order = 0; order < 2; order++) {
                        struct cfg_kv kvs[2][4] = {
                                { { RES "ippools/v4", NULL, 0 }, { aff_key, "{}", 2 }, json, { blk_key, blk, strlen(blk) } },
                                { { RES "ippools/v4", NULL, 0 }, { aff_key, "{}", 2 }, rec, { blk_key, blk, strlen(blk) } },
                        };
                        struct cfg_model *a = NULL, *b = NULL;
                        struct cfg_diags da = {}, db = {};
                        struct cfg_settings set = mc_settings();
                        const char *pool = "{\"kind\":\"IPPool\",\"apiVersion\":\"projectcalico.org/v3\","
                                           "\"metadata\":{\"name\":\"v4\"},\"spec\":{\"cidr\":\"10.0.0.0/24\","
                                           "\"blockSize\":28}}";
                        int ra, rb;

                        for (int k = 0; k < 2; k++) {
                                kvs[k][0].value = pool;
                                kvs[k][0].value_len = strlen(pool);
                                if (order) { /* the Node first */
                                        struct cfg_kv t = kvs[k][1];

                                        kvs[k][1] = kvs[k][2];
                                        kvs[k][2] = t;
                                }
                        }
                        ra = cfg_model_from_kvs(&set, kvs[0], 4, &a, &da);
                        cfg_settings_clear(&set);
                        set = mc_settings();
                        rb = cfg_model_from_kvs(&set, kvs[1], 4, &b, &db);
                        assert_int_equal(ra, rb);
                        if (ra == 0)
                                mc_same_model(a, b);
                        assert_int_equal(da.n, db.n);
                        assert_int_equal(da.n_errors, db.n_errors);
                        for (size_t j = 0; j < da.n; j++) {
                                char x[1024], y[1024];

                                cfg_diag_fmt(&da.v[j], x, sizeof(x));
                                cfg_diag_fmt(&db.v[j], y, sizeof(y));
                                assert_string_equal(x, y);
                        }
                        cfg_model_free(a);
                        cfg_model_free(b);
                        cfg_diags_clear(&da);
                        cfg_diags_clear(&db);
                        cfg_settings_clear(&set);
                }
                free(p);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(node_records),
                cmocka_unit_test(indexed_load_is_plain_load),
                cmocka_unit_test(random_sequences),
                cmocka_unit_test(random_kube_sequences),
                cmocka_unit_test(random_sequences_both_parts),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
