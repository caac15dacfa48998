/* Calico's etcd v3 key layout → the same resources the files give.
 *
 * libcalico-go keeps every v3 resource at
 * /calico/resources/v3/projectcalico.org/<plural>/<name>, the value being the resource
 * as JSON; those values go through yamltree (JSON is YAML) and resources.c exactly as a
 * file would, so a bad value is refused with the same message, at "etcd:KEY:line:col".
 * IPAM block affinities are keys of their own,
 * /calico/ipam/v2/host/<node>/ipv4/block/<a.b.c.d-NN>, with a value such as
 * {"state":"confirmed","deleted":false}: each becomes a BlockAffinity resource, built as
 * a node tree around the value's own nodes, so errors in the value keep their position.
 *
 * IPAM blocks are /calico/ipam/v2/assignment/ipv4/block/<a.b.c.d-NN>, the value the
 * block as libcalico-go's model.AllocationBlock JSON (cidr, affinity, allocations,
 * attributes, deleted: the same names as the IPAMBlock CRD's spec): each becomes an
 * IPAMBlock resource with the value as its spec, the value's cidr checked against the
 * key's.
 *
 * A resource whose metadata.name differs from its key's name is refused, naming the key:
 * libcalico-go derives the name from the key, so a key nodes/evil cannot claim to be
 * node2 (and neither can a block value claim another block's cidr).
 *
 * Keys that do not fit the layout are skipped with a notice, as libcalico-go ignores
 * them. Reads nothing: the daemon hands the keys in. */
#include <string.h>

#include "datastore.h"
#include "loader.h"
#include "util.h"

/* The resource kinds this daemon reads, by the plural etcd stores them under. */
static const struct {
        const char *plural;
        const char *kind;
} etcd_kinds[] = {
        { "ippools", "IPPool" },
        { "nodes", "Node" },
        { "felixconfigurations", "FelixConfiguration" },
};

struct value_ctx {
        struct cfg_loader *l;
        const char *kind;            /* resources: the kind the plural stands for */
        const char *node, *cidr;     /* affinities and blocks: from the key */
        const char *name;            /* resources: the name the key gives */
        bool seen;
};

static int on_resource_value(const struct ynode *n, void *userdata)
{
        struct value_ctx *c = userdata;
        const char *kind = n->kind == YN_MAP ? ynode_str(ynode_get(n, "kind")) : NULL;
        int r;

        const struct ynode *meta = n->kind == YN_MAP ? ynode_get(n, "metadata") : NULL;
        const char *name = meta && meta->kind == YN_MAP ? ynode_str(ynode_get(meta, "name")) : NULL;
        const struct ynode *items = n->kind == YN_MAP ? ynode_get(n, "items") : NULL;

        /* A key holds one resource, the one it names: neither a second document nor a
         * list (a nodes/evil key could otherwise carry node2, or a pool, in its items,
         * past the checks below, which see only the root). */
        if (c->seen)
                return yerr(&c->l->y, n, "a second document in one key's value: refused (%s)", c->l->y.file);
        c->seen = true;
        if (items && !ynode_is_null(items))
                return yerr(&c->l->y, items, "a list (items) in one key's value: refused (%s)", c->l->y.file);
        if (kind && !streq(kind, c->kind))
                return yerr(&c->l->y, ynode_get(n, "kind"), "a %s stored where %s resources belong", kind, c->kind);
        if (name && !streq(name, c->name))
                return yerr(&c->l->y, ynode_get(meta, "name"),
                            "metadata.name \"%s\" differs from the key's name \"%s\": refused (%s)", name, c->name,
                            c->l->y.file);
        r = load_resource(n, c->l);
        return r == -ENOMEM ? r : 0;
}

static struct ynode scalar(const char *s)
{
        return (struct ynode){ .kind = YN_SCALAR, .quoted = true, .n = strlen(s), .str = s };
}

/* The affinity as a BlockAffinity of projectcalico.org/v3: node and cidr from the key
 * (no position: messages about them name the key), state and deleted the value's own. */
