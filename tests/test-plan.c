/* Unit tests for daemon/plan.c, the planner (DESIGN.md §3): given a model (inline Calico
 * YAML), a hand-built host snapshot and the runtime record, the exact ordered action list,
 * the findings, and what the record must hold afterwards.
 *
 * Each test reads as a spec: actions are compared as the one-line text --check prints
 * (host_change_fmt), with the flags it does not print appended by this file: " [replace]"
 * on an add-route that replaces our own route, and " addrs A,B" / " [foreign]" on a
 * remove-tunnel. Every plan is also checked against the ownership rules (no action on a
 * foreign route, replace only over our own route, ...), and most tests then "apply" the
 * plan to the snapshot the way the kernel would and plan again: a converged host must
 * give zero actions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host.h"
#include "load.h"
#include "model.h"
#include "plan.h"
#include "util.h"

#define OWN 211 /* CFG_DEFAULT_ROUTE_PROTOCOL */

/* ---- resources, as inline YAML (one document each, concatenated into a stream) ---- */

#define DOC "---\n"
#define POOL(name, cidr, more)                                                                          \
        DOC "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: " name "}\nspec: {cidr: " \
            cidr more "}\n"
#define NODE(name, addr, labels)                                                                    \
        DOC "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: " name ", labels: {" labels \
            "}}\nspec: {bgp: {ipv4Address: " addr "}}\n"
#define NODE_TUN(name, addr, tun, labels)                                                           \
        DOC "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: " name ", labels: {" labels \
            "}}\nspec: {bgp: {ipv4Address: " addr ", ipv4IPIPTunnelAddr: " tun "}}\n"
#define NODE_NOADDR(name, labels) \
        DOC "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: " name ", labels: {" labels "}}\n"
#define AFF(node, cidr)                                                                              \
        DOC "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: " node "-aff}\n" \
            "spec: {node: " node ", cidr: " cidr ", state: confirmed, deleted: 'false'}\n"
/* An IPAMBlock as the CRD prints it (shape of libcalico-go lib/backend/model/block.go
 * AllocationBlock: allocations index attributes, secondary.node names the host). */
#define IPAMBLOCK(name, cidr, affinity, allocs, attrs)                                                      \
        DOC "apiVersion: crd.projectcalico.org/v1\nkind: IPAMBlock\nmetadata: {name: " name "}\n"        \
            "spec: {cidr: " cidr ", affinity: '" affinity "', strictAffinity: false, deleted: false,\n" \
            "  allocations: [" allocs "],\n  attributes: [" attrs "]}\n"
#define ATTR(node) "{handle_id: k8s-pod-network." node ", secondary: {namespace: default, node: " node "}}"

#define FELIX(name, spec) \
        DOC "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: " name "}\nspec: {" spec "}\n"

#define AZ1 "topology.kubernetes.io/zone: az1"
#define AZ2 "topology.kubernetes.io/zone: az2"
#define SEL_AZ1 ", nodeSelector: 'topology.kubernetes.io/zone == \"az1\"'"
#define SEL_AZ2 ", nodeSelector: 'topology.kubernetes.io/zone == \"az2\"'"
#define UNDERLAY ", blockSize: 28, ipipMode: Never, vxlanMode: Never, natOutgoing: false"

/* The dc1 cluster of tests/fixtures/README.md: an IPIP overlay pool for all nodes and one
 * underlay pool per zone. */
#define DC1_POOLS                                                                                          \
        POOL("default-ipv4-ippool", "10.233.64.0/18",                                                      \
             ", blockSize: 26, ipipMode: Always, natOutgoing: true, nodeSelector: all()")                  \
        POOL("underlay-az1", "192.168.10.128/25", UNDERLAY SEL_AZ1)                                        \
        POOL("underlay-az2", "192.168.20.128/25", UNDERLAY SEL_AZ2)
#define DC1_NODES                                                                   \
        NODE_TUN("node1", "192.168.10.11/24", "10.233.90.0", AZ1 ", rack: r1")      \
        NODE_TUN("node2", "192.168.10.12/24", "10.233.96.0", AZ1 ", rack: r2")      \
        NODE_TUN("node3", "192.168.20.13/24", "10.233.92.0", AZ2 ", rack: r3")      \
        NODE_TUN("node4", "192.168.20.14/24", "10.233.105.0", AZ2 ", edge: 'true'")
#define DC1_BLOCKS                                                                          \
        AFF("node1", "10.233.90.0/26") AFF("node2", "10.233.96.0/26")                       \
        AFF("node3", "10.233.92.0/26") AFF("node4", "10.233.105.0/26")                      \
        AFF("node1", "192.168.10.128/28") AFF("node2", "192.168.10.144/28")                 \
        AFF("node3", "192.168.20.128/28") AFF("node4", "192.168.20.144/28")
#define DC1 DC1_POOLS DC1_NODES DC1_BLOCKS

/* A single underlay pool for everybody, two nodes on one L2 segment. */
#define SIMPLE                                                                                 \
        POOL("underlay", "192.168.10.128/25", UNDERLAY)                                         \
        NODE("node1", "192.168.10.11/24", AZ1) NODE("node2", "192.168.10.12/24", AZ1)           \
        AFF("node1", "192.168.10.128/28") AFF("node2", "192.168.10.144/28")                     \
        AFF("node2", "192.168.10.160/28")

/* What a fresh plan for SIMPLE does on a fresh node1 (host_node1()). */
#define SIMPLE_PROXY "set-proxy-delay eth0 0 ms", "set-proxy-arp eth0 1"
#define R_LOCAL "blackhole 192.168.10.128/28 proto 211 metric 1024 table 252"
#define R_144 "192.168.10.144/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 252"
#define R_160 "192.168.10.160/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 252"
/* The rules SIMPLE's pool wants (and dc1's underlay-az1). */
#define RULE_MAIN_10 "add-rule to 192.168.10.128/25 lookup main suppress_prefixlength 27 pref 32700 proto 211"
#define RULE_OURS_10 "add-rule to 192.168.10.128/25 lookup 252 pref 32701 proto 211"

/* ---- per-test state, freed by the teardown even when an assertion fails ---- */

struct t {
        struct cfg_model *m;
        struct host_snapshot h;
        struct host_record rec;
        struct plan *p;
        struct plan_ctx *ctx; /* delta passes */
        char *buf; /* generated YAML */
        struct cfg_settings s; /* --cleanup tests */
        struct cfg_diags d;
};

static int setup(void **state)
{
        struct t *t = calloc(1, sizeof(*t));

        if (!t)
                return -1;
        t->rec = (struct host_record)HOST_RECORD_INIT;
        *state = t;
        return 0;
}

static int teardown(void **state)
{
        struct t *t = *state;

        plan_free(t->p);
        plan_ctx_free(t->ctx);
        cfg_model_free(t->m);
        host_snapshot_clear(&t->h);
        free(t->buf);
        cfg_settings_clear(&t->s);
        cfg_diags_clear(&t->d);
        free(t);
        return 0;
}

static void print_diags(const struct cfg_diags *d)
{
        for (size_t i = 0; i < d->n; i++) {
                char line[512];

                cfg_diag_fmt(&d->v[i], line, sizeof(line));
                print_error("  %s\n", line);
        }
}

/* The model from settings (NULL: defaults, nodeName node1) and one resources stream. */
static void load(struct t *t, const char *settings, const char *resources)
{
        const char *names[] = { "resources.yaml" }, *bufs[] = { resources };
        size_t sizes[] = { strlen(resources) };
        int r;

        cfg_settings_clear(&t->s);
        cfg_diags_clear(&t->d);
        if (settings)
                r = cfg_settings_load_buffer("config.yaml", settings, strlen(settings), "node1", &t->s, &t->d);
        else
                r = cfg_settings_load_buffer(NULL, NULL, 0, "node1", &t->s, &t->d);
        if (r < 0)
                print_diags(&t->d);
        assert_int_equal(r, 0);
        cfg_model_free(t->m);
        t->m = NULL;
        /* Takes the settings on success; hands them back untouched on failure. */
        r = cfg_model_from_buffers(&t->s, names, bufs, sizes, 1, &t->m, &t->d);
        if (r < 0)
                print_diags(&t->d);
        assert_int_equal(r, 0);
        assert_int_equal(t->d.n_errors, 0);
}

/* ---- the host snapshot, by hand ---- */

/* Links stay sorted by ifindex, as kern_observe() leaves them (host_link_by_index()
 * looks by halves). */
static void link_add(struct host_snapshot *h, int ifindex, const char *name, const char *kind, unsigned mtu)
{
        struct host_link *l;
        size_t at = h->n_links;

        h->links = realloc(h->links, (h->n_links + 1) * sizeof(*h->links));
        assert_non_null(h->links);
        while (at > 0 && h->links[at - 1].ifindex > ifindex)
                at--;
        memmove(&h->links[at + 1], &h->links[at], (h->n_links - at) * sizeof(*h->links));
        h->n_links++;
        l = &h->links[at];
        *l = (struct host_link){ .ifindex = ifindex, .mtu = mtu, .up = true, .proxy_arp = 0, .forwarding = 1, .forwarding6 = 1,
                                 .rp_filter = 0, .proxy_delay_ms = -1 };
        snprintf(l->name, sizeof(l->name), "%s", name);
        snprintf(l->kind, sizeof(l->kind), "%s", kind);
}

static struct host_link *link_of(struct host_snapshot *h, const char *name)
{
        for (size_t i = 0; i < h->n_links; i++)
                if (streq(h->links[i].name, name))
                        return &h->links[i];
        fail_msg("no link %s", name);
        return NULL;
}

static int ifindex_of(struct host_snapshot *h, const char *name)
{
        return link_of(h, name)->ifindex;
}

static void addr_add(struct host_snapshot *h, const char *dev, const char *a)
{
        struct host_addr *ha;

        h->addrs = realloc(h->addrs, (h->n_addrs + 1) * sizeof(*h->addrs));
        assert_non_null(h->addrs);
        ha = &h->addrs[h->n_addrs++];
        *ha = (struct host_addr){ .ifindex = ifindex_of(h, dev) };
        assert_true(cfg_prefix_parse(a, true, &ha->addr) >= 0);
}

static uint8_t proto_parse(const char *s)
{
        static const struct {
                const char *name;
                uint8_t n;
        } names[] = { { "kernel", 2 }, { "boot", 3 }, { "static", 4 }, { "bird", 12 }, { "ra", 9 }, { "felix", 80 } };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (streq(s, names[i].name))
                        return names[i].n;
        return (uint8_t)atoi(s);
}

/* A route in `ip route` words: "[blackhole|unreachable|prohibit|local] DST [via GW]
 * [dev DEV] [proto P] [metric N] [table N] [scope link] [multipath]". Table defaults to
 * main (to our table 252 for a route of protocol 211), metric to 0, protocol to boot, as
 * `ip route add` does. */
static struct host_route route_parse(struct host_snapshot *h, const char *spec)
{
        struct host_route r = { .table = 254, .protocol = 3, .type = HOST_RTN_UNICAST };
        char copy[256], *save = NULL, *tok;
        bool dst = false, table = false;

        snprintf(copy, sizeof(copy), "%s", spec);
        for (tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
                char *arg = NULL;

                if (streq(tok, "blackhole") || streq(tok, "unreachable") || streq(tok, "prohibit") ||
                    streq(tok, "local")) {
                        r.type = streq(tok, "blackhole")     ? HOST_RTN_BLACKHOLE
                                 : streq(tok, "unreachable") ? HOST_RTN_UNREACHABLE
                                 : streq(tok, "prohibit")    ? HOST_RTN_PROHIBIT
                                                             : HOST_RTN_LOCAL;
                        continue;
                }
                if (streq(tok, "multipath")) {
                        r.multipath = true;
                        continue;
                }
                if (!dst) {
                        if (streq(tok, "default"))
                                assert_int_equal(cfg_prefix_parse("0.0.0.0/0", true, &r.dst), 0);
                        else
                                assert_int_equal(cfg_prefix_parse(tok, false, &r.dst), 0);
                        dst = true;
                        continue;
                }
                arg = strtok_r(NULL, " ", &save);
                assert_non_null(arg);
                if (streq(tok, "via"))
                        assert_int_equal(cfg_addr_parse(arg, &r.gateway), 0);
                else if (streq(tok, "dev"))
                        r.oif = ifindex_of(h, arg);
                else if (streq(tok, "proto"))
                        r.protocol = proto_parse(arg);
                else if (streq(tok, "metric"))
                        r.priority = (uint32_t)strtoul(arg, NULL, 10);
                else if (streq(tok, "table")) {
                        r.table = streq(arg, "main") ? 254 : (uint32_t)strtoul(arg, NULL, 10);
                        table = true;
                }
                else if (streq(tok, "scope"))
                        continue; /* as ip route prints it; the planner never reads it */
                else
                        fail_msg("bad route spec word '%s' in '%s'", tok, spec);
        }
        assert_true(dst);
        /* Ours, unless told otherwise, where ours live: our table. */
        if (!table && r.protocol == OWN)
                r.table = CFG_DEFAULT_ROUTE_TABLE;
        return r;
}

static void route_push(struct host_snapshot *h, const struct host_route *r)
{
        /* Capacity is implicit: grow to the next power of two (the scale test adds 20k). */
        if (h->n_routes < 8 || (h->n_routes & (h->n_routes - 1)) == 0) {
                size_t cap = h->n_routes < 8 ? 8 : h->n_routes * 2;

                h->routes = realloc(h->routes, cap * sizeof(*h->routes));
                assert_non_null(h->routes);
        }
        h->routes[h->n_routes++] = *r;
}

static void route_add(struct host_snapshot *h, const char *spec)
{
        struct host_route r = route_parse(h, spec);

        route_push(h, &r);
}

/* node1 of dc1: eth0 (ifindex 2) 192.168.10.11/24, the uplink; forwarding on, proxy ARP
 * off, the kernel's default proxy delay (80 jiffies = 800 ms). */
static void set_uplink_addr(struct host_snapshot *h, const char *a)
{
        for (size_t i = 0; i < h->n_addrs; i++)
                if (h->addrs[i].ifindex == 2) {
                        assert_true(cfg_prefix_parse(a, true, &h->addrs[i].addr) >= 0);
                        return;
                }
        fail_msg("the uplink has no address");
}

static void host_node1(struct host_snapshot *h)
{
        link_add(h, 1, "lo", "", 65536);
        link_add(h, 2, "eth0", "", 1500);
        addr_add(h, "lo", "127.0.0.1/8");
        addr_add(h, "eth0", "192.168.10.11/24");
        route_add(h, "default via 192.168.10.1 dev eth0 proto static");
        route_add(h, "192.168.10.0/24 dev eth0 proto kernel scope link");
        h->all_forwarding = 1;
        h->all_forwarding6 = 1;
        h->all_rp_filter = 0;
        link_of(h, "eth0")->proxy_delay_ms = 800;
}

/* A proxy neighbour entry (`ip -6 neigh add proxy ADDR dev DEV [protocol P]`). */
static void proxy_add(struct host_snapshot *h, int ifindex, const struct cfg_prefix *a, uint8_t protocol)
{
        h->proxies = realloc(h->proxies, (h->n_proxies + 1) * sizeof(*h->proxies));
        assert_non_null(h->proxies);
        h->proxies[h->n_proxies++] = (struct host_proxy){ .ifindex = ifindex, .addr = *a, .protocol = protocol };
}

static void proxy_add_str(struct host_snapshot *h, const char *dev, const char *a, uint8_t protocol)
{
        struct cfg_prefix p;

        assert_int_equal(cfg_prefix_parse(a, false, &p), 0);
        proxy_add(h, ifindex_of(h, dev), &p, protocol);
}

/* Calico's IPIP device on node1, as Felix leaves it. */
static void add_tunl0(struct host_snapshot *h, const char *a)
{
        link_add(h, 3, "tunl0", "ipip", 1480);
        if (a)
                addr_add(h, "tunl0", a);
}

/* ---- planning, with the ownership invariants checked on every plan ---- */

static bool route_key_eq(const struct host_route *a, const struct host_route *b)
{
        /* The kernel's key for an IPv4 route: table, prefix, (tos,) metric. */
        return a->table == b->table && cfg_prefix_eq(&a->dst, &b->dst) && a->priority == b->priority;
}

static bool route_eq(const struct host_route *a, const struct host_route *b)
{
        return route_key_eq(a, b) && a->protocol == b->protocol && a->type == b->type &&
               cfg_prefix_eq(&a->gateway, &b->gateway) && a->oif == b->oif && a->multipath == b->multipath;
}

static void check_invariants(const struct cfg_settings *s, const struct host_snapshot *h, const struct plan *p,
                             const struct host_record *rec)
{
        for (size_t i = 0; i < p->n_actions; i++) {
                const struct host_change *a = &p->actions[i];
                const struct host_link *l = a->ifindex ? host_link_by_index(h, a->ifindex) : NULL;
                bool found = false;

                if (a->ifindex)
                        assert_non_null(l);
                if (l)
                        assert_string_equal(a->dev, l->name);
                switch (a->kind) {
                case CHANGE_DEL_ROUTE:
                        /* Only an existing route of ours is ever deleted: our protocol,
                         * or the pair the record says was ours before a change. */
                        if (a->route.protocol != s->route_protocol) {
                                assert_int_equal(a->route.protocol, rec->route_protocol);
                                assert_int_equal(a->route.table, rec->route_table);
                        }
                        for (size_t k = 0; k < h->n_routes; k++)
                                found = found || route_eq(&h->routes[k], &a->route);
                        assert_true(found);
                        assert_int_equal(a->ifindex, a->route.oif);
                        break;
                case CHANGE_ADD_ROUTE:
                        assert_int_equal(a->route.protocol, s->route_protocol);
                        assert_int_equal(a->route.table, s->route_table);
                        assert_int_equal(a->route.priority, s->route_metric);
                        assert_int_equal(a->route.dst.family, a->route.gateway.family ? a->route.gateway.family
                                                                                        : a->route.dst.family);
                        assert_int_equal(a->ifindex, a->route.oif);
                        /* We never compete for a prefix: no foreign route for it in our table,
                         * and a replace only ever lands on our own route. */
                        for (size_t k = 0; k < h->n_routes; k++) {
                                const struct host_route *r = &h->routes[k];

                                if (r->table != a->route.table || !cfg_prefix_eq(&r->dst, &a->route.dst))
                                        continue;
                                if (r->protocol != s->route_protocol) { /* the old owner's: deleted first */
                                        assert_int_equal(r->protocol, rec->route_protocol);
                                        assert_int_equal(r->table, rec->route_table);
                                        continue;
                                }
                                if (route_key_eq(r, &a->route) && a->replace)
                                        found = true;
                        }
                        assert_int_equal(found, a->replace);
                        break;
                case CHANGE_SET_PROXY_ARP:
                case CHANGE_SET_PROXY_DELAY:
                        assert_non_null(l);
                        break;
                case CHANGE_SET_PROXY_NDP:
                case CHANGE_SET_PROXY_DELAY6:
                        assert_non_null(l);
                        break;
                case CHANGE_ADD_PROXY:
                        /* never over an existing entry: the kernel would take it over */
                        for (size_t k = 0; k < h->n_proxies; k++)
                                assert_false(h->proxies[k].ifindex == a->ifindex &&
                                             cfg_prefix_eq(&h->proxies[k].addr, &a->route.dst));
                        assert_int_equal(a->route.protocol, s->route_protocol);
                        break;
                case CHANGE_DEL_PROXY:
                        /* only an entry of ours */
                        for (size_t k = 0; k < h->n_proxies; k++)
                                found = found || (h->proxies[k].ifindex == a->ifindex &&
                                                  cfg_prefix_eq(&h->proxies[k].addr, &a->route.dst) &&
                                                  h->proxies[k].protocol == s->route_protocol);
                        assert_true(found);
                        break;
                case CHANGE_REMOVE_TUNNEL:
                        assert_non_null(l);
                        assert_true(streq(a->dev, s->tunnel_ipip) || streq(a->dev, s->tunnel_vxlan) ||
                                    streq(a->dev, s->tunnel_vxlan_v6));
                        assert_true(a->tunnel->n_addrs <= HOST_TUNNEL_ADDRS_MAX);
                        break;
                case CHANGE_ADD_RULE:
                case CHANGE_DEL_RULE:
                        /* Only rules carrying our protocol (or, deleted, the recorded one
                         * of before), below the main rule; only an existing rule of ours
                         * is deleted. */
                        assert_true(a->rule->protocol == s->route_protocol ||
                                    (a->kind == CHANGE_DEL_RULE && a->rule->protocol != 0));
                        for (size_t k = 0; k < h->n_rules; k++)
                                found = found || !memcmp(&h->rules[k], a->rule, sizeof(*a->rule));
                        assert_int_equal(found, a->kind == CHANGE_DEL_RULE);
                        if (a->kind == CHANGE_ADD_RULE)
                                assert_true(a->rule->priority < 32766);
                        break;
                }
        }
        assert_int_equal(p->n_pools, p->pools ? p->n_pools : 0);
}

/* ---- a full pass by slices (plan_build_sliced()) ---- */

static void action_text(const struct host_change *a, char *buf, size_t size);
static void dump_plan(const struct plan *p);

/* A sink as the daemon's applier (daemon/reconcile.c) uses it: every action it is
 * handed is "applied" (kept here, in order), and, once more than PLAN_SINK_KEEP were
 * planned, the routes are taken out of the plan and the others left at its head. */
struct test_sink {
        struct host_change *seen; /* every action applied, in order */
        size_t n_seen, cap_seen;
        size_t applied;           /* of the plan's actions */
        size_t drained;           /* taken out of the plan */
        size_t calls;
        size_t at_first;          /* actions applied by the first call */
        struct host_record rec;   /* the record at the first call */
        bool rec_first;
        struct plan_ctx *ctx;     /* the context the calls were given (one, or none) */
        bool ctx_given, ctx_spent;
};

static bool is_route_change(const struct host_change *a)
{
        return a->kind == CHANGE_ADD_ROUTE || a->kind == CHANGE_DEL_ROUTE;
}

static int test_flush(void *data, struct plan *p, struct plan_ctx *ctx)
{
        struct test_sink *k = data;
        size_t n = p->n_actions - k->applied, j = 0;
        struct host_result *res = calloc(n + 1, sizeof(*res)); /* every change worked */

        assert_non_null(res);
        assert_true(p->n_actions >= k->applied);
        if (k->calls++ == 0) {
                k->rec = p->record;
                k->rec_first = p->record_first;
                k->at_first = p->n_actions;
        }
        if (k->ctx_given)
                assert_ptr_equal(ctx, k->ctx); /* one context all along */
        k->ctx = ctx;
        k->ctx_given = true;
        for (size_t i = k->applied; i < p->n_actions; i++) {
                assert_int_equal(GROW(k->seen, k->cap_seen, k->n_seen + 1), 0);
                k->seen[k->n_seen++] = p->actions[i];
        }
        if (ctx && !k->ctx_spent && plan_ctx_applied(ctx, p->actions + k->applied, n, res) < 0)
                k->ctx_spent = true;
        free(res);
        k->applied = p->n_actions;
        if (k->drained + p->n_actions <= PLAN_SINK_KEEP)
                return 0;
        for (size_t i = 0; i < p->n_actions; i++)
                if (is_route_change(&p->actions[i]))
                        k->drained++;
                else
                        p->actions[j++] = p->actions[i];
        p->n_actions = k->applied = j;
        return 0;
}

static bool change_eq(const struct host_change *a, const struct host_change *b)
{
        char x[512], y[512];

        action_text(a, x, sizeof(x));
        action_text(b, y, sizeof(y));
        return streq(x, y) && a->kind == b->kind && a->pool == b->pool && a->ifindex == b->ifindex &&
               a->replace == b->replace && a->value == b->value && streq(a->dev, b->dev) &&
               (a->kind != CHANGE_ADD_ROUTE && a->kind != CHANGE_DEL_ROUTE ? true : route_eq(&a->route, &b->route));
}

/* Actions applied to c (every change worked), as the daemon's pass does: 0, or
 * plan_ctx_applied()'s -ESTALE (a change besides routes and rules: c is spent). */
static int ctx_all_applied(struct plan_ctx *c, const struct host_change *a, size_t n)
{
        struct host_result *res = calloc(n + 1, sizeof(*res));
        int r;

        assert_non_null(res);
        r = plan_ctx_applied(c, a, n, res);
        free(res);
        return r;
}

/* Two contexts say the same of the host and the model: a delta pass over every prefix
 * they could know (the blocks, the borrowed addresses, the kernel's routes) plans the
 * same from both. Consumes both. */
