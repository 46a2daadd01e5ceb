/* rexo.h: the Rexo kernel API as a C ABI.
 *
 * The same calls as the Rust crate `rexo-api` (`Kernel`), for apps written in C
 * and compiled with `gcc -ffreestanding` into the kernel image (see docs/api.md, "The C
 * ABI"). A C app is one function, `int NAME_main(void)`, listed in the kernel's app
 * table; it returns 0 on success, or one of the negative REXO_E* codes below to end
 * with that error. NAME_main is the one global symbol the file may define: make every
 * other function and variable `static`. The app's object is linked into the kernel, and
 * the build stops at one defining another global (an app's own `memset` would replace
 * the kernel's, for the whole kernel). There is no C library: memcpy, memmove, memset
 * and memcmp are the kernel's, there to call. There is no floating point either: the
 * kernel saves no x87 or SSE state, so the apps are built with -mno-sse -mno-80387, and
 * a `float` or `double` is a compile error ("SSE register return with SSE disabled");
 * compute in integers (fixed point: nanoseconds, thousandths).
 *
 * A C app is one object file linked into the kernel, so its global and static variables
 * are one copy shared by every run of it: two runs at once (two boot manifest entries
 * naming it, each its own capability owner with handles of its own) see the same
 * globals, and a run (the monitor's `run NAME` again) finds them as the last one left
 * them. Keep a run's state, its handles above all, on the stack (NAME_main's locals,
 * passed down) or in memory the run allocates (rexo_mem_alloc, rexo_map_memory); a
 * global shared by runs must be indexed by something a run owns, such as
 * rexo_core_index() (the cores of two manifest entries never overlap), and set afresh
 * by each run.
 *
 * A C app runs on its core's kernel stack: 128 KiB, the kernel's frames below NAME_main
 * (or below the function rexo_run_on_every_core runs) among them. Keep large buffers in
 * memory the run allocates, not in local arrays. Running out of stack ends the app (or,
 * for a function rexo_run_on_every_core runs, the task on that core: REXO_EPERM), never
 * the kernel: below the stack lies an unmapped guard page, and the C apps are compiled
 * with -fstack-clash-protection, so a frame larger than that page touches it as it
 * grows instead of reaching past it into the memory below (another core's stack, say).
 * A rexo_ call that takes a kernel lock (memory, cores, timers, devices) with less than
 * 16 KiB of the stack left ends the app the same way.
 *
 * Every call checks its arguments: a NULL pointer with a non-zero length, a buffer
 * outside RAM, an unknown handle or an out-of-range offset gives a negative error code
 * and changes nothing; it never crashes the kernel. Argument errors are reported before
 * anything else. Buffers are checked against the machine's usable RAM (page 0, the
 * addresses past the end of RAM and the pages of it the kernel leaves unmapped, such as
 * its stacks' guard pages, are refused); C apps run trusted, without page protection,
 * so a pointer into RAM the app does not own is not detected.
 *
 * Memory, core and timer capabilities and open devices appear in C as opaque handles:
 * positive 64-bit numbers, private to the run of the app that got them and never
 * reused, so a handle that was returned or closed stays invalid. What a run still holds
 * when it returns goes back to the kernel.
 *
 * Devices from C copy: block data and frames go between the caller's buffer and the
 * driver's DMA buffers (the Rust interface lends those in place, with no copy). Memory
 * views (rexo_map_memory) are zero-copy in C too.
 */
#ifndef REXO_H
#define REXO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A compile-time check of the layouts below, in C11 and in C++11 alike. */
#ifdef __cplusplus
#define REXO_STATIC_ASSERT(condition, message) static_assert(condition, message)
#else
#define REXO_STATIC_ASSERT(condition, message) _Static_assert(condition, message)
#endif

/* Error codes (negative `int`, or `int64_t` for rexo_mem_alloc). */

/* Success. */
#define REXO_OK 0
/* An invalid argument: a NULL pointer with a non-zero length, a NULL function or
 * out-parameter, a zero size. */
#define REXO_EINVAL (-1)
/* A buffer outside RAM: it starts in page 0, wraps around the address space, or does
 * not lie within one region of usable RAM; or a page of it is not mapped (a kernel
 * stack's guard page); or it lies in memory the kernel took back by force (a view past
 * its revocation deadline). */
#define REXO_EFAULT (-2)
/* No such handle for this app: never issued, already returned or closed, another
 * app's, or a handle of another kind (a disk handle given to a network call). */
