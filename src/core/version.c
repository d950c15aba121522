/*
 * version.c - the build's version string. See version.h.
 */
#include "core/version.h"

#include "sluice_version.h"

const char *sluice_version(void) { return SLUICE_VERSION_STRING; }
