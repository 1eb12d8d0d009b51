/* bench/floor.c: the cheapest open-loop, connection-per-user HTTP client we
 * can write, as the floor that bench/run.sh measures (c) against.
 *
 *   floor HOST PORT RATE SECONDS
 *
 * Starts RATE arrivals a second for SECONDS, evenly spaced. Each arrival is
 * what a cutover user of bench/per-user.yml does on the wire: a non-blocking
 * socket, connect(), the same GET written at once, one read of the answer,
 * close(). Nothing else: no HTTP parsing beyond "got bytes", no metrics but
 * the arrival lag, no timers but the next arrival's, epoll driven directly,
 * 6 system calls a user (socket, connect, write, epoll_ctl, read, close; no
 * TCP_NODELAY, no FIONBIO, no EPOLL_CTL_DEL). It keeps each arrival's lag
 * (start minus intended start) and prints one JSON line:
 *
 *   {"expected":N,"completed":N,"failed":N,"elapsed_s":S,"lag_p99_ms":L,
 *    "lag_max_ms":M,"cpu_us_per_user":C,"rss_kb":R,"failed_start":N,
 *    "failed_eof":N,"failed_read":N,"failed_timeout":N,"last_error":"..."}
 *
 * A connection with no answer 10 s after the last arrival counts as
 * failed (failed_timeout) and the run ends.
 *
 * What a general engine (cutover) costs beyond this is the price of being
 * an engine; what this costs is the machine's price of a TCP connection.
 * Built by bench/run.sh with `cc -O2`; bench only, not part of cutover.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: floor HOST PORT RATE SECONDS\n");
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1) {
        fprintf(stderr, "floor: bad IPv4 address %s\n", argv[1]);
        return 2;
    }
    long rate = atol(argv[3]), secs = atol(argv[4]);
    if (rate <= 0 || secs <= 0) {
        fprintf(stderr, "floor: RATE and SECONDS must be positive\n");
        return 2;
    }
    uint64_t expected = (uint64_t)rate * (uint64_t)secs;
    struct rlimit nofile; /* as cutover: as many sockets as the hard limit allows */
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &nofile);
    }
    char req[256];
    int reqlen = snprintf(req, sizeof req,
                          "GET / HTTP/1.1\r\nuser-agent: Artillery (https://artillery.io)\r\n"
                          "host: %s:%s\r\naccept-encoding: gzip, deflate\r\n\r\n",
                          argv[1], argv[2]);
    uint32_t *lag_us = malloc(expected * sizeof *lag_us);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!lag_us || ep < 0) {
        perror("floor");
        return 1;
    }
    static char buf[65536];
    struct epoll_event evs[256];
    uint64_t started = 0, completed = 0, failed = 0, active = 0;
    uint64_t err_start = 0, err_eof = 0, err_read = 0, err_timeout = 0;
    int last_errno = 0;
    uint64_t t0 = now_ns(), step = 1000000000u / (uint64_t)rate;
    uint64_t end = t0 + expected * step + 10000000000u; /* stragglers get 10 s */
    while (started < expected || active > 0) {
        uint64_t now = now_ns();
        if (started == expected && now > end) {
            err_timeout = active; /* no response within 10 s of the last arrival */
            failed += active;
            break;
        }
        /* every arrival that is due, each with its own lag */
        while (started < expected && t0 + started * step <= now) {
            uint64_t due = t0 + started * step;
            lag_us[started++] = (uint32_t)((now - due) / 1000);
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                failed++;
                err_start++;
                last_errno = errno;
                continue;
            }
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = fd};
            if ((connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) ||
                write(fd, req, (size_t)reqlen) != reqlen ||
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
                last_errno = errno;
                close(fd);
                failed++;
                err_start++;
                continue;
            }
            active++;
            now = now_ns();
        }
        struct timespec ts = {0, 0}, *timeout = &ts; /* epoll_pwait2: to the nanosecond */
        {
            uint64_t due = started < expected ? t0 + started * step : end;
            uint64_t d = due > now ? due - now : 0;
            ts.tv_sec = (time_t)(d / 1000000000u);
            ts.tv_nsec = (long)(d % 1000000000u);
        }
        int n = epoll_pwait2(ep, evs, 256, timeout, NULL);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            ssize_t r = read(fd, buf, sizeof buf);
            if (r < 0 && errno == EAGAIN)
                continue;
            if (r > 0) {
                completed++;
            } else {
                failed++;
                if (r == 0) {
                    err_eof++;
                } else {
                    err_read++;
                    last_errno = errno;
                }
            }
            close(fd);
            active--;
        }
    }
    double elapsed = (double)(now_ns() - t0) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    qsort(lag_us, expected, sizeof *lag_us, cmp_u32);
    uint64_t k = (expected * 99 + 99) / 100; /* nearest rank */
    printf("{\"expected\":%llu,\"completed\":%llu,\"failed\":%llu,\"elapsed_s\":%.3f,"
           "\"lag_p99_ms\":%.3f,\"lag_max_ms\":%.3f,\"cpu_us_per_user\":%.1f,\"rss_kb\":%ld,"
           "\"failed_start\":%llu,\"failed_eof\":%llu,\"failed_read\":%llu,\"failed_timeout\":%llu,"
           "\"last_error\":\"%s\"}\n",
           (unsigned long long)expected, (unsigned long long)completed,
           (unsigned long long)failed, elapsed, lag_us[k - 1] / 1000.0,
           lag_us[expected - 1] / 1000.0, cpu * 1e6 / (double)expected, ru.ru_maxrss,
           (unsigned long long)err_start, (unsigned long long)err_eof,
           (unsigned long long)err_read, (unsigned long long)err_timeout, last_errno ? strerror(last_errno) : "");
    return completed == expected ? 0 : 1;
}
