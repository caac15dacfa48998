/* Internal to config/: the state of one model load, shared by the loader (loader.c:
 * the table of inputs, nodes, blocks, final validation) and the feeds above it that
 * turn documents into records (resources.c: one Calico kind at a time; etcdkv.c: one
 * etcd key at a time). The feeds call the loader; the loader never calls a feed. */
#pragma once

#include "load.h"
#include "model.h"
#include "strtab.h"
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

/* Block claims kept for an index (kvupdate.c), in two parts each sorted by cidr: the
 * IPv4 claims in 16 bytes, the others (IPv6, a line past 2^24) as read. 100k
 * BlockAffinities behind their IPAMBlocks cost 1.6 MB, not 3.6 (issue 16's memory
 * budget; filerec.c keeps a file's claims alike). */
struct claim16 {
        uint8_t addr[4];
        uint32_t node;
        uint32_t file;
        uint32_t line_len_origin; /* line << 8 | prefix length << 2 | origin */
};

enum { CLAIMS_V4, CLAIMS_WIDE };

struct claims {
        struct claim16 *v4;
        struct raw_block *wide;
        size_t n[2], cap[2]; /* CLAIMS_V4, CLAIMS_WIDE */
};

/* The part a claim goes to: CLAIMS_V4 for an IPv4 claim on a line below this (2^24,
 * what a claim16 holds; a test lowers it to reach the other part with small values). */
extern uint32_t claims_v4_lines;
/* The part a claim goes to. */
int claims_part(const struct raw_block *b);
/* Claim i of a part. */
void claims_get(const struct claims *c, int part, size_t i, struct raw_block *ret);
/* Claim i of a part set to b (which belongs there). */
void claims_set(struct claims *c, int part, size_t i, const struct raw_block *b);
/* Room for n more in each part. */
int claims_reserve(struct claims *c, size_t more);
void claims_clear(struct claims *c);

/* Whether an index keeps claim c beside a block made of claim own in 4 bytes, its input
 * and line (kvupdate.c's shadow): an affinity on line 0 or 1 naming the block's node, as
 * an etcd block's BlockAffinity behind its IPAMBlock is (its cidr comes from the key:
 * line 0), or a Kubernetes one. */
static inline bool claim_shadows(const struct raw_block *own, const struct raw_block *c)
{
        return c->origin == BLOCK_FROM_AFFINITY && c->node == own->node && c->src.line <= 1 &&
               c->src.file < 1u << 30;
}

/* The 4 bytes of a shadow (never 0) and back. */
static inline uint32_t shadow_of(const struct raw_block *c)
{
        return (c->src.file + 1) << 1 | c->src.line;
}

static inline struct cfg_src shadow_src(uint32_t v)
{
        return (struct cfg_src){ .file = (v >> 1) - 1, .line = v & 1 };
}

/* A borrowed address as read, before pools are sorted and nodes renumbered. */
struct raw_borrowed {
        struct cfg_prefix addr;
        uint32_t node, block_node;
        struct cfg_src src;
};

