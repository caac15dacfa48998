/* Calico resources → loader entries, one kind at a time.
 *
 * Accepts exactly what calicoctl and kubectl print (DESIGN.md §2.2), with Calico's
 * defaults for omitted fields and Calico's validation where it matters here. Other
 * kinds are skipped with a notice. Never decides what the node should do: that is the
 * planner's job. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "loader.h"
#include "util.h"

/* Fields of IPPoolSpec that Calico knows; the ones this program does not use are
 * accepted and ignored. Anything else is a typo (calicoctl rejects it too). */
static const char *const pool_ignored_fields[] = {
        "assignmentMode", "awsSubnetID", "disableBGPExport", "namespaceSelector",
};

static int parse_encap(const struct yctx *y, const struct ynode *n, const char *what, enum cfg_encap *ret)
{
        const char *s;

        if (ynode_is_null(n)) {
                *ret = CFG_ENCAP_NEVER;
                return 0;
        }
        if (n->kind != YN_SCALAR)
                return yerr(y, n, "%s must be one of Never, Always, CrossSubnet", what);
        s = n->str;
        if (streq(s, "Never") || streq(s, ""))
                *ret = CFG_ENCAP_NEVER;
        else if (streq(s, "Always"))
                *ret = CFG_ENCAP_ALWAYS;
        else if (streq(s, "CrossSubnet"))
                *ret = CFG_ENCAP_CROSS_SUBNET;
        else
                return yerr(y, n, "%s must be one of Never, Always, CrossSubnet, not \"%s\"", what, s);
        return 0;
}

/* The deprecated `ipip: {enabled: true, mode: always|cross-subnet}` form. */
static int parse_legacy_ipip(const struct yctx *y, const struct ynode *n, enum cfg_encap *ret)
{
        const struct ynode *en = ynode_get(n, "enabled"), *mode = ynode_get(n, "mode");
        bool enabled = false;
        const char *m = NULL;
        int r;

        r = yexpect_map(y, n, "ipip");
        if (r < 0)
                return r;
        for (size_t i = 0; i < n->n; i++) {
                const char *k = n->pairs[i].key->str;

                if (!streq(k, "enabled") && !streq(k, "mode"))
                        return yerr(y, n->pairs[i].key, "ipip: unknown field \"%s\" (known: enabled, mode)", k);
        }
        if (en && !ynode_is_null(en) && (r = yread_bool(y, en, "ipip.enabled", &enabled)) < 0)
                return r;
        if (mode && !ynode_is_null(mode) && (r = yread_str(y, mode, "ipip.mode", &m)) < 0)
                return r;
        if (m && !streq(m, "") && !streq(m, "always") && !streq(m, "cross-subnet"))
                return yerr(y, mode, "ipip.mode must be always or cross-subnet, not \"%s\"", m);
        if (!enabled)
                *ret = CFG_ENCAP_NEVER;
        else
                *ret = m && streq(m, "cross-subnet") ? CFG_ENCAP_CROSS_SUBNET : CFG_ENCAP_ALWAYS;
        return 0;
}

static int parse_cidr(const struct yctx *y, const struct ynode *n, const char *what, struct cfg_prefix *ret)
{
        char buf[CFG_PREFIX_STRLEN];
        struct cfg_prefix p;
        const char *s;
        int r;

        r = yread_str(y, n, what, &s);
        if (r < 0)
                return r;
        r = cfg_prefix_parse(s, true, &p);
        if (r < 0)
                return yerr(y, n, "%s \"%s\" is not an IP network in CIDR form", what, s);
        if (r == CFG_PREFIX_HOST_BITS) {
                cfg_prefix_mask(&p);
                cfg_prefix_fmt(&p, buf, sizeof(buf));
                return yerr(y, n, "%s %s has host bits set (%s is not a network; the network is %s)", what, s, s,
                            buf);
        }
        *ret = p;
        return 0;
}

static int metadata_name(const struct yctx *y, const struct ynode *res, const char *kind, const char **ret,
                         const struct ynode **ret_meta)
{
        const struct ynode *meta = ynode_get(res, "metadata"), *name;
        int r;

        r = yexpect_map(y, meta ? meta : res, "metadata");
        if (r < 0 || !meta)
                return r < 0 ? r : yerr(y, res, "%s without metadata", kind);
        if ((r = yread_field(y, meta, "name", "metadata.name", &name)) < 0 ||
            (r = yread_str(y, name, "metadata.name", ret)) < 0)
                return r;
        if (!**ret)
                return yerr(y, name, "%s with an empty name", kind);
        /* Kubernetes' limit for the names of cluster objects (a DNS subdomain). */
        if (name->n > CFG_MAX_NAME)
                return yerr(y, name, "%s name longer than %d bytes", kind, CFG_MAX_NAME);
        *ret_meta = meta;
        return 0;
}

