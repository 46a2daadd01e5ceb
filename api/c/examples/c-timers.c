/* c-timers: a C app over its core and timer capabilities and the clocks. It reads the
 * wall clock, lists its core handles, arms the calling core's timer, sleeps until it
 * fires, returns it, gives a core back, and checks the error codes of bad handles,
 * deadlines and arguments. Run by another app (the monitor's `run c-timers`), it holds
 * no core handles and checks the rest. Prints
 * "c-timers: ok" and returns 0, or prints what failed and returns a negative code.
 *
 * Its state lives on the stack of c_timers_main: the globals of a C app are shared by
 * every run of it (two boot manifest entries naming it run at once, each with handles
 * of its own), and its cores need not start at the machine's core 0. */
#define APP "c-timers"
#include "check.h"

int c_timers_main(void);

enum { MAX_CORES = 64 };
/* How far ahead the timer is armed. */
#define WAIT_NS 20000000ull
/* How long past its deadline the app waits for the timer before it fails. */
#define GIVE_UP_NS 10000000000ull

/* Run on every core: counts the cores it ran on. */
static void count_core(void *arg, unsigned core)
{
    (void)core;
    __atomic_fetch_add((unsigned *)arg, 1, __ATOMIC_SEQ_CST);
}

/* Run on every core: sets the bit of the core's machine index. */
static void mark_core(void *arg, unsigned core)
{
    (void)core;
    unsigned index = rexo_core_index();
    if (index < 64)
        __atomic_fetch_or((uint64_t *)arg, (uint64_t)1 << index, __ATOMIC_SEQ_CST);
}

/* The handle among the `count` in `held` of the core with machine index `core`, or 0. */
static int64_t handle_of(const int64_t *held, unsigned count, unsigned core)
{
    for (unsigned i = 0; i < count; i++)
        if (rexo_core_cap_index(held[i]) == (int)core)
            return held[i];
    return 0;
}

/* A handle among the `count` in `held` of a core other than `core`, or 0. */
static int64_t handle_not_of(const int64_t *held, unsigned count, unsigned core)
{
    for (unsigned i = 0; i < count; i++) {
        int index = rexo_core_cap_index(held[i]);
        if (index >= 0 && index != (int)core)
            return held[i];
    }
    return 0;
}

/* Checks the `cores` handles rexo_core_caps lists into `held`: one per core of the run,
 * each naming one of its cores (machine indices, which start where the run's cores
 * start). */
static int check_core_handles(int64_t *held, unsigned cores)
{
    uint64_t seen = 0;
    for (unsigned i = 0; i < cores; i++) {
        int core = rexo_core_cap_index(held[i]);
        if (core < 0 || core >= 64)
            return fail("rexo_core_cap_index", core, i);
        seen |= (uint64_t)1 << core;
    }
    uint64_t mine = 0;
    EXPECT("rexo_run_on_every_core", rexo_run_on_every_core(mark_core, &mine), REXO_OK);
    EXPECT("the cores the handles name", seen, __atomic_load_n(&mine, __ATOMIC_SEQ_CST));

    /* Listing again gives the same handles; a short list gets the first and the count. */
    int64_t again[MAX_CORES];
    EXPECT("rexo_core_caps again", rexo_core_caps(again, MAX_CORES), cores);
    for (unsigned i = 0; i < cores; i++)
        EXPECT("the same handle", again[i], held[i]);
    int64_t one[2] = {0, -99};
    EXPECT("rexo_core_caps(list, 1)", rexo_core_caps(one, 1), cores);
    EXPECT("the first handle", one[0], held[0]);
    EXPECT("nothing written past max", one[1], -99);
    return REXO_OK;
}

/* Lists the run's core handles into `held`: `cores` of them, or none in a run another app
 * started (it runs on its caller's cores, with the caller's capabilities). */
