/* Unit tests for the datastore source: calicoctl's settings file and environment
 * variables (config/datastore.c: every accepted form, every refusal with the file, line
 * and column or the variable it names), the `datastore` and `calicoctlConfig` settings,
 * Calico's etcd keys into the model (config/etcdkv.c: the same validation as files,
 * errors at "etcd:KEY:line:col"), and the etcd client's pure helpers (base64 in
 * daemon/etcd-parse.c, range ends in daemon/etcd.c; etcd's answers: test-etcd-parse.c). Temporary files are made under $TMPDIR. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "datastore.h"
#include "etcd.h"
#include "load.h"
#include "model.h"
#include "source.h"
#include "util.h"

#define CTL_HDR "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\n"
#define RES "/calico/resources/v3/projectcalico.org/"

static char tmp[256];
static char ca[300], cert[300], key[300];

static const char *write_tmp(const char *name, const char *text, char *path, size_t size)
{
        FILE *f;

        snprintf(path, size, "%s/%s", tmp, name);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        return path;
}

static int setup(void **state)
{
        const char *t = getenv("TMPDIR");

        (void)state;
        snprintf(tmp, sizeof(tmp), "%s/cu-test-datastore-XXXXXX", t ? t : "/tmp");
        assert_non_null(mkdtemp(tmp));
        write_tmp("ca.crt", "-----BEGIN CERTIFICATE-----\n", ca, sizeof(ca));
        write_tmp("cert.crt", "-----BEGIN CERTIFICATE-----\n", cert, sizeof(cert));
        write_tmp("key.pem", "-----BEGIN PRIVATE KEY-----\n", key, sizeof(key));
        return 0;
}

static int teardown(void **state)
{
        char cmd[400];

        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
        return system(cmd) == 0 ? 0 : -1;
}

static void dump_diags(const struct cfg_diags *d)
{
        char buf[1024];

        for (size_t i = 0; i < d->n; i++) {
                cfg_diag_fmt(&d->v[i], buf, sizeof(buf));
                print_message("  %s: %s\n", d->v[i].severity == CFG_ERROR ? "error" : "notice", buf);
        }
}

static const struct cfg_diag *first_error(const struct cfg_diags *d)
{
        for (size_t i = 0; i < d->n; i++)
                if (d->v[i].severity == CFG_ERROR)
                        return &d->v[i];
        return NULL;
}

/* The first error is "file:line:col: ..." and holds needle. */
static void assert_error(const struct cfg_diags *d, const char *file, unsigned line, unsigned col,
                         const char *needle)
{
        const struct cfg_diag *e = first_error(d);

        if (!e || !streq_ptr(e->file, file) || e->line != line || e->column != col || !strstr(e->message, needle)) {
                dump_diags(d);
                fail_msg("expected an error at %s:%u:%u holding \"%s\"", file ? file : "(none)", line, col, needle);
        }
}

/* ---- calicoctl's settings file ---- */

static int parse(const char *text, enum cfg_datastore want, struct cfg_source *ret, struct cfg_diags *d)
{
        return cfg_calicoctl_parse("/etc/calico/calicoctl.cfg", text, strlen(text), want, ret, d);
}

static struct cfg_source parse_ok(const char *text)
{
        struct cfg_diags d = {};
        struct cfg_source s = {};

        if (parse(text, CFG_DATASTORE_AUTO, &s, &d) < 0) {
                dump_diags(&d);
                fail_msg("refused: %s", text);
        }
        cfg_diags_clear(&d);
        return s;
}

static void parse_bad(const char *text, unsigned line, unsigned col, const char *needle)
{
        struct cfg_diags d = {};
        struct cfg_source s = { .type = 42 };

        assert_int_equal(parse(text, CFG_DATASTORE_AUTO, &s, &d), -EINVAL);
        assert_int_equal(s.type, 42); /* untouched */
        assert_error(&d, "/etc/calico/calicoctl.cfg", line, col, needle);
        cfg_diags_clear(&d);
}

/* What kubespray writes (metadata: with nothing after it, every value quoted). */
static void calicoctl_kubespray(void **state)
{
        char text[2048];
        struct cfg_source s;

        (void)state;
        snprintf(text, sizeof(text),
                 CTL_HDR "metadata:\nspec:\n  datastoreType: \"etcdv3\"\n"
                         "  etcdEndpoints: \"https://10.0.0.1:2379,https://10.0.0.2:2379/, https://[fd00::3]:2379\"\n"
                         "  etcdKeyFile: \"%s\"\n  etcdCertFile: \"%s\"\n  etcdCACertFile: \"%s\"\n",
                 key, cert, ca);
        s = parse_ok(text);
        assert_int_equal(s.type, CFG_DATASTORE_ETCDV3);
        assert_int_equal(s.etcd.n_endpoints, 3);
        assert_string_equal(s.etcd.endpoints[0], "https://10.0.0.1:2379");
        assert_string_equal(s.etcd.endpoints[1], "https://10.0.0.2:2379"); /* the slash goes */
        assert_string_equal(s.etcd.endpoints[2], "https://[fd00::3]:2379");
        assert_string_equal(s.etcd.key_file, key);
        assert_string_equal(s.etcd.cert_file, cert);
        assert_string_equal(s.etcd.ca_file, ca);
        assert_string_equal(s.etcd.origin, "/etc/calico/calicoctl.cfg");
        assert_null(s.etcd.username);
        cfg_source_clear(&s);
}

static void calicoctl_json_inline_and_auth(void **state)
{
        struct cfg_source s;

        (void)state;
        s = parse_ok("{\"apiVersion\":\"projectcalico.org/v3\",\"kind\":\"CalicoAPIConfig\",\"spec\":{"
                     "\"etcdEndpoints\":\"http://127.0.0.1:2379\",\"etcdCACert\":\"-----BEGIN CA\",\"etcdCert\":"
                     "\"-----BEGIN CERT\",\"etcdKey\":\"-----BEGIN KEY\",\"etcdUsername\":\"calico\","
                     "\"etcdPassword\":\"s3cret\",\"kubeconfig\":\"/root/.kube/config\"}}");
        /* No datastoreType, but endpoints: etcd (older calicoctl's default). */
        assert_int_equal(s.type, CFG_DATASTORE_ETCDV3);
        assert_string_equal(s.etcd.ca_pem, "-----BEGIN CA");
        assert_string_equal(s.etcd.cert_pem, "-----BEGIN CERT");
        assert_string_equal(s.etcd.key_pem, "-----BEGIN KEY");
        assert_string_equal(s.etcd.username, "calico");
        assert_string_equal(s.etcd.password, "s3cret");
        assert_null(s.etcd.ca_file);
        cfg_source_clear(&s);
}

