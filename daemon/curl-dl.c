/* libcurl, loaded with dlopen() the first time the etcd datastore is used (curl-dl.h).
 *
 * Why: most nodes read files and never speak HTTP, yet a binary linked to libcurl maps
 * it and the 28 libraries it needs (OpenSSL, GnuTLS, Kerberos, LDAP, SSH, nghttp2, ...)
 * at every start: on Debian 12, `--help` took 2.5-3 times as long and 9.3 MB of RSS
 * instead of 3.3, every --check on every node paid it, and a daemon reading files kept
 * the mappings for ever. So the binary has no DT_NEEDED on libcurl (meson compiles
 * against curl's headers only) and only etcd.c, through this table, loads it.
 *
 * Owns: the library handle and the table. The handle is closed only when the caller says
 * nothing uses libcurl any more (cu_curl_unload(): a one-shot run once its list is read,
 * after curl_global_cleanup()): its 28 libraries are then unmapped, 3.4 MB of the RSS
 * of a --once from etcd on Debian 12 (libcrypto stays: OpenSSL pins itself; the exit
 * handlers of the others run as they go, as glibc runs a library's atexit() handlers at
 * its dlclose()). A later load opens it again. Must never: log (the caller reports why),
 * or load anything before the etcd client asks. */
#include "curl-dl.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define CU_CURL_SONAME "libcurl.so.4"
#define CU_CURL_NEEDED "etcd datastore needs libcurl (" CU_CURL_SONAME "): %s"
/* etcd.c sets CURLOPT_PROTOCOLS_STR (7.85.0); meson.build asks the same of the headers,
 * and this holds the library found at run time to it. */
#define CU_CURL_MIN_VERSION 0x075500
#define CU_CURL_MIN_VERSION_STR "7.85.0"

#if LIBCURL_VERSION_NUM < CU_CURL_MIN_VERSION
#error "libcurl headers older than 7.85.0"
#endif

static struct cu_curl table;
static void *loaded;
const struct cu_curl *cu_curl;

/* The symbol behind each slot: the field's name with curl_ in front, so they cannot
 * disagree. */
#define SYM(field) { "curl_" #field, offsetof(struct cu_curl, field) }
static const struct {
        const char *name;
        size_t offset;
} syms[] = {
        SYM(global_init),   SYM(global_cleanup),
        SYM(easy_init),     SYM(easy_cleanup),   SYM(easy_setopt),      SYM(easy_getinfo),
        SYM(easy_strerror),
        SYM(multi_init),    SYM(multi_cleanup),  SYM(multi_add_handle), SYM(multi_remove_handle),
        SYM(multi_setopt),  SYM(multi_assign),   SYM(multi_info_read),  SYM(multi_socket_action),
        SYM(slist_append),  SYM(slist_free_all),
};
#undef SYM

/* Every slot is resolved, and a slot holds what dlsym() returns (POSIX makes function
 * pointers and void * interchangeable). */
_Static_assert(ELEMENTSOF(syms) * sizeof(void *) == sizeof(struct cu_curl), "a slot of struct cu_curl is not resolved");
_Static_assert(sizeof(void (*)(void)) == sizeof(void *), "function pointers differ from void *");

static int load_failed(void *handle, char *why, size_t why_size, const char *fmt, ...) _printf_(4, 5);

static int load_failed(void *handle, char *why, size_t why_size, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, why_size, fmt, ap);
        va_end(ap);
        if (handle)
                dlclose(handle);
        return -ELIBACC;
}

/* dlsym() with dlerror() cleared first, so that a NULL is explained by dl_error(). */
static void *sym(void *handle, const char *name)
{
        dlerror();
        return dlsym(handle, name);
}

static const char *dl_error(const char *fallback)
{
        const char *e = dlerror();

        return e ? e : fallback;
}

int cu_curl_load(char *why, size_t why_size)
{
        struct cu_curl t;
        __typeof__(curl_version_info) *version_info;
        const curl_version_info_data *v;
        void *handle, *p;

        if (cu_curl)
                return 0;
        /* RTLD_NOW: a library that cannot be bound fails here, not in the middle of a
         * request. RTLD_LOCAL: its symbols stay out of the global scope. */
        handle = dlopen(CU_CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
        if (!handle)
                return load_failed(NULL, why, why_size, CU_CURL_NEEDED, dl_error("cannot load it"));
        for (size_t i = 0; i < ELEMENTSOF(syms); i++) {
                if (!(p = sym(handle, syms[i].name)))
                        return load_failed(handle, why, why_size, CU_CURL_NEEDED, dl_error(syms[i].name));
                memcpy((char *)&t + syms[i].offset, &p, sizeof(p));
        }
        if (!(p = sym(handle, "curl_version_info")))
                return load_failed(handle, why, why_size, CU_CURL_NEEDED, dl_error("curl_version_info"));
        memcpy(&version_info, &p, sizeof(p));
        v = version_info(CURLVERSION_NOW);
        if (!v || v->version_num < CU_CURL_MIN_VERSION)
                return load_failed(handle, why, why_size,
                                   "etcd datastore needs libcurl " CU_CURL_MIN_VERSION_STR " or later (" CU_CURL_SONAME
                                   " is %s)",
                                   v && v->version ? v->version : "of an unknown version");
        table = t;
        cu_curl = &table;
        loaded = handle;
        return 0;
}

void cu_curl_unload(void)
{
        if (!loaded)
                return;
        cu_curl = NULL;
        if (CU_CURL_UNLOAD_UNMAPS)
                dlclose(loaded);
        loaded = NULL;
}