static int add_pool_selector(struct cfg_loader *l, struct cfg_pool *p, const struct ynode *n)
{
        struct sel_error err = {};
        const char *text = "";
        int r;

        if (n && !ynode_is_null(n)) {
                r = yread_str(&l->y, n, "nodeSelector", &text);
                if (r < 0)
                        return r;
        }
        r = sel_compile(text, &p->selector, &err);
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                /* Point at the character: the value's column plus the offset into the
                 * selector (one more when the value is quoted). */
                unsigned col = n->col + (unsigned)err.column - 1 + (n->quoted ? 1 : 0);

                if (strstr(err.message, "column"))
                        return cfg_error(l->diags, l->y.file, n->line, col, "pool \"%s\": invalid nodeSelector: %s",
                                         p->name, err.message);
                return cfg_error(l->diags, l->y.file, n->line, col,
                                 "pool \"%s\": invalid nodeSelector: %s (column %zu of the selector)", p->name,
                                 err.message, err.column);
        }
        p->node_selector = strdup(text);
        return p->node_selector ? 0 : -ENOMEM;
}

static bool pool_field_ignored(const char *k)
{
        for (size_t i = 0; i < ELEMENTSOF(pool_ignored_fields); i++)
                if (streq(k, pool_ignored_fields[i]))
                        return true;
        return false;
}

/* allowedUses: Workload, Tunnel, LoadBalancer; absent means Workload and Tunnel
 * (libcalico-go lib/clientv3/ippool.go fills that default). Only a pool that allows
 * Workload holds pod blocks (IPAM assigns pods from such pools only, libcalico-go
 * lib/ipam/ipam.go passes IPPoolAllowedUseWorkload when it picks pools for a pod). */
static int parse_allowed_uses(const struct yctx *y, struct cfg_pool *p, const struct ynode *n)
{
        const char *u;
        int r;

        p->workload = true;
        if (ynode_is_null(n))
                return 0;
        if ((r = yexpect_seq(y, n, "allowedUses")) < 0 || n->n == 0)
                return r; /* [] is the default too (len == 0 there) */
        p->workload = false;
        for (size_t i = 0; i < n->n; i++) {
                if ((r = yread_str(y, n->items[i], "an allowedUses entry", &u)) < 0)
                        return r;
                if (!streq(u, "Workload") && !streq(u, "Tunnel") && !streq(u, "LoadBalancer"))
                        return yerr(y, n->items[i], "pool \"%s\": allowedUses entry must be Workload, Tunnel or "
                                    "LoadBalancer, not \"%s\"", p->name, u);
                if (streq(u, "Workload"))
                        p->workload = true;
        }
        return 0;
}

/* Old and new fields, as Calico v3.7 to v3.31 convert them
 * (libcalico-go/lib/backend/k8s/resources/ippool.go, IPPoolv1v3Converter.ConvertFromK8s,
 * removed in v3.32): a present `ipip: {enabled, mode}` overrides ipipMode, and
 * `nat-outgoing` is ORed with natOutgoing. Where old and new disagree the answer depends
 * on the Calico version (v3.32 and later ignore the old fields): flagged for a warning. */
static int pool_legacy_fields(const struct yctx *y, struct cfg_pool *p, const struct ynode *ipip_mode,
                              const struct ynode *legacy, const struct ynode *nat, const struct ynode *nat_v1)
{
        enum cfg_encap mode = CFG_ENCAP_NEVER, old = CFG_ENCAP_NEVER;
        bool new_nat = false, old_nat = false;
        int r;

        if (ipip_mode && (r = parse_encap(y, ipip_mode, "ipipMode", &mode)) < 0)
                return r;
        p->ipip = mode;
        if (legacy && !ynode_is_null(legacy)) {
                if ((r = parse_legacy_ipip(y, legacy, &old)) < 0)
                        return r;
                if (ipip_mode && old != mode)
                        p->legacy_disagrees |= CFG_LEGACY_IPIP;
                p->ipip = old;
        }
        if (nat && !ynode_is_null(nat) && (r = yread_bool(y, nat, "natOutgoing", &new_nat)) < 0)
                return r;
        if (nat_v1 && !ynode_is_null(nat_v1) && (r = yread_bool(y, nat_v1, "nat-outgoing", &old_nat)) < 0)
                return r;
        if (nat && !ynode_is_null(nat) && nat_v1 && !ynode_is_null(nat_v1) && old_nat != new_nat)
                p->legacy_disagrees |= CFG_LEGACY_NAT;
        p->nat_outgoing = new_nat || old_nat;
        return 0;
}

static int parse_pool_spec(struct cfg_loader *l, struct cfg_pool *p, const struct ynode *spec,
                           const struct ynode **ret_cidr, const struct ynode **ret_bs)
{
        const struct yctx *y = &l->y;
        const struct ynode *ipip_mode = NULL, *legacy = NULL, *selector = NULL, *nat = NULL, *nat_v1 = NULL,
                           *uses = NULL;
        uint64_t bs;
        int r = 0;

        for (size_t i = 0; i < spec->n && r >= 0; i++) {
                const struct ynode *k = spec->pairs[i].key, *v = spec->pairs[i].val;

                if (streq(k->str, "cidr"))
                        *ret_cidr = v;
                else if (streq(k->str, "blockSize")) {
                        r = yread_uint(y, v, "blockSize", 0, 128, &bs);
                        p->block_size = (uint8_t)bs;
                        *ret_bs = v;
                } else if (streq(k->str, "ipipMode"))
                        ipip_mode = v;
                else if (streq(k->str, "vxlanMode"))
                        r = parse_encap(y, v, "vxlanMode", &p->vxlan);
                else if (streq(k->str, "natOutgoing"))
                        nat = v;
                else if (streq(k->str, "nat-outgoing"))
                        nat_v1 = v;
                else if (streq(k->str, "disabled"))
                        r = ynode_is_null(v) ? 0 : yread_bool(y, v, "disabled", &p->disabled);
                else if (streq(k->str, "nodeSelector"))
                        selector = v;
                else if (streq(k->str, "ipip"))
                        legacy = v;
                else if (streq(k->str, "allowedUses"))
                        uses = v;
                else if (!pool_field_ignored(k->str))
                        r = yerr(y, k, "pool \"%s\": unknown IPPool field \"%s\"", p->name, k->str);
        }
        if (r < 0 || (r = pool_legacy_fields(y, p, ipip_mode, legacy, nat, nat_v1)) < 0 ||
            (r = parse_allowed_uses(y, p, uses)) < 0)
                return r;
        return add_pool_selector(l, p, selector);
}

