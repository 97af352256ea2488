#include "tcp_open.h"

#include "error.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int st_tcp_resolve(st_tcp_addrs *a, const char *host, int port, char *err, size_t err_len)
{
    char sport[8];
    snprintf(sport, sizeof(sport), "%d", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    memset(a, 0, sizeof(*a));
    int rc = getaddrinfo(host, sport, &hints, &res);
    if (rc != 0) {
        if (rc == EAI_MEMORY) {
            return ST_ENOMEM;
        }
        return st_errf(err, err_len, ST_EINVAL, "cannot resolve host \"%s\": %s", host,
                       rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    }
    for (struct addrinfo *ai = res; ai && a->n < ST_TCP_MAX_ADDRS; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof(a->addrs[0])) {
            continue;
        }
        memcpy(&a->addrs[a->n], ai->ai_addr, ai->ai_addrlen);
        a->lens[a->n] = ai->ai_addrlen;
        a->n++;
    }
    freeaddrinfo(res);
    if (a->n == 0) {
        return st_errf(err, err_len, ST_EINVAL, "host \"%s\" has no IPv4 or IPv6 address", host);
    }
    return 0;
}

void st_tcp_begin(const st_tcp_addrs *a, st_tcp_try *t)
{
    t->first = a->cur;
    t->tried = 0;
    t->addr = a->cur;
}

int st_tcp_open(const st_tcp_addrs *a, st_tcp_try *t, bool *connected, st_res_kind *kind)
{
    for (; t->tried < a->n; t->tried++) {
        int i = (t->first + t->tried) % a->n;
        const struct sockaddr *sa = (const struct sockaddr *)&a->addrs[i];
        t->addr = i;
        int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            /* Out of descriptors or buffers: no other address will do better, and it is this
             * machine's shortage, not the target's refusal. */
            *kind = errno == EMFILE || errno == ENFILE ? ST_RES_LOCAL : ST_RES_CONNECT;
            return -1;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        int rc = connect(fd, sa, a->lens[i]);
        if (rc == 0 || errno == EINPROGRESS) {
            *connected = rc == 0;
            return fd;
        }
        close(fd);
    }
    *kind = ST_RES_CONNECT;
    return -1;
}

int st_tcp_check(st_tcp_addrs *a, const st_tcp_try *t, int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
        err = errno;
    }
    if (err == EINPROGRESS || err == EALREADY) {
        return 1;
    }
    if (err != 0) {
        return -1;
    }
    a->cur = t->addr;
    return 0;
}