#define REXO_EBADF (-3)
/* The offset and length reach past the end of the memory the handle names, or the
 * blocks past the end of the disk. */
#define REXO_ERANGE (-4)
/* No memory (or capability-table entry, in all or of the app's limit of 64) left to
 * grant, or none for a driver's request (the block and network calls); a shared
 * interface holding the most bindings it takes, REXO_MAX_NET_BINDINGS in all or
 * REXO_MAX_APP_NET_BINDINGS of the calling app's, until one ends, or whose filters,
 * merged with the new one, would cost a frame more than 32 field tests (rexo_net_bind). */
#define REXO_ENOMEM (-5)
/* Busy: a core's work queue was full (rexo_run_on_every_core: `fn` did not run there
 * nor on the cores after it, but may have run on those before it); the device is held
 * by another app or its queue is full (call again), or a filter overlaps another app's
 * (rexo_net_bind); the memory is mapped (its handle is busy until rexo_unmap_memory);
 * the core's timer is held (rexo_timer_arm). */
#define REXO_EBUSY (-6)
/* The kernel refused the request (for example a capability revoked by the kernel or
 * lacking the needed right). */
#define REXO_EPERM (-7)
/* The call needs a C app (capabilities, devices, running on cores) but none runs on
 * this core. */
#define REXO_ENOAPP (-8)
/* No device of that kind and index (rexo_devices lists them), no wall clock the
 * kernel can read (rexo_unix_time), or no random number from the CPU
 * (rexo_random_u64). */
#define REXO_ENODEV (-9)
/* The device or its driver failed the request (an error status, a timeout, the driver
 * reset the device while the request was in flight, a block transfer of another length
 * than asked). */
#define REXO_EIO (-10)
/* A frame longer than the interface carries (rexo_net_info's max_frame) or shorter
 * than an Ethernet header (14 bytes). */
#define REXO_EMSGSIZE (-11)
/* A deadline that is not in the future (rexo_timer_arm). */
#define REXO_ETIME (-12)

/* How many cores the app has (at least 1): every core that runs the work loop, or the
 * cores its boot manifest entry gives it, or in a run another app started (the
 * monitor's `run NAME`) its caller's. */
unsigned rexo_cores(void);

/* The index of the core running the caller (0 is the boot core). */
unsigned rexo_core_index(void);

/* Nanoseconds since boot (monotonic, from the TSC). */
uint64_t rexo_now_ns(void);

/* Seconds since 1970-01-01 00:00:00 UTC, to the second: the machine's CMOS clock, read at
 * the first call and assumed to keep UTC, plus the time since. REXO_ENODEV (negative) on a
 * machine without a clock the kernel can read. */
int64_t rexo_unix_time(void);

/* Stores a random number from the CPU at `out` (RDSEED where the CPU has it, else or
 * when it has none ready RDRAND, each tried 10 times) and returns REXO_OK; REXO_ENODEV
 * (nothing stored) when the CPU has neither or every try failed: the caller decides
 * what to do without. REXO_EINVAL for `out` NULL, REXO_EFAULT outside usable RAM. */
int rexo_random_u64(uint64_t *out);

/* Writes `len` bytes of text at `buf` to the consoles as they are (no prefix, no newline
 * added; bytes that are not UTF-8 appear as U+FFFD). Returns REXO_OK, REXO_EINVAL (`buf`
 * NULL with `len` > 0) or REXO_EFAULT. `len` 0 writes nothing and accepts any `buf`.
 * Valid UTF-8 text of one call, up to 4 KiB, appears whole, never mixed with other
 * cores' output: write a line with one call, not in pieces. A longer text goes in pieces
 * of at most 4 KiB, cut after a newline where there is one (as rexo_api's write_str). */
int rexo_write(const void *buf, size_t len);

/* Writes one log line (with the time and core number) made of the `len` bytes at
 * `text` (no newline needed; bytes that are not UTF-8 appear as U+FFFD, 3 bytes each;
 * control characters appear as escapes, C0 and DEL in caret notation, "^J" for a
 * newline, "^[" for ESC, C1 as "\u{9b}"; a line of more than 506 bytes so shown is cut
 * after 506, at a character boundary, and ends in " [...]": 512 bytes at most). Returns REXO_OK, REXO_EINVAL or REXO_EFAULT, as
 * rexo_write. */
int rexo_log(const char *text, size_t len);

/* A function run on one core: gets the `arg` given to rexo_run_on_every_core and the
 * core's place among the app's cores, 0 to rexo_cores() - 1 (rexo_core_index() gives the
 * machine's index of the core, which differs when the app's cores do not start at 0). */
