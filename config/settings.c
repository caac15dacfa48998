/* Settings: /etc/calico-underlay/config.yaml → struct cfg_settings.
 *
 * Every key is optional and every default is applied here, so the rest of the program
 * never asks "was this set?". Unknown keys are errors: a typo must not silently fall
 * back to a default. Reads only the settings file (calicoctl's file is datastore.c's). */
#include <arpa/inet.h>
#include <libgen.h>
#include <net/if.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loader.h"
#include "util.h"
#include "yval.h"

struct settings_ctx {
        struct yctx y;
        struct cfg_settings *s;
        unsigned n_docs;
};

/* rtnetlink protocol numbers other routing software owns (iproute2's rt_protos and
 * Felix's 80). Owning one of them would make us delete someone else's routes. */
static const uint8_t reserved_protocols[] = { 0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 42,
                                              80, 99, 186, 187, 188, 189, 192 };

bool cfg_route_protocol_reserved(unsigned p)
{
        for (size_t i = 0; i < ELEMENTSOF(reserved_protocols); i++)
                if (reserved_protocols[i] == p)
                        return true;
        return false;
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
static bool addr_is_loopback(const struct cfg_prefix *a)
{
        static const uint8_t v6_loopback[16] = { [15] = 1 };
        static const uint8_t v4_mapped[12] = { [10] = 0xff, [11] = 0xff };

        if (a->family == AF_INET)
                return a->addr[0] == 127;
        return memcmp(a->addr, v6_loopback, 16) == 0 || (memcmp(a->addr, v4_mapped, 12) == 0 && a->addr[12] == 127);
}

static bool ifname_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n >= IFNAMSIZ || streq(s, ".") || streq(s, ".."))
                return false;
        for (; *s; s++)
                if (*s == '/' || *s == ':' || *s <= ' ' || *s == 0x7f)
                        return false;
        return true;
}

/* A node name is a key in etcd and a name in the Kubernetes API: no separator, no
 * space or control character (a newline would forge lines in our own output). Upper
 * case is left alone: a host name may have it, and it then simply matches no Node. */
static bool node_name_valid(const char *s)
{
        size_t n = strlen(s);

        if (n > CFG_MAX_NAME)
                return false; /* empty is "no nodeName set", said later */
        for (; *s; s++)
                if (*s == '/' || (unsigned char)*s <= ' ' || *s == 0x7f)
                        return false;
        return true;
}

static int set_str(char **dst, const char *v)
{
        char *d = strdup(v);

        if (!d)
                return -ENOMEM;
        free(*dst);
        *dst = d;
        return 0;
}

static int parse_uplink(struct settings_ctx *c, const struct ynode *n)
{
        struct cfg_settings *s = c->s;
        const char *v;
        int r;

        r = yread_str(&c->y, n, "uplink", &v);
        if (r < 0)
                return r;
        if (streq(v, "auto")) {
                s->uplink_mode = CFG_UPLINK_AUTO;
                return 0;
        }
        if (strncmp(v, "interface=", 10) == 0) {
                regex_t re;

                if (!v[10])
                        return yerr(&c->y, n, "uplink: interface= needs a regular expression");
                r = regcomp(&re, v + 10, REG_EXTENDED | REG_NOSUB);
                if (r != 0) {
                        char msg[128];

                        regerror(r, &re, msg, sizeof(msg));
                        return yerr(&c->y, n, "uplink: bad regular expression \"%s\": %s", v + 10, msg);
                }
                regfree(&re);
                s->uplink_mode = CFG_UPLINK_REGEX;
                return set_str(&s->uplink, v + 10);
        }
        if (strncmp(v, "can-reach=", 10) == 0) {
                if (cfg_addr_parse(v + 10, &s->uplink_reach) < 0)
                        return yerr(&c->y, n, "uplink: can-reach= needs an IP address, not \"%s\"", v + 10);
                /* The route to a loopback address leaves through lo, never an uplink. */
                if (addr_is_loopback(&s->uplink_reach))
                        return yerr(&c->y, n, "uplink: can-reach=%s is a loopback address", v + 10);
                s->uplink_mode = CFG_UPLINK_CAN_REACH;
                return set_str(&s->uplink, v + 10);
        }
        if (strchr(v, '='))
                return yerr(&c->y, n,
                            "uplink: unknown detection method \"%s\" (use auto, a device name, interface=REGEX "
                            "or can-reach=ADDRESS)",
                            v);
        if (!ifname_valid(v))
                return yerr(&c->y, n, "uplink: \"%s\" is not a valid interface name", v);
        if (streq(v, "lo"))
                return yerr(&c->y, n, "uplink: lo is the loopback device, never an uplink");
        s->uplink_mode = CFG_UPLINK_NAME;
        return set_str(&s->uplink, v);
}

