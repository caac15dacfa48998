/* Benchmark for config/: a large cluster's block affinities, as
 * `kubectl get blockaffinities.crd.projectcalico.org -o yaml` prints them, loaded into the
 * model. Compares the full load (the daemon's files source: read the files, config/'s
 * loader) with a bare libyaml event scan of
 * the same file, which is the floor any YAML loader pays, and reports the model's memory.
 *
 *   bench-config [NODES [BLOCKS_PER_NODE [RUNS]]]     (default 5000 10 7)
 *
 * Targets: load within 2x of the bare scan; under 300 bytes of model per block. Build it
 * optimised and without sanitizers (meson's `benchmark` runs it: `meson test --benchmark`,
 * or run the executable). Prints the median of RUNS runs of each; the file is warm in the
 * page cache for both. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "load.h"
#include "model.h"
#include "source.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static double now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dbl_cmp(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;

        return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
        qsort(v, n, sizeof(*v), dbl_cmp);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* 10.64.0.0/10 holds 65,536 /26 blocks. */
#define POOL_BASE ((10u << 24) | (64u << 16))
#define POOL_LEN 10
#define BLOCK_LEN 26

static void ip_fmt(uint32_t a, char *buf, size_t size, char sep)
{
        snprintf(buf, size, "%u%c%u%c%u%c%u", a >> 24, sep, (a >> 16) & 255, sep, (a >> 8) & 255, sep, a & 255);
}

static int write_pool(const char *path)
{
        FILE *f = fopen(path, "we");

        if (!f)
                return -errno;
        fprintf(f, "apiVersion: projectcalico.org/v3\n"
                   "kind: IPPool\n"
                   "metadata:\n"
                   "  name: underlay-large\n"
                   "spec:\n"
                   "  blockSize: %d\n"
                   "  cidr: 10.64.0.0/%d\n"
                   "  ipipMode: Never\n"
                   "  natOutgoing: false\n"
                   "  nodeSelector: all()\n"
                   "  vxlanMode: Never\n",
                BLOCK_LEN, POOL_LEN);
        return fclose(f) == 0 ? 0 : -errno;
}

/* Blocks are dealt out round-robin, as nodes claim them over time. */
static int write_affinities(const char *path, unsigned nodes, unsigned per_node, size_t *ret_size)
{
        FILE *f = fopen(path, "we");
        unsigned n = nodes * per_node;
        char dots[16], dashes[16];
        long size;

        if (!f)
                return -errno;
        fputs("apiVersion: v1\nitems:\n", f);
        for (unsigned i = 0; i < n; i++) {
                uint32_t a = POOL_BASE + (i << (32 - BLOCK_LEN));
                unsigned node = i % nodes;

                ip_fmt(a, dots, sizeof(dots), '.');
                ip_fmt(a, dashes, sizeof(dashes), '-');
                fprintf(f,
                        "- apiVersion: crd.projectcalico.org/v1\n"
                        "  kind: BlockAffinity\n"
                        "  metadata:\n"
                        "    annotations:\n"
                        "      projectcalico.org/metadata: '{\"creationTimestamp\":null}'\n"
                        "    creationTimestamp: \"2019-11-%02uT%02u:%02u:%02uZ\"\n"
                        "    generation: 1\n"
                        "    name: k8s-worker-%04u-%s-%d\n"
                        "    resourceVersion: \"%u\"\n"
                        "    uid: %08x-%04x-11e9-a1d8-52540045a0c1\n"
                        "  spec:\n"
                        "    cidr: %s/%d\n"
                        "    deleted: \"false\"\n"
                        "    node: k8s-worker-%04u\n"
                        "    state: confirmed\n",
                        1 + i % 28, i % 24, i % 60, (i / 60) % 60, node, dashes, BLOCK_LEN, 1000 + i,
                        i * 2654435761u, i & 0xffff, dots, BLOCK_LEN, node);
        }
        fputs("kind: List\nmetadata:\n  resourceVersion: \"\"\n", f);
        size = ftell(f);
        if (fclose(f) != 0)
                return -errno;
        *ret_size = (size_t)size;
        return 0;
}

