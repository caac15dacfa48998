/* Unit tests for daemon/upstream.c, the upstream routes (--upstream-routes).
 *
 * - A property test over random clusters (pools, blocks, nodes with and without an
 *   address, borrowed addresses, IPv4 and IPv6): longest-prefix match over the routes
 *   sends every address of every block and every borrowed address to the node that
 *   owns it, never routes an address of a node without an address, never leaves the
 *   pools, never covers another node's block or, outside its own blocks, a node's
 *   address (nodes without blocks too); exact aggregation never covers free
 *   space; cover-free is never larger than exact, which is never larger than one
 *   route per block.
 * - Golden files for every syntax (tests/golden/upstream/), whole and as a change:
 *   UPDATE_GOLDEN=1 rewrites them (then read the diff).
 * - The model → input step (overlay pools left out, disabled pools kept, borrowed
 *   addresses from IPAMBlocks), and the
 *   JSON output read back for --since, with its errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "model.h"
#include "upstream.h"
#include "util.h"

static struct cfg_prefix P(const char *s)
{
        struct cfg_prefix p;

        assert_true(cfg_prefix_parse(s, false, &p) >= 0);
        return p;
}

/* ---- longest-prefix match, written the plain way ---- */

static const struct upstream_route *lpm(const struct upstream *u, const struct cfg_prefix *addr)
{
        const struct upstream_route *best = NULL;

        for (size_t i = 0; i < u->n_routes; i++)
                if (cfg_prefix_contains(&u->routes[i].dst, addr) && (!best || u->routes[i].dst.len > best->dst.len))
                        best = &u->routes[i];
        return best;
}

/* ---- random clusters ---- */

static uint64_t rng_state;
static unsigned cur_run; /* named in failures: UPSTREAM_SEED and the run reproduce one */

static uint32_t rnd(uint32_t n)
{
        /* xorshift64*: reproducible from the seed printed on failure */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32) % n;
}

#define MAX_NODES 8
#define MAX_ENTRIES 512

struct cluster {
        char names[MAX_NODES][16];
        struct cfg_prefix addr[MAX_NODES]; /* family 0: no address */
        struct cfg_prefix pools[2];
        size_t n_pools;
        struct cfg_prefix node_addrs[MAX_NODES + 1]; /* the nodes', and one of a node without blocks */
        size_t n_node_addrs;
        struct upstream_entry e[MAX_ENTRIES];
        size_t n;
        int owner_node[MAX_ENTRIES]; /* entry → node index */
};

/* Address i of prefix p (i < size of p). */
static struct cfg_prefix nth(const struct cfg_prefix *p, uint32_t i)
{
        struct cfg_prefix a = *p;
        unsigned max = cfg_prefix_maxlen(p), byte = max / 8;

        a.len = (uint8_t)max;
        for (uint32_t carry = i; carry && byte > 0; byte--) {
                uint32_t v = a.addr[byte - 1] + (carry & 0xff);

                a.addr[byte - 1] = (uint8_t)v;
                carry = (carry >> 8) + (v >> 8);
        }
        return a;
}

static uint32_t size_of(const struct cfg_prefix *p)
{
        return 1u << (cfg_prefix_maxlen(p) - p->len);
}

/* One pool per family at most (IPv4 /22, IPv6 /118: 1024 addresses each), blocks of
 * /25-/30 (IPv4) or /121-/126, a random subset of them claimed by random nodes, and a
 * few addresses of claimed blocks borrowed by other nodes. */
