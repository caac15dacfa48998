/* Documents in, model out: the one way to build a model (loader.c with its feeds,
 * resources.c and etcdkv.c). config/ opens no file and reads no folder: the
 * datastore source (daemon/source.h) hands it each document's bytes (a buffer, or a
 * reader for a large file) with a name, and every diagnostic points at that name,
 * line and column.
 *
 *     cfg_loader_new(&settings, diags, &l);
 *     cfg_loader_add_yaml(l, "/etc/.../10-pools.yaml", buf, size);  (or _add_kv, ...)
 *     cfg_loader_finish(l, &model);
 *
 * A document with errors is reported in diags and the next one read, so one load
 * names every problem; the load as a whole then fails. Only running out of memory
 * stops at once. */
#pragma once

#include <stddef.h>

#include "diag.h"
#include "model.h"
#include "yamltree.h"

/* Caps on what input controls. */
#define CFG_MAX_FILES 10000
#define CFG_MAX_KEYS 1000000 /* etcd keys: each stands for a file */

struct cfg_loader;

/* A load for these settings (the feeds read them). They stay the caller's until
 * cfg_loader_finish() succeeds and must not change before. Errors that the caller
 * adds to diags between new and finish (a file that cannot be read) fail the load
 * like a document's. diags may be NULL. */
int cfg_loader_new(struct cfg_settings *settings, struct cfg_diags *diags, struct cfg_loader **ret);
/* One YAML document (a file's bytes) of Calico resources, as calicoctl or kubectl
 * print them (one resource, several documents, or a List); name stands for it in
 * diagnostics. Returns -ENOMEM or 0 (errors go into diags). */
int cfg_loader_add_yaml(struct cfg_loader *l, const char *name, const void *buf, size_t size);
/* The same read piece by piece (ydoc_read_fn, yamltree.h): the files source reads a
 * file this way, so a large one never sits in memory whole. The reader must start again
 * when asked (YDOC_REWINDS): the plain YAML kubectl prints is checked, then read. The
 * same for cfg_file_rec_read(). */
int cfg_loader_add_yaml_stream(struct cfg_loader *l, const char *name, ydoc_read_fn read, void *ctx);
/* One Kubernetes API object (the Kubernetes datastore): a whole resource as JSON, its
 * kind and apiVersion set (a list's items may lack them: the source adds them), named
 * "kubernetes:PLURAL/NAME" in diagnostics; counted against CFG_MAX_KEYS, not the file
 * cap. Returns -ENOMEM or 0. */
int cfg_loader_add_object(struct cfg_loader *l, const char *name, const void *json, size_t size);
/* One key of Calico's etcd v3 datastore and its value (datastore.h has the layout),
 * named "etcd:KEY" in diagnostics; block affinity keys become BlockAffinity
 * resources. Returns -ENOMEM or 0. */
int cfg_loader_add_kv(struct cfg_loader *l, const struct cfg_kv *kv);
/* Room for inputs (documents, objects, keys) and block claims known in advance (the
 * Kubernetes source counts its cache): the arrays are sized once, not doubled past the
 * need (after cfg_loader_keep_index(), which keeps the claims in another form). Only a
 * hint; returns -ENOMEM or 0. */
int cfg_loader_reserve(struct cfg_loader *l, size_t inputs, size_t blocks);
/* Keep no copy of the inputs' names: the diagnostics ask namer for input number N
 * (counting from 0 in the order added; every add is one input) when they name it. ctx
 * must stay valid until the model's cfg_model_drop_names() (model.h). A source that
 * holds its objects (the Kubernetes one) saves a copy of every name: 5 MB at 100k
 * BlockAffinities. Call before anything is added. */
void cfg_loader_name_on_demand(struct cfg_loader *l, cfg_namer_fn namer, const void *ctx);
/* Validate and merge everything added into a new model, which takes the settings
 * (*settings is emptied). On failure -EINVAL (or -errno) with errors in diags, and the
 * settings are untouched. Frees l either way. */
int cfg_loader_finish(struct cfg_loader *l, struct cfg_model **ret);
/* Abandon a load (the settings stay the caller's). Accepts NULL. */
void cfg_loader_free(struct cfg_loader *l);

/* The same in one call: resources from YAML buffers (tests, fuzzers), or from etcd
 * keys (in key order, for stable messages). */
int cfg_model_from_buffers(struct cfg_settings *settings, const char *const *names, const char *const *bufs,
                           const size_t *sizes, size_t n, struct cfg_model **ret, struct cfg_diags *diags);
int cfg_model_from_kvs(struct cfg_settings *settings, const struct cfg_kv *kvs, size_t n, struct cfg_model **ret,
                       struct cfg_diags *diags);

/* In-place updates of a model built from etcd keys (kvupdate.c; issue 16). The index
 * is what a full load knows and the model does not: every block claim (BlockAffinity,
 * IPAMBlock) and borrowed address with the key it came from, including the ones that
 * lost or lie in no pool, and how many claims name each node. It describes the one
 * model it was built with, and only while that model changes through
 * cfg_model_update_kvs(). */
struct cfg_kv_index;
/* The same for a load fed key by key (cfg_loader_add_kv()): keep_index before the
 * first key, then finish_indexed instead of cfg_loader_finish(). A model named on
 * demand (cfg_loader_name_on_demand()) keeps its namer for the updates, which name
 * the inputs they compare; the caller then tells each changed key's input number
 * (struct cfg_kv.input). */
