/* --check reports. The text form is for the operator at a terminal before cutover; the
 * JSON form carries the same facts for fleet tooling (one document, stable keys).
 * Never decides anything: it prints the plan and the findings as they are. */
#include "report.h"

#include <arpa/inet.h>
#include <string.h>

#include "text.h"
#include "util.h"

int report_check_status(const struct report_source *src)
{
        if (src->error || !src->model || !src->host || !src->plan)
                return 2;
        return src->plan->n_blocking ? 1 : 0;
}

void report_diags(FILE *f, const struct cfg_diags *d, bool notices)
{
        char buf[1024];

        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++) {
                if (d->v[i].severity == CFG_NOTICE && !notices)
                        continue;
                cfg_diag_fmt(&d->v[i], buf, sizeof(buf));
                text_line(f, "%s: %s", d->v[i].severity == CFG_ERROR ? "error" : "notice", buf);
        }
        if (d->n_dropped)
                fprintf(f, "(%zu more diagnostics not shown)\n", d->n_dropped);
}

/* " (a/len, b/len)" or " (no address)", cut to size. */
static const char *uplink_addrs_text(const struct host_snapshot *h, int uplink, char *buf, size_t size)
{
        char a[CFG_PREFIX_STRLEN];
        size_t len = 0;

        buf[0] = 0;
        for (size_t i = 0; i < h->n_addrs && len < size; i++)
                if (h->addrs[i].ifindex == uplink) {
                        cfg_prefix_fmt(&h->addrs[i].addr, a, sizeof(a));
                        len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? ", " : " (", a);
                }
        if (len < size)
                snprintf(buf + len, size - len, "%s", len ? ")" : " (no address)");
        return buf;
}

static bool source_is_files(const struct report_source *src)
{
        return !src->source || streq(src->source, "files");
}

static void source_text(FILE *f, const struct report_source *src)
{
        if (source_is_files(src)) {
                fprintf(f, "source: files\n");
                return;
        }
        fprintf(f, "source: ");
        text_fputs_escaped(f, src->source);
        if (src->endpoint) {
                fputc(' ', f);
                text_fputs_escaped(f, src->endpoint);
        }
        /* A Kubernetes API server's version is its resourceVersion (etcd's revision
         * underneath, but that is not what kubectl shows). */
        if (src->revision > 0)
                fprintf(f, " %s %lld", streq(src->source, "kubernetes") ? "resourceVersion" : "revision",
                        (long long)src->revision);
        fputc('\n', f);
}

void report_check_text(FILE *f, const struct report_source *src)
{
        const struct plan *p = src->plan;
        const struct host_link *l;
        char buf[512];
        int status = report_check_status(src);

        text_line(f, "node: %s", src->node ? src->node : "?");
        source_text(f, src);
        report_diags(f, src->diags, true);
        if (status == 2) {
                text_line(f, "cannot evaluate: %s", src->error ? src->error : "the configuration is invalid");
                return;
        }
        l = host_link_by_index(src->host, p->uplink);
        if (l)
                text_line(f, "uplink: %s%s, mtu %u, proxy_arp %d", l->name,
                          uplink_addrs_text(src->host, p->uplink, buf, sizeof(buf)), l->mtu, l->proxy_arp);
        else
                text_line(f, "uplink: not found (%s)", p->uplink_error);
        fprintf(f, "underlay mode: %s\n", p->underlay ? "on" : "off");
        fprintf(f, "routes: table %u, consulted for underlay pool destinations after main (rules: pref %u lookup "
                   "main suppress_prefixlength blockSize-1, pref %u lookup %u)\n",
                src->model->settings.route_table, PLAN_RULE_PRIORITY_MAIN, PLAN_RULE_PRIORITY_OURS,
                src->model->settings.route_table);
        fprintf(f, "pools:\n");
        for (size_t i = 0; i < p->n_pools; i++) {
                const struct cfg_pool *pool = &src->model->pools[p->pools[i].pool];
                char cidr[CFG_PREFIX_STRLEN];

                cfg_prefix_fmt(&pool->cidr, cidr, sizeof(cidr));
                text_line(f, "  %-24s %-20s %-12s %-8s %s", pool->name, cidr,
                          p->pools[i].applies ? "applies" : "not-applying", p->pools[i].underlay ? "underlay" : "overlay",
                          p->pools[i].reason);
        }
        fprintf(f, "changes: %zu\n", p->n_actions);
        for (size_t i = 0; i < p->n_actions; i++) {
                host_change_fmt(&p->actions[i], buf, sizeof(buf));
                text_line(f, "  %s", buf);
        }
        fprintf(f, "findings: %zu\n", p->n_findings);
        for (size_t i = 0; i < p->n_findings; i++)
                text_line(f, "  %-8s %s: %s", plan_severity_name(p->findings[i].severity), p->findings[i].code,
                          p->findings[i].message);
        if (p->n_blocking)
                fprintf(f, "ready: no (%zu blocking problem%s)\n", p->n_blocking, p->n_blocking == 1 ? "" : "s");
        else
                fprintf(f, "ready: yes\n");
}

