/* The etcd client's key→value cache (etcd-cache.h): a packed table in key order with
 * a hash table of changes on top.
 *
 * Owns the cache's memory layout and the input numbers of its keys. A packed key is
 * [shared][rest length][rest][value length << 1 | record][value][NUL] (lengths as
 * LEB128 varints, shared 0 at the start of each run, the NUL so that a value is also a
 * C string); the packed table only grows at its end (a list reads each prefix in key
 * order) and is otherwise rebuilt whole by a compaction. Must never: interpret keys or
 * values (the client and config/ do), or do I/O. */
#include "etcd-cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct etcd_cache_entry {
        const char *value; /* into key[] after the key's NUL; NULL: deleted */
        size_t value_len;
        uint32_t input;
        bool record;
        bool shadows; /* a packed key has the same key */
        char key[];
};

static const char *entry_key(const void *entry, const void *ctx)
{
        (void)ctx;
        return ((const struct etcd_cache_entry *)entry)->key;
}

/* ---- the packed table ---- */

static void put_varint(char *p, size_t *at, size_t v)
{
        do {
                uint8_t b = v & 0x7f;

                v >>= 7;
                p[(*at)++] = (char)(b | (v ? 0x80 : 0));
        } while (v);
}

static size_t get_varint(const char *p, size_t *at)
{
        size_t v = 0;

        for (unsigned shift = 0;; shift += 7) {
                uint8_t b = (uint8_t)p[(*at)++];

                v |= (size_t)(b & 0x7f) << shift;
                if (!(b & 0x80))
                        return v;
        }
}

/* One packed key, decoded in place. */
struct packed {
        size_t shared, rest_len;
        const char *rest;
        const char *value;
        size_t value_len;
        bool record;
};

static size_t read_packed(const char *data, size_t at, struct packed *p)
{
        size_t v;

        p->shared = get_varint(data, &at);
        p->rest_len = get_varint(data, &at);
        p->rest = data + at;
        at += p->rest_len;
        v = get_varint(data, &at);
        p->record = v & 1;
        p->value_len = v >> 1;
        p->value = data + at;
        return at + p->value_len + 1;
}

static size_t common_len(const char *a, size_t na, const char *b, size_t nb)
{
        size_t i = 0;

        while (i < na && i < nb && a[i] == b[i])
                i++;
        return i;
}

static int set_last(char **last, size_t *cap, size_t *len, const char *key, size_t n)
{
        int r;

        if ((r = GROW(*last, *cap, n + 1)) < 0)
                return r;
        memcpy(*last, key, n);
        (*last)[n] = '\0';
        *len = n;
        return 0;
}

/* Key after everything packed (the caller checked the order). */
static int append_packed(struct etcd_cache *c, const char *key, const char *value, size_t value_len, bool record)
{
        size_t n = strlen(key), at, shared = 0;
        int r;

        if (c->n_packed % ETCD_CACHE_RUN) /* within a run: what it shares with the key before */
                shared = common_len(c->last, c->last_len, key, n);
        else if ((r = GROW(c->runs, c->cap_runs, c->n_runs + 1)) < 0)
                return r;
        if ((r = GROW(c->data, c->cap_data, c->n_data + 3 * 10 + (n - shared) + value_len + 1)) < 0)
                return r;
        if ((r = set_last(&c->last, &c->cap_last, &c->last_len, key, n)) < 0)
                return r;
        if (c->n_packed % ETCD_CACHE_RUN == 0)
                c->runs[c->n_runs++] = c->n_data;
        at = c->n_data;
        put_varint(c->data, &at, shared);
        put_varint(c->data, &at, n - shared);
        memcpy(c->data + at, key + shared, n - shared);
        at += n - shared;
        put_varint(c->data, &at, value_len << 1 | record);
        if (value_len)
                memcpy(c->data + at, value, value_len);
        at += value_len;
        c->data[at++] = '\0';
        c->n_data = at;
        c->n_packed++;
        return 0;
}

