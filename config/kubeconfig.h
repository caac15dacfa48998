/* A kubeconfig (the file kubectl and client-go read) → how to reach one Kubernetes API
 * server: its URL, the CA to trust, and the credentials (a bearer token inline or in a
 * token file, or a client certificate and key, each from a file or inline base64).
 *
 * Pure like the rest of config/: the caller reads the file and passes its bytes and
 * its path (relative paths in it are relative to the file's folder, as client-go
 * resolves them); token and certificate files are named, not read. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "diag.h"

/* Every count that input controls has a cap. */
#define CFG_KUBE_MAX_ENTRIES 256 /* clusters, users or contexts in one kubeconfig */

struct cfg_kube {
        char *server;          /* "https://host:port" (or http), no trailing slash */
        char *context;         /* the context used */
        char *ca_file, *ca_pem;
        char *cert_file, *cert_pem;
        char *key_file, *key_pem;
        char *token;           /* a bearer token, or NULL */
        char *token_file;      /* a file holding it (re-read when it changes), or NULL */
        char *tls_server_name; /* the name to check the server's certificate against */
        bool insecure;         /* insecure-skip-tls-verify: no check of the server at all */
};

/* The kubeconfig in buf (YAML or JSON), path naming it in diagnostics and anchoring
 * relative paths. context: the one to use, or NULL for its current-context. Fills
 * ret only on success; errors name the file, line and column. */
int cfg_kubeconfig_parse(const char *path, const void *buf, size_t size, const char *context, struct cfg_kube *ret,
                         struct cfg_diags *diags);
void cfg_kube_clear(struct cfg_kube *k);
int cfg_kube_copy(const struct cfg_kube *src, struct cfg_kube *ret);
/* Same server, trust and credentials (a changed token file's content aside). */
bool cfg_kube_eq(const struct cfg_kube *a, const struct cfg_kube *b);
/* Standard base64 (padding optional) into a NUL-terminated buffer; -EINVAL when s is
 * not base64. */
int cfg_base64_decode(const char *s, size_t len, char **ret, size_t *ret_len);
