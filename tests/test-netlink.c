/* Integration tests of netlink/ on the real kernel.
 *
 * Every case forks a child that enters a fresh network namespace (unshare
 * CLONE_NEWNET, as root), builds its links and routes there with iproute2, and
 * checks kern_observe()/kern_apply() against what iproute2 and /proc/sys report inside
 * the namespace, and the planner's uplink choice (daemon/uplink.c) over the real
 * snapshots (tests/test-uplink.c has every mode over snapshots built by hand). The
 * namespace disappears with the child: nothing to clean up, and the host's network is
 * never touched. The child reports through its exit status and prints the failed
 * check to stderr.
 *
 * Notes: /sys/class/net belongs to the mount, not the namespace, so it is never
 * read here; /proc/sys/net follows the reading task's namespace. */
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "model.h"
#include "nl.h"
#include "uplink.h"
#include "util.h"

/* ---------------------------------------------------------------- child-side checks */

#define CHECK(cond)                                                                              \
        do {                                                                                     \
                if (!(cond)) {                                                                   \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
                        exit(1);                                                                 \
                }                                                                                \
        } while (0)

#define CHECK_INT(a, b)                                                                          \
        do {                                                                                     \
                long long a_ = (long long)(a), b_ = (long long)(b);                              \
                if (a_ != b_) {                                                                  \
                        fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", __FILE__, \
                                __LINE__, #a, #b, a_, b_);                                       \
                        exit(1);                                                                 \
                }                                                                                \
        } while (0)

#define CHECK_STR(a, b)                                                                          \
        do {                                                                                     \
                const char *a_ = (a), *b_ = (b);                                                 \
                if (strcmp(a_, b_) != 0) {                                                       \
                        fprintf(stderr, "%s:%d: check failed: %s == %s (\"%s\" != \"%s\")\n",    \
                                __FILE__, __LINE__, #a, #b, a_, b_);                             \
                        exit(1);                                                                 \
                }                                                                                \
        } while (0)

_printf_(1, 2) static void sh(const char *fmt, ...)
{
        char cmd[1024];
        va_list ap;
        int r;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        r = system(cmd);
        if (r != 0) {
                fprintf(stderr, "command failed (%d): %s\n", r, cmd);
                exit(1);
        }
}

/* Everything a command prints on stdout. */
_printf_(1, 2) static char *capture(const char *fmt, ...)
{
        char cmd[1024];
        va_list ap;
        FILE *f;
        char *out = NULL;
        size_t len = 0, cap = 0, n;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        f = popen(cmd, "r");
        CHECK(f);
        do {
                CHECK(GROW(out, cap, len + 4097) == 0);
                n = fread(out + len, 1, 4096, f);
                len += n;
        } while (n > 0);
        out[len] = '\0';
        CHECK(pclose(f) == 0);
        return out;
}

static long read_long(const char *path)
{
        long v;
        FILE *f = fopen(path, "re");

        CHECK(f);
        CHECK(fscanf(f, "%ld", &v) == 1);
        fclose(f);
        return v;
}

/* net.ipv4.conf.<dev>.<key> */
static long conf(const char *dev, const char *key)
{
        char path[256];

        snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/%s", dev, key);
        return read_long(path);
}

/* net.ipv4.neigh.<dev>.proxy_delay, in USER_HZ (100) units */
static long proxy_delay(const char *dev)
{
        char path[256];

        snprintf(path, sizeof(path), "/proc/sys/net/ipv4/neigh/%s/proxy_delay", dev);
        return read_long(path);
}

static int ifindex(const char *name)
{
        /* a veth or vxlan device in the test namespace: a by-name lookup is fine here */
        int i = (int)if_nametoindex(name);

        CHECK(i > 0);
        return i;
}

static struct cfg_prefix P(const char *s)
{
        struct cfg_prefix p;

        CHECK(cfg_prefix_parse(s, false, &p) >= 0);
        return p;
}

/* A gateway as observed: the full address, /32 or /128. */
static bool addr_is(const struct cfg_prefix *p, const char *addr)
{
        struct cfg_prefix a;

        CHECK(cfg_addr_parse(addr, &a) == 0);
        return cfg_prefix_eq(p, &a);
}

static struct cfg_settings settings(void)
{
        return (struct cfg_settings){
                .uplink_mode = CFG_UPLINK_AUTO,
                .route_protocol = CFG_DEFAULT_ROUTE_PROTOCOL,
                .route_metric = CFG_DEFAULT_ROUTE_METRIC,
                .route_table = CFG_DEFAULT_ROUTE_TABLE,
        };
}

/* Observe as the daemon does for these settings: the route lookup of can-reach=
 * included, the route dumps narrowed to main, our table and our protocol
 * (daemon/reconcile.c). */
static void observe(const struct cfg_settings *s, struct host_snapshot *h)
{
        struct kern_observe_opts o = { .route_table = s->route_table, .route_protocol = s->route_protocol };
        struct kern *nl = NULL;
        int r;

        if (s->uplink_mode == CFG_UPLINK_CAN_REACH)
                o.reach = s->uplink_reach;
        CHECK(kern_open(&nl) == 0);
        r = kern_observe(nl, &o, h);
        if (r < 0)
                fprintf(stderr, "kern_observe: %s\n", strerror(-r));
        CHECK(r == 0);
        kern_close(nl);
}

/* The planner's uplink choice (daemon/uplink.c) over a real snapshot; why there is
 * none in uplink_err. */
static char uplink_err[128];

static int uplink(const struct cfg_settings *s, const struct host_snapshot *h)
{
        return uplink_choose(s, h, uplink_err, sizeof(uplink_err));
}

static int apply(const struct cfg_settings *s, const struct host_change *a, size_t n, struct host_result *res)
{
        struct kern_apply_opts o = { .protocol = s->route_protocol, .table = s->route_table };
        struct kern *nl = NULL;
        int failed;

        CHECK(kern_open(&nl) == 0);
        host_results_free(res, n); /* the messages of the last apply with this array */
        failed = kern_apply(nl, &o, a, n, res);
        kern_close(nl);
        return failed;
}

static const struct host_addr *find_addr(const struct host_snapshot *h, int ifindex, const char *prefix)
{
        struct cfg_prefix p = P(prefix);

        for (size_t i = 0; i < h->n_addrs; i++)
                if (h->addrs[i].ifindex == ifindex && cfg_prefix_eq(&h->addrs[i].addr, &p))
                        return &h->addrs[i];
        return NULL;
}

static const struct host_route *find_route(const struct host_snapshot *h, const char *dst, uint32_t table)
{
        struct cfg_prefix p = P(dst);

        for (size_t i = 0; i < h->n_routes; i++)
                if (h->routes[i].table == table && cfg_prefix_eq(&h->routes[i].dst, &p))
                        return &h->routes[i];
        return NULL;
}

static size_t count_proto(const struct host_snapshot *h, uint8_t protocol)
{
        size_t n = 0;

        for (size_t i = 0; i < h->n_routes; i++)
                n += h->routes[i].protocol == protocol;
        return n;
}

static struct host_change route_action(enum host_change_kind kind, uint8_t type, const char *dst, const char *gw,
                                       const char *dev, uint32_t table, uint32_t metric)
{
        struct host_change a = { .kind = kind, .pool = UINT32_MAX };

        a.route = (struct host_route){
                .dst = P(dst),
                .table = table,
                .priority = metric,
                .type = type,
                .protocol = CFG_DEFAULT_ROUTE_PROTOCOL,
        };
        if (gw)
                a.route.gateway = P(gw);
        if (dev) {
                a.route.oif = ifindex(dev);
                snprintf(a.dev, sizeof(a.dev), "%s", dev);
        }
        return a;
}

static double now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static const char *ROUTES_CMD = "ip -4 -d route show table all; ip -6 -d route show table all";

/* Lines of b that are not in a (as a multiset), joined. */
static char *lines_added(const char *a, const char *b)
{
        char *out = calloc(1, strlen(b) + 1), *bb = strdup(b), *save = NULL;
        char *used = calloc(1, strlen(a) + 1);

        CHECK(out && bb && used);
        for (char *line = strtok_r(bb, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                bool found = false;
                size_t len = strlen(line);

                for (const char *p = a; *p && !found; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
                        size_t off = (size_t)(p - a);

                        if (!used[off] && strncmp(p, line, len) == 0 && (p[len] == '\n' || p[len] == '\0')) {
                                used[off] = 1;
                                found = true;
                        }
                }
                if (!found) {
                        strcat(out, line);
                        strcat(out, "\n");
                }
        }
        free(bb);
        free(used);
        return out;
}

static size_t count_lines(const char *s)
{
        size_t n = 0;

        for (; *s; s++)
                n += *s == '\n';
        return n;
}

/* eth0 (192.168.10.1/24, fd00::1/64) with a default route via .254, its peer up. */
static void setup_eth0(void)
{
        sh("ip link add eth0 type veth peer name peer0");
        sh("ip link set peer0 up && ip link set eth0 up");
        sh("ip addr add 192.168.10.1/24 dev eth0 && ip -6 addr add fd00::1/64 dev eth0 nodad");
        sh("ip route add default via 192.168.10.254 dev eth0");
}

/* eth1 (192.168.20.1/24) without a default route. */
static void setup_eth1(void)
{
        sh("ip link add eth1 type veth peer name peer1");
        sh("ip link set peer1 up && ip link set eth1 up");
        sh("ip addr add 192.168.20.1/24 dev eth1");
}

/* ---------------------------------------------------------------- parent side */

static void run_in_netns(void (*fn)(void))
{
        pid_t pid;
        int status = 0;

        fflush(NULL);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                if (unshare(CLONE_NEWNET) < 0) {
                        fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
                        exit(3);
                }
                /* No IPv6 duplicate address detection: link-local addresses (and
                 * their local routes) appear at once, not in the middle of a test. */
                sh("sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0");
                sh("ip link set lo up");
                fn();
                exit(0); /* exit(), not _exit(): LeakSanitizer runs in the child */
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status))
                fail_msg("child died with signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
        if (WEXITSTATUS(status) != 0)
                fail_msg("child failed with exit status %d (see the check printed above)", WEXITSTATUS(status));
}

#define NETNS_TEST(name)                              \
        static void name##_child(void);               \
        static void name(void **state)                \
        {                                             \
                (void)state;                          \
                run_in_netns(name##_child);           \
        }                                             \
        static void name##_child(void)

/* ---------------------------------------------------------------- observe */

NETNS_TEST(test_observe_links_addrs)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};
        const struct host_link *l;

        setup_eth0();
        sh("ip link add vxlan.calico type vxlan id 4096 dstport 4789 dev eth0");
        sh("ip link set vxlan.calico mtu 1410 && ip link set vxlan.calico up");
        sh("ip addr add 10.233.90.0/32 dev vxlan.calico");
        sh("ip link set peer0 mtu 9000");
        observe(&s, &h);

        for (size_t i = 1; i < h.n_links; i++)
                CHECK(h.links[i - 1].ifindex < h.links[i].ifindex);
        l = host_link_by_name(&h, "lo");
        CHECK(l && l->ifindex == 1 && l->up && streq(l->kind, ""));
        l = host_link_by_name(&h, "eth0");
        CHECK(l);
        CHECK_INT(l->ifindex, ifindex("eth0"));
        CHECK_STR(l->kind, "veth");
        CHECK_INT(l->mtu, 1500);
        CHECK(l->up);
        l = host_link_by_name(&h, "peer0");
        CHECK(l && l->mtu == 9000);
        l = host_link_by_name(&h, "vxlan.calico");
        CHECK(l);
        CHECK_STR(l->kind, "vxlan");
        CHECK_INT(l->mtu, 1410);
        CHECK(l->up);
        CHECK(host_link_by_index(&h, ifindex("vxlan.calico")) == l);

        CHECK(find_addr(&h, ifindex("eth0"), "192.168.10.1/24"));
        CHECK(find_addr(&h, ifindex("eth0"), "fd00::1/64"));
        CHECK(find_addr(&h, ifindex("vxlan.calico"), "10.233.90.0/32"));
        CHECK(find_addr(&h, 1, "127.0.0.1/8"));
        CHECK(find_addr(&h, 1, "::1/128"));
        CHECK(!find_addr(&h, ifindex("eth0"), "10.233.90.0/32"));
        host_snapshot_clear(&h);

        sh("ip link set vxlan.calico down");
        observe(&s, &h);
        CHECK(!host_link_by_name(&h, "vxlan.calico")->up);
        host_snapshot_clear(&h);
}

static void check_devconf(const struct host_snapshot *h, const char *dev)
{
        const struct host_link *l = host_link_by_name(h, dev);

        CHECK(l);
        CHECK_INT(l->proxy_arp, conf(dev, "proxy_arp"));
        CHECK_INT(l->forwarding, conf(dev, "forwarding"));
        CHECK_INT(l->rp_filter, conf(dev, "rp_filter"));
        CHECK_INT(h->all_forwarding, conf("all", "forwarding"));
        CHECK_INT(h->all_rp_filter, conf("all", "rp_filter"));
}

NETNS_TEST(test_observe_devconf)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};
        long jiffies;

        setup_eth0();
        observe(&s, &h);
        CHECK_INT(uplink(&s, &h), ifindex("eth0"));
        check_devconf(&h, "eth0");
        CHECK_INT(h.all_forwarding, 0);
        jiffies = proxy_delay("eth0");
        CHECK_INT(host_link_by_name(&h, "eth0")->proxy_delay_ms, jiffies * 10); /* USER_HZ = 100: the default 80 is 800 ms */
        host_snapshot_clear(&h);

        sh("sysctl -qw net.ipv4.conf.eth0.proxy_arp=1 net.ipv4.conf.eth0.rp_filter=2");
        sh("sysctl -qw net.ipv4.conf.all.forwarding=1 net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.all.proxy_arp=1");
        sh("sysctl -qw net.ipv4.neigh.eth0.proxy_delay=40");
        observe(&s, &h);
        check_devconf(&h, "eth0");
        CHECK_INT(host_link_by_name(&h, "eth0")->proxy_arp, 1);
        CHECK_INT(host_link_by_name(&h, "eth0")->rp_filter, 2);
        CHECK_INT(host_link_by_name(&h, "eth0")->forwarding, 1);
        CHECK_INT(h.all_forwarding, 1);
        CHECK_INT(h.all_rp_filter, 1);
        CHECK_INT(host_link_by_name(&h, "eth0")->proxy_delay_ms, 400);
        CHECK_INT(host_link_by_name(&h, "peer0")->proxy_delay_ms, proxy_delay("peer0") * 10);
        host_snapshot_clear(&h);

        /* IPv6 accept_ra, from IFLA_INET6_CONF: per device */
        sh("sysctl -qw net.ipv6.conf.eth0.accept_ra=2 net.ipv6.conf.peer0.accept_ra=0");
        observe(&s, &h);
        CHECK_INT(host_link_by_name(&h, "eth0")->accept_ra6, 2);
        CHECK_INT(host_link_by_name(&h, "peer0")->accept_ra6, 0);
        host_snapshot_clear(&h);
        sh("sysctl -qw net.ipv6.conf.eth0.accept_ra=1");
        observe(&s, &h);
        CHECK_INT(host_link_by_name(&h, "eth0")->accept_ra6, 1);
        host_snapshot_clear(&h);
}