/* A walk over the packed keys from run r, the key rebuilt in buf. */
struct cursor {
        const struct etcd_cache *c;
        size_t at, pos;
        char *buf;
        size_t len, cap;
        struct packed p;
};

static int cursor_next(struct cursor *k)
{
        int r;

        if (k->pos >= k->c->n_packed)
                return 0;
        k->at = read_packed(k->c->data, k->at, &k->p);
        if ((r = GROW(k->buf, k->cap, k->p.shared + k->p.rest_len + 1)) < 0)
                return r;
        memcpy(k->buf + k->p.shared, k->p.rest, k->p.rest_len);
        k->len = k->p.shared + k->p.rest_len;
        k->buf[k->len] = '\0';
        k->pos++;
        return 1;
}

static void cursor_at_run(struct cursor *k, size_t run)
{
        k->at = k->c->runs[run];
        k->pos = run * ETCD_CACHE_RUN;
}

/* The run that would hold key: the last whose first key is not above it. */
static size_t run_for(const struct etcd_cache *c, const char *key, size_t n)
{
        size_t lo = 0, hi = c->n_runs;

        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2, at = c->runs[mid];
                struct packed p;
                int cmp;

                read_packed(c->data, at, &p);
                cmp = memcmp(p.rest, key, p.rest_len < n ? p.rest_len : n);
                if (cmp == 0)
                        cmp = p.rest_len < n ? -1 : p.rest_len > n;
                if (cmp <= 0)
                        lo = mid;
                else
                        hi = mid;
        }
        return lo;
}

/* The packed key: 1 with its position and value, 0 when absent, -ENOMEM. */
static int find_packed(const struct etcd_cache *c, const char *key, size_t *ret_pos, struct packed *ret)
{
        struct cursor k = { .c = c };
        size_t n = strlen(key);
        int r = 0;

        if (!c->n_packed)
                return 0;
        cursor_at_run(&k, run_for(c, key, n));
        for (size_t i = 0; i < ETCD_CACHE_RUN && (r = cursor_next(&k)) > 0; i++) {
                int cmp = strcmp(k.buf, key);

                if (cmp > 0)
                        break;
                if (cmp == 0) {
                        *ret_pos = k.pos - 1;
                        *ret = k.p;
                        free(k.buf);
                        return 1;
                }
        }
        free(k.buf);
        return r < 0 ? r : 0;
}

/* ---- the changes on top ---- */

static struct etcd_cache_entry *entry_new(const char *key, const char *value, size_t value_len, bool record)
{
        size_t n = strlen(key) + 1;
        struct etcd_cache_entry *e = malloc(sizeof(*e) + n + (value ? value_len + 1 : 0));

        if (!e)
                return NULL;
        *e = (struct etcd_cache_entry){ .value_len = value ? value_len : 0, .record = record };
        memcpy(e->key, key, n);
        if (value) {
                char *v = e->key + n;

                memcpy(v, value, value_len);
                v[value_len] = '\0';
                e->value = v;
        }
        return e;
}

/* Where key stands now: *ret_e its entry on top (NULL: none), else packed at *ret_pos
 * (*ret_packed); *ret_live whether it has a value. */
static int locate(const struct etcd_cache *c, const char *key, struct etcd_cache_entry **ret_e, bool *ret_packed,
                  size_t *ret_pos, struct packed *ret_p)
{
        int r;

        *ret_e = strtab_get(&c->over, key, entry_key, NULL);
        *ret_packed = false;
        if (*ret_e)
                return 0;
        if ((r = find_packed(c, key, ret_pos, ret_p)) < 0)
                return r;
        *ret_packed = r == 1;
        return 0;
}

static int put_entry(struct etcd_cache *c, struct etcd_cache_entry *e)
{
        void *old = NULL;
        int r;

        if ((r = strtab_put(&c->over, e, entry_key, NULL, &old)) < 0) {
                free(e);
                return r;
        }
        free(old);
        return 0;
}

