/* Unit tests for the files source's cache (config/filerec.c, issue 16), by property:
 * random sequences of file edits (files added, removed, rewritten; Calico and
 * Kubernetes Nodes of one name in several files, labels and addresses merged across
 * them; BlockAffinities and IPAMBlocks for the same block in different files; pools,
 * FelixConfigurations, duplicates and conflicts across files; kinds that are skipped;
 * bad documents) where only the edited files are read again (cfg_file_rec_read()) and
 * the model is merged from every file's record (cfg_model_from_file_recs()). After
 * each step the merge must give exactly what a full load of the same files gives:
 * the model field by field, or the same refusal with the same messages in the same
 * order (both places named); a file whose reading has an error is not recorded (the
 * source loads every file then). cfg_model_diff() between consecutive models must
 * name every block and borrowed address whose route may differ. The claims' own sort
 * (loader_sort_claims(): in place, used by the full load and the records alike, so the
 * comparisons above cannot see it) against qsort() on random arrays. Half the texts are
 * Lists as kubectl prints them: the records read those with the plain YAML reader
 * (yamltree.c, YDOC_REWINDS), the full load with libyaml, and both must agree, the
 * messages' positions included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "load.h"
#include "loader.h"
#include "model-check.h"
#include "model.h"
#include "util.h"

#define MAX_FILES 8

struct files {
        char *name[MAX_FILES], *text[MAX_FILES];
        char *head[MAX_FILES], *claims[MAX_FILES]; /* text = head + claims */
        struct cfg_file_rec *rec[MAX_FILES];
        bool recorded[MAX_FILES]; /* rec read (NULL: the reading had an error) */
};

/* Everything a test's files hold (unused slots are NULL). */
static void files_clear(struct files *f)
{
        for (size_t i = 0; i < MAX_FILES; i++) {
                free(f->name[i]);
                free(f->text[i]);
                free(f->head[i]);
                free(f->claims[i]);
                cfg_file_rec_free(f->rec[i]);
        }
}

struct buf_reader {
        const char *p;
        size_t n;
        const char *start; /* YDOC_REWINDS */
        size_t size;
};

/* Pieces of a few bytes: the reader must not depend on how the bytes come. */
static int buf_read(void *ctx, void *buf, size_t size, size_t *ret_n)
{
        struct buf_reader *b = ctx;
        size_t k = b->n < size ? b->n : size;

        if (!buf && !size) {
                b->p = b->start;
                b->n = b->size;
                return 0;
        }
        if (k > 7)
                k = 7;
        memcpy(buf, b->p, k);
        b->p += k;
        b->n -= k;
        *ret_n = k;
        return 0;
}

/* ---- field by field (tests/model-check.c) ---- */

/* The inputs too: the merge names its files as a full load does. */
static void same_model(const struct cfg_model *a, const struct cfg_model *b)
{
        mc_same_inputs(a, b);
        mc_same_model(a, b);
}

/* ---- random files ---- */

struct text {
        char *p;
        size_t n, cap;
};

_printf_(2, 3) static void add(struct text *t, const char *fmt, ...)
{
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        assert_true(k >= 0);
        assert_int_equal(GROW(t->p, t->cap, t->n + (size_t)k + 1), 0);
        va_start(ap, fmt);
        vsnprintf(t->p + t->n, (size_t)k + 1, fmt, ap);
        va_end(ap);
        t->n += (size_t)k;
}

static unsigned rnd(unsigned *seed, unsigned n)
{
        *seed = *seed * 1103515245u + 12345u;
        return (*seed >> 16) % n;
}

static const char *const nodes[] = { "n1", "n2", "n3", "n4" };
/* four blocks of the IPv4 pool, one overlapping the first two, one in no pool, one
 * IPv6 (in no pool: a record that keeps its claims in the wide form) */
static const char *const cidrs[] = { "10.0.0.0/28", "10.0.0.16/28", "10.0.0.32/28", "10.0.0.48/28",
                                     "10.0.0.0/27", "10.9.0.0/28", "fd00:10::/124" };

