/* rtnetlink: observe the host into a struct host_snapshot and apply the planner's
 * changes.
 *
 * libnl-route reads links (with their IPv4 devconf), for the snapshot and for the
 * tunnel check that a device is gone; libmnl does everything else: address, route,
 * rule, netconf and neighbour-table dumps, the route lookup, and every change.
 * libnl's route cache is superlinear (3.7 s and 44 MB for 100k routes), a libmnl dump
 * is not.
 *
 * This file must never look a device up by name in the kernel (if_nametoindex(),
 * ioctls, RTM_GETLINK with IFLA_IFNAME): the kernel's by-name lookup can load the
 * ipip module and create tunl0 again (DESIGN.md §7). Links are found by dumping them.
 * It decides nothing: it changes only what the planner asked for, and routes only
 * with the protocol number kern_apply() is given (rules with the one the planner put
 * in each), which the kernel itself matches on delete. The messages it reads are
 * parsed by parse.c (nl-parse.h), the code the monitor and tests/fuzz-netlink.c use
 * too. */
#include "nl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/ip.h>
#include <linux/neighbour.h>
#include <linux/netconf.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>
#include <netlink/route/link/inet.h>

#include "nl-parse.h"
#include "sock.h"
#include "tunnel.h"
#include "util.h"

#define NL_RECV_BUF (64u * 1024)       /* kernel dump skbs are at most 32 KiB */
#define NL_REQ_BUF 1024                /* single requests are a few hundred bytes at most */
#define NL_SNDBUF_WANT (4 << 20)       /* the kernel doubles it: 8 MiB */
#define NL_RCVBUF_WANT (8 << 20)       /* the kernel doubles it: 16 MiB */
/* Receive-buffer charge of one ack (skb truesize, measured ≈832 B), with room for
 * error acks that carry an extack message. */
#define NL_ACK_BUDGET 2048u
/* A route message: header 16 + rtmsg 12 + RTA_DST 20 + RTA_TABLE 8 + RTA_PRIORITY 8
 * + RTA_VIA 24 + RTA_OIF 8 = 96 B at most; 36 B at least (no RTA_DST, no next hop). */
#define NL_ROUTE_MSG_MAX 128u
#define NL_ROUTE_MSG_MIN 36u
/* Route datagram size (about 3,000 routes): the kernel handles a datagram inside
 * send(), so larger ones save little and need a larger send buffer. */
#define NL_BATCH_BYTES (256u * 1024)
#define NL_OBSERVE_TRIES 5
#define NL_MAX_LINKS (1u << 18)
#define NL_MAX_ADDRS (1u << 20)
#define NL_MAX_ROUTES (4u << 20)
#define NL_MAX_RULES (1u << 16)

/* Our marker for NLM_F_DUMP_INTR. Signals never surface as EINTR: recvmsg() is
 * retried. */
#define NL_DUMP_INTERRUPTED (-EINTR)

struct kern {
        struct mnl_socket *mnl;
        struct nl_sock *sk; /* libnl-route, for the link cache */
        uint32_t portid;
        uint32_t seq;
        size_t sndbuf, rcvbuf; /* effective sizes, as the kernel reports them */
        size_t batch_bytes;    /* route datagram size */
        size_t batch_max;      /* route messages per datagram */
        uint8_t *buf;          /* NL_RECV_BUF bytes */
        /* route datagrams, allocated on first use */
        uint8_t *out;          /* batch_bytes */
        uint32_t *slot;        /* batch_max: message → action */
        bool *replied;         /* batch_max */
};

typedef int (*kern_msg_fn)(const struct nlmsghdr *nlh, void *data);

/* ---------------------------------------------------------------- helpers */

static int nlerr_to_errno(int e)
{
        switch (e < 0 ? -e : e) {
        case NLE_DUMP_INTR:
                return NL_DUMP_INTERRUPTED;
        case NLE_NOMEM:
                return -ENOMEM;
        case NLE_PERM:
                return -EPERM;
        case NLE_NOACCESS:
                return -EACCES;
        case NLE_AGAIN:
                return -EAGAIN;
        case NLE_BUSY:
                return -EBUSY;
        case NLE_AF_NOSUPPORT:
                return -EAFNOSUPPORT;
        default:
                return -EIO;
        }
}

/* ---------------------------------------------------------------- socket */

/* Route datagrams: NL_BATCH_BYTES, or what the send buffer allows (the kernel
 * refuses a datagram larger than sk_sndbuf - 32 with EMSGSIZE). Messages per
 * datagram: as many as fit, but no more than the receive buffer can hold errors
 * for, should every message of a datagram fail (each error takes NL_ACK_BUDGET);
 * an overflowing queue drops replies (ENOBUFS). */
static void batch_limit(struct kern *nl)
{
        size_t bytes = nl->sndbuf > 64 + NL_ROUTE_MSG_MAX ? nl->sndbuf - 64 : NL_ROUTE_MSG_MAX;
        size_t by_rcv = nl->rcvbuf / NL_ACK_BUDGET, n;

        nl->batch_bytes = bytes < NL_BATCH_BYTES ? bytes : NL_BATCH_BYTES;
        n = nl->batch_bytes / NL_ROUTE_MSG_MIN;
        nl->batch_max = n < by_rcv ? n : by_rcv ? by_rcv : 1;
}

static int open_mnl(struct kern *nl)
{
        const struct kern_sock_opts o = { .flags = SOCK_CLOEXEC, .requests = true, .sndbuf = NL_SNDBUF_WANT,
                                          .rcvbuf = NL_RCVBUF_WANT };
        int r = kern_sock_open(&o, &nl->mnl, &nl->sndbuf, &nl->rcvbuf);

        if (r < 0)
                return r;
        batch_limit(nl);
        nl->portid = mnl_socket_get_portid(nl->mnl);
        return 0;
}

static int open_libnl(struct kern *nl)
{
        int r;

        nl->sk = nl_socket_alloc();
        if (!nl->sk)
                return -ENOMEM;
        r = nl_connect(nl->sk, NETLINK_ROUTE);
        return r < 0 ? nlerr_to_errno(r) : 0;
}

void kern_close(struct kern *nl)
{
        if (!nl)
                return;
        if (nl->sk)
                nl_socket_free(nl->sk);
        if (nl->mnl)
                mnl_socket_close(nl->mnl);
        free(nl->buf);
        free(nl->out);
        free(nl->slot);
        free(nl->replied);
        free(nl);
}

static void kern_closep(struct kern **nl)
{
        kern_close(*nl);
}

int kern_open(struct kern **ret)
{
        _cleanup_(kern_closep) struct kern *nl = calloc(1, sizeof(*nl));
        int r;

        if (!nl)
                return -ENOMEM;
        nl->buf = malloc(NL_RECV_BUF);
        if (!nl->buf)
                return -ENOMEM;
        r = open_mnl(nl);
        if (r < 0)
                return r;
        r = open_libnl(nl);
        if (r < 0)
                return r;
        nl->seq = (uint32_t)time(NULL);
        *ret = TAKE_PTR(nl);
        return 0;
}

