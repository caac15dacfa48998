/* The vocabulary the planner (daemon/) and the kernel layer (netlink/) share: the
 * observed host as plain values (what netlink/ reports and daemon/plan reads), the
 * change to the host (what the planner produces and netlink/ applies) and the result
 * of applying it. No libnl or libmnl types here, nothing of daemon/, and of config/
 * only the value types (prefix.h, util.h): the planner and its tests need no kernel. */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prefix.h"
#include "util.h"

struct host_link {
        int ifindex;
        char name[IFNAMSIZ];
        char kind[16];  /* rtnl link kind: "ipip", "vxlan", "veth", "" for physical */
        unsigned mtu;
        bool up;        /* IFF_UP */
        /* IPv4 devconf values; -1 = unknown */
        int proxy_arp;
        int forwarding;
        int rp_filter;
        int64_t proxy_delay_ms; /* net.ipv4.neigh.<dev>.proxy_delay; -1 = unknown */
        /* IPv6 devconf values (RTM_GETNETCONF of AF_INET6); -1 = unknown */
        int proxy_ndp;
        int forwarding6;
        int accept_ra6;          /* net.ipv6.conf.<dev>.accept_ra (IFLA_INET6_CONF) */
        int64_t proxy_delay6_ms; /* net.ipv6.neigh.<dev>.proxy_delay; -1 = unknown */
};

/* A proxy neighbour entry (`ip -6 neigh show proxy`): an address the kernel's proxy
 * NDP answers for on a device. Who made it is its protocol (NDA_PROTOCOL, 0 = none). */
struct host_proxy {
        int ifindex;
        struct cfg_prefix addr; /* a host prefix (/128) */
        uint8_t protocol;
};

struct host_addr {
        int ifindex;
        struct cfg_prefix addr; /* address with its prefix length (host bits set) */
};

/* RTN_* values from <linux/rtnetlink.h>, repeated so this header stays kernel-free. */
enum {
        HOST_RTN_UNICAST = 1,
        HOST_RTN_LOCAL = 2,
        HOST_RTN_BLACKHOLE = 6,
        HOST_RTN_UNREACHABLE = 7,
        HOST_RTN_PROHIBIT = 8,
};

struct host_route {
        struct cfg_prefix dst;
        struct cfg_prefix gateway; /* family 0 = none */
        uint32_t table;
        uint32_t priority; /* metric */
        int oif;           /* 0 = none */
        uint8_t protocol;
        uint8_t type;      /* HOST_RTN_* */
        bool multipath;    /* RTA_MULTIPATH: never equivalent to a single-path route */
};

/* The kernel's answer to a route lookup for one address (RTM_GETROUTE, as `ip route
 * get`): the data the planner needs for `uplink: can-reach=ADDRESS`. */
struct host_reach {
        struct cfg_prefix dst; /* the address asked about; family 0 = nothing asked */
        int error;             /* 0, or the lookup's -errno */
        char message[128];     /* the kernel's extended-ack text for error, or "" */
        uint8_t type;          /* HOST_RTN_* of the answer */
        int oif;               /* its device, 0 = none */
        struct cfg_prefix prefsrc; /* RTA_PREFSRC, family 0 = none */
};

/* A policy rule (RTM_NEWRULE), as much as we make of one: `to DST lookup TABLE
 * [suppress_prefixlength N] pref PRIORITY proto PROTOCOL`. A rule with any other
 * selector or action (from, iif, fwmark, not, goto, ...) has `other` set: never one of
 * ours as wanted, so a rule of ours that someone changed that way is replaced. */
struct host_rule {
        struct cfg_prefix dst; /* family set; len 0 = every destination */
        uint32_t priority;
        uint32_t table;
        int32_t suppress_prefixlen; /* -1 = none */
        uint8_t protocol;
        bool other;
};

/* The bulk of a narrowed dump in 20 bytes instead of 52: an IPv4 route of the caller's
 * own table and protocol (kern_observe_opts, never main), unicast, single-path, through
 * an IPv4 gateway or none. 100k of them are a converged node's whole dump; a full pass
 * holds them beside everything the watch keeps. host_route4_get() gives the route back
 * exactly as kern_parse_route() read it (kern_observe() keeps the 52-byte form for any
 * route that would not come back the same). */
struct host_route4 {
        uint8_t dst[4];
        uint8_t gateway[4];
        int32_t oif;
        uint32_t priority;
        uint8_t len;
        bool has_gateway;
};

struct host_snapshot {
        struct host_link *links;   /* sorted by ifindex (host_link_by_index() relies on it) */
        size_t n_links;
        struct host_addr *addrs;
        size_t n_addrs;
        struct host_route *routes; /* IPv4/IPv6 routes but the local table's (cache clones
                                    * left out): of every table, or as kern_observe_opts
                                    * narrows the dump (main, ours, our protocol) */
        size_t n_routes;
        /* more of those routes, in the compact form: sorted by destination
         * (cfg_prefix_cmp()), all of table routes4_table and protocol routes4_protocol */
        struct host_route4 *routes4;
        size_t n_routes4;
        uint32_t routes4_table;
        uint8_t routes4_protocol;
        struct host_rule *rules;   /* every IPv4/IPv6 policy rule */
        size_t n_rules;
        /* global ("all") IPv4 values; -1 = unknown */
        int all_forwarding;
        int all_rp_filter;
        struct host_reach reach;   /* the route lookup observe was asked for, if any */
        struct host_proxy *proxies; /* every IPv6 proxy neighbour entry */
        size_t n_proxies;
        int all_forwarding6;       /* net.ipv6.conf.all.forwarding; -1 = unknown */
};

