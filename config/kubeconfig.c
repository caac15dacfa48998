/* A kubeconfig → struct cfg_kube (kubeconfig.h): the server, trust and credentials of
 * one context, read with client-go's rules (k8s.io/client-go/tools/clientcmd, as
 * Calico's libcalico-go/lib/backend/k8s uses them): the named context or the file's
 * current-context; relative paths from the file's folder; inline `*-data` over the
 * file path (a notice); a token file over an inline token; a CA together with
 * insecure-skip-tls-verify refused. Credentials this daemon cannot use (exec and
 * auth-provider plugins, basic auth, impersonation) are errors at their position, not
 * a silent anonymous client. Unknown keys are ignored, as client-go ignores them.
 *
 * Owns no I/O: the caller reads the file and the files it names. */
#include "kubeconfig.h"

#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "yval.h"

struct kc_ctx {
        struct yctx y;
        const char *want_context;
        struct cfg_kube *out;
        unsigned n_docs;
};

static int dup_opt(char **dst, const char *v)
{
        if (!v)
                return 0;
        *dst = strdup(v);
        return *dst ? 0 : -ENOMEM;
}

/* ---- base64 ---- */

static int b64_value(unsigned char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int cfg_base64_decode(const char *s, size_t len, char **ret, size_t *ret_len)
{
        _cleanup_(freep) char *out = malloc(len / 4 * 3 + 4);
        uint32_t acc = 0;
        size_t n = 0, bits = 0, pad = 0;

        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)s[i];
                int v;

                if (c == '\n' || c == '\r' || c == ' ' || c == '\t')
                        continue;
                if (c == '=') {
                        pad++;
                        continue;
                }
                if (pad || (v = b64_value(c)) < 0)
                        return -EINVAL; /* data after padding, or not base64 */
                acc = (acc << 6) | (uint32_t)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[n++] = (char)(acc >> bits);
                        acc &= (1u << bits) - 1;
                }
        }
        if (pad > 2 || bits >= 6)
                return -EINVAL;
        out[n] = '\0';
        *ret = TAKE_PTR(out);
        if (ret_len)
                *ret_len = n;
        return 0;
}

/* ---- the file's structure ---- */

/* The item named `name` in a kubeconfig list (clusters, users, contexts): its inner
 * map (`inner`: cluster, user, context). NULL *ret when absent. */
static int find_named(struct kc_ctx *c, const struct ynode *root, const char *list, const char *inner,
                      const char *name, const struct ynode **ret)
{
        const struct ynode *seq = ynode_get(root, list);
        int r;

        *ret = NULL;
        if (!seq || ynode_is_null(seq))
                return 0;
        if ((r = yexpect_seq(&c->y, seq, list)) < 0)
                return r;
        if (seq->n > CFG_KUBE_MAX_ENTRIES)
                return yerr(&c->y, seq, "%s: more than %d entries", list, CFG_KUBE_MAX_ENTRIES);
        for (size_t i = 0; i < seq->n; i++) {
                const struct ynode *item = seq->items[i], *nm, *v;
                const char *s;

                if ((r = yexpect_map(&c->y, item, list)) < 0 || (r = yread_field(&c->y, item, "name", "name", &nm)) < 0 ||
                    (r = yread_str(&c->y, nm, "name", &s)) < 0)
                        return r;
                if (!streq(s, name))
                        continue;
                v = ynode_get(item, inner);
                if (!v || ynode_is_null(v))
                        return yerr(&c->y, item, "%s \"%s\" has no %s", list, name, inner);
                if ((r = yexpect_map(&c->y, v, inner)) < 0)
                        return r;
                *ret = v;
                return 0;
        }
        return 0;
}

static const char *opt_str(struct kc_ctx *c, const struct ynode *map, const char *key, int *r)
{
        const struct ynode *v = ynode_get(map, key);
        const char *s = NULL;

        if (!v || ynode_is_null(v))
                return NULL;
        if (yread_str(&c->y, v, key, &s) < 0) {
                *r = -EINVAL;
                return NULL;
        }
        return *s ? s : NULL; /* "" is unset, as in client-go */
}

/* A path from the kubeconfig: relative ones are relative to its folder. */
static int set_path(struct kc_ctx *c, char **dst, const char *p)
{
        _cleanup_(freep) char *copy = NULL;

        if (!p)
                return 0;
        if (p[0] == '/')
                return dup_opt(dst, p);
        if (!(copy = strdup(c->y.file)))
                return -ENOMEM;
        return asprintf(dst, "%s/%s", dirname(copy), p) < 0 ? -ENOMEM : 0;
}

/* key-data (base64 PEM) or key (a path); both: the data wins, with a notice. */
static int data_or_file(struct kc_ctx *c, const struct ynode *map, const char *key, char **pem, char **file)
{
        char data_key[64];
        const struct ynode *dn;
        const char *path, *data;
        int r = 0;

        snprintf(data_key, sizeof(data_key), "%s-data", key);
        path = opt_str(c, map, key, &r);
        data = opt_str(c, map, data_key, &r);
        if (r < 0)
                return r;
        if (!data)
                return set_path(c, file, path);
        dn = ynode_get(map, data_key);
        if (path)
                ynotice(&c->y, dn, "%s and %s are both set: %s is used, as client-go does", key, data_key, data_key);
        r = cfg_base64_decode(data, strlen(data), pem, NULL);
        if (r == -EINVAL)
                return yerr(&c->y, dn, "%s is not base64", data_key);
        return r;
}

