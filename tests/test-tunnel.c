/* Unit tests of the tunnel-removal sequence (netlink/tunnel.c) with fake kernel
 * operations: this machine's kernel has no ipip module, so the "kernel keeps tunl0"
 * path can only be exercised here. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tunnel.h"

struct fake {
        /* what the fake kernel answers */
        int del_link_ret;
        int find_ret;
        bool still_there;
        int del_addr_ret[HOST_TUNNEL_ADDRS_MAX];
        int set_down_ret;
        /* what was asked of it, in order */
        char log[512];
        int n_del_link, n_find, n_del_addr, n_set_down;
};

static void logf_(struct fake *f, const char *fmt, ...)
{
        size_t len = strlen(f->log);
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(f->log + len, sizeof(f->log) - len, fmt, ap);
        va_end(ap);
}

static int fake_del_link(void *ctx, int ifindex)
{
        struct fake *f = ctx;

        f->n_del_link++;
        logf_(f, "del_link %d;", ifindex);
        return f->del_link_ret;
}

static int fake_find_link(void *ctx, int ifindex, const char *name, bool *ret_exists)
{
        struct fake *f = ctx;

        f->n_find++;
        logf_(f, "find %d %s;", ifindex, name);
        if (f->find_ret < 0)
                return f->find_ret;
        *ret_exists = f->still_there;
        return 0;
}

static int fake_del_addr(void *ctx, int ifindex, const struct cfg_prefix *addr)
{
        struct fake *f = ctx;
        char buf[CFG_PREFIX_STRLEN];

        cfg_prefix_fmt(addr, buf, sizeof(buf));
        logf_(f, "del_addr %d %s;", ifindex, buf);
        return f->del_addr_ret[f->n_del_addr++];
}

static int fake_set_down(void *ctx, int ifindex)
{
        struct fake *f = ctx;

        f->n_set_down++;
        logf_(f, "set_down %d;", ifindex);
        return f->set_down_ret;
}

static const struct tunnel_ops fake_ops = {
        .del_link = fake_del_link,
        .find_link = fake_find_link,
        .del_addr = fake_del_addr,
        .set_down = fake_set_down,
};

/* The action points to its tunnel record, as the planner's do (plan->tunnels). */
static struct host_change tunnel_action(const char *dev, const char *kind, int ifindex, struct host_tunnel *t)
{
        struct host_change a = { .kind = CHANGE_REMOVE_TUNNEL, .ifindex = ifindex, .pool = UINT32_MAX, .tunnel = t };

        snprintf(a.dev, sizeof(a.dev), "%s", dev);
        snprintf(t->kind, sizeof(t->kind), "%s", kind);
        return a;
}

static void add_addr(struct host_tunnel *t, const char *prefix)
{
        assert_true(cfg_prefix_parse(prefix, true, &t->addrs[t->n_addrs]) >= 0);
        t->n_addrs++;
}

static void test_vxlan_deleted(void **state)
{
        struct fake f = {};
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("vxlan.calico", "vxlan", 7, &t);
        struct host_result res = {};

        (void)state;
        add_addr(&t, "10.233.90.1/32");
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), 0);
        assert_int_equal(res.error, 0);
        assert_string_equal(host_result_message(&res), "deleted");
        assert_string_equal(f.log, "del_link 7;find 7 vxlan.calico;");
        host_results_free(&res, 1);
}

static void test_tunl0_kept_calico_addr(void **state)
{
        struct fake f = { .still_there = true };
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("tunl0", "ipip", 3, &t);
        struct host_result res = {};

        (void)state;
        add_addr(&t, "10.233.90.0/32");
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), 0);
        assert_int_equal(res.error, 0);
        assert_string_equal(host_result_message(&res), "kernel kept tunl0: removed 10.233.90.0/32, set down");
        assert_string_equal(f.log, "del_link 3;find 3 tunl0;del_addr 3 10.233.90.0/32;set_down 3;");
        host_results_free(&res, 1);
}

