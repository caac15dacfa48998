/* Golden tests for --check's output (daemon/report.c): the model of the bundled
 * example (config/example, read by the files source as the daemon reads it) planned
 * against a hand-made host snapshot of node1, rendered as text and as JSON, and
 * compared byte for byte with tests/golden/. Two more cases render a configuration
 * that fails to load and an etcd datastore that does not answer.
 *
 * After an intended change of the output, regenerate the files and review the diff:
 *     CU_UPDATE_GOLDEN=1 meson test -C BUILD report
 * (the test then writes tests/golden/ in the source tree instead of comparing). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "load.h"
#include "model.h"
#include "plan.h"
#include "report.h"
#include "source.h"
#include "util.h"

static char *src_path(const char *rel)
{
        const char *src = getenv("SRCDIR");
        char *p;

        if (!src)
                return NULL;
        assert_true(asprintf(&p, "%s/%s", src, rel) > 0);
        return p;
}

static char *read_all(const char *path, size_t *ret_len)
{
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t cap = 0;

        if (!f)
                return NULL;
        assert_true(getdelim(&buf, &cap, '\0', f) >= 0 || feof(f));
        *ret_len = buf ? strlen(buf) : 0;
        fclose(f);
        return buf;
}

/* Compare out with tests/golden/name, or write it there under CU_UPDATE_GOLDEN. */
static void golden(const char *name, const char *out)
{
        char rel[256], *path;
        const char *update = getenv("CU_UPDATE_GOLDEN");
        size_t len = 0;
        char *want;

        snprintf(rel, sizeof(rel), "tests/golden/%s", name);
        path = src_path(rel);
        assert_non_null(path);
        if (update && *update && !streq(update, "0")) {
                FILE *f = fopen(path, "we");

                assert_non_null(f);
                fputs(out, f);
                assert_int_equal(fclose(f), 0);
                free(path);
                return;
        }
        want = read_all(path, &len);
        if (!want)
                fail_msg("%s is missing: CU_UPDATE_GOLDEN=1 writes it", path);
        if (!streq(want, out)) {
                print_error("--- %s\n%s\n+++ got\n%s\n", path, want, out);
                fail_msg("the output differs from %s (CU_UPDATE_GOLDEN=1 regenerates it)", path);
        }
        free(want);
        free(path);
}

/* node1 of the example: eth0 (ifindex 2) 192.168.10.11/24 with the default route,
 * forwarding on, proxy ARP off, the kernel's default proxy delay. */
static void host_node1(struct host_snapshot *h)
{
        static const struct host_link links[] = {
                { .ifindex = 1, .name = "lo", .mtu = 65536, .up = true, .proxy_arp = 0, .forwarding = 1,
                  .proxy_delay_ms = 800 },
                { .ifindex = 2, .name = "eth0", .mtu = 1500, .up = true, .proxy_arp = 0, .forwarding = 1,
                  .proxy_delay_ms = 800 },
        };
        struct host_route def = { .table = 254, .protocol = 4, .type = HOST_RTN_UNICAST, .oif = 2 };
        struct host_route sub = { .table = 254, .protocol = 2, .type = HOST_RTN_UNICAST, .oif = 2 };

        *h = (struct host_snapshot){ .all_forwarding = 1, .all_rp_filter = 0 };
        h->links = malloc(sizeof(links));
        h->addrs = calloc(2, sizeof(*h->addrs));
        h->routes = calloc(2, sizeof(*h->routes));
        assert_true(h->links && h->addrs && h->routes);
        memcpy(h->links, links, sizeof(links));
        h->n_links = ELEMENTSOF(links);
        h->addrs[0].ifindex = 1;
        assert_true(cfg_prefix_parse("127.0.0.1/8", true, &h->addrs[0].addr) >= 0);
        h->addrs[1].ifindex = 2;
        assert_true(cfg_prefix_parse("192.168.10.11/24", true, &h->addrs[1].addr) >= 0);
        h->n_addrs = 2;
        assert_int_equal(cfg_prefix_parse("0.0.0.0/0", true, &def.dst), 0);
        assert_int_equal(cfg_addr_parse("192.168.10.1", &def.gateway), 0);
        assert_int_equal(cfg_prefix_parse("192.168.10.0/24", false, &sub.dst), 0);
        h->routes[0] = def;
        h->routes[1] = sub;
        h->n_routes = 2;
}

