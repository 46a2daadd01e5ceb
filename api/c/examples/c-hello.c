/* c-hello: the C hello world of Rexo. Prints "hello from C" through rexo_write, logs
 * one line with the core count, and returns 0. */
#include "rexo.h"

int c_hello_main(void);

static const char greeting[] = "hello from C\n";
static const char line[] = "c-hello: a C app on the Rexo kernel API";

int c_hello_main(void)
{
    int rc = rexo_write(greeting, sizeof greeting - 1);
    if (rc != REXO_OK)
        return rc;
    return rexo_log(line, sizeof line - 1);
}