/* The floor: every libyaml event of the file, nothing built. */
static long bare_scan(const char *path)
{
        yaml_parser_t p;
        yaml_event_t e;
        long events = 0;
        FILE *f = fopen(path, "re");

        if (!f || !yaml_parser_initialize(&p))
                abort();
        yaml_parser_set_input_file(&p, f);
        for (;;) {
                if (!yaml_parser_parse(&p, &e)) {
                        fprintf(stderr, "bare scan: %s\n", p.problem);
                        abort();
                }
                events++;
                if (e.type == YAML_STREAM_END_EVENT) {
                        yaml_event_delete(&e);
                        break;
                }
                yaml_event_delete(&e);
        }
        yaml_parser_delete(&p);
        fclose(f);
        return events;
}

/* Reset the peak RSS (VmHWM) so that each load's own peak can be read. */
static void reset_peak_rss(void)
{
        int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);

        if (fd >= 0) {
                if (write(fd, "5", 1) < 0) {
                        /* older kernels: the peak then covers the whole process */
                }
                close(fd);
        }
}

static long status_kb(const char *field)
{
        char line[256];
        size_t len = strlen(field);
        long v = -1;
        FILE *f = fopen("/proc/self/status", "re");

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strncmp(line, field, len) == 0 && line[len] == ':') {
                        v = strtol(line + len + 1, NULL, 10);
                        break;
                }
        fclose(f);
        return v;
}

struct load_result {
        double seconds;
        long heap_bytes; /* heap held by the model after the load */
        long peak_kb;    /* VmHWM during the load */
        size_t n_blocks, n_nodes;
};

/* What the daemon does: the files source reads the files and feeds config/'s loader. */
static int files_model(struct cfg_settings *s, struct cfg_model **ret, struct cfg_diags *d)
{
        struct source *src = NULL;
        int r;

        if (source_new(NULL, &(struct cfg_source){ .type = CFG_DATASTORE_FILES }, NULL, NULL, &src) < 0 ||
            source_start(src) < 0)
                abort();
        r = source_model(src, s, ret, d);
        source_free(src);
        return r < 0 ? r : 0;
}

static struct load_result full_load(const char *pools, const char *affinities)
{
        struct load_result res = {};
        struct cfg_diags d = {};
        struct cfg_settings s;
        struct cfg_model *m = NULL;
        struct mallinfo2 before, after;
        double t0;
        int r;

        if (cfg_settings_load_buffer(NULL, NULL, 0, "k8s-worker-0001", &s, &d) < 0)
                abort();
        free(s.resources[0]);
        s.resources[0] = strdup(pools);
        s.resources = realloc(s.resources, 2 * sizeof(char *));
        if (!s.resources || !s.resources[0])
                abort();
        s.resources[1] = strdup(affinities);
        s.n_resources = 2;

        malloc_trim(0);
        reset_peak_rss();
        before = mallinfo2();
        t0 = now();
        r = files_model(&s, &m, &d);
        res.seconds = now() - t0;
        after = mallinfo2();
        res.peak_kb = status_kb("VmHWM");
        if (r < 0) {
                for (size_t i = 0; i < d.n; i++)
                        fprintf(stderr, "%s:%u:%u: %s\n", d.v[i].file ? d.v[i].file : "", d.v[i].line,
                                d.v[i].column, d.v[i].message);
                abort();
        }
        res.heap_bytes = (long)after.uordblks + (long)after.hblkhd - (long)before.uordblks - (long)before.hblkhd;
        res.n_blocks = m->n_blocks;
        res.n_nodes = m->n_nodes;
        cfg_model_free(m);
        cfg_diags_clear(&d);
        return res;
}