static void check_same_ctx(struct t *t, struct plan_ctx *a, struct plan_ctx *b, size_t slice)
{
        struct cfg_touched touched = {};
        struct plan *pa = NULL, *pb = NULL;
        const char *wa = NULL, *wb = NULL;
        int ra, rb;

        for (size_t i = 0; i < t->m->n_blocks; i++)
                assert_int_equal(cfg_touched_add(&touched, &t->m->blocks[i].cidr), 0);
        for (size_t i = 0; i < t->m->n_borrowed; i++)
                assert_int_equal(cfg_touched_add(&touched, &t->m->borrowed[i].addr), 0);
        for (size_t i = 0; i < t->h.n_routes; i++)
                assert_int_equal(cfg_touched_add(&touched, &t->h.routes[i].dst), 0);
        cfg_touched_done(&touched);
        ra = plan_delta(a, t->m, &t->h, &touched, &pa, &wa);
        rb = plan_delta(b, t->m, &t->h, &touched, &pb, &wb);
        if (ra != rb)
                fail_msg("slice %zu: the sliced pass's context plans a delta %d (%s), the whole pass's %d (%s)",
                         slice, rb, wb ? wb : "", ra, wa ? wa : "");
        if (ra == 1) {
                if (pa->n_actions != pb->n_actions) {
                        dump_plan(pa);
                        dump_plan(pb);
                        fail_msg("slice %zu: a delta from the sliced pass's context has %zu actions, not %zu", slice,
                                 pb->n_actions, pa->n_actions);
                }
                for (size_t i = 0; i < pa->n_actions; i++)
                        if (!change_eq(&pa->actions[i], &pb->actions[i]))
                                fail_msg("slice %zu: delta action %zu differs", slice, i);
                assert_int_equal(pa->n_routes_wanted, pb->n_routes_wanted);
                assert_int_equal(pa->n_routes_foreign, pb->n_routes_foreign);
                assert_int_equal(pa->n_routes_conflicting, pb->n_routes_conflicting);
                assert_int_equal(pa->n_findings, pb->n_findings);
        } else
                assert_true((wa && wb && streq(wa, wb)) || wa == wb);
        plan_free(pa);
        plan_free(pb);
        plan_ctx_free(a);
        plan_ctx_free(b);
        cfg_touched_clear(&touched);
}

/* p (plan_build()) made again by slices of every size in sizes: the same actions in
 * the same order (those the sink applied, then those left), the same counts, findings
 * and record; the record final at the sink's first call, before any change. */
static void check_sliced(struct t *t, const struct plan *p, bool with_ctx)
{
        static const size_t sizes[] = { 1, 3, 7, 64, 4096 };

        for (size_t z = 0; z < ELEMENTSOF(sizes); z++) {
                struct test_sink k = {};
                struct plan_sink sink = { .slice = sizes[z], .flush = test_flush, .data = &k };
                struct plan *q = NULL;
                struct plan_ctx *ctx = NULL;
                size_t first_route = p->n_actions, n_routes = 0;

                assert_int_equal(plan_build_sliced(t->m, &t->h, &t->rec, &sink, &q, with_ctx ? &ctx : NULL), 0);
                assert_non_null(q);
                if (with_ctx && k.ctx_given && !k.ctx_spent)
                        assert_ptr_equal(k.ctx, ctx); /* the one the pass keeps */
                /* what the sink applied, then what is left to apply */
                for (size_t i = k.applied; i < q->n_actions; i++) {
                        assert_int_equal(GROW(k.seen, k.cap_seen, k.n_seen + 1), 0);
                        k.seen[k.n_seen++] = q->actions[i];
                }
                if (k.n_seen != p->n_actions) {
                        dump_plan(p);
                        fail_msg("slice %zu: %zu actions, want %zu", sizes[z], k.n_seen, p->n_actions);
                }
                for (size_t i = 0; i < p->n_actions; i++) {
                        if (!change_eq(&k.seen[i], &p->actions[i])) {
                                dump_plan(p);
                                fail_msg("slice %zu: action %zu differs", sizes[z], i);
                        }
                        if (first_route == p->n_actions && is_route_change(&p->actions[i]))
                                first_route = i;
                        n_routes += is_route_change(&p->actions[i]);
                }
                /* the route walk's actions (every route change is one) went by slices */
                if (k.calls != n_routes / sizes[z])
                        fail_msg("slice %zu: the sink was called %zu times for %zu route changes", sizes[z], k.calls,
                                 n_routes);
                /* routes by slices, from the first route on; nothing before the walk */
                if (k.calls) {
                        assert_true(k.at_first >= first_route);
                        assert_true(k.at_first <= first_route + sizes[z] + PLAN_SINK_KEEP);
                        assert_true(!memcmp(&k.rec, &p->record, sizeof(k.rec)));
                        assert_int_equal(k.rec_first, p->record_first);
                }
                /* everything but the actions as plan_build() has it */
                assert_true(!memcmp(&q->record, &p->record, sizeof(q->record)));
                assert_int_equal(q->record_first, p->record_first);
                assert_int_equal(q->underlay, p->underlay);
                assert_int_equal(q->underlay6, p->underlay6);
                assert_int_equal(q->n_proxies_wanted, p->n_proxies_wanted);
                assert_int_equal(q->tunnels_unneeded, p->tunnels_unneeded);
                assert_int_equal(q->tunnel6_unneeded, p->tunnel6_unneeded);
                assert_int_equal(q->uplink, p->uplink);
                assert_string_equal(q->uplink_name, p->uplink_name);
                assert_string_equal(q->uplink_error, p->uplink_error);
                assert_int_equal(q->n_pools, p->n_pools);
                for (size_t i = 0; i < p->n_pools; i++)
                        assert_true(!memcmp(&q->pools[i], &p->pools[i], sizeof(p->pools[i])));
                assert_int_equal(q->n_tunnels, p->n_tunnels);
                assert_int_equal(q->n_rules, p->n_rules);
                assert_int_equal(q->n_routes_wanted, p->n_routes_wanted);
                assert_int_equal(q->n_routes_foreign, p->n_routes_foreign);
                assert_int_equal(q->n_routes_conflicting, p->n_routes_conflicting);
                assert_int_equal(q->n_blocks_upstream, p->n_blocks_upstream);
                assert_int_equal(q->n_borrowed, p->n_borrowed);
                assert_int_equal(q->n_borrowed_upstream, p->n_borrowed_upstream);
                assert_int_equal(q->n_blocking, p->n_blocking);
                assert_int_equal(q->n_findings, p->n_findings);
                for (size_t i = 0; i < p->n_findings; i++) {
                        assert_int_equal(q->findings[i].severity, p->findings[i].severity);
                        assert_string_equal(q->findings[i].code, p->findings[i].code);
                        assert_string_equal(q->findings[i].message, p->findings[i].message);
                }
                free(k.seen);
                if (with_ctx) {
                        /* The sliced pass's context, the rest applied, against the whole
                         * pass's with everything applied: both spent, or both the same. */
                        struct plan *p0 = NULL;
                        struct plan_ctx *ctx0 = NULL;
                        bool spent0, spent;

                        assert_int_equal(plan_build_ctx(t->m, &t->h, &t->rec, &p0, &ctx0), 0);
                        spent0 = !ctx0 || ctx_all_applied(ctx0, p0->actions, p0->n_actions) < 0;
                        spent = !ctx || k.ctx_spent ||
                                ctx_all_applied(ctx, q->actions + k.applied, q->n_actions - k.applied) < 0;
                        plan_free(p0);
                        if (spent0 != spent)
                                fail_msg("slice %zu: the sliced pass's context is %sspent, the whole pass's %sspent",
                                         sizes[z], spent ? "" : "not ", spent0 ? "" : "not ");
                        if (!spent)
                                check_same_ctx(t, ctx0, ctx, sizes[z]);
                        else {
                                plan_ctx_free(ctx0);
                                plan_ctx_free(ctx);
                        }
                } else
                        plan_ctx_free(ctx);
                plan_free(q);
        }
}

static int route4_qcmp(const void *x, const void *y)
{
        return host_route4_cmp(x, y);
}

/* p made again from the snapshot as kern_observe() gives it to the daemon: the routes
 * of our table and protocol that the compact form can say in h->routes4 (sorted),
 * the rest whole. The same plan (actions in order, counts, findings), and a context
 * that plans the same deltas. */
static void check_compact(struct t *t, const struct plan *p)
{
        const struct cfg_settings *s = &t->m->settings;
        struct host_snapshot h = t->h;
        struct plan *q = NULL, *p0 = NULL;
        struct plan_ctx *ctx = NULL, *ctx0 = NULL;
        struct host_route4 c;

        h.routes = calloc(t->h.n_routes + 1, sizeof(*h.routes));
        h.routes4 = calloc(t->h.n_routes + 1, sizeof(*h.routes4));
        assert_true(h.routes && h.routes4);
        h.n_routes = h.n_routes4 = 0;
        h.routes4_table = s->route_table;
        h.routes4_protocol = s->route_protocol;
        for (size_t i = 0; i < t->h.n_routes; i++)
                if (s->route_table != 254 && host_route4_put(&t->h.routes[i], s->route_table, s->route_protocol, &c)) {
                        struct host_route back;

                        h.routes4[h.n_routes4++] = c;
                        back = host_route4_get(&h, h.n_routes4 - 1);
                        assert_true(route_eq(&back, &t->h.routes[i]));
                } else
                        h.routes[h.n_routes++] = t->h.routes[i];
        qsort(h.routes4, h.n_routes4, sizeof(*h.routes4), route4_qcmp);
        if (h.n_routes4) {
                /* compact routes of another protocol than the settings': refused */
                h.routes4_protocol++;
                assert_int_equal(plan_build(t->m, &h, &t->rec, &q), -EINVAL);
                assert_null(q);
                h.routes4_protocol--;
        }
        assert_int_equal(plan_build(t->m, &h, &t->rec, &q), 0);
        if (q->n_actions != p->n_actions) {
                dump_plan(p);
                dump_plan(q);
                fail_msg("compact routes: %zu actions, want %zu", q->n_actions, p->n_actions);
        }
        for (size_t i = 0; i < p->n_actions; i++)
                if (!change_eq(&q->actions[i], &p->actions[i])) {
                        dump_plan(p);
                        dump_plan(q);
                        fail_msg("compact routes: action %zu differs", i);
                }
        assert_int_equal(q->n_routes_wanted, p->n_routes_wanted);
        assert_int_equal(q->n_routes_foreign, p->n_routes_foreign);
        assert_int_equal(q->n_routes_conflicting, p->n_routes_conflicting);
        assert_int_equal(q->n_blocking, p->n_blocking);
        assert_int_equal(q->n_findings, p->n_findings);
        for (size_t i = 0; i < p->n_findings; i++) {
                assert_string_equal(q->findings[i].code, p->findings[i].code);
                assert_string_equal(q->findings[i].message, p->findings[i].message);
        }
        assert_true(!memcmp(&q->record, &p->record, sizeof(q->record)));
        plan_free(q);
        /* the contexts of both, everything applied: both spent, or the same */
        assert_int_equal(plan_build_ctx(t->m, &t->h, &t->rec, &p0, &ctx0), 0);
        plan_free(p0);
        p0 = NULL;
        assert_int_equal(plan_build_ctx(t->m, &h, &t->rec, &q, &ctx), 0);
        if ((ctx0 && ctx_all_applied(ctx0, p->actions, p->n_actions) < 0) ||
            (ctx && ctx_all_applied(ctx, q->actions, q->n_actions) < 0)) {
                plan_ctx_free(ctx0);
                plan_ctx_free(ctx);
        } else if (ctx0 && ctx)
                check_same_ctx(t, ctx0, ctx, 0);
        else
                assert_true(!ctx0 && !ctx);
        plan_free(q);
        free(h.routes);
        free(h.routes4);
}

static struct plan *plan(struct t *t)
{
        struct plan *p = NULL;

        plan_free(t->p);
        t->p = NULL;
        assert_int_equal(plan_build(t->m, &t->h, &t->rec, &p), 0);
        assert_non_null(p);
        t->p = p;
        check_invariants(&t->m->settings, &t->h, p, &t->rec);
        check_sliced(t, p, false);
        check_sliced(t, p, true);
        check_compact(t, p);
        return p;
}

/* The action as the tests spell it: host_change_fmt plus the flags it does not print. */
static void action_text(const struct host_change *a, char *buf, size_t size)
{
        size_t len;

        assert_true(host_change_fmt(a, buf, size) > 0);
        len = strlen(buf);
        if (a->kind == CHANGE_ADD_ROUTE && a->replace)
                len += (size_t)snprintf(buf + len, size - len, " [replace]");
        if (a->kind == CHANGE_REMOVE_TUNNEL) {
                for (size_t i = 0; i < a->tunnel->n_addrs; i++) {
                        char pfx[CFG_PREFIX_STRLEN];

                        cfg_prefix_fmt(&a->tunnel->addrs[i], pfx, sizeof(pfx));
                        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? "," : " addrs ", pfx);
                }
                if (a->tunnel->foreign_addrs)
                        snprintf(buf + len, size - len, " [foreign]");
        }
}

static void dump_plan(const struct plan *p)
{
        char line[256];

        print_error("plan: %zu actions\n", p->n_actions);
        for (size_t i = 0; i < p->n_actions; i++) {
                action_text(&p->actions[i], line, sizeof(line));
                print_error("  %zu: %s\n", i, line);
        }
        print_error("findings: %zu\n", p->n_findings);
        for (size_t i = 0; i < p->n_findings; i++)
                print_error("  %s %s: %s\n", plan_severity_name(p->findings[i].severity), p->findings[i].code,
                            p->findings[i].message);
}

static bool is_rule(const struct host_change *a)
{
        return a->kind == CHANGE_ADD_RULE || a->kind == CHANGE_DEL_RULE;
}

/* The exact action list; with rules false, the policy-rule actions are left out of the
 * comparison (most tests are about routes and settings; the rule tests ask for all). */
static void check_actions(const struct plan *p, const char *const *want, bool rules)
{
        size_t n = 0, i = 0, k = 0;
        char line[256];

        while (want[n])
                n++;
        for (;; i++, k++) {
                while (!rules && k < p->n_actions && is_rule(&p->actions[k]))
                        k++;
                if (i >= n && k >= p->n_actions)
                        return;
                if (k < p->n_actions)
                        action_text(&p->actions[k], line, sizeof(line));
                if (i < n && k < p->n_actions && streq(line, want[i]))
                        continue;
                dump_plan(p);
                fail_msg("action %zu: want '%s', have '%s'", i, i < n ? want[i] : "(none)",
                         k < p->n_actions ? line : "(none)");
        }
}
#define EXPECT_ACTIONS(p, ...) check_actions((p), (const char *const[]){ __VA_ARGS__, NULL }, false)
#define EXPECT_ALL_ACTIONS(p, ...) check_actions((p), (const char *const[]){ __VA_ARGS__, NULL }, true)
#define EXPECT_NO_ACTIONS(p) check_actions((p), (const char *const[]){ NULL }, true)

/* The nth action that is not a rule (the index tests spell without them). */
static const struct host_change *nth_action(const struct plan *p, size_t nth)
{
        for (size_t k = 0; k < p->n_actions; k++)
                if (!is_rule(&p->actions[k]) && nth-- == 0)
                        return &p->actions[k];
        fail_msg("no such action");
        return NULL;
}

/* The exact list of findings, as "severity code" in order. */
static void check_findings(const struct plan *p, const char *const *want)
{
        size_t n = 0, blocking = 0;
        char line[128];

        while (want[n])
                n++;
        for (size_t i = 0; i < n || i < p->n_findings; i++) {
                if (i < p->n_findings)
                        snprintf(line, sizeof(line), "%s %s", plan_severity_name(p->findings[i].severity),
                                 p->findings[i].code);
                if (i < n && i < p->n_findings && streq(line, want[i]))
                        continue;
                dump_plan(p);
                fail_msg("finding %zu: want '%s', have '%s'", i, i < n ? want[i] : "(none)",
                         i < p->n_findings ? line : "(none)");
        }
        for (size_t i = 0; i < p->n_findings; i++)
                blocking += p->findings[i].severity == PLAN_BLOCKING;
        assert_int_equal(p->n_blocking, blocking);
}
#define EXPECT_FINDINGS(p, ...) check_findings((p), (const char *const[]){ __VA_ARGS__, NULL })
/* node3 and node4 of the dc1 fixtures, seen from az1: off-link. */
#define UPSTREAM2 "warning needs-upstream-routing", "warning needs-upstream-routing"
#define EXPECT_NO_FINDINGS(p) check_findings((p), (const char *const[]){ NULL })

/* The message of the nth finding with this code. */
static const char *msg(const struct plan *p, const char *code, size_t nth)
{
        for (size_t i = 0; i < p->n_findings; i++)
                if (streq(p->findings[i].code, code) && nth-- == 0)
                        return p->findings[i].message;
        dump_plan(p);
        fail_msg("no finding %s", code);
        return NULL;
}

static void assert_contains(const char *haystack, const char *needle)
{
        if (!strstr(haystack, needle))
                fail_msg("'%s' does not contain '%s'", haystack, needle);
}

static const struct plan_pool *pool_named(const struct t *t, const char *name)
{
        for (size_t i = 0; i < t->p->n_pools; i++)
                if (streq(t->m->pools[t->p->pools[i].pool].name, name))
                        return &t->p->pools[i];
        fail_msg("no pool %s in the plan", name);
        return NULL;
}

static void expect_record(const struct plan *p, const char *ifname, int proxy_arp, int64_t delay, bool first)
{
        assert_true(p->record.valid);
        assert_string_equal(p->record.ifname, ifname);
        assert_int_equal(p->record.proxy_arp, proxy_arp);
        assert_int_equal(p->record.proxy_delay_ms, delay);
        assert_int_equal(p->record_first, first);
}

/* ---- applying a plan the way the kernel would, to test convergence ---- */

static void route_remove_at(struct host_snapshot *h, size_t k)
{
        memmove(&h->routes[k], &h->routes[k + 1], (h->n_routes - k - 1) * sizeof(*h->routes));
        h->n_routes--;
}

static void addr_remove(struct host_snapshot *h, int ifindex, const struct cfg_prefix *a)
{
        for (size_t k = 0; k < h->n_addrs; k++)
                if (h->addrs[k].ifindex == ifindex && cfg_prefix_eq(&h->addrs[k].addr, a)) {
                        memmove(&h->addrs[k], &h->addrs[k + 1], (h->n_addrs - k - 1) * sizeof(*h->addrs));
                        h->n_addrs--;
                        return;
                }
        fail_msg("address not on the link");
}

static void apply_tunnel(struct host_snapshot *h, const struct host_change *a)
{
        size_t k;

        if (streq(a->tunnel->kind, "ipip")) {
                /* The kernel keeps the fallback tunl0: addresses off, down unless foreign. */
                for (size_t i = 0; i < a->tunnel->n_addrs; i++)
                        addr_remove(h, a->ifindex, &a->tunnel->addrs[i]);
                if (!a->tunnel->foreign_addrs)
                        link_of(h, a->dev)->up = false;
                return;
        }
        for (k = 0; k < h->n_addrs;)
                if (h->addrs[k].ifindex == a->ifindex)
                        addr_remove(h, a->ifindex, &h->addrs[k].addr);
                else
                        k++;
        for (k = 0; k < h->n_routes;)
                if (h->routes[k].oif == a->ifindex)
                        route_remove_at(h, k);
                else
                        k++;
        for (k = 0; k < h->n_links; k++)
                if (h->links[k].ifindex == a->ifindex)
                        break;
        assert_true(k < h->n_links);
        memmove(&h->links[k], &h->links[k + 1], (h->n_links - k - 1) * sizeof(*h->links));
        h->n_links--;
}

static void apply_action(struct host_snapshot *h, const struct host_change *a)
{
        size_t k;

        switch (a->kind) {
        case CHANGE_SET_PROXY_ARP:
                for (k = 0; k < h->n_links; k++)
                        if (h->links[k].ifindex == a->ifindex)
                                h->links[k].proxy_arp = (int)a->value;
                return;
        case CHANGE_SET_PROXY_DELAY:
                for (k = 0; k < h->n_links; k++)
                        if (h->links[k].ifindex == a->ifindex)
                                h->links[k].proxy_delay_ms = a->value;
                return;
        case CHANGE_DEL_ROUTE:
                for (k = 0; k < h->n_routes; k++)
                        if (route_eq(&h->routes[k], &a->route))
                                break;
                assert_true(k < h->n_routes);
                route_remove_at(h, k);
                return;
        case CHANGE_ADD_ROUTE:
                if (!a->replace) {
                        route_push(h, &a->route); /* EEXIST: see check_route_keys() */
                        return;
                }
                for (k = 0; k < h->n_routes; k++)
                        if (route_key_eq(&h->routes[k], &a->route))
                                break;
                assert_true(k < h->n_routes);
                h->routes[k] = a->route;
                return;
        case CHANGE_REMOVE_TUNNEL:
                apply_tunnel(h, a);
                return;
        case CHANGE_SET_PROXY_NDP:
                for (k = 0; k < h->n_links; k++)
                        if (h->links[k].ifindex == a->ifindex)
                                h->links[k].proxy_ndp = (int)a->value;
                return;
        case CHANGE_ADD_PROXY:
                proxy_add(h, a->ifindex, &a->route.dst, a->route.protocol);
                return;
        case CHANGE_SET_PROXY_DELAY6:
                for (k = 0; k < h->n_links; k++)
                        if (h->links[k].ifindex == a->ifindex)
                                h->links[k].proxy_delay6_ms = a->value;
                return;
        case CHANGE_DEL_PROXY:
                for (k = 0; k < h->n_proxies; k++)
                        if (h->proxies[k].ifindex == a->ifindex && cfg_prefix_eq(&h->proxies[k].addr, &a->route.dst))
                                break;
                assert_true(k < h->n_proxies);
                h->proxies[k] = h->proxies[--h->n_proxies];
                return;
        case CHANGE_ADD_RULE:
                h->rules = realloc(h->rules, (h->n_rules + 1) * sizeof(*h->rules));
                assert_non_null(h->rules);
                h->rules[h->n_rules++] = *a->rule;
                return;
        case CHANGE_DEL_RULE:
                for (k = 0; k < h->n_rules; k++)
                        if (!memcmp(&h->rules[k], a->rule, sizeof(*a->rule)))
                                break;
                assert_true(k < h->n_rules);
                memmove(&h->rules[k], &h->rules[k + 1], (h->n_rules - k - 1) * sizeof(*h->rules));
                h->n_rules--;
                return;
        }
}

static int route_key_cmp(const void *x, const void *y)
{
        const struct host_route *a = *(const struct host_route *const *)x, *b = *(const struct host_route *const *)y;
        int c = cfg_prefix_cmp(&a->dst, &b->dst);

        if (c)
                return c;
        if (a->table != b->table)
                return a->table < b->table ? -1 : 1;
        return a->priority < b->priority ? -1 : a->priority > b->priority;
}

/* The kernel refuses a second route with the same key (EEXIST): an add without replace
 * must only ever land on a free key. */
static void check_route_keys(const struct host_snapshot *h)
{
        const struct host_route **v = malloc((h->n_routes + 1) * sizeof(*v));

        assert_non_null(v);
        for (size_t k = 0; k < h->n_routes; k++)
                v[k] = &h->routes[k];
        qsort(v, h->n_routes, sizeof(*v), route_key_cmp);
        for (size_t k = 1; k < h->n_routes; k++)
                if (route_key_cmp(&v[k - 1], &v[k]) == 0) {
                        char d[CFG_PREFIX_STRLEN];

                        cfg_prefix_fmt(&v[k]->dst, d, sizeof(d));
                        free(v);
                        fail_msg("two routes with the key of %s: the kernel says EEXIST", d);
                }
        free(v);
}

/* Apply the last plan and its record, then plan again: nothing may be left to do. */
static void apply_and_replan(struct t *t)
{
        for (size_t i = 0; i < t->p->n_actions; i++)
                apply_action(&t->h, &t->p->actions[i]);
        check_route_keys(&t->h);
        t->rec = t->p->record.valid ? t->p->record : (struct host_record)HOST_RECORD_INIT;
        plan(t);
        EXPECT_NO_ACTIONS(t->p);
        /* The record is stable too. */
        assert_int_equal(t->p->record.valid, t->rec.valid);
        if (t->rec.valid)
                expect_record(t->p, t->rec.ifname, t->rec.proxy_arp, t->rec.proxy_delay_ms, false);
}

static void set_record(struct t *t, const char *ifname, int proxy_arp, int64_t delay)
{
        t->rec = (struct host_record){ .valid = true, .proxy_arp = proxy_arp, .proxy_delay_ms = delay };
        snprintf(t->rec.ifname, sizeof(t->rec.ifname), "%s", ifname);
}