uint32_t kern_portid(const struct kern *nl)
{
        return nl->portid;
}

/* ---------------------------------------------------------------- transport */

static uint32_t next_seq(struct kern *nl)
{
        return ++nl->seq;
}

static int sock_send(struct kern *nl, const void *buf, size_t len)
{
        ssize_t n = mnl_socket_sendto(nl->mnl, buf, len);

        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EIO; /* netlink datagrams are all or nothing */
}

/* One datagram into nl->buf. Returns its length, 0 for a datagram to ignore (not
 * from the kernel: any local process may send to our port), or -errno. */
static ssize_t sock_recv(struct kern *nl, int flags)
{
        struct sockaddr_nl sa = {};
        struct iovec iov = { .iov_base = nl->buf, .iov_len = NL_RECV_BUF };
        struct msghdr mh = { .msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        do
                n = recvmsg(mnl_socket_get_fd(nl->mnl), &mh, flags);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (mh.msg_flags & MSG_TRUNC)
                return -EMSGSIZE;
        return sa.nl_pid == 0 ? n : 0;
}

struct xfer {
        uint32_t seq;
        kern_msg_fn fn;
        void *data;
        char *err;
        size_t err_size;
        bool intr;    /* NLM_F_DUMP_INTR seen */
        int cb_error; /* first callback failure: the rest is drained, not parsed */
        bool done;
};

/* Handle one message of an exchange. Returns the exchange's result once it ends. */
static int xfer_msg(struct kern *nl, struct xfer *x, const struct nlmsghdr *nlh)
{
        int r;

        /* Replies carry our port and the request's sequence number; anything else
         * is left over from an earlier exchange. */
        if (nlh->nlmsg_pid != nl->portid || nlh->nlmsg_seq != x->seq)
                return 0;
        if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
                x->intr = true;
        switch (nlh->nlmsg_type) {
        case NLMSG_NOOP:
        case NLMSG_OVERRUN:
                return 0;
        case NLMSG_ERROR:
        case NLMSG_DONE:
                x->done = true;
                r = nlh->nlmsg_type == NLMSG_ERROR ? kern_parse_ack(nlh, x->err, x->err_size)
                                                   : kern_parse_done(nlh, x->err, x->err_size);
                if (r < 0)
                        return r;
                if (x->cb_error < 0)
                        return x->cb_error;
                return x->intr ? NL_DUMP_INTERRUPTED : 0;
        default:
                if (x->fn && x->cb_error == 0)
                        x->cb_error = x->fn(nlh, x->data);
                return 0;
        }
}

/* Send one request and read its replies until the ack, the error or NLMSG_DONE.
 * Non-dump requests ask for an ack, so every exchange ends with a message we wait
 * for. A dump interrupted by a change (NLM_F_DUMP_INTR) is read to its end, then
 * reported as NL_DUMP_INTERRUPTED. */
static int transact(struct kern *nl, struct nlmsghdr *req, kern_msg_fn fn, void *data, char *err, size_t err_size)
{
        struct xfer x = { .fn = fn, .data = data, .err = err, .err_size = err_size };
        int r;

        req->nlmsg_flags |= NLM_F_REQUEST;
        if ((req->nlmsg_flags & NLM_F_DUMP) != NLM_F_DUMP)
                req->nlmsg_flags |= NLM_F_ACK;
        req->nlmsg_seq = x.seq = next_seq(nl);
        r = sock_send(nl, req, req->nlmsg_len);
        if (r < 0)
                return r;
        for (;;) {
                ssize_t n = sock_recv(nl, 0);
                const struct nlmsghdr *nlh = (const struct nlmsghdr *)nl->buf;

                if (n < 0)
                        return (int)n;
                for (int len = (int)n; kern_msg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
                        r = xfer_msg(nl, &x, nlh);
                        if (x.done)
                                return r;
                }
        }
}

/* A request with just a family header, in a zeroed buffer of size bytes:
 * attribute padding (e.g. after the string "arp_cache") must not carry stale bytes
 * to the kernel. */
static struct nlmsghdr *put_request(void *buf, size_t size, uint16_t type, uint16_t flags, size_t hdrlen,
                                    void **ret_hdr)
{
        struct nlmsghdr *nlh;

        memset(buf, 0, size);
        nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = type;
        nlh->nlmsg_flags = flags;
        *ret_hdr = mnl_nlmsg_put_extra_header(nlh, hdrlen);
        return nlh;
}

/* ---------------------------------------------------------------- observe: links */

struct observe {
        struct host_snapshot h;
        size_t cap_links, cap_addrs, cap_routes, cap_routes4, cap_proxies, cap_rules;
        /* the route dump being read: only routes of this table (0 = any) and protocol
         * (0 = any), none of skip_a or skip_b. The kernel filters already on a kernel
         * with strict dump checking; this is for older ones, and against duplicates. */
        uint32_t table, skip_a, skip_b;
        uint8_t protocol;
};

static int devconf(struct rtnl_link *l, unsigned id)
{
        uint32_t v;

        if (rtnl_link_inet_get_conf(l, id, &v) < 0)
                return -1;
        return v > INT32_MAX ? -1 : (int)v;
}

static int add_link(struct observe *o, struct rtnl_link *l)
{
        struct host_link *hl;
        const char *name = rtnl_link_get_name(l), *kind = rtnl_link_get_type(l);

        if (o->h.n_links >= NL_MAX_LINKS)
                return -E2BIG;
        if (GROW(o->h.links, o->cap_links, o->h.n_links + 1) < 0)
                return -ENOMEM;
        hl = &o->h.links[o->h.n_links++];
        *hl = (struct host_link){
                .ifindex = rtnl_link_get_ifindex(l),
                .mtu = rtnl_link_get_mtu(l),
                .up = rtnl_link_get_flags(l) & IFF_UP,
                .proxy_arp = devconf(l, IPV4_DEVCONF_PROXY_ARP),
                .forwarding = devconf(l, IPV4_DEVCONF_FORWARDING),
                .rp_filter = devconf(l, IPV4_DEVCONF_RP_FILTER),
                .proxy_delay_ms = -1,
                .proxy_ndp = -1,
                .forwarding6 = -1,
                .accept_ra6 = -1,
                .proxy_delay6_ms = -1,
        };
        snprintf(hl->name, sizeof(hl->name), "%s", name ? name : "");
        snprintf(hl->kind, sizeof(hl->kind), "%s", kind ? kind : "");
        return 0;
}

static int link_cmp(const void *a, const void *b)
{
        const struct host_link *x = a, *y = b;

        return (x->ifindex > y->ifindex) - (x->ifindex < y->ifindex);
}

static void nl_cache_freep(struct nl_cache **c)
{
        if (*c)
                nl_cache_free(*c);
}

/* Links through libnl-route: it parses IFLA_LINKINFO kinds and the IPv4 devconf
 * array (IFLA_AF_SPEC/AF_INET/IFLA_INET_CONF) for us. libnl reads a dump to its end
 * and reports NLM_F_DUMP_INTR as -NLE_DUMP_INTR. */
static int observe_links(struct kern *nl, struct observe *o)
{
        _cleanup_(nl_cache_freep) struct nl_cache *cache = NULL;
        int r;

        r = rtnl_link_alloc_cache(nl->sk, AF_UNSPEC, &cache);
        if (r < 0)
                return nlerr_to_errno(r);
        for (struct nl_object *obj = nl_cache_get_first(cache); obj; obj = nl_cache_get_next(obj)) {
                r = add_link(o, (struct rtnl_link *)obj);
                if (r < 0)
                        return r;
        }
        if (o->h.n_links > 1)
                qsort(o->h.links, o->h.n_links, sizeof(*o->h.links), link_cmp);
        return 0;
}

/* ---------------------------------------------------------------- observe: addresses */

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
        struct observe *o = data;
        struct host_addr ha;

        if (kern_parse_addr(nlh, &ha) <= 0)
                return 0;
        if (o->h.n_addrs >= NL_MAX_ADDRS)
                return -E2BIG;
        if (GROW(o->h.addrs, o->cap_addrs, o->h.n_addrs + 1) < 0)
                return -ENOMEM;
        o->h.addrs[o->h.n_addrs++] = ha;
        return 0;
}

