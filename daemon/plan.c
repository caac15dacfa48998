/* The planner (DESIGN.md §3): which pools apply here, what the host should look like,
 * and the ordered actions that get it there, with the findings an operator needs.
 *
 * Owns: every decision about routes, policy rules, proxy ARP and tunnels. Must never:
 * do I/O, log, read the clock, or plan a change to anything we do not own (a route or
 * rule without our protocol number, a device other than the uplink's settings and the
 * configured tunnels). Our routes go into our own table, reached through two rules per
 * underlay pool after main (DESIGN.md §3.2): routes others keep in main are read only
 * to report them. Routes are matched in one merge walk of the model's blocks (sorted by
 * cidr) and the kernel's routes (the few whole ones sorted here, the bulk of our table
 * in the snapshot's compact form, sorted by kern_observe()), so a plan for 100k blocks
 * is O(n log n), and the wanted routes are never held as a list. */
#include "plan.h"

#include <arpa/inet.h>
#include <linux/rtnetlink.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"
#include "uplink.h"
#include "util.h"

#define PLAN_MAX_FINDINGS 1000
#define EXAMPLES 4

struct node_note {
        uint32_t count;
        uint32_t examples[EXAMPLES]; /* block indices */
};

/* Addresses of one kind, counted, with the first few as examples. */
struct addr_note {
        uint32_t count;
        struct cfg_prefix examples[EXAMPLES];
        uint32_t nodes[EXAMPLES];
};

/* Why a peer's address cannot be a next hop (checked once per node). */
enum peer_state {
        PEER_UNCHECKED,
        PEER_OK,
        PEER_IS_SELF,      /* this node's own address */
        PEER_IS_NETWORK,   /* the uplink subnet's network address */
        PEER_IS_BROADCAST, /* the uplink subnet's broadcast address */
        PEER_IN_BLOCK,     /* inside a pool block: pod space */
};

/* What one prefix added to the plan's counts (struct plan n_routes_*, n_blocks_upstream,
 * n_borrowed*): kept per prefix by a context (plan_build_ctx()), so that a delta pass
 * can take a replanned prefix's old share out of the totals and put its new one in. */
enum {
        MK_WANTED,
        MK_FOREIGN,
        MK_CONFLICTING,
        MK_UPSTREAM,
        MK_BORROWED,
        MK_BORROWED_UPSTREAM,
        MK_N,
};

struct pfx_marks {
        uint8_t v[MK_N]; /* each at most 2 (foreign and conflicting: main and our table) */
};

struct planner {
        const struct cfg_model *m;
        const struct host_snapshot *h;
        const struct host_record *rec;
        struct plan *p;
        size_t cap_actions, cap_findings, cap_rules;
        const struct host_link *uplink;
        uint32_t self;                /* node index, UINT32_MAX when absent */
        struct cfg_prefix self_addr;  /* this node's IPv4 address with its length */
        struct cfg_prefix self_addr6; /* this node's IPv6 address with its length */
        struct cfg_prefix nets[64];   /* the uplink's connected prefixes */
        size_t n_nets;
        bool *applies;                /* per pool */
        struct node_note *upstream;   /* per node: blocks that need upstream routing */
        struct node_note *no_addr;    /* per node: blocks of nodes with no address */
        uint8_t *peer;                /* per node and family (PEER_IX): enum peer_state */
        uint32_t *peer_routes;        /* per node and family: routes not installed for a bad peer address */
        struct cfg_prefix *guarded;   /* addresses no route of ours may cover, sorted */
        size_t n_guarded;
        struct cfg_prefix gateway;    /* the IPv4 default gateway, family 0 = none */
        struct cfg_prefix gateway6;   /* the IPv6 one */
        struct addr_note borrowed;    /* borrowed addresses routed to their hosts */
        struct addr_note borrowed_upstream, borrowed_no_addr;
        size_t n_bird, n_set_aside;
        size_t n_old_owner;           /* routes of the recorded old protocol/table */
        struct plan_ctx *ctx;         /* a full build keeping its context: marks recorded there */
        struct pfx_marks *cur;        /* a delta pass: the marks of the prefix being planned */
        bool ctx_failed;              /* out of memory while recording: the context is dropped */
        bool guarded_shared;          /* guarded belongs to the context (delta): not freed */
        const struct plan_sink *sink; /* a sliced pass: the route walk hands its actions over */
        bool flushing;                /* in the route walk: actions go to the sink by slices */
        size_t flushed_at;            /* p->n_actions after the last hand-over */
};

static void ctx_mark(struct planner *pl, const struct cfg_prefix *dst, int k);

/* Count one of mark k (MK_*) for dst in the marks a context keeps (nothing without one). */
#define MARK(pl, dst, k) ctx_mark((pl), (dst), (k))

/* The slot of node ni's address of a family in the per-node-and-family arrays. */
#define PEER_IX(ni, family) ((size_t)(ni) * 2 + ((family) == AF_INET6))

/* ---- small helpers ---- */

static _printf_(4, 5) int add_finding(struct planner *pl, enum plan_severity sev, const char *code,
                                      const char *fmt, ...)
{
        struct plan *p = pl->p;
        va_list ap;
        char *msg;
        int r;

        if (sev == PLAN_BLOCKING)
                p->n_blocking++;
        if (p->n_findings >= PLAN_MAX_FINDINGS)
                return 0;
        if ((r = GROW(p->findings, pl->cap_findings, p->n_findings + 1)) < 0)
                return r;
        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        p->findings[p->n_findings++] = (struct plan_finding){ .severity = sev, .code = code, .message = msg };
        return 0;
}

static int add_action(struct planner *pl, const struct host_change *a)
{
        struct plan *p = pl->p;
        int r;

        if ((r = GROW(p->actions, pl->cap_actions, p->n_actions + 1)) < 0)
                return r;
        p->actions[p->n_actions++] = *a;
        /* A sliced pass: a slice's worth waiting goes to the sink, which applies and
         * reports it and may take applied actions out of p->actions. */
        if (pl->flushing && p->n_actions - pl->flushed_at >= pl->sink->slice) {
                if ((r = pl->sink->flush(pl->sink->data, p, pl->ctx_failed ? NULL : pl->ctx)) < 0)
                        return r;
                pl->flushed_at = p->n_actions;
        }
        return 0;
}

static const char *pfx(const struct cfg_prefix *p, char *buf)
{
        cfg_prefix_fmt(p, buf, CFG_PREFIX_STRLEN);
        return buf;
}

static const char *addr(const struct cfg_prefix *p, char *buf)
{
        cfg_addr_fmt(p, buf, CFG_PREFIX_STRLEN);
        return buf;
}

static struct cfg_prefix host_prefix(const struct cfg_prefix *a)
{
        struct cfg_prefix p = *a;

        p.len = (uint8_t)cfg_prefix_maxlen(a);
        return p;
}

/* The uplink's connected prefixes, collected once: on_link() runs for every block. */
static void collect_uplink_nets(struct planner *pl)
{
        for (size_t i = 0; pl->uplink && i < pl->h->n_addrs; i++) {
                const struct host_addr *ha = &pl->h->addrs[i];

                if (ha->ifindex != pl->uplink->ifindex || pl->n_nets >= ELEMENTSOF(pl->nets))
                        continue;
                pl->nets[pl->n_nets] = ha->addr;
                cfg_prefix_mask(&pl->nets[pl->n_nets++]);
        }
}

/* A connected prefix of the uplink contains p (DESIGN §3: "on-link" for an address). */
static bool uplink_subnet_contains(const struct planner *pl, const struct cfg_prefix *p)
{
        for (size_t i = 0; i < pl->n_nets; i++)
                if (cfg_prefix_contains(&pl->nets[i], p))
                        return true;
        return false;
}

static bool on_link(const struct planner *pl, const struct cfg_prefix *a)
{
        struct cfg_prefix hp = host_prefix(a);

        return uplink_subnet_contains(pl, &hp);
}

/* fe80::/10: the kernel gives one to every device that runs IPv6; nobody's "own". */
static bool is_link_local6(const struct cfg_prefix *a)
{
        return a->family == AF_INET6 && a->addr[0] == 0xfe && (a->addr[1] & 0xc0) == 0x80;
}

/* This node's address of one family: the resources', else the uplink's first one
 * (for IPv6 its first global one: a link-local address is no subnet). */
static void find_self_family(struct planner *pl, const struct cfg_node *self, int family, struct cfg_prefix *ret)
{
        const struct cfg_prefix *a = self ? cfg_node_addr(self, family) : NULL;

        if (a) {
                *ret = *a;
                return;
        }
        for (size_t i = 0; pl->uplink && i < pl->h->n_addrs; i++) {
                const struct host_addr *ha = &pl->h->addrs[i];

                if (ha->ifindex == pl->uplink->ifindex && ha->addr.family == family && !is_link_local6(&ha->addr)) {
                        *ret = ha->addr;
                        return;
                }
        }
}

static void find_self(struct planner *pl)
{
        const struct cfg_node *self = cfg_model_self(pl->m);

        pl->self = self ? (uint32_t)(self - pl->m->nodes) : UINT32_MAX;
        find_self_family(pl, self, AF_INET, &pl->self_addr);
        find_self_family(pl, self, AF_INET6, &pl->self_addr6);
}

static const struct cfg_prefix *self_addr_of(const struct planner *pl, int family)
{
        return family == AF_INET6 ? &pl->self_addr6 : &pl->self_addr;
}

/* ---- pools ---- */

static int plan_pools(struct planner *pl)
{
        const struct cfg_model *m = pl->m;
        const struct cfg_labels *labels = cfg_model_self_labels(m);
        struct plan *p = pl->p;
        bool *local;

        p->pools = calloc(m->n_pools ? m->n_pools : 1, sizeof(*p->pools));
        pl->applies = calloc(m->n_pools ? m->n_pools : 1, sizeof(*pl->applies));
        local = calloc(m->n_pools ? m->n_pools : 1, sizeof(*local));
        if (!p->pools || !pl->applies || !local) {
                free(local);
                return -ENOMEM;
        }
        for (size_t i = 0; i < m->n_blocks; i++)
                if (m->blocks[i].node == pl->self)
                        local[m->blocks[i].pool] = true;
        p->tunnels_unneeded = true;
        p->tunnel6_unneeded = true;
        for (size_t i = 0; i < m->n_pools; i++) {
                const struct cfg_pool *pool = &m->pools[i];
                struct plan_pool *pp = &p->pools[p->n_pools++];
                bool match = sel_match(pool->selector, labels);
                const char *sel = *pool->node_selector ? pool->node_selector : "all()";

                pp->pool = (uint32_t)i;
                pp->applies = pl->applies[i] = match || local[i];
                /* A pool without Workload in allowedUses holds no pod blocks: set aside
                 * (no routes, no proxy ARP for it); it still counts for the tunnels,
                 * whose addresses Tunnel pools hold. */
                pp->underlay = !pool->nat_outgoing && pool->workload;
                if (match)
                        snprintf(pp->reason, sizeof(pp->reason), "nodeSelector %s matches this node%s", sel,
                                 pool->disabled ? " (disabled: its addresses are still in use)" : "");
                else if (local[i])
                        snprintf(pp->reason, sizeof(pp->reason),
                                 "a block is affine to this node (nodeSelector %s no longer matches)", sel);
                else
                        snprintf(pp->reason, sizeof(pp->reason), "nodeSelector %s does not match this node", sel);
                text_utf8_trim(pp->reason); /* a long selector is cut: not inside a character */
                if (!pp->applies)
                        continue;
                /* Only IPv4 pools turn on proxy ARP (IPv6 pools get their block
                 * routes; proxy NDP is their own). */
                if (pp->underlay && pool->cidr.family == AF_INET)
                        p->underlay = true;
                if (pp->underlay && pool->cidr.family == AF_INET6)
                        p->underlay6 = true;
                if (pool->ipip != CFG_ENCAP_NEVER || pool->vxlan != CFG_ENCAP_NEVER)
                        p->tunnels_unneeded = false;
                /* Felix keeps vxlan-v6.calico for IPv6 pools with VXLAN (felix/
                 * dataplane/linux/vxlan_mgr.go, one manager per family) */
                if (pool->cidr.family == AF_INET6 && pool->vxlan != CFG_ENCAP_NEVER)
                        p->tunnel6_unneeded = false;
        }
        free(local);
        return 0;
}

/* ---- desired block routes ---- */

static void note(struct node_note *notes, uint32_t node, uint32_t block)
{
        struct node_note *n = &notes[node];

        if (n->count < EXAMPLES)
                n->examples[n->count] = block;
        n->count++;
}

/* Is the path from here to a peer address (of the pool's family) unencapsulated for
 * this pool? */
static bool unencapsulated(const struct planner *pl, const struct cfg_pool *pool, const struct cfg_prefix *peer_addr)
{
        enum cfg_encap e = pool->ipip != CFG_ENCAP_NEVER ? pool->ipip : pool->vxlan;
        struct cfg_prefix net = *self_addr_of(pl, pool->cidr.family), peer_host = host_prefix(peer_addr);

        if (e == CFG_ENCAP_NEVER)
                return true;
        if (e == CFG_ENCAP_ALWAYS || !net.family)
                return false;
        /* CrossSubnet: plain when the peer is in this node's subnet of that family. */
        cfg_prefix_mask(&net);
        return cfg_prefix_contains(&net, &peer_host);
}

/* ---- addresses our routes must never cover (DESIGN §3.2) ---- */

static int guarded_cmp(const void *a, const void *b)
{
        return cfg_prefix_cmp(a, b);
}

/* The IPv4 and IPv6 default gateways of the main table (of several default routes, the
 * one of the lowest metric, as the kernel picks), if the snapshot holds them. */
static void find_gateway(struct planner *pl)
{
        uint32_t best[2] = { UINT32_MAX, UINT32_MAX };

        for (size_t i = 0; i < pl->h->n_routes; i++) {
                const struct host_route *r = &pl->h->routes[i];
                bool v6 = r->dst.family == AF_INET6;

                if (r->dst.len == 0 && r->table == 254 && r->gateway.family == r->dst.family &&
                    r->protocol != pl->m->settings.route_protocol && (r->priority < best[v6] || best[v6] == UINT32_MAX)) {
                        best[v6] = r->priority;
                        *(v6 ? &pl->gateway6 : &pl->gateway) = host_prefix(&r->gateway);
                }
        }
}

/* This node's address, its default gateway and every node's address, as host
 * prefixes, sorted: a route of ours covering one of them would cut the node off from
 * its own subnet, its gateway or a peer (a blackhole over the node's own address, a
 * block route over a peer's). */
static int collect_guarded(struct planner *pl)
{
        const struct cfg_model *m = pl->m;
        size_t n = 0;

        pl->guarded = malloc((2 * m->n_nodes + 4) * sizeof(*pl->guarded));
        if (!pl->guarded)
                return -ENOMEM;
        if (pl->self_addr.family == AF_INET)
                pl->guarded[n++] = host_prefix(&pl->self_addr);
        if (pl->self_addr6.family == AF_INET6)
                pl->guarded[n++] = host_prefix(&pl->self_addr6);
        if (pl->gateway.family)
                pl->guarded[n++] = pl->gateway;
        if (pl->gateway6.family)
                pl->guarded[n++] = pl->gateway6;
        for (size_t i = 0; i < m->n_nodes; i++) {
                if (m->nodes[i].addr.family == AF_INET)
                        pl->guarded[n++] = host_prefix(&m->nodes[i].addr);
                if (m->nodes[i].addr6.family == AF_INET6)
                        pl->guarded[n++] = host_prefix(&m->nodes[i].addr6);
        }
        qsort(pl->guarded, n, sizeof(*pl->guarded), guarded_cmp);
        pl->n_guarded = n;
        return 0;
}

/* The first guarded address inside dst, or NULL: a binary search for the first one at
 * or after dst's network address. */
