/* The etcd client's key→value cache (etcd.c), kept small for a daemon that holds it for
 * ever: 210k keys at 100k blocks (issue 16's memory budget). Keys are packed end to
 * end in key order, each stored as the length it shares with the key before it and the
 * rest (Calico's keys share long prefixes), in runs of ETCD_CACHE_RUN with a table of
 * where each run starts for a binary search; values follow their keys (IPAM and Node
 * values as cfg_kv_compact() records). What changes after that (watch events) goes to a small
 * hash table on top, deletions as tombstones, until etcd_cache_compact() merges it into
 * a new packed table.
 *
 * Every key also has an input number: the model built from the cache names its inputs
 * by it (cfg_loader_name_on_demand(): etcd_cache_name()) and its in-place updates find
 * a changed key's input by it (struct cfg_kv.input). After etcd_cache_compact() a key's
 * number is its position in key order, as a load that reads the keys in order numbers
 * them; a key first put after it gets the next number never used, and keeps it (also
 * deleted) until the next compaction. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "strtab.h"

#define ETCD_CACHE_RUN 16

struct etcd_cache {
        char *data;          /* the packed keys and values */
        size_t n_data, cap_data;
        size_t *runs;        /* where each run of ETCD_CACHE_RUN keys starts in data */
        size_t n_runs, cap_runs;
        size_t n_packed;     /* keys in data */
        char *last;          /* the last packed key (appending), NULL after a compaction */
        size_t last_len, cap_last;
        struct strtab over;  /* keys changed since: struct etcd_cache_entry by key */
        size_t n_live;       /* keys with a value */
        uint32_t next_input; /* the number of the next key new to the table */
};

/* Takes copies; -ENOMEM or 0. */
int etcd_cache_put(struct etcd_cache *c, const char *key, const char *value, size_t value_len, bool record);
/* Deleting a key that is not there changes nothing. -ENOMEM or 0. */
int etcd_cache_del(struct etcd_cache *c, const char *key);
/* The key's value and input number (ret->input, cfg_kv's + 1): 1; 0 when it has no
 * value (ret->value NULL, ret->input the number of a key deleted since the compaction,
 * else 0); -ENOMEM (a packed key could not be rebuilt: not the same as absent). The
 * pointers stay valid until the cache changes. */
int etcd_cache_get(const struct etcd_cache *c, const char *key, struct cfg_kv *ret);
/* The key's input number + 1, also of a key deleted since the compaction; 0: none;
 * -ENOMEM. */
int64_t etcd_cache_input(const struct etcd_cache *c, const char *key);
size_t etcd_cache_n(const struct etcd_cache *c);
/* Entries on top of the packed table (what the next compaction merges). */
size_t etcd_cache_n_changed(const struct etcd_cache *c);
/* Merge the changes into a new packed table and renumber every key by its position:
 * the input numbers of a model built before no longer hold. -ENOMEM (the cache as it
 * was) or 0. */
int etcd_cache_compact(struct etcd_cache *c);
void etcd_cache_clear(struct etcd_cache *c);

/* Every key in key order, after a compaction (nothing on top: -EBUSY): fn gets each
 * (kv->input its number; pointers valid for the call only) and stops the walk with a
 * negative return, which the walk returns. */
int etcd_cache_walk(const struct etcd_cache *c, int (*fn)(const struct cfg_kv *kv, void *userdata), void *userdata);
/* cfg_namer_fn over a cache (ctx): "etcd:KEY" of input number input, or "etcd:?" when
 * no key has it. */
void etcd_cache_name(const void *ctx, uint32_t input, char *buf, size_t size);
