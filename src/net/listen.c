/* net/listen.c: listeners (see net.h for the contract): a listening socket
 * made here (SO_REUSEADDR and SO_REUSEPORT, a long accept queue) and handed
 * to libuv; each accepted connection becomes a stream in tcp.c
 * (net__accept). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net_int.h"

struct net_listener {
    uv_tcp_t tcp;
    uv_loop_t *loop;
    net_tls *tls;
    net_accept_cb cb;
    void *user;
    int port;
};

static void on_connection(uv_stream_t *server, int status)
{
    net_listener *l = server->data;
    if (status < 0)
        return; /* EMFILE and friends: libuv retries on the next readiness */
    net_stream *s = net__accept(server, l->loop, l->tls);
    if (s)
        l->cb(l, s, l->user);
}

static void on_listener_closed(uv_handle_t *h)
{
    free(h->data);
}

/* The accept queue asked for: the kernel caps it at net.core.somaxconn
 * (4096 on current kernels). While the queue is full the kernel drops new
 * handshakes (the SYN, or the ACK that would complete one), and the client
 * learns of it only from a retransmission a second or more later, so a
 * server that stalls for a moment under tens of thousands of connections a
 * second should queue them, not drop them. */
enum { LISTEN_BACKLOG = 65535 };

int net_listen(net_listener **out, uv_loop_t *loop, const char *host, int port, net_tls *tls,
               net_accept_cb cb, void *user, char err[CU_ERRLEN])
{
    *out = NULL;
    if (port < 0 || port > 65535) {
        snprintf(err, CU_ERRLEN, "invalid port %d", port);
        return -EINVAL;
    }
    const char *h = host && *host ? host : "0.0.0.0";
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(h, portstr, &hints, &ai);
    if (gai != 0) {
        snprintf(err, CU_ERRLEN, "cannot resolve listen address %s: %s", h, gai_strerror(gai));
        return -EINVAL;
    }
    int rc = 0, one = 1;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, CU_ERRLEN, "socket: %s", strerror(errno));
        goto fail_ai;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        rc = -errno;
        snprintf(err, CU_ERRLEN, "setsockopt: %s", strerror(errno));
        goto fail_fd;
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        rc = -errno;
        snprintf(err, CU_ERRLEN, "cannot listen on %s:%d: %s", h, port, strerror(errno));
        goto fail_fd;
    }
    if (listen(fd, LISTEN_BACKLOG) < 0) {
        rc = -errno;
        snprintf(err, CU_ERRLEN, "listen on %s:%d: %s", h, port, strerror(errno));
        goto fail_fd;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        rc = -errno;
        snprintf(err, CU_ERRLEN, "getsockname: %s", strerror(errno));
        goto fail_fd;
    }
    net_listener *l = cu_calloc(1, sizeof *l);
    l->loop = loop;
    l->tls = tls;
    l->cb = cb;
    l->user = user;
    l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    rc = uv_tcp_open(&l->tcp, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, LISTEN_BACKLOG, on_connection);
    if (rc < 0) {
        snprintf(err, CU_ERRLEN, "listen on %s:%d: %s", h, port, uv_strerror(rc));
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed); /* closes fd too */
        freeaddrinfo(ai);
        return rc;
    }
    freeaddrinfo(ai);
    *out = l;
    return 0;

fail_fd:
    close(fd);
fail_ai:
    freeaddrinfo(ai);
    return rc;
}

int net_listener_port(const net_listener *l)
{
    return l->port;
}

void net_listener_close(net_listener *l)
{
    if (l)
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}
