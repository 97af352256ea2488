/*
 * server.h - the coordinator's nng endpoint: a REP socket whose requests go to st_coord_handle.
 *
 * Several nng contexts receive at once; each request is handled on an nng callback thread and
 * answered on the same context, so a slow agent never holds up the others. Requests the core
 * cannot parse are dropped without an answer (and counted by the core).
 *
 * Over tls+tcp:// (st_server_start_tls) the listener presents the given certificate, and a
 * watcher thread reads the listener's nng statistics twice a second to log the connections nng
 * refused on its own (it says nothing else about them): failed TLS handshakes, such as plaintext
 * bytes sent to the port, are warnings; connections that ended during the handshake (every TLS
 * agent's certificate check, agent/remote.c, is one; so is a bare TCP connect) are debug lines.
 * A refused connection does not disturb the run. The private key is handed to nng and never
 * logged.
 *
 * Threading: start and stop from the owner thread; the core must outlive the server.
 */
#ifndef ST_SERVER_H
#define ST_SERVER_H

#include "coord.h"

typedef struct st_server st_server;

/* Listens on url (tcp://HOST:PORT; port 0 picks a free one). Returns 0, ST_EINVAL (a bad URL,
 * message in err), ST_EIO (cannot listen: in use, no such address; message in err) or ST_ENOMEM. */
int st_server_start(st_server **out, const char *url, st_coord *core, char *err, size_t err_len);

/* st_server_start with TLS: url is tls+tcp://HOST:PORT (also tls+tcp4://, tls+tcp6://), and the
 * listener presents cert_pem with its key key_pem (PEM text, copied by nng; the caller keeps
 * both). cert_pem NULL: the same as st_server_start. Returns what st_server_start does; ST_EINVAL
 * also when nng refuses the certificate or key (message in err, never the key). */
int st_server_start_tls(st_server **out, const char *url, const char *cert_pem,
                        const char *key_pem, st_coord *core, char *err, size_t err_len);

/* Checks the form of a --listen URL without listening: tcp://HOST:PORT (also tcp4:// and
 * tcp6://, and each of them after tls+, e.g. tls+tcp://; HOST may be empty for every address, or [v6] in brackets; PORT a plain decimal from 0
 * to 65535). Returns 0, or ST_EINVAL with a message naming --listen in err. */
int st_server_check_url(const char *url, char *err, size_t err_len);

/* The TCP port listened on. */
int st_server_port(const st_server *s);

/* Closes the socket and waits for every callback to finish. NULL is a no-op. */
void st_server_stop(st_server *s);

#endif