static void cluster_random(struct cluster *c)
{
        unsigned n_nodes = 2 + rnd(MAX_NODES - 1);
        bool v4 = rnd(3) != 0, v6 = !v4 || rnd(3) == 0;

        memset(c, 0, sizeof(*c));
        for (unsigned i = 0; i < n_nodes; i++) {
                snprintf(c->names[i], sizeof(c->names[i]), "node%u", i);
                if (rnd(5) == 0)
                        continue; /* no address */
                c->addr[i] = P(v6 && (!v4 || rnd(2)) ? "fd00:1::" : "192.168.1.0");
                c->addr[i] = nth(&c->addr[i], 10 + i);
        }
        if (v4)
                c->pools[c->n_pools++] = P("10.20.4.0/22");
        if (v6)
                c->pools[c->n_pools++] = P("fd00:20::400/118");
        for (size_t p = 0; p < c->n_pools; p++) {
                unsigned blen = c->pools[p].len + 3 + rnd(6);
                uint32_t bsize = 1u << (cfg_prefix_maxlen(&c->pools[p]) - blen);
                uint32_t n_blocks = size_of(&c->pools[p]) / bsize;
                uint32_t density = 1 + rnd(4); /* claimed: about density/4 of the blocks */

                for (uint32_t b = 0; b < n_blocks && c->n < MAX_ENTRIES / 2; b++) {
                        unsigned node = rnd(n_nodes);
                        struct cfg_prefix dst = nth(&c->pools[p], b * bsize);

                        if (rnd(4) >= density)
                                continue;
                        /* runs of one node's blocks, so that merging happens */
                        if (c->n && rnd(2) && c->e[c->n - 1].dst.family == dst.family)
                                node = (unsigned)c->owner_node[c->n - 1];
                        dst.len = (uint8_t)blen;
                        c->owner_node[c->n] = (int)node;
                        c->e[c->n++] = (struct upstream_entry){ dst, c->names[node], NULL, false };
                }
        }
        for (size_t i = 0, n_blocks = c->n; i < n_blocks && c->n < MAX_ENTRIES; i++) {
                unsigned host = rnd(n_nodes);

                if (rnd(6) || host == (unsigned)c->owner_node[i])
                        continue;
                c->owner_node[c->n] = (int)host;
                c->e[c->n++] = (struct upstream_entry){ nth(&c->e[i].dst, rnd(size_of(&c->e[i].dst))),
                                                        c->names[host], NULL, true };
        }
        for (size_t i = 0; i < c->n; i++) {
                const struct cfg_prefix *a = &c->addr[c->owner_node[i]];

                c->e[i].via = a->family ? a : NULL;
        }
        for (unsigned i = 0; i < n_nodes; i++)
                if (c->addr[i].family)
                        c->node_addrs[c->n_node_addrs++] = c->addr[i];
        /* Sometimes a node without blocks whose address lies in a pool (a pool that
         * spans the nodes' own subnet): no aggregate may cover it. */
        if (rnd(2))
                c->node_addrs[c->n_node_addrs++] = nth(&c->pools[0], rnd(size_of(&c->pools[0])));
}

/* Who owns address a: the borrowed entry for it, else the block holding it; -1: free. */
static int owner_of(const struct cluster *c, const struct cfg_prefix *a, bool *borrowed)
{
        int block = -1;

        for (size_t i = 0; i < c->n; i++) {
                if (!cfg_prefix_contains(&c->e[i].dst, a))
                        continue;
                if (c->e[i].borrowed) {
                        *borrowed = true;
                        return (int)i;
                }
                block = (int)i;
        }
        *borrowed = false;
        return block;
}

static bool routed(const struct cluster *c, int entry)
{
        const struct cfg_prefix *via = c->e[entry].via;

        return via && via->family == c->e[entry].dst.family;
}