int etcd_cache_put(struct etcd_cache *c, const char *key, const char *value, size_t value_len, bool record)
{
        struct etcd_cache_entry *old, *e;
        struct packed p;
        size_t pos = 0;
        bool packed, live;
        int r;

        /* A list reads keys in order: straight into the packed table. */
        if (c->over.n == 0 && (!c->n_packed || strcmp(key, c->last) > 0)) {
                if ((r = append_packed(c, key, value, value_len, record)) < 0)
                        return r;
                c->next_input++;
                c->n_live++;
                return 0;
        }
        if ((r = locate(c, key, &old, &packed, &pos, &p)) < 0)
                return r;
        if (!(e = entry_new(key, value, value_len, record)))
                return -ENOMEM;
        if (old) {
                e->input = old->input;
                e->shadows = old->shadows;
        } else if (packed) {
                e->input = (uint32_t)pos;
                e->shadows = true;
        } else
                e->input = c->next_input;
        live = old ? old->value != NULL : packed;
        if ((r = put_entry(c, e)) < 0)
                return r;
        c->next_input += !old && !packed;
        c->n_live += !live;
        return 0;
}

int etcd_cache_del(struct etcd_cache *c, const char *key)
{
        struct etcd_cache_entry *old, *e;
        struct packed p;
        size_t pos = 0;
        bool packed;
        int r;

        if ((r = locate(c, key, &old, &packed, &pos, &p)) < 0)
                return r;
        if (old ? !old->value : !packed)
                return 0;
        /* A tombstone keeps the number (a model built before still names it). */
        if (!(e = entry_new(key, NULL, 0, false)))
                return -ENOMEM;
        e->input = old ? old->input : (uint32_t)pos;
        e->shadows = old ? old->shadows : true;
        if ((r = put_entry(c, e)) < 0)
                return r;
        c->n_live--;
        return 0;
}

int etcd_cache_get(const struct etcd_cache *c, const char *key, struct cfg_kv *ret)
{
        struct etcd_cache_entry *e;
        struct packed p;
        size_t pos = 0;
        bool packed;
        int r;

        /* Without memory to rebuild a packed key it is an error, never "absent": a put
         * taken for a delete would be dropped with no full build to notice. */
        if ((r = locate(c, key, &e, &packed, &pos, &p)) < 0)
                return r;
        if (e) {
                *ret = e->value ? (struct cfg_kv){ e->key, e->value, e->value_len, e->record, e->input + 1 }
                                : (struct cfg_kv){ .key = key, .input = e->input + 1 }; /* deleted: its number */
                return !!e->value;
        }
        if (!packed) {
                *ret = (struct cfg_kv){ .key = key };
                return 0;
        }
        *ret = (struct cfg_kv){ key, p.value, p.value_len, p.record, (uint32_t)pos + 1 };
        return 1;
}

size_t etcd_cache_n(const struct etcd_cache *c)
{
        return c->n_live;
}

size_t etcd_cache_n_changed(const struct etcd_cache *c)
{
        return c->over.n;
}

void etcd_cache_clear(struct etcd_cache *c)
{
        for (size_t i = 0; i < c->over.size; i++)
                free(c->over.slots[i]);
        strtab_clear(&c->over);
        free(c->data);
        free(c->runs);
        free(c->last);
        *c = (struct etcd_cache){};
}

/* ---- compaction and walks ---- */

static int entry_cmp(const void *a, const void *b)
{
        return strcmp((*(struct etcd_cache_entry *const *)a)->key, (*(struct etcd_cache_entry *const *)b)->key);
}

/* The changes on top in key order (free() the array, not the entries). */
static int sorted_changes(const struct etcd_cache *c, struct etcd_cache_entry ***ret)
{
        struct etcd_cache_entry **v = malloc((c->over.n ? c->over.n : 1) * sizeof(*v));
        size_t n = 0;

        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < c->over.size; i++)
                if (c->over.slots[i])
                        v[n++] = c->over.slots[i];
        qsort(v, n, sizeof(*v), entry_cmp);
        *ret = v;
        return 0;
}