static void calicoctl_kubernetes(void **state)
{
        struct cfg_diags d = {};
        struct cfg_source s;

        (void)state;
        /* kubernetes, named: the Kubernetes API is read. */
        assert_int_equal(parse(CTL_HDR "spec:\n  datastoreType: kubernetes\n  kubeconfig: /x\n", CFG_DATASTORE_AUTO,
                               &s, &d),
                         0);
        assert_int_equal(s.type, CFG_DATASTORE_KUBERNETES);
        assert_int_equal(d.n, 0);
        assert_true(s.kubernetes);
        assert_string_equal(s.kdd.kubeconfig, "/x");
        cfg_source_clear(&s);
        cfg_diags_clear(&d);
        /* Nothing at all: kubernetes for calicoctl (newer calicoctl's default), but
         * `auto` keeps the files unless the datastore is named. */
        s = parse_ok(CTL_HDR "spec: {}\n");
        assert_int_equal(s.type, CFG_DATASTORE_FILES);
        assert_true(s.kubernetes);
        cfg_source_clear(&s);
        assert_int_equal(parse(CTL_HDR "spec: {}\n", CFG_DATASTORE_KUBERNETES, &s, &d), 0);
        assert_int_equal(s.type, CFG_DATASTORE_KUBERNETES);
        cfg_source_clear(&s);
        /* datastore: kubernetes, but calicoctl names etcd: an error. */
        assert_int_equal(parse(CTL_HDR "spec:\n  etcdEndpoints: http://a:2379\n", CFG_DATASTORE_KUBERNETES, &s, &d),
                         -EINVAL);
        assert_error(&d, "/etc/calico/calicoctl.cfg", 4, 18, "the setting datastore is kubernetes, but etcdEndpoints names etcd");
        cfg_diags_clear(&d);
        s = parse_ok(CTL_HDR "metadata: {}\n");
        assert_int_equal(s.type, CFG_DATASTORE_FILES);
        cfg_source_clear(&s);
        /* datastore: etcdv3 asked for etcd: either is an error. */
        assert_int_equal(parse(CTL_HDR "spec:\n  datastoreType: kubernetes\n", CFG_DATASTORE_ETCDV3, &s, &d), -EINVAL);
        assert_error(&d, "/etc/calico/calicoctl.cfg", 4, 18, "the setting datastore is etcdv3, but datastoreType is kubernetes");
        cfg_diags_clear(&d);
        assert_int_equal(parse(CTL_HDR "spec: {}\n", CFG_DATASTORE_ETCDV3, &s, &d), -EINVAL);
        assert_error(&d, "/etc/calico/calicoctl.cfg", 1, 1, "names no etcd endpoints");
        cfg_diags_clear(&d);
}

static int env(const char *const *envp, enum cfg_datastore want, struct cfg_source *ret, struct cfg_diags *d);
static void env_bad(const char *const *envp, enum cfg_datastore want, const char *needle);

/* Every key of calicoctl's CalicoAPIConfigSpec (apiconfig.go) is read: none refuses a
 * file calicoctl takes. */
static void calicoctl_kubernetes_keys(void **state)
{
        struct cfg_diags d = {};
        struct cfg_source s = {};
        const char *text = CTL_HDR "metadata:\n  name: x\nspec:\n"
                                   "  datastoreType: kubernetes\n"          /* 6 */
                                   "  kubeconfig: /root/.kube/config\n"
                                   "  kubeconfigInline: \"apiVersion: v1\"\n"
                                   "  k8sAPIEndpoint: https://10.0.0.1:6443\n"
                                   "  k8sKeyFile: /k/key.pem\n"            /* 10 */
                                   "  k8sCertFile: /k/cert.pem\n"
                                   "  k8sCAFile: /k/ca.crt\n"
                                   "  k8sAPIToken: tok\n"
                                   "  k8sInsecureSkipTLSVerify: false\n"
                                   "  k8sDisableNodePoll: true\n"          /* 15 */
                                   "  usePodCIDR: true\n"
                                   "  k8sClientQPS: 12.5\n"
                                   "  k8sCurrentContext: ctx2\n"
                                   "  calicoAPIGroup: projectcalico.org/v3\n";

        (void)state;
        assert_int_equal(parse(text, CFG_DATASTORE_AUTO, &s, &d), 0);
        assert_int_equal(d.n_errors, 0);
        assert_true(s.kubernetes);
        assert_string_equal(s.kdd.origin, "/etc/calico/calicoctl.cfg");
        assert_string_equal(s.kdd.kubeconfig, "/root/.kube/config");
        assert_string_equal(s.kdd.kubeconfig_inline, "apiVersion: v1");
        assert_string_equal(s.kdd.api_endpoint, "https://10.0.0.1:6443");
        assert_string_equal(s.kdd.key_file, "/k/key.pem");
        assert_string_equal(s.kdd.cert_file, "/k/cert.pem");
        assert_string_equal(s.kdd.ca_file, "/k/ca.crt");
        assert_string_equal(s.kdd.token, "tok");
        assert_string_equal(s.kdd.context, "ctx2");
        assert_false(s.kdd.insecure);
        assert_true(s.kdd.use_pod_cidr);
        assert_int_equal(s.kdd.api_group, CFG_API_GROUP_V3);
        /* A notice: inline over the path (8). */
        assert_int_equal(d.n, 1);
        assert_int_equal(s.type, CFG_DATASTORE_KUBERNETES);
        cfg_source_clear(&s);
        cfg_diags_clear(&d);
        /* The API group: Calico's rule (v3 by name, any case; anything else v1). */
        s = parse_ok(CTL_HDR "spec:\n  calicoAPIGroup: ProjectCalico.org/V3\n");
        assert_int_equal(s.kdd.api_group, CFG_API_GROUP_V3);
        cfg_source_clear(&s);
        s = parse_ok(CTL_HDR "spec:\n  calicoAPIGroup: crd.projectcalico.org/v1\n");
        assert_int_equal(s.kdd.api_group, CFG_API_GROUP_V1);
        cfg_source_clear(&s);
        s = parse_ok(CTL_HDR "spec:\n  datastoreType: kubernetes\n");
        assert_int_equal(s.kdd.api_group, CFG_API_GROUP_AUTO);
        assert_null(s.kdd.kubeconfig);
        cfg_source_clear(&s);
        /* Typed keys, at their position. */
        parse_bad(CTL_HDR "spec:\n  usePodCIDR: yes please\n", 4, 15, "usePodCIDR must be true or false");
        parse_bad(CTL_HDR "spec:\n  k8sClientQPS: fast\n", 4, 17, "k8sClientQPS must be a number");
        parse_bad(CTL_HDR "spec:\n  k8sCertFile: /c.pem\n", 4, 16, "k8sCertFile is set without k8sKeyFile");
        parse_bad(CTL_HDR "spec:\n  k8sAPIEndpoint: 10.0.0.1:6443\n", 4, 19,
                  "k8sAPIEndpoint: endpoint \"10.0.0.1:6443\" must start with http:// or https://");
}

