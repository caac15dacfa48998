/* Unit tests for the etcd client's packed key cache (daemon/etcd-cache.c, issue 16),
 * by property: random puts, deletes and compactions over keys shaped like Calico's
 * (long shared prefixes, a key that is a prefix of another, binary values with NULs,
 * empty values) must read back exactly as a plain sorted map holds them, through get,
 * walk (key order) and names; input numbers follow the cache's contract (a key's place
 * after a compaction, a new number for a new key, kept through deletes until the next
 * compaction); a list read in key order is packed as it comes, with nothing on top. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etcd-cache.h"
#include "util.h"

#define MAX_REF 600

/* The reference: a sorted array of keys with values, and each key's number. */
struct ref {
        char *key[MAX_REF];
        char val[MAX_REF][40];
        size_t len[MAX_REF];
        bool live[MAX_REF];
        uint32_t input[MAX_REF];
        size_t n;
        uint32_t next;
};

static size_t ref_find(const struct ref *r, const char *key, bool *found)
{
        size_t i = 0;

        while (i < r->n && strcmp(r->key[i], key) < 0)
                i++;
        *found = i < r->n && streq(r->key[i], key);
        return i;
}

static void ref_put(struct ref *r, const char *key, const char *val, size_t len)
{
        bool found;
        size_t i = ref_find(r, key, &found);

        if (!found) {
                assert_true(r->n < MAX_REF);
                memmove(&r->key[i + 1], &r->key[i], (r->n - i) * sizeof(r->key[0]));
                memmove(&r->val[i + 1], &r->val[i], (r->n - i) * sizeof(r->val[0]));
                memmove(&r->len[i + 1], &r->len[i], (r->n - i) * sizeof(r->len[0]));
                memmove(&r->live[i + 1], &r->live[i], (r->n - i) * sizeof(r->live[0]));
                memmove(&r->input[i + 1], &r->input[i], (r->n - i) * sizeof(r->input[0]));
                r->key[i] = strdup(key);
                r->input[i] = r->next++;
                r->n++;
        }
        memcpy(r->val[i], val, len);
        r->len[i] = len;
        r->live[i] = true;
}

static void ref_del(struct ref *r, const char *key)
{
        bool found;
        size_t i = ref_find(r, key, &found);

        if (found)
                r->live[i] = false;
}

/* A compaction: the dead go, every key numbered by its place. */
static void ref_compact(struct ref *r)
{
        size_t n = 0;

        for (size_t i = 0; i < r->n; i++) {
                if (!r->live[i]) {
                        free(r->key[i]);
                        continue;
                }
                r->key[n] = r->key[i];
                memcpy(r->val[n], r->val[i], sizeof(r->val[0]));
                r->len[n] = r->len[i];
                r->live[n] = true;
                r->input[n] = (uint32_t)n;
                n++;
        }
        r->n = n;
        r->next = (uint32_t)n;
}

static void ref_clear(struct ref *r)
{
        for (size_t i = 0; i < r->n; i++)
                free(r->key[i]);
        r->n = 0;
}

static void random_key(unsigned *seed, char *buf, size_t size)
{
        static const char *const prefixes[] = { "/calico/ipam/v2/assignment/ipv4/block/",
                                                "/calico/ipam/v2/host/node-", "/calico/resources/v3/projectcalico.org/nodes/" };
        unsigned r = (unsigned)rand_r(seed);

        switch (r % 4) {
        case 0:
                snprintf(buf, size, "%s10.%u.%u.0-26", prefixes[0], r / 4 % 3, r / 12 % 40);
                break;
        case 1:
                snprintf(buf, size, "%s%04u/ipv4/block/10.0.%u.0-26", prefixes[1], r / 4 % 7, r / 28 % 30);
                break;
        case 2: /* a key, and keys it is a prefix of */
                snprintf(buf, size, "%snode-%u%s", prefixes[2], r / 4 % 5, r / 20 % 3 == 0 ? "" : r / 20 % 3 == 1 ? "x" : "xy");
                break;
        default:
                snprintf(buf, size, "/k%u", r / 4 % 50);
                break;
        }
}

static size_t random_value(unsigned *seed, char *buf)
{
        size_t n = (size_t)rand_r(seed) % 40;

        for (size_t i = 0; i < n; i++)
                buf[i] = (char)(rand_r(seed) % 4 == 0 ? 0 : 'a' + rand_r(seed) % 26);
        return n;
}

struct walked {
        const struct ref *r;
        size_t i;
};

static int on_key(const struct cfg_kv *kv, void *userdata)
{
        struct walked *w = userdata;
        const struct ref *r = w->r;

        while (w->i < r->n && !r->live[w->i])
                w->i++;
        assert_true(w->i < r->n);
        assert_string_equal(kv->key, r->key[w->i]);
        assert_int_equal(kv->value_len, r->len[w->i]);
        assert_memory_equal(kv->value, r->val[w->i], r->len[w->i]);
        assert_int_equal(kv->value[kv->value_len], 0);
        assert_int_equal(kv->input, r->input[w->i] + 1);
        w->i++;
        return 0;
}

