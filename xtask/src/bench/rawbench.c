/* The Linux side of `cargo xtask bench drivers` (docs/bench.md) for a NIC: what Rexo's
 * `netbench` (apps/devcheck/src/bench.rs) measures, done through an AF_PACKET raw socket
 * on the interface, with the same frames and control frames, so that the same host peer
 * (xtask/src/netpeer.rs, `run_bench`) counts and streams for both guests:
 *
 *   tx-SIZE     FRAMES frames of SIZE bytes (broadcast, the NIC's MAC, EtherType 0x88B5,
 *               a big-endian sequence number in bytes 14..18, zeros after), `send` retried
 *               while the queue is full, until the socket has no byte left in flight
 *               (SIOCOUTQ 0: the driver freed every frame after the device sent it);
 *   empty-poll  POLLS `recv(fd, buf, 2048, MSG_DONTWAIT)` on a socket bound to the
 *               interface and EtherType 0x88B6, which the peer sends nothing of yet
 *               (1000 untimed calls first);
 *   rx-SIZE     a 60-byte control frame (bytes 14..18 `SEND`, 18..20 SIZE) asks the peer
 *               to stream SIZE-byte 0x88B6 frames; blocking `recv` until FRAMES after the
 *               first or 0.5 s without one; a `STOP` control frame. The clock runs from the
 *               first frame (not counted) to the last.
 *
 * Each figure is printed as Rexo prints it, `devbench nic 0 NAME count=N ns=T`, a failure
 * as `devbench nic 0 FAILED: why`. Usage: rexo-rawbench IFACE FRAMES POLLS SIZE...
 * Built with `gcc -static -O2`. */
#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <linux/if_packet.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FROM_GUEST 0x88B5
#define FROM_PEER 0x88B6
#define CONTROL_LEN 60
#define MAX_FRAME 1514
#define WARMUP 1000
#define FIRST_FRAME_NS 10000000000ull
#define BURST_END_NS 500000000ull
#define DRAIN_NS 30000000000ull
#define RECV_BUFFER (8 << 20)

static const char *iface;
static int ifindex;
static unsigned char mac[6];