static int parse_labels(struct settings_ctx *c, const struct ynode *n)
{
        int r;

        cfg_labels_clear(&c->s->node_labels);
        if ((r = yread_labels(&c->y, n, "nodeLabels", &c->s->node_labels)) < 0 ||
            (r = cfg_labels_seal(&c->s->node_labels)) < 0)
                return r;
        c->s->has_node_labels = true;
        return 0;
}

static int resolve_path(const char *base_file, const char *p, char **ret)
{
        _cleanup_(freep) char *copy = NULL;
        char *dir;

        if (p[0] == '/' || !base_file)
                return (*ret = strdup(p)) ? 0 : -ENOMEM;
        copy = strdup(base_file);
        if (!copy)
                return -ENOMEM;
        dir = dirname(copy);
        return asprintf(ret, "%s/%s", dir, p) < 0 ? -ENOMEM : 0;
}

static void free_resources(struct cfg_settings *s)
{
        for (size_t i = 0; i < s->n_resources; i++)
                free(s->resources[i]);
        free(s->resources);
        s->resources = NULL;
        s->n_resources = 0;
}

static int parse_resources(struct settings_ctx *c, const struct ynode *n)
{
        const struct ynode *one = n;
        size_t count = 1;
        char **v;
        int r;

        if (n && n->kind == YN_SEQ) {
                count = n->n;
                if (count == 0)
                        return yerr(&c->y, n, "resources must name at least one file or directory");
                if (count > 1024)
                        return yerr(&c->y, n, "resources: more than 1024 entries");
        }
        v = calloc(count, sizeof(*v));
        if (!v)
                return -ENOMEM;
        free_resources(c->s);
        c->s->resources = v;
        for (size_t i = 0; i < count; i++) {
                const char *p;

                if (n && n->kind == YN_SEQ)
                        one = n->items[i];
                r = yread_str(&c->y, one, "resources entry", &p);
                if (r < 0)
                        return r;
                if (!*p) /* would name the settings file's own folder */
                        return yerr(&c->y, one, "resources entry is empty");
                r = resolve_path(c->y.file, p, &v[i]);
                if (r < 0)
                        return r;
                c->s->n_resources++;
        }
        return 0;
}