NETNS_TEST(test_observe_routes)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};
        const struct host_route *r;

        setup_eth0();
        sh("ip route add 10.50.0.0/24 via 192.168.10.2 dev eth0 proto bird metric 100");
        sh("ip route add blackhole 10.60.0.0/24 proto static");
        sh("ip route add unreachable 10.61.0.0/24 table 1000 metric 5 proto 211");
        sh("ip route add 10.70.0.0/24 table 252 nexthop via 192.168.10.2 dev eth0 nexthop via 192.168.10.3 dev eth0");
        sh("ip route add 10.80.0.0/24 table 100 via 192.168.10.2 dev eth0 proto bird");
        sh("ip -6 route add fd01::/64 via fd00::2 dev eth0 proto bird metric 7");
        observe(&s, &h);

        r = find_route(&h, "0.0.0.0/0", 254);
        CHECK(r && r->type == HOST_RTN_UNICAST && r->oif == ifindex("eth0") && r->protocol == 3);
        CHECK(addr_is(&r->gateway, "192.168.10.254"));
        r = find_route(&h, "192.168.10.0/24", 254);
        CHECK(r && r->protocol == 2 && r->gateway.family == 0 && r->oif == ifindex("eth0"));
        r = find_route(&h, "10.50.0.0/24", 254);
        CHECK(r && r->protocol == 12 && r->priority == 100 && !r->multipath);
        CHECK(addr_is(&r->gateway, "192.168.10.2"));
        r = find_route(&h, "10.60.0.0/24", 254);
        CHECK(r && r->type == HOST_RTN_BLACKHOLE && r->protocol == 4 && r->oif == 0);
        /* Ours in any table; anything in our table (252); nothing else outside main. */
        r = find_route(&h, "10.61.0.0/24", 1000);
        CHECK(r && r->type == HOST_RTN_UNREACHABLE && r->priority == 5 && r->table == 1000 && r->protocol == 211);
        r = find_route(&h, "10.70.0.0/24", 252);
        CHECK(r && r->multipath && r->oif == ifindex("eth0") && r->gateway.family == 0);
        CHECK(!find_route(&h, "10.80.0.0/24", 100));
        for (size_t i = 0; i < h.n_routes; i++)
                CHECK(h.routes[i].table == 254 || h.routes[i].table == 252 || h.routes[i].protocol == 211);
        r = find_route(&h, "fd01::/64", 254);
        CHECK(r && r->protocol == 12 && r->priority == 7 && r->oif == ifindex("eth0"));
        CHECK(addr_is(&r->gateway, "fd00::2"));
        for (size_t i = 0; i < h.n_routes; i++)
                CHECK(h.routes[i].table != 255); /* the local table is left out */
        host_snapshot_clear(&h);
        /* Table 252 emptied (a table that never existed, as in the other cases here,
         * makes the kernel answer its dump with ENOENT: observed as empty). */
        sh("ip route flush table 252");
        observe(&s, &h);
        CHECK(!find_route(&h, "10.70.0.0/24", 252));
        CHECK(find_route(&h, "10.61.0.0/24", 1000));
        host_snapshot_clear(&h);
}

