/* One open-addressing hash table keyed by strings, for every name-keyed table in the
 * tree: the loader's nodes by name (config/loader.c) and the etcd client's keys
 * (daemon/etcd.c).
 *
 * The entries are the caller's: a pointer, or an index stored as one (the table never
 * dereferences an entry; it asks key_of for its key, with the caller's ctx). Linear
 * probing over a power-of-two array that grows at half full; deletion by backward
 * shift, so no tombstones and lookups never stop early. Header-only and inline so that
 * key_of, a constant at each call site, is inlined into the probe loop. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include "util.h"

struct strtab {
        void **slots;
        size_t size, n; /* size: 0 or a power of two */
};

typedef const char *(*strtab_key_fn)(const void *entry, const void *ctx);

/* The slot holding key, or the empty one where it would go. The table must have slots. */
static inline size_t strtab_slot(const struct strtab *t, const char *key, strtab_key_fn key_of, const void *ctx)
{
        size_t i = str_hash(key) & (t->size - 1);

        while (t->slots[i] && !streq(key_of(t->slots[i], ctx), key))
                i = (i + 1) & (t->size - 1);
        return i;
}

static inline void *strtab_get(const struct strtab *t, const char *key, strtab_key_fn key_of, const void *ctx)
{
        return t->size ? t->slots[strtab_slot(t, key, key_of, ctx)] : NULL;
}

/* Room for one more entry: doubles the array (at least 256 slots) at half full. */
static inline int strtab_reserve(struct strtab *t, strtab_key_fn key_of, const void *ctx)
{
        struct strtab bigger = { .size = t->size ? t->size * 2 : 256 };

        if ((t->n + 1) * 2 <= t->size)
                return 0;
        bigger.slots = calloc(bigger.size, sizeof(*bigger.slots));
        if (!bigger.slots)
                return -ENOMEM;
        for (size_t i = 0; i < t->size; i++)
                if (t->slots[i])
                        bigger.slots[strtab_slot(&bigger, key_of(t->slots[i], ctx), key_of, ctx)] = t->slots[i];
        bigger.n = t->n;
        free(t->slots);
        *t = bigger;
        return 0;
}

/* Insert entry, or replace the one with the same key (returned in *ret_old, NULL when
 * there was none, for the caller to free). */
static inline int strtab_put(struct strtab *t, void *entry, strtab_key_fn key_of, const void *ctx, void **ret_old)
{
        size_t i;
        int r;

        if ((r = strtab_reserve(t, key_of, ctx)) < 0)
                return r;
        i = strtab_slot(t, key_of(entry, ctx), key_of, ctx);
        *ret_old = t->slots[i];
        t->n += !t->slots[i];
        t->slots[i] = entry;
        return 0;
}

/* Remove the entry with key and return it (NULL: there was none). */
static inline void *strtab_remove(struct strtab *t, const char *key, strtab_key_fn key_of, const void *ctx)
{
        size_t i, j, mask = t->size - 1;
        void *old;

        if (!t->size || !(old = t->slots[i = strtab_slot(t, key, key_of, ctx)]))
                return NULL;
        t->slots[i] = NULL;
        t->n--;
        /* Move back every entry after the hole that the hole would cut off from its
         * home slot. */
        for (j = (i + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
                size_t home = str_hash(key_of(t->slots[j], ctx)) & mask;

                if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
                        t->slots[i] = t->slots[j];
                        t->slots[j] = NULL;
                        i = j;
                }
        }
        return old;
}

/* Frees the slots, not the entries. */
static inline void strtab_clear(struct strtab *t)
{
        free(t->slots);
        *t = (struct strtab){};
}