static uint64_t monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void fail(const char *what)
{
    printf("devbench nic 0 FAILED: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* A raw socket bound to the interface, receiving EtherType `protocol` (0: nothing). */
static int raw_socket(int protocol)
{
    int fd = socket(AF_PACKET, SOCK_RAW, htons(protocol));
    if (fd < 0)
        fail("socket(AF_PACKET)");
    struct sockaddr_ll at = {
        .sll_family = AF_PACKET,
        .sll_protocol = htons(protocol),
        .sll_ifindex = ifindex,
    };
    if (bind(fd, (struct sockaddr *)&at, sizeof at) != 0)
        fail("bind to the interface");
    return fd;
}

/* The Ethernet header of a frame from the guest: broadcast, our MAC, 0x88B5. */
static void header(unsigned char *frame, uint32_t seq)
{
    memset(frame, 0xFF, 6);
    memcpy(frame + 6, mac, 6);
    frame[12] = FROM_GUEST >> 8;
    frame[13] = FROM_GUEST & 0xFF;
    uint32_t be = htonl(seq);
    memcpy(frame + 14, &be, 4);
}

/* Sends one frame, retrying while the device's queue is full (up to a second). */
static void send_frame(int fd, const unsigned char *frame, size_t len)
{
    uint64_t start = monotonic_ns();
    while (send(fd, frame, len, 0) != (ssize_t)len) {
        if ((errno != ENOBUFS && errno != EAGAIN) || monotonic_ns() - start > 1000000000ull)
            fail("send");
    }
}

/* Sends a control frame: `SEND` with `size`, or `STOP`. */
static void control(int fd, const char *magic, uint16_t size)
{
    unsigned char frame[CONTROL_LEN] = {0};
    header(frame, 0);
    memcpy(frame + 14, magic, 4);
    frame[18] = size >> 8;
    frame[19] = size & 0xFF;
    send_frame(fd, frame, sizeof frame);
}

static void tx(int fd, long frames, int size)
{
    static unsigned char frame[MAX_FRAME];
    memset(frame, 0, sizeof frame);
    uint64_t start = monotonic_ns();
    for (long seq = 0; seq < frames; seq++) {
        header(frame, (uint32_t)seq);
        send_frame(fd, frame, (size_t)size);
    }
    /* Sent means the driver is done with every frame: nothing of the socket's left. */
    for (;;) {
        int queued = 0;
        if (ioctl(fd, SIOCOUTQ, &queued) != 0)
            fail("ioctl(SIOCOUTQ)");
        if (queued == 0)
            break;
        if (monotonic_ns() - start > DRAIN_NS) {
            errno = ETIMEDOUT;
            fail("transmits not finished after 30 s");
        }
    }
    printf("devbench nic 0 tx-%d count=%ld ns=%llu\n", size, frames,
           (unsigned long long)(monotonic_ns() - start));
}

static void empty_poll(int fd, long polls)
{
    static char buf[2048];
    long stray = 0;
    uint64_t start = 0;
    for (long i = 0; i < WARMUP + polls; i++) {
        if (i == WARMUP)
            start = monotonic_ns();
        if (recv(fd, buf, sizeof buf, MSG_DONTWAIT) >= 0)
            stray++;
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            fail("recv");
    }
    printf("devbench nic 0 empty-poll count=%ld ns=%llu\n", polls,
           (unsigned long long)(monotonic_ns() - start));
    if (stray > 0)
        printf("rawbench: %ld frames arrived during the empty polls\n", stray);
}

static void rx(int out, int in, long frames, int size)
{
    static unsigned char buf[2048];
    control(out, "SEND", (uint16_t)size);
    long count = 0;
    uint64_t first = 0, last = monotonic_ns();
    while (count < frames) {
        ssize_t len = recv(in, buf, sizeof buf, 0);
        uint64_t now = monotonic_ns();
        if (len == size && buf[12] == FROM_PEER >> 8 && buf[13] == (FROM_PEER & 0xFF)) {
            if (first == 0)
                first = now;
            else
                count++;
            last = now;
        } else if (len < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            fail("recv");
        } else if (first == 0 && now - last > FIRST_FRAME_NS) {
            printf("devbench nic 0 FAILED: the peer sent no %d-byte frames\n", size);
            exit(1);
        } else if (first != 0 && now - last > BURST_END_NS) {
            break;
        }
    }
    if (first == 0)
        first = last;
    control(out, "STOP", 0);
    printf("devbench nic 0 rx-%d count=%ld ns=%llu\n", size, count,
           (unsigned long long)(last - first));
}

/* The interface's driver, as Rexo names its device: `devbench-device nic 0 DRIVER`. */
static void name_device(void)
{
    char link[256], path[512];
    snprintf(path, sizeof path, "/sys/class/net/%s/device/driver", iface);
    ssize_t len = readlink(path, link, sizeof link - 1);
    if (len > 0) {
        link[len] = 0;
        printf("devbench-device nic 0 %s\n", basename(link));
    }
}

/* Waits up to 10 s for the interface's carrier (e1000's link comes up after a while). */
static void await_carrier(void)
{
    char path[256];
    snprintf(path, sizeof path, "/sys/class/net/%s/carrier", iface);
    for (int tries = 0; tries < 1000; tries++) {
        FILE *f = fopen(path, "r");
        int up = 0;
        if (f) {
            up = fgetc(f) == '1';
            fclose(f);
        }
        if (up)
            return;
        usleep(10000);
    }
    errno = ENETDOWN;
    fail("no carrier after 10 s");
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 5 || atol(argv[2]) < 1 || atol(argv[3]) < 1) {
        printf("devbench nic 0 FAILED: usage: rexo-rawbench IFACE FRAMES POLLS SIZE...\n");
        return 1;
    }
    iface = argv[1];
    long frames = atol(argv[2]), polls = atol(argv[3]);
    ifindex = (int)if_nametoindex(iface);
    if (ifindex == 0)
        fail(iface);
    int out = raw_socket(0);
    struct ifreq req = {0};
    snprintf(req.ifr_name, sizeof req.ifr_name, "%s", iface);
    if (ioctl(out, SIOCGIFHWADDR, &req) != 0)
        fail("ioctl(SIOCGIFHWADDR)");
    memcpy(mac, req.ifr_hwaddr.sa_data, 6);
    name_device();
    await_carrier();
    for (int i = 4; i < argc; i++) {
        int size = atoi(argv[i]);
        if (size < CONTROL_LEN || size > MAX_FRAME) {
            printf("devbench nic 0 FAILED: frame size %s not in %d..%d\n", argv[i],
                   CONTROL_LEN, MAX_FRAME);
            return 1;
        }
        tx(out, frames, size);
    }
    int in = raw_socket(FROM_PEER);
    int bytes = RECV_BUFFER;
    if (setsockopt(in, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0)
        setsockopt(in, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
    empty_poll(in, polls);
    /* Blocking receives wake up every 50 ms to look at the clock. */
    struct timeval wait = {.tv_sec = 0, .tv_usec = 50000};
    if (setsockopt(in, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait) != 0)
        fail("setsockopt(SO_RCVTIMEO)");
    for (int i = 4; i < argc; i++)
        rx(out, in, frames, atoi(argv[i]));
    return 0;
}