static bool route_same(const struct host_route *a, const struct host_route *b)
{
        return cfg_prefix_eq(&a->dst, &b->dst) && cfg_prefix_eq(&a->gateway, &b->gateway) && a->table == b->table &&
               a->priority == b->priority && a->oif == b->oif && a->protocol == b->protocol && a->type == b->type &&
               a->multipath == b->multipath;
}

/* The daemon's dump (own_protocol set): our table's routes of our protocol in the
 * compact form, sorted, each one exactly what the whole form says of it; anything the
 * form cannot say (a blackhole, several paths, another protocol, IPv6, main) whole. */
NETNS_TEST(test_observe_routes_compact)
{
        struct kern_observe_opts o = { .route_table = 252, .own_protocol = 211 };
        struct host_snapshot whole = {}, h = {};
        struct kern *nl = NULL;
        size_t n = 0;

        setup_eth0();
        sh("ip route add 10.90.0.0/24 via 192.168.10.1 dev eth0 proto 211 metric 1024"); /* main: whole */
        /* out of order, two lengths on one address, two metrics on one prefix */
        for (int i = 40; i >= 0; i--)
                sh("ip route add 10.%d.%d.0/26 via 192.168.10.%d dev eth0 table 252 proto 211 metric 1024",
                   1 + i % 3, i, 2 + i % 5);
        sh("ip route add 10.1.0.0/24 via 192.168.10.2 dev eth0 table 252 proto 211 metric 1024");
        sh("ip route add 10.1.0.0/26 via 192.168.10.3 dev eth0 table 252 proto 211 metric 5");
        sh("ip route add 10.5.0.0/26 dev eth0 table 252 proto 211 metric 1024"); /* no gateway */
        sh("ip route add blackhole 10.6.0.0/26 table 252 proto 211 metric 1024");
        sh("ip route add 10.7.0.0/26 table 252 proto 211 nexthop via 192.168.10.2 dev eth0 "
           "nexthop via 192.168.10.3 dev eth0");
        sh("ip route add 10.8.0.0/26 via 192.168.10.2 dev eth0 table 252 proto bird");
        sh("ip -6 route add fd02::/122 via fd00::2 dev eth0 table 252 proto 211");
        CHECK(kern_open(&nl) == 0);
        CHECK(kern_observe(nl, &o, &h) == 0);
        o.own_protocol = 0;
        CHECK(kern_observe(nl, &o, &whole) == 0);
        kern_close(nl);
        CHECK_INT(whole.n_routes4, 0);
        CHECK_INT(h.n_routes4, 41 + 3);
        CHECK_INT(h.routes4_table, 252);
        CHECK_INT(h.routes4_protocol, 211);
        CHECK_INT(h.n_routes + h.n_routes4, whole.n_routes);
        for (size_t i = 0; i < h.n_routes4; i++) {
                struct host_route r = host_route4_get(&h, i), prev;
                bool found = false;

                for (size_t k = 0; k < whole.n_routes && !found; k++)
                        found = route_same(&r, &whole.routes[k]);
                CHECK(found);
                if (i) {
                        prev = host_route4_get(&h, i - 1);
                        CHECK(cfg_prefix_cmp(&prev.dst, &r.dst) < 0 ||
                              (cfg_prefix_eq(&prev.dst, &r.dst) && prev.priority < r.priority));
                }
        }
        for (size_t i = 0; i < h.n_routes; i++) {
                bool found = false;

                for (size_t k = 0; k < whole.n_routes && !found; k++)
                        found = route_same(&h.routes[i], &whole.routes[k]);
                CHECK(found);
                n += h.routes[i].table == 252;
        }
        CHECK_INT(n, 4); /* the blackhole, the multipath, BIRD's, the IPv6 one */
        CHECK(find_route(&h, "10.90.0.0/24", 254));
        host_snapshot_clear(&h);
        host_snapshot_clear(&whole);
}

