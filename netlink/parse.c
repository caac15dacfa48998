/* rtnetlink message parsers (see nl-parse.h): one message in, plain values out.
 *
 * What the kernel sends is trusted to be well formed, but not assumed to be: every
 * family header and attribute is length-checked before it is read, so a short or
 * malformed message is skipped or refused, never read past its nlmsg_len. This file
 * never does I/O, never allocates and never includes libnl; tests/fuzz-netlink.c feeds
 * it arbitrary bytes. */
#include "nl-parse.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/if_link.h>
#include <linux/ipv6.h>
#include <linux/neighbour.h>
#include <linux/netconf.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* ---------------------------------------------------------------- attributes */

struct attr_table {
        const struct nlattr **tb;
        uint16_t max;
};

static int attr_table_cb(const struct nlattr *a, void *data)
{
        struct attr_table *t = data;
        uint16_t type = mnl_attr_get_type(a);

        if (type <= t->max)
                t->tb[type] = a;
        return MNL_CB_OK;
}

/* Index the attributes after a family header of hdrlen bytes: tb[type] = attribute. */
static int parse_attrs(const struct nlmsghdr *nlh, size_t hdrlen, const struct nlattr **tb, uint16_t max)
{
        struct attr_table t = { tb, max };

        memset(tb, 0, (max + 1u) * sizeof(*tb));
        if (nlh->nlmsg_len < mnl_nlmsg_size(hdrlen))
                return -EBADMSG;
        return mnl_attr_parse(nlh, hdrlen, attr_table_cb, &t) < 0 ? -EBADMSG : 0;
}

static int parse_nested(const struct nlattr *nest, const struct nlattr **tb, uint16_t max)
{
        struct attr_table t = { tb, max };

        memset(tb, 0, (max + 1u) * sizeof(*tb));
        return mnl_attr_parse_nested(nest, attr_table_cb, &t) < 0 ? -EBADMSG : 0;
}

static bool attr_u32(const struct nlattr *a, uint32_t *ret)
{
        if (!a || mnl_attr_get_payload_len(a) < sizeof(uint32_t))
                return false;
        *ret = mnl_attr_get_u32(a);
        return true;
}

static bool attr_u64(const struct nlattr *a, uint64_t *ret)
{
        if (!a || mnl_attr_get_payload_len(a) < sizeof(uint64_t))
                return false;
        *ret = mnl_attr_get_u64(a);
        return true;
}

static bool attr_addr(const struct nlattr *a, uint8_t family, uint8_t len, struct cfg_prefix *ret)
{
        size_t n = kern_addr_size(family);

        if (!a || n == 0 || mnl_attr_get_payload_len(a) < n)
                return false;
        *ret = (struct cfg_prefix){ .family = family, .len = len };
        memcpy(ret->addr, mnl_attr_get_payload(a), n);
        return true;
}

/* A NUL-terminated string attribute (libmnl checks the terminator is inside it). */
static const char *attr_str(const struct nlattr *a)
{
        if (!a || mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
                return NULL;
        return mnl_attr_get_str(a);
}

/* ---------------------------------------------------------------- acks */

/* Copy NLMSGERR_ATTR_MSG (extended ack) from the TLVs after offset. */
static void extack_copy(const struct nlmsghdr *nlh, size_t offset, char *buf, size_t size)
{
        const struct nlattr *a;

        if (!buf || size == 0 || !(nlh->nlmsg_flags & NLM_F_ACK_TLVS) || nlh->nlmsg_len < mnl_nlmsg_size(offset))
                return;
        mnl_attr_for_each(a, nlh, offset) {
                if (mnl_attr_get_type(a) != NLMSGERR_ATTR_MSG)
                        continue;
                snprintf(buf, size, "%.*s", (int)strnlen(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a)),
                         (const char *)mnl_attr_get_payload(a));
                return;
        }
}

