/* The observed host, as plain values: what netlink/ reports and daemon/plan reads.
 * No libnl or libmnl types here, so the planner and its tests need no kernel. */
#pragma once

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prefix.h"

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
        uint8_t scope;
        bool multipath;    /* RTA_MULTIPATH: never equivalent to a single-path route */
};

struct host_snapshot {
        struct host_link *links;
        size_t n_links;
        struct host_addr *addrs;
        size_t n_addrs;
        struct host_route *routes; /* every IPv4/IPv6 route of the table in use, plus
                                    * routes carrying our protocol in any table */
        size_t n_routes;
        int uplink;                /* ifindex, 0 = not found */
        char uplink_error[128];    /* why the uplink was not found */
        /* global ("all") IPv4 values; -1 = unknown */
        int all_proxy_arp;
        int all_forwarding;
        int all_rp_filter;
        int64_t uplink_proxy_delay_ms; /* -1 = unknown */
};

/* What the daemon recorded before it first changed the uplink's settings
 * ($RUNTIME_DIRECTORY/state), so that the end of underlay mode restores them. */
struct host_record {
        bool valid;
        char ifname[IFNAMSIZ];
        int proxy_arp;          /* -1 = not recorded */
        int64_t proxy_delay_ms; /* -1 = not recorded */
        /* The device's index when recorded (0 = unknown: records of 0.1.0). A renamed
         * device keeps its index: the record follows it to its new name. */
        int ifindex;
};

const struct host_link *host_link_by_index(const struct host_snapshot *h, int ifindex);
/* By exact name, from the dump: never a kernel by-name lookup (DESIGN.md §7). */
const struct host_link *host_link_by_name(const struct host_snapshot *h, const char *name);
void host_snapshot_clear(struct host_snapshot *h);
