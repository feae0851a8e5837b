/* cmd_train.c: `advtrain train`: read the options (the common ones and every method's, from the
 * library's tables), load the data, build the model (with --init, from a file's weights:
 * fine-tuning), and run the trainer epoch by epoch; after each epoch train_epochs.c logs it and
 * keeps a resumable checkpoint (written atomically), train_resume.c continues a saved run, and
 * train_report.c evaluates on the test split and writes the final report. */
#include "ranks.h"
#include "train_ranks.h"
#include "train_run.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static train_opts opts = {
    .data = "fashion-mnist", .model = "smallcnn", .method = "standard", .schedule = "cosine",
    .epochs = 5, .batch_size = 128, .eval_batch_size = 500, .lr = 0.05, .optimizer = "sgd",
    .momentum = 0.9, .beta1 = 0.9, .beta2 = 0.999, .adam_eps = 1e-8, .weight_decay = 5e-4,
    .gamma = 0.1, .peak = 0.5, .val_size = -1, .final_n = 1000,
    .eps_schedule = "fixed", .cutmix_alpha = 1.0, .coreset_warmup = -1, .coreset_start = -1, .extra_ratio = 0.7, .extra_smoothing = 0.1,
};

/* The options every method shares; each method's own come from the library's tables
 * (method_options.c) and are appended at start-up. */
