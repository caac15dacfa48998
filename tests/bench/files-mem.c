/* Where the files source's memory and CPU go on a change (issue 16): a following files
 * source (daemon/files.c) loads CONFIG's resources, then FILE is changed N times (a
 * comment appended: its identity and bytes move, so it is parsed again and the model
 * merged, as a rewritten export is) and source_update() brings the model up to date.
 * Prints, per phase, the CPU time, the peak of live heap bytes (malloc's own count,
 * through glibc's __libc_* entry points), what was live at its end, and the process's
 * VmHWM; with -b, the call stack of the allocation that made each phase's peak
 * (addresses: addr2line -f -e files-mem). A tool, not a test:
 *     BUILD/tests/bench/files-mem [-b] CONFIG FILE [N] */
#include <execinfo.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "files.h"
#include "load.h"
#include "model.h"
#include "source.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static size_t live, peak, traced_peak;
static bool tracing, in_trace;
static void *peak_stack[24];
static int peak_depth;

static bool counting = true;

static void account(void *p, long sign)
{
        if (!p || !counting)
                return;
        live += (size_t)((long)malloc_usable_size(p) * sign);
        if (live > peak) {
                peak = live;
                if (tracing && !in_trace && peak >= traced_peak + 65536) {
                        in_trace = true;
                        peak_depth = backtrace(peak_stack, 24);
                        traced_peak = peak;
                        in_trace = false;
                }
        }
}

void *malloc(size_t n)
{
        void *p = __libc_malloc(n);

        account(p, 1);
        return p;
}

void *calloc(size_t a, size_t b)
{
        void *p = __libc_calloc(a, b);

        account(p, 1);
        return p;
}

void free(void *p)
{
        account(p, -1);
        __libc_free(p);
}

void *realloc(void *p, size_t n)
{
        size_t was = p && counting ? malloc_usable_size(p) : 0;
        void *q = __libc_realloc(p, n);

        if (q || !n) {
                live -= was;
                account(q, 1);
        }
        return q;
}

static double cpu_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long hwm_kb(void)
{
        char line[256];
        long kb = -1;
        FILE *f = fopen("/proc/self/status", "r");

        while (f && fgets(line, sizeof(line), f))
                if (!strncmp(line, "VmHWM:", 6))
                        kb = atol(line + 6);
        if (f)
                fclose(f);
        return kb;
}

static void phase_begin(double *t0)
{
        peak = live;
        traced_peak = 0;
        peak_depth = 0;
        *t0 = cpu_ms();
}

static void phase_end(const char *what, double t0)
{
        printf("%-10s cpu %7.1f ms  heap peak %6.1f MB  live after %6.1f MB  VmHWM %6.1f MB\n", what,
               cpu_ms() - t0, peak / 1e6, live / 1e6, hwm_kb() / 1e3);
        if (tracing && peak_depth) {
                printf("  peak made at:");
                for (int i = 1; i < peak_depth; i++)
                        printf(" %p", peak_stack[i]);
                printf("\n");
        }
        fflush(stdout);
}

int main(int argc, char **argv)
{
        struct cfg_settings s = {};
        struct cfg_diags d = {};
        struct cfg_model *m = NULL;
        struct source *src = NULL;
        sd_event *ev = NULL;
        int n = 3, a = 1, r;
        double t0;

        counting = !getenv("FILES_MEM_NO_COUNT"); /* for perf: malloc's own cost alone */
        /* As the daemon sets them (main.c). */
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        mallopt(M_TRIM_THRESHOLD, 128 * 1024);
        if (argc > 1 && !strcmp(argv[1], "-b"))
                tracing = true, a++;
        if (argc - a < 2) {
                fprintf(stderr, "usage: files-mem [-b] CONFIG FILE [N]\n");
                return 2;
        }
        if (argc - a > 2)
                n = atoi(argv[a + 2]);
        if (source_settings(argv[a], NULL, &s, &d) < 0 || sd_event_new(&ev) < 0 ||
            source_new(ev, &(struct cfg_source){ .type = CFG_DATASTORE_FILES }, NULL, NULL, &src) < 0 ||
            source_start(src) < 0) {
                fprintf(stderr, "files-mem: cannot set up\n");
                return 1;
        }
        phase_begin(&t0);
        r = source_model(src, &s, &m, &d);
        phase_end("load", t0);
        if (r != 1) {
                fprintf(stderr, "files-mem: load failed (%d, %zu errors)\n", r, d.n_errors);
                return 1;
        }
        printf("model: %zu blocks, %zu nodes, %zu borrowed\n", m->n_blocks, m->n_nodes, m->n_borrowed);
        for (int i = 0; i < n; i++) {
                struct cfg_touched t = {};
                FILE *f = fopen(argv[a + 1], "a");
                char what[32];

                if (!f || fprintf(f, "# change %d\n", i) < 0 || fclose(f) != 0) {
                        perror(argv[a + 1]);
                        return 1;
                }
                phase_begin(&t0);
                r = source_update(src, m, &t, &d);
                snprintf(what, sizeof(what), "change %d", i);
                phase_end(what, t0);
                if (r < 0) {
                        fprintf(stderr, "files-mem: update failed (%d)\n", r);
                        return 1;
                }
                cfg_touched_clear(&t);
        }
        cfg_model_free(m);
        source_free(src);
        sd_event_unref(ev);
        cfg_diags_clear(&d);
        return 0;
}

void mem_mark(const char *what);
void mem_mark(const char *what)
{
        printf("    mark %-28s live %6.1f MB  peak so far %6.1f MB  cpu %8.1f\n", what, live / 1e6, peak / 1e6, cpu_ms());
}