static const struct host_rule *find_rule(const struct host_snapshot *h, const char *dst, uint32_t prio,
                                         uint8_t proto)
{
        struct cfg_prefix p;

        CHECK(cfg_prefix_parse(dst, false, &p) >= 0);
        for (size_t i = 0; i < h->n_rules; i++)
                if (cfg_prefix_eq(&h->rules[i].dst, &p) && h->rules[i].priority == prio &&
                    h->rules[i].protocol == proto)
                        return &h->rules[i];
        return NULL;
}

/* Rules: dumped with what we make of them (table, suppress_prefixlength, protocol),
 * anything else flagged; ours added and deleted by protocol, never someone else's
 * identical rule. */
NETNS_TEST(test_rules)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};
        struct host_rule want[3] = {
                { .priority = 32700, .table = 254, .suppress_prefixlen = 25, .protocol = 211 },
                { .priority = 32701, .table = 252, .suppress_prefixlen = -1, .protocol = 211 },
                { .priority = 32701, .table = 70000, .suppress_prefixlen = -1, .protocol = 211 },
        };
        struct host_change a[3];
        struct host_result res[3] = {};
        const struct host_rule *r;
        char *before, *after;

        setup_eth0();
        for (int i = 0; i < 3; i++) {
                CHECK(cfg_prefix_parse(i < 2 ? "10.9.0.0/16" : "10.10.0.0/16", false, &want[i].dst) >= 0);
                a[i] = (struct host_change){ .kind = CHANGE_ADD_RULE, .rule = &want[i], .pool = UINT32_MAX };
        }
        /* Someone else's rule identical to ours but for its protocol, and one with
         * a selector we never set. */
        sh("ip rule add to 10.9.0.0/16 lookup 252 pref 32701 proto static");
        sh("ip rule add to 10.11.0.0/16 iif eth0 lookup 252 pref 32701 proto 211");
        before = capture("ip rule show");
        CHECK_INT(apply(&s, a, 3, res), 0);
        after = capture("ip rule show");
        fprintf(stderr, "%s", after);
        CHECK(strstr(after, "32700:\tfrom all to 10.9.0.0/16 lookup main suppress_prefixlength 25 proto 211"));
        CHECK(strstr(after, "32701:\tfrom all to 10.9.0.0/16 lookup 252 proto 211"));
        CHECK(strstr(after, "32701:\tfrom all to 10.9.0.0/16 lookup 252 proto static"));
        CHECK(strstr(after, "32701:\tfrom all to 10.10.0.0/16 lookup 70000 proto 211"));
        observe(&s, &h);
        r = find_rule(&h, "10.9.0.0/16", 32700, 211);
        CHECK(r && r->table == 254 && r->suppress_prefixlen == 25 && !r->other);
        r = find_rule(&h, "10.9.0.0/16", 32701, 211);
        CHECK(r && r->table == 252 && r->suppress_prefixlen == -1 && !r->other);
        r = find_rule(&h, "10.9.0.0/16", 32701, 4);
        CHECK(r && r->table == 252 && !r->other);
        r = find_rule(&h, "10.10.0.0/16", 32701, 211);
        CHECK(r && r->table == 70000 && !r->other);
        r = find_rule(&h, "10.11.0.0/16", 32701, 211);
        CHECK(r && r->other);
        r = find_rule(&h, "0.0.0.0/0", 32766, 2); /* the kernel's main rule */
        CHECK(r && r->table == 254 && !r->other);
        host_snapshot_clear(&h);

        CHECK_INT(apply(&s, a, 3, res), 0); /* EEXIST */
        CHECK_STR(host_result_message(&res[1]), "already present");
        for (int i = 0; i < 3; i++)
                a[i].kind = CHANGE_DEL_RULE;
        CHECK_INT(apply(&s, a, 3, res), 0);
        free(after);
        after = capture("ip rule show");
        CHECK_STR(after, before); /* someone else's identical rule stays */
        CHECK_INT(apply(&s, a, 3, res), 0); /* ENOENT */
        CHECK_STR(host_result_message(&res[0]), "already absent");
        free(after);
        free(before);
        host_results_free(res, 3);
}

/* Observing while addresses change: a multi-part dump interrupted by a change
 * (NLM_F_DUMP_INTR) is retried, and every snapshot is whole. */
NETNS_TEST(test_observe_under_churn)
{
        struct kern *nl = NULL;
        FILE *f;
        pid_t churn;

        setup_eth0();
        f = popen("ip -batch -", "w");
        CHECK(f);
        for (int i = 0; i < 3000; i++)
                fprintf(f, "addr add 10.%d.%d.1/32 dev eth0\n", 100 + i / 250, i % 250);
        CHECK(pclose(f) == 0);

        churn = fork();
        CHECK(churn >= 0);
        if (churn == 0) {
                execl("/bin/sh", "sh", "-c",
                      "while :; do ip addr add 10.99.0.1/32 dev eth0; ip addr del 10.99.0.1/32 dev eth0; done",
                      (char *)NULL);
                _exit(127);
        }
        CHECK(kern_open(&nl) == 0);
        for (int i = 0; i < 100; i++) {
                struct host_snapshot h = {};
                int r = kern_observe(nl, NULL, &h);

                CHECK(r == 0 || r == -EAGAIN);
                if (r == 0) {
                        CHECK(h.n_addrs >= 3000);
                        CHECK(host_link_by_name(&h, "eth0"));
                }
                host_snapshot_clear(&h);
        }
        kern_close(nl);
        kill(churn, SIGKILL);
        waitpid(churn, NULL, 0);
}