static const cli_option common_options[] = {
    {"data", CLI_STRING, &opts.data, 0, 0, NULL, "NAME", "data set (see 'advtrain list datasets'); default fashion-mnist"},
    {"data-dir", CLI_STRING, &opts.data_dir, 0, 0, NULL, "DIR", "read the data set from DIR instead of its default directory"},
    {"model", CLI_STRING, &opts.model, 0, 0, NULL, "ARCH", "architecture (see 'advtrain list models'); default smallcnn"},
    {"method", CLI_STRING, &opts.method, 0, 0, NULL, "NAME", "training method (see 'advtrain list methods'); default standard"},
    {"out", CLI_STRING, &opts.out, 0, 0, NULL, "DIR", "run directory: log.jsonl, last.safetensors, report.json (required)"},
    {"epochs", CLI_INT, &opts.epochs, 1, 100000, NULL, "N", "epochs; default 5"},
    {"batch-size", CLI_INT, &opts.batch_size, 1, 65536, NULL, "N", "training batch size; default 128"},
    {"eval-batch-size", CLI_INT, &opts.eval_batch_size, 1, 65536, NULL, "N", "evaluation batch size; default 500"},
    {"lr", CLI_FLOAT, &opts.lr, 1e-8, 100, NULL, "X", "base (peak) learning rate; default 0.05"},
    {"lr-schedule", CLI_CHOICE, &opts.schedule, 0, 0, "cosine|piecewise|cyclic|constant", NULL, "learning-rate schedule; default cosine"},
    {"warmup-epochs", CLI_FLOAT, &opts.warmup, 0, 1000, NULL, "E", "cosine: linear warm-up epochs; default 0"},
    {"milestones", CLI_FLOAT_LIST, &opts.milestones, 0, 100000, NULL, "E1,E2", "piecewise: epochs at which the rate is multiplied by --gamma"},
    {"gamma", CLI_FLOAT, &opts.gamma, 1e-6, 1, NULL, "X", "piecewise: factor per milestone; default 0.1"},
    {"peak", CLI_FLOAT, &opts.peak, 0.01, 0.99, NULL, "F", "cyclic: fraction of the run at the peak rate; default 0.5"},
    {"optimizer", CLI_CHOICE, &opts.optimizer, 0, 0, "sgd|adam|adamw", NULL, "optimiser, as torch.optim: sgd; adam (Kingma and Ba); adamw, Adam with decoupled weight decay (Loshchilov and Hutter); default sgd"},
    {"momentum", CLI_FLOAT, &opts.momentum, 0, 0.999, NULL, "X", "sgd: momentum; default 0.9"},
    {"nesterov", CLI_FLAG, &opts.nesterov, 0, 0, NULL, NULL, "sgd: Nesterov momentum"},
    {"beta1", CLI_FLOAT, &opts.beta1, 0, 0.999999, NULL, "B", "adam, adamw: decay of the gradient's running average; default 0.9"},
    {"beta2", CLI_FLOAT, &opts.beta2, 0, 0.999999, NULL, "B", "adam, adamw: decay of the squared gradient's running average; default 0.999"},
    {"adam-eps", CLI_FLOAT, &opts.adam_eps, 1e-30, 1, NULL, "E", "adam, adamw: added to the denominator; default 1e-8"},
    {"weight-decay", CLI_FLOAT, &opts.weight_decay, 0, 1, NULL, "X", "weight decay: L2 added to the gradient (sgd, adam), or decoupled, w *= 1 - lr X (adamw); default 5e-4"},
    {"seed", CLI_INT, &opts.seed, 0, 2147483647, NULL, "N", "seed of initialisation, data order and augmentation; default 0"},
    {"val-size", CLI_INT, &opts.val_size, 0, 1000000, NULL, "N", "hold out N training images for validation; default for adversarial methods 1000 (at most a tenth), else 0"},
    {"eps", CLI_FLOAT, &opts.eps, 1e-9, 1e6, NULL, "EPS", "adversarial methods: training budget on [0,1] pixels (required)"},
    {"norm", CLI_CHOICE, &opts.norm, 0, 0, "linf|l2", NULL, "adversarial methods: threat model; default linf"},
    {"steps", CLI_INT, &opts.steps, 1, 10000, NULL, "N", "pgd-at/trades/mart: attack steps; default 10"},
    {"step-size", CLI_FLOAT, &opts.step_size, 1e-9, 1e6, NULL, "A", "attack step; default eps/4 (fgsm-rs: 1.25 eps)"},
    {"attack-bn-mode", CLI_CHOICE, &opts.attack_bn, 0, 0, "train|eval|batch-stats", NULL, "BN mode of training attacks; default train (pgd-at, fgsm-rs) or eval (trades, mart)"},
    {"ema", CLI_FLOAT, &opts.ema, 1e-9, 0.999999, NULL, "TAU", "evaluate a weight average with decay min(TAU, (1+t)/(10+t))"},
    {"eps-warmup", CLI_FLOAT, &opts.eps_warmup, 1e-9, 100000, NULL, "E", "grow eps linearly from 0 over E epochs"},
    {"eval-eps", CLI_FLOAT, &opts.eval_eps, 1e-9, 1e6, NULL, "EPS", "budget of validation and final evaluation; default --eps (train at a smaller eps than you test, Kinfu and Vidal); with a method that takes no eps (standard, jsigr), PGD-20 and --final-suite after training at this eps"},
    {"eps-schedule", CLI_CHOICE, &opts.eps_schedule, 0, 0, "fixed|curriculum|adaptive|stochastic", NULL, "training budget: fixed; curriculum (a staircase to eps); adaptive (per example: -/+ rate eps when broken/robust); stochastic (per batch, uniform on [eps-min, eps]); the attack step follows eps"},
    {"eps-stages", CLI_INT, &opts.eps_stages, 1, 100000, NULL, "S", "curriculum: stages over the run, stage s at eps (s+1)/S; default 4 (at most the epochs)"},
    {"eps-min", CLI_FLOAT, &opts.eps_min, 0, 1e6, NULL, "EPS", "adaptive, stochastic: the lowest budget; default 0"},
    {"eps-rate", CLI_FLOAT, &opts.eps_rate, 1e-9, 1, NULL, "R", "adaptive: change of an example's budget per visit, as a fraction of eps; default 0.1"},
    {"repeat", CLI_INT, &opts.repeat, 1, 64, NULL, "K", "each image K times per batch, augmented independently (batch repetition); default 1"},
    {"cutmix", CLI_FLAG, &opts.cutmix, 0, 0, NULL, NULL, "CutMix on every batch (per repetition group): one box, one pairing, soft labels by area"},
    {"cutmix-alpha", CLI_FLOAT, &opts.cutmix_alpha, 0, 100, NULL, "A", "with --cutmix: box share lambda ~ Beta(A, A); default 1; 0: empty boxes"},
    {"extra-data", CLI_STRING, &opts.extra_data, 0, 0, NULL, "FILE", "mix images and labels from FILE (.safetensors: images U8 N,C,H,W and labels; .npz: image uint8 N,H,W[,C] and label) into every batch (Gowal et al.)"},
    {"extra-ratio", CLI_FLOAT, &opts.extra_ratio, 0, 0.99, NULL, "R", "with --extra-data: share of each batch from it; default 0.7 (the paper's 30% real)"},
    {"extra-smoothing", CLI_FLOAT, &opts.extra_smoothing, 0, 1, NULL, "S", "with --extra-data: label smoothing of its rows; default 0.1"},
    {"ood", CLI_STRING, &opts.ood, 0, 0, NULL, "SRC", "append out-of-distribution rows with uniform targets (OAT): gaussian, shuffle, textures, or a data set directory or file (labels ignored)"},
    {"ood-weight", CLI_FLOAT, &opts.ood_weight, 0, 1e6, NULL, "G", "with --ood: loss weight of an OOD row; default 5 (trades: 1, as OAT-TRADES)"},
    {"ood-batch", CLI_INT, &opts.ood_batch, 1, 65536, NULL, "N", "with --ood: OOD rows per batch; default the batch size"},
    {"coreset", CLI_FLOAT, &opts.coreset, 1e-6, 1, NULL, "C", "adversarial methods: train on a weighted subset of this fraction of the data, chosen by CRAIG on last-layer gradients at PGD points (Dolatabadi et al.)"},
    {"coreset-period", CLI_INT, &opts.coreset_period, 1, 100000, NULL, "R", "with --coreset: epochs between choices; default 20"},
    {"coreset-warmup", CLI_INT, &opts.coreset_warmup, 0, 100000, NULL, "W", "with --coreset: full epochs first; default round(C x start)"},
    {"coreset-start", CLI_INT, &opts.coreset_start, 0, 100000, NULL, "S", "with --coreset: epoch of the first choice; epochs W..S-1 are skipped, the schedules running on (the paper's warm start); default epochs / 2"},
    {"coreset-bias-only", CLI_FLAG, &opts.coreset_bias_only, 0, 0, NULL, NULL, "with --coreset: distances on the bias gradient p - y alone"},
    {"no-early-stop", CLI_FLAG, &opts.no_early_stop, 0, 0, NULL, NULL, "adversarial methods: no robust validation and no best checkpoint"},
    {"final-suite", CLI_CHOICE, &opts.final_suite, 0, 0, "quick|standard", NULL, "after training, also run this attack suite on the test set"},
    {"final-n", CLI_INT, &opts.final_n, 1, 100000000, NULL, "N", "points of the final suite; default 1000"},
    {"no-final-pgd", CLI_FLAG, &opts.no_final_pgd, 0, 0, NULL, NULL, "adversarial methods: skip PGD-20 on the whole test set after training"},
    {"train-size", CLI_INT, &opts.train_size, 0, 100000000, NULL, "N", "train on the first N training images only (0 = all)"},
    {"crop-padding", CLI_INT, &opts.crop_padding, 0, 64, NULL, "P", "augment: random crop after zero padding P pixels"},
    {"hflip", CLI_FLAG, &opts.hflip, 0, 0, NULL, NULL, "augment: random horizontal flips"},
    {"mean", CLI_FLOAT_LIST, &opts.mean, -1000, 1000, NULL, "M1,..", "normalise inputs inside the model: per-channel mean (with --std)"},
    {"std", CLI_FLOAT_LIST, &opts.std, 1e-6, 1000, NULL, "S1,..", "per-channel standard deviation (with --mean)"},
    {"input-levels", CLI_INT, &opts.input_levels, 2, 65536, NULL, "L", "quantise inputs to L levels (a gradient-masking defence)"},
    {"input-noise", CLI_FLOAT, &opts.input_noise, 1e-6, 10, NULL, "S", "add N(0, S^2) noise to inputs in every forward (randomised)"},
    {"init", CLI_STRING, &opts.init, 0, 0, NULL, "FILE", "fine-tune: start from the parameters and batch-norm buffers of FILE (an advtrain checkpoint, a PyTorch state_dict of --model saved as safetensors, or an ONNX model, whose graph is then the model); the optimiser, epochs and schedules start fresh"},
    {"init-sha256", CLI_STRING, &opts.init_sha256, 0, 0, NULL, "HEX", "with --init: refuse a FILE of another SHA-256 (run.cfg records it, so a replay starts from the same weights)"},
    {"autoencoder", CLI_STRING, &opts.autoencoder, 0, 0, NULL, "FILE", "ada: the autoencoder whose weights the adversary perturbs (written by advtrain train-autoencoder; required by ada, refused by other methods)"},
    {"flow", CLI_STRING, &opts.flow, 0, 0, NULL, "FILE", "ijsat: the normalizing flow of the joint-space attack and the latent mixup (written by advtrain train-flow; required by ijsat, refused by other methods)"},
    {"resume", CLI_FLAG, &opts.resume, 0, 0, NULL, NULL, "continue the run in --out from its last checkpoint"},
    {"stop-after", CLI_INT, &opts.stop_after, 1, 100000, NULL, "E", "stop after epoch E (the schedule still spans --epochs); continue with --resume"},
    {"test-each-epoch", CLI_FLAG, &opts.test_each_epoch, 0, 0, NULL, NULL, "also log test accuracy after every epoch"},
    {"json", CLI_STRING, &opts.json, 0, 0, NULL, "FILE", "also write the final report to FILE"},
    {"threads", CLI_INT, &opts.threads, 1, 1024, NULL, "N", "threads (default: all cores); results do not depend on it"},
    {"sync-bn", CLI_FLAG, &opts.sync_bn, 0, 0, NULL, NULL, "under mpirun: batch norm normalises by the statistics of the whole batch, not of each process's rows (then N processes give one process's weights bit for bit when N divides the batch)"},
    {"allreduce", CLI_FLAG, &opts.allreduce, 0, 0, NULL, NULL, "under mpirun: sum the gradients with MPI_Allreduce (less traffic at many processes; the processes agree, but not with one process bit for bit)"},
    {"quiet", CLI_FLAG, &opts.quiet, 0, 0, NULL, NULL, "no progress line and no per-epoch summary"},
    {"config", CLI_STRING, &opts.config, 0, 0, NULL, "FILE", "read options from FILE (name = value per line); every run saves its own as run.cfg"},
};

