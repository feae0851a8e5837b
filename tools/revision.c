/* revision.c: the version string of reports, "0.1.0 <git revision>". The revision comes from
 * revision.h, which the build rewrites when the checkout's revision changes (cmake/revision.cmake),
 * so only this file is compiled again. */
#include "cli.h"
#include "revision.h"

const char *cli_version(void) { return AT_VERSION_STRING " " ADVTRAIN_REVISION; }
