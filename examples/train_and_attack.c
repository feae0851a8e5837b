/* train_and_attack.c: libadvtrain from the outside, through the installed header and library.
 * Trains a SmallCNN on 6,000 Fashion-MNIST images with PGD adversarial training for one epoch,
 * then measures clean and PGD-20 accuracy on 500 test images.
 *
 *   cc train_and_attack.c $(pkg-config --cflags --libs advtrain) -o train_and_attack
 *   ./train_and_attack [DATA_DIR]
 */
#include <advtrain.h>

#include <stdio.h>
#include <stdlib.h>

static int fail(const at_error *err)
{
    fprintf(stderr, "train_and_attack: %s\n", err->message);
    return 1;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : NULL; /* NULL: the data set's default directory */
    at_error err;
    at_dataset all = {0}, train = {0}, val = {0}, test = {0}, points = {0};
    if (at_dataset_open(&all, "fashion-mnist", dir, "train", &err) ||
        at_dataset_open(&test, "fashion-mnist", dir, "test", &err) ||
        at_dataset_slice(&train, &all, 0, 6000, &err) ||
        at_dataset_slice(&points, &test, 0, 500, &err))
        return fail(&err);

    at_model *model = NULL;
    if (at_model_create(&model, "smallcnn", &(at_model_options){.seed = 1}, &err))
        return fail(&err);
    at_train_config cfg = {.method = "pgd-at", .epochs = 1, .batch_size = 128,
                           .lr = {.kind = AT_LR_COSINE, .base = 0.05f},
                           .optimizer = {.momentum = 0.9, .weight_decay = 5e-4},
                           .eps = 0.1f, .attack_steps = 5, .no_robust_validation = true,
                           .eval_batch_size = 500};
    at_trainer *trainer = NULL;
    at_epoch_stats stats;
    if (at_trainer_create(&trainer, model, &train, &val, &cfg, &err) ||
        at_trainer_run_epoch(trainer, NULL, &stats, &err))
        return fail(&err);
    printf("epoch 1: adversarial training accuracy %.1f%%, %.0f images/s\n", 100 * stats.train_acc,
           stats.images_per_second);

    at_eval_plan plan = {.n_attacks = 1, .attacks = {"pgd"}, .batch_size = 250, .seed = 7};
    plan.options[0] = (at_attack_options){.norm = AT_NORM_LINF, .eps = 0.1f, .steps = 20,
                                          .step_size = 0.01f};
    at_eval_result result;
    if (at_eval_robust(model, &points, &plan, &result, NULL, NULL, &err))
        return fail(&err);
    printf("%ld test points: clean %.1f%%, PGD-20 at eps 0.1 %.1f%% (max Linf %.4f, BN %s)\n",
           result.points, 100.0 * result.clean_correct / result.points,
           100.0 * result.robust_after[0] / result.points, result.stats[0].max_linf,
           at_bn_mode_name(result.stats[0].bn_mode));
    int ok = result.stats[0].max_linf <= 0.1 + 1e-6 && result.stats[0].out_of_range == 0 &&
             result.clean_correct > result.robust_after[0];
    at_eval_result_free(&result);
    at_trainer_free(trainer);
    at_model_free(model);
    at_dataset_free(&all);
    at_dataset_free(&train);
    at_dataset_free(&test);
    at_dataset_free(&points);
    return ok ? 0 : 1;
}
