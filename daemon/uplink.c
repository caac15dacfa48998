/* The uplink choice (see uplink.h), after Calico's own autodetection methods
 * (node/pkg/lifecycle/startup/autodetection in projectcalico/calico:
 * interfaces.go for interface=REGEX, reachaddr.go for can-reach=ADDRESS).
 *
 * Owns: the four modes and their failure messages, which operators read in --check,
 * the status line and the journal (keep them as they are). Must never: ask the
 * kernel anything (observation does that: netlink/ puts the route lookup for
 * can-reach= into the snapshot), or look a device up by name in the kernel. */
#include "uplink.h"

#include <linux/rtnetlink.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* auto: the device of the IPv4 default route in the main table with the lowest
 * metric. */
static int uplink_auto(const struct host_snapshot *h)
{
        const struct host_route *best = NULL;

        for (size_t i = 0; i < h->n_routes; i++) {
                const struct host_route *rt = &h->routes[i];

                if (rt->dst.family != AF_INET || rt->dst.len != 0 || rt->table != RT_TABLE_MAIN ||
                    rt->type != HOST_RTN_UNICAST || rt->oif <= 0)
                        continue;
                if (!best || rt->priority < best->priority)
                        best = rt;
        }
        return best ? best->oif : 0;
}

/* interface=REGEX: the first link, in ifindex order, whose name matches. Calico
 * uses Go's regexp MatchString, which is unanchored; POSIX ERE with regexec() is
 * too. The loopback device is never an uplink. */
static int uplink_regex(const struct host_snapshot *h, const char *re, char *err, size_t err_size)
{
        regex_t rx;
        int found = 0, r;

        r = regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);
        if (r != 0) {
                char msg[80];

                regerror(r, &rx, msg, sizeof(msg));
                snprintf(err, err_size, "bad interface regular expression: %s", msg);
                return 0;
        }
        for (size_t i = 0; i < h->n_links && !found; i++)
                if (!streq(h->links[i].name, "lo") && regexec(&rx, h->links[i].name, 0, NULL, 0) == 0)
                        found = h->links[i].ifindex;
        regfree(&rx);
        if (!found)
                snprintf(err, err_size, "no interface matches \"%s\"", re);
        return found;
}

static bool same_addr(const struct cfg_prefix *a, const struct cfg_prefix *b)
{
        return a->family == b->family && memcmp(a->addr, b->addr, a->family == AF_INET6 ? 16 : 4) == 0;
}

/* can-reach=ADDRESS: the device of the kernel's route to it (h->reach, looked up by
 * observation). A local route leaves through lo: then the link holding the address. */
static int uplink_reach(const struct host_snapshot *h, const struct cfg_prefix *dst, char *err, size_t err_size)
{
        const struct host_reach *rc = &h->reach;
        char txt[CFG_PREFIX_STRLEN] = "?";
        int oif;

        (void)cfg_addr_fmt(dst, txt, sizeof(txt));
        if (dst->family != AF_INET && dst->family != AF_INET6) {
                snprintf(err, err_size, "can-reach: no address");
                return 0;
        }
        if (!same_addr(&rc->dst, dst)) {
                snprintf(err, err_size, "no route to %s: not looked up", txt);
                return 0;
        }
        if (rc->error < 0) {
                snprintf(err, err_size, "no route to %s: %s", txt, rc->message[0] ? rc->message : strerror(-rc->error));
                return 0;
        }
        oif = rc->oif;
        if (rc->type == HOST_RTN_LOCAL && rc->prefsrc.family)
                oif = host_link_of_addr(h, &rc->prefsrc);
        if (oif <= 0)
                snprintf(err, err_size, "the route to %s has no device", txt);
        return oif;
}

int uplink_choose(const struct cfg_settings *s, const struct host_snapshot *h, char *err, size_t err_size)
{
        enum cfg_uplink_mode mode = s ? s->uplink_mode : CFG_UPLINK_AUTO;
        const char *arg = s && s->uplink ? s->uplink : "";
        const struct host_link *l;
        int ifindex = 0;

        err[0] = '\0';
        switch (mode) {
        case CFG_UPLINK_AUTO:
                ifindex = uplink_auto(h);
                if (!ifindex)
                        snprintf(err, err_size, "no IPv4 default route in the main table");
                break;
        case CFG_UPLINK_NAME:
                l = host_link_by_name(h, arg); /* from the dump: DESIGN.md §7 */
                ifindex = l ? l->ifindex : 0;
                if (!ifindex)
                        snprintf(err, err_size, "no interface named \"%s\"", arg);
                break;
        case CFG_UPLINK_REGEX:
                ifindex = uplink_regex(h, arg, err, err_size);
                break;
        case CFG_UPLINK_CAN_REACH:
                ifindex = uplink_reach(h, &s->uplink_reach, err, err_size);
                break;
        }
        if (ifindex && !host_link_by_index(h, ifindex)) {
                snprintf(err, err_size, "uplink ifindex %d vanished", ifindex);
                ifindex = 0;
        }
        if (ifindex)
                err[0] = '\0';
        return ifindex;
}
