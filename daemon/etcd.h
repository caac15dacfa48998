/* A client for Calico's etcd v3 datastore over etcd's JSON gateway (libcurl for HTTP and
 * TLS, json-c for JSON), driven by an sd-event loop through curl's multi socket API, so
 * no call ever blocks the loop. libcurl is loaded when the first round starts
 * (curl-dl.h), so a process that never starts a client never maps it; without it, each
 * round fails as one where no endpoint answers, why naming the library.
 *
 * It lists the Calico prefixes at one revision into a key→value cache, then watches
 * them from the next revision and applies each event to the cache. A broken stream, a
 * compacted revision or a watch etcd did not confirm in time means: list again
 * (failing over across the endpoints) and watch from the new revision. When no
 * endpoint answers, the cache is kept as it is and the client retries with a growing,
 * jittered delay. The cache is the input of the model
 * (cfg_model_from_kvs()); what to do with it is the event loop's business. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "datastore.h"
#include "etcd-cache.h"
#include "etcd-parse.h"
#include "model.h"

struct etcd;

/* Called from the event loop; a callback must not free the client. */
struct etcd_ops {
        /* A complete list at a new revision replaced the cache. */
        void (*synced)(struct etcd *e, void *userdata);
        /* Watch events changed the cache. */
        void (*changed)(struct etcd *e, void *userdata);
        /* A round over every endpoint failed (why names each endpoint and its error);
         * the cache is untouched and the client retries after a delay. */
        void (*unreachable)(struct etcd *e, const char *why, void *userdata);
};

/* The prefixes listed and watched: IPPools, Nodes, FelixConfigurations, affinities. */
#define ETCD_N_PREFIXES 5
extern const char *const etcd_prefixes[ETCD_N_PREFIXES];

/* Caps on what the datastore controls. */
#define ETCD_MAX_KEYS 1000000
/* ETCD_MAX_VALUE, ETCD_MAX_BODY (one range page), ETCD_MAX_MESSAGE: etcd-parse.h. */
/* One list: every key fits (ETCD_MAX_KEYS in pages of ETCD_PAGE, per prefix), and its
 * answers together are bounded in bytes. */
#define ETCD_MAX_PAGES (ETCD_MAX_KEYS / ETCD_PAGE + 4 * ETCD_N_PREFIXES)
#define ETCD_MAX_LIST_BYTES (1024u << 20)
/* Keys per range request. A page's answer and its decoded keys are alive together
 * until the cache has taken them: about 4 MB at 5,000 of Calico's block values (8 MB
 * at 10,000 was the peak of a --once at 100k blocks), for 43 requests at 210k keys.
 * Not smaller: etcd (3.4, 3.5) walks the rest of the range for every page it answers
 * (to count it), so a list costs the server about keys^2 / page; 2,500 keys cost it
 * about 0.25 s more per list at 100k blocks than 10,000, and each node lists. */
#define ETCD_PAGE 5000

int etcd_new(sd_event *ev, const struct cfg_etcd *conf, const struct etcd_ops *ops, void *userdata,
             struct etcd **ret);
void etcd_free(struct etcd *e);
/* List, then watch; retried for ever on failure. */
int etcd_start(struct etcd *e);
/* List again now (SIGHUP), keeping the cache until the new list is complete. */
void etcd_relist(struct etcd *e);

const struct cfg_etcd *etcd_conf(const struct etcd *e);
/* A complete list has been read (the cache means something). */
bool etcd_has_data(const struct etcd *e);
/* The endpoint that served the last list, and the revision the cache is at. */
const char *etcd_endpoint(const struct etcd *e);
int64_t etcd_revision(const struct etcd *e);
size_t etcd_n_keys(const struct etcd *e);
/* The cache (etcd-cache.h): the caller may compact it and walk it between events. */
struct etcd_cache *etcd_cache(struct etcd *e);

/* In-place updates (source-etcd.c): the keys watch events changed since
 * etcd_changes_reset(), each once in key order, with the value each has now (NULL:
 * deleted) and its input number in the cache (cfg_kv.input); the pointers stay valid until the loop runs again or the reset; free(*ret)
 * only. -EAGAIN when they are not known: a list since (anything may have changed), or
 * more than ETCD_MAX_PENDING of them. */
#define ETCD_MAX_PENDING 10000
int etcd_changes(struct etcd *e, struct cfg_kv **ret, size_t *ret_n);
/* Forget the changes: the model the caller holds now reflects the cache. */
void etcd_changes_reset(struct etcd *e);
/* Keep IPAM values (BlockAffinities, IPAMBlocks) and Calico Nodes as the records the load
 * takes from them (cfg_kv_compact(): what the model needs, without the JSON) from the
 * next key read on; the cache's values are then for cfg_model_from_kvs() only. Call
 * before etcd_start(). */
void etcd_compact(struct etcd *e);

/* Where a one-shot list's keys go instead of the cache: each key as it is read, in
 * key order over the whole list, each once (an answer out of order fails the
 * endpoint); the kv is the sink's only during the call. A negative return (-ENOMEM)
 * fails the list. reset: the list starts over (another endpoint, a compacted
 * revision): forget every key handed over so far. The cache keeps the keys alone,
 * packed (no values), numbered in the order handed over: etcd_input_name() names
 * them. */
struct etcd_sink {
        int (*kv)(const struct cfg_kv *kv, void *userdata);
        void (*reset)(struct etcd *e, void *userdata);
        void *userdata;
};
/* cfg_namer_fn over a client with a sink (ctx): "etcd:KEY" of the key handed over as
 * number input in the list being read, or in the last one read. */
void etcd_input_name(const void *ctx, uint32_t input, char *buf, size_t size);

/* --once and --check: one list at one revision with failover, no watch, in a loop of
 * its own, bounded by timeout_usec; the keys go to sink when there is one (the cache
 * stays empty and etcd_n_keys() counts them), else into the cache with IPAM and Node
 * values kept as records (etcd_compact()). On failure, why says what each endpoint answered. */
int etcd_list_once(const struct cfg_etcd *conf, uint64_t timeout_usec, const struct etcd_sink *sink,
                   struct etcd **ret, char *why, size_t why_size);

/* Exposed for the unit tests (base64: etcd-parse.h). The first key after every key starting with prefix (etcd's range_end), or NULL when
 * there is none (a prefix of 0xff bytes). */
char *etcd_prefix_end(const char *prefix, size_t len, size_t *ret_len);