struct cfg_loader {
        struct cfg_model *m;
        struct cfg_settings *settings; /* the caller's, emptied when the model takes them */
        struct cfg_diags *diags;
        struct cfg_diags own_diags;    /* when the caller passed none */
        size_t errors_before;          /* errors in diags when the load began */
        int failed;                    /* a feed ran out of memory: the load fails */
        struct yctx y; /* the file being read */
        uint32_t file;
        size_t cap_files, cap_pools, cap_nodes, cap_felix;
        struct raw_block *raw;
        size_t n_raw, cap_raw;
        /* indexing: the claims go here instead of raw, an IPv4 one in 16 bytes (200k
         * claims at 100k etcd blocks: 3.2 MB at the load's peak, not 7.2); n_raw counts
         * them. build_blocks() reads them in order from both parts. */
        struct claims claims;
        struct raw_borrowed *borrowed;
        size_t n_borrowed, cap_borrowed;
        /* indexing: the claims that are no block's own (an IPAMBlock's affinity after
         * it, those in no pool), and per block the origin of the claim it is made of:
         * with the model's blocks, every claim (kvupdate.c's index) */
        struct claims extra;
        uint8_t *won;
        uint32_t *shadow; /* per block: claim_shadows() one, shadow_of() it; 0: none */
        bool has_shadow;
        struct strtab node_index; /* node number + 1 by name */
        /* cfg_model_from_kvs_indexed(): keep what the in-place updates need (kvupdate.c) */
        bool indexing;
        uint8_t *file_ipam; /* per input: it counted as an IPAM resource */
        size_t cap_file_ipam;
        /* One file read alone for the files source's cache (filerec.c): a Kubernetes
         * Node's addresses, which fill a field only while it is unset, go here (per node
         * number: the first fill of each field) and the nodes keep only what a Calico
         * Node sets, so the merge across files can apply both in the full load's order. */
        bool split_fills;
        struct cfg_node *fills;
        size_t cap_fills;
};

/* Caps on what input controls. */
#define CFG_MAX_POOLS 4096
#define CFG_MAX_NODES 200000
#define CFG_MAX_BLOCKS 4000000
#define CFG_MAX_BORROWED 1000000
#define CFG_MAX_BLOCK_ADDRS 4096 /* a /20 IPv4 or /116 IPv6 block, the largest Calico allows */
#define CFG_MAX_NAME 253      /* metadata.name, nodeName: a Kubernetes DNS subdomain */

/* resources.c: one resource, dispatched by kind (etcdkv.c hands its values in too). */
int load_resource(const struct ynode *n, void *userdata);
/* A new input (a file, an etcd key) that the records after it come from; max caps how
 * many (CFG_MAX_FILES or CFG_MAX_KEYS). */
int loader_add_file(struct cfg_loader *l, const char *name, size_t max);
/* Node by name, created (with no resource) when absent. */
int loader_node(struct cfg_loader *l, const char *name, uint32_t *ret);
int loader_add_block(struct cfg_loader *l, const struct cfg_prefix *cidr, uint32_t node, enum block_origin origin,
                     uint32_t line);
int loader_add_borrowed(struct cfg_loader *l, const struct cfg_prefix *addr, uint32_t node, uint32_t block_node,
                        uint32_t line);
bool cfg_route_protocol_reserved(unsigned p);
/* The order build_blocks() puts claims in (by prefix; an IPAMBlock's first; then file
 * and line), and the sort itself (in place; an array already in order costs one look):
 * the files source's records keep their claims sorted and merge them in order. */
bool loader_claim_before(const struct raw_block *x, const struct raw_block *y);
void loader_sort_claims(struct raw_block *v, size_t n);

/* etcdkv.c: the block of an IPAM key (a BlockAffinity's or an IPAMBlock's, from the key
 * alone): 1 with *ret, 0 for any other key or one that does not fit the layout. */
int etcd_ipam_key_cidr(const char *key, struct cfg_prefix *ret);

/* kvupdate.c: the index of an indexed load, taken from the loader once the model is
 * built (the claims besides the blocks' own, their nodes renumbered to the sorted
 * table). */
int kv_index_take(struct cfg_loader *l, struct cfg_model *m, struct cfg_kv_index **ret);
/* kvupdate.c, for the property test: every claim an index holds (the model's blocks'
 * own, then the others; *ret to free()), and whether its count of references per node
 * agrees with them. */
int kv_index_claims(const struct cfg_model *m, const struct cfg_kv_index *ix, struct raw_block **ret,
                    size_t *ret_n);
bool kv_index_counts_agree(const struct cfg_model *m, const struct cfg_kv_index *ix);
/* kvupdate.c: a cfg_kv_compact() record into the load, as its value would go. */
int loader_replay_record(struct cfg_loader *l, const struct cfg_kv *kv);
