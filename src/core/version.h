/*
 * version.h - which Sluice this is.
 *
 * The version comes from git tags at build time (scripts/version.sh, run by
 * cmake/version.cmake on every build), or from the VERSION file where there
 * is no git. Only version.c includes the generated header, so a new version
 * recompiles one file.
 */
#ifndef SLUICE_CORE_VERSION_H
#define SLUICE_CORE_VERSION_H

/* The software's name, as `--version` prints it. */
#define SLUICE_SOFTWARE_NAME "sluice"

/* "1.2.0", "1.2.0+3.gabc1234", "0.1.0+gabc1234.dirty": never NULL or empty. */
const char *sluice_version(void);

#endif