static void check_address(const struct cluster *c, const struct upstream *u, const struct cfg_prefix *a)
{
        const struct upstream_route *r = lpm(u, a);
        bool borrowed;
        int o = owner_of(c, a, &borrowed);
        char buf[CFG_PREFIX_STRLEN];

        cfg_addr_fmt(a, buf, sizeof(buf));
        if (o >= 0 && routed(c, o)) {
                /* every address of a block, every borrowed address: to its node */
                if (!r || !streq(r->node, c->e[o].node) || !cfg_prefix_eq(&r->via, c->e[o].via))
                        fail_msg("run %u: %s belongs to %s but goes to %s", cur_run, buf, c->e[o].node, r ? r->node : "nowhere");
        } else if (o >= 0 && !borrowed) {
                /* a block of a node without an address: no route at all, not guessed */
                if (r)
                        fail_msg("run %u: %s (node %s has no address) goes to %s", cur_run, buf, c->e[o].node, r->node);
        } else if (o >= 0) {
                /* a borrowed address of a node without an address: at most the route
                 * the block it lies in gets (its affine node's) */
                bool in_block = false;

                for (size_t i = 0; r && i < c->n; i++)
                        in_block |= !c->e[i].borrowed && cfg_prefix_contains(&c->e[i].dst, a) &&
                                    streq(c->e[i].node, r->node);
                if (r && !in_block)
                        fail_msg("run %u: %s (borrowed by a node without an address) goes to %s", cur_run, buf, r->node);
        } else if (r && u->aggregate == UPSTREAM_AGG_EXACT)
                fail_msg("run %u: %s is free but exact routes send it to %s", cur_run, buf, r->node);
}

/* Every route's destination lies in a pool; a block or aggregate route covers no
 * block of another node and, unless it is inside one of its own blocks, no borrowed
 * address and no node address. */
static void check_routes(const struct cluster *c, const struct upstream *u)
{
        for (size_t i = 0; i < u->n_routes; i++) {
                const struct upstream_route *r = &u->routes[i];
                bool in_pool = false;

                for (size_t p = 0; p < c->n_pools; p++)
                        in_pool |= cfg_prefix_contains(&c->pools[p], &r->dst);
                assert_true(in_pool);
                if (r->kind == UPSTREAM_BORROWED)
                        continue;
                for (size_t k = 0; k < c->n; k++) {
                        const struct upstream_entry *e = &c->e[k];
                        bool inside_own = false;

                        if (!cfg_prefix_overlaps(&e->dst, &r->dst) || streq(e->node, r->node))
                                continue;
                        assert_true(e->borrowed); /* never another node's block */
                        for (size_t b = 0; b < c->n; b++)
                                inside_own |= !c->e[b].borrowed && streq(c->e[b].node, r->node) &&
                                              cfg_prefix_contains(&c->e[b].dst, &e->dst);
                        assert_true(inside_own);
                }
                for (size_t nd = 0; nd < c->n_node_addrs; nd++) {
                        bool inside_own = false;

                        if (!cfg_prefix_contains(&r->dst, &c->node_addrs[nd]))
                                continue;
                        for (size_t b = 0; b < c->n; b++)
                                inside_own |= !c->e[b].borrowed && streq(c->e[b].node, r->node) &&
                                              cfg_prefix_contains(&c->e[b].dst, &c->node_addrs[nd]);
                        if (!inside_own)
                                fail_msg("run %u: %s route covers a node address", cur_run, r->node);
                }
        }
}

static void check_cluster(const struct cluster *c, const struct upstream *u)
{
        size_t n_missing = 0;

        for (size_t i = 0; i < c->n; i++)
                n_missing += !routed(c, (int)i);
        assert_int_equal(u->n_missing, n_missing);
        check_routes(c, u);
        for (size_t p = 0; p < c->n_pools; p++) {
                struct cfg_prefix wider = c->pools[p];

                /* the pool and as much again around it: nothing outside is routed */
                wider.len--;
                cfg_prefix_mask(&wider);
                for (uint32_t i = 0; i < size_of(&wider); i++) {
                        struct cfg_prefix a = nth(&wider, i);

                        if (cfg_prefix_contains(&c->pools[p], &a))
                                check_address(c, u, &a);
                        else
                                assert_null(lpm(u, &a));
                }
        }
}

