/* shared.c: a node that applies the layer of an earlier node to another input, with the same
 * parameters (weight sharing: one frame model run on every frame of a clip). The node is a copy of
 * its source with another input; it declares no tensors, so the state_dict, the parameter count
 * and the initialisation are those of the source alone. */
#include "graph/graph.h"

int at_add_shared(at_model *m, int input, int source)
{
    if (source < 1 || source >= m->n_nodes)
        return at_graph_error(m, AT_ERR_ARG);
    const int root = m->nodes[source].source ? m->nodes[source].source : source;
    const at_node src = m->nodes[root]; /* a copy: appending may move the nodes */
    /* one input only: a join (add) has nothing to share; and running statistics updated by
     * every use would mix the inputs of all of them */
    if (src.n_inputs != 1 || at_layer_ops_of(src.kind)->updates_buffers)
        return at_graph_error(m, AT_ERR_ARG);
    at_node *node = at_graph_append(m, src.kind, &input, 1, src.name);
    if (!node)
        return m->build_status;
    at_shape in = at_graph_shape(m, input), want = at_graph_shape(m, src.inputs[0]);
    if (in.c != want.c || in.h != want.h || in.w != want.w)
        return at_graph_error(m, AT_ERR_SHAPE);
    node->p = src.p;
    node->out = src.out;
    node->param_offset = src.param_offset;
    node->n_params = src.n_params;
    node->buffer_offset = src.buffer_offset;
    node->n_buffers = src.n_buffers;
    node->counter = src.counter;
    node->source = root;
    if (src.n_params)
        node->has_upstream_params = true;
    return at_graph_index(m, node);
}