void cfg_loader_keep_index(struct cfg_loader *l);
int cfg_loader_finish_indexed(struct cfg_loader *l, struct cfg_model **ret, struct cfg_kv_index **ret_ix);
/* cfg_model_from_kvs() that also returns the model's index. */
int cfg_model_from_kvs_indexed(struct cfg_settings *settings, const struct cfg_kv *kvs, size_t n,
                               struct cfg_model **ret, struct cfg_kv_index **ret_ix, struct cfg_diags *diags);
/* Apply changed keys (value NULL: deleted; each key once) to m in place, so that m is
 * exactly what cfg_model_from_kvs() would build from the keys as they are now, and add
 * to t the prefixes whose wanted state may have changed. BlockAffinity and IPAMBlock
 * keys of blocks inside a pool change in place (t: their blocks, the borrowed addresses
 * in them), and so does another node's Node whose labels stay (t: its blocks and the
 * addresses it hosts; t->all when the count of Calico IPAM resources crosses zero, which
 * decides whether podCIDRs count); -EAGAIN for anything else (a pool, a FelixConfiguration, a Node
 * appearing, going or changing labels, this node's own Node or entry, a key
 * that does not fit the layout, claims that would conflict or overlap: the full load
 * decides those, with its own messages). 1 when m changed, 0 when it did not. A value
 * the full load would refuse is refused with the same errors in d (-EINVAL). All or
 * nothing: on -EAGAIN and -EINVAL m and the index are as they were (the caller then
 * builds afresh, or keeps m and the index for the keys as they were); -ENOMEM may
 * leave t short of a prefix (m is whole): build afresh. */
int cfg_model_update_kvs(struct cfg_model *m, struct cfg_kv_index *ix, const struct cfg_kv *changes, size_t n,
                         struct cfg_touched *t, struct cfg_diags *d);
/* The same for a model loaded from Kubernetes objects (cfg_loader_add_object(), named
 * on demand, indexed): each change has object set, its key the object's input name
 * "kubernetes:PLURAL/NAME" and its input number; a BlockAffinity's or IPAMBlock's block
 * is the one it claims, before (the index) and after (read alone), which must be the
 * same; another node's Node as above; any other kind: -EAGAIN. */
void cfg_kv_index_free(struct cfg_kv_index *ix);
/* What the load takes from an IPAM key's value (a BlockAffinity's or IPAMBlock's: its
 * claim, its borrowed addresses, whether it counts) or a Calico Node's (name, labels,
 * addresses), as a record a few dozen bytes long that cfg_loader_add_kv() replays
 * (kv->record) exactly as it would read the value: a cache of etcd keys keeps these
 * instead of the JSON. 1 with *ret (free() it), 0 when the value must be kept as it is
 * (another kind of key, or one whose reading has anything to say: its diagnostics come
 * from the value), -ENOMEM. */
int cfg_kv_compact(const struct cfg_kv *kv, char **ret, size_t *ret_len);

/* The files source's cache (filerec.c; issue 16): what one resource file gives the
 * load, kept between loads, so that a change reads again only the files that changed.
 * cfg_file_rec_read() reads one file's YAML alone under settings s (which stay the
 * caller's), as the full load reads it among the others: 1 with *ret, 0 when the file
 * cannot be recorded (its reading has an error: load every file the usual way, whose
 * messages are the full load's), -ENOMEM. */
struct cfg_file_rec;
int cfg_file_rec_read(struct cfg_settings *s, const char *name, ydoc_read_fn read, void *ctx,
                      struct cfg_file_rec **ret);
void cfg_file_rec_free(struct cfg_file_rec *r);
/* The model a full load of these files (names[i] read as recs[i] describes, in this
 * order, under settings s) builds, with the same errors in d (-EINVAL: duplicates and
 * conflicts across files name both places) and the same notices; on success the model
 * takes the settings as cfg_loader_finish() does. -E2BIG when the files together pass a
 * cap (more than CFG_MAX_FILES, pools, nodes, blocks): the full load says where. */
int cfg_model_from_file_recs(struct cfg_settings *s, const char *const *names, struct cfg_file_rec *const *recs,
                             size_t n, struct cfg_model **ret, struct cfg_diags *d);
/* Two models under the same settings: adds to t every block and borrowed address whose
 * entry differs (or exists in one only), and another node's blocks and the addresses it
 * hosts when its addresses moved; t->all when anything else the planner reads differs
 * (pools, FelixConfigurations, this node, the set of nodes or their labels). 1 when the
 * models differ, 0 when they do not, -ENOMEM. */
int cfg_model_diff(const struct cfg_model *old, const struct cfg_model *new, struct cfg_touched *t);
/* In place: m, merged from the records the changed files had (old[k] for file
 * changed[k]; the other files' records are recs[] as they were), brought to what
 * cfg_model_from_file_recs() of recs[] (the same files, in the same order) builds, and
 * the prefixes whose route may differ added to t. Only when the changed files' node
 * entries stay the same and they hold no pool, FelixConfiguration or notice, and their
 * claims neither conflict with nor overlap another's, nor lie in no pool: else -EAGAIN
 * (m as it was: merge everything). 1 when m changed, 0 when not, -ENOMEM (m whole, t
 * maybe short). */
int cfg_model_update_file_recs(struct cfg_model *m, struct cfg_file_rec *const *recs, size_t n,
                               const size_t *changed, struct cfg_file_rec *const *old, size_t n_changed,
                               struct cfg_touched *t);