/* The rules of ours a converged host has: per underlay pool of the model, main
 * with suppress_prefixlength blockSize-1 at 32700, our table at 32701 (spelled out as
 * text by test_rules_fresh_node). */
static void own_rules(struct t *t)
{
        for (size_t i = 0; i < t->m->n_pools; i++) {
                const struct cfg_pool *pool = &t->m->pools[i];

                if (pool->nat_outgoing || !pool->workload)
                        continue;
                t->h.rules = realloc(t->h.rules, (t->h.n_rules + 2) * sizeof(*t->h.rules));
                assert_non_null(t->h.rules);
                t->h.rules[t->h.n_rules++] = (struct host_rule){ .dst = pool->cidr, .priority = 32700, .table = 254,
                                                                 .suppress_prefixlen = pool->block_size - 1,
                                                                 .protocol = OWN };
                t->h.rules[t->h.n_rules++] = (struct host_rule){ .dst = pool->cidr, .priority = 32701,
                                                                 .table = t->m->settings.route_table,
                                                                 .suppress_prefixlen = -1, .protocol = OWN };
        }
}

/* ================================ tests ================================ */
/* ---- policy rules (DESIGN.md §3.2) ---- */

static void rule_push(struct t *t, const char *dst, uint32_t prio, uint32_t table, int32_t suppress, uint8_t proto)
{
        struct host_rule *r;

        t->h.rules = realloc(t->h.rules, (t->h.n_rules + 1) * sizeof(*t->h.rules));
        assert_non_null(t->h.rules);
        r = &t->h.rules[t->h.n_rules++];
        *r = (struct host_rule){ .priority = prio, .table = table, .suppress_prefixlen = suppress, .protocol = proto };
        assert_int_equal(cfg_prefix_parse(dst, false, &r->dst), 0);
}

/* A fresh node: per underlay pool, main (suppressing routes shorter than a block) then
 * our table, both before any route; overlay pools get none. */
static void test_rules_fresh_node(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, DC1);
        host_node1(&t->h);
        p = plan(t);
        EXPECT_ALL_ACTIONS(p, SIMPLE_PROXY, RULE_MAIN_10, RULE_OURS_10,
                           "add-rule to 192.168.20.128/25 lookup main suppress_prefixlength 27 pref 32700 proto 211",
                           "add-rule to 192.168.20.128/25 lookup 252 pref 32701 proto 211", "add-route " R_LOCAL,
                           "add-route " R_144);
        assert_int_equal(nth_action(p, 2)->route.table, 252);
        for (size_t i = 2; i < 6; i++) {
                assert_int_equal(p->actions[i].kind, CHANGE_ADD_RULE);
                assert_int_equal(p->actions[i].rule->protocol, OWN);
                assert_false(p->actions[i].rule->other);
        }
        assert_int_equal(p->actions[2].rule->table, 254);
        assert_int_equal(p->actions[2].rule->suppress_prefixlen, 27);
        assert_int_equal(p->actions[3].rule->table, 252);
        assert_int_equal(p->actions[3].rule->suppress_prefixlen, -1);
        apply_and_replan(t);
        assert_int_equal(t->h.n_rules, 4);
}

/* An earlier version's routes in main: the rules and our table first, then the
 * routes in main are withdrawn, in that order, so traffic always has a route. */
static void test_rules_upgrade_from_main(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        link_of(&t->h, "eth0")->proxy_arp = 1;
        link_of(&t->h, "eth0")->proxy_delay_ms = 0;
        route_add(&t->h, "blackhole 192.168.10.128/28 proto 211 metric 1024 table main");
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table main");
        route_add(&t->h, "192.168.10.160/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table main");
        p = plan(t);
        EXPECT_ALL_ACTIONS(p, RULE_MAIN_10, RULE_OURS_10, "add-route " R_LOCAL, "add-route " R_144,
                           "add-route " R_160,
                           "delete-route blackhole 192.168.10.128/28 proto 211 metric 1024 table 254",
                           "delete-route 192.168.10.144/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 254",
                           "delete-route 192.168.10.160/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 254");
        EXPECT_NO_FINDINGS(p); /* ours in main are not foreign: no conflict, no BIRD */
        apply_and_replan(t);
}

/* Rules are owned by protocol alone: a rule of ours deleted comes back, one of ours
 * nobody wants (another table, a stale blockSize) goes after the routes, and an
 * identical rule of someone else's is neither ours nor enough. */
static void test_rules_drift_and_ownership(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, R_LOCAL);
        route_add(&t->h, R_144);
        route_add(&t->h, R_160);
        rule_push(t, "192.168.10.128/25", 32700, 254, 27, OWN);
        rule_push(t, "192.168.10.128/25", 32701, 252, -1, 3);   /* someone's copy of ours */
        rule_push(t, "192.168.10.128/25", 32701, 100, -1, OWN); /* ours, an old routeTable */
        rule_push(t, "192.168.10.0/24", 32700, 254, 25, OWN);   /* ours, a pool gone */
        rule_push(t, "0.0.0.0/0", 100, 7, -1, 4);               /* someone else's */
        p = plan(t);
        EXPECT_ALL_ACTIONS(p, SIMPLE_PROXY, RULE_OURS_10,
                           "delete-rule to 192.168.10.128/25 lookup 100 pref 32701 proto 211",
                           "delete-rule to 192.168.10.0/24 lookup main suppress_prefixlength 25 pref 32700 proto 211");
        apply_and_replan(t);
        assert_int_equal(t->h.n_rules, 4); /* ours ×2, and the two of others */

        /* A rule of ours someone gave another selector (iif, fwmark, ...) is not ours
         * as wanted: replaced. */
        t->h.rules[0].other = true;
        p = plan(t);
        EXPECT_ALL_ACTIONS(p, RULE_MAIN_10,
                           "delete-rule to 192.168.10.128/25 lookup main suppress_prefixlength 27 pref 32700 proto 211 "
                           "(with other selectors)");
}

/* The end of underlay mode (natOutgoing: true): routes, then rules, go. */
static void test_rules_removed_with_underlay(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, R_LOCAL);
        route_add(&t->h, R_144);
        own_rules(t);
        load(t, NULL,
             POOL("underlay", "192.168.10.128/25", ", blockSize: 28, natOutgoing: true") NODE(
                     "node1", "192.168.10.11/24", AZ1) NODE("node2", "192.168.10.12/24", AZ1)
                     AFF("node1", "192.168.10.128/28") AFF("node2", "192.168.10.144/28"));
        p = plan(t);
        EXPECT_ALL_ACTIONS(p, "delete-route " R_LOCAL, "delete-route " R_144,
                           "delete-rule to 192.168.10.128/25 lookup main suppress_prefixlength 27 pref 32700 proto 211",
                           "delete-rule to 192.168.10.128/25 lookup 252 pref 32701 proto 211");
        apply_and_replan(t);
        assert_int_equal(t->h.n_rules, 0);
}

/* suppress_prefixlength suppresses only routes that resolve: a blackhole, unreachable
 * or prohibit route in main covering pool addresses with a prefix shorter than a block
 * ends the lookup. A block-sized one (BIRD's own blackhole) and a throw do not. */
static void test_covering_route_in_main(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, "unreachable 192.168.0.0/16 proto static");
        route_add(&t->h, "prohibit 192.168.10.192/26 proto boot");
        route_add(&t->h, "blackhole 192.168.10.128/28 proto bird");
        route_add(&t->h, "blackhole 10.0.0.0/8 proto static");
        route_add(&t->h, "unreachable 192.168.10.0/24 proto static table 100");
        t->h.routes[t->h.n_routes - 1].type = 9; /* throw: falls through */
        route_add(&t->h, "192.168.10.0/25 via 192.168.10.1 dev eth0 proto static");
        p = plan(t);
        EXPECT_FINDINGS(p, "info bird-routes", "blocking covering-route-in-main", "blocking covering-route-in-main");
        assert_string_equal(msg(p, "covering-route-in-main", 0),
                            "unreachable 192.168.0.0/16 (protocol 4) in table main covers pool underlay "
                            "(192.168.10.128/25): a route that does not resolve ends the lookup whatever its "
                            "length, so neither our table nor the uplink's subnet is consulted for those addresses");
        assert_contains(msg(p, "covering-route-in-main", 1), "prohibit 192.168.10.192/26 (protocol 3)");
}


/* §3.1 and §3.2 on a fresh node: delay before proxy ARP, the local block blackholed, the
 * peer's blocks via the peer on the uplink, the record written first. */
static void test_single_underlay_pool(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160);
        EXPECT_NO_FINDINGS(p);
        assert_true(p->underlay);
        assert_true(p->tunnels_unneeded);
        assert_int_equal(p->uplink, 2);
        assert_string_equal(p->uplink_name, "eth0");
        assert_int_equal(p->n_routes_wanted, 3);
        assert_int_equal(p->n_routes_foreign, 0);
        assert_int_equal(p->n_blocking, 0);
        expect_record(p, "eth0", 0, 800, true);
        assert_int_equal(p->n_pools, 1);
        assert_true(p->pools[0].applies);
        assert_true(p->pools[0].underlay);
        assert_string_equal(p->pools[0].reason, "nodeSelector all() matches this node");
        /* The exact fields, not only the text. */
        assert_int_equal(nth_action(p, 0)->value, 0);
        assert_false(nth_action(p, 0)->restore);
        assert_int_equal(nth_action(p, 1)->ifindex, 2);
        assert_int_equal(nth_action(p, 1)->value, 1);
        assert_int_equal(nth_action(p, 2)->route.type, HOST_RTN_BLACKHOLE);
        assert_int_equal(nth_action(p, 2)->route.oif, 0);
        assert_int_equal(nth_action(p, 2)->route.gateway.family, 0);
        assert_int_equal(nth_action(p, 3)->route.type, HOST_RTN_UNICAST);
        assert_int_equal(nth_action(p, 3)->route.oif, 2);
        assert_int_equal(nth_action(p, 3)->route.gateway.len, 32);
        assert_int_equal(nth_action(p, 3)->route.protocol, OWN);
        assert_int_equal(nth_action(p, 3)->route.priority, CFG_DEFAULT_ROUTE_METRIC);
        assert_int_equal(nth_action(p, 3)->route.table, 252);
        assert_false(nth_action(p, 3)->replace);
        apply_and_replan(t);
}

/* Already converged by hand before the daemon ever ran: the record is still written
 * (what was found), and nothing else happens. */
static void test_converged_host_still_records(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        link_of(&t->h, "eth0")->proxy_arp = 1;
        link_of(&t->h, "eth0")->proxy_delay_ms = 0;
        route_add(&t->h, R_LOCAL);
        route_add(&t->h, R_144);
        route_add(&t->h, R_160);
        own_rules(t);
        p = plan(t);
        EXPECT_NO_ACTIONS(p);
        expect_record(p, "eth0", 1, 0, true);
        apply_and_replan(t);
}

/* An overlay pool next to an underlay one: overlay blocks get no routes from us, and the
 * tunnels stay while an applying pool uses IPIP Always. */
static void test_overlay_and_underlay(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("overlay", "10.233.64.0/18", ", ipipMode: Always, natOutgoing: true") SIMPLE
                     AFF("node1", "10.233.90.0/26") AFF("node2", "10.233.96.0/26"));
        host_node1(&t->h);
        add_tunl0(&t->h, "10.233.90.0/32");
        route_add(&t->h, "10.233.96.0/26 via 192.168.10.12 dev tunl0 proto bird scope link");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160);
        EXPECT_NO_FINDINGS(p);
        assert_true(p->underlay);
        assert_false(p->tunnels_unneeded);
        assert_int_equal(p->n_routes_wanted, 3);
        assert_true(pool_named(t, "overlay")->applies);
        assert_false(pool_named(t, "overlay")->underlay);
        assert_true(pool_named(t, "underlay")->underlay);
        apply_and_replan(t);
}

/* Overlay pools only: not underlay mode, nothing to do, no record. */
static void test_overlay_only(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("overlay", "10.233.64.0/18", ", ipipMode: Always, natOutgoing: true")
                     NODE("node1", "192.168.10.11/24", AZ1) AFF("node1", "10.233.90.0/26"));
        host_node1(&t->h);
        add_tunl0(&t->h, "10.233.90.0/32");
        t->h.all_forwarding = 0; /* only matters in underlay mode */
        p = plan(t);
        EXPECT_NO_ACTIONS(p);
        EXPECT_NO_FINDINGS(p);
        assert_false(p->underlay);
        assert_false(p->tunnels_unneeded);
        assert_false(p->record.valid);
        assert_false(p->record_first);
        assert_int_equal(p->n_routes_wanted, 0);
}

/* The cross-AZ layout of the fixtures, from node1 in az1. */
static void test_dc1_cross_az(void **state)
{
        struct t *t = *state;
        const struct plan_pool *pp;
        struct plan *p;

        load(t, NULL, DC1);
        host_node1(&t->h);
        add_tunl0(&t->h, "10.233.90.0/32");
        p = plan(t);
        /* az1: our block blackholed, node2's routed; az2: its peers are off-link, so no
         * routes and "needs upstream routing"; the overlay: nothing. */
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144);
        EXPECT_FINDINGS(p, "info pool-not-applying", "warning needs-upstream-routing",
                        "warning needs-upstream-routing");
        assert_string_equal(msg(p, "pool-not-applying", 0),
                            "underlay pool underlay-az2 (192.168.20.128/25) does not apply to this node (its "
                            "blocks are routed like any peer's)");
        assert_contains(msg(p, "needs-upstream-routing", 0), "node node3 (192.168.20.13)");
        assert_contains(msg(p, "needs-upstream-routing", 0), "192.168.20.128/28");
        assert_contains(msg(p, "needs-upstream-routing", 1), "node node4 (192.168.20.14)");
        assert_true(p->underlay);
        assert_false(p->tunnels_unneeded);
        assert_int_equal(p->n_routes_wanted, 2);
        assert_int_equal(p->n_blocks_upstream, 2); /* node3's and node4's (metrics) */
        assert_int_equal(p->n_routes_conflicting, 0);
        assert_int_equal(p->n_pools, 3);
        pp = pool_named(t, "default-ipv4-ippool");
        assert_true(pp->applies);
        assert_false(pp->underlay);
        pp = pool_named(t, "underlay-az1");
        assert_true(pp->applies);
        assert_true(pp->underlay);
        assert_string_equal(pp->reason, "nodeSelector topology.kubernetes.io/zone == \"az1\" matches this node");
        pp = pool_named(t, "underlay-az2");
        assert_false(pp->applies);
        assert_true(pp->underlay);
        assert_string_equal(pp->reason,
                            "nodeSelector topology.kubernetes.io/zone == \"az2\" does not match this node");
        expect_record(p, "eth0", 0, 800, true);
        apply_and_replan(t);
}

/* node3 in az2 sees the mirror image: az2 applies, az1 does not. */
static void test_dc1_from_node3(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, "nodeName: node3\n", DC1);
        host_node1(&t->h);
        set_uplink_addr(&t->h, "192.168.20.13/24");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route blackhole 192.168.20.128/28 proto 211 metric 1024 table 252",
                       "add-route 192.168.20.144/28 via 192.168.20.14 dev eth0 proto 211 metric 1024 table 252");
        EXPECT_FINDINGS(p, "info pool-not-applying", "warning needs-upstream-routing",
                        "warning needs-upstream-routing");
        assert_contains(msg(p, "pool-not-applying", 0), "underlay-az1 (192.168.10.128/25)");
        assert_contains(msg(p, "needs-upstream-routing", 0), "node node1 (192.168.10.11)");
        assert_contains(msg(p, "needs-upstream-routing", 1), "node node2 (192.168.10.12)");
        assert_false(pool_named(t, "underlay-az1")->applies);
        assert_true(pool_named(t, "underlay-az2")->applies);
}

/* A peer of the same zone in another subnet: no route, "needs upstream routing". */
static void test_peer_in_other_subnet(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             DC1 NODE("node5", "192.168.11.15/24", AZ1) AFF("node5", "192.168.10.160/28")
                     AFF("node5", "192.168.10.176/28"));
        host_node1(&t->h);
        add_tunl0(&t->h, "10.233.90.0/32");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144);
        EXPECT_FINDINGS(p, "info pool-not-applying", "warning needs-upstream-routing",
                        "warning needs-upstream-routing", "warning needs-upstream-routing");
        assert_string_equal(msg(p, "needs-upstream-routing", 2),
                            "node node5 (192.168.11.15): no direct route (not on-link, or encapsulated), these blocks need upstream "
                            "routing (the switch or BGP): 192.168.10.160/28, 192.168.10.176/28");
        assert_int_equal(p->n_routes_wanted, 2);
        apply_and_replan(t);
}

/* More than four blocks: the finding gives examples and a count. */
static void test_upstream_examples_capped(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("underlay", "192.168.10.128/25", UNDERLAY) NODE("node1", "192.168.10.11/24", AZ1)
                     NODE("far", "10.1.1.1/24", AZ1) AFF("far", "192.168.10.128/28")
                     AFF("far", "192.168.10.144/28") AFF("far", "192.168.10.160/28")
                     AFF("far", "192.168.10.176/28") AFF("far", "192.168.10.192/28")
                     AFF("far", "192.168.10.208/28"));
        host_node1(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY);
        EXPECT_FINDINGS(p, "warning needs-upstream-routing");
        assert_string_equal(msg(p, "needs-upstream-routing", 0),
                            "node far (10.1.1.1): no direct route (not on-link, or encapsulated), these blocks need upstream routing "
                            "(the switch or BGP): 192.168.10.128/28, 192.168.10.144/28, 192.168.10.160/28, "
                            "192.168.10.176/28 and 2 more");
        assert_int_equal(p->n_routes_wanted, 0);
}

/* On-link is about the uplink's connected prefixes, not the peer's own subnet length:
 * a peer address in eth0's /24 is on-link even when its node claims a /16. And a peer
 * that is only reachable through another interface is not on-link on the uplink. */
static void test_on_link_is_uplink_prefix(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("underlay", "192.168.10.128/25", UNDERLAY) NODE("node1", "192.168.10.11/24", AZ1)
                     NODE("wide", "192.168.10.40/16", AZ1) NODE("side", "172.20.0.5/24", AZ1)
                     AFF("wide", "192.168.10.144/28") AFF("side", "192.168.10.160/28"));
        host_node1(&t->h);
        link_add(&t->h, 4, "eth1", "", 1500);
        addr_add(&t->h, "eth1", "172.20.0.1/24");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY,
                       "add-route 192.168.10.144/28 via 192.168.10.40 dev eth0 proto 211 metric 1024 table 252");
        EXPECT_FINDINGS(p, "warning needs-upstream-routing");
        assert_contains(msg(p, "needs-upstream-routing", 0), "node side (172.20.0.5)");
}

/* CrossSubnet (DESIGN §3.2: "CrossSubnet with M in N's subnet" is unencapsulated): a peer
 * in our subnet gets a direct route; a peer in another subnet is carried by Calico's
 * tunnel (Felix and BIRD route it via tunl0), so it gets no route from us and needs no
 * upstream routing either: "needs upstream routing" is for unencapsulated paths that
 * leave the segment. The tunnels are needed. */
static void test_cross_subnet(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("cs", "192.168.10.128/25", ", blockSize: 28, ipipMode: CrossSubnet, natOutgoing: false")
                     NODE("node1", "192.168.10.11/24", AZ1) NODE("node2", "192.168.10.12/24", AZ1)
                     NODE("node5", "192.168.11.15/24", AZ1) AFF("node1", "192.168.10.128/28")
                     AFF("node2", "192.168.10.144/28") AFF("node5", "192.168.10.160/28"));
        host_node1(&t->h);
        add_tunl0(&t->h, "192.168.10.129/32");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144);
        /* node5 is in another subnet: Calico's tunnel carries node-to-node traffic, and
         * everyone else reaches its pods through upstream routing (DESIGN §3.2). */
        EXPECT_FINDINGS(p, "warning needs-upstream-routing");
        assert_contains(msg(p, "needs-upstream-routing", 0), "node node5 (192.168.11.15)");
        assert_false(p->tunnels_unneeded);
        assert_int_equal(p->n_routes_wanted, 2);
        apply_and_replan(t);
}

/* vxlanMode CrossSubnet behaves the same way. */
static void test_cross_subnet_vxlan(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("cs", "192.168.10.128/25", ", blockSize: 28, vxlanMode: CrossSubnet")
                     NODE("node1", "192.168.10.11/24", AZ1) NODE("node2", "192.168.10.12/24", AZ1)
                     NODE("node5", "192.168.11.15/24", AZ1) AFF("node2", "192.168.10.144/28")
                     AFF("node5", "192.168.10.160/28"));
        host_node1(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_144);
        EXPECT_FINDINGS(p, "warning needs-upstream-routing");
        assert_contains(msg(p, "needs-upstream-routing", 0), "192.168.10.160/28");
        assert_false(p->tunnels_unneeded);
}

/* An underlay pool with IPIP Always: every peer is reached through the tunnel, so no
 * peer routes; the local blackhole stays (unallocated addresses must stay silent). */
static void test_underlay_ipip_always(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("u", "192.168.10.128/25", ", blockSize: 28, ipipMode: Always") NODE("node1", "192.168.10.11/24", AZ1)
                     NODE("node2", "192.168.10.12/24", AZ1) AFF("node1", "192.168.10.128/28")
                     AFF("node2", "192.168.10.144/28"));
        host_node1(&t->h);
        add_tunl0(&t->h, "192.168.10.129/32");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL);
        EXPECT_FINDINGS(p, "warning needs-upstream-routing");
        assert_contains(msg(p, "needs-upstream-routing", 0), "node node2 (192.168.10.12)");
        assert_false(p->tunnels_unneeded);
        assert_int_equal(p->n_routes_wanted, 1);
}

/* Disabled pools still apply (their addresses are in use): a disabled underlay pool still
 * gets its routes, and a disabled IPIP pool still keeps the tunnels. */
static void test_disabled_pools(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("overlay", "10.233.64.0/18", ", ipipMode: Always, natOutgoing: true, disabled: true")
                     POOL("underlay", "192.168.10.128/25", UNDERLAY ", disabled: true")
                     NODE("node1", "192.168.10.11/24", AZ1) NODE("node2", "192.168.10.12/24", AZ1)
                     AFF("node1", "192.168.10.128/28") AFF("node2", "192.168.10.144/28"));
        host_node1(&t->h);
        add_tunl0(&t->h, "10.233.90.0/32");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144);
        EXPECT_NO_FINDINGS(p);
        assert_true(p->underlay);
        assert_false(p->tunnels_unneeded);
        assert_true(pool_named(t, "overlay")->applies);
        assert_string_equal(pool_named(t, "overlay")->reason,
                            "nodeSelector all() matches this node (disabled: its addresses are still in use)");
        assert_true(pool_named(t, "underlay")->applies);
        apply_and_replan(t);
}

/* The node was moved out of az2 but still has a block of the az2 pool: the pool applies
 * (existing workloads use it), with the reason. */
static void test_affine_block_keeps_pool(void **state)
{
        struct t *t = *state;
        const struct plan_pool *pp;
        struct plan *p;

        load(t, NULL, DC1 AFF("node1", "192.168.20.160/28"));
        host_node1(&t->h);
        add_tunl0(&t->h, "10.233.90.0/32");
        p = plan(t);
        pp = pool_named(t, "underlay-az2");
        assert_true(pp->applies);
        assert_true(pp->underlay);
        assert_string_equal(pp->reason, "a block is affine to this node (nodeSelector topology.kubernetes.io/zone "
                                        "== \"az2\" no longer matches)");
        /* Its blocks are now ours to route: ours blackholed, node3/node4 are not on-link
         * (and the pool lies outside eth0's subnet). */
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144,
                       "add-route blackhole 192.168.20.160/28 proto 211 metric 1024 table 252");
        EXPECT_FINDINGS(p, "warning pool-outside-uplink-subnet", "warning needs-upstream-routing",
                        "warning needs-upstream-routing");
        assert_string_equal(msg(p, "needs-upstream-routing", 0),
                            "node node3 (192.168.20.13): no direct route (not on-link, or encapsulated), these blocks need upstream "
                            "routing (the switch or BGP): 192.168.20.128/28");
        assert_contains(msg(p, "needs-upstream-routing", 1), "node node4 (192.168.20.14)");
        assert_contains(msg(p, "pool-outside-uplink-subnet", 0), "192.168.20.160/28 via 192.168.10.11");
}

static void test_local_block_route_unreachable(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, "localBlockRoute: unreachable\n", SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, R_LOCAL); /* what blackhole mode left: replaced in place */
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY,
                       "add-route unreachable 192.168.10.128/28 proto 211 metric 1024 table 252 [replace]",
                       "add-route " R_144, "add-route " R_160);
        assert_int_equal(nth_action(p, 2)->route.type, HOST_RTN_UNREACHABLE);
        assert_int_equal(p->n_routes_wanted, 3);
        apply_and_replan(t);
}