static int check_core_caps(int64_t *held, unsigned cores)
{
    EXPECT("rexo_core_caps", rexo_core_caps(held, MAX_CORES), cores);
    if (cores > 0) {
        int rc = check_core_handles(held, cores);
        if (rc != REXO_OK)
            return rc;
    }
    EXPECT("rexo_core_caps(NULL, 0)", rexo_core_caps(NULL, 0), cores);

    /* Bad arguments: the documented codes, and nothing changes. */
    EXPECT("rexo_core_caps(NULL, 4)", rexo_core_caps(NULL, 4), REXO_EINVAL);
    EXPECT("rexo_core_caps(page 0)", rexo_core_caps((int64_t *)16, 2), REXO_EFAULT);
    EXPECT("rexo_core_caps(overflowing max)", rexo_core_caps(held, SIZE_MAX / 4), REXO_EINVAL);
    EXPECT("rexo_core_cap_index(0)", rexo_core_cap_index(0), REXO_EBADF);
    EXPECT("rexo_core_return(0)", rexo_core_return(0), REXO_EBADF);
    EXPECT("rexo_core_caps after the bad calls", rexo_core_caps(NULL, 0), cores);
    if (cores == 0) {
        say("c-timers: no core capabilities of its own (a run another app started)\n");
        return REXO_OK;
    }
    struct line line = {.length = 0};
    line_text(&line, "c-timers: ");
    line_number(&line, cores);
    line_text(&line, " core capabilities");
    line_end(&line);
    return REXO_OK;
}

/* Arms this core's timer; `core_handle` is one of the run's core handles, or 0 when it
 * holds none. */
static int check_timer(int64_t core_handle)
{
    /* Deadlines that are not in the future. */
    EXPECT("rexo_timer_arm(0)", rexo_timer_arm(0), REXO_ETIME);
    EXPECT("rexo_timer_arm(now)", rexo_timer_arm(rexo_now_ns()), REXO_ETIME);

    /* A deadline that passed before the call got there is refused; arm again then. */
    uint64_t deadline = 0;
    int64_t timer = REXO_ETIME;
    for (int tries = 0; timer == REXO_ETIME && tries < 100; tries++) {
        deadline = rexo_now_ns() + WAIT_NS;
        timer = rexo_timer_arm(deadline);
    }
    if (timer <= 0)
        return fail("rexo_timer_arm", timer, 1);
    int fired = rexo_timer_fired(timer);
    if (rexo_now_ns() < deadline)
        EXPECT("rexo_timer_fired before the deadline", fired, 0);
    EXPECT("a second rexo_timer_arm on the core", rexo_timer_arm(deadline + GIVE_UP_NS), REXO_EBUSY);
    EXPECT("rexo_timer_arm in the past while one is held", rexo_timer_arm(1), REXO_ETIME);

    /* Each nap asks for a second more than the deadline: the timer ends it. */
    unsigned naps = 0;
    while ((fired = rexo_timer_fired(timer)) == 0) {
        uint64_t now = rexo_now_ns();
        if (now > deadline + GIVE_UP_NS)
            return fail("the timer fired within 10 s of its deadline", 0, 1);
        rexo_sleep_ns(deadline - (now < deadline ? now : deadline) + 1000000000ull);
        naps++;
    }
    uint64_t woke = rexo_now_ns();
    EXPECT("rexo_timer_fired", fired, 1);
    if (woke < deadline)
        return fail("the time after the timer fired", (int64_t)woke, (int64_t)deadline);
    struct line line = {.length = 0};
    line_text(&line, "c-timers: the timer fired ");
    line_number(&line, (int64_t)((woke - deadline) / 1000));
    line_text(&line, " us after its deadline, after ");
    line_number(&line, naps);
    line_text(&line, " naps");
    line_end(&line);

    /* Calls on a handle of another kind: refused, and the timer stays. */
    if (core_handle > 0) {
        EXPECT("rexo_timer_fired of a core handle", rexo_timer_fired(core_handle), REXO_EBADF);
        EXPECT("rexo_timer_return of a core handle", rexo_timer_return(core_handle), REXO_EBADF);
    }
    EXPECT("rexo_core_return of a timer handle", rexo_core_return(timer), REXO_EBADF);
    EXPECT("rexo_mem_return of a timer handle", rexo_mem_return(timer), REXO_EBADF);
    EXPECT("rexo_dev_close of a timer handle", rexo_dev_close(timer), REXO_EBADF);
    EXPECT("rexo_timer_fired of a made-up handle", rexo_timer_fired(timer + 1000), REXO_EBADF);
    EXPECT("rexo_timer_fired after the refused calls", rexo_timer_fired(timer), 1);

    EXPECT("rexo_timer_return", rexo_timer_return(timer), REXO_OK);
    EXPECT("rexo_timer_fired of a returned timer", rexo_timer_fired(timer), REXO_EBADF);
    EXPECT("rexo_timer_return twice", rexo_timer_return(timer), REXO_EBADF);

    /* The core's timer is free again; returning a timer that has not fired cancels it. */
    uint64_t later_deadline = rexo_now_ns() + GIVE_UP_NS;
    EXPECT_HANDLE("rexo_timer_arm after the return", later, rexo_timer_arm(later_deadline));
    fired = rexo_timer_fired(later);
    if (rexo_now_ns() < later_deadline)
        EXPECT("rexo_timer_fired of the later timer", fired, 0);
    EXPECT("rexo_timer_return of an armed timer", rexo_timer_return(later), REXO_OK);
    say("c-timers: timer armed, fired, returned\n");
    return REXO_OK;
}

