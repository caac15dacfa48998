/* The upstream routes (DESIGN.md §4, --upstream-routes): what the switch or router in
 * front of the nodes needs so that pod addresses are reachable beyond the segment.
 *
 * Owns the computation only: model → entries (blocks of underlay pools, borrowed
 * addresses) → exact routes sorted by destination → aggregation → text in one of the
 * syntaxes, or the change between two route sets. No I/O, no clock, no logging: main.c
 * and the event loop read and write; every rule here is testable without root.
 *
 * Aggregation works on the block routes only. Borrowed addresses stay host routes: they
 * are more specific than any block or aggregate, so longest-prefix match sends them to
 * the node that hosts them whatever covers them. That is what Calico's own BGP
 * announces: each node exports its blocks and rejects only routes beneath its own
 * blocks (projectcalico/calico confd/etc/calico/confd/templates/bird_aggr.cfg.template,
 * calico_aggr), so the hosting node's /32 of a borrowed address goes out beside the
 * affine node's block. */
#include "upstream.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <stdarg.h>

#include "util.h"

/* A --since document larger than this is refused. */
#define UPSTREAM_PARSE_MAX_ROUTES (4u << 20)

/* ---- the input ---- */

static const struct cfg_prefix *node_addr(const struct cfg_node *n, int family)
{
        /* The node's address of the block's family (Calico Node spec.bgp.ipv4Address or
         * ipv6Address, or the Kubernetes Node's annotation or InternalIP); without one
         * the block is reported. */
        return cfg_node_addr(n, family);
}

static bool underlay_pool(const struct cfg_pool *p)
{
        /* natOutgoing false; disabled pools too (their addresses are still in use).
         * A pool without the Workload use holds no pod blocks and no aggregate may
         * cover it. */
        return !p->nat_outgoing && p->workload;
}

int upstream_input_from_model(const struct cfg_model *m, struct upstream_input *ret)
{
        _cleanup_(freep) struct upstream_entry *e = NULL;
        _cleanup_(freep) struct cfg_prefix *pools = NULL, *addrs = NULL;
        size_t n = 0, np = 0, na = 0;

        e = calloc(m->n_blocks + m->n_borrowed + 1, sizeof(*e));
        pools = calloc(m->n_pools + 1, sizeof(*pools));
        addrs = calloc(2 * m->n_nodes + 1, sizeof(*addrs));
        if (!e || !pools || !addrs)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_nodes; i++) {
                if (m->nodes[i].addr.family)
                        addrs[na++] = m->nodes[i].addr;
                if (m->nodes[i].addr6.family)
                        addrs[na++] = m->nodes[i].addr6;
        }
        for (size_t i = 0; i < m->n_pools; i++)
                if (underlay_pool(&m->pools[i]))
                        pools[np++] = m->pools[i].cidr;
        for (size_t i = 0; i < m->n_blocks; i++) {
                const struct cfg_block *b = &m->blocks[i];
                const struct cfg_node *node = &m->nodes[b->node];

                if (underlay_pool(&m->pools[b->pool]))
                        e[n++] = (struct upstream_entry){ b->cidr, node->name, node_addr(node, b->cidr.family), false };
        }
        /* Borrowed addresses (IPAMBlock attributes[].secondary.node): a host route to
         * the node that hosts each, as Felix routes them (felix/calc/l3_route_resolver.go). */
        for (size_t i = 0; i < m->n_borrowed; i++) {
                const struct cfg_borrowed *b = &m->borrowed[i];
                const struct cfg_node *host = &m->nodes[b->node];

                if (underlay_pool(&m->pools[b->pool]))
                        e[n++] = (struct upstream_entry){ b->addr, host->name, node_addr(host, b->addr.family), true };
        }
        *ret = (struct upstream_input){
                .entries = TAKE_PTR(e),
                .n_entries = n,
                .pools = TAKE_PTR(pools),
                .n_pools = np,
                .node_addrs = TAKE_PTR(addrs),
                .n_node_addrs = na,
        };
        return 0;
}

void upstream_input_clear(struct upstream_input *in)
{
        free((void *)in->entries);
        free((void *)in->pools);
        free((void *)in->node_addrs);
        *in = (struct upstream_input){};
}

/* ---- address arithmetic ---- */

static struct cfg_prefix host_prefix(const struct cfg_prefix *a)
{
        struct cfg_prefix p = *a;

        p.len = (uint8_t)cfg_prefix_maxlen(a);
        return p;
}

static struct cfg_prefix parent_of(const struct cfg_prefix *p, unsigned len)
{
        struct cfg_prefix q = *p;

        q.len = (uint8_t)len;
        cfg_prefix_mask(&q);
        return q;
}