static int check_server(struct kc_ctx *c, const struct ynode *n, const char *s)
{
        size_t scheme = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;
        size_t len = strlen(s);

        if (!scheme)
                return yerr(&c->y, n, "server \"%s\" must start with https:// or http://", s);
        while (len > scheme && s[len - 1] == '/')
                len--;
        if (len == scheme || s[scheme] == '/')
                return yerr(&c->y, n, "server \"%s\" has no host", s);
        for (size_t i = scheme; i < len; i++)
                if (strchr("?#@ \t\\\"", s[i]) || (unsigned char)s[i] < 0x20)
                        return yerr(&c->y, n, "server \"%s\" must be scheme://host[:port][/path], without a query "
                                              "or user", s);
        return (c->out->server = strndup(s, len)) ? 0 : -ENOMEM;
}

static int read_cluster(struct kc_ctx *c, const struct ynode *cl, const char *name)
{
        const struct ynode *srv = ynode_get(cl, "server"), *ins = ynode_get(cl, "insecure-skip-tls-verify");
        const char *s;
        int r = 0;

        if (!srv || ynode_is_null(srv))
                return yerr(&c->y, cl, "cluster \"%s\" has no server", name);
        if ((r = yread_str(&c->y, srv, "server", &s)) < 0 || (r = check_server(c, srv, s)) < 0)
                return r;
        if (ins && !ynode_is_null(ins) && (r = yread_bool(&c->y, ins, "insecure-skip-tls-verify", &c->out->insecure)) < 0)
                return r;
        if ((r = data_or_file(c, cl, "certificate-authority", &c->out->ca_pem, &c->out->ca_file)) < 0)
                return r;
        if (c->out->insecure && (c->out->ca_pem || c->out->ca_file))
                return yerr(&c->y, ins, "insecure-skip-tls-verify with a certificate-authority: client-go refuses "
                                        "both, use one");
        s = opt_str(c, cl, "tls-server-name", &r);
        if (r < 0 || (r = dup_opt(&c->out->tls_server_name, s)) < 0)
                return r;
        if (ynode_get(cl, "proxy-url"))
                return yerr(&c->y, ynode_get(cl, "proxy-url"), "proxy-url is not supported: reach the API "
                                                               "server directly");
        return 0;
}

static int read_user(struct kc_ctx *c, const struct ynode *u, const char *name)
{
        static const char *const refused[] = { "exec", "auth-provider", "username", "password", "as",
                                                "as-groups", "as-uid" };
        const char *s;
        int r = 0;

        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                const struct ynode *v = ynode_get(u, refused[i]);

                if (v && !ynode_is_null(v))
                        return yerr(&c->y, v, "user \"%s\": %s is not supported: give the daemon a token, a token "
                                              "file or a client certificate (calico-underlayd(8), KUBERNETES)",
                                    name, refused[i]);
        }
        s = opt_str(c, u, "token", &r);
        if (r < 0 || (r = dup_opt(&c->out->token, s)) < 0)
                return r;
        s = opt_str(c, u, "tokenFile", &r);
        if (r < 0 || (r = set_path(c, &c->out->token_file, s)) < 0)
                return r;
        if ((r = data_or_file(c, u, "client-certificate", &c->out->cert_pem, &c->out->cert_file)) < 0 ||
            (r = data_or_file(c, u, "client-key", &c->out->key_pem, &c->out->key_file)) < 0)
                return r;
        if (!(c->out->cert_pem || c->out->cert_file) != !(c->out->key_pem || c->out->key_file))
                return yerr(&c->y, u, "user \"%s\" has a client %s without its %s", name,
                            c->out->key_pem || c->out->key_file ? "key" : "certificate",
                            c->out->key_pem || c->out->key_file ? "certificate" : "key");
        return 0;
}

