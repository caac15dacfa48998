/* libFuzzer target for config/: the same bytes as a resources file (with default settings)
 * and as a settings file. Beyond "no crash, no leak", a model that loads must keep the
 * promises the planner relies on: pools, nodes and blocks sorted; pools disjoint; every
 * block inside the pool it names, owned by a node that exists, disjoint from the next;
 * lookups that find what the arrays hold. A refusal must say why (an error diagnostic).
 * The plain block YAML reader (yamltree.c, YDOC_REWINDS) must give what libyaml gives
 * (tests/ydoc-diff.h): the same trees, positions, diagnostics and result. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "model.h"
#include "ydoc-diff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                   \
        do {                       \
                if (!(x))          \
                        abort();   \
        } while (0)

static void check_diags(const struct cfg_diags *d)
{
        char buf[256];

        CHECK(d->n <= CFG_DIAGS_MAX);
        for (size_t i = 0; i < d->n; i++) {
                CHECK(d->v[i].message);
                CHECK(cfg_diag_fmt(&d->v[i], buf, sizeof(buf)) >= 0);
        }
}

static void check_model(const struct cfg_model *m)
{
        const struct cfg_labels *self_labels = cfg_model_self_labels(m);
        struct cfg_felix f;

        CHECK(m->n_pools > 0);
        for (size_t i = 0; i < m->n_pools; i++) {
                const struct cfg_pool *p = &m->pools[i];

                CHECK(p->name && p->name[0] && p->node_selector && p->selector);
                CHECK(p->block_size >= p->cidr.len && p->block_size <= cfg_prefix_maxlen(&p->cidr));
                CHECK(!(p->ipip != CFG_ENCAP_NEVER && p->vxlan != CFG_ENCAP_NEVER));
                CHECK(cfg_model_pool_for(m, &p->cidr) == p);
                if (i > 0) {
                        CHECK(cfg_prefix_cmp(&m->pools[i - 1].cidr, &p->cidr) < 0);
                        CHECK(!cfg_prefix_overlaps(&m->pools[i - 1].cidr, &p->cidr));
                }
                (void)sel_match(p->selector, self_labels);
                CHECK(p->src.file < m->n_files);
        }
        for (size_t i = 0; i < m->n_nodes; i++) {
                CHECK(cfg_model_node(m, m->nodes[i].name) == &m->nodes[i]);
                if (i > 0)
                        CHECK(strcmp(m->nodes[i - 1].name, m->nodes[i].name) < 0);
        }
        for (size_t i = 0; i < m->n_blocks; i++) {
                const struct cfg_block *b = &m->blocks[i];

                CHECK(b->node < m->n_nodes && b->pool < m->n_pools);
                CHECK(cfg_model_pool_for(m, &b->cidr) == &m->pools[b->pool]);
                CHECK(b->src.file < m->n_files);
                if (i > 0) {
                        CHECK(cfg_prefix_cmp(&m->blocks[i - 1].cidr, &b->cidr) < 0);
                        CHECK(!cfg_prefix_overlaps(&m->blocks[i - 1].cidr, &b->cidr));
                }
        }
        f = cfg_model_felix(m, m->settings.node_name);
        CHECK(f.device_route_protocol != m->settings.route_protocol);
        (void)cfg_model_self(m);
}

static void fuzz_resources(const uint8_t *data, size_t size)
{
        static const char *const names[] = { "fuzz.yaml" };
        const char *bufs[] = { (const char *)data };
        struct cfg_diags d = {};
        struct cfg_settings s;
        struct cfg_model *m = NULL;
        int r;

        if (cfg_settings_load_buffer(NULL, NULL, 0, "node1", &s, &d) < 0)
                abort();
        r = cfg_model_from_buffers(&s, names, bufs, &size, 1, &m, &d);
        if (r == 0) {
                check_model(m);
                cfg_model_free(m);
        } else {
                CHECK(!m);
                CHECK(r == -EINVAL || r == -ENOMEM);
                CHECK(r == -ENOMEM || d.n_errors > 0);
                cfg_settings_clear(&s);
        }
        check_diags(&d);
        cfg_diags_clear(&d);
}

static void fuzz_settings(const uint8_t *data, size_t size)
{
        struct cfg_diags d = {};
        struct cfg_settings s;
        int r;

        r = cfg_settings_load_buffer("/etc/calico-underlay/config.yaml", data, size, "node1", &s, &d);
        if (r == 0) {
                CHECK(s.node_name && s.node_name[0]);
                CHECK(s.n_resources > 0);
                for (size_t i = 0; i < s.n_resources; i++)
                        CHECK(s.resources[i] && s.resources[i][0] == '/');
                CHECK(s.tunnel_ipip && s.tunnel_vxlan && s.tunnel_vxlan_v6);
                CHECK(s.route_table != 0 && (s.route_table < 253 || s.route_table > 255));
                CHECK(s.uplink_mode == CFG_UPLINK_AUTO || s.uplink);
                if (s.has_node_labels)
                        for (size_t i = 1; i < s.node_labels.n; i++)
                                CHECK(strcmp(s.node_labels.v[i - 1].key, s.node_labels.v[i].key) < 0);
                cfg_settings_clear(&s);
        } else {
                CHECK(r == -EINVAL || r == -ENOMEM);
                CHECK(r == -ENOMEM || d.n_errors > 0);
        }
        check_diags(&d);
        cfg_diags_clear(&d);
}

static void fuzz_plain_yaml(const uint8_t *data, size_t size)
{
        char *a = NULL, *b = NULL;

        for (unsigned flags = 0; flags <= YDOC_LIST_ITEMS; flags++)
                if (ydiff((const char *)data, size, flags | YDOC_REWINDS, &a, &b) < 0) {
                        fprintf(stderr, "plain YAML:\n%s\nlibyaml:\n%s\n", a, b);
                        abort();
                }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        fuzz_plain_yaml(data, size);
        fuzz_resources(data, size);
        fuzz_settings(data, size);
        return 0;
}
