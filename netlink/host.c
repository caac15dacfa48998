/* Helpers over an observed snapshot. Pure. */
#include "host.h"

#include <stdlib.h>
#include <string.h>

/* The planner asks once per route it deletes, and a node with many pods has
 * hundreds of links: kern_observe() sorts them by ifindex, so look there by halves
 * first. A snapshot built by hand may be unsorted: then a miss falls back to a scan. */
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
        for (size_t i = 0; i < h->n_links; i++)
                if (h->links[i].ifindex == ifindex)
                        return &h->links[i];
        return NULL;
}

const struct host_link *host_link_by_name(const struct host_snapshot *h, const char *name)
{
        for (size_t i = 0; i < h->n_links; i++)
                if (strcmp(h->links[i].name, name) == 0)
                        return &h->links[i];
        return NULL;
}

void host_snapshot_clear(struct host_snapshot *h)
{
        free(h->links);
        free(h->addrs);
        free(h->routes);
        *h = (struct host_snapshot){};
}
