#include "tools/cli.h"
int cmd_groups(int argc, char **argv) { (void)argc; (void)argv; return 1; }
