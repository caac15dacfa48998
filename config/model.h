/* The configuration model: settings plus the Calico resources that matter to this
 * node, validated and immutable once the loader (load.h) returns it, but for the
 * in-place updates of load.h (cfg_model_update_kvs(): an etcd source's blocks, issue
 * 16), which leave exactly what a full load would build. Everything the planner knows
 * about intent comes from here.
 *
 * Lookups the planner needs: the pool containing a prefix, a node by name, the
 * effective Felix settings for this node. Every entry remembers its source file and
 * line so messages can point at it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"
#include "labels.h"
#include "prefix.h"
#include "selector.h"
#include "yamltree.h"

enum cfg_encap {
        CFG_ENCAP_NEVER,
        CFG_ENCAP_ALWAYS,
        CFG_ENCAP_CROSS_SUBNET,
};

enum cfg_uplink_mode {
        CFG_UPLINK_AUTO,      /* device of the IPv4 default route */
        CFG_UPLINK_NAME,      /* a device name */
        CFG_UPLINK_REGEX,     /* interface=REGEX: first matching device, in ifindex order */
        CFG_UPLINK_CAN_REACH, /* can-reach=ADDRESS: device of the route to ADDRESS */
};

/* Where the Calico resources come from (setting `datastore`). */
enum cfg_datastore {
        CFG_DATASTORE_AUTO,       /* what calicoctl would use (datastore.h), else files */
        CFG_DATASTORE_FILES,      /* the `resources` files and folders */
        CFG_DATASTORE_ETCDV3,     /* Calico's etcd v3 datastore, reached as calicoctl reaches it */
        CFG_DATASTORE_KUBERNETES, /* the Kubernetes API: Calico's CRDs and core Nodes */
};

enum cfg_local_route {
        CFG_LOCAL_BLACKHOLE,
        CFG_LOCAL_UNREACHABLE,
        CFG_LOCAL_NONE,
};

struct cfg_src {
        uint32_t file; /* index into model->files */
        uint32_t line;
};

#define CFG_DEFAULT_ROUTE_PROTOCOL 211
#define CFG_DEFAULT_ROUTE_METRIC 1024
/* Our own table (DESIGN.md §3.2): outside Felix's routeTableRange default 1-250, which
 * Felix's rule and table managers own (projectcalico/calico
 * libcalico-go/lib/clientv3/felixconfig.go DefaultFelixRouteTableRange*), and outside
 * 253-255, the kernel's default, main and local tables (felix/dataplane/driver.go
 * reserves them too). Nothing in Calico uses 252. */
#define CFG_DEFAULT_ROUTE_TABLE 252
#define CFG_DEFAULT_RESYNC_SECONDS 300
#define CFG_PROXY_DELAY_KEEP (-1)
#define CFG_DEFAULT_CONFIG "/etc/calico-underlay/config.yaml"
#define CFG_DEFAULT_RESOURCES "/etc/calico-underlay/resources.d"
#define CFG_DEFAULT_CALICOCTL_CONFIG "/etc/calico/calicoctl.cfg"
/* The node's kubeconfig for the Kubernetes datastore; its presence alone makes
 * `datastore: auto` read the Kubernetes API. */
#define CFG_DEFAULT_KUBECONFIG "/etc/calico-underlay/kubeconfig"

struct cfg_settings {
        char *node_name;
        struct cfg_labels node_labels;
        bool has_node_labels;
        enum cfg_uplink_mode uplink_mode;
        char *uplink;            /* name, regex or address text (NULL for auto) */
        struct cfg_prefix uplink_reach; /* can-reach address */
        char **resources;
        size_t n_resources;
        uint8_t route_protocol;
        uint32_t route_metric;
        uint32_t route_table;
        enum cfg_local_route local_block_route;
        char *tunnel_ipip;
        char *tunnel_vxlan;
        char *tunnel_vxlan_v6;
        uint32_t resync_seconds;
        int32_t proxy_delay_ms; /* CFG_PROXY_DELAY_KEEP: leave the kernel's value */
        enum cfg_datastore datastore;
        bool has_resources;      /* `resources` was set (not the default) */
        char *calicoctl_config;  /* calicoctl's settings file (default CFG_DEFAULT_CALICOCTL_CONFIG) */
        char *kubeconfig;        /* the Kubernetes datastore's kubeconfig, or NULL (see datastore.h) */
        bool use_pod_cidr;       /* Kubernetes Nodes' podCIDRs are blocks (host-local IPAM) */
        char *upstream_routes_file; /* where the daemon keeps the upstream routes (JSON); NULL: nowhere */
        bool upstream_cover_free;   /* upstreamRoutesAggregate: cover-free (default exact) */
        char *metrics_file;      /* Prometheus text file for node_exporter; NULL = none (default) */
};

