/* The upstream routes file the daemon keeps (setting upstreamRoutesFile). */
#pragma once

#include <stddef.h>

/* Make path hold content: 0 when it already does (nothing written), 1 when it was
 * replaced atomically (a temporary file in the same folder, then rename), -errno. */
int upstream_file_keep(const char *path, const char *content, size_t len);
