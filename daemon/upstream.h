/* The routes the upstream network needs (DESIGN.md §4, --upstream-routes): every
 * block of every underlay pool to its affine node, every borrowed address as a host
 * route to the node that hosts it, aggregated, and printed in the syntax a network
 * team pastes (or the change since a previous JSON output). Pure: model in, text out;
 * no I/O, no clock, no logging. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum upstream_aggregate {
        UPSTREAM_AGG_EXACT,      /* merge siblings only when they are exactly that node's blocks */
        UPSTREAM_AGG_COVER_FREE, /* may also cover unallocated space inside the pool */
};

enum upstream_format {
        UPSTREAM_FMT_TEXT,
        UPSTREAM_FMT_JSON,
        UPSTREAM_FMT_IOS,    /* Cisco IOS, Arista EOS */
        UPSTREAM_FMT_VRP,    /* Huawei VRP, H3C Comware */
        UPSTREAM_FMT_JUNOS,
        UPSTREAM_FMT_FRR,
        UPSTREAM_FMT_BIRD,   /* BIRD 2 static protocol */
        UPSTREAM_FMT_IP_BATCH,
};

enum upstream_kind {
        UPSTREAM_BLOCK,     /* one block */
        UPSTREAM_AGGREGATE, /* several blocks (and, with cover-free, free space) */
        UPSTREAM_BORROWED,  /* an address borrowed from another node's block */
};

/* What routing needs to know about one block or borrowed address. */
struct upstream_entry {
        struct cfg_prefix dst;        /* a block, or a borrowed address as a host prefix */
        const char *node;             /* the affine node (block) or the hosting node (borrowed) */
        const struct cfg_prefix *via; /* that node's address in dst's family; NULL: unknown */
        bool borrowed;
};

/* The computation's input, also built by hand in tests. pools: the underlay pools'
 * ranges (aggregates never leave them); node_addrs: every node's address, blocks or
 * not (an aggregate never covers one outside its own node's blocks: the upstream
 * router would send a node's own traffic to another node). */
struct upstream_input {
        const struct upstream_entry *entries;
        size_t n_entries;
        const struct cfg_prefix *pools;
        size_t n_pools;
        const struct cfg_prefix *node_addrs;
        size_t n_node_addrs;
};

struct upstream_route {
        struct cfg_prefix dst;
        struct cfg_prefix via; /* a host prefix */
        char *node;
        enum upstream_kind kind;
};

/* A block or borrowed address that gets no route, and why. */
struct upstream_missing {
        struct cfg_prefix dst;
        char *node;
        bool borrowed;
};

struct upstream {
        enum upstream_aggregate aggregate;
        struct upstream_route *routes; /* sorted by destination */
        size_t n_routes;
        size_t n_exact;         /* routes before aggregation */
        size_t n_blocks;        /* blocks routed */
        size_t n_borrowed;      /* borrowed addresses routed */
        struct upstream_missing *missing;
        size_t n_missing;
};

/* The input from a model: underlay pools (natOutgoing false, disabled ones too: their
 * addresses are in use), their blocks and borrowed addresses. The entries and pools
 * arrays are allocated (upstream_input_clear); names point into the model. */
int upstream_input_from_model(const struct cfg_model *m, struct upstream_input *ret);
void upstream_input_clear(struct upstream_input *in);

int upstream_compute(const struct upstream_input *in, enum upstream_aggregate agg, struct upstream **ret);
void upstream_free(struct upstream *u);

/* Format the routes (prev NULL), or the change from prev (removals first). The text
 * is allocated in *ret (NUL-terminated, *ret_len bytes). */
int upstream_format(const struct upstream *u, const struct upstream *prev, enum upstream_format f, char **ret,
                    size_t *ret_len);
/* One line for people: "12 routes for 14 blocks and 1 borrowed address (15 before
 * exact aggregation); 0 without a node address". */
int upstream_summary(const struct upstream *u, char *buf, size_t size);

/* Read a previous JSON output (the routes; the rest is ignored). On a malformed
 * document returns -EINVAL with a reason (and the byte offset when known) in why. */
int upstream_parse_json(const char *buf, size_t len, struct upstream **ret, char *why, size_t why_size);

int upstream_format_from_name(const char *name, enum upstream_format *ret);
int upstream_aggregate_from_name(const char *name, enum upstream_aggregate *ret);
const char *upstream_aggregate_name(enum upstream_aggregate a);
