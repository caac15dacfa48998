/* Unit tests for what the Kubernetes source keeps of an API object (kube_trim() in
 * daemon/source-kube.c): a Node cut to name, labels, Calico's annotations, podCIDRs
 * and InternalIP addresses, so heartbeats and managedFields leave it the same; an
 * IPAMBlock's attributes cut to the hosting node; kind and apiVersion set from the
 * list (a raw list's items have none); an object without a name refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "source-kube.h"

static char *trim(enum kube_kind kind, const char *api, const char *json, char **name)
{
        json_object *o = json_tokener_parse(json);
        char *out = NULL;

        assert_non_null(o);
        assert_int_equal(kube_trim(kind, api, o, name, &out), 0);
        json_object_put(o);
        return out;
}

#define NODE(hb, extra)                                                                                          \
        "{\"metadata\":{\"name\":\"node2\",\"resourceVersion\":\"" hb "\",\"labels\":{\"zone\":\"az1\"},"        \
        "\"annotations\":{\"projectcalico.org/IPv4Address\":\"192.168.10.12/24\",\"node.alpha.kubernetes.io/ttl\":" \
        "\"0\"},\"managedFields\":[{\"manager\":\"kubelet\",\"time\":\"" hb "\"}]},\"spec\":{\"podCIDR\":"       \
        "\"10.244.1.0/24\",\"podCIDRs\":[\"10.244.1.0/24\"],\"providerID\":\"x\"},\"status\":{\"addresses\":["   \
        "{\"type\":\"InternalIP\",\"address\":\"192.168.10.12\"},{\"type\":\"Hostname\",\"address\":\"node2\"}]," \
        "\"conditions\":[{\"type\":\"Ready\",\"lastHeartbeatTime\":\"" hb "\"}]" extra "}}"

static void node_heartbeat_is_invisible(void **state)
{
        char *name, *a, *b;

        (void)state;
        a = trim(KUBE_NODES, "v1", NODE("2026-12-01T00:00:00Z", ""), &name);
        assert_string_equal(name, "node2");
        free(name);
        b = trim(KUBE_NODES, "v1", NODE("2026-12-01T00:05:00Z", ",\"nodeInfo\":{\"bootID\":\"2\"}"), &name);
        free(name);
        assert_string_equal(a, b);
        assert_string_equal(a, "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"node2\",\"labels\":"
                               "{\"zone\":\"az1\"},\"annotations\":{\"projectcalico.org/IPv4Address\":"
                               "\"192.168.10.12/24\"}},\"spec\":{\"podCIDR\":\"10.244.1.0/24\",\"podCIDRs\":["
                               "\"10.244.1.0/24\"]},\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":"
                               "\"192.168.10.12\"}]}}");
        free(a);
        free(b);
}

static void calico_kinds(void **state)
{
        char *name, *out;

        (void)state;
        /* A raw list's item: no kind; the spec kept whole. */
        out = trim(KUBE_IPPOOLS, "crd.projectcalico.org/v1",
                   "{\"metadata\":{\"name\":\"p\",\"uid\":\"u\",\"annotations\":{\"a\":\"b\"}},\"spec\":{\"cidr\":"
                   "\"10.0.0.0/16\",\"natOutgoing\":true}}",
                   &name);
        assert_string_equal(out, "{\"apiVersion\":\"crd.projectcalico.org/v1\",\"kind\":\"IPPool\",\"metadata\":{"
                                 "\"name\":\"p\"},\"spec\":{\"cidr\":\"10.0.0.0/16\",\"natOutgoing\":true}}");
        free(name);
        free(out);
        out = trim(KUBE_BLOCKS, "projectcalico.org/v3",
                   "{\"kind\":\"IPAMBlock\",\"metadata\":{\"name\":\"b\"},\"spec\":{\"cidr\":\"10.0.0.0/30\","
                   "\"affinity\":\"host:node1\",\"strictAffinity\":false,\"allocations\":[0,null,1,null],"
                   "\"unallocated\":[1,3],\"attributes\":[{\"handle_id\":\"h1\",\"secondary\":{\"node\":\"node1\","
                   "\"pod\":\"a\"}},{\"handle_id\":\"h2\",\"secondary\":{\"node\":\"node2\",\"namespace\":\"n\"}}],"
                   "\"deleted\":false}}",
                   &name);
        assert_string_equal(out, "{\"apiVersion\":\"projectcalico.org/v3\",\"kind\":\"IPAMBlock\",\"metadata\":{"
                                 "\"name\":\"b\"},\"spec\":{\"cidr\":\"10.0.0.0/30\",\"affinity\":\"host:node1\","
                                 "\"deleted\":false,\"allocations\":[0,null,1,null],\"attributes\":[{\"secondary\":{"
                                 "\"node\":\"node1\"}},{\"secondary\":{\"node\":\"node2\"}}]}}");
        free(name);
        free(out);
}

static void no_name_is_refused(void **state)
{
        json_object *o = json_tokener_parse("{\"metadata\":{},\"spec\":{}}");
        char *name = NULL, *out = NULL;

        (void)state;
        assert_int_equal(kube_trim(KUBE_AFFINITIES, "crd.projectcalico.org/v1", o, &name, &out), -EINVAL);
        assert_null(out);
        json_object_put(o);
        o = json_tokener_parse("[1]");
        assert_int_equal(kube_trim(KUBE_FELIX, "crd.projectcalico.org/v1", o, &name, &out), -EINVAL);
        json_object_put(o);
}

/* What the cache keeps: the JSON packed (the fragments objects repeat, one byte each)
 * and back, byte for byte; a BlockAffinity's spec about a third of its size. */
static void pack_round_trip(void **state)
{
        static const char *const in[] = {
                "},\"spec\":{\"cidr\":\"10.0.0.0/26\",\"deleted\":\"false\",\"node\":\"n00000\",\"state\":\"confirmed\"}}",
                ",\"labels\":{\"kubernetes.io/hostname\":\"n1\",\"kubernetes.io/os\":\"linux\"},\"annotations\":{"
                "\"projectcalico.org/IPv4Address\":\"10.200.0.1/16\"}},\"spec\":{\"podCIDR\":\"10.244.1.0/24\","
                "\"podCIDRs\":[\"10.244.1.0/24\"]},\"status\":{\"addresses\":[{\"type\":\"InternalIP\","
                "\"address\":\"10.200.0.1\"}]}}",
                "{\"apiVersion\":\"v1\",\"kind\":\"x\",\"metadata\":{\"name\":\"a\\u0001\"}}",
                "\"\"\"}}}",
                "x",
        };
        char packed[1024], back[1024];

        (void)state;
        for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
                size_t n = kube_pack(in[i], packed);

                assert_true(n > 0 && n <= strlen(in[i]));
                assert_int_equal(strlen(packed), n);
                assert_int_equal(kube_unpack(packed, NULL), strlen(in[i]));
                assert_int_equal(kube_unpack(packed, back), strlen(in[i]));
                assert_string_equal(back, in[i]);
                if (i == 0)
                        assert_in_range(n, 20, 30); /* of 85 */
        }
        /* A raw control byte (never in json-c's output): not packed. */
        assert_int_equal(kube_pack("a\001b", packed), 0);
        assert_int_equal(kube_pack("", packed), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(node_heartbeat_is_invisible),
                cmocka_unit_test(calico_kinds),
                cmocka_unit_test(no_name_is_refused),
                cmocka_unit_test(pack_round_trip),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
