/* The Kubernetes datastore (source.h): Calico's CRDs and core Nodes read from the
 * Kubernetes API, as Calico's own node agent reads them. Internal to daemon/; exposed
 * here for the unit tests. */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

/* The kinds listed and watched, in this order. */
enum kube_kind {
        KUBE_NODES,
        KUBE_IPPOOLS,
        KUBE_AFFINITIES,
        KUBE_BLOCKS,
        KUBE_FELIX,
        KUBE_N_KINDS,
};

/* Caps on what the API server controls. */
#define KUBE_MAX_OBJECTS 1000000     /* of one kind */
#define KUBE_MAX_BODY (256u << 20)   /* one list page */
#define KUBE_MAX_EVENT (16u << 20)   /* one watch event */
#define KUBE_PAGE 500                /* objects per list page */

/* What the model needs of one API object, as compact JSON with its kind and
 * apiVersion (a list's items may lack them): metadata.name, a Node's labels, its
 * projectcalico.org/ annotations, podCIDR(s) and InternalIP addresses; a Calico
 * kind's spec (an IPAMBlock's attributes cut to the node hosting each address).
 * Everything else (managedFields, status, heartbeats, other annotations) is left
 * out, so a Node's heartbeat changes nothing. -EINVAL when obj has no name. */
int kube_trim(enum kube_kind kind, const char *api_version, json_object *obj, char **ret_name, char **ret_json);

/* The cache keeps each object's JSON packed: the fragments trimmed objects repeat
 * become one byte below 0x20 each (json-c escapes those in what it writes). out has
 * room for strlen(json) + 1; 0 when json holds such a byte (then it is kept as it
 * is). */
size_t kube_pack(const char *json, char *out);
/* Back: the length of the JSON, written to out (NUL-terminated) when out is not NULL. */
size_t kube_unpack(const char *packed, char *out);
