/* cli.h - subcommand entry points and small helpers shared by the CLI files.
 * Each subcommand lives in src/cli/cmd_<name>.c and defines
 * int cmd_<name>(int argc, char **argv) (argv[0] = subcommand name). */
#ifndef DX_CLI_H
#define DX_CLI_H

int cmd_embed(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_ingest(int argc, char **argv);
int cmd_store(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_info(int argc, char **argv);

/* 1 if argv has -h or --help. */
int cli_wants_help(int argc, char **argv);

#endif /* DX_CLI_H */
