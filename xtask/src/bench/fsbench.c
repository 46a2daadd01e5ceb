/* The file-system benchmark on Linux (Rexo's `cargo xtask bench fs`, docs/bench.md):
 * the steps of Rexo's `fsbench` app (apps/fsbench) on an ext4 file system mounted at
 * DIR, whose root holds BIG, a 1 GiB file:
 *   create  100 directories DIR/bench/dNNN, 100 files fNNN of 1 KiB in each, then sync()
 *   read    after dropping the page cache, every file read back and checked
 *   delete  every file unlinked, every directory removed, then sync()
 *   randread-file  10,000 reads of 4 KiB at random aligned offsets of BIG (O_DIRECT)
 *   randread-raw   as many of DEVICE's first 1 GiB (O_DIRECT), at the same offsets;
 *                  the two take turns of 1,000 reads, each kind's time summed
 * each timed with CLOCK_MONOTONIC and printed as `fsbench PHASE files=N ns=T` (or
 * `reads=N`); a failure prints `fsbench PHASE FAILED: why`. The file contents and the
 * offsets are the app's (file_byte, Offsets). Built with `gcc -static -O2`. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DIRECTORIES 100u
#define FILES_PER_DIRECTORY 100u
#define FILE_BYTES 1024u
#define BIG_FILE_BYTES (1ull << 30)
#define RANDOM_READS 10000ull
#define TURN_READS 1000ull
#define READ_BYTES 4096ull

static uint64_t monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static unsigned char file_byte(uint32_t file, uint32_t at)
{
    return (unsigned char)((file * 7u + at) % 251u);
}

static uint64_t offsets_state = 0x9E3779B97F4A7C15ull;

static uint64_t next_offset(uint64_t limit)
{
    offsets_state ^= offsets_state >> 12;
    offsets_state ^= offsets_state << 25;
    offsets_state ^= offsets_state >> 27;
    uint64_t slots = limit / READ_BYTES;
    return ((offsets_state * 0x2545F4914F6CDD1Dull) >> 11) % slots * READ_BYTES;
}

static const char *root;
static char path[512];

static void file_path(uint32_t file)
{
    snprintf(path, sizeof path, "%s/bench/d%03u/f%03u", root, file / FILES_PER_DIRECTORY,
             file % FILES_PER_DIRECTORY);
}

static void directory_path(uint32_t file)
{
    snprintf(path, sizeof path, "%s/bench/d%03u", root, file / FILES_PER_DIRECTORY);
}

static int fail(const char *phase, const char *what)
{
    printf("fsbench %s FAILED: %s %s: %s\n", phase, what, path, strerror(errno));
    return 1;
}

static void report(const char *phase, const char *unit, uint64_t count, uint64_t start)
{
    printf("fsbench %s %s=%llu ns=%llu\n", phase, unit, (unsigned long long)count,
           (unsigned long long)(monotonic_ns() - start));
    fflush(stdout);
}

static int create_phase(void)
{
    unsigned char data[FILE_BYTES];
    uint64_t start = monotonic_ns();
    snprintf(path, sizeof path, "%s/bench", root);
    if (mkdir(path, 0755) != 0)
        return fail("create", "mkdir");
    for (uint32_t file = 0; file < DIRECTORIES * FILES_PER_DIRECTORY; file++) {
        if (file % FILES_PER_DIRECTORY == 0) {
            directory_path(file);
            if (mkdir(path, 0755) != 0)
                return fail("create", "mkdir");
        }
        for (uint32_t at = 0; at < FILE_BYTES; at++)
            data[at] = file_byte(file, at);
        file_path(file);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0)
            return fail("create", "open");
        if (write(fd, data, FILE_BYTES) != (ssize_t)FILE_BYTES || close(fd) != 0)
            return fail("create", "write");
    }
    sync();
    report("create", "files", DIRECTORIES * FILES_PER_DIRECTORY, start);
    return 0;
}

static int drop_caches(void)
{
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    if (fd < 0 || write(fd, "3", 1) != 1 || close(fd) != 0) {
        snprintf(path, sizeof path, "/proc/sys/vm/drop_caches");
        return fail("read", "write 3 to");
    }
    return 0;
}

static int read_phase(void)
{
    unsigned char data[4096];
    uint64_t start = monotonic_ns();
    for (uint32_t file = 0; file < DIRECTORIES * FILES_PER_DIRECTORY; file++) {
        file_path(file);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            return fail("read", "open");
        ssize_t got = read(fd, data, sizeof data);
        close(fd);
        if (got != (ssize_t)FILE_BYTES) {
            printf("fsbench read FAILED: %s: read %zd bytes\n", path, got);
            return 1;
        }
        for (uint32_t at = 0; at < FILE_BYTES; at++) {
            if (data[at] != file_byte(file, at)) {
                printf("fsbench read FAILED: %s: wrong byte at %u\n", path, at);
                return 1;
            }
        }
    }
    report("read", "files", DIRECTORIES * FILES_PER_DIRECTORY, start);
    return 0;
}

static int delete_phase(void)
{
    uint64_t start = monotonic_ns();
    for (uint32_t file = 0; file < DIRECTORIES * FILES_PER_DIRECTORY; file++) {
        file_path(file);
        if (unlink(path) != 0)
            return fail("delete", "unlink");
        if (file % FILES_PER_DIRECTORY == FILES_PER_DIRECTORY - 1) {
            directory_path(file);
            if (rmdir(path) != 0)
                return fail("delete", "rmdir");
        }
    }
    snprintf(path, sizeof path, "%s/bench", root);
    if (rmdir(path) != 0)
        return fail("delete", "rmdir");
    sync();
    report("delete", "files", DIRECTORIES * FILES_PER_DIRECTORY, start);
    return 0;
}

/* The random reads of BIG and of DEVICE in turns of TURN_READS (BIG's turn, then
 * DEVICE's over the same offsets), each kind's time summed, as the app does. */
