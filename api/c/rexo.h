/* rexo.h: the Rexo kernel API as a C ABI.
 *
 * The same calls as the Rust crate `rexo-api` (trait `Kernel`), for apps written in C
 * and compiled with `gcc -ffreestanding` into the kernel image (see docs/api.md, "The C
 * ABI"). A C app is one function, `int NAME_main(void)`, listed in the kernel's app
 * table; it returns 0 on success, or one of the negative REXO_E* codes below to end
 * with that error.
 *
 * Every call checks its arguments: a NULL pointer with a non-zero length, a buffer
 * outside RAM, an unknown handle or an out-of-range offset gives a negative error code
 * and changes nothing; it never crashes the kernel. Argument errors are reported before
 * anything else. Buffers are checked against the machine's usable RAM (page 0 and the
 * addresses past the end of RAM are refused); C apps run trusted, without page
 * protection, so a pointer into RAM the app does not own is not detected.
 *
 * Memory capabilities appear in C as opaque handles: positive 64-bit numbers, private
 * to the app that allocated them and never reused, so a handle that was returned stays
 * invalid. What an app still holds when it returns goes back to the kernel.
 */
#ifndef REXO_H
#define REXO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (negative `int`, or `int64_t` for rexo_mem_alloc). */

/* Success. */
#define REXO_OK 0
/* An invalid argument: a NULL pointer with a non-zero length, a NULL function or
 * out-parameter, a zero size. */
#define REXO_EINVAL (-1)
/* A buffer outside RAM: it starts in page 0, wraps around the address space, or does
 * not lie within one region of usable RAM. */
#define REXO_EFAULT (-2)
/* No such memory handle for this app: never issued, already returned, or another
 * app's. */
#define REXO_EBADF (-3)
/* The offset and length reach past the end of the memory the handle names. */
#define REXO_ERANGE (-4)
/* No memory (or capability-table entry) left to grant. */
#define REXO_ENOMEM (-5)
/* The kernel's work queue is full: nothing was run. */
#define REXO_EBUSY (-6)
/* The kernel refused the request (for example a capability revoked by the kernel or
 * lacking the needed right). */
#define REXO_EPERM (-7)
/* The call needs a C app (capabilities, running on cores) but none runs on this
 * core. */
#define REXO_ENOAPP (-8)

/* How many cores run the work loop (at least 1). */
unsigned rexo_cores(void);

/* The index of the core running the caller (0 is the boot core). */
unsigned rexo_core_index(void);

/* Nanoseconds since boot (monotonic, from the TSC). */
uint64_t rexo_now_ns(void);

/* Writes `len` bytes of text at `buf` to the consoles as they are (no prefix, no newline
 * added; bytes that are not UTF-8 appear as U+FFFD). Returns REXO_OK, REXO_EINVAL (`buf`
 * NULL with `len` > 0) or REXO_EFAULT. `len` 0 writes nothing and accepts any `buf`. */
int rexo_write(const void *buf, size_t len);

/* Writes one log line (with the time and core number) made of the `len` bytes at
 * `text` (no newline needed). Returns REXO_OK, REXO_EINVAL or REXO_EFAULT, as
 * rexo_write. */
int rexo_log(const char *text, size_t len);

/* A function run on one core: gets the `arg` given to rexo_run_on_every_core and the
 * core's index. */
typedef void (*rexo_core_fn)(void *arg, unsigned core);

/* Runs `fn(arg, core)` once on every core (the caller's core included) and returns when
 * all have finished; the calling core runs queued work while it waits. The function
 * may call every rexo_ function, acting for the same app. `arg` is passed as it is
 * (shared between cores: use atomics, e.g. __atomic_fetch_add). Returns REXO_OK,
 * REXO_EINVAL (`fn` NULL), REXO_ENOAPP or REXO_EBUSY (queue full, nothing run). */
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
 * (a later use gives REXO_EBADF). Returns REXO_OK, REXO_EBADF, REXO_ENOAPP or
 * REXO_EPERM. */
int rexo_mem_return(int64_t handle);

#ifdef __cplusplus
}
#endif

#endif /* REXO_H */
