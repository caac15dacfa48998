/* The record of what the uplink's settings were before our first change, kept in the
 * runtime directory ($RUNTIME_DIRECTORY, as systemd sets it; default
 * /run/calico-underlay) so that the end of underlay mode, --cleanup, or a restarted
 * daemon restores them. */
#pragma once

#include "host.h"

#define STATE_DEFAULT_DIR "/run/calico-underlay"

/* The directory to use: the first entry of $RUNTIME_DIRECTORY, else the default. */
const char *state_dir(char *buf, size_t size);
/* Missing file: *ret = { .valid = false }. A malformed file is -EINVAL. */
int state_load(const char *dir, struct host_record *ret);
/* Written atomically (temporary file + rename); !rec->valid removes the file. */
int state_save(const char *dir, const struct host_record *rec);
bool state_equal(const struct host_record *a, const struct host_record *b);
