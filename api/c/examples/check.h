/* check.h: what the example C apps share: writing lines of text and numbers to the console,
 * and EXPECT, which reports a failed check as "APP: FAILED what: got N, expected M"
 * and returns from the calling function. Define APP ("c-cores") before including it.
 * Its functions are `static inline`, so an app that uses a few of them compiles under
 * -Wall -Werror (an unused plain `static` function is an error there). */
#ifndef CHECK_H
#define CHECK_H

#include "rexo.h"

static inline size_t length(const char *text)
{
    size_t n = 0;
    while (text[n] != '\0')
        n++;
    return n;
}

/* Writes `text`, whole lines of it, with one rexo_write. */
static inline void say(const char *text)
{
    rexo_write(text, length(text));
}

/* A line built piece by piece and written whole with one rexo_write when it ends: each
 * rexo_write is one console write, so the lines of runs on other cores never land inside
 * it. Text past its room is cut off. */
struct line {
    char text[256];
    size_t length;
};

/* Adds `text` to `line`. */
static inline void line_text(struct line *line, const char *text)
{
    for (size_t i = 0; text[i] != '\0' && line->length < sizeof line->text - 1; i++)
        line->text[line->length++] = text[i];
}

/* Adds `value` in decimal to `line`. */
static inline void line_number(struct line *line, int64_t value)
{
    char digits[24];
    size_t at = sizeof digits - 1;
    digits[at] = '\0';
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    do {
        digits[--at] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0)
        digits[--at] = '-';
    line_text(line, digits + at);
}

/* Ends `line` with a newline, writes it and empties it for the next line. */
static inline void line_end(struct line *line)
{
    line->text[line->length++] = '\n';
    rexo_write(line->text, line->length);
    line->length = 0;
}

/* Reports a failed check: what, what came back and what was expected. */
static inline int fail(const char *what, int64_t got, int64_t expected)
{
    struct line line = {.length = 0};
    line_text(&line, APP ": FAILED ");
    line_text(&line, what);
    line_text(&line, ": got ");
    line_number(&line, got);
    line_text(&line, ", expected ");
    line_number(&line, expected);
    line_end(&line);
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
