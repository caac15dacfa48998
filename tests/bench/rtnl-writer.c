/* rtnl-writer: the kernel floor and the probes for tests/bench/bench_scale.py.
 *
 * A minimal batched rtnetlink route writer (libmnl, 256 KiB datagrams, NLM_F_ACK only
 * on the last message of each datagram: the kernel still answers every failed message
 * with an error, so nothing goes unreported), a bare route dump, a route waiter and a
 * process runner that reports wall time, peak RSS and CPU time of one command.
 *
 *   rtnl-writer [-n NETNS] add FILE        install the `route add` lines of an `ip -batch` file
 *                                          (IPv4 or IPv6 prefixes and gateways)
 *   rtnl-writer [-n NETNS] dump6           dump the IPv6 routes of every table, count them
 *   rtnl-writer [-n NETNS] dump [FILE]     dump the IPv4 routes of every table, count them;
 *                                          with FILE (an `ip -batch` file of route adds),
 *                                          also compare: the file's routes go into a hash
 *                                          set and every dumped route is looked up in it
 *                                          (a no-op reconcile, minus everything else)
 *   rtnl-writer [-n NETNS] wait PREFIX MS  print "ready", then wait until a route to PREFIX is added
 *   rtnl-writer [-n NETNS] run CMD [ARG]   run CMD; then print its wall time, peak RSS and CPU time
 *   rtnl-writer [-n NETNS] exec CMD [ARG]  exec CMD (the namespace entered, nothing else)
 *
 * NETNS is a name under /run/netns or a path. Results go to stdout (run: stderr) as
 * one line of key=value pairs. `run` forks from this small process, so the child's
 * ru_maxrss is its own: a child forked from a large process (Python) would report the
 * parent's resident set, which the kernel carries across exec as the peak.
 *
 * Benchmark support only: never installed, never linked into the daemon. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#define BATCH_BYTES (256u * 1024)
#define MSG_MAX 128u             /* one route message is at most ~80 B */
#define RECV_BUF (64u * 1024)    /* kernel dump skbs are at most 32 KiB */
#define SNDBUF_WANT (1 << 20)    /* doubled by the kernel: room for a 256 KiB datagram */
#define RCVBUF_WANT (16 << 20)   /* errors for a whole failing datagram fit */
#define MAX_ROUTES (16u << 20)