static void check(struct etcd_cache *c, const struct ref *r)
{
        size_t live = 0;
        char name[600], want[600];

        for (size_t i = 0; i < r->n; i++) {
                struct cfg_kv kv;

                assert_int_equal(etcd_cache_get(c, r->key[i], &kv), r->live[i]);
                /* A key deleted since the compaction keeps its number. */
                assert_int_equal(etcd_cache_input(c, r->key[i]), r->input[i] + 1);
                etcd_cache_name(c, r->input[i], name, sizeof(name));
                snprintf(want, sizeof(want), "etcd:%s", r->key[i]);
                assert_string_equal(name, want);
                if (!r->live[i])
                        continue;
                live++;
                assert_int_equal(kv.value_len, r->len[i]);
                assert_memory_equal(kv.value, r->val[i], r->len[i]);
                assert_int_equal(kv.input, r->input[i] + 1);
        }
        assert_int_equal(etcd_cache_n(c), live);
        etcd_cache_name(c, r->next + 5, name, sizeof(name));
        assert_string_equal(name, "etcd:?");
        if (etcd_cache_n_changed(c) == 0) {
                struct walked w = { r, 0 };

                assert_int_equal(etcd_cache_walk(c, on_key, &w), 0);
        } else
                assert_int_equal(etcd_cache_walk(c, on_key, NULL), -EBUSY);
}

static void random_ops(void **state)
{
        (void)state;
        for (unsigned seed = 1; seed <= 40; seed++) {
                struct etcd_cache c = {};
                struct ref r = {};
                unsigned s = seed;

                for (unsigned step = 0; step < 400; step++) {
                        char key[200], val[40];
                        unsigned op = (unsigned)rand_r(&s) % 10;

                        random_key(&s, key, sizeof(key));
                        if (op < 6) {
                                size_t n = random_value(&s, val);

                                assert_int_equal(etcd_cache_put(&c, key, val, n, op == 0), 0);
                                ref_put(&r, key, val, n);
                        } else if (op < 9) {
                                assert_int_equal(etcd_cache_del(&c, key), 0);
                                ref_del(&r, key);
                        } else {
                                assert_int_equal(etcd_cache_compact(&c), 0);
                                ref_compact(&r);
                                assert_int_equal(etcd_cache_n_changed(&c), 0);
                        }
                        if (step % 20 == 0 || op == 9)
                                check(&c, &r);
                }
                check(&c, &r);
                etcd_cache_clear(&c);
                ref_clear(&r);
        }
}

/* A list reads keys in order: packed as they come, nothing on top, numbered 0, 1, ...;
 * a watch event after that goes on top with the next number. */
static void list_in_order(void **state)
{
        struct etcd_cache c = {};
        struct cfg_kv kv;
        char key[100];

        (void)state;
        for (unsigned i = 0; i < 1000; i++) {
                snprintf(key, sizeof(key), "/calico/ipam/v2/host/node-%04u/ipv4/block/10.0.0.0-26", i);
                assert_int_equal(etcd_cache_put(&c, key, "{}", 2, false), 0);
        }
        assert_int_equal(etcd_cache_n(&c), 1000);
        assert_int_equal(etcd_cache_n_changed(&c), 0);
        /* 1000 keys of 54 bytes and their values: the 26 bytes each shares with the key
         * before it are stored once a run. */
        assert_true(c.n_data < 1000 * 36);
        assert_true(etcd_cache_get(&c, "/calico/ipam/v2/host/node-0500/ipv4/block/10.0.0.0-26", &kv));
        assert_int_equal(kv.input, 501);
        assert_false(etcd_cache_get(&c, "/calico/ipam/v2/host/node-0500/ipv4/block/10.0.0.0-2", &kv));
        assert_false(etcd_cache_get(&c, "/a", &kv));
        assert_false(etcd_cache_get(&c, "/z", &kv));
        assert_int_equal(etcd_cache_put(&c, "/a", "x", 1, false), 0);
        assert_int_equal(etcd_cache_n_changed(&c), 1);
        assert_int_equal(etcd_cache_input(&c, "/a"), 1001);
        assert_int_equal(etcd_cache_del(&c, "/calico/ipam/v2/host/node-0000/ipv4/block/10.0.0.0-26"), 0);
        assert_int_equal(etcd_cache_n(&c), 1000);
        assert_int_equal(etcd_cache_compact(&c), 0);
        assert_int_equal(etcd_cache_input(&c, "/a"), 1);
        assert_int_equal(etcd_cache_input(&c, "/calico/ipam/v2/host/node-0000/ipv4/block/10.0.0.0-26"), 0);
        assert_int_equal(etcd_cache_input(&c, "/calico/ipam/v2/host/node-0001/ipv4/block/10.0.0.0-26"), 2);
        etcd_cache_clear(&c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(random_ops),
                cmocka_unit_test(list_in_order),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