static int dump_family(struct kern *nl, uint16_t type, uint8_t family, size_t hdrlen, kern_msg_fn fn, void *data)
{
        char buf[NL_REQ_BUF];
        void *hdr;
        struct nlmsghdr *nlh = put_request(buf, sizeof(buf), type, NLM_F_DUMP, hdrlen, &hdr);

        /* Every rtnetlink family header starts with the family byte. */
        *(uint8_t *)hdr = family;
        return transact(nl, nlh, fn, data, NULL, 0);
}

static int observe_addrs(struct kern *nl, struct observe *o)
{
        int r = dump_family(nl, RTM_GETADDR, AF_INET, sizeof(struct ifaddrmsg), addr_cb, o);

        if (r < 0)
                return r;
        return dump_family(nl, RTM_GETADDR, AF_INET6, sizeof(struct ifaddrmsg), addr_cb, o);
}

/* ---------------------------------------------------------------- observe: routes */

static bool route_wanted(const struct observe *o, const struct host_route *rt)
{
        if (rt->table == RT_TABLE_LOCAL || (o->table && rt->table != o->table))
                return false;
        if (o->protocol && rt->protocol != o->protocol)
                return false;
        return rt->table != o->skip_a && rt->table != o->skip_b;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
        struct observe *o = data;
        const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
        struct host_route rt;
        struct host_route4 c;

        if (nlh->nlmsg_type != RTM_NEWROUTE || nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*rtm)))
                return 0;
        if (rtm->rtm_flags & RTM_F_CLONED) /* cache entries, not routes */
                return 0;
        if (kern_parse_route(nlh, &rt) < 0 || !route_wanted(o, &rt))
                return 0;
        if (o->h.n_routes + o->h.n_routes4 >= NL_MAX_ROUTES)
                return -E2BIG;
        if (o->h.routes4_table && rt.table == o->h.routes4_table &&
            host_route4_put(&rt, o->h.routes4_table, o->h.routes4_protocol, &c)) {
                if (GROW(o->h.routes4, o->cap_routes4, o->h.n_routes4 + 1) < 0)
                        return -ENOMEM;
                o->h.routes4[o->h.n_routes4++] = c;
                return 0;
        }
        if (GROW(o->h.routes, o->cap_routes, o->h.n_routes + 1) < 0)
                return -ENOMEM;
        o->h.routes[o->h.n_routes++] = rt;
        return 0;
}

/* A route dump the kernel filters (strict dump checking, Linux 4.20+): one table, or
 * one protocol in every table. A table that does not exist yet (ours, before our
 * first route) is reported as ENOENT: it holds nothing. */
static int dump_routes(struct kern *nl, struct observe *o, uint8_t family, uint32_t table, uint8_t protocol)
{
        char buf[NL_REQ_BUF];
        struct rtmsg *rtm;
        struct nlmsghdr *nlh = put_request(buf, sizeof(buf), RTM_GETROUTE, NLM_F_DUMP, sizeof(*rtm), (void **)&rtm);
        int r;

        rtm->rtm_family = family;
        rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
        rtm->rtm_protocol = protocol;
        if (table >= 256)
                mnl_attr_put_u32(nlh, RTA_TABLE, table);
        o->table = table;
        o->protocol = protocol;
        r = transact(nl, nlh, route_cb, o, NULL, 0);
        return r == -ENOENT && table ? 0 : r;
}

static void route4_sift(struct host_route4 *v, size_t i, size_t n)
{
        for (size_t k; (k = 2 * i + 1) < n; i = k) {
                struct host_route4 t;

                if (k + 1 < n && host_route4_cmp(&v[k], &v[k + 1]) < 0)
                        k++;
                if (host_route4_cmp(&v[i], &v[k]) >= 0)
                        return;
                t = v[i];
                v[i] = v[k];
                v[k] = t;
        }
}

/* In place: glibc's qsort() takes a copy of the whole array (2 MB at 100k routes) at
 * the moment the dump is largest. A table's dump comes in the kernel's trie order,
 * which is this order already while no address has two prefix lengths (the trie puts
 * the longer first); the heap sort is for anything else. */
static void sort_routes4(struct host_route4 *v, size_t n)
{
        size_t i = 1;

        while (i < n && host_route4_cmp(&v[i - 1], &v[i]) <= 0)
                i++;
        if (i >= n)
                return;
        for (i = n / 2; i-- > 0;)
                route4_sift(v, i, n);
        for (i = n; i-- > 1;) {
                struct host_route4 t = v[0];

                v[0] = v[i];
                v[i] = t;
                route4_sift(v, 0, i);
        }
}

/* Every table; or, narrowed by opts, the main table (foreign routes that win by
 * lookup or conflict, the default route, routes through tunnels), the caller's table,
 * and routes of the caller's protocol left in any other table. Other tables (Felix's
 * 1-250, whatever else a node holds) are then never read. */