static void test_local_block_route_none(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, "localBlockRoute: none\n", SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, R_LOCAL); /* left over from blackhole mode: withdrawn */
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "delete-route " R_LOCAL, "add-route " R_144, "add-route " R_160);
        assert_int_equal(p->n_routes_wanted, 2);
        apply_and_replan(t);
}

/* routeProtocol/routeMetric/routeTable: our routes go where the settings say, routes of our
 * old number are no longer ours (never touched), routes of our number elsewhere are. */
static void test_route_settings(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, "routeProtocol: 201\nrouteMetric: 500\nrouteTable: 100\n", SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.12 dev eth0 proto 201 metric 1024 table 254");
        route_add(&t->h, "192.168.10.160/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 252");
        route_add(&t->h, "192.168.10.160/28 via 192.168.10.12 dev eth0 proto 201 metric 777 table 100");
        p = plan(t);
        /* Ours left in another table (main here) go last, once table 100 is complete. */
        EXPECT_ALL_ACTIONS(p, SIMPLE_PROXY,
                           "add-rule to 192.168.10.128/25 lookup main suppress_prefixlength 27 pref 32700 proto 201",
                           "add-rule to 192.168.10.128/25 lookup 100 pref 32701 proto 201",
                           "add-route blackhole 192.168.10.128/28 proto 201 metric 500 table 100",
                           "add-route 192.168.10.144/28 via 192.168.10.12 dev eth0 proto 201 metric 500 table 100",
                           "delete-route 192.168.10.160/28 via 192.168.10.12 dev eth0 proto 201 metric 777 table 100",
                           "add-route 192.168.10.160/28 via 192.168.10.12 dev eth0 proto 201 metric 500 table 100",
                           "delete-route 192.168.10.144/28 via 192.168.10.12 dev eth0 proto 201 metric 1024 table 254");
        EXPECT_NO_FINDINGS(p);
        apply_and_replan(t);
}

/* BGP wins: an equivalent route of another protocol satisfies the need, and ours is
 * withdrawn; a different metric does not make it different. */
static void test_foreign_equivalent_route(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, R_LOCAL);
        route_add(&t->h, R_144);
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.12 dev eth0 proto bird");
        route_add(&t->h, R_160);
        own_rules(t);
        p = plan(t);
        /* BIRD's route in main wins by lookup; ours stays in our table as the standby. */
        EXPECT_ACTIONS(p, SIMPLE_PROXY);
        EXPECT_FINDINGS(p, "info bird-routes");
        assert_string_equal(msg(p, "bird-routes", 0), "BIRD already programs 1 block route in table main: those win "
                                                      "by lookup, ours stand by in table 252");
        assert_int_equal(p->n_routes_wanted, 3);
        assert_int_equal(p->n_routes_foreign, 1);
        apply_and_replan(t);
        /* BIRD withdraws its route: ours is already there, nothing to do. */
        for (size_t k = 0; k < t->h.n_routes; k++)
                if (t->h.routes[k].protocol == 12)
                        route_remove_at(&t->h, k);
        p = plan(t);
        EXPECT_NO_ACTIONS(p);
        EXPECT_NO_FINDINGS(p);
        assert_int_equal(p->n_routes_foreign, 0);
}

/* An equivalent static route for our local block (another protocol, not BIRD). */
static void test_foreign_equivalent_blackhole(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, "blackhole 192.168.10.128/28 proto static");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160);
        EXPECT_NO_FINDINGS(p); /* not BIRD: no bird-routes finding */
        assert_int_equal(p->n_routes_foreign, 1);
        apply_and_replan(t);
}

/* A conflicting foreign route: reported, never touched, ours not installed beside it and
 * our old one withdrawn. */
static void test_foreign_conflict_gateway(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.99 dev eth0 proto bird");
        route_add(&t->h, R_144);
        p = plan(t);
        /* In main it wins by lookup: reported, and ours stays as the standby. */
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_160);
        EXPECT_FINDINGS(p, "warning foreign-route-conflict");
        assert_string_equal(msg(p, "foreign-route-conflict", 0),
                            "192.168.10.144/28: a route of protocol 12 (unicast via 192.168.10.99, table main) "
                            "differs from ours (unicast via 192.168.10.12); left alone, it wins by lookup and ours "
                            "stands by");
        assert_int_equal(p->n_routes_foreign, 0);
        apply_and_replan(t);
}

static void test_foreign_conflict_type(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, "blackhole 192.168.10.160/28 proto static");
        route_add(&t->h, "192.168.10.128/28 via 192.168.10.1 dev eth0 proto boot table 252");
        p = plan(t);
        /* In our own table someone else's route holds the key: ours is not installed. */
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_144, "add-route " R_160);
        EXPECT_FINDINGS(p, "warning foreign-route-conflict", "warning foreign-route-conflict");
        assert_int_equal(p->n_routes_conflicting, 2);
        assert_string_equal(msg(p, "foreign-route-conflict", 0),
                            "192.168.10.128/28: a route of protocol 3 (unicast via 192.168.10.1, our table 252) "
                            "differs from ours (blackhole); left alone, ours not installed");
        assert_string_equal(msg(p, "foreign-route-conflict", 1),
                            "192.168.10.160/28: a route of protocol 4 (blackhole, table main) differs from ours "
                            "(unicast via 192.168.10.12); left alone, it wins by lookup and ours stands by");
        apply_and_replan(t);
}

/* A foreign route to the same prefix in another table is no competition in ours. */
static void test_foreign_route_other_table(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.99 dev eth0 proto bird table 100");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160);
        EXPECT_NO_FINDINGS(p);
}

/* A multipath foreign route is never equivalent to our single path. */
static void test_foreign_multipath(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.12 dev eth0 proto bird multipath");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160);
        EXPECT_FINDINGS(p, "warning foreign-route-conflict");
}

/* Our own route, wrong: same key (table, prefix, metric) → replaced in place; another
 * metric → deleted and added. */
static void test_own_route_wrong(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        link_add(&t->h, 4, "eth1", "", 1500);
        route_add(&t->h, R_LOCAL);
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.99 dev eth0 proto 211 metric 1024");
        route_add(&t->h, "192.168.10.160/28 via 192.168.10.12 dev eth0 proto 211 metric 100");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_144 " [replace]",
                       "delete-route 192.168.10.160/28 via 192.168.10.12 dev eth0 proto 211 metric 100 table 252",
                       "add-route " R_160);
        EXPECT_NO_FINDINGS(p);
        apply_and_replan(t);

        /* The right gateway on the wrong device, and a unicast where a blackhole belongs. */
        for (size_t k = 0; k < t->h.n_routes; k++)
                if (t->h.routes[k].protocol == OWN && t->h.routes[k].oif == 2)
                        t->h.routes[k].oif = 4;
        t->h.routes[2] = route_parse(&t->h, "192.168.10.128/28 via 192.168.10.12 dev eth0 proto 211 metric 1024");
        p = plan(t);
        EXPECT_ACTIONS(p, "add-route " R_LOCAL " [replace]", "add-route " R_144 " [replace]",
                       "add-route " R_160 " [replace]");
        apply_and_replan(t);
}

/* Two routes of ours for one prefix (one right, one at another metric): the extra goes. */
static void test_own_duplicate_route(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.12 dev eth0 proto 211 metric 5");
        route_add(&t->h, R_144);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL,
                       "delete-route 192.168.10.144/28 via 192.168.10.12 dev eth0 proto 211 metric 5 table 252",
                       "add-route " R_160);
        apply_and_replan(t);
}

/* Stale own routes (block released, pool gone, node gone) are deleted; in sorted order,
 * interleaved with the adds. */
static void test_own_stale_routes(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, "192.168.10.176/28 via 192.168.10.12 dev eth0 proto 211 metric 1024");
        route_add(&t->h, "blackhole 10.99.0.0/26 proto 211 metric 1024");
        route_add(&t->h, R_LOCAL);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "delete-route blackhole 10.99.0.0/26 proto 211 metric 1024 table 252",
                       "add-route " R_144, "add-route " R_160,
                       "delete-route 192.168.10.176/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table "
                       "252");
        EXPECT_NO_FINDINGS(p);
        apply_and_replan(t);
}

/* Our routes in a table we no longer use are deleted, first. */
static void test_own_route_other_table(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 100");
        route_add(&t->h, R_LOCAL);
        route_add(&t->h, R_144);
        route_add(&t->h, R_160);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY,
                       "delete-route 192.168.10.144/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 100");
        apply_and_replan(t);
}

/* An IPv6 route of ours that no block wants any more is withdrawn like an IPv4 one. */
static void test_own_ipv6_route_unwanted(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, R_LOCAL);
        route_add(&t->h, R_144);
        route_add(&t->h, R_160);
        route_add(&t->h, "blackhole fd00:10::/122 proto 211 metric 1024");
        own_rules(t);
        link_of(&t->h, "eth0")->proxy_arp = 1;
        link_of(&t->h, "eth0")->proxy_delay_ms = 0;
        set_record(t, "eth0", 0, 800);
        p = plan(t);
        EXPECT_ACTIONS(p, "delete-route blackhole fd00:10::/122 proto 211 metric 1024 table 252");
        expect_record(p, "eth0", 0, 800, false);
        apply_and_replan(t);
}

/* Exactly right already: no action at all, and the record is kept as it is. */
static void test_idempotent(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, DC1);
        host_node1(&t->h);
        add_tunl0(&t->h, "10.233.90.0/32");
        link_of(&t->h, "eth0")->proxy_arp = 1;
        link_of(&t->h, "eth0")->proxy_delay_ms = 0;
        route_add(&t->h, R_144);
        route_add(&t->h, R_LOCAL);
        own_rules(t);
        set_record(t, "eth0", 0, 800);
        p = plan(t);
        EXPECT_NO_ACTIONS(p);
        expect_record(p, "eth0", 0, 800, false);
}

/* A node we know only from a block: no address, so no route, and a finding. */
static void test_node_address_unknown(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             SIMPLE NODE_NOADDR("node6", AZ1) AFF("node6", "192.168.10.176/28") AFF("ghost", "192.168.10.192/28"));
        host_node1(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160);
        EXPECT_FINDINGS(p, "warning node-address-unknown", "warning node-address-unknown");
        /* Nodes are sorted by name. */
        assert_string_equal(msg(p, "node-address-unknown", 0),
                            "node ghost: no known address, so no route to its blocks: 192.168.10.192/28");
        assert_string_equal(msg(p, "node-address-unknown", 1),
                            "node node6: no known address, so no route to its blocks: 192.168.10.176/28");
        apply_and_replan(t);
}

/* This node is in no Node resource: the settings' nodeLabels choose the pools, the
 * uplink's address stands in for its own, and the operator hears about it. */
static void test_node_not_in_resources(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, "nodeName: node9\nnodeLabels: {topology.kubernetes.io/zone: az1}\n", DC1);
        host_node1(&t->h);
        set_uplink_addr(&t->h, "192.168.10.19/24");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY,
                       "add-route 192.168.10.128/28 via 192.168.10.11 dev eth0 proto 211 metric 1024 table 252",
                       "add-route " R_144);
        EXPECT_FINDINGS(p, "warning node-not-in-resources", "info pool-not-applying", UPSTREAM2);
        assert_string_equal(msg(p, "node-not-in-resources", 0),
                            "this node (node9) is in no Node resource: using nodeLabels from the settings");
        assert_true(pool_named(t, "underlay-az1")->applies);
        assert_false(pool_named(t, "underlay-az2")->applies);
}

/* Without nodeLabels: no labels, so only all() pools apply. */
static void test_node_not_in_resources_no_labels(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, "nodeName: node9\n", DC1);
        host_node1(&t->h);
        add_tunl0(&t->h, "10.233.90.0/32");
        p = plan(t);
        /* No pool applies, so no underlay mode; peers' underlay blocks on the segment
         * are still routed directly (DESIGN §3.2: every block of an underlay pool). But
         * node1's address is this host's own (the uplink's): no route via it (the
         * kernel refuses a local gateway on every pass), a finding instead. */
        EXPECT_ACTIONS(p, "add-route " R_144);
        EXPECT_FINDINGS(p, "warning node-not-in-resources", "info pool-not-applying", "info pool-not-applying",
                        "warning peer-address-unusable", UPSTREAM2);
        assert_string_equal(msg(p, "peer-address-unusable", 0),
                            "node node1: its address 192.168.10.11 is this node's own address: no route via it "
                            "(1 route not installed)");
        assert_string_equal(msg(p, "node-not-in-resources", 0),
                            "this node (node9) is in no Node resource: using no labels");
        assert_false(p->underlay);
        assert_true(pool_named(t, "default-ipv4-ippool")->applies);
}

/* Known only from a block affinity (no Node resource): still "in no Node resource", its
 * labels come from the settings, and its block is local. */
static void test_node_known_only_from_block(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, "nodeName: node9\nnodeLabels: {topology.kubernetes.io/zone: az1}\n",
             DC1 AFF("node9", "192.168.10.176/28"));
        host_node1(&t->h);
        set_uplink_addr(&t->h, "192.168.10.19/24");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route 192.168.10.128/28 via 192.168.10.11 dev eth0 proto 211 metric "
                                        "1024 table 252",
                       "add-route " R_144, "add-route blackhole 192.168.10.176/28 proto 211 metric 1024 table 252");
        EXPECT_FINDINGS(p, "warning node-not-in-resources", "info pool-not-applying", UPSTREAM2);
        assert_string_equal(msg(p, "node-not-in-resources", 0),
                            "this node (node9) is in no Node resource: using nodeLabels from the settings");
}

/* §3.1: when underlay mode ends, proxy ARP goes back first, then the delay; the record is
 * cleared and our routes withdrawn. */
static void test_end_of_underlay_mode(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("underlay", "192.168.10.128/25", ", blockSize: 28, natOutgoing: true")
                     NODE("node1", "192.168.10.11/24", AZ1) NODE("node2", "192.168.10.12/24", AZ1)
                     AFF("node1", "192.168.10.128/28") AFF("node2", "192.168.10.144/28"));
        host_node1(&t->h);
        link_of(&t->h, "eth0")->proxy_arp = 1;
        link_of(&t->h, "eth0")->proxy_delay_ms = 0;
        route_add(&t->h, R_LOCAL);
        route_add(&t->h, R_144);
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.12 dev eth0 proto bird"); /* never touched */
        set_record(t, "eth0", 0, 800);
        p = plan(t);
        EXPECT_ACTIONS(p, "set-proxy-arp eth0 0 (restore)", "set-proxy-delay eth0 800 ms (restore)",
                       "delete-route " R_LOCAL, "delete-route " R_144);
        EXPECT_NO_FINDINGS(p);
        assert_false(p->underlay);
        assert_false(p->record.valid);
        assert_false(p->record_first);
        assert_true(nth_action(p, 0)->restore);
        assert_int_equal(nth_action(p, 1)->value, 800);
        apply_and_replan(t);
        assert_int_equal(link_of(&t->h, "eth0")->proxy_arp, 0);
        assert_int_equal(link_of(&t->h, "eth0")->proxy_delay_ms, 800);
}

/* The values found were "on" already: proxy ARP must not answer while the delay changes
 * (felix PR 1938), so it is paused, the delay restored, and it is turned back on. */
static void test_end_of_underlay_restore_delay_under_proxy(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, POOL("overlay", "10.233.64.0/18", ", natOutgoing: true") NODE("node1", "192.168.10.11/24", AZ1));
        host_node1(&t->h);
        link_of(&t->h, "eth0")->proxy_arp = 1;
        link_of(&t->h, "eth0")->proxy_delay_ms = 0;
        set_record(t, "eth0", 1, 800);
        p = plan(t);
        EXPECT_ACTIONS(p, "set-proxy-arp eth0 0", "set-proxy-delay eth0 800 ms (restore)",
                       "set-proxy-arp eth0 1 (restore)");
        assert_false(p->record.valid);
        apply_and_replan(t);
}

/* Only what was recorded is restored, and only when it differs. */
static void test_end_of_underlay_partial_record(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, POOL("overlay", "10.233.64.0/18", ", natOutgoing: true") NODE("node1", "192.168.10.11/24", AZ1));
        host_node1(&t->h);
        link_of(&t->h, "eth0")->proxy_arp = 1;
        link_of(&t->h, "eth0")->proxy_delay_ms = 0;
        set_record(t, "eth0", 0, -1); /* proxyDelay was keep */
        p = plan(t);
        EXPECT_ACTIONS(p, "set-proxy-arp eth0 0 (restore)");
        assert_false(p->record.valid);

        set_record(t, "eth0", 1, 0); /* nothing to put back */
        p = plan(t);
        EXPECT_NO_ACTIONS(p);
        assert_false(p->record.valid);

        set_record(t, "eth9", 0, 800); /* the device is gone, and its settings with it */
        p = plan(t);
        EXPECT_NO_ACTIONS(p);
        assert_false(p->record.valid);
}

/* The uplink moved between runs: the old device gets its values back first, then the new
 * one is recorded and set up. */
static void test_uplink_changed(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        link_add(&t->h, 4, "eth1", "", 1500);
        link_of(&t->h, "eth1")->proxy_arp = 1;
        set_record(t, "eth1", 0, 800);
        route_add(&t->h, R_LOCAL);
        route_add(&t->h, R_144);
        route_add(&t->h, R_160);
        p = plan(t);
        EXPECT_ACTIONS(p, "set-proxy-arp eth1 0 (restore)", "set-proxy-delay eth1 800 ms (restore)",
                       "set-proxy-delay eth0 0 ms", "set-proxy-arp eth0 1");
        expect_record(p, "eth0", 0, 800, true);
        assert_int_equal(nth_action(p, 0)->ifindex, 4);
        assert_int_equal(nth_action(p, 1)->ifindex, 4);
        assert_int_equal(nth_action(p, 2)->ifindex, 2);
}

/* proxyDelay: keep leaves the kernel's value alone and records none. */
static void test_proxy_delay_keep(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, "proxyDelay: keep\n", SIMPLE);
        host_node1(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, "set-proxy-arp eth0 1", "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160);
        expect_record(p, "eth0", 0, -1, true);
        apply_and_replan(t);
        assert_int_equal(link_of(&t->h, "eth0")->proxy_delay_ms, 800);
}

/* A configured delay other than 0. */
static void test_proxy_delay_value(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, "proxyDelay: 10\n", SIMPLE);
        host_node1(&t->h);
        link_of(&t->h, "eth0")->proxy_delay_ms = -1; /* unknown: set it anyway */
        p = plan(t);
        EXPECT_ACTIONS(p, "set-proxy-delay eth0 10 ms", "set-proxy-arp eth0 1", "add-route " R_LOCAL,
                       "add-route " R_144, "add-route " R_160);
        expect_record(p, "eth0", 0, -1, true);
        apply_and_replan(t);
}

/* The delay must change while proxy ARP is off (felix PR 1938): someone reset it while we
 * were answering, so proxy ARP is paused around the change. The record stays. */
static void test_delay_change_under_proxy_arp(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        link_of(&t->h, "eth0")->proxy_arp = 1;
        link_of(&t->h, "eth0")->proxy_delay_ms = 800;
        route_add(&t->h, R_LOCAL);
        route_add(&t->h, R_144);
        route_add(&t->h, R_160);
        set_record(t, "eth0", 0, 800);
        p = plan(t);
        EXPECT_ACTIONS(p, "set-proxy-arp eth0 0", "set-proxy-delay eth0 0 ms", "set-proxy-arp eth0 1");
        expect_record(p, "eth0", 0, 800, false);
        assert_false(nth_action(p, 0)->restore);
        apply_and_replan(t);
}

/* First run on a host whose proxy ARP is already on: pause, delay, on; recorded as found. */
static void test_first_run_proxy_arp_already_on(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        link_of(&t->h, "eth0")->proxy_arp = 1;
        p = plan(t);
        EXPECT_ACTIONS(p, "set-proxy-arp eth0 0", "set-proxy-delay eth0 0 ms", "set-proxy-arp eth0 1",
                       "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160);
        expect_record(p, "eth0", 1, 800, true);
        apply_and_replan(t);
}

/* proxy_arp could not be read: it may be answering, so it is paused around the delay. */
static void test_delay_change_proxy_arp_unknown(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        link_of(&t->h, "eth0")->proxy_arp = -1;
        p = plan(t);
        EXPECT_ACTIONS(p, "set-proxy-arp eth0 0", "set-proxy-delay eth0 0 ms", "set-proxy-arp eth0 1",
                       "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160);
        expect_record(p, "eth0", -1, 800, true);
}

/* proxyDelay was keep when the record was written, now it is 0: the delay's original value
 * must be recorded before we first change it, or the end of underlay mode cannot put it
 * back (§3.1 "recorded and restored the same way"). */
static void test_delay_recorded_when_keep_ends(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        link_of(&t->h, "eth0")->proxy_arp = 1;
        link_of(&t->h, "eth0")->proxy_delay_ms = 800;
        route_add(&t->h, R_LOCAL);
        route_add(&t->h, R_144);
        route_add(&t->h, R_160);
        set_record(t, "eth0", 0, -1);
        p = plan(t);
        EXPECT_ACTIONS(p, "set-proxy-arp eth0 0", "set-proxy-delay eth0 0 ms", "set-proxy-arp eth0 1");
        expect_record(p, "eth0", 0, 800, true);
        apply_and_replan(t);
}

/* Underlay mode, but the uplink cannot be found: blocking, no proxy ARP change, and the
 * record of the original values must survive (a cleared record would lose them). */
static void test_uplink_not_found(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        assert_int_equal(t->h.routes[0].dst.len, 0);
        route_remove_at(&t->h, 0); /* the default route: uplink auto finds none */
        route_add(&t->h, R_144);
        p = plan(t);
        assert_int_equal(p->uplink, 0);
        assert_string_equal(p->uplink_name, "");
        assert_true(p->underlay);
        /* The local blackhole is still wanted; without an uplink nobody can tell where
         * peers are, so our peer routes stay as they are (a flapping default route
         * must not cut traffic) and only the missing uplink is reported. */
        EXPECT_ACTIONS(p, "add-route " R_LOCAL);
        EXPECT_FINDINGS(p, "blocking uplink-not-found");
        assert_string_equal(msg(p, "uplink-not-found", 0), "no uplink: no IPv4 default route in the main table");
        assert_false(p->record.valid);
        assert_false(p->record_first);

        set_record(t, "eth0", 0, 800);
        p = plan(t);
        expect_record(p, "eth0", 0, 800, false);
        for (size_t i = 0; i < p->n_actions; i++)
                assert_true(p->actions[i].kind != CHANGE_SET_PROXY_ARP && p->actions[i].kind != CHANGE_SET_PROXY_DELAY);
}

/* ---- tunnels (§3.3) ---- */

/* Never/Never everywhere: the VXLAN device goes; the MTU can be raised. */
static void test_remove_vxlan(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        link_add(&t->h, 5, "vxlan.calico", "vxlan", 1450);
        addr_add(&t->h, "vxlan.calico", "192.168.10.130/32");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160,
                       "remove-tunnel vxlan.calico (vxlan) addrs 192.168.10.130/32");
        EXPECT_FINDINGS(p, "info mtu-can-be-raised");
        assert_string_equal(msg(p, "mtu-can-be-raised", 0),
                            "the tunnel MTU is 1450; once encapsulation is gone the pod MTU can be raised to the "
                            "uplink's 1500");
        assert_true(p->tunnels_unneeded);
        assert_int_equal(nth_action(p, 5)->ifindex, 5);
        assert_string_equal(nth_action(p, 5)->tunnel->kind, "vxlan");
        assert_false(nth_action(p, 5)->tunnel->foreign_addrs);
        apply_and_replan(t);
        assert_null(host_link_by_name(&t->h, "vxlan.calico"));
}

/* A VXLAN device is not the kernel-kept IPIP fallback: down and without addresses it is
 * still there, so it is still removed ("down counts as removed" is for tunl0 only). */
static void test_remove_vxlan_down(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        link_add(&t->h, 5, "vxlan.calico", "vxlan", 1450);
        link_of(&t->h, "vxlan.calico")->up = false;
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160,
                       "remove-tunnel vxlan.calico (vxlan)");
        EXPECT_FINDINGS(p, "info mtu-can-be-raised");
        apply_and_replan(t);
}

/* An IPv6 link-local address is the kernel's own (every IPv6-enabled device gets one),
 * not someone else's: it neither keeps the device up nor is it removed by us. */