typedef void (*rexo_core_fn)(void *arg, unsigned core);

/* Runs `fn(arg, core)` once on every core (the caller's core included) and returns when
 * all have finished; the calling core runs queued work while it waits. The function
 * may call every rexo_ function, acting for the same app. `arg` is passed as it is
 * (shared between cores: use atomics, e.g. __atomic_fetch_add). Returns REXO_OK,
 * REXO_EINVAL (`fn` NULL), REXO_ENOAPP, REXO_EBUSY (a core's work queue was full: `fn`
 * ran neither there nor on the app's cores after it, but may have run, to its end, on
 * the cores before it, so calling again runs it twice on those) or REXO_EPERM (the app
 * gave one of its cores back with rexo_core_return: nothing run; or the kernel ended
 * the task of a core for using what it took back by force, a touch through a view of
 * such memory or a call on such a handle, or for running out of stack (above): the
 * other cores ran theirs). A fault in C code (a NULL dereference in `fn`) is not
 * caught: C apps run trusted, and it is a crash report of the kernel. */
int rexo_run_on_every_core(rexo_core_fn fn, void *arg);

/* The next byte of console input (serial line or PS/2 keyboard), 0..255, without
 * waiting; -1 when none is waiting. Enter arrives as '\r', Backspace as 0x7F. */
int rexo_read_byte(void);

/* Halts the calling core until about `ns` nanoseconds passed or an interrupt came,
 * whichever is first (one nap: callers check what woke them). */
void rexo_sleep_ns(uint64_t ns);

/* The machine's memory in bytes: `*usable` gets the usable RAM of the boot memory map,
 * `*free_bytes` what the frame allocator has not handed out. Returns REXO_OK,
 * REXO_EINVAL (either pointer NULL) or REXO_EFAULT. */
int rexo_memory(uint64_t *usable, uint64_t *free_bytes);

/* Grants the app `bytes` of zeroed memory (rounded up to whole 4 KiB frames) as a
 * capability. Returns its handle (> 0), or REXO_EINVAL (`bytes` 0), REXO_ENOMEM,
 * REXO_ENOAPP or REXO_EPERM. */
int64_t rexo_mem_alloc(uint64_t bytes);

/* Copies `len` bytes from `data` into the memory `handle` names, at `offset`. Returns
 * REXO_OK, REXO_EINVAL (`data` NULL with `len` > 0), REXO_EFAULT, REXO_EBADF,
 * REXO_ERANGE (`offset + len` past the end, or overflowing), REXO_ENOAPP or
 * REXO_EPERM. */
int rexo_mem_write(int64_t handle, uint64_t offset, const void *data, size_t len);

/* Copies `len` bytes from the memory `handle` names, at `offset`, into `buf`. Returns
 * as rexo_mem_write. */
int rexo_mem_read(int64_t handle, uint64_t offset, void *buf, size_t len);

/* Gives the memory back: the frames return to the kernel and the handle stops working
 * (a later use gives REXO_EBADF). Returns REXO_OK, REXO_EBADF, REXO_ENOAPP, REXO_EPERM,
 * or REXO_EBUSY while the memory is mapped (nothing is returned). */
int rexo_mem_return(int64_t handle);

/* Maps the memory `handle` names for direct access, with no copy: `*ptr` gets its
 * first byte, `*len` its size in bytes. The handle stands for the view (in Rust the
 * slice lives only inside Kernel::map_memory's closure; C keeps the address, so the
 * handle is busy instead): until rexo_unmap_memory, rexo_mem_read,
 * rexo_mem_write, rexo_mem_return and a second rexo_map_memory of the handle give
 * REXO_EBUSY. If the kernel asks for the memory back and the deadline passes, it takes
 * it by force and unmaps it: the app's next touch through the view ends the app (not
 * the kernel), with the log line "app 'NAME' touched revoked region ...". Returns
 * REXO_OK, REXO_EINVAL (`ptr` or `len` NULL), REXO_EFAULT, REXO_EBADF, REXO_EBUSY,
 * REXO_ENOAPP or REXO_EPERM (revoked, or another capability also names the memory). */
int rexo_map_memory(int64_t handle, void **ptr, uint64_t *len);

/* Ends the view rexo_map_memory gave: the app must not use its address any more, and
 * the handle works for the copying calls and rexo_mem_return again. Returns REXO_OK,
 * REXO_EINVAL (not mapped), REXO_EBADF or REXO_ENOAPP. */
