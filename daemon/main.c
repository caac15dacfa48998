/* calico-underlayd: command line and modes. The daemon's event loop lives in
 * loop.c; everything here is argument handling and the one-shot modes. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/capability.h>
#include <linux/nsfs.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "datastore.h"
#include "loop.h"
#include "reconcile.h"
#include "report.h"
#include "source.h"
#include "state.h"
#include "text.h"
#include "upstream.h"
#include "util.h"
#include "version.h"

enum mode {
        MODE_DAEMON,
        MODE_ONCE,
        MODE_CHECK,
        MODE_CLEANUP,
        MODE_UPSTREAM,
};

struct args {
        enum mode mode;
        const char *config;
        const char *format; /* as given; NULL = text */
        bool json;
        const char *since;
        const char *aggregate;
};

static void help(void)
{
        printf("Usage: calico-underlayd [OPTION]...\n"
               "Keep this node's proxy ARP, block routes and tunnel devices matching the Calico IP pools.\n"
               "\n"
               "Modes (default: run as a daemon, reconciling on every change):\n"
               "      --once           reconcile once, print what changed, exit (0 ok, 1 failed,\n"
               "                       2 bad config, datastore unreachable or no CAP_NET_ADMIN\n"
               "                       over the network namespace: none, or only in a user namespace\n"
               "                       that neither owns it nor is an ancestor of its owner)\n"
               "      --check          change nothing; print where the model came from, the plan and\n"
               "                       findings (exit 0 ready, 1 blocking problems, 2 cannot evaluate)\n"
               "      --cleanup        remove every policy rule and route of ours and restore proxy_arp\n"
               "                       and its delay (exit as --once)\n"
               "      --upstream-routes\n"
               "                       change nothing (no netlink at all); print the static routes the\n"
               "                       upstream switch or router needs for every block of every underlay\n"
               "                       pool (borrowed addresses as host routes), read from the configured\n"
               "                       source (exit 0, 1 when some blocks' nodes have no address, 2 on\n"
               "                       a bad configuration or --since file)\n"
               "\n"
               "Options:\n"
               "  -c, --config PATH    settings file (default %s)\n"
               "      --format FORMAT  --check output: text (default) or json; --upstream-routes output:\n"
               "                       text (default), json, ios (Cisco IOS, Arista EOS; also cisco, eos),\n"
               "                       vrp (Huawei VRP, H3C Comware; also huawei, comware), junos, frr,\n"
               "                       bird (BIRD 2 static protocol), ip-batch (ip -batch); an error\n"
               "                       with any other mode (--once prints text only)\n"
               "      --since FILE     --upstream-routes: print only the change since FILE, a previous\n"
               "                       --format json output (removals first, in the syntax's own form)\n"
               "      --aggregate exact|cover-free\n"
               "                       --upstream-routes: merge sibling routes of one node only when they\n"
               "                       are exactly its blocks (exact, default), or also over free space of\n"
               "                       the pool, never over another node's block (cover-free)\n"
               "  -h, --help           show this help and exit\n"
               "      --version        show the version and exit\n"
               "\n"
               "The Calico resources come from files, from Calico's etcd v3 datastore, or from the\n"
               "Kubernetes API (Calico's CRDs and core Nodes, listed and watched). Setting datastore:\n"
               "auto, the default, does what calicoctl would: etcd when %s or\n"
               "ETCD_ENDPOINTS names it, Kubernetes when that file or DATASTORE_TYPE says kubernetes\n"
               "or when %s exists (the variables DATASTORE_TYPE,\n"
               "ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE, ETCD_USERNAME,\n"
               "ETCD_PASSWORD, KUBECONFIG, K8S_API_ENDPOINT, K8S_CURRENT_CONTEXT and CALICO_API_GROUP\n"
               "are calicoctl's). etcd is listed over its gRPC API (HTTP/2: ALPN over https, prior\n"
               "knowledge over http), over its JSON gateway for an endpoint that does not answer\n"
               "gRPC or with CALICO_UNDERLAY_ETCD_GATEWAY=1; it is watched through the gateway,\n"
               "with etcd's progress notifications: a watch silent for CALICO_UNDERLAY_ETCD_WATCH_SILENCE\n"
               "seconds (default 1500; 0 never) is given up and the data listed again. Kubernetes\n"
               "watches are asked to end after CALICO_UNDERLAY_KUBE_WATCH_TIMEOUT seconds (default\n"
               "1800), ended by the daemon a thirtieth later (at least 30 s) when the server has not,\n"
               "and resumed.\n"
               "\n"
               "With the setting upstreamRoutesFile, the daemon keeps the --upstream-routes JSON\n"
               "in that file, rewritten atomically when it changes (after a datastore event or a\n"
               "changed file, at most once a second).\n"
               "\n"
               "Our routes live in a table of their own (routeTable, default 252), consulted for\n"
               "underlay pool destinations after main through two policy rules per pool\n"
               "(priorities 32700 and 32701, protocol routeProtocol): see `ip rule`.\n"
               "\n"
               "The runtime record of the uplink's original settings, and of the protocol and table\n"
               "of our routes, lives in $RUNTIME_DIRECTORY (default %s): a damaged one is kept and\n"
               "reported, never overwritten. In daemon mode, the setting metricsFile names a Prometheus\n"
               "text file for node_exporter's textfile collector (off by default). Every journal\n"
               "MESSAGE_ID has a catalog entry (journalctl -x). See calico-underlayd(8) and\n"
               "calico-underlay.yaml(5).\n",
               CFG_DEFAULT_CONFIG, CFG_DEFAULT_CALICOCTL_CONFIG, CFG_DEFAULT_KUBECONFIG, STATE_DEFAULT_DIR);
}