static int check_pool(struct cfg_loader *l, struct cfg_pool *p, const struct ynode *spec, const struct ynode *cidr,
                      const struct ynode *bs)
{
        const struct yctx *y = &l->y;
        bool v6;
        int r;

        if (!cidr)
                return yerr(y, spec, "pool \"%s\" has no cidr", p->name);
        r = parse_cidr(y, cidr, "cidr", &p->cidr);
        if (r < 0)
                return r;
        p->src.line = cidr->line;
        p->col = cidr->col;
        v6 = p->cidr.family == AF_INET6;
        if (!bs)
                p->block_size = v6 ? 122 : 26;
        else if (v6 ? (p->block_size < 116 || p->block_size > 128) : (p->block_size < 20 || p->block_size > 32))
                return yerr(y, bs, "pool \"%s\": blockSize %u is out of range (%s)", p->name, p->block_size,
                            v6 ? "116 to 128 for IPv6" : "20 to 32 for IPv4");
        if (p->block_size < p->cidr.len)
                return yerr(y, bs ? bs : cidr, "pool \"%s\": blockSize /%u is larger than the pool itself (/%u)",
                            p->name, p->block_size, p->cidr.len);
        if (p->ipip != CFG_ENCAP_NEVER && p->vxlan != CFG_ENCAP_NEVER)
                return yerr(y, spec, "pool \"%s\": ipipMode and vxlanMode cannot both be enabled", p->name);
        if (v6 && p->ipip != CFG_ENCAP_NEVER)
                return yerr(y, spec, "pool \"%s\": IPIP is not supported on an IPv6 pool", p->name);
        return 0;
}

static void pool_clear(struct cfg_pool *p)
{
        free(p->name);
        free(p->node_selector);
        sel_free(p->selector);
}

static int load_pool(struct cfg_loader *l, const struct ynode *res)
{
        struct cfg_model *m = l->m;
        const struct ynode *meta, *spec = ynode_get(res, "spec"), *cidr = NULL, *bs = NULL;
        struct cfg_pool p = { .src.file = l->file };
        const char *name;
        int r;

        r = metadata_name(&l->y, res, "IPPool", &name, &meta);
        if (r < 0)
                return r;
        r = yexpect_map(&l->y, spec ? spec : res, "spec");
        if (r < 0 || !spec)
                return r < 0 ? r : yerr(&l->y, res, "IPPool \"%s\" without spec", name);
        if (m->n_pools >= CFG_MAX_POOLS)
                return yerr(&l->y, res, "more than %d pools", CFG_MAX_POOLS);
        p.name = strdup(name);
        if (!p.name)
                return -ENOMEM;
        r = parse_pool_spec(l, &p, spec, &cidr, &bs);
        if (r >= 0)
                r = check_pool(l, &p, spec, cidr, bs);
        if (r >= 0)
                r = GROW(m->pools, l->cap_pools, m->n_pools + 1);
        if (r < 0) {
                pool_clear(&p);
                return r;
        }
        m->pools[m->n_pools++] = p;
        return 0;
}

/* An interface address as Calico prints it: "a.b.c.d/len" or "fd00::5/64" (host bits
 * set, that is the point) or a bare address. Each field holds one family (ipv4Address,
 * ipv6Address): an address of the other family in it is a mistake, not one to use. */
static int parse_if_addr_family(const struct yctx *y, const struct ynode *n, const char *what, int family,
                                struct cfg_prefix *ret)
{
        struct cfg_prefix p;
        const char *s;
        int r;

        r = yread_str(y, n, what, &s);
        if (r < 0)
                return r;
        if (cfg_prefix_parse(s, false, &p) < 0)
                return yerr(y, n, "%s \"%s\" is not an IP address", what, s);
        if (p.family != family)
                return yerr(y, n, "%s \"%s\" is not an %s address", what, s, family == AF_INET ? "IPv4" : "IPv6");
        *ret = p;
        return 0;
}

static int parse_if_addr(const struct yctx *y, const struct ynode *n, const char *what, struct cfg_prefix *ret)
{
        return parse_if_addr_family(y, n, what, AF_INET, ret);
}

