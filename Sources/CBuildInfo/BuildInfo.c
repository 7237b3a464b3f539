#include "BuildInfo.h"

#ifndef CASTLE_GIT_COMMIT
#define CASTLE_GIT_COMMIT ""
#endif

const char *castle_git_commit(void) { return CASTLE_GIT_COMMIT; }