/* Which options go with which mode: an option the mode would ignore is an error. */
static int check_mode_options(const struct args *a)
{
        enum upstream_format f;
        enum upstream_aggregate agg;

        if (a->mode != MODE_UPSTREAM && (a->since || a->aggregate)) {
                fprintf(stderr, "calico-underlayd: --since and --aggregate go with --upstream-routes\n");
                return -EINVAL;
        }
        if (a->mode == MODE_UPSTREAM) {
                if (a->format && upstream_format_from_name(a->format, &f) < 0) {
                        fprintf(stderr, "calico-underlayd: --format must be text, json, ios, cisco, eos, arista, vrp, "
                                        "huawei, comware, h3c, junos, juniper, frr, bird, bird2 or ip-batch\n");
                        return -EINVAL;
                }
                if (a->aggregate && upstream_aggregate_from_name(a->aggregate, &agg) < 0) {
                        fprintf(stderr, "calico-underlayd: --aggregate must be exact or cover-free\n");
                        return -EINVAL;
                }
                return 0;
        }
        /* --once and --cleanup print their changes as text only, and the daemon logs:
         * a --format there would be silently ignored (an operator asking for JSON must
         * not get text to parse). */
        if (a->format && a->mode != MODE_CHECK) {
                fprintf(stderr, "calico-underlayd: --format goes with --check and --upstream-routes\n");
                return -EINVAL;
        }
        if (a->format && !streq(a->format, "json") && !streq(a->format, "text")) {
                fprintf(stderr, "calico-underlayd: --format must be text or json\n");
                return -EINVAL;
        }
        return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
        enum { OPT_ONCE = 256, OPT_CHECK, OPT_CLEANUP, OPT_FORMAT, OPT_VERSION, OPT_UPSTREAM, OPT_SINCE, OPT_AGGREGATE };
        static const struct option opts[] = {
                { "once", no_argument, NULL, OPT_ONCE },
                { "check", no_argument, NULL, OPT_CHECK },
                { "cleanup", no_argument, NULL, OPT_CLEANUP },
                { "config", required_argument, NULL, 'c' },
                { "format", required_argument, NULL, OPT_FORMAT },
                { "upstream-routes", no_argument, NULL, OPT_UPSTREAM },
                { "since", required_argument, NULL, OPT_SINCE },
                { "aggregate", required_argument, NULL, OPT_AGGREGATE },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };
        int c, modes = 0;

        while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) >= 0) {
                switch (c) {
                case OPT_ONCE:
                        a->mode = MODE_ONCE;
                        modes++;
                        break;
                case OPT_CHECK:
                        a->mode = MODE_CHECK;
                        modes++;
                        break;
                case OPT_CLEANUP:
                        a->mode = MODE_CLEANUP;
                        modes++;
                        break;
                case OPT_UPSTREAM:
                        a->mode = MODE_UPSTREAM;
                        modes++;
                        break;
                case 'c':
                        a->config = optarg;
                        break;
                case OPT_FORMAT:
                        a->format = optarg;
                        a->json = strcmp(optarg, "json") == 0;
                        break;
                case OPT_SINCE:
                        a->since = optarg;
                        break;
                case OPT_AGGREGATE:
                        a->aggregate = optarg;
                        break;
                case 'h':
                        help();
                        return 1;
                case OPT_VERSION:
                        printf("calico-underlayd %s\n", PACKAGE_VERSION);
                        return 1;
                default:
                        return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "calico-underlayd: unexpected argument \"%s\"\n", argv[optind]);
                return -EINVAL;
        }
        if (modes > 1) {
                fprintf(stderr, "calico-underlayd: --once, --check, --cleanup and --upstream-routes exclude each other\n");
                return -EINVAL;
        }
        return check_mode_options(a);
}

