/* The model comparisons the property tests of the in-place updates share (filerec,
 * kvupdate, files source): two models, or two diagnostic lists, field by field with
 * cmocka assertions, so that a failure names the first field that differs; and the
 * check that a cfg_touched names every block and borrowed address whose route may
 * differ between two models. Names made on demand (a namer instead of files[]) are
 * compared as text through cfg_model_file(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "model-check.h"
#include "util.h"

const char *mc_node_name(const struct cfg_model *m, uint32_t i)
{
        if (i == UINT32_MAX)
                return "(none)";
        assert_true(i < m->n_nodes);
        return m->nodes[i].name;
}

void mc_same_src(const struct cfg_model *a, struct cfg_src x, const struct cfg_model *b, struct cfg_src y)
{
        assert_string_equal(cfg_model_file(a, x), cfg_model_file(b, y));
        assert_int_equal(x.line, y.line);
}

void mc_same_prefix(const struct cfg_prefix *a, const struct cfg_prefix *b)
{
        char x[CFG_PREFIX_STRLEN], y[CFG_PREFIX_STRLEN];

        cfg_prefix_fmt(a, x, sizeof(x));
        cfg_prefix_fmt(b, y, sizeof(y));
        assert_string_equal(x, y);
}

bool mc_same_addrs(const struct cfg_node *a, const struct cfg_node *b)
{
        return cfg_prefix_eq(&a->addr, &b->addr) && cfg_prefix_eq(&a->addr6, &b->addr6) &&
               cfg_prefix_eq(&a->ipip_tunnel_addr, &b->ipip_tunnel_addr) &&
               cfg_prefix_eq(&a->vxlan_tunnel_addr, &b->vxlan_tunnel_addr);
}

static void same_pool(const struct cfg_model *a, const struct cfg_pool *x, const struct cfg_model *b,
                      const struct cfg_pool *y)
{
        assert_string_equal(x->name, y->name);
        mc_same_prefix(&x->cidr, &y->cidr);
        assert_int_equal(x->block_size, y->block_size);
        assert_int_equal(x->ipip, y->ipip);
        assert_int_equal(x->vxlan, y->vxlan);
        assert_int_equal(x->nat_outgoing, y->nat_outgoing);
        assert_int_equal(x->disabled, y->disabled);
        assert_int_equal(x->workload, y->workload);
        assert_int_equal(x->legacy_disagrees, y->legacy_disagrees);
        assert_string_equal(x->node_selector, y->node_selector);
        assert_int_equal(sel_is_all(x->selector), sel_is_all(y->selector));
        mc_same_src(a, x->src, b, y->src);
        assert_int_equal(x->col, y->col);
}

static void same_node(const struct cfg_model *a, const struct cfg_node *x, const struct cfg_model *b,
                      const struct cfg_node *y)
{
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->has_resource, y->has_resource);
        assert_int_equal(x->has_labels, y->has_labels);
        assert_int_equal(x->labels.n, y->labels.n);
        for (size_t k = 0; k < x->labels.n; k++) {
                assert_string_equal(x->labels.v[k].key, y->labels.v[k].key);
                assert_string_equal(x->labels.v[k].value, y->labels.v[k].value);
        }
        mc_same_prefix(&x->addr, &y->addr);
        mc_same_prefix(&x->addr6, &y->addr6);
        mc_same_prefix(&x->ipip_tunnel_addr, &y->ipip_tunnel_addr);
        mc_same_prefix(&x->vxlan_tunnel_addr, &y->vxlan_tunnel_addr);
        assert_true(mc_same_addrs(x, y));
        if (x->has_resource)
                mc_same_src(a, x->src, b, y->src);
}

static void same_block(const struct cfg_model *a, const struct cfg_block *x, const struct cfg_model *b,
                       const struct cfg_block *y)
{
        mc_same_prefix(&x->cidr, &y->cidr);
        assert_string_equal(mc_node_name(a, x->node), mc_node_name(b, y->node));
        assert_int_equal(x->pool, y->pool);
        mc_same_src(a, x->src, b, y->src);
}

static void same_borrowed(const struct cfg_model *a, const struct cfg_borrowed *x, const struct cfg_model *b,
                          const struct cfg_borrowed *y)
{
        mc_same_prefix(&x->addr, &y->addr);
        assert_string_equal(mc_node_name(a, x->node), mc_node_name(b, y->node));
        assert_string_equal(mc_node_name(a, x->block_node), mc_node_name(b, y->block_node));
        assert_int_equal(x->pool, y->pool);
        mc_same_src(a, x->src, b, y->src);
}

static void same_felix(const struct cfg_model *a, const struct cfg_felix *x, const struct cfg_model *b,
                       const struct cfg_felix *y)
{
        assert_string_equal(x->name, y->name);
        assert_int_equal(x->ipip_enabled, y->ipip_enabled);
        assert_int_equal(x->vxlan_enabled, y->vxlan_enabled);
        assert_int_equal(x->vxlan_enabled_v6, y->vxlan_enabled_v6);
        assert_int_equal(x->device_route_protocol, y->device_route_protocol);
        mc_same_src(a, x->src, b, y->src);
}

void mc_same_model(const struct cfg_model *a, const struct cfg_model *b)
{
        assert_int_equal(a->n_pools, b->n_pools);
        for (size_t i = 0; i < a->n_pools; i++)
                same_pool(a, &a->pools[i], b, &b->pools[i]);
        assert_int_equal(a->n_nodes, b->n_nodes);
        for (size_t i = 0; i < a->n_nodes; i++)
                same_node(a, &a->nodes[i], b, &b->nodes[i]);
        assert_int_equal(a->n_blocks, b->n_blocks);
        for (size_t i = 0; i < a->n_blocks; i++)
                same_block(a, &a->blocks[i], b, &b->blocks[i]);
        assert_int_equal(a->n_borrowed, b->n_borrowed);
        for (size_t i = 0; i < a->n_borrowed; i++)
                same_borrowed(a, &a->borrowed[i], b, &b->borrowed[i]);
        assert_int_equal(a->n_felix, b->n_felix);
        for (size_t i = 0; i < a->n_felix; i++)
                same_felix(a, &a->felix[i], b, &b->felix[i]);
        assert_int_equal(a->n_skipped, b->n_skipped);
        assert_int_equal(a->n_ipam_resources, b->n_ipam_resources);
        assert_int_equal(a->n_pod_cidrs_ignored, b->n_pod_cidrs_ignored);
}

void mc_same_inputs(const struct cfg_model *a, const struct cfg_model *b)
{
        assert_int_equal(a->n_files, b->n_files);
        for (uint32_t i = 0; i < a->n_files; i++) {
                struct cfg_src s = { .file = i };

                assert_string_equal(cfg_model_file(a, s), cfg_model_file(b, s));
        }
}

void mc_same_diags(const struct cfg_diags *a, const struct cfg_diags *b)
{
        assert_int_equal(a->n_errors, b->n_errors);
        assert_int_equal(a->n, b->n);
        for (size_t i = 0; i < a->n; i++) {
                char x[1024], y[1024];

                cfg_diag_fmt(&a->v[i], x, sizeof(x));
                cfg_diag_fmt(&b->v[i], y, sizeof(y));
                assert_string_equal(x, y);
                assert_int_equal(a->v[i].severity, b->v[i].severity);
        }
}

bool mc_touched_has(const struct cfg_touched *t, const struct cfg_prefix *p)
{
        for (size_t i = 0; i < t->n; i++)
                if (cfg_prefix_eq(&t->v[i], p))
                        return true;
        return false;
}

const struct cfg_block *mc_find_block(const struct cfg_model *m, const struct cfg_prefix *p)
{
        for (size_t i = 0; i < m->n_blocks; i++)
                if (cfg_prefix_eq(&m->blocks[i].cidr, p))
                        return &m->blocks[i];
        return NULL;
}

const struct cfg_borrowed *mc_find_borrowed(const struct cfg_model *m, const struct cfg_prefix *p)
{
        for (size_t i = 0; i < m->n_borrowed; i++)
                if (cfg_prefix_eq(&m->borrowed[i].addr, p))
                        return &m->borrowed[i];
        return NULL;
}

static bool block_differs(const struct cfg_model *x, const struct cfg_block *p, const struct cfg_model *y,
                          const struct cfg_block *q)
{
        return !q || !streq(mc_node_name(x, p->node), mc_node_name(y, q->node)) || p->pool != q->pool ||
               !mc_same_addrs(&x->nodes[p->node], &y->nodes[q->node]);
}

static bool borrowed_differs(const struct cfg_model *x, const struct cfg_borrowed *p, const struct cfg_model *y,
                             const struct cfg_borrowed *q)
{
        return !q || !streq(mc_node_name(x, p->node), mc_node_name(y, q->node)) ||
               !streq(mc_node_name(x, p->block_node), mc_node_name(y, q->block_node)) || p->pool != q->pool ||
               !mc_same_addrs(&x->nodes[p->node], &y->nodes[q->node]);
}

void mc_touched_covers(const struct cfg_model *a, const struct cfg_model *b, const struct cfg_touched *t)
{
        /* The nodes the planner takes next hops from: the same, or t says they moved. */
        if (!t->all && !t->nodes) {
                assert_int_equal(a->n_nodes, b->n_nodes);
                for (size_t i = 0; i < a->n_nodes; i++) {
                        assert_string_equal(a->nodes[i].name, b->nodes[i].name);
                        assert_true(cfg_prefix_eq(&a->nodes[i].addr, &b->nodes[i].addr));
                        assert_true(cfg_prefix_eq(&a->nodes[i].addr6, &b->nodes[i].addr6));
                }
        }
        for (int pass = 0; pass < 2; pass++) {
                const struct cfg_model *x = pass ? b : a, *y = pass ? a : b;

                for (size_t i = 0; i < x->n_blocks; i++) {
                        const struct cfg_block *p = &x->blocks[i];

                        if (block_differs(x, p, y, mc_find_block(y, &p->cidr)))
                                assert_true(mc_touched_has(t, &p->cidr));
                }
                for (size_t i = 0; i < x->n_borrowed; i++) {
                        const struct cfg_borrowed *p = &x->borrowed[i];

                        if (borrowed_differs(x, p, y, mc_find_borrowed(y, &p->addr)))
                                assert_true(mc_touched_has(t, &p->addr));
                }
        }
}

struct cfg_settings mc_settings(void)
{
        static const char text[] = "nodeName: n1\n";
        struct cfg_settings s = {};
        struct cfg_diags d = {};

        assert_int_equal(cfg_settings_load_buffer("config.yaml", text, sizeof(text) - 1, "host", &s, &d), 0);
        cfg_diags_clear(&d);
        return s;
}
