/* Benchmark for the planner's delta passes (issue 16): the CPU one change of a block
 * costs the planner at scale, a delta pass (plan_delta(), then plan_ctx_applied() with
 * the route change as applied) beside the full plan (plan_build()) of the same model
 * and host, and beside the full plan that keeps the context (plan_build_ctx(), what the
 * daemon's full pass costs now). The model is NODES nodes of BLOCKS_PER_NODE /26 blocks
 * each, every node on-link, this node node0; the host holds every route already (a
 * converged node), so the full plan makes no change and the delta plan one (the block
 * moved to another node: replace its route).
 *
 *   bench-plan [NODES [BLOCKS_PER_NODE [CHANGES]]]     (default 5000 20 2000)
 *
 * Prints process CPU time (CLOCK_PROCESS_CPUTIME_ID): the median of 5 full plans of
 * each kind, and the mean over CHANGES delta passes; and the heap the context holds
 * (malloc's count of bytes in use, mallinfo2(), before and after it is made, so the
 * allocator's overhead is in), after the full pass and after the CHANGES deltas. Build it optimised and without
 * sanitizers (`meson test --benchmark plan-delta`, or run the executable). Not the
 * daemon's whole cost per change: the source's update, the kernel write and the
 * journal come on top (tests/bench/bench_change.py measures the daemon end to end). */
#include <arpa/inet.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "load.h"
#include "model.h"
#include "plan.h"
#include "upstream.h"