static void test_tunnel_link_local_not_foreign(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        link_add(&t->h, 5, "vxlan.calico", "vxlan", 1450);
        addr_add(&t->h, "vxlan.calico", "192.168.10.130/32");
        addr_add(&t->h, "vxlan.calico", "fe80::64a1:2ff:fe3b:4c5d/64");
        add_tunl0(&t->h, "192.168.10.131/32");
        addr_add(&t->h, "tunl0", "fe80::c0a8:a0b/64");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160,
                       "remove-tunnel tunl0 (ipip) addrs 192.168.10.131/32",
                       "remove-tunnel vxlan.calico (vxlan) addrs 192.168.10.130/32");
        EXPECT_FINDINGS(p, "info mtu-can-be-raised");
        apply_and_replan(t);
        assert_false(link_of(&t->h, "tunl0")->up);
}

/* tunl0 with Calico addresses: one inside a pool, one the node's ipv4IPIPTunnelAddr
 * (its pool deleted already). The kernel keeps tunl0: addresses off, set down. */
static void test_remove_tunl0_calico_addrs(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("underlay", "192.168.10.128/25", UNDERLAY)
                     NODE_TUN("node1", "192.168.10.11/24", "10.233.90.0", AZ1) NODE("node2", "192.168.10.12/24", AZ1)
                     AFF("node2", "192.168.10.144/28"));
        host_node1(&t->h);
        add_tunl0(&t->h, "10.233.90.0/32");
        addr_add(&t->h, "tunl0", "192.168.10.131/32");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_144,
                       "remove-tunnel tunl0 (ipip) addrs 10.233.90.0/32,192.168.10.131/32");
        EXPECT_FINDINGS(p, "info mtu-can-be-raised");
        assert_contains(msg(p, "mtu-can-be-raised", 0), "the tunnel MTU is 1480");
        assert_int_equal(nth_action(p, 3)->ifindex, 3);
        assert_string_equal(nth_action(p, 3)->dev, "tunl0");
        assert_int_equal(nth_action(p, 3)->tunnel->n_addrs, 2);
        assert_false(nth_action(p, 3)->tunnel->foreign_addrs);
        apply_and_replan(t);
        assert_false(link_of(&t->h, "tunl0")->up);
}

/* Both devices, the mtu finding from the smaller one. */
static void test_remove_both_tunnels(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("underlay", "192.168.10.128/25", UNDERLAY)
                     NODE_TUN("node1", "192.168.10.11/24", "10.233.90.0", AZ1));
        host_node1(&t->h);
        link_of(&t->h, "eth0")->proxy_delay_ms = 0;
        link_of(&t->h, "eth0")->mtu = 9000;
        add_tunl0(&t->h, "10.233.90.0/32");
        link_add(&t->h, 5, "vxlan.calico", "vxlan", 8950);
        p = plan(t);
        EXPECT_ACTIONS(p, "set-proxy-arp eth0 1", "remove-tunnel tunl0 (ipip) addrs 10.233.90.0/32",
                       "remove-tunnel vxlan.calico (vxlan)");
        EXPECT_FINDINGS(p, "info mtu-can-be-raised");
        assert_string_equal(msg(p, "mtu-can-be-raised", 0),
                            "the tunnel MTU is 1480; once encapsulation is gone the pod MTU can be raised to the "
                            "uplink's 9000");
        apply_and_replan(t);
}

/* tunl0 with a Calico address and someone else's: the Calico one goes, the device stays up. */
static void test_tunl0_foreign_and_calico_addrs(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("underlay", "192.168.10.128/25", UNDERLAY)
                     NODE_TUN("node1", "192.168.10.11/24", "10.233.90.0", AZ1));
        host_node1(&t->h);
        add_tunl0(&t->h, "10.233.90.0/32");
        addr_add(&t->h, "tunl0", "172.31.0.1/30");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "remove-tunnel tunl0 (ipip) addrs 10.233.90.0/32 [foreign]");
        EXPECT_FINDINGS(p, "info tunnel-foreign-addresses", "info mtu-can-be-raised");
        assert_string_equal(msg(p, "tunnel-foreign-addresses", 0),
                            "tunl0 carries addresses that are not Calico's (first: 172.31.0.1/30): if the kernel "
                            "keeps the device, it stays up with them");
        apply_and_replan(t);
        assert_true(link_of(&t->h, "tunl0")->up);
        /* Converged: only the report remains. */
        EXPECT_FINDINGS(t->p, "info tunnel-foreign-addresses");
        assert_string_equal(msg(t->p, "tunnel-foreign-addresses", 0),
                            "tunl0 carries addresses that are not Calico's (first: 172.31.0.1/30): device left up");
}

/* tunl0 already down with no Calico address: that counts as removed. */
static void test_tunl0_already_down(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        add_tunl0(&t->h, NULL);
        link_of(&t->h, "tunl0")->up = false;
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160);
        EXPECT_NO_FINDINGS(p);
}

/* tunl0 up without any address: deleted (the kernel keeps it) and set down. */
static void test_tunl0_up_no_addrs(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        add_tunl0(&t->h, NULL);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160,
                       "remove-tunnel tunl0 (ipip)");
        apply_and_replan(t);
}

/* A device called tunl0 that is not an IPIP device is not Calico's. */
static void test_tunnel_not_calico(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        link_add(&t->h, 3, "tunl0", "gre", 1476);
        addr_add(&t->h, "tunl0", "192.168.10.129/32");
        link_add(&t->h, 5, "vxlan.calico", "", 1500);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160);
        EXPECT_FINDINGS(p, "warning tunnel-not-calico", "warning tunnel-not-calico");
        assert_string_equal(msg(p, "tunnel-not-calico", 0), "tunl0 is a gre device, not ipip: left alone");
        assert_string_equal(msg(p, "tunnel-not-calico", 1), "vxlan.calico is a plain device, not vxlan: left alone");
}

/* tunnelDevices names other devices. */
static void test_tunnel_device_names(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, "tunnelDevices: {ipip: ipip0, vxlan: vx0}\n", SIMPLE);
        host_node1(&t->h);
        add_tunl0(&t->h, NULL); /* not ours any more */
        link_add(&t->h, 6, "vx0", "vxlan", 1450);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160,
                       "remove-tunnel vx0 (vxlan)");
}

/* FelixConfiguration ipipEnabled: true means Felix keeps tunl0: do not fight it. */
static void test_felix_keeps_tunnel(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE FELIX("default", "ipipEnabled: true"));
        host_node1(&t->h);
        add_tunl0(&t->h, NULL);
        link_add(&t->h, 5, "vxlan.calico", "vxlan", 1450);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160,
                       "remove-tunnel vxlan.calico (vxlan)");
        EXPECT_FINDINGS(p, "warning felix-keeps-tunnel", "info mtu-can-be-raised");
        assert_string_equal(msg(p, "felix-keeps-tunnel", 0),
                            "FelixConfiguration sets ipipEnabled: true, so Felix keeps tunl0; left alone");
}

/* node.<name> overrides default, and another node's FelixConfiguration is not ours. */
static void test_felix_per_node(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             SIMPLE FELIX("default", "ipipEnabled: true, vxlanEnabled: true") FELIX("node.node1", "ipipEnabled: false")
                     FELIX("node.node2", "vxlanEnabled: false"));
        host_node1(&t->h);
        add_tunl0(&t->h, NULL);
        link_add(&t->h, 5, "vxlan.calico", "vxlan", 1450);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160,
                       "remove-tunnel tunl0 (ipip)");
        EXPECT_FINDINGS(p, "warning felix-keeps-tunnel", "info mtu-can-be-raised");
        assert_string_equal(msg(p, "felix-keeps-tunnel", 0),
                            "FelixConfiguration sets vxlanEnabled: true, so Felix keeps vxlan.calico; left alone");
}

/* Routes that still use the tunnel about to be removed: blocking. The device's own kernel
 * routes and non-unicast routes do not count. */
static void test_routes_via_tunnel(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        add_tunl0(&t->h, NULL);
        route_add(&t->h, "10.233.96.0/26 via 192.168.10.12 dev tunl0 proto bird scope link");
        route_add(&t->h, "10.233.97.0/26 via 192.168.10.13 dev tunl0 proto bird scope link");
        route_add(&t->h, "10.233.90.0/32 dev tunl0 proto kernel scope link");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160,
                       "remove-tunnel tunl0 (ipip)");
        EXPECT_FINDINGS(p, "blocking routes-via-tunnel", "info mtu-can-be-raised");
        assert_contains(msg(p, "routes-via-tunnel", 0), "2 routes still use tunl0 (first: 10.233.96.0/26, protocol 12)");
        assert_int_equal(p->n_blocking, 1);
}

/* Tunnels needed: nothing is said about them, whatever uses them. */
static void test_tunnels_needed_no_tunnel_findings(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, DC1);
        host_node1(&t->h);
        add_tunl0(&t->h, "10.233.90.0/32");
        route_add(&t->h, "10.233.96.0/26 via 192.168.10.12 dev tunl0 proto bird scope link");
        link_add(&t->h, 5, "vxlan.calico", "vxlan", 1450);
        p = plan(t);
        EXPECT_FINDINGS(p, "info pool-not-applying", UPSTREAM2);
        for (size_t i = 0; i < p->n_actions; i++)
                assert_int_not_equal(p->actions[i].kind, CHANGE_REMOVE_TUNNEL);
}

/* ---- host readiness findings ---- */

static void test_forwarding_off(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        t->h.all_forwarding = 0;
        link_of(&t->h, "eth0")->forwarding = 0;
        p = plan(t);
        EXPECT_FINDINGS(p, "blocking forwarding-off", "blocking forwarding-off");
        assert_string_equal(msg(p, "forwarding-off", 0),
                            "IPv4 forwarding is off (net.ipv4.ip_forward=0): pods cannot be reached");
        assert_string_equal(msg(p, "forwarding-off", 1),
                            "forwarding is off on eth0: the kernel answers proxy ARP only on a forwarding "
                            "interface");
        assert_int_equal(p->n_blocking, 2);

        t->h.all_forwarding = 1;
        p = plan(t);
        EXPECT_FINDINGS(p, "blocking forwarding-off");
        assert_contains(msg(p, "forwarding-off", 0), "forwarding is off on eth0");

        link_of(&t->h, "eth0")->forwarding = -1; /* unknown is not "off" */
        t->h.all_forwarding = -1;
        p = plan(t);
        EXPECT_NO_FINDINGS(p);
}

/* An uplink that cannot carry underlay traffic is a blocking finding (issue 14): one
 * with no IPv4 address said "ready" before, and so did lo chosen by can-reach= of an
 * address that lives on it. */
static void test_uplink_unfit(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        t->h.n_addrs = 1; /* lo's 127.0.0.1/8 only: eth0 has none */
        p = plan(t);
        assert_string_equal(msg(p, "uplink-no-address", 0),
                            "the uplink eth0 has no IPv4 address: no node or pod is on-link through it");
        assert_int_equal(p->findings[0].severity, PLAN_BLOCKING);
        assert_int_equal(p->n_blocking, 1);

        addr_add(&t->h, "eth0", "fd00::11/64"); /* IPv6 alone does not make it fit */
        p = plan(t);
        assert_non_null(msg(p, "uplink-no-address", 0));

        host_snapshot_clear(&t->h);
        host_node1(&t->h);
        assert_int_equal(t->h.routes[0].dst.len, 0);
        t->h.routes[0].oif = 1; /* the default route through lo: uplink auto picks lo */
        p = plan(t);
        assert_string_equal(msg(p, "uplink-loopback", 0),
                            "the uplink is the loopback device lo: choose the device facing the network");
        assert_true(p->n_blocking >= 1);

        /* A fit uplink: neither. */
        host_snapshot_clear(&t->h);
        host_node1(&t->h);
        p = plan(t);
        EXPECT_NO_FINDINGS(p);
}

/* routeProtocol changed from 211 to 212 (issue 14): the record says 211 in table 254
 * was ours, so those routes are withdrawn, the change is reported, and the record
 * names the new pair. Without the record they would count as foreign equivalents and
 * stay for ever. In main (an earlier version's table) they go after ours are in our
 * table, so that traffic keeps a route; in our own table, first (the same key). */
static void test_route_owner_changed(void **state)
{
        struct t *t = *state;
        size_t dels = 0, adds = 0, first_add = SIZE_MAX, last_del = 0, first_del = SIZE_MAX;
        struct plan *p;

        load(t, "routeProtocol: 212\n", SIMPLE);
        host_node1(&t->h);
        route_add(&t->h, "blackhole 192.168.10.128/28 proto 211 metric 1024 table 254");
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 254");
        route_add(&t->h, "192.168.10.160/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 254");
        route_add(&t->h, "192.168.10.176/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 100");
        rule_push(t, "192.168.10.128/25", 32701, 252, -1, 211);
        t->rec.route_protocol = 211;
        t->rec.route_table = 254;
        p = plan(t);
        for (size_t i = 0; i < p->n_actions; i++) {
                const struct host_change *a = &p->actions[i];

                if (a->kind == CHANGE_DEL_ROUTE) {
                        assert_int_equal(a->route.protocol, 211);
                        assert_int_equal(a->route.table, 254); /* table 100's is not the recorded pair */
                        dels++;
                        last_del = i;
                        if (first_del == SIZE_MAX)
                                first_del = i;
                } else if (a->kind == CHANGE_ADD_ROUTE) {
                        assert_int_equal(a->route.protocol, 212);
                        adds++;
                        if (first_add == SIZE_MAX)
                                first_add = i;
                }
        }
        assert_int_equal(dels, 3);
        assert_int_equal(adds, 3);
        assert_true(first_add < first_del);
        /* The old protocol's rule goes too, after the routes. */
        assert_int_equal(p->actions[p->n_actions - 1].kind, CHANGE_DEL_RULE);
        assert_int_equal(p->actions[p->n_actions - 1].rule->protocol, 211);
        assert_true(last_del < p->n_actions - 1);
        assert_string_equal(msg(p, "route-owner-changed", 0),
                            "3 routes of protocol 211 in table 254 were ours before routeProtocol/routeTable became "
                            "212/252: withdrawn");
        assert_int_equal(p->record.route_protocol, 212);
        assert_int_equal(p->record.route_table, 252);

        /* The recorded pair in our own table: the same keys as ours, so they go first. */
        host_snapshot_clear(&t->h);
        host_node1(&t->h);
        route_add(&t->h, "blackhole 192.168.10.128/28 proto 211 metric 1024 table 252");
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 252");
        t->rec.route_table = 252;
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "delete-route blackhole 192.168.10.128/28 proto 211 metric 1024 table 252",
                       "delete-route 192.168.10.144/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 252",
                       "add-route blackhole 192.168.10.128/28 proto 212 metric 1024 table 252",
                       "add-route 192.168.10.144/28 via 192.168.10.12 dev eth0 proto 212 metric 1024 table 252",
                       "add-route 192.168.10.160/28 via 192.168.10.12 dev eth0 proto 212 metric 1024 table 252");

        /* Same pair recorded: nothing of the kind. */
        t->rec.route_protocol = 212;
        p = plan(t);
        for (size_t i = 0; i < p->n_findings; i++)
                assert_string_not_equal(p->findings[i].code, "route-owner-changed");

        /* No underlay pool: no route of ours wanted, so no owner to record. */
        load(t, "routeProtocol: 212\n", POOL("overlay", "192.168.10.128/25", ", natOutgoing: true"));
        p = plan(t);
        assert_int_equal(p->record.route_protocol, 0);
}

/* A damaged record (issue 14): blocking, and the uplink is left alone: neither set
 * (that would record our own values) nor restored (from what?). */
static void test_record_damaged(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        snprintf(t->rec.damaged, sizeof(t->rec.damaged), "line 2 does not parse");
        p = plan(t);
        for (size_t i = 0; i < p->n_actions; i++)
                assert_true(p->actions[i].kind == CHANGE_ADD_ROUTE || p->actions[i].kind == CHANGE_DEL_ROUTE ||
                            p->actions[i].kind == CHANGE_ADD_RULE);
        assert_string_equal(msg(p, "record-damaged", 0),
                            "runtime record: line 2 does not parse; kept as it is: the uplink's proxy_arp and proxy "
                            "delay are left alone until it is fixed or removed");
        assert_true(p->n_blocking >= 1);
        assert_string_equal(p->record.damaged, "line 2 does not parse");
}

static void test_rp_filter(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        link_of(&t->h, "eth0")->rp_filter = 1;
        p = plan(t);
        EXPECT_FINDINGS(p, "warning rp-filter-strict");
        assert_string_equal(msg(p, "rp-filter-strict", 0),
                            "strict rp_filter on eth0: replies routed asymmetrically are dropped (loose mode 2 is "
                            "safer)");
        /* The kernel uses max(all, dev). */
        link_of(&t->h, "eth0")->rp_filter = 0;
        t->h.all_rp_filter = 1;
        p = plan(t);
        EXPECT_FINDINGS(p, "warning rp-filter-strict");
        link_of(&t->h, "eth0")->rp_filter = 1;
        t->h.all_rp_filter = 2;
        p = plan(t);
        EXPECT_NO_FINDINGS(p);
}

/* An underlay pool that the uplink's subnet does not contain: proxy ARP alone will not do,
 * and the finding names the routes the upstream router needs for this node's blocks. */
static void test_pool_outside_uplink_subnet(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("ext", "10.50.0.0/24", UNDERLAY) NODE("node1", "192.168.10.11/24", AZ1)
                     NODE("node2", "192.168.10.12/24", AZ1) AFF("node1", "10.50.0.0/28") AFF("node1", "10.50.0.16/28")
                     AFF("node2", "10.50.0.32/28"));
        host_node1(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route blackhole 10.50.0.0/28 proto 211 metric 1024 table 252",
                       "add-route blackhole 10.50.0.16/28 proto 211 metric 1024 table 252",
                       "add-route 10.50.0.32/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 252");
        EXPECT_FINDINGS(p, "warning pool-outside-uplink-subnet");
        assert_string_equal(msg(p, "pool-outside-uplink-subnet", 0),
                            "pool ext (10.50.0.0/24) lies outside eth0's subnet: proxy ARP alone will not make it "
                            "reachable; the upstream router needs these routes: 10.50.0.0/28 via 192.168.10.11, "
                            "10.50.0.16/28 via 192.168.10.11");
}

static void test_pool_outside_uplink_subnet_no_blocks(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, POOL("ext", "10.50.0.0/24", UNDERLAY) NODE("node1", "192.168.10.11/24", AZ1));
        host_node1(&t->h);
        p = plan(t);
        EXPECT_FINDINGS(p, "warning pool-outside-uplink-subnet");
        assert_contains(msg(p, "pool-outside-uplink-subnet", 0),
                        "the upstream router needs a route per block of this node (none yet)");
}

/* ---- IPv6 ---- */

#define NODE6(name, addr, addr6, labels)                                                            \
        DOC "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: " name ", labels: {" labels \
            "}}\nspec: {bgp: {ipv4Address: " addr ", ipv6Address: '" addr6 "'}}\n"
#define UNDERLAY6 ", blockSize: 122, vxlanMode: Never, natOutgoing: false"

/* node1 dual-stack: eth0 also has fd00:1::11/64, its connected prefix, and the IPv6
 * default route via a link-local router, as router advertisements leave it. */
static void host_node1_v6(struct host_snapshot *h)
{
        host_node1(h);
        addr_add(h, "eth0", "fd00:1::11/64");
        addr_add(h, "eth0", "fe80::11/64");
        route_add(h, "fd00:1::/64 dev eth0 proto kernel metric 256");
        route_add(h, "::/0 via fe80::1 dev eth0 proto ra metric 1024");
        link_of(h, "eth0")->proxy_ndp = 1; /* the proxy NDP tests start from 0 */
}

#define R6_LOCAL "blackhole fd00:10::/122 proto 211 metric 1024 table 252"
#define R6_40 "fd00:10::40/122 via fd00:1::12 dev eth0 proto 211 metric 1024 table 252"

/* IPv6 blocks follow the IPv4 rules (DESIGN §3 "IPv6"): a local route for this node's
 * block, none for its /128 block, `via <peer IPv6> dev uplink` for an on-link peer,
 * findings for a peer with no IPv6 address (IPv4 only) and an off-link one; the
 * overlay IPv6 pool is not routed. */
static void test_ipv6_pool(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             SIMPLE POOL("v6", "'fd00:10::/112'", UNDERLAY6)
                     POOL("v6-overlay", "'fd00:20::/64'", ", vxlanMode: Never, natOutgoing: true")
                     NODE6("node1", "192.168.10.11/24", "fd00:1::11/64", AZ1)
                     NODE6("node2", "192.168.10.12/24", "fd00:1::12/64", AZ1)
                     NODE("node3", "192.168.10.13/24", AZ1)
                     NODE6("node4", "192.168.10.14/24", "fd00:2::14/64", AZ1)
                     AFF("node1", "'fd00:10::/122'") AFF("node2", "'fd00:10::40/122'")
                     AFF("node3", "'fd00:10::80/122'") AFF("node4", "'fd00:10::c0/122'")
                     AFF("node1", "'fd00:10::1:5/128'") AFF("node2", "'fd00:20::/122'"));
        host_node1_v6(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144, "add-route " R_160,
                       "add-route " R6_LOCAL, "add-route " R6_40);
        /* fd00:10::/112 is not in eth0's fd00:1::/64: proxy NDP alone cannot help */
        EXPECT_FINDINGS(p, "warning pool-outside-uplink-subnet", "warning needs-upstream-routing",
                        "warning node-address-unknown");
        assert_contains(msg(p, "pool-outside-uplink-subnet", 0),
                        "proxy NDP alone will not make it reachable; the upstream router needs these routes: "
                        "fd00:10::/122 via fd00:1::11");
        assert_contains(msg(p, "needs-upstream-routing", 0), "node node4 (fd00:2::14): no direct route");
        assert_contains(msg(p, "needs-upstream-routing", 0), ": fd00:10::c0/122");
        /* node3 has an IPv4 address only */
        assert_contains(msg(p, "node-address-unknown", 0), "node node3: no known address");
        assert_contains(msg(p, "node-address-unknown", 0), "fd00:10::80/122");
        assert_int_equal(p->n_routes_wanted, 5);
        apply_and_replan(t);
}

/* CrossSubnet by the IPv6 subnet: node2 shares node1's IPv6 subnet (plain route),
 * node4 shares its IPv4 subnet but not its IPv6 one (encapsulated: upstream). */
static void test_ipv6_cross_subnet(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("v6", "'fd00:10::/112'", ", blockSize: 122, vxlanMode: CrossSubnet, natOutgoing: false")
                     NODE6("node1", "192.168.10.11/24", "fd00:1::11/64", AZ1)
                     NODE6("node2", "192.168.10.12/24", "fd00:1::12/64", AZ1)
                     NODE6("node4", "192.168.10.14/24", "fd00:2::14/64", AZ1)
                     AFF("node2", "'fd00:10::40/122'") AFF("node4", "'fd00:10::c0/122'"));
        host_node1_v6(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, "add-route " R6_40);
        EXPECT_FINDINGS(p, "warning pool-outside-uplink-subnet", "warning needs-upstream-routing");
        assert_contains(msg(p, "needs-upstream-routing", 0), "node node4 (fd00:2::14)");
        apply_and_replan(t);
}

/* Never a route over this node's, a peer's or the gateway's IPv6 address; a peer
 * whose IPv6 address is this node's own is no next hop. */
static void test_ipv6_guarded(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("v6", "'fd00:1::/120'", UNDERLAY6) NODE6("node1", "192.168.10.11/24", "fd00:1::11/64", AZ1)
                     NODE6("node2", "192.168.10.12/24", "fd00:1::11/64", AZ1)
                     NODE6("node3", "192.168.10.13/24", "fd00:1::4d/64", AZ1)
                     AFF("node1", "'fd00:1::/122'") AFF("node2", "'fd00:1::80/122'")
                     AFF("node3", "'fd00:1::c0/122'"));
        host_node1_v6(&t->h);
        route_add(&t->h, "::/0 via fd00:1::ff dev eth0 proto static metric 1");
        own_rules(t);
        p = plan(t);
        EXPECT_NO_ACTIONS(p);
        EXPECT_FINDINGS(p, "blocking route-covers-node-address", "blocking route-covers-node-address",
                        "warning peer-address-unusable");
        assert_string_equal(msg(p, "route-covers-node-address", 0),
                            "blackhole fd00:1::/122 (block of node1, this node) would cover fd00:1::11 (this node's "
                            "own address): not installed; fix the pool or the block");
        assert_contains(msg(p, "route-covers-node-address", 1), "would cover fd00:1::ff (this node's default gateway)");
        assert_string_equal(msg(p, "peer-address-unusable", 0),
                            "node node2: its address fd00:1::11 is this node's own address: no route via it (1 route "
                            "not installed)");
        /* node3's block holds node4's address: a peer's address under a route */
        load(t, NULL,
             POOL("v6", "'fd00:1::/120'", UNDERLAY6) NODE6("node1", "192.168.10.11/24", "fd00:1::11/64", AZ1)
                     NODE6("node3", "192.168.10.13/24", "fd00:1::4d/64", AZ1)
                     NODE6("node4", "192.168.10.14/24", "fd00:1::c1/64", AZ1) AFF("node3", "'fd00:1::c0/122'"));
        p = plan(t);
        EXPECT_NO_ACTIONS(p);
        EXPECT_FINDINGS(p, "blocking route-covers-node-address");
        assert_contains(msg(p, "route-covers-node-address", 0), "would cover fd00:1::c1 (node node4's address)");
}