/* ---------------------------------------------------------------- uplink */

NETNS_TEST(test_uplink_auto)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};

        setup_eth1();
        observe(&s, &h);
        CHECK_INT(uplink(&s, &h), 0);
        CHECK_STR(uplink_err, "no IPv4 default route in the main table");
        CHECK_INT(host_link_by_name(&h, "eth1")->proxy_delay_ms, proxy_delay("eth1") * 10); /* every link's */
        host_snapshot_clear(&h);

        setup_eth0(); /* default via eth0, metric 0 */
        sh("ip route add default via 192.168.20.254 dev eth1 metric 50");
        sh("ip route add default via 192.168.20.253 dev eth1 table 100"); /* other tables do not count */
        observe(&s, &h);
        CHECK_INT(uplink(&s, &h), ifindex("eth0"));
        CHECK_STR(uplink_err, "");
        host_snapshot_clear(&h);

        sh("ip route del default via 192.168.10.254 dev eth0");
        sh("ip route add default via 192.168.10.254 dev eth0 metric 100");
        observe(&s, &h);
        CHECK_INT(uplink(&s, &h), ifindex("eth1"));
        host_snapshot_clear(&h);
}

NETNS_TEST(test_uplink_name)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};

        setup_eth0();
        setup_eth1();
        s.uplink_mode = CFG_UPLINK_NAME;
        s.uplink = "eth1";
        observe(&s, &h);
        CHECK_INT(uplink(&s, &h), ifindex("eth1"));
        host_snapshot_clear(&h);

        s.uplink = "tunl0";
        observe(&s, &h);
        CHECK_INT(uplink(&s, &h), 0);
        CHECK_STR(uplink_err, "no interface named \"tunl0\"");
        CHECK(!host_link_by_name(&h, "tunl0")); /* looking never creates it */
        host_snapshot_clear(&h);
}

NETNS_TEST(test_uplink_regex)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};
        int first;

        setup_eth0();
        setup_eth1();
        first = ifindex("eth0") < ifindex("eth1") ? ifindex("eth0") : ifindex("eth1");
        s.uplink_mode = CFG_UPLINK_REGEX;
        s.uplink = "^eth[0-9]+$";
        observe(&s, &h);
        CHECK_INT(uplink(&s, &h), first);
        host_snapshot_clear(&h);

        s.uplink = "h1"; /* unanchored, like Go's MatchString */
        observe(&s, &h);
        CHECK_INT(uplink(&s, &h), ifindex("eth1"));
        host_snapshot_clear(&h);

        s.uplink = "."; /* lo (ifindex 1) is never the uplink */
        observe(&s, &h);
        CHECK(uplink(&s, &h) > 1);
        host_snapshot_clear(&h);

        s.uplink = "^lo$";
        observe(&s, &h);
        CHECK_INT(uplink(&s, &h), 0);
        CHECK(strstr(uplink_err, "no interface matches"));
        host_snapshot_clear(&h);
}

NETNS_TEST(test_uplink_can_reach)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};

        setup_eth1();
        s.uplink_mode = CFG_UPLINK_CAN_REACH;
        s.uplink = "8.8.8.8";
        s.uplink_reach = P("8.8.8.8");
        observe(&s, &h);
        CHECK(addr_is(&h.reach.dst, "8.8.8.8")); /* the lookup's answer is data: no route */
        CHECK_INT(h.reach.error, -ENETUNREACH);
        CHECK_INT(uplink(&s, &h), 0);
        CHECK_STR(uplink_err, "no route to 8.8.8.8: Network is unreachable");
        host_snapshot_clear(&h);

        setup_eth0();
        observe(&s, &h);
        CHECK_INT(uplink(&s, &h), ifindex("eth0"));
        host_snapshot_clear(&h);

        s.uplink_reach = P("192.168.20.7");
        observe(&s, &h);
        CHECK_INT(uplink(&s, &h), ifindex("eth1"));
        host_snapshot_clear(&h);

        s.uplink_reach = P("192.168.20.1"); /* our own address: the device holding it */
        observe(&s, &h);
        CHECK_INT(uplink(&s, &h), ifindex("eth1"));
        host_snapshot_clear(&h);

        s.uplink_reach = P("fd00::7");
        observe(&s, &h);
        CHECK_INT(uplink(&s, &h), ifindex("eth0"));
        host_snapshot_clear(&h);
}

/* ---------------------------------------------------------------- apply: routes */

static void setup_foreign_routes(void)
{
        sh("ip route add 10.1.0.0/26 via 192.168.10.9 dev eth0 proto bird metric 10");
        sh("ip route add 10.1.0.0/26 via 192.168.10.8 dev eth0 proto static metric 1024 table 1000");
        sh("ip route add 10.2.0.0/24 via 192.168.10.7 dev eth0 proto bird");
        sh("ip route add blackhole 10.3.0.0/24 proto static metric 1024");
        sh("ip -6 route add fd01::/64 via fd00::2 dev eth0 proto bird");
}

