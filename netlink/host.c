/* Helpers over an observed snapshot. Pure. */
#include "host.h"

#include <stdlib.h>
#include <string.h>

const struct host_link *host_link_by_index(const struct host_snapshot *h, int ifindex)
{
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