/* Ownership, equivalence and conflicts as for IPv4: a foreign equivalent route stands
 * in for ours, a foreign different one is reported and left alone, our route with a
 * stale next hop is replaced; borrowed IPv6 addresses get /128 host routes. */
static void test_ipv6_ownership_and_borrowed(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("v6", "'fd00:10::/112'", UNDERLAY6) NODE6("node1", "192.168.10.11/24", "fd00:1::11/64", AZ1)
                     NODE6("node2", "192.168.10.12/24", "fd00:1::12/64", AZ1)
                     NODE6("node3", "192.168.10.13/24", "fd00:1::13/64", AZ1)
                     AFF("node1", "'fd00:10::/122'") AFF("node2", "'fd00:10::40/122'")
                     AFF("node3", "'fd00:10::80/122'") AFF("node2", "'fd00:10::100/122'")
                     IPAMBLOCK("fd00-10--0-122", "'fd00:10::/122'", "host:node1", "0, null, null, 1",
                               ATTR("node1") ", " ATTR("node3")));
        host_node1_v6(&t->h);
        route_add(&t->h, "fd00:10::40/122 via fd00:1::12 dev eth0 proto bird");
        route_add(&t->h, "fd00:10::80/122 via fd00:1::99 dev eth0 proto static metric 1024");
        route_add(&t->h, "fd00:10::100/122 via fd00:1::13 dev eth0 proto 211 metric 1024");
        p = plan(t);
        /* BIRD's route for node2's block is in main: ours stands by in our table. */
        EXPECT_ACTIONS(p, "add-route " R6_LOCAL,
                       "add-route fd00:10::3/128 via fd00:1::13 dev eth0 proto 211 metric 1024 table 252",
                       "add-route fd00:10::40/122 via fd00:1::12 dev eth0 proto 211 metric 1024 table 252",
                       "add-route fd00:10::80/122 via fd00:1::13 dev eth0 proto 211 metric 1024 table 252",
                       "add-route fd00:10::100/122 via fd00:1::12 dev eth0 proto 211 metric 1024 table 252 [replace]");
        /* (the bird-routes finding belongs to IPv4 underlay mode's host checks) */
        EXPECT_FINDINGS(p, "warning foreign-route-conflict", "warning pool-outside-uplink-subnet",
                        "info borrowed-addresses");
        assert_int_equal(p->n_routes_foreign, 1); /* BIRD's route for node2's block stands in */
        assert_contains(msg(p, "foreign-route-conflict", 0), "fd00:10::80/122: a route of protocol 4");
        assert_contains(msg(p, "borrowed-addresses", 0), "fd00:10::3 on node3");
        apply_and_replan(t);
}

/* The kernel reports IPv6 blackhole routes on lo: still equivalent to ours. */
/* Proxy NDP (DESIGN §3 "IPv6"): proxy_ndp on the uplink, recorded, one entry of ours
 * per local pod address (Felix's /128 routes to cali* devices, protocol boot or 80),
 * an address that already has someone else's entry left alone, our entry for a pod
 * that went away deleted; only addresses of underlay IPv6 pools. */
#define POD6 POOL("v6", "'fd00:10::/112'", UNDERLAY6) POOL("v6-nat", "'fd00:20::/112'", ", natOutgoing: true") \
        NODE6("node1", "192.168.10.11/24", "fd00:1::11/64", AZ1) AFF("node1", "'fd00:10::/122'")

static void pods6(struct host_snapshot *h)
{
        link_add(h, 10, "calia1", "veth", 1500);
        link_add(h, 11, "calib2", "veth", 1500);
        link_add(h, 12, "calic3", "veth", 1500);
        link_add(h, 13, "tap0", "", 1500);
        route_add(h, "fd00:10::5/128 dev calia1 proto boot metric 1024");
        route_add(h, "fd00:10::6/128 dev calib2 proto felix metric 1024");
        route_add(h, "fd00:10::7/128 dev calic3 proto boot metric 1024");
        route_add(h, "fd00:10::8/128 dev tap0 proto boot metric 1024"); /* not a workload */
        route_add(h, "fd00:20::5/128 dev calic3 proto boot metric 1024"); /* NAT pool */
        route_add(h, R6_LOCAL);
}

static void test_proxy_ndp(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, POD6);
        host_node1_v6(&t->h);
        pods6(&t->h);
        link_of(&t->h, "eth0")->proxy_ndp = 0;
        link_of(&t->h, "eth0")->proxy_delay6_ms = 800; /* the kernel's default */
        proxy_add_str(&t->h, "eth0", "fd00:10::7", 0);       /* someone else's, for a pod */
        proxy_add_str(&t->h, "eth0", "fd00:10::99", OWN);    /* ours, its pod is gone */
        proxy_add_str(&t->h, "eth0", "fd00:1::77", 0);       /* someone else's */
        p = plan(t);
        /* the delay (proxyDelay, default 0) before proxy NDP answers */
        EXPECT_ACTIONS(p, "set-proxy-delay6 eth0 0 ms", "set-proxy-ndp eth0 1",
                       "delete-proxy-neigh fd00:10::99 dev eth0", "add-proxy-neigh fd00:10::5 dev eth0 proto 211",
                       "add-proxy-neigh fd00:10::6 dev eth0 proto 211");
        assert_true(p->record.valid);
        assert_true(p->record.has_proxy_ndp);
        assert_int_equal(p->record.proxy_ndp, 0);
        assert_true(p->record.has_proxy_delay6);
        assert_int_equal(p->record.proxy_delay6_ms, 800);
        assert_true(p->record_first);
        assert_int_equal(p->n_proxies_wanted, 3);
        EXPECT_FINDINGS(p, "info proxy-neigh-foreign", "warning pool-outside-uplink-subnet");
        t->rec = p->record;
        apply_and_replan(t);
        /* the uplink went down and up: the kernel flushed every entry; ours come back */
        t->h.n_proxies = 0;
        p = plan(t);
        EXPECT_ACTIONS(p, "add-proxy-neigh fd00:10::5 dev eth0 proto 211", "add-proxy-neigh fd00:10::6 dev eth0 proto 211",
                       "add-proxy-neigh fd00:10::7 dev eth0 proto 211");
        /* IPv6 underlay mode ends: proxy_ndp put back, our entries deleted */
        apply_and_replan(t);
        load(t, NULL, POOL("v6", "'fd00:10::/112'", ", blockSize: 122, natOutgoing: true")
                              NODE6("node1", "192.168.10.11/24", "fd00:1::11/64", AZ1));
        p = plan(t);
        assert_false(p->underlay6);
        EXPECT_ACTIONS(p, "set-proxy-ndp eth0 0 (restore)", "set-proxy-delay6 eth0 800 ms (restore)",
                       "delete-proxy-neigh fd00:10::5 dev eth0", "delete-proxy-neigh fd00:10::6 dev eth0",
                       "delete-proxy-neigh fd00:10::7 dev eth0", "delete-route " R6_LOCAL);
        assert_false(p->record.has_proxy_ndp);
        assert_false(p->record.has_proxy_delay6);
}

static void cleanup_plan(struct t *t, const struct cfg_settings *s);

/* IPv6 forwarding off (globally, on the uplink): blocking in IPv6 underlay mode. */
static void test_ipv6_forwarding_off(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, POD6);
        host_node1_v6(&t->h);
        t->h.all_forwarding6 = 0;
        link_of(&t->h, "eth0")->forwarding6 = 0;
        p = plan(t);
        EXPECT_FINDINGS(p, "blocking forwarding6-off", "blocking forwarding6-off",
                        "warning pool-outside-uplink-subnet");
        assert_contains(msg(p, "forwarding6-off", 1), "proxy NDP only on a forwarding interface");
        t->h.all_forwarding6 = 1;
        link_of(&t->h, "eth0")->forwarding6 = 1;
        p = plan(t);
        EXPECT_FINDINGS(p, "warning pool-outside-uplink-subnet");
}

/* accept_ra=1 on the uplink: a forwarding interface ignores router advertisements (only
 * accept_ra=2 keeps them), a warning in IPv6 underlay mode, whether forwarding is on yet
 * or not; accept_ra=2 and 0 say nothing, nor does IPv4-only underlay. */
static void test_ipv6_accept_ra(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, POD6);
        host_node1_v6(&t->h);
        link_of(&t->h, "eth0")->accept_ra6 = 1;
        p = plan(t);
        EXPECT_FINDINGS(p, "warning accept-ra", "warning pool-outside-uplink-subnet");
        assert_contains(msg(p, "accept-ra", 0), "eth0 has accept_ra=1: with IPv6 forwarding on the kernel ignores them");
        assert_contains(msg(p, "accept-ra", 0), "net.ipv6.conf.eth0.accept_ra=2");
        link_of(&t->h, "eth0")->forwarding6 = 0;
        p = plan(t);
        EXPECT_FINDINGS(p, "blocking forwarding6-off", "warning accept-ra", "warning pool-outside-uplink-subnet");
        assert_contains(msg(p, "accept-ra", 0), "turning IPv6 forwarding on would make the kernel ignore them");
        link_of(&t->h, "eth0")->forwarding6 = 1;
        link_of(&t->h, "eth0")->accept_ra6 = 2;
        p = plan(t);
        EXPECT_FINDINGS(p, "warning pool-outside-uplink-subnet");
        link_of(&t->h, "eth0")->accept_ra6 = 1;
        load(t, NULL, POOL("v6", "'fd00:10::/112'", ", blockSize: 122, natOutgoing: true")
                              NODE6("node1", "192.168.10.11/24", "fd00:1::11/64", AZ1));
        p = plan(t);
        assert_false(p->underlay6);
        for (size_t i = 0; i < p->n_findings; i++)
                assert_string_not_equal(p->findings[i].code, "accept-ra");
}

/* vxlan-v6.calico goes when every applying IPv6 pool has vxlanMode Never, whatever the
 * IPv4 pools say; an IPv6 pool with VXLAN keeps it. */
static void test_vxlan_v6_removed(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, POD6 POOL("overlay", "10.233.64.0/18", ", vxlanMode: Always, natOutgoing: true"));
        host_node1_v6(&t->h);
        link_add(&t->h, 7, "vxlan-v6.calico", "vxlan", 1430);
        link_add(&t->h, 8, "vxlan.calico", "vxlan", 1450);
        p = plan(t);
        EXPECT_ACTIONS(p, "add-route " R6_LOCAL, "remove-tunnel vxlan-v6.calico (vxlan)");
        load(t, NULL, POD6 POOL("v6-vxlan", "'fd00:30::/112'", ", vxlanMode: Always, natOutgoing: true"));
        p = plan(t);
        EXPECT_ACTIONS(p, "add-route " R6_LOCAL);
}

/* FelixConfiguration vxlanEnabledV6: true keeps vxlan-v6.calico even when no IPv6 pool
 * uses VXLAN (a finding, no removal); false or unset leaves the rule as it is; the IPv4
 * vxlanEnabled says nothing about the IPv6 device. */
static void test_felix_keeps_vxlan_v6(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, POD6 FELIX("default", "vxlanEnabledV6: true"));
        host_node1_v6(&t->h);
        link_add(&t->h, 7, "vxlan-v6.calico", "vxlan", 1430);
        p = plan(t);
        EXPECT_ACTIONS(p, "add-route " R6_LOCAL);
        assert_string_equal(msg(p, "felix-keeps-tunnel", 0),
                            "FelixConfiguration sets vxlanEnabledV6: true, so Felix keeps vxlan-v6.calico; left alone");
        load(t, NULL, POD6 FELIX("default", "vxlanEnabledV6: true") FELIX("node.node1", "vxlanEnabledV6: false"));
        p = plan(t);
        EXPECT_ACTIONS(p, "add-route " R6_LOCAL, "remove-tunnel vxlan-v6.calico (vxlan)");
        load(t, NULL, POD6 FELIX("default", "vxlanEnabled: true"));
        p = plan(t);
        EXPECT_ACTIONS(p, "add-route " R6_LOCAL, "remove-tunnel vxlan-v6.calico (vxlan)");
}

/* --cleanup: proxy_ndp restored from the record, only our entries deleted. */
static void test_proxy_ndp_cleanup(void **state)
{
        struct t *t = *state;

        host_node1_v6(&t->h);
        pods6(&t->h);
        proxy_add_str(&t->h, "eth0", "fd00:10::5", OWN);
        proxy_add_str(&t->h, "eth0", "fd00:10::7", 0);
        t->rec = (struct host_record){ .valid = true, .ifname = "eth0", .proxy_arp = -1, .proxy_delay_ms = -1,
                                       .has_proxy_ndp = true, .proxy_ndp = 0 };
        assert_int_equal(cfg_settings_load_buffer(NULL, NULL, 0, "node1", &t->s, &t->d), 0);
        cleanup_plan(t, &t->s);
        EXPECT_ACTIONS(t->p, "set-proxy-ndp eth0 0 (restore)", "delete-proxy-neigh fd00:10::5 dev eth0",
                       "delete-route " R6_LOCAL);
        assert_false(t->p->record.valid);
}

static void test_ipv6_blackhole_on_lo_converged(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("v6", "'fd00:10::/112'", UNDERLAY6) NODE6("node1", "192.168.10.11/24", "fd00:1::11/64", AZ1)
                     AFF("node1", "'fd00:10::/122'"));
        host_node1_v6(&t->h);
        route_add(&t->h, "blackhole fd00:10::/122 dev lo proto 211 metric 1024");
        own_rules(t);
        p = plan(t);
        EXPECT_NO_ACTIONS(p);
}

/* A VXLAN device carrying someone else's address: deleting it would take that address
 * with it, so it is left alone and reported (DESIGN §3: foreign addresses are never
 * touched). */
static void test_vxlan_foreign_addr_left_alone(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, POOL("underlay", "192.168.10.128/25", UNDERLAY) NODE("node1", "192.168.10.11/24", AZ1));
        host_node1(&t->h);
        link_add(&t->h, 5, "vxlan.calico", "vxlan", 1450);
        addr_add(&t->h, "vxlan.calico", "192.168.10.130/32");
        addr_add(&t->h, "vxlan.calico", "172.31.0.1/30");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY);
        EXPECT_FINDINGS(p, "warning tunnel-foreign-addresses");
        assert_string_equal(msg(p, "tunnel-foreign-addresses", 0),
                            "vxlan.calico carries addresses that are not Calico's (first: 172.31.0.1/30): device "
                            "left alone");
}

/* An IPv6-only underlay pool does not turn on IPv4 proxy ARP; its local block gets
 * its blackhole. */
static void test_ipv6_only_underlay_no_proxy_arp(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, POOL("v6", "'fd00:10::/64'", ", natOutgoing: false") NODE("node1", "192.168.10.11/24", AZ1)
                              AFF("node1", "'fd00:10::/122'"));
        host_node1(&t->h);
        p = plan(t);
        assert_false(p->underlay);
        assert_true(p->underlay6);
        EXPECT_ACTIONS(p, "set-proxy-ndp eth0 1", "add-route " R6_LOCAL);
        EXPECT_FINDINGS(p, "warning pool-outside-uplink-subnet");
        /* no IPv6 address on the uplink, none in the resources: no route to print */
        assert_contains(msg(p, "pool-outside-uplink-subnet", 0),
                        "a route per block of this node (this node's address is unknown)");
}

/* All findings at once, in their documented order; n_blocking counts the blocking ones. */
static void test_findings_order(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             DC1 NODE("node5", "192.168.11.15/24", AZ1) AFF("node5", "192.168.10.160/28")
                     NODE_NOADDR("node6", AZ1) AFF("node6", "192.168.10.176/28"));
        host_node1(&t->h);
        add_tunl0(&t->h, "10.233.90.0/32");
        t->h.all_forwarding = 0;
        link_of(&t->h, "eth0")->rp_filter = 1;
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.99 dev eth0 proto bird");
        p = plan(t);
        EXPECT_FINDINGS(p, "warning foreign-route-conflict", "blocking forwarding-off", "warning rp-filter-strict",
                        "info pool-not-applying", UPSTREAM2, "warning needs-upstream-routing",
                        "warning node-address-unknown");
        assert_int_equal(p->n_blocking, 1);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_144);
}

/* ---- --cleanup ---- */

static void cleanup_plan(struct t *t, const struct cfg_settings *s)
{
        struct plan *p = NULL;

        plan_free(t->p);
        t->p = NULL;
        assert_int_equal(plan_cleanup(s, &t->h, &t->rec, &p), 0);
        t->p = p;
        check_invariants(s, &t->h, p, &t->rec);
}

/* Every route of ours, in every table and family, goes; the record is restored and
 * cleared; nothing foreign is touched. */
static void test_cleanup(void **state)
{
        struct t *t = *state;
        const struct cfg_settings *s = &t->s;

        assert_int_equal(cfg_settings_load_buffer(NULL, NULL, 0, "node1", &t->s, &t->d), 0);
        host_node1(&t->h);
        add_tunl0(&t->h, "10.233.90.0/32");
        link_of(&t->h, "eth0")->proxy_arp = 1;
        link_of(&t->h, "eth0")->proxy_delay_ms = 0;
        route_add(&t->h, R_LOCAL);
        route_add(&t->h, "192.168.10.144/28 via 192.168.10.12 dev eth0 proto bird");
        route_add(&t->h, R_144);
        route_add(&t->h, "192.168.10.160/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 100");
        route_add(&t->h, "blackhole fd00:10::/122 proto 211 metric 1024");
        route_add(&t->h, "10.233.96.0/26 via 192.168.10.12 dev tunl0 proto bird scope link");
        route_add(&t->h, "192.168.10.176/28 via 192.168.10.12 dev eth0 proto 212 metric 1024");
        set_record(t, "eth0", 0, 800);
        cleanup_plan(t, s);
        EXPECT_ACTIONS(t->p, "set-proxy-arp eth0 0 (restore)", "set-proxy-delay eth0 800 ms (restore)",
                       "delete-route " R_LOCAL, "delete-route " R_144,
                       "delete-route 192.168.10.160/28 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 100",
                       "delete-route blackhole fd00:10::/122 proto 211 metric 1024 table 252");
        EXPECT_NO_FINDINGS(t->p);
        assert_false(t->p->record.valid);
        assert_false(t->p->record_first);
        assert_false(t->p->underlay);

        /* Applied: a second --cleanup has nothing left to do. */
        for (size_t i = 0; i < t->p->n_actions; i++)
                apply_action(&t->h, &t->p->actions[i]);
        check_route_keys(&t->h);
        t->rec = (struct host_record)HOST_RECORD_INIT;
        cleanup_plan(t, s);
        EXPECT_NO_ACTIONS(t->p);
        assert_int_equal(t->h.n_routes, 5); /* default, connected, bird ×2, proto 212 */
        assert_int_equal(link_of(&t->h, "eth0")->proxy_arp, 0);
}

/* --cleanup: our rules go first (pool traffic back to main at once), then our routes;
 * an identical rule of someone else's stays. */
static void test_cleanup_rules(void **state)
{
        struct t *t = *state;

        assert_int_equal(cfg_settings_load_buffer(NULL, NULL, 0, "node1", &t->s, &t->d), 0);
        host_node1(&t->h);
        route_add(&t->h, R_144);
        rule_push(t, "192.168.10.128/25", 32700, 254, 27, OWN);
        rule_push(t, "192.168.10.128/25", 32701, 252, -1, OWN);
        rule_push(t, "192.168.10.128/25", 32701, 252, -1, 3);
        cleanup_plan(t, &t->s);
        EXPECT_ALL_ACTIONS(t->p,
                           "delete-rule to 192.168.10.128/25 lookup main suppress_prefixlength 27 pref 32700 proto 211",
                           "delete-rule to 192.168.10.128/25 lookup 252 pref 32701 proto 211", "delete-route " R_144);
        for (size_t i = 0; i < t->p->n_actions; i++)
                apply_action(&t->h, &t->p->actions[i]);
        assert_int_equal(t->h.n_rules, 1);
        assert_int_equal(t->h.rules[0].protocol, 3);
        cleanup_plan(t, &t->s);
        EXPECT_NO_ACTIONS(t->p);
}

/* --cleanup with another routeProtocol: only routes of that number are ours. */
static void test_cleanup_route_protocol(void **state)
{
        struct t *t = *state;
        const struct cfg_settings *s = &t->s;
        const char *yaml = "routeProtocol: 201\n";

        assert_int_equal(cfg_settings_load_buffer("config.yaml", yaml, strlen(yaml), "node1", &t->s, &t->d), 0);
        host_node1(&t->h);
        route_add(&t->h, R_144);
        route_add(&t->h, "192.168.10.160/28 via 192.168.10.12 dev eth0 proto 201 metric 1024 table 7");
        cleanup_plan(t, s);
        EXPECT_ACTIONS(t->p, "delete-route 192.168.10.160/28 via 192.168.10.12 dev eth0 proto 201 metric 1024 table 7");
        assert_false(t->p->record.valid);
}

/* ---- scale ---- */

#define SCALE_NODES 2000
#define SCALE_BLOCKS 20000

static void append(struct t *t, size_t *len, size_t *cap, const char *fmt, ...)
{
        va_list ap;
        int n;

        for (;;) {
                va_start(ap, fmt);
                n = vsnprintf(t->buf + *len, *cap - *len, fmt, ap);
                va_end(ap);
                assert_true(n >= 0);
                if ((size_t)n < *cap - *len)
                        break;
                *cap = *cap * 2 + (size_t)n;
                t->buf = realloc(t->buf, *cap);
                assert_non_null(t->buf);
        }
        *len += (size_t)n;
}

/* 20,000 /28 blocks on 2,000 nodes of one /16 segment: one route per block (10 local
 * blackholes, 19,990 via peers), and once applied, nothing. Not timed: the merge walk
 * is O(n log n), a quadratic regression would show as a slow test. */