static void env_kubernetes(void **state)
{
        const char *envp[] = { "CALICO_DATASTORE_TYPE=kubernetes", "KUBECONFIG=/etc/k/config",
                               "K8S_CURRENT_CONTEXT=node", "CALICO_API_GROUP=crd.projectcalico.org/v1",
                               "USE_POD_CIDR=1", "K8S_INSECURE_SKIP_TLS_VERIFY=F", "K8S_API_ENDPOINT=https://a:6443",
                               NULL };
        struct cfg_diags d = {};
        struct cfg_source s = {};

        (void)state;
        assert_int_equal(env(envp, CFG_DATASTORE_AUTO, &s, &d), 0);
        assert_true(s.kubernetes);
        assert_string_equal(s.kdd.origin, "the environment");
        assert_string_equal(s.kdd.kubeconfig, "/etc/k/config");
        assert_string_equal(s.kdd.context, "node");
        assert_string_equal(s.kdd.api_endpoint, "https://a:6443");
        assert_int_equal(s.kdd.api_group, CFG_API_GROUP_V1);
        assert_true(s.kdd.use_pod_cidr);
        assert_false(s.kdd.insecure);
        cfg_source_clear(&s);
        cfg_diags_clear(&d);
        env_bad((const char *[]){ "USE_POD_CIDR=maybe", NULL }, CFG_DATASTORE_AUTO,
                "USE_POD_CIDR must be true or false, not \"maybe\"");
        env_bad((const char *[]){ "CALICO_K8S_CERT_FILE=/c.pem", NULL }, CFG_DATASTORE_AUTO,
                "CALICO_K8S_CERT_FILE is set without k8sKeyFile");
}

static void calicoctl_structure_errors(void **state)
{
        (void)state;
        parse_bad(CTL_HDR "spec:\n  etcdEndpionts: http://a:2379\n", 4, 3, "unknown key \"spec.etcdEndpionts\"");
        parse_bad(CTL_HDR "colour: blue\n", 3, 1, "unknown key \"colour\"");
        parse_bad("apiVersion: v1\nkind: CalicoAPIConfig\n", 1, 13, "apiVersion must be projectcalico.org/v3");
        parse_bad("apiVersion: projectcalico.org/v3\nkind: Config\n", 2, 7, "kind must be CalicoAPIConfig");
        parse_bad("kind: CalicoAPIConfig\n", 1, 1, "apiVersion must be projectcalico.org/v3");
        parse_bad(CTL_HDR "spec: [a]\n", 3, 7, "spec must be a mapping");
        parse_bad(CTL_HDR "metadata: x\n", 3, 11, "metadata must be a mapping");
        parse_bad(CTL_HDR "---\n" CTL_HDR, 4, 1, "a single document");
        parse_bad("- a\n", 1, 1, "must be a mapping");
        parse_bad(CTL_HDR "spec:\n  etcdEndpoints: [http://a:2379]\n", 4, 18, "etcdEndpoints must be a string");
        parse_bad(CTL_HDR "spec:\n  etcdEndpoints: \"http://a:2379\n", 5, 1, "");
}

static void calicoctl_empty_file(void **state)
{
        struct cfg_diags d = {};
        struct cfg_source s;

        (void)state;
        assert_int_equal(parse("# nothing\n", CFG_DATASTORE_AUTO, &s, &d), -EINVAL);
        assert_error(&d, "/etc/calico/calicoctl.cfg", 0, 0, "calicoctl's settings file is empty");
        cfg_diags_clear(&d);
}

static void calicoctl_endpoint_errors(void **state)
{
        (void)state;
        parse_bad(CTL_HDR "spec:\n  etcdEndpoints: 10.0.0.1:2379\n", 4, 18,
                  "etcdEndpoints: endpoint \"10.0.0.1:2379\" must start with http:// or https://");
        parse_bad(CTL_HDR "spec:\n  etcdEndpoints: \"https://a:2379,,https://b:2379\"\n", 4, 18,
                  "etcdEndpoints: an empty endpoint");
        parse_bad(CTL_HDR "spec:\n  etcdEndpoints: \"https://a:2379,\"\n", 4, 18, "an empty endpoint");
        parse_bad(CTL_HDR "spec:\n  etcdEndpoints: https://\n", 4, 18, "has no host");
        parse_bad(CTL_HDR "spec:\n  etcdEndpoints: https://a:2379/v3\n", 4, 18, "without a path");
        parse_bad(CTL_HDR "spec:\n  etcdEndpoints: https://user@a:2379\n", 4, 18, "without a path, query or user");
        parse_bad(CTL_HDR "spec:\n  etcdEndpoints: ftp://a\n", 4, 18, "must start with http:// or https://");
        parse_bad(CTL_HDR "spec:\n  datastoreType: etcdv3\n", 4, 18, "datastoreType is etcdv3, but no etcd endpoints");
        parse_bad(CTL_HDR "spec:\n  datastoreType: etcd\n", 4, 18,
                  "datastoreType must be etcdv3 or kubernetes, not \"etcd\"");
        parse_bad(CTL_HDR "spec:\n  etcdDiscoverySrv: example.com\n", 4, 21, "etcdDiscoverySrv (DNS SRV discovery) "
                                                                              "is not supported");
}

