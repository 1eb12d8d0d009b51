/* cutover: main only dispatches to a subcommand (src/cli/). */
#include "cli/cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