/* Gives the run's cores back; `held` has its `cores` handles. */
static int check_core_return(int64_t *held, unsigned cores)
{
    unsigned here = rexo_core_index();
    if (cores > 1) {
        /* Give back a core other than this one: nothing runs on every core any more. */
        int64_t other = handle_not_of(held, cores, here);
        if (other <= 0)
            return fail("a handle of another core", other, 1);
        EXPECT("rexo_core_return", rexo_core_return(other), REXO_OK);
        EXPECT("rexo_core_caps after the return", rexo_core_caps(held, MAX_CORES), cores - 1);
        for (unsigned i = 0; i + 1 < cores; i++)
            if (held[i] == other)
                return fail("the returned handle is still listed", other, 0);
        EXPECT("rexo_core_return twice", rexo_core_return(other), REXO_EBADF);
        EXPECT("rexo_core_cap_index of a returned handle", rexo_core_cap_index(other), REXO_EBADF);
        unsigned ran = 0;
        EXPECT("rexo_run_on_every_core without one of the cores",
               rexo_run_on_every_core(count_core, &ran), REXO_EPERM);
        EXPECT("the cores that ran", __atomic_load_n(&ran, __ATOMIC_SEQ_CST), 0);
        /* This core is still the app's: its timer can be armed. */
        EXPECT_HANDLE("rexo_timer_arm on a core still held", timer, rexo_timer_arm(rexo_now_ns() + GIVE_UP_NS));
        EXPECT("rexo_timer_return", rexo_timer_return(timer), REXO_OK);
        cores--;
    }
    /* Give back this core: its timer can no longer be armed. */
    int64_t mine = handle_of(held, cores, here);
    if (mine <= 0)
        return fail("the handle of this core", mine, 1);
    EXPECT("rexo_core_return of this core", rexo_core_return(mine), REXO_OK);
    EXPECT("rexo_timer_arm on a core given back", rexo_timer_arm(rexo_now_ns() + GIVE_UP_NS), REXO_EPERM);
    EXPECT("rexo_core_caps at the end", rexo_core_caps(NULL, 0), cores - 1);
    say("c-timers: cores given back\n");
    return REXO_OK;
}

/* The wall clock: after 2020 (QEMU's CMOS clock is the host's), read once, then
 * counted on the monotonic clock. */
static int check_wall_clock(void)
{
    int64_t first = rexo_unix_time();
    if (first < 1577836800)
        return fail("rexo_unix_time", first, 1577836800);
    int64_t again = rexo_unix_time();
    if (again < first || again > first + 1)
        return fail("rexo_unix_time read again", again, first);
    struct line line = {.length = 0};
    line_text(&line, "c-timers: the wall clock reads ");
    line_number(&line, first);
    line_text(&line, " s since 1970");
    line_end(&line);
    return REXO_OK;
}

int c_timers_main(void)
{
    unsigned cores = rexo_cores();
    if (cores > MAX_CORES)
        return fail("rexo_cores", cores, MAX_CORES);
    /* The run's core handles, as rexo_core_caps lists them: one per core, or none in a
     * run another app started (the monitor's `run c-timers`). */
    int64_t held[MAX_CORES];
    unsigned held_cores = rexo_core_caps(NULL, 0) == 0 ? 0 : cores;
    int rc = check_wall_clock();
    if (rc == REXO_OK)
        rc = check_core_caps(held, held_cores);
    if (rc == REXO_OK)
        rc = check_timer(held_cores > 0 ? held[0] : 0);
    if (rc == REXO_OK && held_cores > 0)
        rc = check_core_return(held, held_cores);
    if (rc == REXO_OK)
        say("c-timers: ok\n");
    return rc;
}