/* With NETLINK_CAP_ACK the kernel echoes only the request's header (NLM_F_CAPPED);
 * the TLVs follow what was echoed. */
int kern_parse_ack(const struct nlmsghdr *nlh, char *buf, size_t size)
{
        const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
        size_t off = sizeof(*e);

        if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*e)))
                return -EBADMSG;
        if (!(nlh->nlmsg_flags & NLM_F_CAPPED) && e->msg.nlmsg_len > sizeof(struct nlmsghdr))
                off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
        if (e->error == 0)
                return 0;
        extack_copy(nlh, MNL_ALIGN(off), buf, size);
        /* INT_MIN has no positive counterpart: it is no errno either. */
        if (e->error == INT32_MIN)
                return -EBADMSG;
        return e->error < 0 ? e->error : -e->error;
}

/* NLMSG_DONE carries an int: the dump's error, and extack TLVs after it. */
int kern_parse_done(const struct nlmsghdr *nlh, char *buf, size_t size)
{
        int e;

        if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(int)))
                return 0;
        memcpy(&e, mnl_nlmsg_get_payload(nlh), sizeof(e));
        if (e >= 0)
                return 0;
        extack_copy(nlh, MNL_ALIGN(sizeof(int)), buf, size);
        return e;
}

/* ---------------------------------------------------------------- addresses, settings */

int kern_parse_addr(const struct nlmsghdr *nlh, struct host_addr *ret)
{
        const struct nlattr *tb[IFA_MAX + 1];
        const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
        struct host_addr ha = {};

        if (nlh->nlmsg_type != RTM_NEWADDR || parse_attrs(nlh, sizeof(*ifa), tb, IFA_MAX) < 0)
                return 0;
        /* IPv4: IFA_LOCAL is our address, IFA_ADDRESS the peer on point-to-point
         * links. IPv6 has IFA_LOCAL only with a peer, and then it is ours too. */
        if (!attr_addr(tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS], ifa->ifa_family, ifa->ifa_prefixlen,
                       &ha.addr))
                return 0;
        if (ha.addr.len > cfg_prefix_maxlen(&ha.addr))
                return 0;
        ha.ifindex = (int)ifa->ifa_index;
        *ret = ha;
        return 1;
}

void kern_parse_netconf(const struct nlmsghdr *nlh, struct host_snapshot *h)
{
        const struct nlattr *tb[NETCONFA_MAX + 1];
        uint32_t v;

        if (nlh->nlmsg_type != RTM_NEWNETCONF || parse_attrs(nlh, sizeof(struct netconfmsg), tb, NETCONFA_MAX) < 0)
                return;
        if (attr_u32(tb[NETCONFA_FORWARDING], &v))
                h->all_forwarding = (int)v;
        if (attr_u32(tb[NETCONFA_RP_FILTER], &v))
                h->all_rp_filter = (int)v;
}

/* The ARP table dump holds the table's defaults and one NDTA_PARMS per device. */
int kern_parse_neightbl_delay(const struct nlmsghdr *nlh, int *ret_ifindex, int64_t *ret_ms)
{
        return kern_parse_neightbl_delay_of(nlh, "arp_cache", ret_ifindex, ret_ms);
}

int kern_parse_neightbl_delay_of(const struct nlmsghdr *nlh, const char *table, int *ret_ifindex, int64_t *ret_ms)
{
        const struct nlattr *tb[NDTA_MAX + 1], *p[NDTPA_MAX + 1];
        const char *name;
        uint32_t idx;
        uint64_t ms;

        if (nlh->nlmsg_type != RTM_NEWNEIGHTBL || parse_attrs(nlh, sizeof(struct ndtmsg), tb, NDTA_MAX) < 0)
                return 0;
        name = attr_str(tb[NDTA_NAME]);
        if (!name || !tb[NDTA_PARMS] || !streq(name, table))
                return 0;
        if (parse_nested(tb[NDTA_PARMS], p, NDTPA_MAX) < 0)
                return 0;
        if (!attr_u32(p[NDTPA_IFINDEX], &idx) || idx == 0 || idx > INT32_MAX || !attr_u64(p[NDTPA_PROXY_DELAY], &ms))
                return 0;
        *ret_ifindex = (int)idx;
        *ret_ms = ms > INT64_MAX ? -1 : (int64_t)ms; /* NDTPA_PROXY_DELAY is in ms */
        return 1;
}