static int random_reads(const char *file, const char *device)
{
    static unsigned char buffer[READ_BYTES] __attribute__((aligned(4096)));
    const char *phases[2] = {"randread-file", "randread-raw"};
    const char *paths[2] = {file, device};
    int fds[2];
    uint64_t ns[2] = {0, 0};
    for (int kind = 0; kind < 2; kind++) {
        snprintf(path, sizeof path, "%s", paths[kind]);
        fds[kind] = open(paths[kind], O_RDONLY | O_DIRECT);
        if (fds[kind] < 0)
            return fail(phases[kind], "open");
    }
    offsets_state = 0x9E3779B97F4A7C15ull;
    for (uint64_t turn = 0; turn < RANDOM_READS / TURN_READS; turn++) {
        uint64_t turn_state = offsets_state;
        for (int kind = 0; kind < 2; kind++) {
            offsets_state = turn_state;
            snprintf(path, sizeof path, "%s", paths[kind]);
            uint64_t start = monotonic_ns();
            for (uint64_t i = 0; i < TURN_READS; i++) {
                off_t at = (off_t)next_offset(BIG_FILE_BYTES);
                if (pread(fds[kind], buffer, READ_BYTES, at) != (ssize_t)READ_BYTES)
                    return fail(phases[kind], "pread");
            }
            ns[kind] += monotonic_ns() - start;
        }
    }
    for (int kind = 0; kind < 2; kind++) {
        printf("fsbench %s reads=%llu ns=%llu\n", phases[kind], RANDOM_READS,
               (unsigned long long)ns[kind]);
        close(fds[kind]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        printf("fsbench FAILED: usage: rexo-fsbench DIR DEVICE BIG\n");
        return 1;
    }
    root = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (create_phase() || drop_caches() || read_phase() || delete_phase() || drop_caches() ||
        random_reads(argv[3], argv[2]))
        return 1;
    printf("fsbench done\n");
    return 0;
}