static void test_property_random_clusters(void **state)
{
        const char *env = getenv("UPSTREAM_SEED");
        uint64_t seed0 = env ? strtoull(env, NULL, 0) : 0x5eed;
        size_t merged = 0, widened = 0;

        (void)state;
        print_message("UPSTREAM_SEED=%#llx\n", (unsigned long long)seed0);
        for (unsigned run = 0; run < 150; run++) {
                struct upstream *exact = NULL, *free_ = NULL;
                struct cluster c;
                struct upstream_input in;

                rng_state = seed0 * 1000003u + run + 1;
                cluster_random(&c);
                in = (struct upstream_input){ c.e, c.n, c.pools, c.n_pools, c.node_addrs, c.n_node_addrs };
                cur_run = run;
                assert_int_equal(upstream_compute(&in, UPSTREAM_AGG_EXACT, &exact), 0);
                assert_int_equal(upstream_compute(&in, UPSTREAM_AGG_COVER_FREE, &free_), 0);
                check_cluster(&c, exact);
                check_cluster(&c, free_);
                assert_true(exact->n_routes <= exact->n_exact);
                assert_true(free_->n_routes <= exact->n_routes);
                assert_int_equal(exact->n_exact, free_->n_exact);
                assert_int_equal(exact->n_blocks + exact->n_borrowed + exact->n_missing, c.n);
                merged += exact->n_exact - exact->n_routes;
                widened += exact->n_routes - free_->n_routes;
                upstream_free(exact);
                upstream_free(free_);
        }
        /* the generator must exercise both kinds of aggregation */
        print_message("routes saved: %zu by exact merging, %zu more by cover-free\n", merged, widened);
        assert_true(merged > 100);
        assert_true(widened > 100);
}

/* ---- the golden cluster ---- */

/* Four nodes on 192.168.1.0/24: node1 holds 10.244.0.0/26 in four /28 blocks (one
 * route), node2 two blocks that are not siblings, node3 a block with a borrowed
 * address of node1 inside it and one beside free space, node4 has no address; an
 * IPv6 pool with two sibling blocks of node2. */
static const struct cfg_prefix gold_addr[] = {
        { AF_INET, 32, { 192, 168, 1, 11 } },
        { AF_INET, 32, { 192, 168, 1, 12 } },
        { AF_INET, 32, { 192, 168, 1, 13 } },
        { AF_INET6, 128, { 0xfd, 0, 0, 1, [15] = 12 } },
};

static struct upstream *golden(enum upstream_aggregate agg, bool later)
{
        struct upstream_entry e[] = {
                { P("10.244.0.0/28"), "node1", &gold_addr[0], false },
                { P("10.244.0.16/28"), "node1", &gold_addr[0], false },
                { P("10.244.0.32/28"), "node1", &gold_addr[0], false },
                { P("10.244.0.48/28"), "node1", &gold_addr[0], false },
                { P("10.244.0.64/28"), "node2", &gold_addr[1], false },
                { P("10.244.0.96/28"), "node2", &gold_addr[1], false },
                { P("10.244.0.128/28"), "node3", &gold_addr[2], false },
                { P("10.244.0.133/32"), "node1", &gold_addr[0], true },
                { P("10.244.0.160/28"), "node3", &gold_addr[2], false },
                { P("10.244.0.192/28"), "node4", NULL, false },
                { P("fd00:244::/124"), "node2", &gold_addr[3], false },
                { P("fd00:244::10/124"), "node2", &gold_addr[3], false },
                /* later: node1 released .48/28, node3 claimed .176/28, the borrowed
                 * address moved to node2 */
                { P("10.244.0.176/28"), "node3", &gold_addr[2], false },
                { P("10.244.0.133/32"), "node2", &gold_addr[1], true },
        };
        struct cfg_prefix pools[] = { P("10.244.0.0/24"), P("fd00:244::/120") };
        struct upstream_entry use[ELEMENTSOF(e)];
        size_t n = 0;
        struct upstream *u = NULL;

        for (size_t i = 0; i < ELEMENTSOF(e); i++) {
                bool gone = later && (i == 3 || i == 7), added = i >= 12;

                if (!gone && (!added || later))
                        use[n++] = e[i];
        }
        assert_int_equal(upstream_compute(&(struct upstream_input){ use, n, pools, 2, gold_addr, 4 }, agg, &u), 0);
        return u;
}

