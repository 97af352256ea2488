/*
 * server.h - the coordinator's nng endpoint: a REP socket whose requests go to st_coord_handle.
 *
 * Several nng contexts receive at once; each request is handled on an nng callback thread and
 * answered on the same context, so a slow agent never holds up the others. Requests the core
 * cannot parse are dropped without an answer (and counted by the core).
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

/* Checks the form of a --listen URL without listening: tcp://HOST:PORT (also tcp4:// and
 * tcp6://; HOST may be empty for every address, or [v6] in brackets; PORT a plain decimal from 0
 * to 65535). Returns 0, or ST_EINVAL with a message naming --listen in err. */
int st_server_check_url(const char *url, char *err, size_t err_len);

/* The TCP port listened on. */
int st_server_port(const st_server *s);

/* Closes the socket and waits for every callback to finish. NULL is a no-op. */
void st_server_stop(st_server *s);

#endif