/* --once and --cleanup change routes, rules and link settings: without CAP_NET_ADMIN
 * every change fails (EPERM, or the runtime record refused first), which is "no access
 * to rtnetlink" (exit 2), not a failed action (exit 1). Asked before anything is read
 * or written. The capability counts only in the user namespace that owns the network
 * namespace, or in one of its ancestors (user_namespaces(7)): in a user namespace of
 * its own (`unshare --user --map-root-user`, a rootless container) in a network
 * namespace it does not own, a process has every capability and the kernel still
 * refuses each change. NS_GET_USERNS answers EPERM exactly then: the owner is outside
 * the caller's scope. A call that fails otherwise (a kernel before 4.9, no /proc)
 * says nothing: the kernel will decide. *why says what is missing. */
static bool can_change_network(const char **why)
{
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {};
        int fd, owner, e;

        *why = "CAP_NET_ADMIN (run it as root or grant the capability)";
        if (syscall(SYS_capget, &h, d) == 0 && !(d[CAP_TO_INDEX(CAP_NET_ADMIN)].effective & CAP_TO_MASK(CAP_NET_ADMIN)))
                return false;
        fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return true;
        owner = ioctl(fd, NS_GET_USERNS);
        e = errno;
        /* A seccomp filter may answer a blocked ioctl with EPERM too: NS_GET_NSTYPE
         * needs no permission, so its EPERM means the filter, and says nothing. */
        if (owner < 0 && e == EPERM && ioctl(fd, NS_GET_NSTYPE) < 0 && errno == EPERM)
                e = 0;
        close(fd);
        if (owner >= 0) {
                close(owner);
                return true;
        }
        *why = "CAP_NET_ADMIN in the user namespace that owns its network namespace or in one of that one's "
               "ancestors (it runs in a user namespace of its own)";
        return e != EPERM;
}

/* The kernel's host name, lowercased, as Calico derives a node name. */
static const char *host_name(char *buf, size_t size)
{
        struct utsname u;

        if (uname(&u) < 0)
                return NULL;
        snprintf(buf, size, "%s", u.nodename);
        for (char *c = buf; *c; c++)
                *c = (char)tolower((unsigned char)*c);
        return buf;
}

/* CALICO_UNDERLAY_TIMINGS=1: one line on stderr with the time of each phase of
 * --once and --check (tests/bench/bench_scale.py reads it). */
static bool timings_wanted(void)
{
        const char *e = getenv("CALICO_UNDERLAY_TIMINGS");

        return e && *e && strcmp(e, "0") != 0;
}