static int observe_routes(struct kern *nl, const struct kern_observe_opts *opts, struct observe *o)
{
        static const uint8_t families[] = { AF_INET, AF_INET6 };
        uint32_t ours = opts ? opts->route_table : 0;
        uint8_t proto = opts ? opts->route_protocol : 0;
        int r = 0;

        /* Our own table's routes of our protocol in the compact form, when the dumps
         * are narrowed to it (never main: foreign and default routes stay whole). */
        if (ours && opts->own_protocol && ours != RT_TABLE_MAIN) {
                o->h.routes4_table = ours;
                o->h.routes4_protocol = opts->own_protocol;
        }

        for (size_t i = 0; i < ELEMENTSOF(families) && r >= 0; i++) {
                o->skip_a = o->skip_b = 0;
                if (!ours) {
                        r = dump_routes(nl, o, families[i], 0, 0);
                        continue;
                }
                r = dump_routes(nl, o, families[i], RT_TABLE_MAIN, 0);
                if (r >= 0 && ours != RT_TABLE_MAIN)
                        r = dump_routes(nl, o, families[i], ours, 0);
                o->skip_a = RT_TABLE_MAIN;
                o->skip_b = ours;
                if (r >= 0 && proto)
                        r = dump_routes(nl, o, families[i], 0, proto);
        }
        o->skip_a = o->skip_b = o->table = o->protocol = 0;
        if (r >= 0)
                sort_routes4(o->h.routes4, o->h.n_routes4);
        return r;
}

/* ---------------------------------------------------------------- observe: rules */

static int rule_cb(const struct nlmsghdr *nlh, void *data)
{
        struct observe *o = data;
        struct host_rule rule;

        if (nlh->nlmsg_type != RTM_NEWRULE || kern_parse_rule(nlh, &rule) < 0)
                return 0;
        if (o->h.n_rules >= NL_MAX_RULES)
                return -E2BIG;
        if (GROW(o->h.rules, o->cap_rules, o->h.n_rules + 1) < 0)
                return -ENOMEM;
        o->h.rules[o->h.n_rules++] = rule;
        return 0;
}

static int observe_rules(struct kern *nl, struct observe *o)
{
        int r = dump_family(nl, RTM_GETRULE, AF_INET, sizeof(struct fib_rule_hdr), rule_cb, o);

        if (r < 0)
                return r;
        return dump_family(nl, RTM_GETRULE, AF_INET6, sizeof(struct fib_rule_hdr), rule_cb, o);
}

/* ---------------------------------------------------------------- observe: settings */

static int netconf_cb(const struct nlmsghdr *nlh, void *data)
{
        kern_parse_netconf(nlh, data);
        return 0;
}

/* net.ipv4.conf.all.*: RTM_GETNETCONF for NETCONFA_IFINDEX_ALL. */
static int observe_netconf(struct kern *nl, struct host_snapshot *h)
{
        char buf[NL_REQ_BUF];
        struct netconfmsg *ncm;
        struct nlmsghdr *nlh = put_request(buf, sizeof(buf), RTM_GETNETCONF, 0, sizeof(*ncm), (void **)&ncm);

        ncm->ncm_family = AF_INET;
        mnl_attr_put_u32(nlh, NETCONFA_IFINDEX, (uint32_t)NETCONFA_IFINDEX_ALL);
        return transact(nl, nlh, netconf_cb, h, NULL, 0);
}

static int neightbl_cb(const struct nlmsghdr *nlh, void *data)
{
        struct host_snapshot *h = data;
        int64_t ms;
        int ifindex;

        if (kern_parse_neightbl_delay(nlh, &ifindex, &ms) > 0) {
                /* links are sorted by now: find by halves, write through our own array */
                const struct host_link *l = host_link_by_index(h, ifindex);

                if (l)
                        h->links[l - h->links].proxy_delay_ms = ms;
        }
        return 0;
}

/* Every device's proxy delay: the ARP table's parameters, one set per device. */
static int observe_proxy_delay(struct kern *nl, struct host_snapshot *h)
{
        return dump_family(nl, RTM_GETNEIGHTBL, AF_INET, sizeof(struct ndtmsg), neightbl_cb, h);
}

static int netconf6_cb(const struct nlmsghdr *nlh, void *data)
{
        struct host_snapshot *h = data;
        int ifindex, fwd, ndp;

        if (kern_parse_netconf6(nlh, &ifindex, &fwd, &ndp) <= 0)
                return 0;
        if (ifindex == NETCONFA_IFINDEX_ALL) {
                h->all_forwarding6 = fwd;
        } else if (ifindex > 0) {
                const struct host_link *l = host_link_by_index(h, ifindex);

                if (l) {
                        h->links[l - h->links].forwarding6 = fwd;
                        h->links[l - h->links].proxy_ndp = ndp;
                }
        }
        return 0;
}

static int inet6_link_cb(const struct nlmsghdr *nlh, void *data)
{
        struct host_snapshot *h = data;
        int ifindex, accept_ra;

        if (kern_parse_inet6_conf(nlh, &ifindex, &accept_ra) > 0) {
                const struct host_link *l = host_link_by_index(h, ifindex);

                if (l)
                        h->links[l - h->links].accept_ra6 = accept_ra;
        }
        return 0;
}

static int neightbl6_cb(const struct nlmsghdr *nlh, void *data)
{
        struct host_snapshot *h = data;
        int64_t ms;
        int ifindex;

        if (kern_parse_neightbl_delay_of(nlh, "ndisc_cache", &ifindex, &ms) > 0) {
                const struct host_link *l = host_link_by_index(h, ifindex);

                if (l)
                        h->links[l - h->links].proxy_delay6_ms = ms;
        }
        return 0;
}

/* Every device's IPv6 forwarding and proxy_ndp, and the global forwarding: a netconf
 * dump of AF_INET6 (libnl of Debian 12 does not read the IPv6 devconf array); accept_ra,
 * which netconf does not carry, from a link dump of AF_INET6 (IFLA_INET6_CONF). */
static int observe_netconf6(struct kern *nl, struct host_snapshot *h)
{
        int r;

        h->all_forwarding6 = -1;
        r = dump_family(nl, RTM_GETNETCONF, AF_INET6, sizeof(struct netconfmsg), netconf6_cb, h);
        if (r < 0)
                return r;
        r = dump_family(nl, RTM_GETLINK, AF_INET6, sizeof(struct ifinfomsg), inet6_link_cb, h);
        if (r < 0)
                return r;
        return dump_family(nl, RTM_GETNEIGHTBL, AF_INET6, sizeof(struct ndtmsg), neightbl6_cb, h);
}

static int proxy_cb(const struct nlmsghdr *nlh, void *data)
{
        struct observe *o = data;
        struct host_proxy p;

        if (kern_parse_proxy(nlh, &p) <= 0)
                return 0;
        if (o->h.n_proxies >= NL_MAX_ROUTES)
                return -E2BIG;
        if (GROW(o->h.proxies, o->cap_proxies, o->h.n_proxies + 1) < 0)
                return -ENOMEM;
        o->h.proxies[o->h.n_proxies++] = p;
        return 0;
}

/* The IPv6 proxy neighbour entries: a neighbour dump with NTF_PROXY lists the proxy
 * table (with NDA_PROTOCOL), not the neighbours. Such entries raise no events: only
 * this dump sees them (DESIGN.md §7). */