/* The last address of p, as 16 bytes comparable with memcmp. */
static void last_addr(const struct cfg_prefix *p, uint8_t out[16])
{
        unsigned max = cfg_prefix_maxlen(p);

        memcpy(out, p->addr, 16);
        for (unsigned bit = p->len; bit < max; bit++)
                out[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
}

static bool siblings(const struct cfg_prefix *a, const struct cfg_prefix *b)
{
        struct cfg_prefix pa, pb;

        if (a->family != b->family || a->len != b->len || a->len == 0 || cfg_prefix_eq(a, b))
                return false;
        pa = parent_of(a, a->len - 1u);
        pb = parent_of(b, b->len - 1u);
        return cfg_prefix_eq(&pa, &pb);
}

/* ---- routes ---- */

static int route_cmp(const struct upstream_route *a, const struct upstream_route *b)
{
        int c = cfg_prefix_cmp(&a->dst, &b->dst);

        if (!c)
                c = cfg_prefix_cmp(&a->via, &b->via);
        if (!c)
                c = strcmp(a->node, b->node);
        return c;
}

static int route_qcmp(const void *a, const void *b)
{
        return route_cmp(a, b);
}

static bool same_hop(const struct upstream_route *a, const struct upstream_route *b)
{
        return cfg_prefix_eq(&a->via, &b->via) && streq(a->node, b->node);
}

void upstream_free(struct upstream *u)
{
        if (!u)
                return;
        for (size_t i = 0; i < u->n_routes; i++)
                free(u->routes[i].node);
        for (size_t i = 0; i < u->n_missing; i++)
                free(u->missing[i].node);
        free(u->routes);
        free(u->missing);
        free(u);
}

static void upstream_freep(struct upstream **u)
{
        upstream_free(*u);
}

static int missing_qcmp(const void *a, const void *b)
{
        const struct upstream_missing *x = a, *y = b;

        return cfg_prefix_cmp(&x->dst, &y->dst);
}

/* Same destination twice in the sorted routes: a /32 block whose one address is
 * borrowed (the borrowed entry names the node that really hosts it), or duplicates.
 * Keeps one; returns the new count. */
static size_t dedupe(struct upstream_route *r, size_t n)
{
        size_t out = 0;

        for (size_t i = 0; i < n; i++) {
                struct upstream_route *last = out ? &r[out - 1] : NULL;

                if (last && cfg_prefix_eq(&last->dst, &r[i].dst)) {
                        if (r[i].kind == UPSTREAM_BORROWED && last->kind != UPSTREAM_BORROWED) {
                                free(last->node);
                                *last = r[i];
                        } else
                                free(r[i].node);
                        continue;
                }
                r[out++] = r[i];
        }
        return out;
}

/* Entries with a next hop become exact routes (sorted), the others the missing list. */
static int split_entries(const struct upstream_input *in, struct upstream *u)
{
        u->routes = calloc(in->n_entries + 1, sizeof(*u->routes));
        u->missing = calloc(in->n_entries + 1, sizeof(*u->missing));
        if (!u->routes || !u->missing)
                return -ENOMEM;
        for (size_t i = 0; i < in->n_entries; i++) {
                const struct upstream_entry *e = &in->entries[i];
                char *name = strdup(e->node ? e->node : "");

                if (!name)
                        return -ENOMEM; /* what is counted so far is freed with u */
                if (!e->via || e->via->family != e->dst.family)
                        u->missing[u->n_missing++] = (struct upstream_missing){ e->dst, name, e->borrowed };
                else
                        u->routes[u->n_routes++] = (struct upstream_route){
                                .dst = e->dst,
                                .via = host_prefix(e->via),
                                .node = name,
                                .kind = e->borrowed ? UPSTREAM_BORROWED : UPSTREAM_BLOCK,
                        };
        }
        qsort(u->routes, u->n_routes, sizeof(*u->routes), route_qcmp);
        qsort(u->missing, u->n_missing, sizeof(*u->missing), missing_qcmp);
        u->n_routes = dedupe(u->routes, u->n_routes);
        for (size_t i = 0; i < u->n_routes; i++) {
                if (u->routes[i].kind == UPSTREAM_BORROWED)
                        u->n_borrowed++;
                else
                        u->n_blocks++;
        }
        u->n_exact = u->n_routes;
        return 0;
}

/* Exact aggregation: in address order, two sibling block routes with the same next
 * hop become their parent, repeatedly (the parent is exactly their union). Works in
 * place on block routes only; returns the new count. */
static size_t merge_exact(struct upstream_route *r, size_t n)
{
        size_t top = 0; /* r[0..top) is the stack */

        for (size_t i = 0; i < n; i++) {
                r[top++] = r[i];
                while (top >= 2) {
                        struct upstream_route *a = &r[top - 2], *b = &r[top - 1];

                        if (!siblings(&a->dst, &b->dst) || !same_hop(a, b))
                                break;
                        a->dst = parent_of(&a->dst, a->dst.len - 1u);
                        a->kind = UPSTREAM_AGGREGATE;
                        free(b->node);
                        top--;
                }
        }
        return top;
}

/* Block routes first, borrowed host routes after, each part still sorted. */
static size_t partition_blocks(struct upstream_route *r, size_t n)
{
        _cleanup_(freep) struct upstream_route *tmp = malloc((n ? n : 1) * sizeof(*tmp));
        size_t nb = 0, k = 0;

        if (!tmp)
                return SIZE_MAX;
        for (size_t i = 0; i < n; i++)
                if (r[i].kind != UPSTREAM_BORROWED)
                        tmp[k++] = r[i];
        nb = k;
        for (size_t i = 0; i < n; i++)
                if (r[i].kind == UPSTREAM_BORROWED)
                        tmp[k++] = r[i];
        memcpy(r, tmp, n * sizeof(*r));
        return nb;
}

/* ---- cover-free aggregation ---- */

/* Space no aggregate may cover unless it lies in the route's own node's blocks: every
 * block (with its node, known address or not), every borrowed address, every node
 * address. Sorted by prefix. */
struct occupied {
        struct cfg_prefix p;
        const char *node;
        bool block;
};

static int occupied_qcmp(const void *a, const void *b)
{
        return cfg_prefix_cmp(&((const struct occupied *)a)->p, &((const struct occupied *)b)->p);
}

static int occupied_build(const struct upstream_input *in, struct occupied **ret, size_t *ret_n)
{
        struct occupied *o = calloc(in->n_entries + in->n_node_addrs + 1, sizeof(*o));
        size_t n = 0;

        if (!o)
                return -ENOMEM;
        for (size_t i = 0; i < in->n_entries; i++)
                o[n++] = (struct occupied){ in->entries[i].dst, in->entries[i].node ? in->entries[i].node : "",
                                            !in->entries[i].borrowed };
        for (size_t i = 0; i < in->n_node_addrs; i++)
                o[n++] = (struct occupied){ host_prefix(&in->node_addrs[i]), "", false };
        qsort(o, n, sizeof(*o), occupied_qcmp);
        *ret = o;
        *ret_n = n;
        return 0;
}

/* First entry that does not sort before p's first address. */
static size_t occupied_lower(const struct occupied *o, size_t n, const struct cfg_prefix *p)
{
        struct cfg_prefix start = *p;
        size_t lo = 0, hi = n;

        start.len = 0;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (cfg_prefix_cmp(&o[mid].p, &start) < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* May p be routed to node? Only when everything occupied inside it is node's block,
 * or lies inside one of node's blocks (a borrowed address there keeps its own, more
 * specific route; a node address there was inside the block route already). */
static bool cover_allowed(const struct occupied *o, size_t n, const struct cfg_prefix *p, const char *node)
{
        uint8_t last[16];
        const struct occupied *own_block = NULL;

        last_addr(p, last);
        for (size_t i = occupied_lower(o, n, p); i < n; i++) {
                const struct occupied *x = &o[i];

                if (x->p.family != p->family || memcmp(x->p.addr, last, 16) > 0)
                        break;
                if (x->block && streq(x->node, node)) {
                        own_block = x;
                        continue;
                }
                if (!x->block && own_block && cfg_prefix_contains(&own_block->p, &x->p))
                        continue;
                return false;
        }
        return true;
}

static const struct cfg_prefix *pool_of(const struct upstream_input *in, const struct cfg_prefix *p)
{
        for (size_t i = 0; i < in->n_pools; i++)
                if (cfg_prefix_contains(&in->pools[i], p))
                        return &in->pools[i];
        return NULL;
}

/* Widen each block route as far as its pool and the occupied space allow; routes
 * the widened one covers (all of the same node, by construction) are dropped. */
static int merge_cover_free(const struct upstream_input *in, struct upstream_route *r, size_t *n)
{
        _cleanup_(freep) struct occupied *o = NULL;
        size_t n_o, out = 0;
        int e;

        if ((e = occupied_build(in, &o, &n_o)) < 0)
                return e;
        for (size_t i = 0; i < *n; i++) {
                struct upstream_route cur = r[i];
                const struct cfg_prefix *pool = pool_of(in, &cur.dst);

                if (pool) {
                        while (cur.dst.len > pool->len) {
                                struct cfg_prefix up = parent_of(&cur.dst, cur.dst.len - 1u);

                                if (!cover_allowed(o, n_o, &up, cur.node))
                                        break;
                                cur.dst = up;
                                cur.kind = UPSTREAM_AGGREGATE;
                        }
                        /* Every block route after it inside the widened prefix is the
                         * same node's (cover_allowed saw to it). */
                        while (i + 1 < *n && cfg_prefix_contains(&cur.dst, &r[i + 1].dst)) {
                                free(r[i + 1].node);
                                i++;
                                cur.kind = UPSTREAM_AGGREGATE;
                        }
                }
                r[out++] = cur;
        }
        *n = out;
        return 0;
}

/* The block routes r[0..nb) became r[0..n): close the gap before the borrowed ones,
 * so that u always owns exactly its n_routes names (an error path frees them). */
static void close_gap(struct upstream *u, size_t nb, size_t n)
{
        memmove(u->routes + n, u->routes + nb, (u->n_routes - nb) * sizeof(*u->routes));
        u->n_routes -= nb - n;
}

int upstream_compute(const struct upstream_input *in, enum upstream_aggregate agg, struct upstream **ret)
{
        _cleanup_(upstream_freep) struct upstream *u = calloc(1, sizeof(*u));
        size_t nb, n;
        int e;

        if (!u)
                return -ENOMEM;
        u->aggregate = agg;
        if ((e = split_entries(in, u)) < 0)
                return e;
        nb = partition_blocks(u->routes, u->n_routes);
        if (nb == SIZE_MAX)
                return -ENOMEM;
        n = merge_exact(u->routes, nb);
        close_gap(u, nb, n);
        if (agg == UPSTREAM_AGG_COVER_FREE) {
                nb = n;
                if ((e = merge_cover_free(in, u->routes, &n)) < 0)
                        return e;
                close_gap(u, nb, n);
        }
        qsort(u->routes, u->n_routes, sizeof(*u->routes), route_qcmp);
        *ret = TAKE_PTR(u);
        return 0;
}

/* ---- names ---- */

static const struct {
        const char *name;
        enum upstream_format f;
} format_names[] = {
        { "text", UPSTREAM_FMT_TEXT },    { "json", UPSTREAM_FMT_JSON },       { "ios", UPSTREAM_FMT_IOS },
        { "cisco", UPSTREAM_FMT_IOS },    { "eos", UPSTREAM_FMT_IOS },         { "arista", UPSTREAM_FMT_IOS },
        { "vrp", UPSTREAM_FMT_VRP },      { "huawei", UPSTREAM_FMT_VRP },      { "comware", UPSTREAM_FMT_VRP },
        { "h3c", UPSTREAM_FMT_VRP },      { "junos", UPSTREAM_FMT_JUNOS },     { "juniper", UPSTREAM_FMT_JUNOS },
        { "frr", UPSTREAM_FMT_FRR },      { "bird", UPSTREAM_FMT_BIRD },       { "bird2", UPSTREAM_FMT_BIRD },
        { "ip-batch", UPSTREAM_FMT_IP_BATCH },
};

int upstream_format_from_name(const char *name, enum upstream_format *ret)
{
        for (size_t i = 0; i < ELEMENTSOF(format_names); i++)
                if (streq(name, format_names[i].name)) {
                        *ret = format_names[i].f;
                        return 0;
                }
        return -EINVAL;
}

int upstream_aggregate_from_name(const char *name, enum upstream_aggregate *ret)
{
        if (streq(name, "exact"))
                *ret = UPSTREAM_AGG_EXACT;
        else if (streq(name, "cover-free"))
                *ret = UPSTREAM_AGG_COVER_FREE;
        else
                return -EINVAL;
        return 0;
}

const char *upstream_aggregate_name(enum upstream_aggregate a)
{
        return a == UPSTREAM_AGG_COVER_FREE ? "cover-free" : "exact";
}

static const char *kind_name(enum upstream_kind k)
{
        return k == UPSTREAM_BORROWED ? "borrowed" : k == UPSTREAM_AGGREGATE ? "aggregate" : "block";
}

int upstream_summary(const struct upstream *u, char *buf, size_t size)
{
        return snprintf(buf, size, "%zu route%s for %zu block%s and %zu borrowed address%s (%zu before %s aggregation); %zu without a node address",
                        u->n_routes, u->n_routes == 1 ? "" : "s", u->n_blocks, u->n_blocks == 1 ? "" : "s",
                        u->n_borrowed, u->n_borrowed == 1 ? "" : "es", u->n_exact, upstream_aggregate_name(u->aggregate),
                        u->n_missing);
}

/* ---- text ---- */

/* A growing string; an allocation failure sticks and is reported at the end. */
struct sbuf {
        char *s;
        size_t len, cap;
        int error;
};

_printf_(2, 3) static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (b->error)
                return;
        for (;;) {
                size_t room = b->cap - b->len;

                va_start(ap, fmt);
                n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
                va_end(ap);
                if (n < 0) {
                        b->error = -EINVAL;
                        return;
                }
                if ((size_t)n < room) {
                        b->len += (size_t)n;
                        return;
                }
                if (GROW(b->s, b->cap, b->len + (size_t)n + 1) < 0) {
                        b->error = -ENOMEM;
                        return;
                }
        }
}

/* Node names go into descriptions that end at a blank: keep the characters of a
 * Kubernetes name (RFC 1123 subdomain) and replace anything else with '_'. */
static const char *safe_name(const char *name, char *buf, size_t size)
{
        size_t i = 0;

        for (; name[i] && i + 1 < size; i++) {
                char c = name[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                          c == '-' || c == '_';

                buf[i] = ok ? c : '_';
        }
        buf[i] = '\0';
        return i ? buf : "_";
}

static void json_str(struct sbuf *b, const char *s)
{
        sb_printf(b, "\"");
        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;

                if (c == '"' || c == '\\')
                        sb_printf(b, "\\%c", c);
                else if (c < 0x20)
                        sb_printf(b, "\\u%04x", c);
                else
                        sb_printf(b, "%c", c);
        }
        sb_printf(b, "\"");
}

/* The pieces of one route in the forms the syntaxes want. */
struct route_text {
        char dst[CFG_PREFIX_STRLEN];  /* 10.0.0.0/26 */
        char net[CFG_PREFIX_STRLEN];  /* 10.0.0.0 */
        char mask[INET_ADDRSTRLEN];   /* 255.255.255.192 */
        char via[CFG_PREFIX_STRLEN];  /* 192.168.1.2 */
        char name[256];               /* the node, safe for a description */
        bool v6;
        unsigned len;
};

static void route_text(const struct upstream_route *r, struct route_text *t)
{
        struct cfg_prefix mask = { .family = AF_INET, .len = 32 };

        cfg_prefix_fmt(&r->dst, t->dst, sizeof(t->dst));
        cfg_addr_fmt(&r->dst, t->net, sizeof(t->net));
        cfg_addr_fmt(&r->via, t->via, sizeof(t->via));
        safe_name(r->node, t->name, sizeof(t->name));
        t->v6 = r->dst.family == AF_INET6;
        t->len = r->dst.len;
        memset(mask.addr, 0, sizeof(mask.addr));
        for (unsigned bit = 0; bit < r->dst.len && bit < 32; bit++)
                mask.addr[bit / 8] |= (uint8_t)(0x80 >> (bit % 8));
        cfg_addr_fmt(&mask, t->mask, sizeof(t->mask));
}

static void json_route(struct sbuf *b, const struct upstream_route *r, bool last)
{
        struct route_text t;

        route_text(r, &t);
        sb_printf(b, "    {\"prefix\": \"%s\", \"via\": \"%s\", \"node\": ", t.dst, t.via);
        json_str(b, r->node);
        sb_printf(b, ", \"kind\": \"%s\"}%s\n", kind_name(r->kind), last ? "" : ",");
}

static void json_routes(struct sbuf *b, const char *key, const struct upstream_route *const *v, size_t n, bool last)
{
        sb_printf(b, "  \"%s\": [%s", key, n ? "\n" : "");
        for (size_t i = 0; i < n; i++)
                json_route(b, v[i], i + 1 == n);
        sb_printf(b, "%s]%s\n", n ? "  " : "", last ? "" : ",");
}

static void json_missing(struct sbuf *b, const struct upstream *u)
{
        sb_printf(b, "  \"missing\": [%s", u->n_missing ? "\n" : "");
        for (size_t i = 0; i < u->n_missing; i++) {
                const struct upstream_missing *m = &u->missing[i];
                char dst[CFG_PREFIX_STRLEN];

                cfg_prefix_fmt(&m->dst, dst, sizeof(dst));
                sb_printf(b, "    {\"prefix\": \"%s\", \"node\": ", dst);
                json_str(b, m->node);
                sb_printf(b, ", \"kind\": \"%s\", \"reason\": \"the node has no IPv%c address\"}%s\n",
                          m->borrowed ? "borrowed" : "block", m->dst.family == AF_INET6 ? '6' : '4',
                          i + 1 == u->n_missing ? "" : ",");
        }
        sb_printf(b, "%s],\n", u->n_missing ? "  " : "");
}

static void json_counts(struct sbuf *b, const struct upstream *u)
{
        sb_printf(b,
                  "  \"aggregate\": \"%s\",\n"
                  "  \"counts\": {\"routes\": %zu, \"exact\": %zu, \"blocks\": %zu, \"borrowed\": %zu, \"missing\": %zu},\n",
                  upstream_aggregate_name(u->aggregate), u->n_routes, u->n_exact, u->n_blocks, u->n_borrowed,
                  u->n_missing);
}

/* ---- one line per syntax ---- */

enum op {
        OP_ADD,
        OP_DEL,
};

static void line_ios(struct sbuf *b, const struct route_text *t, enum op op)
{
        if (t->v6)
                sb_printf(b, "%sipv6 route %s %s", op == OP_DEL ? "no " : "", t->dst, t->via);
        else
                sb_printf(b, "%sip route %s %s %s", op == OP_DEL ? "no " : "", t->net, t->mask, t->via);
        if (op == OP_ADD)
                sb_printf(b, " name %s", t->name);
        sb_printf(b, "\n");
}

static void line_vrp(struct sbuf *b, const struct route_text *t, enum op op)
{
        sb_printf(b, "%s%s route-static %s %u %s", op == OP_DEL ? "undo " : "", t->v6 ? "ipv6" : "ip", t->net, t->len,
                  t->via);
        if (op == OP_ADD)
                sb_printf(b, " description %s", t->name);
        sb_printf(b, "\n");
}

/* Junos static routes have no description statement: the node is not named. IPv6
 * static routes live in the inet6.0 table's own static hierarchy. */
static void line_junos(struct sbuf *b, const struct route_text *t, enum op op)
{
        const char *where = t->v6 ? "routing-options rib inet6.0 static" : "routing-options static";

        if (op == OP_DEL)
                sb_printf(b, "delete %s route %s\n", where, t->dst);
        else
                sb_printf(b, "set %s route %s next-hop %s\n", where, t->dst, t->via);
}

static void line_frr(struct sbuf *b, const struct route_text *t, enum op op)
{
        sb_printf(b, "%s%s route %s %s\n", op == OP_DEL ? "no " : "", t->v6 ? "ipv6" : "ip", t->dst, t->via);
}

/* No "-6" in a batch line (ip takes options only before -batch): the addresses say
 * the family. */
static void line_ip_batch(struct sbuf *b, const struct route_text *t, enum op op)
{
        if (op == OP_DEL)
                sb_printf(b, "route del %s via %s\n", t->dst, t->via);
        else
                sb_printf(b, "route replace %s via %s proto static\n", t->dst, t->via);
}

static void line_text(struct sbuf *b, const struct route_text *t, enum op op, const struct upstream_route *r,
                      bool diff)
{
        sb_printf(b, "%s%s via %s node %s%s\n", diff ? (op == OP_DEL ? "- " : "+ ") : "", t->dst, t->via, t->name,
                  r->kind == UPSTREAM_BORROWED ? " (borrowed)" : "");
}

/* FRR and ip -batch have no description on a route: a comment line names the node
 * before each run of its routes (a whole line: FRR takes '!' only there). */
static void node_comment(struct sbuf *b, enum upstream_format f, const struct upstream_route *r,
                         const char **last_node)
{
        char name[256];

        if (*last_node && streq(*last_node, r->node))
                return;
        *last_node = r->node;
        sb_printf(b, "%s node %s\n", f == UPSTREAM_FMT_FRR ? "!" : "#", safe_name(r->node, name, sizeof(name)));
}

static void line(struct sbuf *b, enum upstream_format f, const struct upstream_route *r, enum op op, bool diff,
                 const char **last_node)
{
        struct route_text t;

        route_text(r, &t);
        switch (f) {
        case UPSTREAM_FMT_IOS:
                line_ios(b, &t, op);
                break;
        case UPSTREAM_FMT_VRP:
                line_vrp(b, &t, op);
                break;
        case UPSTREAM_FMT_JUNOS:
                line_junos(b, &t, op);
                break;
        case UPSTREAM_FMT_FRR:
                if (op == OP_ADD)
                        node_comment(b, f, r, last_node);
                line_frr(b, &t, op);
                break;
        case UPSTREAM_FMT_IP_BATCH:
                if (op == OP_ADD)
                        node_comment(b, f, r, last_node);
                line_ip_batch(b, &t, op);
                break;
        default:
                line_text(b, &t, op, r, diff);
                break;
        }
}

/* BIRD 2: one static protocol per family (a channel each); a route's node follows
 * as a comment. */
static void bird_protocol(struct sbuf *b, const struct upstream *u, int family)
{
        bool any = false;

        for (size_t i = 0; i < u->n_routes; i++)
                any |= u->routes[i].dst.family == family;
        if (family == AF_INET6 && !any)
                return;
        sb_printf(b, "protocol static calico_underlay%s {\n        %s;\n", family == AF_INET6 ? "6" : "4",
                  family == AF_INET6 ? "ipv6" : "ipv4");
        for (size_t i = 0; i < u->n_routes; i++) {
                struct route_text t;

                if (u->routes[i].dst.family != family)
                        continue;
                route_text(&u->routes[i], &t);
                sb_printf(b, "        route %s via %s; # %s\n", t.dst, t.via, t.name);
        }
        sb_printf(b, "}\n");
}

/* ---- whole documents ---- */

static void full_json(struct sbuf *b, const struct upstream *u)
{
        _cleanup_(freep) const struct upstream_route **v = calloc(u->n_routes + 1, sizeof(*v));

        if (!v) {
                b->error = -ENOMEM;
                return;
        }
        for (size_t i = 0; i < u->n_routes; i++)
                v[i] = &u->routes[i];
        sb_printf(b, "{\n");
        json_counts(b, u);
        json_missing(b, u);
        json_routes(b, "routes", v, u->n_routes, true);
        sb_printf(b, "}\n");
}

static void full(struct sbuf *b, const struct upstream *u, enum upstream_format f)
{
        const char *last_node = NULL;
        char sum[256];

        switch (f) {
        case UPSTREAM_FMT_JSON:
                full_json(b, u);
                return;
        case UPSTREAM_FMT_BIRD:
                bird_protocol(b, u, AF_INET);
                bird_protocol(b, u, AF_INET6);
                return;
        case UPSTREAM_FMT_TEXT:
                upstream_summary(u, sum, sizeof(sum));
                sb_printf(b, "# upstream routes: %s\n", sum);
                break;
        default:
                break;
        }
        for (size_t i = 0; i < u->n_routes; i++)
                line(b, f, &u->routes[i], OP_ADD, false, &last_node);
}

/* The change: routes of prev not in u, and of u not in prev (same destination, next
 * hop and node), each in destination order. */
struct change {
        const struct upstream_route **del, **add;
        size_t n_del, n_add;
};

static int change_build(const struct upstream *prev, const struct upstream *u, struct change *c)
{
        size_t i = 0, j = 0;

        c->del = calloc(prev->n_routes + 1, sizeof(*c->del));
        c->add = calloc(u->n_routes + 1, sizeof(*c->add));
        if (!c->del || !c->add)
                return -ENOMEM;
        while (i < prev->n_routes || j < u->n_routes) {
                int cmp = i == prev->n_routes ? 1 : j == u->n_routes ? -1 : route_cmp(&prev->routes[i], &u->routes[j]);

                if (cmp < 0)
                        c->del[c->n_del++] = &prev->routes[i++];
                else if (cmp > 0)
                        c->add[c->n_add++] = &u->routes[j++];
                else
                        i++, j++;
        }
        return 0;
}

static void diff(struct sbuf *b, const struct upstream *u, const struct change *c, enum upstream_format f)
{
        const char *last_node = NULL;

        switch (f) {
        case UPSTREAM_FMT_JSON:
                sb_printf(b, "{\n");
                json_counts(b, u);
                json_missing(b, u);
                json_routes(b, "removed", c->del, c->n_del, false);
                json_routes(b, "added", c->add, c->n_add, true);
                sb_printf(b, "}\n");
                return;
        case UPSTREAM_FMT_BIRD:
                sb_printf(b, "# BIRD has no incremental form: the whole protocol follows (%zu removed, %zu added)\n",
                          c->n_del, c->n_add);
                bird_protocol(b, u, AF_INET);
                bird_protocol(b, u, AF_INET6);
                return;
        case UPSTREAM_FMT_TEXT:
                sb_printf(b, "# upstream routes changed: %zu removed, %zu added\n", c->n_del, c->n_add);
                break;
        default:
                break;
        }
        for (size_t i = 0; i < c->n_del; i++)
                line(b, f, c->del[i], OP_DEL, true, &last_node);
        for (size_t i = 0; i < c->n_add; i++)
                line(b, f, c->add[i], OP_ADD, true, &last_node);
}

int upstream_format(const struct upstream *u, const struct upstream *prev, enum upstream_format f, char **ret,
                    size_t *ret_len)
{
        struct sbuf b = {};
        struct change c = {};
        int e = 0;

        if (prev) {
                e = change_build(prev, u, &c);
                if (e >= 0)
                        diff(&b, u, &c, f);
                free(c.del);
                free(c.add);
        } else
                full(&b, u, f);
        if (e >= 0)
                e = b.error;
        if (e >= 0 && !b.s)
                b.s = strdup(""); /* nothing changed */
        if (e >= 0 && !b.s)
                e = -ENOMEM;
        if (e < 0) {
                free(b.s);
                return e;
        }
        *ret = b.s;
        *ret_len = b.len;
        return 0;
}

/* ---- reading a previous JSON output ---- */

static int parse_route(struct json_object *o, size_t i, struct upstream_route *r, char *why, size_t why_size)
{
        struct json_object *prefix, *via, *node, *kind;
        const char *key = NULL;
        struct cfg_prefix v;

        if (!json_object_is_type(o, json_type_object))
                key = "";
        else if (!json_object_object_get_ex(o, "prefix", &prefix) || !json_object_is_type(prefix, json_type_string) ||
                 cfg_prefix_parse(json_object_get_string(prefix), true, &r->dst) != 0)
                key = ".prefix";
        else if (!json_object_object_get_ex(o, "via", &via) || !json_object_is_type(via, json_type_string) ||
                 cfg_addr_parse(json_object_get_string(via), &v) < 0 || v.family != r->dst.family)
                key = ".via";
        else if (!json_object_object_get_ex(o, "node", &node) || !json_object_is_type(node, json_type_string))
                key = ".node";
        if (key) {
                snprintf(why, why_size, "routes[%zu]%s: %s", i, key,
                         *key ? "missing or not valid" : "not an object");
                return -EINVAL;
        }
        r->via = v;
        /* kind is informative (a removed route is printed as it was); absent: block */
        r->kind = UPSTREAM_BLOCK;
        if (json_object_object_get_ex(o, "kind", &kind) && json_object_is_type(kind, json_type_string)) {
                if (streq(json_object_get_string(kind), "aggregate"))
                        r->kind = UPSTREAM_AGGREGATE;
                else if (streq(json_object_get_string(kind), "borrowed"))
                        r->kind = UPSTREAM_BORROWED;
        }
        r->node = strdup(json_object_get_string(node));
        return r->node ? 0 : -ENOMEM;
}

static int parse_routes(struct json_object *doc, struct upstream *u, char *why, size_t why_size)
{
        struct json_object *routes;
        size_t n;
        int e;

        if (!json_object_is_type(doc, json_type_object) || !json_object_object_get_ex(doc, "routes", &routes) ||
            !json_object_is_type(routes, json_type_array)) {
                snprintf(why, why_size, "not an upstream routes document (no \"routes\" list; --since takes the full JSON output)");
                return -EINVAL;
        }
        n = json_object_array_length(routes);
        if (n > UPSTREAM_PARSE_MAX_ROUTES) {
                snprintf(why, why_size, "more than %u routes", UPSTREAM_PARSE_MAX_ROUTES);
                return -E2BIG;
        }
        u->routes = calloc(n + 1, sizeof(*u->routes));
        if (!u->routes)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if ((e = parse_route(json_object_array_get_idx(routes, i), i, &u->routes[i], why, why_size)) < 0)
                        return e;
                u->n_routes++;
        }
        qsort(u->routes, u->n_routes, sizeof(*u->routes), route_qcmp);
        for (size_t i = 1; i < u->n_routes; i++)
                if (cfg_prefix_eq(&u->routes[i - 1].dst, &u->routes[i].dst)) {
                        char p[CFG_PREFIX_STRLEN];

                        cfg_prefix_fmt(&u->routes[i].dst, p, sizeof(p));
                        snprintf(why, why_size, "route %s appears twice", p);
                        return -EINVAL;
                }
        return 0;
}

