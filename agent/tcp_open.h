/*
 * tcp_open.h - non-blocking TCP connects to one origin, for engines that run their own sockets on
 * a libev loop (engine_fast.c and engine_h2.c).
 *
 * st_tcp_resolve resolves the origin once (at engine create); st_tcp_open then starts a
 * non-blocking connect on one address after another, starting from the one that last worked.
 *
 * Errors: st_tcp_resolve returns 0, ST_EINVAL (the host does not resolve, or has no IPv4/IPv6
 * address; the message names the host) or ST_ENOMEM. st_tcp_open returns a descriptor or -1 with
 * *kind ST_RES_CONNECT (every address refused) or ST_RES_LOCAL (no descriptor: EMFILE, ENFILE).
 *
 * Threading: an st_tcp_addrs belongs to one engine instance (one thread). Nothing is allocated.
 */
#ifndef ST_TCP_OPEN_H
#define ST_TCP_OPEN_H

#include "engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define ST_TCP_MAX_ADDRS 8

typedef struct st_tcp_addrs {
    struct sockaddr_storage addrs[ST_TCP_MAX_ADDRS];
    socklen_t lens[ST_TCP_MAX_ADDRS];
    int n;
    int cur; /* the address that last connected: connects start there */
} st_tcp_addrs;

/* One connection's way through the addresses. */
typedef struct st_tcp_try {
    int first; /* a->cur when the connect began */
    int tried; /* addresses tried since */
    int addr;  /* the address being tried */
} st_tcp_try;

int st_tcp_resolve(st_tcp_addrs *a, const char *host, int port, char *err, size_t err_len);

/* Starts a connect from address t->first + t->tried (set t to {0} and call st_tcp_begin for a new
 * attempt). Returns a non-blocking, close-on-exec descriptor with TCP_NODELAY, *connected telling
 * whether it is connected already (else wait for it to be writable and call st_tcp_check), or -1
 * and *kind as above. */
void st_tcp_begin(const st_tcp_addrs *a, st_tcp_try *t);
int st_tcp_open(const st_tcp_addrs *a, st_tcp_try *t, bool *connected, st_res_kind *kind);

/* After fd became writable: 0 connected (and a->cur remembers the address), 1 still in progress,
 * or -1 failed (close fd, count t->tried++ and call st_tcp_open for the next address). */
int st_tcp_check(st_tcp_addrs *a, const st_tcp_try *t, int fd);

#endif
