/* Unit tests for daemon/metrics.c: what a pass counts (from a hand-built plan, snapshot
 * and results) and the exact text it prints, checked line by line against the
 * Prometheus text format's rules (every sample's family has HELP and TYPE before it,
 * counters end in _total, label values escaped). promtool and a real node_exporter
 * check the file the daemon writes in tests/daemon/test_metrics.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "util.h"

static char *fmt(const struct metrics *m, double now)
{
        char *text = NULL;

        assert_int_equal(metrics_format(m, "0.1.0", now, &text), 0);
        assert_non_null(text);
        return text;
}

/* The line "NAME VALUE" (NAME with its labels) is in text, exactly. */
static void assert_line(const char *text, const char *line)
{
        size_t n = strlen(line);

        for (const char *p = text; (p = strstr(p, line)); p++)
                if ((p == text || p[-1] == '\n') && p[n] == '\n')
                        return;
        fail_msg("no line \"%s\" in:\n%s", line, text);
}

static void assert_no_sample(const char *text, const char *name)
{
        char key[128];

        snprintf(key, sizeof(key), "\ncalico_underlay_%s", name);
        for (const char *p = text; (p = strstr(p, key)); p++)
                if (p[strlen(key)] == ' ' || p[strlen(key)] == '{')
                        fail_msg("unexpected sample %s in:\n%s", name, text);
}

/* The text format's rules, as far as this exporter uses them. */
static void assert_well_formed(const char *text)
{
        _cleanup_(freep) char *copy = strdup(text);
        char family[128] = "", type[16] = "", help_for[128] = "";
        regex_t sample;
        size_t n_samples = 0;

        assert_int_equal(regcomp(&sample,
                                 "^(calico_underlay_[a-z_]+)(\\{[a-z]+=\"([^\"\\\\]|\\\\.)*\"\\})? "
                                 "(-?[0-9]+(\\.[0-9]+)?|\\+Inf)$",
                                 REG_EXTENDED),
                         0);
        assert_true(text[strlen(text) - 1] == '\n');
        for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                regmatch_t mt[2];
                char name[128];

                if (sscanf(line, "# HELP %127s", help_for) == 1)
                        continue;
                if (sscanf(line, "# TYPE %127s %15s", family, type) == 2) {
                        assert_string_equal(family, help_for); /* HELP, then TYPE, per family */
                        assert_true(streq(type, "gauge") || streq(type, "counter") || streq(type, "histogram"));
                        if (streq(type, "counter"))
                                assert_non_null(strstr(family, "_total"));
                        continue;
                }
                if (regexec(&sample, line, 2, mt, 0) != 0)
                        fail_msg("not a sample line: \"%s\"", line);
                snprintf(name, sizeof(name), "%.*s", (int)(mt[1].rm_eo - mt[1].rm_so), line + mt[1].rm_so);
                /* a sample belongs to the family declared last (histograms: _bucket, _sum, _count) */
                if (!streq(name, family) &&
                    !(streq(type, "histogram") && strncmp(name, family, strlen(family)) == 0))
                        fail_msg("sample %s outside its family (last TYPE: %s)", name, family);
                n_samples++;
        }
        regfree(&sample);
        assert_true(n_samples > 10);
}

static void test_fresh(void **state)
{
        struct metrics m;
        _cleanup_(freep) char *t = NULL;

        (void)state;
        metrics_init(&m);
        t = fmt(&m, 1000);
        assert_well_formed(t);
        assert_line(t, "calico_underlay_build_info{version=\"0.1.0\"} 1");
        assert_line(t, "calico_underlay_underlay_mode 0");
        assert_line(t, "calico_underlay_block_routes{state=\"ours\"} 0");
        assert_line(t, "calico_underlay_block_routes{state=\"needs_upstream\"} 0");
        assert_line(t, "calico_underlay_pass_duration_seconds_bucket{le=\"+Inf\"} 0");
        assert_line(t, "calico_underlay_pass_duration_seconds_count 0");
        assert_line(t, "calico_underlay_failed_actions_total{kind=\"add-route\"} 0");
        assert_line(t, "calico_underlay_changes_total{kind=\"remove-tunnel\"} 0");
        assert_line(t, "# TYPE calico_underlay_drift_repairs_total counter");
        /* unknown yet: absent, not 0 */
        assert_no_sample(t, "proxy_arp");
        assert_no_sample(t, "proxy_delay_seconds");
        assert_no_sample(t, "last_success_timestamp_seconds");
        assert_no_sample(t, "model_age_seconds");
        assert_no_sample(t, "datastore_up");
}