static int read_context(struct kc_ctx *c, const struct ynode *root)
{
        const struct ynode *cur = ynode_get(root, "current-context"), *ctx, *cl, *u, *f;
        const char *name = c->want_context, *cluster, *user = NULL;
        int r;

        if (!name) {
                if (!cur || ynode_is_null(cur) || !ynode_str(cur) || !*ynode_str(cur))
                        return yerr(&c->y, cur ? cur : root, "no current-context: set one, or name the context "
                                                             "(k8sCurrentContext in calicoctl's settings)");
                name = ynode_str(cur);
        }
        if ((r = find_named(c, root, "contexts", "context", name, &ctx)) < 0)
                return r;
        if (!ctx)
                return yerr(&c->y, c->want_context ? root : cur, "context \"%s\" is not in the kubeconfig", name);
        if ((r = dup_opt(&c->out->context, name)) < 0)
                return r;
        if ((r = yread_field(&c->y, ctx, "cluster", "context.cluster", &f)) < 0 ||
            (r = yread_str(&c->y, f, "context.cluster", &cluster)) < 0)
                return r;
        if ((r = find_named(c, root, "clusters", "cluster", cluster, &cl)) < 0)
                return r;
        if (!cl)
                return yerr(&c->y, f, "cluster \"%s\" is not in the kubeconfig", cluster);
        if ((r = read_cluster(c, cl, cluster)) < 0)
                return r;
        f = ynode_get(ctx, "user");
        if (f && !ynode_is_null(f) && (r = yread_str(&c->y, f, "context.user", &user)) < 0)
                return r;
        if (!user || !*user)
                return 0; /* anonymous, as client-go allows */
        if ((r = find_named(c, root, "users", "user", user, &u)) < 0)
                return r;
        if (!u)
                return yerr(&c->y, f, "user \"%s\" is not in the kubeconfig", user);
        return read_user(c, u, user);
}

static int on_kubeconfig_doc(const struct ynode *root, void *userdata)
{
        struct kc_ctx *c = userdata;
        const struct ynode *v;
        int r;

        if (++c->n_docs > 1)
                return yerr(&c->y, root, "a kubeconfig must hold a single document");
        if ((r = yexpect_map(&c->y, root, "a kubeconfig")) < 0)
                return r;
        v = ynode_get(root, "kind");
        if (v && !ynode_is_null(v) && (!ynode_str(v) || !streq(ynode_str(v), "Config")))
                return yerr(&c->y, v, "kind must be Config: this is not a kubeconfig");
        v = ynode_get(root, "apiVersion");
        if (v && !ynode_is_null(v) && (!ynode_str(v) || !streq(ynode_str(v), "v1")))
                return yerr(&c->y, v, "apiVersion must be v1");
        return read_context(c, root);
}

int cfg_kubeconfig_parse(const char *path, const void *buf, size_t size, const char *context, struct cfg_kube *ret,
                         struct cfg_diags *diags)
{
        struct cfg_kube k = {};
        struct kc_ctx c = { .y = { .file = path ? path : "(kubeconfig)", .diags = diags },
                            .want_context = context && *context ? context : NULL, .out = &k };
        int r;

        r = ydoc_load_buffer(c.y.file, buf ? buf : "", size, 0, on_kubeconfig_doc, &c, diags);
        if (r >= 0 && c.n_docs == 0)
                r = cfg_error(diags, c.y.file, 0, 0, "the kubeconfig is empty");
        if (r < 0) {
                cfg_kube_clear(&k);
                return r;
        }
        *ret = k;
        return 0;
}

static void free_secret(char **p)
{
        if (*p)
                explicit_bzero(*p, strlen(*p));
        free(*p);
        *p = NULL;
}

void cfg_kube_clear(struct cfg_kube *k)
{
        free(k->server);
        free(k->context);
        free(k->ca_file);
        free(k->ca_pem);
        free(k->cert_file);
        free(k->cert_pem);
        free(k->key_file);
        free_secret(&k->key_pem);
        free_secret(&k->token);
        free(k->token_file);
        free(k->tls_server_name);
        *k = (struct cfg_kube){};
}

int cfg_kube_copy(const struct cfg_kube *src, struct cfg_kube *ret)
{
        struct cfg_kube k = { .insecure = src->insecure };
        int r;

        if ((r = dup_opt(&k.server, src->server)) < 0 || (r = dup_opt(&k.context, src->context)) < 0 ||
            (r = dup_opt(&k.ca_file, src->ca_file)) < 0 || (r = dup_opt(&k.ca_pem, src->ca_pem)) < 0 ||
            (r = dup_opt(&k.cert_file, src->cert_file)) < 0 || (r = dup_opt(&k.cert_pem, src->cert_pem)) < 0 ||
            (r = dup_opt(&k.key_file, src->key_file)) < 0 || (r = dup_opt(&k.key_pem, src->key_pem)) < 0 ||
            (r = dup_opt(&k.token, src->token)) < 0 || (r = dup_opt(&k.token_file, src->token_file)) < 0 ||
            (r = dup_opt(&k.tls_server_name, src->tls_server_name)) < 0) {
                cfg_kube_clear(&k);
                return r;
        }
        *ret = k;
        return 0;
}

bool cfg_kube_eq(const struct cfg_kube *a, const struct cfg_kube *b)
{
        return a->insecure == b->insecure && streq_ptr(a->server, b->server) && streq_ptr(a->ca_file, b->ca_file) &&
               streq_ptr(a->ca_pem, b->ca_pem) && streq_ptr(a->cert_file, b->cert_file) &&
               streq_ptr(a->cert_pem, b->cert_pem) && streq_ptr(a->key_file, b->key_file) &&
               streq_ptr(a->key_pem, b->key_pem) && streq_ptr(a->token, b->token) &&
               streq_ptr(a->token_file, b->token_file) && streq_ptr(a->tls_server_name, b->tls_server_name);
}