static int observe_proxies(struct kern *nl, struct observe *o)
{
        char buf[NL_REQ_BUF];
        struct ndmsg *ndm;
        struct nlmsghdr *nlh = put_request(buf, sizeof(buf), RTM_GETNEIGH, NLM_F_DUMP, sizeof(*ndm), (void **)&ndm);

        ndm->ndm_family = AF_INET6;
        ndm->ndm_flags = NTF_PROXY;
        return transact(nl, nlh, proxy_cb, o, NULL, 0);
}

/* ---------------------------------------------------------------- observe: route lookup */

static int reach_cb(const struct nlmsghdr *nlh, void *data)
{
        (void)kern_parse_reach(nlh, data);
        return 0;
}

/* The kernel's route to one address (RTM_GETROUTE, not a dump), as `ip route get`
 * asks. A failed lookup is data too (h->reach.error): no route is an answer. */
static int observe_reach(struct kern *nl, const struct cfg_prefix *dst, struct host_snapshot *h)
{
        char buf[NL_REQ_BUF];
        struct rtmsg *rtm;
        struct nlmsghdr *nlh = put_request(buf, sizeof(buf), RTM_GETROUTE, 0, sizeof(*rtm), (void **)&rtm);
        struct host_reach *rc = &h->reach;
        int r;

        if (kern_addr_size(dst->family) == 0)
                return 0;
        *rc = (struct host_reach){ .dst = *dst };
        rtm->rtm_family = dst->family;
        rtm->rtm_dst_len = (uint8_t)(kern_addr_size(dst->family) * 8);
        mnl_attr_put(nlh, RTA_DST, kern_addr_size(dst->family), dst->addr);
        r = transact(nl, nlh, reach_cb, rc, rc->message, sizeof(rc->message));
        if (r == NL_DUMP_INTERRUPTED)
                return r;
        if (r < 0)
                rc->error = r;
        return 0;
}

/* ---------------------------------------------------------------- observe */

static int observe_once(struct kern *nl, const struct kern_observe_opts *opts, struct observe *o)
{
        int r;

        o->h.all_forwarding = o->h.all_rp_filter = -1;
        r = observe_links(nl, o);
        if (r >= 0)
                r = observe_addrs(nl, o);
        if (r >= 0)
                r = observe_routes(nl, opts, o);
        if (r >= 0)
                r = observe_rules(nl, o);
        if (r >= 0)
                r = observe_netconf(nl, &o->h);
        if (r >= 0)
                r = observe_proxy_delay(nl, &o->h);
        if (r >= 0)
                r = observe_netconf6(nl, &o->h);
        if (r >= 0)
                r = observe_proxies(nl, o);
        if (r >= 0 && opts)
                r = observe_reach(nl, &opts->reach, &o->h);
        return r;
}

int kern_observe(struct kern *nl, const struct kern_observe_opts *opts, struct host_snapshot *ret)
{
        int r = NL_DUMP_INTERRUPTED;

        for (int try = 0; try < NL_OBSERVE_TRIES && r == NL_DUMP_INTERRUPTED; try++) {
                struct observe o = {};

                r = observe_once(nl, opts, &o);
                if (r >= 0) {
                        *ret = o.h;
                        return 0;
                }
                host_snapshot_clear(&o.h);
        }
        /* Still changing under us after several tries: let the caller come back. */
        return r == NL_DUMP_INTERRUPTED ? -EAGAIN : r;
}

/* ---------------------------------------------------------------- apply: settings */

/* net.ipv4.conf.<dev>.proxy_arp through RTM_SETLINK: IFLA_AF_SPEC → AF_INET →
 * IFLA_INET_CONF → {IPV4_DEVCONF_PROXY_ARP: u32}, so /proc/sys can stay read-only. */
static int set_proxy_arp(struct kern *nl, int ifindex, int64_t value, char *err, size_t err_size)
{
        char buf[NL_REQ_BUF];
        struct ifinfomsg *ifi;
        struct nlmsghdr *nlh = put_request(buf, sizeof(buf), RTM_SETLINK, 0, sizeof(*ifi), (void **)&ifi);
        struct nlattr *spec, *inet, *conf;

        if (ifindex <= 0 || value < 0 || value > 1)
                return -EINVAL;
        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = ifindex; /* by index: never IFLA_IFNAME */
        spec = mnl_attr_nest_start(nlh, IFLA_AF_SPEC);
        inet = mnl_attr_nest_start(nlh, AF_INET);
        conf = mnl_attr_nest_start(nlh, IFLA_INET_CONF);
        mnl_attr_put_u32(nlh, IPV4_DEVCONF_PROXY_ARP, (uint32_t)value);
        mnl_attr_nest_end(nlh, conf);
        mnl_attr_nest_end(nlh, inet);
        mnl_attr_nest_end(nlh, spec);
        return transact(nl, nlh, NULL, NULL, err, err_size);
}

/* net.ipv4.neigh.<dev>.proxy_delay through RTM_SETNEIGHTBL on "arp_cache". The
 * kernel takes NDTPA_PROXY_DELAY in ms and keeps jiffies (/proc shows USER_HZ
 * units: 800 ms reads as 80). */
static int set_proxy_delay_of(struct kern *nl, uint8_t family, const char *table, int ifindex, int64_t ms, char *err,
                              size_t err_size);

static int set_proxy_delay(struct kern *nl, int ifindex, int64_t ms, char *err, size_t err_size)
{
        return set_proxy_delay_of(nl, AF_INET, "arp_cache", ifindex, ms, err, err_size);
}

/* net.ipv6.neigh.<dev>.proxy_delay: the same on "ndisc_cache" (DESIGN.md §7). */
static int set_proxy_delay_of(struct kern *nl, uint8_t family, const char *table, int ifindex, int64_t ms, char *err,
                              size_t err_size)
{
        char buf[NL_REQ_BUF];
        struct ndtmsg *ndtm;
        struct nlmsghdr *nlh = put_request(buf, sizeof(buf), RTM_SETNEIGHTBL, 0, sizeof(*ndtm), (void **)&ndtm);
        struct nlattr *parms;

        if (ifindex <= 0 || ms < 0 || ms > INT32_MAX)
                return -EINVAL;
        ndtm->ndtm_family = family;
        mnl_attr_put_strz(nlh, NDTA_NAME, table);
        parms = mnl_attr_nest_start(nlh, NDTA_PARMS);
        mnl_attr_put_u32(nlh, NDTPA_IFINDEX, (uint32_t)ifindex);
        mnl_attr_put_u64(nlh, NDTPA_PROXY_DELAY, (uint64_t)ms);
        mnl_attr_nest_end(nlh, parms);
        return transact(nl, nlh, NULL, NULL, err, err_size);
}