/* node1 in underlay mode: eth0 (proxy_arp 0, delay 800 ms), vxlan.calico and tunl0 up. */
struct fixture {
        struct host_link links[3];
        struct host_snapshot h;
        struct host_tunnel tun;
        struct host_change actions[5];
        struct host_result results[5];
        struct plan plan;
        struct cfg_settings s;
};

static void fixture(struct fixture *f)
{
        *f = (struct fixture){
                .links = { { .ifindex = 2, .name = "eth0", .up = true, .proxy_arp = 0, .proxy_delay_ms = 800 },
                           { .ifindex = 3, .name = "vxlan.calico", .kind = "vxlan", .up = true, .proxy_arp = -1 },
                           { .ifindex = 4, .name = "tunl0", .kind = "ipip", .up = true, .proxy_arp = -1 } },
                .actions = { { .kind = CHANGE_SET_PROXY_DELAY, .ifindex = 2, .dev = "eth0", .value = 0 },
                             { .kind = CHANGE_SET_PROXY_ARP, .ifindex = 2, .dev = "eth0", .value = 1 },
                             { .kind = CHANGE_ADD_ROUTE, .ifindex = 2, .dev = "eth0" },
                             { .kind = CHANGE_ADD_ROUTE, .ifindex = 2, .dev = "eth0" },
                             { .kind = CHANGE_REMOVE_TUNNEL, .ifindex = 3, .dev = "vxlan.calico" } },
                .s = { .tunnel_ipip = "tunl0", .tunnel_vxlan = "vxlan.calico", .tunnel_vxlan_v6 = "vxlan-v6.calico" },
        };
        f->h = (struct host_snapshot){ .links = f->links, .n_links = 3 };
        f->actions[4].tunnel = &f->tun;
        f->plan = (struct plan){ .underlay = true, .uplink = 2, .uplink_name = "eth0", .actions = f->actions,
                                 .n_actions = 5, .n_routes_wanted = 5, .n_routes_foreign = 1,
                                 .n_routes_conflicting = 1, .n_blocks_upstream = 2, .n_borrowed = 3,
                                 .n_borrowed_upstream = 1 };
        f->results[3].error = -EINVAL;
}

static struct metrics_pass pass_of(struct fixture *f, double seconds, bool drift)
{
        return (struct metrics_pass){ .plan = &f->plan, .host = &f->h, .results = f->results, .settings = &f->s,
                                      .seconds = seconds, .now = 1700000000.25, .drift = drift };
}

static void test_pass(void **state)
{
        struct fixture f;
        struct metrics m;
        struct metrics_pass p;
        _cleanup_(freep) char *t = NULL;

        (void)state;
        fixture(&f);
        metrics_init(&m);
        p = pass_of(&f, 0.02, true);
        metrics_observe_pass(&m, &p);
        m.datastore = "files";
        m.datastore_up = true;
        m.model_time = 1699999990.0;
        t = fmt(&m, 1700000000.25);
        assert_well_formed(t);
        assert_line(t, "calico_underlay_underlay_mode 1");
        /* what the changes that worked set, not what was observed before them */
        assert_line(t, "calico_underlay_proxy_arp{interface=\"eth0\"} 1");
        assert_line(t, "calico_underlay_proxy_delay_seconds{interface=\"eth0\"} 0.000");
        assert_line(t, "calico_underlay_block_routes{state=\"ours\"} 3");
        assert_line(t, "calico_underlay_block_routes{state=\"other_protocol\"} 1");
        assert_line(t, "calico_underlay_block_routes{state=\"conflicting\"} 1");
        assert_line(t, "calico_underlay_block_routes{state=\"needs_upstream\"} 3"); /* 2 blocks, 1 address */
        assert_line(t, "calico_underlay_borrowed_addresses 3");
        /* vxlan.calico removed; tunl0 untouched and up */
        assert_line(t, "calico_underlay_tunnels_present 1");
        assert_line(t, "calico_underlay_changes_total{kind=\"add-route\"} 1");
        assert_line(t, "calico_underlay_changes_total{kind=\"set-proxy-arp\"} 1");
        assert_line(t, "calico_underlay_changes_total{kind=\"remove-tunnel\"} 1");
        assert_line(t, "calico_underlay_failed_actions_total{kind=\"add-route\"} 1");
        assert_line(t, "calico_underlay_failed_actions_total{kind=\"delete-route\"} 0");
        assert_line(t, "calico_underlay_drift_repairs_total 4"); /* the four that worked */
        assert_line(t, "calico_underlay_pass_duration_seconds_bucket{le=\"0.01\"} 0");
        assert_line(t, "calico_underlay_pass_duration_seconds_bucket{le=\"0.05\"} 1");
        assert_line(t, "calico_underlay_pass_duration_seconds_bucket{le=\"+Inf\"} 1");
        assert_line(t, "calico_underlay_pass_duration_seconds_sum 0.020000");
        assert_line(t, "calico_underlay_pass_duration_seconds_count 1");
        assert_line(t, "calico_underlay_datastore_up{datastore=\"files\"} 1");
        assert_line(t, "calico_underlay_model_timestamp_seconds 1699999990.000000");
        assert_line(t, "calico_underlay_model_age_seconds 10.250000");
        assert_no_sample(t, "last_success_timestamp_seconds"); /* an action failed */
}

