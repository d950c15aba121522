/* Temporary logging shim; replaced by the logging module. */
#ifndef SLUICE_CORE_LOG_H
#define SLUICE_CORE_LOG_H
#include <stdio.h>
#define LOG_ERROR(mod, ...) (fprintf(stderr, "ERROR [" mod "] " __VA_ARGS__), fputc('\n', stderr))
#define LOG_WARN(mod, ...) (fprintf(stderr, "WARN [" mod "] " __VA_ARGS__), fputc('\n', stderr))
#define LOG_INFO(mod, ...) (fprintf(stderr, "INFO [" mod "] " __VA_ARGS__), fputc('\n', stderr))
#define LOG_DEBUG(mod, ...) ((void)0)
#endif
