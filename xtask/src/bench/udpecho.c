/* A UDP echo server for Linux (Rexo's benchmark suite, docs/bench.md): every datagram
 * that arrives on 0.0.0.0:PORT goes back to its sender, one at a time, with blocking
 * recvfrom/sendto: the round trip the suite compares with Rexo's netdemo. Prints
 *   udp-echo serving port=PORT
 * once bound. Built with `gcc -static -O2`. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0;
    if (port < 1 || port > 65535) {
        printf("udp-echo FAILED: usage: rexo-udpecho PORT\n");
        return 1;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&at, sizeof at) != 0) {
        printf("udp-echo FAILED: UDP socket on port %d: %s\n", port, strerror(errno));
        return 1;
    }
    printf("udp-echo serving port=%d\n", port);
    fflush(stdout);
    static char buf[65536];
    for (;;) {
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
        if (n >= 0) {
            sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
        }
    }
}
