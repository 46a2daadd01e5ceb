/* c-devices: a C app on devices and memory views. It lists the devices, writes blocks
 * on the first disk and reads them back, sends frames on the first network interface
 * (whose frames come back to it: the test wires it so) and receives them, whole and
 * bound by a packet filter, maps memory and writes through the view, and checks that
 * every bad argument gives the documented error code. Needs the kernel word
 * ip=10.0.2.15/24 (shared interfaces). Prints "c-devices: ok" and returns 0, or prints
 * what failed and returns a negative code. */
#define APP "c-devices"
#include "check.h"

int c_devices_main(void);


#define BLOCKS 64
#define BLOCK 512
#define FRAME 1514

/* What one run works in. A C app's globals are shared by every run of it (two boot
 * manifest entries naming it run at once), and 64 KiB of buffers is too much for its
 * stack: each run allocates and maps its own (c_devices_main). */
struct run {
    struct rexo_device devices[8];
    uint8_t out[BLOCKS * BLOCK];
    uint8_t in[BLOCKS * BLOCK];
    uint8_t frame[FRAME + 1];
    uint8_t got[FRAME];
};

/* The first device of `kind`, or -1. */
static int64_t first(const struct run *run, int count, uint32_t kind)
{
    for (int i = 0; i < count && i < 8; i++)
        if (run->devices[i].kind == kind)
            return run->devices[i].index;
    return -1;
}

static int check_list(struct rexo_device *devices, int *count)
{
    EXPECT("rexo_devices(NULL, 1)", rexo_devices(NULL, 1), REXO_EINVAL);
    EXPECT("rexo_devices(page 0)", rexo_devices((struct rexo_device *)16, 1), REXO_EFAULT);
    EXPECT("rexo_devices(huge max)", rexo_devices(devices, (size_t)-1), REXO_EINVAL);
    *count = rexo_devices(devices, 8);
    EXPECT("rexo_devices(NULL, 0) counts", rexo_devices(NULL, 0), *count);
    for (int i = 0; i < *count && i < 8; i++) {
        struct line line = {.length = 0};
        line_text(&line, "c-devices: device ");
        line_text(&line, devices[i].kind == REXO_DEVICE_NET ? "net " : devices[i].kind == REXO_DEVICE_BLOCK ? "block " : "keyboard ");
        line_number(&line, devices[i].index);
        line_text(&line, " ");
        line_text(&line, devices[i].driver);
        line_text(&line, " ");
        line_text(&line, devices[i].about);
        line_end(&line);
    }
    return 0;
}

