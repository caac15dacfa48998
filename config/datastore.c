/* calicoctl's datastore settings → struct cfg_source (datastore.h).
 *
 * Reads calicoctl's settings file (YAML or JSON, through yamltree) or the environment
 * variables calicoctl reads when that file does not exist, with calicoctl's rules:
 * unknown keys in the file are errors, CALICO_-prefixed variables win over plain ones.
 * Both end in one validation (build()), so a bad endpoint gets the same message from
 * either, naming the file, line and column or the variable. Never calls getenv():
 * the caller passes the environment in. */
#include "datastore.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text.h"
#include "util.h"
#include "yval.h"

enum field {
        F_TYPE,
        F_ENDPOINTS,
        F_SRV,
        F_USERNAME,
        F_PASSWORD,
        F_KEY_FILE,
        F_CERT_FILE,
        F_CA_FILE,
        F_KEY,
        F_CERT,
        F_CA,
        /* The Kubernetes datastore's keys (KubeConfig in apiconfig.go). */
        F_KUBECONFIG,
        F_KUBECONFIG_INLINE,
        F_K8S_ENDPOINT,
        F_K8S_KEY_FILE,
        F_K8S_CERT_FILE,
        F_K8S_CA_FILE,
        F_K8S_TOKEN,
        F_K8S_INSECURE,
        F_K8S_NODE_POLL,
        F_USE_POD_CIDR,
        F_K8S_QPS,
        F_K8S_CONTEXT,
        F_API_GROUP,
        F_N,
};

enum field_type { T_STR, T_BOOL, T_NUMBER };

/* Every key of calicoctl's CalicoAPIConfigSpec (libcalico-go/lib/apiconfig/apiconfig.go
 * in projectcalico/calico) with its environment variable (NULL: calicoctl reads none,
 * so secrets and inline PEM never come from the environment). */
static const struct {
        const char *key;
        const char *env;
        enum field_type type;
} fields[F_N] = {
        [F_TYPE] = { "datastoreType", "DATASTORE_TYPE", T_STR },
        [F_ENDPOINTS] = { "etcdEndpoints", "ETCD_ENDPOINTS", T_STR },
        [F_SRV] = { "etcdDiscoverySrv", "ETCD_DISCOVERY_SRV", T_STR },
        [F_USERNAME] = { "etcdUsername", "ETCD_USERNAME", T_STR },
        [F_PASSWORD] = { "etcdPassword", "ETCD_PASSWORD", T_STR },
        [F_KEY_FILE] = { "etcdKeyFile", "ETCD_KEY_FILE", T_STR },
        [F_CERT_FILE] = { "etcdCertFile", "ETCD_CERT_FILE", T_STR },
        [F_CA_FILE] = { "etcdCACertFile", "ETCD_CA_CERT_FILE", T_STR },
        /* calicoctl reads these three from its file only; this daemon always took
         * ETCD_KEY, ETCD_CERT and ETCD_CA_CERT too, and keeps doing so. */
        [F_KEY] = { "etcdKey", "ETCD_KEY", T_STR },
        [F_CERT] = { "etcdCert", "ETCD_CERT", T_STR },
        [F_CA] = { "etcdCACert", "ETCD_CA_CERT", T_STR },
        [F_KUBECONFIG] = { "kubeconfig", "KUBECONFIG", T_STR },
        [F_KUBECONFIG_INLINE] = { "kubeconfigInline", NULL, T_STR },
        [F_K8S_ENDPOINT] = { "k8sAPIEndpoint", "K8S_API_ENDPOINT", T_STR },
        [F_K8S_KEY_FILE] = { "k8sKeyFile", "K8S_KEY_FILE", T_STR },
        [F_K8S_CERT_FILE] = { "k8sCertFile", "K8S_CERT_FILE", T_STR },
        [F_K8S_CA_FILE] = { "k8sCAFile", "K8S_CA_FILE", T_STR },
        [F_K8S_TOKEN] = { "k8sAPIToken", NULL, T_STR },
        [F_K8S_INSECURE] = { "k8sInsecureSkipTLSVerify", "K8S_INSECURE_SKIP_TLS_VERIFY", T_BOOL },
        [F_K8S_NODE_POLL] = { "k8sDisableNodePoll", "K8S_DISABLE_NODE_POLL", T_BOOL },
        [F_USE_POD_CIDR] = { "usePodCIDR", "USE_POD_CIDR", T_BOOL },
        [F_K8S_QPS] = { "k8sClientQPS", NULL, T_NUMBER },
        [F_K8S_CONTEXT] = { "k8sCurrentContext", "K8S_CURRENT_CONTEXT", T_STR },
        [F_API_GROUP] = { "calicoAPIGroup", "CALICO_API_GROUP", T_STR },
};

