/* Internal to netlink/: the rtnetlink message parsers, as pure functions over one
 * message. nl.c (dumps, acks) and monitor.c (events) call them, and so does the
 * libFuzzer target tests/fuzz-netlink.c: one copy of the code, fuzzed as it runs.
 *
 * Every function reads at most nlh->nlmsg_len bytes from nlh (the caller has checked
 * that the header itself is there: mnl_nlmsg_ok()), writes its outputs only on
 * success, and never allocates. No libnl here, and no socket: libmnl's attribute
 * helpers only. */
#pragma once

#include <linux/netlink.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "host.h"
#include "monitor.h"
#include "prefix.h"

static inline size_t kern_addr_size(uint8_t family)
{
        return family == AF_INET6 ? 16 : family == AF_INET ? 4 : 0;
}

/* One more message in a datagram of len bytes left? mnl_nlmsg_ok() compares
 * (int)nlmsg_len with len, so a header claiming 2 GiB or more passes it (libmnl
 * 1.0.4), and mnl_nlmsg_next() then jumps gigabytes past the buffer: every walk over
 * a datagram uses this instead. */
static inline bool kern_msg_ok(const struct nlmsghdr *nlh, int len)
{
        return len >= (int)sizeof(*nlh) && nlh->nlmsg_len >= sizeof(*nlh) && nlh->nlmsg_len <= (unsigned)len;
}

/* A route message (RTM_NEWROUTE, RTM_DELROUTE, the reply to RTM_GETROUTE): its key,
 * gateway (RTA_GATEWAY or RTA_VIA), device, metric and multipath flag. -EBADMSG for a
 * message too short for its rtmsg, a family other than IPv4/IPv6, or a malformed
 * RTA_DST. The message type is not checked. */
int kern_parse_route(const struct nlmsghdr *nlh, struct host_route *ret);

/* A rule message (RTM_NEWRULE, RTM_DELRULE, a rule dump's reply): destination,
 * table, priority, suppress_prefixlength and protocol; any other selector or action
 * sets ->other. -EBADMSG for a message too short for its fib_rule_hdr, a family other
 * than IPv4/IPv6, or a malformed FRA_DST. The message type is not checked. */
int kern_parse_rule(const struct nlmsghdr *nlh, struct host_rule *ret);

/* RTM_NEWADDR: the address (IFA_LOCAL, else IFA_ADDRESS) with its prefix length and
 * device. 1 and *ret set; 0 for a message to skip (another type, no usable address);
 * never an error: a dump goes on. */
int kern_parse_addr(const struct nlmsghdr *nlh, struct host_addr *ret);

/* RTM_NEWNETCONF: the values it carries go into h->all_forwarding and all_rp_filter;
 * the others are left alone. */
void kern_parse_netconf(const struct nlmsghdr *nlh, struct host_snapshot *h);

/* RTM_NEWNEIGHTBL of "arp_cache": when it holds the parameters of a device with a
 * proxy delay, 1, *ret_ifindex and *ret_ms (milliseconds; -1 when out of range). 0
 * otherwise (the table's defaults, another table). */
int kern_parse_neightbl_delay(const struct nlmsghdr *nlh, int *ret_ifindex, int64_t *ret_ms);
/* The same for another table ("ndisc_cache": IPv6's). */
int kern_parse_neightbl_delay_of(const struct nlmsghdr *nlh, const char *table, int *ret_ifindex, int64_t *ret_ms);

/* RTM_NEWNETCONF of AF_INET6: 1 with the device (NETCONFA_IFINDEX_ALL, -DEFAULT for
 * the global ones) and its forwarding and proxy_ndp (NETCONFA_PROXY_NEIGH), -1 for a
 * value it does not carry; 0 for another message. */
int kern_parse_netconf6(const struct nlmsghdr *nlh, int *ret_ifindex, int *ret_forwarding, int *ret_proxy_ndp);

/* RTM_NEWLINK of AF_INET6 (a link dump of that family): 1 with the device and its
 * accept_ra from the IFLA_INET6_CONF array (-1 when absent); 0 for another message. */
int kern_parse_inet6_conf(const struct nlmsghdr *nlh, int *ret_ifindex, int *ret_accept_ra);

/* RTM_NEWNEIGH of a proxy entry (NTF_PROXY, AF_INET6): 1 and *ret; 0 otherwise. */
int kern_parse_proxy(const struct nlmsghdr *nlh, struct host_proxy *ret);

/* The reply to a single RTM_GETROUTE (a route lookup): kern_parse_route's type and
 * device, and the preferred source. 1 when the message is a route, then the fields it
 * carries are set; 0 otherwise. */
int kern_parse_reach(const struct nlmsghdr *nlh, struct host_reach *ret);

/* NLMSG_ERROR: 0 for an ack, the negative errno otherwise, with the extended-ack text
 * (NLMSGERR_ATTR_MSG) copied to buf when there is one; -EBADMSG when too short. */
int kern_parse_ack(const struct nlmsghdr *nlh, char *buf, size_t size);
/* NLMSG_DONE: the dump's error (0 or negative errno) and its extended-ack text. */
int kern_parse_done(const struct nlmsghdr *nlh, char *buf, size_t size);

/* An event-socket notification (link, address, route, rule, netconf): 1 and *ev filled for
 * those types, 0 for any other type, -EBADMSG for one too short for its family header
 * (the kernel never sends that: whoever reads it cannot know what changed). */
int kern_parse_event(const struct nlmsghdr *nlh, struct kern_event *ev);

/* Every notification of a datagram of n bytes, in order, to fn. 0, or -EBADMSG when
 * a message is malformed or bytes are left over that make no message (fn may have
 * been called for the messages before). */
int kern_parse_events(const void *buf, size_t n, void (*fn)(const struct kern_event *ev, void *userdata),
                    void *userdata);
