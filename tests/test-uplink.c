/* Unit tests of the uplink choice (daemon/uplink.c): every mode of `uplink:` over a
 * snapshot built by hand, with the exact failure messages operators read in --check,
 * the status line and the journal. No kernel: the can-reach= lookup is data in the
 * snapshot (tests/test-netlink.c checks that observation fills it). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "uplink.h"
#include "util.h"

/* lo 1, eth0 2 (192.168.10.11/24), eth1 3 (192.168.20.1/24), vxlan.calico 5 */
static struct host_link links[] = {
        { .ifindex = 1, .name = "lo", .proxy_delay_ms = -1 },
        { .ifindex = 2, .name = "eth0", .proxy_delay_ms = -1 },
        { .ifindex = 3, .name = "eth1", .proxy_delay_ms = -1 },
        { .ifindex = 5, .name = "vxlan.calico", .kind = "vxlan", .proxy_delay_ms = -1 },
};

struct t {
        struct host_snapshot h;
        struct host_addr addrs[4];
        struct host_route routes[8];
        struct cfg_settings s;
        char err[128];
};

static struct cfg_prefix P(const char *s)
{
        struct cfg_prefix p;

        assert_true(cfg_prefix_parse(s, false, &p) >= 0);
        return p;
}

static void add_addr(struct t *t, int ifindex, const char *a)
{
        struct host_addr *ha = &t->addrs[t->h.n_addrs++];

        ha->ifindex = ifindex;
        assert_true(cfg_prefix_parse(a, true, &ha->addr) >= 0);
}

static struct host_route *add_route(struct t *t, const char *dst, int oif, uint32_t table, uint32_t metric)
{
        struct host_route *r = &t->routes[t->h.n_routes++];

        *r = (struct host_route){ .dst = P(dst), .oif = oif, .table = table, .priority = metric,
                                  .type = HOST_RTN_UNICAST, .protocol = 4 };
        return r;
}

static int setup(void **state)
{
        struct t *t = calloc(1, sizeof(*t));

        if (!t)
                return -1;
        t->h.links = links;
        t->h.n_links = ELEMENTSOF(links);
        t->h.addrs = t->addrs;
        t->h.routes = t->routes;
        add_addr(t, 1, "127.0.0.1/8");
        add_addr(t, 2, "192.168.10.11/24");
        add_addr(t, 3, "192.168.20.1/24");
        t->s.uplink_mode = CFG_UPLINK_AUTO;
        *state = t;
        return 0;
}

static int teardown(void **state)
{
        free(*state);
        return 0;
}

static int choose(struct t *t)
{
        memset(t->err, 'x', sizeof(t->err) - 1);
        t->err[sizeof(t->err) - 1] = '\0';
        return uplink_choose(&t->s, &t->h, t->err, sizeof(t->err));
}

/* auto: the IPv4 default route of the main table with the lowest metric. */
static void test_auto(void **state)
{
        struct t *t = *state;

        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "no IPv4 default route in the main table");

        add_route(t, "0.0.0.0/0", 3, 100, 0);       /* another table does not count */
        add_route(t, "::/0", 3, 254, 0);            /* nor IPv6 */
        add_route(t, "10.0.0.0/8", 3, 254, 0);      /* nor a route that is not the default */
        add_route(t, "0.0.0.0/0", 0, 254, 0)->type = HOST_RTN_UNREACHABLE; /* nor one without a device */
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "no IPv4 default route in the main table");

        add_route(t, "0.0.0.0/0", 3, 254, 50);
        add_route(t, "0.0.0.0/0", 2, 254, 10);
        assert_int_equal(choose(t), 2);
        assert_string_equal(t->err, "");
        t->routes[t->h.n_routes - 1].priority = 60;
        assert_int_equal(choose(t), 3);
}

/* A default route through a device the link dump did not show (it vanished between
 * the dumps). */
static void test_auto_vanished(void **state)
{
        struct t *t = *state;

        add_route(t, "0.0.0.0/0", 7, 254, 0);
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "uplink ifindex 7 vanished");
}

/* A device name: from the dump, exactly. */
static void test_name(void **state)
{
        struct t *t = *state;

        t->s.uplink_mode = CFG_UPLINK_NAME;
        t->s.uplink = "eth1";
        assert_int_equal(choose(t), 3);
        assert_string_equal(t->err, "");
        t->s.uplink = "eth";
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "no interface named \"eth\"");
        t->s.uplink = "tunl0";
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "no interface named \"tunl0\"");
}