#define N_COMMON (int)(sizeof common_options / sizeof common_options[0])
#define MAX_METHOD_OPTIONS (CLI_MAX_OPTIONS - N_COMMON)

/* One method option of the command line: the union of the methods' tables by name. */
typedef struct method_option {
    const at_option_info *info; /* as the first method declaring it has it */
    char methods[128];          /* "trades, mart" */
    char presets[160];          /* "6" or "0.01 (pgd-at), 0.005 (trades)" */
    char help[512];
    bool presets_differ;
    double number;
    int integer;
    bool flag;
    const char *text;
} method_option;

static method_option method_opts[MAX_METHOD_OPTIONS];
static int n_method_opts;
static cli_option options[N_COMMON + MAX_METHOD_OPTIONS];

static cli_command command = {
    "train",
    "Train a model and save its checkpoints. Examples:\n"
    "  advtrain train --data fashion-mnist --model smallcnn --epochs 5 --out runs/clean\n"
    "  advtrain train --init runs/clean/last.safetensors --method trades --eps 0.1 --epochs 2 --out runs/ft",
    "advtrain train --out DIR [options]", options, N_COMMON};

static void append(char *buf, size_t cap, const char *fmt, const char *a, const char *b)
{
    size_t len = strlen(buf);
    if (len < cap)
        snprintf(buf + len, cap - len, fmt, a, b);
}

/* Gathers the options of every method, or of `only` (a method name; NULL for all), into the
 * option table after the common ones. */
static void add_method_options(const char *only)
{
    const char *name;
    n_method_opts = 0;
    for (int m = 0; at_method_info(m, &name, NULL); m++) {
        if (only && strcmp(only, name))
            continue;
        const at_option_info *o;
        for (int i = 0; (o = at_method_option(name, i)); i++) {
            method_option *mo = NULL;
            for (int k = 0; k < n_method_opts && !mo; k++)
                if (!strcmp(method_opts[k].info->name, o->name))
                    mo = &method_opts[k];
            if (!mo) {
                if (n_method_opts == MAX_METHOD_OPTIONS)
                    continue;
                mo = &method_opts[n_method_opts++];
                memset(mo, 0, sizeof *mo);
                mo->info = o;
            }
            append(mo->methods, sizeof mo->methods, mo->methods[0] ? ", %s%s" : "%s%s", name, "");
            const char *preset = o->preset ? o->preset : "derived, see below";
            append(mo->presets, sizeof mo->presets, mo->presets[0] ? "; %s (%s)" : "%s (%s)", preset,
                   name);
            if (!o->preset || !mo->info->preset || strcmp(o->preset, mo->info->preset))
                mo->presets_differ = true;
        }
    }
    for (int k = 0; k < n_method_opts; k++) {
        method_option *mo = &method_opts[k];
        const at_option_info *o = mo->info;
        char prefix[140] = "", preset[200] = "";
        if (!only)
            snprintf(prefix, sizeof prefix, "%s: ", mo->methods);
        if (o->type != AT_OPTION_FLAG && (mo->presets_differ || !o->preset))
            snprintf(preset, sizeof preset, "; preset %s", mo->presets);
        else if (o->type != AT_OPTION_FLAG)
            snprintf(preset, sizeof preset, "; preset %s", o->preset);
        snprintf(mo->help, sizeof mo->help, "%s%s%s", prefix, o->help, preset);
        cli_option *c = &options[N_COMMON + k];
        *c = (cli_option){o->name, CLI_FLOAT, &mo->number, o->min, o->max, NULL, "X", mo->help};
        if (o->type == AT_OPTION_INT)
            *c = (cli_option){o->name, CLI_INT, &mo->integer, o->min, o->max, NULL, "N", mo->help};
        else if (o->type == AT_OPTION_FLAG)
            *c = (cli_option){o->name, CLI_FLAG, &mo->flag, 0, 0, NULL, NULL, mo->help};
        else if (o->type == AT_OPTION_CHOICE)
            *c = (cli_option){o->name, CLI_CHOICE, &mo->text, 0, 0, o->choices, NULL, mo->help};
    }
    memcpy(options, common_options, sizeof common_options);
    command.n_options = N_COMMON + n_method_opts;
}

/* The value of method option k as the library reads it. */
static void method_option_text(const method_option *mo, char *text, size_t cap)
{
    switch (mo->info->type) {
    case AT_OPTION_INT: snprintf(text, cap, "%d", mo->integer); break;
    case AT_OPTION_FLAG: snprintf(text, cap, "%s", mo->flag ? "true" : "false"); break;
    case AT_OPTION_CHOICE: snprintf(text, cap, "%s", mo->text); break;
    default: snprintf(text, cap, "%.17g", mo->number); break;
    }
}