static int on_affinity_value(const struct ynode *val, void *userdata)
{
        struct value_ctx *c = userdata;
        const struct ynode *state = NULL, *deleted = NULL;
        struct ynode k_api = scalar("apiVersion"), k_kind = scalar("kind"), k_spec = scalar("spec"),
                     k_node = scalar("node"), k_cidr = scalar("cidr"), k_state = scalar("state"),
                     k_deleted = scalar("deleted");
        struct ynode v_api = scalar("projectcalico.org/v3"), v_kind = scalar("BlockAffinity"), v_node = scalar(c->node),
                     v_cidr = scalar(c->cidr), confirmed = scalar("confirmed");
        struct ypair spec_pairs[4], root_pairs[3];
        struct ynode spec = { .kind = YN_MAP, .pairs = spec_pairs }, root = { .kind = YN_MAP, .pairs = root_pairs };
        int r;

        c->seen = true;
        if (val) {
                if (val->kind != YN_MAP)
                        return yerr(&c->l->y, val, "a block affinity value must be an object, not %s",
                                    ynode_kind_name(val));
                state = ynode_get(val, "state");
                deleted = ynode_get(val, "deleted");
                spec.line = val->line;
                spec.col = val->col;
        }
        /* libcalico-go reads an empty value as {} and an empty state as confirmed (data
         * written before affinities had states). */
        if (ynode_is_null(state) || (state->kind == YN_SCALAR && !*state->str))
                state = &confirmed;
        spec_pairs[spec.n++] = (struct ypair){ &k_node, &v_node };
        spec_pairs[spec.n++] = (struct ypair){ &k_cidr, &v_cidr };
        spec_pairs[spec.n++] = (struct ypair){ &k_state, (struct ynode *)state };
        if (deleted)
                spec_pairs[spec.n++] = (struct ypair){ &k_deleted, (struct ynode *)deleted };
        root_pairs[root.n++] = (struct ypair){ &k_api, &v_api };
        root_pairs[root.n++] = (struct ypair){ &k_kind, &v_kind };
        root_pairs[root.n++] = (struct ypair){ &k_spec, &spec };
        r = load_resource(&root, c->l);
        return r == -ENOMEM ? r : 0;
}

static int skip_key(struct cfg_loader *l, const char *why)
{
        l->m->n_skipped++;
        return cfg_notice(l->diags, l->y.file, 0, 0, "skipping this key: %s", why);
}

static int load_resource_key(struct cfg_loader *l, const struct cfg_kv *kv, const char *rest)
{
        const char *slash = strchr(rest, '/');
        struct value_ctx c = { .l = l };
        size_t plural_len;
        int r;

        if (!slash || !slash[1] || strchr(slash + 1, '/'))
                return skip_key(l, "not <plural>/<name>");
        plural_len = (size_t)(slash - rest);
        for (size_t i = 0; i < ELEMENTSOF(etcd_kinds); i++)
                if (strlen(etcd_kinds[i].plural) == plural_len && !strncmp(rest, etcd_kinds[i].plural, plural_len))
                        c.kind = etcd_kinds[i].kind;
        if (!c.kind)
                return skip_key(l, "not a kind this daemon reads");
        c.name = slash + 1;
        r = ydoc_load_buffer(l->y.file, kv->value, kv->value_len, 0, on_resource_value, &c, l->diags);
        if (r >= 0 && !c.seen)
                return cfg_error(l->diags, l->y.file, 0, 0, "the value is empty (a %s resource was expected)", c.kind);
        return r;
}

/* <node>/ipv4/block/<a.b.c.d-NN> (or ipv6, fd00::-122): the node and the block as
 * "a.b.c.d/NN", or NULL with *why when the key does not fit the layout. */