/* Where a value came from, for messages: a file position and the key, or (file NULL)
 * the variable's name. */
struct value_origin {
        const char *file;
        unsigned line, col;
        const char *what;
};

/* calicoctl's settings as read, one text per field, before they are validated into a
 * struct cfg_etcd: the same checks whichever of the file or the environment gave them. */
struct calicoctl_values {
        const char *origin; /* the file's path, or "the environment" */
        enum cfg_datastore want;
        const char *v[F_N];
        struct value_origin at[F_N];
        const struct value_origin *whole; /* for errors about the source as a whole */
};

#define perr(d, p, ...) cfg_error((d), (p)->file, (p)->line, (p)->col, __VA_ARGS__)

const char *cfg_datastore_name(enum cfg_datastore d)
{
        switch (d) {
        case CFG_DATASTORE_FILES:
                return "files";
        case CFG_DATASTORE_ETCDV3:
                return "etcdv3";
        case CFG_DATASTORE_KUBERNETES:
                return "kubernetes";
        default:
                return "auto";
        }
}

static int set_dup(char **dst, const char *v)
{
        if (!v)
                return 0;
        *dst = strdup(v);
        return *dst ? 0 : -ENOMEM;
}

static bool is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* One endpoint URL: http or https, a host (and port), nothing after but one slash. */
static int check_endpoint(const char *ep, size_t len, const struct value_origin *at, struct cfg_diags *d)
{
        size_t scheme = strncmp(ep, "https://", 8) == 0 ? 8 : strncmp(ep, "http://", 7) == 0 ? 7 : 0;
        size_t end = len;
        char shown[512];

        /* An endpoint is echoed in errors, logs and --check: never with its password
         * (https://root:S3cr3t@host would otherwise be printed back as it came). */
        text_url_mask(ep, len, shown, sizeof(shown));
        if (!scheme)
                return perr(d, at, "%s: endpoint \"%s\" must start with http:// or https://", at->what, shown);
        if (end > scheme && ep[end - 1] == '/')
                end--;
        if (end == scheme)
                return perr(d, at, "%s: endpoint \"%s\" has no host", at->what, shown);
        for (size_t i = scheme; i < end; i++)
                if (strchr("/?#@ \t\\\"", ep[i]) || (unsigned char)ep[i] < 0x20)
                        return perr(d, at,
                                    "%s: endpoint \"%s\" must be scheme://host:port, without a path, query or user "
                                    "(credentials go in ETCD_USERNAME/ETCD_PASSWORD or the client certificate)",
                                    at->what, shown);
        return 0;
}