/* ---- JSON ---- */

/* A JSON string, always valid UTF-8 (RFC 8259 §8.1): a byte that is not part of a
 * well-formed character (a device name is any bytes) becomes U+FFFD. */
static void json_str(FILE *f, const char *s)
{
        size_t len;

        s = s ? s : "";
        len = strlen(s);
        fputc('"', f);
        for (size_t i = 0; i < len;) {
                unsigned char c = (unsigned char)s[i];
                size_t n = text_utf8_char(s + i, len - i);

                if (c == '"' || c == '\\')
                        fprintf(f, "\\%c", c);
                else if (c == '\n')
                        fputs("\\n", f);
                else if (c < 0x20 || c == 0x7f)
                        fprintf(f, "\\u%04x", c);
                else if (n == 0)
                        fputs("\\ufffd", f);
                else
                        fwrite(s + i, 1, n, f);
                i += n ? n : 1;
        }
        fputc('"', f);
}

static void json_prefix(FILE *f, const struct cfg_prefix *p, bool with_len)
{
        char buf[CFG_PREFIX_STRLEN];

        if (with_len)
                cfg_prefix_fmt(p, buf, sizeof(buf));
        else
                cfg_addr_fmt(p, buf, sizeof(buf));
        json_str(f, buf);
}

static void json_action(FILE *f, const struct host_change *a)
{
        fprintf(f, "{\"action\":");
        json_str(f, host_change_kind_name(a->kind));
        switch (a->kind) {
        case CHANGE_ADD_ROUTE:
        case CHANGE_DEL_ROUTE:
                fprintf(f, ",\"dst\":");
                json_prefix(f, &a->route.dst, true);
                fprintf(f, ",\"type\":");
                json_str(f, plan_route_type_name(a->route.type));
                fprintf(f, ",\"gateway\":");
                if (a->route.gateway.family)
                        json_prefix(f, &a->route.gateway, false);
                else
                        fputs("null", f);
                fprintf(f, ",\"dev\":");
                if (a->dev[0])
                        json_str(f, a->dev);
                else
                        fputs("null", f);
                fprintf(f, ",\"table\":%u,\"metric\":%u,\"protocol\":%u", a->route.table, a->route.priority,
                        a->route.protocol);
                if (a->kind == CHANGE_ADD_ROUTE)
                        fprintf(f, ",\"replace\":%s", a->replace ? "true" : "false");
                break;
        case CHANGE_ADD_PROXY:
        case CHANGE_DEL_PROXY:
                fprintf(f, ",\"dst\":");
                json_prefix(f, &a->route.dst, true);
                fprintf(f, ",\"type\":\"proxy\",\"gateway\":null,\"dev\":");
                json_str(f, a->dev);
                fprintf(f, ",\"protocol\":%u", a->route.protocol);
                break;
        case CHANGE_SET_PROXY_NDP:
        case CHANGE_SET_PROXY_DELAY6:
        case CHANGE_SET_PROXY_ARP:
        case CHANGE_SET_PROXY_DELAY:
                /* Every change carries the documented keys (calico-underlayd(8)): null
                 * where they do not apply, so tools can read c["dst"] of any change. */
                fprintf(f, ",\"dst\":null,\"type\":null,\"gateway\":null,\"dev\":");
                json_str(f, a->dev);
                fprintf(f, ",\"value\":%lld,\"restore\":%s", (long long)a->value, a->restore ? "true" : "false");
                break;
        case CHANGE_REMOVE_TUNNEL:
                fprintf(f, ",\"dst\":null,\"type\":null,\"gateway\":null,\"dev\":");
                json_str(f, a->dev);
                fprintf(f, ",\"kind\":");
                json_str(f, a->tunnel->kind);
                break;
        case CHANGE_ADD_RULE:
        case CHANGE_DEL_RULE:
                fprintf(f, ",\"dst\":");
                json_prefix(f, &a->rule->dst, true);
                fprintf(f, ",\"type\":null,\"gateway\":null,\"dev\":null,\"table\":%u,\"priority\":%u,"
                           "\"suppress_prefixlength\":",
                        a->rule->table, a->rule->priority);
                if (a->rule->suppress_prefixlen >= 0)
                        fprintf(f, "%d", a->rule->suppress_prefixlen);
                else
                        fputs("null", f);
                fprintf(f, ",\"protocol\":%u", a->rule->protocol);
                break;
        }
        fputc('}', f);
}