NETNS_TEST(test_apply_routes)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};
        struct host_change a[5];
        struct host_result res[5] = {};
        const struct host_route *r;
        char *before, *after, *added;

        setup_eth0();
        setup_foreign_routes();
        before = capture("%s", ROUTES_CMD);

        a[0] = route_action(CHANGE_ADD_ROUTE, HOST_RTN_UNICAST, "10.1.0.0/26", "192.168.10.2", "eth0", 254, 1024);
        a[1] = route_action(CHANGE_ADD_ROUTE, HOST_RTN_BLACKHOLE, "10.1.0.64/26", NULL, NULL, 254, 1024);
        a[2] = route_action(CHANGE_ADD_ROUTE, HOST_RTN_UNREACHABLE, "10.1.0.128/26", NULL, NULL, 254, 1024);
        a[3] = route_action(CHANGE_ADD_ROUTE, HOST_RTN_UNICAST, "10.1.1.0/26", "192.168.10.3", "eth0", 1000, 1024);
        a[4] = route_action(CHANGE_ADD_ROUTE, HOST_RTN_UNICAST, "fd10::/122", "fd00::2", "eth0", 254, 1024);
        CHECK_INT(apply(&s, a, 5, res), 0);
        for (int i = 0; i < 5; i++)
                CHECK_INT(res[i].error, 0);

        after = capture("%s", ROUTES_CMD);
        added = lines_added(before, after);
        fprintf(stderr, "added:\n%s", added);
        CHECK_INT(count_lines(added), 5);
        CHECK(strstr(added, "unicast 10.1.0.0/26 via 192.168.10.2 dev eth0 table main proto 211 scope global "
                            "metric 1024"));
        CHECK(strstr(added, "blackhole 10.1.0.64/26 table main proto 211 scope global metric 1024"));
        CHECK(strstr(added, "unreachable 10.1.0.128/26 table main proto 211 scope global metric 1024"));
        CHECK(strstr(added, "unicast 10.1.1.0/26 via 192.168.10.3 dev eth0 table 1000 proto 211 scope global "
                            "metric 1024"));
        CHECK(strstr(added, "unicast fd10::/122 via fd00::2 dev eth0 table main proto 211 scope global metric 1024"));
        free(added);
        added = lines_added(after, before); /* nothing went missing */
        CHECK_STR(added, "");
        free(added);

        observe(&s, &h);
        r = find_route(&h, "10.1.1.0/26", 1000);
        CHECK(r && r->protocol == 211 && r->priority == 1024 && r->oif == ifindex("eth0"));
        CHECK_INT(count_proto(&h, 211), 5);
        host_snapshot_clear(&h);

        /* replace: the same key, another gateway */
        a[0] = route_action(CHANGE_ADD_ROUTE, HOST_RTN_UNICAST, "10.1.0.0/26", "192.168.10.4", "eth0", 254, 1024);
        a[0].replace = true;
        CHECK_INT(apply(&s, a, 1, res), 0);
        observe(&s, &h);
        CHECK_INT(count_proto(&h, 211), 5);
        for (size_t i = 0; i < h.n_routes; i++)
                if (h.routes[i].protocol == 211 && cfg_prefix_eq(&h.routes[i].dst, &a[0].route.dst))
                        CHECK(cfg_prefix_eq(&h.routes[i].gateway, &a[0].route.gateway));
        host_snapshot_clear(&h);

        for (int i = 0; i < 5; i++)
                a[i].kind = CHANGE_DEL_ROUTE;
        CHECK_INT(apply(&s, a, 5, res), 0);
        free(after);
        after = capture("%s", ROUTES_CMD);
        CHECK_STR(after, before); /* byte for byte */
        free(after);
        free(before);
        host_results_free(res, 5);
}

/* A delete whose key matches a foreign route: the kernel matches rtm_protocol, so
 * the foreign route stays and the delete is "already absent". */
NETNS_TEST(test_delete_never_touches_foreign)
{
        struct cfg_settings s = settings();
        struct host_change a[3];
        struct host_result res[3] = {};
        char *before, *after;

        setup_eth0();
        setup_foreign_routes();
        before = capture("%s", ROUTES_CMD);
        a[0] = route_action(CHANGE_DEL_ROUTE, HOST_RTN_UNICAST, "10.1.0.0/26", "192.168.10.9", "eth0", 254, 10);
        a[1] = route_action(CHANGE_DEL_ROUTE, HOST_RTN_BLACKHOLE, "10.3.0.0/24", NULL, NULL, 254, 1024);
        a[2] = route_action(CHANGE_DEL_ROUTE, HOST_RTN_UNICAST, "fd01::/64", "fd00::2", "eth0", 254, 1024);
        CHECK_INT(apply(&s, a, 3, res), 0);
        for (int i = 0; i < 3; i++) {
                CHECK_INT(res[i].error, 0);
                CHECK_STR(host_result_message(&res[i]), "already absent");
        }
        after = capture("%s", ROUTES_CMD);
        CHECK_STR(after, before);
        free(after);
        free(before);
        host_results_free(res, 3);
}

NETNS_TEST(test_exists_and_missing_converge)
{
        struct cfg_settings s = settings();
        struct host_change a[2];
        struct host_result res[2] = {};

        setup_eth0();
        a[0] = route_action(CHANGE_ADD_ROUTE, HOST_RTN_UNICAST, "10.5.0.0/26", "192.168.10.2", "eth0", 254, 1024);
        a[1] = route_action(CHANGE_ADD_ROUTE, HOST_RTN_BLACKHOLE, "10.5.0.64/26", NULL, NULL, 254, 1024);
        CHECK_INT(apply(&s, a, 2, res), 0);
        CHECK_STR(host_result_message(&res[0]), "");
        CHECK_INT(apply(&s, a, 2, res), 0); /* EEXIST */
        CHECK_INT(res[0].error, 0);
        CHECK_STR(host_result_message(&res[0]), "already present");
        CHECK_STR(host_result_message(&res[1]), "already present");
        a[0].kind = a[1].kind = CHANGE_DEL_ROUTE;
        CHECK_INT(apply(&s, a, 2, res), 0);
        CHECK_STR(host_result_message(&res[0]), "");
        CHECK_INT(apply(&s, a, 2, res), 0); /* ESRCH */
        CHECK_STR(host_result_message(&res[0]), "already absent");
        CHECK_STR(host_result_message(&res[1]), "already absent");
        host_results_free(res, 2);
}

/* A bad route in the middle of a batch fails alone, with the kernel's message. */
NETNS_TEST(test_invalid_route_extack)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};
        struct host_change a[3];
        struct host_result res[3] = {};

        setup_eth0();
        a[0] = route_action(CHANGE_ADD_ROUTE, HOST_RTN_UNICAST, "10.6.0.0/26", "192.168.10.2", "eth0", 254, 1024);
        a[1] = route_action(CHANGE_ADD_ROUTE, HOST_RTN_UNICAST, "10.6.0.64/26", "172.31.0.1", "eth0", 254, 1024);
        a[2] = route_action(CHANGE_ADD_ROUTE, HOST_RTN_BLACKHOLE, "10.6.0.128/26", NULL, NULL, 254, 1024);
        CHECK_INT(apply(&s, a, 3, res), 1);
        CHECK_INT(res[0].error, 0);
        CHECK(res[1].error < 0);
        fprintf(stderr, "gateway not on-link: %s (%s)\n", strerror(-res[1].error), host_result_message(&res[1]));
        CHECK(strstr(host_result_message(&res[1]), "gateway"));
        CHECK_INT(res[2].error, 0);
        observe(&s, &h);
        CHECK(find_route(&h, "10.6.0.0/26", 254));
        CHECK(!find_route(&h, "10.6.0.64/26", 254));
        CHECK(find_route(&h, "10.6.0.128/26", 254));
        host_snapshot_clear(&h);

        /* refused before it is sent: no such route type here */
        a[0].route.type = HOST_RTN_LOCAL;
        CHECK_INT(apply(&s, a, 1, res), 1);
        CHECK_INT(res[0].error, -EINVAL);
        host_results_free(res, 3);
}

/* Deleting what was observed: an own multipath route (someone used our protocol
 * number by hand) goes by its key. */
