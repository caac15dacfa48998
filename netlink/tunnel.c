/* The tunnel-removal sequence (DESIGN.md §3.3), independent of how the kernel is
 * reached: netlink/nl.c passes rtnetlink operations, tests pass fakes.
 *
 * It must never touch anything but the action's device and the Calico addresses the
 * planner listed for it: foreign addresses, and the device when they are present,
 * are left as they are. */
#include "tunnel.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static int fail(struct host_result *res, int error)
{
        res->error = error;
        return error;
}

/* Take the Calico addresses off a device the kernel kept. An address that is already
 * gone (-EADDRNOTAVAIL) is converged and not mentioned. */
static int remove_addrs(const struct tunnel_ops *ops, void *ctx, const struct host_change *a,
                        struct host_result *res, bool *ret_any)
{
        const struct host_tunnel *t = a->tunnel;
        size_t n = t->n_addrs < HOST_TUNNEL_ADDRS_MAX ? t->n_addrs : HOST_TUNNEL_ADDRS_MAX;
        bool first = true;

        for (size_t i = 0; i < n; i++) {
                char buf[CFG_PREFIX_STRLEN] = "?";
                int r;

                (void)cfg_prefix_fmt(&t->addrs[i], buf, sizeof(buf));
                r = ops->del_addr(ctx, a->ifindex, &t->addrs[i]);
                if (r == -EADDRNOTAVAIL)
                        continue;
                if (r < 0) {
                        host_result_append_message(res, "%sremoving %s failed", first ? ": " : ", ", buf);
                        return fail(res, r);
                }
                host_result_append_message(res, "%s%s", first ? ": removed " : ", ", buf);
                first = false;
        }
        *ret_any = !first;
        return 0;
}

/* The kernel reported the delete as done but the device is still there: the IPIP
 * fallback tunl0 (ip_tunnel_dellink() silently ignores the fallback device). */
static int handle_kept(const struct tunnel_ops *ops, void *ctx, const struct host_change *a,
                       struct host_result *res)
{
        bool any = false;
        int r;

        host_result_set_message(res, "kernel kept %s", a->dev);
        r = remove_addrs(ops, ctx, a, res, &any);
        if (r < 0)
                return r;
        if (a->tunnel->foreign_addrs) {
                host_result_append_message(res, "%skept up: foreign addresses remain", any ? "; " : ": ");
                return 0;
        }
        r = ops->set_down(ctx, a->ifindex);
        if (r == -ENODEV) {
                /* Gone after all (a module unload raced with us): converged. */
                host_result_set_message(res, "deleted");
                return 0;
        }
        if (r < 0) {
                host_result_append_message(res, "%ssetting it down failed", any ? "; " : ": ");
                return fail(res, r);
        }
        host_result_append_message(res, "%sset down", any ? ", " : ": ");
        return 0;
}

int tunnel_remove(const struct tunnel_ops *ops, void *ctx, const struct host_change *a, struct host_result *res)
{
        bool exists = false;
        int r;

        *res = (struct host_result){};
        r = ops->del_link(ctx, a->ifindex);
        if (r == -ENODEV) {
                host_result_set_message(res, "already absent");
                return 0;
        }
        if (r < 0) {
                host_result_set_message(res, "deleting %s failed", a->dev);
                return fail(res, r);
        }

        /* Success from RTM_DELLINK does not mean the device is gone: look again. */
        r = ops->find_link(ctx, a->ifindex, a->dev, &exists);
        if (r < 0) {
                host_result_set_message(res, "deleted %s, but looking for it again failed",
                         a->dev);
                return fail(res, r);
        }
        if (!exists) {
                host_result_set_message(res, "deleted");
                return 0;
        }
        return handle_kept(ops, ctx, a, res);
}