static int check_disk(struct run *run, uint32_t index)
{
    uint8_t *out = run->out, *in = run->in;
    EXPECT("rexo_block_open(99)", rexo_block_open(99), REXO_ENODEV);
    EXPECT_HANDLE("rexo_block_open", disk, rexo_block_open(index));
    EXPECT("rexo_block_open again", rexo_block_open(index), REXO_EBUSY);
    struct rexo_block_info info;
    EXPECT("rexo_block_info", rexo_block_info(disk, &info), REXO_OK);
    EXPECT("the block size", info.block_size, BLOCK);
    EXPECT("rexo_block_info(NULL)", rexo_block_info(disk, NULL), REXO_EINVAL);
    for (size_t i = 0; i < sizeof run->out; i++)
        out[i] = (uint8_t)(i / BLOCK * 7 + i % 251);
    uint64_t at = info.blocks / 2;
    EXPECT("rexo_block_write", rexo_block_write(disk, at, BLOCKS, out, sizeof run->out), REXO_OK);
    EXPECT("rexo_block_flush", rexo_block_flush(disk), REXO_OK);
    EXPECT("rexo_block_read", rexo_block_read(disk, at, BLOCKS, in, sizeof run->in), REXO_OK);
    for (size_t i = 0; i < sizeof run->in; i++)
        EXPECT("the byte read back", in[i], out[i]);
    /* The last block works; one past it does not, and nothing is read. */
    EXPECT("rexo_block_write(last)", rexo_block_write(disk, info.blocks - 1, 1, out, BLOCK), REXO_OK);
    in[0] = 0xEE;
    EXPECT("rexo_block_read(past the end)", rexo_block_read(disk, info.blocks - 1, 2, in, 2 * BLOCK), REXO_ERANGE);
    EXPECT("nothing read", in[0], 0xEE);
    EXPECT("rexo_block_read(wrapping)", rexo_block_read(disk, (uint64_t)-1, 1, in, BLOCK), REXO_ERANGE);
    EXPECT("rexo_block_write(0 blocks)", rexo_block_write(disk, 0, 0, out, 0), REXO_EINVAL);
    EXPECT("rexo_block_write(short buffer)", rexo_block_write(disk, 0, 2, out, BLOCK), REXO_EINVAL);
    EXPECT("rexo_block_read(NULL)", rexo_block_read(disk, 0, 1, NULL, BLOCK), REXO_EINVAL);
    EXPECT("rexo_block_read(page 0)", rexo_block_read(disk, 0, 1, (void *)16, BLOCK), REXO_EFAULT);
    EXPECT("rexo_net_send(disk handle)", rexo_net_send(disk, out, 60), REXO_EBADF);
    EXPECT("rexo_mem_read(disk handle)", rexo_mem_read(disk, 0, in, 1), REXO_EBADF);
    EXPECT("rexo_block_flush(made up)", rexo_block_flush(12345), REXO_EBADF);
    EXPECT("rexo_dev_close(disk)", rexo_dev_close(disk), REXO_OK);
    EXPECT("rexo_block_read(closed)", rexo_block_read(disk, 0, 1, in, BLOCK), REXO_EBADF);
    EXPECT("rexo_dev_close(closed)", rexo_dev_close(disk), REXO_EBADF);
    struct line line = {.length = 0};
    line_text(&line, "c-devices: disk ");
    line_number(&line, index);
    line_text(&line, ": ");
    line_number(&line, (int64_t)info.blocks);
    line_text(&line, " blocks of 512, wrote, flushed and read back 64 blocks");
    line_end(&line);
    return 0;
}

/* Builds in `frame` a UDP frame from 10.0.2.15:`sport` to 10.0.2.15:7777 to `mac` (60
 * bytes). */
static size_t udp_frame(uint8_t *frame, const uint8_t mac[6], uint16_t sport)
{
    static const uint8_t ip[4] = {10, 0, 2, 15};
    for (size_t i = 0; i < 60; i++)
        frame[i] = 0;
    for (int i = 0; i < 6; i++)
        frame[i] = frame[6 + i] = mac[i];
    frame[12] = 0x08;
    frame[14] = 0x45;
    frame[17] = 46; /* IPv4 total length: 20 + 8 + 18 */
    frame[22] = 64; /* TTL */
    frame[23] = 17; /* UDP */
    for (int i = 0; i < 4; i++)
        frame[26 + i] = frame[30 + i] = ip[i];
    uint32_t sum = 0;
    for (int i = 14; i < 34; i += 2)
        sum += (uint32_t)frame[i] << 8 | frame[i + 1];
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    frame[24] = (uint8_t)(~sum >> 8);
    frame[25] = (uint8_t)~sum;
    frame[34] = (uint8_t)(sport >> 8);
    frame[35] = (uint8_t)sport;
    frame[36] = 7777 >> 8;
    frame[37] = 7777 & 0xFF;
    frame[39] = 26; /* UDP length: 8 + 18 */
    for (int i = 42; i < 60; i++)
        frame[i] = (uint8_t)(i * 3);
    return 60;
}

/* Polls `nic` for up to 2 s until a frame comes into `got` (FRAME bytes); its length,
 * or 0. */
static int receive(int64_t nic, uint8_t *got)
{
    uint64_t start = rexo_now_ns();
    while (rexo_now_ns() - start < 2000000000u) {
        int len = rexo_net_receive(nic, got, FRAME);
        if (len != 0)
            return len;
    }
    return 0;
}

/* Compares the `len` bytes received with the frame sent. */
static int same_frame(const struct run *run, int len, size_t sent)
{
    EXPECT("the frame's length", len, sent);
    for (size_t i = 0; i < sent; i++)
        EXPECT("the frame's byte", run->got[i], run->frame[i]);
    return 0;
}