int kern_parse_netconf6(const struct nlmsghdr *nlh, int *ret_ifindex, int *ret_forwarding, int *ret_proxy_ndp)
{
        const struct nlattr *tb[NETCONFA_MAX + 1];
        const struct netconfmsg *ncm = mnl_nlmsg_get_payload(nlh);
        uint32_t v;

        if (nlh->nlmsg_type != RTM_NEWNETCONF || nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*ncm)) ||
            ncm->ncm_family != AF_INET6 || parse_attrs(nlh, sizeof(struct netconfmsg), tb, NETCONFA_MAX) < 0 ||
            !attr_u32(tb[NETCONFA_IFINDEX], &v))
                return 0;
        *ret_ifindex = (int)v;
        *ret_forwarding = attr_u32(tb[NETCONFA_FORWARDING], &v) ? (int)v : -1;
        *ret_proxy_ndp = attr_u32(tb[NETCONFA_PROXY_NEIGH], &v) ? (int)v : -1;
        return 1;
}

int kern_parse_inet6_conf(const struct nlmsghdr *nlh, int *ret_ifindex, int *ret_accept_ra)
{
        const struct nlattr *tb[IFLA_MAX + 1], *pi[IFLA_INET6_MAX + 1];
        const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
        int32_t v;

        if (nlh->nlmsg_type != RTM_NEWLINK || nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*ifi)) ||
            ifi->ifi_family != AF_INET6 || ifi->ifi_index <= 0 ||
            parse_attrs(nlh, sizeof(struct ifinfomsg), tb, IFLA_MAX) < 0 || !tb[IFLA_PROTINFO] ||
            parse_nested(tb[IFLA_PROTINFO], pi, IFLA_INET6_MAX) < 0)
                return 0;
        *ret_ifindex = ifi->ifi_index;
        *ret_accept_ra = -1;
        /* IFLA_INET6_CONF: one s32 per DEVCONF_* index (ipv6_store_devconf() in the kernel) */
        if (pi[IFLA_INET6_CONF] &&
            mnl_attr_get_payload_len(pi[IFLA_INET6_CONF]) >= (DEVCONF_ACCEPT_RA + 1) * sizeof(v)) {
                memcpy(&v, (const char *)mnl_attr_get_payload(pi[IFLA_INET6_CONF]) + DEVCONF_ACCEPT_RA * sizeof(v),
                       sizeof(v));
                *ret_accept_ra = v;
        }
        return 1;
}

int kern_parse_proxy(const struct nlmsghdr *nlh, struct host_proxy *ret)
{
        const struct nlattr *tb[NDA_MAX + 1];
        const struct ndmsg *ndm = mnl_nlmsg_get_payload(nlh);
        struct host_proxy p = {};

        if (nlh->nlmsg_type != RTM_NEWNEIGH || nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*ndm)) ||
            ndm->ndm_family != AF_INET6 || !(ndm->ndm_flags & NTF_PROXY) ||
            parse_attrs(nlh, sizeof(struct ndmsg), tb, NDA_MAX) < 0)
                return 0;
        if (!attr_addr(tb[NDA_DST], AF_INET6, 128, &p.addr))
                return 0;
        p.ifindex = ndm->ndm_ifindex;
        if (tb[NDA_PROTOCOL] && mnl_attr_get_payload_len(tb[NDA_PROTOCOL]) >= 1)
                p.protocol = mnl_attr_get_u8(tb[NDA_PROTOCOL]);
        *ret = p;
        return 1;
}

