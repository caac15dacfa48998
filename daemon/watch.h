/* inotify on the daemon's inputs: the settings file and the resources (DESIGN.md §4).
 * Folders are watched, never files, so that editors' atomic renames and ConfigMap
 * `..data` swaps are seen; a path that does not exist yet is watched through its
 * nearest existing ancestor, so a deleted and re-created folder is noticed. */
#pragma once

#include "model.h"

struct watch_set;

int watch_set_new(struct watch_set **ret);
void watch_set_free(struct watch_set *w);
int watch_set_fd(const struct watch_set *w);
/* Watch what loading config_path with settings s reads (s NULL: the settings file
 * only; calicoctl's settings file too unless s says datastore: files). Watches no longer needed are dropped; unchanged ones are kept, so no event
 * is lost between two calls. Returns the number of watched folders, or -errno when
 * not even one could be set up. */
int watch_set_update(struct watch_set *w, const char *config_path, const struct cfg_settings *s);
/* Read every pending event. Returns 1 when one of them may change what loading the
 * configuration gives (a watched name changed, a watched folder went away, the queue
 * overflowed), 0 when they were all irrelevant (editors' temporary files), -errno on
 * a read error. */
int watch_set_drain(struct watch_set *w);
