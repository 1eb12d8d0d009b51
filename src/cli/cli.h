/* cli: one file per subcommand; cli_main dispatches on argv[1].
 * Each cmd_* function takes the arguments after the subcommand name
 * (argv[0] is the subcommand) and returns the process exit status. */
#ifndef CUTOVER_CLI_H
#define CUTOVER_CLI_H

int cli_main(int argc, char **argv);

int cmd_run(int argc, char **argv);
int cmd_upstream(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_weight(int argc, char **argv);

#endif