/* ---------------------------------------------------------------- routes */

/* RTA_MULTIPATH: the first hop's device stands for the route's (so "routes through
 * a tunnel device" and the default route's device still show); multipath is set and
 * the planner never takes such a route as equivalent to a single-path one. */
static void parse_multipath(const struct nlattr *a, struct host_route *rt)
{
        const struct rtnexthop *nh = mnl_attr_get_payload(a);

        rt->multipath = true;
        if (mnl_attr_get_payload_len(a) >= sizeof(*nh) && nh->rtnh_len >= sizeof(*nh))
                rt->oif = nh->rtnh_ifindex;
}

/* RTA_VIA: a gateway of another family (IPv4 routes via an IPv6 next hop). */
static void parse_via(const struct nlattr *a, struct host_route *rt)
{
        const struct rtvia *via = mnl_attr_get_payload(a);
        size_t n;

        if (mnl_attr_get_payload_len(a) < sizeof(*via))
                return;
        n = kern_addr_size((uint8_t)via->rtvia_family);
        if (n == 0 || mnl_attr_get_payload_len(a) < sizeof(*via) + n)
                return;
        rt->gateway = (struct cfg_prefix){ .family = (uint8_t)via->rtvia_family, .len = (uint8_t)(n * 8) };
        memcpy(rt->gateway.addr, via->rtvia_addr, n);
}

/* Runs once per route in the kernel's tables (100k times for 100k routes): one pass
 * over the attributes, with no attribute table to clear for each. */
int kern_parse_route(const struct nlmsghdr *nlh, struct host_route *ret)
{
        const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
        const struct nlattr *a, *dst = NULL, *gw = NULL, *via = NULL, *mp = NULL;
        struct host_route rt;
        uint32_t v;

        if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*rtm)) || kern_addr_size(rtm->rtm_family) == 0)
                return -EBADMSG;
        rt = (struct host_route){ .table = rtm->rtm_table, .protocol = rtm->rtm_protocol, .type = rtm->rtm_type };
        mnl_attr_for_each(a, nlh, sizeof(*rtm)) {
                switch (mnl_attr_get_type(a)) {
                case RTA_DST:
                        dst = a;
                        break;
                case RTA_GATEWAY:
                        gw = a;
                        break;
                case RTA_VIA:
                        via = a;
                        break;
                case RTA_MULTIPATH:
                        mp = a;
                        break;
                case RTA_TABLE:
                        if (attr_u32(a, &v))
                                rt.table = v;
                        break;
                case RTA_PRIORITY:
                        if (attr_u32(a, &v))
                                rt.priority = v;
                        break;
                case RTA_OIF:
                        if (attr_u32(a, &v))
                                rt.oif = (int)v;
                        break;
                default:
                        break;
                }
        }
        rt.dst = (struct cfg_prefix){ .family = rtm->rtm_family, .len = rtm->rtm_dst_len };
        if (dst && !attr_addr(dst, rtm->rtm_family, rtm->rtm_dst_len, &rt.dst))
                return -EBADMSG;
        if (rt.dst.len > cfg_prefix_maxlen(&rt.dst))
                return -EBADMSG;
        (void)attr_addr(gw, rtm->rtm_family, (uint8_t)(kern_addr_size(rtm->rtm_family) * 8), &rt.gateway);
        if (via)
                parse_via(via, &rt);
        if (mp)
                parse_multipath(mp, &rt);
        *ret = rt;
        return 0;
}

/* ---------------------------------------------------------------- rules */

/* One attribute of a rule: the ones we make are read, FRA_FWMASK 0 and
 * FRA_SUPPRESS_IFGROUP -1 say "none", anything else is a selector or action we never
 * set (fib_nl_fill_rule() writes only what is set). */