static void calicoctl_endpoint_cap(void **state)
{
        char text[4096] = CTL_HDR "spec:\n  etcdEndpoints: \"";
        struct cfg_source s;

        (void)state;
        for (int i = 0; i < CFG_ETCD_MAX_ENDPOINTS; i++)
                snprintf(text + strlen(text), sizeof(text) - strlen(text), "%shttp://h%d:2379", i ? "," : "", i);
        strcat(text, "\"\n");
        s = parse_ok(text);
        assert_int_equal(s.etcd.n_endpoints, CFG_ETCD_MAX_ENDPOINTS);
        cfg_source_clear(&s);
        text[strlen(text) - 2] = '\0';
        strcat(text, ",http://one-more:2379\"\n");
        parse_bad(text, 4, 18, "more than 32 endpoints");
}

static void calicoctl_tls_errors(void **state)
{
        char text[2048];

        (void)state;
        snprintf(text, sizeof(text), CTL_HDR "spec:\n  etcdEndpoints: https://a:2379\n  etcdCertFile: %s\n", cert);
        parse_bad(text, 5, 17, "etcdCertFile is set without a key");
        snprintf(text, sizeof(text), CTL_HDR "spec:\n  etcdEndpoints: https://a:2379\n  etcdKey: x\n");
        parse_bad(text, 5, 12, "etcdKey is set without a certificate");
        snprintf(text, sizeof(text), CTL_HDR "spec:\n  etcdEndpoints: https://a:2379\n  etcdCACertFile: %s\n"
                                             "  etcdCACert: pem\n", ca);
        parse_bad(text, 6, 15, "etcdCACertFile and etcdCACert are both set");
        parse_bad(CTL_HDR "spec:\n  etcdEndpoints: https://a:2379\n  etcdCACertFile: /nonexistent/ca.crt\n", 5, 19,
                  "etcdCACertFile \"/nonexistent/ca.crt\": cannot read it: No such file or directory");
        snprintf(text, sizeof(text), CTL_HDR "spec:\n  etcdEndpoints: https://a:2379\n  etcdCACertFile: %s\n", tmp);
        parse_bad(text, 5, 19, "is not a file");
        parse_bad(CTL_HDR "spec:\n  etcdEndpoints: https://a:2379\n  etcdUsername: calico\n", 5, 17,
                  "etcdUsername is set without a password");
}

/* ---- the environment ---- */

static int env(const char *const *envp, enum cfg_datastore want, struct cfg_source *ret, struct cfg_diags *d)
{
        return cfg_calicoctl_env(envp, want, ret, d);
}

static void env_kubespray(void **state)
{
        char e1[400], e2[400], e3[400];
        const char *envp[] = { "PATH=/usr/bin", "ETCD_ENDPOINTS=https://10.0.0.1:2379,https://10.0.0.2:2379", e1, e2,
                               e3, NULL };
        struct cfg_diags d = {};
        struct cfg_source s;

        (void)state;
        snprintf(e1, sizeof(e1), "ETCD_CA_CERT_FILE=%s", ca);
        snprintf(e2, sizeof(e2), "ETCD_CERT_FILE=%s", cert);
        snprintf(e3, sizeof(e3), "ETCD_KEY_FILE=%s", key);
        assert_int_equal(env(envp, CFG_DATASTORE_AUTO, &s, &d), 0);
        assert_int_equal(d.n, 0);
        assert_int_equal(s.type, CFG_DATASTORE_ETCDV3);
        assert_int_equal(s.etcd.n_endpoints, 2);
        assert_string_equal(s.etcd.endpoints[1], "https://10.0.0.2:2379");
        assert_string_equal(s.etcd.ca_file, ca);
        assert_string_equal(s.etcd.cert_file, cert);
        assert_string_equal(s.etcd.key_file, key);
        assert_string_equal(s.etcd.origin, "the environment");
        cfg_source_clear(&s);
}

static void env_prefix_and_empty(void **state)
{
        const char *envp[] = { "ETCD_ENDPOINTS=http://plain:2379", "CALICO_ETCD_ENDPOINTS=http://prefixed:2379",
                               "ETCD_CERT_FILE=", "DATASTORE_TYPE=", NULL };
        const char *none[] = { "ETCD_ENDPOINTS=", "HOME=/root", NULL };
        struct cfg_diags d = {};
        struct cfg_source s;

        (void)state;
        assert_int_equal(env(envp, CFG_DATASTORE_AUTO, &s, &d), 0);
        assert_int_equal(s.type, CFG_DATASTORE_ETCDV3);
        assert_int_equal(s.etcd.n_endpoints, 1);
        assert_string_equal(s.etcd.endpoints[0], "http://prefixed:2379");
        assert_null(s.etcd.cert_file); /* empty is unset */
        cfg_source_clear(&s);
        assert_int_equal(env(none, CFG_DATASTORE_AUTO, &s, &d), 0);
        assert_int_equal(s.type, CFG_DATASTORE_FILES);
        assert_true(s.kubernetes); /* nothing names etcd: calicoctl's kubernetes */
        cfg_source_clear(&s);
        assert_int_equal(env(NULL, CFG_DATASTORE_AUTO, &s, &d), 0);
        assert_int_equal(s.type, CFG_DATASTORE_FILES);
        cfg_source_clear(&s);
        assert_int_equal(d.n, 0);
}

static void env_bad(const char *const *envp, enum cfg_datastore want, const char *needle)
{
        struct cfg_diags d = {};
        struct cfg_source s = {};

        assert_int_equal(env(envp, want, &s, &d), -EINVAL);
        assert_error(&d, NULL, 0, 0, needle);
        cfg_diags_clear(&d);
}