static const char *affinity_key_parts(const char *rest, char node[static 256], char cidr[static CFG_PREFIX_STRLEN + 8])
{
        const char *p1 = strchr(rest, '/'), *p2, *p3, *dash;

        if (!p1 || p1 == rest || !(p2 = strchr(p1 + 1, '/')) || !(p3 = strchr(p2 + 1, '/')) || strchr(p3 + 1, '/'))
                return "not <node>/ipv4/block/<cidr>";
        if ((p2 - p1 != 5 || (strncmp(p1, "/ipv4/", 6) && strncmp(p1, "/ipv6/", 6))) || p3 - p2 != 6 ||
            strncmp(p2, "/block/", 7))
                return "not <node>/ipv4/block/<cidr>";
        if ((size_t)(p1 - rest) >= 256 || strlen(p3 + 1) >= CFG_PREFIX_STRLEN + 8 || !(dash = strchr(p3 + 1, '-')))
                return "no <address>-<length> block at the end";
        snprintf(node, 256, "%.*s", (int)(p1 - rest), rest);
        /* The block's "/" is stored as the first "-" (libcalico-go's layout). */
        snprintf(cidr, CFG_PREFIX_STRLEN + 8, "%.*s/%s", (int)(dash - (p3 + 1)), p3 + 1, dash + 1);
        return NULL;
}

static int load_affinity_key(struct cfg_loader *l, const struct cfg_kv *kv, const char *rest)
{
        struct value_ctx c = { .l = l };
        char node[256], cidr[CFG_PREFIX_STRLEN + 8];
        const char *why = affinity_key_parts(rest, node, cidr);
        int r;

        if (why)
                return skip_key(l, why);
        c.node = node;
        c.cidr = cidr;
        r = ydoc_load_buffer(l->y.file, kv->value, kv->value_len, 0, on_affinity_value, &c, l->diags);
        if (r >= 0 && !c.seen)
                r = on_affinity_value(NULL, &c);
        return r;
}

/* The block value as an IPAMBlock of crd.projectcalico.org/v1 with the value as spec. */
static int on_block_value(const struct ynode *val, void *userdata)
{
        struct value_ctx *c = userdata;
        struct ynode k_api = scalar("apiVersion"), k_kind = scalar("kind"), k_spec = scalar("spec"),
                     v_api = scalar("crd.projectcalico.org/v1"), v_kind = scalar("IPAMBlock");
        struct ypair root_pairs[3] = { { &k_api, &v_api }, { &k_kind, &v_kind }, { &k_spec, (struct ynode *)val } };
        struct ynode root = { .kind = YN_MAP, .pairs = root_pairs, .n = 3, .line = val->line, .col = val->col };
        const char *cidr;
        int r;

        c->seen = true;
        if (val->kind != YN_MAP)
                return yerr(&c->l->y, val, "a block value must be an object, not %s", ynode_kind_name(val));
        cidr = ynode_str(ynode_get(val, "cidr"));
        if (cidr && !streq(cidr, c->cidr))
                return yerr(&c->l->y, ynode_get(val, "cidr"), "cidr %s differs from the key's block %s: refused (%s)",
                            cidr, c->cidr, c->l->y.file);
        r = load_resource(&root, c->l);
        return r == -ENOMEM ? r : 0;
}

/* ipv4/block/<a.b.c.d-NN> (or ipv6/block/<fd00::-122>): the block as "a.b.c.d/NN", or
 * NULL with *why when the key does not fit the layout. */
static const char *block_key_parts(const char *rest, char cidr[static CFG_PREFIX_STRLEN + 8])
{
        const char *b, *dash;

        if (strncmp(rest, "ipv4/block/", 11) && strncmp(rest, "ipv6/block/", 11))
                return "not ipv4/block/<cidr>";
        b = rest + 11;
        if (!*b || strchr(b, '/') || strlen(b) >= CFG_PREFIX_STRLEN + 8 || !(dash = strrchr(b, '-')))
                return "no <address>-<length> block at the end";
        /* The "/" is stored as "-" (BlockKey); IPv6 addresses hold no "-". */
        snprintf(cidr, CFG_PREFIX_STRLEN + 8, "%.*s/%s", (int)(dash - b), b, dash + 1);
        return NULL;
}