static int node_set_labels(struct cfg_loader *l, struct cfg_node *node, const struct ynode *meta)
{
        struct cfg_labels labels = {};
        const struct ynode *ln = ynode_get(meta, "labels");
        int r;

        if (!ln)
                return 0;
        r = ynode_is_null(ln) ? 0 : yread_labels(&l->y, ln, "metadata.labels", &labels);
        if (r < 0) {
                cfg_labels_clear(&labels);
                return r;
        }
        /* A Calico Node and a Kubernetes Node of the same name: the labels are the same
         * (Calico copies them); merge, later keys win. */
        for (size_t i = 0; i < labels.n; i++)
                if ((r = cfg_labels_set(&node->labels, labels.v[i].key, labels.v[i].value)) < 0)
                        break;
        cfg_labels_clear(&labels);
        node->has_labels = true;
        return r;
}

static int begin_node(struct cfg_loader *l, const struct ynode *res, const char *kind, struct cfg_node **ret,
                      const struct ynode **ret_meta)
{
        const char *name;
        uint32_t idx;
        int r;

        r = metadata_name(&l->y, res, kind, &name, ret_meta);
        if (r < 0)
                return r;
        r = loader_node(l, name, &idx);
        if (r < 0)
                return r == -E2BIG ? yerr(&l->y, res, "more than %d nodes", CFG_MAX_NODES) : r;
        *ret = &l->m->nodes[idx];
        if (!(*ret)->has_resource) {
                (*ret)->has_resource = true;
                (*ret)->src = (struct cfg_src){ .file = l->file, .line = res->line };
        }
        return node_set_labels(l, *ret, *ret_meta);
}

static int load_calico_node(struct cfg_loader *l, const struct ynode *res)
{
        const struct ynode *meta, *spec = ynode_get(res, "spec"), *bgp, *v;
        struct cfg_node *node;
        int r;

        r = begin_node(l, res, "Node", &node, &meta);
        if (r < 0 || ynode_is_null(spec))
                return r;
        if ((r = yexpect_map(&l->y, spec, "spec")) < 0)
                return r;
        bgp = ynode_get(spec, "bgp");
        if (!ynode_is_null(bgp)) {
                if ((r = yexpect_map(&l->y, bgp, "spec.bgp")) < 0)
                        return r;
                if ((v = ynode_get(bgp, "ipv4Address")) && !ynode_is_null(v) &&
                    (r = parse_if_addr(&l->y, v, "spec.bgp.ipv4Address", &node->addr)) < 0)
                        return r;
                /* calico/node's autodetected IPv6 address (libcalico-go
                 * api/pkg/apis/projectcalico/v3/node.go, NodeBGPSpec.IPv6Address). */
                if ((v = ynode_get(bgp, "ipv6Address")) && !ynode_is_null(v) &&
                    (r = parse_if_addr_family(&l->y, v, "spec.bgp.ipv6Address", AF_INET6, &node->addr6)) < 0)
                        return r;
                if ((v = ynode_get(bgp, "ipv4IPIPTunnelAddr")) && !ynode_is_null(v) &&
                    (r = parse_if_addr(&l->y, v, "spec.bgp.ipv4IPIPTunnelAddr", &node->ipip_tunnel_addr)) < 0)
                        return r;
        }
        if ((v = ynode_get(spec, "ipv4VXLANTunnelAddr")) && !ynode_is_null(v) &&
            (r = parse_if_addr(&l->y, v, "spec.ipv4VXLANTunnelAddr", &node->vxlan_tunnel_addr)) < 0)
                return r;
        return 0;
}

/* Where a Kubernetes Node's addresses go: into the node, each field only while it is
 * unset (a Calico Node's value, read before or after, wins). A file read alone for the
 * files source's cache (loader.h split_fills) keeps them apart instead, the first of
 * each field, for the merge across files to apply in the full load's order. */
static int fill_target(struct cfg_loader *l, struct cfg_node *node, struct cfg_node **ret)
{
        size_t idx = (size_t)(node - l->m->nodes), had = l->cap_fills;
        int r;

        if (!l->split_fills) {
                *ret = node;
                return 0;
        }
        if ((r = GROW(l->fills, l->cap_fills, l->m->n_nodes)) < 0)
                return r;
        if (l->cap_fills > had)
                memset(l->fills + had, 0, (l->cap_fills - had) * sizeof(*l->fills));
        *ret = &l->fills[idx];
        return 0;
}

static int k8s_node_annotations(struct cfg_loader *l, struct cfg_node *node, const struct ynode *meta)
{
        const struct ynode *ann = ynode_get(meta, "annotations"), *v;
        int r;

        if (ynode_is_null(ann))
                return 0;
        if ((r = yexpect_map(&l->y, ann, "metadata.annotations")) < 0)
                return r;
        /* The Calico Node's spec.bgp.ipv4Address, when loaded, is the same value. */
        if ((v = ynode_get(ann, "projectcalico.org/IPv4Address")) && !node->addr.family &&
            (r = parse_if_addr(&l->y, v, "the projectcalico.org/IPv4Address annotation", &node->addr)) < 0)
                return r;
        /* The Kubernetes datastore keeps spec.bgp.ipv6Address in this annotation
         * (libcalico-go lib/backend/k8s/conversion/constants.go, nodeBgpIpv6AddrAnnotation). */
        if ((v = ynode_get(ann, "projectcalico.org/IPv6Address")) && !node->addr6.family &&
            (r = parse_if_addr_family(&l->y, v, "the projectcalico.org/IPv6Address annotation", AF_INET6,
                                      &node->addr6)) < 0)
                return r;
        if ((v = ynode_get(ann, "projectcalico.org/IPv4IPIPTunnelAddr")) && !node->ipip_tunnel_addr.family &&
            (r = parse_if_addr(&l->y, v, "the projectcalico.org/IPv4IPIPTunnelAddr annotation",
                               &node->ipip_tunnel_addr)) < 0)
                return r;
        if ((v = ynode_get(ann, "projectcalico.org/IPv4VXLANTunnelAddr")) && !node->vxlan_tunnel_addr.family &&
            (r = parse_if_addr(&l->y, v, "the projectcalico.org/IPv4VXLANTunnelAddr annotation",
                               &node->vxlan_tunnel_addr)) < 0)
                return r;
        return 0;
}

