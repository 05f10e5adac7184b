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
int cmd_batches(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_config(int argc, char **argv);

#include <signal.h>
/* SIGINT/SIGTERM become a stop request: blocked in the caller (call it before
 * any thread exists, so that every thread inherits the mask) and taken by one
 * thread with sigwait(), which sets *flag on the first and exits with 128+sig
 * on the second. 0 on success. */
int cli_stop_signals_start(volatile sig_atomic_t *flag);
/* The first stop signal received, 0 if none. */
int cli_stop_signal_received(void);

struct option;
/* Strict numeric options (cli_num.c): the whole argument must be a number in
 * [lo, hi]; otherwise a message naming `dinox CMD: --option` and the range is
 * printed and -1 returned (the caller exits 2). c is getopt's return value,
 * looked up in opts for the option's name. */
int cli_int(const char *cmd, const struct option *opts, int c, const char *arg, long long lo, long long hi,
            long long *out);
int cli_u64(const char *cmd, const struct option *opts, int c, const char *arg, unsigned long long *out);
int cli_double(const char *cmd, const struct option *opts, int c, const char *arg, double lo, double hi,
               double *out);
/* In a getopt switch: parse optarg into dst or return 2 from the command. */
#define CLI_INT(cmd, dst, lo, hi)                                                                                 \
    do {                                                                                                          \
        long long v_;                                                                                             \
        if (cli_int(cmd, opts, c, optarg, lo, hi, &v_)) return 2;                                                 \
        (dst) = v_;                                                                                               \
    } while (0)
#define CLI_U64(cmd, dst)                                                                                         \
    do {                                                                                                          \
        unsigned long long v_;                                                                                    \
        if (cli_u64(cmd, opts, c, optarg, &v_)) return 2;                                                         \
        (dst) = v_;                                                                                               \
    } while (0)
#define CLI_DOUBLE(cmd, dst, lo, hi)                                                                              \
    do {                                                                                                          \
        double v_;                                                                                                \
        if (cli_double(cmd, opts, c, optarg, lo, hi, &v_)) return 2;                                              \
        (dst) = v_;                                                                                               \
    } while (0)

/* 1 if argv has -h or --help. */
int cli_wants_help(int argc, char **argv);

#endif /* DX_CLI_H */