static int load_block_key(struct cfg_loader *l, const struct cfg_kv *kv, const char *rest)
{
        struct value_ctx c = { .l = l };
        char cidr[CFG_PREFIX_STRLEN + 8];
        const char *why = block_key_parts(rest, cidr);
        int r;

        if (why)
                return skip_key(l, why);
        c.cidr = cidr;
        r = ydoc_load_buffer(l->y.file, kv->value, kv->value_len, 0, on_block_value, &c, l->diags);
        if (r >= 0 && !c.seen)
                return cfg_error(l->diags, l->y.file, 0, 0, "the value is empty (an IPAM block was expected)");
        return r;
}

int etcd_ipam_key_cidr(const char *key, struct cfg_prefix *ret)
{
        char node[256], cidr[CFG_PREFIX_STRLEN + 8];
        const char *why;

        if (!strncmp(key, CFG_ETCD_BLOCK_PREFIX, strlen(CFG_ETCD_BLOCK_PREFIX)))
                why = block_key_parts(key + strlen(CFG_ETCD_BLOCK_PREFIX), cidr);
        else if (!strncmp(key, CFG_ETCD_AFFINITY_PREFIX, strlen(CFG_ETCD_AFFINITY_PREFIX)))
                why = affinity_key_parts(key + strlen(CFG_ETCD_AFFINITY_PREFIX), node, cidr);
        else
                return 0;
        /* Only a canonical prefix: anything else is the full load's to judge. */
        return !why && cfg_prefix_parse(cidr, true, ret) == 0;
}

static int load_etcd_kv(struct cfg_loader *l, const struct cfg_kv *kv)
{
        if (!strncmp(kv->key, CFG_ETCD_BLOCK_PREFIX, strlen(CFG_ETCD_BLOCK_PREFIX)))
                return load_block_key(l, kv, kv->key + strlen(CFG_ETCD_BLOCK_PREFIX));
        if (!strncmp(kv->key, CFG_ETCD_RESOURCES_PREFIX, strlen(CFG_ETCD_RESOURCES_PREFIX)))
                return load_resource_key(l, kv, kv->key + strlen(CFG_ETCD_RESOURCES_PREFIX));
        if (!strncmp(kv->key, CFG_ETCD_AFFINITY_PREFIX, strlen(CFG_ETCD_AFFINITY_PREFIX)))
                return load_affinity_key(l, kv, kv->key + strlen(CFG_ETCD_AFFINITY_PREFIX));
        return skip_key(l, "outside the Calico prefixes this daemon reads");
}

int cfg_loader_add_kv(struct cfg_loader *l, const struct cfg_kv *kv)
{
        size_t ipam_before = l->m->n_ipam_resources;
        char *name = NULL;
        int r;

        if (l->failed)
                return l->failed;
        /* Each key stands for a file in diagnostics: "etcd:/calico/...". */
        if (asprintf(&name, "etcd:%s", kv->key) < 0)
                return l->failed = -ENOMEM;
        /* Named on demand, the loader reads its diagnostics' name from here: kept until
         * the key is read. */
        r = loader_add_file(l, name, CFG_MAX_KEYS);
        if (r >= 0 && kv->record) {
                /* Made by cfg_kv_compact() in this process: damaged only by a bug. */
                if ((r = loader_replay_record(l, kv)) == -EINVAL)
                        r = cfg_error(l->diags, l->y.file, 0, 0, "the cached record of this key is damaged");
        } else if (r >= 0)
                r = load_etcd_kv(l, kv);
        /* The in-place updates need to know which keys the IPAM count holds. */
        if (r >= 0 && l->indexing && (r = GROW(l->file_ipam, l->cap_file_ipam, l->m->n_files)) >= 0)
                l->file_ipam[l->file] = l->m->n_ipam_resources > ipam_before;
        if (l->m->namer)
                l->y.file = NULL; /* name goes */
        free(name);
        if (r == -ENOMEM)
                return l->failed = r;
        return 0;
}

int cfg_model_from_kvs(struct cfg_settings *settings, const struct cfg_kv *kvs, size_t n, struct cfg_model **ret,
                       struct cfg_diags *diags)
{
        struct cfg_loader *l;
        int r;

        if ((r = cfg_loader_new(settings, diags, &l)) < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++)
                r = cfg_loader_add_kv(l, &kvs[i]);
        return cfg_loader_finish(l, ret);
}