static void print_timings(uint64_t load_usec, const struct reconcile *r, uint64_t print_usec)
{
        fprintf(stderr,
                "timing: load=%.1fms observe=%.1fms plan=%.1fms apply=%.1fms print=%.1fms actions=%zu failed=%zu\n",
                (double)load_usec / 1e3, (double)r->observe_usec / 1e3, (double)r->plan_usec / 1e3,
                (double)r->apply_usec / 1e3, (double)print_usec / 1e3, r->plan ? r->plan->n_actions : 0,
                r->n_failed);
}

static void print_results(const struct reconcile *r)
{
        char line[512];

        for (size_t i = 0; i < r->plan->n_actions; i++) {
                const struct host_result *res = &r->results[i];

                host_change_fmt(&r->plan->actions[i], line, sizeof(line));
                if (res->error)
                        text_line(stdout, "FAILED %s: %s%s%s", line, strerror(-res->error), res->message ? ": " : "",
                                  host_result_message(res));
                else
                        text_line(stdout, "%s%s%s", line, res->message ? ": " : "", host_result_message(res));
        }
        printf("%zu change%s, %zu failed\n", r->plan->n_actions, r->plan->n_actions == 1 ? "" : "s", r->n_failed);
}

static void report_origin(struct report_source *src, const struct source_origin *o)
{
        src->source = cfg_datastore_name(o->type == CFG_DATASTORE_ETCDV3 || o->type == CFG_DATASTORE_KUBERNETES
                                                 ? o->type
                                                 : CFG_DATASTORE_FILES);
        src->endpoint = o->endpoint[0] ? o->endpoint : NULL;
        src->revision = o->revision;
}

static int run_once_or_check(const struct args *a, const struct cfg_model *m, struct cfg_diags *diags,
                             const char *node, uint64_t load_usec, const struct source_origin *o)
{
        uint64_t t_report;
        char dirbuf[4096];
        const char *dir = state_dir(dirbuf, sizeof(dirbuf));
        struct reconcile r = {};
        struct kern *nl = NULL;
        char err[256] = "";
        int e;

        if ((e = kern_open(&nl)) < 0)
                snprintf(err, sizeof(err), "cannot open rtnetlink: %s", strerror(-e));
        else if ((e = reconcile_run(nl, m, &m->settings, dir, a->mode == MODE_CHECK, &r)) < 0 && !r.plan)
                snprintf(err, sizeof(err), "cannot observe the host: %s", strerror(-e));
        if (o->clear_password[0] && r.plan &&
            plan_add_finding(r.plan, PLAN_WARNING, "datastore-password-in-clear",
                             "the etcd password is sent in clear to %s (http://): use https://",
                             o->clear_password) < 0)
                snprintf(err, sizeof(err), "out of memory");
        if (o->clear_password[0] && a->mode != MODE_CHECK)
                text_line(stderr, "calico-underlayd: warning: the etcd password is sent in clear to %s (http://): "
                                  "use https://",
                          o->clear_password);
        t_report = now_usec();
        if (a->mode == MODE_CHECK) {
                struct report_source src = { .node = node, .model = m, .host = r.plan ? &r.host : NULL,
                                             .plan = r.plan, .diags = diags, .error = err[0] ? err : NULL };

                report_origin(&src, o);
                if (a->json)
                        report_check_json(stdout, &src);
                else
                        report_check_text(stdout, &src);
                e = report_check_status(&src);
        } else if (err[0]) {
                fprintf(stderr, "calico-underlayd: %s\n", err);
                e = 2;
        } else if (r.state_error && !r.results) {
                text_line(stderr, "calico-underlayd: runtime record in %s: %s; nothing changed", dir,
                          r.state_why[0] ? r.state_why : strerror(-r.state_error));
                e = 1;
        } else {
                print_results(&r);
                if (r.state_error)
                        text_line(stderr, "calico-underlayd: error: %s", r.state_why[0] ? r.state_why : strerror(-r.state_error));
                e = r.n_failed || r.state_error ? 1 : 0;
        }
        if (timings_wanted()) {
                fflush(stdout);
                print_timings(load_usec, &r, now_usec() - t_report);
        }
        reconcile_clear(&r);
        kern_close(nl);
        return e;
}

