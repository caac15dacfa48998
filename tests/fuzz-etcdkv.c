/* libFuzzer target for config/etcdkv.c: the keys and values of Calico's etcd datastore
 * as the etcd client hands them over (cfg_model_from_kvs()). The input is a list of
 * records separated by NUL bytes, each "KEY\nVALUE" (a record without a newline is a
 * key with an empty value); keys are sorted first, as the client sorts its cache. The
 * promises are those of fuzz-config: no crash, no leak, a refusal says why, a model
 * that loads is sorted and consistent. And each value reads the same through the
 * plain-JSON reader of config/yamltree.c as through libyaml (tests/ydoc-diff.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "ydoc-diff.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                   \
        do {                       \
                if (!(x))          \
                        abort();   \
        } while (0)

#define MAX_KVS 256

static int kv_cmp(const void *a, const void *b)
{
        return strcmp(((const struct cfg_kv *)a)->key, ((const struct cfg_kv *)b)->key);
}

static void check_model(const struct cfg_model *m)
{
        for (size_t i = 1; i < m->n_pools; i++)
                CHECK(cfg_prefix_cmp(&m->pools[i - 1].cidr, &m->pools[i].cidr) < 0);
        for (size_t i = 0; i < m->n_nodes; i++) {
                CHECK(cfg_model_node(m, m->nodes[i].name) == &m->nodes[i]);
                if (i > 0)
                        CHECK(strcmp(m->nodes[i - 1].name, m->nodes[i].name) < 0);
        }
        for (size_t i = 0; i < m->n_blocks; i++) {
                CHECK(m->blocks[i].node < m->n_nodes);
                CHECK(m->blocks[i].pool < m->n_pools);
                CHECK(cfg_prefix_contains(&m->pools[m->blocks[i].pool].cidr, &m->blocks[i].cidr));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct cfg_kv kvs[MAX_KVS];
        char *copy = malloc(size + 1), *p, *end;
        struct cfg_diags d = {};
        struct cfg_settings s;
        struct cfg_model *m = NULL;
        size_t n = 0;
        int r;

        if (!copy)
                return 0;
        memcpy(copy, data, size);
        copy[size] = 0;
        /* Records end at each NUL (and at the end of the input). */
        for (p = copy, end = copy + size; p <= end && n < MAX_KVS; p += strlen(p) + 1) {
                char *nl = strchr(p, '\n');

                if (nl)
                        *nl = 0;
                kvs[n++] = (struct cfg_kv){ .key = p, .value = nl ? nl + 1 : "", .value_len = nl ? strlen(nl + 1) : 0 };
        }
        for (size_t i = 0; i < n; i++) {
                char *a = NULL, *b = NULL;

                if (ydiff(kvs[i].value, kvs[i].value_len, 0, &a, &b) < 0) {
                        fprintf(stderr, "plain JSON:\n%s\nlibyaml:\n%s\n", a, b);
                        abort();
                }
        }
        qsort(kvs, n, sizeof(*kvs), kv_cmp);
        if (cfg_settings_load_buffer(NULL, NULL, 0, "node1", &s, &d) < 0)
                abort();
        r = cfg_model_from_kvs(&s, kvs, n, &m, &d);
        if (r == 0) {
                check_model(m);
                cfg_model_free(m);
        } else {
                CHECK(!m);
                CHECK(r == -EINVAL || r == -ENOMEM);
                CHECK(r == -ENOMEM || d.n_errors > 0);
                cfg_settings_clear(&s);
        }
        for (size_t i = 0; i < d.n; i++)
                CHECK(d.v[i].message);
        cfg_diags_clear(&d);
        free(copy);
        return 0;
}