static char *read_all(const char *path, size_t *len)
{
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t cap = 0;

        *len = 0;
        if (!f)
                return NULL;
        for (;;) {
                assert_int_equal(GROW(buf, cap, *len + 4097), 0);
                size_t n = fread(buf + *len, 1, 4096, f);

                *len += n;
                if (n == 0)
                        break;
        }
        fclose(f);
        buf[*len] = '\0';
        return buf;
}

static void expect_golden(const char *name, const char *text, size_t len)
{
        char path[4096];
        size_t glen;
        char *want;

        snprintf(path, sizeof(path), "%s/tests/golden/upstream/%s", getenv("SRCDIR") ? getenv("SRCDIR") : ".", name);
        if (getenv("UPDATE_GOLDEN")) {
                FILE *f = fopen(path, "we");

                assert_non_null(f);
                fwrite(text, 1, len, f);
                fclose(f);
        }
        want = read_all(path, &glen);
        if (!want)
                fail_msg("%s missing (UPDATE_GOLDEN=1 writes it)", path);
        if (glen != len || memcmp(want, text, len) != 0) {
                print_error("--- %s\n%s--- got\n%s", path, want, text);
                free(want);
                fail_msg("%s differs", name);
        }
        free(want);
}

static const char *const syntaxes[] = { "text", "json", "ios", "vrp", "junos", "frr", "bird", "ip-batch" };

static void test_golden(void **state)
{
        struct upstream *exact = golden(UPSTREAM_AGG_EXACT, false), *cover = golden(UPSTREAM_AGG_COVER_FREE, false);
        struct upstream *later = golden(UPSTREAM_AGG_EXACT, true);

        (void)state;
        assert_int_equal(exact->n_exact, 11);
        assert_int_equal(exact->n_routes, 7); /* node1 /26, node2 x2, node3 x2, borrowed, v6 /123 */
        /* node2 and node3 each one /26 over free /28s, the IPv6 pool one /120 */
        assert_int_equal(cover->n_routes, 5);
        assert_int_equal(exact->n_missing, 1);
        for (size_t i = 0; i < ELEMENTSOF(syntaxes); i++) {
                enum upstream_format f;
                char name[64], *out;
                size_t len;

                assert_int_equal(upstream_format_from_name(syntaxes[i], &f), 0);
                assert_int_equal(upstream_format(exact, NULL, f, &out, &len), 0);
                snprintf(name, sizeof(name), "%s.exact", syntaxes[i]);
                expect_golden(name, out, len);
                free(out);
                assert_int_equal(upstream_format(cover, NULL, f, &out, &len), 0);
                snprintf(name, sizeof(name), "%s.cover-free", syntaxes[i]);
                expect_golden(name, out, len);
                free(out);
                assert_int_equal(upstream_format(later, exact, f, &out, &len), 0);
                snprintf(name, sizeof(name), "%s.since", syntaxes[i]);
                expect_golden(name, out, len);
                free(out);
        }
        upstream_free(exact);
        upstream_free(cover);
        upstream_free(later);
}

/* ---- JSON round trip, --since input errors ---- */