int rexo_unmap_memory(int64_t handle);

/* Cores and timers. */

/* The app's capabilities over its cores, as handles (Kernel::core_caps): the kernel mints
 * one per core of the app's run when it starts; holding it is the permission to run
 * work there (rexo_run_on_every_core) and to arm its timer. A run another app started
 * (Kernel::run_app: the monitor's `run NAME`) gets none: it runs on its caller's cores
 * with its caller's capabilities (rexo_run_on_every_core and rexo_timer_arm work there),
 * and the count is 0. Fills `handles` with up to `max` of the core handles the app
 * holds, oldest first, and returns how many it holds, which may be more than `max`
 * (every call lists all of them, until returned). Returns that count (>= 0),
 * REXO_EINVAL (`handles` NULL with `max` > 0, or `max` overflowing), REXO_EFAULT or
 * REXO_ENOAPP. */
int rexo_core_caps(int64_t *handles, size_t max);

/* The machine's index of the core a core handle names (>= 0), or REXO_EBADF (not a
 * core handle of this app), REXO_EPERM (the kernel took it back) or REXO_ENOAPP. */
int rexo_core_cap_index(int64_t handle);

/* Gives a core back: the handle stops working, and from then on rexo_run_on_every_core
 * runs nothing (REXO_EPERM) and rexo_timer_arm on that core gives REXO_EPERM. Returns
 * REXO_OK, REXO_EBADF (not a core handle of this app: a timer or memory handle stays as
 * it is), REXO_EPERM or REXO_ENOAPP. */
int rexo_core_return(int64_t handle);

/* Arms the calling core's timer for `deadline_ns` (rexo_now_ns's clock): a one-shot
 * deadline; the core takes its timer interrupt then, which ends a rexo_sleep_ns nap.
 * One per core at a time, fired or not, until returned. Returns its handle (> 0), or
 * REXO_ETIME (`deadline_ns` not in the future), REXO_EBUSY (the core's timer is held,
 * by this app or another), REXO_EPERM (the app holds no capability over the calling
 * core), REXO_ENOMEM or REXO_ENOAPP. */
int64_t rexo_timer_arm(uint64_t deadline_ns);

/* Whether the timer's core took its timer interrupt at or after the deadline: 1 or 0;
 * or REXO_EBADF (not a timer handle of this app), REXO_EPERM or REXO_ENOAPP. */
int rexo_timer_fired(int64_t handle);

/* Gives the timer back, cancelling the deadline if it has not fired; the handle stops
 * working and the core's timer can be armed again. Returns REXO_OK, REXO_EBADF (not a
 * timer handle of this app), REXO_EPERM or REXO_ENOAPP. */
int rexo_timer_return(int64_t handle);

/* Revocation: the kernel may ask for a capability back by a deadline (docs/api.md,
 * "Capabilities"). Past the deadline it takes the capability by force, and the app's
 * next use of the handle (a copy, a return, rexo_timer_fired, a touch through a view of
 * the memory) ends the app. */

/* One request of the kernel to give a capability back. */
struct rexo_revocation {
    int64_t handle;       /* the app's handle (memory, core or timer) the kernel asks back */
    uint64_t deadline_ns; /* by when, on rexo_now_ns's clock */
};
REXO_STATIC_ASSERT(sizeof(struct rexo_revocation) == 16, "struct rexo_revocation is 16 bytes");

/* The kernel's requests to give capabilities back (Kernel::revocation_requests), as
 * handles: answer one by giving its handle back before the deadline (rexo_mem_return
 * after rexo_unmap_memory, rexo_core_return, rexo_timer_return). The core capabilities
 * the kernel still keeps for the run become handles first, as rexo_core_caps makes
 * them, so that a request for one names its handle. Fills `list` with up to `max`
 * requests, oldest handle first, and returns how many there are, which may be more than
 * `max` (every call lists all of them, until answered or taken by force). Returns that
 * count (>= 0), REXO_EINVAL (`list` NULL with `max` > 0, or `max` overflowing),
 * REXO_EFAULT or REXO_ENOAPP. */
int rexo_revocation_requests(struct rexo_revocation *list, size_t max);

/* Devices. */

/* What a device is for (struct rexo_device's `kind`). */
#define REXO_DEVICE_NET 1
#define REXO_DEVICE_BLOCK 2
#define REXO_DEVICE_KEYBOARD 3