static double cpu_now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dbl_cmp(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

static char *cluster_yaml(unsigned nodes, unsigned per_node)
{
        char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return NULL;
        fputs("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: underlay}\nspec: {cidr: 10.0.0.0/8, "
              "blockSize: 26, ipipMode: Never, vxlanMode: Never, natOutgoing: false}\n",
              f);
        for (unsigned i = 0; i < nodes; i++)
                fprintf(f, "---\napiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node%u}\n"
                           "spec: {bgp: {ipv4Address: 172.16.%u.%u/16}}\n",
                        i, (i + 2) / 256, (i + 2) % 256);
        for (unsigned k = 0; k < nodes * per_node; k++)
                fprintf(f, "---\napiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata: {name: a%u}\n"
                           "spec: {node: node%u, cidr: 10.%u.%u.%u/26, state: confirmed, deleted: 'false'}\n",
                        k, k / per_node, (k >> 10) & 255, (k >> 2) & 255, (k & 3) * 64);
        fclose(f);
        return buf;
}

static void host_build(struct host_snapshot *h)
{
        h->links = calloc(2, sizeof(*h->links));
        h->addrs = calloc(2, sizeof(*h->addrs));
        h->links[0] = (struct host_link){ .ifindex = 1, .name = "lo", .mtu = 65536, .up = true, .proxy_arp = 0,
                                          .forwarding = 1, .proxy_delay_ms = 800, .proxy_ndp = 0,
                                          .proxy_delay6_ms = 800 };
        h->links[1] = (struct host_link){ .ifindex = 2, .name = "eth0", .mtu = 1500, .up = true, .proxy_arp = 1,
                                          .forwarding = 1, .proxy_delay_ms = 0, .proxy_ndp = 0,
                                          .proxy_delay6_ms = 800 };
        h->n_links = 2;
        h->addrs[0].ifindex = 2;
        cfg_prefix_parse("172.16.0.1/16", true, &h->addrs[0].addr);
        h->n_addrs = 1;
        h->all_forwarding = h->all_forwarding6 = 1;
        /* the default route: the uplink (uplink: auto) */
        h->routes = calloc(1, sizeof(*h->routes));
        h->routes[0] = (struct host_route){ .table = 254, .protocol = 4, .type = HOST_RTN_UNICAST, .oif = 2 };
        h->routes[0].dst.family = AF_INET;
        cfg_addr_parse("172.16.0.254", &h->routes[0].gateway);
        h->n_routes = 1;
}

/* The plan's routes and rules put on the host, as the kernel would hold them. */
static void host_apply(struct host_snapshot *h, const struct plan *p)
{
        size_t nr = 0, nu = 0;

        for (size_t i = 0; i < p->n_actions; i++) {
                nr += p->actions[i].kind == CHANGE_ADD_ROUTE;
                nu += p->actions[i].kind == CHANGE_ADD_RULE;
        }
        h->routes = realloc(h->routes, (h->n_routes + nr + 1) * sizeof(*h->routes));
        h->rules = realloc(h->rules, (h->n_rules + nu + 1) * sizeof(*h->rules));
        for (size_t i = 0; i < p->n_actions; i++) {
                const struct host_change *a = &p->actions[i];

                if (a->kind == CHANGE_ADD_ROUTE)
                        h->routes[h->n_routes++] = a->route;
                else if (a->kind == CHANGE_ADD_RULE)
                        h->rules[h->n_rules++] = *a->rule;
        }
}

int main(int argc, char **argv)
{
        unsigned nodes = argc > 1 ? (unsigned)atoi(argv[1]) : 5000, per = argc > 2 ? (unsigned)atoi(argv[2]) : 20;
        unsigned changes = argc > 3 ? (unsigned)atoi(argv[3]) : 2000;
        char *yaml = cluster_yaml(nodes, per);
        const char *names[] = { "cluster.yaml" }, *bufs[] = { yaml };
        size_t sizes[] = { yaml ? strlen(yaml) : 0 };
        struct cfg_settings s = {};
        struct cfg_diags d = {};
        struct cfg_model *m = NULL;
        struct host_snapshot h = {};
        struct host_record rec = HOST_RECORD_INIT;
        struct plan_ctx *ctx = NULL;
        struct plan *p = NULL;
        struct host_result *res;
        double full[5], keep[5], t0, delta = 0;
        size_t heap0 = 0, heap_full = 0, up_len = 0;
        double up[5];
        size_t n_changes = 0;

        if (!yaml || cfg_settings_load_buffer(NULL, NULL, 0, "node0", &s, &d) < 0 ||
            cfg_model_from_buffers(&s, names, bufs, sizes, 1, &m, &d) < 0) {
                fprintf(stderr, "bench-plan: cannot build the model\n");
                return 1;
        }
        free(yaml);
        host_build(&h);
        if (plan_build(m, &h, &rec, &p) < 0)
                return 1;
        host_apply(&h, p); /* converged: the next plans change nothing */
        rec = p->record;
        plan_free(p);
        for (int r = 0; r < 5; r++) {
                t0 = cpu_now();
                if (plan_build(m, &h, &rec, &p) < 0)
                        return 1;
                full[r] = cpu_now() - t0;
                if (p->n_actions)
                        fprintf(stderr, "bench-plan: the host is not converged (%zu actions)\n", p->n_actions);
                plan_free(p);
                plan_ctx_free(ctx);
                heap0 = mallinfo2().uordblks;
                t0 = cpu_now();
                if (plan_build_ctx(m, &h, &rec, &p, &ctx) < 0 || !ctx)
                        return 1;
                keep[r] = cpu_now() - t0;
                plan_free(p);
                heap_full = mallinfo2().uordblks - heap0;
        }
        res = calloc(4, sizeof(*res));
        for (unsigned i = 0; i < changes; i++) {
                /* a block moves to another node (the model as a source updates it in place) */
                uint32_t k = (uint32_t)(((uint64_t)i * 2654435761u) % m->n_blocks);
                struct cfg_touched t = {};
                const char *why;

                m->blocks[k].node = (m->blocks[k].node + 1 + i % 7) % (uint32_t)m->n_nodes;
                cfg_touched_add(&t, &m->blocks[k].cidr);
                t0 = cpu_now();
                if (plan_delta(ctx, m, &h, &t, &p, &why) != 1) {
                        fprintf(stderr, "bench-plan: no delta pass: %s\n", why ? why : "error");
                        return 1;
                }
                if (plan_ctx_applied(ctx, p->actions, p->n_actions, res) < 0)
                        return 1;
                delta += cpu_now() - t0;
                n_changes += p->n_actions;
                plan_free(p);
                cfg_touched_clear(&t);
        }
        /* upstreamRoutesFile: the daemon computes the upstream routes of the whole model
         * again after each change of it (loop.c keep_upstream_routes()), and writes the
         * file only when its text differs. */
        for (int r = 0; r < 5; r++) {
                struct upstream_input in = {};
                struct upstream *u = NULL;
                char *json = NULL;
                size_t len = 0;

                t0 = cpu_now();
                if (upstream_input_from_model(m, &in) < 0 || upstream_compute(&in, UPSTREAM_AGG_EXACT, &u) < 0 ||
                    upstream_format(u, NULL, UPSTREAM_FMT_JSON, &json, &len) < 0)
                        return 1;
                up[r] = cpu_now() - t0;
                up_len = len;
                free(json);
                upstream_free(u);
                upstream_input_clear(&in);
        }
        qsort(up, 5, sizeof(*up), dbl_cmp);
        qsort(full, 5, sizeof(*full), dbl_cmp);
        qsort(keep, 5, sizeof(*keep), dbl_cmp);
        printf("%zu blocks, %zu nodes\n", m->n_blocks, m->n_nodes);
        printf("full plan (plan_build):              %8.3f ms CPU (median of 5)\n", full[2] * 1e3);
        printf("full plan with context (the daemon): %8.3f ms CPU (median of 5)\n", keep[2] * 1e3);
        printf("delta pass, one block moved:         %8.4f ms CPU (mean of %u; %zu route changes)\n",
               delta / changes * 1e3, changes, n_changes);
        printf("upstream routes, whole model (JSON): %8.3f ms CPU (median of 5; %zu bytes)\n", up[2] * 1e3, up_len);
        printf("context heap after the full pass:    %8.2f MB\n", (double)heap_full / 1e6);
        printf("context heap after the delta passes: %8.2f MB\n", (double)(mallinfo2().uordblks - heap0) / 1e6);
        free(res);
        plan_ctx_free(ctx);
        host_snapshot_clear(&h);
        cfg_model_free(m);
        cfg_diags_clear(&d);
        return 0;
}
