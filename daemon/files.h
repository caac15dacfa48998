/* The files datastore: the `resources` setting's files and folders (files.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"

/* The one naming rule for resource files in a folder: *.yaml or *.yml, not hidden
 * (editors' temporary files, a ConfigMap volume's ..data). The folder walk and the
 * inotify filter both ask it. */
bool files_is_resource_name(const char *name);
/* The bytes of the file at path, NUL-terminated (not counted in *ret_size);
 * at most max bytes, else -EFBIG (also a FIFO fed for ever). -errno on failure; no
 * diagnostic. */
int files_read(const char *path, size_t max, char **ret, size_t *ret_size);
/* A ydoc_read_fn (yamltree.h) over the file descriptor *ctx; it starts again
 * (YDOC_REWINDS) by seeking to the first byte. */
int files_fd_read(void *ctx, void *buf, size_t size, size_t *ret_n);
struct source;
/* Files the source has parsed into its cache since it began (tests: a file whose
 * identity did not change is not read again). */
size_t files_source_parsed(const struct source *src);