static int parse_endpoints(const char *v, const struct value_origin *at, struct cfg_etcd *e, struct cfg_diags *d)
{
        const char *p = v;
        size_t cap = 0;
        int ret = 0;

        for (;;) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);
                char *ep;
                int r;

                while (len && is_space(*p)) {
                        p++;
                        len--;
                }
                while (len && is_space(p[len - 1]))
                        len--;
                if (!len) {
                        char shown[512];

                        text_url_mask(v, strlen(v), shown, sizeof(shown));
                        return perr(d, at, "%s: an empty endpoint in \"%s\"", at->what, shown);
                }
                if ((r = check_endpoint(p, len, at, d)) < 0)
                        ret = r;
                else {
                        if (e->n_endpoints >= CFG_ETCD_MAX_ENDPOINTS)
                                return perr(d, at, "%s: more than %d endpoints", at->what, CFG_ETCD_MAX_ENDPOINTS);
                        if (p[len - 1] == '/')
                                len--;
                        if ((r = GROW(e->endpoints, cap, e->n_endpoints + 1)) < 0 ||
                            !(ep = strndup(p, len)))
                                return -ENOMEM;
                        e->endpoints[e->n_endpoints++] = ep;
                }
                if (!comma)
                        return ret;
                p = comma + 1;
        }
}

/* Not a parser's job in the strict sense, but "the key file cannot be read" found
 * here names the file and the setting; found by the TLS library it would not. */
static int check_readable(const struct calicoctl_values *raw, enum field f, struct cfg_diags *d)
{
        const char *path = raw->v[f];
        struct stat st;

        if (!path)
                return 0;
        if (access(path, R_OK) < 0 || stat(path, &st) < 0)
                return perr(d, &raw->at[f], "%s \"%s\": cannot read it: %s", raw->at[f].what, path, strerror(errno));
        if (!S_ISREG(st.st_mode))
                return perr(d, &raw->at[f], "%s \"%s\" is not a file", raw->at[f].what, path);
        return 0;
}

static int check_tls(const struct calicoctl_values *raw, struct cfg_diags *d)
{
        static const enum field pairs[][2] = { { F_CA_FILE, F_CA }, { F_CERT_FILE, F_CERT }, { F_KEY_FILE, F_KEY } };
        bool cert = raw->v[F_CERT_FILE] || raw->v[F_CERT], key = raw->v[F_KEY_FILE] || raw->v[F_KEY];
        int ret = 0;

        for (size_t i = 0; i < ELEMENTSOF(pairs); i++)
                if (raw->v[pairs[i][0]] && raw->v[pairs[i][1]])
                        ret = perr(d, &raw->at[pairs[i][1]], "%s and %s are both set: use one of them",
                                   raw->at[pairs[i][0]].what, raw->at[pairs[i][1]].what);
        if (cert != key) {
                enum field f = cert ? (raw->v[F_CERT_FILE] ? F_CERT_FILE : F_CERT)
                                    : (raw->v[F_KEY_FILE] ? F_KEY_FILE : F_KEY);

                ret = perr(d, &raw->at[f], "%s is set without a %s: a client certificate needs both",
                           raw->at[f].what, cert ? "key (etcdKeyFile / ETCD_KEY_FILE)"
                                                 : "certificate (etcdCertFile / ETCD_CERT_FILE)");
        }
        if (raw->v[F_USERNAME] && !raw->v[F_PASSWORD])
                ret = perr(d, &raw->at[F_USERNAME], "%s is set without a password", raw->at[F_USERNAME].what);
        for (enum field f = F_KEY_FILE; f <= F_CA_FILE; f++) {
                int r = check_readable(raw, f, d);

                if (r < 0)
                        ret = r;
        }
        return ret;
}

static int copy_etcd(const struct calicoctl_values *raw, struct cfg_etcd *e)
{
        int r;

        if ((r = set_dup(&e->origin, raw->origin)) < 0 || (r = set_dup(&e->ca_file, raw->v[F_CA_FILE])) < 0 ||
            (r = set_dup(&e->cert_file, raw->v[F_CERT_FILE])) < 0 ||
            (r = set_dup(&e->key_file, raw->v[F_KEY_FILE])) < 0 || (r = set_dup(&e->ca_pem, raw->v[F_CA])) < 0 ||
            (r = set_dup(&e->cert_pem, raw->v[F_CERT])) < 0 || (r = set_dup(&e->key_pem, raw->v[F_KEY])) < 0 ||
            (r = set_dup(&e->username, raw->v[F_USERNAME])) < 0 ||
            (r = set_dup(&e->password, raw->v[F_PASSWORD])) < 0)
                return r;
        return 0;
}

