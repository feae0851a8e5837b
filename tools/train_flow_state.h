/* train_flow_state.h: a resumable `advtrain train-flow`. Likelihood training of a flow runs for
 * hours (tens of epochs); after every epoch the command writes, beside DIR/flow.safetensors,
 * DIR/optimizer.safetensors: Adam's moments and step count for each of the flow's networks, the
 * epochs done, the run's settings and the SHA-256 of the flow file it belongs to. `train-flow
 * --resume` continues from them; each epoch's data order and dequantisation noise come from the
 * seed and the epoch's index, so the resumed run ends with the weights of an uninterrupted one. */
#ifndef ADVTRAIN_TRAIN_FLOW_STATE_H
#define ADVTRAIN_TRAIN_FLOW_STATE_H

#include "cli.h"

/* Writes the optimisers' state (one per at_flow_model, n in all) after `epochs` epochs, with the
 * run's settings (a JSON object: what must not change on resume) and the hash of `flow_path`,
 * the flow file just written. Returns 0 or an exit code with a message. */
int flow_state_save(const char *path, at_optimizer *const *opts, int n, int epochs,
                    const json_t *settings, const char *flow_path);

/* Loads the state at `path` into the optimisers and *epochs. Refuses, with a one-line message
 * naming the file, a state written with other settings (naming the first that differs), for
 * another flow file than `flow_path`, or damaged. Returns 0 or an exit code. */
int flow_state_load(const char *path, at_optimizer *const *opts, int n, const json_t *settings,
                    const char *flow_path, int *epochs);

#endif