static void test_json_round_trip(void **state)
{
        struct upstream *u = golden(UPSTREAM_AGG_EXACT, false), *back = NULL;
        char *json, *change, why[256] = "";
        size_t len, clen;

        (void)state;
        assert_int_equal(upstream_format(u, NULL, UPSTREAM_FMT_JSON, &json, &len), 0);
        assert_int_equal(upstream_parse_json(json, len, &back, why, sizeof(why)), 0);
        assert_int_equal(back->n_routes, u->n_routes);
        for (size_t i = 0; i < u->n_routes; i++) {
                assert_true(cfg_prefix_eq(&back->routes[i].dst, &u->routes[i].dst));
                assert_true(cfg_prefix_eq(&back->routes[i].via, &u->routes[i].via));
                assert_string_equal(back->routes[i].node, u->routes[i].node);
                assert_int_equal(back->routes[i].kind, u->routes[i].kind);
        }
        /* nothing changed: every syntax prints nothing but BIRD's whole protocol */
        assert_int_equal(upstream_format(u, back, UPSTREAM_FMT_IOS, &change, &clen), 0);
        assert_int_equal(clen, 0);
        free(change);
        assert_int_equal(upstream_format(u, back, UPSTREAM_FMT_BIRD, &change, &clen), 0);
        assert_non_null(strstr(change, "0 removed, 0 added"));
        assert_non_null(strstr(change, "route 10.244.0.0/26 via 192.168.1.11;"));
        free(change);
        upstream_free(back);
        free(json);
        upstream_free(u);
}

static void expect_parse_error(const char *doc, const char *want)
{
        struct upstream *u = NULL;
        char why[256] = "";

        assert_true(upstream_parse_json(doc, strlen(doc), &u, why, sizeof(why)) < 0);
        assert_null(u);
        if (!strstr(why, want))
                fail_msg("\"%s\": got \"%s\", want \"%s\"", doc, why, want);
}

static void test_json_errors(void **state)
{
        (void)state;
        expect_parse_error("{\"routes\": [\n  {\"prefix\": 1", "2:15: unexpected end of data");
        expect_parse_error("[]", "no \"routes\" list");
        expect_parse_error("{\"routes\": [7]}", "routes[0]: not an object");
        expect_parse_error("{\"routes\": [{\"prefix\": \"10.0.0.1/24\", \"via\": \"1.1.1.1\", \"node\": \"a\"}]}",
                           "routes[0].prefix");
        expect_parse_error("{\"routes\": [{\"prefix\": \"10.0.0.0/24\", \"via\": \"fd00::1\", \"node\": \"a\"}]}",
                           "routes[0].via");
        expect_parse_error("{\"routes\": [{\"prefix\": \"10.0.0.0/24\", \"via\": \"1.1.1.1\"}]}", "routes[0].node");
        expect_parse_error("{\"routes\": [{\"prefix\": \"10.0.0.0/24\", \"via\": \"1.1.1.1\", \"node\": \"a\"},"
                           "{\"prefix\": \"10.0.0.0/24\", \"via\": \"1.1.1.2\", \"node\": \"b\"}]}",
                           "10.0.0.0/24 appears twice");
        expect_parse_error("{\"routes\": []} x", "unexpected data after the document");
}

/* ---- from a model ---- */

#define DOC "---\n"

