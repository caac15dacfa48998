/* Unit tests for the daemon's files source and its cache (daemon/files.c, issue 16),
 * on a real folder: a following source (it has an event loop) reads every file once,
 * then a change reads only the files whose identity moved: a rewritten file (atomic
 * rename) is parsed again and nothing else is, a touch or a copy of the same bytes is
 * not parsed, a ConfigMap-style ..data symlink swap is seen, a removed or added file
 * changes the model; source_update() leaves the model a full load of the same files
 * builds (field by field, tests/model-check.c) and touches the changed block; a bad file is
 * refused by the full load (-EAGAIN from the update: the full load names it). */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "files.h"
#include "load.h"
#include "model-check.h"
#include "model.h"
#include "source.h"
#include "util.h"

static char dir[64];

static const char pools[] = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n"
                            "  cidr: 10.0.0.0/16\n";

static void write_at(const char *rel, const char *text)
{
        char path[256], tmp[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, rel);
        snprintf(tmp, sizeof(tmp), "%s/.tmp", dir);
        f = fopen(tmp, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        assert_int_equal(rename(tmp, path), 0);
}

/* node's Node and BlockAffinities 10.0.I.0/26 for I in [first, first + n), and
 * 10.0.extra.0/26 when extra is not 0. */
static void node_file(const char *rel, const char *node, unsigned first, unsigned n, unsigned extra)
{
        char text[8192];
        size_t k = 0;

        k += (size_t)snprintf(text + k, sizeof(text) - k,
                              "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: %s\nspec:\n  bgp:\n"
                              "    ipv4Address: 192.168.0.%u/24\n",
                              node, first + 1);
        for (unsigned i = first; i < first + n; i++)
                k += (size_t)snprintf(text + k, sizeof(text) - k,
                                      "---\napiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata:\n"
                                      "  name: a%u\nspec:\n  cidr: 10.0.%u.0/26\n  node: %s\n  state: confirmed\n",
                                      i, i, node);
        if (extra)
                k += (size_t)snprintf(text + k, sizeof(text) - k,
                                      "---\napiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata:\n"
                                      "  name: e%u\nspec:\n  cidr: 10.0.%u.0/26\n  node: %s\n", extra, extra, node);
        write_at(rel, text);
}

static struct cfg_settings settings(const char *res)
{
        char text[256];
        struct cfg_settings s = {};
        struct cfg_diags d = {};

        snprintf(text, sizeof(text), "nodeName: n0\nresources:\n  - %s\n", res);
        assert_int_equal(cfg_settings_load_buffer("/etc/config.yaml", text, strlen(text), "host", &s, &d), 0);
        cfg_diags_clear(&d);
        return s;
}

static struct cfg_model *full(const char *res)
{
        struct cfg_settings s = settings(res);
        struct source *src = NULL;
        struct cfg_model *m = NULL;
        struct cfg_diags d = {};

        assert_int_equal(source_new(NULL, &(struct cfg_source){ .type = CFG_DATASTORE_FILES }, NULL, NULL, &src), 0);
        assert_int_equal(source_model(src, &s, &m, &d), 1);
        source_free(src);
        cfg_settings_clear(&s);
        cfg_diags_clear(&d);
        return m;
}

struct fixture {
        sd_event *ev;
        struct source *src;
        struct cfg_model *m;
        char res[128];
};

/* Update in place and compare with a full load; returns source_update()'s answer. */
static int update(struct fixture *f, struct cfg_touched *t)
{
        struct cfg_diags d = {};
        struct cfg_model *ref;
        int r = source_update(f->src, f->m, t, &d);

        cfg_diags_clear(&d);
        if (r >= 0) {
                ref = full(f->res);
                mc_same_model(f->m, ref);
                cfg_model_free(ref);
        }
        return r;
}

static bool touched(const struct cfg_touched *t, const char *prefix)
{
        struct cfg_prefix p;

        assert_int_equal(cfg_prefix_parse(prefix, true, &p), 0);
        return mc_touched_has(t, &p);
}

static void start(struct fixture *f, const char *res_rel)
{
        struct cfg_settings s;
        struct cfg_diags d = {};

        snprintf(f->res, sizeof(f->res), "%s/%s", dir, res_rel);
        s = settings(f->res);
        assert_int_equal(sd_event_new(&f->ev), 0);
        assert_int_equal(source_new(f->ev, &(struct cfg_source){ .type = CFG_DATASTORE_FILES }, NULL, NULL, &f->src),
                         0);
        assert_int_equal(source_start(f->src), 0);
        assert_int_equal(source_model(f->src, &s, &f->m, &d), 1);
        cfg_settings_clear(&s);
        cfg_diags_clear(&d);
}

static void stop(struct fixture *f)
{
        cfg_model_free(f->m);
        source_free(f->src);
        sd_event_unref(f->ev);
}

static void setup_dir(void)
{
        snprintf(dir, sizeof(dir), "/tmp/cu-files-src-%d-XXXXXX", (int)getpid());
        assert_non_null(mkdtemp(dir));
}

static void cleanup_dir(void)
{
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

static void only_changed_files_are_read(void **state)
{
        struct fixture f = {};
        struct cfg_touched t = {};
        char path[256];
        size_t base;

        (void)state;
        setup_dir();
        snprintf(path, sizeof(path), "%s/res", dir);
        assert_int_equal(mkdir(path, 0755), 0);
        write_at("res/00-pools.yaml", pools);
        for (unsigned i = 0; i < 20; i++) {
                char rel[64], node[16];

                snprintf(rel, sizeof(rel), "res/n%02u.yaml", i);
                snprintf(node, sizeof(node), "n%02u", i);
                node_file(rel, node, i * 5, 5, 0);
        }
        start(&f, "res");
        base = files_source_parsed(f.src);
        assert_int_equal(base, 21);
        assert_int_equal(f.m->n_blocks, 100);

        /* Nothing changed: nothing read, nothing touched. */
        assert_int_equal(update(&f, &t), 0);
        assert_int_equal(files_source_parsed(f.src), base);

        /* One file rewritten (atomic rename, one more block): only it is parsed. */
        node_file("res/n03.yaml", "n03", 15, 5, 200);
        assert_int_equal(update(&f, &t), 1);
        assert_int_equal(files_source_parsed(f.src), base + 1);
        assert_false(t.all);
        assert_int_equal(t.n, 1);
        assert_true(touched(&t, "10.0.200.0/26"));
        cfg_touched_clear(&t);

        /* Touched (a new mtime, the same bytes): hashed, not parsed, nothing changed. */
        snprintf(path, sizeof(path), "%s/res/n05.yaml", dir);
        assert_int_equal(utimensat(AT_FDCWD, path, (struct timespec[]){ { 0, UTIME_NOW }, { 0, UTIME_NOW } }, 0), 0);
        assert_int_equal(update(&f, &t), 0);
        assert_int_equal(files_source_parsed(f.src), base + 1);

        /* A block moves from one node's file to another's: both files parsed, the
         * block touched. */
        node_file("res/n06.yaml", "n06", 31, 4, 0);
        node_file("res/n07.yaml", "n07", 35, 5, 30);
        write_at("res/n07b.yaml", "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata:\n"
                                  "  name: x\nspec:\n  cidr: 10.0.201.0/26\n  node: n07\n");
        assert_int_equal(update(&f, &t), 1);
        assert_int_equal(files_source_parsed(f.src), base + 4);
        assert_true(touched(&t, "10.0.30.0/26"));
        assert_false(t.all);
        cfg_touched_clear(&t);

        /* A file removed. */
        snprintf(path, sizeof(path), "%s/res/n07b.yaml", dir);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(update(&f, &t), 1);
        assert_int_equal(files_source_parsed(f.src), base + 4);
        assert_true(touched(&t, "10.0.201.0/26"));
        cfg_touched_clear(&t);

        /* A bad file: the full load decides (and names it); the model stays. */
        base = f.m->n_blocks;
        write_at("res/n99.yaml", "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata:\n"
                                 "  name: x\nspec:\n  cidr: banana\n  node: n07\n");
        assert_int_equal(update(&f, &t), -EAGAIN);
        assert_int_equal(f.m->n_blocks, base);
        cfg_touched_clear(&t);
        stop(&f);
        cleanup_dir();
}

/* A ConfigMap volume: name.yaml -> ..data/name.yaml, ..data -> a timestamped folder
 * swapped by a rename. The stat() that follows symlinks sees the new file. */
static void configmap_swap_is_seen(void **state)
{
        struct fixture f = {};
        struct cfg_touched t = {};
        char a[256], b[256], link[256];
        size_t base;

        (void)state;
        setup_dir();
        snprintf(a, sizeof(a), "%s/..v1", dir);
        snprintf(b, sizeof(b), "%s/..v2", dir);
        assert_int_equal(mkdir(a, 0755), 0);
        assert_int_equal(mkdir(b, 0755), 0);
        write_at("..v1/pools.yaml", pools);
        write_at("..v2/pools.yaml", pools);
        node_file("..v1/nodes.yaml", "n01", 0, 3, 0);
        node_file("..v2/nodes.yaml", "n01", 0, 4, 0);
        snprintf(link, sizeof(link), "%s/..data", dir);
        assert_int_equal(symlink("..v1", link), 0);
        snprintf(link, sizeof(link), "%s/pools.yaml", dir);
        assert_int_equal(symlink("..data/pools.yaml", link), 0);
        snprintf(link, sizeof(link), "%s/nodes.yaml", dir);
        assert_int_equal(symlink("..data/nodes.yaml", link), 0);
        start(&f, ".");
        base = files_source_parsed(f.src);
        assert_int_equal(f.m->n_blocks, 3);

        /* The swap, as kubelet does it: a new ..data link renamed over the old one. */
        snprintf(link, sizeof(link), "%s/..data_tmp", dir);
        assert_int_equal(symlink("..v2", link), 0);
        snprintf(a, sizeof(a), "%s/..data", dir);
        assert_int_equal(rename(link, a), 0);
        assert_int_equal(update(&f, &t), 1);
        assert_int_equal(f.m->n_blocks, 4);
        assert_true(touched(&t, "10.0.3.0/26"));
        /* The pools file is a new inode of the same size and bytes: hashed, not parsed. */
        assert_int_equal(files_source_parsed(f.src), base + 1);
        cfg_touched_clear(&t);
        stop(&f);
        cleanup_dir();
}

static void write_inplace(const char *rel, const char *text)
{
        char path[256];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, rel);
        f = fopen(path, "r+");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static const char aff1[] = "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata:\n"
                           "  name: x\nspec:\n  cidr: 10.0.1.0/26\n  node: n01\n";
static const char aff2[] = "apiVersion: crd.projectcalico.org/v1\nkind: BlockAffinity\nmetadata:\n"
                           "  name: x\nspec:\n  cidr: 10.0.2.0/26\n  node: n01\n";

/* A rewrite in place whose mtime ends as it was (cp -p, touch -r, tar, rsync --inplace
 * -t) is read again: its ctime moved. */
static void mtime_preserving_rewrite(void **state)
{
        struct fixture f = {};
        struct cfg_touched t = {};
        struct stat st;
        char path[256];

        (void)state;
        setup_dir();
        write_at("pools.yaml", pools);
        write_at("a.yaml", aff1);
        start(&f, ".");
        assert_int_equal(f.m->n_blocks, 1);
        snprintf(path, sizeof(path), "%s/a.yaml", dir);
        assert_int_equal(stat(path, &st), 0);
        write_inplace("a.yaml", aff2);
        assert_int_equal(utimensat(AT_FDCWD, path, (struct timespec[]){ st.st_atim, st.st_mtim }, 0), 0);
        assert_int_equal(update(&f, &t), 1); /* compares with a full load */
        cfg_touched_clear(&t);
        stop(&f);
        cleanup_dir();
}

/* A node holding no block moves: no prefix is touched, but the model changed (the
 * planner's guarded addresses: a block may come to cover the new address), so the
 * update says so and names the nodes. */
static void blockless_node_moves(void **state)
{
        struct fixture f = {};
        struct cfg_touched t = {};
        static const char fmt[] = "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n02\n"
                                  "spec:\n  bgp:\n    ipv4Address: %s/24\n";
        char text[512];

        (void)state;
        setup_dir();
        write_at("pools.yaml", pools);
        write_at("a.yaml", aff1);
        snprintf(text, sizeof(text), fmt, "192.168.0.2");
        write_at("n02.yaml", text);
        start(&f, ".");
        snprintf(text, sizeof(text), fmt, "10.0.5.10");
        write_at("n02.yaml", text);
        assert_int_equal(update(&f, &t), 1);
        assert_true(t.nodes);
        assert_int_equal(t.n, 0);
        assert_int_equal(cfg_node_addr(cfg_model_node(f.m, "n02"), AF_INET)->addr[0], 10);
        cfg_touched_clear(&t);
        stop(&f);
        cleanup_dir();
}

/* The last Calico IPAM resource removed in place: the merge's cfg_model_diff()
 * says "everything" (global_differs(): n_ipam_resources crossing zero decides the
 * pod-cidrs-ignored finding), and so must the in-place update. */
static void ipam_count_crosses_zero(void **state)
{
        struct fixture f = {};
        struct cfg_touched t = {}, t2 = {};
        struct cfg_model *before, *after;
        static const char node_a[] = "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: n01\n"
                                     "spec:\n  bgp:\n    ipv4Address: 192.168.0.1/24\n";
        char text[1024];

        (void)state;
        setup_dir();
        write_at("pools.yaml", pools);
        write_at("k.yaml", "apiVersion: v1\nkind: Node\nmetadata:\n  name: n02\nspec:\n  podCIDR: 10.0.9.0/24\n");
        snprintf(text, sizeof(text), "%s---\n%s", node_a, aff1);
        write_at("a.yaml", text);
        start(&f, ".");
        before = full(f.res);
        assert_true(before->n_ipam_resources > 0);
        assert_true(before->n_pod_cidrs_ignored > 0);
        write_at("a.yaml", node_a);
        after = full(f.res);
        assert_int_equal(after->n_ipam_resources, 0);
        assert_int_equal(cfg_model_diff(before, after, &t2), 1);
        assert_int_equal(update(&f, &t), 1);
        assert_int_equal(t.all, t2.all);
        cfg_touched_clear(&t);
        cfg_touched_clear(&t2);
        cfg_model_free(before);
        cfg_model_free(after);
        stop(&f);
        cleanup_dir();
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(only_changed_files_are_read),
                cmocka_unit_test(configmap_swap_is_seen),
                cmocka_unit_test(mtime_preserving_rewrite),
                cmocka_unit_test(blockless_node_moves),
                        cmocka_unit_test(ipam_count_crosses_zero),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