/* Old (v1) pool fields that disagree with the v3 ones (see resources.c). */
#define CFG_LEGACY_IPIP 1u /* ipip: {enabled, mode} vs ipipMode */
#define CFG_LEGACY_NAT 2u  /* nat-outgoing vs natOutgoing */

struct cfg_pool {
        char *name;
        struct cfg_prefix cidr;
        uint8_t block_size;
        enum cfg_encap ipip;
        enum cfg_encap vxlan;
        bool nat_outgoing;
        bool disabled;
        bool workload;       /* allowedUses has Workload (or is absent): it holds pod blocks */
        uint8_t legacy_disagrees; /* CFG_LEGACY_*: old and new fields say different things */
        char *node_selector; /* as written ("" when absent) */
        struct sel *selector;
        struct cfg_src src; /* the cidr's line */
        uint32_t col;       /* the cidr's column */
};

struct cfg_node {
        char *name;
        struct cfg_labels labels;
        bool has_labels;      /* a Node resource told us its labels */
        bool has_resource;    /* a Node resource exists (not only a block's affinity) */
        struct cfg_prefix addr; /* IPv4 address with its subnet length; family 0 = unknown */
        struct cfg_prefix addr6; /* IPv6 address with its subnet length; family 0 = unknown */
        struct cfg_prefix ipip_tunnel_addr; /* family 0 = none */
        struct cfg_prefix vxlan_tunnel_addr;
        struct cfg_src src;
};

struct cfg_block {
        struct cfg_prefix cidr;
        uint32_t node; /* index into model->nodes */
        uint32_t pool; /* index into model->pools */
        struct cfg_src src;
};

/* A borrowed address: an allocated address of an IPAMBlock that a node other than the
 * block's affine node hosts (Calico's default `strictAffinity: false` lets a node whose
 * blocks are full take single addresses from another node's block, or from a block
 * with no affinity). The IPAMBlock records it: allocations[ordinal] indexes
 * attributes[], whose secondary.node names the hosting node (libcalico-go
 * lib/backend/model/block.go, AllocationBlock.NonAffineAllocations(); Felix routes each
 * one to its host, felix/calc/l3_route_resolver.go). Only these are kept from an
 * IPAMBlock, never every allocation: the list is what routing (and the upstream routes
 * report) needs, one entry per address, sorted by address. */
struct cfg_borrowed {
        struct cfg_prefix addr; /* a host prefix (/32, /128) */
        uint32_t node;          /* the hosting node: index into model->nodes */
        uint32_t block_node;    /* the block's affine node, or UINT32_MAX when it has none */
        uint32_t pool;          /* index into model->pools */
        struct cfg_src src;     /* the IPAMBlock's cidr line */
};

/* A tri-state: Felix settings are often simply absent. */
enum cfg_tristate {
        CFG_UNSET = -1,
        CFG_FALSE = 0,
        CFG_TRUE = 1,
};

struct cfg_felix {
        char *name; /* "default" or "node.<name>" */
        enum cfg_tristate ipip_enabled;
        enum cfg_tristate vxlan_enabled;
        enum cfg_tristate vxlan_enabled_v6; /* vxlanEnabledV6 */
        int device_route_protocol; /* -1 = unset */
        struct cfg_src src;
};

/* The name of input number file, made on demand into buf (cfg_loader_name_on_demand()). */
typedef void (*cfg_namer_fn)(const void *ctx, uint32_t file, char *buf, size_t size);

struct cfg_model {
        struct cfg_settings settings;
        char **files;
        size_t n_files;
        struct cfg_pool *pools; /* sorted by cidr */
        size_t n_pools;
        struct cfg_node *nodes; /* sorted by name */
        size_t n_nodes;
        struct cfg_block *blocks; /* sorted by cidr */
        size_t n_blocks;
        struct cfg_felix *felix;
        size_t n_felix;
        struct cfg_borrowed *borrowed; /* sorted by addr, one per address */
        size_t n_borrowed;
        size_t n_skipped; /* resources of other kinds, blocks outside every pool */
        size_t n_pod_cidrs_ignored; /* Kubernetes podCIDRs not read as blocks (usePodCIDR off) */
        size_t n_ipam_resources;    /* BlockAffinities and IPAMBlocks read (Calico IPAM data) */
        struct cfg_name_chunk *names; /* where files[] point: one allocation per 64 KiB of names */
        cfg_namer_fn namer;           /* not NULL: no files[], names made on demand */
        const void *namer_ctx;
};