/* Without the annotations, the first InternalIP of each family (what calico/node's
 * autodetection method `kubernetes-internal-ip` picks, per family). */
static int k8s_node_internal_ip(struct cfg_loader *l, struct cfg_node *node, const struct ynode *status)
{
        const struct ynode *addrs = ynode_get(status, "addresses");
        int r;

        if (ynode_is_null(addrs) || (node->addr.family && node->addr6.family))
                return 0;
        if ((r = yexpect_seq(&l->y, addrs, "status.addresses")) < 0)
                return r;
        for (size_t i = 0; i < addrs->n; i++) {
                const char *type = ynode_str(ynode_get(addrs->items[i], "type"));
                const char *a = ynode_str(ynode_get(addrs->items[i], "address"));
                struct cfg_prefix p;

                if (!type || !a || !streq(type, "InternalIP") || cfg_addr_parse(a, &p) < 0)
                        continue;
                if (p.family == AF_INET && !node->addr.family)
                        node->addr = p;
                else if (p.family == AF_INET6 && !node->addr6.family)
                        node->addr6 = p;
        }
        return 0;
}

/* A Kubernetes Node's podCIDR(s) are blocks only with usePodCIDR (Calico's
 * USE_POD_CIDR, libcalico-go lib/apiconfig/apiconfig.go: "set to false when using
 * calico-ipam"; libcalico-go lib/backend/k8s/client.go makes blocks of them only then).
 * With Calico IPAM kubeadm still fills them, inside the pool: off, they are counted and
 * ignored. */
static int k8s_node_pod_cidrs(struct cfg_loader *l, uint32_t node, const struct ynode *spec)
{
        const struct ynode *one = ynode_get(spec, "podCIDR"), *many = ynode_get(spec, "podCIDRs");
        struct cfg_prefix p;
        int r;

        if (!l->m->settings.use_pod_cidr) {
                if (!ynode_is_null(many) && many->kind == YN_SEQ)
                        l->m->n_pod_cidrs_ignored += many->n;
                else if (!ynode_is_null(one))
                        l->m->n_pod_cidrs_ignored++;
                return 0;
        }
        if (!ynode_is_null(many)) {
                if ((r = yexpect_seq(&l->y, many, "spec.podCIDRs")) < 0)
                        return r;
                for (size_t i = 0; i < many->n; i++) {
                        if ((r = parse_cidr(&l->y, many->items[i], "spec.podCIDRs entry", &p)) < 0)
                                return r;
                        if ((r = loader_add_block(l, &p, node, BLOCK_FROM_PODCIDR, many->items[i]->line)) < 0)
                                return r;
                }
                return 0;
        }
        if (ynode_is_null(one))
                return 0;
        if ((r = parse_cidr(&l->y, one, "spec.podCIDR", &p)) < 0)
                return r;
        return loader_add_block(l, &p, node, BLOCK_FROM_PODCIDR, one->line);
}

static int load_k8s_node(struct cfg_loader *l, const struct ynode *res)
{
        const struct ynode *meta, *spec = ynode_get(res, "spec");
        struct cfg_node *node;
        uint32_t idx;
        int r;

        r = begin_node(l, res, "Node", &node, &meta);
        if (r < 0)
                return r;
        idx = (uint32_t)(node - l->m->nodes);
        if ((r = fill_target(l, node, &node)) < 0)
                return r;
        if ((r = k8s_node_annotations(l, node, meta)) < 0)
                return r;
        if ((r = k8s_node_internal_ip(l, node, ynode_get(res, "status"))) < 0)
                return r;
        if (ynode_is_null(spec))
                return 0;
        return k8s_node_pod_cidrs(l, idx, spec);
}

/* Affinity states as Calico counts them (libcalico-go lib/backend/model/block_affinity.go
 * defines pending, confirmed, pendingDeletion):
 * - "" or absent is confirmed (lib/ipam/ipam.go: "Treat empty string as confirmed for
 *   compatibility with older data"; model/keys.go reads an empty etcd value as {});
 * - pendingDeletion still counts until the affinity is gone: confd drops only pending
 *   ones (confd/pkg/backends/calico/client.go: "Ignore pending block affinities"), so
 *   BIRD keeps blackholing and advertising the block, and IPAM re-confirms it while the
 *   block still names the host;
 * - pending does not count (the claim is not finished). */
static bool affinity_counts(const char *state)
{
        return !state || streq(state, "") || streq(state, "confirmed") || streq(state, "pendingDeletion");
}

