/* check.h: what the example C apps share: writing text and numbers to the console,
 * and EXPECT, which reports a failed check as "APP: FAILED what: got N, expected M"
 * and returns from the calling function. Define APP ("c-cores") before including it. */
#ifndef CHECK_H
#define CHECK_H

#include "rexo.h"

static size_t length(const char *text)
{
    size_t n = 0;
    while (text[n] != '\0')
        n++;
    return n;
}

static void say(const char *text)
{
    rexo_write(text, length(text));
}

/* Writes `value` in decimal. */
static void say_number(int64_t value)
{
    char digits[24];
    size_t at = sizeof digits;
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    do {
        digits[--at] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0)
        digits[--at] = '-';
    rexo_write(digits + at, sizeof digits - at);
}

/* Reports a failed check: what, what came back and what was expected. */
static int fail(const char *what, int64_t got, int64_t expected)
{
    say(APP ": FAILED ");
    say(what);
    say(": got ");
    say_number(got);
    say(", expected ");
    say_number(expected);
    say("\n");
    return REXO_EPERM;
}

#define EXPECT(what, got, expected)                                                      \
    do {                                                                                 \
        int64_t got_ = (got);                                                            \
        if (got_ != (int64_t)(expected))                                                 \
            return fail(what, got_, expected);                                           \
    } while (0)

/* Declares `name` as the handle `open` gives; a code instead of a handle fails. */
#define EXPECT_HANDLE(what, name, open)                                                  \
    int64_t name = (open);                                                               \
    if (name <= 0)                                                                       \
    return fail(what, name, 1)

#endif /* CHECK_H */
