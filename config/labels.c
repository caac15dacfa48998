/* Label maps: a sorted array. Owns its strings; knows nothing about selectors. */
#include "labels.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

int cfg_labels_set(struct cfg_labels *l, const char *key, const char *value)
{
        struct cfg_label *v;
        char *k, *val;

        for (size_t i = 0; i < l->n; i++)
                if (streq(l->v[i].key, key)) {
                        val = strdup(value);
                        if (!val)
                                return -ENOMEM;
                        free(l->v[i].value);
                        l->v[i].value = val;
                        return 0;
                }
        k = strdup(key);
        val = strdup(value);
        v = realloc(l->v, (l->n + 1) * sizeof(*v));
        if (!k || !val || !v) {
                free(k);
                free(val);
                if (v)
                        l->v = v;
                return -ENOMEM;
        }
        l->v = v;
        l->v[l->n++] = (struct cfg_label){ .key = k, .value = val };
        return 0;
}

static int label_cmp(const void *a, const void *b)
{
        return strcmp(((const struct cfg_label *)a)->key, ((const struct cfg_label *)b)->key);
}

void cfg_labels_seal(struct cfg_labels *l)
{
        if (l->n > 1)
                qsort(l->v, l->n, sizeof(*l->v), label_cmp);
}

const char *cfg_labels_get(const struct cfg_labels *l, const char *key)
{
        size_t lo = 0, hi = l ? l->n : 0;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(key, l->v[mid].key);

                if (c == 0)
                        return l->v[mid].value;
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return NULL;
}

int cfg_labels_copy(const struct cfg_labels *from, struct cfg_labels *ret)
{
        struct cfg_labels l = {};

        for (size_t i = 0; i < from->n; i++)
                if (cfg_labels_set(&l, from->v[i].key, from->v[i].value) < 0) {
                        cfg_labels_clear(&l);
                        return -ENOMEM;
                }
        cfg_labels_seal(&l);
        *ret = l;
        return 0;
}

void cfg_labels_clear(struct cfg_labels *l)
{
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].key);
                free(l->v[i].value);
        }
        free(l->v);
        *l = (struct cfg_labels){};
}