static void test_from_model(void **state)
{
        static const char *const res =
                DOC "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: under}\n"
                    "spec: {cidr: 10.1.0.0/24, blockSize: 26}\n"
                DOC "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: gone}\n"
                    "spec: {cidr: 10.2.0.0/24, blockSize: 26, disabled: true}\n"
                DOC "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: overlay}\n"
                    "spec: {cidr: 10.3.0.0/24, blockSize: 26, natOutgoing: true, ipipMode: Always}\n"
                DOC "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: a}\n"
                    "spec: {bgp: {ipv4Address: 192.168.0.1/24}}\n"
                DOC "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: b}\n"
                DOC "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: x1}\n"
                    "spec: {node: a, cidr: 10.1.0.0/26, state: confirmed}\n"
                DOC "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: x2}\n"
                    "spec: {node: a, cidr: 10.1.0.64/26, state: confirmed}\n"
                DOC "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: x3}\n"
                    "spec: {node: b, cidr: 10.1.0.128/26, state: confirmed}\n"
                DOC "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: x4}\n"
                    "spec: {node: a, cidr: 10.2.0.0/26, state: confirmed}\n"
                DOC "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: x5}\n"
                    "spec: {node: a, cidr: 10.3.0.0/26, state: confirmed}\n"
                /* b's block lends .128 to a; .130 is b's own */
                DOC "apiVersion: crd.projectcalico.org/v1\nkind: IPAMBlock\nmetadata: {name: blk1}\n"
                    "spec: {cidr: 10.1.0.128/26, affinity: 'host:b', allocations: [0, null, 1],\n"
                    "  attributes: [{secondary: {node: a}}, {secondary: {node: b}}]}\n"
                /* borrowed in the overlay pool: not the upstream's business */
                DOC "apiVersion: crd.projectcalico.org/v1\nkind: IPAMBlock\nmetadata: {name: blk2}\n"
                    "spec: {cidr: 10.3.0.0/26, affinity: 'host:a', allocations: [0],\n"
                    "  attributes: [{secondary: {node: b}}]}\n";
        const char *names[] = { "res.yaml" };
        const char *bufs[] = { res };
        size_t sizes[] = { strlen(res) };
        struct cfg_settings s = {};
        struct cfg_diags d = {};
        struct cfg_model *m = NULL;
        struct upstream_input in = {};
        struct upstream *u = NULL;
        char *text;
        size_t len;

        (void)state;
        assert_int_equal(cfg_settings_load_buffer("config.yaml", "nodeName: a\n", 12, "a", &s, &d), 0);
        assert_int_equal(cfg_model_from_buffers(&s, names, bufs, sizes, 1, &m, &d), 0);
        assert_int_equal(upstream_input_from_model(m, &in), 0);
        assert_int_equal(in.n_pools, 2); /* under and gone; not the overlay pool */
        assert_int_equal(in.n_entries, 5); /* 4 blocks, 1 borrowed address */
        assert_int_equal(upstream_compute(&in, UPSTREAM_AGG_EXACT, &u), 0);
        assert_int_equal(upstream_format(u, NULL, UPSTREAM_FMT_TEXT, &text, &len), 0);
        assert_string_equal(text, "# upstream routes: 3 routes for 3 blocks and 1 borrowed address (4 before exact "
                                  "aggregation); 1 without a node address\n"
                                  "10.1.0.0/25 via 192.168.0.1 node a\n"
                                  "10.1.0.128/32 via 192.168.0.1 node a (borrowed)\n"
                                  "10.2.0.0/26 via 192.168.0.1 node a\n");
        assert_int_equal(u->n_missing, 1);
        assert_string_equal(u->missing[0].node, "b");
        free(text);
        upstream_free(u);
        upstream_input_clear(&in);
        cfg_model_free(m);
        cfg_diags_clear(&d);
        cfg_settings_clear(&s);
}

/* IPv6 from real resources: blocks route to each node's IPv6 address, taken from the
 * Calico Node (spec.bgp.ipv6Address), the Kubernetes Node's annotation or its IPv6
 * InternalIP; a node with only an IPv4 address has its IPv6 blocks reported. */