struct route {
        uint32_t dst;  /* network order */
        uint32_t gw;   /* network order, 0 = none */
        uint32_t metric;
        uint32_t table; /* 0 = main */
        int oif;
        uint8_t len, type, protocol;
        uint8_t family;     /* AF_INET6: dst6 and gw6 below, not dst and gw */
        bool has_gw6;
        struct in6_addr dst6, gw6;
};

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int enter_netns(const char *name)
{
        char path[4096];
        int fd, r;

        snprintf(path, sizeof(path), "%s%s", strchr(name, '/') ? "" : "/run/netns/", name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = setns(fd, CLONE_NEWNET) < 0 ? -errno : 0;
        close(fd);
        return r;
}

static void set_buf(int fd, int force_opt, int opt, int want)
{
        if (setsockopt(fd, SOL_SOCKET, force_opt, &want, sizeof(want)) < 0)
                (void)setsockopt(fd, SOL_SOCKET, opt, &want, sizeof(want));
}

static struct mnl_socket *open_rtnl(unsigned groups)
{
        struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
        int one = 1;

        if (!nl)
                return NULL;
        (void)setsockopt(mnl_socket_get_fd(nl), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
        (void)setsockopt(mnl_socket_get_fd(nl), SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
        set_buf(mnl_socket_get_fd(nl), SO_SNDBUFFORCE, SO_SNDBUF, SNDBUF_WANT);
        set_buf(mnl_socket_get_fd(nl), SO_RCVBUFFORCE, SO_RCVBUF, RCVBUF_WANT);
        if (mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0) {
                mnl_socket_close(nl);
                return NULL;
        }
        return nl;
}

/* ---------------------------------------------------------------- add */

static int parse_prefix(const char *s, uint32_t *ret_addr, uint8_t *ret_len)
{
        char buf[64];
        char *slash;
        unsigned long len = 32;
        struct in_addr a;

        snprintf(buf, sizeof(buf), "%s", s);
        slash = strchr(buf, '/');
        if (slash) {
                *slash = '\0';
                len = strtoul(slash + 1, NULL, 10);
        }
        if (len > 32 || inet_pton(AF_INET, buf, &a) != 1)
                return -EINVAL;
        *ret_addr = a.s_addr;
        *ret_len = (uint8_t)len;
        return 0;
}

static int parse_prefix6(const char *s, struct in6_addr *ret_addr, uint8_t *ret_len)
{
        char buf[64];
        char *slash;
        unsigned long len = 128;

        snprintf(buf, sizeof(buf), "%s", s);
        slash = strchr(buf, '/');
        if (slash) {
                *slash = '\0';
                len = strtoul(slash + 1, NULL, 10);
        }
        if (len > 128 || inet_pton(AF_INET6, buf, ret_addr) != 1)
                return -EINVAL;
        *ret_len = (uint8_t)len;
        return 0;
}

/* "route add [blackhole|unreachable] PREFIX [via GW] [dev IF] [proto N] [metric N]" */
static int parse_line(char *line, struct route *rt)
{
        char *tok[16];
        int n = 0;

        for (char *t = strtok(line, " \t\n"); t && n < 16; t = strtok(NULL, " \t\n"))
                tok[n++] = t;
        if (n < 3 || strcmp(tok[0], "route") != 0 || strcmp(tok[1], "add") != 0)
                return 0;
        *rt = (struct route){ .type = RTN_UNICAST, .protocol = RTPROT_BOOT, .family = AF_INET };
        for (int i = 2; i < n; i++) {
                const char *next = i + 1 < n ? tok[i + 1] : NULL;

                if (strcmp(tok[i], "blackhole") == 0)
                        rt->type = RTN_BLACKHOLE;
                else if (strcmp(tok[i], "unreachable") == 0)
                        rt->type = RTN_UNREACHABLE;
                else if (strcmp(tok[i], "via") == 0 && next) {
                        uint8_t l;

                        if (strchr(next, ':') ? parse_prefix6(next, &rt->gw6, &l) < 0 :
                                                parse_prefix(next, &rt->gw, &l) < 0)
                                return -EINVAL;
                        rt->has_gw6 = strchr(next, ':') != NULL;
                        i++;
                } else if (strcmp(tok[i], "dev") == 0 && next) {
                        static char last[IF_NAMESIZE];
                        static int last_index;

                        if (strcmp(next, last) != 0) { /* one lookup per device, not per line */
                                last_index = (int)if_nametoindex(next);
                                snprintf(last, sizeof(last), "%s", next);
                        }
                        rt->oif = last_index;
                        if (rt->oif <= 0)
                                return -ENODEV;
                        i++;
                } else if (strcmp(tok[i], "proto") == 0 && next) {
                        rt->protocol = (uint8_t)strtoul(next, NULL, 10);
                        i++;
                } else if (strcmp(tok[i], "metric") == 0 && next) {
                        rt->metric = (uint32_t)strtoul(next, NULL, 10);
                        i++;
                } else if (strcmp(tok[i], "table") == 0 && next) {
                        rt->table = (uint32_t)strtoul(next, NULL, 10);
                        i++;
                } else if (strchr(tok[i], ':')) {
                        if (parse_prefix6(tok[i], &rt->dst6, &rt->len) < 0)
                                return -EINVAL;
                        rt->family = AF_INET6;
                } else if (parse_prefix(tok[i], &rt->dst, &rt->len) < 0)
                        return -EINVAL;
        }
        return 1;
}

static int read_routes(const char *path, struct route **ret, size_t *ret_n)
{
        FILE *f = fopen(path, "re");
        struct route *v = NULL;
        size_t n = 0, cap = 0;
        char line[512];
        int r = 0;

        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                if (n == cap) {
                        struct route *nv;

                        cap = cap ? cap * 2 : 1024;
                        nv = cap <= MAX_ROUTES ? realloc(v, cap * sizeof(*v)) : NULL;
                        if (!nv) {
                                r = -ENOMEM;
                                break;
                        }
                        v = nv;
                }
                r = parse_line(line, &v[n]);
                if (r < 0)
                        break;
                n += (size_t)r;
                r = 0;
        }
        fclose(f);
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

static void put_route(char *buf, const struct route *rt, uint32_t seq, bool ack)
{
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        struct rtmsg *rtm;

        nlh->nlmsg_type = RTM_NEWROUTE;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | (ack ? NLM_F_ACK : 0);
        nlh->nlmsg_seq = seq;
        rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
        rtm->rtm_family = rt->family;
        rtm->rtm_dst_len = rt->len;
        rtm->rtm_table = rt->table ? RT_TABLE_UNSPEC : RT_TABLE_MAIN;
        rtm->rtm_protocol = rt->protocol;
        rtm->rtm_type = rt->type;
        rtm->rtm_scope = rt->type == RTN_UNICAST && !rt->gw && rt->family == AF_INET ? RT_SCOPE_LINK :
                                                                                        RT_SCOPE_UNIVERSE;
        if (rt->family == AF_INET6)
                mnl_attr_put(nlh, RTA_DST, sizeof(rt->dst6), &rt->dst6);
        else
                mnl_attr_put_u32(nlh, RTA_DST, rt->dst);
        if (rt->table)
                mnl_attr_put_u32(nlh, RTA_TABLE, rt->table);
        mnl_attr_put_u32(nlh, RTA_PRIORITY, rt->metric);
        if (rt->type == RTN_UNICAST) {
                if (rt->has_gw6)
                        mnl_attr_put(nlh, RTA_GATEWAY, sizeof(rt->gw6), &rt->gw6);
                else if (rt->gw)
                        mnl_attr_put_u32(nlh, RTA_GATEWAY, rt->gw);
                if (rt->oif > 0)
                        mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)rt->oif);
        }
}

/* Read the replies of one datagram: an error for each failed message, then the ack
 * of the last one (seq tail). Returns the number of failed messages, or -errno when
 * the replies could not be read (ENOBUFS: some were lost). */
static long collect(struct mnl_socket *nl, char *buf, uint32_t portid, uint32_t tail)
{
        long failed = 0;

        for (;;) {
                ssize_t n = mnl_socket_recvfrom(nl, buf, RECV_BUF);
                const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
                int len = (int)n;

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
                        const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

                        if (nlh->nlmsg_pid != portid || nlh->nlmsg_type != NLMSG_ERROR)
                                continue;
                        if (e->error)
                                failed++;
                        if (nlh->nlmsg_seq == tail)
                                return failed;
                }
        }
}