/* net.ipv6.conf.<dev>.proxy_ndp. The kernel takes no IPv6 devconf over rtnetlink:
 * inet6_validate_link_af() (net/ipv6/addrconf.c) refuses an IFLA_AF_SPEC/AF_INET6 without
 * IFLA_INET6_TOKEN or IFLA_INET6_ADDR_GEN_MODE with EINVAL (seen on 6.18: IFLA_INET6_CONF
 * is read-only), and netconf is notification only. So it is written to
 * /proc/sys/net/ipv6/conf/<dev>/proxy_ndp (of our network namespace), the one file
 * the unit leaves writable (ReadWritePaths=/proc/sys/net/ipv6/conf). */
static int set_proxy_ndp(const char *dev, int64_t value, char *err, size_t err_size)
{
        char path[128];
        int fd, r = 0;

        if (!dev[0] || strchr(dev, '/') || streq(dev, ".") || streq(dev, "..") || value < 0 || value > 1)
                return -EINVAL;
        snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/proxy_ndp", dev);
        fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                snprintf(err, err_size, "%s: %s", path, strerror(errno));
                return -errno;
        }
        if (write(fd, value ? "1\n" : "0\n", 2) != 2) {
                r = -errno;
                snprintf(err, err_size, "%s: %s", path, strerror(errno));
        }
        close(fd);
        return r;
}

/* A proxy neighbour entry of ours: RTM_NEWNEIGH with NTF_PROXY and NDA_PROTOCOL. The
 * planner adds only where no entry exists: creating an existing one succeeds even
 * with NLM_F_EXCL and overwrites its protocol (DESIGN.md §7). */
static int proxy_change(struct kern *nl, const struct host_change *a, char *err, size_t err_size)
{
        char buf[NL_REQ_BUF];
        struct ndmsg *ndm;
        bool add = a->kind == CHANGE_ADD_PROXY;
        struct nlmsghdr *nlh = put_request(buf, sizeof(buf), add ? RTM_NEWNEIGH : RTM_DELNEIGH,
                                           add ? NLM_F_CREATE | NLM_F_EXCL : 0, sizeof(*ndm), (void **)&ndm);

        if (a->ifindex <= 0 || a->route.dst.family != AF_INET6)
                return -EINVAL;
        ndm->ndm_family = AF_INET6;
        ndm->ndm_flags = NTF_PROXY;
        ndm->ndm_state = NUD_PERMANENT;
        ndm->ndm_ifindex = a->ifindex;
        mnl_attr_put(nlh, NDA_DST, 16, a->route.dst.addr);
        if (add)
                mnl_attr_put_u8(nlh, NDA_PROTOCOL, a->route.protocol);
        return transact(nl, nlh, NULL, NULL, err, err_size);
}

/* ---------------------------------------------------------------- apply: tunnels */

static int tun_del_link(void *ctx, int ifindex)
{
        char buf[NL_REQ_BUF];
        struct ifinfomsg *ifi;
        struct nlmsghdr *nlh = put_request(buf, sizeof(buf), RTM_DELLINK, 0, sizeof(*ifi), (void **)&ifi);

        if (ifindex <= 0)
                return -ENODEV;
        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = ifindex;
        return transact(ctx, nlh, NULL, NULL, NULL, 0);
}

/* Links come from libnl-route, here as in observe_links(): by dump, never by name
 * (DESIGN.md §7). The same index under another name is some other, newer device. */
static int find_link_once(struct kern *nl, int ifindex, const char *name, bool *ret_exists)
{
        _cleanup_(nl_cache_freep) struct nl_cache *cache = NULL;
        struct rtnl_link *l;
        const char *have;
        int r;

        r = rtnl_link_alloc_cache(nl->sk, AF_UNSPEC, &cache);
        if (r < 0)
                return nlerr_to_errno(r);
        l = rtnl_link_get(cache, ifindex);
        have = l ? rtnl_link_get_name(l) : NULL;
        *ret_exists = have && (!name || !name[0] || streq(have, name));
        if (l)
                rtnl_link_put(l);
        return 0;
}

static int tun_find_link(void *ctx, int ifindex, const char *name, bool *ret_exists)
{
        int r = NL_DUMP_INTERRUPTED;

        for (int try = 0; try < NL_OBSERVE_TRIES && r == NL_DUMP_INTERRUPTED; try++)
                r = find_link_once(ctx, ifindex, name, ret_exists);
        return r == NL_DUMP_INTERRUPTED ? -EAGAIN : r;
}

static int tun_del_addr(void *ctx, int ifindex, const struct cfg_prefix *addr)
{
        char buf[NL_REQ_BUF];
        struct ifaddrmsg *ifa;
        struct nlmsghdr *nlh = put_request(buf, sizeof(buf), RTM_DELADDR, 0, sizeof(*ifa), (void **)&ifa);
        size_t n = kern_addr_size(addr->family);

        if (n == 0 || ifindex <= 0)
                return -EINVAL;
        ifa->ifa_family = addr->family;
        ifa->ifa_prefixlen = addr->len;
        ifa->ifa_index = (uint32_t)ifindex;
        /* IPv4 matches IFA_LOCAL (any prefix length); IPv6 matches IFA_ADDRESS and
         * the prefix length. */
        mnl_attr_put(nlh, addr->family == AF_INET ? IFA_LOCAL : IFA_ADDRESS, n, addr->addr);
        return transact(ctx, nlh, NULL, NULL, NULL, 0);
}

static int tun_set_down(void *ctx, int ifindex)
{
        char buf[NL_REQ_BUF];
        struct ifinfomsg *ifi;
        struct nlmsghdr *nlh = put_request(buf, sizeof(buf), RTM_SETLINK, 0, sizeof(*ifi), (void **)&ifi);

        if (ifindex <= 0)
                return -ENODEV;
        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = ifindex;
        ifi->ifi_change = IFF_UP;
        ifi->ifi_flags = 0;
        return transact(ctx, nlh, NULL, NULL, NULL, 0);
}

static const struct tunnel_ops kern_tunnel_ops = {
        .del_link = tun_del_link,
        .find_link = tun_find_link,
        .del_addr = tun_del_addr,
        .set_down = tun_set_down,
};

/* ---------------------------------------------------------------- apply: rules */

/* RTM_NEWRULE/RTM_DELRULE for `to DST lookup TABLE [suppress_prefixlength N] pref P
 * proto PROTO`. The protocol is always set: the kernel accepts a rule identical to
 * another but for its protocol (NLM_F_EXCL compares it), and on delete it matches
 * the protocol (rule_find()), so a rule someone else made is never removed. A few
 * rules per pool: one request each, with its ack. */
