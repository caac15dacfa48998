/* The datastore seam: where the Calico resources come from, behind one interface.
 *
 * One path from settings to a model, for --check/--once and the daemon alike:
 *
 *     source_settings()  the settings file (read here, parsed by config/)
 *     source_resolve()   the datastore they name (calicoctl's file or environment)
 *     source_new()       a source for it: files (files.c: folders, the naming rule,
 *                        inotify) or etcd v3 (source-etcd.c over etcd.c and http.c)
 *     source_start()     begin reading; one-shot sources read once, here
 *     source_model()     the model of the source's current documents
 *
 * A following source (the daemon's: it has an event loop) tells its owner through
 * source_ops when its documents changed and when the datastore stops or starts
 * answering; the owner decides when to build a model again. A new kind of datastore (a
 * Kubernetes API source: list and watch of several kinds) is one more struct
 * source_impl; callers do not change. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "datastore.h"
#include "model.h"

struct source;

/* Called from the event loop (following sources only); a callback must not free the
 * source. */
struct source_ops {
        /* The documents changed, or may have: build the model again (after a debounce). */
        void (*changed)(struct source *src, void *userdata);
        /* A complete read succeeded (a first list, or one after a broken watch). */
        void (*reachable)(struct source *src, void *userdata);
        /* No endpoint answered (why names each and its error); the documents are kept
         * as they were and the source retries by itself. */
        void (*unreachable)(struct source *src, const char *why, void *userdata);
        /* The inputs cannot be watched (-errno): changes are seen on SIGHUP only. */
        void (*cannot_watch)(struct source *src, int error, void *userdata);
};

/* Where a model came from, for --check, the journal and STATUS=. */
struct source_origin {
        enum cfg_datastore type; /* CFG_DATASTORE_FILES or CFG_DATASTORE_ETCDV3 */
        char endpoint[1024];     /* etcd: the endpoint that served, or every configured one */
        int64_t revision;        /* etcd: the revision listed at; 0 unknown */
        size_t n_keys;           /* etcd: keys in the cache */
        const char *unit;        /* what each model input is: "file" or "key" */
        char clear_password[256]; /* etcd: the http:// endpoint a password goes to in clear */
};

/* --once and --check: one list at one revision, bounded in time. */
#define SOURCE_ONCE_TIMEOUT_USEC (30 * 1000 * 1000ULL)

/* The settings file at path (NULL: CFG_DEFAULT_CONFIG, where a missing file means every
 * default); an explicit path must exist. */
int source_settings(const char *path, const char *host_name, struct cfg_settings *ret, struct cfg_diags *d);
/* The datastore settings s name: reads calicoctl's settings file when they may use it,
 * else takes envp ("KEY=value", NULL-terminated: the process's environ). */
int source_resolve(const struct cfg_settings *s, const char *const *envp, struct cfg_source *ret,
                   struct cfg_diags *d);

/* A source for conf. ev NULL: one-shot (--once, --check), no ops. */
int source_new(sd_event *ev, const struct cfg_source *conf, const struct source_ops *ops, void *userdata,
               struct source **ret);
void source_free(struct source *src);
/* A one-shot source reads here (etcd: bounded by SOURCE_ONCE_TIMEOUT_USEC; on failure
 * -EHOSTUNREACH and source_error() says what each endpoint answered); a following
 * one starts reading and watching in the background. */
int source_start(struct source *src);
/* The same datastore, reached the same way (the daemon keeps its source then). */
bool source_same(const struct source *src, const struct cfg_source *conf);
/* The model of the current documents under settings s, which it takes on success:
 * 1 with *ret, 0 while a first read is pending (nothing to build from yet), -errno
 * with errors in d. A files source reads the files here, after updating its watch. */
int source_model(struct source *src, struct cfg_settings *s, struct cfg_model **ret, struct cfg_diags *d);
/* Bring m, a model this source built (source_model()) under the same settings, up to
 * date in place with the documents' changes since it was built or last updated, and
 * add to t the prefixes that touched (t->all when everything may differ). Returns 1
 * when m changed, 0 when nothing did, -EAGAIN when the change needs a full build
 * (source_model(): a pool, a FelixConfiguration, this node, anything in doubt), other
 * -errno with errors in d and m as it was (what a full build would refuse). A source
 * that cannot update in place always answers -EAGAIN. */
int source_update(struct source *src, struct cfg_model *m, struct cfg_touched *t, struct cfg_diags *d);
/* Whether the source has in-place updates at all (every change of one that has not
 * answers -EAGAIN). */
bool source_can_update(const struct source *src);
/* Read the datastore afresh (SIGHUP), keeping the current documents until then. */
void source_refresh(struct source *src);
void source_origin(const struct source *src, struct source_origin *ret);
/* No complete read yet: what it waits for ("the datastore (etcdv3 https://...)"). */
bool source_waiting(const struct source *src, char *buf, size_t size);
/* Why the one-shot read failed, or NULL. */
const char *source_error(const struct source *src);

/* One path for --check and --once: settings, datastore, one read, model. On failure
 * *o still says which datastore was tried, and source_error's text is in why. */
int source_load_once(const char *config_path, const char *host_name, struct cfg_model **ret,
                     struct cfg_diags *d, struct source_origin *o, char *why, size_t why_size);