static int run_cleanup(const struct args *a, const char *hn)
{
        struct cfg_diags diags = {};
        struct cfg_settings s = {};
        char dirbuf[4096];
        struct reconcile r = {};
        struct kern *nl = NULL;
        int e;

        e = source_settings(a->config, hn, &s, &diags);
        report_diags(stderr, &diags, false);
        cfg_diags_clear(&diags);
        if (e < 0)
                return 2;
        if ((e = kern_open(&nl)) >= 0)
                e = reconcile_run(nl, NULL, &s, state_dir(dirbuf, sizeof(dirbuf)), false, &r);
        /* As --once: a damaged or refused runtime record is an error (exit 1), since
         * nothing could be restored from it. */
        if (e < 0 && !r.state_error) {
                fprintf(stderr, "calico-underlayd: cleanup failed: %s\n", strerror(-e));
                e = 2;
        } else if (r.state_error && !r.results) {
                text_line(stderr, "calico-underlayd: runtime record in %s: %s; nothing changed", dirbuf,
                          r.state_why[0] ? r.state_why : strerror(-r.state_error));
                e = 1;
        } else {
                print_results(&r);
                if (r.state_error)
                        text_line(stderr, "calico-underlayd: error: %s",
                                  r.state_why[0] ? r.state_why : strerror(-r.state_error));
                e = r.n_failed || r.state_error ? 1 : 0;
        }
        reconcile_clear(&r);
        kern_close(nl);
        cfg_settings_clear(&s);
        return e;
}

/* --since FILE: a previous JSON output. */
static int load_since(const char *path, struct upstream **ret)
{
        _cleanup_(freep) char *buf = NULL;
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        char why[512];
        size_t len = 0, cap = 0, n;
        int e;

        if (!f) {
                fprintf(stderr, "calico-underlayd: --since %s: %s\n", path, strerror(errno));
                return -errno;
        }
        do {
                if (GROW(buf, cap, len + 65536 + 1) < 0)
                        return -ENOMEM;
                n = fread(buf + len, 1, cap - len - 1, f);
                len += n;
        } while (n > 0);
        if (ferror(f)) {
                fprintf(stderr, "calico-underlayd: --since %s: read error\n", path);
                return -EIO;
        }
        buf[len] = '\0';
        e = upstream_parse_json(buf, len, ret, why, sizeof(why));
        if (e < 0)
                fprintf(stderr, "calico-underlayd: --since %s%s%s\n", path, why[0] >= '0' && why[0] <= '9' ? ":" : ": ",
                        e == -ENOMEM ? strerror(ENOMEM) : why);
        return e;
}

static void print_missing(const struct upstream *u)
{
        char p[CFG_PREFIX_STRLEN];

        for (size_t i = 0; i < u->n_missing; i++) {
                cfg_prefix_fmt(&u->missing[i].dst, p, sizeof(p));
                fprintf(stderr, "calico-underlayd: no route for %s%s of node %s: the node has no IPv%c address\n",
                        u->missing[i].borrowed ? "borrowed address " : "block ", p, u->missing[i].node,
                        u->missing[i].dst.family == AF_INET6 ? '6' : '4');
        }
}

/* --upstream-routes: model → routes → text on stdout. Opens no netlink socket and
 * changes nothing: it needs only what reading the source needs. */
static int run_upstream(const struct args *a, const struct cfg_model *m)
{
        enum upstream_format f = UPSTREAM_FMT_TEXT;
        enum upstream_aggregate agg = UPSTREAM_AGG_EXACT;
        struct upstream_input in = {};
        struct upstream *u = NULL, *prev = NULL;
        _cleanup_(freep) char *out = NULL;
        char sum[256];
        size_t len;
        int e;

        if (a->format)
                (void)upstream_format_from_name(a->format, &f); /* checked in parse_args */
        if (a->aggregate)
                (void)upstream_aggregate_from_name(a->aggregate, &agg);
        if (a->since && load_since(a->since, &prev) < 0)
                return 2;
        e = upstream_input_from_model(m, &in);
        if (e >= 0)
                e = upstream_compute(&in, agg, &u);
        if (e >= 0)
                e = upstream_format(u, prev, f, &out, &len);
        if (e < 0) {
                fprintf(stderr, "calico-underlayd: upstream routes: %s\n", strerror(-e));
                e = 2;
        } else {
                fwrite(out, 1, len, stdout);
                if (f != UPSTREAM_FMT_JSON)
                        print_missing(u);
                if (f != UPSTREAM_FMT_JSON && f != UPSTREAM_FMT_TEXT) {
                        upstream_summary(u, sum, sizeof(sum));
                        fprintf(stderr, "calico-underlayd: upstream routes: %s\n", sum);
                }
                if (prev && f == UPSTREAM_FMT_BIRD)
                        fprintf(stderr, "calico-underlayd: BIRD has no incremental form: printed the whole "
                                        "protocol (birdc configure applies it)\n");
                e = fflush(stdout) != 0 ? 2 : u->n_missing ? 1 : 0;
        }
        upstream_free(u);
        upstream_free(prev);
        upstream_input_clear(&in);
        return e;
}

