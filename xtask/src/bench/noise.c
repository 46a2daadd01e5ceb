/* OS noise on Linux (Rexo's benchmark suite, docs/bench.md): one thread pinned to
 * each online core runs QUANTA fixed work quanta (1000 steps of a 64-bit LCG each) and
 * records each quantum's duration with the TSC; the TSC is converted to ns against
 * CLOCK_MONOTONIC over the whole run. Prints one line per core:
 *   noise core=C quanta=N min_ns=.. median_ns=.. p99_ns=.. max_ns=..
 * Built by xtask with `gcc -static -O2 -pthread`. */
#define _GNU_SOURCE
#include <errno.h>
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

struct core {
    pthread_t thread;
    int index;
    long quanta;
    uint64_t *cycles;
    uint64_t total_cycles;
    uint64_t total_ns;
    uint64_t result;
    int error;
};

static uint64_t monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
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
    uint64_t start_ns = monotonic_ns();
    uint64_t start = __rdtsc();
    uint64_t previous = start;
    for (long q = 0; q < c->quanta; q++) {
        for (int i = 0; i < STEPS; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            /* Rust's core::hint::black_box, as Rexo's loop does: the value goes through
             * memory, so that the compiler can neither fold the steps nor drop them. */
            __asm__ volatile("" : : "r"(&x) : "memory");
        }
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
        all[i].cycles = malloc((size_t)quanta * sizeof(uint64_t));
        if (!all[i].cycles || pthread_create(&all[i].thread, NULL, run, &all[i]) != 0) {
            printf("noise FAILED: cannot start the thread of core %ld\n", i);
            return 1;
        }
    }
    for (long i = 0; i < cores; i++)
        pthread_join(all[i].thread, NULL);
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