/* calicoAPIGroup, as libcalico-go/lib/backend/k8s reads it (UsingV3CRDs): empty is
 * "ask the API server", projectcalico.org/v3 (any case) is v3, anything else v1. */
static int parse_api_group(const struct calicoctl_values *raw, enum cfg_api_group *ret, struct cfg_diags *d)
{
        const char *g = raw->v[F_API_GROUP];
        const struct value_origin *at = &raw->at[F_API_GROUP];

        *ret = CFG_API_GROUP_AUTO;
        if (!g)
                return 0;
        if (strcasecmp(g, "projectcalico.org/v3") == 0) {
                *ret = CFG_API_GROUP_V3;
                return 0;
        }
        *ret = CFG_API_GROUP_V1;
        if (strcasecmp(g, "crd.projectcalico.org/v1") != 0)
                cfg_notice(d, at->file, at->line, at->col, "%s \"%s\" is neither projectcalico.org/v3 nor "
                           "crd.projectcalico.org/v1: crd.projectcalico.org/v1 is used, as Calico does", at->what, g);
        return 0;
}

/* The Kubernetes datastore's settings: copied, with what can be checked without the
 * kubeconfig checked here. */
static int build_kdd(const struct calicoctl_values *raw, struct cfg_kdd *k, struct cfg_diags *d)
{
        static const enum field strs[] = { F_KUBECONFIG, F_KUBECONFIG_INLINE, F_K8S_ENDPOINT, F_K8S_CA_FILE,
                                           F_K8S_CERT_FILE, F_K8S_KEY_FILE, F_K8S_TOKEN, F_K8S_CONTEXT };
        char **dst[] = { &k->kubeconfig, &k->kubeconfig_inline, &k->api_endpoint, &k->ca_file,
                         &k->cert_file, &k->key_file, &k->token, &k->context };
        int r;

        if (raw->v[F_K8S_ENDPOINT] && (r = check_endpoint(raw->v[F_K8S_ENDPOINT], strlen(raw->v[F_K8S_ENDPOINT]),
                                                          &raw->at[F_K8S_ENDPOINT], d)) < 0)
                return r;
        if (!raw->v[F_K8S_CERT_FILE] != !raw->v[F_K8S_KEY_FILE]) {
                enum field f = raw->v[F_K8S_CERT_FILE] ? F_K8S_CERT_FILE : F_K8S_KEY_FILE;

                return perr(d, &raw->at[f], "%s is set without %s: a client certificate needs both", raw->at[f].what,
                            f == F_K8S_CERT_FILE ? "k8sKeyFile" : "k8sCertFile");
        }
        if (raw->v[F_KUBECONFIG] && raw->v[F_KUBECONFIG_INLINE])
                cfg_notice(d, raw->at[F_KUBECONFIG_INLINE].file, raw->at[F_KUBECONFIG_INLINE].line,
                           raw->at[F_KUBECONFIG_INLINE].col, "kubeconfigInline is used, kubeconfig is not (as "
                           "calicoctl does)");
        if ((r = parse_api_group(raw, &k->api_group, d)) < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(strs); i++)
                if ((r = set_dup(dst[i], raw->v[strs[i]])) < 0)
                        return r;
        k->insecure = raw->v[F_K8S_INSECURE] != NULL;
        k->use_pod_cidr = raw->v[F_USE_POD_CIDR] != NULL;
        return set_dup(&k->origin, raw->origin);
}

