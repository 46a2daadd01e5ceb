/* OS noise on Linux (Rexo's benchmark suite, docs/bench.md): one thread pinned to
 * each online core runs QUANTA fixed work quanta (1000 steps of a 64-bit LCG each) and
 * records each quantum's duration with the TSC, after WARM_UP quanta unrecorded; the TSC
 * is converted to ns against CLOCK_MONOTONIC over the whole run. Before the threads start
 * it prints "noise ready" and waits (at most 10 s) for a line on its standard input,
 * the console: the host's go-ahead, once it made QEMU's vCPU threads real-time; after
 * them "noise measured", then one line per core:
 *   noise core=C quanta=N min_ns=.. median_ns=.. p99_ns=.. max_ns=..
 * Built by xtask with `gcc -static -O2 -pthread`. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

/* LCG steps per quantum: the same as Rexo's noise app (apps/devcheck/src/noise.rs). */
#define STEPS 1000
/* Quanta run before measuring (rexo_devcheck::noise::WARM_UP). */
#define WARM_UP 2000

struct core {
    pthread_t thread;
    int index;
    long cores;
    long quanta;
    uint64_t *cycles;
    uint64_t total_cycles;
    uint64_t total_ns;
    uint64_t result;
    int error;
};

/* Threads that finished their warm-up. */
static long warmed_up;

static uint64_t monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* One quantum: STEPS dependent multiply-adds. Each value goes through memory (an empty
 * asm taking its address, as Rust's core::hint::black_box in Rexo's loop), so that the
 * compiler can neither fold the steps nor drop them. */
static uint64_t quantum(uint64_t x)
{
    for (int i = 0; i < STEPS; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        __asm__ volatile("" : : "r"(&x) : "memory");
    }
    return x;
}

static void *run(void *arg)
{
    struct core *c = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(c->index, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        c->error = errno;
        return NULL;
    }
    uint64_t x = (uint64_t)c->index + 1;
    for (long q = 0; q < WARM_UP; q++)
        x = quantum(x);
    /* Every core starts measuring once all have warmed up (Rexo's app does the same). */
    __atomic_add_fetch(&warmed_up, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&warmed_up, __ATOMIC_SEQ_CST) < c->cores)
        ;
    uint64_t start_ns = monotonic_ns();
    uint64_t start = __rdtsc();
    uint64_t previous = start;
    for (long q = 0; q < c->quanta; q++) {
        x = quantum(x);
        uint64_t now = __rdtsc();
        c->cycles[q] = now - previous;
        previous = now;
    }
    c->total_cycles = previous - start;
    c->total_ns = monotonic_ns() - start_ns;
    c->result = x;
    return NULL;
}

static int compare(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    long quanta = argc > 1 ? atol(argv[1]) : 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (quanta < 100 || cores < 1) {
        printf("noise FAILED: usage: rexo-noise QUANTA (at least 100), %ld cores\n", cores);
        return 1;
    }
    struct core *all = calloc((size_t)cores, sizeof *all);
    if (!all) {
        printf("noise FAILED: out of memory\n");
        return 1;
    }
    for (long i = 0; i < cores; i++) {
        all[i].index = (int)i;
        all[i].quanta = quanta;
        all[i].cores = cores;
        all[i].cycles = malloc((size_t)quanta * sizeof(uint64_t));
        if (!all[i].cycles) {
            printf("noise FAILED: out of memory\n");
            return 1;
        }
        /* Touched now, so that no page fault lands inside the measured loop. */
        memset(all[i].cycles, 0, (size_t)quanta * sizeof(uint64_t));
    }
    /* The noise window (rexo_devcheck::noise::READY/GO/MEASURED): the host makes QEMU's
     * vCPU threads real-time, types a line, and ends that at "noise measured". */
    printf("noise ready\n");
    fflush(stdout);
    struct pollfd console = {.fd = 0, .events = POLLIN};
    if (poll(&console, 1, 10000) > 0) {
        char line[16];
        if (read(0, line, sizeof line) < 0)
            printf("noise: no go-ahead from the host (%s); measuring anyway\n", strerror(errno));
    }
    for (long i = 0; i < cores; i++) {
        if (pthread_create(&all[i].thread, NULL, run, &all[i]) != 0) {
            printf("noise FAILED: cannot start the thread of core %ld\n", i);
            return 1;
        }
    }
    for (long i = 0; i < cores; i++)
        pthread_join(all[i].thread, NULL);
    printf("noise measured\n");
    fflush(stdout);
    for (long i = 0; i < cores; i++) {
        struct core *c = &all[i];
        if (c->error) {
            printf("noise FAILED: sched_setaffinity(core %ld): %s\n", i, strerror(c->error));
            return 1;
        }
        double ns_per_cycle = c->total_cycles ? (double)c->total_ns / (double)c->total_cycles : 0.0;
        qsort(c->cycles, (size_t)quanta, sizeof(uint64_t), compare);
        printf("noise core=%ld quanta=%ld min_ns=%.0f median_ns=%.0f p99_ns=%.0f max_ns=%.0f\n", i,
               quanta, c->cycles[0] * ns_per_cycle, c->cycles[quanta / 2] * ns_per_cycle,
               c->cycles[quanta * 99 / 100] * ns_per_cycle, c->cycles[quanta - 1] * ns_per_cycle);
    }
    return 0;
}
