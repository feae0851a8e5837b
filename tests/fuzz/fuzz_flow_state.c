/* fuzz_flow_state.c: the optimizer file of a resumable flow training (`advtrain train-flow
 * --resume`, flow_state_load in tools/train_flow_state.c) for the smallest flow (1x2x2 images, one
 * scale of one step, one hidden map: Adam over a coupling network of 61 parameters and a 1x1
 * convolution of 16), settings {"--seed": 0}, and a flow file holding the 4 bytes "flow". */
#include "train_flow_state.h"

#include "fuzz_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct harness {
    at_flow *flow;
    at_optimizer *adam[2];
    json_t *settings;
    char flow_path[64];
} harness;

static harness the; /* built once: libFuzzer calls the harness millions of times */

static void remove_flow_file(void)
{
    remove(the.flow_path);
}

static harness *setup(void)
{
    harness *h = &the;
    if (h->flow)
        return h;
    at_error err;
    const at_flow_options o = {.channels = 1, .height = 2, .width = 2, .scales = 1, .steps = 1,
                               .hidden = 1};
    const at_optimizer_options adam = at_optimizer_defaults(AT_OPTIMIZER_ADAM);
    if (at_flow_create(&h->flow, &o, 1, &err) || at_flow_model_count(h->flow) != 2)
        abort();
    for (int m = 0; m < 2; m++)
        if (at_optimizer_create(&h->adam[m], at_flow_model(h->flow, m), &adam, &err))
            abort();
    snprintf(h->flow_path, sizeof h->flow_path, "/tmp/fuzz_flow_state.%ld.flow", (long)getpid());
    FILE *f = fopen(h->flow_path, "wb");
    if (!f || fwrite("flow", 1, 4, f) != 4 || fclose(f))
        abort();
    atexit(remove_flow_file);
    h->settings = json_pack("{s:i}", "--seed", 0);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    harness *h = setup();
    const char *path = fuzz_write_file(data, size, ".safetensors");
    int epochs = -1;
    if (!flow_state_load(path, h->adam, 2, h->settings, h->flow_path, &epochs) &&
        (epochs < 0 || epochs > 100000))
        abort(); /* a state accepted must say how far its run came */
    return 0;
}