/* The one validation both sources go through. */
static int build(const struct calicoctl_values *raw, struct cfg_source *ret, struct cfg_diags *d)
{
        struct cfg_source src = { .type = CFG_DATASTORE_FILES };
        const char *type = raw->v[F_TYPE];
        bool kubernetes;
        int r;

        if (type && !streq(type, "etcdv3") && !streq(type, "kubernetes"))
                return perr(d, &raw->at[F_TYPE], "%s must be etcdv3 or kubernetes, not \"%s\"", raw->at[F_TYPE].what,
                            type);
        /* No datastoreType: calicoctl before v3.13 meant etcdv3, later ones kubernetes;
         * endpoints given say which one the operator has. */
        kubernetes = type ? streq(type, "kubernetes") : !raw->v[F_ENDPOINTS] && !raw->v[F_SRV];
        if (kubernetes) {
                if (raw->want == CFG_DATASTORE_ETCDV3)
                        return type ? perr(d, &raw->at[F_TYPE],
                                           "the setting datastore is etcdv3, but %s is kubernetes here",
                                           raw->at[F_TYPE].what)
                                    : perr(d, raw->whole,
                                           "the setting datastore is etcdv3, but %s names no etcd endpoints "
                                           "(etcdEndpoints in calicoctl's file, or ETCD_ENDPOINTS)",
                                           raw->origin);
                src.kubernetes = true;
                if ((r = build_kdd(raw, &src.kdd, d)) < 0) {
                        cfg_source_clear(&src);
                        return r;
                }
                /* `auto` reads the Kubernetes API only when it is named (datastoreType
                 * or DATASTORE_TYPE); a calicoctl.cfg that says nothing keeps the files
                 * (or the daemon's own kubeconfig, source.c). */
                if (type || raw->want == CFG_DATASTORE_KUBERNETES)
                        src.type = CFG_DATASTORE_KUBERNETES;
                *ret = src;
                return 0;
        }
        if (raw->want == CFG_DATASTORE_KUBERNETES)
                return perr(d, type ? &raw->at[F_TYPE] : &raw->at[F_ENDPOINTS],
                            "the setting datastore is kubernetes, but %s names etcd here",
                            type ? raw->at[F_TYPE].what : raw->at[F_ENDPOINTS].what);
        if (raw->v[F_SRV])
                return perr(d, &raw->at[F_SRV], "%s (DNS SRV discovery) is not supported: list the endpoints in %s",
                            raw->at[F_SRV].what, raw->at[F_SRV].file ? "etcdEndpoints" : "ETCD_ENDPOINTS");
        if (!raw->v[F_ENDPOINTS])
                return perr(d, &raw->at[F_TYPE], "%s is etcdv3, but no etcd endpoints are set (%s)",
                            raw->at[F_TYPE].what, raw->at[F_TYPE].file ? "etcdEndpoints" : "ETCD_ENDPOINTS");
        src.type = CFG_DATASTORE_ETCDV3;
        r = parse_endpoints(raw->v[F_ENDPOINTS], &raw->at[F_ENDPOINTS], &src.etcd, d);
        if (r >= 0)
                r = check_tls(raw, d);
        if (r >= 0)
                r = copy_etcd(raw, &src.etcd);
        if (r < 0) {
                cfg_source_clear(&src);
                return r;
        }
        *ret = src;
        return 0;
}

/* ---- the environment ---- */

static const char *env_get(const char *const *envp, const char *name)
{
        size_t len = strlen(name);

        for (size_t i = 0; envp && envp[i]; i++)
                if (strncmp(envp[i], name, len) == 0 && envp[i][len] == '=')
                        return envp[i][len + 1] ? envp[i] + len + 1 : NULL; /* empty = unset */
        return NULL;
}

/* A variable calicoctl reads with Go's strconv.ParseBool. */
static int env_bool(struct calicoctl_values *raw, enum field f, struct cfg_diags *d)
{
        static const char *const t[] = { "1", "t", "T", "true", "TRUE", "True" };
        static const char *const n[] = { "0", "f", "F", "false", "FALSE", "False" };

        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                if (streq(raw->v[f], t[i])) {
                        raw->v[f] = "true";
                        return 0;
                }
                if (streq(raw->v[f], n[i])) {
                        raw->v[f] = NULL;
                        return 0;
                }
        }
        return perr(d, &raw->at[f], "%s must be true or false, not \"%s\"", raw->at[f].what, raw->v[f]);
}

