/* inotify on the daemon's inputs: the settings file and the resources (DESIGN.md §4).
 * Folders are watched, never files, so that editors' atomic renames and ConfigMap
 * `..data` swaps are seen; a path that does not exist yet is watched through its
 * nearest existing ancestor, so a deleted and re-created folder is noticed. */
#pragma once

#include <stddef.h>

struct watch_set;

int watch_set_new(struct watch_set **ret);
void watch_set_free(struct watch_set *w);
int watch_set_fd(const struct watch_set *w);
/* Watch these files (each through its folder) and these resources entries (a folder:
 * every resource file in it, files.h's naming rule; and the entry itself through its
 * parent). Watches no longer needed are dropped; unchanged ones are kept, so no event
 * is lost between two calls. Returns the number of watched folders, or -errno when
 * not even one could be set up. */
int watch_set_update(struct watch_set *w, const char *const *files, size_t n_files, const char *const *resources,
                     size_t n_resources);
/* Read every pending event. Returns 1 when one of them may change what loading the
 * configuration gives (a watched name changed, a watched folder went away, the queue
 * overflowed), 0 when they were all irrelevant (editors' temporary files), -errno on
 * a read error. */
int watch_set_drain(struct watch_set *w);