static bool rule_attr(const struct nlattr *a, struct host_rule *r, const struct nlattr **dst)
{
        uint32_t v;

        switch (mnl_attr_get_type(a)) {
        case FRA_DST:
                *dst = a;
                return true;
        case FRA_TABLE:
                if (attr_u32(a, &v))
                        r->table = v;
                return true;
        case FRA_PRIORITY:
                if (attr_u32(a, &v))
                        r->priority = v;
                return true;
        case FRA_SUPPRESS_PREFIXLEN:
                if (attr_u32(a, &v))
                        r->suppress_prefixlen = (int32_t)v;
                return true;
        case FRA_PROTOCOL:
                if (mnl_attr_get_payload_len(a) >= 1)
                        r->protocol = mnl_attr_get_u8(a);
                return true;
        case FRA_FWMASK:
                return attr_u32(a, &v) && v == 0;
        case FRA_SUPPRESS_IFGROUP:
                return attr_u32(a, &v) && v == UINT32_MAX;
        case FRA_UNSPEC:
        case FRA_PAD:
                return true;
        default:
                return false;
        }
}

int kern_parse_rule(const struct nlmsghdr *nlh, struct host_rule *ret)
{
        const struct fib_rule_hdr *frh = mnl_nlmsg_get_payload(nlh);
        const struct nlattr *a, *dst = NULL;
        struct host_rule r;

        if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*frh)) || kern_addr_size(frh->family) == 0)
                return -EBADMSG;
        r = (struct host_rule){ .dst = { .family = frh->family, .len = frh->dst_len },
                                .table = frh->table,
                                .suppress_prefixlen = -1 };
        r.other = frh->src_len || frh->tos || frh->action != FR_ACT_TO_TBL || (frh->flags & FIB_RULE_INVERT);
        mnl_attr_for_each(a, nlh, sizeof(*frh))
                if (!rule_attr(a, &r, &dst))
                        r.other = true;
        if (dst && !attr_addr(dst, frh->family, frh->dst_len, &r.dst))
                return -EBADMSG;
        if (r.dst.len > cfg_prefix_maxlen(&r.dst))
                return -EBADMSG;
        *ret = r;
        return 0;
}

int kern_parse_reach(const struct nlmsghdr *nlh, struct host_reach *ret)
{
        const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
        const struct nlattr *a;
        struct host_route rt;

        if (nlh->nlmsg_type != RTM_NEWROUTE || kern_parse_route(nlh, &rt) < 0)
                return 0;
        ret->type = rt.type;
        if (rt.oif)
                ret->oif = rt.oif;
        mnl_attr_for_each(a, nlh, sizeof(*rtm))
                if (mnl_attr_get_type(a) == RTA_PREFSRC)
                        (void)attr_addr(a, rtm->rtm_family, (uint8_t)(kern_addr_size(rtm->rtm_family) * 8),
                                        &ret->prefsrc);
        return 1;
}

/* ---------------------------------------------------------------- events */

/* What an event needs of a route: its key and device (kern_parse_route, the parser
 * of dumps). A message it refuses (another family, a malformed RTA_DST) still tells
 * that routes changed: its header alone goes on, and the caller's relevance test
 * sorts it out. */
static int event_route(const struct nlmsghdr *h, struct kern_event *ev)
{
        const struct rtmsg *rtm = mnl_nlmsg_get_payload(h);

        if (h->nlmsg_len < mnl_nlmsg_size(sizeof(*rtm)))
                return -EBADMSG;
        if (kern_parse_route(h, &ev->route) < 0)
                ev->route = (struct host_route){ .dst = { .family = rtm->rtm_family, .len = rtm->rtm_dst_len },
                                                 .table = rtm->rtm_table, .protocol = rtm->rtm_protocol,
                                                 .type = rtm->rtm_type };
        ev->ifindex = ev->route.oif;
        return 1;
}

