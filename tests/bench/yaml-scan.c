/* yaml-scan: the floor of any YAML loader, for tests/bench/bench_scale.py. Times
 * libyaml's event parser reading each file (as the daemon reads them: through
 * yaml_parser_set_input_file) with nothing built: every event is parsed and
 * dropped.
 *
 *   yaml-scan FILE...      prints "events=N scan_ms=T bytes=B"
 *
 * Benchmark support only: never installed. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

static double now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static long scan(const char *path, size_t *bytes)
{
        FILE *f = fopen(path, "rbe");
        yaml_parser_t p;
        yaml_event_t e;
        long events = 0;
        bool end = false;

        if (!f) {
                fprintf(stderr, "yaml-scan: %s: %s\n", path, strerror(errno));
                return -1;
        }
        if (!yaml_parser_initialize(&p)) {
                fclose(f);
                return -1;
        }
        yaml_parser_set_input_file(&p, f);
        while (!end) {
                if (!yaml_parser_parse(&p, &e)) {
                        fprintf(stderr, "yaml-scan: %s: %s\n", path, p.problem ? p.problem : "parse error");
                        yaml_parser_delete(&p);
                        fclose(f);
                        return -1;
                }
                end = e.type == YAML_STREAM_END_EVENT;
                yaml_event_delete(&e);
                events++;
        }
        *bytes += (size_t)p.offset;
        yaml_parser_delete(&p);
        fclose(f);
        return events;
}

int main(int argc, char **argv)
{
        long events = 0;
        size_t bytes = 0;
        double total = 0;

        if (argc < 2) {
                fprintf(stderr, "usage: yaml-scan FILE...\n");
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                double t0 = now_ms();
                long n = scan(argv[i], &bytes);

                total += now_ms() - t0;
                if (n < 0)
                        return 1;
                events += n;
        }
        printf("events=%ld scan_ms=%.1f bytes=%zu\n", events, total, bytes);
        return 0;
}
