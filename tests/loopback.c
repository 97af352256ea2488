/*
 * Loopback sockets and locked counters for the tests' servers and clients (see loopback.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

socklen_t loopback_addr(struct sockaddr_storage *ss, int family, int port)
{
    *ss = (struct sockaddr_storage){0};
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons((uint16_t)port);
        return sizeof(*a);
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = htons((uint16_t)port);
    return sizeof(*a);
}

int loopback_listen(int family, int backlog, int rcvbuf, int *port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (rcvbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    struct sockaddr_storage ss;
    socklen_t len = loopback_addr(&ss, family, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
    assert_int_equal(listen(fd, backlog), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    *port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int locked_get(pthread_mutex_t *mu, const int *field)
{
    pthread_mutex_lock(mu);
    int v = *field;
    pthread_mutex_unlock(mu);
    return v;
}

int locked_wait(pthread_mutex_t *mu, const int *field, int want)
{
    int v = locked_get(mu, field);
    for (int i = 0; i < 200 && v < want; i++) {
        usleep(10000);
        v = locked_get(mu, field);
    }
    return v;
}
