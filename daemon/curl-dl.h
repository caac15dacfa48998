/* libcurl loaded on first use (curl-dl.c): the functions the HTTP transport calls, as
 * pointers resolved from libcurl.so.4. Only http.c includes this.
 *
 * curl/curl.h still gives the types and constants. Each pointer's type is taken from
 * curl's own prototype (__typeof__ of the function name, which is not a call, so GCC's
 * type-checking macros for curl_easy_setopt() and curl_easy_getinfo() do not expand
 * and nothing references the symbol), so the table cannot disagree with the headers.
 * Call through the table, e.g. cu_curl->easy_setopt(h, CURLOPT_URL, url);
 * the curl_* names themselves are never linked. */
#pragma once

#include <curl/curl.h>
#include <stddef.h>

struct cu_curl {
        __typeof__(curl_global_init) *global_init;
        __typeof__(curl_global_cleanup) *global_cleanup;
        __typeof__(curl_easy_init) *easy_init;
        __typeof__(curl_easy_cleanup) *easy_cleanup;
        __typeof__(curl_easy_setopt) *easy_setopt;
        __typeof__(curl_easy_getinfo) *easy_getinfo;
        __typeof__(curl_easy_strerror) *easy_strerror;
        __typeof__(curl_multi_init) *multi_init;
        __typeof__(curl_multi_cleanup) *multi_cleanup;
        __typeof__(curl_multi_add_handle) *multi_add_handle;
        __typeof__(curl_multi_remove_handle) *multi_remove_handle;
        __typeof__(curl_multi_setopt) *multi_setopt;
        __typeof__(curl_multi_socket_action) *multi_socket_action;
        __typeof__(curl_multi_assign) *multi_assign;
        __typeof__(curl_multi_info_read) *multi_info_read;
        __typeof__(curl_slist_append) *slist_append;
        __typeof__(curl_slist_free_all) *slist_free_all;
};

/* The table; NULL until cu_curl_load() succeeded. */
extern const struct cu_curl *cu_curl;

/* Load libcurl.so.4 and resolve the table, once: after a success, later calls return
 * 0 at once. On failure (no library, a missing symbol, a libcurl older than the one
 * built against), -ELIBACC with why saying so ("etcd datastore needs libcurl
 * (libcurl.so.4): <dlerror text>"), nothing kept, and the next call tries again.
 * Not thread-safe: the daemon has one thread. */
int cu_curl_load(char *why, size_t why_size);
/* Close libcurl (nothing may use it, or anything from it, any more; cu_curl is NULL
 * after): the next cu_curl_load() opens it again. Under AddressSanitizer the library
 * stays mapped (CU_CURL_UNLOAD_UNMAPS is 0): LeakSanitizer's scan at exit walks the
 * thread's TLS vector, which still names the closed libraries' TLS blocks, and dies on
 * them ("Tracer caught signal 11", gcc 12's libsanitizer; seen on about 2% of --once
 * runs, always for the same inputs). */
#if defined(__SANITIZE_ADDRESS__)
#define CU_CURL_UNLOAD_UNMAPS 0
#else
#define CU_CURL_UNLOAD_UNMAPS 1
#endif
void cu_curl_unload(void);
