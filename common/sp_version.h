/*
 * sp_version — the version of this build: `git describe` of the tree it was
 * built from (a file the build generates), or the VERSION file of a release
 * tarball, or "unknown".  Every binary prints it for --version.
 *
 * Ownership: a constant string.  Safe from any thread or process.
 */
#ifndef SP_VERSION_H
#define SP_VERSION_H

const char *sp_version(void);

#endif