static void pool(struct text *t, unsigned *seed)
{
        unsigned k = rnd(seed, 4);

        add(t, "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: %s\nspec:\n  cidr: %s\n",
            k == 3 ? "other" : "under", k == 3 ? "10.5.0.0/16" : "10.0.0.0/16");
        add(t, "  natOutgoing: %s\n", rnd(seed, 2) ? "true" : "false");
        if (rnd(seed, 3) == 0)
                add(t, "  nodeSelector: zone == \"a\"\n");
}

static void labels(struct text *t, unsigned *seed)
{
        unsigned k = rnd(seed, 4);

        if (k == 0)
                return;
        add(t, "  labels:\n");
        if (k & 1)
                add(t, "    zone: %s\n", rnd(seed, 2) ? "a" : "b");
        if (k & 2)
                add(t, "    rack: r%u\n", rnd(seed, 3));
}

static void calico_node(struct text *t, unsigned *seed)
{
        add(t, "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: %s\n", nodes[rnd(seed, 4)]);
        labels(t, seed);
        if (rnd(seed, 4) == 0)
                return;
        add(t, "spec:\n  bgp:\n    ipv4Address: 192.168.0.%u/24\n", 1 + rnd(seed, 6));
        if (rnd(seed, 5) == 0)
                add(t, "    ipv4IPIPTunnelAddr: 10.0.%u.1\n", rnd(seed, 3));
}

static void k8s_node(struct text *t, unsigned *seed)
{
        add(t, "apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n", nodes[rnd(seed, 4)]);
        labels(t, seed);
        if (rnd(seed, 2))
                add(t, "  annotations:\n    projectcalico.org/IPv4Address: 192.168.0.%u/24\n", 10 + rnd(seed, 6));
        if (rnd(seed, 2))
                add(t, "status:\n  addresses:\n  - type: InternalIP\n    address: 192.168.0.%u\n"
                       "  - type: InternalIP\n    address: fd00::%u\n",
                    20 + rnd(seed, 6), 1 + rnd(seed, 3));
        else if (rnd(seed, 20) == 0)
                add(t, "status:\n  addresses: 7\n"); /* read only while an address is missing */
}

/* Mostly the pool's four blocks; now and then the one overlapping two of them, one in
 * no pool, or the IPv6 one. */
static const char *cidr(unsigned *seed)
{
        unsigned k = rnd(seed, 25);

        return cidrs[k < 22 ? k % 4 : k - 18];
}

static void affinity(struct text *t, unsigned *seed)
{
        static const char *const states[] = { "confirmed", "pending", "pendingDeletion", "" };

        add(t, "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata:\n  name: a%u\nspec:\n"
               "  cidr: %s\n  deleted: \"false\"\n  node: %s\n  state: \"%s\"\n",
            rnd(seed, 100), cidr(seed), nodes[rnd(seed, 4)], states[rnd(seed, 4)]);
}

static void ipam_block(struct text *t, unsigned *seed)
{
        const char *c = cidr(seed);

        add(t, "apiVersion: crd.projectcalico.org/v1\nkind: IPAMBlock\nmetadata:\n  name: b%u\nspec:\n",
            rnd(seed, 100));
        if (rnd(seed, 4))
                add(t, "  affinity: host:%s\n", nodes[rnd(seed, 4)]);
        if (rnd(seed, 2))
                add(t, "  allocations:\n  - 0\n  - null\n  - 1\n  attributes:\n  - secondary:\n      node: %s\n"
                       "  - secondary:\n      node: %s\n",
                    nodes[rnd(seed, 4)], nodes[rnd(seed, 4)]);
        add(t, "  cidr: %s\n", c);
}

static void felix(struct text *t, unsigned *seed)
{
        add(t, "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata:\n  name: %s\nspec:\n"
               "  ipipEnabled: %s\n",
            rnd(seed, 2) ? "default" : "node.n2", rnd(seed, 2) ? "true" : "false");
}

/* File 0 holds the pools (now and then none, or a duplicate); the others hold the
 * rest, with a pool or a FelixConfiguration now and then. */
