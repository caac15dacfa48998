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

_printf_(2, 3) static void msg_append(struct nl_result *res, const char *fmt, ...)
{
        size_t len = strnlen(res->message, sizeof(res->message));
        va_list ap;

        if (len + 1 >= sizeof(res->message))
                return;
        va_start(ap, fmt);
        /* Truncation is fine: the message is informative. */
        (void)vsnprintf(res->message + len, sizeof(res->message) - len, fmt, ap);
        va_end(ap);
}

static int fail(struct nl_result *res, int error)
{
        res->error = error;
        return error;
}

/* Take the Calico addresses off a device the kernel kept. An address that is already
 * gone (-EADDRNOTAVAIL) is converged and not mentioned. */
static int remove_addrs(const struct tunnel_ops *ops, void *ctx, const struct plan_action *a,
                        struct nl_result *res, bool *ret_any)
{
        size_t n = a->n_tunnel_addrs < PLAN_TUNNEL_ADDRS_MAX ? a->n_tunnel_addrs : PLAN_TUNNEL_ADDRS_MAX;
        bool first = true;

        for (size_t i = 0; i < n; i++) {
                char buf[CFG_PREFIX_STRLEN] = "?";
                int r;

                (void)cfg_prefix_fmt(&a->tunnel_addrs[i], buf, sizeof(buf));
                r = ops->del_addr(ctx, a->ifindex, &a->tunnel_addrs[i]);
                if (r == -EADDRNOTAVAIL)
                        continue;
                if (r < 0) {
                        msg_append(res, "%sremoving %s failed", first ? ": " : ", ", buf);
                        return fail(res, r);
                }
                msg_append(res, "%s%s", first ? ": removed " : ", ", buf);
                first = false;
        }
        *ret_any = !first;
        return 0;
}

/* The kernel reported the delete as done but the device is still there: the IPIP
 * fallback tunl0 (ip_tunnel_dellink() silently ignores the fallback device). */
static int handle_kept(const struct tunnel_ops *ops, void *ctx, const struct plan_action *a,
                       struct nl_result *res)
{
        bool any = false;
        int r;

        snprintf(res->message, sizeof(res->message), "kernel kept %s", a->dev);
        r = remove_addrs(ops, ctx, a, res, &any);
        if (r < 0)
                return r;
        if (a->foreign_addrs) {
                msg_append(res, "%skept up: foreign addresses remain", any ? "; " : ": ");
                return 0;
        }
        r = ops->set_down(ctx, a->ifindex);
        if (r == -ENODEV) {
                /* Gone after all (a module unload raced with us): converged. */
                snprintf(res->message, sizeof(res->message), "deleted");
                return 0;
        }
        if (r < 0) {
                msg_append(res, "%ssetting it down failed", any ? "; " : ": ");
                return fail(res, r);
        }
        msg_append(res, "%sset down", any ? ", " : ": ");
        return 0;
}

int tunnel_remove(const struct tunnel_ops *ops, void *ctx, const struct plan_action *a, struct nl_result *res)
{
        bool exists = false;
        int r;

        *res = (struct nl_result){};
        r = ops->del_link(ctx, a->ifindex);
        if (r == -ENODEV) {
                snprintf(res->message, sizeof(res->message), "already absent");
                return 0;
        }
        if (r < 0) {
                snprintf(res->message, sizeof(res->message), "deleting %s failed", a->dev);
                return fail(res, r);
        }

        /* Success from RTM_DELLINK does not mean the device is gone: look again. */
        r = ops->find_link(ctx, a->ifindex, a->dev, &exists);
        if (r < 0) {
                snprintf(res->message, sizeof(res->message), "deleted %s, but looking for it again failed",
                         a->dev);
                return fail(res, r);
        }
        if (!exists) {
                snprintf(res->message, sizeof(res->message), "deleted");
                return 0;
        }
        return handle_kept(ops, ctx, a, res);
}