static char *render(const struct report_source *src, bool json)
{
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);

        assert_non_null(f);
        if (json)
                report_check_json(f, src);
        else
                report_check_text(f, src);
        fprintf(f, "status %d\n", report_check_status(src));
        assert_int_equal(fclose(f), 0);
        return out;
}

/* The example's paths differ per checkout: diagnostics name them relative to it. */
static void relative_files(struct cfg_diags *d, const char *src)
{
        size_t n = strlen(src);

        for (size_t i = 0; i < d->n; i++)
                if (d->v[i].file && !strncmp(d->v[i].file, src, n) && d->v[i].file[n] == '/')
                        memmove(d->v[i].file, d->v[i].file + n + 1, strlen(d->v[i].file + n + 1) + 1);
}

static void check_example(void **state)
{
        char *cfg = src_path("config/example/config.yaml"), *text, *json;
        struct host_record rec = HOST_RECORD_INIT;
        struct cfg_diags d = {};
        struct cfg_model *m = NULL;
        struct host_snapshot h;
        struct source_origin o;
        struct plan *p = NULL;
        char why[256];

        (void)state;
        if (!cfg)
                skip();
        assert_int_equal(source_load_once(cfg, "h", &m, &d, &o, why, sizeof(why)), 0);
        relative_files(&d, getenv("SRCDIR"));
        host_node1(&h);
        assert_int_equal(plan_build(m, &h, &rec, &p), 0);
        {
                struct report_source src = { .node = m->settings.node_name, .model = m, .host = &h, .plan = p,
                                             .diags = &d, .source = "files" };

                text = render(&src, false);
                json = render(&src, true);
        }
        golden("check-example.txt", text);
        golden("check-example.json", json);
        free(text);
        free(json);
        plan_free(p);
        host_snapshot_clear(&h);
        cfg_model_free(m);
        cfg_diags_clear(&d);
        free(cfg);
}

/* A configuration that does not load: the error with its position, and "cannot
 * evaluate" (status 2). */
static void check_invalid(void **state)
{
        static const char pools[] = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\n"
                                    "spec: {cidr: 10.1.0.0/16}\n---\n"
                                    "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: b}\n"
                                    "spec: {cidr: 10.1.128.0/17}\n";
        const char *names[] = { "pools.yaml" }, *bufs[] = { pools };
        size_t sizes[] = { sizeof(pools) - 1 };
        struct cfg_diags d = {};
        struct cfg_settings s;
        struct cfg_model *m = NULL;
        char *text, *json;

        (void)state;
        assert_int_equal(cfg_settings_load_buffer(NULL, NULL, 0, "node1", &s, &d), 0);
        assert_int_equal(cfg_model_from_buffers(&s, names, bufs, sizes, 1, &m, &d), -EINVAL);
        {
                struct report_source src = { .node = "node1", .diags = &d, .error = "the configuration is invalid" };

                text = render(&src, false);
                json = render(&src, true);
        }
        golden("check-invalid.txt", text);
        golden("check-invalid.json", json);
        free(text);
        free(json);
        cfg_settings_clear(&s);
        cfg_diags_clear(&d);
}

/* The etcd datastore did not answer: where it was looked for, and why. */
static void check_etcd_unreachable(void **state)
{
        struct cfg_diags d = {};
        struct report_source src = {
                .node = "node1",
                .diags = &d,
                .error = "datastore unreachable: https://10.0.0.1:2379: Failed to connect to 10.0.0.1 port 2379",
                .source = "etcdv3",
                .endpoint = "https://10.0.0.1:2379,https://10.0.0.2:2379",
        };
        char *text = render(&src, false), *json = render(&src, true);

        (void)state;
        golden("check-etcd-unreachable.txt", text);
        golden("check-etcd-unreachable.json", json);
        free(text);
        free(json);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(check_example),
                cmocka_unit_test(check_invalid),
                cmocka_unit_test(check_etcd_unreachable),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