static void test_tunl0_kept_two_addrs(void **state)
{
        struct fake f = { .still_there = true };
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("tunl0", "ipip", 3, &t);
        struct host_result res = {};

        (void)state;
        add_addr(&t, "10.233.90.0/32");
        add_addr(&t, "10.244.1.0/32");
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), 0);
        assert_string_equal(host_result_message(&res), "kernel kept tunl0: removed 10.233.90.0/32, 10.244.1.0/32, set down");
        assert_int_equal(f.n_set_down, 1);
        host_results_free(&res, 1);
}

static void test_tunl0_kept_no_addr(void **state)
{
        struct fake f = { .still_there = true };
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("tunl0", "ipip", 3, &t);
        struct host_result res = {};

        (void)state;
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), 0);
        assert_string_equal(host_result_message(&res), "kernel kept tunl0: set down");
        assert_string_equal(f.log, "del_link 3;find 3 tunl0;set_down 3;");
        host_results_free(&res, 1);
}

static void test_tunl0_kept_addr_already_gone(void **state)
{
        struct fake f = { .still_there = true, .del_addr_ret = { -EADDRNOTAVAIL, 0 } };
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("tunl0", "ipip", 3, &t);
        struct host_result res = {};

        (void)state;
        add_addr(&t, "10.233.90.0/32");
        add_addr(&t, "10.244.1.0/32");
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), 0);
        assert_string_equal(host_result_message(&res), "kernel kept tunl0: removed 10.244.1.0/32, set down");
        host_results_free(&res, 1);
}

static void test_tunl0_kept_foreign(void **state)
{
        struct fake f = { .still_there = true };
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("tunl0", "ipip", 3, &t);
        struct host_result res = {};

        (void)state;
        add_addr(&t, "10.233.90.0/32");
        t.foreign_addrs = true;
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), 0);
        assert_int_equal(res.error, 0);
        assert_string_equal(res.message,
                            "kernel kept tunl0: removed 10.233.90.0/32; kept up: foreign addresses remain");
        assert_int_equal(f.n_set_down, 0);
        assert_string_equal(f.log, "del_link 3;find 3 tunl0;del_addr 3 10.233.90.0/32;");
        host_results_free(&res, 1);
}

static void test_tunl0_kept_only_foreign(void **state)
{
        struct fake f = { .still_there = true };
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("tunl0", "ipip", 3, &t);
        struct host_result res = {};

        (void)state;
        t.foreign_addrs = true;
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), 0);
        assert_string_equal(host_result_message(&res), "kernel kept tunl0: kept up: foreign addresses remain");
        assert_int_equal(f.n_del_addr, 0);
        assert_int_equal(f.n_set_down, 0);
        host_results_free(&res, 1);
}

static void test_delete_eperm(void **state)
{
        struct fake f = { .del_link_ret = -EPERM, .still_there = true };
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("tunl0", "ipip", 3, &t);
        struct host_result res = {};

        (void)state;
        add_addr(&t, "10.233.90.0/32");
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), -EPERM);
        assert_int_equal(res.error, -EPERM);
        assert_string_equal(host_result_message(&res), "deleting tunl0 failed");
        /* nothing else was tried */
        assert_string_equal(f.log, "del_link 3;");
        host_results_free(&res, 1);
}

static void test_already_absent(void **state)
{
        struct fake f = { .del_link_ret = -ENODEV };
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("tunl0", "ipip", 3, &t);
        struct host_result res = {};

        (void)state;
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), 0);
        assert_int_equal(res.error, 0);
        assert_string_equal(host_result_message(&res), "already absent");
        assert_string_equal(f.log, "del_link 3;");
        host_results_free(&res, 1);
}