static int check_net(struct run *run, uint32_t index)
{
    uint8_t *frame = run->frame, *got = run->got;
    EXPECT("rexo_net_open(99)", rexo_net_open(99), REXO_ENODEV);
    EXPECT_HANDLE("rexo_net_open", nic, rexo_net_open(index));
    struct rexo_net_info info;
    EXPECT("rexo_net_info", rexo_net_info(nic, &info), REXO_OK);
    EXPECT("the largest frame", info.max_frame, FRAME);
    EXPECT("rexo_net_info(page 0)", rexo_net_info(nic, (struct rexo_net_info *)8), REXO_EFAULT);
    /* A frame to itself: it comes back on the wire. */
    size_t len = udp_frame(frame, info.mac, 7777);
    frame[12] = 0x88;
    frame[13] = 0xB5;
    EXPECT("rexo_net_send", rexo_net_send(nic, frame, len), REXO_OK);
    if (same_frame(run, receive(nic, got), len))
        return REXO_EPERM;
    EXPECT("rexo_net_send(too long)", rexo_net_send(nic, frame, FRAME + 1), REXO_EMSGSIZE);
    EXPECT("rexo_net_send(too short)", rexo_net_send(nic, frame, 10), REXO_EMSGSIZE);
    EXPECT("rexo_net_send(NULL)", rexo_net_send(nic, NULL, 60), REXO_EINVAL);
    EXPECT("rexo_net_send(wrapping)", rexo_net_send(nic, (void *)(uintptr_t)-8, 60), REXO_EFAULT);
    EXPECT("rexo_net_receive(small buffer)", rexo_net_receive(nic, got, 100), REXO_EINVAL);
    EXPECT("rexo_block_flush(nic handle)", rexo_block_flush(nic), REXO_EBADF);
    EXPECT("rexo_net_bind while open", rexo_net_bind(index, &(struct rexo_atom){12, 2, 0, 0xFFFF, 0x88B5}, 1), REXO_EBUSY);
    EXPECT("rexo_dev_close(nic)", rexo_dev_close(nic), REXO_OK);
    struct line line = {.length = 0};
    line_text(&line, "c-devices: nic ");
    line_number(&line, index);
    line_text(&line, ": sent and received a frame to itself, opened whole");
    line_end(&line);

    /* Bound by a filter: UDP to port 7777, first fragments only (as `udp dport 7777`). */
    struct rexo_atom udp[5] = {
        {12, 2, 0, 0xFFFF, 0x0800},
        {14, 1, 0, 0xFF, 0x45},
        {20, 2, 0, 0x1FFF, 0},
        {23, 1, 0, 0xFF, 17},
        {36, 2, 0, 0xFFFF, 7777},
    };
    EXPECT("rexo_net_bind(no atoms)", rexo_net_bind(index, udp, 0), REXO_EINVAL);
    EXPECT("rexo_net_bind(NULL)", rexo_net_bind(index, NULL, 5), REXO_EINVAL);
    struct rexo_atom bad = {12, 3, 0, 0xFF, 1};
    EXPECT("rexo_net_bind(width 3)", rexo_net_bind(index, &bad, 1), REXO_EINVAL);
    EXPECT("rexo_net_bind(99)", rexo_net_bind(99, udp, 5), REXO_ENODEV);
    EXPECT_HANDLE("rexo_net_bind", bound, rexo_net_bind(index, udp, 5));
    EXPECT("rexo_net_bind(overlapping)", rexo_net_bind(index, udp, 5), REXO_EBUSY);
    EXPECT("rexo_net_info(bound)", rexo_net_info(bound, &info), REXO_OK);
    len = udp_frame(frame, info.mac, 7777);
    EXPECT("rexo_net_send(bound)", rexo_net_send(bound, frame, len), REXO_OK);
    if (same_frame(run, receive(bound, got), len))
        return REXO_EPERM;
    len = udp_frame(frame, info.mac, 9999);
    EXPECT("rexo_net_send(another port)", rexo_net_send(bound, frame, len), REXO_EPERM);
    EXPECT("rexo_dev_close(bound)", rexo_dev_close(bound), REXO_OK);
    line_text(&line, "c-devices: nic ");
    line_number(&line, index);
    line_text(&line, ": bound to udp dport 7777, sent and received a frame to itself");
    line_end(&line);
    return 0;
}