int cfg_calicoctl_env(const char *const *envp, enum cfg_datastore want, struct cfg_source *ret,
                      struct cfg_diags *diags)
{
        static const struct value_origin whole = { .what = "the environment" };
        /* The names, kept for the messages (CALICO_ETCD_ENDPOINTS or ETCD_ENDPOINTS). */
        char names[F_N][40];
        struct calicoctl_values raw = { .origin = "the environment", .want = want, .whole = &whole };

        for (enum field f = 0; f < F_N; f++) {
                raw.at[f] = (struct value_origin){ .what = fields[f].key };
                if (!fields[f].env)
                        continue; /* calicoctl reads it from its file only */
                snprintf(names[f], sizeof(names[f]), "CALICO_%s", fields[f].env);
                raw.v[f] = env_get(envp, names[f]);
                if (!raw.v[f]) {
                        snprintf(names[f], sizeof(names[f]), "%s", fields[f].env);
                        raw.v[f] = env_get(envp, names[f]);
                }
                raw.at[f] = (struct value_origin){ .what = names[f] };
                if (raw.v[f] && fields[f].type == T_BOOL && env_bool(&raw, f, diags) < 0)
                        return -EINVAL;
        }
        return build(&raw, ret, diags);
}

/* ---- calicoctl's file ---- */

struct file_ctx {
        struct yctx y;
        struct calicoctl_values raw;
        struct cfg_source *ret;
        unsigned n_docs;
        int result;
};

/* A bool or number key, read as calicoctl reads it, kept as its text. */
static int read_typed(struct file_ctx *c, const struct ynode *v, enum field f)
{
        bool b;
        char *end;
        double q;

        if (fields[f].type == T_BOOL) {
                if (yread_bool(&c->y, v, fields[f].key, &b) < 0)
                        return -EINVAL;
                c->raw.v[f] = b ? "true" : NULL;
                return 0;
        }
        if (v->kind != YN_SCALAR || v->quoted || (q = strtod(v->str, &end), *end) || end == v->str || q < 0)
                return yerr(&c->y, v, "%s must be a number of 0 or more", fields[f].key);
        c->raw.v[f] = v->str;
        return 0;
}

static int read_spec(struct file_ctx *c, const struct ynode *spec)
{
        int ret = 0, r;

        if (ynode_is_null(spec))
                return 0;
        if ((r = yexpect_map(&c->y, spec, "spec")) < 0)
                return r;
        for (size_t i = 0; i < spec->n; i++) {
                const struct ynode *k = spec->pairs[i].key, *v = spec->pairs[i].val;
                enum field f;

                for (f = 0; f < F_N; f++)
                        if (streq(k->str, fields[f].key))
                                break;
                if (f == F_N) {
                        /* calicoctl reads its file with UnmarshalStrict: a key it does not
                         * know makes it refuse the file, and a typo must not pass here. */
                        ret = yerr(&c->y, k, "unknown key \"spec.%s\" (calicoctl refuses it too)", k->str);
                        continue;
                }
                c->raw.at[f] = (struct value_origin){ c->y.file, v->line, v->col, fields[f].key };
                if (ynode_is_null(v))
                        continue;
                if (fields[f].type != T_STR)
                        r = read_typed(c, v, f);
                else if ((r = yread_str(&c->y, v, fields[f].key, &c->raw.v[f])) >= 0 && !*c->raw.v[f])
                        c->raw.v[f] = NULL; /* "" is unset, as in calicoctl */
                if (r < 0)
                        ret = r;
        }
        return ret;
}

