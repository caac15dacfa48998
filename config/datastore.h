/* Where the Calico resources come from: the `resources` files, or Calico's etcd v3
 * datastore reached exactly as calicoctl reaches it (its settings file
 * /etc/calico/calicoctl.cfg when that exists, else the environment variables
 * DATASTORE_TYPE, ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ...), so a node where calicoctl
 * works (a kubespray master with its calicoctl.sh wrapper) needs nothing more.
 *
 * Pure like the rest of config/: the environment and calicoctl's settings file are
 * passed in (the daemon reads the file), never read here; the only files looked at are
 * the TLS files it names, to check that they are readable. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"
#include "model.h"

/* Every count that input controls has a cap. */
#define CFG_ETCD_MAX_ENDPOINTS 32

/* The etcd key layout of Calico's libcalico-go (v3 resources and IPAM affinities). */
#define CFG_ETCD_RESOURCES_PREFIX "/calico/resources/v3/projectcalico.org/"
#define CFG_ETCD_AFFINITY_PREFIX "/calico/ipam/v2/host/"
/* IPAM blocks: /calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26 (libcalico-go
 * lib/backend/model/block.go, BlockKey), the value a model.AllocationBlock as JSON. */
#define CFG_ETCD_BLOCK_PREFIX "/calico/ipam/v2/assignment/"

struct cfg_etcd {
        char *origin;        /* where it was read: calicoctl's file, or "the environment" */
        char **endpoints;    /* "http(s)://host:port", no trailing slash; at least one */
        size_t n_endpoints;
        char *ca_file, *cert_file, *key_file; /* paths, or NULL */
        char *ca_pem, *cert_pem, *key_pem;    /* inline PEM (etcdCACert, ...), or NULL */
        char *username, *password;            /* etcd authentication, or NULL */
};

/* Which Calico API group holds the resources in the Kubernetes datastore
 * (calicoAPIGroup; AUTO: ask the API server, as libcalico-go does). */
enum cfg_api_group {
        CFG_API_GROUP_AUTO,
        CFG_API_GROUP_V1, /* crd.projectcalico.org/v1 */
        CFG_API_GROUP_V3, /* projectcalico.org/v3 */
};

/* The Kubernetes datastore as calicoctl's settings name it (its KubeConfig keys, or
 * the variables of the same meaning); the kubeconfig itself is read by the daemon
 * (kubeconfig.h). */
struct cfg_kdd {
        char *origin;            /* calicoctl's file, or "the environment" */
        char *kubeconfig;        /* kubeconfig / KUBECONFIG: a path, or NULL */
        char *kubeconfig_inline; /* kubeconfigInline: the kubeconfig itself (wins over the path) */
        char *api_endpoint;      /* k8sAPIEndpoint: the server, over the kubeconfig's */
        char *ca_file, *cert_file, *key_file; /* k8sCAFile, k8sCertFile, k8sKeyFile */
        char *token;             /* k8sAPIToken */
        char *context;           /* k8sCurrentContext: over the kubeconfig's current-context */
        bool insecure;           /* k8sInsecureSkipTLSVerify */
        bool use_pod_cidr;       /* usePodCIDR */
        enum cfg_api_group api_group;
};

struct cfg_source {
        enum cfg_datastore type; /* FILES, ETCDV3 or KUBERNETES once resolved */
        struct cfg_etcd etcd;    /* for etcdv3 */
        bool kubernetes;         /* calicoctl's settings name the Kubernetes datastore */
        struct cfg_kdd kdd;      /* its settings, then */
};

/* calicoctl's settings file (YAML or JSON; `name` stands for it in diagnostics). Sets
 * ret->type to ETCDV3 when it says etcdv3 (datastoreType, or etcdEndpoints without a
 * datastoreType, as older calicoctl defaulted), FILES when it says kubernetes or names
 * no endpoints (then kubernetes is set and kdd filled); with want CFG_DATASTORE_ETCDV3
 * that is an error instead. Every key of calicoctl's CalicoAPIConfigSpec is read; any
 * other is an error, as calicoctl makes it. */
int cfg_calicoctl_parse(const char *name, const void *buf, size_t size, enum cfg_datastore want,
                        struct cfg_source *ret, struct cfg_diags *diags);
/* The same from environment variables (envp: "KEY=value" strings, NULL-terminated);
 * CALICO_-prefixed names win over plain ones, as in calicoctl. Diagnostics name the
 * variable. */
int cfg_calicoctl_env(const char *const *envp, enum cfg_datastore want, struct cfg_source *ret,
                      struct cfg_diags *diags);
/* What settings s ask for: `datastore: files` needs nothing; auto and etcdv3 take
 * calicoctl's settings file (s->calicoctl_config: its bytes, which the daemon reads;
 * NULL when it does not exist), else envp. auto falls back to files when neither
 * names etcd; etcdv3 without an etcd is an error. Checks that TLS files are readable. */
int cfg_source_resolve(const struct cfg_settings *s, const void *calicoctl, size_t calicoctl_size,
                       const char *const *envp, struct cfg_source *ret, struct cfg_diags *diags);
void cfg_source_clear(struct cfg_source *src);
void cfg_kdd_clear(struct cfg_kdd *k);
/* A deep copy (the daemon's etcd client keeps one). */
int cfg_etcd_copy(const struct cfg_etcd *src, struct cfg_etcd *ret);
void cfg_etcd_clear(struct cfg_etcd *e);
/* Same endpoints, TLS material and credentials (the daemon keeps its connection then). */
bool cfg_etcd_eq(const struct cfg_etcd *a, const struct cfg_etcd *b);
/* "https://a:2379,https://b:2379" into buf (cut to size). */
void cfg_etcd_endpoints_fmt(const struct cfg_etcd *e, char *buf, size_t size);
/* The first http:// endpoint when a password is set (etcd's authenticate call would
 * send it in clear there), else NULL. */
const char *cfg_etcd_password_in_clear(const struct cfg_etcd *e);
const char *cfg_datastore_name(enum cfg_datastore d);
