/* graph_spec.h: a model built node by node (an imported ONNX graph) described as JSON, so that
 * its checkpoints describe themselves as a reference architecture's do (spec.c). */
#ifndef AT_GRAPH_SPEC_H
#define AT_GRAPH_SPEC_H

#include "graph/graph.h"

#include <jansson.h>

/* The architecture name of such models: their spec carries "nodes". */
#define AT_GRAPH_ARCH "graph"

/* The nodes after the input as a JSON array (new reference), NULL for a layer kind it cannot
 * describe. */
json_t *at_graph_spec_nodes(const at_model *m);

/* Builds and finishes the model of an input shape and a "nodes" array; parameters are left at
 * their layers' default initialisation (weights come from the checkpoint). */
int at_graph_spec_build(at_model **out, int channels, int height, int width, json_t *nodes,
                        at_error *err);

#endif
