/* etcd's gRPC API, the few messages the list needs, in protobuf's wire format: the
 * RangeRequest and AuthenticateRequest the client sends, and the RangeResponse and
 * AuthenticateResponse it reads, each in gRPC's length-prefixed framing. Pure (no I/O,
 * no logging, no library): the etcd client (etcd.c) feeds it what HTTP/2 brought, the
 * unit tests and the fuzz target (tests/fuzz-etcd.c) feed it anything. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "etcd-parse.h"

/* The methods, as gRPC's HTTP/2 paths. */
#define ETCD_GRPC_RANGE "/etcdserverpb.KV/Range"
#define ETCD_GRPC_AUTH "/etcdserverpb.Auth/Authenticate"
/* The length prefix: a compression flag and a 32-bit big-endian length. */
#define ETCD_GRPC_PREFIX 5

/* A RangeRequest for [key, end) of at most limit keys (0: no limit) at revision (0:
 * the newest), framed: a new buffer of *ret_len bytes. -ENOMEM. */
int etcd_grpc_range_request(const char *key, size_t key_len, const char *end, size_t end_len, int64_t limit,
                            int64_t revision, char **ret, size_t *ret_len);
/* An AuthenticateRequest, framed. -ENOMEM. */
int etcd_grpc_auth_request(const char *name, const char *password, char **ret, size_t *ret_len);

/* A unary answer's body: exactly one uncompressed message of at most ETCD_MAX_BODY
 * bytes, read as a RangeResponse into the same values as etcd_parse_range() (the same
 * promises: a positive revision, keys non-empty without NUL, values NUL-terminated
 * within ETCD_MAX_VALUE; a missing value is an empty one). Unknown fields are skipped;
 * a known field of the wrong wire type, a truncated or overlong varint, a length past
 * the end, a group or a reserved wire type is refused. -EBADMSG with err saying why,
 * -EFBIG over the cap, -ENOMEM; *ret untouched on failure. */
int etcd_grpc_parse_range(const void *body, size_t len, struct etcd_range *ret, char *err, size_t err_size);
/* An AuthenticateResponse's token (field 2): a new string. -EBADMSG, -ENOMEM. */
int etcd_grpc_parse_auth(const void *body, size_t len, char **ret, char *err, size_t err_size);

/* The grpc-message trailer, percent-decoded (gRPC's encoding of it), into buf. */
void etcd_grpc_message(const char *s, char *buf, size_t size);