static void test_scale(void **state)
{
        struct t *t = *state;
        size_t len = 0, cap = 1 << 20, adds = 0, blackholes = 0, dels = 0, replaces = 0;
        struct timespec a, b;
        struct plan *p;

        t->buf = malloc(cap);
        assert_non_null(t->buf);
        append(t, &len, &cap, POOL("big", "10.0.0.0/12", UNDERLAY) DOC "apiVersion: v1\nkind: List\nitems:\n");
        for (unsigned i = 0; i < SCALE_NODES; i++)
                append(t, &len, &cap,
                       "- {apiVersion: projectcalico.org/v3, kind: Node, metadata: {name: n%04u}, "
                       "spec: {bgp: {ipv4Address: 172.16.%u.%u/16}}}\n",
                       i, (i + 1) / 256, (i + 1) % 256);
        for (unsigned k = 0; k < SCALE_BLOCKS; k++) {
                uint32_t net = (10u << 24) + 16u * k;

                append(t, &len, &cap,
                       "- {apiVersion: crd.projectcalico.org/v1, kind: IPAMBlock, "
                       "spec: {cidr: %u.%u.%u.%u/28, affinity: 'host:n%04u'}}\n",
                       net >> 24, (net >> 16) & 255, (net >> 8) & 255, net & 255, k % SCALE_NODES);
        }
        load(t, "nodeName: n0000\nuplink: eth0\n", t->buf);
        assert_int_equal(t->m->n_blocks, SCALE_BLOCKS);
        assert_int_equal(t->m->n_nodes, SCALE_NODES);
        link_add(&t->h, 2, "eth0", "", 1500);
        addr_add(&t->h, "eth0", "172.16.0.1/16");
        link_of(&t->h, "eth0")->proxy_delay_ms = 0;
        t->h.all_forwarding = 1;

        clock_gettime(CLOCK_MONOTONIC, &a);
        p = plan(t);
        clock_gettime(CLOCK_MONOTONIC, &b);
        print_message("planned %zu actions for %d blocks in %.3f s\n", p->n_actions, SCALE_BLOCKS,
                      (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
        for (size_t i = 0; i < p->n_actions; i++)
                if (p->actions[i].kind == CHANGE_ADD_ROUTE) {
                        adds++;
                        blackholes += p->actions[i].route.type == HOST_RTN_BLACKHOLE;
                }
        assert_int_equal(p->n_actions, SCALE_BLOCKS + 3); /* proxy_arp, two rules, the routes */
        assert_string_equal(p->actions[0].dev, "eth0");
        assert_int_equal(p->actions[0].kind, CHANGE_SET_PROXY_ARP);
        assert_int_equal(p->actions[1].kind, CHANGE_ADD_RULE);
        assert_int_equal(p->actions[2].kind, CHANGE_ADD_RULE);
        assert_int_equal(adds, SCALE_BLOCKS);
        assert_int_equal(blackholes, SCALE_BLOCKS / SCALE_NODES);
        assert_int_equal(p->n_routes_wanted, SCALE_BLOCKS);
        /* 10.0.0.0/12 is not in eth0's 172.16.0.0/16: the router needs our 10 blocks
         * (the first 8 are named). */
        EXPECT_FINDINGS(p, "warning pool-outside-uplink-subnet");
        assert_contains(msg(p, "pool-outside-uplink-subnet", 0),
                        "these routes: 10.0.0.0/28 via 172.16.0.1, 10.0.125.0/28 via 172.16.0.1, ");
        assert_contains(msg(p, "pool-outside-uplink-subnet", 0), "10.3.107.0/28 via 172.16.0.1 ...");
        apply_and_replan(t);
        assert_int_equal(t->h.n_routes, SCALE_BLOCKS);

        /* Drift: every 10th route of ours gone, every 7th pointing elsewhere. */
        for (size_t k = 0; k < t->h.n_routes; k++)
                if (k % 7 == 0 && t->h.routes[k].type == HOST_RTN_UNICAST)
                        t->h.routes[k].gateway.addr[3] ^= 0x80;
        {
                size_t kept = 0;

                for (size_t k = 0; k < t->h.n_routes; k++)
                        if (k % 10 != 0)
                                t->h.routes[kept++] = t->h.routes[k];
                t->h.n_routes = kept;
        }
        p = plan(t);
        adds = replaces = 0;
        for (size_t i = 0; i < p->n_actions; i++) {
                adds += p->actions[i].kind == CHANGE_ADD_ROUTE && !p->actions[i].replace;
                replaces += p->actions[i].kind == CHANGE_ADD_ROUTE && p->actions[i].replace;
                dels += p->actions[i].kind == CHANGE_DEL_ROUTE;
        }
        assert_int_equal(adds, SCALE_BLOCKS / 10);
        assert_int_equal(dels, 0);
        assert_true(replaces > 0);
        apply_and_replan(t);
}

/* The route line is built by hand: exact text for each shape, and snprintf()'s
 * contract (terminated, cut, the full length returned) for every buffer size. */
static void test_action_fmt(void **state)
{
        struct host_change a = { .kind = CHANGE_ADD_ROUTE, .dev = "eth0", .pool = UINT32_MAX,
                                 .route = { .table = 254, .priority = 1024, .protocol = 211,
                                            .type = HOST_RTN_UNICAST } };
        char full[256], cut[256];
        int n;

        (void)state;
        assert_true(cfg_prefix_parse("10.244.255.192/26", false, &a.route.dst) >= 0);
        assert_true(cfg_prefix_parse("192.168.100.7", false, &a.route.gateway) >= 0);
        n = host_change_fmt(&a, full, sizeof(full));
        assert_string_equal(full, "add-route 10.244.255.192/26 via 192.168.100.7 dev eth0 proto 211 metric 1024 "
                                  "table 254");
        assert_int_equal(n, (int)strlen(full));
        for (size_t size = 0; size <= (size_t)n + 1; size++) {
                memset(cut, 'x', sizeof(cut));
                assert_int_equal(host_change_fmt(&a, cut, size), n);
                if (size)
                        assert_int_equal(strlen(cut), size - 1 < (size_t)n ? size - 1 : (size_t)n);
                assert_int_equal(memcmp(cut, full, size ? strlen(cut) : 0), 0);
                assert_int_equal(cut[size], 'x'); /* nothing written past size */
        }
        a.kind = CHANGE_DEL_ROUTE;
        a.route.type = HOST_RTN_BLACKHOLE;
        a.route.table = 4294967295u;
        a.route.priority = 0;
        a.route.protocol = 0;
        host_change_fmt(&a, full, sizeof(full));
        assert_string_equal(full, "delete-route blackhole 10.244.255.192/26 proto 0 metric 0 table 4294967295");
        a.route.type = HOST_RTN_UNICAST;
        a.route.gateway = (struct cfg_prefix){};
        a.dev[0] = '\0';
        host_change_fmt(&a, full, sizeof(full));
        assert_string_equal(full, "delete-route 10.244.255.192/26 proto 0 metric 0 table 4294967295");
        assert_true(cfg_prefix_parse("fd00:10:244::/122", false, &a.route.dst) >= 0);
        assert_true(cfg_prefix_parse("fd00::2", false, &a.route.gateway) >= 0);
        memcpy(a.dev, "bond0.123456789", 16); /* 15 bytes and its NUL: IFNAMSIZ */
        host_change_fmt(&a, full, sizeof(full));
        assert_string_equal(full, "delete-route fd00:10:244::/122 via fd00::2 dev bond0.123456789 proto 0 metric 0 "
                                  "table 4294967295");
}

/* ================= issue 12: Calico's data as Calico means it ================= */

static bool contains(const char *hay, const char *needle)
{
        return hay && strstr(hay, needle);
}

/* node1's block 192.168.10.128/28: .128 its own pod, .131 borrowed by node2, .133 by
 * node3 (Calico's default strictAffinity: false). */
#define BORROWED                                                                                             \
        POOL("underlay", "192.168.10.128/25", UNDERLAY)                                                      \
        NODE("node1", "192.168.10.11/24", AZ1) NODE("node2", "192.168.10.12/24", AZ1)                        \
        NODE("node3", "192.168.10.13/24", AZ1)                                                               \
        AFF("node1", "192.168.10.128/28") AFF("node2", "192.168.10.144/28")                                  \
        IPAMBLOCK("192-168-10-128-28", "192.168.10.128/28", "host:node1", "0, null, null, 1, null, 2",      \
                  ATTR("node1") ", " ATTR("node2") ", " ATTR("node3"))
#define R_131 "192.168.10.131/32 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 252"
#define R_133 "192.168.10.133/32 via 192.168.10.13 dev eth0 proto 211 metric 1024 table 252"

/* On the affine node the host routes beat the block's blackhole (longer prefix). */
static void test_borrowed_on_affine_node(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL, BORROWED);
        host_node1(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL, "add-route " R_131, "add-route " R_133,
                       "add-route " R_144);
        EXPECT_FINDINGS(p, "info borrowed-addresses");
        assert_string_equal(msg(p, "borrowed-addresses", 0),
                            "2 borrowed addresses in underlay pools, hosted by another node than their block's "
                            "(each gets a host route to its host): 192.168.10.131 on node2, 192.168.10.133 on node3");
        assert_int_equal(p->n_routes_wanted, 4);
        assert_int_equal(p->n_borrowed, 2); /* for the metrics */
        assert_int_equal(p->n_borrowed_upstream, 0);
        apply_and_replan(t);
}

/* On the hosting node: no route for its own borrowed address (Felix routes its pod);
 * the other borrowed address and the block itself via their nodes. */
static void test_borrowed_on_hosting_node(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, "nodeName: node2\n", BORROWED);
        host_node1(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route 192.168.10.128/28 via 192.168.10.11 dev eth0 proto 211 metric 1024 table 252",
                       "add-route " R_133, "add-route blackhole 192.168.10.144/28 proto 211 metric 1024 table 252");
        EXPECT_FINDINGS(p, "info borrowed-addresses");
        apply_and_replan(t);
        /* The borrowed address is released: our host route goes. */
        load(t, "nodeName: node2\n",
             POOL("underlay", "192.168.10.128/25", UNDERLAY) NODE("node1", "192.168.10.11/24", AZ1)
                     NODE("node2", "192.168.10.12/24", AZ1) AFF("node1", "192.168.10.128/28")
                             AFF("node2", "192.168.10.144/28"));
        p = plan(t);
        EXPECT_ACTIONS(p, "delete-route " R_133);
}

/* A host that is not on-link, or an encapsulated path: a finding, as for blocks. */
static void test_borrowed_needs_upstream(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("underlay", "192.168.10.128/25", UNDERLAY) NODE("node1", "192.168.10.11/24", AZ1)
                     NODE("node5", "192.168.30.5/24", AZ1) NODE_NOADDR("node6", AZ1)
                             IPAMBLOCK("b", "192.168.10.128/28", "host:node1", "0, 1, 2",
                                       ATTR("node1") ", " ATTR("node5") ", " ATTR("node6")));
        host_node1(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL);
        EXPECT_FINDINGS(p, "info borrowed-addresses", "warning needs-upstream-routing", "warning node-address-unknown");
        assert_string_equal(msg(p, "needs-upstream-routing", 0),
                            "1 borrowed address have no direct route to their host (not on-link, or encapsulated): "
                            "they need upstream routing (the switch or BGP): 192.168.10.129 on node5");
        assert_int_equal(p->n_borrowed, 2); /* node5's and node6's (metrics) */
        assert_int_equal(p->n_borrowed_upstream, 1);
}

/* A /32 block gets no local route (BIRD's bird_aggr.cfg.template skips /32s). */
static void test_block_32_no_local_route(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("underlay", "192.168.10.128/25", ", blockSize: 32, natOutgoing: false")
                     NODE("node1", "192.168.10.11/24", AZ1) NODE("node2", "192.168.10.12/24", AZ1)
                             AFF("node1", "192.168.10.130/32") AFF("node2", "192.168.10.131/32"));
        host_node1(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY,
                       "add-route 192.168.10.131/32 via 192.168.10.12 dev eth0 proto 211 metric 1024 table 252");
        EXPECT_NO_FINDINGS(p);
}

/* A pool equal to the node's subnet: a block over the node's own address, its
 * gateway or a peer's address is never installed (one already there is removed), and
 * --check blocks with the addresses. A peer whose address lies in a block is no next
 * hop either. */
static void test_route_covers_node_address(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("lan", "192.168.10.0/24", ", blockSize: 26, natOutgoing: false")
                     NODE("node1", "192.168.10.11/24", AZ1) NODE("node2", "192.168.10.200/24", AZ1)
                             AFF("node1", "192.168.10.0/26") AFF("node2", "192.168.10.192/26")
                                     AFF("node3", "192.168.10.64/26"));
        host_node1(&t->h);
        route_add(&t->h, "blackhole 192.168.10.0/26 proto 211 metric 1024");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "delete-route blackhole 192.168.10.0/26 proto 211 metric 1024 table 252");
        EXPECT_FINDINGS(p, "blocking route-covers-node-address", "warning peer-address-unusable",
                        "warning node-address-unknown");
        assert_string_equal(msg(p, "route-covers-node-address", 0),
                            "blackhole 192.168.10.0/26 (block of node1, this node) would cover 192.168.10.1 (this "
                            "node's default gateway): not installed; fix the pool or the block");
        assert_string_equal(msg(p, "peer-address-unusable", 0),
                            "node node2: its address 192.168.10.200 lies inside a pool block (pod addresses): no "
                            "route via it (1 route not installed)");
        assert_int_equal(p->n_blocking, 1);
}

/* A peer's address that is the subnet's network or broadcast address. */
static void test_peer_address_network_broadcast(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("underlay", "192.168.10.128/25", UNDERLAY) NODE("node1", "192.168.10.11/24", AZ1)
                     NODE("node2", "192.168.10.0/24", AZ1) NODE("node3", "192.168.10.255/24", AZ1)
                             AFF("node1", "192.168.10.128/28") AFF("node2", "192.168.10.144/28")
                                     AFF("node3", "192.168.10.160/28"));
        host_node1(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_LOCAL);
        EXPECT_FINDINGS(p, "warning peer-address-unusable", "warning peer-address-unusable");
        assert_true(contains(msg(p, "peer-address-unusable", 0), "192.168.10.0 is the network address"));
        assert_true(contains(msg(p, "peer-address-unusable", 1), "192.168.10.255 is the broadcast address"));
}

/* allowedUses without Workload: no pod blocks, set aside (no routes, no proxy ARP). */
static void test_pool_set_aside(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("tunnels", "192.168.10.128/25", UNDERLAY ", allowedUses: [Tunnel]")
                     NODE("node1", "192.168.10.11/24", AZ1) NODE("node2", "192.168.10.12/24", AZ1)
                             AFF("node1", "192.168.10.128/28") AFF("node2", "192.168.10.144/28"));
        host_node1(&t->h);
        p = plan(t);
        EXPECT_NO_ACTIONS(p);
        EXPECT_FINDINGS(p, "info pool-set-aside");
        assert_false(p->underlay);
        assert_string_equal(msg(p, "pool-set-aside", 0),
                            "pool tunnels (192.168.10.128/25) does not allow Workload (allowedUses): it holds no "
                            "pod blocks, set aside (no routes, no proxy ARP for it)");
}

/* Old and new pool fields that disagree (IPPoolv1v3Converter): read as the converter
 * does (IPIP on, NAT on: an overlay pool), with a warning. */
static void test_legacy_fields_warning(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("patched", "192.168.10.128/25",
                  ", blockSize: 28, ipipMode: Never, natOutgoing: false, ipip: {enabled: true}, nat-outgoing: true")
                     NODE("node1", "192.168.10.11/24", AZ1) AFF("node1", "192.168.10.128/28"));
        host_node1(&t->h);
        p = plan(t);
        EXPECT_NO_ACTIONS(p);
        EXPECT_FINDINGS(p, "warning pool-legacy-fields");
        assert_string_equal(msg(p, "pool-legacy-fields", 0),
                            "pool patched: the old fields ipip and nat-outgoing disagree with ipipMode and "
                            "natOutgoing; read as Calico v3.7-v3.31 converts them (ipipMode Always, natOutgoing "
                            "true), Calico v3.32 and later ignore the old fields: remove them");
}

/* kubeadm's podCIDRs with no Calico IPAM data at all: nothing routed, and --check says
 * why. */
static void test_pod_cidrs_ignored(void **state)
{
        struct t *t = *state;
        struct plan *p;

        load(t, NULL,
             POOL("underlay", "192.168.10.128/25", UNDERLAY) NODE("node1", "192.168.10.11/24", AZ1)
                     DOC "apiVersion: v1\nkind: Node\nmetadata: {name: node2}\nspec: {podCIDR: 192.168.10.144/28}\n");
        host_node1(&t->h);
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY);
        EXPECT_FINDINGS(p, "warning pod-cidrs-ignored");
        assert_true(contains(msg(p, "pod-cidrs-ignored", 0), "1 Kubernetes podCIDR ignored"));
        load(t, "usePodCIDR: true\n",
             POOL("underlay", "192.168.10.128/25", UNDERLAY) NODE("node1", "192.168.10.11/24", AZ1)
                     DOC "apiVersion: v1\nkind: Node\nmetadata: {name: node2, annotations: "
                         "{projectcalico.org/IPv4Address: 192.168.10.12/24}}\nspec: {podCIDR: 192.168.10.144/28}\n");
        p = plan(t);
        EXPECT_ACTIONS(p, SIMPLE_PROXY, "add-route " R_144);
        EXPECT_NO_FINDINGS(p);
}

/* ---- delta passes (issue 16): random models, random block-level changes ----
 *
 * A full pass with its context, then changes of blocks, borrowed addresses and node
 * addresses one after another. Each change is planned by plan_delta() for the prefixes
 * it touched (as a source computes them: the blocks and borrowed addresses that
 * differ, and every prefix of a node whose address changed); its route changes are
 * applied to the snapshot, and a full plan of the new model against the result must
 * find nothing left to do and the same counts. A delta that says it cannot tell is
 * answered by a full pass, as the daemon does. */

#define PT_NODES 8
#define PT_SLOTS 48
#define PT_SLOTS6 8 /* p6 fd00:10::/119: eight /122 blocks */

struct pt_world {
        int addr[PT_NODES];           /* index into pt_addrs; node1 keeps its own */
        int block[PT_SLOTS];          /* the affine node, -1 = no block */
        int borrow[PT_SLOTS][3];      /* hosts of ordinals 1-3, -1 = free */
        int block6[PT_SLOTS6];        /* IPv6 blocks: the affine node, -1 = no block */
};

/* Candidate node addresses: on-link, off-link, this node's own, the subnet's broadcast,
 * inside a block of p4 (a next hop in pod space), none. */
static const char *const pt_addrs[] = {
        "192.168.10.11/24", "192.168.10.12/24", "192.168.10.13/24", "192.168.10.14/24", "192.168.10.15/24",
        "192.168.10.16/24", "192.168.20.5/24",  "192.168.20.6/24",  "192.168.10.255/24", "192.168.10.200/24",
        NULL,
};

/* Each node's IPv6 address follows its IPv4 one (pt_addrs): on-link, off-link, this
 * node's own, inside a block of p6 (pod space), none. */
static const char *pt_addr6(int i)
{
        static const char *const v[] = { "fd00:1::11/64", "fd00:1::12/64", "fd00:1::13/64", "fd00:1::14/64",
                                         "fd00:1::15/64", "fd00:1::16/64", "fd00:2::5/64",  "fd00:2::6/64",
                                         "fd00:1::ff/64", "fd00:10::45/64" };

        return i >= 0 && i < (int)(sizeof(v) / sizeof(*v)) ? v[i] : NULL;
}

static uint64_t pt_rand_state;

static unsigned pt_rand(unsigned n)
{
        pt_rand_state ^= pt_rand_state << 13;
        pt_rand_state ^= pt_rand_state >> 7;
        pt_rand_state ^= pt_rand_state << 17;
        return (unsigned)(pt_rand_state % n);
}

/* Slots 0-31: p1 10.0.0.0/23, underlay; 32-39: p2 10.1.0.0/25, IPIP CrossSubnet;
 * 40-43: p3 10.2.0.0/26, natOutgoing (not routed); 44-47: p4 192.168.10.192/26 in the
 * uplink's subnet, underlay for rack r9 only (a block of node1 there makes it apply: a
 * full pass; a node address there is a next hop in pod space). */
static void pt_slot_cidr(int k, char *buf, size_t size)
{
        if (k < 32)
                snprintf(buf, size, "10.0.%d.%d/28", k / 16, k % 16 * 16);
        else if (k < 40)
                snprintf(buf, size, "10.1.0.%d/28", (k - 32) * 16);
        else if (k < 44)
                snprintf(buf, size, "10.2.0.%d/28", (k - 40) * 16);
        else
                snprintf(buf, size, "192.168.10.%d/28", 192 + (k - 44) * 16);
}

static int pt_random_addr(void)
{
        unsigned r = pt_rand(20);

        if (r < 10)
                return 1 + (int)pt_rand(5); /* on-link */
        if (r < 13)
                return 6 + (int)pt_rand(2); /* off-link */
        if (r < 15)
                return -1;
        return r == 15 ? 0 : r == 16 ? 8 : 9;
}

static void pt_random_borrow(struct pt_world *w, int k)
{
        for (int i = 0; i < 3; i++)
                w->borrow[k][i] = pt_rand(4) ? -1 : (int)pt_rand(PT_NODES);
}

static void pt_random_world(struct pt_world *w)
{
        w->addr[0] = 0;
        for (int i = 1; i < PT_NODES; i++)
                w->addr[i] = 1 + (int)pt_rand(5);
        for (int k = 0; k < PT_SLOTS; k++) {
                w->block[k] = pt_rand(3) ? (int)pt_rand(PT_NODES) : -1;
                pt_random_borrow(w, k);
        }
        for (int k = 0; k < PT_SLOTS6; k++)
                w->block6[k] = pt_rand(3) ? (int)pt_rand(PT_NODES) : -1;
}

/* One to three block-level changes. */
static void pt_mutate(struct pt_world *w)
{
        for (unsigned n = 1 + pt_rand(3); n; n--) {
                int k = (int)pt_rand(PT_SLOTS);

                switch (pt_rand(7)) {
                case 5: /* an IPv6 block claimed, moved or released */
                        w->block6[pt_rand(PT_SLOTS6)] = pt_rand(4) ? (int)pt_rand(PT_NODES) : -1;
                        break;
                case 0: /* a block claimed or moved */
                case 1:
                        w->block[k] = (int)pt_rand(PT_NODES);
                        break;
                case 2: /* released */
                        w->block[k] = -1;
                        break;
                case 3: /* addresses borrowed or given back */
                        pt_random_borrow(w, k);
                        break;
                case 4: /* a node's address changed (not this node's) */
                        w->addr[1 + pt_rand(PT_NODES - 1)] = pt_random_addr();
                        break;
                default: /* several blocks at once */
                        for (int i = 0; i < 4; i++)
                                w->block[pt_rand(PT_SLOTS)] = pt_rand(2) ? (int)pt_rand(PT_NODES) : -1;
                        break;
                }
        }
}

static char *pt_yaml(const struct pt_world *w)
{
        char *buf = NULL, cidr[CFG_PREFIX_STRLEN];
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        assert_non_null(f);
        fputs(POOL("p1", "10.0.0.0/23", UNDERLAY) POOL("p2", "10.1.0.0/25",
                                                       ", blockSize: 28, ipipMode: CrossSubnet, natOutgoing: false")
                      POOL("p3", "10.2.0.0/26", ", blockSize: 28, ipipMode: Always, natOutgoing: true")
                              POOL("p4", "192.168.10.192/26", UNDERLAY ", nodeSelector: 'rack == \"r9\"'")
                                      POOL("p6", "fd00:10::/119", UNDERLAY6),
              f);
        for (int i = 0; i < PT_NODES; i++) {
                if (w->addr[i] < 0 || !pt_addrs[w->addr[i]])
                        fprintf(f, DOC "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node%d, labels: "
                                       "{rack: r1}}\n",
                                i + 1);
                else
                        fprintf(f, DOC "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node%d, labels: "
                                       "{rack: r1}}\nspec: {bgp: {ipv4Address: %s, ipv6Address: '%s'}}\n",
                                i + 1, pt_addrs[w->addr[i]], pt_addr6(w->addr[i]));
        }
        for (int k = 0; k < PT_SLOTS6; k++)
                if (w->block6[k] >= 0)
                        fprintf(f, DOC "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: "
                                       "v6-%d}\nspec: {node: node%d, cidr: 'fd00:10::%x/122', state: confirmed, "
                                       "deleted: 'false'}\n",
                                k, w->block6[k] + 1, k * 64);
        for (int k = 0; k < PT_SLOTS; k++) {
                if (w->block[k] < 0)
                        continue;
                pt_slot_cidr(k, cidr, sizeof(cidr));
                fprintf(f,
                        DOC "apiVersion: crd.projectcalico.org/v1\nkind: IPAMBlock\nmetadata: {name: b%d}\n"
                            "spec: {cidr: %s, affinity: 'host:node%d', strictAffinity: false, deleted: false,\n"
                            "  allocations: [0",
                        k, cidr, w->block[k] + 1);
                for (int i = 0; i < 3; i++)
                        if (w->borrow[k][i] < 0)
                                fputs(", null", f);
                        else
                                fprintf(f, ", %d", i + 1);
                fprintf(f, "],\n  attributes: [{handle_id: a, secondary: {namespace: default, node: node%d}}",
                        w->block[k] + 1);
                for (int i = 0; i < 3; i++)
                        fprintf(f, ", {handle_id: h%d, secondary: {namespace: default, node: node%d}}", i,
                                (w->borrow[k][i] < 0 ? 0 : w->borrow[k][i]) + 1);
                fputs("]}\n", f);
        }
        assert_int_equal(fclose(f), 0);
        return buf;
}

static struct cfg_model *pt_model(const struct pt_world *w)
{
        _cleanup_(freep) char *yaml = pt_yaml(w);
        const char *names[] = { "resources.yaml" }, *bufs[] = { yaml };
        size_t sizes[] = { strlen(yaml) };
        struct cfg_settings s = {};
        struct cfg_diags d = {};
        struct cfg_model *m = NULL;

        assert_int_equal(cfg_settings_load_buffer(NULL, NULL, 0, "node1", &s, &d), 0);
        if (cfg_model_from_buffers(&s, names, bufs, sizes, 1, &m, &d) < 0)
                print_diags(&d);
        assert_non_null(m);
        cfg_diags_clear(&d);
        cfg_settings_clear(&s);
        return m;
}

static const char *pt_node_name(const struct cfg_model *m, uint32_t i)
{
        return i < m->n_nodes ? m->nodes[i].name : "";
}

