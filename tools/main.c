/* main.c: the advtrain command-line tool; a table of subcommands, each in its own file. */
#include "cli.h"
#include "ranks.h"

#include <signal.h>
#include <string.h>

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    bool shares_work; /* under mpirun, shares its work (batches, points) among the processes */
} commands[] = {
    {"train", cmd_train, "train a model (clean or adversarial) and save checkpoints", true},
    {"eval", cmd_eval, "evaluate a checkpoint: clean and robust accuracy, curves, flags", true},
    {"attack", cmd_attack, "write adversarial examples (safetensors and a PNG grid)", false},
    {"import", cmd_import, "turn a PyTorch state_dict (safetensors) or an ONNX graph into a checkpoint", false},
    {"export", cmd_export, "write a checkpoint as a PyTorch state_dict (safetensors) or an ONNX graph", false},
    {"corrupt", cmd_corrupt, "images under a common corruption (CIFAR-10-C's 15, severity 1..5)", false},
    {"certify", cmd_certify, "certified L2 robustness of the Gaussian-smoothed model (Cohen et al.)", true},
    {"robustify", cmd_robustify, "preemptive robustification of images against a man in the middle", false},
    {"gradients", cmd_gradients, "input-gradient maps of a model and how concentrated they are", false},
    {"generate", cmd_generate, "synthetic training images from a generator fitted to a data set", false},
    {"report", cmd_report, "one self-contained HTML page from a run directory", false},
    {"train-autoencoder", cmd_train_autoencoder, "train the autoencoder of method ada (reconstruction)", false},
    {"train-flow", cmd_train_flow, "train the normalizing flow of attack jsa and method ijsat", false},
    {"list", cmd_list, "list models, data sets, training methods and attacks", false},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: advtrain COMMAND [options]   (advtrain COMMAND --help for its options)\n\n"
                 "commands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-17s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n  --version  print the version\n");
}

static int run_command(int argc, char **argv)
{
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            if (ranks_size() > 1 && !commands[i].shares_work)
                return cli_error(argv[1], EXIT_USAGE, "runs as one process: under mpirun only "
                                 "`advtrain train`, `eval` and `certify` share their work (start it without mpirun)");
            return commands[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "advtrain: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "--version") == 0) {
        char mpi[256];
        ranks_library(mpi, sizeof mpi);
        printf("advtrain %s\nMPI: %s\n", cli_version(), mpi);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    /* Past a file-size limit (ulimit -f) a write then fails with EFBIG, which the atomic writes
     * report naming the file, instead of the signal killing the process mid-checkpoint. */
    signal(SIGXFSZ, SIG_IGN);
    if (ranks_init(&argc, &argv)) {
        fprintf(stderr, "advtrain: MPI failed to start\n");
        return EXIT_WORK_FAILED;
    }
    /* every rank leaves with the worst status of all, so mpirun never waits on a failed one */
    int status = ranks_agree(run_command(argc, argv), true);
    ranks_finalize();
    return status;
}
