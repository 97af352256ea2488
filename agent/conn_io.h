/*
 * conn_io.h - a connection's byte channel over a non-blocking socket, plain or TLS (OpenSSL).
 *
 * The engines (engine_fast.c, and the HTTP/2 engine) move their bytes through these calls so that
 * one code path serves http:// and https://. There is no event loop in here: every call returns at
 * once, saying whether it wants the socket readable or writable before it can go on, and the
 * engine's libev loop waits for that.
 *
 * Two objects:
 *   - st_conn_tls, a TLS client context built once per engine instance for its one origin:
 *     certificates verified by default against the system's CAs (or only the CAs of a cacert
 *     file), or not at all (insecure); the name checked is the URL's host (a DNS name against the
 *     certificate's DNS names, an IP literal against its IP addresses); SNI carries the host
 *     unless it is an IP literal; TLS 1.2 at least (1.3 preferred); the ALPN protocols the caller
 *     offers; and the newest session the origin gave, offered again by the next connection so that
 *     a reconnect resumes instead of making a full handshake.
 *   - st_conn_io, one connection, embedded in the engine's own connection slot. With a NULL
 *     context it is a plain socket and every call is one branch in front of recv(2)/send(2).
 *
 * A connection's life:
 *     st_conn_io_init(&c)                          once, on the slot
 *     st_conn_io_start(&c, tls_or_NULL, fd)        after connect(2) succeeded (or is in progress)
 *     st_conn_io_handshake(&c) until 0             plain: 0 at once
 *     st_conn_io_read / _write as the socket allows; after a read that filled its buffer or any
 *     read, st_conn_io_pending says whether bytes are already buffered in the TLS layer (they are
 *     not in the socket, so the fd will not become readable for them)
 *     st_conn_io_close(&c, clean)                  closes the fd; the slot can start again
 *
 * Return values of handshake, read and write: a count of bytes (read, write: > 0), 0 (handshake:
 * done; read: the peer closed the connection in order, by FIN or TLS close_notify), or one of
 * ST_CONN_IO_WANT_READ / ST_CONN_IO_WANT_WRITE (call again once the fd is readable / writable;
 * with TLS a write may want the fd readable and a read may want it writable) or ST_CONN_IO_ERROR
 * (the connection is unusable: close it). After ST_CONN_IO_ERROR, st_conn_io_fail_kind says how the
 * request on it should be reported and st_conn_io_fail_why gives a short static reason:
 *   - handshake: ST_RES_CERT when the certificate did not verify (expired, untrusted issuer, self
 *     signed, wrong name), ST_RES_TLS for every other handshake failure (a protocol error, an
 *     alert from the server, no common version, cipher or ALPN protocol, a peer that is not TLS,
 *     and a connection closed or reset in the middle of the handshake: the server gave up on it).
 *   - read / write: ST_RES_OTHER (a reset, or a TLS record that is broken).
 * A handshake that never finishes is the engine's to time out (engine.h: ST_RES_TIMEOUT).
 *
 * Errors on creation (st_conn_tls_new) are ST_EINVAL (a bad ALPN list), ST_ENOTFOUND / ST_EIO (the
 * cacert file does not exist / cannot be read or holds no certificate: the message names the
 * file), ST_ENOMEM, ST_ESYSTEM (OpenSSL could not make a context or load the system's CAs).
 *
 * Ownership: st_conn_tls_new copies what it needs from its configuration. st_conn_io_start takes
 * the fd on 0 (st_conn_io_close closes it); on error the caller keeps it. The context must outlive
 * every connection started with it.
 *
 * Threading: a context and its connections belong to one thread (the engine instance's); nothing
 * is shared between contexts, so each worker thread builds its own.
 */
#ifndef ST_CONN_IO_H
#define ST_CONN_IO_H

#include "engine.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define ST_CONN_IO_WANT_READ  (-1)
#define ST_CONN_IO_WANT_WRITE (-2)
#define ST_CONN_IO_ERROR      (-3)

typedef struct st_conn_tls st_conn_tls;

typedef struct st_conn_tls_cfg {
    const char *host;   /* the URL's host, IPv6 without brackets: SNI and the name verified */
    bool insecure;      /* verify nothing (--insecure) */
    const char *cacert; /* PEM file whose CAs are trusted instead of the system's, or NULL */
    const char *cacert_pem; /* or that file's contents (cacert then only names it in messages) */
    size_t cacert_pem_len;
    const char *alpn;   /* protocols to offer, comma-separated ("http/1.1", "h2"); NULL: none */
} st_conn_tls_cfg;

/* Builds a context. Returns 0 and writes *out, or an error above with the message in err. */
int st_conn_tls_new(st_conn_tls **out, const st_conn_tls_cfg *cfg, char *err, size_t err_len);

/* Frees the context and its kept session. NULL is a no-op. */
void st_conn_tls_free(st_conn_tls *t);

/* Whether the context holds a session that the next connection will offer for resumption. */
bool st_conn_tls_has_session(const st_conn_tls *t);

