/* Removing a Calico tunnel device (DESIGN.md §3.3), behind a small set of kernel
 * operations so the sequence can be tested without an IPIP module.
 *
 * The kernel keeps the IPIP fallback device tunl0 even though RTM_DELLINK on it
 * reports success (only unloading the ipip module removes it). So after the delete we
 * look again, by dump, and when the device is still there we take the Calico
 * addresses off it and set it down, unless someone else's addresses remain on it. */
#pragma once

#include <stdbool.h>

#include "nl.h"
#include "host.h"
#include "prefix.h"

struct tunnel_ops {
        /* RTM_DELLINK by index. -ENODEV when there is no such link. */
        int (*del_link)(void *ctx, int ifindex);
        /* Does a link with this index and name exist? Found by a link DUMP, never by a
         * by-name lookup, which can load the ipip module and re-create tunl0. */
        int (*find_link)(void *ctx, int ifindex, const char *name, bool *ret_exists);
        /* RTM_DELADDR. -EADDRNOTAVAIL when the address is not on the link. */
        int (*del_addr)(void *ctx, int ifindex, const struct cfg_prefix *addr);
        /* Clear IFF_UP. */
        int (*set_down)(void *ctx, int ifindex);
};

/* Remove the tunnel device of a CHANGE_REMOVE_TUNNEL action. Fills res (error 0 or
 * -errno, message: what happened, e.g. "deleted", "kernel kept tunl0: removed
 * 10.233.90.0/32, set down", "... kept up: foreign addresses remain").
 * Returns res->error. */
int tunnel_remove(const struct tunnel_ops *ops, void *ctx, const struct host_change *a, struct host_result *res);