static int load_block_affinity(struct cfg_loader *l, const struct ynode *res)
{
        const struct ynode *spec = ynode_get(res, "spec"), *v;
        struct cfg_prefix cidr;
        const char *node, *state = NULL, *type;
        bool deleted = false;
        uint32_t idx;
        int r;

        if ((r = yexpect_map(&l->y, spec ? spec : res, "spec")) < 0 || !spec)
                return r < 0 ? r : yerr(&l->y, res, "BlockAffinity without spec");
        if ((v = ynode_get(spec, "state")) && !ynode_is_null(v) && (r = yread_str(&l->y, v, "spec.state", &state)) < 0)
                return r;
        /* The CRD prints deleted as a string ("false"), the v3 API as a bool. */
        if ((v = ynode_get(spec, "deleted")) && !ynode_is_null(v) &&
            (r = yread_bool_or_string(&l->y, v, "spec.deleted", &deleted)) < 0)
                return r;
        if ((r = yread_field(&l->y, spec, "node", "spec.node", &v)) < 0 || (r = yread_str(&l->y, v, "spec.node", &node)) < 0)
                return r;
        if (!*node)
                return yerr(&l->y, v, "spec.node is empty");
        if ((r = yread_field(&l->y, spec, "cidr", "spec.cidr", &v)) < 0 ||
            (r = parse_cidr(&l->y, v, "spec.cidr", &cidr)) < 0)
                return r;
        type = ynode_str(ynode_get(spec, "type"));
        l->m->n_ipam_resources++;
        if (!affinity_counts(state) || deleted || (type && !streq(type, "host")))
                return 0;
        if ((r = loader_node(l, node, &idx)) < 0)
                return r == -E2BIG ? yerr(&l->y, res, "more than %d nodes", CFG_MAX_NODES) : r;
        return loader_add_block(l, &cidr, idx, BLOCK_FROM_AFFINITY, v->line);
}

/* The node that hosts allocation `attr` (attributes[attr].secondary.node), or NULL when
 * the attribute names none (Felix then warns and routes nothing for the address). */
static int attr_node(const struct yctx *y, const struct ynode *attrs, uint64_t attr, const char **ret)
{
        const struct ynode *a = attrs->items[attr], *sec, *node;

        *ret = NULL;
        if (ynode_is_null(a))
                return 0;
        if (a->kind != YN_MAP)
                return yerr(y, a, "spec.attributes[%llu] must be a mapping", (unsigned long long)attr);
        sec = ynode_get(a, "secondary");
        if (ynode_is_null(sec))
                return 0;
        if (sec->kind != YN_MAP)
                return yerr(y, sec, "spec.attributes[%llu].secondary must be a mapping", (unsigned long long)attr);
        node = ynode_get(sec, "node");
        if (ynode_is_null(node))
                return 0;
        return yread_str(y, node, "secondary.node", ret);
}

/* The address at `ordinal` in block cidr (AllocationBlock.OrdinalToIP). */
static struct cfg_prefix block_nth(const struct cfg_prefix *cidr, uint64_t ordinal)
{
        struct cfg_prefix a = *cidr;
        unsigned maxlen = cfg_prefix_maxlen(cidr);

        a.len = (uint8_t)maxlen;
        for (int i = (int)maxlen / 8 - 1; i >= 0 && ordinal; i--) {
                uint64_t sum = a.addr[i] + (ordinal & 0xff);

                a.addr[i] = (uint8_t)sum;
                ordinal = (ordinal >> 8) + (sum >> 8);
        }
        return a;
}

/* The borrowed addresses of one IPAMBlock, as libcalico-go's
 * AllocationBlock.NonAffineAllocations() finds them (lib/backend/model/block.go):
 * allocations[ordinal] is null (free) or an index into attributes[]; an address whose
 * attribute names another node than the block's host is that node's; one whose
 * attribute names no node is not routed (Felix warns). Only those are kept. */
static int ipam_block_borrowed(struct cfg_loader *l, const struct ynode *spec, const struct cfg_prefix *cidr,
                               const char *host, uint32_t line)
{
        const struct yctx *y = &l->y;
        const struct ynode *allocs = ynode_get(spec, "allocations"), *attrs = ynode_get(spec, "attributes");
        uint64_t size = (uint64_t)1 << (cfg_prefix_maxlen(cidr) - cidr->len), attr;
        uint32_t block_node = UINT32_MAX, node;
        const char *name;
        int r;

        if (ynode_is_null(allocs))
                return 0;
        if ((r = yexpect_seq(y, allocs, "spec.allocations")) < 0)
                return r;
        if (!ynode_is_null(attrs) && (r = yexpect_seq(y, attrs, "spec.attributes")) < 0)
                return r;
        if (allocs->n > size)
                return yerr(y, allocs, "spec.allocations has %zu entries for a block of %llu addresses", allocs->n,
                            (unsigned long long)size);
        for (size_t i = 0; i < allocs->n; i++) {
                if (ynode_is_null(allocs->items[i]))
                        continue; /* free */
                if ((r = yread_uint(y, allocs->items[i], "a spec.allocations entry", 0, UINT32_MAX, &attr)) < 0)
                        return r;
                if (ynode_is_null(attrs) || attr >= attrs->n)
                        continue; /* "Missing attributes for IP": Felix skips it too */
                if ((r = attr_node(y, attrs, attr, &name)) < 0)
                        return r;
                if (!name || !*name || (host && streq(name, host)))
                        continue;
                if (host && block_node == UINT32_MAX && (r = loader_node(l, host, &block_node)) < 0)
                        return r;
                if ((r = loader_node(l, name, &node)) < 0)
                        return r;
                struct cfg_prefix a = block_nth(cidr, i);
                if ((r = loader_add_borrowed(l, &a, node, block_node, line)) < 0)
                        return r;
        }
        return 0;
}