NETNS_TEST(test_delete_observed_multipath)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};
        struct host_change a = { .kind = CHANGE_DEL_ROUTE, .pool = UINT32_MAX };
        struct host_result res = {};
        const struct host_route *r;

        setup_eth0();
        sh("ip route add 10.8.0.0/26 proto 211 metric 1024 nexthop via 192.168.10.2 dev eth0 "
           "nexthop via 192.168.10.3 dev eth0");
        sh("ip route add 10.8.0.0/26 proto bird metric 10 via 192.168.10.4 dev eth0");
        observe(&s, &h);
        r = NULL;
        for (size_t i = 0; i < h.n_routes; i++)
                if (h.routes[i].protocol == 211)
                        r = &h.routes[i];
        CHECK(r && r->multipath && cfg_prefix_eq(&r->dst, &(struct cfg_prefix){ .family = AF_INET, .len = 26,
                                                                                  .addr = { 10, 8 } }));
        a.route = *r;
        host_snapshot_clear(&h);
        CHECK_INT(apply(&s, &a, 1, &res), 0);
        CHECK_STR(host_result_message(&res), "");
        observe(&s, &h);
        CHECK_INT(count_proto(&h, 211), 0);
        r = find_route(&h, "10.8.0.0/26", 254);
        CHECK(r && r->protocol == 12);
        host_snapshot_clear(&h);
        host_results_free(&res, 1);
}

static void fill_batch(struct host_change *a, size_t n, enum host_change_kind kind)
{
        for (size_t i = 0; i < n; i++) {
                char dst[32];

                snprintf(dst, sizeof(dst), "10.%zu.%zu.%zu/26", 128 + i / 1024, (i / 4) % 256, (i % 4) * 64);
                a[i] = route_action(kind, HOST_RTN_UNICAST, dst, "192.168.10.2", "eth0", 254, 1024);
        }
}

NETNS_TEST(test_batch_5000)
{
        enum { N = 5000 };
        const struct kern_apply_opts s = { .protocol = CFG_DEFAULT_ROUTE_PROTOCOL, .table = CFG_DEFAULT_ROUTE_TABLE };
        struct host_snapshot h = {};
        struct host_change *a = calloc(N, sizeof(*a));
        struct host_result *res = calloc(N, sizeof(*res));
        struct kern *nl = NULL;
        double t0, t_add, t_again, t_del, t_obs;
        char *out;

        CHECK(a && res);
        setup_eth0();
        fill_batch(a, N, CHANGE_ADD_ROUTE);
        CHECK(kern_open(&nl) == 0);

        t0 = now_ms();
        CHECK_INT(kern_apply(nl, &s, a, N, res), 0);
        t_add = now_ms() - t0;
        for (size_t i = 0; i < N; i++)
                CHECK_STR(host_result_message(&res[i]), "");

        t0 = now_ms();
        CHECK(kern_observe(nl, NULL, &h) == 0);
        t_obs = now_ms() - t0;
        CHECK_INT(count_proto(&h, 211), N);
        host_snapshot_clear(&h);
        out = capture("ip route show proto 211 | wc -l");
        CHECK_INT(atoi(out), N);
        free(out);

        host_results_free(res, N);
        t0 = now_ms();
        CHECK_INT(kern_apply(nl, &s, a, N, res), 0); /* all EEXIST: every ack is an error ack */
        t_again = now_ms() - t0;
        for (size_t i = 0; i < N; i++)
                CHECK_STR(host_result_message(&res[i]), "already present");

        fill_batch(a, N, CHANGE_DEL_ROUTE);
        host_results_free(res, N);
        t0 = now_ms();
        CHECK_INT(kern_apply(nl, &s, a, N, res), 0);
        t_del = now_ms() - t0;
        for (size_t i = 0; i < N; i++)
                CHECK_STR(host_result_message(&res[i]), "");
        CHECK(kern_observe(nl, NULL, &h) == 0);
        CHECK_INT(count_proto(&h, 211), 0);
        host_snapshot_clear(&h);
        kern_close(nl);
        fprintf(stderr, "5000 routes: add %.1f ms, add again (EEXIST) %.1f ms, observe %.1f ms, delete %.1f ms\n",
                t_add, t_again, t_obs, t_del);
        free(a);
        host_results_free(res, N);
        free(res);
}

/* Successes are never written into a zeroed results array (host.h): the results of
 * 5,000 route adds, their deletion and host_results_free() live in read-only zero
 * pages here, so any write is a SIGSEGV; then a failure is written all the same. */
NETNS_TEST(test_apply_leaves_zeroed_successes)
{
        enum { N = 5000 };
        const struct kern_apply_opts s = { .protocol = CFG_DEFAULT_ROUTE_PROTOCOL, .table = CFG_DEFAULT_ROUTE_TABLE };
        size_t size = N * sizeof(struct host_result);
        struct host_change *a = calloc(N, sizeof(*a));
        struct host_result *res = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        struct kern *nl = NULL;

        CHECK(a && res != MAP_FAILED);
        setup_eth0();
        CHECK(kern_open(&nl) == 0);
        fill_batch(a, N, CHANGE_ADD_ROUTE);
        CHECK_INT(kern_apply(nl, &s, a, N, res), 0);
        host_results_free(res, N);
        fill_batch(a, N, CHANGE_DEL_ROUTE);
        CHECK_INT(kern_apply(nl, &s, a, N, res), 0);
        for (size_t i = 0; i < N; i++)
                CHECK(res[i].error == 0 && !res[i].message);
        /* Writable again: the one delete that finds nothing is said, the rest not. */
        CHECK(mprotect(res, size, PROT_READ | PROT_WRITE) == 0);
        CHECK_INT(kern_apply(nl, &s, a, 1, res), 0);
        CHECK_STR(host_result_message(&res[0]), "already absent");
        host_results_free(res, N);
        CHECK(!res[0].message);
        kern_close(nl);
        munmap(res, size);
        free(a);
}

/* ---------------------------------------------------------------- apply: settings */

NETNS_TEST(test_set_proxy)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};
        struct host_change a[2] = {
                { .kind = CHANGE_SET_PROXY_DELAY, .ifindex = ifindex("lo"), .value = 800 },
                { .kind = CHANGE_SET_PROXY_ARP, .ifindex = ifindex("lo"), .value = 1 },
        };
        struct host_result res[2] = {};

        setup_eth0();
        a[0].ifindex = a[1].ifindex = ifindex("eth0");
        sh("sysctl -qw net.ipv4.neigh.eth0.proxy_delay=20");
        CHECK_INT(conf("eth0", "proxy_arp"), 0);
        CHECK_INT(apply(&s, a, 2, res), 0);
        CHECK_INT(proxy_delay("eth0"), 80);
        CHECK_INT(conf("eth0", "proxy_arp"), 1);
        CHECK_INT(conf("peer0", "proxy_arp"), 0);
        observe(&s, &h);
        CHECK_INT(host_link_by_name(&h, "eth0")->proxy_delay_ms, 800);
        CHECK_INT(host_link_by_name(&h, "eth0")->proxy_arp, 1);
        host_snapshot_clear(&h);

        a[0].value = 0;
        a[1].value = 0;
        CHECK_INT(apply(&s, a, 2, res), 0);
        CHECK_INT(proxy_delay("eth0"), 0);
        CHECK_INT(conf("eth0", "proxy_arp"), 0);

        a[0].ifindex = a[1].ifindex = 4242; /* no such device */
        CHECK_INT(apply(&s, a, 2, res), 2);
        fprintf(stderr, "no such device: delay %s (%s), proxy_arp %s (%s)\n", strerror(-res[0].error),
                res[0].message, strerror(-res[1].error), host_result_message(&res[1]));
        CHECK(res[0].error < 0 && res[1].error < 0);
        host_results_free(res, 2);
}