static char *pools_file(unsigned *seed)
{
        struct text t = {};
        unsigned k = rnd(seed, 12);

        if (k == 0)
                add(&t, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n");
        else
                pool(&t, seed);
        if (k > 6) {
                add(&t, "---\n");
                felix(&t, seed);
        }
        return t.p;
}

static char *random_file(unsigned *seed)
{
        struct text t = {};
        unsigned n = 1 + rnd(seed, 4);

        for (unsigned i = 0; i < n; i++) {
                unsigned k = rnd(seed, 100) ? rnd(seed, 67) : 67 + rnd(seed, 4);

                if (i)
                        add(&t, "---\n");
                if (k < 2)
                        pool(&t, seed);
                else if (k < 21)
                        calico_node(&t, seed);
                else if (k < 36)
                        k8s_node(&t, seed);
                else if (k < 50)
                        affinity(&t, seed);
                else if (k < 58)
                        ipam_block(&t, seed);
                else if (k < 61)
                        felix(&t, seed);
                else if (k < 67)
                        add(&t, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n");
                else if (k < 70)
                        add(&t, "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata:\n  name: bad\n"
                                "spec:\n  cidr: nonsense\n  node: n1\n");
                else
                        add(&t, "kind: [unclosed\n");
        }
        return t.p;
}

/* A file's own blocks: BlockAffinities and IPAMBlocks naming one node (the file's), as
 * a node's file has them; the edit that rewrites only these is what the daemon updates
 * in place. */
static char *file_claims(unsigned *seed, size_t file)
{
        struct text t = {};
        const char *node = nodes[file % 4];
        unsigned n = 1 + rnd(seed, 3);

        add(&t, "%s", "");
        for (unsigned i = 0; i < n; i++) {
                char c[32];

                /* Mostly the file's own range (10.0.F.0/24), now and then a shared block. */
                if (rnd(seed, 6))
                        snprintf(c, sizeof(c), "10.0.%zu.%u/28", file, 16 * rnd(seed, 4));
                else
                        snprintf(c, sizeof(c), "%s", cidr(seed));

                if (rnd(seed, 3))
                        add(&t, "---\napiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata:\n"
                                "  name: c%u\nspec:\n  cidr: %s\n  node: %s\n",
                            rnd(seed, 100), c, node);
                else
                        add(&t, "---\napiVersion: crd.projectcalico.org/v1\nkind: IPAMBlock\nmetadata:\n"
                                "  name: c%u\nspec:\n  affinity: host:%s\n%s  cidr: %s\n",
                            rnd(seed, 100), node,
                            rnd(seed, 2) ? "  allocations:\n  - 0\n  attributes:\n  - secondary:\n      node: n1\n" : "",
                            c);
        }
        return t.p;
}

/* The same documents as one List, as kubectl prints them: the plain YAML reader's
 * input (yamltree.c), which the records read and the full load's buffers do not. */
static char *as_list(const char *text)
{
        struct text t = {};
        bool first = true;

        add(&t, "apiVersion: v1\nitems:\n");
        for (const char *p = text; *p;) {
                const char *nl = strchr(p, '\n');
                size_t len = nl ? (size_t)(nl - p) : strlen(p);

                if (len == 3 && !strncmp(p, "---", 3))
                        first = true;
                else {
                        add(&t, "%s%.*s\n", first ? "- " : "  ", (int)len, p);
                        first = false;
                }
                p += len + (nl ? 1 : 0);
        }
        add(&t, "kind: List\n");
        return t.p;
}

/* Every other file a List. */
static void compose(struct files *f, size_t i)
{
        char *docs;

        free(f->text[i]);
        assert_true(asprintf(&docs, "%s%s", f->head[i], f->claims[i]) > 0);
        if (i % 2) {
                f->text[i] = as_list(docs);
                free(docs);
        } else
                f->text[i] = docs;
}

/* ---- the sequence ---- */

static void read_file(struct files *f, size_t i, struct cfg_settings *s)
{
        struct buf_reader b = { f->text[i], strlen(f->text[i]), f->text[i], strlen(f->text[i]) };
        int r;

        cfg_file_rec_free(f->rec[i]);
        f->rec[i] = NULL;
        r = cfg_file_rec_read(s, f->name[i], buf_read, &b, &f->rec[i]);
        assert_true(r == 0 || r == 1);
        f->recorded[i] = r == 1;
        assert_true(!f->recorded[i] == !f->rec[i]);
}

static int full_load(const struct files *f, struct cfg_model **ret, struct cfg_diags *d)
{
        struct cfg_settings s = mc_settings();
        const char *names[MAX_FILES], *bufs[MAX_FILES];
        size_t sizes[MAX_FILES], n = 0;
        int r;

        for (size_t i = 0; i < MAX_FILES; i++)
                if (f->text[i]) {
                        names[n] = f->name[i];
                        bufs[n] = f->text[i];
                        sizes[n++] = strlen(f->text[i]);
                }
        r = cfg_model_from_buffers(&s, names, bufs, sizes, n, ret, d);
        cfg_settings_clear(&s);
        return r;
}

struct stats {
        unsigned merged_ok, merged_refused, unrecorded, all, some, inplace_ok, inplace_no;
};

/* 1 with *ret, -EINVAL, or 0 when a file is not recorded (the source loads fully). */
static int merged_load(const struct files *f, struct cfg_model **ret, struct cfg_diags *d)
{
        struct cfg_settings s = mc_settings();
        const char *names[MAX_FILES];
        struct cfg_file_rec *recs[MAX_FILES];
        size_t n = 0;
        int r;

        for (size_t i = 0; i < MAX_FILES; i++) {
                if (!f->text[i])
                        continue;
                if (!f->recorded[i]) {
                        cfg_settings_clear(&s);
                        return 0;
                }
                names[n] = f->name[i];
                recs[n++] = f->rec[i];
        }
        r = cfg_model_from_file_recs(&s, names, recs, n, ret, d);
        cfg_settings_clear(&s);
        return r < 0 ? r : 1;
}

/* The edits of one step; for the update in place, the files rewritten (each once)
 * with the record each had, and whether the set of files stayed the same. */
struct edits {
        size_t changed[MAX_FILES];
        struct cfg_file_rec *old[MAX_FILES];
        bool old_recorded[MAX_FILES];
        size_t n;
        bool same_set;
};

static void edits_clear(struct edits *e)
{
        for (size_t k = 0; k < e->n; k++)
                cfg_file_rec_free(e->old[k]);
        *e = (struct edits){};
}

static void note_edit(struct files *f, struct edits *e, size_t i)
{
        for (size_t k = 0; k < e->n; k++)
                if (e->changed[k] == i) {
                        cfg_file_rec_free(f->rec[i]); /* the step's first record is the old one */
                        f->rec[i] = NULL;
                        return;
                }
        e->changed[e->n] = i;
        e->old[e->n] = TAKE_PTR(f->rec[i]);
        e->old_recorded[e->n++] = f->recorded[i];
}

static void step(struct files *f, struct cfg_settings *s, unsigned *seed, struct edits *e)
{
        unsigned edits = 1 + rnd(seed, 2);

        e->same_set = true;
        for (unsigned k = 0; k < edits; k++) {
                size_t i = rnd(seed, MAX_FILES);
                unsigned kind = rnd(seed, 8);

                if (f->text[i] && kind == 0 && (i != 0 || rnd(seed, 5) == 0)) {
                        free(f->text[i]); /* removed */
                        free(f->head[i]);
                        free(f->claims[i]);
                        f->text[i] = f->head[i] = f->claims[i] = NULL;
                        cfg_file_rec_free(f->rec[i]);
                        f->rec[i] = NULL;
                        f->recorded[i] = false;
                        e->same_set = false;
                        continue;
                }
                if (!f->text[i])
                        e->same_set = false;
                else
                        note_edit(f, e, i);
                if (f->text[i] && i != 0 && kind >= 2) {
                        free(f->claims[i]); /* the claims alone */
                        f->claims[i] = file_claims(seed, i);
                } else {
                        free(f->head[i]);
                        free(f->claims[i]);
                        f->head[i] = i == 0 ? pools_file(seed) : random_file(seed);
                        f->claims[i] = i == 0 ? strdup("") : file_claims(seed, i);
                }
                compose(f, i);
                read_file(f, i, s);
        }
}

/* The model the files had before the step (their old records), for mc_touched_covers(). */
static int merged_load_prev(const struct files *f, const struct edits *e, struct cfg_model **ret)
{
        struct files g = *f;

        for (size_t k = 0; k < e->n; k++) {
                g.rec[e->changed[k]] = e->old[k];
                g.recorded[e->changed[k]] = e->old_recorded[k];
        }
        if (!e->same_set)
                return 1 + (*ret = NULL, 0);
        for (size_t i = 0; i < MAX_FILES; i++)
                if (g.text[i] && !g.recorded[i])
                        return 1 + (*ret = NULL, 0);
        {
                struct cfg_diags d = {};
                int r = merged_load(&g, ret, &d);

                cfg_diags_clear(&d);
                if (r != 1)
                        *ret = NULL;
        }
        return 1;
}

/* The step's edits applied in place to inc (merged from the files before the step):
 * -EAGAIN (the caller merges afresh) or 0/1 with inc now the files' model. */
static int in_place(const struct files *f, const struct edits *e, struct cfg_model *inc, struct cfg_touched *t)
{
        struct cfg_file_rec *recs[MAX_FILES], *old[MAX_FILES];
        size_t changed[MAX_FILES], n = 0, pos[MAX_FILES];

        if (!e->same_set || !e->n)
                return -EAGAIN;
        for (size_t i = 0; i < MAX_FILES; i++)
                if (f->text[i]) {
                        if (!f->recorded[i])
                                return -EAGAIN;
                        pos[i] = n;
                        recs[n++] = f->rec[i];
                }
        for (size_t k = 0; k < e->n; k++) {
                if (!e->old_recorded[k])
                        return -EAGAIN;
                changed[k] = pos[e->changed[k]];
                old[k] = e->old[k];
        }
        /* In the walk's order, as the source hands them. */
        for (size_t a = 1; a < e->n; a++)
                for (size_t b = a; b > 0 && changed[b - 1] > changed[b]; b--) {
                        size_t x = changed[b];
                        struct cfg_file_rec *y = old[b];

                        changed[b] = changed[b - 1];
                        old[b] = old[b - 1];
                        changed[b - 1] = x;
                        old[b - 1] = y;
                }
        return cfg_model_update_file_recs(inc, recs, n, changed, old, e->n, t);
}

static void run_sequence(unsigned seed, unsigned steps, struct stats *st)
{
        struct cfg_settings s = mc_settings();
        struct files f = {};
        struct cfg_model *prev = NULL, *inc = NULL;

        for (size_t i = 0; i < MAX_FILES; i++)
                assert_true(asprintf(&f.name[i], "/res/%zu-f.yaml", i) > 0);
        f.head[0] = pools_file(&seed);
        f.claims[0] = strdup("");
        compose(&f, 0);
        read_file(&f, 0, &s);
        for (size_t i = 1; i < MAX_FILES; i++)
                if (rnd(&seed, 3)) {
                        f.head[i] = random_file(&seed);
                        f.claims[i] = file_claims(&seed, i);
                        compose(&f, i);
                        read_file(&f, i, &s);
                }
        for (unsigned k = 0; k < steps; k++) {
                struct cfg_diags dm = {}, df = {};
                struct cfg_model *mm = NULL, *mf = NULL;
                struct edits e = {};
                int rm, rf;

                step(&f, &s, &seed, &e);
                rf = full_load(&f, &mf, &df);
                rm = merged_load(&f, &mm, &dm);
                if (rm == 0) {
                        /* Not recorded: its reading alone has an error; the full load
                         * decides (it may have none: a field read only while unset). */
                        st->unrecorded++;
                } else if (rm < 0) {
                        st->merged_refused++;
                        assert_int_equal(rm, -EINVAL);
                        assert_int_equal(rf, -EINVAL);
                        mc_same_diags(&dm, &df);
                } else {
                        st->merged_ok++;
                        assert_int_equal(rf, 0);
                        same_model(mm, mf);
                        mc_same_diags(&dm, &df);
                }
                /* In place from the model before the step: the full load's model, or
                 * -EAGAIN (never a model the full load would refuse). */
                if (inc) {
                        struct cfg_touched t = {};
                        struct cfg_model *before = NULL;
                        int r;

                        assert_int_equal(merged_load_prev(&f, &e, &before), 1);
                        r = in_place(&f, &e, inc, &t);
                        if (r == -EAGAIN) {
                                st->inplace_no++;
                                cfg_model_free(inc);
                                inc = NULL;
                        } else {
                                assert_true(r >= 0);
                                assert_int_equal(rf, 0);
                                same_model(inc, mf);
                                mc_touched_covers(before, mf, &t);
                                st->inplace_ok++;
                        }
                        cfg_model_free(before);
                        cfg_touched_clear(&t);
                }
                if (!inc && rm == 1) {
                        inc = mm;
                        mm = NULL;
                } else if (rm != 1) {
                        cfg_model_free(inc);
                        inc = NULL;
                }
                if (rf == 0) {
                        if (prev) {
                                struct cfg_touched t = {};
                                int r = cfg_model_diff(prev, mf, &t);

                                assert_true(r >= 0);
                                if (t.all)
                                        st->all++;
                                else {
                                        st->some++;
                                        mc_touched_covers(prev, mf, &t);
                                }
                                cfg_touched_clear(&t);
                                cfg_model_free(prev);
                        }
                        prev = mf;
                        mf = NULL;
                }
                edits_clear(&e);
                cfg_model_free(mm);
                cfg_model_free(mf);
                cfg_diags_clear(&dm);
                cfg_diags_clear(&df);
        }
        cfg_model_free(prev);
        cfg_model_free(inc);
        files_clear(&f);
        cfg_settings_clear(&s);
}

static void random_sequences(void **state)
{
        struct stats st = {};
        const char *env = getenv("CU_SEED");
        unsigned first = env ? (unsigned)strtoul(env, NULL, 10) : 1, runs = env ? 1 : 200;

        (void)state;
        for (unsigned k = 0; k < runs; k++)
                run_sequence(first + k, 30, &st);
        print_message("merged and equal %u, refused alike %u, not recorded %u; diff: all %u, some %u; "
                      "in place and equal %u, not in place %u\n",
                      st.merged_ok, st.merged_refused, st.unrecorded, st.all, st.some, st.inplace_ok, st.inplace_no);
        /* The generator reaches every case. */
        assert_true(st.merged_ok > 100 && st.merged_refused > 100 && st.unrecorded > 100 && st.some > 50 &&
                    st.inplace_ok > 100);
}

/* Node merging across files in both orders: a Calico Node's address wins over a
 * Kubernetes Node's whichever file comes first, labels merge with the later file's
 * value, and the first file's line is the node's. */
static void node_merge_orders(void **state)
{
        static const char calico[] = "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n2\n"
                                     "  labels:\n    zone: a\nspec:\n  bgp:\n    ipv4Address: 192.168.0.2/24\n";
        static const char k8s[] = "apiVersion: v1\nkind: Node\nmetadata:\n  name: n2\n  labels:\n    zone: b\n"
                                  "  annotations:\n    projectcalico.org/IPv4Address: 192.168.0.9/24\n"
                                  "status:\n  addresses:\n  - type: InternalIP\n    address: fd00::2\n";
        static const char pool[] = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n"
                                   "  cidr: 10.0.0.0/16\n";

        (void)state;
        for (int order = 0; order < 2; order++) {
                struct cfg_settings s = mc_settings();
                struct files f = {};
                struct cfg_model *mm = NULL, *mf = NULL;
                struct cfg_diags dm = {}, df = {};
                const struct cfg_node *n;
                char buf[64];

                f.name[0] = strdup("/r/0.yaml");
                f.name[1] = strdup("/r/1.yaml");
                f.name[2] = strdup("/r/2.yaml");
                f.text[0] = strdup(pool);
                f.text[1] = strdup(order ? k8s : calico);
                f.text[2] = strdup(order ? calico : k8s);
                for (size_t i = 0; i < 3; i++)
                        read_file(&f, i, &s);
                assert_int_equal(merged_load(&f, &mm, &dm), 1);
                assert_int_equal(full_load(&f, &mf, &df), 0);
                same_model(mm, mf);
                n = cfg_model_node(mm, "n2");
                assert_non_null(n);
                cfg_prefix_fmt(&n->addr, buf, sizeof(buf));
                assert_string_equal(buf, "192.168.0.2/24");
                cfg_prefix_fmt(&n->addr6, buf, sizeof(buf));
                assert_string_equal(buf, "fd00::2/128");
                assert_string_equal(cfg_labels_get(&n->labels, "zone"), order ? "a" : "b");
                assert_string_equal(cfg_model_file(mm, n->src), "/r/1.yaml");
                cfg_model_free(mm);
                cfg_model_free(mf);
                cfg_diags_clear(&dm);
                cfg_diags_clear(&df);
                files_clear(&f);
                cfg_settings_clear(&s);
        }
}

/* The same block claimed by BlockAffinities in two files: refused, naming both files;
 * an IPAMBlock in a third file overrules them. */
static void conflict_across_files(void **state)
{
        static const char pool[] = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n"
                                   "  cidr: 10.0.0.0/16\n";
        static const char a1[] = "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata:\n  name: x\n"
                                 "spec:\n  cidr: 10.0.0.0/28\n  node: n2\n";
        static const char a2[] = "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata:\n  name: y\n"
                                 "spec:\n  cidr: 10.0.0.0/28\n  node: n3\n";
        static const char ib[] = "apiVersion: crd.projectcalico.org/v1\nkind: IPAMBlock\nmetadata:\n  name: z\n"
                                 "spec:\n  cidr: 10.0.0.0/28\n  affinity: host:n4\n";
        struct cfg_settings s = mc_settings();
        struct files f = {};
        struct cfg_model *mm = NULL, *mf = NULL;
        struct cfg_diags dm = {}, df = {};
        char msg[1024];

        (void)state;
        for (size_t i = 0; i < 4; i++)
                assert_true(asprintf(&f.name[i], "/r/%zu.yaml", i) > 0);
        f.text[0] = strdup(pool);
        f.text[1] = strdup(a1);
        f.text[2] = strdup(a2);
        for (size_t i = 0; i < 3; i++)
                read_file(&f, i, &s);
        assert_int_equal(merged_load(&f, &mm, &dm), -EINVAL);
        assert_int_equal(full_load(&f, &mf, &df), -EINVAL);
        mc_same_diags(&dm, &df);
        assert_int_equal(dm.n_errors, 1);
        cfg_diag_fmt(&dm.v[0], msg, sizeof(msg));
        assert_non_null(strstr(msg, "/r/2.yaml:6"));
        assert_non_null(strstr(msg, "/r/1.yaml:6"));
        cfg_diags_clear(&dm);
        cfg_diags_clear(&df);
        f.text[3] = strdup(ib);
        read_file(&f, 3, &s);
        assert_int_equal(merged_load(&f, &mm, &dm), 1);
        assert_int_equal(full_load(&f, &mf, &df), 0);
        same_model(mm, mf);
        assert_int_equal(mm->n_blocks, 1);
        assert_string_equal(mm->nodes[mm->blocks[0].node].name, "n4");
        cfg_model_free(mm);
        cfg_model_free(mf);
        cfg_diags_clear(&dm);
        cfg_diags_clear(&df);
        files_clear(&f);
        cfg_settings_clear(&s);
}

static int claim_cmp(const void *a, const void *b)
{
        return loader_claim_before(a, b) ? -1 : loader_claim_before(b, a) ? 1 : 0;
}

/* Random claims: few distinct prefixes (many equal ones), sorted runs (a file's
 * affinities then the same blocks' IPAMBlocks: a bad first pivot), runs descending, and
 * both families, against qsort() (stable, but equal claims are alike in every field
 * the order reads). */
static void claims_sort_like_qsort(void **state)
{
        (void)state;
        srand(16);
        for (int it = 0; it < 600; it++) {
                size_t n = (size_t)rand() % (it < 400 ? 100 : 5000), half = n / 2 ? n / 2 : 1;
                struct raw_block *v = calloc(n + 1, sizeof(*v)), *w = calloc(n + 1, sizeof(*w));
                int mode = rand() % 4;

                assert_non_null(v);
                assert_non_null(w);
                for (size_t i = 0; i < n; i++) {
                        struct raw_block *c = &v[i];
                        size_t k = mode == 1 ? i % half : mode == 2 ? n - i : (size_t)rand() % (mode ? 65536 : 8);

                        c->cidr.family = rand() % 8 ? 2 : 10;
                        c->cidr.len = (uint8_t)(24 + rand() % 3);
                        c->cidr.addr[0] = 10;
                        c->cidr.addr[1] = (uint8_t)(k >> 8);
                        c->cidr.addr[2] = (uint8_t)k;
                        c->origin = (uint8_t)(mode == 1 ? i >= half : rand() % 3);
                        c->src = (struct cfg_src){ .file = (uint32_t)(rand() % 3), .line = (uint32_t)(rand() % 40) };
                        if (mode == 1)
                                c->cidr.len = 26;
                }
                memcpy(w, v, n * sizeof(*v));
                qsort(w, n, sizeof(*w), claim_cmp);
                loader_sort_claims(v, n);
                for (size_t i = 0; i < n; i++)
                        assert_int_equal(claim_cmp(&v[i], &w[i]), 0);
                free(v);
                free(w);
        }
}

/* Claims tied in everything the sort looks at (one file, one line: a one-line
 * JSON List) but their node: the merge of records and the full load must name the
 * same nodes in the same order. */
static void ties_on_one_line(void **state)
{
        static const char pool[] = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n"
                                   "  cidr: 10.0.0.0/16\n  blockSize: 28\n";
        unsigned differ = 0, runs = 0;

        (void)state;
        for (unsigned seed = 1; seed <= 400; seed++) {
                struct cfg_settings s = mc_settings();
                struct files f = {};
                struct cfg_model *mm = NULL, *mf = NULL;
                struct cfg_diags dm = {}, df = {};
                unsigned sd = seed;
                int rm, rf;

                for (size_t i = 0; i < 3; i++)
                        assert_true(asprintf(&f.name[i], "/r/%zu.json", i) > 0);
                f.text[0] = strdup(pool);
                for (size_t i = 1; i < 3; i++) {
                        size_t cap = 1 << 16, len = 0;
                        char *t = malloc(cap);
                        unsigned n = 10 + rnd(&sd, 40);

                        len += (size_t)snprintf(t + len, cap - len, "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[");
                        for (unsigned k = 0; k < n; k++) {
                                unsigned c = rnd(&sd, 24);
                                len += (size_t)snprintf(t + len, cap - len,
                                        "%s{\"apiVersion\":\"crd.projectcalico.org/v1\",\"kind\":\"BlockAffinity\","
                                        "\"metadata\":{\"name\":\"a%u\"},\"spec\":{\"cidr\":\"10.0.%u.%u/28\","
                                        "\"node\":\"n%u\",\"state\":\"confirmed\",\"deleted\":\"false\"}}",
                                        k ? "," : "", k, c / 4, (c % 4) * 16, 1 + rnd(&sd, 4));
                        }
                        len += (size_t)snprintf(t + len, cap - len, "]}\n");
                        f.text[i] = t;
                }
                for (size_t i = 0; i < 3; i++)
                        read_file(&f, i, &s);
                rm = merged_load(&f, &mm, &dm);
                rf = full_load(&f, &mf, &df);
                runs++;
                if ((rm == -EINVAL) != (rf == -EINVAL) || dm.n != df.n)
                        differ++;
                else
                        for (size_t i = 0; i < dm.n; i++) {
                                char x[1024], y[1024];

                                cfg_diag_fmt(&dm.v[i], x, sizeof(x));
                                cfg_diag_fmt(&df.v[i], y, sizeof(y));
                                if (strcmp(x, y)) {
                                        if (differ < 3)
                                                printf("seed %u:\n  merge: %s\n  full:  %s\n", seed, x, y);
                                        differ++;
                                        break;
                                }
                        }
                if (rm == 1)
                        cfg_model_free(mm);
                if (rf == 0)
                        cfg_model_free(mf);
                cfg_diags_clear(&dm);
                cfg_diags_clear(&df);
                files_clear(&f);
                cfg_settings_clear(&s);
        }
        printf("ties: %u of %u runs with different messages\n", differ, runs);
        assert_int_equal(differ, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(node_merge_orders),
                cmocka_unit_test(conflict_across_files),
                cmocka_unit_test(random_sequences),
                cmocka_unit_test(claims_sort_like_qsort),
                cmocka_unit_test(ties_on_one_line),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