static int cmd_add(const char *path)
{
        struct route *rts = NULL;
        size_t n = 0, datagrams = 0;
        long failed = 0;
        uint64_t t0 = now_ns(), t1, t2;
        struct mnl_socket *nl;
        char *out, *in;
        uint32_t seq = (uint32_t)time(NULL), portid;
        int r;

        r = read_routes(path, &rts, &n);
        if (r < 0) {
                fprintf(stderr, "rtnl-writer: %s: %s\n", path, strerror(-r));
                return 1;
        }
        nl = open_rtnl(0);
        out = malloc(BATCH_BYTES);
        in = malloc(RECV_BUF);
        if (!nl || !out || !in) {
                fprintf(stderr, "rtnl-writer: %s\n", strerror(errno ? errno : ENOMEM));
                return 1;
        }
        portid = mnl_socket_get_portid(nl);
        t1 = now_ns();
        for (size_t i = 0; i < n;) {
                size_t len = 0;

                while (i < n && len + MSG_MAX <= BATCH_BYTES) {
                        bool last = i + 1 == n || len + 2 * MSG_MAX > BATCH_BYTES;

                        put_route(out + len, &rts[i], ++seq, last);
                        len += MNL_ALIGN(((struct nlmsghdr *)(out + len))->nlmsg_len);
                        i++;
                }
                if (mnl_socket_sendto(nl, out, len) < 0) {
                        fprintf(stderr, "rtnl-writer: send: %s\n", strerror(errno));
                        return 1;
                }
                datagrams++;
                r = (int)collect(nl, in, portid, seq);
                if (r < 0) {
                        fprintf(stderr, "rtnl-writer: replies: %s\n", strerror(-r));
                        return 1;
                }
                failed += r;
        }
        t2 = now_ns();
        printf("routes=%zu failed=%ld datagrams=%zu parse_ms=%.1f apply_ms=%.1f\n", n, failed, datagrams,
               (double)(t1 - t0) / 1e6, (double)(t2 - t1) / 1e6);
        mnl_socket_close(nl);
        free(rts);
        free(out);
        free(in);
        return failed ? 1 : 0;
}