static int parse_tunnels(struct settings_ctx *c, const struct ynode *n)
{
        static const char *const keys[] = { "ipip", "vxlan", "vxlanV6" };
        char **dst[] = { &c->s->tunnel_ipip, &c->s->tunnel_vxlan, &c->s->tunnel_vxlan_v6 };
        int r;

        r = yexpect_map(&c->y, n, "tunnelDevices");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n->n; i++) {
                const struct ynode *k = n->pairs[i].key, *val = n->pairs[i].val;
                size_t j;
                const char *v;

                for (j = 0; j < ELEMENTSOF(keys); j++)
                        if (streq(k->str, keys[j]))
                                break;
                if (j == ELEMENTSOF(keys))
                        return yerr(&c->y, k, "tunnelDevices: unknown key \"%s\" (known: ipip, vxlan, vxlanV6)",
                                    k->str);
                r = yread_str(&c->y, val, "a tunnel device name", &v);
                if (r < 0)
                        return r;
                if (!ifname_valid(v))
                        return yerr(&c->y, val, "tunnelDevices.%s: \"%s\" is not a valid interface name", keys[j],
                                    v);
                r = set_str(dst[j], v);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_datastore(struct settings_ctx *c, const struct ynode *n)
{
        const char *v;
        int r;

        r = yread_str(&c->y, n, "datastore", &v);
        if (r < 0)
                return r;
        if (streq(v, "auto"))
                c->s->datastore = CFG_DATASTORE_AUTO;
        else if (streq(v, "files"))
                c->s->datastore = CFG_DATASTORE_FILES;
        else if (streq(v, "etcdv3"))
                c->s->datastore = CFG_DATASTORE_ETCDV3;
        else if (streq(v, "kubernetes"))
                c->s->datastore = CFG_DATASTORE_KUBERNETES;
        else
                return yerr(&c->y, n, "datastore must be auto, files, etcdv3 or kubernetes, not \"%s\"", v);
        return 0;
}

/* upstreamRoutesFile: where the daemon keeps the upstream routes (JSON), an absolute
 * path (it is written, not read, so a path relative to the settings file would only
 * surprise); upstreamRoutesAggregate: exact or cover-free. */
static int parse_upstream_aggregate(struct settings_ctx *c, const struct ynode *v)
{
        const char *str;
        int r;

        if ((r = yread_str(&c->y, v, "upstreamRoutesAggregate", &str)) < 0)
                return r;
        if (!streq(str, "exact") && !streq(str, "cover-free"))
                return yerr(&c->y, v, "upstreamRoutesAggregate must be exact or cover-free, not \"%s\"", str);
        c->s->upstream_cover_free = streq(str, "cover-free");
        return 0;
}

static int parse_upstream_file(struct settings_ctx *c, const struct ynode *v)
{
        const char *str;
        int r;

        if ((r = yread_str(&c->y, v, "upstreamRoutesFile", &str)) < 0)
                return r;
        if (str[0] != '/' || str[strlen(str) - 1] == '/')
                return yerr(&c->y, v, "upstreamRoutesFile must be an absolute file path, not \"%s\"", str);
        return set_str(&c->s->upstream_routes_file, str);
}

/* node_exporter's textfile collector reads only *.prom files from one folder, and the
 * daemon writes there from a service whose working directory means nothing: an
 * absolute path ending in .prom, or an error now rather than metrics that never show. */
static int parse_metrics_file(struct settings_ctx *c, const struct ynode *n)
{
        const char *v;
        size_t len;
        int r;

        r = yread_str(&c->y, n, "metricsFile", &v);
        if (r < 0)
                return r;
        len = strlen(v);
        if (v[0] != '/')
                return yerr(&c->y, n, "metricsFile must be an absolute path, not \"%s\"", v);
        if (len < 6 || !streq(v + len - 5, ".prom") || v[len - 6] == '/')
                return yerr(&c->y, n,
                            "metricsFile must name a file ending in .prom (node_exporter's textfile collector "
                            "reads only those), not \"%s\"",
                            v);
        if (len >= 4096)
                return yerr(&c->y, n, "metricsFile is longer than a path can be");
        return set_str(&c->s->metrics_file, v);
}

static int parse_node_name(struct settings_ctx *c, const struct ynode *v)
{
        const char *str;
        int r;

        if ((r = yread_str(&c->y, v, "nodeName", &str)) < 0)
                return r;
        if (!node_name_valid(str))
                return yerr(&c->y, v,
                            "nodeName must be a Kubernetes node name (at most %d bytes; no spaces, slashes or "
                            "control characters)",
                            CFG_MAX_NAME);
        return set_str(&c->s->node_name, str);
}

static int parse_resources_key(struct settings_ctx *c, const struct ynode *v)
{
        c->s->has_resources = true;
        return parse_resources(c, v);
}

static int parse_calicoctl_config(struct settings_ctx *c, const struct ynode *v)
{
        const char *str;
        int r;

        if ((r = yread_str(&c->y, v, "calicoctlConfig", &str)) < 0)
                return r;
        if (!*str)
                return yerr(&c->y, v, "calicoctlConfig is empty");
        free(c->s->calicoctl_config);
        c->s->calicoctl_config = NULL;
        return resolve_path(c->y.file, str, &c->s->calicoctl_config);
}

static int parse_kubeconfig(struct settings_ctx *c, const struct ynode *v)
{
        const char *str;
        int r;

        if ((r = yread_str(&c->y, v, "kubeconfig", &str)) < 0)
                return r;
        if (!*str)
                return yerr(&c->y, v, "kubeconfig is empty");
        free(c->s->kubeconfig);
        c->s->kubeconfig = NULL;
        return resolve_path(c->y.file, str, &c->s->kubeconfig);
}

static int parse_route_protocol(struct settings_ctx *c, const struct ynode *v)
{
        uint64_t u;
        int r;

        if ((r = yread_uint(&c->y, v, "routeProtocol", 1, 255, &u)) < 0)
                return r;
        if (cfg_route_protocol_reserved((unsigned)u))
                return yerr(&c->y, v,
                            "routeProtocol %llu belongs to other routing software (kernel 2, boot 3, static 4, "
                            "bird 12, Felix 80, ...): pick an unused number",
                            (unsigned long long)u);
        c->s->route_protocol = (uint8_t)u;
        return 0;
}

static int parse_route_metric(struct settings_ctx *c, const struct ynode *v)
{
        uint64_t u;
        int r = yread_uint(&c->y, v, "routeMetric", 0, UINT32_MAX, &u);

        c->s->route_metric = (uint32_t)u;
        return r;
}

static int parse_route_table(struct settings_ctx *c, const struct ynode *v)
{
        uint64_t u;
        int r;

        /* Our routes must stay out of the tables BIRD's kernel protocol scans (main) and
         * the kernel's own: rules route pool traffic to ours after main has been
         * consulted (DESIGN.md §3.2). */
        if (v && v->kind == YN_SCALAR &&
            (streq(v->str, "main") || streq(v->str, "local") || streq(v->str, "default")))
                return yerr(&c->y, v, "routeTable %s is a table of the kernel's: our routes need a table of their own "
                            "(default %u)", v->str, CFG_DEFAULT_ROUTE_TABLE);
        if ((r = yread_uint(&c->y, v, "routeTable", 1, UINT32_MAX, &u)) < 0)
                return r;
        if (u >= 253 && u <= 255)
                return yerr(&c->y, v, "routeTable %llu is the kernel's %s table: our routes need a table of their own "
                            "(default %u)", (unsigned long long)u, u == 253 ? "default" : u == 254 ? "main" : "local",
                            CFG_DEFAULT_ROUTE_TABLE);
        c->s->route_table = (uint32_t)u;
        return 0;
}

static int parse_local_block_route(struct settings_ctx *c, const struct ynode *v)
{
        static const struct {
                const char *name;
                enum cfg_local_route value;
        } kinds[] = { { "blackhole", CFG_LOCAL_BLACKHOLE },
                      { "unreachable", CFG_LOCAL_UNREACHABLE },
                      { "none", CFG_LOCAL_NONE } };
        const char *str;
        int r;

        if ((r = yread_str(&c->y, v, "localBlockRoute", &str)) < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                if (streq(str, kinds[i].name)) {
                        c->s->local_block_route = kinds[i].value;
                        return 0;
                }
        return yerr(&c->y, v, "localBlockRoute must be blackhole, unreachable or none, not \"%s\"", str);
}

static int parse_resync_seconds(struct settings_ctx *c, const struct ynode *v)
{
        uint64_t u;
        int r = yread_uint(&c->y, v, "resyncSeconds", 0, 7 * 86400, &u);

        c->s->resync_seconds = (uint32_t)u;
        return r;
}

static int parse_proxy_delay(struct settings_ctx *c, const struct ynode *v)
{
        uint64_t u;
        int r;

        if (v && v->kind == YN_SCALAR && streq(v->str, "keep")) {
                c->s->proxy_delay_ms = CFG_PROXY_DELAY_KEEP;
                return 0;
        }
        r = yread_uint(&c->y, v, "proxyDelay (milliseconds, or keep)", 0, 3600000, &u);
        c->s->proxy_delay_ms = (int32_t)u;
        return r;
}

/* Calico's USE_POD_CIDR (libcalico-go lib/apiconfig: "set to false when using
 * calico-ipam"): podCIDRs are blocks only with host-local IPAM. */
static int parse_use_pod_cidr(struct settings_ctx *c, const struct ynode *v)
{
        return yread_bool(&c->y, v, "usePodCIDR", &c->s->use_pod_cidr);
}

/* Every setting, in the order the "unknown setting" message lists them. */
static const struct {
        const char *key;
        int (*parse)(struct settings_ctx *c, const struct ynode *v);
} setting_keys[] = {
        { "nodeName", parse_node_name },
        { "nodeLabels", parse_labels },
        { "uplink", parse_uplink },
        { "datastore", parse_datastore },
        { "resources", parse_resources_key },
        { "calicoctlConfig", parse_calicoctl_config },
        { "kubeconfig", parse_kubeconfig },
        { "routeProtocol", parse_route_protocol },
        { "routeMetric", parse_route_metric },
        { "routeTable", parse_route_table },
        { "localBlockRoute", parse_local_block_route },
        { "tunnelDevices", parse_tunnels },
        { "resyncSeconds", parse_resync_seconds },
        { "proxyDelay", parse_proxy_delay },
        { "usePodCIDR", parse_use_pod_cidr },
        { "upstreamRoutesFile", parse_upstream_file },
        { "upstreamRoutesAggregate", parse_upstream_aggregate },
        { "metricsFile", parse_metrics_file },
};

static int parse_key(struct settings_ctx *c, const struct ynode *k, const struct ynode *v)
{
        char known[512];
        size_t n = 0;

        for (size_t i = 0; i < ELEMENTSOF(setting_keys); i++)
                if (streq(k->str, setting_keys[i].key))
                        return setting_keys[i].parse(c, v);
        for (size_t i = 0; i < ELEMENTSOF(setting_keys) && n < sizeof(known); i++)
                n += (size_t)snprintf(known + n, sizeof(known) - n, "%s%s", i ? ", " : "", setting_keys[i].key);
        return yerr(&c->y, k, "unknown setting \"%s\" (known: %s)", k->str, known);
}

static int on_settings_doc(const struct ynode *root, void *userdata)
{
        struct settings_ctx *c = userdata;
        int r, ret = 0;

        if (++c->n_docs > 1)
                return yerr(&c->y, root, "the settings file must hold a single YAML document");
        r = yexpect_map(&c->y, root, "the settings");
        if (r < 0)
                return r;
        for (size_t i = 0; i < root->n; i++) {
                r = parse_key(c, root->pairs[i].key, root->pairs[i].val);
                if (r == -ENOMEM)
                        return r;
                if (r < 0)
                        ret = r; /* keep going: report every bad key at once */
        }
        return ret;
}

static int settings_defaults(struct cfg_settings *s, const char *host_name)
{
        *s = (struct cfg_settings){
                .uplink_mode = CFG_UPLINK_AUTO,
                .route_protocol = CFG_DEFAULT_ROUTE_PROTOCOL,
                .route_metric = CFG_DEFAULT_ROUTE_METRIC,
                .route_table = CFG_DEFAULT_ROUTE_TABLE,
                .local_block_route = CFG_LOCAL_BLACKHOLE,
                .resync_seconds = CFG_DEFAULT_RESYNC_SECONDS,
                .proxy_delay_ms = 0,
        };
        if (set_str(&s->tunnel_ipip, "tunl0") < 0 || set_str(&s->tunnel_vxlan, "vxlan.calico") < 0 ||
            set_str(&s->tunnel_vxlan_v6, "vxlan-v6.calico") < 0 ||
            set_str(&s->calicoctl_config, CFG_DEFAULT_CALICOCTL_CONFIG) < 0 ||
            (host_name && set_str(&s->node_name, host_name) < 0))
                return -ENOMEM;
        return 0;
}

/* The settings file's bytes buf (named name), or every default when buf is NULL. */
/* The settings file's bytes: a buffer, or a reader; neither: every default. */
struct settings_input {
        const void *buf;
        size_t size;
        ydoc_read_fn read;
        void *ctx;
};

static int settings_load(const char *name, const struct settings_input *in, const char *host_name,
                         struct cfg_settings *ret, struct cfg_diags *diags)
{
        struct cfg_settings s;
        struct settings_ctx c = { .y = { .file = name, .diags = diags }, .s = &s };
        int r;

        r = settings_defaults(&s, host_name);
        if (r < 0)
                goto fail;
        if (in->buf)
                r = ydoc_load_buffer(name, in->buf, in->size, 0, on_settings_doc, &c, diags);
        else if (in->read)
                r = ydoc_load_stream(name, in->read, in->ctx, 0, on_settings_doc, &c, diags);
        if (r < 0)
                goto fail;
        if (!s.node_name || !*s.node_name) {
                r = cfg_error(diags, name, 0, 0, "no nodeName set and no host name known");
                goto fail;
        }
        if (s.n_resources == 0) {
                s.resources = calloc(1, sizeof(char *));
                if (!s.resources || !(s.resources[0] = strdup(CFG_DEFAULT_RESOURCES))) {
                        r = -ENOMEM;
                        goto fail;
                }
                s.n_resources = 1;
        }
        *ret = s;
        return 0;
fail:
        cfg_settings_clear(&s);
        return r;
}

int cfg_settings_load_buffer(const char *name, const void *buf, size_t size, const char *host_name,
                             struct cfg_settings *ret, struct cfg_diags *diags)
{
        const struct settings_input in = { .buf = buf, .size = size };

        return settings_load(name || !buf ? name : "(buffer)", &in, host_name, ret, diags);
}

int cfg_settings_load_stream(const char *name, ydoc_read_fn read, void *ctx, const char *host_name,
                             struct cfg_settings *ret, struct cfg_diags *diags)
{
        const struct settings_input in = { .read = read, .ctx = ctx };

        return settings_load(name, &in, host_name, ret, diags);
}

void cfg_settings_clear(struct cfg_settings *s)
{
        free(s->node_name);
        cfg_labels_clear(&s->node_labels);
        free(s->uplink);
        free_resources(s);
        free(s->tunnel_ipip);
        free(s->tunnel_vxlan);
        free(s->tunnel_vxlan_v6);
        free(s->calicoctl_config);
        free(s->kubeconfig);
        free(s->upstream_routes_file);
        free(s->metrics_file);
        *s = (struct cfg_settings){};
}