/* The node --check names when the model failed to load: the settings' nodeName when
 * the settings themselves are valid (the error is elsewhere), else the host name. */
static const char *check_node_name(const struct args *a, const char *host, struct cfg_settings *s)
{
        struct cfg_diags d = {};
        int r = source_settings(a->config, host, s, &d);

        cfg_diags_clear(&d);
        return r >= 0 && s->node_name ? s->node_name : host;
}

int main(int argc, char **argv)
{
        struct args a = {};
        struct cfg_diags diags = {};
        struct cfg_model *m = NULL;
        struct source_origin o = {};
        char hn[256], why[2300];
        const char *missing;
        const char *node;
        uint64_t load_usec;
        int r;

        /* Fixed thresholds: glibc raises its mmap threshold after each large free, so
         * from the second model on the big arrays (100k blocks and their claims, 200k
         * with IPAMBlocks) land in the heap, which it cannot give back between holes:
         * measured at 100k blocks with IPAMBlocks, the daemon's RSS grew 3-7 MB on every
         * reload (22 MB to 39 MB in four); with these it stays at 13 MB, peak 25 MB. */
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        mallopt(M_TRIM_THRESHOLD, 128 * 1024);
        r = parse_args(argc, argv, &a);
        if (r != 0)
                return r > 0 ? 0 : 2;
        node = host_name(hn, sizeof(hn));
        if ((a.mode == MODE_ONCE || a.mode == MODE_CLEANUP) && !can_change_network(&missing)) {
                fprintf(stderr, "calico-underlayd: %s needs %s; nothing changed\n",
                        a.mode == MODE_ONCE ? "--once" : "--cleanup", missing);
                return 2;
        }
        if (a.mode == MODE_CLEANUP)
                return run_cleanup(&a, node);
        if (a.mode == MODE_DAEMON)
                return loop_run(a.config, node);
        load_usec = now_usec();
        r = source_load_once(a.config, node, &m, &diags, &o, why, sizeof(why));
        load_usec = now_usec() - load_usec;
        if (r < 0) {
                if (a.mode == MODE_CHECK) {
                        _cleanup_(cfg_settings_clear) struct cfg_settings s = {};
                        struct report_source src = { .node = check_node_name(&a, node, &s), .diags = &diags,
                                                     .error = why[0] ? why : "the configuration is invalid" };

                        report_origin(&src, &o);
                        if (a.json)
                                report_check_json(stdout, &src);
                        else
                                report_check_text(stdout, &src);
                } else {
                        report_diags(stderr, &diags, true);
                        if (why[0])
                                fprintf(stderr, "calico-underlayd: %s\n", why);
                }
                cfg_diags_clear(&diags);
                return 2;
        }
        if (a.mode == MODE_ONCE || a.mode == MODE_UPSTREAM)
                report_diags(stderr, &diags, true);
        if (a.mode == MODE_UPSTREAM) {
                r = run_upstream(&a, m);
                cfg_model_free(m);
                cfg_diags_clear(&diags);
                return r;
        }
        r = run_once_or_check(&a, m, &diags, m->settings.node_name, load_usec, &o);
        cfg_model_free(m);
        cfg_diags_clear(&diags);
        return r;
}