static void env_errors(void **state)
{
        (void)state;
        env_bad((const char *[]){ "ETCD_ENDPOINTS=127.0.0.1:2379", NULL }, CFG_DATASTORE_AUTO,
                "ETCD_ENDPOINTS: endpoint \"127.0.0.1:2379\" must start with http:// or https://");
        env_bad((const char *[]){ "CALICO_ETCD_ENDPOINTS=https://a:2379,", NULL }, CFG_DATASTORE_AUTO,
                "CALICO_ETCD_ENDPOINTS: an empty endpoint");
        env_bad((const char *[]){ "DATASTORE_TYPE=etcd", NULL }, CFG_DATASTORE_AUTO,
                "DATASTORE_TYPE must be etcdv3 or kubernetes, not \"etcd\"");
        env_bad((const char *[]){ "DATASTORE_TYPE=etcdv3", NULL }, CFG_DATASTORE_AUTO,
                "DATASTORE_TYPE is etcdv3, but no etcd endpoints are set (ETCD_ENDPOINTS)");
        env_bad((const char *[]){ "ETCD_ENDPOINTS=https://a:2379", "ETCD_KEY_FILE=/nonexistent/key.pem",
                                  "ETCD_CERT_FILE=/nonexistent/cert.pem", NULL },
                CFG_DATASTORE_AUTO, "ETCD_KEY_FILE \"/nonexistent/key.pem\": cannot read it");
        env_bad((const char *[]){ "ETCD_ENDPOINTS=https://a:2379", "ETCD_KEY=pem", NULL }, CFG_DATASTORE_AUTO,
                "ETCD_KEY is set without a certificate");
        env_bad((const char *[]){ "ETCD_DISCOVERY_SRV=example.com", NULL }, CFG_DATASTORE_AUTO,
                "ETCD_DISCOVERY_SRV (DNS SRV discovery) is not supported: list the endpoints in ETCD_ENDPOINTS");
        env_bad((const char *[]){ "HOME=/root", NULL }, CFG_DATASTORE_ETCDV3,
                "the setting datastore is etcdv3, but the environment names no etcd endpoints");
        env_bad((const char *[]){ "DATASTORE_TYPE=kubernetes", NULL }, CFG_DATASTORE_ETCDV3,
                "the setting datastore is etcdv3, but DATASTORE_TYPE is kubernetes here");
}

/* ---- settings and resolution ---- */

static struct cfg_settings settings(const char *text)
{
        struct cfg_diags d = {};
        struct cfg_settings s;

        if (cfg_settings_load_buffer("/etc/cu/config.yaml", text, strlen(text), "node1", &s, &d) < 0) {
                dump_diags(&d);
                fail_msg("settings refused: %s", text);
        }
        cfg_diags_clear(&d);
        return s;
}

static void settings_datastore(void **state)
{
        struct cfg_diags d = {};
        struct cfg_settings s;

        (void)state;
        s = settings("");
        assert_int_equal(s.datastore, CFG_DATASTORE_AUTO);
        assert_string_equal(s.calicoctl_config, "/etc/calico/calicoctl.cfg");
        assert_false(s.has_resources);
        cfg_settings_clear(&s);
        s = settings("datastore: etcdv3\ncalicoctlConfig: calico/ctl.cfg\nresources: r.d\n");
        assert_int_equal(s.datastore, CFG_DATASTORE_ETCDV3);
        assert_string_equal(s.calicoctl_config, "/etc/cu/calico/ctl.cfg"); /* beside the settings */
        assert_true(s.has_resources);
        cfg_settings_clear(&s);
        s = settings("datastore: files\n");
        assert_int_equal(s.datastore, CFG_DATASTORE_FILES);
        cfg_settings_clear(&s);
        s = settings("datastore: kubernetes\nkubeconfig: k/config\n");
        assert_int_equal(s.datastore, CFG_DATASTORE_KUBERNETES);
        assert_string_equal(s.kubeconfig, "/etc/cu/k/config");
        cfg_settings_clear(&s);
        assert_int_equal(cfg_settings_load_buffer("/etc/cu/config.yaml", "datastore: kdd\n", 15, "n", &s, &d),
                         -EINVAL);
        assert_error(&d, "/etc/cu/config.yaml", 1, 12, "datastore must be auto, files, etcdv3 or kubernetes, not \"kdd\"");
        cfg_diags_clear(&d);
        assert_int_equal(cfg_settings_load_buffer("/etc/cu/config.yaml", "calicoctlConfig: \"\"\n", 20, "n", &s, &d),
                         -EINVAL);
        assert_error(&d, "/etc/cu/config.yaml", 1, 18, "calicoctlConfig is empty");
        cfg_diags_clear(&d);
}

static void resolve(const char *settings_text, const char *const *envp, int want_r, enum cfg_datastore want_type,
                    const char *origin)
{
        struct cfg_settings s = settings(settings_text);
        struct cfg_diags d = {};
        struct cfg_source src = {};

        assert_int_equal(source_resolve(&s, envp, &src, &d), want_r);
        if (want_r == 0) {
                assert_int_equal(src.type, want_type);
                if (origin)
                        assert_string_equal(src.etcd.origin, origin);
        }
        cfg_source_clear(&src);
        cfg_settings_clear(&s);
        cfg_diags_clear(&d);
}

static void resolve_sources(void **state)
{
        const char *etcd_env[] = { "ETCD_ENDPOINTS=http://env:2379", NULL };
        char cfg[300], with_file[400], with_missing[400], with_dir[400], files[400];

        (void)state;
        write_tmp("calicoctl.cfg", CTL_HDR "spec:\n  etcdEndpoints: http://file:2379\n", cfg, sizeof(cfg));
        snprintf(with_file, sizeof(with_file), "calicoctlConfig: %s\n", cfg);
        snprintf(with_missing, sizeof(with_missing), "calicoctlConfig: %s/missing.cfg\n", tmp);
        snprintf(with_dir, sizeof(with_dir), "calicoctlConfig: %s\n", tmp);
        snprintf(files, sizeof(files), "datastore: files\ncalicoctlConfig: %s\n", cfg);
        /* The file, when it exists, and only then the environment (calicoctl's order). */
        resolve(with_file, etcd_env, 0, CFG_DATASTORE_ETCDV3, cfg);
        resolve(with_missing, etcd_env, 0, CFG_DATASTORE_ETCDV3, "the environment");
        resolve(with_missing, NULL, 0, CFG_DATASTORE_FILES, NULL);
        /* datastore: files reads neither. */
        resolve(files, etcd_env, 0, CFG_DATASTORE_FILES, NULL);
        /* A folder where the file should be: an error naming it. */
        resolve(with_dir, etcd_env, -EINVAL, 0, NULL);
}