/* ---------------------------------------------------------------- dump */

/* Open addressing over (dst, len, gateway, metric, protocol): what a reconcile
 * compares. */
struct route_set {
        struct route *slot; /* len 0 and dst 0 and gw 0: empty (no default route here) */
        bool *used;
        size_t mask;
};

static uint64_t route_hash(const struct route *r)
{
        uint64_t h = ((uint64_t)r->dst << 32 | r->gw) * 0x9e3779b97f4a7c15ull;

        h ^= ((uint64_t)r->len << 40 | (uint64_t)r->protocol << 32 | r->metric) * 0xc2b2ae3d27d4eb4full;
        return h ^ (h >> 29);
}

static bool route_same(const struct route *a, const struct route *b)
{
        return a->dst == b->dst && a->len == b->len && a->gw == b->gw && a->metric == b->metric &&
               a->protocol == b->protocol;
}

static int set_init(struct route_set *set, const struct route *v, size_t n)
{
        size_t cap = 16;

        while (cap < 2 * n)
                cap *= 2;
        set->slot = calloc(cap, sizeof(*set->slot));
        set->used = calloc(cap, sizeof(*set->used));
        set->mask = cap - 1;
        if (!set->slot || !set->used)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                size_t k = route_hash(&v[i]) & set->mask;

                while (set->used[k] && !route_same(&set->slot[k], &v[i]))
                        k = (k + 1) & set->mask;
                set->slot[k] = v[i];
                set->used[k] = true;
        }
        return 0;
}

static bool set_has(const struct route_set *set, const struct route *r)
{
        for (size_t k = route_hash(r) & set->mask; set->used[k]; k = (k + 1) & set->mask)
                if (route_same(&set->slot[k], r))
                        return true;
        return false;
}

struct dump_ctx {
        size_t routes;
        uint64_t sum;                 /* touch every destination, as a hash set would */
        const struct route_set *set;  /* compare against it when set */
        size_t matched;
};

static int dump_cb(const struct nlmsghdr *nlh, void *data)
{
        struct dump_ctx *d = data;
        const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
        struct route r = { .len = rtm->rtm_dst_len, .protocol = rtm->rtm_protocol };
        const struct nlattr *a;

        if (nlh->nlmsg_type != RTM_NEWROUTE || rtm->rtm_table == RT_TABLE_LOCAL)
                return MNL_CB_OK;
        d->routes++;
        mnl_attr_for_each(a, nlh, sizeof(*rtm))
                switch (mnl_attr_get_type(a)) {
                case RTA_DST:
                        r.dst = mnl_attr_get_u32(a);
                        d->sum += r.dst;
                        break;
                case RTA_GATEWAY:
                        r.gw = mnl_attr_get_u32(a);
                        break;
                case RTA_PRIORITY:
                        r.metric = mnl_attr_get_u32(a);
                        break;
                }
        if (d->set && set_has(d->set, &r))
                d->matched++;
        return MNL_CB_OK;
}

