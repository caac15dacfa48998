/* UTF-8 boundaries and terminal escapes (text.h). Owns no state; knows nothing of
 * what the text says. Used wherever a string is cut to a fixed size (diagnostics, pool
 * reasons, selector excerpts, log lines) and by the text and JSON reports. */
#include "text.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool is_cont(unsigned char c)
{
        return (c & 0xc0) == 0x80;
}

size_t text_utf8_char(const char *str, size_t avail)
{
        const unsigned char *s = (const unsigned char *)str;
        size_t n;
        uint32_t cp;

        if (avail == 0)
                return 0;
        if (s[0] < 0x80)
                return 1;
        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                n = 2, cp = s[0] & 0x1f;
        else if (s[0] >= 0xe0 && s[0] <= 0xef)
                n = 3, cp = s[0] & 0x0f;
        else if (s[0] >= 0xf0 && s[0] <= 0xf4)
                n = 4, cp = s[0] & 0x07;
        else
                return 0;
        if (avail < n)
                return 0;
        for (size_t i = 1; i < n; i++) {
                if (!is_cont(s[i]))
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
        if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
                return 0;
        return n;
}

size_t text_utf8_prefix(const char *s, size_t len, size_t max)
{
        size_t n;

        if (len <= max)
                return len;
        n = max;
        /* Back over the continuation bytes of a character the cut goes through. */
        while (n > 0 && is_cont((unsigned char)s[n]))
                n--;
        return n;
}

void text_utf8_trim(char *s)
{
        size_t len = strlen(s), start = len;

        /* The last character starts at most 3 bytes from the end. */
        while (start > 0 && len - start < 4 && is_cont((unsigned char)s[start - 1]))
                start--;
        if (start > 0 && (unsigned char)s[start - 1] >= 0xc0) {
                start--;
                if (text_utf8_char(s + start, len - start) != len - start)
                        s[start] = 0;
        }
}

void text_fputs_escaped(FILE *f, const char *s)
{
        size_t len = strlen(s);

        for (size_t i = 0; i < len;) {
                unsigned char c = (unsigned char)s[i];
                size_t n = text_utf8_char(s + i, len - i);
                bool c1 = n == 2 && c == 0xc2 && (unsigned char)s[i + 1] < 0xa0; /* U+0080-U+009F */

                if (n == 1 && c >= 0x20 && c != 0x7f)
                        fputc(c, f);
                else if (c == '\n')
                        fputs("\\n", f);
                else if (c == '\t')
                        fputs("\\t", f);
                else if (c == '\r')
                        fputs("\\r", f);
                else if (n == 0 || n == 1 || c1) {
                        for (size_t k = 0; k < (n ? n : 1); k++)
                                fprintf(f, "\\x%02x", (unsigned char)s[i + k]);
                } else
                        fwrite(s + i, 1, n, f);
                i += n ? n : 1;
        }
}

void text_line(FILE *f, const char *fmt, ...)
{
        va_list ap;
        char *s;

        va_start(ap, fmt);
        if (vasprintf(&s, fmt, ap) < 0)
                s = NULL;
        va_end(ap);
        if (s)
                text_fputs_escaped(f, s);
        fputc('\n', f);
        free(s);
}

void text_url_mask(const char *url, size_t len, char *buf, size_t size)
{
        const char *scheme = memmem(url, len, "://", 3);
        size_t start = scheme ? (size_t)(scheme - url) + 3 : 0, auth_end = start, at = SIZE_MAX, colon = SIZE_MAX;

        if (!size)
                return;
        /* The authority ends at the first '/', '?' or '#'; its user part at the last '@'. */
        while (auth_end < len && !strchr("/?#", url[auth_end]))
                auth_end++;
        for (size_t i = start; i < auth_end; i++)
                if (url[i] == '@')
                        at = i;
        for (size_t i = start; at != SIZE_MAX && i < at && colon == SIZE_MAX; i++)
                if (url[i] == ':')
                        colon = i;
        if (at == SIZE_MAX || colon == SIZE_MAX) {
                snprintf(buf, size, "%.*s", (int)len, url);
                return;
        }
        snprintf(buf, size, "%.*s***%.*s", (int)(colon + 1), url, (int)(len - at), url + at);
}