/* h->routes4[i] as the route it stands for. */
struct host_route host_route4_get(const struct host_snapshot *h, size_t i);
/* The compact routes' order: cfg_prefix_cmp() of their destinations, then the metric
 * (the same order whatever order the kernel gave). */
int host_route4_cmp(const struct host_route4 *a, const struct host_route4 *b);
/* Whether r has the compact form in a snapshot of this table and protocol (c set). */
bool host_route4_put(const struct host_route *r, uint32_t table, uint8_t protocol, struct host_route4 *c);

/* A change to the host: what the planner produces and netlink/ applies. */
enum host_change_kind {
        CHANGE_SET_PROXY_DELAY,
        CHANGE_SET_PROXY_ARP,
        CHANGE_DEL_ROUTE,
        CHANGE_ADD_ROUTE,
        CHANGE_REMOVE_TUNNEL,
        CHANGE_SET_PROXY_NDP, /* net.ipv6.conf.<dev>.proxy_ndp */
        CHANGE_ADD_PROXY,     /* a proxy neighbour entry: route.dst, route.protocol (ours) */
        CHANGE_DEL_PROXY,     /* one of ours: route.dst */
        CHANGE_SET_PROXY_DELAY6, /* net.ipv6.neigh.<dev>.proxy_delay (ms) */
        CHANGE_ADD_RULE,
        CHANGE_DEL_RULE,
};

#define HOST_TUNNEL_ADDRS_MAX 8

/* remove-tunnel: the device's kind and the Calico addresses on it (removed when the
 * kernel keeps the device, as it keeps the IPIP fallback tunl0). Kept beside the
 * actions, not in each: a route action must stay small (100k of them at scale). */
struct host_tunnel {
        char kind[16];
        struct cfg_prefix addrs[HOST_TUNNEL_ADDRS_MAX];
        size_t n_addrs;
        bool foreign_addrs; /* someone else's addresses are on it: leave the device up */
};

/* 96 bytes on 64-bit targets: a cold pass at 100k blocks plans 100k of them at once,
 * so the kind is a byte beside the two flags (an enum field would make it 104). */
struct host_change {
        uint8_t kind;    /* enum host_change_kind */
        bool restore;    /* putting back the value recorded before our first change */
        bool replace;    /* add-route: replaces an own route with the same key */
        int ifindex;
        char dev[IFNAMSIZ];
        int64_t value;   /* proxy_arp, proxy_ndp (0/1) or proxy delay (ms) */
        struct host_route route;
        uint32_t pool;   /* index into model->pools, UINT32_MAX when none */
        union {
                const struct host_tunnel *tunnel; /* remove-tunnel: never NULL (plan->tunnels) */
                const struct host_rule *rule;     /* add-rule, delete-rule: never NULL (plan->rules) */
        };
};
_Static_assert(sizeof(struct host_change) <= 96, "a route action must stay small");

/* Result of one action: one per planned action, kept to 16 bytes. kern_apply() and
 * host_results_free() write only the results that are not zero already, so a zeroed
 * array (calloc()) of successes is never written: 100k routes applied cold would
 * otherwise touch 1.6 MB (the peak of a first pass; first-touch page faults also cost
 * 10-30 us per 4 KiB page on the VMs measured by tests/bench/bench_scale.py). Most
 * routes have no message: it is allocated only when there is something to say. */
struct host_result {
        int error;     /* 0 or -errno */
        char *message; /* NULL, or the kernel's extack text or what was done ("already
                        * present", the tunnel steps); freed by host_results_free() */
};

/* The message, "" when there is none. */
const char *host_result_message(const struct host_result *r);
/* Replace or extend the message. Out of memory leaves it as it was: a message
 * explains an outcome, it is never the outcome. */
_printf_(2, 3) void host_result_set_message(struct host_result *r, const char *fmt, ...);
_printf_(2, 3) void host_result_append_message(struct host_result *r, const char *fmt, ...);
/* Free the messages of n results (not the array) and zero them. */
void host_results_free(struct host_result *r, size_t n);

const struct host_link *host_link_by_index(const struct host_snapshot *h, int ifindex);
/* The link holding this address (family and bytes; its prefix length aside), 0 when
 * none. */
int host_link_of_addr(const struct host_snapshot *h, const struct cfg_prefix *a);
/* By exact name, from the dump: never a kernel by-name lookup (DESIGN.md §7). */
const struct host_link *host_link_by_name(const struct host_snapshot *h, const char *name);
void host_snapshot_clear(struct host_snapshot *h);