/* ---- etcd keys into the model ---- */

#define POOL_JSON(name, cidr, extra)                                                                             \
        "{\"kind\":\"IPPool\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"" name            \
        "\",\"uid\":\"1\",\"creationTimestamp\":\"2026-11-01T10:00:00Z\"},\"spec\":{\"cidr\":\"" cidr "\"," \
        "\"blockSize\":28,\"ipipMode\":\"Never\",\"vxlanMode\":\"Never\",\"natOutgoing\":false," \
        "\"nodeSelector\":\"all()\",\"allowedUses\":[\"Workload\",\"Tunnel\"]" extra "}}"
#define NODE_JSON(name, addr)                                                                                   \
        "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":\"" name "\","        \
        "\"labels\":{\"zone\":\"az1\"}},\"spec\":{\"bgp\":{\"ipv4Address\":\"" addr "\"},\"orchRefs\":[{\"nodeName\":\"" \
        name "\",\"orchestrator\":\"k8s\"}]},\"status\":{}}"
#define FELIX_JSON                                                                                              \
        "{\"kind\":\"FelixConfiguration\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":{\"name\":"       \
        "\"default\"},\"spec\":{\"ipipEnabled\":true,\"logSeverityScreen\":\"Info\"}}"

static int kvs_load(const struct cfg_kv *kvs, size_t n, struct cfg_model **ret, struct cfg_diags *d)
{
        struct cfg_settings s = settings("nodeName: node1\n");
        int r = cfg_model_from_kvs(&s, kvs, n, ret, d);

        cfg_settings_clear(&s);
        return r;
}

#define KV(k, v) { (k), (v), sizeof(v) - 1 }

static void kvs_cluster(void **state)
{
        static const struct cfg_kv kvs[] = {
                KV("/calico/ipam/v2/host/node1/ipv4/block/192.168.10.128-28", "{\"state\":\"confirmed\",\"deleted\":false}"),
                KV("/calico/ipam/v2/host/node2/ipv4/block/192.168.10.144-28", ""),
                KV("/calico/ipam/v2/host/node2/ipv4/block/192.168.10.160-28", "{\"state\":\"pending\",\"deleted\":false}"),
                KV("/calico/ipam/v2/host/node2/ipv4/block/192.168.10.176-28", "{\"state\":\"confirmed\",\"deleted\":true}"),
                KV("/calico/ipam/v2/host/node3/ipv4/block/192.168.10.192-28", "{}"),
                KV("/calico/ipam/v2/host/node3/ipv6/block/fd00:10::-122", "{\"state\":\"confirmed\"}"),
                KV("/calico/ipam/v2/host/node3/ipv4/block/nonsense", "{}"),
                KV(RES "felixconfigurations/default", FELIX_JSON),
                KV(RES "ippools/underlay", POOL_JSON("underlay", "192.168.10.128/25", )),
                KV(RES "ippools/v6", "{\"kind\":\"IPPool\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":"
                                     "{\"name\":\"v6\"},\"spec\":{\"cidr\":\"fd00:10::/64\"}}"),
                KV(RES "nodes/node1", NODE_JSON("node1", "192.168.10.11/24")),
                KV(RES "nodes/node2", NODE_JSON("node2", "192.168.10.12/24")),
                /* a dual-stack node as calico/node writes it (IPv6 autodetected) */
                KV(RES "nodes/node3", "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"metadata\":"
                                      "{\"name\":\"node3\"},\"spec\":{\"bgp\":{\"ipv4Address\":\"192.168.10.13/24\","
                                      "\"ipv6Address\":\"fd00:1::13/64\"}}}"),
                KV(RES "nodes/extra/path", "{}"),
        };
        struct cfg_diags d = {};
        struct cfg_model *m = NULL;
        char buf[64];

        (void)state;
        if (kvs_load(kvs, ELEMENTSOF(kvs), &m, &d) < 0) {
                dump_diags(&d);
                fail();
        }
        assert_int_equal(m->n_pools, 2);
        assert_int_equal(m->n_nodes, 3);
        /* confirmed, empty (old data: confirmed), {} (an empty state: confirmed), IPv6;
         * not the pending or the deleted one. */
        assert_int_equal(m->n_blocks, 4);
        cfg_prefix_fmt(&m->blocks[0].cidr, buf, sizeof(buf));
        assert_string_equal(buf, "192.168.10.128/28");
        assert_string_equal(m->nodes[m->blocks[0].node].name, "node1");
        cfg_prefix_fmt(&m->blocks[1].cidr, buf, sizeof(buf));
        assert_string_equal(buf, "192.168.10.144/28");
        assert_string_equal(m->nodes[m->blocks[1].node].name, "node2");
        assert_string_equal(cfg_model_file(m, m->blocks[1].src), "etcd:/calico/ipam/v2/host/node2/ipv4/block/192.168.10.144-28");
        assert_string_equal(cfg_model_self_labels(m)->v[0].value, "az1");
        assert_int_equal(cfg_model_felix(m, "node1").ipip_enabled, CFG_TRUE);
        assert_string_equal(cfg_model_file(m, m->pools[0].src), "etcd:" RES "ippools/underlay");
        cfg_prefix_fmt(&cfg_model_node(m, "node3")->addr6, buf, sizeof(buf));
        assert_string_equal(buf, "fd00:1::13/64");
        assert_null(cfg_node_addr(cfg_model_node(m, "node1"), AF_INET6));
        /* Keys outside the layout are skipped with a notice naming them. */
        assert_int_equal(d.n_errors, 0);
        assert_true(m->n_skipped >= 2);
        cfg_model_free(m);
        cfg_diags_clear(&d);
}

static void kvs_bad(const struct cfg_kv *kvs, size_t n, const char *file, unsigned line, unsigned col,
                    const char *needle)
{
        struct cfg_diags d = {};
        struct cfg_model *m = NULL;

        assert_int_equal(kvs_load(kvs, n, &m, &d), -EINVAL);
        assert_null(m);
        assert_error(&d, file, line, col, needle);
        cfg_diags_clear(&d);
}

static unsigned col_of(const char *hay, const char *needle)
{
        const char *p = strstr(hay, needle);

        assert_non_null(p);
        return (unsigned)(p - hay) + 1;
}

static void kvs_errors(void **state)
{
        static const char bad_pool[] = POOL_JSON("broken", "10.9.0.1/16", );
        static const char typo[] = POOL_JSON("typo", "10.9.0.0/16", ",\"natOutgoin\":true");
        static const char bad_aff[] = "{\"state\":\"confirmed\",\"deleted\":\"maybe\"}";
        const struct cfg_kv pool_ok = KV(RES "ippools/underlay", POOL_JSON("underlay", "192.168.10.128/25", ));

        (void)state;
        kvs_bad((struct cfg_kv[]){ pool_ok, KV(RES "ippools/broken", bad_pool) }, 2, "etcd:" RES "ippools/broken", 1,
                col_of(bad_pool, "\"10.9.0.1/16\""), "cidr 10.9.0.1/16 has host bits set");
        kvs_bad((struct cfg_kv[]){ pool_ok, KV(RES "ippools/typo", typo) }, 2, "etcd:" RES "ippools/typo", 1,
                col_of(typo, "\"natOutgoin\""), "unknown IPPool field \"natOutgoin\"");
        kvs_bad((struct cfg_kv[]){ KV("/calico/ipam/v2/host/n/ipv4/block/192.168.10.128-28", bad_aff), pool_ok }, 2,
                "etcd:/calico/ipam/v2/host/n/ipv4/block/192.168.10.128-28", 1, col_of(bad_aff, "\"maybe\""),
                "spec.deleted must be true or false");
        kvs_bad((struct cfg_kv[]){ KV("/calico/ipam/v2/host/n/ipv4/block/192.168.10.128-28", "[1]"), pool_ok }, 2,
                "etcd:/calico/ipam/v2/host/n/ipv4/block/192.168.10.128-28", 1, 1,
                "a block affinity value must be an object");
        /* The cidr in the key is checked like a file's spec.cidr (no position: the key). */
        kvs_bad((struct cfg_kv[]){ KV("/calico/ipam/v2/host/n/ipv4/block/192.168.10.129-28", "{}"), pool_ok }, 2,
                "etcd:/calico/ipam/v2/host/n/ipv4/block/192.168.10.129-28", 0, 0, "spec.cidr 192.168.10.129/28 has host bits");
        kvs_bad((struct cfg_kv[]){ pool_ok, KV(RES "ippools/x", NODE_JSON("x", "10.0.0.1/24")) }, 2,
                "etcd:" RES "ippools/x", 1, 9, "a Node stored where IPPool resources belong");
        kvs_bad((struct cfg_kv[]){ pool_ok, KV(RES "ippools/empty", "") }, 2, "etcd:" RES "ippools/empty", 0, 0,
                "the value is empty");
        kvs_bad((struct cfg_kv[]){ pool_ok, KV(RES "ippools/json", "{\"kind\":") }, 2, "etcd:" RES "ippools/json", 2,
                1, "syntax error");
        /* No pool at all: refused, as an empty set of files is. */
        kvs_bad((struct cfg_kv[]){ KV(RES "nodes/node1", NODE_JSON("node1", "192.168.10.11/24")) }, 1, NULL, 0, 0,
                "no IPPool found");
}


/* Issue 12 through etcd: an IPAM block key holds libcalico-go's model.AllocationBlock as
 * JSON (lib/backend/model/block.go: cidr, affinity, allocations, unallocated,
 * attributes with handle_id and secondary, deleted); its borrowed addresses are kept. A
 * pendingDeletion affinity still counts (confd drops only pending ones). */
#define BLOCK_JSON                                                                                              \
        "{\"cidr\":\"192.168.10.128/28\",\"affinity\":\"host:node1\",\"strictAffinity\":false,"                  \
        "\"allocations\":[0,1,null,null,2,null,null,null,null,null,null,null,null,null,null,null],"              \
        "\"unallocated\":[2,3,5,6,7,8,9,10,11,12,13,14,15],\"attributes\":[{\"handle_id\":\"k8s-pod-network.a\"," \
        "\"secondary\":{\"namespace\":\"default\",\"node\":\"node1\",\"pod\":\"a\"}},{\"handle_id\":"             \
        "\"k8s-pod-network.b\",\"secondary\":{\"namespace\":\"default\",\"node\":\"node2\",\"pod\":\"b\"}},"      \
        "{\"handle_id\":\"k8s-pod-network.c\",\"secondary\":{\"node\":\"node3\"}}],\"deleted\":false,"           \
        "\"sequenceNumber\":3}"

static void kvs_ipam_blocks(void **state)
{
        static const struct cfg_kv kvs[] = {
                KV("/calico/ipam/v2/assignment/ipv4/block/192.168.10.128-28", BLOCK_JSON),
                KV("/calico/ipam/v2/host/node1/ipv4/block/192.168.10.128-28", "{\"state\":\"confirmed\"}"),
                KV("/calico/ipam/v2/host/node2/ipv4/block/192.168.10.144-28",
                   "{\"state\":\"pendingDeletion\",\"deleted\":false}"),
                KV(RES "ippools/underlay", POOL_JSON("underlay", "192.168.10.128/25", )),
                KV(RES "nodes/node1", NODE_JSON("node1", "192.168.10.11/24")),
        };
        struct cfg_diags d = {};
        struct cfg_model *m = NULL;
        char buf[64];

        (void)state;
        if (kvs_load(kvs, ELEMENTSOF(kvs), &m, &d) < 0) {
                dump_diags(&d);
                fail();
        }
        assert_int_equal(m->n_blocks, 2);
        assert_string_equal(m->nodes[m->blocks[1].node].name, "node2"); /* pendingDeletion */
        assert_int_equal(m->n_borrowed, 2);
        cfg_addr_fmt(&m->borrowed[0].addr, buf, sizeof(buf));
        assert_string_equal(buf, "192.168.10.129");
        assert_string_equal(m->nodes[m->borrowed[0].node].name, "node2");
        assert_string_equal(m->nodes[m->borrowed[0].block_node].name, "node1");
        cfg_addr_fmt(&m->borrowed[1].addr, buf, sizeof(buf));
        assert_string_equal(buf, "192.168.10.132");
        assert_string_equal(m->nodes[m->borrowed[1].node].name, "node3");
        assert_string_equal(cfg_model_file(m, m->borrowed[1].src),
                            "etcd:/calico/ipam/v2/assignment/ipv4/block/192.168.10.128-28");
        cfg_model_free(m);
        cfg_diags_clear(&d);
}

/* libcalico-go names a resource by its key: a value claiming another name is refused,
 * naming the key; so is a block value claiming another block. */
static void kvs_name_mismatch(void **state)
{
        static const char evil[] = NODE_JSON("node2", "192.168.10.99/24");
        /* node2 (and a pool) carried in the items of a value the key's checks pass */
        static const char list[] = "{\"kind\":\"Node\",\"apiVersion\":\"projectcalico.org/v3\",\"items\":["
                                   NODE_JSON("node2", "192.168.10.99/24") "]}";
        static const char two[] = NODE_JSON("evil", "192.168.10.98/24") "\n---\n" NODE_JSON("node2", "192.168.10.99/24");
        static const char block[] = "{\"cidr\":\"192.168.10.144/28\",\"affinity\":\"host:node1\"}";
        const struct cfg_kv pool_ok = KV(RES "ippools/underlay", POOL_JSON("underlay", "192.168.10.128/25", ));

        (void)state;
        kvs_bad((struct cfg_kv[]){ pool_ok, KV(RES "nodes/evil", evil) }, 2, "etcd:" RES "nodes/evil", 1,
                col_of(evil, "\"node2\""), "metadata.name \"node2\" differs from the key's name \"evil\"");
        kvs_bad((struct cfg_kv[]){ pool_ok, KV(RES "nodes/evil", list) }, 2, "etcd:" RES "nodes/evil", 1,
                col_of(list, "["), "a list (items) in one key's value: refused");
        kvs_bad((struct cfg_kv[]){ pool_ok, KV(RES "nodes/evil", two) }, 2, "etcd:" RES "nodes/evil", 3, 1,
                "a second document in one key's value: refused");
        kvs_bad((struct cfg_kv[]){ pool_ok, KV("/calico/ipam/v2/assignment/ipv4/block/192.168.10.128-28", block) }, 2,
                "etcd:/calico/ipam/v2/assignment/ipv4/block/192.168.10.128-28", 1, col_of(block, "\"192.168"),
                "cidr 192.168.10.144/28 differs from the key's block 192.168.10.128/28");
}

/* ---- the etcd client's helpers ---- */

static void base64_vectors(void **state)
{
        static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
        static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
        unsigned char all[256];
        char *s, *back;
        size_t len;

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(plain); i++) {
                s = etcd_base64_encode(plain[i], strlen(plain[i]));
                assert_string_equal(s, coded[i]);
                assert_int_equal(etcd_base64_decode(s, &back, &len), 0);
                assert_int_equal(len, strlen(plain[i]));
                assert_string_equal(back, plain[i]);
                free(s);
                free(back);
        }
        for (size_t i = 0; i < sizeof(all); i++)
                all[i] = (unsigned char)i;
        s = etcd_base64_encode(all, sizeof(all));
        assert_int_equal(etcd_base64_decode(s, &back, &len), 0);
        assert_int_equal(len, sizeof(all));
        assert_memory_equal(back, all, sizeof(all));
        free(s);
        free(back);
        for (const char *const *bad = (const char *const[]){ "Zg=", "Z===", "Zm9v\n", "Zm=v", "Zg==Zg==", "Zm9*", NULL };
             *bad; bad++)
                assert_int_equal(etcd_base64_decode(*bad, &back, &len), -EINVAL);
}