static int dump_routes_family(struct mnl_socket *nl, char *buf, mnl_cb_t cb, void *data, uint8_t family)
{
        struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
        struct rtmsg *rtm;
        uint32_t seq = (uint32_t)time(NULL), portid = mnl_socket_get_portid(nl);
        ssize_t n;
        int r;

        nlh->nlmsg_type = RTM_GETROUTE;
        nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        nlh->nlmsg_seq = seq;
        rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
        rtm->rtm_family = family;
        if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
                return -errno;
        do {
                n = mnl_socket_recvfrom(nl, buf, RECV_BUF);
                if (n < 0)
                        return -errno;
                r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
        } while (r > MNL_CB_STOP);
        return r < 0 ? -errno : 0;
}

static int dump_routes(struct mnl_socket *nl, char *buf, mnl_cb_t cb, void *data)
{
        return dump_routes_family(nl, buf, cb, data, AF_INET);
}

/* IPv6: count and time only (RTA_DST's first word goes into the sum, as for IPv4). */
static int cmd_dump6(void)
{
        struct dump_ctx d = {};
        struct mnl_socket *nl = open_rtnl(0);
        char *buf = malloc(RECV_BUF);
        uint64_t t0;
        int r;

        if (!nl || !buf)
                return 1;
        t0 = now_ns();
        r = dump_routes_family(nl, buf, dump_cb, &d, AF_INET6);
        if (r < 0) {
                fprintf(stderr, "rtnl-writer: dump6: %s\n", strerror(-r));
                return 1;
        }
        printf("routes=%zu dump_ms=%.1f\n", d.routes, (double)(now_ns() - t0) / 1e6);
        mnl_socket_close(nl);
        free(buf);
        return 0;
}

/* With path: the file is read first (untimed, as the daemon's load is timed apart);
 * the timed part builds the set, dumps and looks every route up. */
static int cmd_dump(const char *path)
{
        struct dump_ctx d = {};
        struct route_set set = {};
        struct route *rts = NULL;
        size_t n = 0;
        struct mnl_socket *nl = open_rtnl(0);
        char *buf = malloc(RECV_BUF);
        uint64_t t0;
        int r;

        if (!nl || !buf)
                return 1;
        if (path && (r = read_routes(path, &rts, &n)) < 0) {
                fprintf(stderr, "rtnl-writer: %s: %s\n", path, strerror(-r));
                return 1;
        }
        t0 = now_ns();
        if (path) {
                if (set_init(&set, rts, n) < 0)
                        return 1;
                d.set = &set;
        }
        r = dump_routes(nl, buf, dump_cb, &d);
        if (r < 0) {
                fprintf(stderr, "rtnl-writer: dump: %s\n", strerror(-r));
                return 1;
        }
        if (path)
                printf("routes=%zu matched=%zu wanted=%zu dump_ms=%.1f\n", d.routes, d.matched, n,
                       (double)(now_ns() - t0) / 1e6);
        else
                printf("routes=%zu dump_ms=%.1f\n", d.routes, (double)(now_ns() - t0) / 1e6);
        mnl_socket_close(nl);
        free(set.slot);
        free(set.used);
        free(rts);
        free(buf);
        return 0;
}

/* ---------------------------------------------------------------- wait */

struct wait_ctx {
        uint32_t dst;
        uint8_t len;
        bool seen;
};

static int wait_cb(const struct nlmsghdr *nlh, void *data)
{
        struct wait_ctx *w = data;
        const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
        const struct nlattr *a;

        if (nlh->nlmsg_type != RTM_NEWROUTE || rtm->rtm_family != AF_INET || rtm->rtm_dst_len != w->len)
                return MNL_CB_OK;
        mnl_attr_for_each(a, nlh, sizeof(*rtm))
                if (mnl_attr_get_type(a) == RTA_DST && mnl_attr_get_u32(a) == w->dst)
                        w->seen = true;
        return MNL_CB_OK;
}

/* Subscribe first, then say "ready": the caller changes the host only after that,
 * so the notification cannot be missed. An overrun falls back to a dump. */