/* One device a driver is bound to. */
struct rexo_device {
    uint32_t kind;     /* REXO_DEVICE_NET, _BLOCK or _KEYBOARD */
    uint32_t index;    /* its number among devices of its kind: what _open takes */
    uint16_t segment;  /* its PCI address */
    uint8_t bus, device, function;
    uint8_t held;      /* 1 while an app holds it */
    uint16_t reserved;
    char driver[16];   /* the driver's name, NUL-terminated ("virtio-blk") */
    char about[80];    /* model, MAC address or size, NUL-terminated (cut short) */
};
REXO_STATIC_ASSERT(sizeof(struct rexo_device) == 112, "struct rexo_device is 112 bytes");

/* Fills `list` with up to `max` devices (drivers bind on the first call) and returns
 * how many there are, which may be more than `max`. Returns that count (>= 0),
 * REXO_EINVAL (`list` NULL with `max` > 0, or `max` overflowing) or REXO_EFAULT. */
int rexo_devices(struct rexo_device *list, size_t max);

/* Closes a device handle (disk or network interface): the device is free for other
 * apps and the handle stops working. Memory handles go back with rexo_mem_return.
 * Returns REXO_OK, REXO_EBADF or REXO_ENOAPP. */
int rexo_dev_close(int64_t handle);

/* A disk. */
struct rexo_block_info {
    uint64_t blocks;     /* blocks on the disk */
    uint32_t block_size; /* bytes per block (512 on the emulated disks) */
    uint32_t max_blocks; /* the most blocks one request takes (larger transfers are cut) */
};
REXO_STATIC_ASSERT(sizeof(struct rexo_block_info) == 16, "struct rexo_block_info is 16 bytes");

/* Opens disk `index` (the index of its struct rexo_device) for the app alone. Returns a
 * handle (> 0), REXO_ENODEV, REXO_EBUSY (another app holds it), REXO_ENOMEM,
 * REXO_ENOAPP, or REXO_EIO. */
int64_t rexo_block_open(unsigned index);

/* The disk's size. Returns REXO_OK, REXO_EINVAL (`info` NULL), REXO_EFAULT, REXO_EBADF
 * or REXO_ENOAPP. */
int rexo_block_info(int64_t disk, struct rexo_block_info *info);

/* Reads `count` blocks from block `block` into `buf`, whose `len` must be exactly
 * `count` * block_size; returns when the data is there. Returns REXO_OK, REXO_EINVAL
 * (`buf` NULL, `count` 0, `len` not `count` blocks), REXO_EFAULT, REXO_EBADF,
 * REXO_ERANGE (past the end of the disk, nothing read), REXO_EPERM (the disk's extent
 * table refuses), REXO_ENOMEM (the driver has no memory for the request), REXO_EIO (the
 * device failed, or handed over data or a buffer of another length than asked: nothing
 * of it copied) or REXO_ENOAPP. `count` 0 is REXO_EINVAL before the handle is looked
 * at. */
int rexo_block_read(int64_t disk, uint64_t block, uint32_t count, void *buf, size_t len);

/* Writes `count` blocks from `buf` (`len` exactly `count` * block_size) at block
 * `block`; returns when the device has them (rexo_block_flush makes them durable).
 * Returns as rexo_block_read. A write longer than the disk's max_blocks goes as
 * several requests, each waited for in turn; on REXO_EIO for a buffer of another
 * length, the request whose buffer had another length was withdrawn before the device
 * saw it, and earlier requests of the same write are already written. */
int rexo_block_write(int64_t disk, uint64_t block, uint32_t count, const void *buf, size_t len);

/* Makes every write completed before it durable. Returns REXO_OK, REXO_EBADF, REXO_ENOMEM,
 * REXO_EIO or REXO_ENOAPP. */
int rexo_block_flush(int64_t disk);

/* A network interface. Frames are whole Ethernet frames without the FCS. */
struct rexo_net_info {
    uint8_t mac[6];
    uint8_t link_up;    /* 1 when the link is up */
    uint8_t reserved;
    uint32_t max_frame; /* the largest frame, Ethernet header included (1514) */
};
REXO_STATIC_ASSERT(sizeof(struct rexo_net_info) == 12, "struct rexo_net_info is 12 bytes");

/* One masked compare of a packet filter: the `width`-byte (1, 2 or 4) big-endian field
 * at byte `offset` of the frame, masked with `mask`, equals `value` (no bits outside
 * the mask). From byte 54 on, in a TCP frame (IPv4 with a 20-byte header), `offset`
 * counts from 54 at the TCP payload's first byte, past the TCP options
 * (rexo_pktfilter::TCP_PAYLOAD). `reserved` must be 0. */