/* The prefixes a source would report for the change from a to b. */
static void pt_touched(const struct cfg_model *a, const struct cfg_model *b, struct cfg_touched *t)
{
        size_t i = 0, j = 0;

        while (i < a->n_blocks || j < b->n_blocks) {
                int c = i == a->n_blocks ? 1 : j == b->n_blocks ? -1 : cfg_prefix_cmp(&a->blocks[i].cidr, &b->blocks[j].cidr);

                if (c != 0 || !streq(pt_node_name(a, a->blocks[i].node), pt_node_name(b, b->blocks[j].node)))
                        assert_int_equal(cfg_touched_add(t, c <= 0 ? &a->blocks[i].cidr : &b->blocks[j].cidr), 0);
                i += c <= 0;
                j += c >= 0;
        }
        for (i = 0, j = 0; i < a->n_borrowed || j < b->n_borrowed;) {
                int c = i == a->n_borrowed   ? 1
                        : j == b->n_borrowed ? -1
                                             : cfg_prefix_cmp(&a->borrowed[i].addr, &b->borrowed[j].addr);

                if (c != 0 || !streq(pt_node_name(a, a->borrowed[i].node), pt_node_name(b, b->borrowed[j].node)))
                        assert_int_equal(cfg_touched_add(t, c <= 0 ? &a->borrowed[i].addr : &b->borrowed[j].addr), 0);
                i += c <= 0;
                j += c >= 0;
        }
        /* A node came or went (the sources say so, as cfg_model_diff() does). */
        if (a->n_nodes != b->n_nodes)
                t->nodes = true;
        /* A node whose address changed: its blocks and the addresses it hosts, before and after. */
        for (size_t n = 0; n < b->n_nodes; n++) {
                const struct cfg_node *nb = &b->nodes[n], *na = cfg_model_node(a, nb->name);

                if (na && cfg_prefix_eq(&na->addr, &nb->addr) && cfg_prefix_eq(&na->addr6, &nb->addr6))
                        continue;
                t->nodes = true;
                for (const struct cfg_model *m = a; m; m = m == a ? b : NULL) {
                        for (size_t k = 0; k < m->n_blocks; k++)
                                if (streq(pt_node_name(m, m->blocks[k].node), nb->name))
                                        assert_int_equal(cfg_touched_add(t, &m->blocks[k].cidr), 0);
                        for (size_t k = 0; k < m->n_borrowed; k++)
                                if (streq(pt_node_name(m, m->borrowed[k].node), nb->name))
                                        assert_int_equal(cfg_touched_add(t, &m->borrowed[k].addr), 0);
                }
        }
        cfg_touched_done(t);
}

static void pt_apply(struct host_snapshot *h, const struct plan *p, struct host_result **res)
{
        for (size_t i = 0; i < p->n_actions; i++)
                apply_action(h, &p->actions[i]);
        check_route_keys(h);
        free(*res);
        *res = calloc(p->n_actions + 1, sizeof(**res)); /* every change worked */
        assert_non_null(*res);
}

static int pt_prefix_cmp(const void *a, const void *b)
{
        return cfg_prefix_cmp(a, b);
}

static void pt_same_counts(const struct plan *d, const struct plan *f)
{
        assert_int_equal(d->n_routes_wanted, f->n_routes_wanted);
        assert_int_equal(d->n_routes_foreign, f->n_routes_foreign);
        assert_int_equal(d->n_routes_conflicting, f->n_routes_conflicting);
        assert_int_equal(d->n_blocks_upstream, f->n_blocks_upstream);
        assert_int_equal(d->n_borrowed, f->n_borrowed);
        assert_int_equal(d->n_borrowed_upstream, f->n_borrowed_upstream);
        assert_int_equal(d->underlay, f->underlay);
        assert_int_equal(d->uplink, f->uplink);
        assert_int_equal(d->n_pools, f->n_pools);
        for (size_t i = 0; i < d->n_pools; i++) /* STATUS= counts the underlay pools that apply */
                assert_int_equal(d->pools[i].applies, f->pools[i].applies);
}

/* A full pass with its context (t->ctx), converged as the daemon's second pass leaves it. */
static struct plan_ctx *pt_full(struct t *t, struct host_result **res)
{
        for (int pass = 0; pass < 3; pass++) {
                plan_free(t->p);
                t->p = NULL;
                plan_ctx_free(t->ctx);
                t->ctx = NULL;
                assert_int_equal(plan_build_ctx(t->m, &t->h, &t->rec, &t->p, &t->ctx), 0);
                assert_non_null(t->ctx);
                check_invariants(&t->m->settings, &t->h, t->p, &t->rec);
                pt_apply(&t->h, t->p, res);
                t->rec = t->p->record.valid ? t->p->record : (struct host_record)HOST_RECORD_INIT;
                if (plan_ctx_applied(t->ctx, t->p->actions, t->p->n_actions, *res) == 0)
                        return t->ctx;
        }
        fail_msg("no context after three full passes");
        return NULL;
}

/* Others change their routes in main between passes (BIRD learning and withdrawing a
 * block's route, a static route, a borrowed address's host route): the kernel's route
 * events, as the loop hands them to the context (plan_ctx_route()). The next delta
 * pass must count and report them as a full pass would. */
static void pt_foreign_main(struct host_snapshot *h, struct plan_ctx *c)
{
        static const char *const via[] = { "192.168.10.12", "192.168.10.13", "192.168.10.14" };
        char cidr[CFG_PREFIX_STRLEN], spec[160];
        struct host_route r;
        size_t k;

        if (pt_rand(2)) {
                /* one of the routes others hold in main for a pool prefix goes */
                for (k = 0; k < h->n_routes; k++)
                        if (h->routes[k].table == 254 && h->routes[k].protocol != OWN && h->routes[k].dst.len >= 26 &&
                            h->routes[k].dst.family == AF_INET)
                                break;
                if (k == h->n_routes)
                        return;
                r = h->routes[k];
                route_remove_at(h, k);
                assert_int_equal(plan_ctx_route(c, &r, true), 0);
                return;
        }
        pt_slot_cidr((int)pt_rand(PT_SLOTS), cidr, sizeof(cidr));
        if (pt_rand(4) == 0) /* a borrowed address's host route (ordinal 1-3) */
                snprintf(strrchr(cidr, '.'), 8, ".%d", atoi(strrchr(cidr, '.') + 1) + 1 + (int)pt_rand(3));
        snprintf(spec, sizeof(spec), "%s via %s dev eth0 proto %s%s", cidr, via[pt_rand(3)],
                 pt_rand(2) ? "bird" : "static", pt_rand(3) ? "" : " metric 10");
        r = route_parse(h, spec);
        for (k = 0; k < h->n_routes; k++)
                if (route_key_eq(&h->routes[k], &r))
                        break;
        if (k < h->n_routes)
                h->routes[k] = r; /* `ip route replace` */
        else
                route_push(h, &r);
        assert_int_equal(plan_ctx_route(c, &r, false), 0);
}

static void test_delta_random(void **state)
{
        struct t *t = *state;
        size_t n_delta = 0, n_full = 0, n_changes = 0, n_changes6 = 0;
        _cleanup_(freep) struct host_result *res = NULL;

        for (uint64_t seed = 1; seed <= 60; seed++) {
                struct pt_world w;
                struct plan_ctx *c;
                char cidr[CFG_PREFIX_STRLEN];

                pt_rand_state = seed * 0x9e3779b97f4a7c15ULL;
                pt_random_world(&w);
                host_snapshot_clear(&t->h);
                t->h = (struct host_snapshot){};
                t->rec = (struct host_record)HOST_RECORD_INIT;
                host_node1_v6(&t->h); /* IPv6 blocks too (DESIGN.md §3, "IPv6") */
                /* Others' routes for some prefixes: BIRD's in main, a static one in our table. */
                pt_slot_cidr((int)pt_rand(PT_SLOTS), cidr, sizeof(cidr));
                {
                        char spec[160];

                        snprintf(spec, sizeof(spec), "%s via 192.168.10.12 dev eth0 proto bird", cidr);
                        route_add(&t->h, spec);
                        pt_slot_cidr((int)pt_rand(PT_SLOTS), cidr, sizeof(cidr));
                        snprintf(spec, sizeof(spec), "%s via 192.168.10.13 dev eth0 proto static table 252", cidr);
                        route_add(&t->h, spec);
                        pt_slot_cidr((int)pt_rand(32), cidr, sizeof(cidr));
                        snprintf(spec, sizeof(spec), "%s via 192.168.10.14 dev eth0 proto bird metric 10", cidr);
                        route_add(&t->h, spec);
                }
                cfg_model_free(t->m);
                t->m = pt_model(&w);
                c = pt_full(t, &res);
                for (int step = 0; step < 15; step++) {
                        struct cfg_model *old = t->m;
                        struct cfg_touched touched = {};
                        struct plan *dp = NULL, *full = NULL;
                        const char *why = NULL;
                        int r;

                        if (pt_rand(3) == 0)
                                pt_foreign_main(&t->h, c);
                        pt_mutate(&w);
                        t->m = pt_model(&w);
                        pt_touched(old, t->m, &touched);
                        cfg_model_free(old);
                        r = plan_delta(c, t->m, &t->h, &touched, &dp, &why);
                        assert_true(r >= 0);
                        if (r == 0) {
                                assert_non_null(why);
                                c = pt_full(t, &res);
                                n_full++;
                                cfg_touched_clear(&touched);
                                continue;
                        }
                        n_delta++;
                        check_invariants(&t->m->settings, &t->h, dp, &t->rec);
                        for (size_t i = 0; i < dp->n_actions; i++) {
                                const struct host_change *a = &dp->actions[i];

                                assert_true(a->kind == CHANGE_ADD_ROUTE || a->kind == CHANGE_DEL_ROUTE);
                                /* nothing outside the touched prefixes */
                                assert_non_null(bsearch(&a->route.dst, touched.v, touched.n, sizeof(*touched.v),
                                                        pt_prefix_cmp));
                                n_changes6 += a->route.dst.family == AF_INET6;
                        }
                        n_changes += dp->n_actions;
                        if (getenv("PT_DEBUG")) {
                                print_message("seed %llu step %d delta:\n", (unsigned long long)seed, step);
                                dump_plan(dp);
                        }
                        pt_apply(&t->h, dp, &res);
                        assert_int_equal(plan_ctx_applied(c, dp->actions, dp->n_actions, res), 0);
                        assert_int_equal(plan_build(t->m, &t->h, &t->rec, &full), 0);
                        if (full->n_actions) {
                                print_error("seed %llu step %d: the full plan after the delta still has:\n",
                                            (unsigned long long)seed, step);
                                dump_plan(full);
                        }
                        assert_int_equal(full->n_actions, 0);
                        pt_same_counts(dp, full);
                        plan_free(dp);
                        plan_free(full);
                        cfg_touched_clear(&touched);
                }
        }
        print_message("delta passes: %zu (%zu route changes, %zu IPv6), full passes: %zu\n", n_delta, n_changes,
                      n_changes6, n_full);
        /* The delta path is what ran, and it changed routes, IPv6 ones among them. */
        assert_true(n_delta > 3 * n_full);
        assert_true(n_changes > n_delta);
        assert_true(n_changes6 > n_delta / 10);
}

/* A touched set that names a prefix twice (a block's key and its node's new address in
 * one batch) plans it once: no change twice. */
static void test_delta_dup_touched(void **state)
{
        struct t *t = *state;
        _cleanup_(freep) struct host_result *res = NULL;
        struct pt_world w;
        struct plan_ctx *c;
        struct cfg_model *old;
        struct cfg_touched touched = {};
        struct plan *dp = NULL;
        const char *why = NULL;
        char line[256];

        pt_rand_state = 7 * 0x9e3779b97f4a7c15ULL;
        pt_random_world(&w);
        for (int i = 1; i < PT_NODES; i++)
                w.addr[i] = 1 + (i % 5);
        w.block[3] = 1;
        host_snapshot_clear(&t->h);
        t->h = (struct host_snapshot){};
        t->rec = (struct host_record)HOST_RECORD_INIT;
        host_node1(&t->h);
        cfg_model_free(t->m);
        t->m = pt_model(&w);
        c = pt_full(t, &res);
        old = t->m;
        w.block[3] = 2;
        t->m = pt_model(&w);
        pt_touched(old, t->m, &touched);
        cfg_model_free(old);
        {
                /* Each prefix twice, side by side (sorted, not yet made unique). */
                struct cfg_touched twice = {};

                for (size_t i = 0; i < touched.n; i++)
                        for (int k = 0; k < 2; k++)
                                assert_int_equal(cfg_touched_add(&twice, &touched.v[i]), 0);
                cfg_touched_clear(&touched);
                touched = twice;
        }
        assert_int_equal(plan_delta(c, t->m, &t->h, &touched, &dp, &why), 1);
        assert_true(dp->n_actions > 0);
        for (size_t i = 0; i < dp->n_actions; i++) {
                host_change_fmt(&dp->actions[i], line, sizeof(line));
                for (size_t k = 0; k < i; k++) {
                        char other[256];

                        host_change_fmt(&dp->actions[k], other, sizeof(other));
                        assert_string_not_equal(line, other);
                }
        }
        plan_free(dp);
        cfg_touched_clear(&touched);
}

/* The blocks of the churn test: window [from, from + CHURN_LIVE) of node2's, IPv4 /28s in
 * 10.0.0.0/16 and IPv6 /122s in fd00:10::/64 alternately. */
#define CHURN_LIVE 64

static void churn_cidr(unsigned k, char *buf, size_t size)
{
        if (k % 2)
                snprintf(buf, size, "fd00:10::%x:%x/122", k / 1024, k % 1024 * 64);
        else
                snprintf(buf, size, "10.0.%u.%u/28", k / 16 % 256, k % 16 * 16);
}

static struct cfg_model *churn_model(unsigned from)
{
        char *yaml = NULL, cidr[CFG_PREFIX_STRLEN];
        size_t size = 0;
        FILE *f = open_memstream(&yaml, &size);
        const char *names[] = { "resources.yaml" }, *bufs[1];
        size_t sizes[1];
        struct cfg_settings st = {};
        struct cfg_diags d = {};
        struct cfg_model *m = NULL;

        assert_non_null(f);
        fputs(POOL("p4", "10.0.0.0/16", UNDERLAY) POOL("p6", "fd00:10::/64", UNDERLAY6)
                      NODE6("node1", "192.168.10.11/24", "fd00:1::11/64", AZ1)
                              NODE6("node2", "192.168.10.12/24", "fd00:1::12/64", AZ1),
              f);
        for (unsigned k = from; k < from + CHURN_LIVE; k++) {
                churn_cidr(k, cidr, sizeof(cidr));
                fprintf(f, DOC "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: a%u}\n"
                               "spec: {node: node2, cidr: '%s', state: confirmed, deleted: 'false'}\n",
                        k, cidr);
        }
        assert_int_equal(fclose(f), 0);
        bufs[0] = yaml;
        sizes[0] = strlen(yaml);
        assert_int_equal(cfg_settings_load_buffer(NULL, NULL, 0, "node1", &st, &d), 0);
        if (cfg_model_from_buffers(&st, names, bufs, sizes, 1, &m, &d) < 0)
                print_diags(&d);
        assert_non_null(m);
        free(yaml);
        cfg_diags_clear(&d);
        cfg_settings_clear(&st);
        return m;
}

/* Issue 16: blocks claimed and released for ever (a new prefix each time, IPv4 and
 * IPv6) must not grow the context between full passes: a prefix that holds nothing
 * more leaves it at once. 1,000 changes, each a delta pass. */
static void test_delta_churn_bounded(void **state)
{
        struct t *t = *state;
        _cleanup_(freep) struct host_result *res = NULL;
        struct plan_ctx *c;
        size_t warm = 0;

        host_snapshot_clear(&t->h);
        t->h = (struct host_snapshot){};
        t->rec = (struct host_record)HOST_RECORD_INIT;
        host_node1_v6(&t->h);
        cfg_model_free(t->m);
        t->m = churn_model(0);
        c = pt_full(t, &res);
        for (unsigned step = 0; step < 1000; step++) {
                struct cfg_touched touched = {};
                struct plan *dp = NULL, *full = NULL;
                struct cfg_prefix p;
                char cidr[CFG_PREFIX_STRLEN];
                const char *why = NULL;

                cfg_model_free(t->m);
                t->m = churn_model(step + 1);
                for (unsigned k = step; k <= step + CHURN_LIVE; k += CHURN_LIVE) {
                        churn_cidr(k, cidr, sizeof(cidr));
                        assert_int_equal(cfg_prefix_parse(cidr, true, &p), 0);
                        assert_int_equal(cfg_touched_add(&touched, &p), 0);
                }
                cfg_touched_done(&touched);
                assert_int_equal(plan_delta(c, t->m, &t->h, &touched, &dp, &why), 1);
                assert_int_equal(dp->n_actions, 2); /* one route gone, one new */
                pt_apply(&t->h, dp, &res);
                assert_int_equal(plan_ctx_applied(c, dp->actions, dp->n_actions, res), 0);
                if (step == CHURN_LIVE)
                        warm = plan_ctx_bytes(c);
                if (step > CHURN_LIVE)
                        assert_true(plan_ctx_bytes(c) <= warm);
                if (step % 100 == 99) {
                        assert_int_equal(plan_build(t->m, &t->h, &t->rec, &full), 0);
                        assert_int_equal(full->n_actions, 0);
                        pt_same_counts(dp, full);
                        plan_free(full);
                }
                plan_free(dp);
                cfg_touched_clear(&touched);
        }
        print_message("context: %zu bytes after %u changes\n", plan_ctx_bytes(c), 1000u);
}

/* Route events the context cannot keep: a route of our protocol in main, a route in
 * main that ends every lookup of a pool's addresses (the blocking finding is the full
 * pass's); those outside the pools are nothing to it; past CTX_STALE_MAX changes
 * between two passes, a full pass. */
static void test_delta_ctx_route(void **state)
{
        struct t *t = *state;
        _cleanup_(freep) struct host_result *res = NULL;
        struct plan_ctx *c;
        struct host_route r;
        struct plan *dp = NULL;
        struct cfg_touched none = {};
        const char *why = NULL;
        int i;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        c = pt_full(t, &res);
        r = route_parse(&t->h, "10.99.0.0/24 via 192.168.10.12 dev eth0 proto bird");
        assert_int_equal(plan_ctx_route(c, &r, false), 0); /* outside the pools */
        r = route_parse(&t->h, "192.168.10.128/28 via 192.168.10.12 dev eth0 proto 211 table main");
        assert_int_equal(plan_ctx_route(c, &r, false), 1); /* ours in main */
        r = route_parse(&t->h, "blackhole 192.168.10.128/26 proto static");
        assert_int_equal(plan_ctx_route(c, &r, false), 1); /* covers the pool's blocks */
        r = route_parse(&t->h, "192.168.10.144/28 via 192.168.10.12 dev eth0 proto bird");
        for (i = 0; i < 4096; i++)
                assert_int_equal(plan_ctx_route(c, &r, i % 2), 0);
        assert_int_equal(plan_ctx_route(c, &r, false), 1); /* too many between two passes */
        /* What was noted is planned by the next delta: none left over, nothing changes. */
        assert_int_equal(plan_delta(c, t->m, &t->h, &none, &dp, &why), 1);
        assert_int_equal(dp->n_actions, 0);
        assert_int_equal(dp->n_routes_foreign, 0); /* the route went again (removed last) */
        plan_free(dp);
}

/* What only a full pass can tell: everything touched, a pool changed, this node's
 * address, a pool starting to apply. */
static void test_delta_needs_full(void **state)
{
        struct t *t = *state;
        struct cfg_touched all = { .all = true }, one = {};
        struct cfg_prefix p;
        struct plan_ctx *c;
        struct plan *dp = NULL;
        const char *why = NULL;
        _cleanup_(freep) struct host_result *res = NULL;

        load(t, NULL, SIMPLE);
        host_node1(&t->h);
        c = pt_full(t, &res);
        assert_int_equal(plan_delta(c, t->m, &t->h, &all, &dp, &why), 0);
        assert_string_equal(why, "the change may touch every prefix");
        assert_null(dp);
        c = pt_full(t, &res);
        /* blockSize changed */
        load(t, NULL,
             POOL("underlay", "192.168.10.128/25", ", blockSize: 27, ipipMode: Never, vxlanMode: Never, natOutgoing: false")
                     NODE("node1", "192.168.10.11/24", AZ1) NODE("node2", "192.168.10.12/24", AZ1));
        assert_int_equal(cfg_prefix_parse("192.168.10.128/28", true, &p), 0);
        assert_int_equal(cfg_touched_add(&one, &p), 0);
        assert_int_equal(plan_delta(c, t->m, &t->h, &one, &dp, &why), 0);
        assert_string_equal(why, "a pool changed");
        cfg_touched_clear(&one);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
                cmocka_unit_test(test_action_fmt),
                T(test_single_underlay_pool),
                T(test_converged_host_still_records),
                T(test_overlay_and_underlay),
                T(test_overlay_only),
                T(test_dc1_cross_az),
                T(test_dc1_from_node3),
                T(test_peer_in_other_subnet),
                T(test_upstream_examples_capped),
                T(test_on_link_is_uplink_prefix),
                T(test_cross_subnet),
                T(test_cross_subnet_vxlan),
                T(test_underlay_ipip_always),
                T(test_disabled_pools),
                T(test_affine_block_keeps_pool),
                T(test_local_block_route_unreachable),
                T(test_local_block_route_none),
                T(test_route_settings),
                T(test_foreign_equivalent_route),
                T(test_foreign_equivalent_blackhole),
                T(test_foreign_conflict_gateway),
                T(test_foreign_conflict_type),
                T(test_foreign_route_other_table),
                T(test_foreign_multipath),
                T(test_own_route_wrong),
                T(test_own_duplicate_route),
                T(test_own_stale_routes),
                T(test_own_route_other_table),
                T(test_own_ipv6_route_unwanted),
                T(test_idempotent),
                T(test_node_address_unknown),
                T(test_node_not_in_resources),
                T(test_borrowed_on_affine_node),
                T(test_borrowed_on_hosting_node),
                T(test_borrowed_needs_upstream),
                T(test_block_32_no_local_route),
                T(test_route_covers_node_address),
                T(test_peer_address_network_broadcast),
                T(test_pool_set_aside),
                T(test_legacy_fields_warning),
                T(test_pod_cidrs_ignored),
                T(test_node_not_in_resources_no_labels),
                T(test_node_known_only_from_block),
                T(test_end_of_underlay_mode),
                T(test_end_of_underlay_restore_delay_under_proxy),
                T(test_end_of_underlay_partial_record),
                T(test_uplink_changed),
                T(test_proxy_delay_keep),
                T(test_proxy_delay_value),
                T(test_delay_change_under_proxy_arp),
                T(test_first_run_proxy_arp_already_on),
                T(test_delay_change_proxy_arp_unknown),
                T(test_delay_recorded_when_keep_ends),
                T(test_uplink_not_found),
                T(test_remove_vxlan),
                T(test_remove_vxlan_down),
                T(test_tunnel_link_local_not_foreign),
                T(test_remove_tunl0_calico_addrs),
                T(test_remove_both_tunnels),
                T(test_tunl0_foreign_and_calico_addrs),
                T(test_tunl0_already_down),
                T(test_tunl0_up_no_addrs),
                T(test_tunnel_not_calico),
                T(test_tunnel_device_names),
                T(test_felix_keeps_tunnel),
                T(test_felix_per_node),
                T(test_routes_via_tunnel),
                T(test_tunnels_needed_no_tunnel_findings),
                T(test_forwarding_off),
                T(test_uplink_unfit),
                T(test_route_owner_changed),
                T(test_record_damaged),
                T(test_rp_filter),
                T(test_pool_outside_uplink_subnet),
                T(test_pool_outside_uplink_subnet_no_blocks),
                T(test_ipv6_pool),
                T(test_vxlan_foreign_addr_left_alone),
                T(test_ipv6_only_underlay_no_proxy_arp),
                T(test_ipv6_cross_subnet),
                T(test_ipv6_guarded),
                T(test_ipv6_ownership_and_borrowed),
                T(test_ipv6_blackhole_on_lo_converged),
                T(test_proxy_ndp),
                T(test_proxy_ndp_cleanup),
                T(test_ipv6_forwarding_off),
                T(test_ipv6_accept_ra),
                T(test_felix_keeps_vxlan_v6),
                T(test_vxlan_v6_removed),
                T(test_findings_order),
                T(test_cleanup),
                T(test_cleanup_route_protocol),
                T(test_cleanup_rules),
                T(test_rules_fresh_node),
                T(test_rules_upgrade_from_main),
                T(test_rules_drift_and_ownership),
                T(test_rules_removed_with_underlay),
                T(test_covering_route_in_main),
                T(test_scale),
                T(test_delta_random),
                T(test_delta_needs_full),
                T(test_delta_dup_touched),
                T(test_delta_churn_bounded),
                T(test_delta_ctx_route),
#undef T
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
