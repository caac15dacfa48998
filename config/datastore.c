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
#include <sys/stat.h>
#include <unistd.h>

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
        F_N,
};

/* The calicoctl.cfg spec key and the environment variable of each field. */
static const struct {
        const char *key;
        const char *env;
} fields[F_N] = {
        [F_TYPE] = { "datastoreType", "DATASTORE_TYPE" },
        [F_ENDPOINTS] = { "etcdEndpoints", "ETCD_ENDPOINTS" },
        [F_SRV] = { "etcdDiscoverySrv", "ETCD_DISCOVERY_SRV" },
        [F_USERNAME] = { "etcdUsername", "ETCD_USERNAME" },
        [F_PASSWORD] = { "etcdPassword", "ETCD_PASSWORD" },
        [F_KEY_FILE] = { "etcdKeyFile", "ETCD_KEY_FILE" },
        [F_CERT_FILE] = { "etcdCertFile", "ETCD_CERT_FILE" },
        [F_CA_FILE] = { "etcdCACertFile", "ETCD_CA_CERT_FILE" },
        [F_KEY] = { "etcdKey", "ETCD_KEY" },
        [F_CERT] = { "etcdCert", "ETCD_CERT" },
        [F_CA] = { "etcdCACert", "ETCD_CA_CERT" },
};

/* Keys of calicoctl's CalicoAPIConfigSpec for the Kubernetes datastore: valid in the
 * file, meaningless here. */
static const char *const kdd_keys[] = {
        "kubeconfig",  "kubeconfigInline", "k8sAPIEndpoint", "k8sKeyFile",
        "k8sCertFile", "k8sCAFile",        "k8sAPIToken",    "k8sInsecureSkipTLSVerify",
        "k8sDisableNodePoll", "k8sClientQPS",
};

/* Where a value came from, for messages: a file position and the key, or (file NULL)
 * the variable's name. */
struct pos {
        const char *file;
        unsigned line, col;
        const char *what;
};

struct raw {
        const char *origin; /* the file's path, or "the environment" */
        enum cfg_datastore want;
        const char *v[F_N];
        struct pos at[F_N];
        const struct pos *whole; /* for errors about the source as a whole */
};

#define perr(d, p, ...) cfg_error((d), (p)->file, (p)->line, (p)->col, __VA_ARGS__)