static int on_calicoctl_doc(const struct ynode *root, void *userdata)
{
        struct file_ctx *c = userdata;
        const struct ynode *v;
        struct value_origin whole = { c->y.file, root->line, root->col, "calicoctl's file" };
        int r;

        if (++c->n_docs > 1)
                return yerr(&c->y, root, "calicoctl's settings file must hold a single document");
        if ((r = yexpect_map(&c->y, root, "calicoctl's settings")) < 0)
                return r;
        for (size_t i = 0; i < root->n; i++) {
                const char *k = root->pairs[i].key->str;

                if (!streq(k, "apiVersion") && !streq(k, "kind") && !streq(k, "metadata") && !streq(k, "spec"))
                        return yerr(&c->y, root->pairs[i].key,
                                    "unknown key \"%s\" (known: apiVersion, kind, metadata, spec)", k);
        }
        v = ynode_get(root, "apiVersion");
        if (!v || !ynode_str(v) || !streq(ynode_str(v), "projectcalico.org/v3"))
                return yerr(&c->y, v ? v : root, "apiVersion must be projectcalico.org/v3");
        v = ynode_get(root, "kind");
        if (!v || !ynode_str(v) || !streq(ynode_str(v), "CalicoAPIConfig"))
                return yerr(&c->y, v ? v : root, "kind must be CalicoAPIConfig");
        v = ynode_get(root, "metadata");
        if (v && !ynode_is_null(v) && (r = yexpect_map(&c->y, v, "metadata")) < 0)
                return r;
        for (enum field f = 0; f < F_N; f++)
                c->raw.at[f] = (struct value_origin){ c->y.file, root->line, root->col, fields[f].key };
        if ((r = read_spec(c, ynode_get(root, "spec"))) < 0)
                return r;
        c->raw.whole = &whole;
        /* The tree lives only during this call: validate and copy now. */
        c->result = build(&c->raw, c->ret, c->y.diags);
        c->raw.whole = NULL;
        return c->result < 0 ? c->result : 0;
}

static int calicoctl_load(const char *path, const void *buf, size_t size, enum cfg_datastore want,
                          struct cfg_source *ret, struct cfg_diags *diags)
{
        struct cfg_source src = {};
        struct file_ctx c = { .y = { .file = path, .diags = diags }, .raw = { .origin = path, .want = want },
                              .ret = &src };
        int r;

        r = ydoc_load_buffer(path, buf, size, 0, on_calicoctl_doc, &c, diags);
        if (r >= 0 && c.n_docs == 0)
                r = cfg_error(diags, path, 0, 0, "calicoctl's settings file is empty");
        if (r < 0) {
                cfg_source_clear(&src);
                return r;
        }
        *ret = src;
        return 0;
}

int cfg_calicoctl_parse(const char *name, const void *buf, size_t size, enum cfg_datastore want,
                        struct cfg_source *ret, struct cfg_diags *diags)
{
        return calicoctl_load(name ? name : "(buffer)", buf ? buf : "", size, want, ret, diags);
}

int cfg_source_resolve(const struct cfg_settings *s, const void *calicoctl, size_t calicoctl_size,
                       const char *const *envp, struct cfg_source *ret, struct cfg_diags *diags)
{
        const char *path = s->calicoctl_config ? s->calicoctl_config : CFG_DEFAULT_CALICOCTL_CONFIG;

        if (s->datastore == CFG_DATASTORE_FILES) {
                *ret = (struct cfg_source){ .type = CFG_DATASTORE_FILES };
                return 0;
        }
        /* calicoctl reads its file when it exists, and only then the environment. */
        if (calicoctl)
                return calicoctl_load(path, calicoctl, calicoctl_size, s->datastore, ret, diags);
        return cfg_calicoctl_env(envp, s->datastore, ret, diags);
}