/* One connection. The fields are the module's: read them only through the calls below. */
typedef struct st_conn_io {
    int fd;                /* -1 when not started */
    struct ssl_st *ssl;    /* NULL: plain */
    st_conn_tls *tls;
    st_res_kind fail_kind; /* after ST_CONN_IO_ERROR */
    const char *fail_why;
    bool rx_stamps;       /* the kernel stamps what the socket receives (st_conn_io_stamp_rx) */
    uint64_t rx_real_ns;  /* CLOCK_REALTIME stamp of the last bytes read; 0: they had none */
} st_conn_io;

/* Sets c up with no connection (fd -1). */
void st_conn_io_init(st_conn_io *c);

/* Starts a connection on fd, a connected (or connecting) non-blocking stream socket, through tls
 * (NULL: plain). Returns 0 (c owns fd), ST_ENOMEM or ST_ESYSTEM (the caller keeps fd). */
int st_conn_io_start(st_conn_io *c, st_conn_tls *tls, int fd);

/* Asks the kernel to stamp the instant each segment reaches c's socket, so that st_conn_io_rx_ns
 * can say when a response arrived however late it is read. 0, or ST_ESYSTEM (no stamps: reads work
 * as before). Call after st_conn_io_start, before the first read. */
int st_conn_io_stamp_rx(st_conn_io *c);

/* The monotonic instant at which the last bytes read reached the socket, by the kernel's stamp,
 * given now_ns (the monotonic clock read now); never after now_ns, and now_ns when no stamp came. */
uint64_t st_conn_io_rx_ns(const st_conn_io *c, uint64_t now_ns);

/* Out-of-line paths of the calls below. */
/* recv(2) that keeps the kernel's stamp of what it read in c->rx_real_ns. */
ssize_t st_conn_io_recv_stamped(st_conn_io *c, void *buf, size_t len);
int st_conn_io_tls_handshake(st_conn_io *c);
ssize_t st_conn_io_tls_read(st_conn_io *c, void *buf, size_t len);
ssize_t st_conn_io_tls_write(st_conn_io *c, const void *buf, size_t len);
bool st_conn_io_tls_pending(const st_conn_io *c);
int st_conn_io_sys_error(st_conn_io *c, int err); /* records a failed recv/send: ERROR */

/* Advances the handshake: 0 once it is done (at once for plain connections), WANT_READ,
 * WANT_WRITE or ERROR (see st_conn_io_fail_kind). */
static inline int st_conn_io_handshake(st_conn_io *c)
{
    return c->ssl ? st_conn_io_tls_handshake(c) : 0;
}

/* Reads up to len (> 0) bytes: the count, 0 (closed in order), WANT_READ, WANT_WRITE or ERROR. */
static inline ssize_t st_conn_io_read(st_conn_io *c, void *buf, size_t len)
{
    if (c->ssl) {
        return st_conn_io_tls_read(c, buf, len);
    }
    for (;;) {
        ssize_t n = c->rx_stamps ? st_conn_io_recv_stamped(c, buf, len) : recv(c->fd, buf, len, 0);
        if (n >= 0) {
            return n;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return ST_CONN_IO_WANT_READ;
        }
        if (errno != EINTR) {
            return st_conn_io_sys_error(c, errno);
        }
    }
}

/* Writes up to len (> 0) bytes: the count written (possibly fewer), WANT_WRITE, WANT_READ or ERROR.
 * After a WANT_*, call again with the same bytes (at least the same first byte and length). */
static inline ssize_t st_conn_io_write(st_conn_io *c, const void *buf, size_t len)
{
    if (c->ssl) {
        return st_conn_io_tls_write(c, buf, len);
    }
    for (;;) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) {
            return n;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return ST_CONN_IO_WANT_WRITE;
        }
        if (errno != EINTR) {
            return st_conn_io_sys_error(c, errno);
        }
    }
}

/* Whether bytes already read from the socket wait in the TLS layer (always false when plain):
 * read them before waiting for the fd to become readable. */
static inline bool st_conn_io_pending(const st_conn_io *c)
{
    return c->ssl && st_conn_io_tls_pending(c);
}

/* The ALPN protocol the server chose: its length, with *proto pointing at its bytes (not
 * NUL-terminated, owned by c); 0 when none was chosen or the connection is plain. */
size_t st_conn_io_alpn(const st_conn_io *c, const unsigned char **proto);

/* Whether the handshake resumed a kept session (false when plain or not finished). */
bool st_conn_io_resumed(const st_conn_io *c);

/* After ST_CONN_IO_ERROR: how the request should end, and a short static reason. */
static inline st_res_kind st_conn_io_fail_kind(const st_conn_io *c)
{
    return c->fail_kind;
}
static inline const char *st_conn_io_fail_why(const st_conn_io *c)
{
    return c->fail_why ? c->fail_why : "";
}

/* Closes the connection and its fd, if started; c can start again. clean says that it ended in
 * order (the engine chose to close it, or the server closed it between requests): its session
 * stays resumable. After an error pass false. No TLS close_notify is sent: a load generator's
 * close costs the server no more than a FIN. */
void st_conn_io_close(st_conn_io *c, bool clean);

#endif