struct rexo_atom {
    uint16_t offset;
    uint8_t width;
    uint8_t reserved;
    uint32_t mask;
    uint32_t value;
};
REXO_STATIC_ASSERT(sizeof(struct rexo_atom) == 12, "struct rexo_atom is 12 bytes");

/* The most bindings one shared interface holds at once (Rust's MAX_INTERFACE_BINDINGS),
 * and the most of them one app holds (MAX_APP_BINDINGS: apps bind a few ports each, and
 * so 4 apps can always bind, whatever the others do). */
#define REXO_MAX_NET_BINDINGS 64
#define REXO_MAX_APP_NET_BINDINGS 16
/* The most atoms one filter takes (Rust's rexo_pktfilter::MAX_ATOMS). */
#define REXO_MAX_NET_ATOMS 16

/* Opens network interface `index` whole, for the app alone. Returns a handle (> 0),
 * REXO_ENODEV, REXO_EBUSY (another app holds it or is bound to it), REXO_ENOMEM,
 * REXO_ENOAPP or REXO_EIO. */
int64_t rexo_net_open(unsigned index);

/* Binds the app to the frames of interface `index` that match all `count` atoms (one
 * filter), sharing the interface with other apps (Kernel::bind_net: the kernel answers
 * ARP and ping for the address of the kernel word ip=, and lets the app send only from
 * that address IPv4 frames its filter would take with their two ends traded: from the
 * ports it receives on, to the sources it receives from, with the payload bytes it
 * names; ARP requests; and frames of another EtherType (0x0600 or more, not a carrier of
 * other frames such as a VLAN tag) that the filter names whole and would take with only
 * the two MACs traded, never an EtherType the filter does not name).
 * Returns a handle (> 0), REXO_EINVAL
 * (`atoms` NULL with `count` > 0, no atoms, more than REXO_MAX_NET_ATOMS, which are
 * refused before any is read, a bad or contradicting atom), REXO_EFAULT,
 * REXO_ENODEV, REXO_EBUSY (the filter overlaps another app's, or an app holds the
 * interface whole), REXO_ENOMEM (the app holds REXO_MAX_APP_NET_BINDINGS bindings on
 * the interface, or the interface REXO_MAX_NET_BINDINGS in all, until one ends, or the
 * filter shares too few fields with those bound: merged, they would cost a frame more
 * than 32 field tests, or the app's filters on the interface would cost a frame more
 * than its share, 8 of those tests: a filter of more than 8 atoms always does),
 * REXO_EPERM (no ip= address), REXO_ENOAPP or REXO_EIO. */
int64_t rexo_net_bind(unsigned index, const struct rexo_atom *atoms, size_t count);

/* The interface's MAC address, link and largest frame. Returns REXO_OK, REXO_EINVAL
 * (`info` NULL), REXO_EFAULT, REXO_EBADF or REXO_ENOAPP. */
int rexo_net_info(int64_t nic, struct rexo_net_info *info);

/* Copies the next received frame into `buf` (`len` at least max_frame bytes) without
 * waiting, from whichever of the interface's receive queues holds one (the device picks
 * a frame's queue; each call starts after the queue that gave the last frame, so none
 * starves). Returns its length (> 0), 0 when no frame is waiting, or REXO_EINVAL (`buf`
 * NULL, or `len` under max_frame: nothing is taken), REXO_EFAULT, REXO_EBADF,
 * REXO_ENOMEM, REXO_EPERM (the interface was taken back, or a shared one's filter
 * withdrawn), REXO_EIO or REXO_ENOAPP. */
int rexo_net_receive(int64_t nic, void *buf, size_t len);

/* Sends the `len`-byte frame at `frame` (copied into the driver's buffer). Returns
 * REXO_OK, REXO_EINVAL (`frame` NULL with `len` > 0), REXO_EFAULT, REXO_EBADF,
 * REXO_EMSGSIZE (longer than max_frame or shorter than 14 bytes: nothing sent),
 * REXO_EBUSY (the transmit ring is full: call again), REXO_ENOMEM, REXO_EPERM (the
 * interface was taken back, or on a shared interface a source the filter does not give
 * the app: withdrawn), REXO_EIO (the
 * device failed, or the driver handed over a buffer of another length than the frame:
 * withdrawn, nothing sent) or REXO_ENOAPP. */
int rexo_net_send(int64_t nic, const void *frame, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* REXO_H */