/* `advtrain train [--method NAME] --help`: the shared options, then the method's own (or every
 * method's) with their presets. */
static void print_help(const char *method)
{
    printf("usage: %s\n\n%s\n\noptions:\n", command.usage, command.summary);
    cli_help_options(options, N_COMMON, stdout);
    const char *description = NULL, *name;
    for (int m = 0; method && at_method_info(m, &name, &description); m++)
        if (!strcmp(name, method))
            break;
    if (method && n_method_opts == 0)
        printf("\nmethod %s has no options of its own\n", method);
    else if (method)
        printf("\noptions of method %s (%s):\n", method, description ? description : "?");
    else
        printf("\nmethod options ('advtrain train --method NAME --help' shows one method's):\n");
    cli_help_options(options + N_COMMON, n_method_opts, stdout);
    printf("\n  %-32s %s\n", "--help", "show this help");
}

/* --optimizer as the library's kind. */
static at_optimizer_kind optimizer_kind(void)
{
    const at_optimizer_kind kinds[] = {AT_OPTIMIZER_SGD, AT_OPTIMIZER_ADAM, AT_OPTIMIZER_ADAMW};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(opts.optimizer, at_optimizer_kind_name(kinds[i])))
            return kinds[i];
    return AT_OPTIMIZER_SGD;
}

/* The run's configuration: saved in every checkpoint and compared on --resume. Paths and
 * presentation options are left out: they may change between sessions of one run. */
static json_t *config_json(const bool *seen)
{
    json_t *c = json_object();
    json_object_set_new(c, "data", json_string(opts.data));
    json_object_set_new(c, "model", json_string(opts.model));
    json_object_set_new(c, "method", json_string(opts.method));
    json_object_set_new(c, "epochs", json_integer(opts.epochs));
    json_object_set_new(c, "batch_size", json_integer(opts.batch_size));
    json_object_set_new(c, "lr", json_real(opts.lr));
    json_object_set_new(c, "lr_schedule", json_string(opts.schedule));
    json_object_set_new(c, "warmup_epochs", json_real(opts.warmup));
    json_t *ms = json_array();
    for (int i = 0; i < opts.milestones.count; i++)
        json_array_append_new(ms, json_real(opts.milestones.values[i]));
    json_object_set_new(c, "milestones", ms);
    json_object_set_new(c, "gamma", json_real(opts.gamma));
    json_object_set_new(c, "peak", json_real(opts.peak));
    /* an optimiser's settings are 0 in a run of another kind, which does not use them */
    const bool sgd = optimizer_kind() == AT_OPTIMIZER_SGD;
    json_object_set_new(c, "optimizer", json_string(opts.optimizer));
    json_object_set_new(c, "momentum", json_real(sgd ? opts.momentum : 0.0));
    json_object_set_new(c, "nesterov", json_boolean(opts.nesterov));
    json_object_set_new(c, "beta1", json_real(sgd ? 0.0 : opts.beta1));
    json_object_set_new(c, "beta2", json_real(sgd ? 0.0 : opts.beta2));
    json_object_set_new(c, "adam_eps", json_real(sgd ? 0.0 : opts.adam_eps));
    json_object_set_new(c, "weight_decay", json_real(opts.weight_decay));
    json_object_set_new(c, "seed", json_integer(opts.seed));
    json_object_set_new(c, "val_size", json_integer(opts.val_size));
    json_object_set_new(c, "train_size", json_integer(opts.train_size));
    json_object_set_new(c, "crop_padding", json_integer(opts.crop_padding));
    json_object_set_new(c, "hflip", json_boolean(opts.hflip));
    json_object_set_new(c, "sync_bn", json_boolean(opts.sync_bn));
    json_object_set_new(c, "input_levels", json_integer(opts.input_levels));
    json_object_set_new(c, "input_noise", json_real(opts.input_noise));
    json_object_set_new(c, "eps", json_real(opts.eps));
    json_object_set_new(c, "norm", json_string(opts.norm ? opts.norm : "linf"));
    json_object_set_new(c, "steps", json_integer(opts.steps));
    json_object_set_new(c, "step_size", json_real(opts.step_size));
    json_object_set_new(c, "attack_bn_mode", opts.attack_bn ? json_string(opts.attack_bn) : json_null());
    json_object_set_new(c, "ema", json_real(opts.ema));
    json_object_set_new(c, "eps_warmup", json_real(opts.eps_warmup));
    json_object_set_new(c, "early_stop", json_boolean(!opts.no_early_stop));
    json_object_set_new(c, "eval_eps", json_real(opts.eval_eps));
    json_object_set_new(c, "eps_schedule", json_string(opts.eps_schedule));
    json_object_set_new(c, "eps_stages", json_integer(opts.eps_stages));
    json_object_set_new(c, "eps_min", json_real(opts.eps_min));
    json_object_set_new(c, "eps_rate", json_real(opts.eps_rate));
    json_object_set_new(c, "repeat", json_integer(opts.repeat));
    json_object_set_new(c, "cutmix", json_boolean(opts.cutmix));
    json_object_set_new(c, "cutmix_alpha", json_real(opts.cutmix ? opts.cutmix_alpha : 0.0));
    json_object_set_new(c, "extra_data", opts.extra_data ? json_string(opts.extra_data) : json_null());
    json_object_set_new(c, "extra_ratio", json_real(opts.extra_data ? opts.extra_ratio : 0.0));
    json_object_set_new(c, "extra_smoothing", json_real(opts.extra_data ? opts.extra_smoothing : 0.0));
    json_object_set_new(c, "ood", opts.ood ? json_string(opts.ood) : json_null());
    json_object_set_new(c, "coreset", json_real(opts.coreset));
    json_object_set_new(c, "coreset_period", json_integer(opts.coreset_period));
    json_object_set_new(c, "coreset_warmup", json_integer(opts.coreset_warmup));
    json_object_set_new(c, "coreset_start", json_integer(opts.coreset_start));
    json_object_set_new(c, "coreset_bias_only", json_boolean(opts.coreset_bias_only));
    json_object_set_new(c, "ood_weight", json_real(opts.ood_weight));
    json_object_set_new(c, "ood_batch", json_integer(opts.ood_batch));
    /* only a fine-tuning run has these, so runs saved before them still resume */
    if (opts.init)
        json_object_set_new(c, "init", json_string(opts.init));
    if (opts.init_sha256)
        json_object_set_new(c, "init_sha256", json_string(opts.init_sha256));
    /* ada's autoencoder is fixed, not checkpointed: its hash makes a resume refuse another */
    if (opts.autoencoder) {
        json_object_set_new(c, "autoencoder", json_string(opts.autoencoder));
        json_object_set_new(c, "autoencoder_sha256", json_string(opts.autoencoder_sha256));
    }
    if (opts.flow) {
        json_object_set_new(c, "flow", json_string(opts.flow));
        json_object_set_new(c, "flow_sha256", json_string(opts.flow_sha256));
    }
    json_t *given = json_object();
    for (int k = 0; k < n_method_opts; k++)
        if (seen[N_COMMON + k]) {
            char text[64];
            method_option_text(&method_opts[k], text, sizeof text);
            json_object_set_new(given, method_opts[k].info->name, json_string(text));
        }
    json_object_set_new(c, "method_options", given);
    return c;
}


