/* c-cores: a C app that uses every core and a memory capability, lists the kernel's
 * revocation requests (none), checks that a task outgrowing its stack ends alone, and
 * checks that bad arguments give the documented error codes. Prints "c-cores: ok" and returns 0, or
 * prints what failed and returns a negative code. */
#define APP "c-cores"
#include "check.h"

int c_cores_main(void);

/* Run on every core: counts the core once and records that it ran there. */
struct tally {
    unsigned count;
    uint64_t seen; /* bit i: the app's core i (its place, not the machine's index) ran it */
};

static void count_core(void *arg, unsigned core)
{
    struct tally *tally = arg;
    __atomic_fetch_add(&tally->count, 1, __ATOMIC_SEQ_CST);
    if (core < 64)
        __atomic_fetch_or(&tally->seen, (uint64_t)1 << core, __ATOMIC_SEQ_CST);
}

static int check_cores(void)
{
    unsigned cores = rexo_cores();
    struct tally tally = {0, 0};
    EXPECT("rexo_run_on_every_core", rexo_run_on_every_core(count_core, &tally), REXO_OK);
    EXPECT("the counter", __atomic_load_n(&tally.count, __ATOMIC_SEQ_CST), cores);
    uint64_t all = cores >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << cores) - 1;
    EXPECT("the cores seen", __atomic_load_n(&tally.seen, __ATOMIC_SEQ_CST), all);
    struct line line = {.length = 0};
    line_text(&line, "c-cores: cores=");
    line_number(&line, cores);
    line_text(&line, " counter=");
    line_number(&line, tally.count);
    line_end(&line);
    return REXO_OK;
}

/* A frame larger than the whole stack, as a function with a big local array has: built
 * with -fstack-clash-protection (image/build.rs), it touches the stack's guard page as it
 * grows, which ends the task; without it, it would reach past the guard page into the
 * memory below (it only reads that memory, should it get there). */
__attribute__((noinline)) static int outgrow_the_stack(void)
{
    volatile unsigned char frame[160 * 1024];
    __asm__ volatile("" : : "r"(frame) : "memory");
    return frame[0];
}

/* Run on every core: the app's last core outgrows its stack. */
static void outgrow_on_the_last_core(void *arg, unsigned core)
{
    (void)arg;
    if (core + 1 == rexo_cores())
        outgrow_the_stack();
}

static int check_stack(void)
{
    EXPECT("rexo_run_on_every_core, a task outgrowing its stack",
           rexo_run_on_every_core(outgrow_on_the_last_core, NULL), REXO_EPERM);
    struct tally tally = {0, 0};
    EXPECT("rexo_run_on_every_core after it", rexo_run_on_every_core(count_core, &tally), REXO_OK);
    EXPECT("the counter after it", __atomic_load_n(&tally.count, __ATOMIC_SEQ_CST), rexo_cores());
    say("c-cores: a task whose frame outgrew its stack ended alone\n");
    return REXO_OK;
}

static int check_time_and_memory(void)
{
    uint64_t before = rexo_now_ns();
    rexo_sleep_ns(1000000);
    if (rexo_now_ns() <= before)
        return fail("rexo_now_ns after rexo_sleep_ns", (int64_t)rexo_now_ns(), (int64_t)before + 1);
    int byte = rexo_read_byte();
    if (byte < -1 || byte > 255)
        return fail("rexo_read_byte", byte, -1);
    uint64_t usable = 0, free_bytes = 0;
    EXPECT("rexo_memory", rexo_memory(&usable, &free_bytes), REXO_OK);
    if (usable == 0 || free_bytes > usable)
        return fail("rexo_memory: free <= usable", (int64_t)free_bytes, (int64_t)usable);
    return REXO_OK;
}

