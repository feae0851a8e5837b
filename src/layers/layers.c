/* layers.c: the table of layer kinds, generated from AT_LAYER_LIST in graph.h. */
#include "graph/graph.h"

#define AT_LAYER_DECLARE_(name) extern const at_layer_ops at_layer_##name;
AT_LAYER_LIST(AT_LAYER_DECLARE_)
#undef AT_LAYER_DECLARE_

static const at_layer_ops *const layer_table[AT_LAYER_COUNT] = {
#define AT_LAYER_ROW_(name) &at_layer_##name,
    AT_LAYER_LIST(AT_LAYER_ROW_)
#undef AT_LAYER_ROW_
};

const at_layer_ops *at_layer_ops_of(at_layer_kind kind) { return layer_table[kind]; }

const char *at_layer_name(at_layer_kind kind) { return layer_table[kind]->name; }
