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
        free(h->proxies);
        free(h->rules);
        *h = (struct host_snapshot){};
}
