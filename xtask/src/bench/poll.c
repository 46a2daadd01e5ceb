/* The empty receive poll on Linux (Rexo's benchmark suite, docs/bench.md): a UDP
 * socket bound to 0.0.0.0:PORT that nothing sends to, and COUNT
 * `recv(fd, buf, 2048, MSG_DONTWAIT)` calls timed with CLOCK_MONOTONIC, each failing
 * with EAGAIN: what Linux charges to poll an empty receive queue. Prints
 *   empty-poll count=N ns=T stray=S
 * (S: calls that found a datagram after all). Built with `gcc -static -O2`. */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define PORT 9999
#define WARMUP 1000

static uint64_t monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv)
{
    long count = argc > 1 ? atol(argv[1]) : 0;
    if (count < 1) {
        printf("empty-poll FAILED: usage: rexo-poll COUNT\n");
        return 1;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&at, sizeof at) != 0) {
        printf("empty-poll FAILED: UDP socket on port %d: %s\n", PORT, strerror(errno));
        return 1;
    }
    static char buf[2048];
    long stray = 0;
    /* The first calls warm the caches and the socket's code path up, untimed. */
    for (long i = 0; i < WARMUP + count; i++) {
        static uint64_t start;
        if (i == WARMUP)
            start = monotonic_ns();
        if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0) {
            stray++;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            printf("empty-poll FAILED: recv: %s\n", strerror(errno));
            return 1;
        }
        if (i == WARMUP + count - 1)
            printf("empty-poll count=%ld ns=%llu stray=%ld\n", count,
                   (unsigned long long)(monotonic_ns() - start), stray);
    }
    return 0;
}
