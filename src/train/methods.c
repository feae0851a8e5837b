/* methods.c: the table of training methods; adding one is a new file and one line here. */
#include "train/method.h"

#include <string.h>

extern const at_method at_method_standard, at_method_pgd_at, at_method_trades, at_method_mart,
    at_method_fgsm_rs, at_method_free_at, at_method_iat, at_method_jsigr, at_method_sat,
    at_method_fgsm_sdi, at_method_infoat, at_method_gaussian, at_method_rlat,
    at_method_smoothmix, at_method_augmix, at_method_augrmixat, at_method_ada, at_method_iwd_at,
    at_method_preemptive, at_method_ijsat;

static const at_method *const method_table[] = {
    &at_method_standard, &at_method_pgd_at, &at_method_trades, &at_method_mart,
    &at_method_fgsm_rs,  &at_method_free_at, &at_method_iat,   &at_method_jsigr, &at_method_sat,
    &at_method_fgsm_sdi, &at_method_infoat, &at_method_gaussian, &at_method_rlat,
    &at_method_smoothmix, &at_method_augmix, &at_method_augrmixat, &at_method_ada,
    &at_method_iwd_at, &at_method_preemptive, &at_method_ijsat,
};
#define N_METHODS (int)(sizeof method_table / sizeof method_table[0])

const at_method *at_method_find(const char *name)
{
    for (int i = 0; i < N_METHODS; i++)
        if (strcmp(method_table[i]->name, name) == 0)
            return method_table[i];
    return NULL;
}

bool at_method_info(int index, const char **name, const char **description)
{
    if (index < 0 || index >= N_METHODS)
        return false;
    if (name)
        *name = method_table[index]->name;
    if (description)
        *description = method_table[index]->description;
    return true;
}

bool at_method_is_adversarial(const char *name)
{
    const at_method *m = at_method_find(name);
    return m && (m->uses & AT_USES_EPS);
}