static int merge_into(const struct etcd_cache *c, struct etcd_cache_entry **top, struct etcd_cache *out)
{
        struct cursor k = { .c = c };
        size_t t = 0;
        int r, more;

        cursor_at_run(&k, 0);
        more = c->n_packed ? cursor_next(&k) : 0;
        for (r = more; r >= 0 && (more > 0 || t < c->over.n);) {
                int cmp = more <= 0 ? 1 : t == c->over.n ? -1 : strcmp(k.buf, top[t]->key);

                if (cmp < 0)
                        r = append_packed(out, k.buf, k.p.value, k.p.value_len, k.p.record);
                else if (top[t]->value)
                        r = append_packed(out, top[t]->key, top[t]->value, top[t]->value_len, top[t]->record);
                if (r >= 0 && cmp <= 0)
                        r = more = cursor_next(&k);
                if (cmp >= 0)
                        t++;
        }
        free(k.buf);
        return r < 0 ? r : 0;
}

/* The packed table at exactly its size: it is kept for a long time, and a list grew it
 * by doubling. */
static void shrink(struct etcd_cache *c)
{
        char *p;
        size_t *q;

        if (c->n_data && c->n_data < c->cap_data && (p = realloc(c->data, c->n_data))) {
                c->data = p;
                c->cap_data = c->n_data;
        }
        if (c->n_runs && c->n_runs < c->cap_runs && (q = realloc(c->runs, c->n_runs * sizeof(*q)))) {
                c->runs = q;
                c->cap_runs = c->n_runs;
        }
}

int etcd_cache_compact(struct etcd_cache *c)
{
        _cleanup_(freep) struct etcd_cache_entry **top = NULL;
        struct etcd_cache out = {};
        int r;

        if (c->over.n == 0) {
                c->next_input = (uint32_t)c->n_packed;
                shrink(c);
                return 0;
        }
        if ((r = sorted_changes(c, &top)) < 0)
                return r;
        if ((r = merge_into(c, top, &out)) < 0) {
                etcd_cache_clear(&out);
                return r;
        }
        shrink(&out);
        out.next_input = (uint32_t)out.n_packed;
        out.n_live = out.n_packed;
        etcd_cache_clear(c);
        *c = out;
        return 0;
}

int etcd_cache_walk(const struct etcd_cache *c, int (*fn)(const struct cfg_kv *kv, void *userdata), void *userdata)
{
        struct cursor k = { .c = c };
        int r = 0;

        if (c->over.n)
                return -EBUSY;
        if (!c->n_packed)
                return 0;
        cursor_at_run(&k, 0);
        while (r >= 0 && (r = cursor_next(&k)) > 0)
                r = fn(&(struct cfg_kv){ k.buf, k.p.value, k.p.value_len, k.p.record, (uint32_t)k.pos }, userdata);
        free(k.buf);
        return r < 0 ? r : 0;
}

void etcd_cache_name(const void *ctx, uint32_t input, char *buf, size_t size)
{
        const struct etcd_cache *c = ctx;
        struct cursor k = { .c = c };

        snprintf(buf, size, "etcd:?");
        /* A number on top: a key new since the compaction (a scan: diagnostics only). */
        for (size_t i = 0; i < c->over.size; i++) {
                const struct etcd_cache_entry *e = c->over.slots[i];

                if (e && e->input == input) {
                        snprintf(buf, size, "etcd:%s", e->key);
                        return;
                }
        }
        if (input >= c->n_packed)
                return;
        cursor_at_run(&k, input / ETCD_CACHE_RUN);
        for (size_t i = 0; i <= input % ETCD_CACHE_RUN; i++)
                if (cursor_next(&k) <= 0) {
                        free(k.buf);
                        return;
                }
        snprintf(buf, size, "etcd:%s", k.buf);
        free(k.buf);
}

int64_t etcd_cache_input(const struct etcd_cache *c, const char *key)
{
        struct cfg_kv kv;
        int r = etcd_cache_get(c, key, &kv);

        return r < 0 ? (int64_t)r : (int64_t)kv.input;
}