const char *cfg_datastore_name(enum cfg_datastore d)
{
        switch (d) {
        case CFG_DATASTORE_FILES:
                return "files";
        case CFG_DATASTORE_ETCDV3:
                return "etcdv3";
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
static int check_endpoint(const char *ep, size_t len, const struct pos *at, struct cfg_diags *d)
{
        size_t scheme = strncmp(ep, "https://", 8) == 0 ? 8 : strncmp(ep, "http://", 7) == 0 ? 7 : 0;
        size_t end = len;

        if (!scheme)
                return perr(d, at, "%s: endpoint \"%.*s\" must start with http:// or https://", at->what, (int)len,
                            ep);
        if (end > scheme && ep[end - 1] == '/')
                end--;
        if (end == scheme)
                return perr(d, at, "%s: endpoint \"%.*s\" has no host", at->what, (int)len, ep);
        for (size_t i = scheme; i < end; i++)
                if (strchr("/?#@ \t\\\"", ep[i]) || (unsigned char)ep[i] < 0x20)
                        return perr(d, at, "%s: endpoint \"%.*s\" must be scheme://host:port, without a path, "
                                           "query or user", at->what, (int)len, ep);
        return 0;
}

static int parse_endpoints(const char *v, const struct pos *at, struct cfg_etcd *e, struct cfg_diags *d)
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
                if (!len)
                        return perr(d, at, "%s: an empty endpoint in \"%s\"", at->what, v);
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
static int check_readable(const struct raw *raw, enum field f, struct cfg_diags *d)
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

static int check_tls(const struct raw *raw, struct cfg_diags *d)
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

static int copy_etcd(const struct raw *raw, struct cfg_etcd *e)
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

/* The one validation both sources go through. */
static int build(const struct raw *raw, struct cfg_source *ret, struct cfg_diags *d)
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
                if (type)
                        cfg_notice(d, raw->at[F_TYPE].file, raw->at[F_TYPE].line, raw->at[F_TYPE].col,
                                   "%s is kubernetes: the Kubernetes datastore is not read, the resources "
                                   "files are", raw->at[F_TYPE].what);
                *ret = src;
                return 0;
        }
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

int cfg_calicoctl_env(const char *const *envp, enum cfg_datastore want, struct cfg_source *ret,
                      struct cfg_diags *diags)
{
        static const struct pos whole = { .what = "the environment" };
        /* The names, kept for the messages (CALICO_ETCD_ENDPOINTS or ETCD_ENDPOINTS). */
        char names[F_N][40];
        struct raw raw = { .origin = "the environment", .want = want, .whole = &whole };

        for (enum field f = 0; f < F_N; f++) {
                snprintf(names[f], sizeof(names[f]), "CALICO_%s", fields[f].env);
                raw.v[f] = env_get(envp, names[f]);
                if (!raw.v[f]) {
                        snprintf(names[f], sizeof(names[f]), "%s", fields[f].env);
                        raw.v[f] = env_get(envp, names[f]);
                }
                raw.at[f] = (struct pos){ .what = names[f] };
        }
        return build(&raw, ret, diags);
}

/* ---- calicoctl's file ---- */

struct file_ctx {
        struct yctx y;
        struct raw raw;
        struct cfg_source *ret;
        unsigned n_docs;
        int result;
};

static bool is_kdd_key(const char *k)
{
        for (size_t i = 0; i < ELEMENTSOF(kdd_keys); i++)
                if (streq(k, kdd_keys[i]))
                        return true;
        return false;
}

static int read_spec(struct file_ctx *c, const struct ynode *spec)
{
        int ret = 0, r;

        if (ynode_is_null(spec))
                return 0;
        if ((r = yv_map(&c->y, spec, "spec")) < 0)
                return r;
        for (size_t i = 0; i < spec->n; i++) {
                const struct ynode *k = spec->pairs[i].key, *v = spec->pairs[i].val;
                enum field f;

                for (f = 0; f < F_N; f++)
                        if (streq(k->str, fields[f].key))
                                break;
                if (f == F_N) {
                        if (!is_kdd_key(k->str))
                                ret = yerr(&c->y, k, "unknown key \"spec.%s\" (calicoctl refuses it too)", k->str);
                        continue;
                }
                c->raw.at[f] = (struct pos){ c->y.file, v->line, v->col, fields[f].key };
                if (ynode_is_null(v))
                        continue;
                if ((r = yv_str(&c->y, v, fields[f].key, &c->raw.v[f])) < 0)
                        ret = r;
                else if (!*c->raw.v[f])
                        c->raw.v[f] = NULL; /* "" is unset, as in calicoctl */
        }
        return ret;
}

static int on_calicoctl_doc(const struct ynode *root, void *userdata)
{
        struct file_ctx *c = userdata;
        const struct ynode *v;
        struct pos whole = { c->y.file, root->line, root->col, "calicoctl's file" };
        int r;

        if (++c->n_docs > 1)
                return yerr(&c->y, root, "calicoctl's settings file must hold a single document");
        if ((r = yv_map(&c->y, root, "calicoctl's settings")) < 0)
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
        if (v && !ynode_is_null(v) && (r = yv_map(&c->y, v, "metadata")) < 0)
                return r;
        for (enum field f = 0; f < F_N; f++)
                c->raw.at[f] = (struct pos){ c->y.file, root->line, root->col, fields[f].key };
        if ((r = read_spec(c, ynode_get(root, "spec"))) < 0)
                return r;
        c->raw.whole = &whole;
        /* The tree lives only during this call: validate and copy now. */
        c->result = build(&c->raw, c->ret, c->y.diags);
        c->raw.whole = NULL;
        return c->result < 0 ? c->result : 0;
}

static int calicoctl_load(const char *path, bool read, const void *buf, size_t size, enum cfg_datastore want,
                          struct cfg_source *ret, struct cfg_diags *diags)
{
        struct cfg_source src = {};
        struct file_ctx c = { .y = { .file = path, .diags = diags }, .raw = { .origin = path, .want = want },
                              .ret = &src };
        int r;

        r = read ? ydoc_load_file(path, 0, on_calicoctl_doc, &c, diags)
                 : ydoc_load_buffer(path, buf, size, 0, on_calicoctl_doc, &c, diags);
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
        return calicoctl_load(name ? name : "(buffer)", false, buf ? buf : "", size, want, ret, diags);
}

int cfg_source_resolve(const struct cfg_settings *s, const char *const *envp, struct cfg_source *ret,
                       struct cfg_diags *diags)
{
        const char *path = s->calicoctl_config ? s->calicoctl_config : CFG_DEFAULT_CALICOCTL_CONFIG;
        struct stat st;

        if (s->datastore == CFG_DATASTORE_FILES) {
                *ret = (struct cfg_source){ .type = CFG_DATASTORE_FILES };
                return 0;
        }
        /* calicoctl reads its file when it exists, and only then the environment. */
        if (stat(path, &st) == 0)
                return calicoctl_load(path, true, NULL, 0, s->datastore, ret, diags);
        if (errno != ENOENT)
                return cfg_error(diags, path, 0, 0, "cannot read calicoctl's settings file: %s", strerror(errno));
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

void cfg_source_clear(struct cfg_source *src)
{
        cfg_etcd_clear(&src->etcd);
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

void cfg_etcd_endpoints_fmt(const struct cfg_etcd *e, char *buf, size_t size)
{
        size_t n = 0;

        if (size)
                buf[0] = '\0';
        for (size_t i = 0; i < e->n_endpoints && n < size; i++)
                n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? "," : "", e->endpoints[i]);
}
