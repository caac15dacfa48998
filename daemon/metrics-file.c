/* The metrics file (setting metricsFile): node_exporter's textfile collector reads
 * every *.prom file of its folder on each scrape, so a half-written file would be
 * scraped as such: the text goes to a hidden temporary file in the same folder (not
 * ending in .prom, so never read) and is renamed over the old one. Rewritten after
 * each pass, at most every METRICS_FILE_INTERVAL_USEC (a burst of passes costs one
 * write; the last state always lands, by a timer). Owns the file and the timer, never
 * the metrics (metrics.c); logs only write failures, once per distinct error. */
#include "metrics-file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"
#include "version.h"

struct metrics_file {
        sd_event *ev;
        const struct metrics *m;
        sd_event_source *timer;
        char *path;           /* NULL: off */
        uint64_t written_at;  /* CLOCK_MONOTONIC of the last write; 0 = never */
        int last_error;       /* the last write's -errno, logged once */
};

int metrics_file_write(const char *path, const char *text, size_t len)
{
        _cleanup_(freep) char *tmp = NULL;
        const char *base = strrchr(path, '/');
        size_t dirlen = base ? (size_t)(base - path + 1) : 0;
        int fd, r = 0;

        if (asprintf(&tmp, "%.*s.%s.XXXXXX", (int)dirlen, path, base ? base + 1 : path) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (size_t off = 0; off < len && !r;) {
                ssize_t n = write(fd, text + off, len - off);

                if (n < 0 && errno != EINTR)
                        r = -errno;
                else if (n > 0)
                        off += (size_t)n;
        }
        if (!r && fchmod(fd, 0644) < 0)
                r = -errno;
        if (close(fd) < 0 && !r)
                r = -errno;
        if (!r && rename(tmp, path) < 0)
                r = -errno;
        if (r)
                unlink(tmp);
        return r;
}

static double wall_now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_now(struct metrics_file *f)
{
        _cleanup_(freep) char *text = NULL;
        int r;

        sd_event_now(f->ev, CLOCK_MONOTONIC, &f->written_at);
        r = metrics_format(f->m, PACKAGE_VERSION, wall_now(), &text);
        if (r >= 0)
                r = metrics_file_write(f->path, text, strlen(text));
        if (r < 0 && r != f->last_error)
                log_warning("cannot write the metrics file %s: %s", f->path, strerror(-r));
        else if (r >= 0 && f->last_error)
                log_notice("metrics file %s written again", f->path);
        f->last_error = r < 0 ? r : 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct metrics_file *f = userdata;

        (void)s;
        (void)usec;
        if (f->path)
                write_now(f);
        return 0;
}

int metrics_file_new(sd_event *ev, const struct metrics *m, struct metrics_file **ret)
{
        struct metrics_file *f = calloc(1, sizeof(*f));
        int r;

        if (!f)
                return -ENOMEM;
        *f = (struct metrics_file){ .ev = ev, .m = m };
        r = sd_event_add_time(ev, &f->timer, CLOCK_MONOTONIC, UINT64_MAX, 100000, on_timer, f);
        if (r < 0) {
                free(f);
                return r;
        }
        sd_event_source_set_enabled(f->timer, SD_EVENT_OFF);
        *ret = f;
        return 0;
}

void metrics_file_free(struct metrics_file *f)
{
        if (!f)
                return;
        sd_event_source_unref(f->timer);
        free(f->path);
        free(f);
}

/* A new path (or none): the old file goes, so no stale copy is left to be scraped. */
static int set_path(struct metrics_file *f, const char *path)
{
        char *p = NULL;

        if (path && f->path && streq(path, f->path))
                return 0;
        if (path && !(p = strdup(path)))
                return -ENOMEM;
        if (f->path && f->written_at && unlink(f->path) < 0 && errno != ENOENT)
                log_warning("cannot remove the old metrics file %s: %s", f->path, strerror(errno));
        free(f->path);
        f->path = p;
        f->written_at = 0;
        f->last_error = 0;
        return 0;
}

void metrics_file_changed(struct metrics_file *f, const char *path)
{
        uint64_t now;
        int enabled = SD_EVENT_OFF;

        if (set_path(f, path) < 0 || !f->path) {
                sd_event_source_set_enabled(f->timer, SD_EVENT_OFF);
                return;
        }
        sd_event_now(f->ev, CLOCK_MONOTONIC, &now);
        if (!f->written_at || now >= f->written_at + METRICS_FILE_INTERVAL_USEC) {
                sd_event_source_set_enabled(f->timer, SD_EVENT_OFF);
                write_now(f);
                return;
        }
        sd_event_source_get_enabled(f->timer, &enabled);
        if (enabled == SD_EVENT_OFF) {
                sd_event_source_set_time(f->timer, f->written_at + METRICS_FILE_INTERVAL_USEC);
                sd_event_source_set_enabled(f->timer, SD_EVENT_ONESHOT);
        }
}