/* interface=REGEX: unanchored (Go's MatchString), first match in ifindex order, never lo. */
static void test_regex(void **state)
{
        struct t *t = *state;

        t->s.uplink_mode = CFG_UPLINK_REGEX;
        t->s.uplink = "^eth[0-9]+$";
        assert_int_equal(choose(t), 2);
        t->s.uplink = "h1";
        assert_int_equal(choose(t), 3);
        t->s.uplink = "^vx";
        assert_int_equal(choose(t), 5);
        t->s.uplink = ".";
        assert_int_equal(choose(t), 2);
        t->s.uplink = "^lo$";
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "no interface matches \"^lo$\"");
        t->s.uplink = "nomatch";
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "no interface matches \"nomatch\"");
}

/* The settings refuse a bad expression first; the planner still says why, as glibc does. */
static void test_regex_bad(void **state)
{
        struct t *t = *state;

        t->s.uplink_mode = CFG_UPLINK_REGEX;
        t->s.uplink = "(";
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "bad interface regular expression: Unmatched ( or \\(");
}

static void set_reach(struct t *t, const char *dst, int error, const char *message, uint8_t type, int oif)
{
        t->s.uplink_mode = CFG_UPLINK_CAN_REACH;
        t->s.uplink_reach = P(dst);
        t->h.reach = (struct host_reach){ .dst = P(dst), .error = error, .type = type, .oif = oif };
        snprintf(t->h.reach.message, sizeof(t->h.reach.message), "%s", message);
}

/* can-reach=ADDRESS: the device of the kernel's route to it. */
static void test_can_reach(void **state)
{
        struct t *t = *state;

        set_reach(t, "192.168.20.7", 0, "", HOST_RTN_UNICAST, 3);
        assert_int_equal(choose(t), 3);
        assert_string_equal(t->err, "");
        set_reach(t, "fd00::7", 0, "", HOST_RTN_UNICAST, 2);
        assert_int_equal(choose(t), 2);
}

/* An address of our own: the kernel answers with a local route through lo; the
 * device holding the address is meant. */
static void test_can_reach_local(void **state)
{
        struct t *t = *state;

        set_reach(t, "192.168.20.1", 0, "", HOST_RTN_LOCAL, 1);
        t->h.reach.prefsrc = P("192.168.20.1");
        assert_int_equal(choose(t), 3);
        t->h.reach.prefsrc = P("10.9.9.9"); /* no link holds it */
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "the route to 192.168.20.1 has no device");
}

static void test_can_reach_failures(void **state)
{
        struct t *t = *state;

        set_reach(t, "8.8.8.8", -ENETUNREACH, "", 0, 0);
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "no route to 8.8.8.8: Network is unreachable");
        set_reach(t, "8.8.8.8", -EINVAL, "some kernel text", 0, 0); /* the extack text wins */
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "no route to 8.8.8.8: some kernel text");
        set_reach(t, "203.0.113.1", 0, "", HOST_RTN_BLACKHOLE, 0);
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "the route to 203.0.113.1 has no device");
        set_reach(t, "192.168.20.7", 0, "", HOST_RTN_UNICAST, 9);
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "uplink ifindex 9 vanished");
        /* observation was not asked about this address */
        set_reach(t, "192.168.20.7", 0, "", HOST_RTN_UNICAST, 3);
        t->h.reach.dst = P("192.168.20.8");
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "no route to 192.168.20.7: not looked up");
        t->s.uplink_reach = (struct cfg_prefix){};
        assert_int_equal(choose(t), 0);
        assert_string_equal(t->err, "can-reach: no address");
}

/* No settings at all: auto. */
static void test_no_settings(void **state)
{
        struct t *t = *state;
        char err[128];

        add_route(t, "0.0.0.0/0", 2, 254, 0);
        assert_int_equal(uplink_choose(NULL, &t->h, err, sizeof(err)), 2);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        const struct CMUnitTest tests[] = {
                T(test_auto),           T(test_auto_vanished),   T(test_name),
                T(test_regex),          T(test_regex_bad),       T(test_can_reach),
                T(test_can_reach_local), T(test_can_reach_failures), T(test_no_settings),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
