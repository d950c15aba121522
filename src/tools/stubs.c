#include "tools/cli.h"
int cmd_groups(int argc, char **argv) { (void)argc; (void)argv; return 1; }
int cmd_perf(int argc, char **argv) { (void)argc; (void)argv; return 1; }