static void test_find_fails(void **state)
{
        struct fake f = { .find_ret = -ENOBUFS };
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("tunl0", "ipip", 3, &t);
        struct host_result res = {};

        (void)state;
        add_addr(&t, "10.233.90.0/32");
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), -ENOBUFS);
        assert_int_equal(res.error, -ENOBUFS);
        assert_int_equal(f.n_del_addr, 0);
        assert_int_equal(f.n_set_down, 0);
        host_results_free(&res, 1);
}

static void test_del_addr_fails(void **state)
{
        struct fake f = { .still_there = true, .del_addr_ret = { -EPERM } };
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("tunl0", "ipip", 3, &t);
        struct host_result res = {};

        (void)state;
        add_addr(&t, "10.233.90.0/32");
        add_addr(&t, "10.244.1.0/32");
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), -EPERM);
        assert_int_equal(res.error, -EPERM);
        assert_string_equal(host_result_message(&res), "kernel kept tunl0: removing 10.233.90.0/32 failed");
        /* the device is not set down with a Calico address possibly still on it */
        assert_int_equal(f.n_del_addr, 1);
        assert_int_equal(f.n_set_down, 0);
        host_results_free(&res, 1);
}

static void test_set_down_fails(void **state)
{
        struct fake f = { .still_there = true, .set_down_ret = -EPERM };
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("tunl0", "ipip", 3, &t);
        struct host_result res = {};

        (void)state;
        add_addr(&t, "10.233.90.0/32");
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), -EPERM);
        assert_string_equal(host_result_message(&res), "kernel kept tunl0: removed 10.233.90.0/32; setting it down failed");
        host_results_free(&res, 1);
}

static void test_set_down_gone(void **state)
{
        struct fake f = { .still_there = true, .set_down_ret = -ENODEV };
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("tunl0", "ipip", 3, &t);
        struct host_result res = {};

        (void)state;
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), 0);
        assert_string_equal(host_result_message(&res), "deleted");
        host_results_free(&res, 1);
}

static void test_long_message_whole(void **state)
{
        struct fake f = { .still_there = true };
        struct host_tunnel t = {};
        struct host_change a = tunnel_action("tunl0", "ipip", 3, &t);
        struct host_result res = {};
        int n_seen = 0;

        (void)state;
        for (int i = 0; i < HOST_TUNNEL_ADDRS_MAX; i++)
                add_addr(&t, "fd00:1234:5678:9abc:def0:1234:5678:9abc/128");
        assert_int_equal(tunnel_remove(&fake_ops, &f, &a, &res), 0);
        assert_int_equal(f.n_del_addr, HOST_TUNNEL_ADDRS_MAX);
        /* The whole story, however long: messages are not cut to a fixed size. */
        assert_non_null(res.message);
        assert_true(strncmp(res.message, "kernel kept tunl0: removed ", 27) == 0);
        assert_non_null(strstr(res.message, ", set down"));
        for (const char *m = res.message; n_seen < HOST_TUNNEL_ADDRS_MAX; n_seen++) {
                m = strstr(m, "fd00:1234:5678:9abc:def0:1234:5678:9abc/128");
                assert_non_null(m);
                m++;
        }
        host_results_free(&res, 1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_vxlan_deleted),
                cmocka_unit_test(test_tunl0_kept_calico_addr),
                cmocka_unit_test(test_tunl0_kept_two_addrs),
                cmocka_unit_test(test_tunl0_kept_no_addr),
                cmocka_unit_test(test_tunl0_kept_addr_already_gone),
                cmocka_unit_test(test_tunl0_kept_foreign),
                cmocka_unit_test(test_tunl0_kept_only_foreign),
                cmocka_unit_test(test_delete_eperm),
                cmocka_unit_test(test_already_absent),
                cmocka_unit_test(test_find_fails),
                cmocka_unit_test(test_del_addr_fails),
                cmocka_unit_test(test_set_down_fails),
                cmocka_unit_test(test_set_down_gone),
                cmocka_unit_test(test_long_message_whole),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