/* ---------------------------------------------------------------- apply: tunnels */

NETNS_TEST(test_remove_vxlan)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};
        struct host_tunnel t = { .kind = "vxlan" };
        struct host_change a = { .kind = CHANGE_REMOVE_TUNNEL, .dev = "vxlan.calico", .tunnel = &t };
        struct host_result res = {};

        setup_eth0();
        sh("ip link add vxlan.calico type vxlan id 4096 dstport 4789 dev eth0 && ip link set vxlan.calico up");
        sh("ip addr add 10.233.90.1/32 dev vxlan.calico");
        a.ifindex = ifindex("vxlan.calico");
        t.addrs[t.n_addrs++] = P("10.233.90.1/32");
        CHECK_INT(apply(&s, &a, 1, &res), 0);
        CHECK_INT(res.error, 0);
        CHECK_STR(host_result_message(&res), "deleted");
        observe(&s, &h);
        CHECK(!host_link_by_name(&h, "vxlan.calico"));
        CHECK(host_link_by_name(&h, "eth0"));
        host_snapshot_clear(&h);

        CHECK_INT(apply(&s, &a, 1, &res), 0); /* again: already absent */
        CHECK_STR(host_result_message(&res), "already absent");
        host_results_free(&res, 1);
}

NETNS_TEST(test_remove_tunl0_absent)
{
        struct cfg_settings s = settings();
        struct host_snapshot h = {};
        struct host_tunnel t = { .kind = "ipip" };
        struct host_change a = { .kind = CHANGE_REMOVE_TUNNEL, .ifindex = 4242, .dev = "tunl0", .tunnel = &t };
        struct host_result res = {};

        setup_eth0();
        CHECK_INT(apply(&s, &a, 1, &res), 0);
        CHECK_STR(host_result_message(&res), "already absent");
        a.ifindex = 0;
        CHECK_INT(apply(&s, &a, 1, &res), 0);
        observe(&s, &h);
        CHECK(!host_link_by_name(&h, "tunl0"));
        host_snapshot_clear(&h);
        host_results_free(&res, 1);
}

/* The kernel refuses to delete a device without rtnl_link_ops: reported, the
 * device left alone. */
NETNS_TEST(test_remove_tunnel_refused)
{
        struct cfg_settings s = settings();
        struct host_tunnel t = { .kind = "ipip" };
        struct host_change a = { .kind = CHANGE_REMOVE_TUNNEL, .ifindex = 1, .dev = "lo", .tunnel = &t };
        struct host_result res = {};

        CHECK_INT(apply(&s, &a, 1, &res), 1);
        CHECK_INT(res.error, -EOPNOTSUPP);
        CHECK_STR(host_result_message(&res), "deleting lo failed");
        CHECK_INT(ifindex("lo"), 1);
        host_results_free(&res, 1);
}

/* A mixed plan: settings, a route batch, a tunnel, another batch, in order. */
NETNS_TEST(test_apply_mixed_order)
{
        struct cfg_settings s = settings();
        struct host_tunnel t = { .kind = "vxlan" };
        struct host_change a[5];
        struct host_result res[5] = {};

        setup_eth0();
        sh("ip link add vxlan.calico type vxlan id 4096 dstport 4789 dev eth0");
        a[0] = (struct host_change){ .kind = CHANGE_SET_PROXY_DELAY, .ifindex = ifindex("eth0"), .value = 0 };
        a[1] = (struct host_change){ .kind = CHANGE_SET_PROXY_ARP, .ifindex = ifindex("eth0"), .value = 1 };
        a[2] = route_action(CHANGE_ADD_ROUTE, HOST_RTN_UNICAST, "10.7.0.0/26", "192.168.10.2", "eth0", 254, 1024);
        a[3] = (struct host_change){ .kind = CHANGE_REMOVE_TUNNEL, .ifindex = ifindex("vxlan.calico"),
                                     .dev = "vxlan.calico", .tunnel = &t };
        a[4] = route_action(CHANGE_DEL_ROUTE, HOST_RTN_UNICAST, "10.7.0.0/26", "192.168.10.2", "eth0", 254, 1024);
        CHECK_INT(apply(&s, a, 5, res), 0);
        CHECK_STR(host_result_message(&res[3]), "deleted");
        CHECK_STR(host_result_message(&res[4]), ""); /* the add came first: the delete found it */
        CHECK_INT(conf("eth0", "proxy_arp"), 1);
        CHECK_INT(proxy_delay("eth0"), 0);
        host_results_free(res, 5);
}

/* ---------------------------------------------------------------- main */

/* Root and network namespaces are needed; without them the suite is skipped (77). */
static bool can_unshare(void)
{
        pid_t pid = fork();
        int status = 0;

        if (pid == 0)
                exit(unshare(CLONE_NEWNET) == 0 && system("ip link show lo >/dev/null") == 0 ? 0 : 1);
        return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_observe_links_addrs),
                cmocka_unit_test(test_observe_devconf),
                cmocka_unit_test(test_observe_routes),
                cmocka_unit_test(test_observe_routes_compact),
                cmocka_unit_test(test_rules),
                cmocka_unit_test(test_observe_under_churn),
                cmocka_unit_test(test_uplink_auto),
                cmocka_unit_test(test_uplink_name),
                cmocka_unit_test(test_uplink_regex),
                cmocka_unit_test(test_uplink_can_reach),
                cmocka_unit_test(test_apply_routes),
                cmocka_unit_test(test_delete_never_touches_foreign),
                cmocka_unit_test(test_exists_and_missing_converge),
                cmocka_unit_test(test_invalid_route_extack),
                cmocka_unit_test(test_delete_observed_multipath),
                cmocka_unit_test(test_batch_5000),
                cmocka_unit_test(test_apply_leaves_zeroed_successes),
                cmocka_unit_test(test_set_proxy),
                cmocka_unit_test(test_remove_vxlan),
                cmocka_unit_test(test_remove_tunl0_absent),
                cmocka_unit_test(test_remove_tunnel_refused),
                cmocka_unit_test(test_apply_mixed_order),
        };

        if (geteuid() != 0 || !can_unshare()) {
                fprintf(stderr, "skipped: needs root and network namespaces\n");
                return 77;
        }
        return cmocka_run_group_tests(tests, NULL, NULL);
}