/* A failed proxy_arp change leaves the observed value; a converged pass stamps the
 * time; a pass that never planned counts but keeps the last state. */
static void test_later_passes(void **state)
{
        struct fixture f;
        struct metrics m;
        struct metrics_pass p;
        _cleanup_(freep) char *t = NULL;

        (void)state;
        fixture(&f);
        metrics_init(&m);
        f.results[1].error = -EPERM;
        f.results[3].error = 0;
        p = pass_of(&f, 2.0, false);
        metrics_observe_pass(&m, &p);
        f.plan.n_actions = 0;
        f.links[0].proxy_arp = 1;
        p = pass_of(&f, 0.0005, false);
        p.converged = true;
        metrics_observe_pass(&m, &p);
        p = (struct metrics_pass){ .seconds = 0.0001, .now = 1700000100 };
        metrics_observe_pass(&m, &p);
        t = fmt(&m, 1700000100);
        assert_well_formed(t);
        assert_line(t, "calico_underlay_proxy_arp{interface=\"eth0\"} 1");
        assert_line(t, "calico_underlay_failed_actions_total{kind=\"set-proxy-arp\"} 1");
        assert_line(t, "calico_underlay_drift_repairs_total 0");
        assert_line(t, "calico_underlay_last_success_timestamp_seconds 1700000000.250000");
        /* vxlan.calico is still in this snapshot, but the first pass removed it: the
         * second planned nothing, so it counts as observed */
        assert_line(t, "calico_underlay_tunnels_present 2");
        assert_line(t, "calico_underlay_pass_duration_seconds_bucket{le=\"0.001\"} 2");
        assert_line(t, "calico_underlay_pass_duration_seconds_bucket{le=\"1\"} 2");
        assert_line(t, "calico_underlay_pass_duration_seconds_bucket{le=\"5\"} 3");
        assert_line(t, "calico_underlay_pass_duration_seconds_count 3");
        assert_line(t, "calico_underlay_underlay_mode 1");
}

static void test_escaping_and_no_uplink(void **state)
{
        struct fixture f;
        struct metrics m;
        struct metrics_pass p;
        char *t;

        (void)state;
        fixture(&f);
        metrics_init(&m);
        snprintf(f.links[0].name, sizeof(f.links[0].name), "a\"b\\c");
        snprintf(f.plan.uplink_name, sizeof(f.plan.uplink_name), "a\"b\\c");
        p = pass_of(&f, 0.1, false);
        metrics_observe_pass(&m, &p);
        t = fmt(&m, 0);
        assert_well_formed(t);
        assert_line(t, "calico_underlay_proxy_arp{interface=\"a\\\"b\\\\c\"} 1");
        free(t);
        /* the uplink gone: no proxy_arp sample rather than a wrong one */
        f.plan.uplink = 0;
        p = pass_of(&f, 0.1, false);
        metrics_observe_pass(&m, &p);
        t = fmt(&m, 0);
        assert_no_sample(t, "proxy_arp");
        assert_no_sample(t, "proxy_delay_seconds");
        free(t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fresh),
                cmocka_unit_test(test_pass),
                cmocka_unit_test(test_later_passes),
                cmocka_unit_test(test_escaping_and_no_uplink),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