/* A copy of s kept by the model (files[] names: an etcd cluster has one per key, and a
 * malloc each would cost a quarter again), or NULL without memory. */
char *cfg_model_name(struct cfg_model *m, const char *s);
/* Free the inputs' names (files[] or the namer; n_files stays, a count): only the load's
 * diagnostics name them, and a source that loads its model afresh on every change
 * (the Kubernetes one, daemon/source-kube.c) drops them once it is loaded: 5 MB of
 * "kubernetes:blockaffinities/NAME" at 100k (issue 15's memory budget). Afterwards
 * cfg_model_file() says "?". Not for a model that is updated in place (kvupdate.c). */
void cfg_model_drop_names(struct cfg_model *m);

/* Settings from the settings file's bytes (the daemon reads the file: daemon/source.h);
 * name stands for the file in diagnostics and relative resources paths are taken from
 * its folder. buf NULL: no settings file, every default. */
int cfg_settings_load_buffer(const char *name, const void *buf, size_t size, const char *host_name,
                             struct cfg_settings *ret, struct cfg_diags *diags);
/* The same read piece by piece (ydoc_read_fn, yamltree.h): a settings file that is a
 * FIFO fed for ever stops at YDOC_MAX_FILE_SIZE without sitting in memory. */
int cfg_settings_load_stream(const char *name, ydoc_read_fn read, void *ctx, const char *host_name,
                             struct cfg_settings *ret, struct cfg_diags *diags);
void cfg_settings_clear(struct cfg_settings *s);
/* One key of Calico's etcd v3 datastore and its value (datastore.h has the layout). */
struct cfg_kv {
        const char *key;   /* NUL-terminated */
        const char *value; /* value_len bytes, not necessarily NUL-terminated */
        size_t value_len;
        bool record;       /* value is cfg_kv_compact()'s record of the value, not the value */
        /* cfg_model_update_kvs(): the key's input number in the model + 1 (a key new to
         * the model: the number it is to have + 1), as the source that keeps the keys
         * knows it; 0: not told (the update then looks the key up by name). */
        uint32_t input;
        /* key is an input's name "kubernetes:PLURAL/NAME" and value that Kubernetes
         * object's JSON as cfg_loader_add_object() reads it (the Kubernetes source's
         * in-place updates), not an etcd key and value. */
        bool object;
};
void cfg_model_free(struct cfg_model *m);

/* What a change to the model touched (daemon/source.h source_update(); issue 16): the
 * prefixes (block cidrs, borrowed host prefixes) whose wanted state may differ from the
 * model before it, or everything (all: the planner plans every prefix), and whether the
 * nodes moved (nodes: the planner compares their addresses again). The planner replans
 * exactly these; an empty set with all and nodes false means nothing changed. */
struct cfg_touched {
        struct cfg_prefix *v;
        size_t n, cap;
        bool all;
        bool nodes; /* a node came or went, or its addresses moved (the planner's next hops) */
};
/* Adds p (duplicates allowed until cfg_touched_done()); -ENOMEM. */
int cfg_touched_add(struct cfg_touched *t, const struct cfg_prefix *p);
/* Sorts (cfg_prefix_cmp) and removes duplicates. */
void cfg_touched_done(struct cfg_touched *t);
/* Empties t (keeps nothing allocated). */
void cfg_touched_clear(struct cfg_touched *t);

const struct cfg_node *cfg_model_node(const struct cfg_model *m, const char *name);
/* The node's address of that family (AF_INET, AF_INET6), or NULL when unknown. */
const struct cfg_prefix *cfg_node_addr(const struct cfg_node *n, int family);
/* The node this daemon runs on, or NULL when no resource names it. */
const struct cfg_node *cfg_model_self(const struct cfg_model *m);
/* The pool whose cidr contains p, or NULL. */
const struct cfg_pool *cfg_model_pool_for(const struct cfg_model *m, const struct cfg_prefix *p);
/* This node's labels: its Node resource's, else the settings' nodeLabels, else empty. */
const struct cfg_labels *cfg_model_self_labels(const struct cfg_model *m);
/* Felix settings for node_name: node.<name> fields override default ones. */
struct cfg_felix cfg_model_felix(const struct cfg_model *m, const char *node_name);
const char *cfg_model_file(const struct cfg_model *m, struct cfg_src src);
const char *cfg_encap_name(enum cfg_encap e);