static int rule_change(struct kern *nl, const struct host_change *a, char *err, size_t err_size)
{
        const struct host_rule *rule = a->rule;
        char buf[NL_REQ_BUF];
        struct fib_rule_hdr *frh;
        bool add = a->kind == CHANGE_ADD_RULE;
        struct nlmsghdr *nlh = put_request(buf, sizeof(buf), add ? RTM_NEWRULE : RTM_DELRULE,
                                           add ? NLM_F_CREATE | NLM_F_EXCL : 0, sizeof(*frh), (void **)&frh);
        int r;

        if (!rule || kern_addr_size(rule->dst.family) == 0 || rule->dst.len > cfg_prefix_maxlen(&rule->dst) ||
            !rule->protocol || !rule->table)
                return -EINVAL;
        frh->family = rule->dst.family;
        frh->dst_len = rule->dst.len;
        frh->action = FR_ACT_TO_TBL;
        frh->table = rule->table < 256 ? (uint8_t)rule->table : RT_TABLE_UNSPEC;
        if (rule->dst.len)
                mnl_attr_put(nlh, FRA_DST, kern_addr_size(rule->dst.family), rule->dst.addr);
        mnl_attr_put_u32(nlh, FRA_TABLE, rule->table);
        mnl_attr_put_u32(nlh, FRA_PRIORITY, rule->priority);
        if (rule->suppress_prefixlen >= 0)
                mnl_attr_put_u32(nlh, FRA_SUPPRESS_PREFIXLEN, (uint32_t)rule->suppress_prefixlen);
        mnl_attr_put_u8(nlh, FRA_PROTOCOL, rule->protocol);
        r = transact(nl, nlh, NULL, NULL, err, err_size);
        /* EEXIST on add (NLM_F_EXCL, the same rule of ours) and ENOENT on delete
         * (none such) mean the host already is as wanted. */
        if ((add && r == -EEXIST) || (!add && r == -ENOENT)) {
                snprintf(err, err_size, "%s", add ? "already present" : "already absent");
                return 0;
        }
        return r;
}

/* ---------------------------------------------------------------- apply: routes */

static bool is_route_action(const struct host_change *a)
{
        return a->kind == CHANGE_ADD_ROUTE || a->kind == CHANGE_DEL_ROUTE;
}

static int route_validate(const struct host_route *rt, uint8_t type)
{
        if (kern_addr_size(rt->dst.family) == 0 || rt->dst.len > cfg_prefix_maxlen(&rt->dst))
                return -EINVAL;
        if (rt->gateway.family && kern_addr_size(rt->gateway.family) == 0)
                return -EINVAL;
        if (type != RTN_UNICAST && type != RTN_BLACKHOLE && type != RTN_UNREACHABLE && type != RTN_PROHIBIT)
                return -EINVAL;
        return 0;
}

static void put_gateway(struct nlmsghdr *nlh, const struct host_route *rt)
{
        size_t n = kern_addr_size(rt->gateway.family);
        char via[sizeof(struct rtvia) + 16];
        struct rtvia *v = (struct rtvia *)via;

        if (n == 0)
                return;
        if (rt->gateway.family == rt->dst.family) {
                mnl_attr_put(nlh, RTA_GATEWAY, n, rt->gateway.addr);
                return;
        }
        v->rtvia_family = rt->gateway.family;
        memcpy(v->rtvia_addr, rt->gateway.addr, n);
        mnl_attr_put(nlh, RTA_VIA, sizeof(*v) + n, via);
}

/* One RTM_NEWROUTE/RTM_DELROUTE at buf (room for NL_ROUTE_MSG_MAX bytes), without
 * NLM_F_ACK: the caller asks for one on the last message of a datagram. libmnl zeroes
 * the headers and attribute padding it writes, so the buffer needs no clearing.
 * rtm_protocol is always ours (or, on delete, the planner's route's own: the old
 * protocol a change of routeProtocol left behind): on delete the kernel then matches
 * it (IPv4 fib_table_delete, IPv6 ip6_route_del), so we can never remove a foreign
 * route with the same key.
 * NLM_F_REPLACE is not protocol-aware: IPv4 replaces the route with the same prefix,
 * table, TOS and metric whoever owns it, so the planner only asks for it when that
 * route is ours. */
static int route_msg(void *buf, const struct kern_apply_opts *opts, const struct host_change *a, uint32_t seq)
{
        const struct host_route *rt = &a->route;
        uint32_t table = rt->table ? rt->table : opts->table;
        uint8_t type = rt->type ? rt->type : RTN_UNICAST;
        bool add = a->kind == CHANGE_ADD_ROUTE;
        struct nlmsghdr *nlh;
        struct rtmsg *rtm;

        if (route_validate(rt, type) < 0)
                return -EINVAL;
        nlh = mnl_nlmsg_put_header(buf);
        nlh->nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
        nlh->nlmsg_flags = NLM_F_REQUEST;
        rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
        if (add)
                nlh->nlmsg_flags |= NLM_F_CREATE | (a->replace ? NLM_F_REPLACE : NLM_F_EXCL);
        nlh->nlmsg_seq = seq;
        rtm->rtm_family = rt->dst.family;
        rtm->rtm_dst_len = rt->dst.len;
        rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
        /* A delete names the protocol of the route the planner found: ours, or the one
         * the runtime record says was ours before routeProtocol changed. */
        rtm->rtm_protocol = !add && rt->protocol ? rt->protocol : opts->protocol;
        rtm->rtm_type = type;
        /* Delete: RT_SCOPE_NOWHERE matches any scope. Add: a direct unicast route
         * (no gateway) is link scope, everything else universe. */
        rtm->rtm_scope = !add ? RT_SCOPE_NOWHERE
                         : (type == RTN_UNICAST && !rt->gateway.family) ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
        if (rt->dst.len)
                mnl_attr_put(nlh, RTA_DST, kern_addr_size(rt->dst.family), rt->dst.addr);
        if (table >= 256)
                mnl_attr_put_u32(nlh, RTA_TABLE, table);
        mnl_attr_put_u32(nlh, RTA_PRIORITY, rt->priority);
        /* A multipath route (observed, never made by us) is deleted by its key:
         * its first hop alone would not match it. */
        if (type == RTN_UNICAST && (add || !rt->multipath)) {
                put_gateway(nlh, rt);
                if (rt->oif > 0)
                        mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)rt->oif);
        }
        return (int)nlh->nlmsg_len;
}

/* EEXIST on add (NLM_F_EXCL: a route with this prefix, table and metric exists) and
 * ESRCH on delete (no such route) mean the host already is as wanted. */
static void route_result(const struct host_change *a, int error, const char *extack, struct host_result *res)
{
        if ((a->kind == CHANGE_ADD_ROUTE && error == -EEXIST) || (a->kind == CHANGE_DEL_ROUTE && error == -ESRCH)) {
                host_result_set_message(res, "%s", a->kind == CHANGE_ADD_ROUTE ? "already present" : "already absent");
                error = 0;
        } else if (extack[0])
                host_result_set_message(res, "%s", extack);
        if (res->error != error) /* a success in a zeroed result stays unwritten (host.h) */
                res->error = error;
}

/* One datagram of route messages: slot j went out with sequence number base + j and
 * stands for action slot[j] of the run being applied. */
struct batch {
        uint32_t base;
        size_t n;
        uint32_t *slot;   /* nl->batch_max entries */
        bool *replied;    /* nl->batch_max entries: an error (or the tail's ack) arrived */
};