static const struct cfg_prefix *guarded_in(const struct planner *pl, const struct cfg_prefix *dst)
{
        size_t lo = 0, hi = pl->n_guarded;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (cfg_prefix_cmp(&pl->guarded[mid], dst) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < pl->n_guarded && cfg_prefix_contains(dst, &pl->guarded[lo]) ? &pl->guarded[lo] : NULL;
}

/* Whose address g is, for the message. */
static const char *guarded_what(const struct planner *pl, const struct cfg_prefix *g, char *buf, size_t size)
{
        const struct cfg_prefix *sa = self_addr_of(pl, g->family);
        const struct cfg_prefix *gw = g->family == AF_INET6 ? &pl->gateway6 : &pl->gateway;
        struct cfg_prefix self = host_prefix(sa);

        if (sa->family && cfg_prefix_eq(g, &self))
                return "this node's own address";
        if (gw->family && cfg_prefix_eq(g, gw))
                return "this node's default gateway";
        for (size_t i = 0; i < pl->m->n_nodes; i++) {
                const struct cfg_node *n = &pl->m->nodes[i];
                const struct cfg_prefix *na = cfg_node_addr(n, g->family);
                struct cfg_prefix a;

                if (!na)
                        continue;
                a = host_prefix(na);
                if (cfg_prefix_eq(g, &a)) {
                        snprintf(buf, size, "node %s's address", n->name);
                        return buf;
                }
        }
        return "a node's address";
}

/* A route we would want covers a guarded address: never installed, reported as
 * blocking with the addresses (DESIGN §3.2). kind 1: block i, 2: borrowed address i. */
static int unsafe_route(struct planner *pl, const struct host_route *r, int kind, uint32_t i)
{
        const struct cfg_model *m = pl->m;
        const struct cfg_prefix *g = guarded_in(pl, &r->dst);
        char d[CFG_PREFIX_STRLEN], a[CFG_PREFIX_STRLEN], who[300], what_node[300];

        if (!g)
                return 0;
        if (kind == 1)
                snprintf(what_node, sizeof(what_node), "block of %s%s", m->nodes[m->blocks[i].node].name,
                         m->blocks[i].node == pl->self ? ", this node" : "");
        else
                snprintf(what_node, sizeof(what_node), "borrowed address hosted by %s",
                         m->nodes[m->borrowed[i].node].name);
        return add_finding(pl, PLAN_BLOCKING, "route-covers-node-address",
                           "%s %s (%s) would cover %s (%s): not installed; fix the pool or the block",
                           r->type == HOST_RTN_UNICAST ? "route" : plan_route_type_name(r->type), pfx(&r->dst, d),
                           what_node, addr(g, a), guarded_what(pl, g, who, sizeof(who))) < 0
                       ? -ENOMEM
                       : 1;
}

/* The block of the model containing a (blocks are sorted and disjoint), or NULL. */
static const struct cfg_block *block_containing(const struct cfg_model *m, const struct cfg_prefix *a)
{
        size_t lo = 0, hi = m->n_blocks;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (cfg_prefix_cmp(&m->blocks[mid].cidr, a) <= 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo && cfg_prefix_contains(&m->blocks[lo - 1].cidr, a) ? &m->blocks[lo - 1] : NULL;
}

/* Can node ni's address of a family be a next hop? Not when it is this node's own
 * address, the network or broadcast address of the uplink's IPv4 subnet, or inside a
 * pool block (pod space): the kernel would refuse the route, or it would loop, on
 * every pass. */
static enum peer_state peer_check(struct planner *pl, uint32_t ni, int family)
{
        const struct cfg_prefix *sa = self_addr_of(pl, family);
        struct cfg_prefix a = host_prefix(cfg_node_addr(&pl->m->nodes[ni], family)), self = host_prefix(sa);
        uint8_t *st = &pl->peer[PEER_IX(ni, family)];

        if (*st != PEER_UNCHECKED)
                return *st;
        *st = PEER_OK;
        if (sa->family && cfg_prefix_eq(&a, &self))
                *st = PEER_IS_SELF;
        for (size_t i = 0; i < pl->n_nets && *st == PEER_OK; i++) {
                const struct cfg_prefix *net = &pl->nets[i];
                struct cfg_prefix bcast = *net;

                if (net->family != AF_INET || net->len >= 31 || !cfg_prefix_contains(net, &a))
                        continue;
                for (unsigned bit = net->len; bit < 32; bit++)
                        bcast.addr[bit / 8] |= (uint8_t)(0x80u >> (bit % 8));
                bcast.len = 32;
                if (!memcmp(a.addr, net->addr, 4))
                        *st = PEER_IS_NETWORK;
                else if (!memcmp(a.addr, bcast.addr, 4))
                        *st = PEER_IS_BROADCAST;
        }
        if (*st == PEER_OK && block_containing(pl->m, &a))
                *st = PEER_IN_BLOCK;
        return *st;
}

/* The route block bi wants, if any (noting why not where an operator must know). */
static bool plan_block(struct planner *pl, uint32_t bi, struct host_route *ret)
{
        const struct cfg_settings *s = &pl->m->settings;
        const struct cfg_block *b = &pl->m->blocks[bi];
        const struct cfg_pool *pool = &pl->m->pools[b->pool];
        const struct cfg_prefix *peer = cfg_node_addr(&pl->m->nodes[b->node], b->cidr.family);
        struct host_route r = {
                .dst = b->cidr,
                .table = s->route_table,
                .priority = s->route_metric,
                .protocol = s->route_protocol,
                .type = HOST_RTN_UNICAST,
        };

        if (b->node == pl->self) {
                /* A /32 (/128) block gets no local route: the pod's own route is the
                 * only one (BIRD skips them: node/filesystem/etc/calico/confd/templates/
                 * bird_aggr.cfg.template, `if not (hasSuffix $cidr "/32")`, and
                 * bird6_aggr.cfg.template for "/128"). */
                if (s->local_block_route == CFG_LOCAL_NONE || b->cidr.len == cfg_prefix_maxlen(&b->cidr))
                        return 0;
                r.type = s->local_block_route == CFG_LOCAL_BLACKHOLE ? HOST_RTN_BLACKHOLE : HOST_RTN_UNREACHABLE;
                *ret = r;
                return true;
        }
        if (!peer) {
                note(pl->no_addr, b->node, bi);
                return false;
        }
        if (!pl->uplink)
                return false; /* reported as uplink-not-found; our routes are kept */
        /* No direct route: encapsulated (Calico's tunnel carries node-to-node traffic)
         * or off-link. Either way the rest of the network reaches these pods only
         * through upstream routing (DESIGN §3.2 "otherwise"). */
        if (!unencapsulated(pl, pool, peer) || !on_link(pl, peer)) {
                note(pl->upstream, b->node, bi);
                pl->p->n_blocks_upstream++;
                MARK(pl, &b->cidr, MK_UPSTREAM);
                return false;
        }
        if (peer_check(pl, b->node, peer->family) != PEER_OK) {
                pl->peer_routes[PEER_IX(b->node, peer->family)]++;
                return false;
        }
        r.gateway = host_prefix(peer);
        r.oif = pl->uplink->ifindex;
        *ret = r;
        return true;
}

static void note_addr(struct addr_note *n, const struct cfg_prefix *a, uint32_t node)
{
        if (n->count < EXAMPLES) {
                n->examples[n->count] = *a;
                n->nodes[n->count] = node;
        }
        n->count++;
}

/* The route borrowed address bi wants (DESIGN §3.2): a host route to the node that
 * hosts it, on every node but that one (Felix routes its own pods there); on the
 * block's affine node it beats the block's blackhole by length. Felix's route
 * resolver does the same for the overlay (felix/calc/l3_route_resolver.go: routes of
 * NonAffineAllocations() to their hosts). Same on-link and encapsulation rules as a
 * block. */
static bool plan_borrowed(struct planner *pl, uint32_t bi, struct host_route *ret)
{
        const struct cfg_settings *s = &pl->m->settings;
        const struct cfg_borrowed *b = &pl->m->borrowed[bi];
        const struct cfg_prefix *host = cfg_node_addr(&pl->m->nodes[b->node], b->addr.family);

        if (b->node == pl->self)
                return false;
        note_addr(&pl->borrowed, &b->addr, b->node);
        MARK(pl, &b->addr, MK_BORROWED);
        if (!host) {
                note_addr(&pl->borrowed_no_addr, &b->addr, b->node);
                return false;
        }
        if (!pl->uplink)
                return false;
        if (!unencapsulated(pl, &pl->m->pools[b->pool], host) || !on_link(pl, host)) {
                note_addr(&pl->borrowed_upstream, &b->addr, b->node);
                MARK(pl, &b->addr, MK_BORROWED_UPSTREAM);
                return false;
        }
        if (peer_check(pl, b->node, host->family) != PEER_OK) {
                pl->peer_routes[PEER_IX(b->node, host->family)]++;
                return false;
        }
        *ret = (struct host_route){
                .dst = b->addr,
                .table = s->route_table,
                .priority = s->route_metric,
                .protocol = s->route_protocol,
                .type = HOST_RTN_UNICAST,
                .gateway = host_prefix(host),
                .oif = pl->uplink->ifindex,
        };
        return true;
}

/* What the walk over the wanted routes needs before it starts: the per-node tallies
 * it fills (reported at the end), the default gateway and the addresses no route of
 * ours may cover. Plans nothing itself. */
static int prepare_route_walk(struct planner *pl)
{
        const struct cfg_model *m = pl->m;

        pl->upstream = calloc(m->n_nodes ? m->n_nodes : 1, sizeof(*pl->upstream));
        pl->no_addr = calloc(m->n_nodes ? m->n_nodes : 1, sizeof(*pl->no_addr));
        pl->peer = calloc(2 * m->n_nodes + 1, sizeof(*pl->peer));
        pl->peer_routes = calloc(2 * m->n_nodes + 1, sizeof(*pl->peer_routes));
        if (!pl->upstream || !pl->no_addr || !pl->peer || !pl->peer_routes)
                return -ENOMEM;
        find_gateway(pl);
        return collect_guarded(pl);
}

/* The wanted routes in destination order: the model's blocks (sorted by cidr, one per
 * cidr) merged with its borrowed addresses (sorted, one per address). A borrowed
 * address sorts after its block (same address, longer prefix, or a later address);
 * when a /32 block and a borrowed address are the same prefix, the borrowed one (its
 * host) wins. Never collected in a list, so 100k of them cost only the walk. */
struct want_iter {
        size_t next;          /* the block to look at next */
        size_t next_borrowed; /* the borrowed address to look at next */
        bool valid;           /* r and pool hold a wanted route */
        struct host_route r;
        uint32_t pool;
};

/* Routed at all: an underlay pool (IPv4 or IPv6) that holds pod blocks. Every block
 * of such a pool, whether or not the pool applies here: nodes on a shared segment
 * route to each other's blocks (DESIGN §1, §3.2). When our routes move to a table of
 * our own behind per-pool policy rules (DESIGN §3.2, issue 13), IPv6 pools need their
 * rules too (FRA family AF_INET6): their routes go through the same walk. */
static bool pool_routed(const struct cfg_model *m, uint32_t pool)
{
        return !m->pools[pool].nat_outgoing && m->pools[pool].workload;
}

/* Take the next candidate in order: 1 a block, 2 a borrowed address, 0 none. */
static int want_take(const struct cfg_model *m, struct want_iter *it, uint32_t *ret)
{
        bool blk = it->next < m->n_blocks, bor = it->next_borrowed < m->n_borrowed;
        int c;

        if (!blk && !bor)
                return 0;
        c = !bor ? -1 : !blk ? 1 : cfg_prefix_cmp(&m->blocks[it->next].cidr, &m->borrowed[it->next_borrowed].addr);
        if (c < 0) {
                *ret = (uint32_t)it->next++;
                return 1;
        }
        if (c == 0)
                it->next++; /* the /32 block of a borrowed address: the host wins */
        *ret = (uint32_t)it->next_borrowed++;
        return 2;
}

static int want_next(struct planner *pl, struct want_iter *it)
{
        const struct cfg_model *m = pl->m;
        uint32_t i;
        int kind, r;

        it->valid = false;
        while (!it->valid && (kind = want_take(m, it, &i))) {
                uint32_t pool = kind == 1 ? m->blocks[i].pool : m->borrowed[i].pool;

                if (!pool_routed(m, pool))
                        continue;
                it->valid = kind == 1 ? plan_block(pl, i, &it->r) : plan_borrowed(pl, i, &it->r);
                it->pool = pool;
                if (it->valid && (r = unsafe_route(pl, &it->r, kind, i)) != 0) {
                        if (r < 0)
                                return r;
                        it->valid = false;
                }
        }
        pl->p->n_routes_wanted += it->valid;
        if (it->valid)
                MARK(pl, &it->r.dst, MK_WANTED);
        return 0;
}

/* ---- matching desired routes against the kernel's ---- */

/* "Equivalent" (DESIGN §3): same prefix, type, gateway and device, in any table. */
static bool same_path(const struct host_route *a, const struct host_route *b)
{
        /* "Equivalent" (DESIGN §3): same prefix, type, gateway and device, in any table.
         * The kernel reports IPv6 blackhole and unreachable routes on the loopback device
         * (ip6_route_info_create() gives reject routes dev lo); they have no device. */
        bool unicast = a->type == HOST_RTN_UNICAST;

        return cfg_prefix_eq(&a->dst, &b->dst) && a->type == b->type && cfg_prefix_eq(&a->gateway, &b->gateway) &&
               (!unicast || a->oif == b->oif) && !a->multipath && !b->multipath;
}

static int route_ptr_cmp(const void *x, const void *y)
{
        const struct host_route *a = *(const struct host_route *const *)x, *b = *(const struct host_route *const *)y;

        return cfg_prefix_cmp(&a->dst, &b->dst);
}

static int del_route(struct planner *pl, const struct host_route *r)
{
        struct host_change a = { .kind = CHANGE_DEL_ROUTE, .route = *r, .pool = UINT32_MAX, .ifindex = r->oif };
        const struct host_link *l = r->oif ? host_link_by_index(pl->h, r->oif) : NULL;

        if (l)
                snprintf(a.dev, sizeof(a.dev), "%s", l->name);
        return add_action(pl, &a);
}

/* A foreign route for one of our prefixes that differs from ours. In main it wins by
 * lookup (the rules consult main first) and ours stands by; in our own table someone
 * else's route holds the key, and we do not compete for it there. */
static int conflict(struct planner *pl, const struct host_route *want, const struct host_route *foreign)
{
        char d[CFG_PREFIX_STRLEN], fg[CFG_PREFIX_STRLEN], wg[CFG_PREFIX_STRLEN], t[48];
        bool in_main = foreign->table == PLAN_TABLE_MAIN;

        pl->p->n_routes_conflicting++;
        MARK(pl, &want->dst, MK_CONFLICTING);
        snprintf(t, sizeof(t), "%s %u", in_main ? "table main," : "our table", foreign->table);
        return add_finding(pl, PLAN_WARNING, "foreign-route-conflict",
                           "%s: a route of protocol %u (%s%s%s, %s) differs from ours (%s%s%s); left alone, %s",
                           pfx(&want->dst, d), foreign->protocol, plan_route_type_name(foreign->type),
                           foreign->gateway.family ? " via " : "",
                           foreign->gateway.family ? addr(&foreign->gateway, fg) : "",
                           in_main ? "table main" : t, plan_route_type_name(want->type),
                           want->gateway.family ? " via " : "", want->gateway.family ? addr(&want->gateway, wg) : "",
                           in_main ? "it wins by lookup and ours stands by" : "ours not installed");
}

/* Without an uplink (a default route flapping, the device being replaced) we cannot
 * tell where peers are: leave our peer routes alone rather than cut traffic. */
static bool keep_while_no_uplink(const struct planner *pl, const struct host_route *r)
{
        return !pl->uplink && r->type == HOST_RTN_UNICAST;
}

/* Foreign routes for the destination in main: they win by lookup (the first rule
 * consults main), so ours stays installed as the standby that takes over the moment
 * they go (BIRD withdrawing, Felix removing), with no race and no withdrawal of ours.
 * Only counted and reported. */
static int note_main(struct planner *pl, const struct host_route *want, const struct host_route *const *have,
                     size_t n)
{
        const struct host_route *foreign = NULL;

        for (size_t i = 0; i < n && want; i++) {
                if (have[i]->table != PLAN_TABLE_MAIN || have[i]->protocol == pl->m->settings.route_protocol)
                        continue;
                if (same_path(have[i], want)) {
                        pl->p->n_routes_foreign++;
                        MARK(pl, &want->dst, MK_FOREIGN);
                        pl->n_bird += have[i]->protocol == RTPROT_BIRD;
                        return 0;
                }
                if (!foreign)
                        foreign = have[i];
        }
        return foreign ? conflict(pl, want, foreign) : 0;
}

/* One destination: the routes the kernel has for it in main and in our table (a
 * sorted group) and the one we want (or NULL). */
static int plan_dst(struct planner *pl, const struct host_route *want, uint32_t pool,
                    const struct host_route *const *have, size_t n)
{
        const struct host_route *foreign = NULL, *keep = NULL, *same_key = NULL;
        const struct cfg_settings *s = &pl->m->settings;
        int r;

        if ((r = note_main(pl, want, have, n)) < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                const struct host_route *h = have[i];

                if (h->table != s->route_table)
                        continue;
                if (h->protocol != s->route_protocol) {
                        if (want && same_path(h, want)) {
                                foreign = h;
                                break;
                        }
                        if (!foreign)
                                foreign = h;
                } else if (want && same_path(h, want) && h->priority == want->priority && !keep)
                        keep = h;
                else if (want && h->priority == want->priority && !same_key)
                        same_key = h;
        }
        if (want && foreign) {
                /* Someone else's route in our own table: theirs holds the key. */
                if (same_path(foreign, want)) {
                        pl->p->n_routes_foreign++;
                        MARK(pl, &want->dst, MK_FOREIGN);
                } else if ((r = conflict(pl, want, foreign)) < 0)
                        return r;
                keep = same_key = NULL;
                want = NULL;
        }
        for (size_t i = 0; i < n; i++)
                if (have[i]->table == s->route_table && have[i]->protocol == s->route_protocol && have[i] != keep &&
                    have[i] != same_key && !keep_while_no_uplink(pl, have[i]) && (r = del_route(pl, have[i])) < 0)
                        return r;
        if (want && !keep) {
                struct host_change a = { .kind = CHANGE_ADD_ROUTE, .route = *want, .replace = same_key != NULL,
                                         .ifindex = want->oif, .pool = pool };

                if (pl->uplink && want->oif)
                        snprintf(a.dev, sizeof(a.dev), "%s", pl->uplink->name);
                return add_action(pl, &a);
        }
        return 0;
}

/* A route the record says was ours before routeProtocol or routeTable changed: its
 * protocol and table are the recorded pair, which is no longer the settings' pair.
 * (With the protocol unchanged, own routes in another table are found anyway.) */
static bool owned_before(const struct planner *pl, const struct host_route *rt)
{
        const struct cfg_settings *s = &pl->m->settings;
        const struct host_record *rec = pl->rec;

        return rec->route_protocol && rec->route_protocol != s->route_protocol && rt->protocol == rec->route_protocol &&
               rt->table == rec->route_table;
}

/* The routes' owner as the record must say after this plan: the settings' pair while
 * any underlay pool exists (routes of ours may be wanted), none once there is none
 * (every route of ours is withdrawn by this plan). */
static void record_route_owner(struct planner *pl)
{
        const struct cfg_settings *s = &pl->m->settings;
        bool any = false;

        for (size_t i = 0; i < pl->m->n_pools && !any; i++)
                any = !pl->m->pools[i].nat_outgoing;
        pl->p->record.route_protocol = any ? s->route_protocol : 0;
        pl->p->record.route_table = any ? s->route_table : 0;
}

/* The old owner's routes this plan withdraws (counted by the route walk). */
static int report_old_owner(struct planner *pl)
{
        const struct cfg_settings *s = &pl->m->settings;
        const struct host_record *rec = pl->rec;

        if (!pl->n_old_owner)
                return 0;
        return add_finding(pl, PLAN_WARNING, "route-owner-changed",
                           "%zu route%s of protocol %u in table %u %s ours before routeProtocol/routeTable became "
                           "%u/%u: withdrawn",
                           pl->n_old_owner, pl->n_old_owner == 1 ? "" : "s", rec->route_protocol, rec->route_table,
                           pl->n_old_owner == 1 ? "was" : "were", s->route_protocol, s->route_table);
}

/* Routes of ours outside our table (an earlier version's in main, or a table
 * routeTable named before), and those the record says were ours under another
 * protocol: withdrawn after the rules and our table are in place, so that traffic
 * always has a route. */
static int del_stale(struct planner *pl)
{
        const struct cfg_settings *s = &pl->m->settings;
        int r;

        for (size_t k = 0; k < pl->h->n_routes; k++) {
                const struct host_route *rt = &pl->h->routes[k];
                bool old = owned_before(pl, rt);

                if ((rt->dst.family != AF_INET && rt->dst.family != AF_INET6) || rt->table == s->route_table ||
                    (!old && rt->protocol != s->route_protocol))
                        continue;
                if ((r = del_route(pl, rt)) < 0)
                        return r;
                pl->n_old_owner += old;
        }
        return 0;
}

/* The routes of one destination from the compact form (h->routes4 from *q on), after
 * the whole ones (have[0..n)): their pointers in *grp, the compact ones expanded in
 * *tmp (both grown as needed). Returns the group's size, or -ENOMEM. */
static ssize_t group_dst(const struct host_snapshot *h, const struct cfg_prefix *dst, size_t *q,
                         const struct host_route *const *have, size_t n, struct host_route **tmp, size_t *cap_tmp,
                         const struct host_route ***grp, size_t *cap_grp)
{
        size_t k = *q, m = 0;

        while (k < h->n_routes4 && h->routes4[k].len == dst->len && !memcmp(h->routes4[k].dst, dst->addr, 4) &&
               dst->family == AF_INET)
                k++;
        if (GROW(*tmp, *cap_tmp, k - *q + 1) < 0 || GROW(*grp, *cap_grp, n + k - *q + 1) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                (*grp)[m++] = have[i];
        for (size_t i = *q; i < k; i++) {
                (*tmp)[i - *q] = host_route4_get(h, i);
                (*grp)[m++] = &(*tmp)[i - *q];
        }
        *q = k;
        return (ssize_t)m;
}

static int plan_routes(struct planner *pl)
{
        const struct host_snapshot *h = pl->h;
        const struct cfg_settings *s = &pl->m->settings;
        _cleanup_(freep) const struct host_route **have = NULL;
        _cleanup_(freep) const struct host_route **grp = NULL;
        _cleanup_(freep) struct host_route *tmp = NULL;
        struct want_iter it = {};
        size_t n = 0, j = 0, q = 0, cap_grp = 0, cap_tmp = 0;
        int r;

        have = malloc((h->n_routes ? h->n_routes : 1) * sizeof(*have));
        if (!have)
                return -ENOMEM;
        for (size_t k = 0; k < h->n_routes; k++) {
                const struct host_route *rt = &h->routes[k];

                if (rt->dst.family != AF_INET && rt->dst.family != AF_INET6)
                        continue;
                if (owned_before(pl, rt) && rt->table == s->route_table) {
                        /* Ours under the recorded protocol, in the table ours go to: the
                         * same key as ours, so it goes first (EEXIST otherwise). */
                        if ((r = del_route(pl, rt)) < 0)
                                return r;
                        pl->n_old_owner++;
                        continue;
                }
                if (owned_before(pl, rt))
                        continue; /* in another table: del_stale(), after ours are in */
                if (rt->table == s->route_table ||
                    (rt->table == PLAN_TABLE_MAIN && rt->protocol != s->route_protocol))
                        have[n++] = rt;
        }
        qsort(have, n, sizeof(*have), route_ptr_cmp);
        /* Merge walk: the wanted routes, the whole ones and the compact ones (the bulk
         * of our table), all sorted by destination. */
        if ((r = want_next(pl, &it)) < 0)
                return r;
        while (it.valid || j < n || q < h->n_routes4) {
                const struct host_route *w = it.valid ? &it.r : NULL;
                struct cfg_prefix next = {}, c4 = {};
                bool any = false;
                size_t k = j;
                ssize_t m;
                int c;

                /* The smallest destination the kernel has left. */
                if (j < n) {
                        next = have[j]->dst;
                        any = true;
                }
                if (q < h->n_routes4) {
                        c4 = (struct cfg_prefix){ .family = AF_INET, .len = h->routes4[q].len };
                        memcpy(c4.addr, h->routes4[q].dst, 4);
                        if (!any || cfg_prefix_cmp(&c4, &next) < 0)
                                next = c4;
                        any = true;
                }
                if (!w)
                        c = 1;
                else if (!any)
                        c = -1;
                else
                        c = cfg_prefix_cmp(&w->dst, &next);
                if (c >= 0)
                        while (k < n && cfg_prefix_eq(&have[k]->dst, &next))
                                k++;
                m = 0;
                if (c >= 0 && (m = group_dst(h, &next, &q, have + j, k - j, &tmp, &cap_tmp, &grp, &cap_grp)) < 0)
                        return (int)m;
                if ((r = plan_dst(pl, c <= 0 ? w : NULL, c <= 0 ? it.pool : UINT32_MAX, grp, (size_t)m)) < 0)
                        return r;
                if (c <= 0 && (r = want_next(pl, &it)) < 0)
                        return r;
                if (c >= 0)
                        j = k;
        }
        return del_stale(pl);
}

/* ---- policy rules ---- */

/* The pair of rules pool i wants, in order: main first, with routes no more specific
 * than blockSize-1 suppressed (the connected subnet, the default route), then our
 * table. */
static void pool_rules(const struct planner *pl, const struct cfg_pool *pool, struct host_rule ret[2])
{
        const struct cfg_settings *s = &pl->m->settings;
        struct cfg_prefix dst = pool->cidr;

        cfg_prefix_mask(&dst);
        ret[0] = (struct host_rule){ .dst = dst, .priority = PLAN_RULE_PRIORITY_MAIN, .table = PLAN_TABLE_MAIN,
                                     .suppress_prefixlen = pool->block_size ? pool->block_size - 1 : 0,
                                     .protocol = s->route_protocol };
        ret[1] = (struct host_rule){ .dst = dst, .priority = PLAN_RULE_PRIORITY_OURS, .table = s->route_table,
                                     .suppress_prefixlen = -1, .protocol = s->route_protocol };
}

static bool rule_eq(const struct host_rule *a, const struct host_rule *b)
{
        return cfg_prefix_eq(&a->dst, &b->dst) && a->priority == b->priority && a->table == b->table &&
               a->suppress_prefixlen == b->suppress_prefixlen && a->protocol == b->protocol && !a->other &&
               !b->other;
}

/* Pools whose blocks get routes (pool_routed()): underlay pools of pod blocks, IPv4
 * and IPv6 (rules of family AF_INET6 for the latter). */
static bool pool_has_rules(const struct cfg_pool *pool)
{
        return !pool->nat_outgoing && pool->workload;
}

static bool rule_wanted(const struct planner *pl, const struct host_rule *have)
{
        for (size_t i = 0; i < pl->m->n_pools; i++) {
                struct host_rule w[2];

                if (!pool_has_rules(&pl->m->pools[i]))
                        continue;
                pool_rules(pl, &pl->m->pools[i], w);
                if (rule_eq(have, &w[0]) || rule_eq(have, &w[1]))
                        return true;
        }
        return false;
}

static bool rule_present(const struct planner *pl, const struct host_rule *want)
{
        for (size_t i = 0; i < pl->h->n_rules; i++)
                if (rule_eq(&pl->h->rules[i], want))
                        return true;
        return false;
}

static int rule_action(struct planner *pl, enum host_change_kind kind, const struct host_rule *rule, uint32_t pool)
{
        struct plan *p = pl->p;
        struct host_change a = { .kind = kind, .pool = pool };

        if (p->n_rules >= pl->cap_rules)
                return -E2BIG;
        p->rules[p->n_rules] = *rule;
        a.rule = &p->rules[p->n_rules++];
        return add_action(pl, &a);
}

static int reserve_rules(struct planner *pl)
{
        pl->cap_rules = 2 * pl->m->n_pools + pl->h->n_rules;
        pl->p->rules = calloc(pl->cap_rules ? pl->cap_rules : 1, sizeof(*pl->p->rules));
        return pl->p->rules ? 0 : -ENOMEM;
}

/* Ours: our protocol, or the one the record says our routes and rules had before
 * routeProtocol changed (owned_before() for routes). */
static bool rule_owned(const struct planner *pl, const struct host_rule *rule)
{
        uint8_t own = pl->m->settings.route_protocol, old = pl->rec->route_protocol;

        return rule->protocol == own || (old && old != own && rule->protocol == old);
}

/* Before any route: traffic to a pool keeps resolving from main until the rules and
 * our table are both there. */
static int plan_rules_add(struct planner *pl)
{
        int r;

        for (size_t i = 0; i < pl->m->n_pools; i++) {
                struct host_rule w[2];

                if (!pool_has_rules(&pl->m->pools[i]))
                        continue;
                pool_rules(pl, &pl->m->pools[i], w);
                for (size_t k = 0; k < 2; k++)
                        if (!rule_present(pl, &w[k]) && (r = rule_action(pl, CHANGE_ADD_RULE, &w[k], (uint32_t)i)) < 0)
                                return r;
        }
        return 0;
}

/* After the routes: rules of ours nobody wants (a pool gone or no longer underlay,
 * another table or blockSize, a rule of ours someone changed). Only rules carrying our
 * protocol: an identical rule of someone else's is theirs. */
static int plan_rules_del(struct planner *pl)
{
        int r;

        for (size_t i = 0; i < pl->h->n_rules; i++) {
                const struct host_rule *h = &pl->h->rules[i];

                if (rule_owned(pl, h) && !rule_wanted(pl, h) &&
                    (r = rule_action(pl, CHANGE_DEL_RULE, h, UINT32_MAX)) < 0)
                        return r;
        }
        return 0;
}

/* A blackhole, unreachable or prohibit route in main that covers pool addresses with
 * a prefix no longer than blockSize-1: the first rule's suppress_prefixlength
 * suppresses only routes that resolve, so such a route ends the lookup for those
 * addresses (a throw falls through), and our table is never consulted for them. */
static int report_covering(struct planner *pl)
{
        char d[CFG_PREFIX_STRLEN], c[CFG_PREFIX_STRLEN];
        int r;

        for (size_t k = 0; k < pl->h->n_routes; k++) {
                const struct host_route *rt = &pl->h->routes[k];

                if (rt->table != PLAN_TABLE_MAIN ||
                    (rt->type != HOST_RTN_BLACKHOLE && rt->type != HOST_RTN_UNREACHABLE &&
                     rt->type != HOST_RTN_PROHIBIT))
                        continue;
                for (size_t i = 0; i < pl->m->n_pools; i++) {
                        const struct cfg_pool *pool = &pl->m->pools[i];

                        if (!pool_has_rules(pool) || rt->dst.family != pool->cidr.family ||
                            rt->dst.len >= pool->block_size ||
                            (!cfg_prefix_contains(&rt->dst, &pool->cidr) && !cfg_prefix_contains(&pool->cidr, &rt->dst)))
                                continue;
                        r = add_finding(pl, PLAN_BLOCKING, "covering-route-in-main",
                                        "%s %s (protocol %u) in table main covers pool %s (%s): a route that does not "
                                        "resolve ends the lookup whatever its length, so neither our table nor "
                                        "the uplink's subnet is consulted for those addresses",
                                        plan_route_type_name(rt->type), pfx(&rt->dst, d), rt->protocol, pool->name,
                                        pfx(&pool->cidr, c));
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* ---- proxy ARP and its delay ---- */

static int set_value(struct planner *pl, enum host_change_kind kind, const struct host_link *l, int64_t v, bool restore)
{
        struct host_change a = { .kind = kind, .ifindex = l->ifindex, .value = v, .restore = restore,
                                 .pool = UINT32_MAX };

        snprintf(a.dev, sizeof(a.dev), "%s", l->name);
        return add_action(pl, &a);
}

static int restore_record(struct planner *pl, const struct host_record *rec)
{
        const struct host_link *l = host_link_by_name(pl->h, rec->ifname);
        bool delay;
        int arp, r;

        if (!l)
                return 0; /* the device is gone, and its settings with it */
        /* A delay that could not be observed (-1) is put back all the same. */
        delay = rec->proxy_delay_ms >= 0 && l->proxy_delay_ms != rec->proxy_delay_ms;
        arp = rec->proxy_arp >= 0 ? rec->proxy_arp : l->proxy_arp; /* the value to end with */
        if (!delay)
                return rec->proxy_arp >= 0 && l->proxy_arp != rec->proxy_arp
                               ? set_value(pl, CHANGE_SET_PROXY_ARP, l, rec->proxy_arp, true)
                               : 0;
        /* Proxy ARP off first: the delay must not change while it answers (felix PR
         * 1938), even when the recorded value turns it back on afterwards. */
        if (l->proxy_arp != 0 && (r = set_value(pl, CHANGE_SET_PROXY_ARP, l, 0, arp == 0)) < 0)
                return r;
        if ((r = set_value(pl, CHANGE_SET_PROXY_DELAY, l, rec->proxy_delay_ms, true)) < 0)
                return r;
        if (arp > 0 && (r = set_value(pl, CHANGE_SET_PROXY_ARP, l, arp, rec->proxy_arp >= 0)) < 0)
                return r;
        return 0;
}

static int plan_proxy_arp_on(struct planner *pl)
{
        const struct cfg_settings *s = &pl->m->settings;
        const struct host_link *l = pl->uplink;
        struct plan *p = pl->p;
        bool delay = s->proxy_delay_ms != CFG_PROXY_DELAY_KEEP && l->proxy_delay_ms != s->proxy_delay_ms;
        int r;

        if (pl->rec->valid && strcmp(pl->rec->ifname, l->name) != 0 && (r = restore_record(pl, pl->rec)) < 0)
                return r; /* the uplink moved: put the old one back first */
        if (pl->rec->valid && strcmp(pl->rec->ifname, l->name) == 0) {
                p->record = *pl->rec;
                /* proxyDelay was keep when the record was written: the value found
                 * before our first change of the delay is recorded now. */
                if (delay && p->record.proxy_delay_ms < 0 && l->proxy_delay_ms >= 0) {
                        p->record.proxy_delay_ms = l->proxy_delay_ms;
                        p->record_first = true;
                }
        } else {
                p->record = (struct host_record){ .valid = true, .proxy_arp = l->proxy_arp,
                                                  .proxy_delay_ms = s->proxy_delay_ms == CFG_PROXY_DELAY_KEEP
                                                                            ? -1
                                                                            : l->proxy_delay_ms };
                snprintf(p->record.ifname, sizeof(p->record.ifname), "%s", l->name);
                p->record_first = true;
        }
        /* Set the delay before proxy ARP answers: kernels have panicked when it changed
         * under a live proxy (felix PR 1938). If it may already answer, pause it. */
        if (delay && l->proxy_arp != 0 && (r = set_value(pl, CHANGE_SET_PROXY_ARP, l, 0, false)) < 0)
                return r;
        if (delay && (r = set_value(pl, CHANGE_SET_PROXY_DELAY, l, s->proxy_delay_ms, false)) < 0)
                return r;
        if ((l->proxy_arp != 1 || delay) && (r = set_value(pl, CHANGE_SET_PROXY_ARP, l, 1, false)) < 0)
                return r;
        return 0;
}

static int plan_proxy_arp(struct planner *pl)
{
        if (pl->rec->damaged[0]) {
                /* Nothing to restore from, and recording afresh could record our own
                 * values: leave the uplink alone until an operator fixes the record. */
                pl->p->record = *pl->rec;
                return add_finding(pl, PLAN_BLOCKING, "record-damaged",
                                   "runtime record: %s; kept as it is: the uplink's proxy_arp and proxy delay are "
                                   "left alone until it is fixed or removed",
                                   pl->rec->damaged);
        }
        if (pl->p->underlay) {
                if (!pl->uplink) {
                        /* Keep the record: clearing it would lose the values to restore. */
                        if (pl->rec->valid)
                                pl->p->record = *pl->rec;
                        return add_finding(pl, PLAN_BLOCKING, "uplink-not-found", "no uplink: %s",
                                           pl->p->uplink_error[0] ? pl->p->uplink_error : "not found");
                }
                return plan_proxy_arp_on(pl);
        }
        if (pl->rec->valid)
                return restore_record(pl, pl->rec); /* p->record stays invalid: cleared */
        return 0;
}

/* ---- proxy NDP (DESIGN §3 "IPv6") ---- */

/* proxyDelay covers NDP as it covers ARP: net.ipv6.neigh.<uplink>.proxy_delay (also
 * 80 jiffies by default) set before proxy_ndp answers, its first value recorded. */
static int plan_proxy_delay6(struct planner *pl, const struct host_link *l)
{
        const struct cfg_settings *s = &pl->m->settings;
        const struct host_record *rec = pl->rec;
        struct plan *p = pl->p;
        bool delay = s->proxy_delay_ms != CFG_PROXY_DELAY_KEEP && l->proxy_delay6_ms != s->proxy_delay_ms;
        int r;

        if (rec->valid && rec->has_proxy_delay6 && streq(rec->ifname, l->name)) {
                p->record.has_proxy_delay6 = true;
                p->record.proxy_delay6_ms = rec->proxy_delay6_ms;
        } else if (delay && !p->record.has_proxy_delay6 && l->proxy_delay6_ms >= 0) {
                p->record.has_proxy_delay6 = true;
                p->record.proxy_delay6_ms = l->proxy_delay6_ms;
                p->record_first = true;
        }
        if (delay && (r = set_value(pl, CHANGE_SET_PROXY_DELAY6, l, s->proxy_delay_ms, false)) < 0)
                return r;
        return l->proxy_ndp != 1 ? set_value(pl, CHANGE_SET_PROXY_NDP, l, 1, false) : 0;
}

/* proxy_ndp on the uplink in IPv6 underlay mode, the value found first recorded in
 * the same record as proxy_arp's (the uplink's), and put back when the mode ends or
 * the uplink moves. Runs after plan_proxy_arp(), which decides p->record. */
static int plan_proxy_ndp(struct planner *pl)
{
        const struct host_record *rec = pl->rec;
        const struct host_link *l = pl->uplink, *old;
        struct plan *p = pl->p;
        bool on = p->underlay6 && l && !rec->damaged[0];

        if (rec->damaged[0])
                return 0; /* reported by plan_proxy_arp(); nothing restored or recorded */
        old = rec->valid ? host_link_by_name(pl->h, rec->ifname) : NULL;
        if (old && (!on || old != l)) {
                int r = 0;

                if (rec->has_proxy_ndp && old->proxy_ndp != rec->proxy_ndp)
                        r = set_value(pl, CHANGE_SET_PROXY_NDP, old, rec->proxy_ndp, true);
                if (r >= 0 && rec->has_proxy_delay6 && old->proxy_delay6_ms != rec->proxy_delay6_ms)
                        r = set_value(pl, CHANGE_SET_PROXY_DELAY6, old, rec->proxy_delay6_ms, true);
                if (r < 0)
                        return r;
        }
        if (!on) {
                p->record.has_proxy_ndp = p->record.has_proxy_delay6 = false;
                return 0;
        }
        if (!p->record.valid || !streq(p->record.ifname, l->name)) {
                /* IPv4 underlay mode is off: a record of the uplink for proxy_ndp alone
                 * (kept as it is when it is already that) */
                if (rec->valid && streq(rec->ifname, l->name) && rec->proxy_arp < 0 && rec->proxy_delay_ms < 0) {
                        p->record = *rec;
                } else {
                        p->record = (struct host_record){ .valid = true, .proxy_arp = -1, .proxy_delay_ms = -1 };
                        snprintf(p->record.ifname, sizeof(p->record.ifname), "%s", l->name);
                        p->record_first = true;
                }
        }
        if (rec->valid && rec->has_proxy_ndp && streq(rec->ifname, l->name)) {
                p->record.has_proxy_ndp = true;
                p->record.proxy_ndp = rec->proxy_ndp;
        } else if (!p->record.has_proxy_ndp && l->proxy_ndp >= 0) {
                p->record.has_proxy_ndp = true;
                p->record.proxy_ndp = l->proxy_ndp;
                p->record_first = true;
        }
        return plan_proxy_delay6(pl, l);
}

static bool is_cali(const struct host_link *l)
{
        return l && !strncmp(l->name, "cali", 4);
}

/* A local pod's IPv6 address: Felix's /128 route to its cali* device (any protocol
 * but ours: deviceRouteProtocol, boot by default; felix/dataplane/linux/
 * endpoint_mgr.go, routetable), inside an underlay IPv6 pool that holds pods. */
static bool is_pod_route6(const struct planner *pl, const struct host_route *rt)
{
        const struct cfg_pool *pool;

        if (rt->dst.family != AF_INET6 || rt->dst.len != 128 || rt->type != HOST_RTN_UNICAST ||
            rt->protocol == pl->m->settings.route_protocol || !is_cali(host_link_by_index(pl->h, rt->oif)))
                return false;
        pool = cfg_model_pool_for(pl->m, &rt->dst);
        return pool && !pool->nat_outgoing && pool->workload;
}

static int proxy_change(struct planner *pl, enum host_change_kind kind, const struct host_link *l,
                        const struct cfg_prefix *a)
{
        struct host_change c = { .kind = kind, .ifindex = l->ifindex, .pool = UINT32_MAX };

        c.route.dst = *a;
        c.route.protocol = kind == CHANGE_ADD_PROXY ? pl->m->settings.route_protocol : 0;
        snprintf(c.dev, sizeof(c.dev), "%s", l->name);
        return add_action(pl, &c);
}

static int proxy_on(const struct planner *pl, const struct host_link *l, const struct cfg_prefix *a)
{
        for (size_t i = 0; i < pl->h->n_proxies; i++)
                if (pl->h->proxies[i].ifindex == l->ifindex && cfg_prefix_eq(&pl->h->proxies[i].addr, a))
                        return pl->h->proxies[i].protocol == pl->m->settings.route_protocol ? 1 : 2;
        return 0;
}

/* One proxy neighbour entry on the uplink per local pod address. Ownership is the
 * entry's protocol, decided from the listing before any change (DESIGN §7: creating
 * an existing entry overwrites its protocol, delete ignores it): an address that
 * already has an entry (ours or not) gets none, and only entries carrying our
 * protocol are ever deleted. Entries raise no events and a link down flushes them:
 * every pass compares anew, so they come back with the link or at the re-check. */
static int plan_proxies(struct planner *pl)
{
        const struct host_link *l = pl->p->underlay6 ? pl->uplink : NULL;
        uint8_t own = pl->m->settings.route_protocol;
        size_t foreign = 0;
        int r;

        for (size_t i = 0; i < pl->h->n_proxies; i++) {
                const struct host_proxy *e = &pl->h->proxies[i];
                const struct host_link *dev = host_link_by_index(pl->h, e->ifindex);
                bool wanted = false;

                if (e->protocol != own || !dev)
                        continue;
                for (size_t k = 0; l && e->ifindex == l->ifindex && k < pl->h->n_routes && !wanted; k++)
                        wanted = is_pod_route6(pl, &pl->h->routes[k]) && cfg_prefix_eq(&pl->h->routes[k].dst, &e->addr);
                if (!wanted && (r = proxy_change(pl, CHANGE_DEL_PROXY, dev, &e->addr)) < 0)
                        return r;
        }
        if (!l)
                return 0;
        for (size_t k = 0; k < pl->h->n_routes; k++) {
                const struct host_route *rt = &pl->h->routes[k];
                int have;

                if (!is_pod_route6(pl, rt))
                        continue;
                pl->p->n_proxies_wanted++;
                have = proxy_on(pl, l, &rt->dst);
                foreign += have == 2;
                if (!have && (r = proxy_change(pl, CHANGE_ADD_PROXY, l, &rt->dst)) < 0)
                        return r;
        }
        if (foreign && (r = add_finding(pl, PLAN_INFO, "proxy-neigh-foreign",
                                        "%zu local pod address%s already ha%s a proxy neighbour entry on %s that is "
                                        "not ours: left alone",
                                        foreign, foreign == 1 ? "" : "es", foreign == 1 ? "s" : "ve", l->name)) < 0)
                return r;
        return 0;
}

/* ---- tunnels ---- */

static bool is_calico_tunnel_addr(const struct planner *pl, const struct cfg_prefix *a)
{
        const struct cfg_node *self = pl->self != UINT32_MAX ? &pl->m->nodes[pl->self] : NULL;
        struct cfg_prefix hp = host_prefix(a);

        if (cfg_model_pool_for(pl->m, &hp))
                return true;
        if (self && self->ipip_tunnel_addr.family && cfg_prefix_contains(&self->ipip_tunnel_addr, &hp))
                return true;
        return self && self->vxlan_tunnel_addr.family && cfg_prefix_contains(&self->vxlan_tunnel_addr, &hp);
}

static int routes_via(struct planner *pl, const struct host_link *l)
{
        const struct host_route *first = NULL;
        struct host_route first4;
        char d[CFG_PREFIX_STRLEN];
        size_t n = 0;

        for (size_t i = 0; i < pl->h->n_routes; i++)
                if (pl->h->routes[i].oif == l->ifindex && pl->h->routes[i].type == HOST_RTN_UNICAST &&
                    pl->h->routes[i].protocol != RTPROT_KERNEL /* the device's own routes */) {
                        if (!first)
                                first = &pl->h->routes[i];
                        n++;
                }
        for (size_t i = 0; i < pl->h->n_routes4; i++)
                if (pl->h->routes4[i].oif == l->ifindex && pl->h->routes4_protocol != RTPROT_KERNEL) {
                        if (!first) {
                                first4 = host_route4_get(pl->h, i);
                                first = &first4;
                        }
                        n++;
                }
        if (!n)
                return 0;
        return add_finding(pl, PLAN_BLOCKING, "routes-via-tunnel",
                           "%zu route%s still use %s (first: %s, protocol %u): removing the device withdraws them",
                           n, n == 1 ? "" : "s", l->name, pfx(&first->dst, d), first->protocol);
}

/* felix_key: the FelixConfiguration field that keeps the device when true (ipipEnabled,
 * vxlanEnabled, vxlanEnabledV6 in api/pkg/apis/projectcalico/v3/felixconfig.go). */
static int host_tunnel(struct planner *pl, const char *name, const char *kind, const char *felix_key,
                       enum cfg_tristate felix)
{
        const struct host_link *l = host_link_by_name(pl->h, name);
        struct host_change a = { .kind = CHANGE_REMOVE_TUNNEL, .pool = UINT32_MAX };
        struct host_tunnel t = {};
        struct cfg_prefix foreign = {};
        char buf[CFG_PREFIX_STRLEN];
        int r;

        if (!l)
                return 0;
        if (strcmp(l->kind, kind) != 0)
                return add_finding(pl, PLAN_WARNING, "tunnel-not-calico",
                                   "%s is a %s device, not %s: left alone", name, l->kind[0] ? l->kind : "plain",
                                   kind);
        if (felix == CFG_TRUE)
                return add_finding(pl, PLAN_WARNING, "felix-keeps-tunnel",
                                   "FelixConfiguration sets %s: true, so Felix keeps %s; left alone", felix_key,
                                   name);
        a.ifindex = l->ifindex;
        snprintf(a.dev, sizeof(a.dev), "%s", l->name);
        snprintf(t.kind, sizeof(t.kind), "%s", kind);
        for (size_t i = 0; i < pl->h->n_addrs; i++) {
                const struct host_addr *ha = &pl->h->addrs[i];

                if (ha->ifindex != l->ifindex || is_link_local6(&ha->addr))
                        continue;
                if (!is_calico_tunnel_addr(pl, &ha->addr)) {
                        if (!t.foreign_addrs)
                                foreign = ha->addr;
                        t.foreign_addrs = true;
                }
                else if (t.n_addrs < HOST_TUNNEL_ADDRS_MAX)
                        t.addrs[t.n_addrs++] = ha->addr;
        }
        /* The kernel keeps the IPIP fallback device: without Calico addresses and down
         * (or up with someone else's addresses) it counts as removed. A down VXLAN
         * device is still there and is still removed. */
        if (t.n_addrs == 0 && ((!l->up && streq(kind, "ipip")) || t.foreign_addrs)) {
                if (t.foreign_addrs)
                        return add_finding(pl, PLAN_INFO, "tunnel-foreign-addresses",
                                           "%s carries addresses that are not Calico's (first: %s): device left up",
                                           name, pfx(&foreign, buf));
                return 0;
        }
        /* Deleting any other device would take someone else's addresses with it. */
        if (t.foreign_addrs && !streq(kind, "ipip"))
                return add_finding(pl, PLAN_WARNING, "tunnel-foreign-addresses",
                                   "%s carries addresses that are not Calico's (first: %s): device left alone", name,
                                   pfx(&foreign, buf));
        if ((r = routes_via(pl, l)) < 0)
                return r;
        if (t.foreign_addrs && (r = add_finding(pl, PLAN_INFO, "tunnel-foreign-addresses",
                                                "%s carries addresses that are not Calico's (first: %s): if the "
                                                "kernel keeps the device, it stays up with them",
                                                name, pfx(&foreign, buf))) < 0)
                return r;
        if (pl->p->n_tunnels >= ELEMENTSOF(pl->p->tunnels))
                return -E2BIG;
        pl->p->tunnels[pl->p->n_tunnels] = t;
        a.tunnel = &pl->p->tunnels[pl->p->n_tunnels++];
        return add_action(pl, &a);
}

static int plan_tunnels(struct planner *pl)
{
        const struct cfg_settings *s = &pl->m->settings;
        struct cfg_felix felix = cfg_model_felix(pl->m, s->node_name);
        unsigned min_mtu = 0;
        size_t before = pl->p->n_actions;
        int r;

        if (pl->p->tunnel6_unneeded &&
            (r = host_tunnel(pl, s->tunnel_vxlan_v6, "vxlan", "vxlanEnabledV6", felix.vxlan_enabled_v6)) < 0)
                return r;
        if (!pl->p->tunnels_unneeded)
                return 0;
        if ((r = host_tunnel(pl, s->tunnel_ipip, "ipip", "ipipEnabled", felix.ipip_enabled)) < 0 ||
            (r = host_tunnel(pl, s->tunnel_vxlan, "vxlan", "vxlanEnabled", felix.vxlan_enabled)) < 0)
                return r;
        for (size_t i = before; i < pl->p->n_actions; i++) {
                const struct host_link *l = host_link_by_index(pl->h, pl->p->actions[i].ifindex);

                if (l && l->mtu && (!min_mtu || l->mtu < min_mtu))
                        min_mtu = l->mtu;
        }
        if (min_mtu && pl->uplink && pl->uplink->mtu > min_mtu)
                return add_finding(pl, PLAN_INFO, "mtu-can-be-raised",
                                   "the tunnel MTU is %u; once encapsulation is gone the pod MTU can be raised to "
                                   "the uplink's %u",
                                   min_mtu, pl->uplink->mtu);
        return 0;
}

/* ---- findings that are not tied to one action ---- */

static int report_notes(struct planner *pl, const struct node_note *notes, enum plan_severity sev,
                        const char *code, const char *what)
{
        char ex[EXAMPLES * (CFG_PREFIX_STRLEN + 2)], b[CFG_PREFIX_STRLEN], a[CFG_PREFIX_STRLEN];
        int r;

        for (size_t i = 0; i < pl->m->n_nodes; i++) {
                const struct cfg_node *n = &pl->m->nodes[i];
                const struct cfg_prefix *na;
                size_t len = 0;

                if (!notes[i].count)
                        continue;
                /* the node's address of the first example's family */
                na = cfg_node_addr(n, pl->m->blocks[notes[i].examples[0]].cidr.family);
                ex[0] = 0;
                for (uint32_t k = 0; k < notes[i].count && k < EXAMPLES; k++)
                        len += (size_t)snprintf(ex + len, sizeof(ex) - len, "%s%s", k ? ", " : "",
                                                pfx(&pl->m->blocks[notes[i].examples[k]].cidr, b));
                if (notes[i].count > EXAMPLES)
                        snprintf(ex + len, sizeof(ex) - len, " and %u more", notes[i].count - EXAMPLES);
                r = add_finding(pl, sev, code, "node %s%s%s%s: %s: %s", n->name, na ? " (" : "",
                                na ? addr(na, a) : "", na ? ")" : "", what, ex);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int report_addr_note(struct planner *pl, const struct addr_note *n, enum plan_severity sev,
                            const char *code, const char *what)
{
        char ex[EXAMPLES * 300], a[CFG_PREFIX_STRLEN];
        size_t len = 0;

        if (!n->count)
                return 0;
        ex[0] = 0;
        for (uint32_t k = 0; k < n->count && k < EXAMPLES; k++)
                len += (size_t)snprintf(ex + len, sizeof(ex) - len, "%s%s on %s", k ? ", " : "",
                                        addr(&n->examples[k], a), pl->m->nodes[n->nodes[k]].name);
        if (n->count > EXAMPLES)
                snprintf(ex + len, sizeof(ex) - len, " and %u more", n->count - EXAMPLES);
        return add_finding(pl, sev, code, "%u borrowed address%s %s: %s", n->count, n->count == 1 ? "" : "es", what,
                           ex);
}

static const char *peer_state_text(enum peer_state st)
{
        switch (st) {
        case PEER_IS_SELF:
                return "is this node's own address";
        case PEER_IS_NETWORK:
                return "is the network address of the uplink's subnet";
        case PEER_IS_BROADCAST:
                return "is the broadcast address of the uplink's subnet";
        case PEER_IN_BLOCK:
                return "lies inside a pool block (pod addresses)";
        default:
                return "cannot be a next hop";
        }
}

/* Borrowed addresses and peers whose address cannot be a next hop: what the walk over
 * the wanted routes noted (a delta pass: over the prefixes it planned). */
static int report_route_notes(struct planner *pl)
{
        const struct cfg_model *m = pl->m;
        char a[CFG_PREFIX_STRLEN];
        int r;

        if ((r = report_addr_note(pl, &pl->borrowed, PLAN_INFO, "borrowed-addresses",
                                  "in underlay pools, hosted by another node than their block's (each gets a "
                                  "host route to its host)")) < 0 ||
            (r = report_addr_note(pl, &pl->borrowed_upstream, PLAN_WARNING, "needs-upstream-routing",
                                  "have no direct route to their host (not on-link, or encapsulated): they need "
                                  "upstream routing (the switch or BGP)")) < 0 ||
            (r = report_addr_note(pl, &pl->borrowed_no_addr, PLAN_WARNING, "node-address-unknown",
                                  "are hosted by a node with no known address, so no route to them")) < 0)
                return r;
        for (size_t k = 0; k < 2 * m->n_nodes; k++)
                if (pl->peer_routes[k] &&
                    (r = add_finding(pl, PLAN_WARNING, "peer-address-unusable",
                                     "node %s: its address %s %s: no route via it (%u route%s not installed)",
                                     m->nodes[k / 2].name,
                                     addr(cfg_node_addr(&m->nodes[k / 2], k % 2 ? AF_INET6 : AF_INET), a),
                                     peer_state_text(pl->peer[k]), pl->peer_routes[k],
                                     pl->peer_routes[k] == 1 ? "" : "s")) < 0)
                        return r;
        return 0;
}

/* What the walk noted, and what the model left out that an operator should know. */
static int report_model(struct planner *pl)
{
        const struct cfg_model *m = pl->m;
        int r;

        if ((r = report_route_notes(pl)) < 0)
                return r;
        for (size_t i = 0; i < m->n_pools; i++) {
                const struct cfg_pool *pool = &m->pools[i];
                char c[CFG_PREFIX_STRLEN];

                if (!pool->workload &&
                    (r = add_finding(pl, PLAN_INFO, "pool-set-aside",
                                     "pool %s (%s) does not allow Workload (allowedUses): it holds no pod blocks, "
                                     "set aside (no routes, no proxy ARP for it)",
                                     pool->name, pfx(&pool->cidr, c))) < 0)
                        return r;
                if (pool->legacy_disagrees &&
                    (r = add_finding(pl, PLAN_WARNING, "pool-legacy-fields",
                                     "pool %s: the old field%s %s disagree%s with %s; read as Calico v3.7-v3.31 "
                                     "converts them (ipipMode %s, natOutgoing %s), Calico v3.32 and later ignore "
                                     "the old fields: remove them",
                                     pool->name,
                                     pool->legacy_disagrees == (CFG_LEGACY_IPIP | CFG_LEGACY_NAT) ? "s" : "",
                                     pool->legacy_disagrees == CFG_LEGACY_IPIP  ? "ipip"
                                     : pool->legacy_disagrees == CFG_LEGACY_NAT ? "nat-outgoing"
                                                                                : "ipip and nat-outgoing",
                                     pool->legacy_disagrees == (CFG_LEGACY_IPIP | CFG_LEGACY_NAT) ? "" : "s",
                                     pool->legacy_disagrees == CFG_LEGACY_IPIP  ? "ipipMode"
                                     : pool->legacy_disagrees == CFG_LEGACY_NAT ? "natOutgoing"
                                                                                : "ipipMode and natOutgoing",
                                     cfg_encap_name(pool->ipip), pool->nat_outgoing ? "true" : "false")) < 0)
                        return r;
        }
        if (m->n_pod_cidrs_ignored && !m->n_ipam_resources &&
            (r = add_finding(pl, PLAN_WARNING, "pod-cidrs-ignored",
                             "%zu Kubernetes podCIDR%s ignored and no Calico IPAM data (BlockAffinities, "
                             "IPAMBlocks) read: with Calico IPAM add its BlockAffinities and IPAMBlocks to the resources; with host-local IPAM "
                             "set usePodCIDR: true",
                             m->n_pod_cidrs_ignored, m->n_pod_cidrs_ignored == 1 ? "" : "s")) < 0)
                return r;
        return 0;
}

static int report_pools(struct planner *pl)
{
        char c[CFG_PREFIX_STRLEN], a[CFG_PREFIX_STRLEN], b[CFG_PREFIX_STRLEN];
        int r;

        for (size_t i = 0; i < pl->p->n_pools; i++) {
                const struct plan_pool *pp = &pl->p->pools[i];
                const struct cfg_pool *pool = &pl->m->pools[pp->pool];
                char routes[512] = "";
                size_t len = 0, n = 0;

                const struct cfg_prefix *sa = self_addr_of(pl, pool->cidr.family);

                if (!pp->underlay)
                        continue;
                if (!pp->applies) {
                        r = add_finding(pl, PLAN_INFO, "pool-not-applying",
                                        "underlay pool %s (%s) does not apply to this node (its blocks are routed like any peer's)",
                                        pool->name, pfx(&pool->cidr, c));
                        if (r < 0)
                                return r;
                        continue;
                }
                if (!pl->uplink || uplink_subnet_contains(pl, &pool->cidr))
                        continue;
                for (size_t k = 0; k < pl->m->n_blocks; k++) {
                        const struct cfg_block *bl = &pl->m->blocks[k];

                        if (bl->pool != pp->pool || bl->node != pl->self)
                                continue;
                        if (n++ < 8 && sa->family)
                                len += (size_t)snprintf(routes + len, sizeof(routes) - len, "%s%s via %s",
                                                        len ? ", " : "", pfx(&bl->cidr, b), addr(sa, a));
                }
                r = add_finding(pl, PLAN_WARNING, "pool-outside-uplink-subnet",
                                "pool %s (%s) lies outside %s's subnet: proxy %s alone will not make it reachable; "
                                "the upstream router needs %s%s%s",
                                pool->name, pfx(&pool->cidr, c), pl->uplink->name,
                                pool->cidr.family == AF_INET6 ? "NDP" : "ARP",
                                len ? "these routes: "
                                : n ? "a route per block of this node (this node's address is unknown)"
                                    : "a route per block of this node (none yet)",
                                routes,
                                n > 8 ? " ..." : "");
                if (r < 0)
                        return r;
        }
        return 0;
}

/* An uplink that cannot carry underlay traffic: the loopback device (can-reach= of an
 * address on lo chooses it), or a device with no IPv4 address (nothing is on-link, the
 * node has no address on the segment its neighbours would ARP on). */
static int report_uplink_unfit(struct planner *pl, const struct host_link *l)
{
        bool v4 = false;

        if (streq(l->name, "lo"))
                return add_finding(pl, PLAN_BLOCKING, "uplink-loopback",
                                   "the uplink is the loopback device lo: choose the device facing the network");
        for (size_t i = 0; i < pl->n_nets && !v4; i++)
                v4 = pl->nets[i].family == AF_INET;
        if (!v4)
                return add_finding(pl, PLAN_BLOCKING, "uplink-no-address",
                                   "the uplink %s has no IPv4 address: no node or pod is on-link through it",
                                   l->name);
        return 0;
}

/* IPv6 underlay mode: the kernel answers proxy NDP only on a forwarding interface
 * (ndisc_recv_ns(): pneigh entries need idev->cnf.forwarding), and forwards nothing
 * with net.ipv6.conf.all.forwarding=0; a forwarding interface ignores router
 * advertisements unless accept_ra=2. */
static int report_host6(struct planner *pl)
{
        const struct host_link *l = pl->uplink;
        int r;

        if (!pl->p->underlay6 || !l)
                return 0;
        if (pl->h->all_forwarding6 == 0 &&
            (r = add_finding(pl, PLAN_BLOCKING, "forwarding6-off",
                             "IPv6 forwarding is off (net.ipv6.conf.all.forwarding=0): IPv6 pods cannot be "
                             "reached")) < 0)
                return r;
        if (l->forwarding6 == 0 &&
            (r = add_finding(pl, PLAN_BLOCKING, "forwarding6-off",
                             "IPv6 forwarding is off on %s: the kernel answers proxy NDP only on a forwarding "
                             "interface",
                             l->name)) < 0)
                return r;
        /* ipv6_accept_ra() (include/net/ipv6.h in Linux): with forwarding on, router
         * advertisements are accepted only with accept_ra=2 */
        if (l->accept_ra6 == 1 &&
            (r = add_finding(pl, PLAN_WARNING, "accept-ra",
                             "%s has accept_ra=1: %s, so no SLAAC address or default route is learnt from "
                             "router advertisements there; set net.ipv6.conf.%s.accept_ra=2 to keep them",
                             l->name,
                             l->forwarding6 == 0 ? "turning IPv6 forwarding on would make the kernel ignore them"
                                                 : "with IPv6 forwarding on the kernel ignores them",
                             l->name)) < 0)
                return r;
        return 0;
}

static int report_host(struct planner *pl)
{
        const struct host_link *l = pl->uplink;
        int r, rp;

        if ((pl->self == UINT32_MAX || !pl->m->nodes[pl->self].has_resource) &&
            (r = add_finding(pl, PLAN_WARNING, "node-not-in-resources",
                             "this node (%s) is in no Node resource: using %s", pl->m->settings.node_name,
                             pl->m->settings.has_node_labels ? "nodeLabels from the settings" : "no labels")) < 0)
                return r;
        if (!pl->p->underlay || !l)
                return 0;
        if ((r = report_uplink_unfit(pl, l)) < 0)
                return r;
        if (pl->h->all_forwarding == 0 &&
            (r = add_finding(pl, PLAN_BLOCKING, "forwarding-off",
                             "IPv4 forwarding is off (net.ipv4.ip_forward=0): pods cannot be reached")) < 0)
                return r;
        if (l->forwarding == 0 &&
            (r = add_finding(pl, PLAN_BLOCKING, "forwarding-off",
                             "forwarding is off on %s: the kernel answers proxy ARP only on a forwarding "
                             "interface",
                             l->name)) < 0)
                return r;
        rp = pl->h->all_rp_filter > l->rp_filter ? pl->h->all_rp_filter : l->rp_filter;
        if (rp == 1 && (r = add_finding(pl, PLAN_WARNING, "rp-filter-strict",
                                        "strict rp_filter on %s: replies routed asymmetrically are dropped "
                                        "(loose mode 2 is safer)",
                                        l->name)) < 0)
                return r;
        if (pl->n_bird && (r = add_finding(pl, PLAN_INFO, "bird-routes",
                                           "BIRD already programs %zu block route%s in table main: those win by "
                                           "lookup, ours stand by in table %u",
                                           pl->n_bird, pl->n_bird == 1 ? "" : "s", pl->m->settings.route_table)) < 0)
                return r;
        return 0;
}

/* ---- entry points ---- */

/* Each block gets at most one add and each observed route at most one delete,
 * besides a few settings and tunnels: reserving that bound once means 100k actions
 * are never copied by a growing array, and the pages of the bound never used are
 * never touched. */
static int reserve_actions(struct planner *pl)
{
        size_t bound = pl->m->n_blocks + pl->m->n_borrowed + pl->h->n_routes + pl->h->n_routes4 + 8 + PLAN_TUNNELS_MAX;

        /* A sliced pass holds a slice, the lines a short pass keeps until it knows it
         * is short (PLAN_SINK_KEEP), and the rest of the plan's few other actions. */
        if (pl->sink && pl->sink->slice + PLAN_SINK_KEEP + 8 + PLAN_TUNNELS_MAX < bound)
                bound = pl->sink->slice + PLAN_SINK_KEEP + 8 + PLAN_TUNNELS_MAX;

        return GROW(pl->p->actions, pl->cap_actions, bound);
}

static void planner_done(struct planner *pl)
{
        free(pl->peer);
        free(pl->peer_routes);
        if (!pl->guarded_shared)
                free(pl->guarded);
        free(pl->applies);
        free(pl->upstream);
        free(pl->no_addr);
}

static void choose_uplink(struct planner *pl, const struct cfg_settings *s)
{
        int ifindex = uplink_choose(s, pl->h, pl->p->uplink_error, sizeof(pl->p->uplink_error));

        pl->uplink = ifindex ? host_link_by_index(pl->h, ifindex) : NULL;
}

static int plan_new(struct plan **ret)
{
        *ret = calloc(1, sizeof(**ret));
        return *ret ? 0 : -ENOMEM;
}

static int ctx_fill(struct planner *pl);
static int plan_build_ctx_sink(const struct cfg_model *m, const struct host_snapshot *h,
                               const struct host_record *rec, const struct plan_sink *sink, struct plan **ret,
                               struct plan_ctx **ctx);
static int ctx_finish(struct planner *pl);

/* The routes, by slices to the sink when there is one: what the record must say is
 * decided before (the sink saves it before the first change it applies), and the
 * context knows the kernel's routes before (the sink brings it up to date). */
static int plan_routes_sliced(struct planner *pl)
{
        int r;

        record_route_owner(pl);
        if (pl->ctx && !pl->ctx_failed && ctx_fill(pl) < 0)
                pl->ctx_failed = true; /* out of memory: no context, the plan stands */
        pl->flushing = pl->sink != NULL;
        pl->flushed_at = pl->p->n_actions;
        r = plan_routes(pl);
        pl->flushing = false;
        return r;
}

/* The full pass; with ctx, also what a delta pass needs (ctx_fill()); with sink, the
 * route walk's actions by slices (plan_build_sliced()). */
static int plan_full(const struct cfg_model *m, const struct host_snapshot *h, const struct host_record *rec,
                     struct plan_ctx *ctx, const struct plan_sink *sink, struct plan **ret)
{
        static const struct host_record none = HOST_RECORD_INIT;
        struct planner pl = { .m = m, .h = h, .rec = rec ? rec : &none, .ctx = ctx, .sink = sink };
        int r;

        /* The compact routes are read as ours, in our table (never the record's old
         * pair, never filtered): a snapshot of another table or protocol is a misuse. */
        if (h->n_routes4 &&
            (h->routes4_table != m->settings.route_table || h->routes4_protocol != m->settings.route_protocol))
                return -EINVAL;
        if ((r = plan_new(&pl.p)) < 0)
                return r;
        choose_uplink(&pl, &m->settings);
        if (pl.uplink) {
                pl.p->uplink = pl.uplink->ifindex;
                snprintf(pl.p->uplink_name, sizeof(pl.p->uplink_name), "%s", pl.uplink->name);
        }
        collect_uplink_nets(&pl);
        find_self(&pl);
        if ((r = plan_pools(&pl)) < 0 || (r = prepare_route_walk(&pl)) < 0 || (r = reserve_actions(&pl)) < 0 ||
            (r = reserve_rules(&pl)) < 0 || (r = plan_proxy_arp(&pl)) < 0 || (r = plan_proxy_ndp(&pl)) < 0 ||
            (r = plan_proxies(&pl)) < 0 || (r = plan_rules_add(&pl)) < 0 || (r = plan_routes_sliced(&pl)) < 0 ||
            (r = plan_rules_del(&pl)) < 0 || (r = plan_tunnels(&pl)) < 0 || (r = report_old_owner(&pl)) < 0)
                goto fail;
        if ((r = report_host(&pl)) < 0 || (r = report_host6(&pl)) < 0 || (r = report_pools(&pl)) < 0 ||
            (r = report_model(&pl)) < 0 || (r = report_covering(&pl)) < 0 ||
            (r = report_notes(&pl, pl.upstream, PLAN_WARNING, "needs-upstream-routing",
                              "no direct route (not on-link, or encapsulated), these blocks need upstream "
                              "routing (the switch or BGP)")) < 0 ||
            (r = report_notes(&pl, pl.no_addr, PLAN_WARNING, "node-address-unknown",
                              "no known address, so no route to its blocks")) < 0)
                goto fail;
        pl.p->n_borrowed = pl.borrowed.count;
        pl.p->n_borrowed_upstream = pl.borrowed_upstream.count;
        if (ctx && (pl.ctx_failed || ctx_finish(&pl) < 0))
                r = 1; /* no context (out of memory): the plan stands, the caller drops it */
        else
                r = 0;
        planner_done(&pl);
        *ret = pl.p;
        return r;
fail:
        planner_done(&pl);
        plan_free(pl.p);
        return r;
}

int plan_build(const struct cfg_model *m, const struct host_snapshot *h, const struct host_record *rec,
               struct plan **ret)
{
        int r = plan_full(m, h, rec, NULL, NULL, ret);

        return r < 0 ? r : 0;
}

int plan_build_sliced(const struct cfg_model *m, const struct host_snapshot *h, const struct host_record *rec,
                      const struct plan_sink *sink, struct plan **ret, struct plan_ctx **ctx)
{
        int r;

        if (ctx)
                return plan_build_ctx_sink(m, h, rec, sink, ret, ctx);
        r = plan_full(m, h, rec, NULL, sink, ret);
        return r < 0 ? r : 0;
}

int plan_cleanup(const struct cfg_settings *s, const struct host_snapshot *h, const struct host_record *rec,
                 struct plan **ret)
{
        static const struct host_record none = HOST_RECORD_INIT;
        struct cfg_model fake = { .settings = *s };
        struct planner pl = { .m = &fake, .h = h, .rec = rec ? rec : &none };
        int r = 0;

        if ((r = plan_new(&pl.p)) < 0)
                return r;
        choose_uplink(&pl, s);
        r = reserve_rules(&pl);
        if (r >= 0 && pl.rec->damaged[0])
                r = add_finding(&pl, PLAN_BLOCKING, "record-damaged",
                                "runtime record: %s; kept as it is: nothing is restored from it", pl.rec->damaged);
        else if (r >= 0 && pl.rec->valid)
                r = restore_record(&pl, pl.rec);
        /* IPv6 underlay mode off for the cleanup: proxy_ndp back, our entries gone */
        if (r >= 0 && (r = plan_proxy_ndp(&pl)) >= 0)
                r = plan_proxies(&pl);
        /* Rules first: pool traffic goes back to main at once, then our routes go. */
        for (size_t i = 0; i < h->n_rules && r >= 0; i++)
                if (rule_owned(&pl, &h->rules[i]))
                        r = rule_action(&pl, CHANGE_DEL_RULE, &h->rules[i], UINT32_MAX);
        for (size_t i = 0; i < h->n_routes && r >= 0; i++)
                if (h->routes[i].protocol == s->route_protocol || owned_before(&pl, &h->routes[i]))
                        r = del_route(&pl, &h->routes[i]);
        for (size_t i = 0; i < h->n_routes4 && r >= 0; i++) {
                struct host_route rt = host_route4_get(h, i);

                if (rt.protocol == s->route_protocol || owned_before(&pl, &rt))
                        r = del_route(&pl, &rt);
        }
        if (pl.rec->damaged[0])
                pl.p->record = *pl.rec; /* never cleared by a cleanup that restored nothing */
        if (r < 0) {
                plan_free(pl.p);
                return r;
        }
        *ret = pl.p;
        return 0;
}

/* ---- delta passes (issue 16) ----
 *
 * A full pass plans every prefix against a fresh dump of the host. Between two of them
 * the daemon knows what changed: the model says which prefixes (struct cfg_touched);
 * the kernel's routes change by our own changes (plan_ctx_applied()) and by others'
 * routes in main, whose events the loop hands over (plan_ctx_route(): their prefixes
 * are planned again); any other change of the host is doubt, and doubt is a full
 * pass. A delta pass replans exactly the touched prefixes with the
 * same per-prefix rules (plan_block(), plan_borrowed(), unsafe_route(), plan_dst()),
 * from a context the last full pass left: its uplink, this node's addresses, the
 * addresses no route may cover, which pools apply, each prefix's share of the plan's
 * counts, and the kernel's routes per prefix. Whatever could change beyond the
 * touched prefixes (a pool, the settings, a pool starting or stopping to apply, this
 * node's address, a node's address inside a block) makes it answer "full pass". */

#define NONE UINT32_MAX
#define DELTA_ROUTES_MAX 32 /* routes one prefix may have in main and ours; more: full pass */

/* An IPv4 prefix's share of the counts, and the route of ours it has when that route
 * has the common form (our table, protocol and metric; through the uplink or no
 * device; one path): 12 bytes, the context's whole cost per block at scale. Any other
 * known route (others', IPv6 ones, a second one of ours) is a struct known_route of
 * the wide table, and IPv6 prefixes' marks are there too. */
struct pfx4 {
        uint32_t addr; /* cfg_prefix.addr[0..3] */
        uint32_t gw;   /* the route's gateway, with P4_GW */
        uint8_t len;   /* P4_FREE: a free slot */
        uint8_t type;  /* the route's HOST_RTN_*, with P4_ROUTE */
        uint16_t bits; /* the marks, 2 bits each (MK_*), then P4_ROUTE, P4_OIF, P4_GW */
};

#define P4_FREE 0xff
#define P4_ROUTE (1u << (2 * MK_N))
#define P4_OIF (P4_ROUTE << 1) /* the route goes through the uplink (else no device) */
#define P4_GW (P4_ROUTE << 2)
#define P4_MARKS (P4_ROUTE - 1)

/* The wide table's entry: any prefix with routes that are not of the common form, or
 * an IPv6 prefix's marks. */
struct pfx_slot {
        struct cfg_prefix key;  /* family 0: a free slot */
        struct pfx_marks marks; /* IPv6 prefixes' only */
        uint32_t routes;        /* its first known route (plan_ctx.routes), NONE */
};

struct known_route {
        struct host_route r;
        uint32_t next; /* the next route of the same prefix (or of the free list), NONE */
};

struct ctx_pool {
        struct cfg_prefix cidr;
        uint8_t block_size;
        enum cfg_encap ipip, vxlan;
        bool nat_outgoing, workload, disabled, applies;
        char *node_selector;
};

struct ctx_node {
        char *name;
        struct cfg_prefix addr, addr6;
};

struct plan_ctx {
        /* what the full pass planned under */
        uint32_t route_table, route_metric;
        uint8_t route_protocol;
        enum cfg_local_route local_block_route;
        char *node_name;
        bool self_resource;
        enum cfg_tristate felix[3];
        int uplink;
        struct cfg_prefix nets[64];
        size_t n_nets;
        struct cfg_prefix self_addr, self_addr6, gateway, gateway6;
        struct host_record rec;
        struct ctx_pool *pools;
        size_t n_pools;
        struct ctx_node *nodes; /* sorted by name, as the model's */
        size_t n_nodes;
        struct cfg_prefix *guarded;
        size_t n_guarded;
        struct cfg_prefix *self_blocks; /* this node's blocks, sorted */
        size_t n_self_blocks, cap_self_blocks;
        struct plan head; /* the last plan's global fields and the running counts */
        /* per prefix, its marks and the kernel's routes for it (ours, and others' in
         * main and our table): two open-addressing tables with linear probing and
         * backward-shift deletion (an emptied entry goes at once: churn never fills
         * them), any size (a multiply maps the hash, no power of two) */
        struct pfx4 *p4;
        size_t n4, used4;
        struct pfx_slot *slots;
        size_t n_slots, used;
        struct known_route *routes;
        size_t n_routes, cap_routes;
        uint32_t free_routes;
        /* prefixes whose routes in main others changed since the last pass (their
         * counts and findings are planned again by the next delta pass) */
        struct cfg_prefix *stale;
        size_t n_stale, cap_stale;
};

static uint64_t mix64(uint64_t h)
{
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ULL;
        return h ^ (h >> 33);
}

/* A hash onto [0, n), n < 2^32: the high half times n (no modulo, any n). */
static size_t home_of(uint64_t h, size_t n)
{
        return (size_t)(((h >> 32) * (uint64_t)n) >> 32);
}

static size_t next_of(size_t i, size_t n)
{
        return i + 1 == n ? 0 : i + 1;
}

/* Whether an entry at j whose home is h may move back to the hole at i (linear
 * probing's deletion): h is not cyclically in (i, j]. */
static bool may_fill(size_t i, size_t j, size_t h)
{
        return i <= j ? (h <= i || h > j) : (h <= i && h > j);
}

/* ---- IPv4 prefixes ---- */

static bool p4_key(const struct cfg_prefix *p)
{
        static const uint8_t zero[12];

        return p->family == AF_INET && !memcmp(p->addr + 4, zero, sizeof(zero));
}

static uint32_t addr4(const struct cfg_prefix *p)
{
        uint32_t a;

        memcpy(&a, p->addr, 4);
        return a;
}

static size_t p4_home(const struct plan_ctx *c, uint32_t addr, uint8_t len)
{
        return home_of(mix64(((uint64_t)addr << 8) | len), c->n4);
}

static struct pfx4 *p4_find(const struct plan_ctx *c, const struct cfg_prefix *p)
{
        uint32_t a = addr4(p);

        if (!c->n4)
                return NULL;
        for (size_t i = p4_home(c, a, p->len);; i = next_of(i, c->n4)) {
                if (c->p4[i].len == P4_FREE)
                        return NULL;
                if (c->p4[i].addr == a && c->p4[i].len == p->len)
                        return &c->p4[i];
        }
}

static void p4_put(struct plan_ctx *c, const struct pfx4 *e)
{
        size_t i = p4_home(c, e->addr, e->len);

        while (c->p4[i].len != P4_FREE)
                i = next_of(i, c->n4);
        c->p4[i] = *e;
}

/* n entries (n > used4), the live ones moved over. */
static int p4_resize(struct plan_ctx *c, size_t n)
{
        struct pfx4 *old = c->p4, *v = malloc(n * sizeof(*v));
        size_t n_old = c->n4;

        if (!v || n >= UINT32_MAX) {
                free(v);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                v[i].len = P4_FREE;
        c->p4 = v;
        c->n4 = n;
        for (size_t i = 0; i < n_old; i++)
                if (old[i].len != P4_FREE)
                        p4_put(c, &old[i]);
        free(old);
        return 0;
}

/* p's entry, made when missing; NULL when out of memory. Filled to 7/8 at most, grown
 * to 3/2 of what it holds: 100k prefixes, 1.4 to 2 MB. Invalidates pointers to other
 * entries. */
static struct pfx4 *p4_get(struct plan_ctx *c, const struct cfg_prefix *p)
{
        struct pfx4 *e = p4_find(c, p), n = { .addr = addr4(p), .len = p->len };

        if (e)
                return e;
        if ((c->used4 + 1) * 8 > c->n4 * 7 && p4_resize(c, (c->used4 + 1) * 3 / 2 + 64) < 0)
                return NULL;
        p4_put(c, &n);
        c->used4++;
        return p4_find(c, p);
}

/* e goes when it holds nothing (no marks, no route). */
static void p4_drop_empty(struct plan_ctx *c, struct pfx4 *e)
{
        size_t i = (size_t)(e - c->p4), j = i;

        if (e->bits)
                return;
        for (j = next_of(j, c->n4); c->p4[j].len != P4_FREE; j = next_of(j, c->n4))
                if (may_fill(i, j, p4_home(c, c->p4[j].addr, c->p4[j].len))) {
                        c->p4[i] = c->p4[j];
                        i = j;
                }
        c->p4[i].len = P4_FREE;
        c->used4--;
}

static unsigned p4_mark(const struct pfx4 *e, int k)
{
        return (e->bits >> (2 * k)) & 3;
}

/* The route of ours e holds, as the kernel reports it. */
static struct host_route p4_route(const struct plan_ctx *c, const struct pfx4 *e)
{
        struct host_route r = { .table = c->route_table, .priority = c->route_metric, .protocol = c->route_protocol,
                                .type = e->type, .oif = e->bits & P4_OIF ? c->uplink : 0 };

        r.dst.family = AF_INET;
        r.dst.len = e->len;
        memcpy(r.dst.addr, &e->addr, 4);
        if (e->bits & P4_GW) {
                r.gateway.family = AF_INET;
                r.gateway.len = 32;
                memcpy(r.gateway.addr, &e->gw, 4);
        }
        return r;
}

/* A route p4_route() gives back exactly. */
static bool route_compact(const struct plan_ctx *c, const struct host_route *r)
{
        static const uint8_t zero[16];
        const struct cfg_prefix *g = &r->gateway;

        return p4_key(&r->dst) && r->table == c->route_table && r->protocol == c->route_protocol &&
               r->priority == c->route_metric && !r->multipath && (r->oif == 0 || r->oif == c->uplink) &&
               ((!g->family && !g->len && !memcmp(g->addr, zero, 16)) ||
                (g->family == AF_INET && g->len == 32 && !memcmp(g->addr + 4, zero, 12)));
}

/* ---- the wide table ---- */

static uint64_t pfx_hash(const struct cfg_prefix *p)
{
        uint64_t a, b;

        memcpy(&a, p->addr, 8);
        memcpy(&b, p->addr + 8, 8);
        return mix64(a ^ (b * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)p->family << 56) ^ ((uint64_t)p->len << 48));
}

static struct pfx_slot *slot_find(const struct plan_ctx *c, const struct cfg_prefix *p)
{
        if (!c->n_slots)
                return NULL;
        for (size_t i = home_of(pfx_hash(p), c->n_slots);; i = next_of(i, c->n_slots)) {
                if (!c->slots[i].key.family)
                        return NULL;
                if (cfg_prefix_eq(&c->slots[i].key, p))
                        return &c->slots[i];
        }
}

static void slot_put(struct plan_ctx *c, const struct pfx_slot *s)
{
        size_t i = home_of(pfx_hash(&s->key), c->n_slots);

        while (c->slots[i].key.family)
                i = next_of(i, c->n_slots);
        c->slots[i] = *s;
}

static int slots_resize(struct plan_ctx *c, size_t n)
{
        struct pfx_slot *old = c->slots, *v = calloc(n, sizeof(*v));
        size_t n_old = c->n_slots;

        if (!v || n >= UINT32_MAX) {
                free(v);
                return -ENOMEM;
        }
        c->slots = v;
        c->n_slots = n;
        for (size_t i = 0; i < n_old; i++)
                if (old[i].key.family)
                        slot_put(c, &old[i]);
        free(old);
        return 0;
}

/* The slot of p, made when missing; NULL when out of memory. Invalidates pointers to
 * other slots. */
static struct pfx_slot *slot_get(struct plan_ctx *c, const struct cfg_prefix *p)
{
        struct pfx_slot *s = slot_find(c, p), n = { .key = *p, .routes = NONE };

        if (s)
                return s;
        if ((c->used + 1) * 4 > c->n_slots * 3 && slots_resize(c, (c->used + 1) * 2 + 16) < 0)
                return NULL;
        slot_put(c, &n);
        c->used++;
        return slot_find(c, p);
}

/* s goes when it holds nothing (no marks, no route). */
static void slot_drop_empty(struct plan_ctx *c, struct pfx_slot *s)
{
        static const struct pfx_marks zero;
        size_t i = (size_t)(s - c->slots), j = i;

        if (s->routes != NONE || memcmp(&s->marks, &zero, sizeof(zero)))
                return;
        for (j = next_of(j, c->n_slots); c->slots[j].key.family; j = next_of(j, c->n_slots))
                if (may_fill(i, j, home_of(pfx_hash(&c->slots[j].key), c->n_slots))) {
                        c->slots[i] = c->slots[j];
                        i = j;
                }
        c->slots[i].key.family = 0;
        c->used--;
}

/* ---- marks and known routes ---- */

static struct pfx_marks ctx_marks_get(const struct plan_ctx *c, const struct cfg_prefix *dst)
{
        struct pfx_marks m = {};
        const struct pfx4 *e;
        const struct pfx_slot *s;

        if (p4_key(dst)) {
                if ((e = p4_find(c, dst)))
                        for (int k = 0; k < MK_N; k++)
                                m.v[k] = (uint8_t)p4_mark(e, k);
        } else if ((s = slot_find(c, dst)))
                m = s->marks;
        return m;
}

/* dst's marks made m; its entry made, or dropped when it holds nothing more. */
static int ctx_marks_set(struct plan_ctx *c, const struct cfg_prefix *dst, const struct pfx_marks *m)
{
        static const struct pfx_marks zero;
        bool none = !memcmp(m, &zero, sizeof(zero));
        struct pfx4 *e;
        struct pfx_slot *s;

        if (p4_key(dst)) {
                if (!(e = none ? p4_find(c, dst) : p4_get(c, dst)))
                        return none ? 0 : -ENOMEM;
                e->bits &= (uint16_t)~P4_MARKS;
                for (int k = 0; k < MK_N; k++)
                        e->bits |= (uint16_t)((m->v[k] > 3 ? 3 : m->v[k]) << (2 * k));
                p4_drop_empty(c, e);
                return 0;
        }
        if (!(s = none ? slot_find(c, dst) : slot_get(c, dst)))
                return none ? 0 : -ENOMEM;
        s->marks = *m;
        slot_drop_empty(c, s);
        return 0;
}

/* One more of mark k for dst: in the delta pass's marks of the prefix it plans, or
 * (a full pass keeping its context) in the context. */
static void ctx_mark(struct planner *pl, const struct cfg_prefix *dst, int k)
{
        struct pfx_marks m;

        if (pl->cur) {
                pl->cur->v[k]++;
                return;
        }
        if (!pl->ctx || pl->ctx_failed)
                return;
        if (p4_key(dst)) {
                struct pfx4 *e = p4_get(pl->ctx, dst);

                if (e && p4_mark(e, k) < 3)
                        e->bits = (uint16_t)(e->bits + (1u << (2 * k)));
                pl->ctx_failed = !e;
                return;
        }
        m = ctx_marks_get(pl->ctx, dst);
        m.v[k]++;
        if (ctx_marks_set(pl->ctx, dst, &m) < 0)
                pl->ctx_failed = true;
}

static bool known_eq(const struct host_route *a, const struct host_route *b)
{
        return cfg_prefix_eq(&a->dst, &b->dst) && a->table == b->table && a->priority == b->priority &&
               a->protocol == b->protocol && a->type == b->type && cfg_prefix_eq(&a->gateway, &b->gateway) &&
               a->oif == b->oif && a->multipath == b->multipath;
}

/* The kernel's routes known for dst, at most max of them (the common one copied to
 * *own). The count, or max + 1 when there are more. */
static size_t known_of(const struct plan_ctx *c, const struct cfg_prefix *dst, struct host_route *own,
                       const struct host_route **ret, size_t max)
{
        const struct pfx4 *e = p4_key(dst) ? p4_find(c, dst) : NULL;
        const struct pfx_slot *s = slot_find(c, dst);
        size_t n = 0;

        if (e && (e->bits & P4_ROUTE)) {
                *own = p4_route(c, e);
                ret[n++] = own;
        }
        for (uint32_t k = s ? s->routes : NONE; k != NONE; k = c->routes[k].next) {
                if (n == max)
                        return max + 1;
                ret[n++] = &c->routes[k].r;
        }
        return n;
}

static int known_add(struct plan_ctx *c, const struct host_route *r)
{
        struct pfx4 *e = route_compact(c, r) ? p4_get(c, &r->dst) : NULL;
        struct pfx_slot *s;
        struct host_route own;
        uint32_t i;

        if (route_compact(c, r) && !e)
                return -ENOMEM;
        if (e && (e->bits & P4_ROUTE) && (own = p4_route(c, e), known_eq(&own, r)))
                return 0; /* "already present" */
        if ((s = slot_find(c, &r->dst)))
                for (i = s->routes; i != NONE; i = c->routes[i].next)
                        if (known_eq(&c->routes[i].r, r))
                                return 0;
        if (e && !(e->bits & P4_ROUTE)) {
                e->bits |= (uint16_t)(P4_ROUTE | (r->oif ? P4_OIF : 0) | (r->gateway.family ? P4_GW : 0));
                e->type = r->type;
                e->gw = addr4(&r->gateway);
                return 0;
        }
        if (!(s = slot_get(c, &r->dst)))
                return -ENOMEM;
        if (c->free_routes != NONE) {
                i = c->free_routes;
                c->free_routes = c->routes[i].next;
        } else {
                if (c->n_routes >= NONE || GROW(c->routes, c->cap_routes, c->n_routes + 1) < 0)
                        return -ENOMEM;
                i = (uint32_t)c->n_routes++;
        }
        c->routes[i] = (struct known_route){ .r = *r, .next = s->routes };
        s->routes = i;
        return 0;
}

static bool key_match(const struct host_route *k, const struct host_route *r, bool same_key)
{
        return same_key ? k->table == r->table && k->priority == r->priority : known_eq(k, r);
}

/* Forget the first known route of r's prefix that is r (same_key false) or has r's key
 * in the kernel's sense: table, prefix, metric (same_key true: what a replace replaces). */
static bool known_del(struct plan_ctx *c, const struct host_route *r, bool same_key)
{
        struct pfx4 *e = p4_key(&r->dst) ? p4_find(c, &r->dst) : NULL;
        struct pfx_slot *s;
        struct host_route own;

        if (e && (e->bits & P4_ROUTE) && (own = p4_route(c, e), key_match(&own, r, same_key))) {
                e->bits &= (uint16_t)~(P4_ROUTE | P4_OIF | P4_GW);
                p4_drop_empty(c, e);
                return true;
        }
        s = slot_find(c, &r->dst);
        for (uint32_t *at = s ? &s->routes : NULL; at && *at != NONE; at = &c->routes[*at].next) {
                uint32_t i = *at;

                if (key_match(&c->routes[i].r, r, same_key)) {
                        *at = c->routes[i].next;
                        c->routes[i].next = c->free_routes;
                        c->free_routes = i;
                        slot_drop_empty(c, s);
                        return true;
                }
        }
        return false;
}

static const struct cfg_block *block_at(const struct cfg_model *m, const struct cfg_prefix *p)
{
        const struct cfg_block *b = block_containing(m, p);

        return b && cfg_prefix_eq(&b->cidr, p) ? b : NULL;
}

static const struct cfg_borrowed *borrowed_at(const struct cfg_model *m, const struct cfg_prefix *p)
{
        size_t lo = 0, hi = m->n_borrowed;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = cfg_prefix_cmp(&m->borrowed[mid].addr, p);

                if (c == 0)
                        return &m->borrowed[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

static int self_blocks_cmp(const void *a, const void *b)
{
        return cfg_prefix_cmp(a, b);
}

static int ctx_nodes_from(struct plan_ctx *c, const struct cfg_model *m)
{
        struct ctx_node *v = calloc(m->n_nodes + 1, sizeof(*v));

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_nodes; i++) {
                v[i] = (struct ctx_node){ .name = strdup(m->nodes[i].name), .addr = m->nodes[i].addr,
                                          .addr6 = m->nodes[i].addr6 };
                if (!v[i].name) {
                        while (i--)
                                free(v[i].name);
                        free(v);
                        return -ENOMEM;
                }
        }
        for (size_t i = 0; i < c->n_nodes; i++)
                free(c->nodes[i].name);
        free(c->nodes);
        c->nodes = v;
        c->n_nodes = m->n_nodes;
        return 0;
}

static void felix_of(const struct cfg_model *m, enum cfg_tristate ret[3])
{
        struct cfg_felix f = cfg_model_felix(m, m->settings.node_name);

        ret[0] = f.ipip_enabled;
        ret[1] = f.vxlan_enabled;
        ret[2] = f.vxlan_enabled_v6;
}

static bool self_resource(const struct cfg_model *m)
{
        const struct cfg_node *n = cfg_model_self(m);

        return n && n->has_resource;
}

/* In one of the pools the full pass planned under: where blocks and borrowed
 * addresses lie (the model keeps no block outside its pools). */
static bool ctx_in_pool(const struct plan_ctx *c, const struct cfg_prefix *p)
{
        for (size_t i = 0; i < c->n_pools; i++)
                if (cfg_prefix_contains(&c->pools[i].cidr, p))
                        return true;
        return false;
}

/* A route in main that ends every lookup of a pool's addresses (report_covering()):
 * a blocking finding of the whole plan, which only a full pass makes. */
static bool ctx_covering(const struct plan_ctx *c, const struct host_route *r)
{
        if (r->type != HOST_RTN_BLACKHOLE && r->type != HOST_RTN_UNREACHABLE && r->type != HOST_RTN_PROHIBIT)
                return false;
        for (size_t i = 0; i < c->n_pools; i++) {
                const struct ctx_pool *q = &c->pools[i];

                if (!q->nat_outgoing && q->workload && r->dst.family == q->cidr.family && r->dst.len < q->block_size &&
                    (cfg_prefix_contains(&r->dst, &q->cidr) || cfg_prefix_contains(&q->cidr, &r->dst)))
                        return true;
        }
        return false;
}

/* What the delta passes need of a full build, filled before the route walk (the
 * kernel's routes, which the applied slices of a sliced pass then update). */
static int ctx_fill(struct planner *pl)
{
        const struct cfg_model *m = pl->m;
        const struct cfg_settings *s = &m->settings;
        struct plan_ctx *c = pl->ctx;

        c->route_table = s->route_table;
        c->route_metric = s->route_metric;
        c->route_protocol = s->route_protocol;
        c->local_block_route = s->local_block_route;
        c->self_resource = self_resource(m);
        felix_of(m, c->felix);
        if (!(c->node_name = strdup(s->node_name ? s->node_name : "")))
                return -ENOMEM;
        c->uplink = pl->uplink ? pl->uplink->ifindex : 0;
        memcpy(c->nets, pl->nets, sizeof(c->nets));
        c->n_nets = pl->n_nets;
        c->self_addr = pl->self_addr;
        c->self_addr6 = pl->self_addr6;
        c->gateway = pl->gateway;
        c->gateway6 = pl->gateway6;
        c->rec = *pl->rec;
        c->pools = calloc(m->n_pools + 1, sizeof(*c->pools));
        if (!c->pools)
                return -ENOMEM;
        c->n_pools = m->n_pools;
        for (size_t i = 0; i < m->n_pools; i++) {
                const struct cfg_pool *q = &m->pools[i];

                c->pools[i] = (struct ctx_pool){ .cidr = q->cidr, .block_size = q->block_size, .ipip = q->ipip,
                                                 .vxlan = q->vxlan, .nat_outgoing = q->nat_outgoing,
                                                 .workload = q->workload, .disabled = q->disabled,
                                                 .applies = pl->applies[i], .node_selector = strdup(q->node_selector) };
                if (!c->pools[i].node_selector)
                        return -ENOMEM;
        }
        if (ctx_nodes_from(c, m) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_blocks; i++)
                if (m->blocks[i].node == pl->self &&
                    GROW(c->self_blocks, c->cap_self_blocks, c->n_self_blocks + 1) >= 0)
                        c->self_blocks[c->n_self_blocks++] = m->blocks[i].cidr;
                else if (m->blocks[i].node == pl->self)
                        return -ENOMEM;
        /* The kernel's routes as plan_routes() reads them: our table, foreign ones in main. */
        for (size_t k = 0; k < pl->h->n_routes; k++) {
                const struct host_route *rt = &pl->h->routes[k];

                if ((rt->dst.family != AF_INET && rt->dst.family != AF_INET6) ||
                    !(rt->table == s->route_table || (rt->table == PLAN_TABLE_MAIN && rt->protocol != s->route_protocol)))
                        continue;
                /* Main's routes outside the pools are no block's or borrowed address's:
                 * plan_dst() never meets them (the default route, connected subnets). */
                if (rt->table == PLAN_TABLE_MAIN && !ctx_in_pool(c, &rt->dst))
                        continue;
                if (known_add(c, rt) < 0)
                        return -ENOMEM;
        }
        for (size_t k = 0; k < pl->h->n_routes4; k++) {
                struct host_route rt = host_route4_get(pl->h, k);

                if (rt.table == s->route_table && known_add(c, &rt) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* The rest, once the plan is whole: its counts and global fields, and the addresses
 * no route may cover (the route walk's until then). */
static int ctx_finish(struct planner *pl)
{
        struct plan_ctx *c = pl->ctx;
        const struct plan *p = pl->p;

        c->guarded = pl->guarded;
        c->n_guarded = pl->n_guarded;
        pl->guarded = NULL;
        c->head = *p;
        c->head.actions = NULL;
        c->head.n_actions = 0;
        c->head.findings = NULL;
        c->head.n_findings = c->head.n_blocking = 0;
        c->head.rules = NULL;
        c->head.n_rules = c->head.n_tunnels = 0;
        c->head.record_first = false;
        c->head.pools = malloc((p->n_pools + 1) * sizeof(*p->pools));
        if (!c->head.pools)
                return -ENOMEM;
        memcpy(c->head.pools, p->pools, p->n_pools * sizeof(*p->pools));
        return 0;
}

void plan_ctx_free(struct plan_ctx *c)
{
        if (!c)
                return;
        free(c->node_name);
        for (size_t i = 0; i < c->n_pools; i++)
                free(c->pools[i].node_selector);
        free(c->pools);
        for (size_t i = 0; i < c->n_nodes; i++)
                free(c->nodes[i].name);
        free(c->nodes);
        free(c->guarded);
        free(c->self_blocks);
        free(c->head.pools);
        free(c->p4);
        free(c->slots);
        free(c->routes);
        free(c->stale);
        free(c);
}

size_t plan_ctx_bytes(const struct plan_ctx *c)
{
        size_t n;

        if (!c)
                return 0;
        n = sizeof(*c) + c->n4 * sizeof(*c->p4) + c->n_slots * sizeof(*c->slots) +
            c->cap_routes * sizeof(*c->routes) + c->cap_stale * sizeof(*c->stale) +
            c->n_pools * sizeof(*c->pools) + c->head.n_pools * sizeof(*c->head.pools) +
            c->n_nodes * sizeof(*c->nodes) + c->n_guarded * sizeof(*c->guarded) +
            c->cap_self_blocks * sizeof(*c->self_blocks);
        for (size_t i = 0; i < c->n_nodes; i++)
                n += strlen(c->nodes[i].name) + 1;
        return n;
}

int plan_build_ctx(const struct cfg_model *m, const struct host_snapshot *h, const struct host_record *rec,
                   struct plan **ret, struct plan_ctx **ctx)
{
        return plan_build_ctx_sink(m, h, rec, NULL, ret, ctx);
}

static int plan_build_ctx_sink(const struct cfg_model *m, const struct host_snapshot *h,
                               const struct host_record *rec, const struct plan_sink *sink, struct plan **ret,
                               struct plan_ctx **ctx)
{
        const struct cfg_settings *s = &m->settings;
        struct plan_ctx *c = NULL;
        int r;

        *ctx = NULL;
        /* Routes of an old owner (routeProtocol/routeTable changed) are the full pass's
         * business: a context starts once they are gone. */
        if (!rec || !rec->route_protocol || (rec->route_protocol == s->route_protocol && rec->route_table == s->route_table))
                c = calloc(1, sizeof(*c));
        if (c) {
                c->free_routes = NONE;
                /* every block and borrowed address has marks: room for them at once */
                if (p4_resize(c, (m->n_blocks + m->n_borrowed) * 5 / 4 + 64) < 0) {
                        free(c);
                        c = NULL;
                }
        }
        r = plan_full(m, h, rec, c, sink, ret);
        if (r != 0) {
                plan_ctx_free(c);
                return r < 0 ? r : 0;
        }
        *ctx = c;
        return 0;
}

int plan_ctx_applied(struct plan_ctx *c, const struct host_change *a, size_t n, const struct host_result *res)
{
        for (size_t i = 0; i < n; i++) {
                if (res[i].error)
                        return -ESTALE; /* the kernel's state is in doubt */
                switch (a[i].kind) {
                case CHANGE_ADD_ROUTE:
                        if (a[i].replace)
                                known_del(c, &a[i].route, true);
                        if (known_add(c, &a[i].route) < 0)
                                return -ENOMEM;
                        break;
                case CHANGE_DEL_ROUTE:
                        known_del(c, &a[i].route, false);
                        break;
                case CHANGE_ADD_RULE:
                case CHANGE_DEL_RULE:
                        break; /* rules are no delta pass's business */
                default:
                        return -ESTALE; /* a value or a device changed: the snapshot is old */
                }
        }
        return 0;
}

#define CTX_STALE_MAX 4096 /* prefixes others' route changes touched between passes; more: full pass */

int plan_ctx_route(struct plan_ctx *c, const struct host_route *r, bool removed)
{
        if ((r->dst.family != AF_INET && r->dst.family != AF_INET6) || r->table != PLAN_TABLE_MAIN)
                return 0;
        if (r->protocol == c->route_protocol || ctx_covering(c, r))
                return 1;
        if (!ctx_in_pool(c, &r->dst))
                return 0;
        if (c->n_stale >= CTX_STALE_MAX)
                return 1;
        if (GROW(c->stale, c->cap_stale, c->n_stale + 1) < 0)
                return -ENOMEM;
        c->stale[c->n_stale++] = r->dst;
        if (removed) {
                /* The notification names the route as the kernel held it; a route
                 * we knew with other attributes under its key goes as well. */
                if (!known_del(c, r, false))
                        known_del(c, r, true);
                return 0;
        }
        /* Added, or replaced (a route's key is its table, prefix and metric: the
         * kernel refuses a second route under one without NLM_F_APPEND). */
        known_del(c, r, true);
        return known_add(c, r) < 0 ? -ENOMEM : 0;
}

/* Anything global that differs from what the full pass planned under: its reason. */
static const char *ctx_global_differs(const struct plan_ctx *c, const struct cfg_model *m)
{
        const struct cfg_settings *s = &m->settings;
        enum cfg_tristate felix[3];

        if (s->route_table != c->route_table || s->route_metric != c->route_metric ||
            s->route_protocol != c->route_protocol || s->local_block_route != c->local_block_route ||
            !streq(s->node_name ? s->node_name : "", c->node_name))
                return "the settings changed";
        if (m->n_pools != c->n_pools)
                return "a pool was added or removed";
        for (size_t i = 0; i < m->n_pools; i++) {
                const struct cfg_pool *q = &m->pools[i];
                const struct ctx_pool *o = &c->pools[i];

                if (!cfg_prefix_eq(&q->cidr, &o->cidr) || q->block_size != o->block_size || q->ipip != o->ipip ||
                    q->vxlan != o->vxlan || q->nat_outgoing != o->nat_outgoing || q->workload != o->workload ||
                    q->disabled != o->disabled || !streq(q->node_selector, o->node_selector))
                        return "a pool changed";
        }
        felix_of(m, felix);
        if (memcmp(felix, c->felix, sizeof(felix)))
                return "a FelixConfiguration changed";
        if (self_resource(m) != c->self_resource)
                return "this node's Node resource came or went";
        return NULL;
}

/* This node's blocks after the change, and whether every pool still applies as it
 * did (plan_pools(): the selector matches, or a block of this node lies in it). */
static int ctx_update_applies(struct plan_ctx *c, const struct planner *pl, const struct cfg_touched *t)
{
        const struct cfg_model *m = pl->m;
        const struct cfg_labels *labels = cfg_model_self_labels(m);

        for (size_t i = 0; i < t->n; i++) {
                const struct cfg_block *b = block_at(m, &t->v[i]);
                /* No blocks of this node yet: no array either (bsearch() wants one). */
                struct cfg_prefix *at = c->n_self_blocks ? bsearch(&t->v[i], c->self_blocks, c->n_self_blocks,
                                                                   sizeof(*c->self_blocks), self_blocks_cmp)
                                                         : NULL;
                size_t k;

                if (at) {
                        k = (size_t)(at - c->self_blocks);
                        memmove(at, at + 1, (c->n_self_blocks - k - 1) * sizeof(*at));
                        c->n_self_blocks--;
                }
                if (!b || b->node != pl->self)
                        continue;
                if (GROW(c->self_blocks, c->cap_self_blocks, c->n_self_blocks + 1) < 0)
                        return -ENOMEM;
                for (k = c->n_self_blocks; k && cfg_prefix_cmp(&c->self_blocks[k - 1], &b->cidr) > 0; k--)
                        c->self_blocks[k] = c->self_blocks[k - 1];
                c->self_blocks[k] = b->cidr;
                c->n_self_blocks++;
        }
        for (size_t i = 0; i < m->n_pools; i++) {
                bool applies = sel_match(m->pools[i].selector, labels);

                for (size_t k = 0; k < c->n_self_blocks && !applies; k++) {
                        const struct cfg_block *b = block_at(m, &c->self_blocks[k]);

                        applies = b && b->pool == i;
                }
                if (applies != c->pools[i].applies)
                        return 1;
        }
        return 0;
}

static int push_addr(struct cfg_prefix **v, size_t *n, size_t *cap, const struct cfg_prefix *a)
{
        if (!a->family)
                return 0;
        if (GROW(*v, *cap, *n + 1) < 0)
                return -ENOMEM;
        (*v)[(*n)++] = host_prefix(a);
        return 0;
}

/* Node addresses that changed since the full pass (a node's, or a node came or went):
 * the guarded addresses are collected again, and a block or borrowed address
 * holding a changed one needs the full walk (its route's safety and the next hops
 * inside it change). Returns 1 then. */
static int ctx_update_nodes(struct plan_ctx *c, struct planner *pl)
{
        const struct cfg_model *m = pl->m;
        _cleanup_(freep) struct cfg_prefix *v = NULL;
        size_t n = 0, cap = 0, i = 0, j = 0;
        int r = 0;

        while ((i < c->n_nodes || j < m->n_nodes) && r >= 0) {
                int cmp = i == c->n_nodes ? 1 : j == m->n_nodes ? -1 : strcmp(c->nodes[i].name, m->nodes[j].name);

                if (cmp == 0 && cfg_prefix_eq(&c->nodes[i].addr, &m->nodes[j].addr) &&
                    cfg_prefix_eq(&c->nodes[i].addr6, &m->nodes[j].addr6)) {
                        i++, j++;
                        continue;
                }
                if (cmp <= 0 && (r = push_addr(&v, &n, &cap, &c->nodes[i].addr)) >= 0)
                        r = push_addr(&v, &n, &cap, &c->nodes[i].addr6);
                if (cmp >= 0 && r >= 0 && (r = push_addr(&v, &n, &cap, &m->nodes[j].addr)) >= 0)
                        r = push_addr(&v, &n, &cap, &m->nodes[j].addr6);
                i += cmp <= 0;
                j += cmp >= 0;
        }
        if (r < 0)
                return r;
        if (!n && c->n_nodes == m->n_nodes)
                return 0;
        for (size_t k = 0; k < n; k++)
                if (block_containing(m, &v[k]) || borrowed_at(m, &v[k]))
                        return 1;
        if ((r = ctx_nodes_from(c, m)) < 0)
                return r;
        if (!n)
                return 0;
        free(c->guarded);
        c->guarded = NULL;
        pl->guarded = NULL;
        if ((r = collect_guarded(pl)) < 0)
                return r;
        c->guarded = pl->guarded;
        c->n_guarded = pl->n_guarded;
        return 0;
}

static size_t *head_count(struct plan *h, int k)
{
        switch (k) {
        case MK_WANTED:
                return &h->n_routes_wanted;
        case MK_FOREIGN:
                return &h->n_routes_foreign;
        case MK_CONFLICTING:
                return &h->n_routes_conflicting;
        case MK_UPSTREAM:
                return &h->n_blocks_upstream;
        case MK_BORROWED:
                return &h->n_borrowed;
        default:
                return &h->n_borrowed_upstream;
        }
}

/* One touched prefix: its wanted route as the full walk would decide it, against the
 * routes known for it; its old share of the counts out, the new one in. Returns 1
 * when it needs the full walk. */
static int delta_prefix(struct plan_ctx *c, struct planner *pl, const struct cfg_prefix *dst)
{
        const struct cfg_model *m = pl->m;
        const struct host_route *have[DELTA_ROUTES_MAX];
        struct pfx_marks old, cur = {};
        const struct cfg_borrowed *bor = borrowed_at(m, dst);
        const struct cfg_block *blk = bor ? NULL : block_at(m, dst);
        struct host_route w, own;
        uint32_t pool = bor ? bor->pool : blk ? blk->pool : UINT32_MAX;
        bool valid = false;
        size_t n;
        int r;

        /* A block around a node's address: that node's next hop and this route's
         * safety both hang on it. */
        if (guarded_in(pl, dst))
                return 1;
        if ((n = known_of(c, dst, &own, have, DELTA_ROUTES_MAX)) > DELTA_ROUTES_MAX)
                return 1;
        old = ctx_marks_get(c, dst);
        pl->cur = &cur;
        if (pool != UINT32_MAX && pool_routed(m, pool)) {
                valid = bor ? plan_borrowed(pl, (uint32_t)(bor - m->borrowed), &w)
                            : plan_block(pl, (uint32_t)(blk - m->blocks), &w);
                if (valid && (r = unsafe_route(pl, &w, bor ? 2 : 1,
                                               bor ? (uint32_t)(bor - m->borrowed) : (uint32_t)(blk - m->blocks))) != 0) {
                        pl->cur = NULL;
                        return r < 0 ? r : 1;
                }
                cur.v[MK_WANTED] += valid;
        }
        r = plan_dst(pl, valid ? &w : NULL, valid ? pool : UINT32_MAX, have, n);
        pl->cur = NULL;
        if (r < 0)
                return r;
        for (int k = 0; k < MK_N; k++)
                *head_count(&c->head, k) += (size_t)cur.v[k] - (size_t)old.v[k];
        return memcmp(&cur, &old, sizeof(cur)) ? ctx_marks_set(c, dst, &cur) : 0;
}

/* The plan a delta pass hands out: the last full plan's global fields and the counts
 * as they now stand, with this pass's route changes and findings. */
static int delta_head(const struct plan_ctx *c, struct plan *p)
{
        const struct plan *h = &c->head;

        p->underlay = h->underlay;
        p->underlay6 = h->underlay6;
        p->n_proxies_wanted = h->n_proxies_wanted;
        p->tunnels_unneeded = h->tunnels_unneeded;
        p->tunnel6_unneeded = h->tunnel6_unneeded;
        p->uplink = h->uplink;
        memcpy(p->uplink_name, h->uplink_name, sizeof(p->uplink_name));
        memcpy(p->uplink_error, h->uplink_error, sizeof(p->uplink_error));
        p->n_routes_wanted = h->n_routes_wanted;
        p->n_routes_foreign = h->n_routes_foreign;
        p->n_routes_conflicting = h->n_routes_conflicting;
        p->n_blocks_upstream = h->n_blocks_upstream;
        p->n_borrowed = h->n_borrowed;
        p->n_borrowed_upstream = h->n_borrowed_upstream;
        p->record = h->record;
        p->pools = malloc((h->n_pools + 1) * sizeof(*p->pools));
        if (!p->pools)
                return -ENOMEM;
        memcpy(p->pools, h->pools, h->n_pools * sizeof(*p->pools));
        p->n_pools = h->n_pools;
        return 0;
}

static const char *delta_check(struct plan_ctx *c, struct planner *pl, const struct cfg_touched *t, int *err)
{
        const char *why;
        int r;

        *err = 0;
        if (t->all)
                return "the change may touch every prefix";
        if ((why = ctx_global_differs(c, pl->m)))
                return why;
        pl->uplink = c->uplink ? host_link_by_index(pl->h, c->uplink) : NULL;
        if (c->uplink && !pl->uplink)
                return "the uplink is gone";
        memcpy(pl->nets, c->nets, sizeof(pl->nets));
        pl->n_nets = c->n_nets;
        find_self(pl);
        if (!cfg_prefix_eq(&pl->self_addr, &c->self_addr) || !cfg_prefix_eq(&pl->self_addr6, &c->self_addr6))
                return "this node's address changed";
        pl->gateway = c->gateway;
        pl->gateway6 = c->gateway6;
        if ((r = ctx_update_applies(c, pl, t)) != 0) {
                *err = r < 0 ? r : 0;
                return "a pool starts or stops applying to this node";
        }
        /* Only a change that moved a node (t->nodes) is compared node by node: 5,000
         * names were a tenth of what a BlockAffinity's put cost. A context outlives
         * only delta passes that succeeded, each of which saw its change's t. */
        if (t->nodes && (r = ctx_update_nodes(c, pl)) != 0) {
                *err = r < 0 ? r : 0;
                return "a node's address lies in a block";
        }
        pl->guarded = c->guarded;
        pl->n_guarded = c->n_guarded;
        pl->upstream = calloc(pl->m->n_nodes + 1, sizeof(*pl->upstream));
        pl->no_addr = calloc(pl->m->n_nodes + 1, sizeof(*pl->no_addr));
        pl->peer = calloc(2 * pl->m->n_nodes + 1, sizeof(*pl->peer));
        pl->peer_routes = calloc(2 * pl->m->n_nodes + 1, sizeof(*pl->peer_routes));
        if (!pl->upstream || !pl->no_addr || !pl->peer || !pl->peer_routes)
                *err = -ENOMEM;
        return *err ? "out of memory" : NULL;
}

/* The prefixes whose routes in main others changed since the last pass, not among
 * those t touched: planned again for their counts and findings (a foreign route in
 * main changes nothing we do, DESIGN.md §3.2, but what we report about it). */
static int delta_stale(struct plan_ctx *c, struct planner *pl, const struct cfg_touched *t)
{
        int r = 0;

        if (!c->n_stale)
                return 0; /* no array either (qsort() wants one) */
        qsort(c->stale, c->n_stale, sizeof(*c->stale), self_blocks_cmp);
        for (size_t i = 0; i < c->n_stale && r == 0; i++)
                if (!(i && cfg_prefix_eq(&c->stale[i], &c->stale[i - 1])) &&
                    !(t->n && bsearch(&c->stale[i], t->v, t->n, sizeof(*t->v), self_blocks_cmp)))
                        r = delta_prefix(c, pl, &c->stale[i]);
        c->n_stale = 0;
        return r;
}

int plan_delta(struct plan_ctx *c, const struct cfg_model *m, const struct host_snapshot *h,
               const struct cfg_touched *t, struct plan **ret, const char **why)
{
        struct planner pl = { .m = m, .h = h, .rec = &c->rec, .guarded_shared = true };
        int r;

        *ret = NULL;
        if ((r = plan_new(&pl.p)) < 0)
                return r;
        *why = delta_check(c, &pl, t, &r);
        for (size_t i = 0; i < t->n && !*why && r >= 0; i++)
                /* Each prefix once (t is sorted: cfg_touched_done()); a second plan of
                 * it would repeat its changes and count its findings twice. */
                if ((i && cfg_prefix_eq(&t->v[i], &t->v[i - 1])) ? (r = 0) :
                    (r = delta_prefix(c, &pl, &t->v[i])) > 0)
                        *why = "a changed prefix holds a node's address or too many routes";
        if (!*why && r >= 0 && (r = delta_stale(c, &pl, t)) > 0)
                *why = "a prefix whose routes others changed holds a node's address or too many routes";
        /* The findings about the prefixes planned (the full pass reports the whole). */
        if (!*why && r >= 0 &&
            (r = report_notes(&pl, pl.upstream, PLAN_WARNING, "needs-upstream-routing",
                              "no direct route (not on-link, or encapsulated), these blocks need upstream "
                              "routing (the switch or BGP)")) >= 0 &&
            (r = report_notes(&pl, pl.no_addr, PLAN_WARNING, "node-address-unknown",
                              "no known address, so no route to its blocks")) >= 0 &&
            (r = report_route_notes(&pl)) >= 0)
                r = delta_head(c, pl.p);
        planner_done(&pl);
        if (r < 0 || *why) {
                plan_free(pl.p);
                return r < 0 ? r : 0;
        }
        *ret = pl.p;
        return 1;
}

int plan_add_finding(struct plan *p, enum plan_severity sev, const char *code, const char *fmt, ...)
{
        struct plan_finding *v;
        va_list ap;
        char *msg;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        v = realloc(p->findings, (p->n_findings + 1) * sizeof(*v));
        if (!v) {
                free(msg);
                return -ENOMEM;
        }
        p->findings = v;
        p->findings[p->n_findings++] = (struct plan_finding){ .severity = sev, .code = code, .message = msg };
        if (sev == PLAN_BLOCKING)
                p->n_blocking++;
        return 0;
}

void plan_free(struct plan *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->n_findings; i++)
                free(p->findings[i].message);
        free(p->findings);
        free(p->actions);
        free(p->rules);
        free(p->pools);
        free(p);
}

const char *host_change_kind_name(enum host_change_kind k)
{
        switch (k) {
        case CHANGE_SET_PROXY_DELAY:
                return "set-proxy-delay";
        case CHANGE_SET_PROXY_ARP:
                return "set-proxy-arp";
        case CHANGE_DEL_ROUTE:
                return "delete-route";
        case CHANGE_ADD_ROUTE:
                return "add-route";
        case CHANGE_REMOVE_TUNNEL:
                return "remove-tunnel";
        case CHANGE_SET_PROXY_NDP:
                return "set-proxy-ndp";
        case CHANGE_SET_PROXY_DELAY6:
                return "set-proxy-delay6";
        case CHANGE_ADD_PROXY:
                return "add-proxy-neigh";
        case CHANGE_DEL_PROXY:
                return "delete-proxy-neigh";
        case CHANGE_ADD_RULE:
                return "add-rule";
        case CHANGE_DEL_RULE:
                return "delete-rule";
        }
        return "?";
}

const char *plan_severity_name(enum plan_severity s)
{
        return s == PLAN_BLOCKING ? "blocking" : s == PLAN_WARNING ? "warning" : "info";
}

const char *plan_route_type_name(uint8_t type)
{
        switch (type) {
        case HOST_RTN_UNICAST:
                return "unicast";
        case HOST_RTN_BLACKHOLE:
                return "blackhole";
        case HOST_RTN_UNREACHABLE:
                return "unreachable";
        case HOST_RTN_PROHIBIT:
                return "prohibit";
        case HOST_RTN_LOCAL:
                return "local";
        default:
                return "other";
        }
}

/* A line built by hand: --once prints one for each of up to 100k routes, and
 * snprintf() with five conversions was most of the time that takes. Behaves like
 * snprintf(): always terminated, returns the length the whole line needs. */
struct line {
        char *buf;
        size_t size, len;
};

static void put(struct line *l, const char *s, size_t n)
{
        if (l->len < l->size) {
                size_t room = l->size - 1 - l->len, k = n < room ? n : room;

                memcpy(l->buf + l->len, s, k);
                l->buf[l->len + k] = '\0';
        }
        l->len += n;
}

static void put_str(struct line *l, const char *s)
{
        put(l, s, strlen(s));
}

static void put_u32(struct line *l, uint32_t v)
{
        char tmp[10];
        size_t n = 0;

        do
                tmp[sizeof(tmp) - ++n] = (char)('0' + v % 10);
        while ((v /= 10));
        put(l, tmp + sizeof(tmp) - n, n);
}

/* "add-rule to 10.0.0.0/16 lookup main suppress_prefixlength 25 pref 32700 proto 211",
 * in `ip rule` words (a table of ours by number, as `ip rule` prints it). */
static int rule_fmt(const struct host_change *a, char *buf, size_t size)
{
        const struct host_rule *r = a->rule;
        char d[CFG_PREFIX_STRLEN], t[16], sup[40] = "";

        if (r->dst.len)
                cfg_prefix_fmt(&r->dst, d, sizeof(d));
        else
                snprintf(d, sizeof(d), "all");
        if (r->table == PLAN_TABLE_MAIN)
                snprintf(t, sizeof(t), "main");
        else
                snprintf(t, sizeof(t), "%u", r->table);
        if (r->suppress_prefixlen >= 0)
                snprintf(sup, sizeof(sup), " suppress_prefixlength %d", r->suppress_prefixlen);
        return snprintf(buf, size, "%s to %s lookup %s%s pref %u proto %u%s", host_change_kind_name(a->kind), d, t, sup,
                        r->priority, r->protocol, r->other ? " (with other selectors)" : "");
}

int host_change_fmt(const struct host_change *a, char *buf, size_t size)
{
        char d[CFG_PREFIX_STRLEN];
        const struct host_route *r = &a->route;
        struct line l = { .buf = buf, .size = size };

        switch (a->kind) {
        case CHANGE_SET_PROXY_DELAY:
                return snprintf(buf, size, "set-proxy-delay %s %lld ms%s", a->dev, (long long)a->value,
                                a->restore ? " (restore)" : "");
        case CHANGE_SET_PROXY_ARP:
                return snprintf(buf, size, "set-proxy-arp %s %lld%s", a->dev, (long long)a->value,
                                a->restore ? " (restore)" : "");
        case CHANGE_REMOVE_TUNNEL:
                return snprintf(buf, size, "remove-tunnel %s (%s)", a->dev, a->tunnel->kind);
        case CHANGE_SET_PROXY_NDP:
                return snprintf(buf, size, "set-proxy-ndp %s %lld%s", a->dev, (long long)a->value,
                                a->restore ? " (restore)" : "");
        case CHANGE_SET_PROXY_DELAY6:
                return snprintf(buf, size, "set-proxy-delay6 %s %lld ms%s", a->dev, (long long)a->value,
                                a->restore ? " (restore)" : "");
        case CHANGE_ADD_PROXY:
        case CHANGE_DEL_PROXY:
                cfg_addr_fmt(&r->dst, d, sizeof(d));
                return a->kind == CHANGE_ADD_PROXY
                               ? snprintf(buf, size, "add-proxy-neigh %s dev %s proto %u", d, a->dev, r->protocol)
                               : snprintf(buf, size, "delete-proxy-neigh %s dev %s", d, a->dev);
        case CHANGE_ADD_RULE:
        case CHANGE_DEL_RULE:
                return rule_fmt(a, buf, size);
        case CHANGE_ADD_ROUTE:
        case CHANGE_DEL_ROUTE:
                break;
        }
        if (size)
                buf[0] = '\0';
        /* "add-route [TYPE ]DST[ via GW][ dev DEV] proto P metric M table T" */
        put_str(&l, host_change_kind_name(a->kind));
        put(&l, " ", 1);
        if (r->type != HOST_RTN_UNICAST) {
                put_str(&l, plan_route_type_name(r->type));
                put(&l, " ", 1);
        }
        put(&l, d, (size_t)cfg_prefix_fmt(&r->dst, d, sizeof(d)));
        if (r->type == HOST_RTN_UNICAST && r->gateway.family) {
                put(&l, " via ", 5);
                put(&l, d, (size_t)cfg_addr_fmt(&r->gateway, d, sizeof(d)));
        }
        if (r->type == HOST_RTN_UNICAST && a->dev[0]) {
                put(&l, " dev ", 5);
                put(&l, a->dev, strnlen(a->dev, sizeof(a->dev)));
        }
        put(&l, " proto ", 7);
        put_u32(&l, r->protocol);
        put(&l, " metric ", 8);
        put_u32(&l, r->priority);
        put(&l, " table ", 7);
        put_u32(&l, r->table);
        return l.len > INT_MAX ? INT_MAX : (int)l.len;
}