static int load_ipam_block(struct cfg_loader *l, const struct ynode *res)
{
        const struct ynode *spec = ynode_get(res, "spec"), *v;
        struct cfg_prefix cidr;
        const char *affinity = NULL, *host = NULL;
        bool deleted = false;
        uint32_t idx;
        int r;

        if ((r = yexpect_map(&l->y, spec ? spec : res, "spec")) < 0 || !spec)
                return r < 0 ? r : yerr(&l->y, res, "IPAMBlock without spec");
        if ((r = yread_field(&l->y, spec, "cidr", "spec.cidr", &v)) < 0 ||
            (r = parse_cidr(&l->y, v, "spec.cidr", &cidr)) < 0)
                return r;
        if (ynode_get(spec, "deleted") && !ynode_is_null(ynode_get(spec, "deleted")) &&
            (r = yread_bool_or_string(&l->y, ynode_get(spec, "deleted"), "spec.deleted", &deleted)) < 0)
                return r;
        if (ynode_get(spec, "affinity") && !ynode_is_null(ynode_get(spec, "affinity")) &&
            (r = yread_str(&l->y, ynode_get(spec, "affinity"), "spec.affinity", &affinity)) < 0)
                return r;
        l->m->n_ipam_resources++;
        /* A deleted block is on its way out (MarkDeleted, before the key goes). */
        if (deleted)
                return 0;
        /* Only host affinity makes a block this daemon routes (AllocationBlock.Host());
         * an unaffine block's addresses are all borrowed by their hosts. */
        if (affinity && strncmp(affinity, "host:", 5) == 0 && affinity[5])
                host = affinity + 5;
        r = ipam_block_borrowed(l, spec, &cidr, host, v->line);
        if (r < 0 || !host)
                return r == -E2BIG ? yerr(&l->y, res, "more than %d nodes", CFG_MAX_NODES) : r;
        if ((r = loader_node(l, host, &idx)) < 0)
                return r == -E2BIG ? yerr(&l->y, res, "more than %d nodes", CFG_MAX_NODES) : r;
        return loader_add_block(l, &cidr, idx, BLOCK_FROM_IPAMBLOCK, v->line);
}

static int parse_tristate(const struct yctx *y, const struct ynode *spec, const char *key, enum cfg_tristate *ret)
{
        const struct ynode *v = ynode_get(spec, key);
        bool b;
        int r;

        *ret = CFG_UNSET;
        if (ynode_is_null(v))
                return 0;
        r = yread_bool(y, v, key, &b);
        if (r < 0)
                return r;
        *ret = b ? CFG_TRUE : CFG_FALSE;
        return 0;
}

/* Only the default and this node's own FelixConfiguration run on this node. */
static bool felix_is_ours(const struct cfg_model *m, const char *name)
{
        const char *self = m->settings.node_name;

        return streq(name, "default") || (self && strncmp(name, "node.", 5) == 0 && streq(name + 5, self));
}

static int load_felix(struct cfg_loader *l, const struct ynode *res)
{
        struct cfg_model *m = l->m;
        const struct ynode *meta, *spec = ynode_get(res, "spec"), *v;
        struct cfg_felix f = { .ipip_enabled = CFG_UNSET,
                               .vxlan_enabled = CFG_UNSET,
                               .vxlan_enabled_v6 = CFG_UNSET,
                               .device_route_protocol = -1,
                               .src = { l->file, res->line } };
        const char *name;
        uint64_t proto;
        int r;

        if ((r = metadata_name(&l->y, res, "FelixConfiguration", &name, &meta)) < 0)
                return r;
        if (!ynode_is_null(spec)) {
                if ((r = yexpect_map(&l->y, spec, "spec")) < 0)
                        return r;
                if ((r = parse_tristate(&l->y, spec, "ipipEnabled", &f.ipip_enabled)) < 0 ||
                    (r = parse_tristate(&l->y, spec, "vxlanEnabled", &f.vxlan_enabled)) < 0 ||
                    (r = parse_tristate(&l->y, spec, "vxlanEnabledV6", &f.vxlan_enabled_v6)) < 0)
                        return r;
                if ((v = ynode_get(spec, "deviceRouteProtocol")) && !ynode_is_null(v)) {
                        if ((r = yread_uint(&l->y, v, "deviceRouteProtocol", 0, 255, &proto)) < 0)
                                return r;
                        f.device_route_protocol = (int)proto;
                        if (proto == m->settings.route_protocol && felix_is_ours(m, name))
                                return yerr(&l->y, v,
                                            "FelixConfiguration \"%s\": deviceRouteProtocol %d is this daemon's "
                                            "routeProtocol: Felix would delete our routes (set routeProtocol "
                                            "to another number)",
                                            name, f.device_route_protocol);
                }
        }
        if (m->n_felix >= 1024)
                return yerr(&l->y, res, "more than 1024 FelixConfigurations");
        if ((r = GROW(m->felix, l->cap_felix, m->n_felix + 1)) < 0)
                return r;
        f.name = strdup(name);
        if (!f.name)
                return -ENOMEM;
        m->felix[m->n_felix++] = f;
        return 0;
}

