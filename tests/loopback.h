/*
 * What the tests' servers on loopback (srv.c, tls_srv.c) and their clients share: the loopback
 * address of a family, a listening socket on a port the kernel picks, and the servers' counters,
 * read under the server's lock or waited for. Each fails the test (cmocka) when a socket call
 * fails.
 */
#ifndef ST_TESTS_LOOPBACK_H
#define ST_TESTS_LOOPBACK_H

#include <pthread.h>
#include <sys/socket.h>

/* Fills *ss with ::1 (family AF_INET6) or 127.0.0.1 (any other family) and port; returns the
 * address's length. */
socklen_t loopback_addr(struct sockaddr_storage *ss, int family, int port);

/* A blocking, close-on-exec, SO_REUSEADDR socket of family listening on its loopback address
 * with backlog, on a port the kernel picks, written to *port. rcvbuf > 0 sets SO_RCVBUF before
 * the bind (accepted sockets inherit it). Returns the socket; the caller closes it. */
int loopback_listen(int family, int backlog, int rcvbuf, int *port);

/* Reads *field under mu. */
int locked_get(pthread_mutex_t *mu, const int *field);
/* Waits up to two seconds for *field (read under mu) to reach want; returns its last value. */
int locked_wait(pthread_mutex_t *mu, const int *field, int want);

#endif
