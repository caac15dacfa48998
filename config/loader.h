/* Internal to config/: the state of one model load, shared by model.c (files, final
 * validation, lookups) and resources.c (one Calico kind at a time). */
#pragma once

#include "model.h"
#include "yval.h"

enum block_origin {
        BLOCK_FROM_AFFINITY,
        BLOCK_FROM_IPAMBLOCK,
        BLOCK_FROM_PODCIDR,
};

struct raw_block {
        struct cfg_prefix cidr;
        uint32_t node;
        uint8_t origin;
        struct cfg_src src;
};

/* A borrowed address as read, before pools are sorted and nodes renumbered. */
struct raw_borrowed {
        struct cfg_prefix addr;
        uint32_t node, block_node;
        struct cfg_src src;
};

struct loader {
        struct cfg_model *m;
        struct cfg_diags *diags;
        struct yctx y; /* the file being read */
        uint32_t file;
        size_t cap_files, cap_pools, cap_nodes, cap_felix;
        struct raw_block *raw;
        size_t n_raw, cap_raw;
        struct raw_borrowed *borrowed;
        size_t n_borrowed, cap_borrowed;
        uint32_t *node_index; /* open addressing: node index + 1, 0 = empty */
        size_t node_index_size;
};

/* Caps on what input controls. */
#define CFG_MAX_POOLS 4096
#define CFG_MAX_NODES 200000
#define CFG_MAX_BLOCKS 4000000
#define CFG_MAX_FILES 10000
#define CFG_MAX_KEYS 1000000 /* etcd keys: each stands for a file */
#define CFG_MAX_BORROWED 1000000
#define CFG_MAX_BLOCK_ADDRS 4096 /* a /20 IPv4 or /116 IPv6 block, the largest Calico allows */
#define CFG_MAX_NAME 253      /* metadata.name, nodeName: a Kubernetes DNS subdomain */

/* resources.c: dispatch one resource by kind. */
int load_resource(const struct ynode *n, void *userdata);
/* etcdkv.c: one etcd key and its value, added to the file l->y.file names. */
int load_etcd_kv(struct loader *l, const struct cfg_kv *kv);
/* model.c: node by name, created (with no resource) when absent. */
int loader_node(struct loader *l, const char *name, uint32_t *ret);
int loader_add_block(struct loader *l, const struct cfg_prefix *cidr, uint32_t node, enum block_origin origin,
                     uint32_t line);
int loader_add_borrowed(struct loader *l, const struct cfg_prefix *addr, uint32_t node, uint32_t block_node,
                        uint32_t line);
bool cfg_route_protocol_reserved(unsigned p);
