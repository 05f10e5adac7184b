/* cli_vit.c - backbone shape options shared by the subcommands that load a backbone. */
#include "cli/cli.h"
#include "nn/vit.h"

void cli_vit_shape_overrides(dx_vit_config *c, int patch, int registers, int dim, int depth, int heads) {
    if (patch) c->patch = patch;
    if (registers >= 0) c->registers = registers;
    if (dim) {
        c->dim = dim;
        c->ffn_hidden = 4 * dim;
    }
    if (depth) c->depth = depth;
    if (heads) c->heads = heads;
}