static void prefix_ends(void **state)
{
        size_t len;
        char *e;

        (void)state;
        e = etcd_prefix_end("/calico/ipam/v2/host/", 21, &len);
        assert_string_equal(e, "/calico/ipam/v2/host0");
        assert_int_equal(len, 21);
        free(e);
        e = etcd_prefix_end("a\xff\xff", 3, &len);
        assert_int_equal(len, 1);
        assert_string_equal(e, "b");
        free(e);
        assert_null(etcd_prefix_end("\xff", 1, &len));
        for (size_t i = 0; i < ETCD_N_PREFIXES; i++)
                assert_int_equal(etcd_prefixes[i][strlen(etcd_prefixes[i]) - 1], '/');
}

int main(int argc, char **argv)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(calicoctl_kubespray),
                cmocka_unit_test(calicoctl_json_inline_and_auth),
                cmocka_unit_test(calicoctl_kubernetes),
                cmocka_unit_test(calicoctl_kubernetes_keys),
                cmocka_unit_test(calicoctl_structure_errors),
                cmocka_unit_test(calicoctl_empty_file),
                cmocka_unit_test(calicoctl_endpoint_errors),
                cmocka_unit_test(calicoctl_endpoint_cap),
                cmocka_unit_test(calicoctl_tls_errors),
                cmocka_unit_test(env_kubespray),
                cmocka_unit_test(env_prefix_and_empty),
                cmocka_unit_test(env_errors),
                cmocka_unit_test(env_kubernetes),
                cmocka_unit_test(settings_datastore),
                cmocka_unit_test(resolve_sources),
                cmocka_unit_test(kvs_cluster),
                cmocka_unit_test(kvs_ipam_blocks),
                cmocka_unit_test(kvs_name_mismatch),
                cmocka_unit_test(kvs_errors),
                cmocka_unit_test(base64_vectors),
                cmocka_unit_test(prefix_ends),
        };

        if (argc > 1)
                cmocka_set_test_filter(argv[1]);
        return cmocka_run_group_tests(tests, setup, teardown);
}