static void test_from_model_ipv6(void **state)
{
        static const char *const res =
                DOC "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: v4}\n"
                    "spec: {cidr: 10.1.0.0/24, blockSize: 26}\n"
                DOC "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: v6}\n"
                    "spec: {cidr: 'fd00:244::/120', blockSize: 122}\n"
                DOC "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: a}\n"
                    "spec: {bgp: {ipv4Address: 192.168.0.1/24, ipv6Address: 'fd00:1::a/64'}}\n"
                DOC "apiVersion: v1\nkind: Node\nmetadata:\n  name: b\n  annotations:\n"
                    "    projectcalico.org/IPv6Address: fd00:1::b/64\n"
                    "status:\n  addresses:\n  - {address: 192.168.0.2, type: InternalIP}\n"
                DOC "apiVersion: v1\nkind: Node\nmetadata: {name: c}\n"
                    "status:\n  addresses:\n  - {address: 'fd00:1::c', type: InternalIP}\n"
                DOC "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: d}\n"
                    "spec: {bgp: {ipv4Address: 192.168.0.4/24}}\n"
                DOC "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: x1}\n"
                    "spec: {node: a, cidr: 'fd00:244::/122', state: confirmed}\n"
                DOC "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: x2}\n"
                    "spec: {node: b, cidr: 'fd00:244::40/122', state: confirmed}\n"
                DOC "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: x3}\n"
                    "spec: {node: c, cidr: 'fd00:244::80/122', state: confirmed}\n"
                DOC "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: x4}\n"
                    "spec: {node: d, cidr: 'fd00:244::c0/122', state: confirmed}\n"
                DOC "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: x5}\n"
                    "spec: {node: b, cidr: 10.1.0.0/26, state: confirmed}\n"
                /* a's block lends fd00:244::2 to c */
                DOC "apiVersion: crd.projectcalico.org/v1\nkind: IPAMBlock\nmetadata: {name: blk1}\n"
                    "spec: {cidr: 'fd00:244::/122', affinity: 'host:a', allocations: [null, null, 0],\n"
                    "  attributes: [{secondary: {node: c}}]}\n";
        const char *names[] = { "res.yaml" };
        const char *bufs[] = { res };
        size_t sizes[] = { strlen(res) };
        struct cfg_settings s = {};
        struct cfg_diags d = {};
        struct cfg_model *m = NULL;
        struct upstream_input in = {};
        struct upstream *u = NULL;
        char *text;
        size_t len;

        (void)state;
        assert_int_equal(cfg_settings_load_buffer("config.yaml", "nodeName: a\n", 12, "a", &s, &d), 0);
        assert_int_equal(cfg_model_from_buffers(&s, names, bufs, sizes, 1, &m, &d), 0);
        assert_int_equal(upstream_input_from_model(m, &in), 0);
        assert_int_equal(in.n_node_addrs, 6); /* a, b (InternalIP), d; a, b (annotation), c */
        assert_int_equal(upstream_compute(&in, UPSTREAM_AGG_EXACT, &u), 0);
        assert_int_equal(upstream_format(u, NULL, UPSTREAM_FMT_TEXT, &text, &len), 0);
        assert_string_equal(text, "# upstream routes: 5 routes for 4 blocks and 1 borrowed address (5 before exact "
                                  "aggregation); 1 without a node address\n"
                                  "10.1.0.0/26 via 192.168.0.2 node b\n"
                                  "fd00:244::/122 via fd00:1::a node a\n"
                                  "fd00:244::2/128 via fd00:1::c node c (borrowed)\n"
                                  "fd00:244::40/122 via fd00:1::b node b\n"
                                  "fd00:244::80/122 via fd00:1::c node c\n");
        assert_int_equal(u->n_missing, 1);
        assert_string_equal(u->missing[0].node, "d"); /* IPv4 only */
        free(text);
        upstream_free(u);
        upstream_input_clear(&in);
        cfg_model_free(m);
        cfg_diags_clear(&d);
        cfg_settings_clear(&s);
}

static void test_names(void **state)
{
        enum upstream_format f;
        enum upstream_aggregate a;

        (void)state;
        assert_int_equal(upstream_format_from_name("eos", &f), 0);
        assert_int_equal(f, UPSTREAM_FMT_IOS);
        assert_int_equal(upstream_format_from_name("comware", &f), 0);
        assert_int_equal(f, UPSTREAM_FMT_VRP);
        assert_int_equal(upstream_format_from_name("iosxr", &f), -EINVAL);
        assert_int_equal(upstream_aggregate_from_name("cover-free", &a), 0);
        assert_int_equal(a, UPSTREAM_AGG_COVER_FREE);
        assert_int_equal(upstream_aggregate_from_name("loose", &a), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_property_random_clusters),
                cmocka_unit_test(test_golden),
                cmocka_unit_test(test_json_round_trip),
                cmocka_unit_test(test_json_errors),
                cmocka_unit_test(test_from_model),
                cmocka_unit_test(test_from_model_ipv6),
                cmocka_unit_test(test_names),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
