/* Helpers over an observed snapshot (struct host_snapshot). Pure: no kernel, no
 * libnl or libmnl; the planner, the kernel layer and their tests call them. */
#include "host.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The planner asks once per route it deletes, and a node with many pods has
 * hundreds of links: a snapshot holds its links sorted by ifindex (kern_observe()
 * sorts them, and so must whoever builds one by hand), so look by halves. */
const struct host_link *host_link_by_index(const struct host_snapshot *h, int ifindex)
{
        size_t lo = 0, hi = h->n_links;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (h->links[mid].ifindex == ifindex)
                        return &h->links[mid];
                if (h->links[mid].ifindex < ifindex)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

const struct host_link *host_link_by_name(const struct host_snapshot *h, const char *name)
{
        for (size_t i = 0; i < h->n_links; i++)
                if (strcmp(h->links[i].name, name) == 0)
                        return &h->links[i];
        return NULL;
}

int host_link_of_addr(const struct host_snapshot *h, const struct cfg_prefix *a)
{
        size_t n = a->family == AF_INET6 ? 16 : a->family == AF_INET ? 4 : 0;

        for (size_t i = 0; n && i < h->n_addrs; i++)
                if (h->addrs[i].addr.family == a->family && memcmp(h->addrs[i].addr.addr, a->addr, n) == 0)
                        return h->addrs[i].ifindex;
        return 0;
}

void host_snapshot_clear(struct host_snapshot *h)
{
        free(h->links);
        free(h->addrs);
        free(h->routes);
        free(h->routes4);
        free(h->proxies);
        free(h->rules);
        *h = (struct host_snapshot){};
}

static struct host_route route4_expand(const struct host_route4 *c, uint32_t table, uint8_t protocol)
{
        struct host_route r = { .dst = { .family = AF_INET, .len = c->len },
                                .table = table,
                                .priority = c->priority,
                                .oif = c->oif,
                                .protocol = protocol,
                                .type = HOST_RTN_UNICAST };

        memcpy(r.dst.addr, c->dst, 4);
        if (c->has_gateway) {
                r.gateway = (struct cfg_prefix){ .family = AF_INET, .len = 32 };
                memcpy(r.gateway.addr, c->gateway, 4);
        }
        return r;
}

struct host_route host_route4_get(const struct host_snapshot *h, size_t i)
{
        return route4_expand(&h->routes4[i], h->routes4_table, h->routes4_protocol);
}

static bool route_same(const struct host_route *a, const struct host_route *b)
{
        return cfg_prefix_eq(&a->dst, &b->dst) && a->gateway.family == b->gateway.family &&
               (!a->gateway.family || cfg_prefix_eq(&a->gateway, &b->gateway)) && a->table == b->table &&
               a->priority == b->priority && a->oif == b->oif && a->protocol == b->protocol && a->type == b->type &&
               a->multipath == b->multipath;
}

bool host_route4_put(const struct host_route *r, uint32_t table, uint8_t protocol, struct host_route4 *c)
{
        struct host_route back;

        if (!table || table == 254 /* main */ || r->table != table || r->protocol != protocol ||
            r->dst.family != AF_INET || r->type != HOST_RTN_UNICAST || r->multipath ||
            (r->gateway.family && r->gateway.family != AF_INET))
                return false;
        *c = (struct host_route4){ .oif = r->oif, .priority = r->priority, .len = r->dst.len,
                                   .has_gateway = r->gateway.family == AF_INET };
        memcpy(c->dst, r->dst.addr, 4);
        if (c->has_gateway)
                memcpy(c->gateway, r->gateway.addr, 4);
        /* Only what comes back the same: anything the form cannot say stays whole. */
        back = route4_expand(c, table, protocol);
        return route_same(&back, r);
}

int host_route4_cmp(const struct host_route4 *a, const struct host_route4 *b)
{
        int c = memcmp(a->dst, b->dst, 4);

        if (c)
                return c;
        if (a->len != b->len)
                return a->len < b->len ? -1 : 1;
        return a->priority == b->priority ? 0 : (a->priority < b->priority ? -1 : 1);
}