static int check_view(void)
{
    EXPECT_HANDLE("rexo_mem_alloc", memory, rexo_mem_alloc(8192));
    void *ptr = NULL;
    uint64_t len = 0;
    EXPECT("rexo_map_memory(NULL)", rexo_map_memory(memory, NULL, &len), REXO_EINVAL);
    EXPECT("rexo_map_memory(page 0)", rexo_map_memory(memory, &ptr, (uint64_t *)8), REXO_EFAULT);
    EXPECT("rexo_map_memory(made up)", rexo_map_memory(777777, &ptr, &len), REXO_EBADF);
    EXPECT("rexo_unmap_memory(not mapped)", rexo_unmap_memory(memory), REXO_EINVAL);
    EXPECT("rexo_map_memory", rexo_map_memory(memory, &ptr, &len), REXO_OK);
    EXPECT("the view's length", len, 8192);
    uint8_t *view = ptr;
    for (int i = 0; i < 9; i++)
        view[8000 + i] = (uint8_t)"zero copy"[i];
    uint8_t back[9];
    EXPECT("rexo_mem_read(mapped)", rexo_mem_read(memory, 8000, back, 9), REXO_EBUSY);
    EXPECT("rexo_mem_write(mapped)", rexo_mem_write(memory, 0, back, 1), REXO_EBUSY);
    EXPECT("rexo_mem_return(mapped)", rexo_mem_return(memory), REXO_EBUSY);
    EXPECT("rexo_map_memory(twice)", rexo_map_memory(memory, &ptr, &len), REXO_EBUSY);
    EXPECT("rexo_dev_close(memory)", rexo_dev_close(memory), REXO_EBADF);
    EXPECT("rexo_unmap_memory", rexo_unmap_memory(memory), REXO_OK);
    EXPECT("rexo_mem_read", rexo_mem_read(memory, 8000, back, 9), REXO_OK);
    for (int i = 0; i < 9; i++)
        EXPECT("the byte written through the view", back[i], "zero copy"[i]);
    EXPECT("rexo_mem_return", rexo_mem_return(memory), REXO_OK);
    EXPECT("rexo_map_memory(returned)", rexo_map_memory(memory, &ptr, &len), REXO_EBADF);
    say("c-devices: mapped 8192 bytes, wrote through the view, read back by copy\n");
    return 0;
}

/* The device checks, in the run's own `run`. */
static int check_devices(struct run *run)
{
    int count = 0;
    int failed = check_list(run->devices, &count);
    if (failed)
        return failed;
    int64_t disk = first(run, count, REXO_DEVICE_BLOCK);
    int64_t nic = first(run, count, REXO_DEVICE_NET);
    if (disk < 0 || nic < 0)
        return fail("a disk and a network interface", disk < 0 ? disk : nic, 0);
    if ((failed = check_disk(run, (uint32_t)disk)) || (failed = check_net(run, (uint32_t)nic)))
        return failed;
    return 0;
}

int c_devices_main(void)
{
    EXPECT_HANDLE("rexo_mem_alloc(the run's buffers)", memory, rexo_mem_alloc(sizeof(struct run)));
    void *buffers = NULL;
    uint64_t len = 0;
    EXPECT("rexo_map_memory(the run's buffers)", rexo_map_memory(memory, &buffers, &len), REXO_OK);
    int failed = check_devices(buffers);
    if (failed)
        return failed;
    EXPECT("rexo_unmap_memory(the run's buffers)", rexo_unmap_memory(memory), REXO_OK);
    EXPECT("rexo_mem_return(the run's buffers)", rexo_mem_return(memory), REXO_OK);
    if ((failed = check_view()))
        return failed;
    say("c-devices: ok\n");
    return 0;
}