static int event_link(const struct nlmsghdr *h, struct kern_event *ev)
{
        const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(h);
        const struct nlattr *a;

        if (h->nlmsg_len < mnl_nlmsg_size(sizeof(*ifi)))
                return -EBADMSG;
        ev->ifindex = ifi->ifi_index;
        mnl_attr_for_each(a, h, sizeof(*ifi))
                if (mnl_attr_get_type(a) == IFLA_IFNAME && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) >= 0)
                        snprintf(ev->ifname, sizeof(ev->ifname), "%s", mnl_attr_get_str(a));
        return 1;
}

static int event_addr(const struct nlmsghdr *h, struct kern_event *ev)
{
        const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(h);

        if (h->nlmsg_len < mnl_nlmsg_size(sizeof(*ifa)))
                return -EBADMSG;
        /* IPv6 link-local addresses come and go with every device (and change state
         * with DAD): they decide nothing we want (no subnet, no tunnel address). */
        if (ifa->ifa_family == AF_INET6 && ifa->ifa_scope == RT_SCOPE_LINK)
                return 0;
        ev->ifindex = (int)ifa->ifa_index;
        return 1;
}

static int event_netconf(const struct nlmsghdr *h, struct kern_event *ev)
{
        const struct nlattr *a;
        uint32_t v;

        if (h->nlmsg_len < mnl_nlmsg_size(sizeof(struct netconfmsg)))
                return -EBADMSG;
        mnl_attr_for_each(a, h, sizeof(struct netconfmsg))
                if (mnl_attr_get_type(a) == NETCONFA_IFINDEX && attr_u32(a, &v))
                        ev->ifindex = (int)v;
        return 1;
}

int kern_parse_event(const struct nlmsghdr *h, struct kern_event *ev)
{
        struct kern_event e = {};
        int r;

        switch (h->nlmsg_type) {
        case RTM_NEWLINK:
        case RTM_DELLINK:
                e.type = NL_EV_LINK;
                e.removed = h->nlmsg_type == RTM_DELLINK;
                r = event_link(h, &e);
                break;
        case RTM_NEWADDR:
        case RTM_DELADDR:
                e.type = NL_EV_ADDR;
                e.removed = h->nlmsg_type == RTM_DELADDR;
                r = event_addr(h, &e);
                break;
        case RTM_NEWROUTE:
        case RTM_DELROUTE:
                e.type = NL_EV_ROUTE;
                e.removed = h->nlmsg_type == RTM_DELROUTE;
                r = event_route(h, &e);
                break;
        case RTM_NEWRULE:
        case RTM_DELRULE:
                e.type = NL_EV_RULE;
                e.removed = h->nlmsg_type == RTM_DELRULE;
                r = kern_parse_rule(h, &e.rule);
                /* Another family, or a rule we could not read: a resync will tell. */
                if (r < 0)
                        e.rule = (struct host_rule){ .suppress_prefixlen = -1, .other = true };
                r = h->nlmsg_len < mnl_nlmsg_size(sizeof(struct fib_rule_hdr)) ? -EBADMSG : 1;
                break;
        case RTM_NEWNETCONF:
                e.type = NL_EV_NETCONF;
                r = event_netconf(h, &e);
                break;
        default:
                return 0;
        }
        if (r > 0)
                *ev = e;
        return r;
}

int kern_parse_events(const void *buf, size_t n, void (*fn)(const struct kern_event *ev, void *userdata),
                    void *userdata)
{
        const struct nlmsghdr *nlh = buf;
        int len = n > INT32_MAX ? INT32_MAX : (int)n;

        for (; kern_msg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
                struct kern_event ev;
                int r = kern_parse_event(nlh, &ev);

                if (r < 0)
                        return r;
                if (r > 0)
                        fn(&ev, userdata);
        }
        /* The kernel pads each message to 4 bytes: a walk ends at 0. */
        return len > 0 ? -EBADMSG : 0;
}
