/* Label maps (Kubernetes/Calico labels): an immutable array of key/value pairs sorted by
 * key, so lookups are a binary search. The strings are owned by the map. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct cfg_label {
        char *key;
        char *value;
};

struct cfg_labels {
        struct cfg_label *v;
        size_t n, cap;
};

/* Add key=value (amortised O(1): no search); the map stays unsorted, and a later
 * value for the same key replaces an earlier one, at cfg_labels_seal(). Merging the
 * labels of many same-name Node documents stays O(n log n) in all. */
int cfg_labels_set(struct cfg_labels *l, const char *key, const char *value);
/* Sort by key (O(n log n)) and drop every value but the last set for each key. Call
 * after the last set; sealing a sealed map changes nothing. -ENOMEM leaves it as it was. */
int cfg_labels_seal(struct cfg_labels *l);
/* Value of key, or NULL when the label is absent. Map must be sealed. */
const char *cfg_labels_get(const struct cfg_labels *l, const char *key);
/* The same keys with the same values (both sealed: in key order). */
bool cfg_labels_eq(const struct cfg_labels *a, const struct cfg_labels *b);
void cfg_labels_clear(struct cfg_labels *l);
