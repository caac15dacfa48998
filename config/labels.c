/* Label maps: an array appended to while a document is read, sorted (and rid of
 * replaced values) once when sealed. Owns its strings; knows nothing about selectors. */
#include "labels.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

int cfg_labels_set(struct cfg_labels *l, const char *key, const char *value)
{
        char *k = strdup(key), *val = strdup(value);

        if (!k || !val || GROW(l->v, l->cap, l->n + 1) < 0) {
                free(k);
                free(val);
                return -ENOMEM;
        }
        l->v[l->n++] = (struct cfg_label){ .key = k, .value = val };
        return 0;
}

struct label_pos {
        const struct cfg_label *label;
        size_t pos; /* order of the set: the last one wins */
};

static int label_pos_cmp(const void *a, const void *b)
{
        const struct label_pos *x = a, *y = b;
        int c = strcmp(x->label->key, y->label->key);

        if (c)
                return c;
        return x->pos < y->pos ? -1 : x->pos > y->pos;
}

int cfg_labels_seal(struct cfg_labels *l)
{
        _cleanup_(freep) struct label_pos *order = NULL;
        _cleanup_(freep) struct cfg_label *sorted = NULL;
        size_t n = 0;

        if (l->n < 2)
                return 0;
        order = malloc(l->n * sizeof(*order));
        sorted = malloc(l->n * sizeof(*sorted));
        if (!order || !sorted)
                return -ENOMEM;
        for (size_t i = 0; i < l->n; i++)
                order[i] = (struct label_pos){ &l->v[i], i };
        qsort(order, l->n, sizeof(*order), label_pos_cmp);
        for (size_t i = 0; i < l->n; i++) {
                struct cfg_label *cur = &l->v[order[i].pos];

                if (i + 1 < l->n && streq(cur->key, order[i + 1].label->key)) {
                        free(cur->key); /* replaced by a later set */
                        free(cur->value);
                        continue;
                }
                sorted[n++] = *cur;
        }
        free(l->v);
        l->v = TAKE_PTR(sorted);
        l->n = l->cap = n;
        return 0;
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

void cfg_labels_clear(struct cfg_labels *l)
{
        for (size_t i = 0; i < l->n; i++) {
                free(l->v[i].key);
                free(l->v[i].value);
        }
        free(l->v);
        *l = (struct cfg_labels){};
}

bool cfg_labels_eq(const struct cfg_labels *a, const struct cfg_labels *b)
{
        if (a->n != b->n)
                return false;
        for (size_t i = 0; i < a->n; i++)
                if (!streq(a->v[i].key, b->v[i].key) || !streq(a->v[i].value, b->v[i].value))
                        return false;
        return true;
}