/* Match one reply back to its action through its sequence number. Returns true for
 * the reply to the last message, which ends the datagram. */
static bool batch_reply(const struct batch *b, const struct nlmsghdr *nlh, const struct host_change *acts,
                        struct host_result *res)
{
        uint32_t j = nlh->nlmsg_seq - b->base;
        char extack[256] = "";
        int error;

        if (nlh->nlmsg_type != NLMSG_ERROR || j >= b->n || b->replied[j])
                return false;
        b->replied[j] = true;
        error = kern_parse_ack(nlh, extack, sizeof(extack));
        route_result(&acts[b->slot[j]], error, extack, &res[b->slot[j]]);
        return j + 1 == b->n;
}

/* Only the last message of a datagram asks for an ack; the kernel answers every
 * failed message with an error all the same (netlink_rcv_skb), in order, and it
 * handles the whole datagram inside send(). So once the last message's reply is
 * read, every message without an error has succeeded: one reply to read per
 * datagram instead of one per route. A receive queue that overflowed (ENOBUFS,
 * reported once, on the next read) may have dropped errors: then what is still
 * queued is read without blocking, and every message without a reply is reported
 * as failed, since we cannot know whether it was applied. */
static void batch_collect(struct kern *nl, const struct batch *b, const struct host_change *acts,
                          struct host_result *res)
{
        bool lost = false, done = false;
        int err = -EIO;

        while (!done) {
                ssize_t n = sock_recv(nl, lost ? MSG_DONTWAIT : 0);
                const struct nlmsghdr *nlh = (const struct nlmsghdr *)nl->buf;

                if (n == -ENOBUFS) {
                        lost = true;
                        continue;
                }
                if (n < 0) {
                        err = (int)n;
                        break;
                }
                for (int len = (int)n; kern_msg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
                        if (nlh->nlmsg_pid == nl->portid && batch_reply(b, nlh, acts, res))
                                done = true;
        }
        if (done && !lost)
                return;
        for (size_t j = 0; j < b->n; j++)
                if (!b->replied[j]) {
                        res[b->slot[j]].error = lost ? -ENOBUFS : err;
                        host_result_set_message(&res[b->slot[j]], "no acknowledgement");
                }
}

static int batch_buffers(struct kern *nl)
{
        if (nl->out)
                return 0;
        nl->out = malloc(nl->batch_bytes);
        nl->slot = malloc(nl->batch_max * sizeof(*nl->slot));
        nl->replied = malloc(nl->batch_max * sizeof(*nl->replied));
        return nl->out && nl->slot && nl->replied ? 0 : -ENOMEM;
}

/* Fill one datagram from acts (at most nl->batch_bytes and nl->batch_max messages),
 * send it and read its replies. Returns how many actions it took (invalid ones are
 * reported at once and take no slot). */
static size_t route_datagram(struct kern *nl, const struct kern_apply_opts *opts, const struct host_change *acts, size_t n,
                             struct host_result *res)
{
        struct batch b = { .base = nl->seq + 1, .slot = nl->slot, .replied = nl->replied };
        struct nlmsghdr *last = NULL;
        uint8_t *out = nl->out;
        size_t len = 0, i = 0;
        int r;

        for (; i < n && b.n < nl->batch_max && len + NL_ROUTE_MSG_MAX <= nl->batch_bytes; i++) {
                r = route_msg(out + len, opts, &acts[i], b.base + (uint32_t)b.n);
                if (r < 0) {
                        res[i].error = r;
                        continue;
                }
                last = (struct nlmsghdr *)(out + len);
                len += MNL_ALIGN((size_t)r);
                b.slot[b.n] = (uint32_t)i;
                b.replied[b.n++] = false;
        }
        nl->seq += (uint32_t)b.n;
        if (b.n == 0)
                return i;
        last->nlmsg_flags |= NLM_F_ACK;
        r = sock_send(nl, out, len);
        if (r < 0) {
                for (size_t j = 0; j < b.n; j++)
                        res[b.slot[j]].error = r;
                return i;
        }
        batch_collect(nl, &b, acts, res);
        return i;
}

static void route_batch(struct kern *nl, const struct kern_apply_opts *opts, const struct host_change *acts, size_t n,
                        struct host_result *res)
{
        if (batch_buffers(nl) < 0) {
                for (size_t i = 0; i < n; i++)
                        res[i].error = -ENOMEM;
                return;
        }
        for (size_t off = 0; off < n;)
                off += route_datagram(nl, opts, acts + off, n - off, res + off);
}

/* ---------------------------------------------------------------- apply */

static void apply_one(struct kern *nl, const struct host_change *a, struct host_result *res)
{
        char err[256] = "";

        switch (a->kind) {
        case CHANGE_SET_PROXY_DELAY:
                res->error = set_proxy_delay(nl, a->ifindex, a->value, err, sizeof(err));
                break;
        case CHANGE_SET_PROXY_ARP:
                res->error = set_proxy_arp(nl, a->ifindex, a->value, err, sizeof(err));
                break;
        case CHANGE_REMOVE_TUNNEL:
                (void)tunnel_remove(&kern_tunnel_ops, nl, a, res);
                break;
        case CHANGE_SET_PROXY_NDP:
                res->error = set_proxy_ndp(a->dev, a->value, err, sizeof(err));
                break;
        case CHANGE_SET_PROXY_DELAY6:
                res->error = set_proxy_delay_of(nl, AF_INET6, "ndisc_cache", a->ifindex, a->value, err, sizeof(err));
                break;
        case CHANGE_ADD_PROXY:
        case CHANGE_DEL_PROXY:
                res->error = proxy_change(nl, a, err, sizeof(err));
                if (res->error == -ENOENT && a->kind == CHANGE_DEL_PROXY)
                        res->error = 0; /* gone already: converged */
                break;
        case CHANGE_ADD_RULE:
        case CHANGE_DEL_RULE:
                res->error = rule_change(nl, a, err, sizeof(err));
                break;
        default:
                res->error = -EOPNOTSUPP;
                break;
        }
        if (err[0])
                host_result_set_message(res, "%s", err);
}

int kern_apply(struct kern *nl, const struct kern_apply_opts *opts, const struct host_change *actions, size_t n,
               struct host_result *results)
{
        size_t i = 0;
        int failed = 0;

        /* Every result zeroed, writing only those that are not (host.h). */
        for (size_t k = 0; k < n; k++)
                if (results[k].error || results[k].message)
                        results[k] = (struct host_result){};
        while (i < n) {
                size_t j = i;

                if (!is_route_action(&actions[i])) {
                        apply_one(nl, &actions[i], &results[i]);
                        i++;
                        continue;
                }
                while (j < n && is_route_action(&actions[j]))
                        j++;
                route_batch(nl, opts, actions + i, j - i, results + i);
                i = j;
        }
        for (size_t k = 0; k < n; k++)
                failed += results[k].error != 0;
        return failed;
}