/* --ood: a procedural source by name, else a data set (AT_OOD_DATA). */
static at_ood_source ood_source(const char *name)
{
    if (!name)
        return AT_OOD_NONE;
    for (int s = AT_OOD_GAUSSIAN; s <= AT_OOD_TEXTURES; s++)
        if (!strcmp(name, at_ood_source_name((at_ood_source)s)))
            return (at_ood_source)s;
    return AT_OOD_DATA;
}

static at_train_config train_config(const bool *seen, char (*texts)[64])
{
    at_train_config cfg = {0};
    cfg.method = opts.method;
    cfg.epochs = opts.epochs;
    cfg.batch_size = opts.batch_size;
    cfg.eval_batch_size = opts.eval_batch_size;
    cfg.seed = (uint64_t)opts.seed;
    cfg.val_size = opts.val_size;
    cfg.optimizer = at_optimizer_defaults(optimizer_kind());
    cfg.optimizer.weight_decay = opts.weight_decay;
    if (cfg.optimizer.kind == AT_OPTIMIZER_SGD) {
        cfg.optimizer.momentum = opts.momentum;
        cfg.optimizer.nesterov = opts.nesterov;
    } else {
        cfg.optimizer.beta1 = opts.beta1;
        cfg.optimizer.beta2 = opts.beta2;
        cfg.optimizer.eps = opts.adam_eps;
    }
    cfg.augment = (at_augment){opts.crop_padding, opts.hflip};
    cfg.lr.base = (float)opts.lr;
    cfg.lr.warmup_epochs = (float)opts.warmup;
    cfg.lr.gamma = (float)opts.gamma;
    cfg.lr.peak = (float)opts.peak;
    cfg.lr.n_milestones = opts.milestones.count;
    for (int i = 0; i < opts.milestones.count && i < 8; i++)
        cfg.lr.milestones[i] = (float)opts.milestones.values[i];
    cfg.lr.kind = !strcmp(opts.schedule, "piecewise") ? AT_LR_PIECEWISE
                  : !strcmp(opts.schedule, "cyclic")  ? AT_LR_CYCLIC
                  : !strcmp(opts.schedule, "constant") ? AT_LR_CONSTANT
                                                       : AT_LR_COSINE;
    cfg.norm = opts.norm && !strcmp(opts.norm, "l2") ? AT_NORM_L2 : AT_NORM_LINF;
    cfg.eps = (float)opts.eps;
    cfg.attack_steps = opts.steps;
    cfg.attack_step_size = (float)opts.step_size;
    cfg.attack_bn_given = opts.attack_bn != NULL;
    cfg.attack_bn_mode = !opts.attack_bn || !strcmp(opts.attack_bn, "eval") ? AT_BN_EVAL
                         : !strcmp(opts.attack_bn, "train")                 ? AT_BN_TRAIN
                                                                            : AT_BN_BATCH_STATS;
    cfg.ema = (float)opts.ema;
    cfg.eps_warmup = (float)opts.eps_warmup;
    cfg.no_robust_validation = opts.no_early_stop;
    cfg.eval_eps = (float)opts.eval_eps;
    cfg.eps_schedule = !strcmp(opts.eps_schedule, "curriculum") ? AT_EPS_CURRICULUM
                       : !strcmp(opts.eps_schedule, "adaptive")  ? AT_EPS_ADAPTIVE
                       : !strcmp(opts.eps_schedule, "stochastic") ? AT_EPS_STOCHASTIC
                                                                  : AT_EPS_FIXED;
    cfg.eps_stages = opts.eps_stages;
    cfg.eps_min = (float)opts.eps_min;
    cfg.eps_rate = (float)opts.eps_rate;
    cfg.repeat = opts.repeat;
    cfg.cutmix = opts.cutmix;
    cfg.cutmix_alpha = opts.cutmix ? (float)opts.cutmix_alpha : 0.0f;
    cfg.ood = ood_source(opts.ood);
    cfg.ood_weight = (float)opts.ood_weight;
    cfg.ood_batch = opts.ood_batch;
    cfg.coreset = (float)opts.coreset;
    cfg.coreset_period = opts.coreset_period;
    cfg.coreset_warmup = opts.coreset ? opts.coreset_warmup : 0;
    cfg.coreset_start = opts.coreset ? opts.coreset_start : 0;
    cfg.coreset_bias_only = opts.coreset_bias_only;
    cfg.autoencoder = opts.autoencoder;
    cfg.flow = opts.flow;
    for (int k = 0; k < n_method_opts; k++)
        if (seen[N_COMMON + k]) {
            method_option_text(&method_opts[k], texts[k], 64);
            at_train_config_set(&cfg, method_opts[k].info->name, texts[k]);
        }
    return cfg;
}

/* Options that mean something only beside another: given alone, they are an error rather than
 * silently unused. */