static int cmd_wait(const char *prefix, const char *ms)
{
        struct wait_ctx w = {};
        struct mnl_socket *ev = open_rtnl(RTMGRP_IPV4_ROUTE);
        char *buf = malloc(RECV_BUF);
        uint64_t deadline;

        if (!ev || !buf || parse_prefix(prefix, &w.dst, &w.len) < 0)
                return 2;
        deadline = now_ns() + strtoull(ms, NULL, 10) * 1000000u;
        printf("ready\n");
        fflush(stdout);
        while (!w.seen) {
                struct pollfd p = { .fd = mnl_socket_get_fd(ev), .events = POLLIN };
                uint64_t t = now_ns();
                ssize_t n;

                if (t >= deadline) {
                        printf("timeout\n");
                        return 1;
                }
                if (poll(&p, 1, (int)((deadline - t) / 1000000u) + 1) <= 0)
                        continue;
                n = mnl_socket_recvfrom(ev, buf, RECV_BUF);
                if (n < 0 && errno == ENOBUFS) {
                        struct mnl_socket *nl = open_rtnl(0);

                        /* Lost notifications: look at the table itself. */
                        if (nl) {
                                (void)dump_routes(nl, buf, wait_cb, &w);
                                mnl_socket_close(nl);
                        }
                        continue;
                }
                if (n > 0)
                        (void)mnl_cb_run(buf, (size_t)n, 0, 0, wait_cb, &w);
        }
        printf("seen_ns=%" PRIu64 "\n", now_ns());
        mnl_socket_close(ev);
        free(buf);
        return 0;
}

/* ---------------------------------------------------------------- run */

static int cmd_run(char **argv)
{
        uint64_t t0 = now_ns(), t1;
        struct rusage ru;
        int status;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        if (pid < 0)
                return 1;
        if (pid == 0) {
                execvp(argv[0], argv);
                fprintf(stderr, "rtnl-writer: %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        while (wait4(pid, &status, 0, &ru) < 0)
                if (errno != EINTR)
                        return 1;
        t1 = now_ns();
        fprintf(stderr, "run: wall_ms=%.2f maxrss_kb=%ld user_ms=%.1f sys_ms=%.1f exit=%d\n", (double)(t1 - t0) / 1e6,
                ru.ru_maxrss, (double)ru.ru_utime.tv_sec * 1e3 + (double)ru.ru_utime.tv_usec / 1e3,
                (double)ru.ru_stime.tv_sec * 1e3 + (double)ru.ru_stime.tv_usec / 1e3,
                WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int usage(void)
{
        fprintf(stderr, "usage: rtnl-writer [-n NETNS] add FILE | dump [FILE] | dump6 | wait PREFIX MS | run CMD [ARG]... | "
                        "exec CMD [ARG]...\n");
        return 2;
}

int main(int argc, char **argv)
{
        int i = 1, r;

        if (i + 1 < argc && strcmp(argv[i], "-n") == 0) {
                r = enter_netns(argv[i + 1]);
                if (r < 0) {
                        fprintf(stderr, "rtnl-writer: netns %s: %s\n", argv[i + 1], strerror(-r));
                        return 2;
                }
                i += 2;
        }
        if (i >= argc)
                return usage();
        if (strcmp(argv[i], "add") == 0 && i + 2 == argc)
                return cmd_add(argv[i + 1]);
        if (strcmp(argv[i], "dump") == 0 && i + 1 == argc)
                return cmd_dump(NULL);
        if (strcmp(argv[i], "dump6") == 0 && i + 1 == argc)
                return cmd_dump6();
        if (strcmp(argv[i], "dump") == 0 && i + 2 == argc)
                return cmd_dump(argv[i + 1]);
        if (strcmp(argv[i], "wait") == 0 && i + 3 == argc)
                return cmd_wait(argv[i + 1], argv[i + 2]);
        if (strcmp(argv[i], "run") == 0 && i + 1 < argc)
                return cmd_run(argv + i + 1);
        if (strcmp(argv[i], "exec") == 0 && i + 1 < argc) {
                execvp(argv[i + 1], argv + i + 1);
                fprintf(stderr, "rtnl-writer: %s: %s\n", argv[i + 1], strerror(errno));
                return 127;
        }
        return usage();
}
