/* Text that leaves the program: cut on UTF-8 character boundaries, and made safe for
 * a terminal or a JSON document. Names come from operators, the datastore and the
 * kernel (a device name is any bytes); what we print must stay valid UTF-8 and must
 * not move the cursor or clear the screen. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Length of the well-formed UTF-8 character at s (1-4), or 0 when the bytes there
 * are not one (a stray continuation byte, an overlong form, a surrogate, a cut
 * sequence). avail: bytes readable at s. */
size_t text_utf8_char(const char *s, size_t avail);
/* The longest prefix of s[0..len) of at most max bytes that does not end inside a
 * character: the length to give "%.*s" for an excerpt. */
size_t text_utf8_prefix(const char *s, size_t len, size_t max);
/* Drop an incomplete character at the end of the string s: after snprintf cut it. */
void text_utf8_trim(char *s);
/* Write s for a terminal, as systemctl and ip do: control characters (C0, DEL, C1)
 * as \n, \t, \r or \xNN, bytes that are not UTF-8 as \xNN, the rest as it is. */
void text_fputs_escaped(FILE *f, const char *s);
/* printf to f, escaped as text_fputs_escaped() does, then a newline. */
__attribute__((format(printf, 2, 3))) void text_line(FILE *f, const char *fmt, ...);
/* url (len bytes) for a message: a password in its user part ("scheme://user:pass@")
 * becomes "***" (and a user part with no password is left as it is); the rest is kept.
 * Always NUL-terminated, cut to size. */
void text_url_mask(const char *url, size_t len, char *buf, size_t size);