static int check_companions(const bool *seen)
{
    static const struct { const char *option, *needs; } pairs[] = {
        {"cutmix-alpha", "cutmix"}, {"ood-weight", "ood"}, {"ood-batch", "ood"},
        {"extra-ratio", "extra-data"}, {"extra-smoothing", "extra-data"},
        {"coreset-period", "coreset"}, {"coreset-warmup", "coreset"}, {"coreset-start", "coreset"},
        {"coreset-bias-only", "coreset"}, {"init-sha256", "init"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (cli_given(&command, seen, pairs[i].option) && !cli_given(&command, seen, pairs[i].needs))
            return cli_error("train", EXIT_USAGE, "--%s needs --%s", pairs[i].option, pairs[i].needs);
    return 0;
}

/* Options of one kind of optimiser: given with another, they are an error rather than silently
 * unused. */
static int check_optimizer_options(const bool *seen)
{
    static const struct { const char *option; bool sgd; } only[] = {
        {"momentum", true}, {"nesterov", true},
        {"beta1", false}, {"beta2", false}, {"adam-eps", false},
    };
    const bool sgd = optimizer_kind() == AT_OPTIMIZER_SGD;
    for (size_t i = 0; i < sizeof only / sizeof only[0]; i++)
        if (cli_given(&command, seen, only[i].option) && only[i].sgd != sgd)
            return cli_error("train", EXIT_USAGE, "optimizer %s does not use --%s", opts.optimizer,
                             only[i].option);
    return 0;
}

/* The images of a data set directory in any format advtrain reads, or of a data file, for
 * --ood (labels ignored). */
static int load_images(const char *path, const at_dataset *like, at_dataset *out)
{
    at_error err;
    struct stat st;
    if (stat(path, &st) != 0)
        return cli_error("train", EXIT_USAGE, "--ood %s: not gaussian, shuffle or textures, and no "
                         "such file or directory", path);
    if (S_ISDIR(st.st_mode)) {
        /* every known set's layout (MNIST's covers Fashion-MNIST and any IDX pair) */
        const char *name;
        for (int i = 0; at_dataset_info(i, &name, NULL, NULL); i++)
            if (at_dataset_open(out, name, path, "train", &err) == AT_OK)
                return 0;
        return cli_error("train", EXIT_WORK_FAILED, "--ood %s: no data set advtrain reads is in "
                         "this directory (IDX or CIFAR binary files)", path);
    }
    if (at_dataset_load_file(out, path, like->c, like->h, like->w, like->num_classes, &err))
        return cli_error("train", EXIT_WORK_FAILED, "--ood: %s", err.message);
    return 0;
}


/* the methods that train against an eps (all but standard training and J-SIGR) */
static bool adversarial_method(const char *method) { return at_method_is_adversarial(method); }

static int load_data(at_dataset *train, at_dataset *val, at_dataset *test, bool *have_test)
{
    at_error err;
    at_dataset full = {0};
    int status = cli_open_dataset("train", opts.data, opts.data_dir, "train", &full);
    if (status)
        return status;
    if (opts.train_size > 0 && opts.train_size < full.n) {
        at_dataset sub = {0};
        if (at_dataset_slice(&sub, &full, 0, opts.train_size, &err)) {
            at_dataset_free(&full);
            return cli_error("train", EXIT_WORK_FAILED, "%s", err.message);
        }
        at_dataset_free(&full);
        full = sub;
    }
    if (opts.val_size < 0) /* the default: 1,000 held out (Rice et al.), at most a tenth */
        opts.val_size = adversarial_method(opts.method) && !opts.no_early_stop
                            ? (full.n / 10 < 1000 ? full.n / 10 : 1000)
                            : 0;
    if (opts.val_size >= full.n) {
        int n = full.n;
        at_dataset_free(&full);
        return cli_error("train", EXIT_USAGE, "--val-size %d leaves no training images (%d in total)",
                         opts.val_size, n);
    }
    if (at_dataset_split(train, val, &full, opts.val_size, (uint64_t)opts.seed, &err)) {
        at_dataset_free(&full);
        return cli_error("train", EXIT_WORK_FAILED, "%s", err.message);
    }
    at_dataset_free(&full);
    *have_test = at_dataset_open(test, opts.data, opts.data_dir, "test", &err) == AT_OK;
    if (*have_test)
        cli_report_skipped("train", test, opts.data_dir ? opts.data_dir : opts.data, "test");
    else
        fprintf(stderr, "advtrain train: no test split, the final test evaluation is skipped: %s\n",
                err.message);
    return 0;
}

static int make_model(const at_dataset *train, at_model **model)
{
    at_model_options mo = {.num_classes = train->num_classes, .in_channels = train->c,
                           .in_height = train->h, .in_width = train->w, .seed = (uint64_t)opts.seed,
                           .input_levels = opts.input_levels, .input_noise = (float)opts.input_noise};
    if (opts.mean.count || opts.std.count) {
        if (opts.mean.count != train->c || opts.std.count != train->c)
            return cli_error("train", EXIT_USAGE, "--mean and --std need %d value(s) each, one per channel",
                             train->c);
        mo.normalize = 1;
        for (int i = 0; i < train->c; i++) {
            mo.mean[i] = (float)opts.mean.values[i];
            mo.std[i] = (float)opts.std.values[i];
        }
    }
    at_error err;
    if (opts.resume) { /* a run of an imported graph continues with the graph it describes */
        char path[4096];
        snprintf(path, sizeof path, "%s/last.safetensors", opts.out);
        at_safetensors *st = NULL;
        if (at_st_open(&st, path, &err) == AT_OK) {
            const char *spec = at_st_meta(st, "model");
            json_t *root = spec ? json_loads(spec, 0, NULL) : NULL;
            const char *arch = json_string_value(json_object_get(root, "arch"));
            const bool graph = arch && strcmp(arch, "graph") == 0;
            const bool failed = graph && at_model_create_from_spec(model, spec, &err) != AT_OK;
            json_decref(root);
            at_st_free(st);
            if (failed)
                return cli_error("train", EXIT_WORK_FAILED, "--resume: %s: %s", path, err.message);
            if (graph)
                return cli_check_model_data("train", path, train, model);
        }
    }
    if (opts.init && at_is_onnx_path(opts.init)) { /* the graph to fine-tune, from the file */
        if (mo.normalize || mo.input_levels || mo.input_noise > 0.0f)
            return cli_error("train", EXIT_USAGE, "--init %s describes its model: drop --mean, "
                             "--std, --input-levels and --input-noise", opts.init);
        if (at_model_import_onnx(model, opts.init, &err))
            return cli_error("train", EXIT_WORK_FAILED, "--init: %s", err.message);
        return cli_check_model_data("train", opts.init, train, model);
    }
    if (at_model_create(model, opts.model, &mo, &err))
        return cli_error("train", EXIT_USAGE, "%s", err.message);
    return 0;
}


/* The value of option `name` ("--method") on the command line itself, not from --config; NULL
 * when absent. */
static const char *value_in_argv(int argc, char **argv, const char *name)
{
    const size_t len = strlen(name);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], name) && i + 1 < argc)
            return argv[i + 1];
        if (!strncmp(argv[i], name, len) && argv[i][len] == '=')
            return argv[i] + len + 1;
    }
    return NULL;
}

