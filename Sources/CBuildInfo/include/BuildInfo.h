#ifndef CASTLE_BUILD_INFO_H
#define CASTLE_BUILD_INFO_H

/// The git commit castle was built from, baked in at build time (Package.swift defines CASTLE_GIT_COMMIT
/// from the environment variable of the same name); empty when the build did not know it.
const char *castle_git_commit(void);

#endif