static bool api_is(const char *api, const char *a, const char *b)
{
        return api && ((a && streq(api, a)) || (b && streq(api, b)));
}

int load_resource(const struct ynode *n, void *userdata)
{
        struct cfg_loader *l = userdata;
        const struct ynode *items;
        const char *kind, *api;
        int r;

        if (n->kind != YN_MAP)
                return yerr(&l->y, n, "a resource must be a mapping, not %s", ynode_kind_name(n));
        kind = ynode_str(ynode_get(n, "kind"));
        api = ynode_str(ynode_get(n, "apiVersion"));
        items = ynode_get(n, "items");
        if (!kind)
                return yerr(&l->y, n, "resource without a kind");
        if (items && !ynode_is_null(items)) {
                /* A list nested in a list (the top level is streamed by yamltree). */
                if ((r = yexpect_seq(&l->y, items, "items")) < 0)
                        return r;
                for (size_t i = 0; i < items->n; i++)
                        if ((r = load_resource(items->items[i], l)) < 0)
                                return r;
                return 0;
        }
        /* The kinds a large cluster has most of first (the kinds are distinct: the order
         * decides nothing else). */
        if (streq(kind, "BlockAffinity") && api_is(api, "projectcalico.org/v3", "crd.projectcalico.org/v1"))
                return load_block_affinity(l, n);
        if (streq(kind, "IPAMBlock") && api_is(api, "crd.projectcalico.org/v1", "projectcalico.org/v3"))
                return load_ipam_block(l, n);
        if (streq(kind, "IPPool") && api_is(api, "projectcalico.org/v3", "crd.projectcalico.org/v1"))
                return load_pool(l, n);
        if (streq(kind, "Node") && api_is(api, "projectcalico.org/v3", NULL))
                return load_calico_node(l, n);
        if (streq(kind, "Node") && api_is(api, "v1", NULL))
                return load_k8s_node(l, n);
        if (streq(kind, "FelixConfiguration") && api_is(api, "projectcalico.org/v3", "crd.projectcalico.org/v1"))
                return load_felix(l, n);
        if (strlen(kind) > 4 && streq(kind + strlen(kind) - 4, "List"))
                return 0; /* an empty list */
        l->m->n_skipped++;
        return ynotice(&l->y, n, "skipping %s %s (not a kind this daemon reads)", api ? api : "(no apiVersion)",
                       kind);
}

/* A failed resource is reported and the next one read, so that one run names every
 * problem; only running out of memory stops at once. */
static int load_resource_go_on(const struct ynode *n, void *userdata)
{
        int r = load_resource(n, userdata);

        return r == -ENOMEM ? r : 0;
}

int cfg_loader_add_yaml(struct cfg_loader *cl, const char *name, const void *buf, size_t size)
{
        struct cfg_loader *l = cl;
        int r;

        if (l->failed)
                return l->failed;
        r = loader_add_file(l, name, CFG_MAX_FILES);
        if (r >= 0)
                r = ydoc_load_buffer(name, buf, size, YDOC_LIST_ITEMS, load_resource_go_on, l, l->diags);
        if (r == -ENOMEM)
                return l->failed = r;
        return 0;
}

int cfg_loader_add_object(struct cfg_loader *l, const char *name, const void *json, size_t size)
{
        size_t ipam_before = l->m->n_ipam_resources;
        int r;

        if (l->failed)
                return l->failed;
        r = loader_add_file(l, name, CFG_MAX_KEYS);
        if (r >= 0)
                r = ydoc_load_buffer(name, json, size, 0, load_resource_go_on, l, l->diags);
        /* The in-place updates need to know which objects the IPAM count holds. */
        if (r >= 0 && l->indexing && (r = GROW(l->file_ipam, l->cap_file_ipam, l->m->n_files)) >= 0)
                l->file_ipam[l->file] = l->m->n_ipam_resources > ipam_before;
        if (r == -ENOMEM)
                return l->failed = r;
        return 0;
}

int cfg_loader_add_yaml_stream(struct cfg_loader *l, const char *name, ydoc_read_fn read, void *ctx)
{
        int r;

        if (l->failed)
                return l->failed;
        r = loader_add_file(l, name, CFG_MAX_FILES);
        if (r >= 0)
                r = ydoc_load_stream(name, read, ctx, YDOC_LIST_ITEMS | YDOC_REWINDS, load_resource_go_on, l,
                                     l->diags);
        if (r == -ENOMEM)
                return l->failed = r;
        return 0;
}

int cfg_model_from_buffers(struct cfg_settings *settings, const char *const *names, const char *const *bufs,
                           const size_t *sizes, size_t n, struct cfg_model **ret, struct cfg_diags *diags)
{
        struct cfg_loader *l;
        int r;

        if ((r = cfg_loader_new(settings, diags, &l)) < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++)
                r = cfg_loader_add_yaml(l, names[i], bufs[i], sizes[i]);
        return cfg_loader_finish(l, ret);
}