void cfg_etcd_clear(struct cfg_etcd *e)
{
        for (size_t i = 0; i < e->n_endpoints; i++)
                free(e->endpoints[i]);
        free(e->endpoints);
        free(e->origin);
        free(e->ca_file);
        free(e->cert_file);
        free(e->key_file);
        free(e->ca_pem);
        free(e->cert_pem);
        if (e->key_pem)
                explicit_bzero(e->key_pem, strlen(e->key_pem));
        free(e->key_pem);
        free(e->username);
        if (e->password)
                explicit_bzero(e->password, strlen(e->password));
        free(e->password);
        *e = (struct cfg_etcd){};
}

void cfg_kdd_clear(struct cfg_kdd *k)
{
        free(k->origin);
        free(k->kubeconfig);
        if (k->kubeconfig_inline)
                explicit_bzero(k->kubeconfig_inline, strlen(k->kubeconfig_inline));
        free(k->kubeconfig_inline);
        free(k->api_endpoint);
        free(k->ca_file);
        free(k->cert_file);
        free(k->key_file);
        if (k->token)
                explicit_bzero(k->token, strlen(k->token));
        free(k->token);
        free(k->context);
        *k = (struct cfg_kdd){};
}

void cfg_source_clear(struct cfg_source *src)
{
        cfg_etcd_clear(&src->etcd);
        cfg_kdd_clear(&src->kdd);
        *src = (struct cfg_source){};
}

int cfg_etcd_copy(const struct cfg_etcd *src, struct cfg_etcd *ret)
{
        struct cfg_etcd e = {};
        int r;

        e.endpoints = calloc(src->n_endpoints ? src->n_endpoints : 1, sizeof(char *));
        if (!e.endpoints)
                return -ENOMEM;
        for (; e.n_endpoints < src->n_endpoints; e.n_endpoints++)
                if (!(e.endpoints[e.n_endpoints] = strdup(src->endpoints[e.n_endpoints]))) {
                        cfg_etcd_clear(&e);
                        return -ENOMEM;
                }
        if ((r = set_dup(&e.origin, src->origin)) < 0 || (r = set_dup(&e.ca_file, src->ca_file)) < 0 ||
            (r = set_dup(&e.cert_file, src->cert_file)) < 0 || (r = set_dup(&e.key_file, src->key_file)) < 0 ||
            (r = set_dup(&e.ca_pem, src->ca_pem)) < 0 || (r = set_dup(&e.cert_pem, src->cert_pem)) < 0 ||
            (r = set_dup(&e.key_pem, src->key_pem)) < 0 || (r = set_dup(&e.username, src->username)) < 0 ||
            (r = set_dup(&e.password, src->password)) < 0) {
                cfg_etcd_clear(&e);
                return r;
        }
        *ret = e;
        return 0;
}

bool cfg_etcd_eq(const struct cfg_etcd *a, const struct cfg_etcd *b)
{
        if (a->n_endpoints != b->n_endpoints)
                return false;
        for (size_t i = 0; i < a->n_endpoints; i++)
                if (!streq(a->endpoints[i], b->endpoints[i]))
                        return false;
        return streq_ptr(a->ca_file, b->ca_file) && streq_ptr(a->cert_file, b->cert_file) &&
               streq_ptr(a->key_file, b->key_file) && streq_ptr(a->ca_pem, b->ca_pem) &&
               streq_ptr(a->cert_pem, b->cert_pem) && streq_ptr(a->key_pem, b->key_pem) &&
               streq_ptr(a->username, b->username) && streq_ptr(a->password, b->password);
}

const char *cfg_etcd_password_in_clear(const struct cfg_etcd *e)
{
        if (!e->password || !*e->password)
                return NULL;
        for (size_t i = 0; i < e->n_endpoints; i++)
                if (strncmp(e->endpoints[i], "http://", 7) == 0)
                        return e->endpoints[i];
        return NULL;
}

void cfg_etcd_endpoints_fmt(const struct cfg_etcd *e, char *buf, size_t size)
{
        size_t n = 0;

        if (size)
                buf[0] = '\0';
        for (size_t i = 0; i < e->n_endpoints && n < size; i++)
                n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "," : "", e->endpoints[i]);
}
