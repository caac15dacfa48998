/* The metrics file for node_exporter's textfile collector: written atomically, after
 * each pass, at most every METRICS_FILE_INTERVAL_USEC. */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

#include "metrics.h"

#define METRICS_FILE_INTERVAL_USEC (5 * 1000 * 1000ULL)

struct metrics_file;

/* m is read whenever the file is written: it must outlive f. */
int metrics_file_new(sd_event *ev, const struct metrics *m, struct metrics_file **ret);
void metrics_file_free(struct metrics_file *f);
/* Something changed: write now, or when the interval allows. path NULL turns the file
 * off (the one written before is removed: stale metrics would mislead). */
void metrics_file_changed(struct metrics_file *f, const char *path);
/* Write text to path atomically (a temporary file in the same folder, then rename),
 * mode 0644 whatever the umask: the collector runs as another user. */
int metrics_file_write(const char *path, const char *text, size_t len);
