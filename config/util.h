/* Small shared helpers: cleanup attributes, ownership hand-off, array sizes, the
 * string hash, the monotonic clock.
 *
 * Every library in the tree includes this; it must stay header-only and free of
 * anything that does I/O. */
#pragma once

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _warn_unused_ __attribute__((warn_unused_result))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

/* Hand a pointer over to the caller: the cleanup handler then sees NULL. */
#define TAKE_PTR(p)                         \
        ({                                  \
                __typeof__(p) _p_ = (p);    \
                (p) = NULL;                 \
                _p_;                        \
        })

static inline void freep(void *p)
{
        free(*(void **)p);
}

static inline void closep(int *fd)
{
        if (*fd >= 0)
                close(*fd);
}

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}

static inline int streq_ptr(const char *a, const char *b)
{
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

#define streq(a, b) (strcmp((a), (b)) == 0)

/* CLOCK_MONOTONIC in microseconds (timings; the event loop has sd_event_now()). */
static inline uint64_t now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* FNV-1a (64 bit) of a string: the hash of every name-keyed table here (nodes by
 * name, etcd keys). */
static inline uint64_t str_hash(const char *s)
{
        uint64_t h = 14695981039346656037ULL;

        for (; *s; s++)
                h = (h ^ (uint8_t)*s) * 1099511628211ULL;
        return h;
}

/* Grow *array (of *cap elements of size sz) so that it holds at least need elements.
 * Doubling keeps appends amortised O(1). Returns -ENOMEM and leaves the array alone. */
static inline int grow_array(void **array, size_t *cap, size_t need, size_t sz)
{
        size_t n;
        void *p;

        if (need <= *cap)
                return 0;
        n = *cap ? *cap : 8;
        while (n < need) {
                if (n > ((size_t)-1) / 2 / sz)
                        return -ENOMEM;
                n *= 2;
        }
        p = realloc(*array, n * sz);
        if (!p)
                return -ENOMEM;
        *array = p;
        *cap = n;
        return 0;
}

#define GROW(array, cap, need) grow_array((void **)&(array), &(cap), (need), sizeof(*(array)))