/* line:column of a byte offset, for json-c's syntax errors. */
static void offset_pos(const char *buf, size_t off, unsigned *line, unsigned *col)
{
        *line = 1;
        *col = 1;
        for (size_t i = 0; i < off; i++) {
                if (buf[i] == '\n') {
                        (*line)++;
                        *col = 1;
                } else
                        (*col)++;
        }
}

int upstream_parse_json(const char *buf, size_t len, struct upstream **ret, char *why, size_t why_size)
{
        _cleanup_(upstream_freep) struct upstream *u = calloc(1, sizeof(*u));
        struct json_tokener *tok;
        struct json_object *doc;
        enum json_tokener_error jerr;
        size_t end;
        int e;

        if (!u)
                return -ENOMEM;
        if (len > INT32_MAX) {
                snprintf(why, why_size, "too large");
                return -E2BIG;
        }
        tok = json_tokener_new();
        if (!tok)
                return -ENOMEM;
        doc = json_tokener_parse_ex(tok, buf, (int)len);
        jerr = json_tokener_get_error(tok);
        end = json_tokener_get_parse_end(tok);
        json_tokener_free(tok);
        while (doc && end < len && (buf[end] == ' ' || buf[end] == '\n' || buf[end] == '\t' || buf[end] == '\r'))
                end++;
        if (!doc || jerr != json_tokener_success || end < len) {
                unsigned line, col;

                offset_pos(buf, end < len ? end : len, &line, &col);
                if (jerr == json_tokener_continue)
                        jerr = json_tokener_error_parse_eof;
                snprintf(why, why_size, "%u:%u: %s", line, col,
                         doc ? "unexpected data after the document" : json_tokener_error_desc(jerr));
                json_object_put(doc);
                return -EINVAL;
        }
        e = parse_routes(doc, u, why, why_size);
        json_object_put(doc);
        if (e < 0)
                return e;
        u->n_exact = u->n_routes;
        *ret = TAKE_PTR(u);
        return 0;
}