int main(int argc, char **argv)
{
        unsigned nodes = argc > 1 ? (unsigned)atoi(argv[1]) : 5000;
        unsigned per_node = argc > 2 ? (unsigned)atoi(argv[2]) : 10;
        unsigned runs = argc > 3 ? (unsigned)atoi(argv[3]) : 7;
        const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        char dir[4096], pools[4200], affinities[4200];
        double *scan_t, *load_t, *ratio, scan, load, ratio_med;
        long *heap, *peak, events = 0, base_kb;
        struct load_result last = {};
        size_t size = 0;
        struct rusage ru;
        bool ok;

        if (nodes == 0 || per_node == 0 || runs == 0 || (uint64_t)nodes * per_node > (1u << (BLOCK_LEN - POOL_LEN))) {
                fprintf(stderr, "usage: bench-config [NODES [BLOCKS_PER_NODE [RUNS]]] (at most 65536 blocks)\n");
                return 2;
        }
        snprintf(dir, sizeof(dir), "%s/bench-config.XXXXXX", tmp);
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 1;
        }
        snprintf(pools, sizeof(pools), "%s/ippools.yaml", dir);
        snprintf(affinities, sizeof(affinities), "%s/blockaffinities.yaml", dir);
        if (write_pool(pools) < 0 || write_affinities(affinities, nodes, per_node, &size) < 0) {
                perror("writing the input");
                return 1;
        }
        if (SANITIZED)
                printf("WARNING: built with AddressSanitizer: times and memory are not meaningful\n");
        printf("input: %u BlockAffinities (%u nodes x %u blocks) + 1 IPPool, %.1f MB of YAML\n", nodes * per_node,
               nodes, per_node, (double)size / 1e6);

        scan_t = calloc(runs, sizeof(double));
        load_t = calloc(runs, sizeof(double));
        ratio = calloc(runs, sizeof(double));
        heap = calloc(runs, sizeof(long));
        peak = calloc(runs, sizeof(long));
        if (!scan_t || !load_t || !ratio || !heap || !peak)
                return 1;
        /* Warm the page cache and the allocator once, unmeasured. */
        bare_scan(affinities);
        full_load(pools, affinities);
        malloc_trim(0);
        base_kb = status_kb("VmRSS");
        for (unsigned i = 0; i < runs; i++) {
                double t0 = now();

                events = bare_scan(affinities);
                scan_t[i] = now() - t0;
                last = full_load(pools, affinities);
                load_t[i] = last.seconds;
                /* Side by side in time, so a busy machine slows both alike. */
                ratio[i] = load_t[i] / scan_t[i];
                heap[i] = last.heap_bytes;
                peak[i] = last.peak_kb;
        }
        scan = median(scan_t, runs);
        load = median(load_t, runs);
        ratio_med = median(ratio, runs);
        getrusage(RUSAGE_SELF, &ru);
        printf("model: %zu blocks, %zu nodes\n", last.n_blocks, last.n_nodes);
        printf("bare libyaml scan: %8.1f ms  (%ld events, %.0f MB/s)   median of %u\n", scan * 1e3, events,
               (double)size / 1e6 / scan, runs);
        printf("full model load:   %8.1f ms  (%.0f MB/s, %.2f us/block)\n", load * 1e3, (double)size / 1e6 / load,
               load * 1e6 / (double)last.n_blocks);
        printf("ratio load/scan:   %8.2f       (target <= 2.00; median of the per-run ratios)\n", ratio_med);
        printf("model heap:        %8.1f KB    %.0f bytes/block (target < 300)\n", (double)heap[runs / 2] / 1024,
               (double)heap[runs / 2] / (double)last.n_blocks);
        printf("  by size: struct cfg_block %zu B, struct cfg_node %zu B per %u blocks\n", sizeof(struct cfg_block),
               sizeof(struct cfg_node), per_node);
        printf("peak RSS:          %8.1f MB    during a load (VmHWM), %.1f MB before it; ru_maxrss %.1f MB "
               "(process lifetime; may include the parent's before exec)\n",
               (double)peak[runs / 2] / 1024, (double)base_kb / 1024, (double)ru.ru_maxrss / 1024);

        ok = ratio_med <= 2.0 && (double)heap[runs / 2] / (double)last.n_blocks < 300;
        unlink(pools);
        unlink(affinities);
        rmdir(dir);
        free(scan_t);
        free(load_t);
        free(ratio);
        free(heap);
        free(peak);
        printf("%s\n", ok ? "targets met" : "TARGETS MISSED");
        return 0;
}
