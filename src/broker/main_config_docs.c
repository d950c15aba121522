/*
 * main_config_docs.c - prints docs/configuration.md, generated from the
 * configuration tables, so the reference can never drift from the code:
 *
 *   build/rel/config_docs > docs/configuration.md
 */
#include <stdio.h>

#include "broker/config.h"

int main(void) { return config_write_docs(stdout) == 0 && fflush(stdout) == 0 ? 0 : 1; }