/* --init's file and its SHA-256, the one --init-sha256 demands if given; `hash` then becomes
 * opts.init_sha256, for run.cfg and the run's record. */
static int hash_init(char hash[65])
{
    at_error err;
    if (at_file_sha256(opts.init, hash, &err))
        return cli_error("train", EXIT_WORK_FAILED, "--init: %s", err.message);
    if (opts.init_sha256 && strcasecmp(opts.init_sha256, hash) != 0)
        return cli_error("train", EXIT_WORK_FAILED, "--init %s has SHA-256 %s, not %s as "
                         "--init-sha256 says (did the file change since the run was configured?)",
                         opts.init, hash, opts.init_sha256);
    opts.init_sha256 = hash;
    return 0;
}

int cmd_train(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            const char *method = value_in_argv(argc, argv, "--method");
            const char *name;
            bool known = false;
            for (int m = 0; method && at_method_info(m, &name, NULL); m++)
                known |= !strcmp(name, method);
            if (method && !known)
                return cli_error("train", EXIT_USAGE, "unknown method '%s' (see 'advtrain list methods')", method);
            add_method_options(method);
            print_help(method);
            return 0;
        }
    add_method_options(NULL);
    bool seen[N_COMMON + MAX_METHOD_OPTIONS];
    int status = cli_parse(&command, argc, argv, seen);
    if (status)
        return status < 0 ? 0 : status;
    if (!opts.out)
        return cli_error("train", EXIT_USAGE, "--out DIR is required\nusage: %s", command.usage);
    const bool adversarial = adversarial_method(opts.method);
    /* presets of the papers: Wong et al. train fgsm-rs with a cyclic learning rate; every
     * adversarial method validates on 1,000 held-out images (Rice et al.) */
    if (!strcmp(opts.method, "fgsm-rs") && !cli_given(&command, seen, "lr-schedule"))
        opts.schedule = "cyclic";
    if ((status = check_companions(seen)) || (status = check_optimizer_options(seen)))
        return status;
    /* a resumed session takes its weights from its own checkpoint; --init in a --config file is
     * part of the run's record and is checked against it */
    if (opts.resume && value_in_argv(argc, argv, "--init"))
        return cli_error("train", EXIT_USAGE, "--init starts a new run from a file's weights; "
                         "--resume continues %s from its own last checkpoint: drop --init", opts.out);
    if (opts.init_sha256 && (strlen(opts.init_sha256) != 64 ||
                             strspn(opts.init_sha256, "0123456789abcdefABCDEF") != 64))
        return cli_error("train", EXIT_USAGE, "--init-sha256 takes 64 hexadecimal digits");
    char init_hash[65];
    if (opts.init && !opts.resume && (status = hash_init(init_hash)))
        return status;
    if (opts.ood && !cli_given(&command, seen, "ood-weight"))
        opts.ood_weight = !strcmp(opts.method, "trades") ? 1.0 : 5.0; /* OAT-TRADES: no weight */
    if (opts.final_suite && !adversarial && !(opts.eval_eps > 0))
        return cli_error("train", EXIT_USAGE, "--final-suite needs an adversarial method or "
                         "--eval-eps (it attacks at that eps)");
    if (opts.threads)
        omp_set_num_threads(opts.threads);
    if (!strcmp(opts.schedule, "piecewise") && opts.milestones.count == 0)
        return cli_error("train", EXIT_USAGE, "--lr-schedule piecewise needs --milestones");
    if (opts.milestones.count > 8)
        return cli_error("train", EXIT_USAGE, "--milestones takes at most 8 epochs");

    at_dataset train = {0}, val = {0}, test = {0}, ood = {0}, extra = {0};
    bool have_test = false;
    run_state s = {.opts = &opts};
    at_shard *shard = NULL;
    s.last_train_acc = -1.0;
    json_t *config = NULL, *report = NULL;
    status = load_data(&train, &val, &test, &have_test);
    if (status)
        return status;
    status = make_model(&train, &s.model);
    if (!status && ood_source(opts.ood) == AT_OOD_DATA)
        status = load_images(opts.ood, &train, &ood);
    if (!status && opts.extra_data &&
        at_dataset_load_file(&extra, opts.extra_data, train.c, train.h, train.w, train.num_classes,
                             &s.err))
        status = cli_error("train", EXIT_WORK_FAILED, "--extra-data: %s", s.err.message);
    if (status)
        goto done;
    char method_texts[MAX_METHOD_OPTIONS][64];
    at_train_config cfg = train_config(seen, method_texts);
    cfg.ood_data = ood.images ? &ood : NULL;
    if (extra.images) {
        cfg.extra = &extra;
        cfg.extra_ratio = (float)opts.extra_ratio;
        cfg.extra_smoothing = (float)opts.extra_smoothing;
    }
    if (at_trainer_create(&s.trainer, s.model, &train, &val, &cfg, &s.err)) {
        /* an autoencoder file that cannot be read or does not fit is a failed input, not usage */
        const bool file = (opts.autoencoder || opts.flow) && s.err.status != AT_ERR_ARG;
        status = cli_error("train", file ? EXIT_WORK_FAILED : EXIT_USAGE, "%s%s",
                           file ? (opts.flow ? "--flow: " : "--autoencoder: ") : "", s.err.message);
        goto done;
    }
    if (opts.autoencoder && at_file_sha256(opts.autoencoder, opts.autoencoder_sha256, &s.err)) {
        status = cli_error("train", EXIT_WORK_FAILED, "--autoencoder: %s", s.err.message);
        goto done;
    }
    if (opts.flow && at_file_sha256(opts.flow, opts.flow_sha256, &s.err)) {
        status = cli_error("train", EXIT_WORK_FAILED, "--flow: %s", s.err.message);
        goto done;
    }
    if (opts.init && !opts.resume && at_trainer_init_weights(s.trainer, opts.init, &s.err)) {
        status = cli_error("train", EXIT_WORK_FAILED, "--init: %s", s.err.message);
        goto done;
    }
    if (cli_mkdirs(opts.out, &s.err)) {
        status = cli_error("train", EXIT_WORK_FAILED, "%s", s.err.message);
        goto done;
    }
    /* the run's options, replayable with --config (where the run goes and how it talks are not
     * part of the run) */
    static const char *const not_saved[] = {"out", "json", "resume", "quiet", "threads",
                                            "stop-after", "allreduce", NULL};
    char cfg_path[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/run.cfg", opts.out);
    /* these are written even when not given, so a replay does not depend on the defaults; of the
     * optimiser's own, only those its kind uses (the others would be refused on replay) */
    const char *resolved[16] = {"data", "model", "method", "epochs", "batch-size", "lr",
                                "lr-schedule", "optimizer", "weight-decay", "seed", "val-size",
                                "init-sha256"};
    int n_resolved = 12;
    if (optimizer_kind() == AT_OPTIMIZER_SGD) {
        resolved[n_resolved++] = "momentum";
    } else {
        resolved[n_resolved++] = "beta1";
        resolved[n_resolved++] = "beta2";
        resolved[n_resolved++] = "adam-eps";
    }
    if (!opts.resume && ranks_rank() == 0 &&
        cli_write_config(&command, cfg_path, seen, resolved, not_saved, &s.err)) {
        status = cli_error("train", EXIT_WORK_FAILED, "%s", s.err.message);
        goto done;
    }
    snprintf(s.checkpoint, sizeof s.checkpoint, "%s/last.safetensors", opts.out);
    snprintf(s.best_path, sizeof s.best_path, "%s/best.safetensors", opts.out);
    snprintf(s.ema_path, sizeof s.ema_path, "%s/last_ema.safetensors", opts.out);
    config = config_json(seen);
    s.config_text = json_dumps(config, JSON_COMPACT | JSON_SORT_KEYS);
    s.model_spec = at_model_spec(s.model);
    s.test = have_test ? &test : NULL;
    s.epochs = json_array();
    int resumed_epoch = 0; /* the epoch a resumed run continues after */

    if (opts.resume && (status = train_resume(&s, config, &resumed_epoch)))
        goto done;
    char log_path[4096];
    snprintf(log_path, sizeof log_path, "%s/log.jsonl", opts.out);
    const double earlier_seconds = resumed_epoch > 0 ? train_load_earlier_epochs(log_path, resumed_epoch, s.epochs) : 0.0;
    if (train_ranks_begin(s.trainer, opts.sync_bn, opts.allreduce, s.checkpoint, &shard, &s.err)) {
        status = cli_error("train", EXIT_WORK_FAILED, "%s", s.err.message);
        goto done;
    }
    s.log = ranks_rank() == 0 ? fopen(log_path, opts.resume ? "a" : "w") : fopen("/dev/null", "w");
    if (!s.log) {
        status = cli_error("train", EXIT_WORK_FAILED, "%s: cannot open for writing", log_path);
        goto done;
    }
    const int passes = at_trainer_epochs(s.trainer);
    if (!opts.quiet) {
        fprintf(stderr, "training %s on %s (%d images, %d held out) with %s, %d epochs, %d threads",
                opts.model, opts.data, train.n, val.n, opts.method, opts.epochs, omp_get_max_threads());
        if (ranks_size() > 1)
            fprintf(stderr, " x %d processes (%s batch norm)", ranks_size(),
                    opts.sync_bn ? "synchronised" : "per-process");
        fprintf(stderr, "\n");
        if (opts.init && !opts.resume)
            fprintf(stderr, "starting from the weights of %s (SHA-256 %.16s...)\n", opts.init,
                    opts.init_sha256);
        if (passes != opts.epochs)
            fprintf(stderr, "%s replays each minibatch %d times: %d passes over the data, as many "
                            "optimiser steps as %d epochs\n", opts.method,
                    opts.epochs / passes, passes, opts.epochs);
    }

    double start = cli_now();
    at_train_callbacks cb = {train_on_batch, train_on_epoch, &s};
    const int last_epoch = opts.stop_after && opts.stop_after < passes ? opts.stop_after : passes;
    while (at_trainer_epoch(s.trainer) < last_epoch && !at_trainer_stopped(s.trainer)) {
        at_epoch_stats st;
        cli_progress_start(&s.progress, opts.quiet);
        if (at_trainer_run_epoch(s.trainer, &cb, &st, &s.err)) {
            cli_progress_clear(&s.progress);
            status = cli_error("train", EXIT_WORK_FAILED, "%s", s.err.message);
            if (s.err.status == AT_ERR_NUMERIC && ranks_rank() == 0)
                train_report_divergence(&s, config, s.err.message);
            /* the others may be waiting on this process; a divergence (the summed loss, the
             * equal weights) stops every process at the same step, so none is left waiting */
            if (ranks_size() > 1 && !s.status && s.err.status != AT_ERR_NUMERIC)
                ranks_abort(status);
            goto done;
        }
    }
    double train_seconds = earlier_seconds + cli_now() - start;
    if (ranks_rank() > 0) { /* rank 0 reports and evaluates */
        status = 0;
        goto done;
    }
    if (last_epoch < passes && !at_trainer_stopped(s.trainer)) {
        if (!opts.quiet)
            fprintf(stderr, "stopped after epoch %d of %d; continue with --resume\n", last_epoch,
                    passes);
        status = 0;
        goto done;
    }

    report = train_report(&s, config, train_seconds, &train, have_test ? &test : NULL,
                          ood.images ? &ood : NULL, extra.images ? &extra : NULL);
    if (have_test && (status = train_final_evaluation(&s, &test, report)))
        goto done;
    if (!opts.quiet)
        printf("training took %.0f s\n", train_seconds);
    char report_path[4096];
    snprintf(report_path, sizeof report_path, "%s/report.json", opts.out);
    if (cli_write_json(report_path, report, &s.err) ||
        (opts.json && cli_write_json(opts.json, report, &s.err))) {
        status = cli_error("train", EXIT_WORK_FAILED, "%s", s.err.message);
        goto done;
    }
    status = 0;
done:
    if (s.log)
        fclose(s.log);
    json_decref(report);
    json_decref(config);
    json_decref(s.epochs);
    free(s.config_text);
    free(s.model_spec);
    at_trainer_free(s.trainer);
    at_shard_free(shard);
    at_model_free(s.model);
    at_dataset_free(&train);
    at_dataset_free(&val);
    at_dataset_free(&test);
    at_dataset_free(&ood);
    at_dataset_free(&extra);
    return status;
}