static int check_capability(void)
{
    enum { SIZE = 8192, AT = 4000, N = 200 };
    EXPECT_HANDLE("rexo_mem_alloc", handle, rexo_mem_alloc(SIZE));
    unsigned char out[N], in[N];
    for (int i = 0; i < N; i++)
        out[i] = (unsigned char)(i * 7 + 3);
    EXPECT("rexo_mem_write", rexo_mem_write(handle, AT, out, N), REXO_OK);
    for (int i = 0; i < N; i++)
        in[i] = 0;
    EXPECT("rexo_mem_read", rexo_mem_read(handle, AT, in, N), REXO_OK);
    for (int i = 0; i < N; i++)
        EXPECT("the byte read back", in[i], out[i]);
    EXPECT("rexo_mem_read of fresh memory", rexo_mem_read(handle, 0, in, 1), REXO_OK);
    EXPECT("fresh memory is zeroed", in[0], 0);

    /* Bad arguments: the documented codes, and nothing changes. */
    EXPECT("rexo_write(NULL, 5)", rexo_write(NULL, 5), REXO_EINVAL);
    EXPECT("rexo_write(NULL, 0)", rexo_write(NULL, 0), REXO_OK);
    EXPECT("rexo_write(page 0)", rexo_write((const void *)16, 4), REXO_EFAULT);
    EXPECT("rexo_log(wrapping)", rexo_log((const char *)(uintptr_t)-4, 8), REXO_EFAULT);
    EXPECT("rexo_memory(NULL, ..)", rexo_memory(NULL, &(uint64_t){0}), REXO_EINVAL);
    EXPECT("rexo_run_on_every_core(NULL)", rexo_run_on_every_core(NULL, NULL), REXO_EINVAL);
    EXPECT("rexo_mem_alloc(0)", rexo_mem_alloc(0), REXO_EINVAL);
    EXPECT("rexo_mem_alloc(2^62)", rexo_mem_alloc((uint64_t)1 << 62), REXO_ENOMEM);
    EXPECT("rexo_mem_read(NULL buffer)", rexo_mem_read(handle, 0, NULL, 4), REXO_EINVAL);
    EXPECT("rexo_mem_write past the end", rexo_mem_write(handle, SIZE - 10, out, 16), REXO_ERANGE);
    EXPECT("rexo_mem_read at an offset past the end", rexo_mem_read(handle, SIZE, in, 1), REXO_ERANGE);
    EXPECT("rexo_mem_read with an overflowing offset", rexo_mem_read(handle, UINT64_MAX, in, 2), REXO_ERANGE);
    EXPECT("rexo_mem_read of handle 0", rexo_mem_read(0, 0, in, 1), REXO_EBADF);
    EXPECT("rexo_mem_read of a made-up handle", rexo_mem_read(handle + 1000, 0, in, 1), REXO_EBADF);

    /* The kernel asks nothing back here; bad lists are refused. */
    struct rexo_revocation asked[2];
    EXPECT("rexo_revocation_requests", rexo_revocation_requests(asked, 2), 0);
    EXPECT("rexo_revocation_requests(NULL, 1)", rexo_revocation_requests(NULL, 1), REXO_EINVAL);
    EXPECT("rexo_revocation_requests(page 0)", rexo_revocation_requests((struct rexo_revocation *)16, 1), REXO_EFAULT);
    EXPECT("rexo_revocation_requests(overflowing max)", rexo_revocation_requests(asked, SIZE_MAX / 8), REXO_EINVAL);

    EXPECT("rexo_mem_return", rexo_mem_return(handle), REXO_OK);
    EXPECT("rexo_mem_read of a returned handle", rexo_mem_read(handle, 0, in, 1), REXO_EBADF);
    EXPECT("rexo_mem_write of a returned handle", rexo_mem_write(handle, 0, out, 1), REXO_EBADF);
    EXPECT("rexo_mem_return twice", rexo_mem_return(handle), REXO_EBADF);
    return REXO_OK;
}

int c_cores_main(void)
{
    int rc = check_cores();
    if (rc == REXO_OK)
        rc = check_stack();
    if (rc == REXO_OK)
        rc = check_time_and_memory();
    if (rc == REXO_OK)
        rc = check_capability();
    if (rc == REXO_OK)
        say("c-cores: ok\n");
    return rc;
}