static void json_diags(FILE *f, const struct cfg_diags *d)
{
        char buf[1024];
        bool first = true;

        fprintf(f, "\"errors\":[");
        for (size_t i = 0; d && i < d->n; i++) {
                if (d->v[i].severity != CFG_ERROR)
                        continue;
                cfg_diag_fmt(&d->v[i], buf, sizeof(buf));
                fputs(first ? "" : ",", f);
                json_str(f, buf);
                first = false;
        }
        fputs("],\"notices\":[", f);
        first = true;
        for (size_t i = 0; d && i < d->n; i++) {
                if (d->v[i].severity != CFG_NOTICE)
                        continue;
                cfg_diag_fmt(&d->v[i], buf, sizeof(buf));
                fputs(first ? "" : ",", f);
                json_str(f, buf);
                first = false;
        }
        fputc(']', f);
}

static void json_uplink(FILE *f, const struct host_snapshot *h, const struct plan *p)
{
        const struct host_link *l = h && p ? host_link_by_index(h, p->uplink) : NULL;
        bool first = true;

        if (!l) {
                fputs("\"uplink\":null", f);
                return;
        }
        fputs("\"uplink\":{\"name\":", f);
        json_str(f, l->name);
        fprintf(f, ",\"mtu\":%u,\"proxy_arp\":%d,\"addresses\":[", l->mtu, l->proxy_arp);
        for (size_t i = 0; i < h->n_addrs; i++)
                if (h->addrs[i].ifindex == p->uplink) {
                        fputs(first ? "" : ",", f);
                        json_prefix(f, &h->addrs[i].addr, true);
                        first = false;
                }
        fputs("]}", f);
}

static void json_pools(FILE *f, const struct report_source *src)
{
        const struct plan *p = src->plan;

        fputs("\"pools\":[", f);
        for (size_t i = 0; p && i < p->n_pools; i++) {
                const struct cfg_pool *pool = &src->model->pools[p->pools[i].pool];

                fputs(i ? ",{\"name\":" : "{\"name\":", f);
                json_str(f, pool->name);
                fputs(",\"cidr\":", f);
                json_prefix(f, &pool->cidr, true);
                fprintf(f, ",\"applies\":%s,\"underlay\":%s,\"disabled\":%s,\"ipipMode\":\"%s\",\"vxlanMode\":\"%s\","
                           "\"reason\":",
                        p->pools[i].applies ? "true" : "false", p->pools[i].underlay ? "true" : "false",
                        pool->disabled ? "true" : "false", cfg_encap_name(pool->ipip), cfg_encap_name(pool->vxlan));
                json_str(f, p->pools[i].reason);
                fputc('}', f);
        }
        fputc(']', f);
}

void report_check_json(FILE *f, const struct report_source *src)
{
        const struct plan *p = src->plan;
        int status = report_check_status(src);

        fputs("{\"node\":", f);
        json_str(f, src->node);
        fputs(",\"source\":{\"type\":", f);
        json_str(f, source_is_files(src) ? "files" : src->source);
        if (!source_is_files(src)) {
                fputs(",\"endpoint\":", f);
                if (src->endpoint)
                        json_str(f, src->endpoint);
                else
                        fputs("null", f);
                if (src->revision > 0)
                        fprintf(f, ",\"revision\":%lld", (long long)src->revision);
                else
                        fputs(",\"revision\":null", f);
        }
        fputs("},", f);
        json_uplink(f, status == 2 ? NULL : src->host, src->plan);
        fprintf(f, ",\"underlay\":%s,", p && status != 2 && p->underlay ? "true" : "false");
        if (status != 2)
                fprintf(f, "\"routeTable\":%u,\"rulePriorities\":[%u,%u],", src->model->settings.route_table,
                        PLAN_RULE_PRIORITY_MAIN, PLAN_RULE_PRIORITY_OURS);
        json_pools(f, status == 2 ? &(struct report_source){} : src);
        fputs(",\"changes\":[", f);
        for (size_t i = 0; status != 2 && i < p->n_actions; i++) {
                fputs(i ? "," : "", f);
                json_action(f, &p->actions[i]);
        }
        fputs("],\"findings\":[", f);
        for (size_t i = 0; status != 2 && i < p->n_findings; i++) {
                fputs(i ? ",{\"severity\":" : "{\"severity\":", f);
                json_str(f, plan_severity_name(p->findings[i].severity));
                fputs(",\"code\":", f);
                json_str(f, p->findings[i].code);
                fputs(",\"message\":", f);
                json_str(f, p->findings[i].message);
                fputc('}', f);
        }
        fputs("],", f);
        json_diags(f, src->diags);
        fprintf(f, ",\"ready\":%s,\"status\":%d", status == 0 ? "true" : "false", status);
        if (src->error) {
                fputs(",\"error\":", f);
                json_str(f, src->error);
        }
        fputs("}\n", f);
}
